//! Administering a seeder from an owner's device: the pairing code, and the requests and answers
//! of the `cobox/admin/1` protocol (one request per QUIC stream, postcard both ways).
//!
//! A seeder answers only devices it has paired: named by its operator (`cobox up --admin ID`), or
//! that showed the one-use secret of a pairing code the seeder printed. The device is who the
//! QUIC connection's TLS proves it to be; nothing in a request names its sender.

use crate::codes::{CodeError, PeerAddr};
use crate::ids::{DeviceId, SpaceId};
use serde::{Deserialize, Serialize};

/// The admin protocol's ALPN.
/// Version 2: an agreement's state is an enum on the wire (version 1 sent its name as text).
pub const ALPN: &[u8] = b"cobox/admin/3";
/// Text every pairing code starts with.
pub const PAIR_PREFIX: &str = "cobox-pair-";
/// Longest request a seeder reads: a policy with 100 owners fits many times over.
pub const MAX_REQUEST: usize = 16 * 1024;
/// Longest answer a device reads: a report of thousands of spaces.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Events (errors, remote actions) a report carries, newest last.
pub const MAX_EVENTS: usize = 50;

/// What a pairing code carries: where the seeder is, and the secret that pairs one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCode {
    /// The seeder's device and addresses.
    pub seeder: PeerAddr,
    /// Shown once by the pairing device; the seeder keeps only its hash.
    pub secret: [u8; 32],
}

impl PairCode {
    /// Encode as text.
    pub fn encode(&self) -> Result<String, CodeError> {
        crate::codes::encode_code(PAIR_PREFIX, crate::codes::KIND_PAIR, self)
    }

    /// Parse a code, with an error that says what to do.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        crate::codes::parse_code(text, "pairing", PAIR_PREFIX, crate::codes::KIND_PAIR)
    }
}

/// Ids as hex in JSON (what a script reads from `cobox seeder status --json`), as bytes on
/// the wire (postcard).
mod hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub(super) fn serialize<T: Display + Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(v) } else { v.serialize(s) }
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr + Deserialize<'de>,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        if d.is_human_readable() {
            String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
        } else {
            T::deserialize(d)
        }
    }

    /// The same for a list of ids.
    pub(super) mod list {
        use super::*;

        pub(in crate::admin) fn serialize<T: Display + Serialize, S: Serializer>(
            v: &[T],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() { s.collect_seq(v.iter().map(ToString::to_string)) } else { v.serialize(s) }
        }

        pub(in crate::admin) fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
        where
            T: FromStr + Deserialize<'de>,
            T::Err: Display,
            D: Deserializer<'de>,
        {
            if d.is_human_readable() {
                Vec::<String>::deserialize(d)?.iter().map(|x| x.parse().map_err(serde::de::Error::custom)).collect()
            } else {
                Vec::<T>::deserialize(d)
            }
        }
    }
}

/// A seeder's standing policy: whose proposals it countersigns by itself, and up to what quota.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Owner devices whose proposals are countersigned without asking (`--seed-for`).
    #[serde(with = "hex::list")]
    pub seed_for: Vec<DeviceId>,
    /// The largest quota countersigned by itself, in bytes (`--max-quota`).
    pub max_quota: u64,
    /// Who runs the seeder (`--operator`), told to the owners it seeds for in a signed note
    /// beside each agreement; empty: not told.
    #[serde(default)]
    pub operator: String,
}

/// A request from a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Pair this device with the secret from a pairing code, under a name for the seeder's log.
    Pair {
        /// The code's secret.
        secret: [u8; 32],
        /// The device's name, as its owner calls it.
        name: String,
    },
    /// What the seeder holds and how it is doing.
    Report,
    /// Replace the standing policy.
    SetPolicy(Policy),
}

/// One agreement a seeder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementLine {
    /// The agreement id (hex).
    pub id: String,
    /// The owner device that proposed it.
    #[serde(with = "hex")]
    pub owner: DeviceId,
    /// Where it stands (in JSON, its lowercase name).
    pub state: cobox_agreements::State,
    /// Bytes agreed.
    pub quota: u64,
    /// When it ends (ms since the epoch).
    pub expires_ms: i64,
}

