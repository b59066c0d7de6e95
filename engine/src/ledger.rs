//! The ledger of a space on disk: `ledger.am` next to the space's (or seed's) store.
//!
//! The CLI changes it while a daemon runs (proposing, revoking), so every change is a
//! read-merge-write under an exclusive lock on `ledger.lock`: Automerge's merge makes
//! concurrent writers lossless, and the lock makes each write see the previous one.

use crate::error::{Error, IoContext};
use crate::ids::SpaceId;
use crate::util::rfc3339;
use crate::util::write_atomic;
use cobox_agreements::{AgreementView, Ledger, LedgerView};
use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

pub use cobox_core::sync::session::MAX_HEADS;

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
    cobox_core::roster::ledger_view(space, entries, now_ms, &mut verified)
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

    /// The space's roster as this ledger holds it.
    pub fn roster(&self) -> Result<cobox_core::roster::RosterView, Error> {
        Ok(cobox_core::roster::evaluate(&self.space.0, &self.read()?.roster_ops()))
    }

    /// Make a roster operation as `device` after every one held, and record it; `co` is the
    /// second key a genesis (the space key) or a redemption (the invite key) is signed with.
    pub fn add_roster_op(
        &self,
        device: &ed25519_dalek::SigningKey,
        action: cobox_core::roster::Action,
        co: Option<&ed25519_dalek::SigningKey>,
    ) -> Result<cobox_core::roster::OpId, Error> {
        let heads = self.roster()?.heads;
        self.add_roster_op_after(device, heads, action, co)
    }

    /// [`LedgerFile::add_roster_op`] after the operations given (a redemption follows its
    /// invite, which the joining device does not hold yet).
    pub fn add_roster_op_after(
        &self,
        device: &ed25519_dalek::SigningKey,
        deps: Vec<cobox_core::roster::OpId>,
        action: cobox_core::roster::Action,
        co: Option<&ed25519_dalek::SigningKey>,
    ) -> Result<cobox_core::roster::OpId, Error> {
        use cobox_core::roster::{Op, SignedOp, op_id};
        let op = Op { space: self.space.0, author: device.verifying_key().to_bytes(), deps, action };
        let bytes = SignedOp::sign(op, device, co)
            .and_then(|o| o.encode())
            .map_err(|e| ledger_err(&self.path, format!("roster operation: {e}")))?;
        self.update(|l| l.insert_roster_op(&bytes).map_err(|e| ledger_err(&self.path, e)))?;
        Ok(op_id(&bytes))
    }

    /// Record a signed roster operation made elsewhere (a new space's genesis) or a signed
    /// heads note ([`cobox_core::heads`]), as encoded; false if already held.
    pub fn add_signed(&self, bytes: &[u8]) -> Result<bool, Error> {
        let path = self.path.clone();
        self.update(|l| l.insert_roster_op(bytes).map_err(|e| ledger_err(&path, e)))
    }

    /// The heads notes held, as stored.
    pub fn heads_notes(&self) -> Result<Vec<Vec<u8>>, Error> {
        Ok(self.read()?.heads_notes())
    }

    /// Merge a ledger held in memory (a session's) into the file; returns how many entries
    /// were new here.
    pub fn merge_from(&self, other: &mut Ledger) -> Result<usize, Error> {
        let path = self.path.clone();
        self.update(|l| l.merge(other).map_err(|e| ledger_err(&path, e)))
    }
}

/// A space's sealing keys as this device holds them: the first epoch from the space secret,
/// every later one the roster hands it (or the invite it joined by carried), and the current
/// epoch set when held. Returns the keys and, when the current epoch is not held yet, its id.
pub fn space_keys(
    space: &SpaceId,
    secret: &[u8; 64],
    view: &cobox_core::roster::RosterView,
    device: &ed25519_dalek::SigningKey,
    invite: Option<&ed25519_dalek::SigningKey>,
) -> (crate::crypto::SpaceKeys, Option<u32>) {
    let mut root = [0u8; 32];
    root.copy_from_slice(&secret[32..]);
    let mut keys = crate::crypto::SpaceKeys::derive(&root);
    for (id, key) in view.keys_for(&space.0, device, invite) {
        keys.add_epoch(id, &key);
    }
    let missing = (!keys.set_current(view.current_epoch)).then_some(view.current_epoch);
    (keys, missing)
}

