//! The blob store of one space: append-only pack files with a redb index.
//!
//! Crash safety: a pack is written to a temp file, fsynced, renamed into place and its directory
//! fsynced *before* the redb transaction that indexes its blobs commits. So every indexed blob is
//! durable, a crash leaves at most an unindexed pack (removed by `gc`) or a temp file (removed on
//! open), and the store always opens and verifies. Packs are never modified in place: `gc`
//! writes live blobs to a new pack, re-points the index, then deletes the old pack.

use crate::crypto::BlobKind;
use crate::direct::ALIGN;
use crate::ids::BlobId;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// Small key/value facts about the space (last scan time, prune horizon).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PACK_MAGIC: &[u8; 8] = b"CBXPACK1";
const PACK_END: &[u8; 8] = b"CBXPEND1";
/// A pack is written once its buffered blobs reach this size.
pub const PACK_TARGET: usize = 16 << 20;

/// Blob store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full; nothing half-written was indexed.
    #[error("disk full while writing {path}: free some space and run the command again")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Another I/O failure.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The index database failed.
    #[error("blob index error: {0}")]
    Db(#[from] redb::Error),
    /// A blob's bytes do not hash to its id.
    #[error("blob {0} is corrupt (its bytes do not match its id)")]
    Corrupt(BlobId),
    /// A blob is not in the store, or its pack is gone.
    #[error("blob {0} is missing from the store")]
    Missing(BlobId),
    /// A pack's index trailer could not be encoded (nothing was written).
    #[error("cannot encode a pack trailer: {0}")]
    Encode(String),
    /// The index database cannot be read; the packs still describe themselves.
    #[error(
        "the blob index {path} is damaged ({reason}): run `cobox repair` on this space to rebuild it from the packs"
    )]
    DamagedIndex {
        /// The index file.
        path: PathBuf,
        /// What the database said.
        reason: String,
    },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(impl From<$t> for StoreError { fn from(e: $t) -> Self { StoreError::Db(e.into()) } })*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl StoreError {
    /// A copy for reporting a sticky failure again (io and redb errors are not `Clone`).
    fn duplicate(&self) -> Self {
        match self {
            StoreError::DiskFull { path } => StoreError::DiskFull { path: path.clone() },
            StoreError::Io { path, source } => {
                StoreError::Io { path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            StoreError::Db(e) => {
                StoreError::Io { path: PathBuf::from("index.redb"), source: io::Error::other(e.to_string()) }
            }
            StoreError::Corrupt(id) => StoreError::Corrupt(*id),
            StoreError::Missing(id) => StoreError::Missing(*id),
            StoreError::Encode(e) => StoreError::Encode(e.clone()),
            StoreError::DamagedIndex { path, reason } => {
                StoreError::DamagedIndex { path: path.clone(), reason: reason.clone() }
            }
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            StoreError::DiskFull { path: path.to_owned() }
        } else {
            StoreError::Io { path: path.to_owned(), source }
        }
    }
}

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Pack number.
    pub pack: u64,
    /// Byte offset in the pack.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// The blob's kind.
    pub kind: BlobKind,
}

impl Loc {
    fn encode(&self) -> [u8; 21] {
        let mut b = [0u8; 21];
        b[..8].copy_from_slice(&self.pack.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20] = self.kind as u8;
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 21 {
            return None;
        }
        Some(Self {
            pack: u64::from_le_bytes(b[..8].try_into().ok()?),
            offset: u64::from_le_bytes(b[8..16].try_into().ok()?),
            len: u32::from_le_bytes(b[16..20].try_into().ok()?),
            kind: BlobKind::from_u8(b[20])?,
        })
    }
}

#[derive(Default)]
struct PackBuf {
    data: Vec<u8>,
    entries: Vec<(BlobId, u64, u32, BlobKind)>,
    /// Index into `entries`.
    ids: HashMap<BlobId, usize>,
}

impl PackBuf {
    fn read(&self, id: &BlobId) -> Option<Vec<u8>> {
        let (_, off, len, _) = self.entries[*self.ids.get(id)?];
        Some(self.data[off as usize..off as usize + len as usize].to_vec())
    }
}

/// Results of re-hashing every stored blob.
#[derive(Debug, Default)]
pub struct StoreCheck {
    /// Blobs checked.
    pub blobs: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Blobs whose bytes do not match their id.
    pub corrupt: Vec<BlobId>,
    /// Indexed blobs whose pack is missing or too short.
    pub missing: Vec<BlobId>,
    /// Pack files the index names no blob in (a lost index, or a crash before indexing):
    /// `cobox repair` indexes what they hold.
    pub unindexed_packs: Vec<PathBuf>,
}

/// What indexing packs from their own trailers found.
#[derive(Debug, Default, Clone)]
pub struct Reindex {
    /// Packs read.
    pub packs: u64,
    /// Blobs the index did not name and now does.
    pub blobs: u64,
    /// Blobs a trailer lists whose bytes no longer match their id (left out, so a peer's good
    /// copy is fetched).
    pub corrupt: u64,
    /// Packs whose trailer cannot be read: left in place, never deleted.
    pub unreadable: Vec<PathBuf>,
    /// Where a damaged index was set aside.
    pub set_aside: Option<PathBuf>,
}

/// Results of removing blobs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RemoveStats {
    /// Blobs dropped.
    pub blobs: u64,
    /// Bytes freed on disk (blob bytes plus orphaned packs).
    pub bytes: u64,
    /// Packs rewritten or deleted.
    pub packs: u64,
}

