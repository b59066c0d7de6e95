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
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::PathBuf;

mod conflicts;
mod history;
pub(crate) mod materialize;
mod replica;
pub(crate) mod restore;
mod rules;
pub(crate) mod scan;
mod status;
mod upkeep;

pub use conflicts::Keep;
pub use history::{DeletedFile, HistoryItem};
pub use replica::Stale;
pub use status::{PeerHealth, Pending, Status};
pub use upkeep::{BadBlob, GcReport, VerifyReport};

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
    /// This device keeps no folder for the space: it joined to audit the seeders, and holds
    /// only the roster, the ledger, the manifest's changes and its chunk lists (`path` is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_only: bool,
}

pub(crate) fn default_replicas_target() -> u32 {
    2
}

/// Compact the manifest cache once this many change blobs are not in it.
const COMPACT_AFTER: usize = 16;
/// Or once the changes not in it are this large (plaintext bytes, about 600 changed files): a
/// first scan or a large update replayed at every later open costs far more time and memory
/// than loading the documents saved whole.
const COMPACT_AFTER_BYTES: usize = 64 << 10;
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
    /// This device's key: it signs the changes this device writes.
    pub(crate) device_key: SigningKey,
    /// The roster received changes are held to: the ledger's when opened, then each session's.
    pub(crate) roster: cobox_core::roster::RosterView,
    /// The peer received blobs come from (`None`: none yet).
    pub(crate) roster_from: Option<[u8; 32]>,
    /// The space secret (its root key is epoch 0's), kept to rebuild keys as epochs arrive.
    secret: [u8; 64],
    /// The current key epoch when this device does not hold it yet: it writes nothing until
    /// a manager hands it over.
    pub(crate) epoch_missing: Option<u32>,
    pub(crate) store: std::sync::Arc<BlobStore>,
    /// Loaded while in use: an idle daemon lets it go ([`Space::release_manifest`]) and the
    /// next use loads it again from the compacted cache. At 100,000 files it is about 80 MB.
    manifest: std::sync::OnceLock<Manifest>,
    /// Set by every use of the manifest; [`Space::release_if_unused`] clears it.
    used: std::sync::atomic::AtomicBool,
    /// The manifest is unchanged since its heads were last noted ([`Space::note_heads`]) and
    /// checked against members' notes (the count of notes then, and the finding): a daemon's
    /// periodic sync then touches neither, so an idle manifest stays released.
    pub(crate) heads_noted: bool,
    pub(crate) stale_checked: Option<(usize, Option<Stale>)>,
    pub(crate) device: DeviceId,
    pub(crate) chunker: Chunker,
    /// Change blobs already folded into the on-disk manifest cache.
    included: HashSet<BlobId>,
    /// Change blobs applied to the in-memory manifest.
    applied: HashSet<BlobId>,
    /// Plaintext bytes of the applied change blobs not in the manifest cache.
    pub(crate) uncompacted_bytes: usize,
    /// Compact once `uncompacted_bytes` reaches this ([`COMPACT_AFTER_BYTES`]; lower in tests).
    pub(crate) compact_after_bytes: usize,
    /// The last materialiser pass left nothing to do (nothing waiting, nothing refused) and no
    /// change was applied since: a session that brings none need not walk the folder again.
    pub(crate) folder_current: bool,
    /// Set when the folder may have changed since the last scan; `None`: always assume so.
    pub(crate) changed: Option<ChangeFlag>,
    /// The folder's `.coboxignore` rules as last read (by a scan or a materialiser pass).
    pub(crate) ignores: Ignores,
    /// Change blobs, validly signed, that do not open or apply here, and why: set aside and
    /// reported, not applied, so one bad change cannot stop the space opening on every device.
    /// Kept in the store and tried again by the next process (a newer version may read them).
    pub(crate) quarantined: std::collections::BTreeMap<BlobId, String>,
    /// Change blobs whose changes Automerge holds back in this process for changes this device
    /// lacks: not applied (the next process offers them again), and not offered again here.
    held_back: HashSet<BlobId>,
}

/// Raised by whoever watches a space's folder when it may have changed since the last scan.
pub type ChangeFlag = std::sync::Arc<std::sync::atomic::AtomicBool>;