/// The last audit of a space's copy on this seeder, as its ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Blobs challenged and proved.
    pub challenged: u32,
    /// Blobs proved.
    pub passed: u32,
}

/// One space a seeder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSpace {
    /// The space (its public key: all a seeder knows of it).
    #[serde(with = "hex")]
    pub space: SpaceId,
    /// Bytes of sealed blobs held.
    pub bytes: u64,
    /// Sealed blobs held.
    pub blobs: u64,
    /// Its agreements with this seeder.
    pub agreements: Vec<AgreementLine>,
    /// The newest audit recorded.
    pub last_audit: Option<AuditLine>,
}

/// Quota use per owner, across every space it has this seeder hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerUse {
    /// The owner device.
    #[serde(with = "hex")]
    pub owner: DeviceId,
    /// Bytes held for it.
    pub used: u64,
    /// Bytes its active agreements allow.
    pub quota: u64,
}

/// Something that happened on the seeder, with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// What, in words.
    pub text: String,
}

/// What a seeder tells its administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The seeder's device.
    #[serde(with = "hex")]
    pub device: DeviceId,
    /// Bytes its seeds take on disk.
    pub held_bytes: u64,
    /// Free bytes on the disk holding its home (None: could not be read).
    pub disk_free: Option<u64>,
    /// Its standing policy.
    pub policy: Policy,
    /// The spaces it holds.
    pub spaces: Vec<HeldSpace>,
    /// Quota use per owner.
    pub owners: Vec<OwnerUse>,
    /// Recent errors (failed sessions, refusals), newest last.
    pub errors: Vec<Event>,
    /// Recent remote actions by administrators, and refused attempts, newest last.
    pub actions: Vec<Event>,
    /// Since when it has refused blobs for want of disk (None: it stored the last ones offered).
    pub full_since_ms: Option<i64>,
}

/// Free bytes under which a seeder counts as full even before it refused a blob.
pub const FULL_BELOW: u64 = 64 << 20;

impl Report {
    /// Whether the seeder is full: it refused blobs for want of disk, or has almost none left.
    pub fn full(&self) -> bool {
        self.full_since_ms.is_some() || self.disk_free.is_some_and(|f| f < FULL_BELOW)
    }
}

/// A seeder's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The device is now an administrator.
    Paired,
    /// The report asked for.
    Report(Report),
    /// The policy now in force.
    Policy(Policy),
    /// Refused, with the reason.
    Refused(String),
}

/// Why bytes are not a request or a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    /// Longer than the limit.
    #[error("an admin message of {0} bytes is over the {1}-byte limit")]
    TooLong(usize, usize),
    /// Not a message this version knows.
    #[error("not an admin message this CoBox understands: {0}")]
    Malformed(String),
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, AdminError> {
    if bytes.len() > max {
        return Err(AdminError::TooLong(bytes.len(), max));
    }
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| AdminError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(AdminError::Malformed("trailing bytes".into()));
    }
    Ok(v)
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // postcard into a Vec fails only on types serde cannot describe; these are all plain.
    postcard::to_stdvec(v).unwrap_or_default()
}

impl Request {
    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// A request from a peer's bytes, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, AdminError> {
        decode(bytes, MAX_REQUEST)
    }
}

impl Response {
    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// A response from a seeder's bytes, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, AdminError> {
        decode(bytes, MAX_RESPONSE)
    }
}

