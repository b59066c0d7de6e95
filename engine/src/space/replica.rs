//! The space as a replica on the network: blobs listed, served and received (each checked), and
//! received changes applied and written to the folder.

use super::*;
use std::collections::BTreeSet;

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

/// Store meta key: the removed devices whose changes beyond what their removers kept this device
/// has dropped ([`Space::drop_refused_changes`]).
const DROPPED_FOR: &str = "dropped-refused";

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
        // Fewer when changes were dropped ([`Space::drop_refused_changes`], which compacts).
        let n = self.applied.len().saturating_sub(before);
        if n > 0 {
            self.folder_current = false;
        }
        if self.compact_due() {
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
        if self.info.audit_only {
            // No folder: the manifest is what an audit draws from.
            return Ok((n, materialize::MaterializeReport::default()));
        }
        // Read before the check: changed rules make the folder not current.
        self.load_ignores()?;
        if n == 0 && self.folder_current {
            return Ok((0, materialize::MaterializeReport::default()));
        }
        Ok((n, self.materialize_and_plan()?.0))
    }
}

impl Space {
    /// What an audit of `seeder` draws from, each blob with its size. With a complete sync
    /// behind it: every blob this store held when that sync began (what the seeder acknowledged
    /// holding, history included: the sync offered everything held then), and every blob the
    /// space names now that this device does not hold (a device that let go of its content, or
    /// holds none, still audits it). Never synced with in full: what the space names now. Sizes
    /// of blobs not held come from the chunk lists, so no content is needed.
    pub fn audit_population(&self, seeder: &DeviceId) -> Result<Vec<(BlobId, u64)>, Error> {
        let held = self.store.list()?;
        let named = self.named_now(&held)?;
        let Some(acked) = self.seeder_acked(seeder)? else { return Ok(named.into_iter().collect()) };
        let held_ids: HashSet<BlobId> = held.iter().map(|(id, _)| *id).collect();
        let mut out: std::collections::BTreeMap<BlobId, u64> = held
            .into_iter()
            .filter(|(_, l)| crate::store::pack_time_ms(l.pack) <= acked)
            .map(|(id, l)| (id, u64::from(l.len)))
            .collect();
        out.extend(named.into_iter().filter(|(id, _)| !held_ids.contains(id)));
        Ok(out.into_iter().collect())
    }

    /// On a manager's device: for each removed device no manager has named the changes of yet,
    /// name those this store holds, and the agreements it proposed that the ledger holds (a
    /// `KeepChanges` roster operation). From then on, every informed member and seeder takes
    /// only those of its changes from anyone relaying them, so what it writes after its removal
    /// goes nowhere, and only those of its agreements stand. Once per removed device, at the first
    /// sync or scan after the removal (a removal from the command line beside a running daemon
    /// cannot open this store).
    pub(crate) fn keep_removed_changes(&mut self) -> Result<(), Error> {
        use cobox_core::roster::{Action, Role};
        if self.roster.role(&self.device.0) != Some(Role::Manage) {
            return Ok(());
        }
        let mut named: BTreeMap<[u8; 32], Vec<[u8; 32]>> = self
            .roster
            .removed
            .iter()
            .filter(|d| !self.roster.kept_changes.contains_key(*d))
            .map(|d| (*d, Vec::new()))
            .collect();
        if named.is_empty() {
            return Ok(());
        }
        for (id, loc) in self.store.list()? {
            if loc.kind != BlobKind::Change {
                continue;
            }
            let blob = self.store.get(&id)?;
            if let Ok(crate::crypto::ChangeAuthor::Device(d)) =
                crate::crypto::verify_change_signature(&self.info.id, &blob)
                && let Some(ids) = named.get_mut(&d)
            {
                ids.push(id.0);
            }
        }
        let ledger = self.ledger();
        // And the agreements it proposed that this device holds: they stand (its signature is
        // still checked where they are evaluated); none it proposes later does.
        for bytes in ledger.read()?.raw_entries().into_iter().map(|(_, b)| b) {
            if let Ok(cobox_agreements::Entry::Proposal { agreement, .. }) = cobox_agreements::Entry::decode(&bytes)
                && let Some(ids) = named.get_mut(&agreement.owner)
            {
                ids.push(agreement.id().0);
            }
        }
        for (device, mut changes) in named {
            changes.sort_unstable();
            ledger.add_roster_op(&self.device_key, Action::KeepChanges { device, changes }, None)?;
        }
        let view = ledger.roster()?;
        self.set_roster(view, self.roster_from);
        Ok(())
    }