impl Space {
    pub(crate) fn open(
        info: SpaceInfo,
        dir: PathBuf,
        secret: &[u8; 64],
        device_key: SigningKey,
    ) -> Result<Self, Error> {
        Self::open_with(info, dir, secret, device_key, None)
    }

    /// [`Space::open`], its store's writes failing as `faults` says (tests pass it; nothing
    /// else does).
    pub(crate) fn open_with(
        info: SpaceInfo,
        dir: PathBuf,
        secret: &[u8; 64],
        device_key: SigningKey,
        faults: Option<std::sync::Arc<crate::store::Faults>>,
    ) -> Result<Self, Error> {
        let device = DeviceId(device_key.verifying_key().to_bytes());
        // Spaces made before a space's id derived from its genesis used the shared key's
        // public half as the id, and let any holder of that key make itself a manager.
        if info.id.0 == crate::crypto::space_signing_key(secret).verifying_key().to_bytes() {
            return Err(Error::Refused(format!(
                "space {:?} was made by an earlier CoBox, whose shared secret granted every member the power to manage it; create the space anew (cobox create) and copy its folder in",
                info.name
            )));
        }
        let mut root = [0u8; 32];
        root.copy_from_slice(&secret[32..]);
        let keys = SpaceKeys::derive(&root);
        let store = std::sync::Arc::new(BlobStore::open_with(&dir, faults)?);
        let actor = hex::decode(&info.actor)
            .map_err(|e| Error::Config { path: dir.join("space.json"), reason: format!("actor: {e}") })?;
        let (manifest, included) = load_cache(&dir, &info, &keys, &actor)?;
        let mut space = Self {
            chunker: Chunker::new(&keys.chunker_key()),
            info,
            dir,
            keys,
            signer: crate::crypto::space_signing_key(secret),
            store,
            manifest: std::sync::OnceLock::from(manifest),
            used: std::sync::atomic::AtomicBool::new(true),
            heads_noted: false,
            stale_checked: None,
            device,
            device_key,
            roster: Default::default(),
            roster_from: None,
            secret: *secret,
            epoch_missing: None,
            applied: included.clone(),
            uncompacted_bytes: 0,
            compact_after_bytes: COMPACT_AFTER_BYTES,
            included,
            changed: None,
            folder_current: false,
            ignores: Ignores::none(),
            quarantined: Default::default(),
            held_back: HashSet::new(),
        };
        // Every epoch key the roster hands this device first: a change sealed under a later
        // epoch applied before them would be set aside, and the folder's files it wrote taken
        // for new local files by the next scan.
        let view = space.ledger().roster()?;
        space.set_roster(view, None);
        space.apply_stored_changes()?;
        // Unusable rules are reported by the next scan or pass, which read them again.
        space.ignores = read_ignores(&space.info.path).map(|(r, _)| r).unwrap_or_default();
        // A pass of an earlier process over the same changes and rules left the folder current.
        space.folder_current = space.store.meta_get(MATERIALIZED)?.is_some_and(|d| d == space.folder_digest());
        Ok(space)
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
        self.scan_if_changed_with(&crate::NoProgress)
    }

    /// [`Space::scan_if_changed`], reporting the scan's progress.
    pub fn scan_if_changed_with(&mut self, progress: &dyn crate::Progress) -> Result<Option<crate::ScanReport>, Error> {
        if self.info.audit_only {
            return Ok(None);
        }
        match &self.changed {
            Some(flag) if !flag.load(std::sync::atomic::Ordering::SeqCst) => Ok(None),
            _ => self.scan(progress).map(Some),
        }
    }

    /// The manifest, loaded from the cache if it was released.
    pub(crate) fn manifest(&self) -> Result<&Manifest, Error> {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(m) = self.manifest.get() {
            return Ok(m);
        }
        let m = self.reload_manifest()?;
        Ok(self.manifest.get_or_init(|| m))
    }

    /// [`Space::manifest`], to edit.
    pub(crate) fn manifest_mut(&mut self) -> Result<&mut Manifest, Error> {
        // It may change: its heads are to be noted and checked again.
        (self.heads_noted, self.stale_checked) = (false, None);
        self.manifest_unchanged()
    }

