//! A space as this device holds it, member or seeder: what a session reads and stores.

use crate::error::Error;
use crate::ids::BlobId;
use crate::ledger::LedgerFile;
use crate::seed::Seed;
use crate::space::Space;
use crate::sync::proto::Role;
use std::sync::Arc;
use tokio::sync::Mutex;

/// A space as this device holds it: as a member (keys and folder) or as a seeder (sealed
/// blobs and the ledger only).
#[derive(Clone)]
pub enum Held {
    /// A member's space.
    Member(Arc<Mutex<Space>>),
    /// A seeded space.
    Seed(Arc<Mutex<Seed>>),
}

impl Held {
    pub(super) fn role(&self) -> Role {
        match self {
            Held::Member(_) => Role::Member,
            Held::Seed(_) => Role::Seeder,
        }
    }

    pub(super) async fn ledger(&self) -> LedgerFile {
        match self {
            Held::Member(s) => s.lock().await.ledger(),
            Held::Seed(s) => s.lock().await.ledger(),
        }
    }

    pub(super) async fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        match self {
            Held::Member(s) => crate::handle::on_space(s, |s| s.blob_ids()).await,
            Held::Seed(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.blocking_lock().blob_ids())
                    .await
                    .map_err(|e| Error::Net(format!("listing blobs stopped: {e}")))?
            }
        }
    }

    pub(super) fn read_blob_blocking(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        match self {
            Held::Member(s) => s.blocking_lock().read_blob(id),
            Held::Seed(s) => s.blocking_lock().read_blob(id),
        }
    }

    /// Sort blobs for sending (see [`crate::store::BlobStore::send_order`]).
    pub(super) fn send_order_blocking(&self, ids: &mut [BlobId]) -> Result<(), Error> {
        match self {
            Held::Member(s) => s.blocking_lock().store.send_order(ids)?,
            Held::Seed(s) => s.blocking_lock().store.send_order(ids)?,
        }
        Ok(())
    }

    pub(super) async fn flush(&self) -> Result<(), Error> {
        match self {
            Held::Member(s) => s.lock().await.flush_received(),
            Held::Seed(s) => s.lock().await.flush(),
        }
    }
}
