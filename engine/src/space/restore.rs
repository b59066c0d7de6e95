//! Manifest → folder, for `cobox restore`. Every chunk is checked twice: its bytes against its
//! blob id, and its decrypted content against the keyed hash it was sealed with. Files are
//! written to a temp file beside the target and renamed into place; nothing is written through
//! a symlink or outside the destination.

use crate::Progress;
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
use rayon::prelude::*;
use serde::Serialize;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
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

/// What a restore wrote.
#[derive(Debug, Clone, Default, Serialize)]
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

/// Refuse to go through a symlink or outside `dest`: returns `dest/rel` once every existing
/// ancestor below `dest` is a real directory.
pub(crate) fn safe_target(dest: &Path, rel: &str) -> Result<PathBuf, String> {
    validate_path(rel)?;
    let rel_path = Path::new(rel);
    if rel_path.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("path {rel:?} is not a plain relative path"));
    }
    let mut cur = dest.to_path_buf();
    let comps: Vec<_> = rel_path.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("refusing to write {rel:?}: {} is a symlink", cur.display()));
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!("refusing to write {rel:?}: {} is not a directory", cur.display()));
            }
            Ok(_) => {}
            Err(_) => fs::create_dir(&cur).map_err(|e| format!("cannot create {}: {e}", cur.display()))?,
        }
    }
    Ok(dest.join(rel_path))
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
                self.manifest.heads_at_time(*t).map(Some).ok_or_else(|| {
                    let first = self.manifest.snapshots().first().map(|s| rfc3339(s.time_ms));
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
                Ok(self.manifest.heads_at_time(s.time_ms))
            }
        }
    }

    /// Write the state `at` (or one path of it) into `dest`.
    pub fn restore(
        &self,
        dest: &Path,
        at: &At,
        only: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, Error> {
        let heads = self.heads_at(at)?;
        let only = only.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
        if let Some(p) = only {
            validate_path(p).map_err(Error::InvalidPath)?;
        }
        let mut entries: Vec<(String, Entry)> = self
            .entries(heads.as_ref())
            .into_iter()
            .filter(|(p, e)| e.is_live() && only.is_none_or(|o| p == o || p.starts_with(&format!("{o}/"))))
            .collect();
        if let Some(p) = only.filter(|_| entries.is_empty()) {
            return Err(Error::NoHistory(format!("{p:?} does not exist in that state")));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        fs::create_dir_all(dest).at(dest)?;
        let dest = fs::canonicalize(dest).at(dest)?;
        let mut report = RestoreReport::default();
        let total: u64 = entries.iter().map(|(_, e)| e.size()).sum();
        progress.start("restoring", total);

        let mut dirs = Vec::new();
        for (p, e) in entries.iter().filter(|(_, e)| matches!(e.kind, Kind::Dir)) {
            match safe_target(&dest, p).and_then(|t| match fs::symlink_metadata(&t) {
                Ok(m) if m.is_dir() => Ok(t),
                Ok(_) => Err(format!("refusing to replace {} with a directory", t.display())),
                Err(_) => fs::create_dir(&t)
                    .map(|()| t.clone())
                    .map_err(|err| format!("cannot create {}: {err}", t.display())),
            }) {
                Ok(t) => {
                    report.dirs += 1;
                    dirs.push((t, e.mode));
                }
                Err(msg) => report.errors.push(msg),
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
            let r = safe_target(&dest, p).and_then(|t| {
                if let Ok(m) = fs::symlink_metadata(&t) {
                    if m.is_dir() {
                        return Err(format!("refusing to replace directory {} with a symlink", t.display()));
                    }
                    fs::remove_file(&t).map_err(|err| format!("cannot replace {}: {err}", t.display()))?;
                }
                std::os::unix::fs::symlink(target, &t)
                    .map_err(|err| format!("cannot create symlink {}: {err}", t.display()))
            });
            match r {
                Ok(()) => report.symlinks += 1,
                Err(msg) => report.errors.push(msg),
            }
        }
        // Directory modes last, deepest first, so a read-only directory does not block its files.
        for (t, mode) in dirs.iter().rev() {
            let _ = fs::set_permissions(t, fs::Permissions::from_mode(*mode));
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
        dest: &Path,
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
        dest: &Path,
        rel: &str,
        e: &Entry,
        progress: &dyn Progress,
        before_rename: &dyn Fn(&Path) -> Result<(), String>,
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
    pub(crate) fn begin(&self, dest: &Path, rel: &str, e: &Entry) -> Result<PartialFile, String> {
        let Kind::File { size, .. } = &e.kind else { return Err(format!("{rel}: not a file")) };
        let target = safe_target(dest, rel)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(format!("refusing to replace directory {} with a file", target.display()));
        }
        let parent = target.parent().unwrap_or(dest);
        let mut rnd = [0u8; 8];
        crate::random_bytes(&mut rnd);
        // The pid tells a later scan whether the writer is still alive.
        let tmp = parent.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), hex::encode(rnd)));
        let out = crate::direct::DirectWriter::create(&tmp, *size)
            .map_err(|err| format!("cannot write {}: {err}", tmp.display()))?;
        Ok(PartialFile {
            rel: rel.to_owned(),
            tmp,
            target,
            out: Some(out),
            written: 0,
            size: *size,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
        })
    }

    /// One chunk of the file at `rel`, read (its id checked) and decrypted (its content checked).
    pub(crate) fn chunk(&self, rel: &str, id: &BlobId) -> Result<Vec<u8>, String> {
        let blob = self.store.get(id).map_err(|err| format!("{rel}: {err}"))?;
        self.keys.open(BlobKind::Chunk, &blob).map_err(|err| format!("{rel}: blob {id}: {err}"))
    }
}

