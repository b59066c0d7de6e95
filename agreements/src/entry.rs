//! The agreement and the signed ledger entries, with their canonical encodings.

use crate::Key32;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Version of the agreement and entry encodings (2: entries carry device signatures only; the
/// space key's second signature of version 1 is gone).
pub const FORMAT_VERSION: u8 = 2;
/// Domain-separation tags: a signature made for one purpose never verifies for another.
const TAG_AGREEMENT: &[u8] = b"cobox agreement v1\0";
const TAG_PROPOSE: &[u8] = b"cobox agreement proposal v1\0";
const TAG_ACCEPT: &[u8] = b"cobox agreement acceptance v1\0";
const TAG_REVOKE: &[u8] = b"cobox agreement revocation v1\0";
const TAG_AUDIT: &[u8] = b"cobox audit result v1\0";
const TAG_ANSWER: &[u8] = b"cobox agreement answer v1\0";
const TAG_OPERATOR: &[u8] = b"cobox agreement operator v1\0";

/// The longest reason a seeder's [`Answer`] may give.
pub const MAX_ANSWER: usize = 512;
/// The longest operator name a seeder's [`OperatorNote`] may give, in bytes.
pub const MAX_OPERATOR: usize = 64;
/// Longest free-text terms accepted, in bytes.
pub const MAX_TERMS: usize = 2000;

/// The terms under which a seeder stores a space's encrypted blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// The space (its public key).
    pub space: Key32,
    /// The owner's device, which proposed it.
    pub owner: Key32,
    /// The seeder's device.
    pub seeder: Key32,
    /// Bytes the seeder agrees to store.
    pub quota: u64,
    /// Start, milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// End (exclusive), milliseconds since the Unix epoch.
    pub end_ms: i64,
    /// Free text: what the parties agreed beyond the numbers.
    pub terms: String,
    /// Makes two otherwise equal proposals distinct.
    pub nonce: [u8; 16],
}

/// An agreement's id: BLAKE3 of its canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgreementId(pub [u8; 32]);

impl AgreementId {
    /// The first 12 hex characters, for lists.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for AgreementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AgreementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgreementId({})", self.short())
    }
}

impl FromStr for AgreementId {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = hex::decode(s.trim()).map_err(|_| EntryError::Malformed("agreement id is not hex".into()))?;
        Ok(Self(b.try_into().map_err(|_| EntryError::Malformed("agreement id must be 64 hex characters".into()))?))
    }
}

/// Which side of an agreement acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Party {
    /// A member device of the space (the owner or another member).
    Owner,
    /// The seeder.
    Seeder,
}

/// A signed revocation: after it, the seeder accepts nothing more and deletes after a grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The agreement.
    pub agreement: AgreementId,
    /// The device that revoked.
    pub device: Key32,
    /// Which side it acted for.
    pub party: Party,
    /// When, milliseconds since the epoch.
    pub time_ms: i64,
}

/// A seeder's answer to a proposal it does not take by itself: the policy it breaks. The
/// proposal stays open (its operator may still countersign it with `cobox seed CODE`), and the
/// owner reads why it waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The agreement answered.
    pub agreement: AgreementId,
    /// When, milliseconds since the epoch (the newest answer is the one shown).
    pub time_ms: i64,
    /// Why it waits, in words (at most [`MAX_ANSWER`] bytes).
    pub reason: String,
}

/// A seeder names who runs it (an organisation, a person), so members can tell how many
/// distinct organisations hold their copies. Said per agreement, signed by its seeder; the
/// newest note counts. Nothing checks the name is true: it is the seeder's word, shown as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNote {
    /// The agreement it is said under.
    pub agreement: AgreementId,
    /// When, milliseconds since the epoch (the newest note is the one shown).
    pub time_ms: i64,
    /// The operator's name (at most [`MAX_OPERATOR`] bytes, not empty).
    pub name: String,
}

/// A signed audit result: how many challenged blobs a seeder proved it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The agreement audited.
    pub agreement: AgreementId,
    /// The member device that ran the audit.
    pub auditor: Key32,
    /// When, milliseconds since the epoch.
    pub time_ms: i64,
    /// Blobs challenged.
    pub challenged: u32,
    /// Blobs answered correctly.
    pub passed: u32,
    /// Bytes the seeder reported holding for the space.
    pub stored_bytes: u64,
}

impl AuditRecord {
    /// Whether every challenged blob was answered correctly.
    pub fn ok(&self) -> bool {
        self.challenged > 0 && self.passed == self.challenged
    }
}

/// The latest an agreement may end: the last millisecond of the year 9999, so every date in a
/// ledger prints as an ordinary date (a member could otherwise put an end no calendar shows).
pub const MAX_END_MS: i64 = 253_402_300_799_999;

