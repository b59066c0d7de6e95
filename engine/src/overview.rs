//! `cobox network`: the co-op's network at a glance. For each space, how many seeders were
//! verified within the last day; each seeder's completion, audit and online scores, last
//! contact and quota used; each member device's last sync and share ratio; for a seeder, the
//! spaces it holds for whom; and the network's measures. Built from the ledgers (agreements
//! and audits every member shares), the rosters and this device's health record
//! ([`crate::health`]).

use crate::agreement_service::{self, AgreementList};
use crate::error::Error;
use crate::health::Health;
use crate::home::Home;
use crate::util::rfc3339;
use crate::{DeviceId, SpaceId};
use cobox_agreements::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A seeder counts as a verified copy when it passed an audit within this long.
pub const VERIFIED_WITHIN_MS: i64 = 24 * 3600 * 1000;
/// Below this audit or online score a peer is unhealthy (the app tells of it once).
pub const HEALTHY_SCORE: f64 = 0.8;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkReport {
    /// This device (hex id).
    pub device: String,
    /// When the report was made (RFC 3339).
    pub at: String,
    /// The same, in ms since the epoch (what plots count back from).
    pub at_ms: i64,
    /// Each space this device is a member of.
    pub spaces: Vec<SpaceHealth>,
    /// Spaces this device holds as a seeder, and for whom.
    pub seeding: Vec<SeedingFor>,
    /// The network's measures.
    pub measures: Measures,
    /// The measures over time: one point per 12-hour window a report was made in, the newest
    /// last (a year kept).
    #[serde(default)]
    pub measures_history: Vec<MeasuresPoint>,
}

/// One space's copies and peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpaceHealth {
    /// The space (id).
    pub space: String,
    /// Its name on this device.
    pub name: String,
    /// Seeders that passed an audit within the last day.
    pub verified: usize,
    /// Seeders under an active agreement.
    pub seeders_total: usize,
    /// "N of M seeders verified within the last day".
    pub headline: String,
    /// Bytes this device's copy holds (what a complete copy holds).
    pub needs_bytes: Option<u64>,
    /// Each seeder with an agreement that is or was active.
    pub seeders: Vec<SeederHealth>,
    /// Each member device.
    pub members: Vec<MemberHealth>,
    /// Verified copies per 12-hour window, as this device audited them (oldest first).
    pub history: Vec<CopiesPoint>,
}

/// Verified copies in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopiesPoint {
    /// The window's start (ms since the epoch).
    pub start_ms: i64,
    /// Seeders that passed this device's audits in it and failed none.
    pub verified: usize,
    /// Blob bytes moved each way with every peer in it.
    pub bytes: u64,
}

/// A seeder of a space.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeederHealth {
    /// Its device (hex id).
    pub device: String,
    /// Who runs it, in its own signed words (`cobox up --operator`); None: it has not said.
    pub operator: Option<String>,
    /// Its agreement's state.
    pub state: State,
    /// The agreed quota (bytes).
    pub quota: u64,
    /// Bytes it said it held at its newest audit.
    pub held_bytes: Option<u64>,
    /// `held_bytes` of what a complete copy holds (0..1, may pass 1 while old versions wait for gc).
    pub completion: Option<f64>,
    /// `held_bytes` of the quota.
    pub quota_used: Option<f64>,
    /// Passed an audit within the last day.
    pub verified: bool,
    /// Its newest audit (RFC 3339), passed or not, by any member.
    pub last_audit: Option<String>,
    /// Whether that audit passed.
    pub last_audit_ok: Option<bool>,
    /// The audit score from this device's record (α/(α+β); 1 with no audits yet).
    pub audit_score: f64,
    /// The online score from this device's record.
    pub online_score: f64,
    /// When this device last reached it.
    pub last_seen: Option<String>,
    /// Scores per window (oldest first).
    pub history: Vec<ScorePoint>,
}

/// A peer's scores at the end of one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScorePoint {
    /// The window's start (ms since the epoch).
    pub start_ms: i64,
    /// Audit score.
    pub audit: f32,
    /// Online score.
    pub online: f32,
    /// Sessions that worked and failed in it.
    pub sessions_ok: u32,
    /// Sessions, audits and checks that failed or did not reach it.
    pub failures: u32,
}

/// A member device of a space.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberHealth {
    /// Its device (hex id).
    pub device: String,
    /// Its name in the roster.
    pub name: String,
    /// Its role.
    #[serde(with = "crate::util::role_name")]
    pub role: cobox_core::roster::Role,
    /// It is this device.
    pub me: bool,
    /// When this device last synced with it.
    pub last_sync: Option<String>,
    /// Online score from this device's record.
    pub online_score: f64,
    /// Blob bytes it sent this device, and this device sent it, over the record (a year).
    pub bytes_from: u64,
    /// See `bytes_from`.
    pub bytes_to: u64,
    /// `bytes_to / bytes_from`: what this device gave it for what it gave (None: it gave nothing).
    pub share_ratio: Option<f64>,
    /// The bytes each way per window (oldest first): the share ratio over time.
    #[serde(default)]
    pub history: Vec<SharePoint>,
}