/// A file being written in order, chunk by chunk, to a temp file beside its target. Dropped
/// before [`PartialFile::finish`], it removes the temp file.
pub(crate) struct PartialFile {
    rel: String,
    tmp: PathBuf,
    target: PathBuf,
    out: Option<crate::direct::DirectWriter>,
    written: u64,
    size: u64,
    mode: u32,
    mtime_ns: i64,
}

impl PartialFile {
    /// Append the next chunk's plaintext.
    pub(crate) fn push(&mut self, plain: &[u8]) -> Result<(), String> {
        let out = self.out.as_mut().ok_or_else(|| format!("{}: already finished", self.rel))?;
        out.write(plain).map_err(|err| format!("cannot write {}: {err}", self.tmp.display()))?;
        self.written += plain.len() as u64;
        Ok(())
    }

    /// Check the size, set mode and mtime, run `before_rename` on the target and rename into place.
    pub(crate) fn finish(mut self, before_rename: &dyn Fn(&Path) -> Result<(), String>) -> Result<Meta, String> {
        let rel = &self.rel;
        if self.written != self.size {
            return Err(format!("{rel}: restored {} bytes but the manifest records {}", self.written, self.size));
        }
        let out = self.out.take().ok_or_else(|| format!("{rel}: already finished"))?;
        let f = out.finish().map_err(|err| format!("cannot write {}: {err}", self.tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(|err| format!("cannot set mode of {rel}: {err}"))?;
        let mtime = UNIX_EPOCH + Duration::from_nanos(self.mtime_ns.max(0) as u64);
        f.set_modified(mtime).map_err(|err| format!("cannot set mtime of {rel}: {err}"))?;
        drop(f);
        before_rename(&self.target)?;
        fs::rename(&self.tmp, &self.target).map_err(|err| format!("cannot write {}: {err}", self.target.display()))?;
        // Renamed: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        fs::symlink_metadata(&self.target).map(|m| Meta::of(&m)).map_err(|err| format!("{rel}: {err}"))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            drop(self.out.take());
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_target_refuses_escapes_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        assert!(safe_target(d.path(), "../x").is_err());
        assert!(safe_target(d.path(), "/etc/passwd").is_err());
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        assert!(safe_target(d.path(), "link/file").is_err());
        let ok = safe_target(d.path(), "a/b/c.txt").unwrap();
        assert_eq!(ok, d.path().join("a/b/c.txt"));
        assert!(d.path().join("a/b").is_dir());
    }
}
