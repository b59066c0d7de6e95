//! The folder's `.coboxignore` rules: reading, replacing, and the digest that marks a pass current.

use super::*;

impl Space {
    /// The folder's ignore rules as text (empty when it has none).
    pub fn ignore_rules(&self) -> Result<String, Error> {
        Ok(read_rules_text(&self.info.path)?.unwrap_or_default())
    }

    /// Replace the folder's ignore rules (written to a temp file and renamed into place) and use
    /// them from now on. Returns a warning per line left out; the next scan records the file.
    pub fn set_ignore_rules(&mut self, text: &str) -> Result<Vec<String>, Error> {
        if text.len() as u64 > MAX_IGNORE_FILE {
            return Err(too_large(&self.info.path, text.len() as u64));
        }
        let tmp = self.info.path.join(format!("{}{}-ignore", crate::util::TMP_PREFIX, std::process::id()));
        let target = self.info.path.join(IGNORE_FILE);
        if let Err(e) = fs::write(&tmp, text).at(&tmp).and_then(|()| fs::rename(&tmp, &target).at(&target)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.load_ignores()
    }

    /// Read the ignore rules again. Rules that changed make the folder not current, so the next
    /// pass writes what they no longer ignore.
    pub(crate) fn load_ignores(&mut self) -> Result<Vec<String>, Error> {
        let (rules, warnings) = read_ignores(&self.info.path)?;
        if rules.digest() != self.ignores.digest() {
            self.folder_current = false;
        }
        self.ignores = rules;
        Ok(warnings)
    }

    /// A digest of the set of applied change blobs and of the ignore rules: what a materialiser
    /// pass that left the folder current ran with.
    pub(crate) fn folder_digest(&self) -> [u8; 32] {
        let mut ids: Vec<&BlobId> = self.applied.iter().collect();
        ids.sort();
        let mut h = blake3::Hasher::new();
        for id in ids {
            h.update(id.as_bytes());
        }
        h.update(&self.ignores.digest());
        *h.finalize().as_bytes()
    }
}
