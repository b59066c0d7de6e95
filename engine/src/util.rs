//! File and time utilities every layer above may use: atomic writes, the temp-file prefix,
//! timestamps for people, and a folder's ignore rules read from disk.

use crate::error::{Error, IoContext};
use crate::ignores::{IGNORE_FILE, Ignores, MAX_IGNORE_FILE};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Prefix of the materialiser's and restore's temp files; never recorded.
pub const TMP_PREFIX: &str = ".cobox-tmp-";

/// Write a file atomically (temp, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)
}

/// A time (ms since the epoch) as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Read a folder's ignore rules (`.coboxignore` at its root; none when it is absent), with a
/// warning per line left out. A rules file that exists but cannot be used is an error: scanning
/// without its rules could record, and send to every device, files meant to stay out.
pub fn read_ignores(root: &Path) -> Result<(Ignores, Vec<String>), Error> {
    Ok(read_rules_text(root)?.map_or_else(|| (Ignores::none(), Vec::new()), |t| Ignores::parse(&t)))
}

pub(crate) fn too_large(root: &Path, len: u64) -> Error {
    Error::Ignores {
        path: root.join(IGNORE_FILE),
        reason: format!("{len} bytes, over the {MAX_IGNORE_FILE}-byte limit; shorten it"),
    }
}

/// The text of a folder's rules file, `None` when there is none.
pub(crate) fn read_rules_text(root: &Path) -> Result<Option<String>, Error> {
    let path = root.join(IGNORE_FILE);
    let bad = |reason: String| Error::Ignores { path: path.clone(), reason };
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("{e}; fix or remove the ignore rules file"))),
    };
    if !meta.is_file() {
        return Err(bad("not a regular file; the ignore rules must be a plain text file".into()));
    }
    if meta.len() > MAX_IGNORE_FILE {
        return Err(too_large(root, meta.len()));
    }
    let text = fs::read(&path).map_err(|e| bad(format!("{e}; fix or remove the ignore rules file")))?;
    String::from_utf8(text).map(Some).map_err(|_| bad("not UTF-8 text; save it as UTF-8".into()))
}