/// Buffered blobs and the packs on their way to disk.
#[derive(Default)]
struct State {
    buf: PackBuf,
    /// Packs handed to the writer thread but not yet indexed; readable meanwhile.
    inflight: Vec<Arc<PackBuf>>,
    /// The writer's first failure. Sticky: once a pack is lost, nothing later may be written
    /// (a manifest change must never land without its chunks) and every `put`/`flush` fails.
    error: Option<StoreError>,
    /// Pack buffers handed back by the writer, reused to avoid faulting in fresh pages.
    spare: Vec<Vec<u8>>,
}

enum Job {
    Pack(Arc<PackBuf>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Packs, index and pending write buffer of one space.
///
/// Full packs go to a writer thread through a bounded channel, so chunking and sealing on
/// every core overlap the (fsynced) pack writes; `flush` waits until everything is indexed.
pub struct BlobStore {
    packs: PathBuf,
    db: Arc<Database>,
    state: Arc<Mutex<State>>,
    tx: Mutex<Option<std::sync::mpsc::SyncSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Open pack files for reads; restores read thousands of blobs from a few packs.
    handles: Mutex<HashMap<u64, Arc<File>>>,
    /// Write faults injected by tests (never, otherwise).
    faults: Arc<Faults>,
    /// A pack is written once its buffer holds this many bytes.
    pack_target: usize,
    /// Set when this open indexed the packs again (the index was lost).
    opened_from_packs: Option<Reindex>,
    /// Blobs a read found corrupt or gone since the last [`BlobStore::take_suspects`]: the
    /// daemon checks them again and drops the bad ones, so the next sync fetches good copies.
    suspects: Mutex<HashSet<BlobId>>,
}

/// Reads found bad, remembered for healing; beyond this a full check finds the rest.
const MAX_SUSPECTS: usize = 10_000;

/// Write faults injected into a store, for tests: every write point is counted (a pack's data,
/// its fsync, its rename, the directory's fsync, and each write, resize and sync of the index
/// database), and from the armed one on each fails with an I/O error, as on a disk that filled
/// up or went bad. The store must fail cleanly there and lose nothing it had.
#[derive(Debug)]
pub(crate) struct Faults {
    armed_at: AtomicU64,
    seen: AtomicU64,
    /// Fail only pack writes (a disk whose packs directory filled while the index still takes writes).
    packs_only: std::sync::atomic::AtomicBool,
}

impl Faults {
    /// No faults; points are still counted.
    pub(crate) fn never() -> Arc<Self> {
        Self::from_point(u64::MAX)
    }

    /// Fail the `n`th write point from now (0 is the next) and every one after it.
    pub(crate) fn from_point(n: u64) -> Arc<Self> {
        Arc::new(Self { armed_at: AtomicU64::new(n), seen: AtomicU64::new(0), packs_only: Default::default() })
    }

    /// From now: fail the `n`th write point from here on.
    #[cfg(test)]
    pub(crate) fn arm(&self, n: u64) {
        self.armed_at.store(self.points().saturating_add(n), Ordering::SeqCst);
    }

    /// From now on fail every pack write, and nothing else.
    #[cfg(test)]
    pub(crate) fn fail_packs(&self) {
        self.packs_only.store(true, Ordering::SeqCst);
        self.armed_at.store(0, Ordering::SeqCst);
    }

    /// Write points reached so far.
    #[cfg(test)]
    pub(crate) fn points(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    fn hit(&self, what: &str) -> io::Result<()> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        if self.packs_only.load(Ordering::SeqCst) && !what.starts_with("pack") {
            return Ok(());
        }
        if n >= self.armed_at.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, format!("injected write fault {n} at {what}")));
        }
        Ok(())
    }
}

/// The index database's file, with [`Faults`] in front of every write.
#[derive(Debug)]
struct FaultyBackend {
    inner: redb::backends::FileBackend,
    faults: Arc<Faults>,
}

impl redb::StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.faults.hit("index resize")?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.faults.hit("index sync")?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.faults.hit("index write")?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(s, e)
    }
}

impl Drop for BlobStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after the packs already queued.
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// redb's page cache (its default is 1 GiB): a scan reads the whole scan cache and a sync looks
/// up every blob, so with the default a process held every index page it touched (an unchanged
/// rescan of a million files 699 MiB, 469 MiB with this cap). Half of it bounds a write
/// transaction's buffer; pages beyond it go to the file before the commit.
const INDEX_CACHE: usize = 64 << 20;

