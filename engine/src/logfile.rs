//! The daemon's log file: one JSON object per line in `$COBOX_HOME/logs/cobox.log`, rotated at
//! 10 MiB with five older files kept (`cobox.log.1` newest), read back by `cobox logs`.

use crate::error::{Error, IoContext};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file is rotated once it holds this many bytes.
pub const ROTATE_AT: u64 = 10 << 20;
/// Rotated files kept besides the live one.
pub const KEEP: usize = 5;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// When (ms since the epoch).
    pub ms: i64,
    /// `info`, or `warn` for a refusal or a failure.
    pub level: String,
    /// What happened.
    pub msg: String,
}

impl Line {
    /// A line for `msg` at `ms`; refusals and failures are warnings.
    pub fn new(ms: i64, msg: &str) -> Self {
        let lower = msg.to_ascii_lowercase();
        // Whole words only: "successfully", "fully" and "0 errors" are ordinary reports.
        let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
        let warn = words.iter().enumerate().any(|(i, w)| match *w {
            "refused" | "failed" | "error" | "cannot" | "full" | "corrupt" | "lost" | "stale" => true,
            "errors" => i == 0 || words[i - 1] != "0",
            _ => false,
        });
        Self {
            time: crate::util::rfc3339(ms),
            ms,
            level: if warn { "warn" } else { "info" }.into(),
            msg: crate::util::printable(msg).into_owned(),
        }
    }
}

/// The log folder of a home.
pub fn dir(root: &Path) -> PathBuf {
    root.join("logs")
}

fn live(root: &Path) -> PathBuf {
    dir(root).join("cobox.log")
}

fn rotated(root: &Path, n: usize) -> PathBuf {
    dir(root).join(format!("cobox.log.{n}"))
}

/// An open log file, appended to by the daemon.
pub struct LogFile {
    root: PathBuf,
    rotate_at: u64,
    file: Mutex<Option<(File, u64)>>,
}

impl LogFile {
    /// Open (or create) the home's log for appending.
    pub fn open(root: &Path) -> Result<Self, Error> {
        Self::open_with(root, ROTATE_AT)
    }

    /// The same, rotating at `rotate_at` bytes (tests rotate small files).
    pub fn open_with(root: &Path, rotate_at: u64) -> Result<Self, Error> {
        fs::create_dir_all(dir(root)).at(dir(root))?;
        let f = Self::append(root)?;
        Ok(Self { root: root.to_owned(), rotate_at, file: Mutex::new(Some(f)) })
    }

    fn append(root: &Path) -> Result<(File, u64), Error> {
        let path = live(root);
        let f = OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
        let len = f.metadata().at(&path)?.len();
        Ok((f, len))
    }

    /// Append one line; a line that cannot be written is dropped (the log must never stop
    /// the daemon), and the next write tries again.
    pub fn write(&self, ms: i64, msg: &str) {
        let Ok(mut text) = serde_json::to_string(&Line::new(ms, msg)) else { return };
        text.push('\n');
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|(_, len)| *len + text.len() as u64 > self.rotate_at) {
            *g = None;
            self.rotate();
        }
        if g.is_none() {
            *g = Self::append(&self.root).ok();
        }
        if let Some((f, len)) = g.as_mut() {
            if f.write_all(text.as_bytes()).is_ok() {
                *len += text.len() as u64;
            } else {
                *g = None;
            }
        }
    }

    /// `cobox.log` becomes `.1`, `.1` becomes `.2`, ..., the oldest goes.
    fn rotate(&self) {
        let _ = fs::remove_file(rotated(&self.root, KEEP));
        for n in (1..KEEP).rev() {
            let _ = fs::rename(rotated(&self.root, n), rotated(&self.root, n + 1));
        }
        let _ = fs::rename(live(&self.root), rotated(&self.root, 1));
    }
}

/// The log's files, newest first: the live one, then `.1` to `.5`.
fn newest_first(root: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    std::iter::once(live(root)).chain((1..=KEEP).map(move |k| rotated(root, k)))
}

/// The lines of one log file, or none when it does not exist.
fn lines_of(path: &Path) -> Result<Vec<Line>, Error> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t.lines().filter(|l| !l.trim().is_empty()).map(parse).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).at(path),
    }
}

/// The last `n` lines of the log, oldest first, across rotated files. A line that is not JSON
/// (a torn write at a crash) is shown as its text. Older files are read only when the newer
/// ones hold fewer than `n` lines.
pub fn tail(root: &Path, n: usize) -> Result<Vec<Line>, Error> {
    let mut newest: Vec<Line> = Vec::new();
    for path in newest_first(root) {
        if newest.len() >= n {
            break;
        }
        let want = n - newest.len();
        newest.extend(lines_of(&path)?.into_iter().rev().take(want));
    }
    newest.reverse();
    Ok(newest)
}

/// The newest warning in the log (a refusal or a failure), for health reports: files are read
/// newest first, and reading stops at the first that holds one.
pub fn last_warning(root: &Path) -> Option<Line> {
    newest_first(root).find_map(|p| lines_of(&p).ok()?.into_iter().rev().find(|l| l.level == "warn"))
}

/// One line of the file.
pub fn parse(l: &str) -> Line {
    serde_json::from_str(l).unwrap_or_else(|_| Line {
        time: String::new(),
        ms: 0,
        level: "info".into(),
        msg: crate::util::printable(l).into_owned(),
    })
}

/// The live file's path and length, for `cobox logs --follow`.
pub fn live_file(root: &Path) -> PathBuf {
    live(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ordinary reports are not warnings because a word holds a warning's letters.
    #[test]
    fn levels_go_by_whole_words() {
        for (msg, level) in [
            ("space 1a2b: synced successfully, 0 errors", "info"),
            ("space 1a2b: rescanned fully: 2 added, 1 changed", "info"),
            ("restore: 3 errors", "warn"),
            ("disk full while writing a pack", "warn"),
            ("sync of 1a2b with 3c4d failed: no answer", "warn"),
            ("space 1a2b: 2 corrupt or missing blob(s) dropped", "warn"),
        ] {
            assert_eq!(Line::new(0, msg).level, level, "{msg}");
        }
    }

    #[test]
    fn lines_rotate_and_the_tail_reads_across_files() {
        let home = tempfile::tempdir().unwrap();
        let log = LogFile::open_with(home.path(), 2_000).unwrap();
        for i in 0..200 {
            log.write(1_000 + i, &format!("event {i}"));
        }
        log.write(5_000, "session with 1234 refused or failed: nope");
        // Rotated, and no more than KEEP old files.
        assert!(rotated(home.path(), 1).exists());
        assert!(!rotated(home.path(), KEEP + 1).exists());
        assert!(fs::metadata(live(home.path())).unwrap().len() <= 2_000);
        let t = tail(home.path(), 10).unwrap();
        assert_eq!(t.len(), 10);
        assert_eq!(t[9].msg, "session with 1234 refused or failed: nope");
        assert_eq!(t[9].level, "warn");
        assert_eq!(t[8].msg, "event 199");
        assert_eq!(t[8].level, "info");
        assert_eq!(t[0].msg, "event 191", "oldest first, across the rotated file");
        assert_eq!(last_warning(home.path()).map(|l| l.ms), Some(5_000));
        // A torn line (a crash mid-write) reads as text; control characters never reach a terminal.
        fs::write(live(home.path()), "{\"time\":\ntorn\u{1b}[2J\n").unwrap();
        let t = tail(home.path(), 2).unwrap();
        assert_eq!(t[1].msg, "torn\\u{1b}[2J");
    }
}
