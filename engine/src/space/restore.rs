//! Manifest → folder, for `cobox restore`. Every chunk is checked twice: its bytes against its
//! blob id, and its decrypted content against the keyed hash it was sealed with. Files are
//! written to a temp file beside the target and renamed into place; nothing is written through
//! a symlink or outside the destination.

use crate::Progress;
use crate::beneath::{self, Folder};
use crate::crypto::BlobKind;
use crate::crypto::SpaceKeys;
use crate::entry::{Content, Entry, Kind, decode_chunk_list, validate_path};
use crate::error::{Error, IoContext};
use crate::ids::BlobId;
use crate::manifest::ShardHeads;
use crate::space::Space;
use crate::space::scan::Meta;
use crate::store::BlobStore;
use crate::util::{TMP_PREFIX, rfc3339};
use cobox_core::entry::safe_mode;
use rayon::prelude::*;
use serde::Serialize;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Which state to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The current state.
    Latest,
    /// The state as of a time (milliseconds since the epoch).
    Time(i64),
    /// The state recorded by a history entry (id or unique prefix).
    Snapshot(String),
}

impl At {
    /// `--at` as people write it: an RFC 3339 time (`2026-11-24T10:00:00Z`) or a history id.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(At::Time(t.timestamp_millis()));
        }
        if s.len() >= 4 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(At::Snapshot(s.to_owned()));
        }
        Err(Error::Refused(format!(
            "--at {s:?} is neither an RFC 3339 time (like 2026-11-24T10:00:00Z) nor a history id (see `cobox history`)"
        )))
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RestoreReport {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// File bytes written.
    pub bytes: u64,
    /// Paths that could not be restored, each with the reason (corrupt blob ids named).
    pub errors: Vec<String>,
}

impl Space {
    /// The heads to read for `at`, or `None` for the current state.
    pub fn heads_at(&self, at: &At) -> Result<Option<ShardHeads>, Error> {
        let pruned = self.pruned_before()?;
        let check_pruned = |t: i64| match pruned {
            Some(p) if t < p => Err(Error::NoHistory(format!(
                "states before {} were pruned by `cobox gc`; pick a later time",
                rfc3339(p)
            ))),
            _ => Ok(()),
        };
        match at {
            At::Latest => Ok(None),
            At::Time(t) => {
                check_pruned(*t)?;
                let m = self.manifest()?;
                m.heads_at_time(*t).map(Some).ok_or_else(|| {
                    let first = m.snapshots().first().map(|s| rfc3339(s.time_ms));
                    Error::NoHistory(match first {
                        Some(f) => format!(
                            "nothing was recorded at or before {}; the first history entry is at {f}",
                            rfc3339(*t)
                        ),
                        None => "this space has no history yet; run `cobox scan` first".into(),
                    })
                })
            }
            At::Snapshot(id) => {
                let s = self.find_snapshot(id)?;
                check_pruned(s.time_ms)?;
                // A history entry stands for the state as of its time, merged across devices.
                Ok(self.manifest()?.heads_at_time(s.time_ms))
            }
        }
    }

