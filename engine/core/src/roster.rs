//! The roster: who belongs to a space and in what role, as a set of signed operations that every
//! device evaluates to the same members whatever order they arrived in (members issue, 20).
//!
//! Each [`Op`] names its author device, the operations it saw last (`deps`, making a causal
//! graph) and one [`Action`]; it is signed by its author. An operation counts only if its author
//! was allowed to make it in the state of its own causal past: a manager adds, removes and
//! changes roles; anyone renames or removes (leaves) itself. Concurrent operations settle by
//! these rules, identically on every device:
//!
//! - **A removal cancels what the removed device did concurrently** (not in the removal's past),
//!   including a removal of its own. Of two managers removing each other while apart, the
//!   senior's removal stands: the one made a manager first, by an operation it did not sign
//!   (the genesis, another manager's `Add` or `SetRole`, the `Invite` it redeemed), which was
//!   fixed before the conflict. The removed manager never hears of its removal, so it can always
//!   make its own concurrent; an order by operation id would let it grind the ids until its
//!   removal came first.
//! - **An epoch that reached a removed device is never current** (`RosterView::current_epoch`
//!   is the newest epoch drawn that no removed device was handed), so a manager that had not
//!   heard of a removal and sealed a new key to the removed device does not make it current.
//! - **A removal beats a concurrent add or role change** of the same device; an add made after
//!   the removal (it has the removal in its past) brings the device back.
//! - **One `Genesis` per space, fixed at creation**: the creator signs it (and the shared space
//!   key, whose public half it names, co-signs it), and the space's id is derived from its
//!   operation id ([`space_of_genesis`]). So no other genesis can ever count, whoever holds the
//!   shared key: a reader that drops its ledger and signs one has made another space's.
//!
//! - **Invites work once.** A manager's `Invite` names a one-use key; a device joins by a
//!   `Redeem` signed by itself and by that key, which counts only once a member countersigns it
//!   (`Admit`), having judged it by its own clock in the session that brought it (this pure
//!   module has no clock): the joiner's own date decides nothing. Of two countersigned
//!   redemptions of one invite, the first countersigned in the order stands; a `Cancel` beats a
//!   concurrent countersignature; a countersignature dated after the invite's expiry, or by a
//!   member whose role is below the invite's, counts for nothing.
//!
//! Pure: no I/O, no clock; names are opaque bytes here (the engine seals them to members).
//! Evaluation is quadratic in the number of operations (each one's validity is judged in the
//! state of its own past); see the members issue's benchmark for 10,000 operations.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A 32-byte public key (a device, or the space).
pub type Key32 = [u8; 32];

/// Version byte of an encoded [`SignedOp`] (after the ledger's roster tag).
pub const ROSTER_VERSION: u8 = 1;
/// The first byte of every encoded operation: how the ledger tells them from agreement entries.
pub use cobox_agreements::ROSTER_TAG;
const TAG_OP: &[u8] = b"cobox roster op v1\0";
const TAG_GENESIS: &[u8] = b"cobox roster genesis v1\0";
const TAG_REDEEM: &[u8] = b"cobox roster redeem v1\0";
const SPACE_ID_CONTEXT: &str = "cobox 2026-12 space id from its genesis v1";

/// The id of the space a genesis operation (by its id) makes: a one-way function of the
/// creator's signed genesis, so nobody can make another genesis for the same space.
pub fn space_of_genesis(genesis: &OpId) -> Key32 {
    blake3::derive_key(SPACE_ID_CONTEXT, &genesis.0)
}

/// A new space's genesis, signed by `creator` and co-signed by the shared space key: its
/// encoding and the space id it makes.
pub fn genesis(space_key: &SigningKey, creator: &SigningKey) -> Result<(Vec<u8>, Key32), RosterError> {
    let op = Op {
        space: space_key.verifying_key().to_bytes(),
        author: creator.verifying_key().to_bytes(),
        deps: Vec::new(),
        action: Action::Genesis,
    };
    let bytes = SignedOp::sign(op, creator, Some(space_key))?.encode()?;
    let id = space_of_genesis(&op_id(&bytes));
    Ok((bytes, id))
}

/// The shared space key's public half, from the space's genesis (`encoded`, checked to be the
/// one `space` was made from and validly signed): how a device without the shared key (a
/// seeder) checks a member's proof.
pub fn space_public_key(space: &Key32, encoded: &[u8]) -> Option<Key32> {
    let op = SignedOp::decode(encoded).ok()?;
    let id = op_id(encoded);
    (matches!(op.op.action, Action::Genesis) && space_of_genesis(&id) == *space && op.verify(space).is_ok())
        .then_some(op.op.space)
}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Receives and reads; cannot change the folder.
    Read,
    /// Also changes the folder.
    Write,
    /// Also adds and removes members, changes roles and rotates keys.
    Manage,
}

impl Role {
    /// The role's name as commands take and print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Manage => "manage",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width (`{:<7}`) lines roles up.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" | "reader" => Ok(Role::Read),
            "write" | "writer" => Ok(Role::Write),
            "manage" | "manager" => Ok(Role::Manage),
            other => Err(format!("no role {other:?}: use read, write or manage")),
        }
    }
}

/// One change to the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// The author, holding the shared space key, becomes a manager.
    Genesis,
    /// A device joins with a role and a name (sealed to members by the engine).
    Add {
        /// The device.
        device: Key32,
        /// Its role.
        role: Role,
        /// Its name, sealed.
        name: Vec<u8>,
    },
    /// A member's role changes.
    SetRole {
        /// The device.
        device: Key32,
        /// The new role.
        role: Role,
    },
    /// A member's name changes (itself, or by a manager).
    Rename {
        /// The device.
        device: Key32,
        /// The new name, sealed.
        name: Vec<u8>,
    },
    /// A member is removed (by a manager, or by itself: it leaves).
    Remove {
        /// The device.
        device: Key32,
    },
    /// A manager invites a device not yet known: whoever holds the secret half of `key` may
    /// join once, with this role and name, until `expires_ms`.
    Invite {
        /// The invite's public key (its secret half is in the invite code).
        key: Key32,
        /// The role the joiner gets.
        role: Role,
        /// The joiner's name, sealed.
        name: Vec<u8>,
        /// Milliseconds since the epoch after which it cannot be redeemed.
        expires_ms: i64,
        /// Every key epoch up to `epoch`, sealed to the invite's key ([`crate::epoch`]).
        keys: Vec<u8>,
        /// The newest epoch in `keys`.
        epoch: u32,
        /// The space secret sealed to the invite's key ([`crate::epoch::seal_secret`]): the
        /// code carries none, so the joiner opens it from the ledger a member or seeder hands
        /// over once it has accepted the redemption.
        secret: Vec<u8>,
    },
    /// The author joins by an invite; also signed by the invite's key.
    Redeem {
        /// The invite's public key.
        invite: Key32,
        /// When the author redeemed it, by its clock (ms since the epoch).
        at_ms: i64,
    },
    /// A manager cancels an invite not yet redeemed.
    Cancel {
        /// The invite's public key.
        invite: Key32,
    },
    /// A manager hands key epochs to devices: a new epoch (a rotation, after a removal), or
    /// the current one to members that lack it. Each device gets every epoch key up to
    /// `epoch`, sealed to it ([`crate::epoch`]).
    Keys {
        /// The newest epoch sealed.
        epoch: u32,
        /// Each device and its sealed keys.
        sealed: Vec<(Key32, Vec<u8>)>,
    },
    /// A manager names the manifest changes of a device it removes that it had taken, and the
    /// agreements it had proposed: once a device is removed, only those changes (and what
    /// other such lists name) are taken from anyone who passes them on, so what it writes after
    /// its removal reaches no informed member, relayed or not; and only those of its agreements
    /// stand, so the co-op keeps its backups and the removed device proposes nothing more.
    KeepChanges {
        /// The removed device.
        device: Key32,
        /// Ids of its change blobs and of the agreements it proposed that the remover held, sorted.
        changes: Vec<[u8; 32]>,
    },
    /// A member countersigns a redemption it took from the joining device in a session, having
    /// judged it by its own roster and clock (open, not used, not cancelled, its maker not
    /// removed, not expired at `at_ms`). A redemption counts only from its first countersignature
    /// by a member whose role is at least the invite's: the joiner's own `at_ms` decides nothing,
    /// and single use is settled by who countersigned first.
    Admit {
        /// The `Redeem` operation countersigned (in this operation's past).
        redeem: OpId,
        /// When the countersigner took it, by its clock (ms since the epoch).
        at_ms: i64,
        /// Empty from a member. From a seeder (on no roster): the proposal naming it, which
        /// must be by a manager at this point and in term at `at_ms`; it then counts as that
        /// manager's role (a seeder restores a device when no member is online).
        credential: Vec<u8>,
    },
    /// A manager sets up social recovery: a manager invite whose key is split among custodians
    /// ([`crate::recovery`]) and never expires. Its redemption takes effect in two steps: a
    /// first countersignature announces it, and only one made `plan.wait_ms` or more after
    /// (by the countersigner's clock) lets the device in; any member may cancel it meanwhile.
    Recovery {
        /// The recovery key's public half.
        key: Key32,
        /// Every key epoch up to `epoch`, sealed to the recovery key.
        keys: Vec<u8>,
        /// The newest epoch in `keys`.
        epoch: u32,
        /// The space secret sealed to the recovery key.
        secret: Vec<u8>,
        /// Who holds the shares, how many rebuild the key, the check values, the wait.
        plan: crate::recovery::Plan,
    },
}

/// An operation's id: BLAKE3 of its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub [u8; 32]);

/// One roster operation, unsigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The space it belongs to.
    pub space: Key32,
    /// The device that made it.
    pub author: Key32,
    /// The operations its author had seen last (the heads of its roster).
    pub deps: Vec<OpId>,
    /// What it does.
    pub action: Action,
}

/// An operation with its author's signature, and a second key's: the space key's for a
/// genesis, the invite key's for a redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOp {
    /// The operation.
    pub op: Op,
    /// The author's signature.
    pub sig: Vec<u8>,
    /// The second key's signature (genesis: the space's; redeem: the invite's), else empty.
    pub co_sig: Vec<u8>,
}

/// Why an operation does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Not an encoded operation of a version we read.
    #[error("not a roster operation: {0}")]
    Malformed(String),
    /// A signature does not verify.
    #[error("the {0} signature does not verify")]
    BadSignature(&'static str),
    /// It belongs to another space.
    #[error("it belongs to another space")]
    OtherSpace,
    /// Its author could not make it at that point of the roster.
    #[error("{0}")]
    NotAllowed(String),
}

fn signed_bytes(tag: &[u8], op: &Op) -> Result<Vec<u8>, RosterError> {
    let mut m = tag.to_vec();
    m.extend(postcard::to_stdvec(op).map_err(|e| RosterError::Malformed(e.to_string()))?);
    Ok(m)
}

