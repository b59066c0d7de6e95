//! Sync protocol messages and framing. Pure: encoding, decoding and the membership proof.
//!
//! ALPN `cobox/sync/11`. One bidirectional QUIC stream per space per connection; every message
//! is a frame `length (u32 LE) | postcard(Msg)`. Frames over [`MAX_FRAME`] are refused, so a
//! hostile peer cannot make us allocate without bound.
//!
//! 1. Both send `Hello` (space, device, fresh nonce, role, purpose, listening addresses, ledger
//!    heads); a side without the space answers `Refused`. Two seeders never talk.
//! 2. Each member sends `Proof`: the space key's signature over the *peer's* nonce and both
//!    device ids, which only a member can make. A bad proof gets `Refused`. A seeder sends none.
//!    A joining device (purpose `Join`: it holds an invite's key and no space secret) sends
//!    `Redeem` instead: its redemption, signed by its device key (the one the connection
//!    authenticated) and the invite's key. The peer judges it by its own roster and clock and
//!    countersigns it (`Admit`) before anything of its ledger goes out, or refuses.
//! 3. Ledgers: member and member: the dialer sends its `Ledger`, the listener answers with the
//!    merge. Member and seeder: the seeder sends its `Credential` (a proposal naming it, signed
//!    with the space key) and then its ledger (its peer has proven membership); the member reads
//!    the ledger only if the credential, or its own ledger, names the seeder, merges it into a
//!    copy, checks an agreement still names the seeder and sends its own, and the seeder answers
//!    with the merge, which holds its countersignature when it accepted a proposal. A `Ledger`
//!    carries only what the peer lacks by the heads in its `Hello` (the seeder's second one:
//!    by the heads both had once merged), empty when it lacks nothing, so sessions do not
//!    resend a ledger that grows with every audit.
//! 4. Purpose `Sync`: the dialer sends `Reconcile`; the sides alternate until one receives an
//!    empty step. A step, and a want list, longer than [`FRAME_IDS`] ids goes over several
//!    frames, each but the last marked `more`. The dialer sends `Want`; the listener sends the
//!    blobs, then its own `Want`; the dialer sends those blobs and `Done`. Blobs are sent manifest changes and
//!    chunk lists first, on the session's stream; then `Lanes(n)` and the chunks spread over
//!    `n` unidirectional streams, each ending with `Done`.
//!    Purpose `Metadata` (member dialer): the same, the listener reconciling only its changes
//!    (and, a member, its chunk lists); only the dialer takes blobs, also those it names.
//!    Purpose `Audit` (member dialer, seeder listener): `AuditChallenge`, then `AuditAnswer`.
//!    Purpose `Join`: the session ends after the ledgers (the joining device then opens the
//!    space secret sealed to its invite's key in the ledger, and syncs as a member).

use super::reconcile::Item;
use crate::ids::{BlobId, DeviceId, SpaceId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The sync protocol's ALPN (its version is part of it).
pub const ALPN: &[u8] = b"cobox/sync/11";
/// Largest frame accepted: a sealed 8 MiB chunk, or a 16 MiB change blob, fits.
pub const MAX_FRAME: usize = 64 << 20;
/// Ids per `Reconcile` or `Want` frame; longer steps and lists go over several frames.
pub const FRAME_IDS: usize = 8192;
/// Most ids one reconciliation step or want list may carry over all its frames (256 MiB of
/// ids: eight million blobs, 8 TB of 1 MiB chunks), so a peer cannot grow our memory without
/// bound by never ending one.
pub const MAX_STEP_IDS: usize = 8 << 20;
const PROOF_DOMAIN: &[u8] = b"cobox sync membership proof v1\0";

/// What a side is for the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Holds the space key.
    Member,
    /// Holds sealed blobs under an agreement, and no key.
    Seeder,
}

/// Why the dialer connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Reconcile and transfer blobs.
    Sync,
    /// Challenge a seeder to prove it holds blobs.
    Audit,
    /// Reconcile only what describes the space, no content: the dialer (a member that holds no
    /// folder and joined to audit) takes the listener's manifest changes and chunk lists and the
    /// blobs it names, and sends nothing; the listener reconciles its changes (a seeder, which
    /// cannot tell a chunk list from a chunk) or its changes and chunk lists (a member), and
    /// takes nothing.
    Metadata,
    /// A device that holds only an invite's key redeems it: the ledgers only, no blobs.
    Join,
}

