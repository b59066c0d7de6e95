//! The space as a replica on the network: blobs listed, served and received (each checked), and
//! received changes applied and written to the folder.

use super::*;

impl Space {
    /// Every blob id this device holds for the space.
    pub fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        self.store.flush()?;
        Ok(self.store.list()?.into_iter().map(|(id, _)| id).collect())
    }

    /// A stored blob's bytes (checked against its id).
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        Ok(self.store.get(id)?)
    }

    /// Accept a blob from a peer: its bytes must hash to `id`, and a manifest change must carry
    /// the space's signature. Anything else is refused and not stored.
    pub fn receive_blob(&self, id: &BlobId, data: &[u8]) -> Result<bool, Error> {
        if BlobId::of(data) != *id {
            return Err(Error::Refused(format!("blob {id} does not match its id")));
        }
        let kind = crate::crypto::blob_kind(data).map_err(|source| Error::Blob { blob: *id, source })?;
        if kind == BlobKind::Change {
            verify_change_signature(&self.info.id, data).map_err(|source| Error::Blob { blob: *id, source })?;
        }
        Ok(self.store.put(*id, kind, data)?)
    }

    /// Make received blobs durable and apply received manifest changes. Returns how many
    /// changes were new.
    pub fn apply_received(&mut self) -> Result<usize, Error> {
        self.store.flush()?;
        let before = self.applied.len();
        self.apply_stored_changes()?;
        let n = self.applied.len() - before;
        if n > 0 {
            self.folder_current = false;
        }
        if self.applied.len() - self.included.len() >= COMPACT_AFTER {
            self.compact()?;
        }
        Ok(n)
    }

    /// Make received blobs durable without applying them (a session that broke off).
    pub fn flush_received(&self) -> Result<(), Error> {
        Ok(self.store.flush()?)
    }

    /// Apply received changes and write them into the folder, as one step: a scan between the
    /// two would see the manifest ahead of the folder. With no change since a pass that left
    /// nothing to do, the folder is not walked again (0.2 s per 100,000 files, after every
    /// session of an idle daemon).
    pub fn apply_and_materialize(&mut self) -> Result<(usize, crate::MaterializeReport), Error> {
        let n = self.apply_received()?;
        // Read before the check: changed rules make the folder not current.
        self.load_ignores()?;
        if n == 0 && self.folder_current {
            return Ok((0, materialize::MaterializeReport::default()));
        }
        Ok((n, self.materialize_and_plan()?.0))
    }
}
