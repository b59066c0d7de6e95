//! The sync protocol: pure message encoding and set reconciliation here; the iroh transport in
//! `net`.

pub mod congestion;
pub mod net;
pub mod proto;
pub mod reconcile;
