//! A node: the endpoint, the spaces and seeds it holds, the accept loop and dialing.

use super::driver::{self, Outcome};
use super::endpoint::endpoint;
use super::framing::Framed;
use super::held::Held;
use super::shared::Shared;
use super::{NetConfig, PeerSeen, STALL, SeedPolicy, SyncStats, Traffic, net_err};
use crate::error::Error;
use crate::health::Event;
use crate::ids::{DeviceId, SpaceId};
use crate::seed::Seed;
use crate::space::Space;
use crate::sync::proto::{ALPN, Msg, Purpose, Role};
use crate::sync::session::Session;
use cobox_agreements::{AgreementId, AuditRecord};
use ed25519_dalek::SigningKey;
use iroh::EndpointAddr;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::Instrument;

/// What a node holds and how it seeds.
#[derive(Default)]
pub struct NodeSetup {
    /// Spaces this device is a member of.
    pub spaces: Vec<Space>,
    /// Spaces it seeds.
    pub seeds: Vec<Seed>,
    /// Which proposals it countersigns by itself.
    pub policy: SeedPolicy,
    /// The home root: lets sessions record peers' addresses and take on seeds.
    pub home: Option<PathBuf>,
}

/// A running device on the network: its endpoint, its open spaces and seeds, and the accept loop.
pub struct Node {
    router: Router,
    sh: Arc<Shared>,
}

#[derive(Clone)]
struct Handler {
    sh: Arc<Shared>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cobox sync handler")
    }
}

impl ProtocolHandler for Handler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        // Every line this session logs carries its peer (and says its space).
        let span = tracing::info_span!("session", peer = %peer.short(), side = "accepted");
        self.accept_from(conn, peer).instrument(span).await
    }
}

impl Handler {
    async fn accept_from(&self, conn: Connection, peer: DeviceId) -> Result<(), AcceptError> {
        let Some(slot) = self.sh.inbound.admit(peer, super::MAX_INBOUND, super::MAX_INBOUND_PER_PEER) else {
            tracing::warn!(peer = %peer.short(), "refused a session from {}: too many sessions at once", peer.short());
            conn.close(2u32.into(), b"too many sessions at once");
            return Ok(());
        };
        let (send, recv) = conn.accept_bi().await?;
        let mut io = Framed::new(&conn, send, recv, &self.sh.traffic);
        let r = tokio::select! {
            r = tokio::time::timeout(super::SESSION_DEADLINE, self.serve(&mut io, peer)) => match r {
                Ok(r) => r,
                Err(_) => Err(Error::Net(format!(
                    "the session with {} ran past its {:?} deadline; the next one goes on from what arrived",
                    peer.short(),
                    super::SESSION_DEADLINE
                ))),
            },
            () = slot.ended() => Err(Error::Net(format!(
                "the session with {} was ended for a newer one (the device came back, or every slot was taken)",
                peer.short()
            ))),
        };
        self.sh.saw(peer, &r);
        match r {
            Ok(msg) => {
                tracing::info!("{msg}");
                // Let the dialer read the last frames and close; do not wait on it forever.
                let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
            }
            Err(e) => {
                tracing::warn!("session with {} refused or failed: {e}", peer.short());
                // Give the peer two seconds to read the refusal and hang up, then end the
                // connection ourselves: garbage and stalled sessions hold nothing for long.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                conn.close(1u32.into(), b"refused");
            }
        }
        Ok(())
    }
}

impl Handler {
    async fn serve(&self, io: &mut Framed, peer: DeviceId) -> Result<String, Error> {
        let sh = &self.sh;
        // A stranger's first frame: small and soon, or it is not read.
        let hello = tokio::time::timeout(super::HANDSHAKE, io.recv_within(crate::sync::proto::MAX_OPENING_FRAME))
            .await
            .map_err(|_| Error::Net(format!("{} sent no Hello within {:?}", peer.short(), super::HANDSHAKE)))??;
        let Msg::Hello { space, role, purpose, .. } = &hello else {
            return Err(io.refuse("expected Hello".into()).await);
        };
        let (space, role, purpose) = (*space, *role, *purpose);
        let (held, fresh) = match sh.get(&space) {
            Some(h) => (h, false),
            None => match sh.adopt(&space, peer, role) {
                Some(h) => (h, true),
                None => match sh.home.clone().filter(|h| crate::home::Home::join_pending_at(h, &space)) {
                    // Joined by an invite, not yet let in: a member (or seeder) that dials it
                    // lets it in.
                    Some(root) => return self.serve_joining(io, &root, space, peer, hello).await,
                    None => {
                        return Err(io.refuse(format!("this device does not hold space {}", space.short())).await);
                    }
                },
            },
        };
        let r = self.serve_held(io, &held, space, purpose, peer, hello).await;
        if r.is_err() && fresh {
            sh.drop_seed(&space);
        }
        r
    }

