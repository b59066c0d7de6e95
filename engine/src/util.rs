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
    // A name of its own per writer: two processes writing one file (the daemon and a command
    // beside it) must not share a temp file; the last rename wins whole.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)
}

/// Bytes free to this user on the filesystem holding `path` (`None`: it could not be read).
pub fn disk_free(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path).ok().map(|v| v.f_bavail.saturating_mul(v.f_frsize))
}

/// `text` (a file name from the manifest, a peer's words) fit for a terminal or a log line:
/// control characters (escape sequences, carriage returns, newlines) are shown as `\u{..}`, so
/// a name another device chose cannot rewrite what the user sees or forge log lines.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A character that changes how text around it shows: a control character, or a
/// bidirectional override or isolate (a name with U+202E shows its end reversed, so
/// `doc\u{202e}fdp.exe` reads as "docexe.pdf").
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A name a person gives (a device, a member, an invite): trimmed, at most 64 bytes, with no
/// control or bidirectional formatting characters. `None`: not one.
pub fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.len() <= 64 && !name.chars().any(hidden)).then_some(name)
}

/// Text a person typed, cut to a length an error message can repeat.
pub fn shortened(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} characters)", &text[..at], text.chars().count()),
        None => text.to_owned(),
    }
}

/// The name "Keep both" gives a conflict's other version: `notes (other version).md` beside
/// `notes.md`.
pub fn other_version_name(original: &str) -> String {
    other_version_name_n(original, 1)
}

/// The `n`th such name (`notes (other version 2).md`), when the first is taken.
pub fn other_version_name_n(original: &str, n: u32) -> String {
    let (stem, ext) = match original.rfind('.').filter(|&i| i > original.rfind('/').map_or(0, |j| j + 1)) {
        Some(i) => (&original[..i], &original[i..]),
        None => (original, ""),
    };
    if n <= 1 { format!("{stem} (other version){ext}") } else { format!("{stem} (other version {n}){ext}") }
}

/// A time (ms since the epoch) as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(ms: i64) -> String {
    // Any i64 a peer put in a ledger prints: beyond the calendar's range, its last instant.
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    } else {
        chrono::DateTime::<chrono::Utc>::MAX_UTC
    });
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

/// A home's device key file and spaces folder (`home::paths` names them from these).
pub(crate) const HOME_KEY: &str = "device.key";
pub(crate) const HOME_SPACES: &str = "spaces";

/// Whether `dir` is a CoBox home (it holds a device key and a spaces folder).
pub(crate) fn is_home(dir: &Path) -> bool {
    dir.join(HOME_KEY).is_file() && dir.join(HOME_SPACES).is_dir()
}

/// A JSON file, or the default when it does not exist; a damaged one is an error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config { path: path.to_owned(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// At most `n` of `items`, comma-separated, and how many more there were.
pub(crate) fn list_some(items: impl Iterator<Item = String>, n: usize) -> String {
    let all: Vec<String> = items.collect();
    let shown = all[..all.len().min(n)].join(", ");
    match all.len().saturating_sub(n) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    /// Any time a peer can write prints as a date (a far end once printed as "" and a slice of
    /// it panicked).
    #[test]
    fn every_time_prints() {
        for ms in [i64::MIN, -1, 0, 253_402_300_799_999, 86_400_000_000_000_000, i64::MAX] {
            assert!(super::rfc3339(ms).len() >= 20, "{ms}: {}", super::rfc3339(ms));
        }
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(super::printable("plain/näme.txt"), "plain/näme.txt");
        assert_eq!(super::printable("a\x1b[2Jb\r\nc"), "a\\u{1b}[2Jb\\u{d}\\u{a}c");
        // A right-to-left override would show "docexe.pdf".
        assert_eq!(super::printable("doc\u{202e}fdp.exe"), "doc\\u{202e}fdp.exe");
        assert_eq!(super::valid_name("Bo\u{2066}b"), None);
        assert_eq!(super::valid_name("  Ana's desk "), Some("Ana's desk"));
        assert!(super::shortened(&"x".repeat(10_000)).len() < 120);
    }
}

/// A role by the name commands take and print (`read`, `write`, `manage`; `reader` and the
/// like are taken too).
pub(crate) mod role_name {
    use cobox_core::roster::Role;

    pub(crate) fn serialize<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.as_str())
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// What a caught panic said (its message when it had one).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_owned(),
    }
}
