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
    /// Each member space's key, so a session's setup need not wait on the space's lock (a
    /// scan may hold it) before the peer has proven anything.
    pub(super) space_keys: std::sync::RwLock<HashMap<SpaceId, SigningKey>>,
    /// Sessions served now.
    pub(super) inbound: Arc<Admission>,
    /// Recent administration requests, answered or refused (`admin`), newest last.
    pub(super) admin_log: std::sync::Mutex<std::collections::VecDeque<crate::admin::Event>>,
    /// Since when this seeder has refused blobs for want of disk (cleared when one is stored).
    pub(super) full_since: std::sync::Mutex<Option<i64>>,
    /// Transfers into each space while they run.
    pub(super) receiving: std::sync::Mutex<HashMap<SpaceId, Arc<super::Receiving>>>,
}

/// Counts the sessions a node serves, in all and per peer, so one peer (or a crowd of
/// strangers) cannot hold every session slot, task and buffer.
#[derive(Default)]
pub(super) struct Admission {
    counts: std::sync::Mutex<(usize, HashMap<DeviceId, usize>)>,
}

/// One admitted session; dropping it frees the slot.
pub(super) struct Slot {
    admission: Arc<Admission>,
    peer: DeviceId,
}

impl Admission {
    /// A slot for a session from `peer`, or `None` when `total` sessions in all or `per_peer`
    /// from it run already.
    pub(super) fn admit(self: &Arc<Self>, peer: DeviceId, total: usize, per_peer: usize) -> Option<Slot> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.1.get(&peer).copied().unwrap_or(0);
        if c.0 >= total || mine >= per_peer {
            return None;
        }
        c.0 += 1;
        c.1.insert(peer, mine + 1);
        Some(Slot { admission: self.clone(), peer })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 = c.0.saturating_sub(1);
        if let Some(n) = c.1.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.peer);
            }
        }
    }
}

impl Shared {
    pub(super) fn saw<T>(&self, peer: DeviceId, r: &Result<T, Error>) {
        let seen = PeerSeen {
            device: peer.to_string(),
            last_ms: crate::now_ms(),
            ok: r.is_ok(),
            error: r.as_ref().err().map(ToString::to_string),
            stale: None,
        };
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, seen);
    }

    /// The last session with `peer` found its copy of `space` behind (or not, with `None`).
    pub(super) fn saw_stale(&self, peer: DeviceId, space: SpaceId, stale: Option<crate::space::Stale>) {
        if let Some(p) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&peer) {
            p.stale = stale.map(|s| (space, s));
        }
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
    pub(super) fn remember(&self, space: &SpaceId, peer: DeviceId, listen: &[String]) {
        if let Some(home) = &self.home
            && !listen.is_empty()
            && let Err(e) = crate::home::Home::remember_peer_at(home, space, &peer, listen)
        {
            (self.log)(&format!("cannot record {}'s address: {e}", peer.short()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_per_peer_and_in_all() {
        let a = Arc::new(Admission::default());
        let (p, q) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let slots: Vec<Slot> = (0..3).filter_map(|_| a.admit(p, 5, 3)).collect();
        assert_eq!(slots.len(), 3);
        assert!(a.admit(p, 5, 3).is_none(), "a fourth from one peer waits");
        let q1 = a.admit(q, 5, 3).expect("another peer gets one");
        let q2 = a.admit(q, 5, 3).expect("and a second");
        assert!(a.admit(DeviceId([3; 32]), 5, 3).is_none(), "five in all");
        drop(q1);
        assert!(a.admit(p, 5, 3).is_none(), "still three from p");
        let p4 = a.admit(DeviceId([3; 32]), 5, 3);
        assert!(p4.is_some(), "a freed slot is taken again");
        drop((slots, q2, p4));
        assert_eq!(a.counts.lock().unwrap().0, 0);
        assert!(a.counts.lock().unwrap().1.is_empty());
    }
}