/// Blob bytes moved with a member device in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SharePoint {
    /// The window's start (ms since the epoch).
    pub start_ms: i64,
    /// Bytes it sent this device.
    pub bytes_from: u64,
    /// Bytes this device sent it.
    pub bytes_to: u64,
}

/// A space this device seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeedingFor {
    /// The space (id: a seeder never learns its name).
    pub space: String,
    /// The owner devices whose agreements it holds it under.
    pub owners: Vec<String>,
    /// Bytes held.
    pub used: Option<u64>,
    /// The largest quota agreed.
    pub quota: u64,
}

/// The network's size and balance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measures {
    /// Member devices across this device's spaces (this one included).
    pub devices: usize,
    /// Distinct seeders under active agreements.
    pub seeders: usize,
    /// Active agreements, either side.
    pub agreements: usize,
    /// Distinct organisations holding copies: seeders under active agreements told apart by the
    /// operator name they give (compared without case), each seeder that gives none counted alone.
    pub organisations: usize,
    /// Bytes this device seeds for others over bytes others seed for it.
    pub share_ratio: Option<f64>,
    /// Spaces whose verified copies are below their replication target.
    pub under_target: usize,
}

/// The measures at one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeasuresPoint {
    /// The window's start (ms since the epoch).
    pub start_ms: i64,
    /// Member devices.
    pub devices: usize,
    /// Seeders under active agreements.
    pub seeders: usize,
    /// Active agreements.
    pub agreements: usize,
    /// Distinct organisations holding copies.
    pub organisations: usize,
    /// This device's share ratio as a seeder.
    pub share_ratio: Option<f64>,
    /// Seeders verified within the last day, over every space.
    pub verified: usize,
}

/// The file in the home that keeps [`MeasuresPoint`]s.
pub const MEASURES_FILE: &str = "network-measures.json";

/// Add `m` as the point of the window `now_ms` falls in (replacing the one made earlier in the
/// same window), keep a year of windows, and return them all. A file that cannot be read is
/// begun anew (history is not worth failing a report for); one that cannot be written is
/// logged and the points returned anyway.
pub fn remember_measures(root: &Path, m: &Measures, verified: usize, now_ms: i64) -> Vec<MeasuresPoint> {
    let path = root.join(MEASURES_FILE);
    let mut points: Vec<MeasuresPoint> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!("{} cannot be read ({e}); the measures' history begins anew", path.display());
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", path.display());
            Vec::new()
        }
    };
    let start_ms = now_ms.div_euclid(crate::health::WINDOW_MS) * crate::health::WINDOW_MS;
    let point = MeasuresPoint {
        start_ms,
        devices: m.devices,
        seeders: m.seeders,
        agreements: m.agreements,
        organisations: m.organisations,
        share_ratio: m.share_ratio,
        verified,
    };
    if points.last() == Some(&point) {
        return points;
    }
    // A clock set back writes into an older window: the points stay in order.
    points.retain(|p| p.start_ms != start_ms);
    let at = points.partition_point(|p| p.start_ms < start_ms);
    points.insert(at, point);
    let excess = points.len().saturating_sub(cobox_core::health::WINDOWS_KEPT);
    points.drain(..excess);
    match serde_json::to_vec(&points) {
        Ok(b) => {
            if let Err(e) = crate::util::write_atomic(&path, &b) {
                tracing::warn!("cannot keep the network's measures: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot encode the network's measures: {e}"),
    }
    points
}

/// What the report is built from besides the home: the health record, and the bytes held of
/// each space (this device's copy, or its seed).
pub struct Inputs<'a> {
    /// This device's health record.
    pub health: &'a Health,
    /// Bytes held of a space here.
    pub usage: &'a dyn Fn(&SpaceId) -> Option<u64>,
    /// The time of the report.
    pub now_ms: i64,
}

