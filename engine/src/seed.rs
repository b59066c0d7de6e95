//! A seeder's copy of a space: sealed blobs and the ledger, and nothing else. A seeder holds
//! no space key, so it never sees a file name or a byte of plaintext; it can still check every
//! blob against its id and every manifest change against its writer's signature and the roster
//! (whose genesis the space id derives from).

use crate::error::Error;
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::ledger::LedgerFile;
use crate::store::BlobStore;
use cobox_agreements::{LedgerView, State};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

impl crate::replica::Replica for Seed {
    fn space_id(&self) -> SpaceId {
        self.info.space
    }

    fn blobs(&self) -> &BlobStore {
        &self.store
    }

    fn ledger(&self) -> LedgerFile {
        LedgerFile::new(self.info.space, &self.dir)
    }
}

/// Packs a seeder writes: a quarter of a member's, so a seeder taking several owners' spaces at
/// once holds a few MiB of buffers per space, not 64 (docs/benchmarks.md, "seeder ingest").
pub const SEED_PACK_TARGET: usize = 4 << 20;

/// A seeded space as registered on this device (`seeds/<id>/seed.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedInfo {
    /// The space.
    pub space: SpaceId,
    /// When this device started seeding it.
    pub created_ms: i64,
}

/// Blobs a seeder found lost on its disk, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lost {
    /// When found (ms since the epoch).
    pub at_ms: i64,
    /// How many blobs.
    pub blobs: u64,
    /// Their bytes, as indexed.
    pub bytes: u64,
}

const LOST: &str = "lost.json";
const MAX_LOST: usize = 32;

/// One seeded space, open.
pub struct Seed {
    pub(crate) info: SeedInfo,
    pub(crate) dir: PathBuf,
    pub(crate) store: std::sync::Arc<BlobStore>,
    pub(crate) device: DeviceId,
    /// Stored bytes, kept current as blobs arrive (quota checks run per blob).
    used: u64,
    /// The roster received changes are held to: the ledger's when opened, then each session's.
    pub(crate) roster: cobox_core::roster::RosterView,
    /// The peer received blobs come from (`None`: none yet).
    pub(crate) roster_from: Option<[u8; 32]>,
}

impl Seed {
    pub(crate) fn open(info: SeedInfo, dir: PathBuf, device: DeviceId) -> Result<Self, Error> {
        let store = BlobStore::open(&dir)?.with_pack_target(SEED_PACK_TARGET);
        let used = store.usage()?.1;
        let roster = crate::ledger::LedgerFile::new(info.space, &dir).roster()?;
        Ok(Self { info, dir, store: std::sync::Arc::new(store), device, used, roster, roster_from: None })
    }

    /// The space seeded.
    pub fn space(&self) -> SpaceId {
        self.info.space
    }

    /// Bytes stored for the space.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The quota of this device's active agreement for the space, if it has one.
    pub fn quota(&self, view: &LedgerView) -> Option<u64> {
        view.active_for(&self.device.0).map(|a| a.agreement.quota)
    }

    /// Store a blob under an agreement's quota. Checked like a member checks: id, kind, and the
    /// space's signature on manifest changes.
    pub fn receive_blob(&mut self, id: &BlobId, data: &[u8], quota: u64) -> Result<bool, Error> {
        let Some(kind) =
            crate::replica::check_blob(&self.info.space, id, data, &self.roster, self.roster_from.as_ref())?
        else {
            return Ok(false);
        };
        if self.used + data.len() as u64 > quota {
            return Err(Error::Refused(format!(
                "over quota: the seeder holds {} of the {} agreed for space {}; propose a larger agreement",
                crate::units::format_bytes(self.used),
                crate::units::format_bytes(quota),
                self.info.space.short()
            )));
        }
        let new = self.store.put(*id, kind, data)?;
        if new {
            self.used += data.len() as u64;
        }
        Ok(new)
    }

    /// Re-hash every blob held and drop from the index each one missing or corrupt on disk,
    /// so the next session asks the owners for it again instead of claiming to hold it (an
    /// audit found it lost). What was lost, and when, is kept in `lost.json` for the
    /// administrator's report. Returns the blobs dropped.
    pub fn forget_lost(&mut self, now_ms: i64) -> Result<Vec<BlobId>, Error> {
        let (ids, bytes) = self.store.drop_bad()?;
        self.record_lost(now_ms, ids, bytes)
    }

    /// The daemon's self-healing: blobs a read found corrupt or gone (answering an owner or an
    /// audit) are checked again, and the bad ones dropped and recorded as [`Seed::forget_lost`]
    /// does, so the owners' next session sends them again.
    pub fn heal(&mut self, now_ms: i64) -> Result<Vec<BlobId>, Error> {
        let (ids, bytes) = self.store.drop_if_bad(&self.store.take_suspects())?;
        self.record_lost(now_ms, ids, bytes)
    }

    fn record_lost(&mut self, now_ms: i64, ids: Vec<BlobId>, bytes: u64) -> Result<Vec<BlobId>, Error> {
        if ids.is_empty() {
            return Ok(ids);
        }
        self.used = self.store.usage()?.1;
        let mut lost: Vec<Lost> = self.lost()?;
        lost.push(Lost { at_ms: now_ms, blobs: ids.len() as u64, bytes });
        // The newest few are what an administrator needs.
        lost.drain(..lost.len().saturating_sub(MAX_LOST));
        let json = crate::error::json(LOST, &lost)?;
        crate::util::write_atomic(&self.dir.join(LOST), &json)?;
        Ok(ids)
    }

    /// The losses [`Seed::forget_lost`] found, oldest first.
    pub fn lost(&self) -> Result<Vec<Lost>, Error> {
        crate::util::read_json(&self.dir.join(LOST))
    }

    /// Whether every agreement this device countersigned ended (revoked or expired) more than
    /// `grace_ms` ago, or it countersigned none and the seed is older than the grace period.
    pub fn past_grace(&self, view: &LedgerView, now_ms: i64, grace_ms: i64) -> bool {
        let mut ended = self.info.created_ms;
        for a in view.agreements.iter().filter(|a| a.state != State::Invalid && a.agreement.seeder == self.device.0) {
            match a.state {
                State::Revoked => ended = ended.max(a.revoked.as_ref().map_or(a.agreement.end_ms, |r| r.time_ms)),
                State::Expired => ended = ended.max(a.agreement.end_ms),
                // A proposal this seeder never countersigned holds nothing here.
                State::Proposed if !a.accepted => {}
                _ => return false,
            }
        }
        now_ms > ended.saturating_add(grace_ms)
    }
}
