//! Keeping the store sound and small: verify every blob, collect garbage, compact the manifest cache.

use super::*;

/// `meta` key: when the daemon last re-hashed every blob (i64 ms).
const LAST_CHECK: &str = "last_check";

/// One bad blob and the files that need it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BadBlob {
    /// The blob id.
    pub blob: String,
    /// Files (current state) that use it.
    pub files: Vec<String>,
}

/// `cobox verify`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Blobs whose bytes no longer match their id.
    pub corrupt: Vec<BadBlob>,
    /// Blobs the store lost: indexed but gone, or needed by a file this device has written or
    /// scanned as it is now.
    pub missing: Vec<BadBlob>,
    /// Blobs not received yet: needed by files that came from other devices and have not
    /// arrived here (an interrupted or pending sync). Nothing is lost; the next sync brings them.
    pub not_yet_received: Vec<BadBlob>,
    /// Pack files the index names no blob in: `cobox repair` indexes what they hold.
    #[serde(default)]
    pub unindexed_packs: Vec<String>,
}

impl VerifyReport {
    /// Whether everything this device holds checked out (blobs not received yet are not a fault).
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

/// `cobox gc`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct GcReport {
    /// Snapshots whose states were kept restorable.
    pub states_kept: u64,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Packs rewritten or deleted.
    pub packs_rewritten: u64,
    /// States before this time can no longer be restored (RFC 3339), when a window was given.
    pub pruned_before: Option<String>,
}

impl Space {
    /// Index the blobs of packs the index does not name (from each pack's own list) and apply
    /// the changes among them: what a lost index or a crash before indexing left unnamed.
    pub fn adopt_packs(&mut self) -> Result<crate::store::Reindex, Error> {
        let r = self.store.adopt_packs()?;
        if r.blobs > 0 {
            self.apply_stored_changes()?;
        }
        Ok(r)
    }

    /// What opening this space found when its index was lost and the packs were indexed again.
    pub fn reindexed_on_open(&self) -> Option<&crate::store::Reindex> {
        self.store.opened_from_packs()
    }

