//! The manifest: the folder's state as Automerge documents. Pure: no I/O.
//!
//! Shaped by Automerge's measured limits (docs/architecture.md): each path is one scalar (an
//! encoded [`Entry`]) under its key in the root map of one of N shard documents, chosen by a keyed
//! hash of the path; a separate history document records one [`Snapshot`] per commit with the
//! heads of every shard, so any past state can be read back with `*_at(heads)`. Changes leave as
//! `save_after(previous heads)` bytes per document, bundled into one [`ChangeBody`].

use crate::entry::{Entry, EntryError};
use crate::ids::DeviceId;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ROOT, ReadDoc, ScalarValue, Value, ValueRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Index of the history document inside a [`ChangeBody`].
pub const HISTORY_DOC: u16 = u16::MAX;
const CHANGE_BODY_VERSION: u8 = 1;

/// Manifest errors.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Automerge refused a document or change.
    #[error("manifest document is corrupt: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// An entry failed to decode.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A change body failed to decode or names an unknown document.
    #[error("manifest change is malformed: {0}")]
    Body(String),
}

/// One commit of the folder state, as listed by `cobox history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was committed, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The device that committed it.
    pub device: DeviceId,
    /// Paths that appeared.
    pub added: u32,
    /// Paths whose content or metadata changed.
    pub changed: u32,
    /// Paths that disappeared.
    pub deleted: u32,
    /// Of the added/deleted, how many pairs were renames (same content).
    pub renamed: u32,
    /// Heads of every shard after the commit.
    pub heads: Vec<(u16, Vec<[u8; 32]>)>,
}

impl Snapshot {
    /// Short id: hex of the first 8 bytes of BLAKE3 of the encoded record.
    pub fn id(&self) -> String {
        hex::encode(&blake3::hash(&self.encode()).as_bytes()[..8])
    }

    /// Postcard's layout of this record, written out so that it cannot fail (it names the
    /// snapshot, so an error here would have no id to report); a proptest checks it byte for
    /// byte against `postcard::to_stdvec`.
    fn encode(&self) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut n: u64) {
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        let mut out = Vec::with_capacity(64 + self.heads.iter().map(|(_, h)| 4 + 32 * h.len()).sum::<usize>());
        varint(&mut out, ((self.time_ms << 1) ^ (self.time_ms >> 63)) as u64);
        out.extend_from_slice(&self.device.0);
        for n in [self.added, self.changed, self.deleted, self.renamed] {
            varint(&mut out, u64::from(n));
        }
        varint(&mut out, self.heads.len() as u64);
        for (doc, heads) in &self.heads {
            varint(&mut out, u64::from(*doc));
            varint(&mut out, heads.len() as u64);
            for h in heads {
                out.extend_from_slice(h);
            }
        }
        out
    }

    /// Files touched.
    pub fn files_changed(&self) -> u32 {
        self.added + self.changed + self.deleted
    }
}

/// The Automerge changes of one commit, per document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBody {
    /// (document index, `save_after` bytes); [`HISTORY_DOC`] is the history document.
    pub docs: Vec<(u16, Vec<u8>)>,
}

impl ChangeBody {
    /// Encode with a version byte.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let mut out = vec![CHANGE_BODY_VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| ManifestError::Body(format!("cannot encode: {e}")))?);
        Ok(out)
    }

    /// Split into bodies of at most about `max` encoded bytes, documents kept whole and in
    /// order (the history document, last, so it lands after the shards it points at). One
    /// scan of a million new files makes a ~75 MB body, over what the sync protocol carries in
    /// a frame; applying the parts in any order gives the same manifest as the whole.
    pub fn split(self, max: usize) -> Vec<ChangeBody> {
        let mut parts = vec![ChangeBody::default()];
        let mut size = 0;
        for (doc, bytes) in self.docs {
            // postcard: a varint count and length, the u16 index; 16 bytes covers them.
            let n = bytes.len() + 16;
            if size > 0 && size + n > max {
                parts.push(ChangeBody::default());
                size = 0;
            }
            size += n;
            if let Some(part) = parts.last_mut() {
                part.docs.push((doc, bytes));
            }
        }
        parts
    }

    /// Each of its changes, as (document, hash): what [`Manifest::drop_changes`] keeps or drops.
    pub fn change_hashes(&self) -> Result<Unit, ManifestError> {
        let mut out = Vec::new();
        for (doc, bytes) in &self.docs {
            for chunk in cobox_agreements::change_chunks(bytes, MAX_DOC_INFLATED).map_err(ManifestError::Body)? {
                out.push((*doc, check_change(chunk, false)?));
            }
        }
        Ok(out)
    }

    /// Decode, checking the version byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        match bytes.split_first() {
            Some((&CHANGE_BODY_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| ManifestError::Body(e.to_string()))
            }
            _ => Err(ManifestError::Body("unknown change body version".into())),
        }
    }
}

/// The most one document's changes in a change body may inflate to. A body holds at most a
/// 16 MiB part (`ChangeBody::split`), a document's changes compress about 5:1, so honest ones
/// stay far below; the bound is also what applying one may cost in memory beyond its parts.
pub const MAX_DOC_INFLATED: u64 = 256 << 20;

/// Heads per shard: the state to read at.
pub type ShardHeads = Vec<Vec<ChangeHash>>;

/// The manifest of one space as held by one device.
pub struct Manifest {
    shards: Vec<AutoCommit>,
    history: AutoCommit,
    path_key: [u8; 32],
    /// Heads of each shard before the pending edits; `Some` marks a shard as touched.
    pending: Vec<Option<Vec<ChangeHash>>>,
    /// Changes applied last that Automerge holds back for changes this manifest lacks.
    waiting: usize,
    /// Shards whose value column [`presplit`] has cut (or that were not loaded whole).
    split: Vec<bool>,
    /// Edits in each shard's open transaction.
    open_ops: Vec<usize>,
}

