//! The ledger: an Automerge document whose root map holds one bytes scalar per entry, keyed
//! by the entry's hash. Entries are only ever added, so merging two ledgers is their union and
//! the document stays fast at any size (one scalar per key; see DESIGN.md's measured limits).

use crate::entry::Entry;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc, ScalarValue, ValueRef};

/// The ledger document could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Automerge refused the bytes or the change.
    #[error("ledger document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The changes would remove or rewrite an entry, or add one under another entry's key: the
    /// ledger only ever grows, each entry under the hash of its bytes. Nothing was merged.
    #[error("the ledger's changes {0}; entries are only ever added, so nothing was merged")]
    Rewrite(String),
    /// A peer's bytes are not a run of Automerge change chunks within the bounds
    /// ([`Ledger::merge_changes`]); nothing was parsed or merged.
    #[error("the peer's ledger changes: {0}")]
    Changes(String),
    /// Bytes offered as a roster operation or heads note begin with neither tag.
    #[error("not a roster operation")]
    NotRosterOp,
}

/// The most a peer's ledger changes may inflate to (compressed change chunks are inflated
/// with this cap before Automerge sees them).
pub const MAX_INFLATED: u64 = 64 << 20;

/// Check that `bytes` are Automerge change chunks (magic, checksum, type 1 or 2, a LEB128
/// length, that many bytes) whose compressed ones inflate to at most `cap` bytes in all; the
/// inflation is counted, not kept. Used for ledger changes and for manifest change bodies alike,
/// before Automerge parses a byte.
pub fn check_changes(bytes: &[u8], cap: u64) -> Result<(), String> {
    change_chunks(bytes, cap).map(|_| ())
}

/// [`check_changes`], returning each change chunk (header included) for a caller that reads
/// the changes' operations.
pub fn change_chunks(mut bytes: &[u8], cap: u64) -> Result<Vec<&[u8]>, String> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut inflated = 0u64;
    let mut chunks = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err("not an Automerge change chunk".into());
        }
        let kind = bytes[8];
        let (len, used) = uleb(&bytes[9..]).ok_or("a chunk length that does not decode")?;
        let start = 9 + used;
        let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= bytes.len());
        let Some(end) = end else { return Err("a chunk longer than the bytes sent".into()) };
        let data = &bytes[start..end];
        inflated += data.len() as u64;
        match kind {
            1 => {}
            2 => {
                use std::io::Read;
                let room = cap.saturating_sub(inflated);
                let mut out = flate2::read::DeflateDecoder::new(data).take(room + 1);
                let n =
                    std::io::copy(&mut out, &mut std::io::sink()).map_err(|e| format!("a bad deflate stream: {e}"))?;
                inflated += n;
            }
            0 => return Err("a whole document where only changes belong".into()),
            k => return Err(format!("a chunk of type {k} where only changes belong")),
        }
        if inflated > cap {
            return Err(format!("changes that inflate past {cap} bytes"));
        }
        chunks.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(chunks)
}

/// Why an operation is not the one kind a ledger change may hold, a new bytes value under a
/// key of the root map that overwrites nothing; `None` when it is.
fn not_an_addition(op: &automerge::legacy::Op) -> Option<&'static str> {
    use automerge::ScalarValue;
    use automerge::legacy::{Key, ObjectId, OpType};
    if !matches!(op.obj, ObjectId::Root) || !matches!(op.key, Key::Map(_)) || op.insert {
        return Some("change something other than the root map of entries");
    }
    match &op.action {
        OpType::Delete => Some("delete an entry"),
        OpType::Put(ScalarValue::Bytes(_)) if op.pred.is_empty() => None,
        OpType::Put(ScalarValue::Bytes(_)) => Some("overwrite an entry"),
        _ => Some("hold something other than an entry's bytes"),
    }
}

