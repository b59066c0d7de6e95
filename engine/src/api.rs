//! The control protocol's types: what a front end asks a daemon for and what it answers, one
//! type each, the same on the daemon's control socket, in the HTTP API (`docs/http-api.md`,
//! whose JSON they are) and in the CLI that reads them. The routes deserialize the requests and
//! serialize the answers; the CLI does the reverse, so neither side builds or picks apart JSON
//! by hand and the two cannot drift apart.

use crate::ledger::{AgreementSummary, AuditSummary};
use crate::sync::net::SyncStats;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `POST /api/spaces`: a new space over `path` (absolute; made if missing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSpace {
    /// Its name on this device.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
}

/// What [`CreateSpace`] made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpaceCreated {
    /// The space's id (hex).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
    /// Whether the folder was made for it.
    pub created_folder: bool,
}

/// `POST /api/join`: join a space by an invite code, into a folder or audit-only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    /// The invite code.
    pub code: String,
    /// The folder (absolute); none for an audit-only join.
    pub path: Option<PathBuf>,
    /// A local name (default: the inviter's).
    pub name: Option<String>,
    /// Keep no folder: only audit the space's seeders.
    #[serde(default)]
    pub audit_only: bool,
}

/// What [`Join`] registered: pending until a peer lets this device in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    /// The space's id (hex).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its folder (empty when audit-only).
    pub path: PathBuf,
    /// Not let in yet (always, right after a join).
    pub pending: bool,
}

/// One entry of `GET /api/spaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum SpaceEntry {
    /// A space this device is a member of.
    Member {
        /// The space's id (hex).
        id: String,
        /// Its name.
        name: String,
        /// Its folder.
        path: PathBuf,
    },
    /// A space this device seeds for others.
    Seeder {
        /// The space's id (hex).
        id: String,
        /// Bytes it holds for the space.
        stored_bytes: u64,
    },
}

/// `POST /api/seed/fetch`, `/accept` and `/cancel`: a seed code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedCode {
    /// The code the owner's `cobox agreement propose` printed.
    pub code: String,
}

/// What `POST /api/seed/cancel` forgot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forgotten {
    /// The space whose seed was forgotten (hex).
    pub forgotten: String,
}

/// `POST /api/spaces/ID/target`: how many verified copies the space wants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Seeders holding verified copies, wanted.
    pub copies: u32,
}

/// What [`Target`] set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetSet {
    /// The space's name.
    pub name: String,
    /// The target now.
    pub replicas_target: u32,
}

/// `POST /api/spaces/ID/gc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Gc {
    /// Prune history older than this many ms (none: keep all history).
    pub keep_within_ms: Option<i64>,
}

/// `POST /api/spaces/ID/restore`: into `dir`, an absolute path on the daemon's machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restore {
    /// Where to write.
    pub dir: PathBuf,
    /// An RFC 3339 time or a history id; none: the latest state.
    pub at: Option<String>,
    /// One path (a file or a folder) instead of the whole space.
    pub path: Option<String>,
    /// Replace files already in `dir`.
    #[serde(default)]
    pub overwrite: bool,
}

/// `POST /api/spaces/ID/undelete`: a deleted path back as it was before its deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Undelete {
    /// The path, relative to the space's folder.
    pub path: String,
}

/// `POST /api/spaces/ID/sync`: the peers to sync with (`ID[@IP:PORT,...]`); none: every peer
/// met in the space.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncPeers {
    /// The peers.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// How one peer's work went: what it did, or why it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ran<T> {
    /// It did this.
    Stats(T),
    /// It failed, and why.
    Error(String),
}

/// One peer's part of a sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRun {
    /// The peer (hex device id).
    pub peer: String,
    /// `stats` or `error`.
    #[serde(flatten)]
    pub ran: Ran<SyncStats>,
}

/// `POST /api/spaces/ID/audit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Audit {
    /// Challenge every blob instead of a sample.
    #[serde(default)]
    pub all: bool,
    /// Seeders to audit (`ID[@IP:PORT,...]`); none: every seeder with an active agreement.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// One seeder's audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRun {
    /// The seeder (hex device id).
    pub seeder: String,
    /// The audit's result, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AuditSummary>,
    /// Why it could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the sync before it failed (the audit then drew from what was known).
    pub sync_error: Option<String>,
}

/// What `POST /api/spaces/ID/members/DEVICE/remove` removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    /// The member's name.
    pub removed: String,
}

/// `POST /api/spaces/ID/members/DEVICE/role`, and what it set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRole {
    /// The member's name (in the answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// `read`, `write` or `manage`.
    #[serde(with = "crate::util::role_name")]
    pub role: cobox_core::roster::Role,
}

/// `POST /api/spaces/ID/invites`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    /// The role the invite grants.
    #[serde(with = "crate::util::role_name")]
    pub role: cobox_core::roster::Role,
    /// Hours until it expires.
    #[serde(default = "a_week")]
    pub expires_hours: u32,
    /// A name for the device it admits.
    #[serde(default)]
    pub name: Option<String>,
}

fn a_week() -> u32 {
    7 * 24
}