fn entry_from_value(v: &Value<'_>) -> Result<Option<Entry>, EntryError> {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Bytes(b) => Entry::decode(b).map(Some),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

fn entry_from_ref(v: &ValueRef<'_>) -> Result<Option<Entry>, EntryError> {
    match v {
        ValueRef::Scalar(automerge::ScalarValueRef::Bytes(b)) => Entry::decode(b).map(Some),
        _ => Ok(None),
    }
}

/// One change body's changes, as (document, hash): changes are kept or dropped a body at a time
/// ([`Manifest::drop_changes`]), as they are stored and shared.
pub type Unit = Vec<(u16, ChangeHash)>;

/// What [`Manifest::drop_changes`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Dropped {
    /// The units dropped (indices into those given): the refused ones, and each one holding a
    /// change that follows a dropped change.
    pub units: Vec<usize>,
    /// Paths that showed a refused change's value and show another now, with that value.
    pub reverted: Vec<(String, Entry)>,
    /// How many edits (of dropped changes that were not refused) were put again.
    pub replayed: usize,
}

/// What [`Manifest::apply`] did with a change body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every change in it is part of the manifest.
    Taken,
    /// Some change in it waits for changes this manifest lacks (Automerge holds it back); it
    /// takes effect once they arrive in this process, and must be applied again after a reopen.
    HeldBack,
}

/// One change chunk's hash; with `entries`, every bytes value it puts must decode as an [`Entry`].
fn check_change(chunk: &[u8], entries: bool) -> Result<ChangeHash, ManifestError> {
    use automerge::legacy::{Key, OpType};
    let change = automerge::Change::try_from(chunk).map_err(|e| ManifestError::Body(format!("a change: {e}")))?;
    if entries {
        for op in change.decode().operations {
            if let (OpType::Put(ScalarValue::Bytes(b)), Key::Map(path)) = (&op.action, &op.key)
                && let Err(e) = Entry::decode(b)
            {
                return Err(ManifestError::Body(format!("the entry it puts for {path:?} does not decode: {e}")));
            }
        }
    }
    Ok(change.hash())
}

/// The hash of every change in `body`, each with its document, its size and entries checked.
fn body_hashes(body: &ChangeBody) -> Result<Vec<(u16, ChangeHash)>, ManifestError> {
    let mut hashes = Vec::new();
    for (doc, bytes) in &body.docs {
        let chunks = cobox_agreements::change_chunks(bytes, MAX_DOC_INFLATED).map_err(ManifestError::Body)?;
        // Every entry a change puts in a shard must decode: one that does not would hide its
        // path from listings and fail every read of it, on every device that applied it.
        // Refused here, the whole change is set aside instead (`Space::quarantined`).
        for chunk in chunks {
            hashes.push((*doc, check_change(chunk, *doc != HISTORY_DOC)?));
        }
    }
    Ok(hashes)
}

/// Edits a shard's open transaction takes before they are committed as a change (see
/// `Manifest::count_edit`).
const EDITS_PER_CHANGE: usize = 8192;

/// Entries between the cuts [`presplit`] makes: 4-9 KiB of values (Automerge cuts slabs at 4 KiB)
/// at the 60-150 bytes an entry takes.
const PRESPLIT_EVERY: usize = 64;

/// Cut a loaded shard's value column into slabs, back to front.
///
/// Automerge 0.12 loads a document's values as one slab, and an insert into a slab larger than
/// its budget splits it there, the prefix keeping the whole allocation and the suffix copied
/// out. Inserts in ascending order (a scan's edits in path order, and always Automerge's own
/// order when it applies another device's change) so leave one allocation the size of the rest
/// of the document per insert: a 1% update of 300,000 files held 1.4 GiB. Cut from the back
/// instead, each split copies only the slab just cut. The cuts are edits rolled back before
/// they are committed: the document's state, heads and saves are what they were.
fn presplit(doc: &mut AutoCommit) {
    let cuts: Vec<String> =
        doc.map_range(ROOT, ..).step_by(PRESPLIT_EVERY).skip(1).map(|item| item.key.into_owned()).collect();
    for key in cuts.iter().rev() {
        // A failed put only leaves that cut out; the rollback undoes the others.
        let _ = doc.put(ROOT, key.as_str(), ScalarValue::Bytes(vec![0]));
    }
    doc.rollback();
}

impl Manifest {
    /// An empty manifest with `n` shards.
    pub fn new(n: u16, path_key: [u8; 32], actor: &[u8]) -> Self {
        let mk = || AutoCommit::new().with_actor(ActorId::from(actor));
        Self {
            shards: (0..n).map(|_| mk()).collect(),
            history: mk(),
            path_key,
            pending: vec![None; n as usize],
            waiting: 0,
            split: vec![true; n as usize],
            open_ops: vec![0; n as usize],
        }
    }

    /// Load from full saves (one per shard, then the history document).
    pub fn load(shards: &[Vec<u8>], history: &[u8], path_key: [u8; 32], actor: &[u8]) -> Result<Self, ManifestError> {
        use rayon::prelude::*;
        let loaded: Result<Vec<AutoCommit>, _> =
            shards.par_iter().map(|b| AutoCommit::load(b).map(|d| d.with_actor(ActorId::from(actor)))).collect();
        let shards = loaded?;
        let n = shards.len();
        Ok(Self {
            shards,
            history: AutoCommit::load(history)?.with_actor(ActorId::from(actor)),
            path_key,
            pending: vec![None; n],
            waiting: 0,
            // Cut when first changed: reading costs nothing more.
            split: vec![false; n],
            open_ops: vec![0; n],
        })
    }

