//! The health record: what each peer did for each space, kept over time in 12-hour windows
//! (sessions and the bytes they moved, audits, recovery-share checks), and the audit and online
//! scores computed from it the way Storj's reputation is (a beta distribution with forgetting).
//!
//! Pure: events carry their time; the engine keeps the record in the home and saves it.
//!
//! A score starts at α = 1, β = 0 and on each event with outcome v (1 a success, 0 a failure)
//! becomes α ← λ·α + v, β ← λ·β + (1 − v), with λ = [`FORGET`]; the score is α / (α + β). Old
//! outcomes weigh λ^k after k newer ones, so a peer that recovers is forgiven over about 1 /
//! (1 − λ) = 20 events, and one failure after a long clean run costs about 5%.

use crate::roster::Key32;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Length of one window (ms): 12 hours.
pub const WINDOW_MS: i64 = 12 * 3600 * 1000;
/// Windows kept per peer and space: a year and a day. Older ones are dropped.
pub const WINDOWS_KEPT: usize = 732;
/// Records (peer, space) kept; past this the one heard of longest ago goes.
pub const RECORDS_KEPT: usize = 4096;
/// The forgetting factor λ of both scores.
pub const FORGET: f64 = 0.95;
/// The most bytes one window takes encoded (every counter at its largest): with
/// [`WINDOWS_KEPT`] windows a record stays under [`RECORD_MAX_BYTES`].
pub const WINDOW_MAX_BYTES: usize = 5 + 9 * 5 + 2 * 10 + 2 * 4;
/// The most bytes one (peer, space) record takes encoded, for a year of windows.
pub const RECORD_MAX_BYTES: usize = 32 + 32 + 3 * 11 + 4 * 8 + 3 + WINDOWS_KEPT * WINDOW_MAX_BYTES;
/// Format version of the encoded record.
const VERSION: u8 = 1;

/// Something that happened with a peer, for one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A sync session this device dialed: whether it worked, and the blob bytes each way.
    Session {
        /// It ended well.
        ok: bool,
        /// Bytes received from the peer.
        bytes_in: u64,
        /// Bytes sent to the peer.
        bytes_out: u64,
    },
    /// A storage audit of a seeder: passed, or how many challenged blobs it failed; or it did
    /// not reach the seeder (which judges only its online score).
    Audit {
        /// The seeder answered.
        reached: bool,
        /// Every challenge answered.
        passed: bool,
        /// Blobs it could not prove.
        blobs_failed: u32,
    },
    /// A recovery custodian was asked to prove its share.
    RecoveryCheck {
        /// It answered.
        reached: bool,
        /// It proved the share.
        proved: bool,
    },
}

/// A beta-distribution score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Weight of successes.
    pub alpha: f64,
    /// Weight of failures.
    pub beta: f64,
}

impl Default for Score {
    fn default() -> Self {
        Self { alpha: 1.0, beta: 0.0 }
    }
}

impl Score {
    /// One more outcome.
    pub fn update(&mut self, ok: bool) {
        let v = if ok { 1.0 } else { 0.0 };
        self.alpha = FORGET * self.alpha + v;
        self.beta = FORGET * self.beta + (1.0 - v);
    }

    /// α / (α + β), between 0 and 1.
    pub fn value(&self) -> f64 {
        let sum = self.alpha + self.beta;
        if sum > 0.0 { self.alpha / sum } else { 1.0 }
    }
}

/// What happened in one 12-hour window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Window {
    /// Which window: its start is `index * WINDOW_MS` since the epoch.
    pub index: u32,
    /// Sessions that worked.
    pub sessions_ok: u32,
    /// Sessions that failed (unreachable, refused, broken).
    pub sessions_failed: u32,
    /// Blob bytes received from the peer.
    pub bytes_in: u64,
    /// Blob bytes sent to the peer.
    pub bytes_out: u64,
    /// Audits passed.
    pub audits_passed: u32,
    /// Audits failed.
    pub audits_failed: u32,
    /// Blobs named in failed audits.
    pub blobs_failed: u32,
    /// Audits and recovery-share checks that did not reach the peer.
    pub unreached: u32,
    /// Recovery-share proofs given.
    pub recovery_ok: u32,
    /// Recovery-share checks failed.
    pub recovery_failed: u32,
    /// The audit score at the window's last event.
    pub audit_score: f32,
    /// The online score at the window's last event.
    pub online_score: f32,
}

