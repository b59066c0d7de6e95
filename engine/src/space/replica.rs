//! The space as a replica on the network: blobs listed, served and received (each checked), and
//! received changes applied and written to the folder.

use super::*;

impl crate::replica::Replica for Space {
    fn space_id(&self) -> SpaceId {
        self.info.id
    }

    fn blobs(&self) -> &BlobStore {
        &self.store
    }

    fn ledger(&self) -> crate::ledger::LedgerFile {
        Space::ledger(self)
    }
}

impl Space {
    /// Accept a blob from a peer ([`crate::replica::check_blob`]); anything refused is not stored.
    pub fn receive_blob(&self, id: &BlobId, data: &[u8]) -> Result<bool, Error> {
        let Some(kind) = crate::replica::check_blob(&self.info.id, id, data, &self.roster, self.roster_from.as_ref())?
        else {
            return Ok(false);
        };
        // A padded blob shows a chunk list as content; the index wants its kind, so it is sent
        // before the chunks (a blob under an epoch not held yet keeps what it shows).
        let kind = match kind {
            BlobKind::Change => kind,
            _ => self.keys.peek_kind(data).unwrap_or(kind),
        };
        Ok(self.store.put(*id, kind, data)?)
    }

    /// [`Space::receive_blob`] for a blob from a seeder, which holds no key: it must also have
    /// been sealed with the space key, so a seeder cannot fill a member's disk with junk, only
    /// hand back what members sealed.
    pub fn receive_sealed_blob(&self, id: &BlobId, data: &[u8]) -> Result<bool, Error> {
        if crate::replica::check_blob(&self.info.id, id, data, &self.roster, self.roster_from.as_ref())?.is_none() {
            return Ok(false);
        }
        let kind = self.keys.authenticate(data).map_err(|source| Error::Blob { blob: *id, source })?;
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
