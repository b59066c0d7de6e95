//! What all of a node's sessions share: the spaces it holds, its identity, its seeding
//! policy, where it listens, its traffic and the peers it has seen.

use super::held::Held;
use super::{PeerSeen, SeedPolicy, Traffic};
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
    pub(super) home: Option<PathBuf>,
    pub(super) policy: std::sync::Mutex<SeedPolicy>,
    pub(super) listen: std::sync::Mutex<Vec<String>>,
    pub(super) traffic: Arc<Traffic>,
    pub(super) seen: std::sync::Mutex<HashMap<DeviceId, PeerSeen>>,
    /// Each member space's key, so a session's setup need not wait on the space's lock (a
    /// scan may hold it) before the peer has proven anything.
    pub(super) space_keys: std::sync::RwLock<HashMap<SpaceId, SigningKey>>,
    /// Member spaces this device holds no content of (joined to audit).
    pub(super) audit_only: std::sync::RwLock<std::collections::HashSet<SpaceId>>,
    /// Sessions served now.
    pub(super) inbound: Arc<Admission>,
    /// Recent administration requests, answered or refused (`admin`), newest last.
    pub(super) admin_log: std::sync::Mutex<std::collections::VecDeque<crate::admin::Event>>,
    /// Since when this seeder has refused blobs for want of disk (cleared when one is stored).
    pub(super) full_since: std::sync::Mutex<Option<i64>>,
    /// Transfers into each space while they run.
    pub(super) receiving: std::sync::Mutex<HashMap<SpaceId, Arc<super::Receiving>>>,
    /// Audit work this seeder still does for each device.
    pub(super) audit_budget: std::sync::Mutex<AuditBudget>,
    /// Held while a join is finished (its secret opened, its space opened and taken on), so a
    /// join this device dialed and one a peer's session made never open the space twice.
    pub(super) finishing_join: Mutex<()>,
    /// Each peer's sessions, audits and recovery checks over time, saved in the home.
    pub(super) health: crate::health::HealthBook,
    /// Spaces a session a peer dialed changed (blobs, changes or ledger entries taken, a
    /// joiner let in): front ends redraw on it instead of at their next own sync.
    pub(super) served: tokio::sync::broadcast::Sender<SpaceId>,
}

/// Bytes of blobs a seeder reads and hashes answering one device's audits at once: the largest
/// honest audit (`cobox audit --all` of 4,096 blobs of about 1 MiB, or a default one of 459
/// places in 8 MiB chunks) fits, so one audit of a proven peer cannot make it hash the 32 GiB
/// that 4,096 of the largest blobs hold.
pub(super) const AUDIT_BURST: u64 = 8 << 30;
/// What the budget regains a minute: honest daemons audit a seeder every few hours.
pub(super) const AUDIT_REFILL_PER_MIN: u64 = 512 << 20;

/// Each device's audit budget, a bucket of [`AUDIT_BURST`] bytes refilled at
/// [`AUDIT_REFILL_PER_MIN`]; devices whose bucket is full again are forgotten.
#[derive(Default)]
pub(super) struct AuditBudget {
    /// Per device: when its budget was last taken from, and what was left then.
    per_peer: HashMap<DeviceId, (i64, u64)>,
}

impl Shared {
    /// Serve a member space opened after the node started (created or joined).
    pub(super) fn add_space(&self, space: crate::space::Space) -> Result<(), Error> {
        let id = space.info().id;
        self.space_keys.write().unwrap_or_else(|p| p.into_inner()).insert(id, space.space_key().clone());
        if space.info().audit_only {
            self.audit_only.write().unwrap_or_else(|p| p.into_inner()).insert(id);
        }
        let held = Held::member(space)?;
        self.held.write().unwrap_or_else(|p| p.into_inner()).insert(id, held);
        Ok(())
    }

    /// A `Join` session let this device in: open the space secret its ledger now holds
    /// ([`crate::Home::complete_join`]) and serve the space. False when it was held already.
    pub(super) async fn finish_join(&self, root: &std::path::Path, space: SpaceId) -> Result<bool, Error> {
        let _one = self.finishing_join.lock().await;
        if self.get(&space).is_some() {
            return Ok(false);
        }
        let root = root.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            crate::home::Home::complete_join(&root, &space)?;
            crate::home::Home::open_space_at(&root, &space)
        })
        .await
        .map_err(|e| Error::Internal("finishing a join", e.to_string()))??;
        self.add_space(opened)?;
        tracing::info!("space {}: this device's invite was accepted; it is a member now", space.short());
        Ok(true)
    }
}