/// The most bytes a credential ([`Entry::check_credential`]) may take: a proposal is a few
/// hundred bytes, its note at most a few kilobytes.
pub const MAX_CREDENTIAL: usize = 16 * 1024;

/// One ledger entry with its signatures (64-byte Ed25519 each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The owner proposes; signed by the owner device (whether it may is the roster's to say).
    Proposal {
        /// The terms.
        agreement: Agreement,
        /// The owner device's signature.
        owner_sig: Vec<u8>,
    },
    /// The seeder countersigns: the agreement becomes active.
    Acceptance {
        /// The agreement accepted.
        agreement: AgreementId,
        /// The seeder device's signature.
        seeder_sig: Vec<u8>,
    },
    /// Either party ends the agreement.
    Revocation {
        /// What was revoked, by whom.
        revocation: Revocation,
        /// The revoking device's signature.
        sig: Vec<u8>,
    },
    /// An audit result; signed by the auditor device.
    Audit {
        /// The result.
        record: AuditRecord,
        /// The auditor device's signature.
        sig: Vec<u8>,
    },
    /// The seeder says why a proposal waits; signed by the seeder device.
    Answer {
        /// The answer.
        answer: Answer,
        /// The seeder device's signature.
        sig: Vec<u8>,
    },
    /// The seeder names its operator; signed by the seeder device. Last, so the entries before
    /// it keep their encodings.
    Operator {
        /// The note.
        note: OperatorNote,
        /// The seeder device's signature.
        sig: Vec<u8>,
    },
}

/// Why an entry or an agreement is not valid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// The bytes do not decode.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Written by another version of CoBox.
    #[error(
        "entry format version {0}: this CoBox reads version 2 only (a space made before version 2 must be created anew)"
    )]
    Version(u8),
    /// A signature does not verify.
    #[error("the {0} signature does not verify")]
    BadSignature(&'static str),
    /// The terms themselves are unacceptable.
    #[error("invalid terms: {0}")]
    Terms(String),
    /// The entry refers to something the ledger does not hold.
    #[error("{0}")]
    Unknown(String),
    /// Made for another space (a copy replayed from elsewhere).
    #[error("made for another space")]
    OtherSpace,
    /// Signed by a device that is not a party to the agreement.
    #[error("signed by {0}, which is not a party to the agreement")]
    NotAParty(String),
    /// Signed by a device the space's roster does not give the power.
    #[error("signed by device {device}, which the space's roster does not allow to {power}")]
    NoPower {
        /// The signing device (first bytes, hex).
        device: String,
        /// What it would need to be allowed.
        power: &'static str,
    },
}

fn sign(key: &SigningKey, tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = tag.to_vec();
    m.extend_from_slice(body);
    key.sign(&m).to_bytes().to_vec()
}

fn verify(public: &Key32, tag: &[u8], body: &[u8], sig: &[u8], what: &'static str) -> Result<(), EntryError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| EntryError::BadSignature(what))?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| EntryError::BadSignature(what))?;
    let mut m = tag.to_vec();
    m.extend_from_slice(body);
    key.verify_strict(&m, &Signature::from_bytes(&sig)).map_err(|_| EntryError::BadSignature(what))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail; an empty body would then fail every check.
    postcard::to_stdvec(v).unwrap_or_default()
}

impl Agreement {
    /// Canonical bytes: tag, version, then the fields in declaration order (postcard).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = TAG_AGREEMENT.to_vec();
        out.push(FORMAT_VERSION);
        out.extend(encode(self));
        out
    }

    /// The agreement's id.
    pub fn id(&self) -> AgreementId {
        AgreementId(*blake3::hash(&self.canonical()).as_bytes())
    }

    /// The terms are self-consistent.
    pub fn check_terms(&self) -> Result<(), EntryError> {
        if self.quota == 0 {
            return Err(EntryError::Terms("the quota is zero".into()));
        }
        if self.end_ms <= self.start_ms {
            return Err(EntryError::Terms("it ends before it starts".into()));
        }
        if self.start_ms < 0 || self.end_ms > MAX_END_MS {
            return Err(EntryError::Terms("its term runs outside the years 1970 to 9999".into()));
        }
        if self.owner == self.seeder {
            return Err(EntryError::Terms("owner and seeder are the same device".into()));
        }
        if self.terms.len() > MAX_TERMS {
            return Err(EntryError::Terms(format!("the terms are over {MAX_TERMS} bytes")));
        }
        Ok(())
    }

    /// Whether `now_ms` is inside the term.
    pub fn in_term(&self, now_ms: i64) -> bool {
        self.start_ms <= now_ms && now_ms < self.end_ms
    }
}

