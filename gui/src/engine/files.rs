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

    /// A space's past states and deleted files, read now.
    pub(super) fn read_past(&self, id: SpaceId) -> super::Past {
        let read = match self.space(&id) {
            Some(s) => {
                self.on(&s, |s| Ok((s.history(None)?, s.deleted_files(DELETED_SHOWN)?))).map_err(|e| e.to_string())
            }
            None => Err(super::GONE.to_owned()),
        };
        match read {
            Ok((states, deleted)) => super::Past { space: id, states, deleted, error: None },
            Err(e) => super::Past { space: id, states: Vec::new(), deleted: Vec::new(), error: Some(e) },
        }
    }

    pub(super) fn past(&self, id: SpaceId) -> Outcome {
        let p = self.read_past(id);
        self.update(|m| m.past = Some(p));
        Ok(None)
    }

    pub(super) fn undelete(&self, id: SpaceId, path: String) -> Outcome {
        let s = self.space(&id).ok_or(super::GONE)?;
        let p = path.clone();
        self.on(&s, move |s| s.undelete(&p)).map_err(|e| format!("Could not bring {path} back: {e}"))?;
        done(format!("{path} is back as it was before it was deleted; members get it at their next sync."))
    }

    /// Compare a conflict copy with its file, as they are in the folder.
    pub(super) fn compare(&self, id: SpaceId, copy: String) -> Outcome {
        let original = cobox_engine::conflict_original(&copy).ok_or("That is not a conflict copy.")?;
        let folder = {
            let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
            m.spaces.iter().find(|s| s.id == id).map(|s| s.path.clone()).ok_or(super::GONE)?
        };
        let read = |p: &str| -> Result<Vec<u8>, String> {
            let path = folder.join(p);
            let len = std::fs::metadata(&path).map_err(|e| format!("Cannot read {p}: {e}"))?.len();
            if len > COMPARE_MAX {
                return Err(format!("{p} is {} bytes: too large to compare here; open each version instead.", len));
            }
            std::fs::read(&path).map_err(|e| format!("Cannot read {p}: {e}"))
        };
        let (mine, theirs) = (read(&original)?, read(&copy)?);
        let (lines, more) = compare_lines(&mine, &theirs);
        self.update(|m| m.compare = Some(super::CompareView { space: id, copy, lines, more }));
        Ok(None)
    }

    pub(super) fn resolve(&self, id: &SpaceId, copy: String, keep: cobox_engine::Keep) -> Outcome {
        let s = self.space(id).ok_or(super::GONE)?;
        self.on(&s, move |s| s.resolve_conflict(&copy, keep))
            .map_err(|e| format!("Could not settle the conflict: {e}"))?;
        done("Conflict settled; other devices get the result on their next sync.")
    }
}

/// Deleted paths the History tab lists at most (newest first).
const DELETED_SHOWN: usize = 500;
/// Files larger than this are not compared in the app.
const COMPARE_MAX: u64 = 4 << 20;
/// Lines a comparison shows at most.
const COMPARE_LINES: usize = 400;

/// What differs between two versions of a file: for text, the changed lines with three lines
/// of context around each change ('-' only in `a`, '+' only in `b`, ' ' both, '~' a gap);
/// for anything else, one line saying where they differ. The second value counts lines left out.
pub(crate) fn compare_lines(a: &[u8], b: &[u8]) -> (Vec<(char, String)>, usize) {
    let (Ok(ta), Ok(tb)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        let line = if a == b {
            format!("Both versions hold the same {} bytes.", a.len())
        } else {
            format!(
                "Not text: this version is {} bytes, the other {} bytes; they differ from byte {first} on.",
                a.len(),
                b.len()
            )
        };
        return (vec![('~', line)], 0);
    };
    if ta == tb {
        return (vec![('~', "Both versions hold the same text.".to_owned())], 0);
    }
    let diff = similar::TextDiff::from_lines(ta, tb);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push(('~', "...".to_owned()));
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let tag = match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                };
                out.push((tag, change.value().trim_end_matches(['\n', '\r']).to_owned()));
            }
        }
    }
    let more = out.len().saturating_sub(COMPARE_LINES);
    out.truncate(COMPARE_LINES);
    (out, more)
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
    /// Text is compared line by line, showing only changes and their context; other bytes by
    /// where they first differ.
    #[test]
    fn two_versions_are_compared_by_line_or_by_byte() {
        let a: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let b = a.replace("line 10\n", "line ten\n");
        let (lines, more) = super::compare_lines(a.as_bytes(), b.as_bytes());
        assert_eq!(more, 0);
        let changed: Vec<_> = lines.iter().filter(|(t, _)| *t != ' ').cloned().collect();
        assert_eq!(changed, [('-', "line 10".to_owned()), ('+', "line ten".to_owned())]);
        assert_eq!(lines.len(), 2 + 6, "three lines of context each side: {lines:?}");
        let (lines, _) = super::compare_lines(&[0, 1, 2, 0xff], &[0, 1, 3, 0xff, 4]);
        assert_eq!(lines[0].1, "Not text: this version is 4 bytes, the other 5 bytes; they differ from byte 2 on.");
        let (lines, _) = super::compare_lines(b"same", b"same");
        assert_eq!(lines[0].1, "Both versions hold the same text.");
    }

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
