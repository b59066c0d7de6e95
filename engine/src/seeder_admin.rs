//! Seeder administration, as files in the home: on a seeder, its administrators, its pending
//! pairing secret and its standing policy; on an owner's device, the seeders it administers.
//! Files only, so the CLI writes them beside a running daemon, which reads them per request.

use crate::admin::{PairCode, Policy};
use crate::codes::PeerAddr;
use crate::error::{Error, IoContext};
use crate::ids::DeviceId;
use crate::util::read_json;
use crate::util::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long a pairing code works: long enough to carry it to the other device, short enough
/// that a code left in a shell history is dead by the next day.
pub const PAIRING_TTL_MS: i64 = 24 * 3600 * 1000;

/// A device allowed to administer this seeder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// The device.
    pub device: DeviceId,
    /// What it called itself when it paired ("" when named by `--admin`).
    pub name: String,
    /// When it was paired (ms since the epoch).
    pub since_ms: i64,
}

/// A seeder this device administers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedSeeder {
    /// The seeder's device and where it was reached.
    pub seeder: PeerAddr,
    /// When it was paired (ms since the epoch).
    pub paired_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// BLAKE3 of the secret: the file alone does not pair anyone.
    hash: String,
    made_ms: i64,
}

fn admins_path(root: &Path) -> PathBuf {
    root.join("admins.json")
}
fn pairing_path(root: &Path) -> PathBuf {
    root.join("pairing.json")
}
fn policy_path(root: &Path) -> PathBuf {
    root.join("seed-policy.json")
}
fn seeders_path(root: &Path) -> PathBuf {
    root.join("seeders.json")
}
fn names_path(root: &Path) -> PathBuf {
    root.join("device-names.json")
}

/// The longest name this device gives another device, in bytes.
pub const MAX_LOCAL_NAME: usize = 64;

/// Names this device gave devices no roster names (seeders, named when paired or proposed
/// to), by device id (hex): for this device's eyes only, never sent.
pub fn local_names(root: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
    read_json(&names_path(root))
}

/// Call `device` `name` on this device ("" forgets the name). A name is trimmed, at most
/// [`MAX_LOCAL_NAME`] bytes, without control characters.
pub fn set_local_name(root: &Path, device: DeviceId, name: &str) -> Result<(), Error> {
    let name = name.trim();
    if name.len() > MAX_LOCAL_NAME || name.chars().any(char::is_control) {
        return Err(Error::Refused(format!(
            "a device's name is at most {MAX_LOCAL_NAME} bytes, without control characters"
        )));
    }
    let mut all = local_names(root)?;
    if name.is_empty() {
        all.remove(&device.to_string());
    } else {
        all.insert(device.to_string(), name.to_owned());
    }
    write(&names_path(root), &all)
}

fn write<T: Serialize>(path: &Path, v: &T) -> Result<(), Error> {
    write_atomic(path, &crate::error::json("an administration file", v)?)
}

/// This seeder's administrators.
pub fn admins(root: &Path) -> Result<Vec<Admin>, Error> {
    read_json(&admins_path(root))
}

/// Whether `device` may administer this seeder.
pub fn is_admin(root: &Path, device: &DeviceId) -> Result<bool, Error> {
    Ok(admins(root)?.iter().any(|a| a.device == *device))
}

/// Make `device` an administrator (again: its name is updated).
pub fn add_admin(root: &Path, device: DeviceId, name: &str, now_ms: i64) -> Result<(), Error> {
    let mut all = admins(root)?;
    all.retain(|a| a.device != device);
    all.push(Admin { device, name: name.to_owned(), since_ms: now_ms });
    write(&admins_path(root), &all)
}

/// Stop `device` administering this seeder; false when it did not.
pub fn remove_admin(root: &Path, device: &DeviceId) -> Result<bool, Error> {
    let mut all = admins(root)?;
    let before = all.len();
    all.retain(|a| a.device != *device);
    write(&admins_path(root), &all)?;
    Ok(all.len() != before)
}

/// A new pairing code for this seeder at `addrs`; it replaces any earlier one.
pub fn new_pairing(root: &Path, me: DeviceId, addrs: Vec<String>, now_ms: i64) -> Result<String, Error> {
    let mut secret = [0u8; 32];
    crate::random_bytes(&mut secret);
    let code = PairCode { seeder: PeerAddr { device: me, addrs }, secret };
    let text = code.encode().map_err(|e| Error::Refused(e.to_string()))?;
    write(&pairing_path(root), &Pending { hash: blake3::hash(&secret).to_hex().to_string(), made_ms: now_ms })?;
    Ok(text)
}

/// Pair `device` if `secret` is the pending code's, within its day; the code is used up.
pub fn redeem_pairing(root: &Path, secret: &[u8; 32], device: DeviceId, name: &str, now_ms: i64) -> Result<(), Error> {
    let Some(p) = read_json::<Option<Pending>>(&pairing_path(root))? else {
        return Err(Error::Refused("this seeder has no pairing code open; its operator makes one".into()));
    };
    // Compared as hashes of the secret, so the check takes the same time whatever was sent.
    if blake3::hash(secret).to_hex().as_str() != p.hash {
        return Err(Error::Refused("the pairing code is not this seeder's current one".into()));
    }
    if now_ms > p.made_ms.saturating_add(PAIRING_TTL_MS) {
        return Err(Error::Refused("the pairing code expired (they last a day); ask for a new one".into()));
    }
    std::fs::remove_file(pairing_path(root)).at(pairing_path(root))?;
    add_admin(root, device, name, now_ms)
}