impl Window {
    /// When the window starts (ms since the epoch).
    pub fn start_ms(&self) -> i64 {
        i64::from(self.index) * WINDOW_MS
    }
}

/// What one peer did for one space, over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The peer.
    pub peer: Key32,
    /// The space.
    pub space: Key32,
    /// When it was last heard from (a session, an audit or a proof that reached it).
    pub last_seen_ms: Option<i64>,
    /// When anything was last recorded.
    pub last_event_ms: i64,
    /// When it last passed an audit.
    pub last_audit_ok_ms: Option<i64>,
    /// The audit score (audits and recovery-share checks: does it keep what it holds?).
    pub audit: Score,
    /// The online score (sessions, audits and checks that reached it or not).
    pub online: Score,
    /// Windows, oldest first, at most [`WINDOWS_KEPT`], none older than a year before the newest.
    pub windows: VecDeque<Window>,
}

impl Record {
    fn new(peer: Key32, space: Key32, at_ms: i64) -> Self {
        Self {
            peer,
            space,
            last_seen_ms: None,
            last_event_ms: at_ms,
            last_audit_ok_ms: None,
            audit: Score::default(),
            online: Score::default(),
            windows: VecDeque::new(),
        }
    }

    /// The window holding `at_ms`, made if missing (in order; a time before the oldest kept
    /// gets none).
    fn window(&mut self, at_ms: i64) -> Option<&mut Window> {
        let index = u32::try_from(at_ms.max(0) / WINDOW_MS).unwrap_or(u32::MAX);
        let pos = match self.windows.binary_search_by_key(&index, |w| w.index) {
            Ok(p) => p,
            Err(p) => {
                if p == 0 && self.windows.len() >= WINDOWS_KEPT {
                    return None;
                }
                self.windows.insert(p, Window { index, ..Window::default() });
                p
            }
        };
        // A year and a day back from the newest, and never more than that many windows.
        let newest = self.windows.back().map_or(index, |w| w.index);
        let mut pos = pos;
        while self.windows.len() > WINDOWS_KEPT
            || self.windows.front().is_some_and(|w| newest - w.index >= WINDOWS_KEPT as u32)
        {
            self.windows.pop_front();
            pos = pos.checked_sub(1)?;
        }
        self.windows.get_mut(pos)
    }

    /// Add one event at `at_ms`.
    pub fn record(&mut self, event: Event, at_ms: i64) {
        self.last_event_ms = self.last_event_ms.max(at_ms);
        let reached = match event {
            Event::Session { ok, .. } => ok,
            Event::Audit { reached, .. } => reached,
            Event::RecoveryCheck { reached, .. } => reached,
        };
        self.online.update(reached);
        if reached {
            self.last_seen_ms = Some(self.last_seen_ms.map_or(at_ms, |t| t.max(at_ms)));
        }
        match event {
            Event::Audit { reached: false, .. } => {}
            Event::Audit { passed, .. } => {
                self.audit.update(passed);
                if passed {
                    self.last_audit_ok_ms = Some(self.last_audit_ok_ms.map_or(at_ms, |t| t.max(at_ms)));
                }
            }
            // A custodian that answers without proving its share lost what it was given to
            // keep; one not reached says nothing of what it keeps.
            Event::RecoveryCheck { reached: true, proved } => self.audit.update(proved),
            Event::RecoveryCheck { reached: false, .. } => {}
            Event::Session { .. } => {}
        }
        let (audit, online) = (self.audit.value() as f32, self.online.value() as f32);
        let Some(w) = self.window(at_ms) else { return };
        match event {
            Event::Session { ok, bytes_in, bytes_out } => {
                if ok {
                    w.sessions_ok = w.sessions_ok.saturating_add(1);
                } else {
                    w.sessions_failed = w.sessions_failed.saturating_add(1);
                }
                w.bytes_in = w.bytes_in.saturating_add(bytes_in);
                w.bytes_out = w.bytes_out.saturating_add(bytes_out);
            }
            Event::Audit { reached: false, .. } | Event::RecoveryCheck { reached: false, .. } => {
                w.unreached = w.unreached.saturating_add(1)
            }
            Event::Audit { passed: true, .. } => w.audits_passed = w.audits_passed.saturating_add(1),
            Event::Audit { passed: false, blobs_failed, .. } => {
                w.audits_failed = w.audits_failed.saturating_add(1);
                w.blobs_failed = w.blobs_failed.saturating_add(blobs_failed);
            }
            Event::RecoveryCheck { proved: true, .. } => w.recovery_ok = w.recovery_ok.saturating_add(1),
            Event::RecoveryCheck { proved: false, .. } => w.recovery_failed = w.recovery_failed.saturating_add(1),
        }
        w.audit_score = audit;
        w.online_score = online;
    }

