//! CoBox engine: the single-device core of a peer-to-peer cooperative cloud.
//!
//! A tour:
//! - [`home::Home`] is one device's state directory (`$COBOX_HOME`): its key, its spaces, and a
//!   lock so one process owns it at a time.
//! - [`space::Space`] is one open space: its keys, its [`store::BlobStore`] and its
//!   [`manifest::Manifest`]. Its methods are the operations the CLI and GUI expose:
//!   [`space::Space::scan`], [`space::Space::restore`], [`space::Space::history`],
//!   [`space::Space::verify`], [`space::Space::gc`], [`space::Space::status`].
//! - Pure cores, free of I/O: [`chunk`] (hash then encrypt), [`crypto`] (key derivation, sealing),
//!   [`entry`] (the per-path scalar), [`manifest`] (Automerge documents and history).
//! - Edges: [`store`] (packs + redb index), `scan` (folder → manifest), `restore`
//!   (manifest → folder).
//!
//! Libraries return typed errors ([`Error`]); front ends add context for people.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod agreement_service;
pub mod api;
mod beneath;
pub mod daemon;
mod direct;
pub mod error;
pub mod handle;
pub mod health;
pub mod home;
pub mod ledger;
pub mod logfile;
pub mod members;
pub mod ops;
pub mod overview;
pub mod priority;
pub mod recovery;
pub mod replica;
pub mod seed;
pub mod seeder_admin;
pub mod space;
pub mod store;
pub mod sync;
pub mod util;
pub mod watch;

pub use cobox_agreements as agreements;
/// The pure part of social recovery (the engine's files and protocol are [`recovery`]).
pub use cobox_core::recovery as recovery_core;
pub use cobox_core::{admin, chunk, codes, crypto, entry, epoch, ids, ignores, manifest, roster, units};
pub use error::Error;
pub use home::{Home, SpaceInfo};
pub use ids::{BlobId, DeviceId, SpaceId};
pub use space::Keep;
pub use space::materialize::{MaterializeReport, conflict_name, conflict_original};
pub use space::restore::{At, RestoreReport};
pub use space::scan::ScanReport;
pub use space::{ChangeFlag, DeletedFile, GcReport, HistoryItem, PeerHealth, Pending, Space, Status, VerifyReport};

/// Fill `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS RNG failing means the platform is broken; there is no safe fallback for key material.
    if let Err(e) = getrandom::fill(buf) {
        panic!("operating system random source failed: {e}");
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Progress reporting for long operations; front ends draw it (the CLI on stderr).
pub trait Progress: Sync {
    /// A phase starts with this many bytes of work.
    fn start(&self, phase: &str, total_bytes: u64);
    /// Some bytes of work finished.
    fn advance(&self, bytes: u64);
    /// Something was skipped or went wrong without stopping the operation.
    fn warn(&self, message: &str);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn warn(&self, _: &str) {}
}
