//! One open space: keys, blob store and manifest, and the operations on them.

use crate::chunk::Chunker;
use crate::crypto::{BlobKind, SpaceKeys, verify_change_signature};
use crate::entry::{Content, Entry, Kind};
use crate::error::{Error, IoContext};
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::ignores::{IGNORE_FILE, Ignores, MAX_IGNORE_FILE};
use crate::manifest::{ChangeBody, Manifest, ShardHeads, Snapshot};
use crate::store::BlobStore;
use crate::util::{read_ignores, read_rules_text, rfc3339, too_large, write_atomic};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

pub(crate) mod materialize;
pub(crate) mod restore;
pub(crate) mod scan;

/// A space as registered on this device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpaceInfo {
    /// The space id (its signing public key).
    pub id: SpaceId,
    /// The local name.
    pub name: String,
    /// The folder it tracks.
    pub path: PathBuf,
    /// When it was created or joined here.
    pub created_ms: i64,
    /// This device's Automerge actor id for the space (hex).
    pub actor: String,
    /// Number of manifest shard documents.
    pub shards: u16,
    /// Verified copies (seeders) the space should have; fewer is shown as a warning.
    #[serde(default = "default_replicas_target")]
    pub replicas_target: u32,
}

pub(crate) fn default_replicas_target() -> u32 {
    2
}

/// Compact the manifest cache once this many change blobs are not in it.
const COMPACT_AFTER: usize = 16;
/// Store meta key: the applied-changes digest of the last materialiser pass that left nothing to do.
pub(crate) const MATERIALIZED: &str = "materialized";
/// Largest change blob a commit makes (plaintext), against the protocol's 64 MiB frames.
const CHANGE_PART: usize = 16 << 20;

/// An open space.
pub struct Space {
    pub(crate) info: SpaceInfo,
    pub(crate) dir: PathBuf,
    pub(crate) keys: SpaceKeys,
    pub(crate) signer: SigningKey,
    pub(crate) store: std::sync::Arc<BlobStore>,
    pub(crate) manifest: Manifest,
    pub(crate) device: DeviceId,
    pub(crate) chunker: Chunker,
    /// Change blobs already folded into the on-disk manifest cache.
    included: HashSet<BlobId>,
    /// Change blobs applied to the in-memory manifest.
    applied: HashSet<BlobId>,
    /// The last materialiser pass left nothing to do (nothing waiting, nothing refused) and no
    /// change was applied since: a session that brings none need not walk the folder again.
    pub(crate) folder_current: bool,
    /// Set when the folder may have changed since the last scan; `None`: always assume so.
    pub(crate) changed: Option<ChangeFlag>,
    /// The folder's `.coboxignore` rules as last read (by a scan or a materialiser pass).
    pub(crate) ignores: Ignores,
}

/// Raised by whoever watches a space's folder when it may have changed since the last scan.
pub type ChangeFlag = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// Which version of a conflicted file to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The file under its name; the conflict copy is deleted.
    Current,
    /// The conflict copy's version, under the name.
    Copy,
    /// Both: the copy is renamed to a plain name.
    Both,
}

/// A past state, as `cobox history` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryItem {
    /// Snapshot id (16 hex characters); `restore --at` takes it.
    pub id: String,
    /// Commit time, RFC 3339 UTC.
    pub time: String,
    /// Commit time, milliseconds since the epoch.
    pub time_ms: i64,
    /// Device that committed it (full id).
    pub device: String,
    /// Paths added.
    pub added: u32,
    /// Paths changed.
    pub changed: u32,
    /// Paths deleted.
    pub deleted: u32,
    /// Renames among the added/deleted.
    pub renamed: u32,
    /// Files touched.
    pub files_changed: u32,
    /// With a PATH filter: what happened to it ("added", "changed", "deleted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Local changes not yet recorded by a scan (from metadata alone).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Pending {
    /// New paths.
    pub added: u64,
    /// Paths whose metadata changed.
    pub changed: u64,
    /// Recorded paths now missing.
    pub deleted: u64,
}