    /// Once a removal's `KeepChanges` names what its remover had taken from the removed device,
    /// drop from this device what it took beyond that (relayed before it heard of the removal):
    /// those changes leave the store and the manifest, and so does every change made on top of
    /// them, whose edits this device puts again when it may write (so they no longer follow a
    /// change every informed device refuses, and reach them all). A path the refused change had
    /// written into the folder keeps that version as a conflict copy: nothing on disk is lost.
    /// Done once per removed device (store meta [`DROPPED_FOR`]).
    pub(crate) fn drop_refused_changes(&mut self) -> Result<(), Error> {
        use crate::crypto::ChangeAuthor;
        if self.roster.kept_changes.is_empty() || self.roster.removed.contains(&self.device.0) {
            return Ok(());
        }
        let mut done: BTreeSet<[u8; 32]> = self
            .store
            .meta_get(DROPPED_FOR)?
            .unwrap_or_default()
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect();
        let new: BTreeSet<[u8; 32]> = self.roster.kept_changes.keys().filter(|d| !done.contains(*d)).copied().collect();
        if new.is_empty() {
            return Ok(());
        }
        if self.manifest()?.has_pending() {
            return Ok(()); // tried again at the next apply, once committed
        }
        // First by signature alone: most removals leave nothing to drop, and then no change
        // blob is opened.
        let mut judged = Vec::new();
        for (id, loc) in self.store.list()? {
            if loc.kind != BlobKind::Change || self.quarantined.contains_key(&id) {
                continue;
            }
            let blob = self.store.get(&id)?;
            let is_refused = match crate::crypto::verify_change_signature(&self.info.id, &blob) {
                Ok(ChangeAuthor::Device(d)) => {
                    new.contains(&d) && self.roster.kept_changes.get(&d).is_some_and(|kept| !kept.contains(&id.0))
                }
                _ => false,
            };
            judged.push((id, is_refused));
        }
        let (mut units, mut refused, mut ids, mut stray) = (Vec::new(), Vec::new(), Vec::new(), HashSet::new());
        let any_applied = judged.iter().any(|(id, r)| *r && self.applied.contains(id));
        for (id, is_refused) in judged {
            if !self.applied.contains(&id) {
                if is_refused {
                    stray.insert(id);
                }
                continue;
            }
            if !any_applied {
                continue;
            }
            // An applied change opened and decoded when it was applied.
            let blob = self.store.get(&id)?;
            let Ok(body) = self
                .keys
                .open(BlobKind::Change, &blob)
                .map_err(|e| e.to_string())
                .and_then(|plain| ChangeBody::decode(&plain).map_err(|e| e.to_string()))
            else {
                continue;
            };
            units.push(body.change_hashes()?);
            refused.push(is_refused);
            ids.push(id);
        }
        if any_applied {
            let may_write = matches!(
                self.roster.role(&self.device.0),
                Some(cobox_core::roster::Role::Write | cobox_core::roster::Role::Manage)
            );
            // A new actor, saved before any change is written under it: the dropped changes
            // used the old one's sequence numbers, which other devices still hold.
            let mut actor = [0u8; 16];
            crate::random_bytes(&mut actor);
            self.info.actor = hex::encode(actor);
            write_atomic(&self.dir.join("space.json"), &crate::error::json("space.json", &self.info)?)?;
            let on_disk = self.load_scan_cache()?;
            let dropped = self.manifest_mut()?.drop_changes(&units, &refused, &actor, may_write)?;
            let gone: HashSet<BlobId> = dropped.units.iter().filter_map(|i| ids.get(*i).copied()).collect();
            self.applied.retain(|id| !gone.contains(id));
            let mut copies = Vec::new();
            if may_write {
                for (path, v) in &dropped.reverted {
                    let written =
                        on_disk.get(path)?.is_some_and(|r| Entry::decode(&r.entry).is_ok_and(|e| e.same_state(v)));
                    if !written {
                        continue;
                    }
                    let name = crate::space::materialize::conflict_name(path, v.mtime_ns, &v.device);
                    self.keep_copy(&name, v, &mut copies)?;
                    // A path the refused change made: gone from the folder (its copy holds it),
                    // or the next scan would take the file back under its name.
                    if self.manifest()?.get(path)?.is_none() {
                        let gone =
                            Entry { kind: Kind::Deleted, mtime_ns: v.mtime_ns, mode: 0, device: self.device_short() };
                        self.manifest_mut()?.set(path, &gone)?;
                    }
                }
            }
            let snap = crate::manifest::Snapshot {
                time_ms: crate::now_ms(),
                device: self.device,
                added: copies.len() as u32,
                changed: dropped.replayed as u32,
                deleted: 0,
                renamed: 0,
                heads: Vec::new(),
            };
            if let Some((body, _)) = self.manifest_mut()?.commit(snap) {
                self.persist_change(body)?;
            }
            // The cache no longer holds them before the store lets them go.
            self.compact()?;
            stray.extend(gone);
            self.folder_current = false;
        }
        if !stray.is_empty() {
            self.store.remove(&stray)?;
        }
        done.extend(new);
        self.store.meta_set(DROPPED_FOR, &done.iter().flatten().copied().collect::<Vec<u8>>())?;
        Ok(())
    }

