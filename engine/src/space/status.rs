//! What the space holds and whether anything waits: files, bytes, pending changes, replicas.

use super::*;

/// Local changes not yet recorded by a scan (from metadata alone).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// New paths.
    pub added: u64,
    /// Paths whose metadata changed.
    pub changed: u64,
    /// Recorded paths now missing.
    pub deleted: u64,
}

/// `cobox status`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Status {
    /// Space id.
    pub id: String,
    /// Local name.
    pub name: String,
    /// Folder.
    pub path: String,
    /// Live files in the manifest.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of live files.
    pub bytes: u64,
    /// Blobs in the local store.
    pub blobs: u64,
    /// Bytes the store holds (compressed, encrypted).
    pub stored_bytes: u64,
    /// Snapshots in history.
    pub snapshots: u64,
    /// Time of the last scan on this device (RFC 3339), if any.
    pub last_scan: Option<String>,
    /// Local changes awaiting a scan.
    pub pending: Pending,
    /// Paths with concurrent versions.
    pub conflicts: Vec<String>,
    /// Seeders with an active agreement and a passed audit within the audit window.
    pub replicas: u32,
    /// How many the space should have.
    pub replicas_target: u32,
    /// Every agreement in the space's ledger.
    pub agreements: Vec<crate::ledger::AgreementSummary>,
    /// Change blobs set aside because they do not read here: "BLOB: why".
    pub quarantined: Vec<String>,
    /// Paths the last materialiser pass could not write into the folder, and why (a full
    /// disk, a read-only folder, something in the way): pending, retried at the next sync.
    #[serde(default)]
    pub not_written: Vec<String>,
    /// Bytes free on the disk holding the space's store (`None`: it could not be read).
    #[serde(default)]
    pub disk_free: Option<u64>,
    /// Each peer's last session, as the running daemon saw it (empty without one).
    #[serde(default)]
    pub peers: Vec<PeerHealth>,
    /// The newest warning in this device's log (a refusal or a failure), if any.
    #[serde(default)]
    pub last_error: Option<crate::logfile::Line>,
    /// Manifest changes held here that wait for changes this device lacks: their edits do not
    /// show until those arrive (one may be a removed device's change that was refused here).
    #[serde(default)]
    pub waiting_changes: usize,
    /// Recoveries of the space announced and waiting out their period: each could make a new
    /// manager unless a member cancels it (`cobox recovery cancel`).
    #[serde(default)]
    pub recovering: Vec<String>,
    /// Said when too few recovery custodians proved their share lately.
    #[serde(default)]
    pub recovery_warning: Option<String>,
}

/// A peer's last session with the running daemon.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PeerHealth {
    /// The peer's device id.
    pub device: String,
    /// When the session ended (RFC 3339).
    pub last: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// A seeder whose copy of this space is behind: it lacks changes a member had made by this
    /// time (RFC 3339; docs/security.md, "fresh restores").
    #[serde(default)]
    pub behind_since: Option<String>,
}

impl Space {
    /// Files, sizes, storage and pending changes.
    pub fn status(&self) -> Result<Status, Error> {
        let (mut files, mut dirs, mut symlinks, mut bytes) = (0, 0, 0, 0);
        let mut conflicts = Vec::new();
        for (path, e) in self.manifest()?.entries()? {
            match &e.kind {
                Kind::File { size, .. } => {
                    files += 1;
                    bytes += size;
                }
                Kind::Dir => dirs += 1,
                Kind::Symlink { .. } => symlinks += 1,
                Kind::Deleted => continue,
            }
            if path.contains(".sync-conflict-") || self.manifest()?.get_all(&path)?.len() > 1 {
                conflicts.push(path);
            }
        }
        conflicts.sort();
        let (blobs, stored_bytes) = self.store.usage()?;
        let now = crate::now_ms();
        let view = self.ledger().view(now)?;
        let last_scan =
            self.store.meta_get("last_scan")?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes).map(rfc3339);
        Ok(Status {
            id: self.info.id.to_string(),
            name: self.info.name.clone(),
            path: if self.info.audit_only {
                "none: kept on this device to audit the seeders".to_owned()
            } else {
                self.info.path.display().to_string()
            },
            files,
            dirs,
            symlinks,
            bytes,
            blobs,
            stored_bytes,
            // What `history` offers: states `gc` pruned cannot be restored.
            snapshots: {
                let pruned = self.pruned_before()?.unwrap_or(i64::MIN);
                self.manifest()?.snapshots().iter().filter(|s| s.time_ms >= pruned).count() as u64
            },
            last_scan,
            pending: self.pending()?,
            conflicts,
            replicas: view.replicas(now, crate::ledger::AUDIT_WINDOW_MS) as u32,
            replicas_target: self.info.replicas_target,
            agreements: view
                .agreements
                .iter()
                .map(|v| crate::ledger::summary(v, Some(&self.info.name), "member", now))
                .collect(),
            quarantined: self.quarantined.iter().map(|(id, why)| format!("{id}: {why}")).collect(),
            not_written: self.not_written()?,
            disk_free: crate::util::disk_free(&self.dir),
            peers: Vec::new(),
            // Filled by whoever knows the home (the CLI, the daemon's API): a space does not.
            last_error: None,
            waiting_changes: self.manifest()?.waiting(),
            recovering: Vec::new(),
            recovery_warning: None,
        })
    }
}