impl Entry {
    /// The owner proposes: signs with its device key.
    pub fn propose(agreement: Agreement, owner: &SigningKey) -> Self {
        let c = agreement.canonical();
        Entry::Proposal { owner_sig: sign(owner, TAG_PROPOSE, &c), agreement }
    }

    /// The seeder countersigns.
    pub fn accept(agreement: &Agreement, seeder: &SigningKey) -> Self {
        let id = agreement.id();
        Entry::Acceptance { agreement: id, seeder_sig: sign(seeder, TAG_ACCEPT, &id.0) }
    }

    /// A party revokes with its device key.
    pub fn revoke(revocation: Revocation, device: &SigningKey) -> Self {
        let b = encode(&revocation);
        Entry::Revocation { sig: sign(device, TAG_REVOKE, &b), revocation }
    }

    /// The seeder answers a proposal it does not take by itself.
    pub fn answer(answer: Answer, seeder: &SigningKey) -> Self {
        let b = encode(&answer);
        Entry::Answer { sig: sign(seeder, TAG_ANSWER, &b), answer }
    }

    /// The seeder names its operator.
    pub fn operator(note: OperatorNote, seeder: &SigningKey) -> Self {
        let b = encode(&note);
        Entry::Operator { sig: sign(seeder, TAG_OPERATOR, &b), note }
    }

    /// A member records an audit result.
    pub fn audit(record: AuditRecord, auditor: &SigningKey) -> Self {
        let b = encode(&record);
        Entry::Audit { sig: sign(auditor, TAG_AUDIT, &b), record }
    }