    /// [`Space::manifest_mut`] for what needs `&mut` but leaves the content as it is (saving it,
    /// reading its heads).
    pub(crate) fn manifest_unchanged(&mut self) -> Result<&mut Manifest, Error> {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        if self.manifest.get().is_none() {
            self.manifest = std::sync::OnceLock::from(self.reload_manifest()?);
        }
        self.manifest.get_mut().ok_or_else(|| Error::NotFound("the space's manifest".into()))
    }

    /// Let the in-memory manifest go until it is next needed. It is compacted first, so it
    /// loads again from one cache generation without replaying change blobs. Returns whether
    /// it was released: not while it has uncommitted edits, nor when compacting failed.
    pub fn release_manifest(&mut self) -> Result<bool, Error> {
        match self.manifest.get() {
            None => return Ok(false),
            Some(m) if m.has_pending() => return Ok(false),
            Some(_) => {}
        }
        if self.applied != self.included {
            self.compact()?;
        }
        self.manifest = std::sync::OnceLock::new();
        crate::priority::give_back_memory();
        Ok(true)
    }

    /// Release the manifest if nothing used it since the last call (a daemon calls this on a
    /// timer, so a space idle for one to two periods gives its memory back).
    pub fn release_if_unused(&mut self) -> Result<bool, Error> {
        if self.used.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        self.release_manifest()
    }

    /// Whether the manifest is in memory now.
    pub fn manifest_loaded(&self) -> bool {
        self.manifest.get().is_some()
    }

    fn reload_manifest(&self) -> Result<Manifest, Error> {
        let actor = hex::decode(&self.info.actor)
            .map_err(|e| Error::Config { path: self.dir.join("space.json"), reason: format!("actor: {e}") })?;
        let (manifest, included) = load_cache(&self.dir, &self.info, &self.keys, &actor)?;
        // Released only when compacted, and only this process writes the cache.
        if included != self.included {
            return Err(Error::Config {
                path: self.dir.join("manifest"),
                reason: "the manifest cache changed while this space was open".into(),
            });
        }
        Ok(manifest)
    }

    /// The space's registration.
    pub fn info(&self) -> &SpaceInfo {
        &self.info
    }

    /// Apply every stored change blob not yet in the manifest. One that does not open, decode
    /// or apply is quarantined ([`Space::quarantined`]) and the rest go on.
    fn apply_stored_changes(&mut self) -> Result<(), Error> {
        self.drop_refused_changes()?;
        let mut took = false;
        for (id, loc) in self.store.list()? {
            if loc.kind != BlobKind::Change
                || self.applied.contains(&id)
                || self.held_back.contains(&id)
                || self.quarantined.contains_key(&id)
            {
                continue;
            }
            let mut size = 0;
            let applied = self.change_body(&id)?.and_then(|body| {
                size = body.docs.iter().map(|(_, b)| b.len()).sum();
                self.manifest_mut().map_err(|e| e.to_string())?.apply(&body).map_err(|e| e.to_string())
            });
            match applied {
                Ok(crate::manifest::Applied::Taken) => {
                    self.applied.insert(id);
                    self.uncompacted_bytes = self.uncompacted_bytes.saturating_add(size);
                    took = true;
                }
                // Held back for changes this device lacks: offered again by the next process (a
                // saved manifest drops it), and not again by this one, whose document holds it.
                Ok(crate::manifest::Applied::HeldBack) => {
                    self.held_back.insert(id);
                }
                Err(why) => {
                    self.quarantined.insert(id, why);
                }
            }
        }
        // Changes held back for one taken since (listed before it: blobs are listed by id, not
        // in causal order) are in the document now. They count as applied: else a pass's
        // digest and the count of new changes miss them, and a folder a pass left current
        // before they came was taken for current still, their files never written.
        if took && !self.held_back.is_empty() {
            let mut held: Vec<BlobId> = self.held_back.iter().copied().collect();
            held.sort();
            for id in held {
                let Ok(body) = self.change_body(&id)? else { continue };
                if self.manifest_mut()?.holds(&body)? {
                    self.held_back.remove(&id);
                    self.applied.insert(id);
                }
            }
        }
        Ok(())
    }

