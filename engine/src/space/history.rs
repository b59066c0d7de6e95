//! The space's past: its history (per path or whole), reading a past state, putting an older
//! version of a file back, and the current files.

use super::*;

/// A past state, as `cobox history` lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HistoryItem {
    /// Snapshot id (16 hex characters); `restore --at` takes it.
    pub id: String,
    /// Commit time, RFC 3339 UTC.
    pub time: String,
    /// Commit time, milliseconds since the epoch.
    pub time_ms: i64,
    /// Device that committed it (full id).
    pub device: String,
    /// Its name on the roster, when it has one this device can read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Paths added.
    pub added: u32,
    /// Paths changed.
    pub changed: u32,
    /// Paths deleted.
    pub deleted: u32,
    /// Renames among the added/deleted.
    pub renamed: u32,
    /// Files touched.
    pub files_changed: u32,
    /// With a PATH filter: what happened to it ("added", "changed", "deleted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// A path deleted from the space whose earlier versions are kept, as the app's Deleted files
/// view and `cobox history --deleted` list it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeletedFile {
    /// The path, relative to the space's folder.
    pub path: String,
    /// When it was deleted as far as the deleting device knew (ms since the epoch): its scan's
    /// time, or the last write a merge saw.
    pub time_ms: i64,
    /// The device that recorded the deletion (its first 8 bytes, hex).
    pub device: String,
    /// Its name on the roster, when it has one this device can read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