fn verify(key: &Key32, msg: &[u8], sig: &[u8], what: &'static str) -> Result<(), RosterError> {
    let k = VerifyingKey::from_bytes(key).map_err(|_| RosterError::BadSignature(what))?;
    let s: [u8; 64] = sig.try_into().map_err(|_| RosterError::BadSignature(what))?;
    k.verify_strict(msg, &Signature::from_bytes(&s)).map_err(|_| RosterError::BadSignature(what))
}

impl SignedOp {
    /// Sign `op` as its author; a genesis also needs the space key, a redemption the invite's.
    pub fn sign(op: Op, author: &SigningKey, co: Option<&SigningKey>) -> Result<Self, RosterError> {
        let sig = author.sign(&signed_bytes(TAG_OP, &op)?).to_bytes().to_vec();
        let co_sig = match (&op.action, co) {
            (Action::Genesis, Some(k)) => k.sign(&signed_bytes(TAG_GENESIS, &op)?).to_bytes().to_vec(),
            (Action::Redeem { .. }, Some(k)) => k.sign(&signed_bytes(TAG_REDEEM, &op)?).to_bytes().to_vec(),
            (Action::Genesis, None) => return Err(RosterError::BadSignature("space")),
            (Action::Redeem { .. }, None) => return Err(RosterError::BadSignature("invite")),
            _ => Vec::new(),
        };
        Ok(Self { op, sig, co_sig })
    }

    /// The bytes stored and sent: the ledger's roster tag, the version, then postcard.
    pub fn encode(&self) -> Result<Vec<u8>, RosterError> {
        let mut out = vec![ROSTER_TAG, ROSTER_VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| RosterError::Malformed(e.to_string()))?);
        Ok(out)
    }

    /// Decode, checking the tag and version.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosterError> {
        let Some(bytes) = bytes.strip_prefix(&[ROSTER_TAG]) else {
            return Err(RosterError::Malformed("not tagged as a roster operation".into()));
        };
        match bytes.split_first() {
            Some((&ROSTER_VERSION, rest)) => {
                let (op, left) =
                    postcard::take_from_bytes::<Self>(rest).map_err(|e| RosterError::Malformed(e.to_string()))?;
                if !left.is_empty() {
                    return Err(RosterError::Malformed("trailing bytes".into()));
                }
                Ok(op)
            }
            Some((v, _)) => Err(RosterError::Malformed(format!("version {v}"))),
            None => Err(RosterError::Malformed("empty".into())),
        }
    }

    /// Its signatures, for `space`. A genesis names the shared key in place of the space (whose
    /// id derives from the genesis): whether it made `space` is checked by its id, which the
    /// caller has ([`space_of_genesis`]).
    pub fn verify(&self, space: &Key32) -> Result<(), RosterError> {
        let genesis = matches!(self.op.action, Action::Genesis);
        if self.op.space != *space && !genesis {
            return Err(RosterError::OtherSpace);
        }
        verify(&self.op.author, &signed_bytes(TAG_OP, &self.op)?, &self.sig, "author")?;
        match &self.op.action {
            Action::Genesis => verify(&self.op.space, &signed_bytes(TAG_GENESIS, &self.op)?, &self.co_sig, "space"),
            Action::Redeem { invite, .. } => {
                verify(invite, &signed_bytes(TAG_REDEEM, &self.op)?, &self.co_sig, "invite")
            }
            _ if !self.co_sig.is_empty() => Err(RosterError::Malformed("a second signature where none belongs".into())),
            _ => Ok(()),
        }
    }
}

/// The id of an encoded operation.
pub fn op_id(encoded: &[u8]) -> OpId {
    OpId(*blake3::hash(encoded).as_bytes())
}

/// A member as the roster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its role.
    pub role: Role,
    /// Its name, sealed (empty: none given).
    pub name: Vec<u8>,
}

/// An invite as the roster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteView {
    /// The manager that made it.
    pub by: Key32,
    /// The role it grants.
    pub role: Role,
    /// The joiner's name, sealed.
    pub name: Vec<u8>,
    /// When it stops working (ms since the epoch).
    pub expires_ms: i64,
    /// The device that redeemed it.
    pub redeemed_by: Option<Key32>,
    /// Whether a manager cancelled it.
    pub cancelled: bool,
    /// Key epochs up to `epoch`, sealed to the invite's key.
    pub keys: Vec<u8>,
    /// The newest epoch in `keys`.
    pub epoch: u32,
    /// The space secret, sealed to the invite's key.
    pub secret: Vec<u8>,
    /// For a recovery invite, its plan (custodians, threshold, check values, waiting period).
    pub plan: Option<crate::recovery::Plan>,
}

/// A recovery announced and not yet in effect: its redemption was countersigned once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovering {
    /// The recovery invite redeemed.
    pub invite: Key32,
    /// When it was announced (the first countersignature's time, ms since the epoch).
    pub since_ms: i64,
    /// When a countersignature may let the device in, unless a member cancels it first.
    pub until_ms: i64,
}

/// A hand-out of key epochs (a [`Action::Keys`] that counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysView {
    /// The newest epoch sealed.
    pub epoch: u32,
    /// Each device and its sealed keys.
    pub sealed: BTreeMap<Key32, Vec<u8>>,
}

/// The roster evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterView {
    /// Members now.
    pub members: BTreeMap<Key32, Member>,
    /// Devices removed and not added again.
    pub removed: BTreeSet<Key32>,
    /// Invites, by their public key.
    pub invites: BTreeMap<Key32, InviteView>,
    /// Devices whose redemption of an invite did not count, and why.
    pub turned_away: BTreeMap<Key32, String>,
    /// Devices whose redemption is valid so far and waits for a member's countersignature
    /// ([`Action::Admit`]), with that redemption.
    pub awaiting: BTreeMap<Key32, OpId>,
    /// Devices recovering the space: announced, waiting out the plan's period.
    pub recovering: BTreeMap<Key32, Recovering>,
    /// Every device that signed an operation that verifies, whether it counts or not.
    pub authors: BTreeSet<Key32>,
    /// Every device that could write at some point (a writer or manager then, whatever now).
    pub ever_wrote: BTreeSet<Key32>,
    /// Every device that managed at some point: its agreements stand after a demotion.
    pub ever_managed: BTreeSet<Key32>,
    /// For a removed device, the ids of its change blobs its removers had taken, and of the
    /// agreements it had proposed that they held: the only ones that count
    /// ([`Action::KeepChanges`]).
    pub kept_changes: BTreeMap<Key32, BTreeSet<[u8; 32]>>,
    /// Key epochs handed out, in the order every device folds them.
    pub keys: Vec<KeysView>,
    /// The epoch new blobs are sealed under: the last one drawn, in that order (0: the
    /// space's first key).
    pub current_epoch: u32,
    /// Operations that do not count, and why.
    pub invalid: BTreeMap<OpId, String>,
    /// Operations waiting for ones they follow.
    pub pending: BTreeSet<OpId>,
    /// The operations that have no successor: what a new operation lists as `deps`.
    pub heads: Vec<OpId>,
}

impl RosterView {
    /// The role of `device`, if it is a member.
    pub fn role(&self, device: &Key32) -> Option<Role> {
        self.members.get(device).map(|m| m.role)
    }

    /// Whether the roster has no members at all: the ledger lacks the space's genesis (a joining
    /// device before its first sync).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.removed.is_empty()
    }

    /// Whether a manifest change signed by `author` (`None`: by the shared space key, as
    /// before rosters: never now) may be taken from peer `from` (`None`: no peer, this device's
    /// own store). A roster without the space's genesis takes none. Otherwise:
    ///
    /// - a writer's or manager's change, always;
    /// - one by a device that could write once and no longer can (removed, or made a reader),
    ///   only when another device passes it on: it is history that device wrote while it
    ///   could, which the members that took it then hold, and refusing it would leave their
    ///   copies apart for good. The device itself is refused: a removed one at the session, a
    ///   reader here;
    /// - one by a device that never could write (a reader's edits, a stranger's), never;
    /// - the shared key's, never (every reader and removed device holds it).
    ///
    /// For a removed device whose remover named the changes it had taken, history is those
    /// changes only (`change`, the blob's id): what it wrote later is refused whoever relays it.
    pub fn may_write(&self, author: Option<&Key32>, from: Option<&Key32>, change: &[u8; 32]) -> Result<(), String> {
        if self.is_empty() {
            return Err("this device holds no roster for the space yet (it has not synced with a member)".into());
        }
        match author {
            None => Err("signed with the shared space key, which grants no power".into()),
            Some(d) => match self.role(d) {
                Some(Role::Write | Role::Manage) => Ok(()),
                _ if Some(d) == from => Err(format!("written by device {}, which may not write now", hex8(d))),
                None if self.removed.contains(d)
                    && self.kept_changes.get(d).is_some_and(|kept| !kept.contains(change)) =>
                {
                    Err(format!("written by device {} after its remover last heard from it", hex8(d)))
                }
                _ if self.ever_wrote.contains(d) => Ok(()),
                Some(Role::Read) => Err(format!("written by device {}, which may only read", hex8(d))),
                None => Err(format!("written by device {}, which is not on the roster", hex8(d))),
            },
        }
    }

    /// The devices that were handed epoch `epoch` (by a key hand-out, or by the invite they
    /// redeemed).
    pub fn holders(&self, epoch: u32) -> BTreeSet<Key32> {
        let mut out: BTreeSet<Key32> =
            self.keys.iter().filter(|k| k.epoch == epoch).flat_map(|k| k.sealed.keys().copied()).collect();
        // A sealing to an invite's key reached whoever redeemed it.
        let via: Vec<Key32> = out.iter().filter_map(|k| self.invites.get(k).and_then(|i| i.redeemed_by)).collect();
        out.extend(via);
        out.extend(self.invites.values().filter(|i| i.epoch == epoch).filter_map(|i| i.redeemed_by));
        out
    }

    /// The epoch drawn last, in the fold's order, that no removed device was handed: an epoch that
    /// reached a removed device (a manager that had not heard of the removal sealed it to that
    /// device, or the removed manager drew it) is never current again. `None`: every epoch
    /// drawn reached one (a manager's device draws a new one at its next upkeep).
    fn newest_unreached(&self) -> Option<u32> {
        let mut drawn: Vec<u32> = Vec::new();
        for k in &self.keys {
            if k.epoch != 0 && !drawn.contains(&k.epoch) {
                drawn.push(k.epoch);
            }
        }
        drawn.into_iter().rev().find(|&e| self.holders(e).is_disjoint(&self.removed))
    }

    /// Invites that may still be redeemed at `now_ms`: not used, not cancelled, not expired.
    /// A manager seals each new key epoch to them too, so a recovery code kept offline for
    /// years still reads what was written after the last removal.
    pub fn open_invites(&self, now_ms: i64) -> impl Iterator<Item = (&Key32, &InviteView)> {
        self.invites.iter().filter(move |(_, i)| i.redeemed_by.is_none() && !i.cancelled && i.expires_ms > now_ms)
    }

    /// Every epoch key `device` can open: those handed to it, and those in the invite whose
    /// key it holds (`invite`). Sealings that do not open are passed over.
    pub fn keys_for(&self, space: &Key32, device: &SigningKey, invite: Option<&SigningKey>) -> crate::epoch::EpochKeys {
        let me = device.verifying_key().to_bytes();
        let mut out = crate::epoch::EpochKeys::new();
        for k in &self.keys {
            if let Some(sealed) = k.sealed.get(&me)
                && let Ok(keys) = crate::epoch::open_keys(device, sealed, &crate::epoch::context(space, k.epoch))
            {
                out.extend(keys);
            }
        }
        if let Some(inv) = invite {
            let key = inv.verifying_key().to_bytes();
            if let Some(i) = self.invites.get(&key)
                && let Ok(keys) = crate::epoch::open_keys(inv, &i.keys, &crate::epoch::context(space, i.epoch))
            {
                out.extend(keys);
            }
            // Epochs drawn after the invite was made, sealed to it by a manager.
            for k in &self.keys {
                if let Some(sealed) = k.sealed.get(&key)
                    && let Ok(keys) = crate::epoch::open_keys(inv, sealed, &crate::epoch::context(space, k.epoch))
                {
                    out.extend(keys);
                }
            }
        }
        out
    }

    /// Why `device` is not a member, in words a refused device can show its user.
    pub fn why_not(&self, device: &Key32) -> String {
        if self.removed.contains(device) {
            "this device was removed from the space by a manager".into()
        } else if let Some(why) = self.turned_away.get(device) {
            format!("{INVITE_REFUSED}: {why}")
        } else {
            "this device is not on the space's roster (join with an invite from a manager)".into()
        }
    }
}

