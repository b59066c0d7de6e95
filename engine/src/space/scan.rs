//! Folder → manifest. Walks the folder, reuses the scan cache for files whose metadata is
//! unchanged, chunks + seals + stores the rest on every core, and commits the differences.

use crate::Progress;
use crate::chunk::MAX_SIZE;
use crate::crypto::BlobKind;
use crate::entry::{Content, Entry, Kind, encode_chunk_list};
use crate::error::Error;
use crate::ids::BlobId;
use crate::ignores::Ignores;
use crate::manifest::Snapshot;
use crate::space::{Pending, Space};
use crate::util::TMP_PREFIX;
use rayon::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// path → (metadata at last read, entry recorded from it).
const SCAN_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_cache");
/// Read buffer per file being chunked; each fill yields several chunks to seal in parallel.
const READ_BUF: usize = 24 << 20;

/// What a scan did, as `cobox scan --json` prints it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ScanReport {
    /// Regular files in the folder.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Paths new since the last scan.
    pub added: u64,
    /// Paths whose content or metadata changed.
    pub changed: u64,
    /// Paths deleted.
    pub deleted: u64,
    /// Deleted+added pairs with the same content.
    pub renamed: u64,
    /// Paths unchanged.
    pub unchanged: u64,
    /// Paths left out by the `.coboxignore` rules (an ignored folder counts once).
    pub ignored: u64,
    /// Bytes in all files.
    pub bytes_total: u64,
    /// Bytes read from disk (files whose metadata changed).
    pub bytes_read: u64,
    /// New blobs stored.
    pub new_blobs: u64,
    /// Bytes of new blobs stored (after compression and encryption).
    pub new_blob_bytes: u64,
    /// Files skipped or problems met; the scan went on.
    pub warnings: Vec<String>,
    /// Id of the history entry this scan made, if anything changed.
    pub snapshot: Option<String>,
    /// Edits found on a device that may only read: they stay on its disk, unrecorded and
    /// unshared (added, changed and deleted above count them too).
    pub kept_local: u64,
}

/// The metadata a scan compares to decide whether a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    mode: u32,
}

impl Meta {
    pub(crate) fn of(m: &fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
            ino: m.ino(),
            mode: m.mode() & 0o7777,
        }
    }
}

enum FoundKind {
    File,
    Dir,
    Symlink(String),
}

struct Found {
    path: String,
    meta: Meta,
    kind: FoundKind,
}

#[derive(Default)]
struct Walk {
    found: Vec<Found>,
    /// Paths (and, with a trailing '/', subtrees) we could not read: keep their old entries.
    protected: Vec<String>,
    warnings: Vec<String>,
    /// Paths the ignore rules left out (a folder once, not its contents).
    ignored: u64,
}

impl Walk {
    fn is_protected(&self, path: &str) -> bool {
        self.protected.iter().any(|p| match p.strip_suffix('/') {
            Some(dir) => path == dir || path.starts_with(p.as_str()),
            None => path == p,
        })
    }
}

