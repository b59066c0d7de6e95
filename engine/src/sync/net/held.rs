//! A space as this device holds it, member or seeder: what a session reads and stores.

use crate::error::Error;
use crate::handle::{SeedHandle, SpaceHandle};
use crate::ids::BlobId;
use crate::ledger::LedgerFile;
use crate::space::Space;
use crate::store::BlobStore;
use crate::sync::proto::Role;
use std::sync::Arc;

/// A space as this device holds it: as a member (keys and folder) or as a seeder (sealed
/// blobs and the ledger only), each owned by its thread ([`crate::handle`]).
#[derive(Clone)]
pub enum Held {
    /// A member's space.
    Member(SpaceHandle),
    /// A seeded space.
    Seed(SeedHandle),
}

impl Held {
    /// Hand a member space to its own thread.
    pub(crate) fn member(space: Space) -> Result<Self, Error> {
        let name = format!("space-{}", space.info().id.short());
        Ok(Held::Member(SpaceHandle::new(space, name)?))
    }

    /// Hand a seed to its own thread.
    pub(crate) fn seed(seed: crate::seed::Seed) -> Result<Self, Error> {
        let name = format!("seed-{}", seed.space().short());
        Ok(Held::Seed(SeedHandle::new(seed, name)?))
    }

    pub(super) fn role(&self) -> Role {
        match self {
            Held::Member(_) => Role::Member,
            Held::Seed(_) => Role::Seeder,
        }
    }

    /// The blob store: listing, reading and proofs go through it directly, so they never wait
    /// for a scan or a pass on the space (the store is safe to share).
    pub(super) fn store(&self) -> Arc<BlobStore> {
        match self {
            Held::Member(s) => s.view().store.clone(),
            Held::Seed(s) => s.view().store.clone(),
        }
    }

    /// The roster received changes are held to (the session's, once merged), and the peer
    /// they come from.
    pub(super) async fn set_roster(&self, view: cobox_core::roster::RosterView, from: [u8; 32]) -> Result<(), Error> {
        match self {
            // Changes that waited for keys it brings are applied with the session's own.
            Held::Member(s) => {
                s.run(move |s| {
                    s.set_roster(view, Some(from));
                })
                .await
            }
            Held::Seed(s) => s.run(move |s| (s.roster, s.roster_from) = (view, Some(from))).await,
        }
    }

    pub(super) fn ledger(&self) -> LedgerFile {
        match self {
            Held::Member(s) => s.view().ledger.clone(),
            Held::Seed(s) => s.view().ledger.clone(),
        }
    }

    /// Every blob id held, listed on a blocking thread (after making received blobs durable).
    pub(super) async fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        let store = self.store();
        tokio::task::spawn_blocking(move || -> Result<_, Error> {
            store.flush()?;
            Ok(store.list()?.into_iter().map(|(id, _)| id).collect())
        })
        .await
        .map_err(|e| Error::Internal("listing blobs", e.to_string()))?
    }

    /// What describes the space, no content (see
    /// [`crate::replica::Replica::metadata_ids`]), off the async threads.
    pub(super) async fn metadata_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        let store = self.store();
        tokio::task::spawn_blocking(move || -> Result<_, Error> {
            store.flush()?;
            let list = store.list()?;
            Ok(list.into_iter().filter(|(_, l)| l.kind != crate::crypto::BlobKind::Chunk).map(|(id, _)| id).collect())
        })
        .await
        .map_err(|e| Error::Internal("listing blobs", e.to_string()))?
    }

    /// Make received blobs durable.
    pub(super) async fn flush(&self) -> Result<(), Error> {
        let store = self.store();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| Error::Internal("writing blobs", e.to_string()))?
            .map_err(Error::from)
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