/// `cobox status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Space id.
    pub id: String,
    /// Local name.
    pub name: String,
    /// Folder.
    pub path: String,
    /// Live files in the manifest.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of live files.
    pub bytes: u64,
    /// Blobs in the local store.
    pub blobs: u64,
    /// Bytes the store holds (compressed, encrypted).
    pub stored_bytes: u64,
    /// Snapshots in history.
    pub snapshots: u64,
    /// Time of the last scan on this device (RFC 3339), if any.
    pub last_scan: Option<String>,
    /// Local changes awaiting a scan.
    pub pending: Pending,
    /// Paths with concurrent versions.
    pub conflicts: Vec<String>,
    /// Seeders with an active agreement and a passed audit within the audit window.
    pub replicas: u32,
    /// How many the space should have.
    pub replicas_target: u32,
    /// Every agreement in the space's ledger.
    pub agreements: Vec<crate::ledger::AgreementSummary>,
}

/// One bad blob and the files that need it.
#[derive(Debug, Clone, Serialize)]
pub struct BadBlob {
    /// The blob id.
    pub blob: String,
    /// Files (current state) that use it.
    pub files: Vec<String>,
}

/// `cobox verify`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Blobs whose bytes no longer match their id.
    pub corrupt: Vec<BadBlob>,
    /// Blobs the manifest needs that the store lacks.
    pub missing: Vec<BadBlob>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

/// `cobox gc`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GcReport {
    /// Snapshots whose states were kept restorable.
    pub states_kept: u64,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Packs rewritten or deleted.
    pub packs_rewritten: u64,
    /// States before this time can no longer be restored (RFC 3339), when a window was given.
    pub pruned_before: Option<String>,
}

impl Space {
    pub(crate) fn open(info: SpaceInfo, dir: PathBuf, secret: &[u8; 64], device: DeviceId) -> Result<Self, Error> {
        let mut root = [0u8; 32];
        root.copy_from_slice(&secret[32..]);
        let keys = SpaceKeys::derive(&root);
        let store = std::sync::Arc::new(BlobStore::open(&dir)?);
        let actor = hex::decode(&info.actor)
            .map_err(|e| Error::Config { path: dir.join("space.json"), reason: format!("actor: {e}") })?;
        let (manifest, included) = load_cache(&dir, &info, &keys, &actor)?;
        let mut space = Self {
            chunker: Chunker::new(&keys.gear),
            info,
            dir,
            keys,
            signer: crate::crypto::space_signing_key(secret),
            store,
            manifest,
            device,
            applied: included.clone(),
            included,
            changed: None,
            folder_current: false,
            ignores: Ignores::none(),
        };
        space.apply_stored_changes()?;
        // Unusable rules are reported by the next scan or pass, which read them again.
        space.ignores = read_ignores(&space.info.path).map(|(r, _)| r).unwrap_or_default();
        // A pass of an earlier process over the same changes and rules left the folder current.
        space.folder_current = space.store.meta_get(MATERIALIZED)?.is_some_and(|d| d == space.folder_digest());
        Ok(space)
    }

    /// A digest of the set of applied change blobs and of the ignore rules: what a materialiser
    /// pass that left the folder current ran with.
    pub(crate) fn folder_digest(&self) -> [u8; 32] {
        let mut ids: Vec<&BlobId> = self.applied.iter().collect();
        ids.sort();
        let mut h = blake3::Hasher::new();
        for id in ids {
            h.update(id.as_bytes());
        }
        h.update(&self.ignores.digest());
        *h.finalize().as_bytes()
    }

    /// The folder's ignore rules as text (empty when it has none).
    pub fn ignore_rules(&self) -> Result<String, Error> {
        Ok(read_rules_text(&self.info.path)?.unwrap_or_default())
    }

