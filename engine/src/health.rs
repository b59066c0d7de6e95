//! The health record in the home (`health.bin`, [`cobox_core::health`]): what each peer did
//! for each space over time. The node that runs keeps it in memory, records each session it
//! dialed, each audit and each recovery-share check, and saves it at most every
//! [`SAVE_EVERY`] and when it goes; `cobox network` reads it.

use crate::error::Error;
use crate::{DeviceId, SpaceId};
pub use cobox_core::health::{Event, Health, Record, Score, WINDOW_MS, Window};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The file in the home.
pub const FILE: &str = "health.bin";
/// How long a change waits in memory at most before it is saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The home's health record, read (a missing file is an empty record).
pub fn read(root: &Path) -> Result<Health, Error> {
    let path = root.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => Health::decode(&b).map_err(|e| Error::Config { path: path.clone(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Health::default()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

struct Inner {
    health: Health,
    dirty: bool,
    saved: Instant,
}

/// The record a running node keeps.
pub struct HealthBook {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl HealthBook {
    /// The home's record; a record that cannot be read is set aside (`health.bin.unreadable`)
    /// with a warning and a new one begun, so a damaged file never stops the daemon.
    pub fn open(root: Option<&Path>) -> Self {
        let health = match root.map(read) {
            None => Health::default(),
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                tracing::warn!("the health record cannot be read ({e}); it is set aside and a new one begun");
                if let Some(r) = root {
                    let _ = std::fs::rename(r.join(FILE), r.join(format!("{FILE}.unreadable")));
                }
                Health::default()
            }
        };
        Self {
            path: root.map(|r| r.join(FILE)),
            inner: Mutex::new(Inner { health, dirty: false, saved: Instant::now() }),
        }
    }

    /// Record one event with `peer` for `space`, now.
    pub fn record(&self, peer: &DeviceId, space: &SpaceId, event: Event) {
        self.record_at(peer, space, event, crate::now_ms());
    }

    /// Record one event at `at_ms`.
    pub fn record_at(&self, peer: &DeviceId, space: &SpaceId, event: Event, at_ms: i64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.health.record(peer.0, space.0, event, at_ms);
        g.dirty = true;
        if g.saved.elapsed() >= SAVE_EVERY {
            self.save_locked(&mut g);
        }
    }

    /// A copy of the record as it stands.
    pub fn snapshot(&self) -> Health {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).health.clone()
    }

    /// Save now if anything changed.
    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.save_locked(&mut g);
    }

    fn save_locked(&self, g: &mut Inner) {
        let Some(path) = &self.path else { return };
        if !g.dirty {
            return;
        }
        g.saved = Instant::now();
        let r = g
            .health
            .encode()
            .map_err(|e| Error::Encode { what: "the health record", reason: e.to_string() })
            .and_then(|b| crate::util::write_atomic(path, &b));
        match r {
            Ok(()) => g.dirty = false,
            // Kept in memory and tried again at the next save: history is not worth stopping for.
            Err(e) => tracing::warn!("cannot save the health record: {e}"),
        }
    }
}

impl Drop for HealthBook {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_survives_a_restart_and_a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (peer, space) = (DeviceId([1; 32]), SpaceId([2; 32]));
        {
            let book = HealthBook::open(Some(dir.path()));
            book.record(&peer, &space, Event::Audit { reached: true, passed: true, blobs_failed: 0 });
            book.record(&peer, &space, Event::Session { ok: false, bytes_in: 0, bytes_out: 0 });
        }
        let h = read(dir.path()).unwrap();
        let r = h.get(&peer.0, &space.0).unwrap();
        assert_eq!(r.totals_since(0).audits_passed, 1);
        assert_eq!(r.totals_since(0).sessions_failed, 1);
        std::fs::write(dir.path().join(FILE), b"not a record").unwrap();
        assert!(read(dir.path()).is_err());
        let book = HealthBook::open(Some(dir.path()));
        assert_eq!(book.snapshot(), Health::default());
        assert!(dir.path().join("health.bin.unreadable").exists());
    }
}