/// The largest quota countersigned by itself when nobody said (`--max-quota`).
pub const DEFAULT_MAX_QUOTA: u64 = 10 << 30;

/// An operator name as `--operator` takes it: trimmed, at most
/// [`cobox_agreements::MAX_OPERATOR`] bytes ("" stops telling one).
pub fn parse_operator(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() > cobox_agreements::MAX_OPERATOR {
        return Err(format!(
            "an operator name is at most {} bytes; this one is {}",
            cobox_agreements::MAX_OPERATOR,
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("an operator name has no control characters".into());
    }
    Ok(s.to_owned())
}

/// The policy of a seeder nobody set one for: countersign for nobody by itself.
pub fn default_policy() -> Policy {
    Policy { seed_for: Vec::new(), max_quota: DEFAULT_MAX_QUOTA, operator: String::new() }
}

/// The policy a daemon starts from: the standing one, or the default.
pub fn standing_policy(root: &Path) -> Result<Policy, Error> {
    Ok(policy(root)?.unwrap_or_else(default_policy))
}

/// The standing policy set by an administrator or `cobox up`, if any was.
pub fn policy(root: &Path) -> Result<Option<Policy>, Error> {
    read_json(&policy_path(root))
}

/// Record the standing policy (the next `cobox up` starts from it).
pub fn set_policy(root: &Path, p: &Policy) -> Result<(), Error> {
    write(&policy_path(root), p)
}

/// The seeders this device administers.
pub fn seeders(root: &Path) -> Result<Vec<PairedSeeder>, Error> {
    read_json(&seeders_path(root))
}

/// Remember a seeder this device paired with (its addresses refreshed when paired again).
pub fn remember_seeder(root: &Path, seeder: PeerAddr, now_ms: i64) -> Result<(), Error> {
    let mut all = seeders(root)?;
    all.retain(|s| s.seeder.device != seeder.device);
    all.push(PairedSeeder { seeder, paired_ms: now_ms });
    write(&seeders_path(root), &all)
}

/// Where to reach a seeder: what the address book learned since pairing (it moves when it
/// restarts on another port), then the addresses it was paired at.
pub fn reach(root: &Path, seeder: &PeerAddr) -> PeerAddr {
    let mut p = seeder.clone();
    if let Ok(book) = crate::home::Home::peers_at(root)
        && let Some(known) = book.get(&seeder.device)
    {
        let mut addrs = known.clone();
        addrs.extend(p.addrs.into_iter().filter(|a| !known.contains(a)));
        p.addrs = addrs;
    }
    p
}

/// A paired seeder by id or id prefix (4 characters or more).
pub fn find_seeder(root: &Path, query: &str) -> Result<PairedSeeder, Error> {
    let all = seeders(root)?;
    let q = query.trim().to_ascii_lowercase();
    let hits: Vec<&PairedSeeder> =
        all.iter().filter(|s| q.len() >= 4 && s.seeder.device.to_string().starts_with(&q)).collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Refused(format!(
            "{query:?} is not a seeder this device administers: pair first (cobox seeder pair CODE)"
        ))),
        _ => Err(Error::Ambiguous(query.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name given here is kept, replaced, forgotten with "", and a bad one refused.
    #[test]
    fn a_seeder_named_here_keeps_its_name() {
        let root = tempfile::tempdir().unwrap();
        let d = DeviceId([7; 32]);
        set_local_name(root.path(), d, "  Rivers' Pi ").unwrap();
        assert_eq!(local_names(root.path()).unwrap().get(&d.to_string()).map(String::as_str), Some("Rivers' Pi"));
        assert!(set_local_name(root.path(), d, &"x".repeat(65)).is_err());
        assert!(set_local_name(root.path(), d, "a\nb").is_err());
        assert_eq!(local_names(root.path()).unwrap().get(&d.to_string()).map(String::as_str), Some("Rivers' Pi"));
        set_local_name(root.path(), d, "").unwrap();
        assert!(local_names(root.path()).unwrap().is_empty());
    }

    #[test]
    fn a_pairing_code_pairs_once_within_its_day() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path();
        let code = new_pairing(root, DeviceId([1; 32]), vec!["127.0.0.1:1".into()], 1000).unwrap();
        let code = PairCode::parse(&code).unwrap();
        let other = [9u8; 32];
        assert!(redeem_pairing(root, &other, DeviceId([2; 32]), "x", 1000).is_err());
        let late = redeem_pairing(root, &code.secret, DeviceId([2; 32]), "x", 1000 + PAIRING_TTL_MS + 1);
        assert!(late.unwrap_err().to_string().contains("expired"));
        redeem_pairing(root, &code.secret, DeviceId([2; 32]), "laptop", 2000).unwrap();
        assert!(is_admin(root, &DeviceId([2; 32])).unwrap());
        let again = redeem_pairing(root, &code.secret, DeviceId([3; 32]), "y", 2000);
        assert!(again.unwrap_err().to_string().contains("no pairing code open"));
        assert!(!is_admin(root, &DeviceId([3; 32])).unwrap());
        assert!(remove_admin(root, &DeviceId([2; 32])).unwrap());
        assert!(!is_admin(root, &DeviceId([2; 32])).unwrap());
    }
}