    /// One more edit in shard `s`'s open transaction; at [`EDITS_PER_CHANGE`] they become a
    /// change of their own. Automerge holds an open transaction's edits at more than their
    /// committed size (building 300,000 entries in one transaction per shard peaked at 156 MiB,
    /// 125 MiB so). The changes made so go out in the same body at the next commit (each
    /// shard's body is everything after its heads before the first edit).
    fn count_edit(&mut self, s: usize) {
        self.open_ops[s] += 1;
        if self.open_ops[s] >= EDITS_PER_CHANGE {
            // Time 0: the snapshot the body ends with holds the commit's time.
            self.shards[s].commit_with(CommitOptions::default().with_time(0));
            self.open_ops[s] = 0;
        }
    }

    /// Shard `s`, cut by [`presplit`] before its first change since it was loaded. Never with
    /// an open transaction (the cut's rollback would take it too): a put marks the shard cut.
    fn shard_to_change(&mut self, s: usize) -> &mut AutoCommit {
        let doc = &mut self.shards[s];
        if !self.split[s] {
            presplit(doc);
            self.split[s] = true;
        }
        doc
    }

    /// Number of shard documents.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Which shard holds `path`.
    pub fn shard_of(&self, path: &str) -> usize {
        let h = blake3::keyed_hash(&self.path_key, path.as_bytes());
        let b = h.as_bytes();
        (u16::from_le_bytes([b[0], b[1]]) as usize) % self.shards.len()
    }

    /// The current (winning) entry of a path, tombstones included.
    pub fn get(&self, path: &str) -> Result<Option<Entry>, ManifestError> {
        let doc = &self.shards[self.shard_of(path)];
        match doc.get(ROOT, path)? {
            Some((v, _)) => Ok(entry_from_value(&v)?),
            None => Ok(None),
        }
    }

    /// Every concurrent value of a path (more than one means a conflict).
    pub fn get_all(&self, path: &str) -> Result<Vec<Entry>, ManifestError> {
        let doc = &self.shards[self.shard_of(path)];
        let mut out = Vec::new();
        for (v, _) in doc.get_all(ROOT, path)? {
            if let Some(e) = entry_from_value(&v)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Record a path's new state (not yet committed).
    pub fn set(&mut self, path: &str, entry: &Entry) -> Result<(), ManifestError> {
        let s = self.shard_of(path);
        if self.pending[s].is_none() {
            self.pending[s] = Some(self.shards[s].get_heads());
        }
        self.shard_to_change(s).put(ROOT, path, ScalarValue::Bytes(entry.encode()?))?;
        self.count_edit(s);
        Ok(())
    }

    /// Whether there are uncommitted edits.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(Option::is_some)
    }

    /// Every current entry, tombstones included, one at a time (shard by shard, each in path
    /// order): a walk over a large manifest that holds one entry at once.
    pub fn iter_entries(&self) -> impl Iterator<Item = Result<(String, Entry), ManifestError>> + '_ {
        self.shards.iter().flat_map(|doc| {
            doc.map_range(ROOT, ..).filter_map(|item| match entry_from_ref(&item.value) {
                Ok(Some(e)) => Some(Ok((item.key.into_owned(), e))),
                Ok(None) => None,
                // As `entries`: an entry that does not decode is an error, not a path left out.
                Err(e) => Some(Err(e.into())),
            })
        })
    }

    /// Every current entry, tombstones included, in no particular order.
    pub fn entries(&self) -> Result<Vec<(String, Entry)>, ManifestError> {
        self.iter_entries().collect()
    }

    /// Every entry as at the given heads.
    pub fn entries_at(&self, heads: &ShardHeads) -> Result<Vec<(String, Entry)>, ManifestError> {
        let mut out = Vec::new();
        for (doc, h) in self.shards.iter().zip(heads) {
            if h.is_empty() {
                continue;
            }
            for item in doc.map_range_at(ROOT, .., h) {
                if let Some(e) = entry_from_ref(&item.value)? {
                    out.push((item.key.into_owned(), e));
                }
            }
        }
        Ok(out)
    }

    /// One path as at the given heads.
    pub fn get_at(&self, path: &str, heads: &ShardHeads) -> Result<Option<Entry>, ManifestError> {
        let s = self.shard_of(path);
        if heads[s].is_empty() {
            return Ok(None);
        }
        match self.shards[s].get_at(ROOT, path, &heads[s])? {
            Some((v, _)) => Ok(entry_from_value(&v)?),
            None => Ok(None),
        }
    }

    /// Commit pending edits and record a snapshot. Returns the change to persist and share,
    /// or `None` when nothing was edited.
    pub fn commit(&mut self, mut snap: Snapshot) -> Option<(ChangeBody, Snapshot)> {
        if !self.has_pending() {
            return None;
        }
        let opts = CommitOptions::default().with_time(snap.time_ms / 1000);
        let mut body = ChangeBody::default();
        for (i, before) in self.pending.iter_mut().enumerate() {
            if let Some(before) = before.take() {
                self.open_ops[i] = 0;
                let doc = &mut self.shards[i];
                doc.commit_with(CommitOptions::default().with_time(snap.time_ms / 1000));
                body.docs.push((i as u16, doc.save_after(&before)));
            }
        }
        snap.heads = self.current_heads_raw();
        let before = self.history.get_heads();
        // put on the root map of a live document only fails on a closed transaction.
        let _ = self.history.put(ROOT, snap.id(), ScalarValue::Bytes(snap.encode()));
        self.history.commit_with(opts);
        body.docs.push((HISTORY_DOC, self.history.save_after(&before)));
        Some((body, snap))
    }