/// Why a side refused, for the peer's code to act on (the reason beside it is for people): a
/// full seeder is shown as such, a refused invite removes the joined space again, and so on,
/// without reading the reason's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Refusal {
    /// Anything else.
    #[default]
    Other,
    /// A seeder out of disk: it took no more blobs and keeps what it holds.
    SeederFull,
    /// The device's invite was refused (used, expired, cancelled, or its maker removed).
    InviteRefused,
    /// The device was removed from the space.
    Removed,
    /// The device's recovery of the space is announced and waits out its plan's period (any
    /// member may cancel it meanwhile); it tries again later.
    RecoveryWaiting,
}

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Opening: which space, who, and a nonce for the peer to sign.
    Hello {
        /// The space to sync.
        space: SpaceId,
        /// The sender's device.
        device: DeviceId,
        /// Fresh random challenge.
        nonce: [u8; 32],
        /// The sender's role for this space.
        role: Role,
        /// What the session is for (the listener echoes the dialer's).
        purpose: Purpose,
        /// Where the sender's daemon listens (empty for a one-off command).
        listen: Vec<String>,
        /// The sender's ledger heads and the changes they directly follow (none when over
        /// 64): a peer sends only the changes these do not cover, an empty `Ledger` when it
        /// has no others.
        ledger: Vec<[u8; 32]>,
    },
    /// The space key's signature over the peer's challenge.
    Proof {
        /// Ed25519 signature bytes.
        #[serde(with = "serde_bytes")]
        sig: Vec<u8>,
        /// The space's genesis operation, as the prover holds it (empty: none yet), from which
        /// a peer without the space key (a seeder) takes the key's public half: the space id
        /// is derived from it, so it cannot name another key.
        #[serde(with = "serde_bytes")]
        genesis: Vec<u8>,
    },
    /// The sender will not go on, and why.
    Refused {
        /// Plain words.
        reason: String,
        /// What kind of refusal, for the peer's code.
        code: Refusal,
    },
    /// What of the sender's ledger the peer lacks, by the heads in the peer's `Hello` (an
    /// Automerge save, or the changes after those heads): empty when it lacks nothing.
    Ledger(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Prove you hold these blobs: for each, the BLAKE3 verified ranges the nonce picks
    /// ([`cobox_agreements::audit`]), which anyone knowing the ids checks.
    AuditChallenge {
        /// Fresh random nonce.
        nonce: [u8; 32],
        /// Blobs challenged.
        ids: Vec<BlobId>,
    },
    /// One answer per challenged blob, `None` where the blob is missing or damaged.
    AuditAnswer {
        /// The proofs, in challenge order (`None`: missing or damaged).
        answers: Vec<Option<cobox_agreements::audit::Proof>>,
        /// Bytes the seeder holds for the space.
        stored_bytes: u64,
    },
    /// A reconciliation step, or part of one: with `more`, the step goes on in the next frame.
    Reconcile {
        /// Items, at most [`FRAME_IDS`] ids' worth.
        items: Vec<Item>,
        /// Whether the step continues in the next frame.
        more: bool,
    },
    /// Blobs the sender lacks (at most [`FRAME_IDS`]); with `more`, the list goes on.
    Want {
        /// Ids.
        ids: Vec<BlobId>,
        /// Whether the list continues in the next frame.
        more: bool,
    },
    /// One blob.
    Blob {
        /// Its id (checked against the bytes by the receiver).
        id: BlobId,
        /// The sealed bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The sender has sent everything (on a lane: everything on that lane).
    Done,
    /// The sender's remaining blobs (the chunks) follow on this many unidirectional streams
    /// ("lanes"), each ending with `Done`, so one stream's flow-control window does not cap the
    /// transfer on long round trips. At most [`MAX_LANES`].
    Lanes(u8),
    /// A seeder's right to talk to a member, sent before its ledger: the encoded proposal of
    /// an agreement naming it (at most [`cobox_agreements::MAX_CREDENTIAL`] bytes), or empty
    /// when it holds none (the member's own ledger must then name it).
    Credential(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A joining device's proof in place of `Proof`: its signed `Redeem` roster operation.
    Redeem(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Largest frame accepted before the peer has proven its right to the space (`Hello`,
/// `Proof`, `Credential`, `Refused`): a stranger cannot make us read megabytes.
pub const MAX_OPENING_FRAME: usize = 64 << 10;

/// Most lanes a sender may open for one transfer.
pub const MAX_LANES: u8 = 8;

/// A frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Declared length over the limit at that point of the session (the second number).
    #[error("peer sent a frame of {0} bytes, over the {1}-byte limit")]
    TooLarge(usize, usize),
    /// Not a valid message.
    #[error("peer sent a malformed message")]
    Malformed,
    /// A message of ours could not be encoded (nothing was sent).
    #[error("cannot encode a message: {0}")]
    Encode(String),
}

impl Msg {
    /// One reconciliation step as its frames (at least one; see [`super::reconcile::frames`]).
    pub fn reconcile_step(items: Vec<Item>) -> Vec<Msg> {
        let frames = super::reconcile::frames(items, FRAME_IDS);
        let last = frames.len().saturating_sub(1);
        frames.into_iter().enumerate().map(|(i, items)| Msg::Reconcile { items, more: i < last }).collect()
    }

    /// A want list as its frames of at most [`FRAME_IDS`] ids (one empty frame for none).
    pub fn want_list(ids: &[BlobId]) -> Vec<Msg> {
        let parts: Vec<&[BlobId]> = if ids.is_empty() { vec![&[]] } else { ids.chunks(FRAME_IDS).collect() };
        let last = parts.len() - 1;
        parts.into_iter().enumerate().map(|(i, p)| Msg::Want { ids: p.to_vec(), more: i < last }).collect()
    }

    /// Encode as one frame.
    pub fn frame(&self) -> Result<Vec<u8>, FrameError> {
        let body = postcard::to_stdvec(self).map_err(|e| FrameError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Check a frame's declared length before reading its body.
    pub fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
        Self::check_len_within(header, MAX_FRAME)
    }

    /// Check a frame's declared length against `max` (see [`crate::sync::session::Session::max_frame`]).
    pub fn check_len_within(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
        let n = u32::from_le_bytes(header) as usize;
        if n > max { Err(FrameError::TooLarge(n, max)) } else { Ok(n) }
    }

    /// Decode a frame body.
    pub fn decode(body: &[u8]) -> Result<Self, FrameError> {
        postcard::from_bytes(body).map_err(|_| FrameError::Malformed)
    }
}

/// Postcard's variant index of [`Msg::Blob`]: a body starting with it is a blob.
pub const BLOB_TAG: u8 = 8;

/// The frame of a [`Msg::Blob`] up to its data, so the data can go out (and come in) without
/// being copied into a message first. `blob_head(id, data.len()) ++ data` is exactly
/// `Msg::Blob { id, data }.frame()`.
pub fn blob_head(id: &BlobId, len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + 1 + 32 + 5);
    body.extend_from_slice(&[0; 4]);
    body.push(BLOB_TAG);
    body.extend_from_slice(id.as_bytes());
    let mut n = len as u64;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    let frame_len = (body.len() - 4 + len) as u32;
    body[..4].copy_from_slice(&frame_len.to_le_bytes());
    body
}

/// Reads a blob frame's varint data length one byte at a time; the transport feeds it.
#[derive(Debug, Default)]
pub struct VarintReader {
    value: u64,
    shift: u32,
}

impl VarintReader {
    /// Feed one byte: `Some(value)` once the varint ends. Over 32 bits is malformed (no frame
    /// is that large).
    pub fn feed(&mut self, b: u8) -> Result<Option<u64>, FrameError> {
        if self.shift > 28 {
            return Err(FrameError::Malformed);
        }
        self.value |= u64::from(b & 0x7f) << self.shift;
        self.shift += 7;
        if b & 0x80 == 0 { Ok(Some(self.value)) } else { Ok(None) }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> usize {
        (self.shift / 7) as usize
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.shift == 0
    }
}

fn proof_message(space: &SpaceId, prover: &DeviceId, verifier: &DeviceId, nonce: &[u8; 32]) -> Vec<u8> {
    let mut m = PROOF_DOMAIN.to_vec();
    m.extend_from_slice(space.as_bytes());
    m.extend_from_slice(prover.as_bytes());
    m.extend_from_slice(verifier.as_bytes());
    m.extend_from_slice(nonce);
    m
}

/// Prove membership: sign the verifier's nonce with the space key.
pub fn prove(
    space_key: &SigningKey,
    space: &SpaceId,
    prover: &DeviceId,
    verifier: &DeviceId,
    nonce: &[u8; 32],
    genesis: Vec<u8>,
) -> Msg {
    let sig = space_key.sign(&proof_message(space, prover, verifier, nonce));
    Msg::Proof { sig: sig.to_bytes().to_vec(), genesis }
}

/// Check a peer's membership proof for the nonce we sent it, against the space key's public
/// half `key`.
pub fn check_proof(
    key: &[u8; 32],
    space: &SpaceId,
    prover: &DeviceId,
    verifier: &DeviceId,
    nonce: &[u8; 32],
    sig: &[u8],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else { return false };
    let Ok(sig) = <[u8; 64]>::try_from(sig) else { return false };
    key.verify_strict(&proof_message(space, prover, verifier, nonce), &Signature::from_bytes(&sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proofs_bind_key_nonce_and_devices() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let pk = key.verifying_key().to_bytes();
        let space = SpaceId([5; 32]);
        let (a, b) = (DeviceId([2; 32]), DeviceId([3; 32]));
        let nonce = [9u8; 32];
        let Msg::Proof { sig, .. } = prove(&key, &space, &a, &b, &nonce, Vec::new()) else { panic!() };
        assert!(check_proof(&pk, &space, &a, &b, &nonce, &sig));
        assert!(!check_proof(&pk, &space, &a, &b, &[8; 32], &sig), "another nonce");
        assert!(!check_proof(&pk, &space, &b, &a, &nonce, &sig), "reflected");
        assert!(!check_proof(&pk, &SpaceId([6; 32]), &a, &b, &nonce, &sig), "another space");
        let outsider = SigningKey::from_bytes(&[7; 32]);
        let Msg::Proof { sig: bad, .. } = prove(&outsider, &space, &a, &b, &nonce, Vec::new()) else { panic!() };
        assert!(!check_proof(&pk, &space, &a, &b, &nonce, &bad), "not the space key");
        assert!(!check_proof(&pk, &space, &a, &b, &nonce, &sig[..10]));
    }

    #[test]
    fn want_lists_go_over_frames_each_but_the_last_marked_more() {
        let more = |ms: Vec<Msg>| -> Vec<(usize, bool)> {
            ms.into_iter()
                .map(|m| match m {
                    Msg::Want { ids, more } => (ids.len(), more),
                    other => panic!("not a want list: {other:?}"),
                })
                .collect()
        };
        assert_eq!(more(Msg::want_list(&[])), vec![(0, false)]);
        let ids = vec![BlobId([1; 32]); FRAME_IDS + 1];
        assert_eq!(more(Msg::want_list(&ids)), vec![(FRAME_IDS, true), (1, false)]);
        assert!(
            matches!(&Msg::reconcile_step(Vec::new())[..], [Msg::Reconcile { items, more: false }] if items.is_empty())
        );
    }

    #[test]
    fn frames_round_trip_and_bound_length() {
        for m in [Msg::Want { ids: vec![BlobId([4; 32])], more: true }, Msg::Lanes(MAX_LANES), Msg::Done] {
            let f = m.frame().unwrap();
            let n = Msg::check_len(f[..4].try_into().unwrap()).unwrap();
            assert_eq!(Msg::decode(&f[4..4 + n]).unwrap(), m);
        }
        // Version 3 added `Lanes` after every earlier message: their tags did not move.
        assert_eq!(Msg::Done.frame().unwrap()[4], 9);
        assert_eq!(Msg::Lanes(1).frame().unwrap()[4..], [10, 1]);
        assert_eq!(Msg::check_len(u32::MAX.to_le_bytes()), Err(FrameError::TooLarge(u32::MAX as usize, MAX_FRAME)));
        let mut v = VarintReader::default();
        assert!((0..5).all(|_| v.feed(0xff) == Ok(None)));
        assert_eq!(v.feed(0x01), Err(FrameError::Malformed), "a length over 32 bits");
    }

    proptest! {
        #[test]
        fn blob_head_and_data_are_the_blob_message(id in any::<[u8; 32]>(), data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let id = BlobId(id);
            let mut f = blob_head(&id, data.len());
            let head = f.len();
            f.extend_from_slice(&data);
            prop_assert_eq!(&f, &Msg::Blob { id, data: data.clone() }.frame().unwrap());
            prop_assert_eq!(f[4], BLOB_TAG);
            let mut v = VarintReader::default();
            let mut got = None;
            for &b in &f[37..head] {
                prop_assert!(got.is_none());
                got = v.feed(b).unwrap();
            }
            prop_assert_eq!(got, Some(data.len() as u64));
            prop_assert_eq!(v.len(), head - 37);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Msg::decode(&bytes);
        }
    }
}