impl Space {
    /// Paths deleted and not back, newest first, at most `limit`: what a person may want back.
    pub fn deleted_files(&self, limit: usize) -> Result<Vec<DeletedFile>, Error> {
        let names = self.device_names();
        let mut out: Vec<DeletedFile> = self
            .manifest()?
            .entries()?
            .into_iter()
            .filter(|(_, e)| !e.is_live())
            .map(|(path, e)| DeletedFile {
                path,
                time_ms: e.mtime_ns.div_euclid(1_000_000),
                device: hex::encode(e.device),
                device_name: names.get(&e.device[..]).cloned(),
            })
            .collect();
        out.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then_with(|| a.path.cmp(&b.path)));
        out.truncate(limit);
        Ok(out)
    }

    /// Put a deleted path back as it was just before its last deletion, for every member (a
    /// folder with what it held). The deletion stays in the history.
    pub fn undelete(&mut self, path: &str) -> Result<crate::ScanReport, Error> {
        let h = self.history(Some(path))?;
        // Newest first: the latest deletion, then the version it removed.
        let gone = h.iter().position(|i| i.action.as_deref() == Some("deleted"));
        let before = match gone {
            Some(0) => h.get(1),
            Some(_) | None => {
                return Err(Error::NoHistory(format!("{path} is not deleted: it is in the folder now")));
            }
        };
        let Some(v) = before else {
            return Err(Error::NoHistory(format!(
                "no earlier version of {path} is kept (history before its deletion was pruned)"
            )));
        };
        let id = v.id.clone();
        self.restore_version(path, &id)
    }

    /// The names the roster gives member devices (those this device can read), by the first
    /// 8 bytes of their id, which is what manifest entries record of the device.
    pub fn device_names(&self) -> std::collections::BTreeMap<Vec<u8>, String> {
        let view = self.ledger().roster().unwrap_or_else(|_| self.roster.clone());
        view.members.iter().filter_map(|(d, m)| self.keys.open_name(&m.name).map(|n| (d[..8].to_vec(), n))).collect()
    }

    /// Past states, newest first; with `path`, only those that changed it.
    pub fn history(&self, path: Option<&str>) -> Result<Vec<HistoryItem>, Error> {
        let snaps = self.manifest()?.snapshots();
        let mut out = Vec::new();
        let mut prev: Option<Entry> = None;
        // States `gc` pruned cannot be restored, so they are not offered.
        let pruned = self.pruned_before()?.unwrap_or(i64::MIN);
        let names = self.device_names();
        for s in &snaps {
            let mut action = None;
            if let Some(p) = path {
                let heads = self.manifest()?.heads_at_time_in(&snaps, s.time_ms).unwrap_or_default();
                let now = self.manifest()?.get_at(p, &heads)?;
                let was_live = prev.as_ref().is_some_and(Entry::is_live);
                action = match (&now, was_live) {
                    (Some(e), false) if e.is_live() => Some("added"),
                    (Some(e), true) if !e.is_live() => Some("deleted"),
                    (Some(e), true) if !prev.as_ref().is_some_and(|p| p.same_state(e)) => Some("changed"),
                    _ => None,
                };
                prev = now;
                if action.is_none() {
                    continue;
                }
            }
            if s.time_ms < pruned {
                continue;
            }
            out.push(HistoryItem {
                id: s.id(),
                time: rfc3339(s.time_ms),
                time_ms: s.time_ms,
                device: s.device.to_string(),
                device_name: names.get(&s.device.0[..8]).cloned(),
                added: s.added,
                changed: s.changed,
                deleted: s.deleted,
                renamed: s.renamed,
                files_changed: s.files_changed(),
                action: action.map(str::to_owned),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Find a snapshot by id or unique id prefix.
    pub(crate) fn find_snapshot(&self, query: &str) -> Result<Snapshot, Error> {
        let q = query.to_ascii_lowercase();
        let hits: Vec<Snapshot> = self.manifest()?.snapshots().into_iter().filter(|s| s.id().starts_with(&q)).collect();
        match hits.len() {
            1 => Ok(hits.into_iter().next().unwrap_or_else(|| unreachable!())),
            0 => Err(Error::NoHistory(format!("no history entry {query:?}; `cobox history` lists them"))),
            _ => Err(Error::NoHistory(format!("{query:?} matches several history entries; give more characters"))),
        }
    }

    /// Put an older version of one file (a history id) back in the folder, and record it.
    pub fn restore_version(&mut self, path: &str, history_id: &str) -> Result<crate::ScanReport, Error> {
        let dest = self.info.path.clone();
        // Into the folder itself, replacing the file: what was there stays in history.
        let r =
            self.restore(&dest, &restore::At::Snapshot(history_id.to_owned()), Some(path), true, &crate::NoProgress)?;
        if let Some(e) = r.errors.first() {
            return Err(Error::RestoreFailed(e.clone()));
        }
        self.scan(&crate::NoProgress)
    }

    /// Every current live entry (for front ends that list files).
    pub fn files(&self) -> Result<Vec<(String, Entry)>, Error> {
        let mut v: Vec<(String, Entry)> =
            self.manifest()?.entries()?.into_iter().filter(|(_, e)| e.is_live()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Entries of the state at `heads` (all current entries with `None`).
    pub(crate) fn entries(&self, heads: Option<&ShardHeads>) -> Result<Vec<(String, Entry)>, Error> {
        let m = self.manifest()?;
        Ok(match heads {
            Some(h) => m.entries_at(h)?,
            None => m.entries()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Home;

    /// A deleted file is listed with who deleted it, and comes back as it was before the
    /// deletion (not as an earlier version); a file in the folder is refused.
    #[test]
    fn a_deleted_file_is_listed_and_comes_back_as_it_was() {
        let (home, folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let h = Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let mut s = h.open_space("s").unwrap();
        let (f, kept) = (folder.path().join("notes.txt"), folder.path().join("kept.txt"));
        for text in ["first", "second"] {
            std::fs::write(&f, text).unwrap();
            std::fs::write(&kept, text).unwrap();
            s.scan(&crate::NoProgress).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::remove_file(&f).unwrap();
        s.scan(&crate::NoProgress).unwrap();
        let gone = s.deleted_files(10).unwrap();
        assert_eq!(gone.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(), ["notes.txt"]);
        assert_eq!(gone[0].device, hex::encode(&s.device.0[..8]));
        assert!(s.undelete("kept.txt").is_err(), "a file in the folder is not deleted");
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.undelete("notes.txt").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "second");
        assert!(s.deleted_files(10).unwrap().is_empty());
        let h = s.history(Some("notes.txt")).unwrap();
        let actions: Vec<_> = h.iter().map(|i| i.action.clone().unwrap_or_default()).collect();
        assert_eq!(actions, ["added", "deleted", "changed", "added"], "{h:?}");
    }
}