    /// Versioned bytes, as stored in the ledger.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        out.extend(encode(self));
        out
    }

    /// Decode stored bytes.
    pub fn decode(b: &[u8]) -> Result<Self, EntryError> {
        match b.split_first() {
            Some((&FORMAT_VERSION, rest)) => {
                let (e, tail) = postcard::take_from_bytes(rest).map_err(|e| EntryError::Malformed(e.to_string()))?;
                if !tail.is_empty() {
                    return Err(EntryError::Malformed("trailing bytes".into()));
                }
                Ok(e)
            }
            Some((&v, _)) => Err(EntryError::Version(v)),
            None => Err(EntryError::Malformed("empty".into())),
        }
    }

    /// The ledger key: hex BLAKE3 of the encoding, so an entry is stored once however often it merges.
    pub fn key(&self) -> String {
        blake3::hash(&self.encode()).to_hex().to_string()
    }

    /// The agreement this entry is about.
    pub fn agreement_id(&self) -> AgreementId {
        match self {
            Entry::Proposal { agreement, .. } => agreement.id(),
            Entry::Acceptance { agreement, .. } => *agreement,
            Entry::Revocation { revocation, .. } => revocation.agreement,
            Entry::Audit { record, .. } => record.agreement,
            Entry::Answer { answer, .. } => answer.agreement,
            Entry::Operator { note, .. } => note.agreement,
        }
    }

    /// A seeder's credential: the encoded proposal of an agreement that names `seeder` in space
    /// `space`, signed by an owner device (the member checking it asks its roster whether that
    /// device may propose). A member checks it before it reads anything else a would-be seeder
    /// sends (its terms may have ended or been revoked since: it proves a right to talk, not to
    /// be pushed to).
    pub fn check_credential(bytes: &[u8], space: &Key32, seeder: &Key32) -> Result<Agreement, EntryError> {
        if bytes.len() > MAX_CREDENTIAL {
            return Err(EntryError::Malformed(format!("a credential of {} bytes", bytes.len())));
        }
        match Entry::decode(bytes)? {
            Entry::Proposal { agreement, owner_sig } => {
                Entry::verify_proposal(&agreement, &owner_sig, space)?;
                if agreement.seeder != *seeder {
                    return Err(EntryError::NotAParty("the agreement names another seeder".into()));
                }
                Ok(agreement)
            }
            _ => Err(EntryError::Malformed("a credential must be a proposal".into())),
        }
    }

    /// Check a proposal on its own: terms, space, the owner's signature.
    pub(crate) fn verify_proposal(agreement: &Agreement, owner_sig: &[u8], space: &Key32) -> Result<(), EntryError> {
        if agreement.space != *space {
            return Err(EntryError::OtherSpace);
        }
        agreement.check_terms()?;
        verify(&agreement.owner, TAG_PROPOSE, &agreement.canonical(), owner_sig, "owner")
    }

    /// Check an entry that refers to `agreement` (already verified).
    pub(crate) fn verify_against(&self, agreement: &Agreement) -> Result<(), EntryError> {
        match self {
            Entry::Proposal { .. } => Ok(()),
            Entry::Acceptance { agreement: id, seeder_sig } => {
                verify(&agreement.seeder, TAG_ACCEPT, &id.0, seeder_sig, "seeder")
            }
            Entry::Revocation { revocation: r, sig } => {
                verify(&r.device, TAG_REVOKE, &encode(r), sig, "revoking device")?;
                // The seeder's side is its own device's; the owner's side any device's, which
                // counts only where the roster lets that device revoke ([`crate::Authority`]).
                if r.party == Party::Seeder && r.device != agreement.seeder {
                    return Err(EntryError::NotAParty(hex::encode(&r.device[..4])));
                }
                Ok(())
            }
            Entry::Audit { record, sig } => verify(&record.auditor, TAG_AUDIT, &encode(record), sig, "auditor"),
            Entry::Answer { answer, sig } => {
                if answer.reason.len() > MAX_ANSWER {
                    return Err(EntryError::Malformed(format!("an answer of {} bytes", answer.reason.len())));
                }
                verify(&agreement.seeder, TAG_ANSWER, &encode(answer), sig, "seeder")
            }
            Entry::Operator { note, sig } => {
                if note.name.trim().is_empty() || note.name.len() > MAX_OPERATOR {
                    return Err(EntryError::Malformed(format!(
                        "an operator name must be 1 to {MAX_OPERATOR} bytes, not {}",
                        note.name.len()
                    )));
                }
                verify(&agreement.seeder, TAG_OPERATOR, &encode(note), sig, "seeder")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn keys() -> (SigningKey, SigningKey, SigningKey) {
        (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]))
    }

    pub(crate) fn sample(space: &SigningKey, owner: &SigningKey, seeder: &SigningKey) -> Agreement {
        Agreement {
            space: space.verifying_key().to_bytes(),
            owner: owner.verifying_key().to_bytes(),
            seeder: seeder.verifying_key().to_bytes(),
            quota: 1 << 30,
            start_ms: 1_000,
            end_ms: 1_000_000,
            terms: "keep it safe".into(),
            nonce: [7; 16],
        }
    }

    /// A signed audit of `a` at `t`: 4 blobs challenged, `passed` proven.
    pub(crate) fn audit(a: &Agreement, auditor: &SigningKey, t: i64, passed: u32) -> Entry {
        let r = AuditRecord {
            agreement: a.id(),
            auditor: auditor.verifying_key().to_bytes(),
            time_ms: t,
            challenged: 4,
            passed,
            stored_bytes: 10,
        };
        Entry::audit(r, auditor)
    }

    /// `cobox agreement propose --days 1000000000` once made an end no calendar prints, and every
    /// later `agreement list` panicked: such terms are invalid now, and a credential made of
    /// them is refused.
    #[test]
    fn a_term_beyond_the_year_9999_is_invalid() {
        let (s, o, d) = keys();
        let mut a = sample(&s, &o, &d);
        a.end_ms = a.start_ms + 1_000_000_000 * 86_400_000;
        assert!(matches!(a.check_terms(), Err(EntryError::Terms(m)) if m.contains("9999")));
        let e = Entry::propose(a, &o).encode();
        let (space, seeder) = (s.verifying_key().to_bytes(), d.verifying_key().to_bytes());
        assert!(Entry::check_credential(&e, &space, &seeder).is_err());
        let ok = Entry::propose(sample(&s, &o, &d), &o).encode();
        assert!(Entry::check_credential(&ok, &space, &seeder).is_ok());
        assert!(Entry::check_credential(&ok, &space, &[0; 32]).is_err(), "names another seeder");
    }

    #[test]
    fn canonical_encoding_is_stable_and_tagged() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        assert!(a.canonical().starts_with(TAG_AGREEMENT));
        assert_eq!(a.canonical(), a.clone().canonical());
        let mut b = a.clone();
        b.quota += 1;
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn entries_round_trip_and_refuse_other_versions() {
        let (s, o, d) = keys();
        let e = Entry::propose(sample(&s, &o, &d), &o);
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        let mut b = e.encode();
        b[0] = 9;
        assert_eq!(Entry::decode(&b), Err(EntryError::Version(9)));
        let mut t = e.encode();
        t.push(0);
        assert!(matches!(Entry::decode(&t), Err(EntryError::Malformed(_))));
    }

    #[test]
    fn a_signature_for_one_purpose_does_not_verify_for_another() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        // The owner's proposal signature over the same bytes is not an acceptance.
        let Entry::Proposal { owner_sig, .. } = Entry::propose(a.clone(), &d) else { unreachable!() };
        let forged = Entry::Acceptance { agreement: a.id(), seeder_sig: owner_sig };
        assert!(forged.verify_against(&a).is_err());
        assert!(Entry::accept(&a, &d).verify_against(&a).is_ok());
        assert!(Entry::accept(&a, &o).verify_against(&a).is_err(), "the owner cannot accept for the seeder");
    }
}