    /// The chunk lists the manifest's current files name that this store lacks: what an
    /// audit-only device asks for by name (a seeder cannot tell them from chunks).
    pub(crate) fn lists_missing(&mut self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        let mut out = std::collections::BTreeSet::new();
        for (_, e) in self.manifest()?.entries()? {
            if let Kind::File { content: Content::List { list, .. }, .. } = &e.kind
                && !self.store.contains(list)?
            {
                out.insert(*list);
            }
        }
        Ok(out)
    }

    /// Every blob the space names now, with its size: its change blobs, and each current file's
    /// chunk list and chunks (sized from the chunk lists; a list it cannot read stands alone).
    fn named_now(
        &self,
        held: &[(BlobId, crate::store::Loc)],
    ) -> Result<std::collections::BTreeMap<BlobId, u64>, Error> {
        let mut sizes: std::collections::BTreeMap<BlobId, u64> =
            held.iter().filter(|(_, l)| l.kind == BlobKind::Change).map(|(id, l)| (*id, u64::from(l.len))).collect();
        for (_, e) in self.manifest()?.entries()? {
            let Kind::File { content, size } = &e.kind else { continue };
            match content {
                Content::Empty => {}
                Content::Single(id) => {
                    sizes.insert(*id, (*size).max(1));
                }
                Content::List { list, chunks } => {
                    let stored = self.store.locate(list)?.map(|l| u64::from(l.len));
                    sizes.insert(*list, stored.unwrap_or(u64::from(*chunks) * 36));
                    if let Ok(parts) = self.content_blobs(content) {
                        sizes.extend(parts.into_iter().map(|(id, n)| (id, u64::from(n).max(1))));
                    }
                }
            }
        }
        Ok(sizes)
    }