    /// Replace the folder's ignore rules (written to a temp file and renamed into place) and use
    /// them from now on. Returns a warning per line left out; the next scan records the file.
    pub fn set_ignore_rules(&mut self, text: &str) -> Result<Vec<String>, Error> {
        if text.len() as u64 > MAX_IGNORE_FILE {
            return Err(too_large(&self.info.path, text.len() as u64));
        }
        let tmp = self.info.path.join(format!("{}{}-ignore", crate::util::TMP_PREFIX, std::process::id()));
        let target = self.info.path.join(IGNORE_FILE);
        if let Err(e) = fs::write(&tmp, text).at(&tmp).and_then(|()| fs::rename(&tmp, &target).at(&target)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.load_ignores()
    }

    /// Read the ignore rules again. Rules that changed make the folder not current, so the next
    /// pass writes what they no longer ignore.
    pub(crate) fn load_ignores(&mut self) -> Result<Vec<String>, Error> {
        let (rules, warnings) = read_ignores(&self.info.path)?;
        if rules.digest() != self.ignores.digest() {
            self.folder_current = false;
        }
        self.ignores = rules;
        Ok(warnings)
    }

    /// From now on [`Space::scan_if_changed`] scans only after the returned flag is raised: hand
    /// it to a folder watcher. It starts raised, so the next call scans. A one-shot command
    /// that has just scanned can keep it to itself, so its sessions do not scan again.
    pub fn scan_when_flagged(&mut self) -> ChangeFlag {
        let flag = ChangeFlag::new(std::sync::atomic::AtomicBool::new(true));
        self.changed = Some(flag.clone());
        flag
    }

    /// Go back to scanning before every session (the watch on the folder failed).
    pub fn scan_always(&mut self) {
        self.changed = None;
    }

    /// Scan, unless the folder is watched and nothing changed since the last scan. Sessions
    /// call this before telling a peer what this device holds; with 100,000 files a scan costs
    /// about half a second, on both sides of every session.
    pub fn scan_if_changed(&mut self) -> Result<Option<crate::ScanReport>, Error> {
        match &self.changed {
            Some(flag) if !flag.load(std::sync::atomic::Ordering::SeqCst) => Ok(None),
            _ => self.scan(&crate::NoProgress).map(Some),
        }
    }

    /// The space's registration.
    pub fn info(&self) -> &SpaceInfo {
        &self.info
    }

    /// Apply every stored change blob not yet in the manifest.
    fn apply_stored_changes(&mut self) -> Result<(), Error> {
        for (id, loc) in self.store.list()? {
            if loc.kind != BlobKind::Change || self.applied.contains(&id) {
                continue;
            }
            let blob = self.store.get(&id)?;
            verify_change_signature(&self.info.id, &blob).map_err(|source| Error::Blob { blob: id, source })?;
            let plain = self.keys.open(BlobKind::Change, &blob).map_err(|source| Error::Blob { blob: id, source })?;
            self.manifest.apply(&ChangeBody::decode(&plain)?)?;
            self.applied.insert(id);
        }
        Ok(())
    }

    /// Seal, store and flush a committed change.
    pub(crate) fn persist_change(&mut self, body: ChangeBody) -> Result<(), Error> {
        // A large commit becomes several change blobs, each well within a sync frame.
        let mut ids = Vec::new();
        for part in body.split(CHANGE_PART) {
            let mut nonce = [0u8; 24];
            crate::random_bytes(&mut nonce);
            let blob = self.keys.seal_change(&self.signer, nonce, &part.encode()?);
            let id = BlobId::of(&blob);
            self.store.put(id, BlobKind::Change, &blob)?;
            ids.push(id);
        }
        self.store.flush()?;
        self.applied.extend(ids);
        if self.applied.len() - self.included.len() >= COMPACT_AFTER {
            self.compact()?;
        }
        Ok(())
    }

    /// Every blob id this device holds for the space.
    pub fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        self.store.flush()?;
        Ok(self.store.list()?.into_iter().map(|(id, _)| id).collect())
    }

