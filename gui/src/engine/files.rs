//! Commands on a space's files: versions, restores and conflicts.

use super::{Engine, Outcome, done};
use cobox_engine::SpaceId;
use std::path::PathBuf;

impl Engine {
    /// Restore a folder (or the whole space, `dir` empty) as it was at `at` into `into`.
    pub(super) fn restore_folder(&self, id: &SpaceId, dir: String, at: &str, into: PathBuf) -> Outcome {
        let at = cobox_engine::At::parse(at.trim())
            .map_err(|_| "Give the time as 2026-11-24T10:00:00Z, or a version id from a file's history.")?;
        let s = self.space(id).ok_or(super::GONE)?;
        let what = if dir.is_empty() { "the space".to_owned() } else { format!("'{dir}'") };
        let (only, to) = ((!dir.is_empty()).then_some(dir), into.clone());
        let r = self
            .on(&s, move |s| s.restore(&to, &at, only.as_deref(), false, &cobox_engine::NoProgress))
            .map_err(|e| format!("Could not restore {what}: {e}"))?;
        if !r.errors.is_empty() {
            return Err(format!(
                "Restored {what} into {}, but {} paths failed: {}",
                into.display(),
                r.errors.len(),
                r.errors.join("; ")
            ));
        }
        done(format!("Restored {what} as it was: {} files into {}.", r.files, into.display()))
    }

    pub(super) fn file_history(&self, id: SpaceId, path: String) -> Outcome {
        let s = self.space(&id).ok_or(super::GONE)?;
        let p = path.clone();
        let h = self.on(&s, move |s| s.history(Some(&p))).map_err(|e| format!("Could not read the history: {e}"))?;
        self.update(|m| m.file_history = Some((id, path, h)));
        Ok(None)
    }

    pub(super) fn restore_version(&self, id: SpaceId, path: String, version: String) -> Outcome {
        let s = self.space(&id).ok_or(super::GONE)?;
        let (p, v) = (path.clone(), version.clone());
        let h = self
            .on(&s, move |s| {
                s.restore_version(&p, &v)?;
                s.history(Some(&p))
            })
            .map_err(|e| format!("Could not restore {path}: {e}"))?;
        let said = format!("Restored {path} as it was in version {version}.");
        self.update(|m| m.file_history = Some((id, path, h)));
        done(said)
    }

    pub(super) fn resolve(&self, id: &SpaceId, copy: String, keep: cobox_engine::Keep) -> Outcome {
        let s = self.space(id).ok_or(super::GONE)?;
        self.on(&s, move |s| s.resolve_conflict(&copy, keep))
            .map_err(|e| format!("Could not settle the conflict: {e}"))?;
        done("Conflict settled; other devices get the result on their next sync.")
    }
}