/// Quota use per owner from the spaces held: bytes held for each owner (a space with agreements
/// from several owners counts for each), against the quotas of its active agreements.
pub fn owner_use(spaces: &[HeldSpace]) -> Vec<OwnerUse> {
    let mut by: std::collections::BTreeMap<DeviceId, OwnerUse> = Default::default();
    for s in spaces {
        let mut counted = std::collections::BTreeSet::new();
        for a in &s.agreements {
            let e = by.entry(a.owner).or_insert(OwnerUse { owner: a.owner, used: 0, quota: 0 });
            if a.state == cobox_agreements::State::Active {
                e.quota = e.quota.saturating_add(a.quota);
            }
            if counted.insert(a.owner) {
                e.used = e.used.saturating_add(s.bytes);
            }
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cobox_agreements::State;

    fn report() -> Report {
        let owner = DeviceId([7; 32]);
        let line = |state, quota| AgreementLine { id: "ab".into(), owner, state, quota, expires_ms: 9 };
        Report {
            device: DeviceId([1; 32]),
            held_bytes: 300,
            disk_free: Some(5 << 30),
            policy: Policy { seed_for: vec![owner], max_quota: 10, operator: "Rivers".into() },
            spaces: vec![
                HeldSpace {
                    space: SpaceId([2; 32]),
                    bytes: 100,
                    blobs: 3,
                    agreements: vec![line(State::Active, 1000), line(State::Expired, 50)],
                    last_audit: Some(AuditLine { at_ms: 5, challenged: 4, passed: 4 }),
                },
                HeldSpace {
                    space: SpaceId([3; 32]),
                    bytes: 200,
                    blobs: 1,
                    agreements: vec![line(State::Active, 500)],
                    last_audit: None,
                },
            ],
            owners: Vec::new(),
            errors: vec![Event { at_ms: 1, text: "x".into() }],
            actions: Vec::new(),
            full_since_ms: None,
        }
    }

    #[test]
    fn messages_round_trip_and_bounds_hold() {
        let r = Response::Report(report());
        assert_eq!(Response::decode(&r.encode()), Ok(r.clone()));
        // JSON (a script's view) has ids as hex, and reads them back.
        let Response::Report(rep) = &r else { unreachable!() };
        let json = serde_json::to_value(rep).unwrap();
        assert_eq!(json["device"], DeviceId([1; 32]).to_string());
        assert_eq!(json["policy"]["seed_for"][0], DeviceId([7; 32]).to_string());
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), *rep);
        let q = Request::SetPolicy(Policy {
            seed_for: vec![DeviceId([9; 32])],
            max_quota: 1 << 40,
            operator: String::new(),
        });
        assert_eq!(Request::decode(&q.encode()), Ok(q.clone()));
        let mut long = q.encode();
        long.push(0);
        assert!(matches!(Request::decode(&long), Err(AdminError::Malformed(_))));
        assert!(matches!(Request::decode(&vec![0; MAX_REQUEST + 1]), Err(AdminError::TooLong(..))));
        assert!(matches!(Request::decode(&[200, 1, 2]), Err(AdminError::Malformed(_))));
    }

    #[test]
    fn owner_use_counts_each_space_once_per_owner_against_active_quotas() {
        let u = owner_use(&report().spaces);
        assert_eq!(u, vec![OwnerUse { owner: DeviceId([7; 32]), used: 300, quota: 1500 }]);
    }

    #[test]
    fn a_seeder_is_full_when_it_refused_blobs_or_has_almost_no_disk() {
        let mut r = report();
        assert!(!r.full());
        r.disk_free = Some(10 << 20);
        assert!(r.full());
        r.disk_free = None;
        assert!(!r.full());
        r.full_since_ms = Some(4);
        assert!(r.full());
    }

    #[test]
    fn pairing_codes_round_trip_and_other_codes_are_refused() {
        let c = PairCode {
            seeder: PeerAddr { device: DeviceId([4; 32]), addrs: vec!["127.0.0.1:9".into()] },
            secret: [5; 32],
        };
        let text = c.encode().unwrap();
        assert!(text.starts_with(PAIR_PREFIX));
        assert_eq!(PairCode::parse(&text.to_uppercase().replace("COBOX-PAIR-", "cobox-pair-")), Ok(c));
        assert!(matches!(PairCode::parse("cobox-seed-aaaa"), Err(CodeError::Prefix(..))));
        let mut bad = text.clone();
        bad.pop();
        bad.push(if text.ends_with('a') { 'b' } else { 'a' });
        assert_eq!(PairCode::parse(&bad), Err(CodeError::Checksum));
    }
}
