//! Agreements as a device sees them: propose, revoke and list across its ledgers, and the
//! share-ratio accounting. These read and write only the home's files (ledgers under their own
//! lock), so they work while the daemon runs.

use crate::codes::{PeerAddr, SeedCode};
use crate::error::Error;
use crate::home::Home;
use crate::ids::{DeviceId, SpaceId};
use crate::ledger::LedgerFile;
use crate::ledger::summary;
pub use crate::ledger::{AgreementSummary, AuditSummary, audit_summary};
use crate::space::SpaceInfo;
use cobox_agreements::{Agreement, Entry, LedgerView, Party, Revocation, State};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A ledger entry that is not honoured.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvalidSummary {
    /// The space whose ledger holds it.
    pub space: String,
    /// Its ledger key.
    pub key: String,
    /// The agreement it claims to concern.
    pub agreement: Option<String>,
    /// Why.
    pub reason: String,
}

/// `cobox agreement list`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AgreementList {
    /// Every agreement in every ledger on this device.
    pub agreements: Vec<AgreementSummary>,
    /// Entries shown invalid and not honoured.
    pub invalid: Vec<InvalidSummary>,
}

/// Each ledger on this device: (space, member name or None for a seed, ledger).
fn ledgers(root: &Path) -> Result<Vec<(SpaceId, Option<SpaceInfo>, LedgerFile)>, Error> {
    let mut out = Vec::new();
    for info in Home::spaces_at(root)? {
        let dir = crate::home::paths::space(root, &info.id);
        out.push((info.id, Some(info.clone()), LedgerFile::new(info.id, &dir)));
    }
    let seeds = crate::home::paths::seeds(root);
    if let Ok(rd) = std::fs::read_dir(&seeds) {
        for e in rd.flatten() {
            let Ok(id) = e.file_name().to_string_lossy().parse::<SpaceId>() else { continue };
            if e.path().join("seed.json").exists() {
                out.push((id, None, LedgerFile::new(id, &e.path())));
            }
        }
    }
    Ok(out)
}

/// Sign a proposal for a space and return it with the seed code for the seeder.
pub fn propose(
    root: &Path,
    space: &str,
    seeder: &PeerAddr,
    quota: u64,
    days: u32,
    terms: &str,
) -> Result<(AgreementSummary, SeedCode), Error> {
    let (info, dir, _) = Home::space_files(root, space)?;
    let device = Home::device_key_at(root)?;
    must_manage(&LedgerFile::new(info.id, &dir), &device, &info.name, "proposes agreements")?;
    let now = crate::now_ms();
    let mut nonce = [0u8; 16];
    crate::random_bytes(&mut nonce);
    let agreement = Agreement {
        space: info.id.0,
        owner: device.verifying_key().to_bytes(),
        seeder: seeder.device.0,
        quota,
        start_ms: now,
        end_ms: now.saturating_add(i64::from(days) * 86_400_000),
        terms: terms.to_owned(),
        nonce,
    };
    agreement.check_terms().map_err(|e| Error::Refused(e.to_string()))?;
    let id = agreement.id();
    let ledger = LedgerFile::new(info.id, &dir);
    ledger.insert(&Entry::propose(agreement, &device))?;
    // Named by id alone: where it was last reached (the address book, or pairing with it), so
    // the daemon's next round contacts it and the seeder countersigns there, as the guide says.
    let mut seeder = Home::with_known_addrs(root, seeder.clone())?;
    if seeder.addrs.is_empty()
        && let Some(paired) = crate::seeder_admin::seeders(root)?.into_iter().find(|p| p.seeder.device == seeder.device)
    {
        seeder = crate::seeder_admin::reach(root, &paired.seeder);
    }
    if !seeder.addrs.is_empty() {
        Home::remember_peer_at(root, &info.id, &seeder.device, &seeder.addrs)?;
    }
    let view = ledger.view(now)?;
    let v = view.agreements.iter().find(|a| a.id == id).ok_or_else(|| Error::Refused("proposal not stored".into()))?;
    let code = SeedCode {
        space: info.id,
        agreement: id.0,
        owner: PeerAddr { device: DeviceId(device.verifying_key().to_bytes()), addrs: Home::listening_at(root)? },
    };
    Ok((summary(v, Some(&info.name), "member", now), code))
}