impl AuditBudget {
    /// Take `bytes` of audit work for `peer` at `now_ms`, or say in how many seconds it fits.
    pub(super) fn take(&mut self, peer: DeviceId, bytes: u64, now_ms: i64) -> Result<(), String> {
        if bytes > AUDIT_BURST {
            return Err(format!(
                "an audit of {} of blobs, over the {} this seeder answers at once: audit with a smaller --sample",
                crate::units::format_bytes(bytes),
                crate::units::format_bytes(AUDIT_BURST)
            ));
        }
        let left = |(at, left): (i64, u64)| {
            let ms = u64::try_from(now_ms.saturating_sub(at)).unwrap_or(0);
            left.saturating_add(ms.saturating_mul(AUDIT_REFILL_PER_MIN / 60_000)).min(AUDIT_BURST)
        };
        // Bounded: a device whose bucket refilled is as if never seen.
        self.per_peer.retain(|_, b| left(*b) < AUDIT_BURST);
        let now = self.per_peer.get(&peer).map_or(AUDIT_BURST, |b| left(*b));
        if now < bytes {
            let secs = (bytes - now).div_ceil(AUDIT_REFILL_PER_MIN / 60).max(1);
            return Err(format!(
                "this seeder answers {} of audits a minute per device and the budget is spent: try again in {secs} s",
                crate::units::format_bytes(AUDIT_REFILL_PER_MIN)
            ));
        }
        self.per_peer.insert(peer, (now_ms, now - bytes));
        Ok(())
    }
}

/// The sessions a node serves, in all and per peer, so one peer (or a crowd of strangers)
/// cannot hold every session slot, task and buffer, and a device that comes back is never
/// locked out by its own stale sessions: a peer at its cap gets a new session by ending its
/// oldest, and with every slot taken a newcomer ends the oldest session whose peer has not
/// proven itself (a stranger); sessions of proven peers are only ended by their own peer.
#[derive(Default)]
pub(super) struct Admission {
    state: std::sync::Mutex<AdmissionState>,
}

#[derive(Default)]
struct AdmissionState {
    next: u64,
    /// Oldest first; at most the node's cap of them.
    sessions: Vec<Admitted>,
    /// Peers that proved membership (or an agreement) in a session since they connected.
    proven: std::collections::HashSet<DeviceId>,
}

struct Admitted {
    key: u64,
    peer: DeviceId,
    stop: Arc<tokio::sync::Notify>,
}

/// One admitted session; dropping it frees the slot. [`Slot::ended`] resolves when a newer
/// session took its place.
pub(super) struct Slot {
    admission: Arc<Admission>,
    key: u64,
    stop: Arc<tokio::sync::Notify>,
}

impl Admission {
    /// A slot for a session from `peer` (its id is the connection's, which TLS proved), or
    /// `None` when `total` sessions of proven peers run already.
    pub(super) fn admit(self: &Arc<Self>, peer: DeviceId, total: usize, per_peer: usize) -> Option<Slot> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mine = st.sessions.iter().filter(|a| a.peer == peer).count();
        let evict = if mine >= per_peer.max(1) {
            st.sessions.iter().position(|a| a.peer == peer)
        } else if st.sessions.len() >= total {
            let proven = &st.proven;
            Some(st.sessions.iter().position(|a| !proven.contains(&a.peer))?)
        } else {
            None
        };
        if let Some(i) = evict {
            st.sessions.remove(i).stop.notify_one();
        }
        st.next += 1;
        let (key, stop) = (st.next, Arc::new(tokio::sync::Notify::new()));
        st.sessions.push(Admitted { key, peer, stop: stop.clone() });
        Some(Slot { admission: self.clone(), key, stop })
    }

    /// `peer` proved itself in a session: its sessions are no longer ended for strangers.
    pub(super) fn proven(&self, peer: DeviceId) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the peers with a session now.
        if st.sessions.iter().any(|a| a.peer == peer) {
            st.proven.insert(peer);
        }
    }
}

impl Slot {
    /// Resolves when a newer session ended this one.
    pub(super) async fn ended(&self) {
        self.stop.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.admission.state.lock().unwrap_or_else(|p| p.into_inner());
        st.sessions.retain(|a| a.key != self.key);
        let live: std::collections::HashSet<DeviceId> = st.sessions.iter().map(|a| a.peer).collect();
        st.proven.retain(|p| live.contains(p));
    }
}

/// Peers remembered for health reports.
const MAX_SEEN: usize = 1024;

impl Shared {
    /// Whether this device holds no content of `space` (it joined to audit).
    pub(super) fn audit_only(&self, space: &SpaceId) -> bool {
        self.audit_only.read().unwrap_or_else(|p| p.into_inner()).contains(space)
    }

