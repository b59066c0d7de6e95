//! The sync protocol without I/O: messages and framing limits ([`proto`]), range-based set
//! reconciliation ([`reconcile`]) and the session state machine that orders them ([`session`]).

pub mod proto;
pub mod reconcile;
pub mod session;
