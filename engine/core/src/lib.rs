//! CoBox's pure core: everything that decides, and nothing that touches a disk, a socket, a
//! clock or a random source. Callers pass time and randomness in, so every module here is
//! unit-, property- and fuzz-tested in memory.
//!
//! - [`ids`], [`codes`]: identities and the invite and seed codes.
//! - [`chunk`], [`crypto`]: the keyed chunker, key derivation, sealing and signatures;
//!   [`epoch`]: content keys sealed to member devices with HPKE when a member is removed.
//! - [`entry`], [`manifest`]: the per-path scalar and the Automerge documents holding them.
//! - [`plan`]: the materialiser's decision per path, executed by the engine.
//! - [`roster`]: who belongs to a space, in what role: signed operations evaluated the same
//!   way on every device.
//! - [`ignores`]: a folder's `.coboxignore` rules; [`settle`]: concurrent versions into
//!   conflict copies; [`units`]: sizes for people; [`health`]: each peer's record over time and
//!   its audit and online scores.
//! - [`sync`]: protocol messages and framing limits, set reconciliation, and the sync
//!   [`sync::session::Session`] as a sans-IO state machine: messages in, messages and a
//!   transfer plan out.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod admin;
pub mod chunk;
pub mod codes;
pub mod crypto;
pub mod entry;
pub mod epoch;
pub mod heads;
pub mod health;
pub mod ids;
pub mod ignores;
pub mod manifest;
pub mod plan;
pub mod recovery;
pub mod roster;
pub mod settle;
pub mod sync;
pub mod units;

pub use ids::{BlobId, DeviceId, SpaceId};
