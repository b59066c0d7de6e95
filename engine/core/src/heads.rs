//! Notes of the manifest heads a member holds, signed by its device and kept in the ledger
//! beside agreements and the roster. They travel to seeders with the ledger, so a device
//! restoring from a seeder learns how far the space had come and can tell when the seeder handed
//! over less ([`newest`], then `Manifest::missing_heads`). A seeder cannot forge a note (it holds
//! no member's key) nor change one (the ledger refuses rewrites); it can only withhold the
//! note along with the changes, which then looks like a seeder last synced earlier, and the next
//! seeder that has the note names it.

use crate::ids::SpaceId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use cobox_agreements::HEADS_TAG;

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"cobox heads note v1\0";
/// Most shards a note may name (spaces have 16).
pub const MAX_SHARDS: usize = 256;
/// Most heads per shard a note may name (concurrent edits leave a few).
pub const MAX_HEADS: usize = 64;

/// The heads a member's manifest had at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadsNote {
    /// The space.
    pub space: [u8; 32],
    /// The device that held them (and signed the note).
    pub device: [u8; 32],
    /// When, in milliseconds since the Unix epoch (the device's clock).
    pub time_ms: i64,
    /// Per manifest shard, its Automerge heads.
    pub heads: Vec<Vec<[u8; 32]>>,
}

/// Why note bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadsError {
    /// Not a heads note, or not one this version reads.
    #[error("not a heads note of a known version")]
    NotANote,
    /// The bytes do not decode, or name too many heads.
    #[error("malformed heads note: {0}")]
    Malformed(String),
    /// Of another space.
    #[error("a heads note of another space")]
    OtherSpace,
    /// The signature is not the named device's.
    #[error("a heads note whose signature does not verify")]
    Signature,
}

impl HeadsNote {
    /// The bytes kept in the ledger: tag, version, postcard, and the device's signature over
    /// the domain and everything before it.
    pub fn sign(&self, device: &SigningKey) -> Result<Vec<u8>, HeadsError> {
        let mut out = vec![HEADS_TAG, VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| HeadsError::Malformed(e.to_string()))?);
        let sig = device.sign(&message(&out));
        out.extend_from_slice(&sig.to_bytes());
        Ok(out)
    }

    /// Decode and verify a note of `space`.
    pub fn open(bytes: &[u8], space: &SpaceId) -> Result<Self, HeadsError> {
        if bytes.len() < 2 + 64 || bytes[0] != HEADS_TAG || bytes[1] != VERSION {
            return Err(HeadsError::NotANote);
        }
        let (signed, sig) = bytes.split_at(bytes.len() - 64);
        let note: Self = postcard::from_bytes(&signed[2..]).map_err(|e| HeadsError::Malformed(e.to_string()))?;
        if note.heads.len() > MAX_SHARDS || note.heads.iter().any(|h| h.len() > MAX_HEADS) {
            return Err(HeadsError::Malformed("too many heads".into()));
        }
        if note.space != space.0 {
            return Err(HeadsError::OtherSpace);
        }
        let key = VerifyingKey::from_bytes(&note.device).map_err(|_| HeadsError::Signature)?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| HeadsError::Signature)?;
        key.verify_strict(&message(signed), &Signature::from_bytes(&sig)).map_err(|_| HeadsError::Signature)?;
        Ok(note)
    }
}

fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(signed);
    m
}

/// How far ahead of the judging device's clock a note may be dated and still count: a note from
/// the far future would stay the newest, and flag every seeder stale, for good.
pub const MAX_NOTE_SKEW_MS: i64 = 15 * 60 * 1000;

/// Each device's newest valid note of `space` among `raw` ledger values, for devices `counts`
/// accepts (the writers on the roster), dated no later than `now_ms` plus [`MAX_NOTE_SKEW_MS`],
/// in device order. Every device's, not only the newest of all: the restoring device's own note
/// is newer than what it lacks.
pub fn newest<'a>(
    space: &SpaceId,
    raw: impl IntoIterator<Item = &'a [u8]>,
    counts: impl Fn(&[u8; 32]) -> bool,
    now_ms: i64,
) -> Vec<HeadsNote> {
    let mut by_device: std::collections::BTreeMap<[u8; 32], HeadsNote> = Default::default();
    let in_time = |n: &HeadsNote| n.time_ms <= now_ms.saturating_add(MAX_NOTE_SKEW_MS);
    for n in raw.into_iter().filter_map(|b| HeadsNote::open(b, space).ok()).filter(|n| counts(&n.device) && in_time(n))
    {
        match by_device.get(&n.device) {
            Some(old) if (old.time_ms, &old.heads) >= (n.time_ms, &n.heads) => {}
            _ => {
                by_device.insert(n.device, n);
            }
        }
    }
    by_device.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(device: &SigningKey, t: i64) -> HeadsNote {
        HeadsNote {
            space: [1; 32],
            device: device.verifying_key().to_bytes(),
            time_ms: t,
            heads: vec![vec![[t as u8; 32]]; 16],
        }
    }

    #[test]
    fn notes_verify_and_the_newest_of_a_counted_device_wins() {
        let (a, b) = (SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        let space = SpaceId([1; 32]);
        let (na, nb) = (note(&a, 10).sign(&a).unwrap(), note(&b, 20).sign(&b).unwrap());
        assert_eq!(HeadsNote::open(&na, &space).unwrap(), note(&a, 10));
        assert_eq!(HeadsNote::open(&na, &SpaceId([9; 32])), Err(HeadsError::OtherSpace));
        // Signed by another key than the device it names: refused.
        let forged = note(&a, 30).sign(&b).unwrap();
        assert_eq!(HeadsNote::open(&forged, &space), Err(HeadsError::Signature));
        let mut bent = na.clone();
        bent[10] ^= 1;
        assert!(HeadsNote::open(&bent, &space).is_err());
        let a_later = note(&a, 15).sign(&a).unwrap();
        let all = [na.as_slice(), nb.as_slice(), forged.as_slice(), b"\xa2junk".as_slice(), a_later.as_slice()];
        let mut both = vec![note(&a, 15), note(&b, 20)];
        both.sort_by_key(|n| n.device);
        assert_eq!(newest(&space, all, |_| true, 100), both);
        let only_a = a.verifying_key().to_bytes();
        assert_eq!(newest(&space, all, |d| *d == only_a, 100), vec![note(&a, 15)]);
        assert!(newest(&space, all, |_| false, 100).is_empty());
        // A note dated past the allowed skew does not count (nor hide the device's real one).
        let future = note(&a, 100 + MAX_NOTE_SKEW_MS + 1).sign(&a).unwrap();
        let with_future = [na.as_slice(), future.as_slice()];
        assert_eq!(newest(&space, with_future, |d| *d == only_a, 100), vec![note(&a, 10)]);
    }
}