/// The seed code of a proposal in one of this device's spaces, again: for the seeder's operator
/// who lost it. Only while it waits (an agreement taken or ended needs none).
pub fn seed_code(root: &Path, query: &str) -> Result<SeedCode, Error> {
    let now = crate::now_ms();
    let mut found = Vec::new();
    for (space, info, ledger) in ledgers(root)? {
        if info.is_none() {
            continue;
        }
        if let Ok(v) = ledger.view(now)?.find(query) {
            found.push((space, v.clone()));
        }
    }
    let (space, v) = match found.len() {
        1 => found.remove(0),
        0 => return Err(Error::Refused(format!("no agreement {query:?} in this device's spaces"))),
        _ => return Err(Error::Refused(format!("{query:?} matches several agreements; give more characters"))),
    };
    if v.state != State::Proposed {
        return Err(Error::Refused(format!(
            "agreement {} is {}: only a proposal waiting for its seeder has a seed code",
            v.id.short(),
            v.state
        )));
    }
    let owner = DeviceId(v.agreement.owner);
    let addrs = if owner.0 == Home::device_key_at(root)?.verifying_key().to_bytes() {
        Home::listening_at(root)?
    } else {
        // Another manager proposed it: the seeder reaches that device where it was last seen.
        Home::with_known_addrs(root, PeerAddr { device: owner, addrs: Vec::new() })?.addrs
    };
    Ok(SeedCode { space, agreement: v.id.0, owner: PeerAddr { device: owner, addrs } })
}

/// Every agreement in every ledger on this device.
pub fn list(root: &Path, now: i64) -> Result<AgreementList, Error> {
    let mut out = AgreementList::default();
    for (space, info, ledger) in ledgers(root)? {
        let view = ledger.view(now)?;
        let role = if info.is_some() { "member" } else { "seeder" };
        for v in &view.agreements {
            out.agreements.push(summary(v, info.as_ref().map(|i| i.name.as_str()), role, now));
        }
        for i in view.invalid {
            out.invalid.push(InvalidSummary {
                space: space.to_string(),
                key: i.key,
                agreement: i.agreement.map(|a| a.to_string()),
                reason: i.reason,
            });
        }
    }
    Ok(out)
}

/// Refused, before anything is signed, unless the roster makes `device` a manager of the space
/// (every member and seeder would refuse the entry otherwise).
fn must_manage(ledger: &LedgerFile, device: &ed25519_dalek::SigningKey, space: &str, what: &str) -> Result<(), Error> {
    let role = ledger.roster()?.role(&device.verifying_key().to_bytes());
    match role {
        Some(cobox_core::roster::Role::Manage) => Ok(()),
        Some(r) => Err(Error::Refused(format!("only a manager of space {space:?} {what}; this device's role is {r}"))),
        None => Err(Error::Refused(format!("only a manager of space {space:?} {what}; this device is not a member"))),
    }
}

/// Revoke an agreement (by id or prefix) as whichever party this device is.
pub fn revoke(root: &Path, query: &str) -> Result<AgreementSummary, Error> {
    let device = Home::device_key_at(root)?;
    let me = device.verifying_key().to_bytes();
    let now = crate::now_ms();
    let mut found = Vec::new();
    for (space, info, ledger) in ledgers(root)? {
        let view = ledger.view(now)?;
        if let Ok(v) = view.find(query) {
            found.push((space, info, ledger, v.clone()));
        }
    }
    let (_, info, ledger, v) = match found.len() {
        1 => found.remove(0),
        0 => return Err(Error::Refused(format!("no agreement {query:?}; `cobox agreement list` shows them"))),
        _ => return Err(Error::Refused(format!("{query:?} matches several agreements; give more characters"))),
    };
    if v.state == State::Invalid {
        return Err(Error::Refused("that agreement is invalid and was never honoured; nothing to revoke".into()));
    }
    // A revocation not yet in effect does not stop this one: the earliest counts.
    if v.state == State::Revoked {
        return Err(Error::Refused(format!("agreement {} is already revoked", v.id.short())));
    }
    let entry = match &info {
        Some(i) => {
            must_manage(&ledger, &device, &i.name, "revokes agreements")?;
            let r = Revocation { agreement: v.id, device: me, party: Party::Owner, time_ms: now };
            Entry::revoke(r, &device)
        }
        None if v.agreement.seeder == me => {
            let r = Revocation { agreement: v.id, device: me, party: Party::Seeder, time_ms: now };
            Entry::revoke(r, &device)
        }
        None => return Err(Error::Refused("this device is not a party to that agreement".into())),
    };
    ledger.insert(&entry)?;
    let view = ledger.view(now)?;
    let v = view.agreements.iter().find(|a| a.id == v.id).unwrap_or(&v);
    Ok(summary(v, info.as_ref().map(|i| i.name.as_str()), if info.is_some() { "member" } else { "seeder" }, now))
}