    /// Which of `ids` `seeder` acknowledged holding (held here when its last complete sync began).
    pub fn acknowledged_among(&self, seeder: &DeviceId, ids: &[BlobId]) -> Result<Vec<BlobId>, Error> {
        let Some(acked) = self.seeder_acked(seeder)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for id in ids {
            if self.store.locate(id)?.is_some_and(|l| crate::store::pack_time_ms(l.pack) <= acked) {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// When `seeder` last completed a sync with this device: it then held every blob this store
    /// held at the session's start.
    pub fn seeder_acked(&self, seeder: &DeviceId) -> Result<Option<i64>, Error> {
        let key = format!("acked:{seeder}");
        Ok(self.store.meta_get(&key)?.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes))
    }

    /// Record that `seeder` completed a sync that began at `ms`.
    pub(crate) fn set_seeder_acked(&self, seeder: &DeviceId, ms: i64) -> Result<(), Error> {
        if self.seeder_acked(seeder)?.is_some_and(|t| t >= ms) {
            return Ok(());
        }
        Ok(self.store.meta_set(&format!("acked:{seeder}"), &ms.to_le_bytes())?)
    }
}

/// What a restore got less of than members had: the newest heads note it lacks heads of.
/// Also what a sync with a stale seeder reports (`SyncStats::stale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stale {
    /// The device whose note names heads this device lacks.
    pub device: DeviceId,
    /// When that device noted them.
    pub time_ms: i64,
    /// How many of the note's heads are missing here.
    pub missing: u32,
}

impl Space {
    /// Note in the ledger the manifest heads this device holds, signed by it, unless its newest
    /// note already names them (members do before each sync, so seeders carry the note with the
    /// changes). Returns whether a note was added.
    pub fn note_heads(&mut self) -> Result<bool, Error> {
        self.keep_removed_changes()?;
        if self.heads_noted {
            return Ok(false);
        }
        let heads: Vec<Vec<[u8; 32]>> = self
            .manifest_unchanged()?
            .current_heads()
            .into_iter()
            .map(|hs| hs.into_iter().map(|h| h.0).collect())
            .collect();
        if heads.iter().all(Vec::is_empty) {
            return Ok(false);
        }
        let ledger = self.ledger();
        let raw = ledger.heads_notes()?;
        let me = self.device.0;
        let mine = cobox_core::heads::newest(&self.info.id, raw.iter().map(Vec::as_slice), |d| *d == me, i64::MAX);
        if mine.first().is_some_and(|n| n.heads == heads) {
            self.heads_noted = true;
            return Ok(false);
        }
        let note = cobox_core::heads::HeadsNote { space: self.info.id.0, device: me, time_ms: crate::now_ms(), heads };
        let bytes =
            note.sign(&self.device_key).map_err(|e| Error::Encode { what: "a heads note", reason: e.to_string() })?;
        let added = ledger.add_signed(&bytes)?;
        self.heads_noted = true;
        Ok(added)
    }

    /// Whether this device lacks heads that the newest note of some device on the roster
    /// names (the newest such note): after a sync with a seeder, that the seeder handed over
    /// less than members had.
    pub fn stale(&mut self) -> Result<Option<Stale>, Error> {
        let raw = self.ledger().heads_notes()?;
        if let Some((n, found)) = &self.stale_checked
            && *n == raw.len()
        {
            return Ok(*found);
        }
        let roster = self.roster.clone();
        // Only writers' notes count: a reader (or a removed device) could otherwise note heads
        // no one has and have every seeder flagged stale.
        let writes = |d: &[u8; 32]| {
            matches!(roster.role(d), Some(cobox_core::roster::Role::Write | cobox_core::roster::Role::Manage))
        };
        let notes = cobox_core::heads::newest(&self.info.id, raw.iter().map(Vec::as_slice), writes, crate::now_ms());
        let mut worst: Option<Stale> = None;
        for note in notes {
            let missing = self.manifest_unchanged()?.missing_heads(&note.heads);
            if missing > 0 && worst.as_ref().is_none_or(|w| w.time_ms < note.time_ms) {
                worst = Some(Stale { device: DeviceId(note.device), time_ms: note.time_ms, missing: missing as u32 });
            }
        }
        self.stale_checked = Some((raw.len(), worst));
        Ok(worst)
    }
}
