//! CoBox seeding agreements: who stores which space's encrypted blobs, on what terms, and
//! whether they still hold them.
//!
//! Pure: no I/O, no clock (callers pass `now_ms`), no randomness (callers pass nonces).
//! - [`Agreement`]: the terms, with a canonical, versioned, domain-separated encoding.
//! - [`Entry`]: what the ledger holds, each one signed: a proposal (owner device and space key),
//!   an acceptance (seeder device), a revocation (either party) and an audit result (auditor
//!   device and space key).
//! - [`Ledger`]: the Automerge document of entries, one scalar per entry, merged by union.
//! - [`evaluate`]: verifies every entry and derives each agreement's state; an invalid entry
//!   is reported with the reason and never honoured.
//! - [`audit`]: the challenge and answer arithmetic.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod audit;
mod entry;
mod ledger;
mod view;

pub use entry::{
    Agreement, AgreementId, Answer, AuditRecord, Entry, EntryError, FORMAT_VERSION, MAX_ANSWER, MAX_CREDENTIAL,
    MAX_END_MS, MAX_OPERATOR, MAX_TERMS, OperatorNote, Party, Revocation,
};
pub use ledger::{HEADS_TAG, Ledger, LedgerError, MAX_INFLATED, ROSTER_TAG, change_chunks, check_changes};
/// How long a seeder keeps a space's blobs after its agreements ended (revoked or expired), and
/// members may still recover from it: seven days.
pub const GRACE_MS: i64 = 7 * 86_400_000;

pub use view::{AgreementView, InvalidEntry, LedgerView, MAX_CLOCK_SKEW_MS, State, Verified, evaluate, evaluate_with};

/// Who may act on a space's agreements, as its roster says: the caller evaluates the roster
/// and passes its verdict in, so this crate stays pure. The shared space key grants nothing.
pub trait Authority {
    /// Whether `device` may propose agreements and revoke them on the owner's side (a manager).
    fn manages(&self, device: &Key32) -> bool;
    /// Whether `device` is a member (audit records count only from members' devices).
    fn member(&self, device: &Key32) -> bool;
    /// Whether `device`'s proposal of agreement `agreement` stands: it manages now, or managed
    /// once and was not removed (a manager later made a writer or reader keeps the agreements
    /// it proposed), or it was removed and its remover named this agreement among those it held
    /// then (a co-op that removes its founder keeps its backups; what the removed device
    /// proposes later counts nowhere). Defaults to [`Authority::manages`].
    fn proposes(&self, device: &Key32, agreement: &AgreementId) -> bool {
        let _ = agreement;
        self.manages(device)
    }
}

/// Every device may do everything: for tools that read a ledger whose roster is not at hand
/// (fuzzing its decoder, benchmarks). Never for deciding what a space honours.
#[derive(Debug, Clone, Copy)]
pub struct AnyDevice;

impl Authority for AnyDevice {
    fn manages(&self, _: &Key32) -> bool {
        true
    }
    fn member(&self, _: &Key32) -> bool {
        true
    }
}

/// A 32-byte public key (a device id or a space id), as raw bytes.
pub type Key32 = [u8; 32];
