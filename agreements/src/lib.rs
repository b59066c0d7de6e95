//! CoBox seeding agreements: who stores which space's encrypted blobs, on what terms.
//!
//! This crate will hold the agreement document, its canonical signed encoding, validation and
//! the Automerge ledger (see docs/architecture.md). The single-device core does not use it yet;
//! it exists now so the workspace's dependency direction (`engine` → `agreements`) is fixed.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]
