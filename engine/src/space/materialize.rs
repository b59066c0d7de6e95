//! Manifest → folder after a sync: the materialiser.
//!
//! Runs right after a scan, so the scan cache describes the folder. For each path whose winning
//! entry differs from what the cache says is on disk, it writes the remote version (temp file in
//! the same directory, then rename), deletes, or creates. It never overwrites a file that changed
//! since the scan (the local version is moved to a conflict copy first), never writes outside the
//! folder or through a symlink, and refuses unsafe manifest paths. Concurrent versions of a path
//! are settled first, identically on every device: an edit beats a delete, one version keeps the
//! name (Automerge's winner) and each other becomes `NAME.sync-conflict-YYYYMMDD-HHMMSS-DEVICE.EXT`.

use crate::beneath::Folder;
use crate::entry::{Content, Entry, Kind, validate_path};
use crate::error::Error;
use crate::error::IoContext;
use crate::ids::BlobId;
use crate::manifest::Snapshot;
use crate::space::Space;
use crate::space::restore::{FileWriter, PartialFile};
use crate::space::scan::{CacheRec, Meta};
use cobox_core::entry::safe_mode;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the materialiser did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaterializeReport {
    /// Files, links and folders written or created.
    pub written: u64,
    /// Paths removed.
    pub deleted: u64,
    /// Conflict copies made (their paths).
    pub conflicts: Vec<String>,
    /// Paths whose blobs have not all arrived yet; done on a later sync.
    pub waiting: Vec<String>,
    /// Paths refused: unsafe names, symlinks in the way, write errors.
    pub refused: Vec<String>,
    /// Paths left alone because this device's `.coboxignore` rules ignore them.
    pub ignored: u64,
}

use cobox_core::plan::{Action, Local, Seen};

/// Numbered conflict copies tried for one version before it is left as a conflict at its path.
const MAX_COPY_NUMBER: u32 = 100;
pub use cobox_core::settle::{conflict_name, conflict_original};

impl Space {
    /// Settle concurrent versions in the manifest (deterministically on every device) and commit.
    /// Returns the conflict copies created.
    pub(crate) fn resolve_conflicts(&mut self) -> Result<Vec<String>, Error> {
        let mut copies = Vec::new();
        let entries = self.manifest()?.entries()?;
        // Names that normalise alike, found in the same walk (nearly every path is ASCII).
        let groups = cobox_core::settle::lookalikes(
            entries.iter().filter(|(_, e)| e.is_live() && !matches!(e.kind, Kind::Dir)).map(|(p, _)| p.as_str()),
        );
        let paths: Vec<String> = entries.into_iter().map(|(p, _)| p).collect();
        for path in paths {
            let all = self.manifest()?.get_all(&path)?;
            let Some(current) = self.manifest()?.get(&path)? else { continue };
            let Some(settled) = cobox_core::settle::settle(&path, &all, &current) else { continue };
            for (name, v) in &settled.copies {
                self.keep_copy(name, v, &mut copies)?;
            }
            // One new value supersedes the concurrent ones, so the path stops being a conflict.
            self.manifest_mut()?.set(&path, &settled.winner)?;
        }
        // Names that normalise alike (NFC/NFD) are one name: the others become conflict copies
        // of it, with values every device computes alike (so settling twice is no conflict).
        for (keeper, others) in groups {
            for other in others {
                let Some(v) = self.manifest()?.get(&other)?.filter(|e| e.is_live() && !matches!(e.kind, Kind::Dir))
                else {
                    continue;
                };
                self.keep_copy(&conflict_name(&keeper, v.mtime_ns, &v.device), &v, &mut copies)?;
                let gone = Entry { kind: Kind::Deleted, mtime_ns: v.mtime_ns, mode: 0, device: v.device };
                self.manifest_mut()?.set(&other, &gone)?;
            }
        }
        let snap = Snapshot {
            time_ms: crate::now_ms(),
            device: self.device,
            added: copies.len() as u32,
            changed: 0,
            deleted: 0,
            renamed: 0,
            heads: Vec::new(),
        };
        if let Some((body, _)) = self.manifest_mut()?.commit(snap) {
            self.persist_change(body)?;
        }
        Ok(copies)
    }