/// The graph of the operations that verify, in causal order (ties by id: the order every
/// device folds in), each with its causal past as a bit set of positions in that order.
struct Graph {
    ids: Vec<OpId>,
    /// Each operation's position.
    index: HashMap<OpId, usize>,
    ops: Vec<SignedOp>,
    past: Vec<Past>,
}

/// An operation's causal past: every position below `full` (a multiple of 64), and the set bits
/// of `bits` from there on. Most histories are mostly linear, so the bits stay short: the past
/// of 10,000 operations in a chain takes a few words each, not 10,000 bits each (which cost
/// 12 MB and a fifth of the time zeroing pages).
struct Past {
    full: usize,
    bits: Vec<u64>,
}

impl Past {
    fn contains(&self, a: usize) -> bool {
        a < self.full || {
            let k = a - self.full;
            self.bits.get(k / 64).is_some_and(|w| w & (1 << (k % 64)) != 0)
        }
    }

    fn len(&self) -> usize {
        self.full + self.bits.iter().map(|w| w.count_ones() as usize).sum::<usize>()
    }

    /// The past of the operation at position `i` whose dependencies are at `deps`.
    fn of(i: usize, deps: &[usize], past: &[Past]) -> Self {
        let full = deps.iter().map(|&j| past[j].full).max().unwrap_or(0);
        let mut bits = vec![0u64; (i - full) / 64 + 1];
        for &j in deps {
            if j >= full {
                bits[(j - full) / 64] |= 1 << ((j - full) % 64);
            }
            let p = &past[j];
            // Words below `full` are all set already; both starts are multiples of 64.
            let skip = (full - p.full.min(full)) / 64;
            for (k, w) in p.bits.iter().enumerate().skip(skip) {
                bits[(p.full + 64 * k - full) / 64] |= w;
            }
        }
        let lead = bits.iter().take_while(|w| **w == u64::MAX).count();
        bits.drain(..lead);
        Past { full: full + 64 * lead, bits }
    }
}

impl Graph {
    /// Whether the operation at position `a` is in the past of the one at `b`.
    fn before(&self, a: usize, b: usize) -> bool {
        self.past[b].contains(a)
    }

    /// How many operations are in the past of the one at `i`.
    fn past_len(&self, i: usize) -> usize {
        self.past[i].len()
    }
}

/// The most roster operations one device may have signed in a space's ledger. A long-lived
/// cooperative's managers make a few hundred (adds, renames, removals, invites, key hand-outs);
/// twice the 10,000 the benchmark opens leaves room for any real one; a device past this is
/// flooding the roster, whose evaluation costs grow with concurrency.
pub const MAX_OPS_PER_DEVICE: usize = 20_000;

/// The first device (in key order) that, by what `encoded` operations claim, signed more than
/// [`MAX_OPS_PER_DEVICE`] of them, and how many. Decoded, not verified, so it is cheap (250,000
/// operations in well under a second): sessions refuse such a ledger before evaluating it.
pub fn over_cap(encoded: &[Vec<u8>]) -> Option<(Key32, usize)> {
    let mut counts: BTreeMap<Key32, usize> = BTreeMap::new();
    for bytes in encoded {
        if let Ok(op) = SignedOp::decode(bytes) {
            *counts.entry(op.op.author).or_default() += 1;
        }
    }
    counts.into_iter().find(|(_, n)| *n > MAX_OPS_PER_DEVICE)
}

/// Operations whose signatures verified, by space and operation id (the hash of the signed
/// bytes, so the same id is the same verdict). A roster is evaluated at every open and several
/// times per session; its signatures, nearly all of the cost (10,000 operations: about 0.6 s),
/// are checked once per process. Bounded: forgotten whole past a million.
static VERIFIED: std::sync::Mutex<Option<HashSet<[u8; 32]>>> = std::sync::Mutex::new(None);

/// [`SignedOp::verify`], remembered when it passes (a failure is checked again: it is rare).
fn verify_remembered(space: &Key32, id: &OpId, op: &SignedOp) -> Result<(), RosterError> {
    // The id hashes the signed bytes, space included: checked here, it is the whole key. A
    // genesis belongs to the space its id makes, and to no other.
    let ours = match op.op.action {
        Action::Genesis => space_of_genesis(id) == *space,
        _ => op.op.space == *space,
    };
    if !ours {
        return Err(RosterError::OtherSpace);
    }
    let key = id.0;
    let known = VERIFIED.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|v| v.contains(&key));
    if known {
        return Ok(());
    }
    op.verify(space)?;
    let mut v = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    let set = v.get_or_insert_with(HashSet::new);
    if set.len() >= 1 << 20 {
        set.clear();
    }
    set.insert(key);
    Ok(())
}

/// Evaluate a roster from its encoded operations (any order, duplicates allowed).
///
/// Each operation is judged in the state of its own past. When that past is everything before
/// it in the order (a history without concurrency there, the usual case), the state is the
/// running one, extended by one operation; only an operation concurrent with others has its
/// past folded from scratch. So a roster of 10,000 operations opens in milliseconds.
pub fn evaluate(space: &Key32, encoded: &[Vec<u8>]) -> RosterView {
    evaluate_with(space, encoded, true)
}

/// [`evaluate`]; without `running`, every operation's past is folded from scratch (the
/// reference the running state is tested against).
fn evaluate_with(space: &Key32, encoded: &[Vec<u8>], running: bool) -> RosterView {
    let mut view = RosterView::default();
    let mut ops = HashMap::new();
    // A device past the cap counts for nothing, and its operations are not even verified (a
    // ledger from before sessions refused such floods, or one written by hand).
    let mut per_author: HashMap<Key32, usize> = HashMap::new();
    // Each operation hashed and decoded once: with signatures remembered, most of an open's cost.
    let decoded: Vec<(OpId, Result<SignedOp, RosterError>)> =
        encoded.iter().map(|b| (op_id(b), SignedOp::decode(b))).collect();
    for op in decoded.iter().filter_map(|(_, d)| d.as_ref().ok()) {
        *per_author.entry(op.op.author).or_default() += 1;
    }
    for (id, decoded) in decoded {
        if let Ok(op) = &decoded
            && per_author.get(&op.op.author).is_some_and(|n| *n > MAX_OPS_PER_DEVICE)
        {
            view.invalid.insert(id, format!("its device signed over {MAX_OPS_PER_DEVICE} roster operations"));
            continue;
        }
        match decoded.and_then(|op| verify_remembered(space, &id, &op).map(|()| op)) {
            Ok(op) => {
                view.authors.insert(op.op.author);
                ops.insert(id, op);
            }
            Err(e) => {
                view.invalid.insert(id, e.to_string());
            }
        }
    }
    let g = graph(ops, &mut view.pending);
    let n = g.ids.len();
    let mut valid = vec![false; n];
    // The state of the valid operations before position `i`, while it is kept current.
    let mut prefix = Some(State::default());
    for i in 0..n {
        let full = running && g.past_len(i) == i;
        if full && prefix.is_none() {
            prefix = Some(fold(&g, &valid, |j| j < i));
        }
        let judged = match (&prefix, full) {
            (Some(s), true) => allowed(s, &g.ops[i].op),
            _ => allowed(&fold(&g, &valid, |j| g.before(j, i)), &g.ops[i].op),
        };
        match judged {
            Ok(()) => {
                valid[i] = true;
                match (&mut prefix, full) {
                    (Some(s), true) => apply_after(s, &g, i),
                    // Concurrent with some before it: it may change how those settle.
                    _ => prefix = None,
                }
            }
            Err(why) => {
                view.invalid.insert(g.ids[i], why);
            }
        }
    }
    let now = match prefix {
        Some(s) => s,
        None => fold(&g, &valid, |_| true),
    };
    // The reason shown is that of the device's latest redemption in the order.
    for i in 0..n {
        let device = g.ops[i].op.author;
        if !matches!(g.ops[i].op.action, Action::Redeem { .. })
            || now.members.contains_key(&device)
            || now.removed.contains(&device)
        {
            continue;
        }
        if now.awaiting.get(&device) == Some(&i) {
            continue;
        }
        let why = view.invalid.get(&g.ids[i]).or_else(|| now.lost.get(&i)).cloned();
        let why = why.unwrap_or_else(|| "its invite was not redeemed".into());
        view.turned_away.insert(device, why);
    }
    view.awaiting = now.awaiting.iter().map(|(d, &i)| (*d, g.ids[i])).collect();
    view.recovering = now
        .recovering
        .iter()
        .filter_map(|(d, &(r, _, since))| {
            let Action::Redeem { invite, .. } = g.ops[r].op.action else { return None };
            let wait = now.invites.get(&invite)?.plan.as_ref()?.wait_ms;
            Some((*d, Recovering { invite, since_ms: since, until_ms: since.saturating_add(wait) }))
        })
        .collect();
    // Redemptions still waiting for their invite.
    for id in &view.pending {
        if let Some(op) = encoded.iter().find(|b| op_id(b) == *id).and_then(|b| SignedOp::decode(b).ok())
            && matches!(op.op.action, Action::Redeem { .. })
            && !now.members.contains_key(&op.op.author)
        {
            view.turned_away.entry(op.op.author).or_insert_with(|| {
                "its invite is not known here yet: the manager who made it must sync with this device first".into()
            });
        }
    }
    view.members = now.members;
    view.removed = now.removed;
    view.ever_wrote = now.ever_wrote;
    view.ever_managed = now.ever_managed;
    view.kept_changes = now.kept;
    view.keys = now.keys;
    view.invites = now.invites;
    view.current_epoch = view.newest_unreached().unwrap_or(now.current_epoch);
    let followed: HashSet<&OpId> = g.ops.iter().flat_map(|o| o.op.deps.iter()).collect();
    view.heads = g.ids.iter().filter(|id| !followed.contains(id)).copied().collect();
    view
}