    fn current_heads_raw(&mut self) -> Vec<(u16, Vec<[u8; 32]>)> {
        self.shards
            .iter_mut()
            .enumerate()
            .map(|(i, d)| (i as u16, d.get_heads().into_iter().map(|h| h.0).collect()))
            .collect()
    }

    /// Apply a change body (ours or another device's). Idempotent and order-independent.
    pub fn apply(&mut self, body: &ChangeBody) -> Result<Applied, ManifestError> {
        // Each document's bytes are change chunks inflating to a bounded size, checked before
        // Automerge parses a byte (as the ledger's are): a writer's change cannot make every
        // device that applies it inflate a small blob into gigabytes.
        let hashes = body_hashes(body)?;
        for (doc, bytes) in &body.docs {
            let target = if *doc == HISTORY_DOC {
                &mut self.history
            } else if (*doc as usize) < self.shards.len() {
                self.shard_to_change(*doc as usize)
            } else {
                return Err(ManifestError::Body(format!("unknown shard {doc}")));
            };
            target.load_incremental(bytes)?;
        }
        // A change whose dependencies are missing is held back, not applied, and says nothing:
        // counted, so the space can say so, and told to the caller, which must offer it again
        // after a reopen (a saved document drops what it held back).
        self.waiting = self.shards.iter_mut().map(|d| d.get_missing_deps(&[]).len()).sum();
        // Nothing held back anywhere: every change was taken, no lookup needed.
        if self.waiting == 0 && self.history.get_missing_deps(&[]).is_empty() {
            return Ok(Applied::Taken);
        }
        Ok(if self.holds_all(&hashes) { Applied::Taken } else { Applied::HeldBack })
    }

    /// Whether every change in `body` is part of the manifest. A body held back by
    /// [`Manifest::apply`] is taken as soon as the changes it waited for are applied, by
    /// Automerge and without a word: this is how the caller learns it.
    pub fn holds(&mut self, body: &ChangeBody) -> Result<bool, ManifestError> {
        let hashes = body_hashes(body)?;
        Ok(self.holds_all(&hashes))
    }

    fn holds_all(&mut self, hashes: &[(u16, ChangeHash)]) -> bool {
        hashes.iter().all(|(doc, hash)| {
            let target = if *doc == HISTORY_DOC { Some(&mut self.history) } else { self.shards.get_mut(*doc as usize) };
            target.is_some_and(|t| t.get_change_by_hash(hash).is_some())
        })
    }