    /// A session for a space this device joined by an invite and was not let in yet: it answers
    /// as the joining side (its redemption for a proof, the ledgers only), and once let in opens
    /// the space and serves it. The dialer syncs again then.
    async fn serve_joining(
        &self,
        io: &mut Framed,
        root: &std::path::Path,
        space: SpaceId,
        peer: DeviceId,
        hello: Msg,
    ) -> Result<String, Error> {
        let sh = &self.sh;
        let ledger = crate::ledger::LedgerFile::new(space, &crate::home::paths::space(root, &space));
        let setup = driver::setup_as(sh, Role::Member, None, space, peer, Purpose::Join);
        let (mut session, accepted) = Session::accept(setup, ledger.read()?, hello);
        if let Err(e) = accepted {
            return Err(driver::fail(io, &mut session, e).await);
        }
        driver::drive_join(sh, io, &mut session, &ledger, peer).await?;
        // Finished before our side of the stream ends, which the dialer waits for: its next
        // session then finds the space held.
        let finished = sh.finish_join(root, space).await;
        io.finish().await;
        finished?;
        Ok(format!("space {}: {} let this device in", space.short(), peer.short()))
    }

    async fn serve_held(
        &self,
        io: &mut Framed,
        held: &Held,
        space: SpaceId,
        purpose: Purpose,
        peer: DeviceId,
        hello: Msg,
    ) -> Result<String, Error> {
        let sh = &self.sh;
        let started_ms = crate::now_ms();
        let ledger = held.ledger();
        let setup = driver::setup(sh, held, space, peer, purpose).await;
        let (mut session, accepted) = Session::accept(setup, ledger.read()?, hello);
        if let Err(e) = accepted {
            return Err(driver::fail(io, &mut session, e).await);
        }
        let driven = driver::drive(sh, held, io, &mut session, &ledger, peer, 0).await;
        driver::keep_announcement(&mut session, &ledger)?;
        let Outcome { stats, .. } = driven?;
        // Only a session that worked is recorded here: the peer proved it belongs, where a
        // stranger's failed attempts (its ids are free to make) would push real history out.
        sh.health.record(
            &peer,
            &space,
            Event::Session { ok: true, bytes_in: stats.received_bytes, bytes_out: stats.sent_bytes },
        );
        io.finish().await;
        if purpose == Purpose::Audit {
            return Ok(format!("answered an audit of space {} by {}", space.short(), peer.short()));
        }
        // Nobody listening is no failure: the broadcast only spares front ends a wait.
        let changed = stats.received_blobs + stats.changes_applied + stats.ledger_new > 0;
        if purpose == Purpose::Join {
            let _ = sh.served.send(space);
            return Ok(format!("accepted {}'s invite to space {}", peer.short(), space.short()));
        }
        // A seeder that dialed and took everything on offer holds it (its audits draw from it).
        if let Held::Member(s) = held
            && session.peer_role() == Some(Role::Seeder)
            && stats.not_pushed == 0
        {
            s.run(move |s| s.set_seeder_acked(&peer, started_ms)).await??;
        }
        if let (_, Some(m)) = held.settle().await?
            && (m.written + m.deleted > 0 || !m.waiting.is_empty() || !m.refused.is_empty() || !m.conflicts.is_empty())
        {
            tracing::info!(
                "space {}: wrote {}, deleted {}, waiting for {:?}, refused {:?}, conflict copies {:?}",
                space.short(),
                m.written,
                m.deleted,
                m.waiting,
                m.refused,
                m.conflicts
            );
        }
        if changed {
            let _ = sh.served.send(space);
        }
        Ok(format!(
            "synced space {} with {}: received {} blobs ({}), sent {} blobs ({})",
            space.short(),
            peer.short(),
            stats.received_blobs,
            crate::units::format_bytes(stats.received_bytes),
            stats.sent_blobs,
            crate::units::format_bytes(stats.sent_bytes)
        ))
    }
}

impl Node {
    /// Bind the endpoint and start accepting syncs for member `spaces`.
    pub async fn start(device_seed: [u8; 32], spaces: Vec<Space>, cfg: &NetConfig) -> Result<Self, Error> {
        Self::start_with(device_seed, NodeSetup { spaces, ..NodeSetup::default() }, cfg).await
    }

    /// Bind the endpoint and start accepting sessions for member spaces and seeds.
    pub async fn start_with(device_seed: [u8; 32], setup: NodeSetup, cfg: &NetConfig) -> Result<Self, Error> {
        let ep = endpoint(device_seed, cfg).await?;
        let me = DeviceId(*ep.id().as_bytes());
        let keys: HashMap<SpaceId, SigningKey> =
            setup.spaces.iter().map(|s| (s.info().id, s.space_key().clone())).collect();
        let audit_only = setup.spaces.iter().filter(|s| s.info().audit_only).map(|s| s.info().id).collect();
        let mut held: HashMap<SpaceId, Held> = HashMap::new();
        for s in setup.spaces {
            held.insert(s.info().id, Held::member(s)?);
        }
        for s in setup.seeds {
            held.insert(s.space(), Held::seed(s)?);
        }
        let sh = Arc::new(Shared {
            held: std::sync::RwLock::new(held),
            me,
            key: SigningKey::from_bytes(&device_seed),
            home: setup.home.clone(),
            policy: std::sync::Mutex::new(setup.policy),
            listen: std::sync::Mutex::new(Vec::new()),
            traffic: {
                let t = Traffic::default();
                t.up.set(cfg.limit_up);
                t.down.set(cfg.limit_down);
                Arc::new(t)
            },
            seen: std::sync::Mutex::new(HashMap::new()),
            space_keys: std::sync::RwLock::new(keys),
            audit_only: std::sync::RwLock::new(audit_only),
            inbound: Default::default(),
            admin_log: Default::default(),
            audit_budget: Default::default(),
            full_since: Default::default(),
            receiving: Default::default(),
            finishing_join: Mutex::new(()),
            health: crate::health::HealthBook::open(setup.home.as_deref()),
            served: tokio::sync::broadcast::channel(64).0,
        });
        let router = Router::builder(ep)
            .accept(ALPN, Handler { sh: sh.clone() })
            .accept(crate::admin::ALPN, super::admin::AdminHandler { sh: sh.clone() })
            .accept(cobox_core::recovery::ALPN, super::recovery::RecoveryHandler { sh: sh.clone() })
            .spawn();
        Ok(Self { router, sh })
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.sh.me
    }

