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

impl Space {
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