    /// The daemon's self-healing: every blob a read found corrupt or gone since the last call
    /// (checked again first) and, once `every_ms` passed since the last full check, every blob
    /// in the store, is dropped from the index, so the sync that follows fetches a good copy
    /// from any member or seeder that holds one. Returns what was dropped.
    pub fn heal(&self, now_ms: i64, every_ms: i64) -> Result<Vec<BlobId>, Error> {
        let suspects = self.store.take_suspects();
        let last = self.store.meta_get(LAST_CHECK)?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes);
        // The first sight starts the clock: a daemon's start is no time to read every pack.
        let full = last.is_some_and(|t| now_ms.saturating_sub(t) >= every_ms);
        // A full check re-hashes the suspects with everything else; the clock moves once it ran.
        let bad = if full { self.drop_bad_blobs()? } else { self.store.drop_if_bad(&suspects)?.0 };
        if last.is_none() || full {
            self.store.meta_set(LAST_CHECK, &now_ms.to_le_bytes())?;
        }
        Ok(bad)
    }

    /// Drop from the store every blob missing or corrupt on disk, so the next sync fetches a
    /// good copy from any member or seeder that holds one (`cobox repair`). Returns them.
    pub fn drop_bad_blobs(&self) -> Result<Vec<BlobId>, Error> {
        Ok(self.store.drop_bad()?.0)
    }

    /// Re-hash every stored blob; check every blob the current state needs is present.
    pub fn verify(&self, progress: &dyn crate::Progress) -> Result<VerifyReport, Error> {
        let (_, total) = self.store.usage()?;
        progress.start("verifying", total);
        let check = self.store.check(&|n| progress.advance(n))?;
        let bad: HashSet<BlobId> = check.corrupt.iter().chain(&check.missing).copied().collect();
        let mut users: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        let mut absent: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        let mut pending: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        // A file whose version this device wrote or scanned had its blobs here; any other came
        // from another device and may simply not have arrived yet.
        let cache = self.load_scan_cache()?;
        for (path, e) in self.manifest()?.entries()? {
            let Kind::File { content, .. } = &e.kind else { continue };
            let mut need = Vec::new();
            match content {
                Content::Empty => {}
                Content::Single(id) => need.push(*id),
                Content::List { list, .. } => {
                    need.push(*list);
                    if let Ok(chunks) = self.content_blobs(content) {
                        need.extend(chunks.into_iter().map(|(id, _)| id));
                    }
                }
            }
            let held_here = cache
                .get(&path)?
                .and_then(|r| crate::entry::Entry::decode(&r.entry).ok())
                .is_some_and(|r| r.same_state(&e));
            for id in need {
                if bad.contains(&id) {
                    users.entry(id).or_default().push(path.clone());
                } else if !self.store.contains(&id)? {
                    let list = if held_here { &mut absent } else { &mut pending };
                    list.entry(id).or_default().push(path.clone());
                }
            }
        }
        let named = |ids: &[BlobId], users: &BTreeMap<BlobId, Vec<String>>| -> Vec<BadBlob> {
            ids.iter()
                .map(|id| BadBlob { blob: id.to_string(), files: users.get(id).cloned().unwrap_or_default() })
                .collect()
        };
        let mut missing = named(&check.missing, &users);
        missing.extend(absent.into_iter().map(|(id, files)| BadBlob { blob: id.to_string(), files }));
        Ok(VerifyReport {
            blobs_checked: check.blobs,
            bytes_checked: check.bytes,
            corrupt: named(&check.corrupt, &users),
            missing,
            not_yet_received: pending.into_iter().map(|(id, files)| BadBlob { blob: id.to_string(), files }).collect(),
            unindexed_packs: check.unindexed_packs.iter().map(|p| p.display().to_string()).collect(),
        })
    }

    /// Remove blobs no retained state references. Without `keep_within_ms` every snapshot
    /// is retained (only blobs of interrupted scans go); with it, states older than the window
    /// are dropped except the last one before it, so any moment inside the window restores.
    pub fn gc(&mut self, keep_within_ms: Option<i64>) -> Result<GcReport, Error> {
        // Blobs of packs the index lost are judged like any other, never deleted unread.
        self.adopt_packs()?;
        let snaps = self.manifest()?.snapshots();
        let now = crate::now_ms();
        let cutoff = keep_within_ms.map(|w| now - w);
        let mut states: Vec<Option<ShardHeads>> = vec![None];
        let mut kept = 0u64;
        let mut devices: HashSet<DeviceId> = HashSet::new();
        // States an earlier gc pruned stay pruned: their unique blobs are gone, and looking
        // for them (a chunk list) would fail every gc after.
        let pruned = self.pruned_before()?.unwrap_or(i64::MIN);
        for s in snaps.iter().rev().filter(|s| s.time_ms >= pruned) {
            let within = cutoff.is_none_or(|c| s.time_ms >= c);
            // The newest snapshot per device at or before the cutoff anchors the window's start.
            if within || devices.insert(s.device) {
                states.push(self.manifest()?.heads_at_time_in(&snaps, s.time_ms));
                kept += 1;
            }
            if within {
                devices.remove(&s.device);
            }
        }
        let mut contents: HashSet<Content> = HashSet::new();
        for heads in &states {
            for (_, e) in self.entries(heads.as_ref())? {
                if let Kind::File { content, .. } = e.kind {
                    contents.insert(content);
                }
            }
        }
        let mut live: HashSet<BlobId> = HashSet::new();
        for c in &contents {
            if let Content::List { list, .. } = c {
                live.insert(*list);
            }
            match self.content_blobs(c) {
                Ok(chunks) => live.extend(chunks.into_iter().map(|(id, _)| id)),
                // An unreadable chunk list must not make its chunks look dead.
                Err(e) => return Err(e),
            }
        }
        let dead: HashSet<BlobId> = self
            .store
            .list()?
            .into_iter()
            .filter(|(id, loc)| loc.kind != BlobKind::Change && !live.contains(id))
            .map(|(id, _)| id)
            .collect();
        let stats = self.store.remove(&dead)?;
        if let Some(c) = cutoff {
            let prev = self.pruned_before()?.unwrap_or(i64::MIN);
            // States older than the anchor snapshot lost their unique blobs.
            let anchor = snaps.iter().filter(|s| s.time_ms < c).map(|s| s.time_ms).max().unwrap_or(i64::MIN);
            if anchor > prev {
                self.store.meta_set("pruned_before", &anchor.to_le_bytes())?;
            }
        }
        Ok(GcReport {
            states_kept: kept,
            blobs_removed: stats.blobs,
            bytes_freed: stats.bytes,
            packs_rewritten: stats.packs,
            pruned_before: self.pruned_before()?.filter(|t| *t > i64::MIN).map(rfc3339),
        })
    }

    /// States strictly before this time were pruned by `gc`.
    pub(crate) fn pruned_before(&self) -> Result<Option<i64>, Error> {
        Ok(self.store.meta_get("pruned_before")?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes))
    }

    /// Rewrite the manifest cache as full saves that include every applied change.
    pub fn compact(&mut self) -> Result<(), Error> {
        let mdir = self.dir.join("manifest");
        fs::create_dir_all(&mdir).at(&mdir)?;
        let gen_n = read_current(&mdir)?.map_or(1, |g| g + 1);
        let tmp = mdir.join(format!(".gen-{gen_n}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).at(&tmp)?;
        let (shards, history) = self.manifest_unchanged()?.save_all();
        for (i, s) in shards.iter().enumerate() {
            write_atomic(&tmp.join(format!("shard-{i:04}.am")), s)?;
        }
        write_atomic(&tmp.join("history.am"), &history)?;
        let ids: Vec<u8> = self.applied.iter().flat_map(|id| id.0).collect();
        write_atomic(&tmp.join("included"), &ids)?;
        let dest = mdir.join(format!("gen-{gen_n}"));
        fs::rename(&tmp, &dest).at(&dest)?;
        write_atomic(&mdir.join("CURRENT"), gen_n.to_string().as_bytes())?;
        // Older generations are superseded; removing them is best-effort.
        for e in fs::read_dir(&mdir).at(&mdir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("gen-") && name != format!("gen-{gen_n}") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        self.included = self.applied.clone();
        self.uncompacted_bytes = 0;
        Ok(())
    }
}
