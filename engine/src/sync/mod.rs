//! Sync over the network. The protocol itself (messages, reconciliation, the session state
//! machine) is pure and lives in `cobox-core`; here are the iroh transport and its driver.

pub mod congestion;
pub mod net;
pub use cobox_core::sync::{proto, reconcile, session};
