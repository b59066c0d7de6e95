//! The engine's error type. Each variant names what failed and, where it helps, what to do.

use crate::crypto::OpenError;
use crate::ids::BlobId;
use crate::manifest::ManifestError;
use crate::store::StoreError;
use std::path::PathBuf;

/// What a seeder out of disk tells the member pushing to it (and the member shows as "seeder
/// full", not as a failed sync or audit). Its paths stay its own.
pub const SEEDER_FULL: &str = "seeder full: its disk has no space left, so it took no more blobs and keeps what it \
     holds; its operator frees space, or the owner proposes to another seeder";

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The disk filled up; what was stored before is intact.
    #[error("disk full while writing {path}: free some space and run the command again")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest is corrupt.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A manifest entry could not be encoded or decoded.
    #[error(transparent)]
    Entry(#[from] crate::entry::EntryError),
    /// A stored blob failed to open.
    #[error("blob {blob}: {source}")]
    Blob {
        /// The blob.
        blob: BlobId,
        /// Why.
        source: OpenError,
    },
    /// Another process owns this home.
    #[error("{home} is in use by another cobox process{pid}; stop it or use another COBOX_HOME")]
    Locked {
        /// The home directory.
        home: PathBuf,
        /// " (pid N)" when known.
        pid: String,
    },
    /// No space has that name or id.
    #[error("no space named {0:?}; `cobox space list` shows the spaces on this device")]
    SpaceNotFound(String),
    /// A space joined by an invite whose first sync has not happened: no member or seeder
    /// has accepted the invite yet, so this device holds no key of it.
    #[error(
        "space {0:?} waits for its first sync: a member or seeder must accept this device's invite (cobox sync {0}, or start cobox up)"
    )]
    JoinPending(String),
    /// A name or id prefix matches several spaces.
    #[error("{0:?} matches several spaces; use the full space id")]
    Ambiguous(String),
    /// The name or folder is taken.
    #[error("{0}")]
    SpaceExists(String),
    /// A space name that cannot be used.
    #[error("invalid space name {0:?}: use 1-100 characters without '/' or control characters")]
    InvalidName(String),
    /// No member or invite matches.
    #[error("{0}")]
    NotFound(String),
    /// A member or device name that cannot be used.
    #[error("invalid name {0:?}: use 1-64 bytes without control or text-direction characters")]
    InvalidMemberName(String),
    /// An invite code that decodes but cannot be used.
    #[error("the invite cannot be used: {0}")]
    BadInvite(String),
    /// A space's folder is gone (moved, unmounted, deleted).
    #[error("the folder {0} of this space is missing: mount or restore it, or move the space with its new path")]
    FolderMissing(PathBuf),
    /// A restore ran but some files could not be written.
    #[error("restore failed: {0}")]
    RestoreFailed(String),
    /// A manifest path or argument is unsafe or malformed.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The requested history state does not exist.
    #[error("{0}")]
    NoHistory(String),
    /// A peer's data or request was refused.
    #[error("refused: {0}")]
    Refused(String),
    /// The network failed (in this device's words: a deadline, a peer that did not answer).
    #[error("network: {0}")]
    Net(String),
    /// The QUIC transport failed: its words with their causes, and the error itself.
    #[error("network: {message}")]
    Transport {
        /// What failed, with each cause's words.
        message: String,
        /// iroh's error, for code to look into.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The peer refused, and what kind of refusal it said it was.
    #[error("refused: the peer refused: {reason}")]
    PeerRefused {
        /// The kind, for code to act on.
        code: cobox_core::sync::proto::Refusal,
        /// The peer's words.
        reason: String,
    },
    /// This seeder's disk is full: it took no more blobs and keeps what it holds.
    #[error("{}", SEEDER_FULL)]
    SeederFull,
    /// Work on this device stopped unexpectedly (a bug, not the network or a peer): what it
    /// was doing and how it stopped.
    #[error(
        "{0} stopped unexpectedly on this device ({1}); nothing was changed past that point. This is a bug in CoBox: please report it with the log"
    )]
    Internal(&'static str, String),
    /// A folder's ignore rules file exists but cannot be used; nothing is scanned until it can.
    #[error("cannot use the ignore rules in {path}: {reason}")]
    Ignores {
        /// The rules file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A value could not be encoded for writing (nothing was written).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A state file in the home is malformed.
    #[error("{path} is malformed: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The kind of refusal this error is, when a peer refused or this seeder is full.
    pub fn refusal(&self) -> Option<cobox_core::sync::proto::Refusal> {
        match self {
            Error::PeerRefused { code, .. } => Some(*code),
            Error::SeederFull => Some(cobox_core::sync::proto::Refusal::SeederFull),
            _ => None,
        }
    }

    /// Wrap an I/O error with its path, recognising a full disk.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            Error::DiskFull { path }
        } else {
            Error::Io { path, source }
        }
    }
}

/// JSON for a state file, or [`Error::Encode`] naming it.
pub(crate) fn json(what: &'static str, v: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::Encode { what, reason: e.to_string() })
}

/// Shorthand for `map_err(|e| Error::io(path, e))`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|e| Error::io(path, e))
    }
}
