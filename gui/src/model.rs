//! The app's view model: what the screens show, as the engine thread last built it. The UI
//! reads snapshots of [`Model`] and never waits on the engine; nothing here does I/O.

use cobox_engine::agreement_service::{AgreementSummary, Stats};
use cobox_engine::codes::PeerAddr;
use cobox_engine::sync::net::PeerSeen;
use cobox_engine::{HistoryItem, SpaceId, Status};
use std::collections::VecDeque;
use std::path::PathBuf;

/// A seeder this device administers, as last heard from.
#[derive(Debug, Clone)]
pub(crate) struct SeederView {
    pub(crate) seeder: PeerAddr,
    /// Its last report, and when it came.
    pub(crate) report: Option<(i64, cobox_engine::admin::Report)>,
    /// Why the last ask failed (a seeder offline, a refusal).
    pub(crate) error: Option<String>,
}

/// A space's state, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpaceState {
    /// Joined by an invite; no member or seeder has accepted it yet (nothing is held).
    Joining,
    InSync,
    Syncing,
    Offline,
    Conflicts(usize),
    Error(String),
}

/// One file row. A space's rows are its whole file list, so each is kept small: its time and
/// who changed it are formatted when shown (100,000 rows carrying both as text held 67 MB).
#[derive(Debug, Clone)]
pub(crate) struct FileRow {
    pub(crate) path: Box<str>,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    /// Who changed it last: an index into the space's `writers`.
    pub(crate) by: u16,
}

/// A device that changed files of a space, as the Files tab names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Writer {
    /// The first 4 bytes of its id, in hex.
    pub(crate) short: String,
    /// Its member name, else `short`.
    pub(crate) label: String,
}

/// A conflict copy and the file it was made for.
#[derive(Debug, Clone)]
pub(crate) struct ConflictView {
    pub(crate) copy: String,
    pub(crate) original: String,
    pub(crate) copy_size: u64,
    pub(crate) original_size: u64,
    pub(crate) copy_modified: String,
    pub(crate) original_modified: String,
    /// Who made each version (a roster name, or the device's first characters).
    pub(crate) copy_by: String,
    pub(crate) original_by: String,
}

/// A space's past as the History tab shows it: its past states and its deleted files, kept up
/// to date while shown.
#[derive(Debug, Clone)]
pub(crate) struct Past {
    pub(crate) space: SpaceId,
    /// Past states, newest first.
    pub(crate) states: Vec<HistoryItem>,
    /// Paths deleted and not back, newest first.
    pub(crate) deleted: Vec<cobox_engine::DeletedFile>,
    /// Why they could not be read.
    pub(crate) error: Option<String>,
}

/// The two sides of a conflict side by side.
#[derive(Debug, Clone)]
pub(crate) struct CompareView {
    pub(crate) space: SpaceId,
    /// The conflict copy.
    pub(crate) copy: String,
    /// What differs, line by line for text: (tag, line) with tag ' ' both, '-' only this
    /// version, '+' only the other; for other files, one line saying how they differ.
    pub(crate) lines: Vec<(char, String)>,
    /// Lines the comparison left out (it shows the first ones).
    pub(crate) more: usize,
}

/// Everything the UI shows of one space.
#[derive(Debug, Clone)]
pub(crate) struct SpaceView {
    pub(crate) id: SpaceId,
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) status: Option<Status>,
    pub(crate) files: Vec<FileRow>,
    /// The devices `files` name.
    pub(crate) writers: Vec<Writer>,
    pub(crate) conflicts: Vec<ConflictView>,
    pub(crate) agreements: Vec<AgreementSummary>,
    pub(crate) state: SpaceState,
    /// The last sync round: when, and the failure if every peer failed.
    pub(crate) last_sync: Option<(i64, Option<String>)>,
    /// The folder's `.coboxignore` rules (empty when none or unreadable; the state says why).
    pub(crate) ignores: String,
    /// The roster: members with names and roles, removed devices, invites.
    pub(crate) roster: Option<cobox_engine::members::Roster>,
    /// The space's recovery as this device set it up (custodians, their last proofs).
    pub(crate) recovery: Option<cobox_engine::ops::RecoveryReport>,
}

/// A snapshot of everything, for the UI.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) ready: bool,
    pub(crate) fatal: Option<String>,
    pub(crate) device: String,
    pub(crate) address: String,
    pub(crate) spaces: Vec<SpaceView>,
    pub(crate) seeds: Vec<(SpaceId, u64)>,
    pub(crate) stats: Option<Stats>,
    pub(crate) peers: Vec<PeerSeen>,
    /// (seconds since start, KB/s sent, KB/s received), one per second, last 5 minutes.
    pub(crate) rates: VecDeque<[f64; 3]>,
    /// Operations running now, in plain words.
    pub(crate) busy: Vec<String>,
    /// The last result: (is an error, words).
    pub(crate) notice: Option<(bool, String)>,
    /// When the notice was given (ms since the epoch): it fades after a while.
    pub(crate) notice_at_ms: i64,
    /// The text size chosen (egui's zoom factor), as kept in the home; `None`: the default.
    pub(crate) zoom: Option<f32>,
    /// What closing the window does: keep syncing minimized (`Some(true)`), quit
    /// (`Some(false)`), or ask (`None`).
    pub(crate) keep_syncing_on_close: Option<bool>,
    /// The folder the last folder restore wrote (for "Open restored folder").
    pub(crate) restored: Option<std::path::PathBuf>,
    /// What this device is called in its spaces (`None`: not named yet, so the app asks).
    pub(crate) device_name: Option<String>,
    pub(crate) invite: Option<(SpaceId, String)>,
    pub(crate) seed_code: Option<String>,
    pub(crate) file_history: Option<(SpaceId, String, Vec<HistoryItem>)>,
    /// The past of the space whose History tab (or folder restore) is open.
    pub(crate) past: Option<Past>,
    /// A conflict's two versions compared.
    pub(crate) compare: Option<CompareView>,
    /// Spaces with a sync in flight.
    pub(crate) syncing: Vec<SpaceId>,
    /// Seeders this device administers.
    pub(crate) seeders: Vec<SeederView>,
    /// Upload and download limits in force, bytes per second (0: none).
    pub(crate) limits: (u64, u64),
    /// What happened that a member should hear of, newest last: (when, words).
    pub(crate) activity: VecDeque<(i64, String)>,
    /// Scans running now, for progress.
    pub(crate) scanning: Vec<cobox_engine::daemon::ScanningNow>,
    /// Transfers into spaces running now (pieces asked for and in), for progress.
    pub(crate) receiving: Vec<cobox_engine::sync::net::ReceivingNow>,
    /// Devices' names (hex id to name), from every space's roster.
    pub(crate) names: std::collections::BTreeMap<String, String>,
    /// Why the list of spaces could not be read (the spaces shown are the last ones read).
    pub(crate) spaces_error: Option<String>,
    /// Recovery shares this device keeps for others, as their custodian.
    pub(crate) custody: Vec<cobox_engine::recovery::Held>,
    /// Why the shares kept here could not be read.
    pub(crate) custody_error: Option<String>,
    /// The network at a glance (`cobox network`), or why it could not be built.
    pub(crate) network: Option<Result<cobox_engine::overview::NetworkReport, String>>,
}
