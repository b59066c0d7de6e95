//! What all of a node's sessions share: the spaces it holds, its identity, its seeding
//! policy, where it listens, its traffic and the peers it has seen.

use super::held::Held;
use super::{Log, PeerSeen, SeedPolicy, Traffic};
use crate::error::Error;
use crate::ids::{DeviceId, SpaceId};
use crate::sync::proto::Role;
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Everything a node's sessions share.
pub(super) struct Shared {
    pub(super) held: std::sync::RwLock<HashMap<SpaceId, Held>>,
    pub(super) me: DeviceId,
    pub(super) key: SigningKey,
    pub(super) log: Log,
    pub(super) home: Option<PathBuf>,
    pub(super) policy: std::sync::Mutex<SeedPolicy>,
    pub(super) listen: std::sync::Mutex<Vec<String>>,
    pub(super) traffic: Arc<Traffic>,
    pub(super) seen: std::sync::Mutex<HashMap<DeviceId, PeerSeen>>,
}

impl Shared {
    pub(super) fn saw<T>(&self, peer: DeviceId, r: &Result<T, Error>) {
        let seen = PeerSeen {
            device: peer.to_string(),
            last_ms: crate::now_ms(),
            ok: r.is_ok(),
            error: r.as_ref().err().map(ToString::to_string),
        };
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, seen);
    }

    pub(super) fn get(&self, id: &SpaceId) -> Option<Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    pub(super) fn listen(&self) -> Vec<String> {
        self.listen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn policy(&self) -> SeedPolicy {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take on a space under the standing policy: a member device named in `--seed-for` asks.
    pub(super) fn adopt(&self, space: &SpaceId, peer: DeviceId, role: Role) -> Option<Held> {
        let home = self.home.as_ref()?;
        if role != Role::Member || !self.policy().owners.contains(&peer) {
            return None;
        }
        match crate::home::Home::open_seed_at(home, self.me, space, true) {
            Ok(seed) => {
                let h = Held::Seed(Arc::new(Mutex::new(seed)));
                self.held.write().unwrap_or_else(|p| p.into_inner()).insert(*space, h.clone());
                Some(h)
            }
            Err(e) => {
                (self.log)(&format!("cannot take on space {} for {}: {e}", space.short(), peer.short()));
                None
            }
        }
    }

    /// Forget a seed taken on for a session that then failed: no agreement, nothing kept.
    pub(super) fn drop_seed(&self, space: &SpaceId) {
        self.held.write().unwrap_or_else(|p| p.into_inner()).remove(space);
        if let Some(home) = &self.home {
            let _ = crate::home::Home::remove_seed(home, space);
        }
    }

    /// Record where an authenticated peer's daemon listens.
    pub(super) fn remember(&self, peer: DeviceId, listen: &[String]) {
        if let Some(home) = &self.home
            && !listen.is_empty()
            && let Err(e) = crate::home::Home::remember_peer_at(home, &peer, listen)
        {
            (self.log)(&format!("cannot record {}'s address: {e}", peer.short()));
        }
    }
}