    /// Take out the changes of the `refused` units, as if they had never been applied, and
    /// every change that follows one of them (with the rest of its unit: a unit is kept or
    /// dropped whole, so the units kept are exactly what the other devices can apply). The edits
    /// of dropped changes that were not refused (a member's edits made on top of a refused
    /// change) are put again, as this manifest's pending edits, for the caller to commit: they
    /// no longer depend on the refused change, so every device can take them.
    ///
    /// Automerge cannot take a change back, so each document holding a dropped change is built
    /// anew from the changes kept. This manifest writes as `actor` from then on: the dropped
    /// changes used sequence numbers of the old actor that other devices still hold, and
    /// Automerge refuses a second change under one. Without `replay` (a device that may not
    /// write), the edits are dropped too: their writers put them again. Fails with uncommitted
    /// edits.
    pub fn drop_changes(
        &mut self,
        units: &[Unit],
        refused: &[bool],
        actor: &[u8],
        replay_edits: bool,
    ) -> Result<Dropped, ManifestError> {
        use automerge::legacy::{Key, ObjectId, OpType};
        use std::collections::HashSet;
        if self.has_pending() {
            return Err(ManifestError::Body("uncommitted edits: commit them before dropping changes".into()));
        }
        let mut dropped: Vec<bool> = (0..units.len()).map(|i| refused.get(i).copied().unwrap_or(false)).collect();
        let mut tainted: HashSet<(u16, ChangeHash)> =
            units.iter().zip(&dropped).filter(|(_, d)| **d).flat_map(|(u, _)| u.iter().copied()).collect();
        if tainted.is_empty() {
            return Ok(Dropped::default());
        }
        let docs: Vec<u16> = (0..self.shards.len() as u16).chain([HISTORY_DOC]).collect();
        // Every change, per document, in causal order.
        let all: Vec<(u16, Vec<automerge::Change>)> =
            docs.iter().map(|d| (*d, self.doc_mut(*d).get_changes(&[]))).collect();
        loop {
            let before = tainted.len();
            for (d, changes) in &all {
                for c in changes {
                    if c.deps().iter().any(|dep| tainted.contains(&(*d, *dep))) {
                        tainted.insert((*d, c.hash()));
                    }
                }
            }
            for (u, gone) in units.iter().zip(dropped.iter_mut()) {
                if !*gone && u.iter().any(|c| tainted.contains(c)) {
                    *gone = true;
                    tainted.extend(u.iter().copied());
                }
            }
            if tainted.len() == before {
                break;
            }
        }
        let refused_changes: HashSet<(u16, ChangeHash)> = units
            .iter()
            .enumerate()
            .filter(|(i, _)| refused.get(*i).copied().unwrap_or(false))
            .flat_map(|(_, u)| u.iter().copied())
            .collect();
        // The values refused changes put, and what each of those paths shows now.
        let mut refused_puts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut replay: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for (d, changes) in all.iter().filter(|(d, _)| *d != HISTORY_DOC) {
            for c in changes.iter().filter(|c| tainted.contains(&(*d, c.hash()))) {
                let mine = refused_changes.contains(&(*d, c.hash()));
                for op in c.decode().operations {
                    let (ObjectId::Root, Key::Map(path)) = (&op.obj, &op.key) else { continue };
                    match (&op.action, mine) {
                        (OpType::Put(ScalarValue::Bytes(b)), true) => refused_puts.push((path.to_string(), b.clone())),
                        (OpType::Put(ScalarValue::Bytes(b)), false) => replay.push((path.to_string(), Some(b.clone()))),
                        (OpType::Delete, false) => replay.push((path.to_string(), None)),
                        _ => {}
                    }
                }
            }
        }
        let shown: Vec<Option<Entry>> = refused_puts.iter().map(|(p, _)| self.get(p)).collect::<Result<_, _>>()?;
        for (d, changes) in all {
            if !changes.iter().any(|c| tainted.contains(&(d, c.hash()))) {
                continue;
            }
            let mut fresh = AutoCommit::new();
            fresh.apply_changes(changes.into_iter().filter(|c| !tainted.contains(&(d, c.hash()))))?;
            *self.doc_mut(d) = fresh;
        }
        for doc in self.shards.iter_mut().chain([&mut self.history]) {
            doc.set_actor(ActorId::from(actor));
        }
        if !replay_edits {
            replay.clear();
        }
        let replayed = replay.len();
        for (path, value) in replay {
            let s = self.shard_of(&path);
            if self.pending[s].is_none() {
                self.pending[s] = Some(self.shards[s].get_heads());
            }
            match value {
                Some(b) => self.shard_to_change(s).put(ROOT, path.as_str(), ScalarValue::Bytes(b))?,
                None => self.shard_to_change(s).delete(ROOT, path.as_str())?,
            }
            self.count_edit(s);
        }
        let mut reverted: Vec<(String, Entry)> = Vec::new();
        for ((path, bytes), was) in refused_puts.into_iter().zip(shown) {
            let Some(was) = was else { continue };
            if was.encode()? != bytes || self.get(&path)?.as_ref() == Some(&was) {
                continue;
            }
            if !reverted.iter().any(|(p, _)| *p == path) {
                reverted.push((path, was));
            }
        }
        self.waiting = self.shards.iter_mut().map(|d| d.get_missing_deps(&[]).len()).sum();
        let units = dropped.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i).collect();
        Ok(Dropped { units, reverted, replayed })
    }

    fn doc_mut(&mut self, doc: u16) -> &mut AutoCommit {
        match self.shards.get_mut(doc as usize) {
            Some(d) => d,
            None => &mut self.history,
        }
    }

    /// How many changes the last apply left waiting for changes this manifest lacks (Automerge
    /// holds them back until those arrive).
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Full saves of every shard and the history document (for the local cache).
    pub fn save_all(&mut self) -> (Vec<Vec<u8>>, Vec<u8>) {
        use rayon::prelude::*;
        let shards = self.shards.par_iter_mut().map(|d| d.save()).collect();
        (shards, self.history.save())
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let mut out: Vec<Snapshot> = self
            .history
            .map_range(ROOT, ..)
            .filter_map(|item| match item.value {
                ValueRef::Scalar(automerge::ScalarValueRef::Bytes(b)) => postcard::from_bytes(&b).ok(),
                _ => None,
            })
            .collect();
        out.sort_by_key(|s: &Snapshot| (s.time_ms, s.id()));
        out
    }

    /// The state as at a set of snapshots: for each shard, the union of their heads. Reading
    /// at the union of every device's latest snapshot gives the merged state as of then.
    pub fn heads_of(&self, snaps: &[&Snapshot]) -> ShardHeads {
        let mut per: Vec<Vec<ChangeHash>> = vec![Vec::new(); self.shards.len()];
        for s in snaps {
            for (i, hs) in &s.heads {
                if let Some(slot) = per.get_mut(*i as usize) {
                    for h in hs {
                        let h = ChangeHash(*h);
                        if !slot.contains(&h) {
                            slot.push(h);
                        }
                    }
                }
            }
        }
        per
    }

    /// Heads as of a time: the latest snapshot of each device at or before `time_ms`.
    pub fn heads_at_time(&self, time_ms: i64) -> Option<ShardHeads> {
        self.heads_at_time_in(&self.snapshots(), time_ms)
    }

    /// [`Manifest::heads_at_time`] over snapshots already read, for callers that walk history
    /// (reading them per step would be quadratic in its length).
    pub fn heads_at_time_in(&self, snaps: &[Snapshot], time_ms: i64) -> Option<ShardHeads> {
        let mut latest: BTreeMap<DeviceId, &Snapshot> = BTreeMap::new();
        for s in snaps.iter().filter(|s| s.time_ms <= time_ms) {
            latest.insert(s.device, s);
        }
        if latest.is_empty() {
            return None;
        }
        let list: Vec<&Snapshot> = latest.into_values().collect();
        Some(self.heads_of(&list))
    }

    /// How many of `heads` (per shard, as a heads note names them) this manifest lacks. A note
    /// naming another number of shards lacks them all.
    pub fn missing_heads(&mut self, heads: &[Vec<[u8; 32]>]) -> usize {
        if heads.len() != self.shards.len() {
            return heads.iter().map(Vec::len).sum::<usize>().max(1);
        }
        self.shards
            .iter_mut()
            .zip(heads)
            .map(|(doc, hs)| hs.iter().filter(|h| doc.get_change_by_hash(&ChangeHash(**h)).is_none()).count())
            .sum()
    }

    /// Heads of the current state.
    pub fn current_heads(&mut self) -> ShardHeads {
        self.shards.iter_mut().map(|d| d.get_heads()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Kind};
    use crate::ids::BlobId;
    use proptest::prelude::*;

    fn file(n: u8) -> Entry {
        Entry {
            kind: Kind::File { size: n as u64, content: Content::Single(BlobId([n; 32])) },
            mtime_ns: n as i64,
            mode: 0o644,
            device: [n; 8],
        }
    }

    fn snap(t: i64, dev: u8) -> Snapshot {
        Snapshot {
            time_ms: t,
            device: DeviceId([dev; 32]),
            added: 1,
            changed: 0,
            deleted: 0,
            renamed: 0,
            heads: vec![],
        }
    }

    /// A commit of more edits than a change takes carries several changes per shard, and
    /// another device applying it gets every edit.
    #[test]
    fn a_large_commit_goes_out_as_several_changes() {
        let mut m = Manifest::new(1, [1; 32], &[1; 16]);
        let n = EDITS_PER_CHANGE + 100;
        for i in 0..n {
            m.set(&format!("f{i:05}"), &file((i % 250) as u8)).unwrap();
        }
        let (body, _) = m.commit(snap(1, 1)).unwrap();
        let shard_changes = body_hashes(&body).unwrap().iter().filter(|(d, _)| *d == 0).count();
        assert_eq!(shard_changes, 2);
        let mut other = Manifest::new(1, [1; 32], &[2; 16]);
        assert_eq!(other.apply(&body).unwrap(), Applied::Taken);
        assert_eq!(other.entries().unwrap().len(), n);
        assert_eq!(other.get("f08291").unwrap(), Some(file((8291 % 250) as u8)));
    }

    /// The cuts leave no trace: the same saves, and the same change for the same edits after.
    #[test]
    fn presplit_changes_nothing_but_memory() {
        let mut m = Manifest::new(2, [1; 32], &[1; 16]);
        for i in 0..500u32 {
            m.set(&format!("dir/{i:04}.txt"), &file((i % 250) as u8)).unwrap();
        }
        m.commit(snap(1, 1)).unwrap();
        let (shards, hist) = m.save_all();
        let mut plain = Manifest::load(&shards, &hist, [1; 32], &[2; 16]).unwrap();
        // Never cut: marked as if it had been.
        plain.split = vec![true; 2];
        let mut cut = Manifest::load(&shards, &hist, [1; 32], &[2; 16]).unwrap();
        for d in &mut cut.shards {
            presplit(d);
        }
        cut.split = vec![true; 2];
        assert_eq!(cut.save_all(), plain.save_all());
        for m in [&mut plain, &mut cut] {
            for i in (0..500u32).step_by(7) {
                m.set(&format!("dir/{i:04}.txt"), &file(251)).unwrap();
            }
        }
        // Cut or not, the same edits make the same change.
        let (a, _) = plain.commit(snap(2, 2)).unwrap();
        let (b, _) = cut.commit(snap(2, 2)).unwrap();
        assert_eq!(a.docs, b.docs);
        assert_eq!(cut.get("dir/0007.txt").unwrap(), Some(file(251)));
        assert_eq!(cut.get("dir/0008.txt").unwrap(), Some(file(8)));
        assert_eq!(cut.entries().unwrap().len(), 500);
    }

    #[test]
    fn commit_load_and_history() {
        let mut m = Manifest::new(4, [1; 32], &[1; 16]);
        m.set("a.txt", &file(1)).unwrap();
        m.set("dir/b.txt", &file(2)).unwrap();
        let (body1, s1) = m.commit(snap(1000, 1)).unwrap();
        m.set("a.txt", &file(3)).unwrap();
        let (body2, _) = m.commit(snap(2000, 1)).unwrap();
        assert!(m.commit(snap(3000, 1)).is_none());

        // A fresh replica built from the change bodies, in reverse order, agrees.
        let mut r = Manifest::new(4, [1; 32], &[2; 16]);
        r.apply(&ChangeBody::decode(&body2.encode().unwrap()).unwrap()).unwrap();
        r.apply(&body1).unwrap();
        assert_eq!(r.get("a.txt").unwrap(), Some(file(3)));
        let snaps = r.snapshots();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].id(), s1.id());
        let old = r.heads_at_time(1500).unwrap();
        assert_eq!(r.get_at("a.txt", &old).unwrap(), Some(file(1)));
        assert!(r.heads_at_time(10).is_none());

        let (shards, hist) = r.save_all();
        let l = Manifest::load(&shards, &hist, [1; 32], &[2; 16]).unwrap();
        let mut e = l.entries().unwrap();
        e.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(e, vec![("a.txt".into(), file(3)), ("dir/b.txt".into(), file(2))]);
    }

    #[test]
    fn a_commit_split_into_parts_applies_in_any_order() {
        let mut m = Manifest::new(4, [1; 32], &[1; 16]);
        for n in 0..200u8 {
            m.set(&format!("d/{n}.txt"), &file(n)).unwrap();
        }
        let (body, s) = m.commit(snap(1000, 1)).unwrap();
        let docs = body.docs.len();
        let parts = body.split(1);
        assert_eq!(parts.len(), docs, "each document alone when none fits");
        assert_eq!(parts.last().unwrap().docs[0].0, HISTORY_DOC, "history last");
        let mut r = Manifest::new(4, [1; 32], &[2; 16]);
        for p in parts.iter().rev() {
            r.apply(&ChangeBody::decode(&p.encode().unwrap()).unwrap()).unwrap();
        }
        let (mut a, mut b) = (m.entries().unwrap(), r.entries().unwrap());
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a.len(), 200);
        assert_eq!(a, b);
        assert_eq!(r.snapshots()[0].id(), s.id());
    }

    /// A change body whose document is a deflate bomb (a compressed change chunk of 512 MiB
    /// of zeros, a few hundred kilobytes) is refused before Automerge parses it, without
    /// inflating it in memory; an honest body applies.
    #[test]
    fn a_change_whose_entry_does_not_decode_is_refused_whole() {
        // A writer's change with one entry that is not an entry, beside a good one: before,
        // it applied, the path vanished from listings and every read of it failed.
        let mut other = Manifest::new(4, [1; 32], &[2; 16]);
        other.set("good.txt", &file(1)).unwrap();
        let s = other.shard_of("bad.txt");
        other.shards[s].put(ROOT, "bad.txt", ScalarValue::Bytes(vec![0xff; 7])).unwrap();
        other.pending[s].get_or_insert_with(Vec::new);
        let (body, _) = other.commit(snap(1, 2)).unwrap();
        let mut m = Manifest::new(4, [1; 32], &[1; 16]);
        let err = m.apply(&body).unwrap_err();
        assert!(err.to_string().contains("\"bad.txt\"") && err.to_string().contains("does not decode"), "{err}");
        assert!(m.entries().unwrap().is_empty() && m.get("good.txt").unwrap().is_none(), "nothing of it applied");
    }

    /// An entry that does not decode (a damaged document on disk, say) makes the listing fail,
    /// as reading that path does; before, `entries()` left the path out, so a scan took the file
    /// for new and a restore skipped it without a word.
    #[test]
    fn a_listing_with_an_entry_that_does_not_decode_fails_as_a_read_does() {
        let mut m = Manifest::new(4, [1; 32], &[2; 16]);
        m.set("good.txt", &file(1)).unwrap();
        assert_eq!(m.entries().unwrap().len(), 1);
        let s = m.shard_of("bad.txt");
        m.shards[s].put(ROOT, "bad.txt", ScalarValue::Bytes(vec![0xff; 7])).unwrap();
        assert!(m.get("bad.txt").is_err());
        assert!(m.entries().is_err(), "the listing fails like the read");
        let heads: ShardHeads = m.shards.iter_mut().map(|d| d.get_heads()).collect();
        assert!(m.entries_at(&heads).is_err());
    }

    #[test]
    fn a_change_that_inflates_past_the_cap_is_refused() {
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..512 {
            z.write_all(&zeros).unwrap();
        }
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
        assert!(chunk.len() < 1 << 20);
        let mut m = Manifest::new(4, [1; 32], &[1; 16]);
        let err = m.apply(&ChangeBody { docs: vec![(0, chunk)] }).unwrap_err();
        assert!(err.to_string().contains("inflate past"), "{err}");
        // An honest change from another device applies.
        let mut other = Manifest::new(4, [1; 32], &[2; 16]);
        other.set("a.txt", &file(1)).unwrap();
        let (body, _) = other.commit(snap(1, 2)).unwrap();
        m.apply(&body).unwrap();
        assert!(m.get("a.txt").unwrap().is_some());
    }

    /// A change applied before the one it follows is held back, and is part of the manifest
    /// once that one comes: `holds` says so, since `apply` said only "held back".
    #[test]
    fn a_change_held_back_is_held_once_the_one_it_follows_comes() {
        let mut w = Manifest::new(4, [1; 32], &[1; 16]);
        w.set("a", &file(1)).unwrap();
        let (first, _) = w.commit(snap(1000, 1)).unwrap();
        w.set("a", &file(2)).unwrap();
        let (second, _) = w.commit(snap(2000, 1)).unwrap();
        let mut m = Manifest::new(4, [1; 32], &[2; 16]);
        assert_eq!(m.apply(&second).unwrap(), Applied::HeldBack);
        assert!(!m.holds(&second).unwrap());
        assert_eq!(m.apply(&first).unwrap(), Applied::Taken);
        assert!(m.holds(&second).unwrap() && m.holds(&first).unwrap());
        assert_eq!(m.get("a").unwrap(), Some(file(2)));
    }

    /// A member that took a change later refused (a removed writer's, relayed) and edited on
    /// top of it drops it: its own edits stay, as a change every device can take, and the
    /// paths only the refused change set go back (issue 31 item 4).
    #[test]
    fn dropping_a_refused_change_keeps_the_edits_made_on_top_of_it() {
        let mut w = Manifest::new(4, [1; 32], &[1; 16]);
        w.set("a", &file(1)).unwrap();
        w.set("c", &file(1)).unwrap();
        let (base, _) = w.commit(snap(1000, 1)).unwrap();
        w.set("a", &file(2)).unwrap();
        w.set("c", &file(2)).unwrap();
        let (refused, _) = w.commit(snap(2000, 1)).unwrap();
        let mut m = Manifest::new(4, [1; 32], &[2; 16]);
        let mut informed = Manifest::new(4, [1; 32], &[3; 16]);
        for body in [&base, &refused] {
            m.apply(body).unwrap();
        }
        informed.apply(&base).unwrap();
        m.set("a", &file(3)).unwrap();
        m.set("b", &file(3)).unwrap();
        let (on_top, _) = m.commit(snap(3000, 2)).unwrap();
        assert_eq!(informed.apply(&on_top).unwrap(), Applied::HeldBack, "the split: it follows the refused change");
        let units: Vec<Unit> = [&base, &refused, &on_top].iter().map(|b| b.change_hashes().unwrap()).collect();
        let d = m.drop_changes(&units, &[false, true, false], &[4; 16], true).unwrap();
        assert_eq!(d.units, vec![1, 2]);
        assert_eq!(d.replayed, 2, "a and b");
        assert_eq!(d.reverted, vec![("c".to_string(), file(2))], "only the path still showing the refused value");
        assert_eq!(m.get("c").unwrap(), Some(file(1)));
        assert_eq!((m.get("a").unwrap(), m.get("b").unwrap()), (Some(file(3)), Some(file(3))));
        let (again, _) = m.commit(snap(4000, 2)).unwrap();
        // The informed member takes the edits put again, and both show the same state.
        assert_eq!(informed.apply(&again).unwrap(), Applied::Taken);
        for p in ["a", "b", "c"] {
            assert_eq!(informed.get(p).unwrap(), m.get(p).unwrap(), "{p}");
        }
        // Saved and loaded, nothing of the dropped changes comes back.
        let (shards, history) = m.save_all();
        let back = Manifest::load(&shards, &history, [1; 32], &[4; 16]).unwrap();
        assert_eq!(back.get("c").unwrap(), Some(file(1)));
        assert!(
            m.drop_changes(&units, &[false, false, false], &[5; 16], true).unwrap().units.is_empty(),
            "nothing refused"
        );
    }

    #[test]
    fn concurrent_edits_are_visible_as_conflicts() {
        let mut a = Manifest::new(2, [1; 32], &[1; 16]);
        let mut b = Manifest::new(2, [1; 32], &[2; 16]);
        a.set("x", &file(1)).unwrap();
        let (ba, _) = a.commit(snap(1, 1)).unwrap();
        b.set("x", &file(2)).unwrap();
        let (bb, _) = b.commit(snap(1, 2)).unwrap();
        a.apply(&bb).unwrap();
        b.apply(&ba).unwrap();
        assert_eq!(a.get("x").unwrap(), b.get("x").unwrap());
        assert_eq!(a.get_all("x").unwrap().len(), 2);
    }

    proptest! {
        #[test]
        fn a_snapshot_encodes_as_postcard_does(
            time_ms in any::<i64>(),
            device in any::<[u8; 32]>(),
            counts in any::<[u32; 4]>(),
            heads in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<[u8; 32]>(), 0..3)), 0..4),
        ) {
            let s = Snapshot {
                time_ms,
                device: DeviceId(device),
                added: counts[0],
                changed: counts[1],
                deleted: counts[2],
                renamed: counts[3],
                heads,
            };
            prop_assert_eq!(s.encode(), postcard::to_stdvec(&s).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Parts keep every document once, in order, each part within the limit unless one
        /// document alone is larger, and none empty.
        #[test]
        fn split_bodies_keep_every_document_in_order(
            sizes in proptest::collection::vec(0usize..5000, 0..20),
            max in 1usize..12000,
        ) {
            let docs: Vec<(u16, Vec<u8>)> =
                sizes.iter().enumerate().map(|(i, &n)| (i as u16, vec![i as u8; n])).collect();
            let parts = ChangeBody { docs: docs.clone() }.split(max);
            let joined: Vec<(u16, Vec<u8>)> = parts.iter().flat_map(|p| p.docs.clone()).collect();
            prop_assert_eq!(joined, docs.clone());
            for p in &parts {
                prop_assert!(!p.docs.is_empty() || docs.is_empty());
                let size: usize = p.docs.iter().map(|(_, b)| b.len() + 16).sum();
                prop_assert!(size <= max || p.docs.len() == 1, "{} bytes in {} docs", size, p.docs.len());
                prop_assert!(p.encode().unwrap().len() <= size + 8);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Applying any subset of changes in any order converges, with every edit present.
        #[test]
        fn merge_converges(edits in proptest::collection::vec((0u8..3, 0u8..6, 1u8..200), 1..12), seed in any::<u64>()) {
            let mut devs: Vec<Manifest> = (0..3).map(|d| Manifest::new(3, [1; 32], &[d + 1; 16])).collect();
            let mut bodies = Vec::new();
            let mut snapshot_ids = std::collections::HashSet::new();
            for (dev, path, val) in &edits {
                let m = &mut devs[*dev as usize];
                m.set(&format!("p{path}"), &file(*val)).unwrap();
                let (body, s) = m.commit(snap(*val as i64, *dev)).unwrap();
                // Setting a value a path already holds changes no document, so its snapshot is
                // the previous one again (same heads, same id).
                snapshot_ids.insert(s.id());
                bodies.push(body);
            }
            let mut order: Vec<usize> = (0..bodies.len()).collect();
            let mut x = seed;
            for i in (1..order.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (x >> 33) as usize % (i + 1));
            }
            let mut a = Manifest::new(3, [1; 32], &[9; 16]);
            let mut b = Manifest::new(3, [1; 32], &[10; 16]);
            for &i in &order { a.apply(&bodies[i]).unwrap(); }
            for b_ in bodies.iter().rev() { b.apply(b_).unwrap(); }
            let mut ea = a.entries().unwrap(); ea.sort_by(|x, y| x.0.cmp(&y.0));
            let mut eb = b.entries().unwrap(); eb.sort_by(|x, y| x.0.cmp(&y.0));
            prop_assert_eq!(&ea, &eb);
            // No edit lost: devices never saw each other's edits, so every device's last edit of a
            // path is one of its concurrent values, and nothing else is.
            for path in 0u8..6 {
                let mut expected: Vec<Vec<u8>> = (0u8..3)
                    .filter_map(|d| edits.iter().rev().find(|(dd, p, _)| *dd == d && *p == path).map(|e| file(e.2).encode().unwrap()))
                    .collect();
                let mut actual: Vec<Vec<u8>> = a.get_all(&format!("p{path}")).unwrap().iter().map(|e| e.encode().unwrap()).collect();
                expected.sort();
                actual.sort();
                prop_assert_eq!(actual, expected);
            }
            prop_assert_eq!(a.snapshots().len(), snapshot_ids.len());
        }
    }
}