    pub(super) fn saw<T>(&self, peer: DeviceId, r: &Result<T, Error>) {
        let seen = PeerSeen {
            device: peer.to_string(),
            last_ms: crate::now_ms(),
            ok: r.is_ok(),
            error: r.as_ref().err().map(ToString::to_string),
            refusal: r.as_ref().err().and_then(Error::refusal),
            stale: None,
        };
        let mut all = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: strangers' ids are free to make; the longest unseen goes.
        if all.len() >= MAX_SEEN
            && !all.contains_key(&peer)
            && let Some(oldest) = all.iter().min_by_key(|(_, p)| p.last_ms).map(|(d, _)| *d)
        {
            all.remove(&oldest);
        }
        all.insert(peer, seen);
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
        match crate::home::Home::open_seed_at(home, self.me, space, true).and_then(Held::seed) {
            Ok(h) => {
                self.held.write().unwrap_or_else(|p| p.into_inner()).insert(*space, h.clone());
                Some(h)
            }
            Err(e) => {
                tracing::warn!("cannot take on space {} for {}: {e}", space.short(), peer.short());
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
            tracing::warn!("cannot record {}'s address: {e}", peer.short());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(slot: &Slot) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async { tokio::time::timeout(std::time::Duration::from_millis(1), slot.ended()).await.is_ok() })
    }

    /// A device's audits are answered up to a budget: the largest honest audit at once, then
    /// what a minute refills; an audit over the burst is declined outright. Before, a proven
    /// peer could make a seeder read and hash 4,096 blobs of 8 MiB per session, session after
    /// session.
    #[test]
    fn audit_work_is_budgeted_per_device() {
        let mut b = AuditBudget::default();
        let (p, q) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let gib = 1u64 << 30;
        assert!(b.take(p, 33 * gib, 0).unwrap_err().contains("smaller --sample"));
        assert_eq!(b.take(p, 4 * gib, 0), Ok(()));
        assert_eq!(b.take(p, 4 * gib, 1_000), Ok(()), "the burst: two large audits at once");
        let spent = b.take(p, gib, 2_000).unwrap_err();
        assert!(spent.contains("try again in 119 s") && spent.contains("512.0 MiB"), "{spent}");
        assert_eq!(b.take(q, 4 * gib, 2_000), Ok(()), "another device has its own budget");
        assert_eq!(b.take(p, gib, 2_000 + 121_000), Ok(()), "two minutes refill a GiB");
        assert_eq!(b.take(q, gib, 60 * 60_000), Ok(()));
        assert!(b.per_peer.len() == 1 && b.per_peer.contains_key(&q), "full buckets are forgotten");
    }

    /// A peer at its cap gets a new session by ending its own oldest (a device killed
    /// mid-sync a few times is never locked out by its stale sessions); with every slot taken,
    /// a newcomer ends the oldest stranger's, never a proven peer's; all proven: refused.
    /// Before: "too many sessions at once" for the returning device, and 16 stranger ids held
    /// all 64 slots.
    #[test]
    fn sessions_are_capped_and_a_newer_one_replaces_a_stale_one() {
        let a = Arc::new(Admission::default());
        let (p, q) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let old: Vec<Slot> = (0..3).filter_map(|_| a.admit(p, 5, 3)).collect();
        assert_eq!(old.len(), 3);
        let newer = a.admit(p, 5, 3).expect("the device that came back gets a session");
        assert!(ended(&old[0]), "its oldest session was ended for it");
        assert!(!ended(&old[1]) && !ended(&newer));
        // q proves itself; the slots fill with strangers.
        let q1 = a.admit(q, 5, 3).unwrap();
        a.proven(q);
        let s1 = a.admit(DeviceId([3; 32]), 5, 3).unwrap();
        // Full (p: 3 live, q: 1, stranger: 1): a newcomer ends the oldest unproven session,
        // p's second (p never proved itself), not q's.
        let s2 = a.admit(DeviceId([4; 32]), 5, 3).unwrap();
        assert!(ended(&old[1]) && !ended(&q1) && !ended(&s1) && !ended(&s2));
        a.proven(p);
        a.proven(DeviceId([3; 32]));
        a.proven(DeviceId([4; 32]));
        assert!(a.admit(DeviceId([5; 32]), 5, 3).is_none(), "every slot proven: refused");
        drop((old, newer, q1, s1, s2));
        let st = a.state.lock().unwrap();
        assert!(st.sessions.is_empty() && st.proven.is_empty(), "nothing kept after the sessions");
    }
}
