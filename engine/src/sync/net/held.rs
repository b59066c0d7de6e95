//! A space as this device holds it, member or seeder: what a session reads and stores.

use crate::error::Error;
use crate::ids::BlobId;
use crate::ledger::LedgerFile;
use crate::replica::Replica;
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

    /// Use what member and seeder have in common, from async code.
    async fn replica<R>(&self, f: impl FnOnce(&dyn Replica) -> R) -> R {
        match self {
            Held::Member(s) => f(&*s.lock().await),
            Held::Seed(s) => f(&*s.lock().await),
        }
    }

    /// The same from a blocking thread.
    pub(super) fn replica_blocking<R>(&self, f: impl FnOnce(&dyn Replica) -> R) -> R {
        match self {
            Held::Member(s) => f(&*s.blocking_lock()),
            Held::Seed(s) => f(&*s.blocking_lock()),
        }
    }

    /// The blob store's handle, taken under the lock only for the moment of cloning it (proofs
    /// are computed after, without holding the space or seed).
    pub(super) fn store_blocking_handle(&self) -> std::sync::Arc<crate::store::BlobStore> {
        match self {
            Held::Member(s) => s.blocking_lock().store.clone(),
            Held::Seed(s) => s.blocking_lock().store.clone(),
        }
    }

    /// The roster received changes are held to (the session's, once merged), and the peer
    /// they come from.
    pub(super) async fn set_roster(&self, view: cobox_core::roster::RosterView, from: [u8; 32]) {
        match self {
            Held::Member(s) => {
                // Changes that waited for keys it brings are applied with the session's own.
                s.lock().await.set_roster(view, Some(from));
            }
            Held::Seed(s) => {
                let mut s = s.lock().await;
                (s.roster, s.roster_from) = (view, Some(from));
            }
        }
    }

    pub(super) async fn ledger(&self) -> LedgerFile {
        self.replica(|r| r.ledger()).await
    }

    /// Every blob id held, listed on a blocking thread.
    pub(super) async fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        let h = self.clone();
        tokio::task::spawn_blocking(move || h.replica_blocking(|r| r.blob_ids()))
            .await
            .map_err(|e| Error::Internal("listing blobs", e.to_string()))?
    }

    /// [`crate::replica::Replica::metadata_ids`], off the async threads.
    pub(super) async fn metadata_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        let h = self.clone();
        tokio::task::spawn_blocking(move || h.replica_blocking(|r| r.metadata_ids()))
            .await
            .map_err(|e| Error::Internal("listing blobs", e.to_string()))?
    }

    pub(super) fn read_blob_blocking(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        self.replica_blocking(|r| r.read_blob(id))
    }

    /// Sort blobs for sending (see [`crate::store::BlobStore::send_order`]).
    pub(super) fn send_order_blocking(&self, ids: &mut [BlobId]) -> Result<usize, Error> {
        self.replica_blocking(|r| r.send_order(ids))
    }

    pub(super) async fn flush(&self) -> Result<(), Error> {
        self.replica(|r| r.flush_blobs()).await
    }

    /// After a session: a member applies what arrived and writes its folder (changes applied,
    /// what the pass did); a seeder makes the blobs durable.
    pub(super) async fn settle(&self) -> Result<(usize, Option<crate::MaterializeReport>), Error> {
        match self {
            Held::Member(s) => {
                let (n, m) = crate::handle::on_space(s, Space::apply_and_materialize).await?;
                Ok((n, Some(m)))
            }
            Held::Seed(_) => self.flush().await.map(|()| (0, None)),
        }
    }
}
