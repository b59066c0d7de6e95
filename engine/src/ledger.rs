//! The ledger of a space on disk: `ledger.am` next to the space's (or seed's) store.
//!
//! The CLI changes it while a daemon runs (proposing, revoking), so every change is a
//! read-merge-write under an exclusive lock on `ledger.lock`: Automerge's merge makes
//! concurrent writers lossless, and the lock makes each write see the previous one.

use crate::error::{Error, IoContext};
use crate::home::write_atomic;
use crate::ids::SpaceId;
use cobox_agreements::{Ledger, LedgerView};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// Most ledger heads (with their parents) a `Hello` carries; a handful is usual.
pub const MAX_HEADS: usize = 64;

/// Passed audits older than this no longer count towards the replication count.
pub const AUDIT_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Evaluate entries with this process's remembered signature verdicts: every sync session
/// evaluates its space's ledger, which grows with each audit, and verifying 10,000 entries
/// takes over half a second.
pub fn evaluate_verified(space: &SpaceId, entries: &[(String, Vec<u8>)], now_ms: i64) -> LedgerView {
    static VERIFIED: std::sync::LazyLock<std::sync::Mutex<cobox_agreements::Verified>> =
        std::sync::LazyLock::new(Default::default);
    let mut verified = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    // About 100 bytes each: a bound on memory far above any one ledger.
    if verified.len() > 4_000_000 {
        verified.clear();
    }
    cobox_agreements::evaluate_with(&space.0, entries, now_ms, &mut verified)
}

/// The ledger file of one space on this device.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    space: SpaceId,
    path: PathBuf,
}

fn ledger_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config { path: path.to_owned(), reason: e.to_string() }
}

impl LedgerFile {
    /// The ledger kept in `dir`.
    pub fn new(space: SpaceId, dir: &Path) -> Self {
        Self { space, path: dir.join("ledger.am") }
    }

    /// Read the current ledger (empty when there is none yet).
    pub fn read(&self) -> Result<Ledger, Error> {
        match fs::read(&self.path) {
            Ok(b) => Ledger::load(&b).map_err(|e| ledger_err(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// Change the ledger under its lock; it is written back only when `f` added entries.
    pub fn update<R>(&self, f: impl FnOnce(&mut Ledger) -> Result<R, Error>) -> Result<R, Error> {
        let lock_path = self.path.with_extension("lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).at(&lock_path)?;
        lock.lock().at(&lock_path)?;
        let mut ledger = self.read()?;
        let before = ledger.len();
        let r = f(&mut ledger)?;
        if ledger.len() != before {
            write_atomic(&self.path, &ledger.save())?;
        }
        Ok(r)
    }

    /// Merge what a peer sent (its ledger, or its changes since our heads); returns how many
    /// entries were new.
    pub fn merge_bytes(&self, bytes: &[u8]) -> Result<usize, Error> {
        self.update(|l| l.merge_bytes(bytes).map_err(|e| Error::Refused(format!("the peer's ledger: {e}"))))
    }

    /// Add one entry.
    pub fn insert(&self, entry: &cobox_agreements::Entry) -> Result<bool, Error> {
        self.update(|l| l.insert(entry).map_err(|e| ledger_err(&self.path, e)))
    }

    /// Every entry verified and every agreement's state at `now_ms`.
    pub fn view(&self, now_ms: i64) -> Result<LedgerView, Error> {
        Ok(evaluate_verified(&self.space, &self.read()?.raw_entries(), now_ms))
    }

    /// The digest of the ledger's heads (see [`Ledger::digest`]), sent in `Hello`.
    pub fn digest(&self) -> Result<[u8; 32], Error> {
        Ok(self.read()?.digest())
    }

    /// The whole document, for a peer: the file as saved (it is already an Automerge save).
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        match fs::read(&self.path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::new().save()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// The ledger's heads and their parents ([`Ledger::heads_and_parents`]), for `Hello` and
    /// [`LedgerFile::bytes_since`]: none when there are more than [`MAX_HEADS`] (a peer then
    /// sends its whole ledger).
    pub fn heads(&self) -> Result<Vec<[u8; 32]>, Error> {
        let heads = self.read()?.heads_and_parents();
        Ok(if heads.len() > MAX_HEADS { Vec::new() } else { heads })
    }

    /// [`LedgerFile::bytes_since`] when this ledger holds every change `theirs` names (so it
    /// knows exactly what the peer lacks), else `None`. One read of the file.
    pub fn bytes_if_ahead(&self, theirs: &[[u8; 32]]) -> Result<Option<Vec<u8>>, Error> {
        let mut l = self.read()?;
        let theirs = &theirs[..theirs.len().min(MAX_HEADS)];
        Ok(theirs.iter().all(|h| l.has_change(h)).then(|| l.changes_since(theirs)))
    }

    /// What a peer whose `Hello` named `theirs` lacks (see [`Ledger::changes_since`]): empty
    /// when it lacks nothing. At most [`MAX_HEADS`] of its heads are looked at.
    pub fn bytes_since(&self, theirs: &[[u8; 32]]) -> Result<Vec<u8>, Error> {
        Ok(self.read()?.changes_since(&theirs[..theirs.len().min(MAX_HEADS)]))
    }
}