/// An unsigned LEB128 number and the bytes it took (at most 10).
fn uleb(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The first byte of a roster operation (`cobox_core::roster`) kept in the ledger beside the
/// agreement entries: the roster travels, merges and stays append-only with them, and
/// [`crate::evaluate`] passes over it (an entry's first byte is its format version, 1).
pub const ROSTER_TAG: u8 = 0xA1;

/// The first byte of a member's signed note of the manifest heads it holds (`cobox_core::heads`),
/// kept in the ledger so a restore from a seeder can tell when it got less than members had.
pub const HEADS_TAG: u8 = 0xA2;

/// The Automerge ledger of one space.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    doc: AutoCommit,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load a saved ledger.
    pub fn load(bytes: &[u8]) -> Result<Self, LedgerError> {
        Ok(Self { doc: AutoCommit::load(bytes)? })
    }

    /// The whole document, compressed.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Add an entry; returns false when the ledger already held it.
    pub fn insert(&mut self, entry: &Entry) -> Result<bool, LedgerError> {
        let key = entry.key();
        if self.doc.get(ROOT, &key)?.is_some() {
            return Ok(false);
        }
        self.doc.put(ROOT, key, ScalarValue::Bytes(entry.encode()))?;
        Ok(true)
    }

    /// Add a roster operation's bytes (they begin with [`ROSTER_TAG`]), or a heads note's
    /// ([`HEADS_TAG`]), under the hash of its bytes, as entries are; returns false when the
    /// ledger already held it.
    pub fn insert_roster_op(&mut self, bytes: &[u8]) -> Result<bool, LedgerError> {
        if bytes.first() != Some(&ROSTER_TAG) && bytes.first() != Some(&HEADS_TAG) {
            return Err(LedgerError::NotRosterOp);
        }
        let key = blake3::hash(bytes).to_hex().to_string();
        if self.doc.get(ROOT, &key)?.is_some() {
            return Ok(false);
        }
        self.doc.put(ROOT, key, ScalarValue::Bytes(bytes.to_vec()))?;
        Ok(true)
    }

    /// The heads notes held, as stored.
    pub fn heads_notes(&self) -> Vec<Vec<u8>> {
        self.raw_entries().into_iter().map(|(_, b)| b).filter(|b| b.first() == Some(&HEADS_TAG)).collect()
    }

    /// The roster operations held, as stored.
    pub fn roster_ops(&self) -> Vec<Vec<u8>> {
        self.raw_entries().into_iter().map(|(_, b)| b).filter(|b| b.first() == Some(&ROSTER_TAG)).collect()
    }

    /// Fold another ledger in; returns how many entries were new. Refused, with nothing
    /// merged, if it would remove or rewrite an entry ([`LedgerError::Rewrite`]).
    pub fn merge(&mut self, other: &mut Ledger) -> Result<usize, LedgerError> {
        let mut next = self.clone();
        next.doc.merge(&mut other.doc)?;
        self.accept(next)
    }

    /// Merge what a peer sent: its saved ledger, or its changes since our heads
    /// ([`Ledger::changes_since`]); returns how many entries were new. Refused, with nothing
    /// merged, if it would remove or rewrite an entry ([`LedgerError::Rewrite`]).
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<usize, LedgerError> {
        let mut next = self.clone();
        next.doc.load_incremental(bytes)?;
        self.accept(next)
    }

    /// Merge changes a peer sent ([`Ledger::changes_since`]): a run of Automerge change chunks,
    /// plain or compressed, together inflating to at most [`MAX_INFLATED`]. Anything else (a
    /// whole document, a bundle, trailing bytes, a deflate stream that would grow past the cap)
    /// is refused before Automerge parses a byte, so a peer cannot make us inflate a small
    /// frame into gigabytes. Then as [`Ledger::merge_bytes`].
    pub fn merge_changes(&mut self, bytes: &[u8]) -> Result<usize, LedgerError> {
        check_changes(bytes, MAX_INFLATED).map_err(LedgerError::Changes)?;
        self.merge_bytes(bytes)
    }

    /// Take `next` (this ledger with changes merged in) if it only adds entries, each under the
    /// hash of its bytes; returns how many it added. A seeder that deleted its own revocation,
    /// or rewrote an audit, is refused here before anything is kept.
    fn accept(&mut self, mut next: Ledger) -> Result<usize, LedgerError> {
        // On the changes themselves, not only on what they leave visible: a change that deletes
        // or overwrites an entry is refused even when another in the same merge added it, or
        // the ledgers of the devices that took it and of those that did not would differ for good.
        let heads = self.doc.get_heads();
        for change in next.doc.get_changes(&heads) {
            let expanded = change.decode();
            for op in &expanded.operations {
                if let Some(what) = not_an_addition(op) {
                    return Err(LedgerError::Rewrite(format!(
                        "{what} (change {})",
                        short(&hex::encode(change.hash().0))
                    )));
                }
            }
        }
        let before: std::collections::HashMap<String, Vec<u8>> = self.raw_entries().into_iter().collect();
        let after = next.raw_entries();
        let mut added = 0;
        let mut kept = 0;
        for (key, bytes) in &after {
            match before.get(key) {
                Some(old) if old == bytes => kept += 1,
                Some(_) => return Err(LedgerError::Rewrite(format!("rewrite entry {}", short(key)))),
                None if blake3::hash(bytes).to_hex().as_str() == key => added += 1,
                None => {
                    return Err(LedgerError::Rewrite(format!(
                        "add an entry under a key not its hash ({})",
                        short(key)
                    )));
                }
            }
        }
        if kept != before.len() {
            return Err(LedgerError::Rewrite(format!("remove {} entries", before.len() - kept)));
        }
        *self = next;
        Ok(added)
    }

    /// Whether the document holds the change with this hash.
    pub fn has_change(&mut self, hash: &[u8; 32]) -> bool {
        self.doc.get_change_by_hash(&automerge::ChangeHash(*hash)).is_some()
    }

    /// The document's heads, sorted.
    pub fn heads(&mut self) -> Vec<[u8; 32]> {
        let mut heads: Vec<[u8; 32]> = self.doc.get_heads().into_iter().map(|h| h.0).collect();
        heads.sort();
        heads
    }

    /// The heads and the changes they directly follow, sorted: what a `Hello` names. A peer
    /// that lacks our newest change (each side added one since they last met) still finds the
    /// one before it, and sends only what follows.
    pub fn heads_and_parents(&mut self) -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for h in self.doc.get_heads() {
            out.push(h.0);
            if let Some(c) = self.doc.get_change_by_hash(&h) {
                out.extend(c.deps().iter().map(|d| d.0));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// What a peer whose ledger has `heads` lacks: empty when it holds all of ours. Heads this
    /// side does not know (the peer has changes we lack) are left out of the reckoning, so the
    /// peer may get some changes twice, which merging ignores. With no head known, the whole
    /// document. A ledger grows with every hourly audit; this keeps what a session sends to
    /// what changed since the peer's copy.
    pub fn changes_since(&mut self, heads: &[[u8; 32]]) -> Vec<u8> {
        let known: Vec<automerge::ChangeHash> =
            heads.iter().map(|h| automerge::ChangeHash(*h)).filter(|h| self.has_change(&h.0)).collect();
        // Change chunks even when the peer knows none of ours: what [`Ledger::merge_changes`]
        // accepts (a saved document's compressed columns could not be bounded before parsing).
        self.doc.save_after(&known)
    }

    /// A digest of the document's heads: two ledgers with equal digests hold the same changes,
    /// so a peer that sent ours has nothing to send.
    pub fn digest(&mut self) -> [u8; 32] {
        let mut heads = self.doc.get_heads();
        heads.sort();
        let mut h = blake3::Hasher::new_derive_key("cobox 2026-11 ledger heads digest v1");
        for head in heads {
            h.update(&head.0);
        }
        *h.finalize().as_bytes()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.doc.length(ROOT)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as `(key, stored bytes)`. Values that are not bytes (another program's
    /// writes) come back empty, so `evaluate` reports them as malformed.
    pub fn raw_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.doc
            .map_range(ROOT, ..)
            .map(|item| {
                let bytes = match item.value {
                    ValueRef::Scalar(automerge::ScalarValueRef::Bytes(b)) => b.to_vec(),
                    _ => Vec::new(),
                };
                (item.key.into_owned(), bytes)
            })
            .collect()
    }
}

/// A key as people read it in an error.
fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::{audit, keys, sample};

    /// A ledger holding a proposal, its acceptance and the owner's revocation, and a copy of
    /// it as a seeder would hold it (its own actor).
    fn revoked() -> (Ledger, Ledger, String) {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut owner = Ledger::new();
        owner.insert(&Entry::propose(a.clone(), &o)).unwrap();
        owner.insert(&Entry::accept(&a, &d)).unwrap();
        let r = crate::Revocation {
            agreement: a.id(),
            device: o.verifying_key().to_bytes(),
            party: crate::Party::Owner,
            time_ms: 5,
        };
        let revocation = Entry::revoke(r, &o);
        owner.insert(&revocation).unwrap();
        let seeder = Ledger::load(&owner.save()).unwrap();
        (owner, seeder, revocation.key())
    }

    /// What a peer sends is change chunks, also to a peer that knows none of ours, and it
    /// merges; a saved document, a bundle-like unknown chunk, trailing junk and a compressed
    /// change that inflates past the cap are refused before Automerge parses them.
    #[test]
    fn only_change_chunks_within_the_inflation_cap_are_merged() {
        let (mut owner, _, _) = revoked();
        let all = owner.changes_since(&[]);
        let mut fresh = Ledger::new();
        assert_eq!(fresh.merge_changes(&all).unwrap(), 3, "all of it, as changes");
        assert!(
            matches!(Ledger::new().merge_changes(&owner.save()), Err(LedgerError::Changes(m)) if m.contains("document"))
        );
        let mut junk = all.clone();
        junk.push(0);
        assert!(matches!(Ledger::new().merge_changes(&junk), Err(LedgerError::Changes(_))));
        let mut typed = all[..9].to_vec();
        typed[8] = 3;
        typed.push(0);
        assert!(matches!(Ledger::new().merge_changes(&typed), Err(LedgerError::Changes(m)) if m.contains("type 3")));

        // A compressed change chunk of 8 MiB of zeros: a few kilobytes on the wire.
        let bomb = {
            use std::io::Write;
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(&vec![0u8; 8 << 20]).unwrap();
            let data = z.finish().unwrap();
            let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
            let mut n = data.len();
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                chunk.push(if n == 0 { b } else { b | 0x80 });
                if n == 0 {
                    break;
                }
            }
            chunk.extend(data);
            chunk
        };
        assert!(bomb.len() < 64 << 10);
        let err = check_changes(&bomb, 1 << 20).unwrap_err();
        assert!(err.contains("inflate past"), "{err}");
        // Within the cap it inflates and goes on to Automerge, which finds no change in zeros.
        assert!(check_changes(&bomb, 16 << 20).is_ok());
        assert!(Ledger::new().merge_changes(&bomb).is_err());
    }

    #[test]
    fn a_peer_cannot_delete_an_entry() {
        let (mut owner, mut seeder, revocation) = revoked();
        let heads = owner.heads_and_parents();
        seeder.doc.delete(ROOT, revocation.as_str()).unwrap();
        let err = owner.merge_bytes(&seeder.changes_since(&heads)).unwrap_err();
        assert!(matches!(err, LedgerError::Rewrite(ref m) if m.contains("delete an entry")), "{err}");
        assert_eq!(owner.len(), 3, "the revocation stays");
        assert!(owner.merge(&mut seeder).is_err(), "nor through merge");
        assert_eq!(owner.len(), 3);
    }

    /// Append-only is judged on the changes, not on what they leave visible: one merge holding
    /// a change that adds an entry and one that deletes it is refused whole. Before: the
    /// visible state lost nothing and the merge passed, and the ledgers split for good.
    #[test]
    fn a_merge_that_adds_an_entry_and_deletes_it_is_refused() {
        let (mut owner, mut seeder, _) = revoked();
        let heads = owner.heads_and_parents();
        let (s, o, d) = keys();
        let mut late = sample(&s, &o, &d);
        late.nonce = [5; 16];
        let entry = Entry::propose(late, &o);
        seeder.insert(&entry).unwrap();
        seeder.doc.commit();
        seeder.doc.delete(ROOT, entry.key().as_str()).unwrap();
        let err = owner.merge_bytes(&seeder.changes_since(&heads)).unwrap_err();
        assert!(matches!(err, LedgerError::Rewrite(ref m) if m.contains("delete an entry")), "{err}");
        assert!(owner.merge(&mut seeder).is_err(), "nor through merge");
        assert_eq!(owner.len(), 3);
        // The same addition without its deletion merges.
        let (mut owner, mut seeder, _) = revoked();
        seeder.insert(&entry).unwrap();
        assert_eq!(owner.merge(&mut seeder).unwrap(), 1);
    }

    #[test]
    fn a_peer_cannot_rewrite_an_entry_or_add_one_under_a_false_key() {
        let (mut owner, mut seeder, revocation) = revoked();
        let heads = owner.heads_and_parents();
        seeder.doc.put(ROOT, revocation.as_str(), ScalarValue::Bytes(b"not a revocation".to_vec())).unwrap();
        let err = owner.merge_bytes(&seeder.changes_since(&heads)).unwrap_err();
        assert!(matches!(err, LedgerError::Rewrite(ref m) if m.contains("overwrite an entry")), "{err}");
        let (mut owner, mut seeder, _) = revoked();
        seeder.doc.put(ROOT, "0000", ScalarValue::Bytes(b"junk".to_vec())).unwrap();
        let err = owner.merge_bytes(&seeder.save()).unwrap_err();
        assert!(matches!(err, LedgerError::Rewrite(ref m) if m.contains("not its hash")), "{err}");
        assert_eq!(owner.len(), 3);
    }

    #[test]
    fn merge_is_union_and_idempotent() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut l1 = Ledger::new();
        assert!(l1.insert(&Entry::propose(a.clone(), &o)).unwrap());
        assert!(!l1.insert(&Entry::propose(a.clone(), &o)).unwrap(), "stored once");
        let mut l2 = Ledger::load(&l1.save()).unwrap();
        l2.insert(&Entry::accept(&a, &d)).unwrap();
        assert_eq!(l1.merge_bytes(&l2.save()).unwrap(), 1);
        assert_eq!(l1.merge_bytes(&l2.save()).unwrap(), 0);
        assert_eq!(l1.len(), 2);
        assert!(l1.raw_entries().iter().all(|(k, b)| Entry::decode(b).unwrap().key() == *k));
    }

    #[test]
    fn digests_are_equal_exactly_when_the_changes_are() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let (mut l1, mut l2) = (Ledger::new(), Ledger::new());
        assert_eq!(l1.digest(), l2.digest());
        l1.insert(&Entry::propose(a.clone(), &o)).unwrap();
        assert_ne!(l1.digest(), l2.digest());
        l2.merge_bytes(&l1.save()).unwrap();
        assert_eq!(l1.digest(), l2.digest(), "after a merge");
        // The same entry added on both sides is two changes: the digests differ until they merge.
        let accept = Entry::accept(&a, &d);
        l1.insert(&accept).unwrap();
        l2.insert(&accept).unwrap();
        assert_ne!(l1.digest(), l2.digest());
        l1.merge_bytes(&l2.save()).unwrap();
        l2.merge_bytes(&l1.save()).unwrap();
        assert_eq!(l1.digest(), l2.digest());
        assert_eq!(Ledger::load(&l1.save()).unwrap().digest(), l1.digest(), "a reload keeps it");
    }

    /// Each side added one entry since they last met: naming the heads' parents lets each
    /// send only its own entry.
    #[test]
    fn each_side_one_ahead_sends_only_its_own() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut base = Ledger::new();
        base.insert(&Entry::propose(a.clone(), &o)).unwrap();
        for t in 0..50 {
            base.insert(&audit(&a, &o, t, 4)).unwrap();
        }
        let (mut l1, mut l2) = (Ledger::load(&base.save()).unwrap(), Ledger::load(&base.save()).unwrap());
        l1.insert(&audit(&a, &o, 100, 4)).unwrap();
        l2.insert(&audit(&a, &o, 200, 4)).unwrap();
        let (h1, h2) = (l1.heads_and_parents(), l2.heads_and_parents());
        assert!(!l1.changes_since(&l2.heads()).is_empty(), "the head alone is unknown to l1");
        let (d1, d2) = (l1.changes_since(&h2), l2.changes_since(&h1));
        let whole = base.save().len();
        assert!(d1.len() * 4 < whole && d2.len() * 4 < whole, "{} and {} of {whole}", d1.len(), d2.len());
        assert_eq!(l2.merge_bytes(&d1).unwrap(), 1);
        assert_eq!(l1.merge_bytes(&d2).unwrap(), 1);
        assert_eq!(l1.digest(), l2.digest());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Ledger::load(b"not automerge").is_err());
        assert!(Ledger::new().merge_bytes(b"not automerge").is_err());
    }

    /// A peer gets only the changes it lacks, and nothing when it lacks nothing; a peer whose
    /// heads we do not know, or that names none, gets all of ours.
    #[test]
    fn changes_since_a_peers_heads_are_what_it_lacks() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut owner = Ledger::new();
        assert!(owner.changes_since(&[]).is_empty(), "an empty ledger has nothing to send");
        owner.insert(&Entry::propose(a.clone(), &o)).unwrap();
        for t in 0..50 {
            owner.insert(&audit(&a, &o, t, 4)).unwrap();
        }
        let mut seeder = Ledger::load(&owner.save()).unwrap();
        assert!(owner.changes_since(&seeder.heads()).is_empty(), "the seeder lacks nothing");

        seeder.insert(&Entry::accept(&a, &d)).unwrap();
        let delta = seeder.changes_since(&owner.heads());
        assert!(
            !delta.is_empty() && delta.len() * 4 < seeder.save().len(),
            "{} of {}",
            delta.len(),
            seeder.save().len()
        );
        assert_eq!(owner.merge_bytes(&delta).unwrap(), 1);
        assert_eq!(owner.digest(), seeder.digest());

        // Heads we never saw: everything we have, which merges as well.
        let mut stranger = Ledger::new();
        stranger.insert(&Entry::accept(&a, &d)).unwrap();
        let all = owner.changes_since(&stranger.heads());
        assert_eq!(stranger.merge_bytes(&all).unwrap(), 51);
        assert_eq!(Ledger::new().merge_bytes(&owner.changes_since(&[])).unwrap(), 52);
    }
}