/// Order the operations causally (ties by id); those whose past is incomplete (an operation
/// not received, or a cycle, which signatures over hashes make impossible) wait.
fn graph(mut ops: HashMap<OpId, SignedOp>, pending: &mut BTreeSet<OpId>) -> Graph {
    let mut indegree: HashMap<OpId, usize> = HashMap::new();
    let mut children: HashMap<OpId, Vec<OpId>> = HashMap::new();
    for (id, op) in &ops {
        let deps: BTreeSet<&OpId> = op.op.deps.iter().collect();
        indegree.insert(*id, deps.len());
        for d in deps {
            children.entry(*d).or_default().push(*id);
        }
    }
    let mut queue: BTreeSet<OpId> = indegree.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
    let mut pos: HashMap<OpId, usize> = HashMap::new();
    let mut g = Graph { ids: Vec::new(), index: HashMap::new(), ops: Vec::new(), past: Vec::new() };
    while let Some(id) = queue.pop_first() {
        let Some(op) = ops.remove(&id) else { continue };
        let i = g.ids.len();
        let deps: Vec<usize> = op.op.deps.iter().filter_map(|d| pos.get(d).copied()).collect();
        let mine = Past::of(i, &deps, &g.past);
        pos.insert(id, i);
        g.ids.push(id);
        g.ops.push(op);
        g.past.push(mine);
        for c in children.get(&id).into_iter().flatten() {
            if let Some(n) = indegree.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    queue.insert(*c);
                }
            }
        }
    }
    pending.extend(ops.into_keys());
    g.index = pos;
    g
}

/// Members, removed devices, invites and keys of a set of valid operations.
#[derive(Default)]
struct State {
    members: BTreeMap<Key32, Member>,
    removed: BTreeSet<Key32>,
    invites: BTreeMap<Key32, InviteView>,
    /// Valid redemptions that lost (to an earlier one, or a concurrent cancellation), and why.
    lost: BTreeMap<usize, String>,
    ever_wrote: BTreeSet<Key32>,
    ever_managed: BTreeSet<Key32>,
    keys: Vec<KeysView>,
    current_epoch: u32,
    /// Removals that stand, by position, and whom they removed.
    standing: Vec<(usize, Key32)>,
    /// The devices `standing` removes: most operations' authors are not among them, and this
    /// spares a scan of every standing removal for each (1,400 of them in a 10,000-operation roster).
    targets: HashSet<Key32>,
    /// Cancellations of invites, by position.
    cancels: Vec<(usize, Key32)>,
    /// Changes of removed devices that count, as their removers named them.
    kept: BTreeMap<Key32, BTreeSet<[u8; 32]>>,
    /// Valid redemptions not countersigned yet: the device, and the redemption's position.
    awaiting: BTreeMap<Key32, usize>,
    /// The name a device awaiting its countersignature gave itself (a joiner names itself
    /// right after its redemption, before any member has seen it).
    awaiting_names: BTreeMap<Key32, Vec<u8>>,
    /// Recoveries announced: the device, its redemption's position, the announcement's
    /// position and time.
    recovering: BTreeMap<Key32, (usize, usize, i64)>,
}

/// The state made by the valid operations that `within` keeps, settled by the module's rules.
fn fold(g: &Graph, valid: &[bool], within: impl Fn(usize) -> bool) -> State {
    let ids: Vec<usize> = (0..g.ids.len()).filter(|&i| valid[i] && within(i)).collect();
    let mut s = State::default();
    // Removals that stand, settled most senior author first: one by a device that a standing
    // removal removed concurrently is cancelled. Seniority was fixed before any conflict (see
    // `seniority`), so of two managers removing each other while apart, the one made a manager
    // first stays, whatever ids the other grinds.
    let senior = seniority(g, &ids);
    let mut removals: Vec<usize> =
        ids.iter().copied().filter(|&i| matches!(g.ops[i].op.action, Action::Remove { .. })).collect();
    removals.sort_by_key(|&i| (senior.get(&g.ops[i].op.author).copied().unwrap_or(usize::MAX), i));
    for i in removals {
        let op = &g.ops[i].op;
        if let Action::Remove { device } = op.action {
            let cancelled = s.standing.iter().any(|&(r, t)| t == op.author && !g.before(i, r) && i != r);
            if !cancelled {
                s.stand(i, device);
            }
        }
    }
    for &i in &ids {
        if let Action::Cancel { invite } = g.ops[i].op.action {
            s.cancels.push((i, invite));
        }
    }
    for i in ids {
        step(&mut s, g, i);
    }
    s
}

/// Each manager's seniority: the position of the first operation that made it one, an operation
/// the manager did not sign and so could not choose (a `Genesis`, the space's first; an `Add` or
/// `SetRole` to manage, by another manager; for a redemption, the manager's `Invite` it
/// redeemed). Of concurrent grants, the order's tie-break (their ids) comes from the grantors.
fn seniority(g: &Graph, ids: &[usize]) -> HashMap<Key32, usize> {
    let mut invites: HashMap<Key32, usize> = HashMap::new();
    let mut out: HashMap<Key32, usize> = HashMap::new();
    for &i in ids {
        let op = &g.ops[i].op;
        let made = match &op.action {
            Action::Genesis => Some((op.author, i)),
            Action::Add { device, role: Role::Manage, .. } | Action::SetRole { device, role: Role::Manage } => {
                Some((*device, i))
            }
            Action::Invite { key, role: Role::Manage, .. } | Action::Recovery { key, .. } => {
                invites.entry(*key).or_insert(i);
                None
            }
            Action::Redeem { invite, .. } => invites.get(invite).map(|&at| (op.author, at)),
            _ => None,
        };
        if let Some((device, at)) = made {
            out.entry(device).or_insert(at);
        }
    }
    out
}

/// `s` with the operation at `i` added, when every operation in `s` is in its past: nothing in
/// `s` is concurrent with it, so it settles nothing retroactively.
fn apply_after(s: &mut State, g: &Graph, i: usize) {
    let op = &g.ops[i].op;
    if let Action::Remove { device } = op.action
        && !s.standing.iter().any(|&(_, t)| t == op.author)
    {
        s.stand(i, device);
    }
    if let Action::Cancel { invite } = op.action {
        s.cancels.push((i, invite));
    }
    step(s, g, i);
}

impl State {
    fn stand(&mut self, removal: usize, device: Key32) {
        self.standing.push((removal, device));
        self.targets.insert(device);
    }
}