    /// Keep version `v` as a conflict copy named `name` in the manifest, or, when another version
    /// holds that name (the same device lost twice within a second), under the first numbered
    /// name free: a copy is never dropped for its name. One already there is not added twice.
    pub(crate) fn keep_copy(&mut self, name: &str, v: &Entry, copies: &mut Vec<String>) -> Result<(), Error> {
        for n in 1..=MAX_COPY_NUMBER {
            let name = if n == 1 { name.to_owned() } else { cobox_core::settle::numbered(name, n) };
            match self.manifest()?.get(&name)? {
                Some(e) if e.is_live() && e.same_state(v) => return Ok(()),
                Some(e) if e.is_live() => {}
                _ => {
                    self.manifest_mut()?.set(&name, v)?;
                    copies.push(name);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Write the manifest's current state into the folder. Call right after [`Space::scan`].
    pub fn materialize(&mut self) -> Result<MaterializeReport, Error> {
        self.load_ignores()?;
        Ok(self.materialize_and_plan()?.0)
    }

    /// [`Space::materialize`], also returning the waiting files that may be written as soon as
    /// their content arrives: path, entry, and the target's metadata now (`None`: absent). A
    /// target that is not as last scanned is left out; the next pass keeps it as a conflict copy.
    /// Callers read the ignore rules first ([`Space::load_ignores`]).
    pub(crate) fn materialize_and_plan(&mut self) -> Result<(MaterializeReport, Vec<Planned>), Error> {
        let mut planned = Vec::new();
        let mut report = MaterializeReport { conflicts: self.resolve_conflicts()?, ..Default::default() };
        let root = self.info.path.clone();
        let folder = Folder::open(&root).at(&root)?;
        let cache = self.load_scan_cache()?;
        let mut entries = self.manifest()?.entries()?;
        // Parents before children when creating; children before parents when deleting.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut updates: Vec<crate::space::scan::CacheRow> = Vec::new();
        let mut dir_deletes = Vec::new();
        // Folders in the way of a file or link: cleared after the pass's deletions.
        let mut clear_dirs: Vec<(String, Entry)> = Vec::new();
        // What to write, and what the target was when decided (`None`: absent).
        let mut to_write: Vec<(String, Entry, Option<Meta>)> = Vec::new();
        // Reads files that changed since the scan, to compare them with what comes in.
        let writer = self.file_writer();
        for (path, entry) in &entries {
            if let Err(why) = validate_path(path) {
                report.refused.push(format!("{path:?}: {why}"));
                continue;
            }
            // Everything below acts on this name in its parent directory, reached without
            // following a link: a link the manifest made cannot lead a later entry outside.
            let (target, local) = match folder.entry(path, false) {
                Ok(t) => match t.stat() {
                    Ok(local) => (Some(t), local),
                    Err(e) => {
                        report.refused.push(format!("{path}: {e}"));
                        continue;
                    }
                },
                // A parent that is a file now (a folder became a file): nothing is here.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                    (None, None)
                }
                Err(e) => {
                    report.refused.push(format!("{path}: not beneath the folder without a link: {e}"));
                    continue;
                }
            };
            let cached = cache.get(path)?;
            let seen = Seen {
                local: match &local {
                    None => Local::Absent,
                    // Changed on disk since the scan (or never scanned): never overwritten or deleted.
                    Some(m) if m.is_file() => Local::File {
                        edited: cached.as_ref().is_none_or(|r| Meta::of(m) != r.meta),
                        mtime_ns: Meta::of(m).mtime_ns,
                    },
                    Some(m) if m.is_dir() => Local::Dir,
                    Some(_) => Local::Other {
                        link_target: matches!(entry.kind, Kind::Symlink { .. })
                            .then(|| target.as_ref().and_then(|t| t.read_link().ok()))
                            .flatten(),
                    },
                },
                recorded_same: cached.and_then(|r| Entry::decode(&r.entry).ok()).is_some_and(|r| r.same_state(entry)),
            };
            let mut ask = cobox_core::plan::Asking(
                || match &entry.kind {
                    Kind::File { content, .. } => self.has_content(content),
                    _ => Ok(true),
                },
                // Unreadable counts as different: the edit is then kept aside, never lost.
                || Ok::<_, Error>(target.as_ref().is_some_and(|t| writer.holds(t, entry).unwrap_or(false))),
            );
            let now = local.as_ref().map(Meta::of);
            match cobox_core::plan::decide(path, entry, &seen, &self.ignores, &self.device_short(), &mut ask)? {
                Action::Nothing => {}
                Action::Ignored => report.ignored += 1,
                Action::Refuse(why) => report.refused.push(why),
                Action::RemoveDir => dir_deletes.push(path.clone()),
                Action::ClearDir => clear_dirs.push((path.clone(), entry.clone())),
                Action::Adopt => {
                    if let Some(meta) = now {
                        updates.push((path.clone(), Some(CacheRec { meta, entry: entry.encode()?, trusted: true })));
                    }
                }
                Action::RemoveFile => {
                    // Looked at again just before: a save made since the decision stands.
                    if target.as_ref().is_some_and(|t| unchanged_since(t, now).is_ok() && t.remove_file().is_ok()) {
                        report.deleted += 1;
                        updates.push((path.clone(), None));
                    }
                }
                Action::MakeDir { keep_local_as } | Action::MakeLink { keep_local_as } => {
                    // A file or link in the way goes first: an edited file aside, else removed.
                    if let (Some(t), Some(m)) = (&target, &local)
                        && !m.is_dir()
                    {
                        let cleared = match &keep_local_as {
                            Some(name) => self.move_aside(&folder, t, name).map(Some),
                            None => unchanged_since(t, now)
                                .map_err(std::io::Error::other)
                                .and_then(|()| t.remove_file())
                                .map(|()| None),
                        };
                        match cleared {
                            Ok(kept) => report.conflicts.extend(kept),
                            Err(e) => {
                                report.refused.push(format!("{path}: cannot clear the way: {e}"));
                                continue;
                            }
                        }
                    }
                    let made = folder.entry(path, true).and_then(|t| {
                        match &entry.kind {
                            Kind::Symlink { target: to } => t.symlink(to)?,
                            // The recorded mode (masked), so the next scan sees no change.
                            _ => t.create_dir(safe_mode(entry.mode))?,
                        }
                        t.stat()?.map(|m| Meta::of(&m)).ok_or_else(|| std::io::ErrorKind::NotFound.into())
                    });
                    match made {
                        Ok(meta) => {
                            report.written += 1;
                            updates
                                .push((path.clone(), Some(CacheRec { meta, entry: entry.encode()?, trusted: true })));
                        }
                        Err(e) => report.refused.push(format!("{path}: {e}")),
                    }
                }
                Action::Wait { plan } => {
                    report.waiting.push(path.clone());
                    if plan {
                        planned.push((path.clone(), entry.clone(), local.as_ref().map(Meta::of)));
                    }
                }
                Action::Write { keep_local_as } => {
                    if let Some(name) = keep_local_as {
                        // Keep the local edit under a conflict name; the next scan records it.
                        let kept = match &target {
                            Some(t) => self.move_aside(&folder, t, &name),
                            None => Err(std::io::ErrorKind::NotFound.into()),
                        };
                        match kept {
                            Ok(name) => report.conflicts.push(name),
                            Err(e) => {
                                report.refused.push(format!("{path}: cannot keep the local edit aside: {e}"));
                                continue;
                            }
                        }
                        to_write.push((path.clone(), entry.clone(), None));
                    } else {
                        to_write.push((path.clone(), entry.clone(), now));
                    }
                }
            }
        }
        // Files are written on every core; each goes to its own temp file and rename.
        let written: Vec<(String, Result<Meta, String>)> = {
            use rayon::prelude::*;
            let writer = self.file_writer();
            to_write
                .par_iter()
                .map(|(p, e, was)| {
                    // A save made since the decision is not replaced: the next scan records it.
                    let check = |t: &crate::beneath::Entry| unchanged_since(t, *was);
                    (p.clone(), writer.write_entry_checked(&folder, p, e, &crate::NoProgress, &check))
                })
                .collect()
        };
        for ((path, entry, _), (_, r)) in to_write.iter().zip(written) {
            match r {
                Ok(meta) => {
                    report.written += 1;
                    updates.push((path.clone(), Some(CacheRec { meta, entry: entry.encode()?, trusted: true })));
                }
                Err(why) => report.refused.push(why),
            }
        }
        for path in dir_deletes.iter().rev() {
            // Only empty folders go: anything left inside was not deleted everywhere.
            if folder.entry(path, false).and_then(|t| t.remove_dir()).is_ok() {
                report.deleted += 1;
                updates.push((path.clone(), None));
            }
        }
        for (path, entry) in clear_dirs {
            match self.clear_dir_for(&folder, &path, &entry) {
                Ok((meta, kept)) => {
                    report.written += 1;
                    report.conflicts.extend(kept);
                    updates.push((path, Some(CacheRec { meta, entry: entry.encode()?, trusted: true })));
                }
                Err(why) => report.refused.push(why),
            }
        }
        // Ended before the write: an open read keeps the pages a commit replaces from reuse.
        drop(cache);
        self.write_scan_cache(&updates)?;
        self.store.meta_set(NOT_WRITTEN, &crate::error::json("paths not written", &report.refused)?)?;
        // Until changes arrive, another pass would find nothing to do; remembered on disk, so
        // the next process need not walk the folder either (a million files: 5.7 s).
        let current = report.waiting.is_empty() && report.refused.is_empty();
        let marker = if current { self.folder_digest().to_vec() } else { Vec::new() };
        self.store.meta_set(crate::space::MATERIALIZED, &marker)?;
        self.folder_current = current;
        Ok((report, planned))
    }

    /// Move `t` aside under `name`, or under the first numbered name free both on disk and in
    /// the manifest: a local edit moved aside never replaces another copy (the same device can
    /// lose twice within a second). Returns the name used.
    fn move_aside(&self, folder: &Folder, t: &crate::beneath::Entry, name: &str) -> std::io::Result<String> {
        for n in 1..=MAX_COPY_NUMBER {
            let candidate = if n == 1 { name.to_owned() } else { cobox_core::settle::numbered(name, n) };
            let taken = self
                .manifest()
                .map_err(std::io::Error::other)?
                .get(&candidate)
                .map_err(std::io::Error::other)?
                .is_some_and(|e| e.is_live());
            if taken {
                continue;
            }
            match t.rename_noreplace(&folder.entry(&candidate, false)?) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!("every conflict-copy name for {name} up to {MAX_COPY_NUMBER} is taken")))
    }

    /// A folder is in the way of file or link `entry` at `path`: remove it if empty, else move
    /// it aside under a conflict name (what is left in it was not deleted everywhere: an edit
    /// not synced yet), then write the file or make the link. Returns what was made and the
    /// conflict name used, if any.
    fn clear_dir_for(&self, folder: &Folder, path: &str, entry: &Entry) -> Result<(Meta, Option<String>), String> {
        let t = folder.entry(path, false).map_err(|e| format!("{path}: {e}"))?;
        let mut kept = None;
        if t.remove_dir().is_err() {
            let mtime_ns = t.stat().ok().flatten().map_or(0, |m| Meta::of(&m).mtime_ns);
            let name = conflict_name(path, mtime_ns, &self.device_short());
            let name = self
                .move_aside(folder, &t, &name)
                .map_err(|e| format!("{path}: a folder is in the way and cannot be moved aside: {e}"))?;
            kept = Some(name);
        }
        let meta = match &entry.kind {
            Kind::File { .. } => {
                let absent = |t: &crate::beneath::Entry| unchanged_since(t, None);
                self.file_writer().write_entry_checked(folder, path, entry, &crate::NoProgress, &absent)?
            }
            Kind::Symlink { target: to } => folder
                .entry(path, true)
                .and_then(|t| {
                    t.symlink(to)?;
                    t.stat()?.map(|m| Meta::of(&m)).ok_or_else(|| std::io::ErrorKind::NotFound.into())
                })
                .map_err(|e| format!("{path}: {e}"))?,
            _ => return Err(format!("{path}: not a file or link")),
        };
        Ok((meta, kept))
    }

    /// What the last pass could not write into the folder, and why.
    pub fn not_written(&self) -> Result<Vec<String>, Error> {
        let Some(json) = self.store.meta_get(NOT_WRITTEN)? else { return Ok(Vec::new()) };
        serde_json::from_slice(&json)
            .map_err(|e| Error::Config { path: self.dir.join("index.redb"), reason: format!("{NOT_WRITTEN}: {e}") })
    }

    fn has_content(&self, content: &Content) -> Result<bool, Error> {
        match content {
            Content::Empty => Ok(true),
            Content::Single(id) => Ok(self.store.contains(id)?),
            Content::List { list, .. } => {
                if !self.store.contains(list)? {
                    return Ok(false);
                }
                for (id, _) in self.content_blobs(content)? {
                    if !self.store.contains(&id)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }
}

/// Store meta key: the paths the last pass could not write, and why (JSON).
const NOT_WRITTEN: &str = "not_written";

/// A file to write once its content is here: path, entry, the target's metadata when planned.
type Planned = (String, Entry, Option<Meta>);

/// The target is as it was when the materialiser decided (`None`: absent), so replacing or
/// removing it loses no save made meanwhile.
fn unchanged_since(t: &crate::beneath::Entry, was: Option<Meta>) -> Result<(), String> {
    let now = t.stat().map_err(|e| format!("{}: {e}", t.rel()))?.map(|m| Meta::of(&m));
    if now == was { Ok(()) } else { Err(format!("{}: changed while syncing; kept for the next scan", t.rel())) }
}

/// Files a sync session under way is still receiving blobs for: each is written while the
/// transfer goes on, instead of all of them after it. A small file is written when its last blob
/// is stored; a large one is written in order as its chunks arrive (senders send them in order),
/// so its last chunk leaves little to do and its chunks are mostly still in memory when read.
pub(crate) struct Streaming {
    files: Arc<StreamFiles>,
    /// Which files each missing blob completes (a file appears once per occurrence).
    needs: HashMap<BlobId, Vec<usize>>,
    /// Per file: written in order as its chunks arrive.
    large: Vec<bool>,
    /// Changes applied when it began.
    changes: usize,
}

/// Files with at least this many chunks are written as their chunks arrive.
const PROGRESSIVE_FROM: usize = 16;

/// At most this many files are open for writing in order at once (each holds an 8 MiB staging
/// buffer); the rest are written whole when their last chunk is stored.
const MAX_OPEN: usize = 8;

/// What the writer threads share.
pub(crate) struct StreamFiles {
    writer: FileWriter,
    folder: Folder,
    files: Vec<Planned>,
    parts: Vec<Mutex<Part>>,
    /// Per file, raised on each arrival, so a writer that finds the file busy can leave it to
    /// the thread writing it, which looks again before it lets go.
    kicks: Vec<AtomicUsize>,
    /// Blobs still missing per file.
    missing: Vec<AtomicU32>,
    open: AtomicUsize,
    written: Mutex<Vec<(usize, Meta)>>,
}

/// How far one file is written.
struct Part {
    chunks: Vec<(BlobId, u32)>,
    next: usize,
    /// Boxed: a space may plan a million small files, none of which ever opens one.
    out: Option<Box<PartialFile>>,
    /// Written, or given up on (left to the pass after the session, which reports it).
    over: bool,
}

impl StreamFiles {
    /// Write what has arrived of file `i` (on any thread).
    pub(crate) fn advance(&self, i: usize) {
        self.kicks[i].fetch_add(1, Ordering::SeqCst);
        loop {
            let Ok(mut part) = self.parts[i].try_lock() else { return };
            let seen = self.kicks[i].load(Ordering::SeqCst);
            if !part.over && self.step(i, &mut part).is_err() {
                part.over = true;
                if part.out.take().is_some() {
                    self.open.fetch_sub(1, Ordering::SeqCst);
                }
            }
            drop(part);
            if self.kicks[i].load(Ordering::SeqCst) == seen {
                return;
            }
        }
    }

    /// Write the chunks of file `i` that are here, in order; finish it after its last.
    fn step(&self, i: usize, part: &mut Part) -> Result<(), String> {
        let (path, entry, planned) = &self.files[i];
        let store = &self.writer.store;
        let here = |id: &BlobId| store.contains(id).unwrap_or(false);
        let complete = self.missing[i].load(Ordering::SeqCst) == 0;
        if part.out.is_none() {
            // Whole when complete; in order only once its first chunk is here and while few
            // files are open that way.
            let start = part.chunks.len() >= PROGRESSIVE_FROM
                && self.open.load(Ordering::SeqCst) < MAX_OPEN
                && part.chunks.first().is_some_and(|(id, _)| here(id));
            if !complete && !start {
                return Ok(());
            }
            part.out = Some(Box::new(self.writer.begin(&self.folder, path, entry)?));
            self.open.fetch_add(1, Ordering::SeqCst);
        }
        let Some(out) = part.out.as_mut() else { return Ok(()) };
        while let Some((id, _)) = part.chunks.get(part.next).filter(|(id, _)| complete || here(id)) {
            out.push(&self.writer.chunk(path, id)?)?;
            part.next += 1;
        }
        if part.next < part.chunks.len() {
            return Ok(());
        }
        let Some(out) = part.out.take() else { return Ok(()) };
        self.open.fetch_sub(1, Ordering::SeqCst);
        part.over = true;
        // A file edited since the plan is not replaced here: the final pass keeps the edit.
        let meta = (*out).finish(&|t| unchanged_since(t, *planned))?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).push((i, meta));
        Ok(())
    }
}

impl Streaming {
    /// A blob was stored: the files to hand to [`StreamFiles::advance`] (those it completes, and
    /// large ones it belongs to).
    pub(crate) fn arrived(&mut self, id: &BlobId) -> Vec<usize> {
        let Some(mut files) = self.needs.remove(id) else { return Vec::new() };
        // Occurrences of one file are adjacent (pushed in file order).
        files.retain(|&f| self.files.missing[f].fetch_sub(1, Ordering::SeqCst) == 1 || self.large[f]);
        files.dedup();
        files
    }

    /// The shared half, for writer threads.
    pub(crate) fn files(&self) -> Arc<StreamFiles> {
        self.files.clone()
    }
}

impl Space {
    /// Begin writing files during a session, once its manifest changes and chunk lists have
    /// arrived (senders send those first): apply the changes, materialise what is complete
    /// (deletes, folders, conflicts, files whose content is here) and plan the files still
    /// waiting for chunks.
    pub(crate) fn begin_streaming(&mut self) -> Result<Streaming, Error> {
        let changes = self.apply_received()?;
        self.load_ignores()?;
        let (_, waiting) = self.materialize_and_plan()?;
        let writer = self.file_writer();
        let (mut files, mut parts, mut large, mut missing, mut needs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), HashMap::<BlobId, Vec<usize>>::new());
        for (path, entry, planned) in waiting {
            let Kind::File { content, .. } = &entry.kind else { continue };
            // No chunk list yet (a sender that did not send it first): left to the final pass.
            let Ok(blobs) = writer.content_blobs(content) else { continue };
            let i = files.len();
            let mut n = 0;
            for (id, _) in &blobs {
                if !self.store.contains(id)? {
                    needs.entry(*id).or_default().push(i);
                    n += 1;
                }
            }
            if n > 0 {
                files.push((path, entry, planned));
                large.push(blobs.len() >= PROGRESSIVE_FROM);
                parts.push(Mutex::new(Part { chunks: blobs, next: 0, out: None, over: false }));
                missing.push(AtomicU32::new(n));
            }
        }
        let root = &self.info.path;
        let folder = Folder::open(root).at(root)?;
        let kicks = parts.iter().map(|_| AtomicUsize::new(0)).collect();
        let files = Arc::new(StreamFiles {
            writer,
            folder,
            files,
            parts,
            kicks,
            missing,
            open: AtomicUsize::new(0),
            written: Mutex::new(Vec::new()),
        });
        Ok(Streaming { files, needs, large, changes })
    }

    /// Record what was written during the session, so the pass after it sees those files as
    /// up to date. Returns the changes applied when it began.
    pub(crate) fn end_streaming(&mut self, s: Streaming) -> Result<usize, Error> {
        let written = std::mem::take(&mut *s.files.written.lock().unwrap_or_else(|p| p.into_inner()));
        let rows: Vec<crate::space::scan::CacheRow> = written
            .into_iter()
            .map(|(i, meta)| {
                let (path, entry, _) = &s.files.files[i];
                Ok((path.clone(), Some(CacheRec { meta, entry: entry.encode()?, trusted: true })))
            })
            .collect::<Result<_, Error>>()?;
        // The rows say "this device holds these files' blobs": the blobs go to disk first. A
        // kill between a row and its pack (still in the writer's buffer) left verify calling
        // the blobs missing (a CI run of the kill -9 sync test caught it).
        self.store.flush()?;
        self.write_scan_cache(&rows)?;
        Ok(s.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Home;
    use crate::crypto::BlobKind;
    use std::os::unix::fs::PermissionsExt;

    fn space() -> (tempfile::TempDir, tempfile::TempDir, Space) {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let s = h.open_space("s").unwrap();
        (home, folder, s)
    }

    /// A second device joined to `a` (the space "s" of the home at `home_a`), both rosters
    /// merged as their first session would: its home, folder and space.
    fn joined(home_a: &std::path::Path, a: &mut Space) -> (tempfile::TempDir, tempfile::TempDir, Space) {
        let invite = Home::invite(home_a, "s", &crate::home::InviteRequest::writer()).unwrap();
        let (home_b, folder_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let hb = Home::open(home_b.path()).unwrap();
        hb.join(&invite, folder_b.path(), None).unwrap();
        // A countersigns b's redemption, as a session does, and b hears of it.
        Home::join_beside(home_a, home_b.path(), &invite.space).unwrap();
        let mut b = hb.open_space("s").unwrap();
        for s in [&mut *a, &mut b] {
            s.roster = s.ledger().roster().unwrap();
        }
        assert_eq!(a.roster.role(&b.device.0), Some(cobox_core::roster::Role::Write));
        (home_b, folder_b, b)
    }

    #[test]
    fn unsafe_manifest_paths_are_refused() {
        let (_h, folder, mut s) = space();
        let e =
            Entry { kind: Kind::File { size: 0, content: Content::Empty }, mtime_ns: 0, mode: 0o644, device: [1; 8] };
        for bad in ["../evil.txt", "/etc/evil", "a/../../evil"] {
            s.manifest_mut().unwrap().set(bad, &e).unwrap();
        }
        // A folder link pointing outside, then a file "through" it.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), folder.path().join("link")).unwrap();
        s.manifest_mut().unwrap().set("link/inside.txt", &e).unwrap();
        let device = s.device;
        s.manifest_mut().unwrap().commit(Snapshot {
            time_ms: 1,
            device,
            added: 4,
            changed: 0,
            deleted: 0,
            renamed: 0,
            heads: vec![],
        });
        let r = s.materialize().unwrap();
        assert_eq!(r.refused.len(), 4, "{:?}", r.refused);
        assert!(!folder.path().parent().unwrap().join("evil.txt").exists());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written through the link");
    }

    /// The manifest makes a link `x` to a folder outside, then names entries below it: a
    /// delete, a file whose unscanned "edit" would be kept aside, a deleted folder. Nothing
    /// outside is renamed, unlinked or removed, and the modes written are masked.
    #[test]
    fn a_link_the_manifest_makes_leads_nothing_outside() {
        let (_h, folder, mut s) = space();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), b"theirs").unwrap();
        std::fs::create_dir(outside.path().join("empty")).unwrap();
        std::os::unix::fs::symlink("f", outside.path().join("l")).unwrap();
        let with = |kind, mode| Entry { kind, mtime_ns: 0, mode, device: [1; 8] };
        let link = Kind::Symlink { target: outside.path().to_str().unwrap().to_owned() };
        s.manifest_mut().unwrap().set("x", &with(link, 0o777)).unwrap();
        s.manifest_mut().unwrap().set("x/f", &with(Kind::File { size: 0, content: Content::Empty }, 0o644)).unwrap();
        s.manifest_mut().unwrap().set("x/empty", &with(Kind::Deleted, 0)).unwrap();
        s.manifest_mut().unwrap().set("x/l", &with(Kind::Deleted, 0)).unwrap();
        s.manifest_mut()
            .unwrap()
            .set("setuid", &with(Kind::File { size: 0, content: Content::Empty }, 0o6777))
            .unwrap();
        s.manifest_mut().unwrap().set("open", &with(Kind::Dir, 0o1777)).unwrap();
        let snap =
            Snapshot { time_ms: 1, device: s.device, added: 6, changed: 0, deleted: 0, renamed: 0, heads: vec![] };
        s.manifest_mut().unwrap().commit(snap);
        let r = s.materialize().unwrap();
        assert!(folder.path().join("x").is_symlink(), "the link itself is made: {r:?}");
        let names: std::collections::BTreeSet<_> =
            std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "nothing renamed, added or removed outside: {names:?}");
        assert_eq!(std::fs::read(outside.path().join("f")).unwrap(), b"theirs");
        assert!(outside.path().join("empty").is_dir() && outside.path().join("l").is_symlink());
        assert!(r.refused.iter().any(|why| why.contains("x/f")), "{r:?}");
        let mode = |p: &str| std::fs::symlink_metadata(folder.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("setuid"), 0o775, "no setuid, setgid or world-write");
        assert_eq!(mode("open"), 0o775, "no sticky bit or world-write");
    }

    /// A pass that left nothing to do is remembered across processes, one that refused
    /// something is not: the next process walks the folder again and retries.
    #[test]
    fn a_clean_pass_is_remembered_and_a_refusing_one_retried() {
        let (home, folder, mut s) = space();
        let e =
            Entry { kind: Kind::File { size: 0, content: Content::Empty }, mtime_ns: 0, mode: 0o644, device: [1; 8] };
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), folder.path().join("link")).unwrap();
        s.manifest_mut().unwrap().set("link/inside.txt", &e).unwrap();
        let snap =
            Snapshot { time_ms: 1, device: s.device, added: 1, changed: 0, deleted: 0, renamed: 0, heads: vec![] };
        let (body, _) = s.manifest_mut().unwrap().commit(snap).unwrap();
        s.persist_change(body).unwrap();
        assert_eq!(s.materialize().unwrap().refused.len(), 1);
        let reopen = |s: Space| {
            drop(s);
            crate::Home::open(home.path()).unwrap().open_space("s").unwrap()
        };

        let mut s = reopen(s);
        assert!(!s.folder_current, "the last pass refused a path");
        assert_eq!(s.apply_and_materialize().unwrap().1.refused.len(), 1, "so this one runs");

        std::fs::remove_file(folder.path().join("link")).unwrap();
        let mut s = reopen(s);
        let r = s.apply_and_materialize().unwrap().1;
        assert!(r.written >= 1 && r.refused.is_empty(), "{r:?}");
        assert!(folder.path().join("link/inside.txt").is_file());

        let mut s = reopen(s);
        assert!(s.folder_current, "a clean pass over the same changes is remembered");
        assert_eq!(s.apply_and_materialize().unwrap().1.written, 0);
    }

    /// `ids` from `a` into `b` as a session receives them: changes and chunk lists first,
    /// applied when the first chunk comes, then files written as their chunks arrive.
    fn stream(a: &Space, b: &mut Space, ids: &[BlobId]) -> Option<Streaming> {
        let mut streaming = None;
        for id in ids {
            let data = a.store.get(id).unwrap();
            b.receive_blob(id, &data).unwrap();
            if streaming.is_none() && b.keys.peek_kind(&data) == Ok(BlobKind::Chunk) {
                streaming = Some(b.begin_streaming().unwrap());
            }
            if let Some(st) = streaming.as_mut() {
                for f in st.arrived(id) {
                    st.files().advance(f);
                }
            }
        }
        streaming
    }

    /// The end of a streamed sync records the files it wrote in the scan cache ("this device
    /// holds their blobs") only once their blobs are on disk. Its packs failing to write (a
    /// disk full for packs, the index still writable) leaves no row naming a blob that is not
    /// there: verify passes after it. Recording the rows first failed this (and a CI kill test).
    #[test]
    fn a_streamed_sync_records_its_files_only_after_their_blobs_are_on_disk() {
        use crate::store::Faults;
        let (home_a, folder_a, mut a) = space();
        let mut big = vec![0u8; 3 << 20];
        crate::random_bytes(&mut big);
        std::fs::write(folder_a.path().join("big.bin"), &big).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (home_b, folder_b, b) = joined(home_a.path(), &mut a);
        drop(b);
        let faults = Faults::never();
        let mut b = Home::open(home_b.path()).unwrap().open_space_with_faults("s", faults.clone()).unwrap();
        let mut ids: Vec<BlobId> = a.store.list().unwrap().into_iter().map(|(id, _)| id).collect();
        a.store.send_order(&mut ids).unwrap();
        let streaming = stream(&a, &mut b, &ids);
        assert_eq!(std::fs::read(folder_b.path().join("big.bin")).unwrap(), big, "written as it arrived");
        // The blobs are still in the pack writer's buffer; the packs directory is now full.
        faults.fail_packs();
        assert!(b.end_streaming(streaming.unwrap()).is_err(), "the failed pack is reported");
        drop(b);
        let b = Home::open(home_b.path()).unwrap().open_space("s").unwrap();
        let v = b.verify(&crate::NoProgress).unwrap();
        assert!(v.ok(), "a scan-cache row names a blob not on disk: {v:?}");
    }

    /// A large file is written in order while its chunks arrive; a transfer cut before its
    /// last chunk leaves no temp file behind, and the pass after the rest arrives writes it.
    #[test]
    fn a_large_file_is_written_as_its_chunks_arrive() {
        let (home_a, folder_a, mut a) = space();
        let mut big = vec![0u8; 40 << 20];
        crate::random_bytes(&mut big);
        std::fs::write(folder_a.path().join("big.bin"), &big).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        b.scan(&crate::NoProgress).unwrap();

        let mut ids: Vec<BlobId> = a.store.list().unwrap().into_iter().map(|(id, _)| id).collect();
        a.store.send_order(&mut ids).unwrap();
        let (last, first) = ids.split_last().unwrap();
        // Files under way: temp names in the folder, or unnamed files (O_TMPFILE) open in the
        // folder, which show in /proc as "FOLDER/#INODE (deleted)".
        let temps = || -> Vec<std::path::PathBuf> {
            let named = std::fs::read_dir(folder_b.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(crate::util::TMP_PREFIX))
                .map(|e| e.path());
            let dir = folder_b.path().canonicalize().unwrap();
            let unnamed = std::fs::read_dir("/proc/self/fd").unwrap().flatten().map(|e| e.path()).filter(|fd| {
                std::fs::read_link(fd)
                    .is_ok_and(|t| t.parent() == Some(dir.as_path()) && t.to_string_lossy().ends_with(" (deleted)"))
            });
            named.chain(unnamed).collect()
        };
        let streaming = stream(&a, &mut b, first);
        let tmp = temps();
        assert_eq!(tmp.len(), 1, "one file under way: {tmp:?}");
        let partial = std::fs::read(&tmp[0]).unwrap();
        // Staged writes go out in 8 MiB blocks, so the file trails what was decrypted.
        assert!(partial.len() >= 16 << 20, "written as the chunks came: {} bytes", partial.len());
        assert_eq!(partial[..], big[..partial.len()], "in order");
        assert!(!folder_b.path().join("big.bin").exists(), "not in place before its last chunk");

        // The session ends here (a cut connection): nothing half-written stays.
        b.end_streaming(streaming.unwrap()).unwrap();
        assert!(temps().is_empty(), "the temp file is removed");
        b.receive_blob(last, &a.store.get(last).unwrap()).unwrap();
        b.apply_and_materialize().unwrap();
        assert!(std::fs::read(folder_b.path().join("big.bin")).unwrap() == big, "written whole after the rest came");
    }

    /// Every blob `from` holds that `to` lacks, received as a session would.
    fn send(from: &Space, to: &Space) {
        for (id, _) in from.store.list().unwrap() {
            if !to.store.contains(&id).unwrap() {
                to.receive_blob(&id, &from.store.get(&id).unwrap()).unwrap();
            }
        }
    }

    /// `rounds` times: both devices scan, then each takes what the other holds, as sessions would.
    fn settle_pair(a: &mut Space, b: &mut Space, rounds: usize) {
        for _ in 0..rounds {
            a.scan(&crate::NoProgress).unwrap();
            b.scan(&crate::NoProgress).unwrap();
            send(a, b);
            b.apply_and_materialize().unwrap();
            send(b, a);
            a.apply_and_materialize().unwrap();
        }
    }

    fn names_in(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// Only writers' notes of heads count, and none dated past the clock skew: a note by a
    /// device that is not a writer, or from the far future, naming heads no one has, flags
    /// nothing stale. Before: a reader's note made every restore warn about a stale seeder.
    #[test]
    fn only_writers_heads_notes_within_the_skew_count() {
        let (home_a, folder_a, mut a) = space();
        std::fs::write(folder_a.path().join("f.txt"), "x").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, _folder_b, mut b) = joined(home_a.path(), &mut a);
        let (space_id, shards) = (a.info.id.0, a.info.shards as usize);
        let note = |key: &ed25519_dalek::SigningKey, t: i64| {
            cobox_core::heads::HeadsNote {
                space: space_id,
                device: key.verifying_key().to_bytes(),
                time_ms: t,
                heads: vec![vec![[7; 32]]; shards],
            }
            .sign(key)
            .unwrap()
        };
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        a.ledger().add_signed(&note(&stranger, crate::now_ms())).unwrap();
        a.ledger().add_signed(&note(&b.device_key, crate::now_ms() + 10 * 365 * 86_400_000)).unwrap();
        a.stale_checked = None;
        assert_eq!(a.stale().unwrap(), None);
        // A writer's note within the skew does count.
        a.ledger().add_signed(&note(&b.device_key, crate::now_ms())).unwrap();
        a.stale_checked = None;
        assert!(a.stale().unwrap().is_some_and(|s| s.device == b.device));
        b.scan(&crate::NoProgress).unwrap();
    }

    /// Two devices add files whose names differ only in Unicode normalisation (NFC on one,
    /// NFD on the other): one name is kept, the other file becomes a conflict copy of it, and
    /// both folders end identical. Before: two identical-looking files on every device.
    #[test]
    fn names_that_normalise_alike_become_one_name_and_a_conflict_copy() {
        let (home_a, folder_a, mut a) = space();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
        std::fs::write(folder_a.path().join(nfc), "written on a").unwrap();
        std::fs::write(folder_b.path().join(nfd), "written on b").unwrap();
        settle_pair(&mut a, &mut b, 3);
        let (ta, tb) = (tree(folder_a.path()), tree(folder_b.path()));
        assert_eq!(ta, tb);
        assert_eq!(ta.get(nfc).map(String::as_str), Some("written on a"), "{ta:?}");
        assert!(!ta.contains_key(nfd), "{ta:?}");
        let copy: Vec<_> = ta.iter().filter(|(p, _)| conflict_original(p).as_deref() == Some(nfc)).collect();
        assert_eq!(copy.len(), 1, "{ta:?}");
        assert_eq!(copy[0].1, "written on b");
    }

    /// One device's change to the path `x` in a round of [`kind_changes_converge_and_lose_no_edit`].
    #[derive(Debug, Clone, Copy)]
    enum KindOp {
        Nothing,
        Remove,
        File,
        Dir,
        Link,
        /// Edit the file inside, when `x` is a folder.
        Inside,
    }

    fn kind_op() -> impl proptest::strategy::Strategy<Value = KindOp> {
        use proptest::prelude::*;
        prop_oneof![
            Just(KindOp::Nothing),
            Just(KindOp::Remove),
            Just(KindOp::File),
            Just(KindOp::Dir),
            Just(KindOp::Link),
            Just(KindOp::Inside)
        ]
    }

    /// Do `op` to `x` in `dir`; returns the text it wrote, if any (an edit that must survive).
    fn do_kind_op(dir: &std::path::Path, op: KindOp, marker: &str) -> Option<String> {
        let x = dir.join("x");
        let clear = || match std::fs::symlink_metadata(&x) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&x).unwrap(),
            Ok(_) => std::fs::remove_file(&x).unwrap(),
            Err(_) => {}
        };
        match op {
            KindOp::Nothing => None,
            KindOp::Remove => {
                clear();
                None
            }
            KindOp::File => {
                clear();
                std::fs::write(&x, marker).unwrap();
                Some(marker.to_owned())
            }
            KindOp::Dir => {
                clear();
                std::fs::create_dir(&x).unwrap();
                std::fs::write(x.join("c"), marker).unwrap();
                Some(marker.to_owned())
            }
            KindOp::Link => {
                clear();
                std::os::unix::fs::symlink(marker.replace(' ', "-"), &x).unwrap();
                None
            }
            KindOp::Inside if std::fs::symlink_metadata(&x).is_ok_and(|m| m.is_dir()) => {
                std::fs::write(x.join("c"), marker).unwrap();
                Some(marker.to_owned())
            }
            KindOp::Inside => None,
        }
    }

    /// path -> what is there: "dir", "link:TARGET" or the file's text.
    fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
        fn walk(root: &std::path::Path, at: &std::path::Path, out: &mut std::collections::BTreeMap<String, String>) {
            for e in std::fs::read_dir(at).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.file_type().is_symlink() {
                    out.insert(rel, format!("link:{}", std::fs::read_link(&p).unwrap().display()));
                } else if m.is_dir() {
                    out.insert(rel, "dir".into());
                    walk(root, &p, out);
                } else {
                    out.insert(rel, std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let mut out = std::collections::BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// Rounds of kind changes (file, folder, link, removal) to one path on two devices,
        /// each round made apart and then synced: both folders end identical, and every file
        /// either device wrote in the round (at the path or inside it) is still in them, at
        /// the path or in a conflict copy.
        #[test]
        fn kind_changes_converge_and_lose_no_edit(
            rounds in proptest::collection::vec((kind_op(), kind_op()), 1..5),
        ) {
            let (home_a, folder_a, mut a) = space();
            let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
            for (r, (op_a, op_b)) in rounds.iter().enumerate() {
                let wrote: Vec<String> = [
                    do_kind_op(folder_a.path(), *op_a, &format!("round {r} on a")),
                    do_kind_op(folder_b.path(), *op_b, &format!("round {r} on b")),
                ]
                .into_iter()
                .flatten()
                .collect();
                settle_pair(&mut a, &mut b, 4);
                let (ta, tb) = (tree(folder_a.path()), tree(folder_b.path()));
                proptest::prop_assert_eq!(&ta, &tb, "round {} ({:?}, {:?}): the folders differ", r, op_a, op_b);
                for text in &wrote {
                    proptest::prop_assert!(
                        ta.values().any(|v| v == text),
                        "round {} ({:?}, {:?}): {:?} was lost: {:?}", r, op_a, op_b, text, ta
                    );
                }
            }
        }
    }

    /// A save, a delete and a rename made since the last scan, on paths no incoming change
    /// touched, stand through a pass that applies another device's change; the next scan
    /// records them. Before: the save went into a conflict copy named after this device and
    /// the file went back to the version it replaced, the delete and the rename were undone.
    #[test]
    fn local_changes_made_during_a_sync_stand() {
        let (home_a, folder_a, mut a) = space();
        let pa = folder_a.path();
        for (n, text) in [("f.txt", "first"), ("g.txt", "g"), ("d.txt", "delete me"), ("r.txt", "rename me")] {
            std::fs::write(pa.join(n), text).unwrap();
        }
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        send(&a, &b);
        b.apply_and_materialize().unwrap();
        std::fs::write(folder_b.path().join("g.txt"), "g, edited on b").unwrap();
        b.scan(&crate::NoProgress).unwrap();

        // Not scanned yet on a: the sync runs meanwhile.
        std::fs::write(pa.join("f.txt"), "second save, on a").unwrap();
        std::fs::remove_file(pa.join("d.txt")).unwrap();
        std::fs::rename(pa.join("r.txt"), pa.join("r2.txt")).unwrap();
        send(&b, &a);
        let (n, r) = a.apply_and_materialize().unwrap();
        assert!(n > 0, "b's change applied");
        assert!(r.conflicts.is_empty(), "no conflict copy: {r:?}");
        assert_eq!(names_in(pa), ["f.txt", "g.txt", "r2.txt"]);
        assert_eq!(std::fs::read_to_string(pa.join("f.txt")).unwrap(), "second save, on a", "the save stands");
        assert_eq!(std::fs::read_to_string(pa.join("g.txt")).unwrap(), "g, edited on b");

        let scan = a.scan(&crate::NoProgress).unwrap();
        assert_eq!((scan.changed, scan.deleted, scan.renamed), (1, 2, 1), "{scan:?}");
        send(&a, &b);
        let r = b.apply_and_materialize().unwrap().1;
        assert!(r.conflicts.is_empty(), "{r:?}");
        assert_eq!(names_in(folder_b.path()), ["f.txt", "g.txt", "r2.txt"]);
        assert_eq!(std::fs::read_to_string(folder_b.path().join("f.txt")).unwrap(), "second save, on a");
    }

    /// A file already holding the incoming version (written by another session of this
    /// device, whose scan-cache row is not there yet) is recorded, not kept aside as a
    /// conflict copy; one holding other content still is.
    #[test]
    fn a_file_that_already_holds_the_incoming_version_is_no_conflict() {
        let (home_a, folder_a, mut a) = space();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        let mut big = vec![0u8; 3 << 20];
        crate::random_bytes(&mut big);
        std::fs::write(folder_a.path().join("same.bin"), &big).unwrap();
        std::fs::write(folder_a.path().join("other.txt"), "a's").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        std::fs::write(folder_b.path().join("same.bin"), &big).unwrap();
        std::fs::write(folder_b.path().join("other.txt"), "b's own").unwrap();
        send(&a, &b);
        let r = b.apply_and_materialize().unwrap().1;
        assert_eq!(r.conflicts.len(), 1, "only the file with other content: {r:?}");
        assert!(r.conflicts[0].starts_with("other.sync-conflict-"), "{r:?}");
        assert_eq!(std::fs::read(folder_b.path().join("same.bin")).unwrap(), big);
        let scan = b.scan(&crate::NoProgress).unwrap();
        assert_eq!((scan.added, scan.changed), (1, 0), "only the conflict copy is new: {scan:?}");
    }

    /// A change whose content has not arrived waits; a scan meanwhile does not record the
    /// file's older version over it (which would undo the other device's edit everywhere).
    #[test]
    fn a_scan_does_not_undo_a_change_still_waiting_for_its_content() {
        let (home_a, folder_a, mut a) = space();
        std::fs::write(folder_a.path().join("f.txt"), "first version").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        send(&a, &b);
        b.apply_and_materialize().unwrap();
        std::fs::write(folder_a.path().join("f.txt"), "second version, on a").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        // Only the change arrives (a session cut before the content).
        for (id, loc) in a.store.list().unwrap() {
            if loc.kind == BlobKind::Change && !b.store.contains(&id).unwrap() {
                b.receive_blob(&id, &a.store.get(&id).unwrap()).unwrap();
            }
        }
        let r = b.apply_and_materialize().unwrap().1;
        assert_eq!(r.waiting, ["f.txt"], "{r:?}");
        let scan = b.scan(&crate::NoProgress).unwrap();
        assert!(scan.snapshot.is_none(), "the old version was recorded again: {scan:?}");
        send(&a, &b);
        b.apply_and_materialize().unwrap();
        assert_eq!(std::fs::read_to_string(folder_b.path().join("f.txt")).unwrap(), "second version, on a");
    }

    /// Blobs are listed by id, not in causal order: a change listed before the one it follows
    /// is held back, then taken with it. Before, it never counted as applied, so a folder left
    /// current before it came passed for current still and its files were never written (a CI
    /// run of the kill -9 sync test caught it: a receiver killed before applying).
    #[test]
    fn a_change_listed_before_the_one_it_follows_is_written_after_a_reopen() {
        let changes = |s: &Space| -> Vec<BlobId> {
            let list = s.store.list().unwrap();
            list.into_iter().filter(|(_, l)| l.kind == BlobKind::Change).map(|(id, _)| id).collect()
        };
        // Until the second change's id sorts before the first's (one try in two).
        for _ in 0..40 {
            let (home_a, folder_a, mut a) = space();
            std::fs::write(folder_a.path().join("f.txt"), "first version").unwrap();
            a.scan(&crate::NoProgress).unwrap();
            let first = changes(&a);
            let (home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
            send(&a, &b);
            b.apply_and_materialize().unwrap();
            assert!(b.folder_current);
            std::fs::write(folder_a.path().join("f.txt"), "second version").unwrap();
            a.scan(&crate::NoProgress).unwrap();
            let second: Vec<BlobId> = changes(&a).into_iter().filter(|id| !first.contains(id)).collect();
            if second.iter().any(|id| first.iter().all(|f| id > f)) {
                continue;
            }
            // Stored, then the receiver is killed before it applies them.
            send(&a, &b);
            b.store.flush().unwrap();
            drop(b);
            let mut b = Home::open(home_b.path()).unwrap().open_space("s").unwrap();
            assert!(!b.folder_current, "a change came since the last pass");
            b.apply_and_materialize().unwrap();
            assert_eq!(std::fs::read_to_string(folder_b.path().join("f.txt")).unwrap(), "second version");
            return;
        }
        panic!("no second change sorted before the first in 40 tries");
    }

    /// Two sessions on one space at once (a daemon's own sync and one asked for): the second
    /// begins while the first has written files whose scan-cache rows it records only at its
    /// end. Before: the second took each of those files for a local edit and kept it aside as
    /// a conflict copy identical to the original, which the next scan shared with everyone.
    #[test]
    fn a_second_session_does_not_take_the_firsts_writes_for_edits() {
        let (home_a, folder_a, mut a) = space();
        for i in 0..40 {
            std::fs::write(folder_a.path().join(format!("f{i:02}.txt")), format!("file {i}\n")).unwrap();
        }
        let mut big = vec![0u8; 24 << 20];
        crate::random_bytes(&mut big);
        std::fs::write(folder_a.path().join("zz-big.bin"), &big).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        let mut ids: Vec<BlobId> = a.store.list().unwrap().into_iter().map(|(id, _)| id).collect();
        a.store.send_order(&mut ids).unwrap();
        let (last, first) = ids.split_last().unwrap();
        let one = stream(&a, &mut b, first).unwrap();
        assert!(folder_b.path().join("f00.txt").is_file(), "the first session wrote the small files");
        let two = b.begin_streaming().unwrap();
        b.receive_blob(last, &a.store.get(last).unwrap()).unwrap();
        b.end_streaming(one).unwrap();
        b.end_streaming(two).unwrap();
        let r = b.apply_and_materialize().unwrap().1;
        let copies: Vec<String> =
            names_in(folder_b.path()).into_iter().filter(|n| n.contains("sync-conflict")).collect();
        assert!(copies.is_empty() && r.conflicts.is_empty(), "phantom conflict copies: {copies:?} {r:?}");
        assert_eq!(std::fs::read(folder_b.path().join("zz-big.bin")).unwrap(), big);
        let scan = b.scan(&crate::NoProgress).unwrap();
        assert!(scan.snapshot.is_none(), "b records nothing it did not make: {scan:?}");
    }

    /// Changes sealed under a key epoch drawn at a removal apply when the space is opened
    /// again (by a restarted daemon): before, they were set aside, the files they wrote came
    /// back as pending additions and history said they were never there.
    #[test]
    fn changes_sealed_after_a_removal_apply_when_the_space_opens_again() {
        let (home_a, folder_a, mut a) = space();
        std::fs::write(folder_a.path().join("before.txt"), "before").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, _folder_b, b) = joined(home_a.path(), &mut a);
        let b_id = b.device.to_string();
        crate::members::remove(home_a.path(), "s", &b_id[..16]).unwrap();
        std::fs::write(folder_a.path().join("after.txt"), "after the removal").unwrap();
        std::fs::write(folder_a.path().join("before.txt"), "edited after").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        assert_ne!(a.roster.current_epoch, 0, "the removal drew a new key epoch");
        drop(a);
        let a = Home::open(home_a.path()).unwrap().open_space("s").unwrap();
        assert!(a.quarantined().is_empty(), "{:?}", a.quarantined());
        let m = a.manifest().unwrap();
        assert!(m.get("after.txt").unwrap().is_some_and(|e| e.is_live()), "written after the removal");
        let st = a.status().unwrap();
        assert_eq!((st.pending.added, st.pending.changed), (0, 0), "{:?}", st.pending);
        assert!(a.history(Some("after.txt")).unwrap().len() == 1);
    }

    /// A removal draws a new key epoch and with it new chunker keys: the same file added again
    /// is cut at other boundaries, so a removed device cannot tell which file a new upload is
    /// from its chunks' sizes.
    #[test]
    fn after_a_removal_the_same_file_is_cut_at_other_boundaries() {
        fn ends(s: &Space, path: &str) -> Vec<u64> {
            let e = s.manifest().unwrap().get(path).unwrap().unwrap();
            let Kind::File { content, .. } = e.kind else { panic!("{path}: {e:?}") };
            let sizes = s.content_blobs(&content).unwrap();
            sizes
                .iter()
                .scan(0, |end, (_, n)| {
                    *end += u64::from(*n);
                    Some(*end)
                })
                .collect()
        }
        let (home_a, folder_a, mut a) = space();
        let mut data = vec![0u8; 12 << 20];
        blake3::Hasher::new().update(b"cut twice").finalize_xof().fill(&mut data);
        std::fs::write(folder_a.path().join("before.bin"), &data).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let before = ends(&a, "before.bin");
        let (_home_b, _folder_b, b) = joined(home_a.path(), &mut a);
        crate::members::remove(home_a.path(), "s", &b.device.to_string()[..16]).unwrap();
        std::fs::write(folder_a.path().join("after.bin"), &data).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        assert_ne!(a.roster.current_epoch, 0, "the removal drew a new key epoch");
        let after = ends(&a, "after.bin");
        assert!(before.len() >= 8 && after.len() >= 8, "{before:?} {after:?}");
        assert_eq!((before.last(), after.last()), (Some(&(12 << 20)), Some(&(12 << 20))));
        let shared = before.iter().filter(|e| after.contains(e)).count();
        assert_eq!(shared, 1, "only the file's end in common: {before:?} {after:?}");
    }

    /// A removed writer's later changes do not reach an informed member, even relayed by a
    /// member that has not heard of the removal; what it wrote before still does. Before, a
    /// relayed change of a device that could once write was always taken as its history.
    #[test]
    fn a_removed_writers_later_changes_are_refused_even_relayed() {
        let (home_a, folder_a, mut a) = space();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        let (_home_c, folder_c, mut c) = joined(home_a.path(), &mut a);
        std::fs::write(folder_b.path().join("before.txt"), "written while a member").unwrap();
        b.scan(&crate::NoProgress).unwrap();
        send(&b, &a);
        a.apply_and_materialize().unwrap();
        send(&b, &c);
        c.apply_and_materialize().unwrap();
        crate::members::remove(home_a.path(), "s", &b.device.to_string()[..16]).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let kept = a.roster.kept_changes.get(&b.device.0).expect("the remover named b's changes");
        assert_eq!(kept.len(), 1, "{kept:?}");
        // B does not know; C has not heard of the removal and takes B's new change.
        std::fs::write(folder_b.path().join("after.txt"), "written after the removal").unwrap();
        std::fs::write(folder_b.path().join("only-b.txt"), "B's alone").unwrap();
        b.scan(&crate::NoProgress).unwrap();
        c.roster_from = Some(b.device.0);
        send(&b, &c);
        c.apply_and_materialize().unwrap();
        assert!(folder_c.path().join("after.txt").exists(), "the uninformed member took it");
        // C passes everything it holds on to A, which knows of the removal.
        a.roster_from = Some(c.device.0);
        send(&c, &a);
        a.apply_and_materialize().unwrap();
        assert!(!folder_a.path().join("after.txt").exists(), "the removed writer's later edit is refused");
        assert_eq!(std::fs::read_to_string(folder_a.path().join("before.txt")).unwrap(), "written while a member");
        assert_eq!(a.status().unwrap().waiting_changes, 0);
        // C's own later edit of that path follows the refused change, so A holds it back,
        // and says so.
        std::fs::write(folder_c.path().join("after.txt"), "C edits it").unwrap();
        c.scan(&crate::NoProgress).unwrap();
        send(&c, &a);
        a.apply_and_materialize().unwrap();
        assert!(!folder_a.path().join("after.txt").exists());
        assert!(a.status().unwrap().waiting_changes > 0, "the held-back edit is reported");
        // Compacted and opened again, A still holds that edit back and says so. Before, the
        // blob counted as applied, a saved manifest dropped what Automerge held back, and the
        // edit was gone from A for good.
        assert!(a.release_manifest().unwrap());
        drop(a);
        let mut a = Home::open(home_a.path()).unwrap().open_space("s").unwrap();
        assert!(a.status().unwrap().waiting_changes > 0, "offered again after a reopen");
        // C hears of the removal: it drops B's later change and puts its own edit again, on a
        // past every informed device holds. What B wrote that C's folder showed and C did not
        // edit stays as a conflict copy; nothing is deleted from C's folder.
        c.ledger().merge_from(&mut a.ledger().read().unwrap()).unwrap();
        let view = c.ledger().roster().unwrap();
        c.set_roster(view, Some(a.device.0));
        c.apply_and_materialize().unwrap();
        assert_eq!(std::fs::read_to_string(folder_c.path().join("after.txt")).unwrap(), "C edits it");
        assert!(!folder_c.path().join("only-b.txt").exists(), "B's later file leaves its name");
        let copies: Vec<String> =
            names_in(folder_c.path()).into_iter().filter(|n| n.starts_with("only-b.sync-conflict-")).collect();
        assert_eq!(copies.len(), 1, "{:?}", names_in(folder_c.path()));
        assert_eq!(std::fs::read_to_string(folder_c.path().join(&copies[0])).unwrap(), "B's alone");
        // (A file written within the clock's granularity is read again, and cut under the new
        // epoch's chunker key may count as changed: only additions and deletions would be wrong.)
        let c_scan = c.scan(&crate::NoProgress).unwrap();
        assert_eq!((c_scan.added, c_scan.deleted), (0, 0), "the folder is as the manifest says: {c_scan:?}");
        // A takes C's edit now, and C no longer passes on B's refused change.
        a.roster_from = Some(c.device.0);
        send(&c, &a);
        a.apply_and_materialize().unwrap();
        assert_eq!(std::fs::read_to_string(folder_a.path().join("after.txt")).unwrap(), "C edits it");
        assert!(!folder_a.path().join("only-b.txt").exists());
        let (_, mut c) = (drop(c), Home::open(_home_c.path()).unwrap().open_space("s").unwrap());
        c.scan(&crate::NoProgress).unwrap();
        assert_eq!(std::fs::read_to_string(folder_c.path().join("after.txt")).unwrap(), "C edits it", "after a reopen");
        assert!(!folder_c.path().join("only-b.txt").exists(), "nothing dropped comes back");
    }

    /// A removed manager's agreements that its remover held stand (the co-op keeps its
    /// backups); one it proposes after its removal counts nowhere, relayed or not (issue 31
    /// item 1). Before, removing the proposer voided every agreement it had made.
    #[test]
    fn a_removed_managers_agreements_stand_and_later_ones_count_nowhere() {
        use cobox_agreements::State;
        let (home_a, _folder_a, mut a) = space();
        let (home_b, _folder_b, b) = joined(home_a.path(), &mut a);
        let b_id = b.device.to_string();
        crate::members::set_role(home_a.path(), "s", &b_id[..16], cobox_core::roster::Role::Manage).unwrap();
        b.ledger().merge_from(&mut a.ledger().read().unwrap()).unwrap();
        let seeder = |n: u8| crate::codes::PeerAddr { device: crate::ids::DeviceId([n; 32]), addrs: vec![] };
        let (held, _) = crate::agreement_service::propose(home_b.path(), "s", &seeder(5), 1 << 20, 30, "").unwrap();
        a.ledger().merge_from(&mut b.ledger().read().unwrap()).unwrap();
        crate::members::remove(home_a.path(), "s", &b_id[..16]).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        // B has not heard of its removal and proposes again; the proposal reaches A.
        let (later, _) = crate::agreement_service::propose(home_b.path(), "s", &seeder(6), 1 << 20, 30, "").unwrap();
        a.ledger().merge_from(&mut b.ledger().read().unwrap()).unwrap();
        let view = a.ledger().view(crate::now_ms()).unwrap();
        let state = |id: &str| view.agreements.iter().find(|v| v.id.to_string() == id).map(|v| v.state);
        assert_eq!(state(&held.id), Some(State::Proposed), "named by its remover, it stands: {view:?}");
        assert_eq!(state(&later.id), Some(State::Invalid), "proposed after its removal");
    }

    #[test]
    fn tampered_and_unsigned_blobs_are_refused_and_not_stored() {
        let (_h, _f, s) = space();
        let good = s.keys.seal(BlobKind::Chunk, b"content");
        let id = BlobId::of(&good);
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert!(matches!(s.receive_blob(&id, &bad), Err(Error::Refused(_))));
        assert!(!s.store.contains(&id).unwrap());
        assert!(s.receive_blob(&id, &good).unwrap());
        // A change signed as if by the shared space key, by another key.
        let forger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let forged = s.keys.seal_legacy_change(&forger, [5; 24], b"not from the space");
        let fid = BlobId::of(&forged);
        assert!(matches!(s.receive_blob(&fid, &forged), Err(Error::Blob { .. })));
        assert!(!s.store.contains(&fid).unwrap());
        // One signed by a device the roster does not hold is passed over, not stored.
        let stranger = s.keys.seal_change(&forger, [6; 24], b"from no member");
        let sid = BlobId::of(&stranger);
        assert!(!s.receive_blob(&sid, &stranger).unwrap());
        assert!(!s.store.contains(&sid).unwrap());
    }

    /// A change blob signed with the space key whose body does not decode (a buggy or hostile
    /// member) is set aside and reported: the space still opens, scans and syncs.
    #[test]
    fn a_signed_change_that_does_not_decode_is_quarantined_not_fatal() {
        let (home, folder, s) = space();
        let bad = s.keys.seal_change(&s.device_key, [7; 24], b"not a change body");
        let id = BlobId::of(&bad);
        assert!(s.receive_blob(&id, &bad).unwrap(), "it is validly signed, so stored");
        let mut s = s;
        s.apply_received().unwrap();
        assert_eq!(s.quarantined().keys().collect::<Vec<_>>(), vec![&id]);
        drop(s);
        let mut s = Home::open(home.path()).unwrap().open_space("s").unwrap();
        assert!(s.status().unwrap().quarantined[0].starts_with(&id.to_string()), "reported after a restart");
        std::fs::write(folder.path().join("a.txt"), b"still works").unwrap();
        assert_eq!(s.scan(&crate::NoProgress).unwrap().added, 1);
    }

    /// A space made by an earlier CoBox (its id the shared key's public half, which let any
    /// holder of the key sign a genesis and manage it) is refused at open with what to do, not
    /// upgraded: nothing was released, and the upgrade was the way around the roster.
    #[test]
    fn a_space_made_before_ids_came_from_the_genesis_is_refused_with_what_to_do() {
        let (home, _folder, a) = space();
        let (info, dir, secret) = Home::space_files(home.path(), "s").unwrap();
        drop(a);
        let old = crate::ids::SpaceId(crate::crypto::space_signing_key(&secret).verifying_key().to_bytes());
        let info = crate::home::SpaceInfo { id: old, ..info };
        let key = Home::device_key_at(home.path()).unwrap();
        let e = Space::open(info, dir, &secret, key).err().expect("refused");
        assert!(e.to_string().contains("create the space anew"), "{e}");
    }

    /// Blobs of files from another device that have not arrived are "not received yet", not
    /// "missing": verify passes; a blob this device held and lost is missing.
    #[test]
    fn verify_tells_blobs_not_received_yet_from_lost_ones() {
        let (home_a, folder_a, mut a) = space();
        std::fs::write(folder_a.path().join("f.txt"), b"content from a").unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, _folder_b, mut b) = joined(home_a.path(), &mut a);
        let (mut changes, mut chunks) = (0, Vec::new());
        for (id, loc) in a.store.list().unwrap() {
            if loc.kind == BlobKind::Change {
                b.receive_blob(&id, &a.store.get(&id).unwrap()).unwrap();
                changes += 1;
            } else {
                chunks.push(id);
            }
        }
        assert!(changes > 0 && !chunks.is_empty());
        b.apply_and_materialize().unwrap();
        let r = b.verify(&crate::NoProgress).unwrap();
        assert!(r.ok() && r.missing.is_empty(), "{r:?}");
        assert_eq!(r.not_yet_received.len(), chunks.len());
        assert_eq!(r.not_yet_received[0].files, vec!["f.txt".to_owned()]);

        a.store.remove(&chunks.iter().copied().collect()).unwrap();
        let r = a.verify(&crate::NoProgress).unwrap();
        assert!(!r.ok() && r.not_yet_received.is_empty(), "{r:?}");
        assert_eq!(r.missing.len(), chunks.len());
    }

    /// `gc --keep-within 0` on a device with a conflict from another device, then any later gc:
    /// the states it pruned stay pruned (a later gc does not look for their removed chunk
    /// lists and fail), and history no longer lists them.
    #[test]
    fn a_pruned_state_stays_pruned_for_later_gcs_and_history() {
        let (home_a, folder_a, mut a) = space();
        let mut big = vec![0u8; 6 << 20];
        crate::random_bytes(&mut big);
        std::fs::write(folder_a.path().join("f.bin"), &big).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        let (_home_b, folder_b, mut b) = joined(home_a.path(), &mut a);
        let copy = |from: &Space, to: &mut Space| {
            for (id, _) in from.store.list().unwrap() {
                to.receive_blob(&id, &from.store.get(&id).unwrap()).unwrap();
            }
            to.apply_and_materialize().unwrap();
        };
        let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
        b.scan(&crate::NoProgress).unwrap();
        copy(&a, &mut b);
        b.scan(&crate::NoProgress).unwrap();
        pause();
        big[0] ^= 1;
        std::fs::write(folder_a.path().join("f.bin"), &big).unwrap();
        a.scan(&crate::NoProgress).unwrap();
        pause();
        big[1] ^= 1;
        std::fs::write(folder_b.path().join("f.bin"), &big).unwrap();
        b.scan(&crate::NoProgress).unwrap();
        copy(&b, &mut a);
        a.scan(&crate::NoProgress).unwrap();
        assert!(!a.status().unwrap().conflicts.is_empty(), "a conflict copy");
        pause();
        let r = a.gc(Some(0)).unwrap();
        assert!(r.blobs_removed > 0, "{r:?}");
        let pruned = a.pruned_before().unwrap().unwrap();
        for window in [Some(0), None, Some(3_600_000)] {
            a.gc(window).unwrap();
        }
        assert!(a.verify(&crate::NoProgress).unwrap().ok());
        let h = a.history(None).unwrap();
        assert!(!h.is_empty() && h.iter().all(|i| i.time_ms >= pruned), "{h:?}");
        assert!(a.history(Some("f.bin")).unwrap().iter().all(|i| i.time_ms >= pruned));
    }

    /// Write errors injected at every write point of a scan (each pack's write, fsync, rename
    /// and directory fsync, each write and sync of the index): the scan fails with an error, never
    /// a panic, and after reopening without faults the store verifies, a scan completes and the
    /// folder restores byte for byte. Then a disk that fills up while blobs arrive from a peer:
    /// what arrived before verifies, and receiving again completes the folder.
    #[test]
    fn write_faults_at_every_point_lose_nothing() {
        use crate::store::Faults;
        let fill = |root: &std::path::Path| {
            std::fs::write(root.join("a.txt"), b"small").unwrap();
            let mut big = vec![0u8; 3 << 20];
            crate::random_bytes(&mut big);
            std::fs::write(root.join("big.bin"), &big).unwrap();
            std::fs::create_dir_all(root.join("d")).unwrap();
            std::fs::write(root.join("d/b.txt"), b"more").unwrap();
        };
        let attempt = |faults: std::sync::Arc<Faults>| {
            let (home, folder, s) = space();
            drop(s);
            fill(folder.path());
            // Points up to the scan's return (dropping the space writes no more that matter).
            let scanned = Home::open(home.path())
                .and_then(|h| h.open_space_with_faults("s", faults.clone()))
                .and_then(|mut s| s.scan(&crate::NoProgress).map(|_| faults.points()));
            let mut s = Home::open(home.path()).unwrap().open_space("s").unwrap();
            assert!(s.verify(&crate::NoProgress).unwrap().ok(), "after {scanned:?}");
            s.scan(&crate::NoProgress).unwrap();
            let out = tempfile::tempdir().unwrap();
            let r = s.restore(out.path(), &crate::At::Latest, None, false, &crate::NoProgress).unwrap();
            assert!(r.errors.is_empty(), "{r:?}");
            for f in ["a.txt", "big.bin", "d/b.txt"] {
                assert_eq!(std::fs::read(out.path().join(f)).unwrap(), std::fs::read(folder.path().join(f)).unwrap());
            }
            scanned
        };
        let points = attempt(Faults::never()).expect("a scan without faults");
        eprintln!("a scan reaches {points} write points; a fault at each is reported and loses nothing");
        assert!(points >= 8, "a scan reaches the pack and index writes: {points}");
        for n in 0..points {
            let r = attempt(Faults::from_point(n));
            assert!(r.is_err(), "a fault at point {n} of {points} is reported");
        }

        // A disk that fills up mid-receive.
        let (home_a, folder_a, mut a) = space();
        fill(folder_a.path());
        a.scan(&crate::NoProgress).unwrap();
        let mut ids: Vec<BlobId> = a.store.list().unwrap().into_iter().map(|(id, _)| id).collect();
        a.store.send_order(&mut ids).unwrap();
        for full_at in [0, 3, 9] {
            let (home_b, folder_b, b) = joined(home_a.path(), &mut a);
            drop(b);
            let faults = Faults::never();
            let mut b = Home::open(home_b.path()).unwrap().open_space_with_faults("s", faults.clone()).unwrap();
            faults.arm(full_at);
            let stopped = ids
                .iter()
                .try_for_each(|id| b.receive_blob(id, &a.store.get(id).unwrap()).map(|_| ()))
                .and_then(|()| b.apply_and_materialize().map(|_| ()));
            assert!(stopped.is_err(), "the full disk is reported (fault at {full_at})");
            drop(b);
            let mut b = Home::open(home_b.path()).unwrap().open_space("s").unwrap();
            assert!(b.verify(&crate::NoProgress).unwrap().ok());
            for id in &ids {
                b.receive_blob(id, &a.store.get(id).unwrap()).unwrap();
            }
            b.apply_and_materialize().unwrap();
            for f in ["a.txt", "big.bin", "d/b.txt"] {
                assert_eq!(
                    std::fs::read(folder_b.path().join(f)).unwrap(),
                    std::fs::read(folder_a.path().join(f)).unwrap()
                );
            }
        }
    }

    #[test]
    fn conflict_names() {
        let t = 1_764_000_000_000_000_000; // 2025-11-24 16:00:00 UTC
        assert_eq!(
            conflict_name("docs/report.final.txt", t, &[0xab, 0xcd, 0xef, 0x01, 9, 9, 9, 9]),
            "docs/report.final.sync-conflict-20251124-160000-abcdef01.txt"
        );
        assert_eq!(conflict_name("Makefile", t, &[0; 8]), "Makefile.sync-conflict-20251124-160000-00000000");
        for p in ["docs/report.final.txt", "Makefile", ".bashrc", "a/b/c.tar.gz"] {
            assert_eq!(conflict_original(&conflict_name(p, t, &[0xab; 8])).as_deref(), Some(p));
        }
        assert_eq!(conflict_original("plain.txt"), None);
        assert_eq!(conflict_original("x.sync-conflict-notastamp.txt"), None);
        assert_eq!(conflict_name(".bashrc", t, &[0; 8]), ".bashrc.sync-conflict-20251124-160000-00000000");
    }
}