/// What [`Invite`] made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteMade {
    /// The code to hand over.
    pub code: String,
    /// The role it grants.
    #[serde(with = "crate::util::role_name")]
    pub role: cobox_core::roster::Role,
    /// When it expires (RFC 3339).
    pub expires: String,
}

/// What `POST /api/spaces/ID/invites/ID/cancel` cancelled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cancelled {
    /// The invite's id.
    pub cancelled: String,
}

/// What `POST /api/agreements` proposed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    /// The agreement, as signed by this device.
    pub agreement: AgreementSummary,
    /// The code for the seeder's `cobox seed`.
    pub seed_code: String,
}

/// `POST /api/seeders/ask`: one `cobox/admin/2` request to a seeder, sent from the daemon's
/// endpoint; the answer is the seeder's `admin::Response` (a refusal included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeederAsk {
    /// The seeder, `ID@ADDR,...`.
    pub seeder: String,
    /// What to ask.
    pub request: crate::admin::Request,
}

/// `POST /api/spaces/{space}/recovery/setup`: a new recovery key split among custodians; the
/// answer is an `ops::RecoveryReport`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoverySetup {
    /// The custodians, `ID[@ADDR,...]`.
    pub custodians: Vec<String>,
    /// How many of them rebuild the key.
    pub threshold: usize,
    /// The waiting period, in seconds.
    pub wait_s: u64,
}

/// `POST /api/recovery/approve`: release this custodian's share to a request; the answer is
/// an `ops::Approved`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryApprove {
    /// The request code (`cobox-recover-...`).
    pub code: String,
}

/// A refused or failed request's answer (with an HTTP status of 4xx or 5xx).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    /// Why, for people.
    pub error: String,
    /// When a peer refused: what kind of refusal, for programs (a full seeder, a refused invite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<crate::sync::proto::Refusal>,
}

/// One line of an answer that streams its progress (`?progress=1`, JSON lines): phases and
/// bytes as the work goes, warnings, then the result or the error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Progressed<R> {
    /// A phase began, with its total bytes.
    Start {
        /// What it does.
        phase: String,
        /// Bytes it will go through.
        total: u64,
    },
    /// This many more bytes are done.
    Advance(u64),
    /// Something to tell, not fatal.
    Warn(String),
    /// The work is done: its report.
    Result(R),
    /// The work failed: why.
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The types are the JSON docs/http-api.md shows, field for field.
    #[test]
    fn the_wire_is_what_the_api_doc_says() {
        let run = SyncRun { peer: "ab".into(), ran: Ran::Error("no answer".into()) };
        assert_eq!(serde_json::to_value(&run).unwrap(), serde_json::json!({ "peer": "ab", "error": "no answer" }));
        let back: SyncRun =
            serde_json::from_value(serde_json::json!({ "peer": "ab", "stats": SyncStats::default() })).unwrap();
        assert!(matches!(back.ran, Ran::Stats(s) if s == SyncStats::default()));
        let seeder = SpaceEntry::Seeder { id: "cd".into(), stored_bytes: 7 };
        assert_eq!(
            serde_json::to_value(&seeder).unwrap(),
            serde_json::json!({ "id": "cd", "role": "seeder", "stored_bytes": 7 })
        );
        let lines = [
            (Progressed::Start { phase: "scanning".into(), total: 9 }, r#"{"start":{"phase":"scanning","total":9}}"#),
            (Progressed::Advance(4), r#"{"advance":4}"#),
            (Progressed::Warn("odd".into()), r#"{"warn":"odd"}"#),
            (Progressed::Result(1), r#"{"result":1}"#),
            (Progressed::Error("gone".into()), r#"{"error":"gone"}"#),
        ];
        for (event, line) in lines {
            assert_eq!(serde_json::to_string(&event).unwrap(), line);
            assert_eq!(serde_json::from_str::<Progressed<i32>>(line).unwrap(), event);
        }
        let audit = AuditRun { seeder: "ef".into(), result: None, error: Some("offline".into()), sync_error: None };
        assert_eq!(
            serde_json::to_value(&audit).unwrap(),
            serde_json::json!({ "seeder": "ef", "error": "offline", "sync_error": null })
        );
        // An agreement's state is an enum in the engine and its lowercase name on the wire.
        let active = cobox_agreements::State::Active;
        assert_eq!(serde_json::to_value(active).unwrap(), "active");
        assert_eq!(
            serde_json::from_str::<cobox_agreements::State>(r#""revoked""#).unwrap(),
            cobox_agreements::State::Revoked
        );
        let role: MemberRole = serde_json::from_str(r#"{"role":"reader"}"#).unwrap();
        assert_eq!(role.role, cobox_core::roster::Role::Read);
        let set = MemberRole { member: Some("laptop".into()), role: cobox_core::roster::Role::Manage };
        assert_eq!(serde_json::to_value(&set).unwrap(), serde_json::json!({ "member": "laptop", "role": "manage" }));
        let bad = serde_json::from_str::<Invite>(r#"{"role":"owner"}"#).unwrap_err().to_string();
        assert!(bad.contains("use read, write or manage"), "{bad}");
    }
}