/// Bytes seeded with one peer, both ways.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default, PartialEq, Eq)]
pub struct PeerShare {
    /// Bytes this device stores for the peer's spaces.
    pub seeded_for_them: u64,
    /// Bytes the peer stores for this device's spaces (its last audited figure).
    pub seeded_for_us: u64,
}

/// `cobox stats`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default, PartialEq)]
pub struct Stats {
    /// Bytes this device seeds for others.
    pub seeded_for_others: u64,
    /// Bytes others seed for this device's spaces.
    pub seeded_by_others: u64,
    /// seeded_for_others / seeded_by_others (None when others seed nothing).
    pub share_ratio: Option<f64>,
    /// Per peer device (hex id).
    pub peers: BTreeMap<String, PeerShare>,
}

/// Share-ratio accounting from the ledgers and the seed stores' sizes. `seed_usage` gives the
/// stored bytes of a seeded space (the caller owns the stores).
pub fn stats(root: &Path, now: i64, seed_usage: &dyn Fn(&SpaceId) -> Option<u64>) -> Result<Stats, Error> {
    let me = Home::device_key_at(root)?.verifying_key().to_bytes();
    let mut st = Stats::default();
    for (space, info, ledger) in ledgers(root)? {
        let view: LedgerView = ledger.view(now)?;
        if info.is_some() {
            // Each seeder counts once per space, at its newest audited size.
            let mut per: BTreeMap<[u8; 32], u64> = BTreeMap::new();
            for v in view.agreements.iter().filter(|v| v.state == State::Active) {
                if let Some(a) = v.last_audit() {
                    per.insert(v.agreement.seeder, a.stored_bytes);
                }
            }
            for (seeder, bytes) in per {
                st.peers.entry(hex::encode(seeder)).or_default().seeded_for_us += bytes;
                st.seeded_by_others += bytes;
            }
        } else {
            let bytes = seed_usage(&space).unwrap_or(0);
            let owner = view
                .agreements
                .iter()
                .filter(|v| v.state != State::Invalid && v.agreement.seeder == me)
                .max_by_key(|v| v.agreement.start_ms)
                .map(|v| hex::encode(v.agreement.owner));
            if let Some(o) = owner {
                st.peers.entry(o).or_default().seeded_for_them += bytes;
            }
            st.seeded_for_others += bytes;
        }
    }
    st.share_ratio = (st.seeded_by_others > 0).then(|| st.seeded_for_others as f64 / st.seeded_by_others as f64);
    Ok(st)
}

/// One audit result with what it audited.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// The space.
    pub space: String,
    /// The agreement.
    pub agreement: String,
    /// The seeder audited.
    pub seeder: String,
    /// The result.
    pub audit: AuditSummary,
}

/// Every valid audit result in every ledger on this device, newest first.
pub fn audits(root: &Path, now: i64) -> Result<Vec<AuditEntry>, Error> {
    let mut out = Vec::new();
    for (space, _, ledger) in ledgers(root)? {
        for v in ledger.view(now)?.agreements {
            for a in &v.audits {
                out.push(AuditEntry {
                    space: space.to_string(),
                    agreement: v.id.to_string(),
                    seeder: hex::encode(v.agreement.seeder),
                    audit: audit_summary(a),
                });
            }
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.audit.time_ms));
    Ok(out)
}

/// The terms of the agreement a seed code names, in one line for the seeder's operator, or why
/// it cannot be countersigned (not in the owner's ledger, or invalid).
pub fn terms_line(view: &LedgerView, code: &SeedCode) -> Result<String, Error> {
    let refused = |why: String| Error::Refused(why);
    let id = cobox_agreements::AgreementId(code.agreement);
    let a = view.agreements.iter().find(|a| a.id == id).ok_or_else(|| {
        refused(format!("the owner's ledger holds no agreement {}: ask them to propose again", id.short()))
    })?;
    if let Some(p) = &a.problem {
        return Err(refused(format!("agreement {} is not valid: {p}", id.short())));
    }
    let t = &a.agreement;
    Ok(format!(
        "agreement {} from owner {}: hold up to {} for space {} from {} until {}{}",
        id.short(),
        &hex::encode(t.owner)[..8],
        crate::units::format_bytes(t.quota),
        code.space.short(),
        &crate::util::rfc3339(t.start_ms)[..10],
        &crate::util::rfc3339(t.end_ms)[..10],
        if t.terms.is_empty() { String::new() } else { format!("; terms: {}", crate::util::printable(&t.terms)) }
    ))
}