fn walk(root: &Path, ignores: &Ignores) -> Walk {
    let mut w = Walk::default();
    let mut it = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter();
    while let Some(res) = it.next() {
        let ent = match res {
            Ok(e) => e,
            Err(err) => {
                let rel = err.path().and_then(|p| p.strip_prefix(root).ok()).and_then(Path::to_str).unwrap_or("");
                w.warnings.push(format!("cannot read {}: {}", if rel.is_empty() { "." } else { rel }, err));
                w.protected.push(format!("{rel}/"));
                continue;
            }
        };
        if ent.depth() == 0 {
            continue;
        }
        let Ok(rel) = ent.path().strip_prefix(root) else { continue };
        let Some(rel) = rel.to_str() else {
            w.warnings.push(format!(
                "skipping {:?}: its name is not valid UTF-8; rename it to sync it",
                rel.to_string_lossy()
            ));
            if ent.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        };
        if let Some(rest) = ent.file_name().to_str().and_then(|n| n.strip_prefix(TMP_PREFIX)) {
            // Another process's temp file is left from one that died mid-write: one process
            // holds a home at a time, so its writer is gone.
            if ent.file_type().is_file() && !rest.starts_with(&format!("{}-", std::process::id())) {
                let _ = fs::remove_file(ent.path());
            }
            continue;
        }
        // A device's keys never enter a shared folder, wherever someone put a home.
        if ent.file_type().is_dir() && crate::util::is_home(ent.path()) {
            w.warnings.push(format!(
                "skipping {rel}: it holds a CoBox home (a device's keys), which never enters a shared folder; move it out"
            ));
            it.skip_current_dir();
            continue;
        }
        // An ignored folder is not entered: nothing below it is looked at.
        if ignores.ignores(rel, ent.file_type().is_dir()) {
            w.ignored += 1;
            if ent.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        let meta = match ent.metadata() {
            Ok(m) => m,
            Err(e) => {
                w.warnings.push(format!("cannot read {rel}: {e}"));
                w.protected.push(rel.to_owned());
                continue;
            }
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            FoundKind::Dir
        } else if ft.is_file() {
            FoundKind::File
        } else if ft.is_symlink() {
            match fs::read_link(ent.path()).map(|t| t.to_str().map(str::to_owned)) {
                Ok(Some(t)) => FoundKind::Symlink(t),
                Ok(None) => {
                    w.warnings.push(format!("skipping symlink {rel}: its target is not valid UTF-8"));
                    w.protected.push(rel.to_owned());
                    continue;
                }
                Err(e) => {
                    w.warnings.push(format!("cannot read symlink {rel}: {e}"));
                    w.protected.push(rel.to_owned());
                    continue;
                }
            }
        } else {
            w.warnings.push(format!("skipping {rel}: not a regular file, directory or symlink"));
            continue;
        };
        w.found.push(Found { path: rel.to_owned(), meta: Meta::of(&meta), kind });
    }
    w
}

/// What the scan cache knows of a path: the metadata it was read with and the entry recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheRec {
    pub(crate) meta: Meta,
    pub(crate) entry: Vec<u8>,
    /// False when the file was modified within the clock's granularity of the scan: the next
    /// scan re-reads it even if the metadata matches. The materialiser still compares metadata.
    pub(crate) trusted: bool,
}

/// A scan-cache row to set, or with `None` to remove.
pub(crate) type CacheRow = (String, Option<CacheRec>);

/// A file's new entry and the metadata it was read with, or a warning that it was skipped.
type Ingested = Result<(Entry, Meta), String>;

struct Counters {
    read: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
}

/// The scan cache as one read transaction saw it, read a row at a time: loaded whole as a map
/// it held about 180 bytes per file (180 MB at a million files) in every scan and materialiser
/// pass. A row that does not decode reads as absent (the path is read again and its row
/// rewritten); a failed read is an error.
pub(crate) struct ScanCache {
    table: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
}

impl ScanCache {
    /// The row of `path`.
    pub(crate) fn get(&self, path: &str) -> Result<Option<CacheRec>, Error> {
        let Some(t) = &self.table else { return Ok(None) };
        let row = t.get(path).map_err(crate::store::StoreError::from)?;
        Ok(row.and_then(|v| postcard::from_bytes::<CacheRec>(v.value()).ok()))
    }

    /// Whether `path` has a row.
    pub(crate) fn contains_key(&self, path: &str) -> Result<bool, Error> {
        Ok(self.get(path)?.is_some())
    }

    /// How many rows there are.
    pub(crate) fn len(&self) -> Result<u64, Error> {
        let Some(t) = &self.table else { return Ok(0) };
        Ok(redb::ReadableTableMetadata::len(t).map_err(crate::store::StoreError::from)?)
    }