    /// Totals over the windows starting at or after `since_ms`.
    pub fn totals_since(&self, since_ms: i64) -> Window {
        let mut t = Window::default();
        for w in self.windows.iter().filter(|w| w.start_ms() + WINDOW_MS > since_ms) {
            t.sessions_ok += w.sessions_ok;
            t.sessions_failed += w.sessions_failed;
            t.bytes_in += w.bytes_in;
            t.bytes_out += w.bytes_out;
            t.audits_passed += w.audits_passed;
            t.audits_failed += w.audits_failed;
            t.blobs_failed += w.blobs_failed;
            t.unreached += w.unreached;
            t.recovery_ok += w.recovery_ok;
            t.recovery_failed += w.recovery_failed;
        }
        t.audit_score = self.audit.value() as f32;
        t.online_score = self.online.value() as f32;
        t
    }
}

/// Why a health record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Not a health record, or a newer format.
    #[error("not a health record this version reads: {0}")]
    Malformed(String),
}

/// Every peer's record, per space.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    records: BTreeMap<(Key32, Key32), Record>,
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    version: u8,
    records: Vec<Record>,
}

impl Health {
    /// Add one event with `peer` for `space` at `at_ms`.
    pub fn record(&mut self, peer: Key32, space: Key32, event: Event, at_ms: i64) {
        if !self.records.contains_key(&(peer, space))
            && self.records.len() >= RECORDS_KEPT
            && let Some(oldest) = self.records.values().min_by_key(|r| r.last_event_ms).map(|r| (r.peer, r.space))
        {
            self.records.remove(&oldest);
        }
        self.records.entry((peer, space)).or_insert_with(|| Record::new(peer, space, at_ms)).record(event, at_ms);
    }

    /// The record of `peer` for `space`.
    pub fn get(&self, peer: &Key32, space: &Key32) -> Option<&Record> {
        self.records.get(&(*peer, *space))
    }

