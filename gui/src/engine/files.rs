//! Commands on a space's files: versions, restores and conflicts.

use super::{Engine, Outcome, done};
use cobox_engine::SpaceId;
use std::path::PathBuf;

impl Engine {
    /// Restore a folder (or the whole space, `dir` empty) as it was at `at` into `into`.
    pub(super) fn restore_folder(&self, id: &SpaceId, dir: String, at: &str, into: PathBuf) -> Outcome {
        let at = cobox_engine::At::parse(&local_to_utc(at.trim())).map_err(|_| {
            "Give a date and time (2026-11-24 10:00, on this computer's clock), or a version id from a file's history."
        })?;
        let s = self.space(id).ok_or(super::GONE)?;
        let what = if dir.is_empty() { "the space".to_owned() } else { format!("'{dir}'") };
        if into.exists() {
            return Err(format!("{} already exists: choose a new folder to restore into.", into.display()));
        }
        // A folder is restored beside the target, then its own folder moved to the name asked
        // for, so `into` holds the folder's content, not the folder again one level down.
        let staging = match into.file_name() {
            Some(n) if !dir.is_empty() => into.with_file_name(format!(".{}.cobox-restoring", n.to_string_lossy())),
            _ => into.clone(),
        };
        let (only, to) = ((!dir.is_empty()).then_some(dir.clone()), staging.clone());
        let r = self
            .on(&s, move |s| s.restore(&to, &at, only.as_deref(), false, &cobox_engine::NoProgress))
            .map_err(|e| format!("Could not restore {what}: {e}"))?;
        if staging != into {
            let moved = std::fs::rename(staging.join(&dir), &into).and_then(|()| std::fs::remove_dir_all(&staging));
            if let Err(e) = moved {
                return Err(format!(
                    "Restored {what} into {}, but could not move it to {}: {e}",
                    staging.display(),
                    into.display()
                ));
            }
        }
        self.update(|m| m.restored = Some(into.clone()));
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

/// A time as a person types it on this computer's clock ("2026-11-24 10:00", "2026-11-24"), in
/// the RFC 3339 UTC form `At::parse` takes; anything else (an RFC 3339 time, a version id) as is.
fn local_to_utc(text: &str) -> String {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(23, 59, 59)));
    match parsed.and_then(|t| Local.from_local_datetime(&t).earliest()) {
        Some(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    /// A local date and time becomes the same instant in UTC; other forms pass through.
    #[test]
    fn a_local_time_is_read_on_this_computers_clock() {
        use chrono::TimeZone;
        let t = chrono::Local.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).earliest().unwrap();
        let want = t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        assert_eq!(super::local_to_utc("2026-11-24 10:00"), want);
        assert!(super::local_to_utc("2026-11-24").starts_with("2026-11-2"));
        assert_eq!(super::local_to_utc("2026-11-24T10:00:00Z"), "2026-11-24T10:00:00Z");
        assert_eq!(super::local_to_utc("0123456789abcdef"), "0123456789abcdef");
    }
}
