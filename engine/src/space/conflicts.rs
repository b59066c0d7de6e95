//! Settling a conflict copy by hand: keep this device's version, the other, or both.

use super::*;

/// Which version of a conflicted file to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The file under its name; the conflict copy is deleted.
    Current,
    /// The conflict copy's version, under the name.
    Copy,
    /// Both: the copy is renamed to a plain name.
    Both,
}

impl Space {
    /// Settle a conflict copy (`NAME.sync-conflict-…`) in the folder, then record the result:
    /// keep the file under the name, keep the copy's version under the name, or keep both
    /// (the copy is renamed `NAME (other version).EXT`).
    pub fn resolve_conflict(&mut self, copy: &str, keep: Keep) -> Result<crate::ScanReport, Error> {
        let original = crate::conflict_original(copy)
            .ok_or_else(|| Error::InvalidPath(format!("{copy} is not a conflict copy")))?;
        let root = self.info.path.clone();
        let folder = crate::beneath::Folder::open(&root).at(&root)?;
        let target = |p: &str| folder.entry(p, false).at(root.join(p));
        let (copy_t, orig_t) = (target(copy)?, target(&original)?);
        match keep {
            Keep::Current => copy_t.remove_file().at(root.join(copy))?,
            Keep::Copy => copy_t.rename(&orig_t).at(root.join(&original))?,
            Keep::Both => {
                let mut n = 1;
                let mut name = crate::util::other_version_name(&original);
                while target(&name)?.stat().at(root.join(&name))?.is_some() {
                    n += 1;
                    name = crate::util::other_version_name_n(&original, n);
                }
                copy_t.rename(&target(&name)?).at(root.join(&name))?;
            }
        }
        self.scan(&crate::NoProgress)
    }
}