impl BlobStore {
    /// Open (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, None)
    }

    /// [`BlobStore::open`] with write faults injected (tests).
    pub(crate) fn open_with(dir: &Path, faults: Option<Arc<Faults>>) -> Result<Self, StoreError> {
        let packs = dir.join("packs");
        fs::create_dir_all(&packs).map_err(io_err(&packs))?;
        // Temp files are packs whose write never finished; nothing indexes them.
        for e in fs::read_dir(&packs).map_err(io_err(&packs))?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        let db_path = dir.join("index.redb");
        let db = match &faults {
            None => {
                redb::Builder::new().set_cache_size(INDEX_CACHE).create(&db_path).map_err(|e| open_err(&db_path, e))?
            }
            Some(f) => {
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&db_path)
                    .map_err(io_err(&db_path))?;
                let inner = redb::backends::FileBackend::new(file).map_err(StoreError::from)?;
                redb::Builder::new()
                    .set_cache_size(INDEX_CACHE)
                    .create_with_backend(FaultyBackend { inner, faults: f.clone() })
                    .map_err(StoreError::from)?
            }
        };
        let w = db.begin_write()?;
        let empty = w.open_table(BLOBS)?.is_empty()?;
        w.open_table(META)?;
        w.commit()?;
        let mut store = Self {
            packs,
            db: Arc::new(db),
            state: Arc::new(Mutex::new(State::default())),
            tx: Mutex::new(None),
            writer: Mutex::new(None),
            handles: Mutex::new(HashMap::new()),
            faults: faults.unwrap_or_else(Faults::never),
            pack_target: PACK_TARGET,
            opened_from_packs: None,
            suspects: Mutex::new(HashSet::new()),
        };
        // An index that names nothing beside packs on disk was lost (deleted, or truncated to
        // nothing): the packs say what they hold, so nothing is taken for absent (and sent for,
        // or collected) meanwhile.
        if empty && !store.pack_files()?.is_empty() {
            store.opened_from_packs = Some(store.adopt_packs()?);
        }
        Ok(store)
    }

    /// Set a damaged index aside and index every pack again from its own trailer (`cobox
    /// repair`), as restic's `repair index` does: the index only caches what the packs say.
    /// Facts kept only in the index (the scan cache, the last scan time) start over.
    pub fn rebuild(dir: &Path) -> Result<Reindex, StoreError> {
        let db = dir.join("index.redb");
        let aside = dir.join(format!("index.redb.damaged-{}", crate::now_ms()));
        let set_aside = match fs::rename(&db, &aside) {
            Ok(()) => Some(aside),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&db)(e)),
        };
        let mut store = Self::open(dir)?;
        let mut r = store.opened_from_packs.take().unwrap_or_default();
        r.set_aside = set_aside;
        Ok(r)
    }

    /// What opening found when the index named nothing but packs were on disk.
    pub fn opened_from_packs(&self) -> Option<&Reindex> {
        self.opened_from_packs.as_ref()
    }

    /// Write packs of `bytes` instead of [`PACK_TARGET`]. A store holds up to four pack
    /// buffers at once (filling, queued, being written, a spare): a seeder holding many spaces
    /// keeps them small.
    pub fn with_pack_target(mut self, bytes: usize) -> Self {
        self.pack_target = bytes.max(1 << 20);
        self
    }

    /// The index database, shared with the scan cache.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    fn pack_path(&self, pack: u64) -> PathBuf {
        pack_path(&self.packs, pack)
    }

    /// Where an indexed blob lives.
    pub fn locate(&self, id: &BlobId) -> Result<Option<Loc>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOBS)?;
        Ok(t.get(id.as_bytes())?.and_then(|v| Loc::decode(v.value())))
    }

    /// Whether the blob is stored or buffered for storing.
    pub fn contains(&self, id: &BlobId) -> Result<bool, StoreError> {
        {
            let st = self.lock();
            if st.buf.ids.contains_key(id) || st.inflight.iter().any(|b| b.ids.contains_key(id)) {
                return Ok(true);
            }
        }
        Ok(self.locate(id)?.is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves state that is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a full buffer for the writer thread (started on first use).
    fn send(&self, job: Job) -> Result<(), StoreError> {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.is_none() {
            let (t, rx) = std::sync::mpsc::sync_channel::<Job>(1);
            let (packs, db, state) = (self.packs.clone(), self.db.clone(), self.state.clone());
            let faults = self.faults.clone();
            let handle = std::thread::Builder::new()
                .name("cobox-pack-writer".into())
                .spawn(move || {
                    let mut stage = Vec::new();
                    for job in rx {
                        match job {
                            Job::Pack(buf) => {
                                let failed = state.lock().unwrap_or_else(|p| p.into_inner()).error.is_some();
                                let r =
                                    if failed { Ok(()) } else { write_pack(&packs, &db, &buf, &mut stage, &faults) };
                                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                                st.inflight.retain(|b| !Arc::ptr_eq(b, &buf));
                                if let Err(e) = r {
                                    st.error.get_or_insert(e);
                                }
                                // A reader may still hold it for a moment; then it is not reused.
                                if st.spare.len() < 2
                                    && let Ok(buf) = Arc::try_unwrap(buf)
                                {
                                    let mut data = buf.data;
                                    data.clear();
                                    st.spare.push(data);
                                }
                            }
                            Job::Flush(reply) => {
                                let _ = reply.send(());
                            }
                        }
                    }
                })
                .map_err(|e| StoreError::Io { path: self.packs.clone(), source: e })?;
            *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
            *tx = Some(t);
        }
        let Some(tx) = tx.as_ref() else { unreachable!("the writer was started above") };
        tx.send(job).map_err(|_| StoreError::Io {
            path: self.packs.clone(),
            source: io::Error::other("the pack writer thread stopped"),
        })
    }

    /// Add a sealed blob. Returns `false` when it was already stored (dedup).
    pub fn put(&self, id: BlobId, kind: BlobKind, bytes: &[u8]) -> Result<bool, StoreError> {
        let full = {
            let mut st = self.lock();
            if let Some(e) = &st.error {
                return Err(e.duplicate());
            }
            if st.buf.ids.contains_key(&id)
                || st.inflight.iter().any(|b| b.ids.contains_key(&id))
                || self.locate(&id)?.is_some()
            {
                return Ok(false);
            }
            let buf = &mut st.buf;
            if buf.data.is_empty() {
                buf.data.extend_from_slice(PACK_MAGIC);
            }
            let off = buf.data.len() as u64;
            buf.data.extend_from_slice(bytes);
            buf.ids.insert(id, buf.entries.len());
            buf.entries.push((id, off, bytes.len() as u32, kind));
            if buf.data.len() >= self.pack_target { Some(take_buf(&mut st)) } else { None }
        };
        // Sent outside the lock: the channel may block until the writer catches up.
        if let Some(buf) = full {
            self.send(Job::Pack(buf))?;
        }
        Ok(true)
    }

    /// Write any buffered blobs to a pack and wait until every queued pack is indexed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let rest = {
            let mut st = self.lock();
            if st.buf.entries.is_empty() { None } else { Some(take_buf(&mut st)) }
        };
        if let Some(rest) = rest {
            self.send(Job::Pack(rest))?;
        }
        if self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            let (reply, done) = std::sync::mpsc::sync_channel(1);
            self.send(Job::Flush(reply))?;
            let _ = done.recv();
        }
        match &self.lock().error {
            Some(e) => Err(e.duplicate()),
            None => Ok(()),
        }
    }

    /// Read a blob and check it hashes to its id.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        {
            let st = self.lock();
            if let Some(data) = st.buf.read(id) {
                return Ok(data);
            }
            if let Some(buf) = st.inflight.iter().find(|b| b.ids.contains_key(id)).cloned() {
                drop(st);
                return buf.read(id).ok_or(StoreError::Missing(*id));
            }
        }
        let loc = self.locate(id)?.ok_or(StoreError::Missing(*id))?;
        let r = self.read_at(id, loc);
        if let Err(StoreError::Corrupt(_) | StoreError::Missing(_)) = &r {
            let mut s = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
            if s.len() < MAX_SUSPECTS {
                s.insert(*id);
            }
        }
        r
    }

    /// Indexed blobs that a read since the last call found corrupt or gone.
    pub fn take_suspects(&self) -> HashSet<BlobId> {
        std::mem::take(&mut *self.suspects.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Check the given blobs again and drop from the index each one still corrupt or gone (a
    /// passing I/O error drops nothing), so a peer holding a good copy sends it. Returns them,
    /// sorted, and their indexed bytes (as [`BlobStore::drop_bad`]).
    pub fn drop_if_bad(&self, ids: &HashSet<BlobId>) -> Result<(Vec<BlobId>, u64), StoreError> {
        let (mut bad, mut bytes) = (Vec::new(), 0u64);
        for id in ids {
            let Some(loc) = self.locate(id)? else { continue };
            if let Err(StoreError::Corrupt(_) | StoreError::Missing(_)) = self.read_at(id, loc) {
                bad.push(*id);
                bytes += u64::from(loc.len);
            }
        }
        if !bad.is_empty() {
            // Only the entries go: the pack's other blobs stay where they are, and the bad
            // bytes leave with the pack's next rewrite.
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(BLOBS)?;
                for id in &bad {
                    t.remove(id.as_bytes())?;
                }
            }
            w.commit()?;
            bad.sort();
        }
        Ok((bad, bytes))
    }

    fn read_at(&self, id: &BlobId, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let path = self.pack_path(loc.pack);
        let f = self.pack_handle(loc.pack).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Missing(*id),
            _ => io_err(&path)(e),
        })?;
        let mut out = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut out, loc.offset).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => StoreError::Missing(*id),
            _ => io_err(&path)(e),
        })?;
        if BlobId::of(&out) != *id {
            return Err(StoreError::Corrupt(*id));
        }
        Ok(out)
    }

    fn pack_handle(&self, pack: u64) -> io::Result<Arc<File>> {
        let mut h = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = h.get(&pack) {
            return Ok(f.clone());
        }
        // Bounded: forget them all rather than track recency; reopening is cheap.
        if h.len() >= 256 {
            h.clear();
        }
        let f = Arc::new(File::open(self.pack_path(pack))?);
        h.insert(pack, f.clone());
        Ok(f)
    }

    /// Sort `ids` for sending: manifest changes, then chunk lists, then chunks (so a receiver
    /// knows what to write before the content arrives), each in pack order (sequential reads).
    /// Ids not indexed go last. Returns how many lead with changes and chunk lists (a seeder's
    /// index, holding padded blobs, cannot tell a chunk list from a chunk and counts it with
    /// the chunks).
    pub fn send_order(&self, ids: &mut [BlobId]) -> Result<usize, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOBS)?;
        let mut keyed = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            let key = match t.get(id.as_bytes())?.and_then(|v| Loc::decode(v.value())) {
                Some(l) => {
                    let rank = match l.kind {
                        BlobKind::Change => 0u8,
                        BlobKind::ChunkList => 1,
                        BlobKind::Chunk => 2,
                    };
                    (rank, l.pack, l.offset)
                }
                None => (3, 0, 0),
            };
            keyed.push((key, *id));
        }
        keyed.sort_unstable();
        let first = keyed.iter().take_while(|((rank, _, _), _)| *rank < 2).count();
        for (slot, (_, id)) in ids.iter_mut().zip(keyed) {
            *slot = id;
        }
        Ok(first)
    }

    /// Every indexed blob.
    pub fn list(&self) -> Result<Vec<(BlobId, Loc)>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOBS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            if let Some(loc) = Loc::decode(v.value()) {
                out.push((BlobId(*k.value()), loc));
            }
        }
        Ok(out)
    }

    /// Number of blobs and their total stored bytes.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        let list = self.list()?;
        Ok((list.len() as u64, list.iter().map(|(_, l)| l.len as u64).sum()))
    }

    /// Re-hash every indexed blob, reading each pack sequentially once.
    pub fn check(&self, progress: &dyn Fn(u64)) -> Result<StoreCheck, StoreError> {
        let mut by_pack: BTreeMap<u64, Vec<(BlobId, Loc)>> = BTreeMap::new();
        for (id, loc) in self.list()? {
            by_pack.entry(loc.pack).or_default().push((id, loc));
        }
        let unindexed_packs =
            self.pack_files()?.into_iter().filter(|(p, _)| !by_pack.contains_key(p)).map(|(_, path)| path).collect();
        let mut report = StoreCheck { unindexed_packs, ..StoreCheck::default() };
        for (pack, blobs) in by_pack {
            let path = self.pack_path(pack);
            let data = match File::open(&path) {
                Ok(mut f) => {
                    let mut d = Vec::new();
                    f.read_to_end(&mut d).map_err(io_err(&path))?;
                    d
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io_err(&path)(e)),
            };
            for (id, loc) in blobs {
                report.blobs += 1;
                let (s, e) = (loc.offset as usize, loc.offset as usize + loc.len as usize);
                match data.get(s..e) {
                    None => report.missing.push(id),
                    Some(bytes) => {
                        report.bytes += bytes.len() as u64;
                        progress(bytes.len() as u64);
                        if BlobId::of(bytes) != id {
                            report.corrupt.push(id);
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Re-hash every blob and drop from the index each one missing or corrupt on disk, so a
    /// peer that holds a good copy sends it again (nothing of it was readable here). Returns
    /// them, sorted, and their indexed bytes.
    pub fn drop_bad(&self) -> Result<(Vec<BlobId>, u64), StoreError> {
        let check = self.check(&|_| {})?;
        let dead: HashSet<BlobId> = check.missing.iter().chain(&check.corrupt).copied().collect();
        if dead.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let removed = self.remove(&dead)?;
        let mut ids: Vec<BlobId> = dead.into_iter().collect();
        ids.sort();
        Ok((ids, removed.bytes))
    }

    /// Every pack file on disk, by number.
    fn pack_files(&self) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.packs).map_err(io_err(&self.packs))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hexid) = name.strip_suffix(".pack")
                && let Ok(p) = u64::from_str_radix(hexid, 16)
            {
                out.push((p, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Index the blobs of every pack the index names nothing in, as the pack's own trailer
    /// lists them: each is re-hashed first, and one already indexed elsewhere keeps its place.
    pub fn adopt_packs(&self) -> Result<Reindex, StoreError> {
        self.flush()?;
        let indexed: HashSet<u64> = self.list()?.iter().map(|(_, l)| l.pack).collect();
        let mut r = Reindex::default();
        for (pack, path) in self.pack_files()? {
            if indexed.contains(&pack) {
                continue;
            }
            r.packs += 1;
            let Some(entries) = read_pack_entries(&path)? else {
                r.unreadable.push(path);
                continue;
            };
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(BLOBS)?;
                for (id, offset, len, kind, good) in entries {
                    if !good {
                        r.corrupt += 1;
                        continue;
                    }
                    let known = t.get(id.as_bytes())?.is_some();
                    if !known {
                        t.insert(id.as_bytes(), Loc { pack, offset, len, kind }.encode().as_slice())?;
                        r.blobs += 1;
                    }
                }
            }
            w.commit()?;
        }
        Ok(r)
    }

    /// Drop the given blobs: packs holding only dead blobs are deleted, packs holding some are
    /// rewritten with their live blobs. Also deletes pack files nothing indexes.
    pub fn remove(&self, dead: &HashSet<BlobId>) -> Result<RemoveStats, StoreError> {
        self.flush()?;
        let mut stats = RemoveStats::default();
        let mut by_pack: HashMap<u64, Vec<(BlobId, Loc)>> = HashMap::new();
        for (id, loc) in self.list()? {
            by_pack.entry(loc.pack).or_default().push((id, loc));
        }
        for (pack, blobs) in &by_pack {
            let dead_here: Vec<&(BlobId, Loc)> = blobs.iter().filter(|(id, _)| dead.contains(id)).collect();
            if dead_here.is_empty() {
                continue;
            }
            let live: Vec<&(BlobId, Loc)> = blobs.iter().filter(|(id, _)| !dead.contains(id)).collect();
            // Live blobs move to a new pack (re-pointing their index entries) before the dead
            // entries are dropped and the old pack deleted, so a crash at any step loses nothing.
            if !live.is_empty() {
                let mut buf = PackBuf::default();
                buf.data.extend_from_slice(PACK_MAGIC);
                for (id, loc) in &live {
                    let bytes = self.get(id)?;
                    let off = buf.data.len() as u64;
                    buf.data.extend_from_slice(&bytes);
                    buf.entries.push((*id, off, loc.len, loc.kind));
                }
                write_pack(&self.packs, &self.db, &buf, &mut Vec::new(), &self.faults)?;
            }
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(BLOBS)?;
                for (id, _) in &dead_here {
                    t.remove(id.as_bytes())?;
                }
            }
            w.commit()?;
            stats.blobs += dead_here.len() as u64;
            stats.bytes += dead_here.iter().map(|(_, l)| l.len as u64).sum::<u64>();
            stats.packs += 1;
            self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(pack);
            let _ = fs::remove_file(self.pack_path(*pack));
        }
        // Packs no index entry names (a crash between rename and index commit, or a rewrite
        // whose old pack outlived its entries) go once every good blob they list is indexed
        // elsewhere; a pack whose trailer cannot be read, or that holds a blob nothing else
        // does, stays for `cobox repair` (never delete what was not judged).
        let indexed: HashSet<u64> = self.list()?.iter().map(|(_, l)| l.pack).collect();
        for (pack, path) in self.pack_files()? {
            if indexed.contains(&pack) {
                continue;
            }
            let Some(entries) = read_pack_entries(&path)? else { continue };
            let mut redundant = true;
            for (id, _, _, _, good) in entries {
                if good && !dead.contains(&id) && self.locate(&id)?.is_none() {
                    redundant = false;
                    break;
                }
            }
            if redundant {
                stats.bytes += fs::metadata(&path).map_or(0, |m| m.len());
                stats.packs += 1;
                let _ = fs::remove_file(&path);
            }
        }
        Ok(stats)
    }

    /// Read a META value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(META)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Write a META value.
    pub fn meta_set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        w.open_table(META)?.insert(key, value)?;
        w.commit()?;
        Ok(())
    }
}

fn take_buf(st: &mut State) -> Arc<PackBuf> {
    let next = PackBuf { data: st.spare.pop().unwrap_or_default(), ..Default::default() };
    let buf = Arc::new(std::mem::replace(&mut st.buf, next));
    st.inflight.push(buf.clone());
    buf
}

/// A new pack's number: the time in milliseconds above 20 random bits, and above every number
/// this process gave before, so pack order is write order. Senders send in pack order; in time
/// order a file's chunks arrive close together and the receiver writes each file as soon as the
/// transfer passes it (random numbers left most large files waiting for the end of the session).
fn next_pack_id(packs: &Path) -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut raw = [0u8; 8];
    crate::random_bytes(&mut raw);
    // 43 bits of milliseconds last until the year 2248; the top bit stays clear.
    claim_pack_id(packs, ((ms & ((1 << 43) - 1)) << 20) | (u64::from_le_bytes(raw) & ((1 << 20) - 1)))
}

/// When a pack was written (ms since the epoch), from its number ([`next_pack_id`]): a blob in
/// a pack written before a time was in this store then.
pub fn pack_time_ms(pack: u64) -> i64 {
    (pack >> 20) as i64
}

/// The first number from `id` on that is above every one given before and names no pack.
fn claim_pack_id(packs: &Path, mut id: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    loop {
        let last = LAST.load(Ordering::Relaxed);
        id = id.max(last + 1);
        // A clock set back could meet an existing pack's number: never overwrite one.
        if pack_path(packs, id).exists() {
            id += 1;
            continue;
        }
        if LAST.compare_exchange(last, id, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return id;
        }
    }
}

/// A pack's own list of its blobs (its trailer), each checked to lie inside the pack's data;
/// `None` when the pack is cut short or its trailer is damaged.
fn pack_entries(data: &[u8]) -> Option<Vec<(BlobId, u64, u32, BlobKind)>> {
    let n = data.len();
    if n < PACK_MAGIC.len() + 12 || &data[..8] != PACK_MAGIC || &data[n - 8..] != PACK_END {
        return None;
    }
    let tlen = u32::from_le_bytes(data[n - 12..n - 8].try_into().ok()?) as usize;
    let tstart = (n - 12).checked_sub(tlen)?;
    let raw: Vec<([u8; 32], u64, u32, u8)> = postcard::from_bytes(&data[tstart..n - 12]).ok()?;
    raw.into_iter()
        .map(|(id, off, len, kind)| {
            let end = off.checked_add(u64::from(len))?;
            (off >= PACK_MAGIC.len() as u64 && end <= tstart as u64).then_some(())?;
            Some((BlobId(id), off, len, BlobKind::from_u8(kind)?))
        })
        .collect()
}

/// A blob a pack lists: id, offset, length, kind, and whether its bytes still hash to its id.
type Listed = (BlobId, u64, u32, BlobKind, bool);

/// The blobs a pack file lists; `None` when the pack's own list cannot be read.
fn read_pack_entries(path: &Path) -> Result<Option<Vec<Listed>>, StoreError> {
    let data = fs::read(path).map_err(io_err(path))?;
    Ok(pack_entries(&data).map(|entries| {
        entries
            .into_iter()
            .map(|(id, off, len, kind)| {
                let good = BlobId::of(&data[off as usize..(off + u64::from(len)) as usize]) == id;
                (id, off, len, kind, good)
            })
            .collect()
    }))
}

/// An index that cannot be opened: damage (a truncated or scribbled file) says how to rebuild
/// it; a lock or an I/O failure is reported as what it is.
fn open_err(path: &Path, e: redb::DatabaseError) -> StoreError {
    use redb::{DatabaseError as D, StorageError as S};
    match e {
        D::Storage(S::Io(source)) if source.kind() != io::ErrorKind::UnexpectedEof => io_err(path)(source),
        D::Storage(S::Corrupted(_) | S::Io(_)) | D::UpgradeRequired(_) | D::RepairAborted => {
            StoreError::DamagedIndex { path: path.to_owned(), reason: e.to_string() }
        }
        e => StoreError::from(e),
    }
}

fn pack_path(packs: &Path, pack: u64) -> PathBuf {
    packs.join(format!("{pack:016x}.pack"))
}

/// Write one pack (temp, fsync, rename, fsync dir) and then index its blobs.
///
/// Layout: `CBXPACK1 | blobs | zero padding | trailer | trailer length (u32 LE) | CBXPEND1`,
/// padded to a multiple of 4 KiB so it can be written with O_DIRECT from `stage`.
fn write_pack(
    packs: &Path,
    db: &Database,
    buf: &PackBuf,
    stage: &mut Vec<u8>,
    faults: &Faults,
) -> Result<(), StoreError> {
    if buf.entries.is_empty() {
        return Ok(());
    }
    let pack = next_pack_id(packs);
    let trailer: Vec<([u8; 32], u64, u32, u8)> =
        buf.entries.iter().map(|(id, off, len, k)| (id.0, *off, *len, *k as u8)).collect();
    let trailer = postcard::to_stdvec(&trailer).map_err(|e| StoreError::Encode(e.to_string()))?;
    let unpadded = buf.data.len() + trailer.len() + 12;
    let total = unpadded.div_ceil(ALIGN) * ALIGN;
    stage.clear();
    stage.reserve(total + ALIGN);
    let start = stage.as_ptr().align_offset(ALIGN).min(ALIGN);
    stage.resize(start, 0);
    stage.extend_from_slice(&buf.data);
    stage.resize(start + total - trailer.len() - 12, 0);
    stage.extend_from_slice(&trailer);
    stage.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
    stage.extend_from_slice(PACK_END);
    let result = persist_pack(packs, pack, &stage[start..], faults).and_then(|()| {
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(BLOBS)?;
            for (id, off, len, kind) in &buf.entries {
                let loc = Loc { pack, offset: *off, len: *len, kind: *kind };
                t.insert(id.as_bytes(), loc.encode().as_slice())?;
            }
        }
        w.commit()?;
        Ok(())
    });
    // A failed index commit may still have landed (an error at its last sync): the pack stays,
    // so the index never names a missing pack. If nothing indexes it, `gc` removes it.
    result
}

fn persist_pack(packs: &Path, pack: u64, data: &[u8], faults: &Faults) -> Result<(), StoreError> {
    let tmp = packs.join(format!(".tmp-{pack:016x}"));
    let dest = pack_path(packs, pack);
    let write = || -> Result<(), StoreError> {
        faults.hit("pack write").map_err(io_err(&tmp))?;
        let f = crate::direct::write_file(&tmp, data).map_err(io_err(&tmp))?;
        faults.hit("pack fsync").map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        faults.hit("pack rename").map_err(io_err(&dest))?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        faults.hit("packs directory fsync").map_err(io_err(packs))?;
        File::open(packs).and_then(|d| d.sync_all()).map_err(io_err(packs))
    };
    let r = write();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_numbers_rise_and_never_name_an_existing_pack() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u64> = (0..100).map(|_| next_pack_id(dir.path())).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing: {ids:?}");
        assert!(ids.iter().all(|&id| id < 1 << 63));
        // A number already on disk (a clock set back) is skipped, not overwritten.
        let taken = 1u64 << 62;
        fs::write(pack_path(dir.path(), taken), b"x").unwrap();
        assert_eq!(claim_pack_id(dir.path(), taken), taken + 1);
        assert!(next_pack_id(dir.path()) > taken + 1);
    }

    #[test]
    fn put_get_dedup_reopen_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let a = b"blob a".to_vec();
        let b = vec![7u8; 1000];
        let (ia, ib) = (BlobId::of(&a), BlobId::of(&b));
        assert!(s.put(ia, BlobKind::Chunk, &a).unwrap());
        assert!(!s.put(ia, BlobKind::Chunk, &a).unwrap());
        assert_eq!(s.get(&ia).unwrap(), a);
        s.put(ib, BlobKind::Chunk, &b).unwrap();
        s.flush().unwrap();
        drop(s);
        let s = BlobStore::open(dir.path()).unwrap();
        assert_eq!(s.get(&ib).unwrap(), b);
        assert_eq!(s.usage().unwrap(), (2, (a.len() + b.len()) as u64));
        let check = s.check(&|_| {}).unwrap();
        assert!(check.corrupt.is_empty() && check.missing.is_empty());
        let stats = s.remove(&[ia].into_iter().collect()).unwrap();
        assert_eq!(stats.blobs, 1);
        assert!(matches!(s.get(&ia), Err(StoreError::Missing(_))));
        assert_eq!(s.get(&ib).unwrap(), b);
        assert_eq!(fs::read_dir(dir.path().join("packs")).unwrap().count(), 1);
    }

    #[test]
    fn blobs_read_while_their_pack_is_written_and_sent_changes_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        // Enough chunks to hand several packs to the writer; each is readable at every moment.
        let chunks: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 << 20]).collect();
        let mut ids = Vec::new();
        for c in &chunks {
            let id = BlobId::of(c);
            s.put(id, BlobKind::Chunk, c).unwrap();
            ids.push(id);
            for (j, earlier) in ids.iter().enumerate() {
                assert_eq!(s.get(earlier).unwrap(), chunks[j]);
            }
        }
        let (change, list) = (b"change".to_vec(), b"list".to_vec());
        s.put(BlobId::of(&list), BlobKind::ChunkList, &list).unwrap();
        s.put(BlobId::of(&change), BlobKind::Change, &change).unwrap();
        s.flush().unwrap();
        let unknown = BlobId([9; 32]);
        let mut order = vec![unknown, ids[3], BlobId::of(&list), ids[0], BlobId::of(&change)];
        s.send_order(&mut order).unwrap();
        assert_eq!(&order[..2], &[BlobId::of(&change), BlobId::of(&list)]);
        assert_eq!(order[4], unknown);
        let (l0, l3) = (s.locate(&ids[0]).unwrap().unwrap(), s.locate(&ids[3]).unwrap().unwrap());
        assert_eq!(order[2] == ids[0], (l0.pack, l0.offset) < (l3.pack, l3.offset));
    }

    #[test]
    fn flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let a = vec![1u8; 500];
        let id = BlobId::of(&a);
        s.put(id, BlobKind::Chunk, &a).unwrap();
        s.flush().unwrap();
        let loc = s.locate(&id).unwrap().unwrap();
        let path = s.pack_path(loc.pack);
        let mut bytes = fs::read(&path).unwrap();
        bytes[loc.offset as usize + 10] ^= 0x20;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(s.get(&id), Err(StoreError::Corrupt(x)) if x == id));
        assert_eq!(s.check(&|_| {}).unwrap().corrupt, vec![id]);
        // The read is remembered; checked again, the blob is dropped so a peer sends it.
        let suspects = s.take_suspects();
        assert_eq!(suspects, [id].into_iter().collect());
        assert!(s.take_suspects().is_empty());
        assert_eq!(s.drop_if_bad(&suspects).unwrap(), (vec![id], 500));
        assert!(!s.contains(&id).unwrap());
        // A good blob named as a suspect stays.
        let b = vec![3u8; 700];
        s.put(BlobId::of(&b), BlobKind::Chunk, &b).unwrap();
        s.flush().unwrap();
        assert!(s.drop_if_bad(&[BlobId::of(&b)].into_iter().collect()).unwrap().0.is_empty());
        assert_eq!(s.get(&BlobId::of(&b)).unwrap(), b);
    }

    /// A pack the index does not name (a crash between writing it and indexing it) is
    /// reported, kept by `remove`, and indexed again from its trailer; one whose trailer is
    /// damaged is never deleted.
    #[test]
    fn unindexed_packs_are_reported_kept_and_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let (a, b) = (vec![1u8; 3000], vec![2u8; 4000]);
        let (ia, ib) = (BlobId::of(&a), BlobId::of(&b));
        s.put(ia, BlobKind::Chunk, &a).unwrap();
        s.flush().unwrap();
        s.put(ib, BlobKind::Change, &b).unwrap();
        s.flush().unwrap();
        let lb = s.locate(&ib).unwrap().unwrap();
        let w = s.db.begin_write().unwrap();
        w.open_table(BLOBS).unwrap().remove(ib.as_bytes()).unwrap();
        w.commit().unwrap();
        let check = s.check(&|_| {}).unwrap();
        assert_eq!(check.unindexed_packs, vec![s.pack_path(lb.pack)]);
        s.remove(&[ia].into_iter().collect()).unwrap();
        assert!(s.pack_path(lb.pack).exists(), "a pack holding a blob nothing else does stays");
        let r = s.adopt_packs().unwrap();
        assert_eq!((r.packs, r.blobs, r.corrupt), (1, 1, 0));
        assert_eq!(s.get(&ib).unwrap(), b);
        assert_eq!(s.locate(&ib).unwrap().unwrap().kind, BlobKind::Change);
        assert!(s.check(&|_| {}).unwrap().unindexed_packs.is_empty());

        // A copy of an indexed pack is redundant and goes; a pack with a cut trailer stays.
        let copy = s.pack_path(lb.pack + 1);
        fs::copy(s.pack_path(lb.pack), &copy).unwrap();
        let cut = s.pack_path(lb.pack + 2);
        let bytes = fs::read(s.pack_path(lb.pack)).unwrap();
        fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
        s.remove(&HashSet::new()).unwrap();
        assert!(!copy.exists() && cut.exists());
        assert_eq!(s.adopt_packs().unwrap().unreadable, vec![cut]);
        drop(s);

        // The index deleted: opening indexes every pack again.
        fs::remove_file(dir.path().join("index.redb")).unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        assert_eq!(s.opened_from_packs().map(|r| r.blobs), Some(1));
        assert_eq!(s.get(&ib).unwrap(), b);
        drop(s);
        // Truncated: opening says to repair; rebuilding sets it aside and indexes the packs.
        let index = dir.path().join("index.redb");
        let len = fs::metadata(&index).unwrap().len();
        fs::OpenOptions::new().write(true).open(&index).unwrap().set_len(len / 2).unwrap();
        let err = BlobStore::open(dir.path()).err().expect("a damaged index");
        assert!(matches!(err, StoreError::DamagedIndex { .. }), "{err}");
        let r = BlobStore::rebuild(dir.path()).unwrap();
        assert!(r.set_aside.as_ref().is_some_and(|p| p.exists()));
        assert_eq!(BlobStore::open(dir.path()).unwrap().get(&ib).unwrap(), b);
    }
}