/// The report for the home at `root`.
pub fn report(root: &Path, inputs: &Inputs<'_>) -> Result<NetworkReport, Error> {
    let now = inputs.now_ms;
    let me = Home::device_key_at(root)?.verifying_key().to_bytes();
    let AgreementList { agreements, .. } = agreement_service::list(root, now)?;
    let stats = agreement_service::stats(root, now, inputs.usage)?;
    let mut spaces = Vec::new();
    let mut devices = BTreeSet::new();
    let mut seeders_all = BTreeSet::new();
    // Seeder device -> the name it gives for its operator (its newest note in any space).
    let mut operators: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut under_target = 0;
    devices.insert(hex::encode(me));
    for info in Home::spaces_at(root)? {
        if Home::join_pending_at(root, &info.id) {
            continue;
        }
        let needs = (inputs.usage)(&info.id);
        let roster = crate::members::list(root, &info.id.to_string(), now)?;
        let target = info.replicas_target;
        // One line per seeder: its newest agreement that is or was active.
        let mut per: BTreeMap<String, &crate::ledger::AgreementSummary> = BTreeMap::new();
        for a in agreements.iter().filter(|a| a.space == info.id.to_string() && a.role == "member") {
            if !matches!(a.state, State::Active | State::Expired | State::Revoked) {
                continue;
            }
            let newer = per
                .get(&a.seeder)
                .is_none_or(|b| (a.state == State::Active, &a.start) > (b.state == State::Active, &b.start));
            if newer {
                per.insert(a.seeder.clone(), a);
            }
        }
        let mut seeders = Vec::new();
        for (device, a) in &per {
            let peer: [u8; 32] = device.parse::<DeviceId>().map(|d| d.0).unwrap_or([0; 32]);
            let rec = inputs.health.get(&peer, &info.id.0);
            let held = a.last_audit.as_ref().map(|x| x.stored_bytes);
            let verified = a.state == State::Active
                && a.last_audit.as_ref().is_some_and(|x| x.ok && now - x.time_ms <= VERIFIED_WITHIN_MS);
            if a.state == State::Active {
                seeders_all.insert(device.clone());
            }
            // The operator it named under any of its agreements in this space (the newest
            // agreement's first, which carries its newest word).
            let operator = a.operator.clone().or_else(|| {
                agreements
                    .iter()
                    .filter(|x| x.space == a.space && x.seeder == *device && x.role == "member")
                    .find_map(|x| x.operator.clone())
            });
            if let Some(name) = &operator {
                let start = agreement_start(a);
                if operators.get(device).is_none_or(|(t, _)| *t <= start) {
                    operators.insert(device.clone(), (start, name.clone()));
                }
            }
            seeders.push(SeederHealth {
                device: device.clone(),
                operator,
                state: a.state,
                quota: a.quota,
                held_bytes: held,
                completion: held.zip(needs).map(|(h, n)| if n == 0 { 1.0 } else { h as f64 / n as f64 }),
                quota_used: held.map(|h| if a.quota == 0 { 0.0 } else { h as f64 / a.quota as f64 }),
                verified,
                last_audit: a.last_audit.as_ref().map(|x| x.time.clone()),
                last_audit_ok: a.last_audit.as_ref().map(|x| x.ok),
                audit_score: rec.map_or(1.0, |r| r.audit.value()),
                online_score: rec.map_or(1.0, |r| r.online.value()),
                last_seen: rec.and_then(|r| r.last_seen_ms).map(rfc3339),
                history: rec
                    .map(|r| {
                        r.windows
                            .iter()
                            .map(|w| ScorePoint {
                                start_ms: w.start_ms(),
                                audit: w.audit_score,
                                online: w.online_score,
                                sessions_ok: w.sessions_ok,
                                failures: w.sessions_failed + w.audits_failed + w.unreached + w.recovery_failed,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        let members = roster
            .members
            .iter()
            .map(|m| {
                devices.insert(m.device.clone());
                let peer: [u8; 32] = m.device.parse::<DeviceId>().map(|d| d.0).unwrap_or([0; 32]);
                let rec = inputs.health.get(&peer, &info.id.0);
                let t = rec.map(|r| r.totals_since(i64::MIN));
                let (from, to) = t.map_or((0, 0), |t| (t.bytes_in, t.bytes_out));
                MemberHealth {
                    device: m.device.clone(),
                    name: m.name.clone(),
                    role: m.role,
                    me: m.me,
                    last_sync: rec.and_then(|r| r.last_seen_ms).map(rfc3339),
                    online_score: rec.map_or(1.0, |r| r.online.value()),
                    bytes_from: from,
                    bytes_to: to,
                    share_ratio: (from > 0).then(|| to as f64 / from as f64),
                    history: rec
                        .map(|r| {
                            r.windows
                                .iter()
                                .map(|w| SharePoint {
                                    start_ms: w.start_ms(),
                                    bytes_from: w.bytes_in,
                                    bytes_to: w.bytes_out,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
        let verified = seeders.iter().filter(|s| s.verified).count();
        let total = seeders.iter().filter(|s| s.state == State::Active).count();
        if (verified as u32) < target {
            under_target += 1;
        }
        spaces.push(SpaceHealth {
            space: info.id.to_string(),
            name: info.name.clone(),
            verified,
            seeders_total: total,
            headline: format!("{verified} of {total} seeders verified within the last day"),
            needs_bytes: needs,
            seeders,
            members,
            history: copies_history(inputs.health, &info.id, &per.keys().cloned().collect::<Vec<_>>()),
        });
    }
    // As a seeder: each space held, for whom.
    let mut seeding: BTreeMap<String, SeedingFor> = BTreeMap::new();
    for a in agreements.iter().filter(|a| a.role == "seeder" && a.state == State::Active) {
        let e = seeding.entry(a.space.clone()).or_insert_with(|| SeedingFor {
            space: a.space.clone(),
            owners: Vec::new(),
            used: a.space.parse::<SpaceId>().ok().and_then(|s| (inputs.usage)(&s)),
            quota: 0,
        });
        if !e.owners.contains(&a.owner) {
            e.owners.push(a.owner.clone());
        }
        e.quota = e.quota.max(a.quota);
    }
    let active = agreements.iter().filter(|a| a.state == State::Active).count();
    let organisations = seeders_all
        .iter()
        .map(|d| operators.get(d).map_or_else(|| format!("device {d}"), |(_, n)| format!("named {}", n.to_lowercase())))
        .collect::<BTreeSet<_>>()
        .len();
    let measures = Measures {
        devices: devices.len(),
        seeders: seeders_all.len(),
        agreements: active,
        organisations,
        share_ratio: stats.share_ratio,
        under_target,
    };
    let verified_all = spaces.iter().map(|s| s.verified).sum();
    let measures_history = remember_measures(root, &measures, verified_all, now);
    Ok(NetworkReport {
        device: hex::encode(me),
        at: rfc3339(now),
        at_ms: now,
        spaces,
        seeding: seeding.into_values().collect(),
        measures,
        measures_history,
    })
}

/// When an agreement starts (ms), for ordering a seeder's notes; its RFC 3339 start as a
/// fallback order when unparsable (never, as the ledger wrote it).
fn agreement_start(a: &crate::ledger::AgreementSummary) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&a.start).map_or(0, |t| t.timestamp_millis())
}

/// Verified copies of a space per window, from this device's audits of its seeders.
fn copies_history(health: &Health, space: &SpaceId, seeders: &[String]) -> Vec<CopiesPoint> {
    let mut per: BTreeMap<i64, (usize, u64)> = BTreeMap::new();
    for r in health.of_space(&space.0) {
        let is_seeder = seeders.contains(&hex::encode(r.peer));
        for w in &r.windows {
            let p = per.entry(w.start_ms()).or_default();
            p.1 += w.bytes_in + w.bytes_out;
            if is_seeder && w.audits_passed > 0 && w.audits_failed == 0 {
                p.0 += 1;
            }
        }
    }
    per.into_iter().map(|(start_ms, (verified, bytes))| CopiesPoint { start_ms, verified, bytes }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures(devices: usize) -> Measures {
        Measures { devices, seeders: 1, agreements: 1, organisations: 1, share_ratio: None, under_target: 0 }
    }

    /// One point per window (a later report in the same window replaces it), in order even when
    /// the clock goes back, and a year of windows kept: the file stays bounded after a year of
    /// hourly reports.
    #[test]
    fn the_measures_keep_one_point_per_window_for_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let w = crate::health::WINDOW_MS;
        let t0 = 1_796_000_000_000 / w * w;
        assert_eq!(remember_measures(dir.path(), &measures(2), 1, t0 + 5).len(), 1);
        let p = remember_measures(dir.path(), &measures(3), 1, t0 + 3_600_000);
        assert_eq!((p.len(), p[0].devices), (1, 3), "the same window's newer report replaces it");
        let p = remember_measures(dir.path(), &measures(4), 1, t0 + w);
        assert_eq!(p.iter().map(|x| x.devices).collect::<Vec<_>>(), vec![3, 4]);
        let p = remember_measures(dir.path(), &measures(1), 1, t0 - w);
        assert_eq!(p.iter().map(|x| x.devices).collect::<Vec<_>>(), vec![1, 3, 4], "a clock set back stays in order");
        for h in 0..(366 * 24) {
            remember_measures(dir.path(), &measures(5), 2, t0 + 2 * w + h * 3_600_000);
        }
        let p = remember_measures(dir.path(), &measures(5), 2, t0 + 2 * w + 366 * 86_400_000);
        assert_eq!(p.len(), cobox_core::health::WINDOWS_KEPT);
        assert!(p.windows(2).all(|x| x[0].start_ms < x[1].start_ms));
        let bytes = std::fs::metadata(dir.path().join(MEASURES_FILE)).unwrap().len();
        assert!(bytes < 150 * cobox_core::health::WINDOWS_KEPT as u64, "{bytes} bytes for a year");
        // A damaged file begins anew rather than failing the report.
        std::fs::write(dir.path().join(MEASURES_FILE), b"{not json").unwrap();
        assert_eq!(remember_measures(dir.path(), &measures(6), 2, t0).len(), 1);
    }
}