    /// Every row, in path order, one at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, CacheRec)) -> Result<(), Error> {
        let Some(t) = &self.table else { return Ok(()) };
        for item in t.iter().map_err(crate::store::StoreError::from)? {
            let (k, v) = item.map_err(crate::store::StoreError::from)?;
            if let Ok(rec) = postcard::from_bytes::<CacheRec>(v.value()) {
                f(k.value(), rec);
            }
        }
        Ok(())
    }
}

impl Space {
    pub(crate) fn load_scan_cache(&self) -> Result<ScanCache, Error> {
        let r = self.store.db().begin_read().map_err(crate::store::StoreError::from)?;
        match r.open_table(SCAN_CACHE) {
            Ok(t) => Ok(ScanCache { table: Some(t) }),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(ScanCache { table: None }),
            Err(e) => Err(crate::store::StoreError::from(e).into()),
        }
    }

    fn simple_entry(&self, f: &Found) -> Option<Entry> {
        let kind = match &f.kind {
            FoundKind::Dir => Kind::Dir,
            FoundKind::Symlink(t) => Kind::Symlink { target: t.clone() },
            FoundKind::File => return None,
        };
        // Directory mtimes change with every child; recording them would churn history.
        let mtime_ns = if matches!(kind, Kind::Dir) { 0 } else { f.meta.mtime_ns };
        Some(Entry { kind, mtime_ns, mode: f.meta.mode, device: self.device_short() })
    }

