//! What a member's space and a seeder's copy have in common: a store of sealed blobs for one
//! space and its ledger. Both serve blobs and take them from peers under the same check, here
//! once: the bytes hash to the id, the kind byte is known, and a manifest change carries the
//! space's signature (the space id is its public key, so a seeder checks it without any key).

use crate::crypto::{BlobKind, ChangeAuthor, verify_change_signature};
use crate::error::Error;
use crate::ids::{BlobId, SpaceId};
use crate::ledger::LedgerFile;
use crate::store::BlobStore;
use cobox_core::roster::RosterView;
use std::collections::BTreeSet;

/// A verified replica of a space's sealed blobs.
pub trait Replica: Send {
    /// The space.
    fn space_id(&self) -> SpaceId;
    /// Its blob store.
    fn blobs(&self) -> &BlobStore;
    /// Its ledger.
    fn ledger(&self) -> LedgerFile;

    /// Every blob id held (after making received blobs durable).
    fn blob_ids(&self) -> Result<BTreeSet<BlobId>, Error> {
        self.blobs().flush()?;
        Ok(self.blobs().list()?.into_iter().map(|(id, _)| id).collect())
    }

    /// What describes the space, no content: the stored manifest changes and chunk lists (a
    /// seeder knows only which blobs are changes; a chunk list looks like a chunk to it).
    fn metadata_ids(&self) -> Result<BTreeSet<BlobId>, Error> {
        self.blobs().flush()?;
        let list = self.blobs().list()?;
        Ok(list.into_iter().filter(|(_, l)| l.kind != crate::crypto::BlobKind::Chunk).map(|(id, _)| id).collect())
    }

    /// A stored blob's bytes (checked against its id).
    fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        Ok(self.blobs().get(id)?)
    }

    /// Sort blobs for sending (see [`BlobStore::send_order`]).
    fn send_order(&self, ids: &mut [BlobId]) -> Result<usize, Error> {
        Ok(self.blobs().send_order(ids)?)
    }

    /// Make received blobs durable.
    fn flush_blobs(&self) -> Result<(), Error> {
        Ok(self.blobs().flush()?)
    }
}

/// Check a blob a peer sent for `space`: its kind, or why it is refused (nothing is stored).
/// A manifest change whose author may not write by `roster` (a reader, a removed device) is
/// `Ok(None)`: passed over, not stored, and the session goes on ([`RosterView::may_write`]
/// decides, given the peer `from` it came from).
pub fn check_blob(
    space: &SpaceId,
    id: &BlobId,
    data: &[u8],
    roster: &RosterView,
    from: Option<&[u8; 32]>,
) -> Result<Option<BlobKind>, Error> {
    if BlobId::of(data) != *id {
        return Err(Error::Refused(format!("blob {id} does not match its id")));
    }
    let kind = crate::crypto::blob_kind(data).map_err(|source| Error::Blob { blob: *id, source })?;
    if kind == BlobKind::Change {
        let author = verify_change_signature(space, data).map_err(|source| Error::Blob { blob: *id, source })?;
        let device = match &author {
            ChangeAuthor::Device(d) => Some(d),
            ChangeAuthor::Space => None,
        };
        if roster.may_write(device, from, &id.0).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(kind))
}