    /// A stored blob's bytes (checked against its id).
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        Ok(self.store.get(id)?)
    }

    /// Accept a blob from a peer: its bytes must hash to `id`, and a manifest change must carry
    /// the space's signature. Anything else is refused and not stored.
    pub fn receive_blob(&self, id: &BlobId, data: &[u8]) -> Result<bool, Error> {
        if BlobId::of(data) != *id {
            return Err(Error::Refused(format!("blob {id} does not match its id")));
        }
        let kind = crate::crypto::blob_kind(data).map_err(|source| Error::Blob { blob: *id, source })?;
        if kind == BlobKind::Change {
            verify_change_signature(&self.info.id, data).map_err(|source| Error::Blob { blob: *id, source })?;
        }
        Ok(self.store.put(*id, kind, data)?)
    }

    /// Make received blobs durable and apply received manifest changes. Returns how many
    /// changes were new.
    pub fn apply_received(&mut self) -> Result<usize, Error> {
        self.store.flush()?;
        let before = self.applied.len();
        self.apply_stored_changes()?;
        let n = self.applied.len() - before;
        if n > 0 {
            self.folder_current = false;
        }
        if self.applied.len() - self.included.len() >= COMPACT_AFTER {
            self.compact()?;
        }
        Ok(n)
    }

    /// Make received blobs durable without applying them (a session that broke off).
    pub fn flush_received(&self) -> Result<(), Error> {
        Ok(self.store.flush()?)
    }

    /// Apply received changes and write them into the folder, as one step: a scan between the
    /// two would see the manifest ahead of the folder. With no change since a pass that left
    /// nothing to do, the folder is not walked again (0.2 s per 100,000 files, after every
    /// session of an idle daemon).
    pub fn apply_and_materialize(&mut self) -> Result<(usize, crate::MaterializeReport), Error> {
        let n = self.apply_received()?;
        // Read before the check: changed rules make the folder not current.
        self.load_ignores()?;
        if n == 0 && self.folder_current {
            return Ok((0, materialize::MaterializeReport::default()));
        }
        Ok((n, self.materialize_and_plan()?.0))
    }

    /// Set how many verified copies the space should have (kept in `space.json`).
    pub fn set_replicas_target(&mut self, n: u32) -> Result<(), Error> {
        self.info.replicas_target = n;
        let json = crate::error::json("space.json", &self.info)?;
        write_atomic(&self.dir.join("space.json"), &json)
    }

    /// The space's ledger of seeding agreements.
    pub fn ledger(&self) -> crate::ledger::LedgerFile {
        crate::ledger::LedgerFile::new(self.info.id, &self.dir)
    }

    /// The space's signing key (members prove membership with it).
    pub(crate) fn space_key(&self) -> &SigningKey {
        &self.signer
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Rewrite the manifest cache as full saves that include every applied change.
    pub fn compact(&mut self) -> Result<(), Error> {
        let mdir = self.dir.join("manifest");
        fs::create_dir_all(&mdir).at(&mdir)?;
        let gen_n = read_current(&mdir)?.map_or(1, |g| g + 1);
        let tmp = mdir.join(format!(".gen-{gen_n}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).at(&tmp)?;
        let (shards, history) = self.manifest.save_all();
        for (i, s) in shards.iter().enumerate() {
            write_atomic(&tmp.join(format!("shard-{i:04}.am")), s)?;
        }
        write_atomic(&tmp.join("history.am"), &history)?;
        let ids: Vec<u8> = self.applied.iter().flat_map(|id| id.0).collect();
        write_atomic(&tmp.join("included"), &ids)?;
        let dest = mdir.join(format!("gen-{gen_n}"));
        fs::rename(&tmp, &dest).at(&dest)?;
        write_atomic(&mdir.join("CURRENT"), gen_n.to_string().as_bytes())?;
        // Older generations are superseded; removing them is best-effort.
        for e in fs::read_dir(&mdir).at(&mdir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("gen-") && name != format!("gen-{gen_n}") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        self.included = self.applied.clone();
        Ok(())
    }

    /// The chunk blobs (and chunk-list blob) a content reference needs.
    pub(crate) fn content_blobs(&self, content: &Content) -> Result<Vec<(BlobId, u32)>, Error> {
        crate::space::restore::content_blobs(&self.store, &self.keys, content)
    }

    /// What writing files needs, detached from the space (for threads).
    pub(crate) fn file_writer(&self) -> crate::space::restore::FileWriter {
        crate::space::restore::FileWriter { store: self.store.clone(), keys: self.keys.clone() }
    }

    /// Past states, newest first; with `path`, only those that changed it.
    pub fn history(&self, path: Option<&str>) -> Result<Vec<HistoryItem>, Error> {
        let snaps = self.manifest.snapshots();
        let mut out = Vec::new();
        let mut prev: Option<Entry> = None;
        for s in &snaps {
            let mut action = None;
            if let Some(p) = path {
                let heads = self.manifest.heads_at_time_in(&snaps, s.time_ms).unwrap_or_default();
                let now = self.manifest.get_at(p, &heads)?;
                let was_live = prev.as_ref().is_some_and(Entry::is_live);
                action = match (&now, was_live) {
                    (Some(e), false) if e.is_live() => Some("added"),
                    (Some(e), true) if !e.is_live() => Some("deleted"),
                    (Some(e), true) if !prev.as_ref().is_some_and(|p| p.same_state(e)) => Some("changed"),
                    _ => None,
                };
                prev = now;
                if action.is_none() {
                    continue;
                }
            }
            out.push(HistoryItem {
                id: s.id(),
                time: rfc3339(s.time_ms),
                time_ms: s.time_ms,
                device: s.device.to_string(),
                added: s.added,
                changed: s.changed,
                deleted: s.deleted,
                renamed: s.renamed,
                files_changed: s.files_changed(),
                action: action.map(str::to_owned),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Find a snapshot by id or unique id prefix.
    pub(crate) fn find_snapshot(&self, query: &str) -> Result<Snapshot, Error> {
        let q = query.to_ascii_lowercase();
        let hits: Vec<Snapshot> = self.manifest.snapshots().into_iter().filter(|s| s.id().starts_with(&q)).collect();
        match hits.len() {
            1 => Ok(hits.into_iter().next().unwrap_or_else(|| unreachable!())),
            0 => Err(Error::NoHistory(format!("no history entry {query:?}; `cobox history` lists them"))),
            _ => Err(Error::NoHistory(format!("{query:?} matches several history entries; give more characters"))),
        }
    }

    /// Entries of the state at `heads` (all current entries with `None`).
    pub(crate) fn entries(&self, heads: Option<&ShardHeads>) -> Vec<(String, Entry)> {
        match heads {
            Some(h) => self.manifest.entries_at(h),
            None => self.manifest.entries(),
        }
    }

    /// Re-hash every stored blob; check every blob the current state needs is present.
    pub fn verify(&self, progress: &dyn crate::Progress) -> Result<VerifyReport, Error> {
        let (_, total) = self.store.usage()?;
        progress.start("verifying", total);
        let check = self.store.check(&|n| progress.advance(n))?;
        let bad: HashSet<BlobId> = check.corrupt.iter().chain(&check.missing).copied().collect();
        let mut users: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        let mut absent: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        for (path, e) in self.manifest.entries() {
            let Kind::File { content, .. } = &e.kind else { continue };
            let mut need = Vec::new();
            match content {
                Content::Empty => {}
                Content::Single(id) => need.push(*id),
                Content::List { list, .. } => {
                    need.push(*list);
                    if let Ok(chunks) = self.content_blobs(content) {
                        need.extend(chunks.into_iter().map(|(id, _)| id));
                    }
                }
            }
            for id in need {
                if bad.contains(&id) {
                    users.entry(id).or_default().push(path.clone());
                } else if !self.store.contains(&id)? {
                    absent.entry(id).or_default().push(path.clone());
                }
            }
        }
        let named = |ids: &[BlobId], users: &BTreeMap<BlobId, Vec<String>>| -> Vec<BadBlob> {
            ids.iter()
                .map(|id| BadBlob { blob: id.to_string(), files: users.get(id).cloned().unwrap_or_default() })
                .collect()
        };
        let mut missing = named(&check.missing, &users);
        missing.extend(absent.into_iter().map(|(id, files)| BadBlob { blob: id.to_string(), files }));
        Ok(VerifyReport {
            blobs_checked: check.blobs,
            bytes_checked: check.bytes,
            corrupt: named(&check.corrupt, &users),
            missing,
        })
    }

    /// Remove blobs no retained state references. Without `keep_within_ms` every snapshot
    /// is retained (only blobs of interrupted scans go); with it, states older than the window
    /// are dropped except the last one before it, so any moment inside the window restores.
    pub fn gc(&mut self, keep_within_ms: Option<i64>) -> Result<GcReport, Error> {
        let snaps = self.manifest.snapshots();
        let now = crate::now_ms();
        let cutoff = keep_within_ms.map(|w| now - w);
        let mut states: Vec<Option<ShardHeads>> = vec![None];
        let mut kept = 0u64;
        let mut devices: HashSet<DeviceId> = HashSet::new();
        for s in snaps.iter().rev() {
            let within = cutoff.is_none_or(|c| s.time_ms >= c);
            // The newest snapshot per device at or before the cutoff anchors the window's start.
            if within || devices.insert(s.device) {
                states.push(self.manifest.heads_at_time_in(&snaps, s.time_ms));
                kept += 1;
            }
            if within {
                devices.remove(&s.device);
            }
        }
        let mut contents: HashSet<Content> = HashSet::new();
        for heads in &states {
            for (_, e) in self.entries(heads.as_ref()) {
                if let Kind::File { content, .. } = e.kind {
                    contents.insert(content);
                }
            }
        }
        let mut live: HashSet<BlobId> = HashSet::new();
        for c in &contents {
            if let Content::List { list, .. } = c {
                live.insert(*list);
            }
            match self.content_blobs(c) {
                Ok(chunks) => live.extend(chunks.into_iter().map(|(id, _)| id)),
                // An unreadable chunk list must not make its chunks look dead.
                Err(e) => return Err(e),
            }
        }
        let dead: HashSet<BlobId> = self
            .store
            .list()?
            .into_iter()
            .filter(|(id, loc)| loc.kind != BlobKind::Change && !live.contains(id))
            .map(|(id, _)| id)
            .collect();
        let stats = self.store.remove(&dead)?;
        if let Some(c) = cutoff {
            let prev = self.pruned_before()?.unwrap_or(i64::MIN);
            // States older than the anchor snapshot lost their unique blobs.
            let anchor = snaps.iter().filter(|s| s.time_ms < c).map(|s| s.time_ms).max().unwrap_or(i64::MIN);
            if anchor > prev {
                self.store.meta_set("pruned_before", &anchor.to_le_bytes())?;
            }
        }
        Ok(GcReport {
            states_kept: kept,
            blobs_removed: stats.blobs,
            bytes_freed: stats.bytes,
            packs_rewritten: stats.packs,
            pruned_before: self.pruned_before()?.filter(|t| *t > i64::MIN).map(rfc3339),
        })
    }

    /// States strictly before this time were pruned by `gc`.
    pub(crate) fn pruned_before(&self) -> Result<Option<i64>, Error> {
        Ok(self.store.meta_get("pruned_before")?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes))
    }

    /// Files, sizes, storage and pending changes.
    pub fn status(&self) -> Result<Status, Error> {
        let (mut files, mut dirs, mut symlinks, mut bytes) = (0, 0, 0, 0);
        let mut conflicts = Vec::new();
        for (path, e) in self.manifest.entries() {
            match &e.kind {
                Kind::File { size, .. } => {
                    files += 1;
                    bytes += size;
                }
                Kind::Dir => dirs += 1,
                Kind::Symlink { .. } => symlinks += 1,
                Kind::Deleted => continue,
            }
            if path.contains(".sync-conflict-") || self.manifest.get_all(&path)?.len() > 1 {
                conflicts.push(path);
            }
        }
        conflicts.sort();
        let (blobs, stored_bytes) = self.store.usage()?;
        let now = crate::now_ms();
        let view = self.ledger().view(now)?;
        let last_scan =
            self.store.meta_get("last_scan")?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes).map(rfc3339);
        Ok(Status {
            id: self.info.id.to_string(),
            name: self.info.name.clone(),
            path: self.info.path.display().to_string(),
            files,
            dirs,
            symlinks,
            bytes,
            blobs,
            stored_bytes,
            snapshots: self.manifest.snapshots().len() as u64,
            last_scan,
            pending: self.pending()?,
            conflicts,
            replicas: view.replicas(now, crate::ledger::AUDIT_WINDOW_MS) as u32,
            replicas_target: self.info.replicas_target,
            agreements: view
                .agreements
                .iter()
                .map(|v| crate::ledger::summary(v, Some(&self.info.name), "member", now))
                .collect(),
        })
    }

    /// Put an older version of one file (a history id) back in the folder, and record it.
    pub fn restore_version(&mut self, path: &str, history_id: &str) -> Result<crate::ScanReport, Error> {
        let dest = self.info.path.clone();
        let r = self.restore(&dest, &restore::At::Snapshot(history_id.to_owned()), Some(path), &crate::NoProgress)?;
        if let Some(e) = r.errors.first() {
            return Err(Error::RestoreFailed(e.clone()));
        }
        self.scan(&crate::NoProgress)
    }

    /// Settle a conflict copy (`NAME.sync-conflict-…`) in the folder, then record the result:
    /// keep the file under the name, keep the copy's version under the name, or keep both
    /// (the copy is renamed `NAME (other version).EXT`).
    pub fn resolve_conflict(&mut self, copy: &str, keep: Keep) -> Result<crate::ScanReport, Error> {
        let original = crate::conflict_original(copy)
            .ok_or_else(|| Error::InvalidPath(format!("{copy} is not a conflict copy")))?;
        let root = self.info.path.clone();
        let target = |p: &str| crate::space::restore::safe_target(&root, p).map_err(Error::InvalidPath);
        let (copy_t, orig_t) = (target(copy)?, target(&original)?);
        match keep {
            Keep::Current => fs::remove_file(&copy_t).at(&copy_t)?,
            Keep::Copy => fs::rename(&copy_t, &orig_t).at(&orig_t)?,
            Keep::Both => {
                let (stem, ext) = match original.rfind('.').filter(|&i| i > original.rfind('/').map_or(0, |j| j + 1)) {
                    Some(i) => (&original[..i], &original[i..]),
                    None => (original.as_str(), ""),
                };
                let mut n = 1;
                let mut name = format!("{stem} (other version){ext}");
                while target(&name)?.exists() {
                    n += 1;
                    name = format!("{stem} (other version {n}){ext}");
                }
                let t = target(&name)?;
                fs::rename(&copy_t, &t).at(&t)?;
            }
        }
        self.scan(&crate::NoProgress)
    }

    /// Every current live entry (for front ends that list files).
    pub fn files(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<(String, Entry)> = self.manifest.entries().into_iter().filter(|(_, e)| e.is_live()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub(crate) fn device_short(&self) -> [u8; 8] {
        let mut d = [0u8; 8];
        d.copy_from_slice(&self.device.0[..8]);
        d
    }
}

fn read_current(mdir: &std::path::Path) -> Result<Option<u64>, Error> {
    let p = mdir.join("CURRENT");
    match fs::read_to_string(&p) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| Error::Config { path: p, reason: "not a number".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Load the manifest cache: the newest complete generation of full saves.
fn load_cache(
    dir: &std::path::Path,
    info: &SpaceInfo,
    keys: &SpaceKeys,
    actor: &[u8],
) -> Result<(Manifest, HashSet<BlobId>), Error> {
    let mdir = dir.join("manifest");
    let Some(gen_n) = read_current(&mdir)? else {
        return Ok((Manifest::new(info.shards, keys.path, actor), HashSet::new()));
    };
    let g = mdir.join(format!("gen-{gen_n}"));
    let mut shards = Vec::new();
    for i in 0..info.shards {
        let p = g.join(format!("shard-{i:04}.am"));
        shards.push(fs::read(&p).at(&p)?);
    }
    let hp = g.join("history.am");
    let history = fs::read(&hp).at(&hp)?;
    let ip = g.join("included");
    let inc = fs::read(&ip).at(&ip)?;
    let included = inc
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            BlobId(a)
        })
        .collect();
    Ok((Manifest::load(&shards, &history, keys.path, actor)?, included))
}

/// Group helper used by scan and status: map of current entries by path.
pub(crate) fn by_path(entries: Vec<(String, Entry)>) -> HashMap<String, Entry> {
    entries.into_iter().collect()
}