/// Fold the operation at `i` into `s`, whose standing removals and cancellations are known.
fn step(s: &mut State, g: &Graph, i: usize) {
    let before = |a: usize, b: usize| g.before(a, b);
    let concurrent = |a: usize, b: usize| a != b && !before(a, b) && !before(b, a);
    let op = &g.ops[i].op;
    // What a removed device did concurrently with (or after) its removal does not count;
    // only a redemption made after the removal (a new invite) brings it back.
    let rejoins = matches!(op.action, Action::Redeem { .. });
    if s.targets.contains(&op.author)
        && s.standing.iter().any(|&(r, t)| t == op.author && i != r && !before(i, r) && !(rejoins && before(r, i)))
    {
        return;
    }
    match &op.action {
        Action::Genesis => {
            // The one genesis this space's id was made from (any other is another space's).
            s.members.insert(op.author, Member { role: Role::Manage, name: Vec::new() });
        }
        Action::Add { device, role, name } => {
            let beaten =
                s.targets.contains(device) && s.standing.iter().any(|&(r, t)| t == *device && concurrent(i, r));
            if !beaten {
                s.removed.remove(device);
                // Back on the roster: its old list no longer bounds what it writes (a later
                // removal gets a list of its own).
                s.kept.remove(device);
                s.members.insert(*device, Member { role: *role, name: name.clone() });
            }
        }
        Action::SetRole { device, role } => {
            let beaten =
                s.targets.contains(device) && s.standing.iter().any(|&(r, t)| t == *device && concurrent(i, r));
            if let (false, Some(m)) = (beaten, s.members.get_mut(device)) {
                m.role = *role;
            }
        }
        Action::Rename { device, name } => {
            if let Some(m) = s.members.get_mut(device) {
                m.name = name.clone();
            } else if s.awaiting.contains_key(device) {
                s.awaiting_names.insert(*device, name.clone());
            }
        }
        Action::Remove { device } => {
            if s.standing.iter().any(|&(r, _)| r == i) {
                s.members.remove(device);
                s.removed.insert(*device);
            }
        }
        Action::Invite { key, role, name, expires_ms, keys, epoch, secret } => {
            s.invites.entry(*key).or_insert(InviteView {
                by: op.author,
                role: *role,
                name: name.clone(),
                expires_ms: *expires_ms,
                redeemed_by: None,
                cancelled: false,
                keys: keys.clone(),
                epoch: *epoch,
                secret: secret.clone(),
                plan: None,
            });
        }
        Action::Recovery { key, keys, epoch, secret, plan } => {
            s.invites.entry(*key).or_insert(InviteView {
                by: op.author,
                role: Role::Manage,
                name: Vec::new(),
                expires_ms: i64::MAX,
                redeemed_by: None,
                cancelled: false,
                keys: keys.clone(),
                epoch: *epoch,
                secret: secret.clone(),
                plan: Some(plan.clone()),
            });
        }
        Action::Keys { epoch, sealed } => {
            if *epoch != 0 && !s.keys.iter().any(|k| k.epoch == *epoch) {
                s.current_epoch = *epoch;
            }
            s.keys.push(KeysView { epoch: *epoch, sealed: sealed.iter().cloned().collect() });
        }
        Action::KeepChanges { device, changes } => {
            s.kept.entry(*device).or_default().extend(changes.iter().copied());
        }
        Action::Cancel { invite } => {
            if let Some(inv) = s.invites.get_mut(invite).filter(|inv| inv.redeemed_by.is_none()) {
                inv.cancelled = true;
            }
            // A recovery cancelled in its window grants nothing.
            let gone: Vec<Key32> = s
                .recovering
                .iter()
                .filter(
                    |(_, (r, _, _))| matches!(&g.ops[*r].op.action, Action::Redeem { invite: k, .. } if k == invite),
                )
                .map(|(d, _)| *d)
                .collect();
            for d in gone {
                s.recovering.remove(&d);
                s.awaiting.remove(&d);
            }
        }
        Action::Redeem { invite, .. } => {
            if let Err(why) = redeemable(s, g, i, *invite, i) {
                s.lost.insert(i, why);
            } else if !s.members.contains_key(&op.author) {
                // It counts once a member countersigns it.
                s.awaiting.insert(op.author, i);
            }
        }
        Action::Admit { redeem, at_ms, credential } => {
            let Some(&r) = g.index.get(redeem).filter(|&&r| before(r, i)) else { return };
            let (joiner, Action::Redeem { invite, .. }) = (g.ops[r].op.author, &g.ops[r].op.action) else { return };
            let admitter = if credential.is_empty() {
                s.members.get(&op.author).map(|m| m.role)
            } else {
                seeder_role(s, &op.space, &op.author, credential, *at_ms)
            };
            let judged = redeemable(s, g, r, *invite, i).and_then(|()| match s.invites.get(invite) {
                Some(inv) if admitter < Some(inv.role) => {
                    Err("countersigned by a member whose role is below the invite's".to_string())
                }
                Some(inv) if *at_ms > inv.expires_ms => {
                    Err("the invite had expired when a member countersigned it".to_string())
                }
                _ => Ok(()),
            });
            // A removed device rejoins only by a redemption made after its removal.
            let removed_then = s.targets.contains(&joiner)
                && s.standing.iter().any(|&(rm, t)| t == joiner && !before(r, rm) && !before(rm, r));
            match (judged, s.invites.get_mut(invite)) {
                (Err(why), _) => {
                    // Turned away, by the first member that judged it (another may still admit
                    // it, if the invite allows).
                    s.awaiting.remove(&joiner);
                    s.lost.insert(r, why);
                }
                (Ok(()), Some(inv)) if inv.redeemed_by.is_none() && !removed_then && inv.plan.is_some() => {
                    // A recovery: the first countersignature announces it; one made after the
                    // waiting period, having seen the announcement, lets the device in.
                    let wait = inv.plan.as_ref().map_or(0, |p| p.wait_ms);
                    match s.recovering.get(&joiner).copied() {
                        None => {
                            s.recovering.insert(joiner, (r, i, *at_ms));
                        }
                        Some((rr, ann, since)) if rr == r && before(ann, i) && *at_ms >= since.saturating_add(wait) => {
                            inv.redeemed_by = Some(joiner);
                            s.recovering.remove(&joiner);
                            s.awaiting.remove(&joiner);
                            s.removed.remove(&joiner);
                            s.kept.remove(&joiner);
                            s.members.insert(
                                joiner,
                                Member { role: inv.role, name: s.awaiting_names.remove(&joiner).unwrap_or_default() },
                            );
                        }
                        // Too early, or not having seen the announcement: nothing.
                        Some(_) => {}
                    }
                }
                (Ok(()), Some(inv)) if inv.redeemed_by.is_none() && !removed_then => {
                    inv.redeemed_by = Some(joiner);
                    s.awaiting.remove(&joiner);
                    s.removed.remove(&joiner);
                    s.kept.remove(&joiner);
                    let name = s.awaiting_names.remove(&joiner).unwrap_or_else(|| inv.name.clone());
                    s.members.insert(joiner, Member { role: inv.role, name });
                }
                _ => {}
            }
        }
    }
    // Only the device the operation names can have gained a role (not every member: a roster
    // of 10,000 operations spent a fifth of its open re-inserting all of them).
    let gained = match &op.action {
        Action::Genesis => Some(op.author),
        Action::Admit { redeem, .. } => g.index.get(redeem).map(|&r| g.ops[r].op.author),
        Action::Add { device, .. } | Action::SetRole { device, .. } => Some(*device),
        _ => None,
    };
    if let Some(d) = gained
        && let Some(m) = s.members.get(&d)
    {
        if m.role >= Role::Write {
            s.ever_wrote.insert(d);
        }
        if m.role == Role::Manage {
            s.ever_managed.insert(d);
        }
    }
}

/// The role a seeder's countersignature counts as: that of the manager whose proposal naming
/// it (`credential`) is in term at `at_ms`; `None` for anything else.
fn seeder_role(s: &State, space: &Key32, seeder: &Key32, credential: &[u8], at_ms: i64) -> Option<Role> {
    let a = cobox_agreements::Entry::check_credential(credential, space, seeder).ok()?;
    let role = s.members.get(&a.owner).map(|m| m.role);
    (role == Some(Role::Manage) && a.in_term(at_ms)).then_some(Role::Manage)
}

/// Whether the redemption at `r` of `invite` may count when judged at position `at` (the
/// redemption itself, or its countersignature): the invite is known, its maker was not removed
/// before `at` saw it, it was not used by another device, nor cancelled.
fn redeemable(s: &State, g: &Graph, r: usize, invite: Key32, at: usize) -> Result<(), String> {
    let concurrent = |a: usize, b: usize| a != b && !g.before(a, b) && !g.before(b, a);
    let Some(inv) = s.invites.get(&invite) else { return Err(MAKER_REMOVED.into()) };
    let joiner = g.ops[r].op.author;
    // A removed manager's pending invites die with it: one not in the past of the maker's
    // removal (made after it, or without having seen it) counts for nothing.
    if s.standing.iter().any(|&(rm, t)| t == inv.by && !g.before(at, rm)) {
        return Err(MAKER_REMOVED.into());
    }
    if let Some(first) = inv.redeemed_by.filter(|d| *d != joiner) {
        return Err(format!("the invite was already used by device {}", hex8(&first)));
    }
    if inv.cancelled || s.cancels.iter().any(|&(c, k)| k == invite && concurrent(at, c)) {
        return Err("the invite was cancelled".into());
    }
    Ok(())
}

/// How a refused invite is told to its device (a peer's refusal and the local roster alike), so
/// the joining device can tell this refusal from others.
pub const INVITE_REFUSED: &str = "this device's invite was refused";

/// Why a redemption of a removed manager's invite counts for nothing.
const MAKER_REMOVED: &str = "the manager who made the invite was removed from the space";