    /// A stored change blob's body: signed for this space, opened and decoded; `Err` says why
    /// it cannot be applied (the outer error is the store's).
    fn change_body(&self, id: &BlobId) -> Result<Result<ChangeBody, String>, Error> {
        let blob = self.store.get(id)?;
        Ok(verify_change_signature(&self.info.id, &blob)
            .and_then(|_| self.keys.open(BlobKind::Change, &blob))
            .map_err(|e| e.to_string())
            .and_then(|plain| ChangeBody::decode(&plain).map_err(|e| e.to_string())))
    }

    /// Hold received changes to `view` (a session's merged roster, from peer `from`) and take
    /// the key epochs it hands this device. Changes set aside are tried again when new keys
    /// came (one sealed under an epoch not held yet waits for it). Returns whether keys came.
    pub(crate) fn set_roster(&mut self, view: cobox_core::roster::RosterView, from: Option<[u8; 32]>) -> bool {
        let invite = crate::ledger::invite_key_at(&self.dir);
        let (keys, missing) =
            crate::ledger::space_keys(&self.info.id, &self.secret, &view, &self.device_key, invite.as_ref());
        let gained = keys.epoch_ids() != self.keys.epoch_ids();
        // New content is cut under the current epoch's chunker key (the path key never changes).
        if keys.chunker_key() != self.keys.chunker_key() {
            self.chunker = Chunker::new(&keys.chunker_key());
        }
        self.keys = keys;
        self.epoch_missing = missing;
        if gained {
            self.quarantined.clear();
        }
        if view != self.roster {
            // Whose heads notes count may have changed.
            self.stale_checked = None;
        }
        (self.roster, self.roster_from) = (view, from);
        gained
    }

    /// Change blobs set aside because they do not open, decode or apply, and why.
    pub fn quarantined(&self) -> &std::collections::BTreeMap<BlobId, String> {
        &self.quarantined
    }

    /// Seal, store and flush a committed change.
    pub(crate) fn persist_change(&mut self, body: ChangeBody) -> Result<(), Error> {
        // A large commit becomes several change blobs, each well within a sync frame.
        let mut ids = Vec::new();
        for part in body.split(CHANGE_PART) {
            let mut nonce = [0u8; 24];
            crate::random_bytes(&mut nonce);
            let plain = part.encode()?;
            self.uncompacted_bytes = self.uncompacted_bytes.saturating_add(plain.len());
            let blob = self.keys.seal_change(&self.device_key, nonce, &plain);
            let id = BlobId::of(&blob);
            self.store.put(id, BlobKind::Change, &blob)?;
            ids.push(id);
        }
        self.store.flush()?;
        self.applied.extend(ids);
        if self.compact_due() {
            self.compact()?;
        }
        Ok(())
    }

    /// Whether enough changes are outside the manifest cache to save it whole again.
    pub(crate) fn compact_due(&self) -> bool {
        self.applied.len().saturating_sub(self.included.len()) >= COMPACT_AFTER
            || self.uncompacted_bytes >= self.compact_after_bytes
    }

    /// Whether this device joined the space and no peer has accepted it yet (a first sync
    /// refused for its invite may then remove the space: nothing of it was ever shared).
    pub fn unconfirmed(&self) -> bool {
        self.dir.join(UNCONFIRMED).exists()
    }

    /// A peer accepted this device: the space is its own from now on.
    pub(crate) fn confirm_joined(&self) -> Result<(), Error> {
        let mark = self.dir.join(UNCONFIRMED);
        match fs::remove_file(&mark) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(mark, e)),
            _ => Ok(()),
        }
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

    /// The chunk blobs (and chunk-list blob) a content reference needs.
    pub(crate) fn content_blobs(&self, content: &Content) -> Result<Vec<(BlobId, u32)>, Error> {
        crate::space::restore::content_blobs(&self.store, &self.keys, content)
    }

    /// What writing files needs, detached from the space (for threads).
    pub(crate) fn file_writer(&self) -> crate::space::restore::FileWriter {
        crate::space::restore::FileWriter { store: self.store.clone(), keys: self.keys.clone() }
    }

    pub(crate) fn device_short(&self) -> [u8; 8] {
        let mut d = [0u8; 8];
        d.copy_from_slice(&self.device.0[..8]);
        d
    }
}

/// Marks a joined space no peer has accepted yet.
pub(crate) const UNCONFIRMED: &str = "unconfirmed";

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
