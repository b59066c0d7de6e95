//! The manifest entry: one compact scalar per path. Pure.

use crate::ids::BlobId;
use serde::{Deserialize, Serialize};

/// Encoding version byte written before every entry.
pub const ENTRY_VERSION: u8 = 1;

/// Where a file's bytes live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Content {
    /// Zero-length file.
    Empty,
    /// One chunk blob holds the whole file.
    Single(BlobId),
    /// A chunk-list blob names the chunks in order.
    List {
        /// The chunk-list blob.
        list: BlobId,
        /// How many chunks it names.
        chunks: u32,
    },
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file.
    File {
        /// Length in bytes.
        size: u64,
        /// Its content.
        content: Content,
    },
    /// A directory (recorded so empty ones survive a restore).
    Dir,
    /// A symbolic link, stored as its target text and never followed.
    Symlink {
        /// The link target as written.
        target: String,
    },
    /// The path was deleted; kept so deletes merge and history stays readable.
    Deleted,
}

/// The state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// File, directory, link or tombstone.
    pub kind: Kind,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Unix permission bits.
    pub mode: u32,
    /// Short id (first 8 bytes) of the device that recorded this state.
    pub device: [u8; 8],
}

/// An entry could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("manifest entry is malformed: {0}")]
pub struct EntryError(String);

impl Entry {
    /// Encode as `version | postcard`.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = vec![ENTRY_VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| EntryError(format!("cannot encode: {e}")))?);
        Ok(out)
    }

    /// Decode an encoded entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        match bytes.split_first() {
            Some((&ENTRY_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| EntryError(e.to_string())),
            Some((v, _)) => Err(EntryError(format!("unknown entry version {v}"))),
            None => Err(EntryError("empty".into())),
        }
    }

    /// Whether the path exists in this state.
    pub fn is_live(&self) -> bool {
        !matches!(self.kind, Kind::Deleted)
    }

    /// Same folder state, ignoring which device recorded it. A link is its target: its own
    /// time is whenever a device wrote it (the materialiser cannot carry it), so comparing it made
    /// every device that wrote a link see an edit, and two of them a conflict, over and over.
    pub fn same_state(&self, other: &Entry) -> bool {
        match self.kind {
            Kind::Symlink { .. } => self.kind == other.kind,
            _ => self.kind == other.kind && self.mode == other.mode && self.mtime_ns == other.mtime_ns,
        }
    }

    /// File size, or 0 for anything else.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        }
    }
}

/// Encode a chunk list: 36 bytes per chunk (blob id, plaintext length LE).
pub fn encode_chunk_list(chunks: &[(BlobId, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * 36);
    for (id, len) in chunks {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    out
}

/// Decode a chunk list.
pub fn decode_chunk_list(bytes: &[u8]) -> Result<Vec<(BlobId, u32)>, EntryError> {
    if !bytes.len().is_multiple_of(36) {
        return Err(EntryError(format!("chunk list length {} is not a multiple of 36", bytes.len())));
    }
    Ok(bytes
        .chunks_exact(36)
        .map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(&c[..32]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&c[32..]);
            (BlobId(id), u32::from_le_bytes(len))
        })
        .collect())
}

/// The mode a file or folder from the manifest is given on disk: the permission bits without
/// setuid, setgid, sticky or world-write, whatever another device recorded (Syncthing also keeps
/// only permission bits). A member must not be able to plant a setuid program or a folder any
/// local user may write into on another member's machine.
pub fn safe_mode(mode: u32) -> u32 {
    mode & 0o775
}

/// Check a manifest path is a safe relative path: no empty, `.` or `..` components, not
/// absolute, no backslashes or NULs. The materialiser and restore refuse anything else.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err(format!("absolute path {path:?}"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(format!("path {path:?} contains a NUL or backslash"));
    }
    for comp in path.split('/') {
        match comp {
            "" | "." | ".." => return Err(format!("path {path:?} has an empty, '.' or '..' component")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entry_is_compact() {
        let e = Entry {
            kind: Kind::File { size: 123_456_789, content: Content::Single(BlobId([9; 32])) },
            mtime_ns: 1_700_000_000_123_456_789,
            mode: 0o100644,
            device: [1; 8],
        };
        let enc = e.encode().unwrap();
        assert!(enc.len() <= 64, "{} bytes", enc.len());
        assert_eq!(Entry::decode(&enc).unwrap(), e);
        assert!(Entry::decode(&[]).is_err());
        assert!(Entry::decode(&[9, 1, 2]).is_err());
    }

    #[test]
    fn paths_are_validated() {
        for bad in ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/", "a\\b"] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b c/ü.txt", "...", "a..b"] {
            assert!(validate_path(good).is_ok(), "{good:?} refused");
        }
    }

    proptest! {
        #[test]
        fn chunk_list_round_trip(ids in proptest::collection::vec((any::<[u8; 32]>(), any::<u32>()), 0..50)) {
            let list: Vec<(BlobId, u32)> = ids.into_iter().map(|(b, l)| (BlobId(b), l)).collect();
            prop_assert_eq!(decode_chunk_list(&encode_chunk_list(&list)).unwrap(), list);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Entry::decode(&bytes);
            let _ = decode_chunk_list(&bytes);
        }
    }
}