fn hex8(k: &Key32) -> String {
    k[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `op`'s author could make it in state `s` (its causal past).
fn allowed(s: &State, op: &Op) -> Result<(), String> {
    let role = s.members.get(&op.author).map(|m| m.role);
    let manager = role == Some(Role::Manage);
    match &op.action {
        // Checked by its space signature; whether it grants anything is the fold's concern.
        Action::Genesis => Ok(()),
        Action::Redeem { .. } if s.members.contains_key(&op.author) => {
            Err("redeems an invite for a device that is already a member".into())
        }
        Action::Redeem { invite, at_ms } => match s.invites.get(invite) {
            None => Err("redeems an invite this roster does not hold".into()),
            Some(i) if i.cancelled => Err("the invite was cancelled".into()),
            Some(i) if s.removed.contains(&i.by) => Err(MAKER_REMOVED.into()),
            Some(i) if i.redeemed_by.is_some() => Err("the invite was already used".into()),
            Some(i) if *at_ms > i.expires_ms => Err("the invite had expired".into()),
            Some(_) => Ok(()),
        },
        Action::Add { device, .. } if s.members.contains_key(device) => {
            Err("adds a device that is already a member".into())
        }
        // Any member cancels a recovery in its window (the person whose devices it claims may
        // hold only a writer's device); other invites only a manager cancels.
        Action::Cancel { invite }
            if role.is_some() && s.invites.get(invite).is_some_and(|i| i.plan.is_some() && i.redeemed_by.is_none()) =>
        {
            Ok(())
        }
        Action::Add { .. }
        | Action::SetRole { .. }
        | Action::Invite { .. }
        | Action::Recovery { .. }
        | Action::Cancel { .. }
        | Action::Keys { .. }
        | Action::KeepChanges { .. }
            if !manager =>
        {
            Err("only a manager adds members, changes roles, makes and cancels invites, hands out keys or names a removed device's changes".into())
        }
        Action::Invite { key, .. } | Action::Recovery { key, .. } if s.invites.contains_key(key) => {
            Err("reuses an invite key".into())
        }
        Action::Recovery { plan, .. } if plan.check().is_err() => Err("its recovery plan is malformed".into()),
        Action::Cancel { invite } => match s.invites.get(invite) {
            None => Err("cancels an invite this roster does not hold".into()),
            Some(i) if i.redeemed_by.is_some() => Err("cancels an invite already used".into()),
            Some(_) => Ok(()),
        },
        Action::SetRole { device, .. } if !s.members.contains_key(device) => {
            Err("changes the role of a device that is not a member".into())
        }
        // A joiner names itself before a member countersigned it.
        Action::Rename { device, .. } if op.author == *device && s.awaiting.contains_key(device) => Ok(()),
        Action::Rename { device, .. } | Action::Remove { device } if !(manager || op.author == *device) => {
            Err("only a manager, or the device itself, renames or removes a member".into())
        }
        Action::Rename { device, .. } | Action::Remove { device } if !s.members.contains_key(device) => {
            Err("names a device that is not a member".into())
        }
        // A seeder's countersignature: its credential is judged in the fold.
        Action::Admit { credential, .. } if !credential.is_empty() => Ok(()),
        _ if role.is_none() => Err("its author is not a member at that point".into()),
        _ => Ok(()),
    }
}

/// The agreements of a ledger as this roster allows them: only managers propose and revoke on
/// the owner's side, only members' audits count. A ledger with no roster at all (a space from
/// before rosters, which gains one when a member opens it) keeps the old rule: the proposal's
/// and audit's space signature. Every space made since has its creator on the roster.
impl cobox_agreements::Authority for RosterView {
    // No roster (a ledger without the space's genesis, as a joining device holds before its
    // first sync) grants nothing to anyone.
    fn manages(&self, device: &Key32) -> bool {
        self.role(device) == Some(Role::Manage)
    }
    fn member(&self, device: &Key32) -> bool {
        self.role(device).is_some()
    }
    fn proposes(&self, device: &Key32, agreement: &cobox_agreements::AgreementId) -> bool {
        if self.removed.contains(device) {
            return self.kept_changes.get(device).is_some_and(|kept| kept.contains(&agreement.0));
        }
        self.manages(device) || self.ever_managed.contains(device)
    }
}

/// A space's ledger evaluated: its roster from the roster operations among `entries`, then
/// every agreement entry held to that roster's verdict (the space key grants nothing).
/// `verified` remembers signature verdicts across calls.
pub fn ledger_view(
    space: &crate::ids::SpaceId,
    entries: &[(String, Vec<u8>)],
    now_ms: i64,
    verified: &mut cobox_agreements::Verified,
) -> cobox_agreements::LedgerView {
    let ops: Vec<Vec<u8>> = entries
        .iter()
        .filter(|(_, b)| b.first() == Some(&cobox_agreements::ROSTER_TAG))
        .map(|(_, b)| b.clone())
        .collect();
    let roster = evaluate(&space.0, &ops);
    cobox_agreements::evaluate_with(&space.0, entries, now_ms, verified, &roster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct World {
        space: SigningKey,
        log: Vec<Vec<u8>>,
        /// The space's id: made by the first genesis (by device 1, unless a test says).
        id: Option<Key32>,
    }

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn pk(n: u8) -> Key32 {
        key(n).verifying_key().to_bytes()
    }

    impl World {
        fn new() -> Self {
            Self { space: key(99), log: Vec::new(), id: None }
        }
        fn space(&self) -> Key32 {
            self.id.unwrap_or_else(|| genesis(&self.space, &key(1)).expect("genesis").1)
        }
        /// `author` makes `action` having seen `seen` (the ops of the log by index).
        fn op(&mut self, author: u8, seen: &[usize], action: Action) -> usize {
            if let Action::Genesis = action {
                let (bytes, id) = genesis(&self.space, &key(author)).unwrap();
                self.id.get_or_insert(id);
                self.log.push(bytes);
                return self.log.len() - 1;
            }
            let deps = seen.iter().map(|i| op_id(&self.log[*i])).collect();
            let op = Op { space: self.space(), author: pk(author), deps, action };
            let co = match op.action {
                Action::Genesis => Some(self.space.clone()),
                // Invite keys in these tests: key(200 + n) for invite n.
                Action::Redeem { invite, .. } => (200..=255).map(key).find(|k| k.verifying_key().to_bytes() == invite),
                _ => None,
            };
            self.log.push(SignedOp::sign(op, &key(author), co.as_ref()).unwrap().encode().unwrap());
            self.log.len() - 1
        }
        fn view(&self) -> RosterView {
            evaluate(&self.space(), &self.log)
        }
        /// `who` draws the epoch of key `fresh` after op `after`, sealed to devices `to`: the
        /// op's index and the epoch.
        fn draw(&mut self, who: u8, after: usize, fresh: [u8; 32], to: &[u8]) -> (usize, u32) {
            use crate::epoch::{EpochKeys, context, epoch_id, seal_keys};
            let (space, id) = (self.space(), epoch_id(&fresh));
            let keys: EpochKeys = [(id, fresh)].into_iter().collect();
            let sealed =
                to.iter().map(|&d| (pk(d), seal_keys(&pk(d), &keys, &context(&space, id), [d; 32]).unwrap())).collect();
            (self.op(who, &[after], Action::Keys { epoch: id, sealed }), id)
        }
    }

    fn add(n: u8, role: Role) -> Action {
        Action::Add { device: pk(n), role, name: vec![n] }
    }

    #[test]
    fn the_creator_manages_adds_and_removes() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Write));
        let b = w.op(1, &[a], add(3, Role::Read));
        let v = w.view();
        assert_eq!(
            (v.role(&pk(1)), v.role(&pk(2)), v.role(&pk(3))),
            (Some(Role::Manage), Some(Role::Write), Some(Role::Read))
        );
        // A reader and a writer cannot add; the reader can leave.
        let bad = w.op(3, &[b], add(4, Role::Manage));
        let bad2 = w.op(2, &[b], Action::Remove { device: pk(3) });
        let leave = w.op(3, &[b], Action::Remove { device: pk(3) });
        let v = w.view();
        assert!(v.invalid.contains_key(&op_id(&w.log[bad])) && v.invalid.contains_key(&op_id(&w.log[bad2])));
        assert!(!v.invalid.contains_key(&op_id(&w.log[leave])));
        assert_eq!(v.role(&pk(4)), None);
        assert!(v.removed.contains(&pk(3)));
        assert_eq!(v.heads.len(), 3, "three concurrent heads after b");
    }

    /// A removed manager's concurrent add is cancelled; so is its removal of the other.
    #[test]
    fn a_removal_cancels_what_the_removed_manager_did_concurrently() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Manage));
        let r = w.op(1, &[a], Action::Remove { device: pk(2) });
        let x = w.op(2, &[a], add(5, Role::Write));
        let v = w.view();
        assert_eq!(v.role(&pk(5)), None, "added concurrently with its author's removal");
        assert!(v.removed.contains(&pk(2)));
        // An add after the removal, by the remaining manager, brings a device back.
        w.op(1, &[r, x], add(2, Role::Read));
        assert_eq!(w.view().role(&pk(2)), Some(Role::Read));
    }

    /// Of two managers removing each other while apart, the senior (made a manager first, by an
    /// operation it did not sign) stays, whatever the order or ids: here the creator.
    #[test]
    fn two_managers_removing_each_other_leave_the_senior() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Manage));
        w.op(1, &[a], Action::Remove { device: pk(2) });
        w.op(2, &[a], Action::Remove { device: pk(1) });
        let v = w.view();
        assert_eq!(v.members.keys().collect::<Vec<_>>(), vec![&pk(1)], "the senior stands: {v:?}");
        assert_eq!(v.removed, [pk(2)].into_iter().collect());
    }

    /// A manager that had not heard of a removal draws an epoch and seals it to the removed
    /// device: that epoch is never current, even where it comes last in the order.
    #[test]
    fn an_epoch_that_reached_a_removed_device_is_never_current() {
        let mut came_last = 0;
        for n in 0..24u8 {
            let mut w = World::new();
            let g = w.op(1, &[], Action::Genesis);
            let a = w.op(1, &[g], add(2, Role::Manage));
            let b = w.op(1, &[a], add(3, Role::Write));
            // Other ids in each variant, so the order places the two draws either way.
            let named = w.op(1, &[b], Action::Rename { device: pk(1), name: vec![n] });
            let r = w.op(1, &[named], Action::Remove { device: pk(3) });
            let kept = w.draw(1, r, [1 + n; 32], &[1, 2]).1;
            let leaked = w.draw(2, b, [100 + n; 32], &[1, 2, 3]).1;
            let v = w.view();
            came_last += usize::from(v.keys.last().map(|k| k.epoch) == Some(leaked));
            assert_eq!(v.current_epoch, kept, "variant {n}");
            assert!(v.holders(leaked).contains(&pk(3)));
        }
        assert!(came_last > 0, "some variant puts the leaked epoch last in the order");
    }

    /// Every member holds the shared key, so a genesis signed with it grants nothing but the
    /// one the space's id was made from: a reader (or a removed device) that signs another, with
    /// or without a removal in the roster, stays what it was. Before, a genesis signed with the
    /// shared key made its author a manager while no removal stood.
    #[test]
    fn only_the_genesis_the_space_id_was_made_from_counts() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        w.op(1, &[g], add(2, Role::Read));
        w.op(2, &[], Action::Genesis);
        let v = w.view();
        assert_eq!(v.role(&pk(2)), Some(Role::Read), "{v:?}");
        assert_eq!(v.invalid.len(), 1, "it belongs to another space: {:?}", v.invalid);
        // Its removal of the creator, made as if it managed, counts for nothing either.
        let last = w.log.len() - 1;
        w.op(2, &[last], Action::Remove { device: pk(1) });
        let v = w.view();
        assert_eq!(v.role(&pk(1)), Some(Role::Manage));
        // A genesis made with the shared key and another creator makes another space.
        let (other, id) = genesis(&key(99), &key(2)).unwrap();
        assert_ne!(id, w.space());
        assert_eq!(space_public_key(&id, &other), Some(pk(99)));
        assert_eq!(space_public_key(&w.space(), &other), None, "not this space's genesis");
    }

    #[test]
    fn forged_foreign_and_garbage_operations_do_not_count() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let mut forged = SignedOp::decode(&w.log[g]).unwrap();
        forged.op.author = pk(7);
        w.log.push(forged.encode().unwrap());
        let other = Op { space: pk(50), author: pk(1), deps: vec![], action: add(8, Role::Write) };
        w.log.push(SignedOp::sign(other, &key(1), None).unwrap().encode().unwrap());
        w.log.push(vec![ROSTER_TAG, ROSTER_VERSION, 1, 2, 3]);
        let no_space = Op { space: w.space(), author: pk(9), deps: vec![], action: Action::Genesis };
        let mut ns = SignedOp::sign(no_space, &key(9), Some(&key(42))).unwrap();
        ns.co_sig[0] ^= 1;
        w.log.push(ns.encode().unwrap());
        let v = w.view();
        assert_eq!(v.members.len(), 1);
        assert_eq!(v.invalid.len(), 4, "{:?}", v.invalid);
        // One that follows an operation we lack waits.
        w.op(1, &[], add(3, Role::Read));
        let mut late = SignedOp::decode(w.log.last().unwrap()).unwrap();
        late.op.deps = vec![OpId([5; 32])];
        w.log.push(SignedOp::sign(late.op, &key(1), None).unwrap().encode().unwrap());
        assert_eq!(w.view().pending.len(), 1);
    }

    fn invite(n: u8, role: Role, expires_ms: i64) -> Action {
        Action::Invite { key: pk(200 + n), role, name: vec![n], expires_ms, keys: vec![], epoch: 0, secret: vec![] }
    }

    fn redeem(n: u8, at_ms: i64) -> Action {
        Action::Redeem { invite: pk(200 + n), at_ms }
    }

    /// `by` countersigns the redemption at log position `r`, at its clock's `at_ms`.
    fn admit(w: &mut World, by: u8, r: usize, at_ms: i64) -> usize {
        let redeem = op_id(&w.log[r]);
        w.op(by, &[r], Action::Admit { redeem, at_ms, credential: vec![] })
    }

    /// A removed manager's pending invites die with it, whether the redemption came after the
    /// removal or concurrently with it; one redeemed before the removal stands. Before: they
    /// stayed valid, so a removed manager's leaked code still let devices in.
    #[test]
    fn a_removed_managers_invites_die_with_it() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let m = w.op(1, &[g], add(2, Role::Manage));
        let i1 = w.op(2, &[m], invite(1, Role::Write, 10_000));
        let i2 = w.op(2, &[i1], invite(2, Role::Write, 10_000));
        let i3 = w.op(2, &[i2], invite(3, Role::Write, 10_000));
        let early = w.op(6, &[i3], redeem(3, 100));
        let early = admit(&mut w, 2, early, 100);
        let r = w.op(1, &[early], Action::Remove { device: pk(2) });
        // After the removal, and concurrently with it, each countersigned.
        let after = w.op(4, &[r], redeem(1, 200));
        admit(&mut w, 1, after, 200);
        let apart = w.op(5, &[i3], redeem(2, 200));
        admit(&mut w, 2, apart, 200);
        let v = w.view();
        assert_eq!(v.role(&pk(4)), None);
        assert_eq!(v.role(&pk(5)), None);
        assert!(v.why_not(&pk(4)).contains("made the invite was removed"), "{}", v.why_not(&pk(4)));
        assert!(v.why_not(&pk(5)).contains("made the invite was removed"), "{}", v.why_not(&pk(5)));
        assert_eq!(v.role(&pk(6)), Some(Role::Write), "redeemed before the removal: stands");
        // The same for the reference fold.
        assert_eq!(evaluate_with(&w.space(), &w.log, false).members, v.members);
    }

    #[test]
    fn an_invite_works_once_and_until_it_expires() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let i = w.op(1, &[g], invite(1, Role::Write, 1_000));
        let r = w.op(2, &[i], redeem(1, 500));
        // Not before a member countersigns it.
        let v = w.view();
        assert_eq!(v.role(&pk(2)), None);
        assert_eq!(v.awaiting.get(&pk(2)), Some(&op_id(&w.log[r])));
        assert!(!v.turned_away.contains_key(&pk(2)), "waiting is not turned away");
        // It names itself meanwhile (as `cobox join` does): the name counts once admitted.
        w.op(2, &[r], Action::Rename { device: pk(2), name: vec![42] });
        let r = admit(&mut w, 1, r, 600);
        let v = w.view();
        assert_eq!(v.role(&pk(2)), Some(Role::Write));
        assert!(v.awaiting.is_empty());
        assert_eq!(v.members[&pk(2)].name, vec![42]);
        assert_eq!(evaluate_with(&w.space(), &w.log, false).members, v.members, "the reference fold agrees");
        assert_eq!(v.invites[&pk(201)].redeemed_by, Some(pk(2)));
        // A second redemption that saw the first is invalid; the device is turned away.
        let again = w.op(3, &[r], redeem(1, 600));
        let v = w.view();
        assert_eq!(v.role(&pk(3)), None);
        assert!(v.invalid.contains_key(&op_id(&w.log[again])));
        assert!(v.why_not(&pk(3)).contains("already used"), "{}", v.why_not(&pk(3)));
        // One dated after the expiry counts for nothing.
        let j = w.op(1, &[r], invite(2, Role::Read, 1_000));
        w.op(4, &[j], redeem(2, 1_001));
        let v = w.view();
        assert_eq!(v.role(&pk(4)), None);
        assert!(v.why_not(&pk(4)).contains("expired"));
        // Nor one the joiner dates in time (a backdated one) when a member took it after the
        // expiry by its own clock: the countersignature decides. Before, the self-declared
        // date did.
        let late = w.op(1, &[j], invite(4, Role::Read, 1_000));
        let backdated = w.op(6, &[late], redeem(4, 10));
        admit(&mut w, 1, backdated, 1_001);
        let v = w.view();
        assert_eq!(v.role(&pk(6)), None);
        assert!(v.why_not(&pk(6)).contains("expired when a member countersigned"), "{}", v.why_not(&pk(6)));
        // A member grants no more than its own role: a writer's countersignature of a manager's
        // invite counts for nothing, a manager's then does.
        let high = w.op(1, &[late], invite(5, Role::Manage, 1_000));
        let asks = w.op(7, &[high], redeem(5, 10));
        let by_writer = admit(&mut w, 2, asks, 20);
        assert_eq!(w.view().role(&pk(7)), None);
        assert!(w.view().why_not(&pk(7)).contains("below the invite's"));
        w.op(1, &[by_writer], Action::Admit { redeem: op_id(&w.log[asks]), at_ms: 30, credential: vec![] });
        assert_eq!(w.view().role(&pk(7)), Some(Role::Manage));
        // A redemption signed without the invite's key does not verify.
        let k = w.op(1, &[j], invite(3, Role::Read, 1_000));
        let op = Op { space: w.space(), author: pk(5), deps: vec![op_id(&w.log[k])], action: redeem(3, 10) };
        w.log.push(SignedOp::sign(op, &key(5), Some(&key(77))).unwrap().encode().unwrap());
        assert_eq!(w.view().role(&pk(5)), None);
    }

    /// Two devices redeem one invite at two members while apart: one stands, the same everywhere.
    #[test]
    fn concurrent_redemptions_of_one_invite_converge_on_one() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let i = w.op(1, &[g], invite(1, Role::Read, 1_000));
        let a = w.op(2, &[i], redeem(1, 10));
        let b = w.op(3, &[i], redeem(1, 10));
        admit(&mut w, 1, a, 20);
        admit(&mut w, 1, b, 20);
        let v = w.view();
        let joined = [pk(2), pk(3)].iter().filter(|d| v.members.contains_key(*d)).count();
        assert_eq!(joined, 1, "{v:?}");
        assert_eq!(v.turned_away.len(), 1);
        let mut reversed = w.log.clone();
        reversed.reverse();
        assert_eq!(evaluate(&w.space(), &reversed), v);
    }

    #[test]
    fn a_cancellation_beats_a_concurrent_redemption() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let i = w.op(1, &[g], invite(1, Role::Write, 1_000));
        let c = w.op(1, &[i], Action::Cancel { invite: pk(201) });
        let r = w.op(2, &[i], redeem(1, 10));
        // Countersigned by a member that had not heard of the cancellation.
        w.op(4, &[g], add(4, Role::Manage));
        admit(&mut w, 4, r, 20);
        let v = w.view();
        assert_eq!(v.role(&pk(2)), None);
        assert!(v.invites[&pk(201)].cancelled);
        assert!(v.why_not(&pk(2)).contains("cancelled"));
        // After the cancellation, a redemption is invalid outright.
        w.op(3, &[c], redeem(1, 10));
        assert_eq!(w.view().role(&pk(3)), None);
        // Only a manager invites or cancels.
        let bad = w.op(2, &[c], invite(4, Role::Manage, 1_000));
        assert!(w.view().invalid.contains_key(&op_id(&w.log[bad])));
    }

    /// A recovery invite of key `200 + n` (its plan dealt to custodians 10..13, waiting `wait_ms`).
    fn recovery(n: u8, wait_ms: i64) -> Action {
        let mut plan =
            crate::recovery::deal(&pk(1), vec![pk(10), pk(11), pk(12)], 2, wait_ms, [n; 32]).expect("deal").plan;
        // The tests sign the redemption with key(200 + n): the plan names that key.
        plan.key = pk(200 + n);
        Action::Recovery { key: pk(200 + n), keys: vec![], epoch: 0, secret: vec![], plan }
    }

    /// A recovery is announced by a first countersignature, lets the device in only by one made
    /// after the waiting period that saw the announcement, and a member's cancellation in the
    /// window grants nothing; the device is never a member before.
    #[test]
    fn a_recovery_takes_effect_only_after_its_wait_and_a_member_can_cancel_it() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let writer = w.op(1, &[g], add(3, Role::Write));
        let i = w.op(1, &[writer], recovery(1, 1_000));
        let r = w.op(2, &[i], redeem(1, 5));
        let announced = admit(&mut w, 1, r, 100);
        let v = w.view();
        assert_eq!(v.role(&pk(2)), None, "announced, not in effect");
        assert_eq!(v.recovering[&pk(2)], Recovering { invite: pk(201), since_ms: 100, until_ms: 1_100 });
        let again = |at_ms| Action::Admit { redeem: op_id(&w.log[r]), at_ms, credential: vec![] };
        let (too_early, in_time) = (again(1_099), again(1_100));
        // Not having seen the announcement, even after the wait: nothing.
        let blind = w.op(1, &[r], in_time.clone());
        assert_eq!(w.view().role(&pk(2)), None);
        // Too early, having seen it: nothing.
        let early = w.op(1, &[announced, blind], too_early);
        assert_eq!(w.view().role(&pk(2)), None);
        // After the wait, having seen it: a manager.
        w.op(1, &[early], in_time);
        let v = w.view();
        assert_eq!(v.role(&pk(2)), Some(Role::Manage));
        assert!(v.recovering.is_empty());
        assert_eq!(evaluate_with(&w.space(), &w.log, false).members, v.members, "the reference fold agrees");
        // Recovering removed nobody.
        assert_eq!(v.role(&pk(1)), Some(Role::Manage));
        assert_eq!(v.role(&pk(3)), Some(Role::Write));

        // A second recovery, cancelled in its window by a writer: it grants nothing, even to a
        // countersignature after the wait that did not see the cancellation.
        let i2 = w.op(1, &[announced], recovery(2, 1_000));
        let r2 = w.op(4, &[i2], redeem(2, 5));
        let a2 = admit(&mut w, 1, r2, 200);
        assert!(w.view().recovering.contains_key(&pk(4)));
        let cancel = w.op(3, &[a2], Action::Cancel { invite: pk(202) });
        assert!(!w.view().invalid.contains_key(&op_id(&w.log[cancel])), "any member cancels a recovery");
        assert!(w.view().recovering.is_empty(), "cancelled: no longer announced");
        // Seen the announcement, not the cancellation, after the wait: still nothing.
        w.op(1, &[a2], Action::Admit { redeem: op_id(&w.log[r2]), at_ms: 5_000, credential: vec![] });
        let v = w.view();
        assert_eq!(v.role(&pk(4)), None);
        assert!(v.invites[&pk(202)].cancelled);
        // A writer cannot cancel an ordinary invite, nor set recovery up.
        let plain = w.op(1, &[cancel], invite(5, Role::Read, 10_000));
        let bad_cancel = w.op(3, &[plain], Action::Cancel { invite: pk(205) });
        let bad_setup = w.op(3, &[plain], recovery(6, 0));
        let v = w.view();
        assert!(v.invalid.contains_key(&op_id(&w.log[bad_cancel])));
        assert!(v.invalid.contains_key(&op_id(&w.log[bad_setup])));
    }

    /// Whose manifest changes are taken, and from whom.
    #[test]
    fn changes_are_taken_from_writers_and_as_history_from_others() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Write));
        let b = w.op(1, &[a], add(3, Role::Read));
        let v = w.view();
        assert_eq!(v.may_write(Some(&pk(2)), Some(&pk(2)), &[0; 32]), Ok(()));
        assert!(v.may_write(Some(&pk(3)), Some(&pk(3)), &[0; 32]).is_err(), "a reader's own edit");
        assert!(v.may_write(Some(&pk(3)), Some(&pk(1)), &[0; 32]).is_err(), "nor passed on: it never could write");
        assert!(v.may_write(Some(&pk(9)), Some(&pk(1)), &[0; 32]).is_err(), "a stranger's");
        assert!(v.may_write(None, None, &[0; 32]).is_err(), "the shared key grants nothing");
        w.op(1, &[b], Action::Remove { device: pk(2) });
        let v = w.view();
        assert!(v.may_write(Some(&pk(2)), Some(&pk(2)), &[0; 32]).is_err(), "the removed writer itself");
        assert_eq!(v.may_write(Some(&pk(2)), Some(&pk(1)), &[0; 32]), Ok(()), "its history, passed on by a member");
        assert!(v.may_write(None, Some(&pk(1)), &[0; 32]).is_err(), "the shared key, after a removal");
        assert!(RosterView::default().may_write(Some(&pk(9)), None, &[0; 32]).is_err(), "no roster: nothing");
    }

    /// A manager made a writer keeps the agreements it proposed (a co-op that demotes its
    /// founder keeps its backups); a removed one keeps those its remover named, and no other;
    /// one who never managed proposes nothing. Before, demoting the proposer voided every
    /// agreement it had made, and then removing it did.
    #[test]
    fn a_demoted_manager_keeps_its_proposals_and_a_removed_one_those_its_remover_named() {
        use cobox_agreements::{AgreementId, Authority};
        let (held, later) = (AgreementId([7; 32]), AgreementId([8; 32]));
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Manage));
        let b = w.op(1, &[a], add(3, Role::Read));
        let d = w.op(2, &[b], Action::SetRole { device: pk(1), role: Role::Write });
        let v = w.view();
        assert!(!v.manages(&pk(1)) && v.proposes(&pk(1), &held), "demoted: its proposals stand, it revokes nothing");
        assert!(!v.proposes(&pk(3), &held), "a reader never proposed");
        let r = w.op(2, &[d], Action::Remove { device: pk(1) });
        assert!(!w.view().proposes(&pk(1), &held), "removed, before its remover names what it held");
        w.op(2, &[r], Action::KeepChanges { device: pk(1), changes: vec![held.0] });
        let v = w.view();
        assert!(v.proposes(&pk(1), &held), "named by its remover: the co-op keeps its backups");
        assert!(!v.proposes(&pk(1), &later), "what it proposes after its removal counts nowhere");
    }

    /// The remover names the removed device's changes it had taken: those still pass on as
    /// history; a change the device wrote after (not named) is refused whoever relays it. A
    /// non-manager cannot name them.
    #[test]
    fn a_removed_devices_later_changes_are_refused_when_relayed() {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Write));
        let b = w.op(1, &[a], add(3, Role::Write));
        let r = w.op(1, &[b], Action::Remove { device: pk(2) });
        let keep = w.op(1, &[r], Action::KeepChanges { device: pk(2), changes: vec![[7; 32]] });
        let forged = w.op(3, &[r], Action::KeepChanges { device: pk(2), changes: vec![[8; 32]] });
        let v = w.view();
        assert!(v.invalid.contains_key(&op_id(&w.log[forged])), "a writer cannot name them");
        assert_eq!(v.may_write(Some(&pk(2)), Some(&pk(3)), &[7; 32]), Ok(()), "taken before: history");
        let later = v.may_write(Some(&pk(2)), Some(&pk(3)), &[8; 32]);
        assert!(later.is_err_and(|e| e.contains("after its remover")), "written after, relayed");
        assert_eq!(v.may_write(Some(&pk(3)), Some(&pk(3)), &[8; 32]), Ok(()), "others write on");
        // Added back, then removed again: the old list no longer bounds it until a new one comes.
        let back = w.op(1, &[keep], add(2, Role::Write));
        w.op(1, &[back], Action::Remove { device: pk(2) });
        let v = w.view();
        assert!(v.removed.contains(&pk(2)) && !v.kept_changes.contains_key(&pk(2)), "{:?}", v.kept_changes);
    }

    /// A rotation after a removal reaches the remaining devices only; the newest epoch is
    /// the current one on every device.
    #[test]
    fn a_rotation_seals_the_new_epoch_to_the_remaining_devices() {
        use crate::epoch::{EpochKeys, context, epoch_id, seal_keys};
        let mut w = World::new();
        let space = w.space();
        let g = w.op(1, &[], Action::Genesis);
        let a = w.op(1, &[g], add(2, Role::Write));
        let r = w.op(1, &[a], Action::Remove { device: pk(2) });
        let fresh = [42u8; 32];
        let id = epoch_id(&fresh);
        let keys: EpochKeys = [(id, fresh)].into_iter().collect();
        let sealed = vec![(pk(1), seal_keys(&pk(1), &keys, &context(&space, id), [1; 32]).unwrap())];
        w.op(1, &[r], Action::Keys { epoch: id, sealed });
        let v = w.view();
        assert_eq!(v.current_epoch, id);
        assert_eq!(v.keys_for(&space, &key(1), None), keys);
        assert!(v.keys_for(&space, &key(2), None).is_empty(), "the removed device opens nothing");
        assert_eq!(v.holders(id), [pk(1)].into_iter().collect());
        // A writer cannot hand out keys.
        let bad = w.op(2, &[a], Action::Keys { epoch: 5, sealed: vec![] });
        assert!(w.view().invalid.contains_key(&op_id(&w.log[bad])));
        assert_eq!(w.view().current_epoch, id);
    }

    /// A random history of a few devices adding, removing and changing roles while apart.
    fn history(script: &[(u8, u8, u8, u8)]) -> Vec<Vec<u8>> {
        let mut w = World::new();
        let g = w.op(1, &[], Action::Genesis);
        let mut seen = vec![vec![g]; 5];
        for &(who, what, target, sync) in script {
            let author = 1 + who % 5;
            let device = 1 + target % 6;
            let role = [Role::Read, Role::Write, Role::Manage][(what / 7 % 3) as usize];
            let action = match what % 8 {
                7 => Action::Keys { epoch: u32::from(target % 3) + 1, sealed: vec![(pk(device), vec![what])] },
                0 => Action::Add { device: pk(device), role, name: vec![] },
                1 => Action::SetRole { device: pk(device), role },
                2 => Action::Remove { device: pk(device) },
                3 => Action::Invite {
                    key: pk(200 + target % 3),
                    role,
                    name: vec![],
                    expires_ms: 100,
                    keys: vec![],
                    epoch: 0,
                    secret: vec![],
                },
                4 => Action::Redeem { invite: pk(200 + target % 3), at_ms: i64::from(sync) },
                6 => Action::Admit {
                    redeem: op_id(&w.log[target as usize % w.log.len()]),
                    at_ms: i64::from(sync),
                    credential: vec![],
                },
                5 => Action::Cancel { invite: pk(200 + target % 3) },
                _ => Action::Rename { device: pk(device), name: vec![what] },
            };
            let s = seen[(author - 1) as usize].clone();
            let i = w.op(author, &s, action);
            seen[(author - 1) as usize] = vec![i];
            // Sometimes a device learns everything another knows.
            if sync % 3 == 0 {
                let other = (sync / 3 % 5) as usize;
                let mut merged = seen[other].clone();
                merged.extend(seen[(author - 1) as usize].iter().copied());
                seen[other] = merged;
            }
        }
        w.log
    }

    proptest! {
        /// Two managers (made by the creator, in either order) remove each other while apart and
        /// each draws a key epoch sealed to itself and the creator; the one removed first grinds
        /// its operations' ids (renames with any bytes before it acts). Whatever the ids and the
        /// order the log arrives in, the junior is removed, and no epoch it was handed is current.
        /// Before: the removal first by id stood, so the junior could choose to stay.
        #[test]
        fn the_junior_of_two_managers_removing_each_other_is_removed_and_its_epoch_is_never_current(
            junior_first in any::<bool>(),
            grind in proptest::collection::vec(any::<u8>(), 0..4),
            rotate_senior in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut w = World::new();
            let space = w.space();
            let g = w.op(1, &[], Action::Genesis);
            let (senior, junior) = if junior_first { (3u8, 2u8) } else { (2u8, 3u8) };
            let first = w.op(1, &[g], add(senior, Role::Manage));
            let both = w.op(1, &[first], add(junior, Role::Manage));
            // The junior grinds: any renames of itself before it removes the senior.
            let mut last = both;
            for b in &grind {
                last = w.op(junior, &[last], Action::Rename { device: pk(junior), name: vec![*b] });
            }
            let jr = w.op(junior, &[last], Action::Remove { device: pk(senior) });
            let (_, junior_epoch) = w.draw(junior, jr, [7; 32], &[1, junior]);
            let sr = w.op(senior, &[both], Action::Remove { device: pk(junior) });
            let senior_epoch = if rotate_senior { Some(w.draw(senior, sr, [8; 32], &[1, senior]).1) } else { None };
            let mut log = w.log.clone();
            let mut s = seed;
            for i in (1..log.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                log.swap(i, (s >> 33) as usize % (i + 1));
            }
            let v = evaluate(&space, &log);
            prop_assert_eq!(v.role(&pk(senior)), Some(Role::Manage));
            prop_assert!(v.removed.contains(&pk(junior)), "{:?}", v);
            prop_assert!(v.current_epoch != junior_epoch);
            prop_assert!(!v.holders(v.current_epoch).contains(&pk(junior)) || v.current_epoch == 0);
            if let Some(e) = senior_epoch {
                prop_assert_eq!(v.current_epoch, e);
            }
        }

        /// A past kept as a full prefix and bits holds exactly the ancestors, in chains of
        /// hundreds (where the prefix grows) and in branching graphs alike.
        #[test]
        fn a_compact_past_holds_exactly_the_ancestors(picks in proptest::collection::vec((any::<u16>(), any::<u16>(), 0u8..3), 1..400)) {
            let mut past: Vec<Past> = Vec::new();
            let mut naive: Vec<BTreeSet<usize>> = Vec::new();
            for (i, (a, b, n)) in picks.iter().enumerate() {
                // Mostly the operation just before (a chain), sometimes any earlier one.
                let deps: Vec<usize> = match (i, n) {
                    (0, _) => vec![],
                    (_, 0) => vec![i - 1],
                    (_, 1) => vec![usize::from(*a) % i],
                    _ => vec![usize::from(*a) % i, usize::from(*b) % i],
                };
                let mut set = BTreeSet::new();
                for &d in &deps {
                    set.insert(d);
                    set.extend(naive[d].iter().copied());
                }
                let p = Past::of(i, &deps, &past);
                prop_assert_eq!(p.len(), set.len());
                for x in 0..i {
                    prop_assert_eq!(p.contains(x), set.contains(&x), "position {} in the past of {}", x, i);
                }
                past.push(p);
                naive.push(set);
            }
        }

        /// Operations applied in any order give the same members, roles and removals.
        #[test]
        fn any_order_gives_the_same_roster(script in proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 0..24), seed in any::<u64>()) {
            let log = history(&script);
            let space = key(99).verifying_key().to_bytes();
            let a = evaluate(&space, &log);
            let mut shuffled = log.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            shuffled.extend(log.iter().take(3).cloned());
            let b = evaluate(&space, &shuffled);
            prop_assert_eq!(&a, &b);
            prop_assert!(a.members.keys().all(|k| !a.removed.contains(k)));
            // The running state gives what folding every past from scratch gives.
            prop_assert_eq!(&a, &evaluate_with(&space, &log, false));
        }
    }
}