    /// Record the folder's local changes in the manifest.
    pub fn scan(&mut self, progress: &dyn Progress) -> Result<crate::ScanReport, Error> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.info.audit_only {
            return Err(Error::Refused(format!(
                "space {:?} is kept on this device to audit its seeders only: it has no folder to scan",
                self.info.name
            )));
        }
        // Lowered first: a change seen while this scan runs may be missed by it, and raises
        // the flag again for the next.
        // The roster as it is now (a removal from the command line, or keys handed over, while
        // a daemon holds this space): content is sealed under the current epoch.
        let view = self.ledger().roster()?;
        let waiting = !self.quarantined.is_empty();
        let gained = self.set_roster(view, self.roster_from);
        self.keep_removed_changes()?;
        if gained && waiting {
            // Changes waiting for these keys go into the manifest and the folder first: a
            // scan with the manifest behind the folder would record the folder's files again.
            self.apply_and_materialize()?;
        }
        if let Some(epoch) = self.epoch_missing {
            // Sealed under an older key, new content would be readable by a removed device:
            // nothing is read or recorded until a manager hands this device the current key.
            let msg = format!(
                "edits wait: this device does not hold the space's current key (epoch {epoch:08x}) yet; a manager's device hands it over at their next sync"
            );
            progress.warn(&msg);
            return Ok(crate::ScanReport { warnings: vec![msg], ..Default::default() });
        }
        if let Some(flag) = &self.changed {
            flag.store(false, SeqCst);
        }
        let r = self.scan_folder(progress);
        if let (Err(_), Some(flag)) = (&r, &self.changed) {
            flag.store(true, SeqCst);
        }
        r
    }

    fn scan_folder(&mut self, progress: &dyn Progress) -> Result<crate::ScanReport, Error> {
        let start_ns = crate::now_ms().saturating_mul(1_000_000);
        let root = self.info.path.clone();
        if !root.is_dir() {
            return Err(Error::FolderMissing(root));
        }
        let folder = crate::error::IoContext::at(crate::beneath::Folder::open(&root), &root)?;
        let mut warnings = self.load_ignores()?;
        let w = walk(&root, &self.ignores);
        warnings.extend(w.warnings.iter().cloned());
        for msg in &warnings {
            progress.warn(msg);
        }
        let cache = self.load_scan_cache()?;
        let mut report = crate::ScanReport { warnings, ignored: w.ignored, ..Default::default() };
        // Cache rows for paths recorded without reading them (folders, links, renamed or
        // re-stamped files whose entry is reused).
        let mut unread_rows: Vec<CacheRow> = Vec::new();
        // Each path found, its entry now, and whether the folder holds there just what this
        // device last recorded or wrote (its scan-cache row, same metadata and state).
        let mut new_entries: Vec<(String, Entry, bool)> = Vec::new();
        let as_recorded = |row: Option<&CacheRec>, meta: &Meta, e: &Entry| {
            row.is_some_and(|r| r.meta == *meta && Entry::decode(&r.entry).is_ok_and(|c| c.same_state(e)))
        };
        // Files to read, each with its own row (boxed: none on a first scan).
        let mut to_read: Vec<(&Found, Option<Box<CacheRec>>)> = Vec::new();
        // Files whose own row does not vouch for them: renamed, or to be read.
        let mut unmatched: Vec<(&Found, Option<Box<CacheRec>>)> = Vec::new();
        // Found paths with a row: the table holding more means rows of paths gone.
        let mut with_rows = 0u64;
        for f in &w.found {
            match f.kind {
                FoundKind::Dir => report.dirs += 1,
                FoundKind::Symlink(_) => report.symlinks += 1,
                FoundKind::File => {
                    report.files += 1;
                    report.bytes_total += f.meta.size;
                }
            }
            let row = cache.get(&f.path)?;
            with_rows += u64::from(row.is_some());
            if let Some(e) = self.simple_entry(f) {
                // Folders and links get a cache row too: it records that this device saw them.
                if row.as_ref().is_none_or(|r| r.meta != f.meta) {
                    unread_rows
                        .push((f.path.clone(), Some(CacheRec { meta: f.meta, entry: e.encode()?, trusted: true })));
                }
                let recorded = as_recorded(row.as_ref(), &f.meta, &e);
                new_entries.push((f.path.clone(), e, recorded));
                continue;
            }
            match row {
                // Its own row, same metadata: recorded as it is.
                Some(r) if r.trusted && r.meta == f.meta => match Entry::decode(&r.entry) {
                    Ok(e) => new_entries.push((f.path.clone(), e, true)),
                    Err(_) => to_read.push((f, Some(Box::new(r)))),
                },
                row => unmatched.push((f, row.map(Box::new))),
            }
        }
        // A rename keeps the inode, size, mtime and mode (only ctime moves): reuse the entry
        // cached under the old path instead of reading the file again. The rows of paths gone
        // from the folder are only walked when there are some, or some file has no row of its
        // own to match.
        let seen_paths: HashSet<&str> = w.found.iter().map(|f| f.path.as_str()).collect();
        let mut moved: HashMap<(u64, u64, i64, u32), Vec<u8>> = HashMap::new();
        let mut gone_rows: Vec<String> = Vec::new();
        if !unmatched.is_empty() || cache.len()? > with_rows {
            cache.for_each(|p, r| {
                if seen_paths.contains(p) {
                    return;
                }
                gone_rows.push(p.to_owned());
                if r.trusted {
                    moved.insert((r.meta.ino, r.meta.size, r.meta.mtime_ns, r.meta.mode), r.entry);
                }
            })?;
        }
        for (f, row) in unmatched {
            match moved.get(&(f.meta.ino, f.meta.size, f.meta.mtime_ns, f.meta.mode)).map(|enc| Entry::decode(enc)) {
                Some(Ok(e)) => {
                    if row.as_ref().is_none_or(|r| r.meta != f.meta) {
                        unread_rows
                            .push((f.path.clone(), Some(CacheRec { meta: f.meta, entry: e.encode()?, trusted: true })));
                    }
                    let recorded = row.is_some_and(|r| r.trusted && r.meta == f.meta);
                    new_entries.push((f.path.clone(), e, recorded));
                }
                _ => to_read.push((f, row)),
            }
        }
        drop(moved);
        // The read transaction ends before anything is written: open, it would keep every page
        // the store's commits replace from being reused (an update of 100k files doubled the
        // index, 36 -> 71 MB).
        drop(cache);
        progress.start("scanning", to_read.iter().map(|(f, _)| f.meta.size).sum());
        let counters = Counters { read: AtomicU64::new(0), new_blobs: AtomicU64::new(0), new_bytes: AtomicU64::new(0) };
        // A reader's edits stay on its disk (below): their blobs are not stored either, so no
        // sync offers them to a peer.
        let keep = self.roster.role(&self.device.0) != Some(cobox_core::roster::Role::Read);
        let results: Vec<Result<Ingested, Error>> =
            to_read.par_iter().map(|(f, _)| self.ingest(&folder, f, &counters, progress, keep)).collect();
        let mut protected_now: HashSet<String> = HashSet::new();
        let mut cache_updates = unread_rows;
        for ((f, row), r) in to_read.iter().zip(results) {
            match r? {
                Ok((e, meta)) => {
                    // A file modified within the clock's granularity of this scan could change
                    // again without its mtime moving; mark its row so the next scan re-reads it.
                    // Whole-second mtimes mean a coarse filesystem clock: widen the window.
                    let window = if meta.mtime_ns % 1_000_000_000 == 0 { 2_000_000_000 } else { 100_000_000 };
                    let trusted = meta.mtime_ns < start_ns - window;
                    cache_updates.push((f.path.clone(), Some(CacheRec { meta, entry: e.encode()?, trusted })));
                    let recorded = as_recorded(row.as_deref(), &meta, &e);
                    new_entries.push((f.path.clone(), e, recorded));
                }
                Err(msg) => {
                    progress.warn(&msg);
                    report.warnings.push(msg);
                    protected_now.insert(f.path.clone());
                }
            }
        }
        report.bytes_read = counters.read.load(Ordering::Relaxed);

        // Differences against the manifest. A reader records none: its edits stay on its disk
        // (every peer would refuse its changes), and their cache rows stay out so the
        // materialiser keeps treating them as edits it must not overwrite.
        let read_only = self.roster.role(&self.device.0) == Some(cobox_core::roster::Role::Read);
        let mut local_only: HashSet<String> = HashSet::new();
        // Looked up one path at a time and walked once below, not copied: a copy of a
        // million-entry manifest held 250 MB.
        let seen = seen_paths;
        let mut added_content: HashMap<Content, u32> = HashMap::new();
        // What each path is to the manifest, looked up side by side (a byte per path).
        #[derive(Clone, Copy)]
        enum Was {
            Same,
            Changed,
            New,
        }
        let manifest = self.manifest()?;
        let was: Vec<Was> = new_entries
            .par_iter()
            .map(|(path, e, recorded)| {
                Ok(match manifest.get(path)? {
                    Some(old) if old.is_live() && old.same_state(e) => Was::Same,
                    // Untouched here since this device recorded or wrote it: the manifest moved
                    // on by another device's change not written here yet (its content still
                    // coming, or refused). Recording the folder now would undo that change
                    // everywhere.
                    Some(_) if *recorded => Was::Same,
                    Some(old) if old.is_live() => Was::Changed,
                    _ => Was::New,
                })
            })
            .collect::<Result<_, cobox_core::manifest::ManifestError>>()?;
        for ((path, e, _), was) in new_entries.iter().zip(was) {
            match was {
                Was::Same => {
                    report.unchanged += 1;
                    continue;
                }
                Was::Changed => report.changed += 1,
                Was::New => {
                    report.added += 1;
                    if let Kind::File { content, .. } = &e.kind {
                        *added_content.entry(content.clone()).or_default() += 1;
                    }
                }
            }
            if read_only {
                local_only.insert(path.clone());
                continue;
            }
            self.manifest_mut()?.set(path, e)?;
        }
        let now_ns = crate::now_ms().saturating_mul(1_000_000);
        let mut deleted_paths = Vec::new();
        // Rows of paths not in the folder now (collected above whenever there are any).
        let gone: HashSet<&str> = gone_rows.iter().map(String::as_str).collect();
        for item in self.manifest()?.iter_entries() {
            let (path, old) = item?;
            if !old.is_live() || seen.contains(path.as_str()) || w.is_protected(&path) || protected_now.contains(&path)
            {
                continue;
            }
            // Ignored paths are out of this device's hands: missing here is not deleted.
            if self.ignores.covers(&path, matches!(old.kind, Kind::Dir)) {
                continue;
            }
            // Only what this device saw on disk can have been deleted here. A path it never saw
            // came from another device and is not materialised yet (a sync cut between applying
            // and writing, or a scan racing the materialiser): recording a delete would lose it.
            if !gone.contains(path.as_str()) {
                continue;
            }
            report.deleted += 1;
            if let Kind::File { content, .. } = &old.kind
                && let Some(n) = added_content.get_mut(content).filter(|n| **n > 0)
            {
                *n -= 1;
                report.renamed += 1;
            }
            if read_only {
                local_only.insert(path);
                continue;
            }
            deleted_paths.push(path);
        }
        let tomb = Entry { kind: Kind::Deleted, mtime_ns: now_ns, mode: 0, device: self.device_short() };
        for path in &deleted_paths {
            self.manifest_mut()?.set(path, &tomb)?;
        }
        if !local_only.is_empty() {
            report.kept_local = local_only.len() as u64;
            cache_updates.retain(|(p, _)| !local_only.contains(p));
            let msg = format!(
                "{} edit{} stay on this device only: it may only read in space {:?}, so they are not shared",
                local_only.len(),
                if local_only.len() == 1 { "" } else { "s" },
                self.info.name
            );
            progress.warn(&msg);
            report.warnings.push(msg);
        }
        // Files that kept changing keep their cache rows out too: seen but unrecorded.
        let snap = Snapshot {
            time_ms: crate::now_ms(),
            device: self.device,
            added: report.added as u32,
            changed: report.changed as u32,
            deleted: report.deleted as u32,
            renamed: report.renamed as u32,
            heads: Vec::new(),
        };
        if let Some((body, snap)) = self.manifest_mut()?.commit(snap) {
            self.persist_change(body)?;
            report.snapshot = Some(snap.id());
        } else {
            self.store.flush()?;
        }
        report.new_blobs = counters.new_blobs.load(Ordering::Relaxed);
        report.new_blob_bytes = counters.new_bytes.load(Ordering::Relaxed);
        // Every path deleted here is among them.
        for p in gone_rows {
            cache_updates.push((p, None));
        }
        self.write_scan_cache(&cache_updates)?;
        self.store.meta_set("last_scan", &crate::now_ms().to_le_bytes())?;
        Ok(report)
    }

    /// Set (or with `None` remove) scan-cache rows, e.g. for files the materialiser wrote.
    pub(crate) fn write_scan_cache(&self, rows: &[CacheRow]) -> Result<(), Error> {
        use crate::store::StoreError;
        if rows.is_empty() {
            return Ok(());
        }
        let w = self.store.db().begin_write().map_err(StoreError::from)?;
        {
            let mut t = w.open_table(SCAN_CACHE).map_err(StoreError::from)?;
            for (path, row) in rows {
                match row {
                    Some(rec) => {
                        let bytes = postcard::to_stdvec(rec)
                            .map_err(|e| Error::Encode { what: "a scan-cache row", reason: e.to_string() })?;
                        t.insert(path.as_str(), bytes.as_slice()).map_err(StoreError::from)?;
                    }
                    None => {
                        t.remove(path.as_str()).map_err(StoreError::from)?;
                    }
                }
            }
        }
        w.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Chunk, seal and store one file. The outer error aborts the scan (store failure, full
    /// disk); the inner one is a per-file warning.
    fn ingest(
        &self,
        folder: &crate::beneath::Folder,
        f: &Found,
        counters: &Counters,
        progress: &dyn Progress,
        keep: bool,
    ) -> Result<Ingested, Error> {
        let mut meta = f.meta;
        for _attempt in 0..3 {
            // Opened beneath the folder without following a link, and re-checked on the open
            // file itself: a file swapped for a symlink meanwhile is not read through it.
            let mut file = match folder.entry(&f.path, false).and_then(|e| e.open_read()) {
                Ok(h) => h,
                Err(e) => return Ok(Err(format!("cannot read {}: {e}", f.path))),
            };
            let cap = if meta.size < MAX_SIZE as u64 { meta.size as usize + 1 } else { READ_BUF };
            let mut buf = vec![0u8; cap];
            let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
            let mut chunks: Vec<(BlobId, u32)> = Vec::new();
            loop {
                if !eof && end - start < MAX_SIZE {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                    if end == buf.len() && buf.len() < READ_BUF {
                        buf.resize(READ_BUF, 0);
                    }
                    while end < buf.len() {
                        match file.read(&mut buf[end..]) {
                            Ok(0) => {
                                eof = true;
                                break;
                            }
                            Ok(n) => {
                                end += n;
                                total += n as u64;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Ok(Err(format!("cannot read {}: {e}", f.path))),
                        }
                    }
                }
                if start == end {
                    break;
                }
                let mut pieces = Vec::new();
                while start < end && (eof || end - start >= MAX_SIZE) {
                    let n = self.chunker.next_len(&buf[start..end]);
                    pieces.push(start..start + n);
                    start += n;
                }
                let sealed: Vec<(BlobId, Vec<u8>, u32)> = pieces
                    .par_iter()
                    .map(|r| {
                        let b = self.keys.seal(BlobKind::Chunk, &buf[r.clone()]);
                        (BlobId::of(&b), b, r.len() as u32)
                    })
                    .collect();
                for (id, b, n) in sealed {
                    if keep && self.store.put(id, BlobKind::Chunk, &b)? {
                        counters.new_blobs.fetch_add(1, Ordering::Relaxed);
                        counters.new_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    chunks.push((id, n));
                    progress.advance(n as u64);
                }
            }
            counters.read.fetch_add(total, Ordering::Relaxed);
            let after = match file.metadata() {
                Ok(m) if m.is_file() => Meta::of(&m),
                Ok(_) => return Ok(Err(format!("cannot read {}: not a regular file any more", f.path))),
                Err(e) => return Ok(Err(format!("cannot read {}: {e}", f.path))),
            };
            if after.size != total || after.mtime_ns != meta.mtime_ns || after.size != meta.size {
                // Changed while we read it: read again with the new metadata.
                meta = after;
                continue;
            }
            let content = match chunks.len() {
                0 => Content::Empty,
                1 => Content::Single(chunks[0].0),
                n => {
                    let list = self.keys.seal(BlobKind::ChunkList, &encode_chunk_list(&chunks));
                    let id = BlobId::of(&list);
                    if keep && self.store.put(id, BlobKind::ChunkList, &list)? {
                        counters.new_blobs.fetch_add(1, Ordering::Relaxed);
                        counters.new_bytes.fetch_add(list.len() as u64, Ordering::Relaxed);
                    }
                    Content::List { list: id, chunks: n as u32 }
                }
            };
            let entry = Entry {
                kind: Kind::File { size: total, content },
                mtime_ns: meta.mtime_ns,
                mode: meta.mode,
                device: self.device_short(),
            };
            return Ok(Ok((entry, after)));
        }
        Ok(Err(format!("{} kept changing while it was read; skipped until the next scan", f.path)))
    }

    /// Local changes a scan would record, judged from metadata alone.
    pub fn pending(&self) -> Result<Pending, Error> {
        let (ignores, _) = crate::util::read_ignores(&self.info.path)?;
        let w = walk(&self.info.path, &ignores);
        // As a scan: the manifest looked up a path at a time and walked once, not copied.
        let manifest = self.manifest()?;
        let cache = self.load_scan_cache()?;
        let mut p = Pending::default();
        for f in &w.found {
            match manifest.get(&f.path)?.filter(|e| e.is_live()) {
                None => p.added += 1,
                Some(old) => {
                    let same = match self.simple_entry(f) {
                        Some(e) => e.same_state(&old),
                        // A file counts as unchanged when size, mtime and mode match the record.
                        None => {
                            old.size() == f.meta.size
                                && matches!(old.kind, Kind::File { .. })
                                && old.mtime_ns == f.meta.mtime_ns
                                && old.mode == f.meta.mode
                        }
                    };
                    if !same {
                        p.changed += 1;
                    }
                }
            }
        }
        let seen: HashSet<&str> = w.found.iter().map(|f| f.path.as_str()).collect();
        for item in manifest.iter_entries() {
            let (path, e) = item?;
            if e.is_live()
                && !seen.contains(path.as_str())
                && !w.is_protected(&path)
                && !ignores.covers(&path, matches!(e.kind, Kind::Dir))
                && cache.contains_key(&path)?
            {
                p.deleted += 1;
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large commit is saved into the manifest cache at once: the next open loads the saved
    /// documents instead of replaying the change (a first scan of a large folder replayed at
    /// every open cost a third of an unchanged rescan's time); a small one waits for more.
    #[test]
    fn a_large_change_is_saved_into_the_manifest_cache_at_once() {
        let (home, folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let h = crate::Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let mut s = h.open_space("s").unwrap();
        s.compact_after_bytes = 4 << 10;
        std::fs::write(folder.path().join("one.txt"), b"one").unwrap();
        s.scan(&crate::NoProgress).unwrap();
        assert_ne!(s.applied, s.included, "a small change waits");
        for i in 0..100 {
            std::fs::write(folder.path().join(format!("file-{i:03}.txt")), format!("{i}")).unwrap();
        }
        s.scan(&crate::NoProgress).unwrap();
        assert_eq!(s.applied, s.included, "saved whole");
        assert_eq!(s.uncompacted_bytes, 0);
        drop(s);
        let s = h.open_space("s").unwrap();
        assert_eq!(s.applied, s.included, "nothing to replay at open");
        assert_eq!(s.files().unwrap().len(), 101);
    }

    /// A file the walk saw, swapped for a link to a file outside before it is read: the
    /// scanner refuses it rather than reading (and storing, and sending) the outside file.
    #[test]
    fn a_file_swapped_for_a_symlink_is_not_read_through_it() {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = crate::Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let s = h.open_space("s").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside the folder").unwrap();
        let f = folder.path().join("f");
        std::fs::write(&f, b"inside").unwrap();
        let meta = Meta::of(&std::fs::symlink_metadata(&f).unwrap());
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), &f).unwrap();
        let counters = Counters { read: AtomicU64::new(0), new_blobs: AtomicU64::new(0), new_bytes: AtomicU64::new(0) };
        let dir = crate::beneath::Folder::open(folder.path()).unwrap();
        let found = Found { path: "f".into(), meta, kind: FoundKind::File };
        let r = s.ingest(&dir, &found, &counters, &crate::NoProgress, true).unwrap();
        assert!(r.is_err(), "refused: {r:?}");
        assert_eq!(counters.read.load(Ordering::Relaxed), 0, "not a byte read through the link");
        assert!(s.store.list().unwrap().is_empty(), "nothing stored");
    }

    /// A CoBox home someone put inside a space's folder is skipped, said so, and its device
    /// key never recorded or stored.
    #[test]
    fn a_home_inside_the_folder_is_skipped() {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = crate::Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let mut s = h.open_space("s").unwrap();
        std::fs::write(folder.path().join("mine.txt"), b"shared").unwrap();
        drop(crate::Home::open(&folder.path().join("other-home")).unwrap());
        let r = s.scan(&crate::NoProgress).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains("other-home") && w.contains("CoBox home")), "{r:?}");
        let paths: Vec<String> = s.manifest().unwrap().entries().unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["mine.txt"]);
    }
}