    /// The direct addresses this endpoint is bound to.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.router.endpoint().bound_sockets()
    }

    /// The addresses peers can dial: `IP:PORT`s (unspecified IPs shown as loopback), then the
    /// home relay's URL once reached.
    pub fn addrs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .bound()
            .into_iter()
            .map(|mut a| {
                if a.ip().is_unspecified() {
                    a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
                }
                a.to_string()
            })
            .collect();
        // The home relay, once reached: peers elsewhere dial through it.
        for a in self.router.endpoint().addr().addrs {
            if let iroh::TransportAddr::Relay(url) = a {
                out.push(url.to_string());
            }
        }
        out
    }

    /// Wait up to `max` for the home relay, so the addresses handed out include it. False when
    /// it was not reached (relays off, or no internet: direct addresses and the LAN still work).
    pub async fn reach_relay(&self, max: Duration) -> bool {
        tokio::time::timeout(max, self.router.endpoint().online()).await.is_ok()
    }

    /// `ID@IP:PORT,...` for others to dial.
    pub fn addr_string(&self) -> String {
        crate::codes::PeerAddr { device: self.sh.me, addrs: self.addrs() }.to_string()
    }

    /// Tell peers where to reach this node later (a daemon does; one-off commands do not).
    pub fn advertise(&self) {
        *self.sh.listen.lock().unwrap_or_else(|p| p.into_inner()) = self.addrs();
    }

    /// An open member space.
    pub fn space(&self, id: &SpaceId) -> Option<crate::handle::SpaceHandle> {
        match self.sh.get(id)? {
            Held::Member(s) => Some(s),
            Held::Seed(_) => None,
        }
    }

    /// An open seed.
    pub fn seed(&self, id: &SpaceId) -> Option<crate::handle::SeedHandle> {
        match self.sh.get(id)? {
            Held::Seed(s) => Some(s),
            Held::Member(_) => None,
        }
    }

    /// Every space held, member or seed.
    pub fn held(&self) -> Vec<(SpaceId, Held)> {
        self.sh.held.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Whether this device holds no content of space `id` (it joined to audit).
    pub fn audit_only(&self, id: &SpaceId) -> bool {
        self.sh.audit_only(id)
    }

    /// Start serving a member space opened after the node started (created or joined).
    pub fn add_space(&self, space: Space) -> Result<(), Error> {
        self.sh.add_space(space)
    }

    /// Start seeding a space (after `cobox seed`), countersigning this agreement when offered.
    pub fn add_seed(&self, seed: Seed, accept: Option<AgreementId>) -> Result<(), Error> {
        if let Some(a) = accept {
            self.sh.policy.lock().unwrap_or_else(|p| p.into_inner()).accept.push(a);
        }
        let id = seed.space();
        let held = Held::seed(seed)?;
        self.sh.held.write().unwrap_or_else(|p| p.into_inner()).insert(id, held);
        Ok(())
    }

    /// Countersign this agreement when a session offers it (its terms were shown and agreed to).
    pub fn accept_agreement(&self, id: AgreementId) {
        self.sh.policy.lock().unwrap_or_else(|p| p.into_inner()).accept.push(id);
    }

    /// Stop holding a seed (its grace period ended); the caller deletes its files.
    pub fn forget(&self, id: &SpaceId) {
        self.sh.held.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Dial a peer and run a whole session for `purpose`: the connection (closed when done)
    /// and what the session produced.
    async fn dial(
        &self,
        space: &SpaceId,
        peer: EndpointAddr,
        purpose: Purpose,
        audit_count: usize,
    ) -> Result<(Held, Session, Outcome), Error> {
        let held = self.sh.get(space).ok_or_else(|| Error::SpaceNotFound(space.to_string()))?;
        let peer_id = DeviceId(*peer.id.as_bytes());
        if let Held::Member(s) = &held {
            // Our own work, before anyone waits on us.
            crate::handle::on_space(s, Space::scan_if_changed).await?;
            // What this device holds goes into the ledger, so seeders carry it with the changes.
            if purpose == Purpose::Sync
                && let Err(e) = crate::handle::on_space(s, Space::note_heads).await
            {
                tracing::warn!("cannot note this device's heads in the ledger: {e}");
            }
        }
        let ledger = held.ledger();
        let setup = driver::setup(&self.sh, &held, *space, peer_id, purpose).await;
        let mut session = Session::dial(setup, ledger.read()?);
        let known = !peer.addrs.is_empty();
        let conn = self.router.endpoint().connect(peer, ALPN).await.map_err(|e| {
            use iroh::endpoint::{ConnectError, ConnectWithOptsError};
            let no_address = matches!(&e, ConnectError::Connect { source: ConnectWithOptsError::NoAddress { .. }, .. });
            let e = super::dial_err(&peer_id, e);
            if known || !no_address {
                return e;
            }
            // A device named by id alone, never reached: say what to do, not iroh's words.
            Error::Net(format!(
                "no address is known for {}: give it as ID@IP:PORT, or start `cobox up` on it so it tells \
                 this device where it listens when they next meet",
                peer_id.short()
            ))
        })?;
        let (send, recv) = conn.open_bi().await.map_err(net_err)?;
        let mut io = Framed::new(&conn, send, recv, &self.sh.traffic);
        let drive = driver::drive(&self.sh, &held, &mut io, &mut session, &ledger, peer_id, audit_count);
        let r = tokio::time::timeout(super::SESSION_DEADLINE, drive).await.unwrap_or_else(|_| {
            Err(Error::Net(format!("the session ran past its {:?} deadline", super::SESSION_DEADLINE)))
        });
        driver::keep_announcement(&mut session, &ledger)?;
        if r.is_ok() && purpose != Purpose::Audit {
            io.finish().await;
            // Closing now could drop the Done in flight: wait until the listener ends its side,
            // which it does once it has read everything, or refuses what we sent (a seeder's quota).
            if let Ok(Err(e @ (Error::Refused(_) | Error::PeerRefused { .. }))) =
                tokio::time::timeout(STALL, io.recv()).await
            {
                conn.close(0u32.into(), b"refused");
                return Err(e);
            }
        }
        io.finish().await;
        let wire = io.wire_bytes();
        conn.close(0u32.into(), b"done");
        let mut out = r?;
        out.stats.wire_bytes = wire;
        Ok((held, session, out))
    }

    /// Redeem this device's invite to `space` with `peer`: a `Join` session, which proves the
    /// invite with the redemption in the space's ledger (under `root`) and exchanges ledgers
    /// only. When the peer accepts, the ledger it sends makes this device a member and holds
    /// the space secret: the join is finished ([`crate::Home::complete_join`]) and the space
    /// served.
    pub async fn join_once(&self, root: &std::path::Path, space: &SpaceId, peer: EndpointAddr) -> Result<(), Error> {
        let peer_id = DeviceId(*peer.id.as_bytes());
        let span = tracing::info_span!("session", space = %space.short(), peer = %peer_id.short(), side = "dialed");
        self.join_session(root, space, peer, peer_id).instrument(span).await
    }

    async fn join_session(
        &self,
        root: &std::path::Path,
        space: &SpaceId,
        peer: EndpointAddr,
        peer_id: DeviceId,
    ) -> Result<(), Error> {
        let ledger = crate::ledger::LedgerFile::new(*space, &crate::home::paths::space(root, space));
        let setup = driver::setup_as(&self.sh, Role::Member, None, *space, peer_id, Purpose::Join);
        let mut session = Session::dial(setup, ledger.read()?);
        let conn = self.router.endpoint().connect(peer, ALPN).await.map_err(|e| super::dial_err(&peer_id, e))?;
        let (send, recv) = conn.open_bi().await.map_err(net_err)?;
        let mut io = Framed::new(&conn, send, recv, &self.sh.traffic);
        let drive = driver::drive_join(&self.sh, &mut io, &mut session, &ledger, peer_id);
        let r = tokio::time::timeout(super::SESSION_DEADLINE, drive).await.unwrap_or_else(|_| {
            Err(Error::Net(format!("the session ran past its {:?} deadline", super::SESSION_DEADLINE)))
        });
        io.finish().await;
        if r.is_ok() {
            // Let the listener read our last ledger before the connection goes.
            let _ = tokio::time::timeout(STALL, io.recv()).await;
        }
        conn.close(0u32.into(), b"done");
        r?;
        self.sh.finish_join(root, *space).await.map(|_| ())
    }

    /// One sync session with `peer` for a space: scan, prove, exchange ledgers, reconcile,
    /// transfer, then apply and materialise (a member) or flush (a seeder).
    pub async fn sync_once(&self, space: &SpaceId, peer: EndpointAddr) -> Result<SyncStats, Error> {
        let id = DeviceId(*peer.id.as_bytes());
        let span = tracing::info_span!("session", space = %space.short(), peer = %id.short(), side = "dialed");
        let r = self.sync_session(space, peer).instrument(span).await;
        self.sh.saw(id, &r);
        let event = match &r {
            Ok(st) => Event::Session { ok: true, bytes_in: st.received_bytes, bytes_out: st.sent_bytes },
            Err(_) => Event::Session { ok: false, bytes_in: 0, bytes_out: 0 },
        };
        self.sh.health.record(&id, space, event);
        if let Ok(st) = &r {
            self.sh.saw_stale(id, *space, st.stale);
            // Queued behind whatever the space is doing (a scan): the session need not wait.
            if let Some(s) = self.space(space) {
                s.post(|s| {
                    if let Err(e) = s.confirm_joined() {
                        tracing::warn!(
                            "space {}: cannot record that a peer accepted this device: {e}",
                            s.info().id.short()
                        );
                    }
                });
            }
        }
        r
    }

    /// Transfers into spaces running now: blobs asked for and in, for progress and estimates.
    pub fn receiving(&self) -> Vec<super::ReceivingNow> {
        use std::sync::atomic::Ordering::Relaxed;
        self.sh
            .receiving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(space, r)| super::ReceivingNow {
                space: *space,
                wanted: r.wanted,
                got: r.got.load(Relaxed),
                bytes: r.bytes.load(Relaxed),
                started_ms: r.started_ms,
            })
            .collect()
    }

    /// Set the device's upload and download limits (bytes per second; 0: none), at once.
    pub fn set_limits(&self, up: u64, down: u64) {
        self.sh.traffic.up.set(up);
        self.sh.traffic.down.set(down);
    }

    /// The upload and download limits in force (bytes per second; 0: none).
    pub fn limits(&self) -> (u64, u64) {
        (self.sh.traffic.up.rate(), self.sh.traffic.down.rate())
    }

    /// Bytes sent and received by every session so far.
    pub fn traffic(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.sh.traffic.sent.load(Relaxed), self.sh.traffic.received.load(Relaxed))
    }

    /// Peers this node has had sessions with, most recent first.
    pub fn peers_seen(&self) -> Vec<PeerSeen> {
        let mut v: Vec<PeerSeen> = self.sh.seen.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.last_ms));
        v
    }

    async fn sync_session(&self, space: &SpaceId, peer: EndpointAddr) -> Result<SyncStats, Error> {
        let started = std::time::Instant::now();
        // Everything this store held now is offered in the session: a seeder that completes it
        // holds it all (what its audits draw from, `Space::audit_population`).
        let started_ms = crate::now_ms();
        let peer_id = DeviceId(*peer.id.as_bytes());
        // A device that holds no content fetches only the changes and chunk lists.
        let audit_only = self.sh.audit_only(space);
        let purpose = if audit_only { Purpose::Metadata } else { Purpose::Sync };
        let (held, session, out) = self.dial(space, peer.clone(), purpose, 0).await?;
        let mut stats = out.stats;
        // The peer had joined by an invite and this session let it in: it syncs next.
        stats.let_in = session.purpose() == Purpose::Join;
        stats.session_ms = started.elapsed().as_millis() as u64;
        let applying = std::time::Instant::now();
        let (applied, report) = held.settle().await?;
        stats.changes_applied += applied as u64;
        if let Held::Member(s) = &held
            && audit_only
            && applied > 0
            && !crate::handle::on_space(s, Space::lists_missing).await?.is_empty()
        {
            // The changes named chunk lists a seeder could not tell from chunks: ask by name.
            let (_, _, again) = self.dial(space, peer, purpose, 0).await?;
            stats.changes_applied += held.settle().await?.0 as u64;
            stats.received_blobs += again.stats.received_blobs;
            stats.received_bytes += again.stats.received_bytes;
            stats.wire_bytes += again.stats.wire_bytes;
        }
        stats.apply_ms = applying.elapsed().as_millis() as u64;
        if let Some(m) = report.filter(|m| !m.refused.is_empty()) {
            stats.not_written = m.refused.len() as u64;
            tracing::warn!(
                "space {}: {} path(s) not written into the folder, kept pending and retried at the next sync: {}",
                space.short(),
                m.refused.len(),
                crate::util::list_some(m.refused.iter().cloned(), 5)
            );
        }
        if let Held::Member(s) = &held {
            let waiting = s.view().quarantined;
            if waiting > 0 {
                tracing::warn!(
                    "space {}: {waiting} change(s) set aside (cobox status lists them); one sealed under a key epoch this device lacks is applied once a manager hands it over",
                    space.short()
                );
            }
        }
        if let Held::Member(s) = &held
            && session.peer_role() == Some(Role::Seeder)
        {
            // A seeder that withheld the newest changes (or lost them) shows here: a member
            // noted heads that did not come.
            if let Some(st) = crate::handle::on_space(s, Space::stale).await? {
                tracing::warn!(
                    "seeder {} handed over less than members had: device {} noted {} heads on {} that this device \
                     lacks; its copy of space {} is stale, so sync with another seeder or a member",
                    peer_id.short(),
                    st.device.short(),
                    st.missing,
                    crate::util::rfc3339(st.time_ms),
                    space.short()
                );
                stats.stale = Some(st);
            }
        }
        if stats.not_pushed > 0 {
            let mine = |v: &cobox_agreements::LedgerView| -> Vec<cobox_agreements::AgreementView> {
                v.agreements.iter().filter(|a| a.agreement.seeder == peer_id.0).cloned().collect()
            };
            let agreements = session.view().map(mine).unwrap_or_default();
            let states: Vec<&str> = agreements.iter().map(|a| a.state.as_str()).collect();
            // The seeder's own words on a proposal it left waiting.
            let answered = agreements
                .iter()
                .filter(|a| a.state == cobox_agreements::State::Proposed)
                .find_map(|a| a.answer.as_ref())
                .map(|a| format!("; it answered: {}", crate::util::printable(&a.reason)))
                .unwrap_or_default();
            // What was pulled is applied above; only the push is refused.
            return Err(Error::Refused(format!(
                "seeder {} has no active agreement for space {} (its agreements: {}), so {} blobs were not pushed{}",
                peer_id.short(),
                space.short(),
                states.join(", "),
                stats.not_pushed,
                if answered.is_empty() {
                    "; a proposal it has not countersigned may be over its quota limit".to_owned()
                } else {
                    answered
                }
            )));
        }
        // The seeder acknowledged what this store held only if the session offered it.
        if let Held::Member(s) = &held
            && session.peer_role() == Some(Role::Seeder)
            && purpose == Purpose::Sync
        {
            s.run(move |s| s.set_seeder_acked(&peer_id, started_ms)).await??;
        }
        tracing::info!(
            "synced with {}: received {} blobs ({}), sent {} blobs ({})",
            peer_id.short(),
            stats.received_blobs,
            crate::units::format_bytes(stats.received_bytes),
            stats.sent_blobs,
            crate::units::format_bytes(stats.sent_bytes)
        );
        Ok(stats)
    }

    /// Audit a seeder: challenge `count` random blobs this device holds (`usize::MAX`: all),
    /// record the signed result in the ledger and return it.
    pub async fn audit(&self, space: &SpaceId, peer: EndpointAddr, count: usize) -> Result<AuditRecord, Error> {
        if self.space(space).is_none() {
            return Err(Error::SpaceNotFound(format!("{} (only a member audits)", space.short())));
        }
        let peer_id = DeviceId(*peer.id.as_bytes());
        let r = self.audit_session(space, peer, count).await;
        let event = match &r {
            Ok(a) => Some(Event::Audit {
                reached: true,
                passed: a.ok(),
                blobs_failed: a.challenged.saturating_sub(a.passed),
            }),
            // A member is not audited; a seeder that refuses an audit answered, and failed it.
            Err(Error::Refused(_)) => None,
            Err(Error::PeerRefused { .. }) => Some(Event::Audit { reached: true, passed: false, blobs_failed: 0 }),
            Err(_) => Some(Event::Audit { reached: false, passed: false, blobs_failed: 0 }),
        };
        if let Some(e) = event {
            self.sh.health.record(&peer_id, space, e);
            // Audits are few and their results are what the record is for: saved at once.
            self.sh.health.flush();
        }
        r
    }

    async fn audit_session(&self, space: &SpaceId, peer: EndpointAddr, count: usize) -> Result<AuditRecord, Error> {
        let peer_id = DeviceId(*peer.id.as_bytes());
        let span = tracing::info_span!("session", space = %space.short(), peer = %peer_id.short(), side = "dialed");
        let (_, session, out) = self.dial(space, peer, Purpose::Audit, count).instrument(span).await?;
        match out.audit {
            Some(record) => Ok(record),
            None if session.peer_role() == Some(Role::Member) => {
                Err(Error::Refused(format!("{} is a member, not a seeder; only seeders are audited", peer_id.short())))
            }
            None => Err(Error::Net(format!("the audit of {} ended without an answer", peer_id.short()))),
        }
    }

    /// Sync until a session moves nothing either way (at most `rounds` sessions).
    pub async fn sync_until_converged(
        &self,
        space: &SpaceId,
        peer: EndpointAddr,
        rounds: usize,
    ) -> Result<SyncStats, Error> {
        let mut total = SyncStats::default();
        for _ in 0..rounds {
            let s = self.sync_once(space, peer.clone()).await?;
            total.sent_blobs += s.sent_blobs;
            total.sent_bytes += s.sent_bytes;
            total.received_blobs += s.received_blobs;
            total.received_bytes += s.received_bytes;
            total.wire_bytes += s.wire_bytes;
            total.changes_applied += s.changes_applied;
            total.session_ms += s.session_ms;
            total.apply_ms += s.apply_ms;
            total.ledger_new += s.ledger_new;
            // Whether the peer's copy is stale, and what the folder could not take, is what
            // the last session found.
            total.stale = s.stale;
            total.not_written = s.not_written;
            if s.sent_blobs == 0 && s.received_blobs == 0 && !s.let_in {
                return Ok(total);
            }
        }
        Err(Error::Net(format!("not converged after {rounds} sync rounds; the peer keeps changing")))
    }

    /// Ask a seeder this device administers (`cobox/admin/1`): one request, its answer.
    pub async fn admin(
        &self,
        peer: EndpointAddr,
        req: &crate::admin::Request,
    ) -> Result<crate::admin::Response, Error> {
        super::admin::ask(self.router.endpoint(), peer, req).await
    }

    /// The health record this node keeps (each peer's sessions, audits and checks over time).
    pub fn health(&self) -> &crate::health::HealthBook {
        &self.sh.health
    }

    /// Told of each space a session a peer dialed changed here (it brought blobs, changes or
    /// ledger entries, or was a joiner let in). A receiver that falls behind misses some, and
    /// hears it lagged (redraw everything then).
    pub fn served(&self) -> tokio::sync::broadcast::Receiver<SpaceId> {
        self.sh.served.subscribe()
    }

    /// One recovery request to a device (a deposit, a proof, a release) and its answer.
    pub async fn recovery_ask(
        &self,
        peer: EndpointAddr,
        req: &cobox_core::recovery::Ask,
    ) -> Result<cobox_core::recovery::Answer, Error> {
        super::recovery::ask(self.router.endpoint(), peer, req).await
    }

    /// Close connections and the endpoint. A graceful close waits for peers to acknowledge; a
    /// dead peer never does, so give up after a few seconds.
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.router.shutdown()).await;
        self.sh.health.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlobKind;
    use crate::replica::Replica;
    use cobox_agreements::{Agreement, Entry};

    fn loopback() -> NetConfig {
        NetConfig { bind: Some("127.0.0.1:0".parse().unwrap()), no_relay: true, ..Default::default() }
    }

    fn addr_of(node: &Node) -> EndpointAddr {
        node.router.endpoint().addr()
    }

    /// `seeder`'s copy of `space`, under an agreement in force that both ledgers hold.
    fn seeding(space: &Space, seeder: &crate::Home) -> crate::seed::Seed {
        let now = crate::now_ms();
        let agreement = Agreement {
            space: space.info().id.0,
            owner: space.device().0,
            seeder: seeder.device_id().0,
            quota: 1 << 30,
            start_ms: now - 1000,
            end_ms: now + 86_400_000,
            terms: String::new(),
            nonce: [3; 16],
        };
        let proposal = Entry::propose(agreement.clone(), &space.device_key);
        let accepted = Entry::accept(&agreement, seeder.device_key());
        let seed = seeder.open_seed(&space.info().id, true).unwrap();
        for l in [space.ledger(), seed.ledger()] {
            l.insert(&proposal).unwrap();
            l.insert(&accepted).unwrap();
        }
        seed
    }

    /// An owner audits its seeder from ids alone: with every chunk gone from its own store it
    /// still checks the seeder's proofs of chunks, and a chunk the seeder lost fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_owner_without_the_content_audits_its_seeder_by_ids() {
        let (owner_home, folder, seeder_home) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut big = vec![0u8; 3 << 20];
        blake3::Hasher::new_keyed(&[4; 32]).finalize_xof().fill(&mut big);
        std::fs::write(folder.path().join("big.bin"), &big).unwrap();
        std::fs::write(folder.path().join("small.txt"), b"small").unwrap();
        let home = crate::Home::open(owner_home.path()).unwrap();
        let info = home.create_space("s", folder.path()).unwrap();
        let mut space = home.open_space("s").unwrap();
        space.scan(&crate::NoProgress).unwrap();
        let seeder = crate::Home::open(seeder_home.path()).unwrap();
        let seed = seeding(&space, &seeder);
        let store = space.store.clone();
        let seed_store = seed.store.clone();
        let (owner_seed, seeder_seed) = (home.device_seed(), seeder.device_seed());
        drop((home, seeder));
        let s_node = Node::start_with(seeder_seed, NodeSetup { seeds: vec![seed], ..Default::default() }, &loopback())
            .await
            .unwrap();
        let o_node = Node::start(owner_seed, vec![space], &loopback()).await.unwrap();
        o_node.sync_until_converged(&info.id, addr_of(&s_node), 4).await.unwrap();

        // What the seeder holds: every blob a Padmé size, and no chunk list told from a chunk
        // (the owner's 3 MiB file has one).
        assert!(store.list().unwrap().iter().any(|(_, l)| l.kind == BlobKind::ChunkList));
        let held = seed_store.list().unwrap();
        assert_eq!(held.len(), store.list().unwrap().len());
        for (id, l) in &held {
            let len = seed_store.get(id).unwrap().len() as u64;
            assert_eq!(cobox_core::crypto::padme(len), len, "{id}: {len} bytes");
            assert_ne!(l.kind, BlobKind::ChunkList, "the seeder tells a chunk list apart");
        }

        // The owner lets go of every chunk it held; change blobs and chunk lists stay.
        let chunks: std::collections::HashSet<crate::BlobId> =
            store.list().unwrap().into_iter().filter(|(_, l)| l.kind == BlobKind::Chunk).map(|(id, _)| id).collect();
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        store.remove(&chunks).unwrap();
        let seeder = DeviceId(*addr_of(&s_node).id.as_bytes());
        let named: std::collections::BTreeSet<crate::BlobId> = o_node
            .space(&info.id)
            .unwrap()
            .run(move |s| s.audit_population(&seeder))
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(chunks.iter().all(|c| named.contains(c)), "the chunks are still named by the space");
        let record = o_node.audit(&info.id, addr_of(&s_node), usize::MAX).await.unwrap();
        assert_eq!(record.challenged as usize, named.len());
        assert_eq!(record.passed, record.challenged, "an honest seeder passes");

        // The seeder loses one chunk: challenged with all, exactly that one fails.
        let lost = *chunks.iter().next().unwrap();
        seed_store.remove(&[lost].into_iter().collect()).unwrap();
        let record = o_node.audit(&info.id, addr_of(&s_node), usize::MAX).await.unwrap();
        assert_eq!(record.passed + 1, record.challenged, "{record:?}");
        o_node.shutdown().await;
        s_node.shutdown().await;
    }

    /// A seeder that withholds the newest change: the member restoring from it is told, with
    /// the seeder named in the log and the note's device in the stats; before, it is not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_from_a_seeder_missing_the_newest_change_names_it() {
        let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a_home, fa, s_home, b_home, fb) = (&dirs[0], &dirs[1], &dirs[2], &dirs[3], &dirs[4]);
        std::fs::write(fa.path().join("first.txt"), b"first").unwrap();
        let home = crate::Home::open(a_home.path()).unwrap();
        let info = home.create_space("s", fa.path()).unwrap();
        home.open_space("s").unwrap().scan(&crate::NoProgress).unwrap();
        let a_seed = home.device_seed();
        drop(home);
        let invite = crate::Home::invite(a_home.path(), "s", &crate::home::InviteRequest::writer()).unwrap();
        let home = crate::Home::open(a_home.path()).unwrap();
        let space = home.open_space("s").unwrap();
        let seeder = crate::Home::open(s_home.path()).unwrap();
        let seed = seeding(&space, &seeder);
        let (a_store, seed_store, s_seed) = (space.store.clone(), seed.store.clone(), seeder.device_seed());
        let a_device = space.device();
        drop((home, seeder));
        let s_node =
            Node::start_with(s_seed, NodeSetup { seeds: vec![seed], ..Default::default() }, &loopback()).await.unwrap();
        let a_node = Node::start(a_seed, vec![space], &loopback()).await.unwrap();
        a_node.sync_until_converged(&info.id, addr_of(&s_node), 4).await.unwrap();

        // A second device restores from the seeder: all there, nothing said.
        let b = crate::Home::open(b_home.path()).unwrap();
        b.join(&invite, fb.path(), None).unwrap();
        let b_seed = b.device_seed();
        drop(b);
        // What this (single-threaded) test's tasks log.
        let (sub, logged) = crate::logfile::capture();
        let _logging = tracing::subscriber::set_default(sub);
        let b_node = Node::start(b_seed, Vec::new(), &loopback()).await.unwrap();
        // The code holds no secret: the seeder accepts the invite (under the owner's agreement)
        // and its ledger brings the secret.
        let at = crate::codes::PeerAddr { device: s_node.device(), addrs: s_node.addrs() };
        if let Err(runs) = crate::ops::join(&b_node, b_home.path(), &info.id, &[at], None).await {
            panic!("{:?}", runs.into_iter().map(|r| r.result.err()).collect::<Vec<_>>());
        }
        assert!(b_node.space(&info.id).is_some(), "the seeder let it in");
        let st = b_node.sync_once(&info.id, addr_of(&s_node)).await.unwrap();
        assert_eq!(st.stale, None);
        assert_eq!(std::fs::read(fb.path().join("first.txt")).unwrap(), b"first");

        // The owner writes again and pushes; the seeder drops the new change blob.
        let changes = |store: &crate::store::BlobStore| -> std::collections::HashSet<crate::BlobId> {
            store.list().unwrap().into_iter().filter(|(_, l)| l.kind == BlobKind::Change).map(|(id, _)| id).collect()
        };
        let before = changes(&a_store);
        std::fs::write(fa.path().join("second.txt"), b"second").unwrap();
        a_node.space(&info.id).unwrap().run(|s| s.scan(&crate::NoProgress)).await.unwrap().unwrap();
        a_node.sync_until_converged(&info.id, addr_of(&s_node), 4).await.unwrap();
        let new: std::collections::HashSet<crate::BlobId> = changes(&a_store).difference(&before).copied().collect();
        assert!(!new.is_empty());
        seed_store.remove(&new).unwrap();

        let st = b_node.sync_once(&info.id, addr_of(&s_node)).await.unwrap();
        let stale = st.stale.expect("the stale seeder is noticed");
        assert_eq!(stale.device, a_device);
        let seen = b_node.peers_seen();
        let s_seen = seen.iter().find(|p| p.device == s_node.device().to_string()).unwrap();
        assert_eq!(s_seen.stale, Some((info.id, stale)), "the app hears of it too");
        assert!(stale.missing >= 1);
        assert!(!fb.path().join("second.txt").exists());
        let s_short = s_node.device().short();
        assert!(
            logged.lock().unwrap().iter().any(|l| l.msg.contains(&format!("seeder {s_short} handed over less"))
                && l.level == "warn"
                && l.fields.get("peer").and_then(|p| p.as_str()) == Some(s_short.as_str())),
            "{:?}",
            logged.lock().unwrap()
        );
        for n in [b_node, a_node, s_node] {
            n.shutdown().await;
        }
    }
}