    /// Every record, by peer then space.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Every record of one space.
    pub fn of_space<'a>(&'a self, space: &'a Key32) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.values().filter(move |r| r.space == *space)
    }

    /// Encoded for the home.
    pub fn encode(&self) -> Result<Vec<u8>, HealthError> {
        let e = Encoded { version: VERSION, records: self.records.values().cloned().collect() };
        postcard::to_stdvec(&e).map_err(|e| HealthError::Malformed(e.to_string()))
    }

    /// Decoded, bounded: no more records or windows than are ever kept.
    pub fn decode(bytes: &[u8]) -> Result<Self, HealthError> {
        if bytes.len() > RECORDS_KEPT * RECORD_MAX_BYTES {
            return Err(HealthError::Malformed(format!("{} bytes is more than a record ever holds", bytes.len())));
        }
        let e: Encoded = postcard::from_bytes(bytes).map_err(|e| HealthError::Malformed(e.to_string()))?;
        if e.version != VERSION {
            return Err(HealthError::Malformed(format!("format version {}", e.version)));
        }
        if e.records.len() > RECORDS_KEPT {
            return Err(HealthError::Malformed(format!("{} records", e.records.len())));
        }
        let mut records = BTreeMap::new();
        for r in e.records {
            if r.windows.len() > WINDOWS_KEPT
                || r.windows.iter().zip(r.windows.iter().skip(1)).any(|(a, b)| a.index >= b.index)
            {
                return Err(HealthError::Malformed("a record's windows are out of order or too many".into()));
            }
            records.insert((r.peer, r.space), r);
        }
        Ok(Self { records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Key32 = [1; 32];
    const S: Key32 = [2; 32];
    const DAY: i64 = 24 * 3600 * 1000;
    const T0: i64 = 1_780_000_000_000;

    #[test]
    fn scores_follow_the_beta_formula_with_forgetting() {
        let mut h = Health::default();
        // Audits: pass, pass, fail, pass (α, β from 1, 0).
        for (i, passed) in [true, true, false, true].into_iter().enumerate() {
            h.record(
                P,
                S,
                Event::Audit { reached: true, passed, blobs_failed: u32::from(!passed) * 3 },
                T0 + i as i64 * 1000,
            );
        }
        // By hand: α = ((1·.95 + 1)·.95 + 1)·.95·.95 + 1 = 3.5744, β = .95 (the failure, once forgotten).
        let alpha = ((0.95_f64 + 1.0) * 0.95 + 1.0) * 0.95 * 0.95 + 1.0;
        let beta = 0.95_f64;
        let r = h.get(&P, &S).unwrap();
        assert!((r.audit.alpha - alpha).abs() < 1e-9 && (r.audit.beta - beta).abs() < 1e-9, "{:?}", r.audit);
        assert!((r.audit.value() - alpha / (alpha + beta)).abs() < 1e-12);
        assert!((r.audit.value() - 0.7900).abs() < 1e-3, "{}", r.audit.value());
        // Every audit reached the seeder: online stays at 1.
        assert_eq!(r.online.value(), 1.0);
        let w = r.totals_since(0);
        assert_eq!((w.audits_passed, w.audits_failed, w.blobs_failed), (3, 1, 3));
        assert_eq!(r.last_audit_ok_ms, Some(T0 + 3000));
    }

    #[test]
    fn sessions_make_the_online_score_and_fill_windows() {
        let mut h = Health::default();
        // Two good sessions, then three failures half a day apart each.
        h.record(P, S, Event::Session { ok: true, bytes_in: 100, bytes_out: 7 }, T0);
        h.record(P, S, Event::Session { ok: true, bytes_in: 50, bytes_out: 0 }, T0 + 1);
        for i in 1..=3 {
            h.record(P, S, Event::Session { ok: false, bytes_in: 0, bytes_out: 0 }, T0 + i * WINDOW_MS);
        }
        let r = h.get(&P, &S).unwrap();
        // α = ((1·0.95 + 1)·0.95 + 1)·0.95³ = 2.4457, β = 0.95² + 0.95 + 1 = 2.8525.
        let alpha = ((0.95_f64 + 1.0) * 0.95 + 1.0) * 0.95_f64.powi(3);
        let beta = 0.95_f64.powi(2) + 0.95 + 1.0;
        assert!((r.online.value() - alpha / (alpha + beta)).abs() < 1e-12, "{}", r.online.value());
        assert!((r.online.value() - 0.4616).abs() < 1e-3);
        assert_eq!(r.audit.value(), 1.0, "sessions say nothing of what it keeps");
        assert_eq!(r.last_seen_ms, Some(T0 + 1));
        assert_eq!(r.windows.len(), 4);
        assert_eq!((r.windows[0].sessions_ok, r.windows[0].bytes_in, r.windows[0].bytes_out), (2, 150, 7));
        assert_eq!(r.windows[3].sessions_failed, 1);
        assert!((f64::from(r.windows[3].online_score) - r.online.value()).abs() < 1e-6);
        // From a day after the first session: the last two windows.
        let day = r.totals_since(T0 + 2 * WINDOW_MS);
        assert_eq!((day.sessions_ok, day.sessions_failed), (0, 2));
    }

    #[test]
    fn a_recovery_check_counts_towards_keeping_when_it_reached_the_custodian() {
        let mut h = Health::default();
        h.record(P, S, Event::RecoveryCheck { reached: true, proved: true }, T0);
        h.record(P, S, Event::RecoveryCheck { reached: false, proved: false }, T0 + 1);
        let r = h.get(&P, &S).unwrap();
        // Not reached: online falls, what it keeps is not judged.
        assert!((r.online.value() - 1.95 * 0.95 / (1.95 * 0.95 + 1.0)).abs() < 1e-12);
        assert_eq!(r.audit.value(), 1.0);
        // Reached, and the share is gone: it failed to keep it.
        h.record(P, S, Event::RecoveryCheck { reached: true, proved: false }, T0 + 2);
        let r = h.get(&P, &S).unwrap();
        let (alpha, beta) = ((0.95_f64 + 1.0) * 0.95, 1.0);
        assert!((r.audit.value() - alpha / (alpha + beta)).abs() < 1e-12);
        assert_eq!((r.windows[0].recovery_ok, r.windows[0].recovery_failed, r.windows[0].unreached), (1, 1, 1));
        // An audit that did not reach a seeder judges only whether it is online.
        let before = r.audit;
        h.record(P, S, Event::Audit { reached: false, passed: false, blobs_failed: 0 }, T0 + 3);
        let r = h.get(&P, &S).unwrap();
        assert_eq!(r.audit, before);
        assert_eq!((r.windows[0].audits_failed, r.windows[0].unreached), (0, 2));
    }

    #[test]
    fn a_simulated_year_stays_within_its_bound_and_round_trips() {
        let mut h = Health::default();
        // A session every ten minutes and an audit every hour, with large byte counts, for two
        // years: only a year and a day of windows stays.
        let mut t = T0;
        while t < T0 + 2 * 365 * DAY {
            h.record(P, S, Event::Session { ok: t % 7 != 0, bytes_in: 1 << 40, bytes_out: 1 << 33 }, t);
            if t % (3600 * 1000) == 0 {
                h.record(P, S, Event::Audit { reached: true, passed: t % 5 != 0, blobs_failed: 1000 }, t);
            }
            t += 600 * 1000;
        }
        let r = h.get(&P, &S).unwrap();
        assert_eq!(r.windows.len(), WINDOWS_KEPT);
        assert!(r.windows.back().unwrap().index - r.windows.front().unwrap().index < WINDOWS_KEPT as u32);
        let bytes = h.encode().unwrap();
        println!("a year of one peer's record: {} bytes", bytes.len());
        assert!(bytes.len() <= RECORD_MAX_BYTES, "{} bytes, bound {RECORD_MAX_BYTES}", bytes.len());
        // About 23 KiB per peer and space per year in practice (under the 56 KiB bound).
        assert!(bytes.len() < 40 * 1024, "{}", bytes.len());
        assert_eq!(Health::decode(&bytes).unwrap(), h);
        // An event older than every window kept is counted in the scores but has no window.
        h.record(P, S, Event::Session { ok: true, bytes_in: 1, bytes_out: 1 }, T0);
        assert_eq!(h.get(&P, &S).unwrap().windows.len(), WINDOWS_KEPT);
    }

    #[test]
    fn records_are_bounded_and_garbage_is_refused() {
        let mut h = Health::default();
        for i in 0..(RECORDS_KEPT + 10) {
            let mut peer = [0u8; 32];
            peer[..8].copy_from_slice(&(i as u64).to_le_bytes());
            h.record(peer, S, Event::Session { ok: true, bytes_in: 0, bytes_out: 0 }, T0 + i as i64);
        }
        assert_eq!(h.records().count(), RECORDS_KEPT);
        assert!(h.get(&[0; 32], &S).is_none(), "the oldest went");
        assert!(Health::decode(b"\x02garbage").is_err());
        assert!(Health::decode(&[]).is_err());
        for n in 0..64u8 {
            let _ = Health::decode(&[1, n, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
    }
}