    /// Write the state `at` (or one path of it) into `dest`. Without `overwrite`, a file or link
    /// already in `dest` under a name the state has is a refusal (naming it), and nothing is
    /// written: a restore never replaces a user's own files unasked.
    pub fn restore(
        &self,
        dest: &Path,
        at: &At,
        only: Option<&str>,
        overwrite: bool,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, Error> {
        let heads = self.heads_at(at)?;
        let only = only.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
        if let Some(p) = only {
            validate_path(p).map_err(Error::InvalidPath)?;
        }
        let mut entries: Vec<(String, Entry)> = self
            .entries(heads.as_ref())?
            .into_iter()
            .filter(|(p, e)| e.is_live() && only.is_none_or(|o| p == o || p.starts_with(&format!("{o}/"))))
            .collect();
        if let Some(p) = only.filter(|_| entries.is_empty()) {
            return Err(Error::NoHistory(format!("{p:?} does not exist in that state")));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        fs::create_dir_all(dest).at(dest)?;
        let dest_path = dest;
        let dest = Folder::open(dest).at(dest)?;
        if !overwrite {
            let taken: Vec<&str> = entries
                .iter()
                .filter(|(_, e)| !matches!(e.kind, Kind::Dir))
                .filter(|(p, _)| dest.entry(p, false).and_then(|t| t.stat()).is_ok_and(|m| m.is_some()))
                .map(|(p, _)| p.as_str())
                .collect();
            if let Some(first) = taken.first() {
                return Err(Error::Refused(format!(
                    "{} would replace {} existing file(s) in {} (first: {}): restore into an empty or new folder, \
                     or pass --overwrite to replace them",
                    if only.is_some() { "the restore" } else { "restoring the whole state" },
                    taken.len(),
                    dest_path.display(),
                    crate::util::printable(first)
                )));
            }
        }
        let mut report = RestoreReport::default();
        let total: u64 = entries.iter().map(|(_, e)| e.size()).sum();
        progress.start("restoring", total);

        let mut dirs = Vec::new();
        for (p, e) in entries.iter().filter(|(_, e)| matches!(e.kind, Kind::Dir)) {
            let made = dest.entry(p, true).and_then(|t| match t.stat()? {
                Some(m) if m.is_dir() => Ok(()),
                Some(_) => Err(io::Error::other("something else is there")),
                // Private until the end, when every directory gets its recorded mode.
                None => t.create_dir(0o700),
            });
            match made {
                Ok(()) => {
                    report.dirs += 1;
                    dirs.push((p.as_str(), e.mode));
                }
                Err(err) => report.errors.push(format!("cannot create directory {p}: {err}")),
            }
        }
        let files: Vec<&(String, Entry)> =
            entries.iter().filter(|(_, e)| matches!(e.kind, Kind::File { .. })).collect();
        let writer = self.file_writer();
        let results: Vec<Result<u64, String>> =
            files.par_iter().map(|(p, e)| writer.write_entry(&dest, p, e, progress).map(|m| m.size)).collect();
        for r in results {
            match r {
                Ok(n) => {
                    report.files += 1;
                    report.bytes += n;
                }
                Err(msg) => report.errors.push(msg),
            }
        }
        for (p, e) in &entries {
            let Kind::Symlink { target } = &e.kind else { continue };
            let r = dest.entry(p, true).and_then(|t| {
                match t.stat()? {
                    Some(m) if m.is_dir() => return Err(io::Error::other("a directory is there")),
                    Some(_) => t.remove_file()?,
                    None => {}
                }
                t.symlink(target)
            });
            match r {
                Ok(()) => report.symlinks += 1,
                Err(err) => report.errors.push(format!("cannot create symlink {p}: {err}")),
            }
        }
        // Directory modes last, deepest first, so a read-only directory does not block its files.
        for (p, mode) in dirs.iter().rev() {
            if let Err(err) = dest.set_dir_mode(p, safe_mode(*mode)) {
                report.errors.push(format!("cannot set the mode of directory {p}: {err}"));
            }
        }
        Ok(report)
    }
}

/// A file's chunk ids and sizes, reading its chunk list if it has one.
pub(crate) fn content_blobs(
    store: &BlobStore,
    keys: &SpaceKeys,
    content: &Content,
) -> Result<Vec<(BlobId, u32)>, Error> {
    match content {
        Content::Empty => Ok(Vec::new()),
        Content::Single(id) => Ok(vec![(*id, 0)]),
        Content::List { list, .. } => {
            let blob = store.get(list)?;
            let plain = keys.open(BlobKind::ChunkList, &blob).map_err(|source| Error::Blob { blob: *list, source })?;
            decode_chunk_list(&plain)
                .map_err(|_| Error::Blob { blob: *list, source: crate::crypto::OpenError::Malformed })
        }
    }
}

/// What writing a file needs, without the space: threads that write files while a sync session
/// is still receiving hold one.
#[derive(Clone)]
pub(crate) struct FileWriter {
    pub(crate) store: Arc<BlobStore>,
    pub(crate) keys: SpaceKeys,
}

impl FileWriter {
    /// A file's chunk ids and sizes, reading its chunk list if it has one.
    pub(crate) fn content_blobs(&self, content: &Content) -> Result<Vec<(BlobId, u32)>, Error> {
        content_blobs(&self.store, &self.keys, content)
    }

    /// Write one file entry under `dest` via a temp file beside the target, every chunk verified;
    /// returns the written file's metadata. Shared by restore and the materialiser.
    pub(crate) fn write_entry(
        &self,
        dest: &Folder,
        rel: &str,
        e: &Entry,
        progress: &dyn Progress,
    ) -> Result<Meta, String> {
        self.write_entry_checked(dest, rel, e, progress, &|_| Ok(()))
    }

    /// [`FileWriter::write_entry`], with a last check of the target just before the rename
    /// (the materialiser refuses to replace a file edited meanwhile).
    pub(crate) fn write_entry_checked(
        &self,
        dest: &Folder,
        rel: &str,
        e: &Entry,
        progress: &dyn Progress,
        before_rename: &dyn Fn(&beneath::Entry) -> Result<(), String>,
    ) -> Result<Meta, String> {
        let mut out = self.begin(dest, rel, e)?;
        let chunks = match &e.kind {
            Kind::File { content: Content::Empty, .. } => Vec::new(),
            Kind::File { content, .. } => self.content_blobs(content).map_err(|err| format!("{rel}: {err}"))?,
            _ => return Err(format!("{rel}: not a file")),
        };
        // Decrypt a few chunks at a time in parallel, then write them in order.
        for batch in chunks.chunks(8) {
            let plain: Vec<Result<Vec<u8>, String>> = batch.par_iter().map(|(id, _)| self.chunk(rel, id)).collect();
            for p in plain {
                let p = p?;
                out.push(&p)?;
                progress.advance(p.len() as u64);
            }
        }
        out.finish(before_rename)
    }

    /// Start writing file entry `e` at `rel` under `dest`: a temp file beside the target.
    pub(crate) fn begin(&self, dest: &Folder, rel: &str, e: &Entry) -> Result<PartialFile, String> {
        let Kind::File { size, .. } = &e.kind else { return Err(format!("{rel}: not a file")) };
        let target = dest.entry(rel, true).map_err(|err| format!("refusing to write {rel}: {err}"))?;
        // Where nothing is yet, the file is written unnamed and linked into place at the end: one
        // directory change instead of two (a temp name made, then renamed), nothing left behind
        // by a crash, and a file someone makes meanwhile is never replaced.
        let absent = match target.stat() {
            Ok(None) => true,
            Ok(Some(m)) if m.is_dir() => return Err(format!("refusing to replace directory {rel} with a file")),
            _ => false,
        };
        let mut rnd = [0u8; 8];
        crate::random_bytes(&mut rnd);
        // The pid tells a later scan whether the writer is still alive.
        let tmp = target.sibling(&format!("{TMP_PREFIX}{}-{}", std::process::id(), hex::encode(rnd)));
        let named = std::cell::Cell::new(false);
        let out = crate::direct::DirectWriter::create_with(*size, |direct| {
            if absent && beneath::unnamed_files() {
                match target.create_unnamed(direct) {
                    Ok(f) => {
                        named.set(false);
                        return Ok(f);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                    Err(e) => return Err(e),
                }
            }
            named.set(true);
            tmp.create_file(direct)
        })
        .map_err(|err| format!("cannot write {}: {err}", tmp.rel()))?;
        Ok(PartialFile {
            tmp: Some(if named.get() { Temp::Named(tmp) } else { Temp::Unnamed }),
            target,
            out: Some(out),
            written: 0,
            size: *size,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
        })
    }

    /// Whether the regular file at `target` holds exactly file entry `e`'s content (its
    /// content must be stored). Read chunk by chunk, and stops at the first difference.
    pub(crate) fn holds(&self, target: &beneath::Entry, e: &Entry) -> Result<bool, String> {
        use std::io::Read;
        let rel = target.rel();
        let Kind::File { size, content } = &e.kind else { return Ok(false) };
        let mut f = target.open_read().map_err(|err| format!("cannot read {rel}: {err}"))?;
        let len = f.metadata().map_err(|err| format!("cannot read {rel}: {err}"))?.len();
        if len != *size {
            return Ok(false);
        }
        let chunks = match content {
            Content::Empty => Vec::new(),
            c => self.content_blobs(c).map_err(|err| format!("{rel}: {err}"))?,
        };
        let mut buf = Vec::new();
        for (id, _) in &chunks {
            let plain = self.chunk(rel, id)?;
            buf.resize(plain.len(), 0);
            if f.read_exact(&mut buf).is_err() || buf != plain {
                return Ok(false);
            }
        }
        // Nothing past the recorded size (it grew since the length was read).
        Ok(matches!(f.read(&mut [0u8; 1]), Ok(0)))
    }

    /// One chunk of the file at `rel`, read (its id checked) and decrypted (its content checked).
    pub(crate) fn chunk(&self, rel: &str, id: &BlobId) -> Result<Vec<u8>, String> {
        let blob = self.store.get(id).map_err(|err| format!("{rel}: {err}"))?;
        self.keys.open(BlobKind::Chunk, &blob).map_err(|err| format!("{rel}: blob {id}: {err}"))
    }
}

/// Where a file is written before it takes its name.
enum Temp {
    /// A temp name beside the target, renamed over it.
    Named(beneath::Entry),
    /// An unnamed file in the target's directory, linked as the target (which was absent).
    Unnamed,
}

/// A file being written in order, chunk by chunk, to a temp file beside its target. Dropped
/// before [`PartialFile::finish`], it removes the temp file.
pub(crate) struct PartialFile {
    /// The temp file, until renamed or linked into place.
    tmp: Option<Temp>,
    target: beneath::Entry,
    out: Option<crate::direct::DirectWriter>,
    written: u64,
    size: u64,
    mode: u32,
    mtime_ns: i64,
}

impl PartialFile {
    /// Append the next chunk's plaintext.
    pub(crate) fn push(&mut self, plain: &[u8]) -> Result<(), String> {
        let rel = self.target.rel();
        let out = self.out.as_mut().ok_or_else(|| format!("{rel}: already finished"))?;
        out.write(plain).map_err(|err| format!("cannot write {rel}: {err}"))?;
        self.written += plain.len() as u64;
        Ok(())
    }

    /// Check the size, set mode and mtime, run `before_rename` on the target and rename into place.
    pub(crate) fn finish(
        mut self,
        before_rename: &dyn Fn(&beneath::Entry) -> Result<(), String>,
    ) -> Result<Meta, String> {
        let rel = self.target.rel().to_owned();
        if self.written != self.size {
            return Err(format!("{rel}: restored {} bytes but the manifest records {}", self.written, self.size));
        }
        let out = self.out.take().ok_or_else(|| format!("{rel}: already finished"))?;
        let f = out.finish().map_err(|err| format!("cannot write {rel}: {err}"))?;
        f.set_permissions(fs::Permissions::from_mode(safe_mode(self.mode)))
            .map_err(|err| format!("cannot set mode of {rel}: {err}"))?;
        let mtime = UNIX_EPOCH + Duration::from_nanos(self.mtime_ns.max(0) as u64);
        f.set_modified(mtime).map_err(|err| format!("cannot set mtime of {rel}: {err}"))?;
        before_rename(&self.target)?;
        match self.tmp.take().ok_or_else(|| format!("{rel}: already finished"))? {
            Temp::Named(tmp) => {
                if let Err(err) = tmp.rename(&self.target) {
                    self.tmp = Some(Temp::Named(tmp));
                    return Err(format!("cannot write {rel}: {err}"));
                }
            }
            Temp::Unnamed => match self.target.link_unnamed(&f) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(format!("{rel}: made here while it was written; kept for the next scan"));
                }
                Err(err) => return Err(format!("cannot write {rel}: {err}")),
            },
        }
        // The file written, as it is now (renaming or linking changed its ctime): what is at
        // the name could already be someone's newer save, which must not pass for ours.
        f.metadata().map(|m| Meta::of(&m)).map_err(|err| format!("{rel}: {err}"))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        // An unnamed file goes with its descriptor.
        if let Some(Temp::Named(tmp)) = self.tmp.take() {
            drop(self.out.take());
            let _ = tmp.remove_file();
        }
    }
}