/// Every epoch key `keys` was built from, for sealing to another device: the first from the
/// secret, the rest from the roster.
pub fn epoch_keys(
    space: &SpaceId,
    secret: &[u8; 64],
    view: &cobox_core::roster::RosterView,
    device: &ed25519_dalek::SigningKey,
    invite: Option<&ed25519_dalek::SigningKey>,
) -> cobox_core::epoch::EpochKeys {
    let mut all = view.keys_for(&space.0, device, invite);
    let mut root = [0u8; 32];
    root.copy_from_slice(&secret[32..]);
    all.insert(0, root);
    all
}

/// The file in a space's directory holding the key of the invite the device joined by: it
/// opens the key epochs the invite carried.
pub const INVITE_KEY: &str = "invite.key";

/// The invite key kept in a space's directory `dir`, if the device joined by one.
pub fn invite_key_at(dir: &Path) -> Option<ed25519_dalek::SigningKey> {
    let bytes: [u8; 32] = fs::read(dir.join(INVITE_KEY)).ok()?.try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// An audit result, for people and JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditSummary {
    /// When (RFC 3339).
    pub time: String,
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// Blobs challenged.
    pub challenged: u32,
    /// Blobs answered correctly.
    pub passed: u32,
    /// Every challenge answered correctly.
    pub ok: bool,
    /// Bytes the seeder reported holding.
    pub stored_bytes: u64,
    /// Device that audited.
    pub auditor: String,
}

/// One agreement, for people and JSON (and back, for the CLI beside a running daemon).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AgreementSummary {
    /// Agreement id (hex).
    pub id: String,
    /// The space.
    pub space: String,
    /// This device's name for the space (members only; a seeder never learns it).
    pub space_name: Option<String>,
    /// This device's side: "member" or "seeder".
    pub role: String,
    /// Owner device.
    pub owner: String,
    /// Seeder device.
    pub seeder: String,
    /// Quota in bytes.
    pub quota: u64,
    /// Term start (RFC 3339).
    pub start: String,
    /// Term end (RFC 3339).
    pub end: String,
    /// Free-text terms.
    pub terms: String,
    /// Where it stands (in JSON: proposed, active, revoked, expired or invalid).
    pub state: cobox_agreements::State,
    /// The proposal's (and acceptance's) signatures verify.
    pub signatures_ok: bool,
    /// Why it is invalid.
    pub problem: Option<String>,
    /// The seeder's answer to a proposal it did not take by itself (why it waits).
    #[serde(default)]
    pub answer: Option<String>,
    /// Who runs the seeder, in its own signed words (`cobox up --operator`).
    #[serde(default)]
    pub operator: Option<String>,
    /// The newest audit.
    pub last_audit: Option<AuditSummary>,
    /// Counts towards the replication count now.
    pub verified: bool,
}

/// An audit record for people and JSON.
pub fn audit_summary(a: &cobox_agreements::AuditRecord) -> AuditSummary {
    AuditSummary {
        time: rfc3339(a.time_ms),
        time_ms: a.time_ms,
        challenged: a.challenged,
        passed: a.passed,
        ok: a.ok(),
        stored_bytes: a.stored_bytes,
        auditor: hex::encode(a.auditor),
    }
}

pub(crate) fn summary(v: &AgreementView, name: Option<&str>, role: &'static str, now: i64) -> AgreementSummary {
    let a = &v.agreement;
    AgreementSummary {
        id: v.id.to_string(),
        space: hex::encode(a.space),
        space_name: name.map(str::to_owned),
        role: role.into(),
        owner: hex::encode(a.owner),
        seeder: hex::encode(a.seeder),
        quota: a.quota,
        start: rfc3339(a.start_ms),
        end: rfc3339(a.end_ms),
        terms: a.terms.clone(),
        state: v.state,
        signatures_ok: v.signatures_ok,
        problem: v.problem.clone(),
        // Only while it waits: once taken or ended, the answer is history.
        answer: v.answer.as_ref().filter(|_| v.state == cobox_agreements::State::Proposed).map(|a| a.reason.clone()),
        operator: v.operator.as_ref().map(|o| o.name.clone()),
        last_audit: v.last_audit().map(audit_summary),
        verified: v.verified(now, AUDIT_WINDOW_MS),
    }
}
