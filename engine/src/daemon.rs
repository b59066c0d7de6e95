//! The daemon: what `cobox up` and the desktop app both run over a [`Node`]. It watches the
//! folders, scans what changed, syncs each space with every known peer, rescans everything
//! every so often (for what watching misses), audits this device's seeders on a schedule and
//! deletes seeds whose agreements ended longer than the grace period ago. Front ends read what
//! it did from its [`Activity`] channel; they add only their own surfaces (the HTTP API, the
//! window).

use crate::error::Error;
use crate::home::Home;
use crate::ids::SpaceId;
use crate::replica::Replica;
use crate::space::Space;
use crate::sync::net::{Held, NetConfig, Node, NodeSetup, SeedPolicy};
use crate::watch::Watcher;
use cobox_agreements::AuditRecord;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

pub use crate::ops::AUDIT_SAMPLE;

/// The daemon's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Between syncs with known peers (peers' changes arrive this way; ours as they happen).
    pub interval: Duration,
    /// Between full rescans of the folders.
    pub rescan: Duration,
    /// Between audits of this device's seeders.
    pub audit_every: Duration,
    /// Blobs challenged per audit.
    pub audit_sample: usize,
    /// How long a seeder keeps a space's blobs after its agreements end.
    pub seed_grace: Duration,
    /// Scan and hash at background CPU and I/O priority (`priority`).
    pub low_priority: bool,
    /// Between full re-hashes of each space's store (blobs a read found bad are healed at once).
    pub check_every: Duration,
    /// A space's manifest unused for one to two of these is let go until next needed
    /// (about 80 MB at 100,000 files; it loads again in a tenth of a second).
    pub release_idle: Duration,
    /// Between checks that each recovery custodian still holds its share (at the audits' pace).
    pub recovery_every: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            rescan: Duration::from_secs(3600),
            audit_every: Duration::from_secs(3600),
            audit_sample: AUDIT_SAMPLE,
            seed_grace: Duration::from_millis(cobox_agreements::GRACE_MS as u64),
            low_priority: true,
            check_every: Duration::from_secs(7 * 86400),
            release_idle: Duration::from_secs(60),
            recovery_every: crate::ops::RECOVERY_CHECK_EVERY,
        }
    }
}

/// What the daemon did, for the front end to show.
#[derive(Debug, Clone)]
pub enum Activity {
    /// A scan recorded changes.
    Scanned {
        /// The space.
        space: SpaceId,
        /// Paths added, changed, deleted.
        added: u64,
        /// Paths changed.
        changed: u64,
        /// Paths deleted.
        deleted: u64,
    },
    /// A sync of a space with its known peers began.
    SyncStarted(SpaceId),
    /// A recovery of a space was announced: `device` becomes a manager at `until_ms` unless a
    /// member cancels it.
    Recovering {
        /// The space.
        space: SpaceId,
        /// The recovering device.
        device: crate::ids::DeviceId,
        /// When it takes effect.
        until_ms: i64,
    },
    /// It ended: `error` is the last failure when no peer could be synced with.
    SyncEnded {
        /// The space.
        space: SpaceId,
        /// Why every peer failed, if each did.
        error: Option<String>,
        /// Whether any session moved something (blobs, changes, ledger entries) or found a
        /// seeder behind: front ends rebuild what they show only then, so an idle space's
        /// manifest stays released between the daemon's periodic syncs.
        moved: bool,
    },
    /// A seeder was audited.
    Audited {
        /// The space.
        space: SpaceId,
        /// The seeder's id (hex).
        seeder: String,
        /// The signed result, or why the audit could not run.
        result: Result<AuditRecord, String>,
        /// When the audit could not run because the seeder refused: what kind of refusal.
        refusal: Option<crate::sync::proto::Refusal>,
    },
    /// A seed's agreements ended longer than the grace period ago: its blobs were deleted.
    SeedExpired(SpaceId),
    /// A session a peer dialed changed a space here (blobs, changes or ledger entries taken, a
    /// joiner let in): what front ends show of it is out of date.
    Served(SpaceId),
}

/// A running daemon; clone the `Arc` to use it from several tasks.
pub struct Daemon {
    node: Arc<Node>,
    root: PathBuf,
    schedule: Schedule,
    watcher: Mutex<Option<Watcher>>,
    changed: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<SpaceId>>>,
    activity: UnboundedSender<Activity>,
    /// Scans running now, with their progress.
    scanning: std::sync::Mutex<std::collections::HashMap<SpaceId, Arc<Scanning>>>,
    /// Member spaces taken on (watched, or with no folder to watch); a space a peer's session
    /// let in (joined by an invite) is held by the node first and taken on at the next tick.
    taken_on: std::sync::Mutex<std::collections::BTreeSet<SpaceId>>,
    /// Recoveries already told of: space, device, announcement time.
    announced: std::sync::Mutex<std::collections::BTreeSet<(SpaceId, [u8; 32], i64)>>,
    /// When the network's measures were last kept ([`crate::overview::remember_measures`]).
    measured: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often a running daemon keeps the network's measures (a point per 12-hour window).
pub const MEASURE_EVERY: Duration = Duration::from_secs(3600);

/// A scan's progress while it runs: the phase, and bytes of it done.
#[derive(Debug, Default)]
pub struct Scanning {
    phase: std::sync::Mutex<String>,
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl crate::Progress for Scanning {
    fn start(&self, phase: &str, total_bytes: u64) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase.to_owned();
        self.total.store(total_bytes, std::sync::atomic::Ordering::Relaxed);
        self.done.store(0, std::sync::atomic::Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
    fn warn(&self, _: &str) {}
}

/// A scan running now, for people: its phase and bytes of it done of its total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanningNow {
    /// The space.
    pub space: SpaceId,
    /// What it is doing ("scanning": reading and hashing changed files).
    pub phase: String,
    /// Bytes of the phase done.
    pub done: u64,
    /// Bytes of the phase in all.
    pub total: u64,
}

impl Daemon {
    /// Open every space and seed of `home`, start the node and watch the folders.
    pub async fn start(
        home: &Home,
        net: &NetConfig,
        policy: SeedPolicy,
        schedule: Schedule,
    ) -> Result<(Arc<Self>, UnboundedReceiver<Activity>), Error> {
        // Limits saved in the home (the app's Network screen, `cobox up --limit-*` never writes
        // them) hold for every daemon, `cobox up` and the app alike, unless `net` sets its own.
        let saved = Home::limits_at(home.root())?;
        let mut net = net.clone();
        if net.limit_up == 0 {
            net.limit_up = saved.up;
        }
        if net.limit_down == 0 {
            net.limit_down = saved.down;
        }
        let net = &net;
        let mut setup = NodeSetup { policy, home: Some(home.root().to_owned()), ..NodeSetup::default() };
        let mut folders = Vec::new();
        for info in home.spaces()? {
            // A space joined by an invite is taken on once a peer accepts it (`sync_as`).
            if Home::join_pending_at(home.root(), &info.id) {
                continue;
            }
            let mut s = home.open_space(&info.id.to_string())?;
            // A space kept to audit has no folder to watch.
            if !info.audit_only {
                folders.push((info.id, s.info().path.clone(), s.scan_when_flagged()));
            }
            setup.spaces.push(s);
        }
        for s in home.seeds()? {
            setup.seeds.push(home.open_seed(&s.space, false)?);
        }
        let node = Arc::new(Node::start_with(home.device_seed(), setup, net).await?);
        node.advertise();
        Home::set_listening_at(home.root(), &node.addrs())?;
        let (activity, rx) = unbounded_channel();
        let (watcher, changed) = match crate::watch::watch(&folders, Duration::from_secs(2)) {
            Ok(w) => {
                for (id, why) in w.unwatched {
                    tracing::warn!(space = %id.short(), "space {}: {why}; its folder is rescanned before every sync instead", id.short());
                    if let Some(s) = node.space(&id) {
                        s.run(Space::scan_always).await?;
                    }
                }
                (Some(w.watcher), Some(w.changed))
            }
            Err(e) => {
                tracing::warn!("cannot watch folders ({e}); each is rescanned before every sync instead");
                for (id, _, _) in &folders {
                    if let Some(s) = node.space(id) {
                        s.run(Space::scan_always).await?;
                    }
                }
                (None, None)
            }
        };
        let taken_on = node.held().into_iter().map(|(id, _)| id).collect();
        let d = Self {
            node,
            taken_on: std::sync::Mutex::new(taken_on),
            announced: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            root: home.root().to_owned(),
            schedule,
            watcher: Mutex::new(watcher),
            changed: tokio::sync::Mutex::new(changed),
            activity,
            scanning: Default::default(),
            measured: Default::default(),
        };
        Ok((Arc::new(d), rx))
    }

    /// Scans running now: which phase, bytes done of its total (a scan that found nothing
    /// changed has no phase).
    pub fn scanning(&self) -> Vec<ScanningNow> {
        use std::sync::atomic::Ordering::Relaxed;
        self.scanning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(space, p)| {
                let phase = p.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (!phase.is_empty()).then(|| ScanningNow {
                    space: *space,
                    phase,
                    done: p.done.load(Relaxed),
                    total: p.total.load(Relaxed),
                })
            })
            .collect()
    }

    /// The network node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node, once the daemon is done with it (to shut it down).
    pub fn into_node(self) -> Arc<Node> {
        self.node
    }

    fn tell(&self, a: Activity) {
        let _ = self.activity.send(a);
    }

    /// Serve and watch a space opened while running (created or joined).
    pub fn add_space(&self, mut s: Space) -> Result<(), Error> {
        let info = s.info().clone();
        if !self.take_on(&info, || s.scan_when_flagged()) {
            s.scan_always();
        }
        self.node.add_space(s)
    }

    /// Watch the folder of a space this daemon serves from now on (unless it has none), with
    /// the flag `flag` gives the space; false when it cannot be watched (the space then scans
    /// before every sync instead).
    fn take_on(&self, info: &crate::SpaceInfo, flag: impl FnOnce() -> crate::space::ChangeFlag) -> bool {
        let id = info.id;
        self.taken_on.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        if info.audit_only {
            return true;
        }
        let watched = match self.watcher.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(w) => w.add(id, info.path.clone(), flag()),
            None => Err("no watcher".into()),
        };
        match watched {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(space = %id.short(), "space {}: {why}; rescanned before every sync instead", id.short());
                false
            }
        }
    }

    /// Take on the spaces the node came to hold by a join (this device's, or a peer's session
    /// that let it in): their folders watched from now on.
    async fn watch_joined(&self) {
        for (id, held) in self.node.held() {
            let crate::sync::net::Held::Member(s) = held else { continue };
            if self.taken_on.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
                continue;
            }
            let Ok((info, flag)) = s.run(|s| (s.info().clone(), s.scan_when_flagged())).await else { continue };
            if !self.take_on(&info, || flag) {
                let _ = s.run(Space::scan_always).await;
            }
            tracing::info!("space {}: this device's invite was accepted", id.short());
        }
    }

    /// Run until `stop` completes: the schedule, the watcher's changes, then a clean shutdown
    /// of the sessions in flight.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let Some(mut changed) = self.changed.lock().await.take() else {
            tracing::info!("the daemon is already running");
            return;
        };
        let mut syncs = tokio::task::JoinSet::new();
        let mut last_rescan: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(self.schedule.interval.max(Duration::from_secs(1)));
        let every = self.schedule.audit_every.max(Duration::from_secs(1));
        let mut audit_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let idle = self.schedule.release_idle.max(Duration::from_millis(100));
        let mut release_tick = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
        tokio::pin!(stop);
        let mut served = self.node.served();
        let mut served_open = true;
        // The first tick fires at once: catch up with known peers on start.
        loop {
            let (todo, full): (Vec<SpaceId>, bool) = tokio::select! {
                () = &mut stop => break,
                r = served.recv(), if served_open => {
                    match r {
                        Ok(id) => self.tell(Activity::Served(id)),
                        // Fell behind: every space may have changed.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for (id, _) in self.node.held() {
                                self.tell(Activity::Served(id));
                            }
                        }
                        // The node went (it outlives the loop, so never): nothing more to hear.
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => served_open = false,
                    }
                    (Vec::new(), false)
                }
                Some(id) = changed.recv() => (vec![id], false),
                _ = tick.tick() => {
                    // Addresses change (a relay reached later, a new network): invites and
                    // peers get the current ones.
                    self.node.advertise();
                    let _ = Home::set_listening_at(&self.root, &self.node.addrs());
                    self.expire_seeds().await;
                    self.heal_all().await;
                    let full = last_rescan.is_none_or(|t| t.elapsed() >= self.schedule.rescan);
                    if full {
                        last_rescan = Some(tokio::time::Instant::now());
                    }
                    self.watch_joined().await;
                    self.tell_recoveries();
                    self.keep_measures();
                    let mut todo: Vec<SpaceId> = self.node.held().into_iter().map(|(id, _)| id).collect();
                    todo.extend(self.pending_joins());
                    (todo, full)
                }
                _ = audit_tick.tick() => {
                    self.audit_all(&mut syncs).await;
                    self.check_recoveries(&mut syncs);
                    (Vec::new(), false)
                }
                _ = release_tick.tick() => {
                    self.release_unused();
                    (Vec::new(), false)
                }
            };
            for id in todo {
                self.scan(&id, full).await;
                let d = self.clone();
                syncs.spawn(async move { d.sync_with_peers(id).await });
            }
            // Reap finished peer syncs.
            while syncs.try_join_next().is_some() {}
        }
        syncs.shutdown().await;
        let _ = Home::set_listening_at(&self.root, &[]);
    }

    /// A space joined by an invite and not yet held: joined with `peers` ([`crate::ops::join`])
    /// and taken on (served and watched). `Ok` once the space is held (or was never pending);
    /// `Err`: each peer's answer.
    pub async fn join_pending(
        &self,
        id: &SpaceId,
        peers: &[crate::codes::PeerAddr],
        limit: Option<Duration>,
    ) -> Result<(), Vec<crate::ops::PeerSync>> {
        crate::ops::join(&self.node, &self.root, id, peers, limit).await?;
        self.watch_joined().await;
        Ok(())
    }

    /// Spaces joined by an invite that no peer has accepted yet.
    fn pending_joins(&self) -> Vec<SpaceId> {
        let spaces = Home::spaces_at(&self.root).unwrap_or_else(|e| {
            tracing::warn!("cannot list the spaces: {e}");
            Vec::new()
        });
        spaces.into_iter().map(|s| s.id).filter(|id| Home::join_pending_at(&self.root, id)).collect()
    }

    /// Let go of the manifests no one used since the last call. Queued on each space without
    /// waiting: a space busy now (a scan, a session) uses its manifest, so keeps it.
    fn release_unused(&self) {
        for (id, held) in self.node.held() {
            let crate::sync::net::Held::Member(s) = held else { continue };
            s.post(move |s| match s.release_if_unused() {
                Ok(true) => tracing::info!("space {}: manifest released while idle", id.short()),
                Ok(false) => {}
                Err(e) => tracing::warn!("space {}: cannot release its manifest: {e}", id.short()),
            });
        }
    }

    /// Record a space's local changes: all of them with `full`, else only if its watcher saw
    /// any. Runs on a blocking thread.
    pub async fn scan(&self, id: &SpaceId, full: bool) {
        let Some(s) = self.node.space(id) else { return };
        let progress = Arc::new(Scanning::default());
        self.scanning.lock().unwrap_or_else(|p| p.into_inner()).insert(*id, progress.clone());
        let p = progress.clone();
        let work = move |s: &mut Space| {
            if full && !s.info().audit_only { s.scan(&*p).map(Some) } else { s.scan_if_changed_with(&*p) }
        };
        let scanned = crate::handle::on_space_at(&s, self.schedule.low_priority, work).await;
        self.scanning.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        match scanned {
            Ok(Some(r)) if r.snapshot.is_some() => {
                tracing::info!(
                    space = %id.short(),
                    "space {}: {} added, {} changed, {} deleted",
                    id.short(),
                    r.added,
                    r.changed,
                    r.deleted
                );
                self.tell(Activity::Scanned { space: *id, added: r.added, changed: r.changed, deleted: r.deleted });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(space = %id.short(), "scan of {} failed: {e}", id.short()),
        }
    }

    /// Sync a space with every known peer ([`crate::ops::sync`], as scheduled: each peer within
    /// a time limit), telling when it starts and ends and each peer that failed.
    pub async fn sync_with_peers(&self, id: SpaceId) {
        self.sync_as(id, crate::ops::SyncOptions::scheduled()).await;
    }

    /// [`Daemon::sync_with_peers`] as a person asked for it (the app's "Sync now"): until
    /// each peer converges, with no time limit, as `cobox sync` does.
    pub async fn sync_now(&self, id: SpaceId) {
        self.sync_as(id, crate::ops::SyncOptions::asked(Vec::new())).await;
    }

    async fn sync_as(&self, id: SpaceId, opts: crate::ops::SyncOptions) {
        let peers = match Home::peer_addrs_at(&self.root, &id) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot read the address book: {e}");
                return;
            }
        };
        if peers.is_empty() {
            return;
        }
        self.tell(Activity::SyncStarted(id));
        let (mut ok, mut last, mut moved) = (false, None, false);
        if let Err(runs) = self.join_pending(&id, &peers, opts.peer_limit).await {
            let mut refused = false;
            for run in runs {
                let Err(e) = run.result else { continue };
                refused |= e.refusal() == Some(crate::sync::proto::Refusal::InviteRefused);
                let short = run.peer.device.short();
                tracing::warn!("joining {} with {short} failed: {e}", id.short());
                last = Some(e.to_string());
            }
            // As `cobox sync` does: a space no peer ever let in holds nothing shared, and its
            // refused invite never will be let in; it goes (its folder stays), and is not tried
            // again at every tick.
            if refused {
                match Home::remove_space_at(&self.root, &id.to_string()) {
                    Ok(info) => tracing::warn!(
                        "space {:?} was removed from this device (its folder stays): its invite was refused; ask a manager for a new one",
                        info.name
                    ),
                    Err(e) => tracing::warn!("cannot remove space {}: {e}", id.short()),
                }
            }
            self.tell(Activity::SyncEnded { space: id, error: last, moved });
            return;
        }
        match crate::ops::sync(&self.node, &self.root, &id, &opts).await {
            Ok(runs) => {
                for run in runs {
                    moved |= run.moved();
                    match run.result {
                        Ok(_) => ok = true,
                        Err(e) => {
                            let short = run.peer.device.short();
                            tracing::warn!(space = %id.short(), peer = %short, "sync of {} with {short} failed: {e}", id.short());
                            last = Some(e.to_string());
                        }
                    }
                }
            }
            Err(e) => last = Some(e.to_string()),
        }
        self.tell(Activity::SyncEnded { space: id, error: if ok { None } else { last }, moved });
    }

    /// Drop every blob found corrupt or gone (a read met it, or the periodic full check), so
    /// the sync that follows fetches good copies from peers that hold them.
    async fn heal_all(&self) {
        let now = crate::now_ms();
        let every = i64::try_from(self.schedule.check_every.as_millis()).unwrap_or(i64::MAX);
        for (id, h) in self.node.held() {
            let healed = match h {
                Held::Member(s) => {
                    crate::handle::on_space_at(&s, self.schedule.low_priority, move |s| s.heal(now, every)).await
                }
                Held::Seed(s) => s.run(move |s| s.heal(now)).await.and_then(|r| r),
            };
            match healed {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => tracing::warn!(
                    space = %id.short(),
                    "space {}: {} corrupt or missing blob(s) dropped (first: {}); fetching good copies from peers",
                    id.short(),
                    ids.len(),
                    ids[0]
                ),
                Err(e) => tracing::warn!("space {}: checking the store failed: {e}", id.short()),
            }
        }
    }

    /// Delete seeds whose agreements all ended longer than the grace period ago.
    async fn expire_seeds(&self) {
        let now = crate::now_ms();
        let grace = i64::try_from(self.schedule.seed_grace.as_millis()).unwrap_or(i64::MAX);
        for (id, h) in self.node.held() {
            let Held::Seed(s) = h else { continue };
            let past =
                s.run(move |s| s.ledger().view(now).map(|v| s.past_grace(&v, now, grace)).unwrap_or(false)).await;
            let past = past.unwrap_or(false);
            if !past {
                continue;
            }
            self.node.forget(&id);
            drop(s);
            match Home::remove_seed(&self.root, &id) {
                Ok(()) => {
                    tracing::info!(
                        "space {}: agreements ended and the grace period passed; seeded blobs deleted",
                        id.short()
                    );
                    self.tell(Activity::SeedExpired(id));
                }
                Err(e) => {
                    tracing::warn!("space {}: deleting the expired seed failed: {e}", id.short())
                }
            }
        }
    }

    /// Audit every seeder of every member space, in the background ([`crate::ops::audit`], as
    /// scheduled: each seeder synced with after its audit).
    /// Ask the custodians of each space this device set recovery up for to prove their shares,
    /// when the last check is older than the schedule's period.
    fn check_recoveries(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        let every = i64::try_from(self.schedule.recovery_every.as_millis()).unwrap_or(i64::MAX);
        let now = crate::now_ms();
        for (id, h) in self.node.held() {
            let Held::Member(_) = h else { continue };
            let due = match crate::recovery::setup_of(&self.root, &id) {
                Ok(Some(s)) => s.custodians.iter().any(|c| c.checked_ms.is_none_or(|t| now - t >= every)),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!("space {}: cannot read its recovery setup: {e}", id.short());
                    false
                }
            };
            if !due {
                continue;
            }
            let d = self.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::ops::recovery_check(&d.node, &d.root, &id.to_string()).await {
                    tracing::warn!("space {}: cannot check its recovery custodians: {e}", id.short());
                }
            });
        }
    }

    /// Tell of each recovery announced in a held space's roster, once: a new manager in the
    /// making, which any member may cancel while it waits.
    fn tell_recoveries(&self) {
        for (id, h) in self.node.held() {
            let Held::Member(s) = h else { continue };
            let Ok(view) = s.view().ledger.roster() else { continue };
            for (device, r) in &view.recovering {
                let new = self.announced.lock().unwrap_or_else(|p| p.into_inner()).insert((id, *device, r.since_ms));
                if new {
                    tracing::warn!(
                        space = %id.short(),
                        "space {}: {}",
                        id.short(),
                        crate::ops::recovering_lines(&view, crate::now_ms()).join("; ")
                    );
                    self.tell(Activity::Recovering {
                        space: id,
                        device: crate::ids::DeviceId(*device),
                        until_ms: r.until_ms,
                    });
                }
            }
        }
    }

    /// Keep the network's measures over time: a report made at most every
    /// [`MEASURE_EVERY`] records them, so the plots fill while nobody looks.
    fn keep_measures(self: &Arc<Self>) {
        {
            let mut last = self.measured.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < MEASURE_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let d = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::ops::network(&d.node, &d.root) {
                tracing::warn!("cannot take the network's measures: {e}");
            }
        });
    }

    async fn audit_all(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        for (id, h) in self.node.held() {
            let Held::Member(_) = h else { continue };
            let d = self.clone();
            tasks.spawn(async move {
                let opts = crate::ops::AuditOptions::scheduled(d.schedule.audit_sample);
                let audits = match crate::ops::audit(&d.node, &d.root, &id, &opts).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("space {}: cannot audit its seeders: {e}", id.short());
                        return;
                    }
                };
                for a in audits {
                    let seeder = a.seeder.device.to_string();
                    let short = a.seeder.device.short();
                    if let Err(e) = &a.synced {
                        tracing::warn!("syncing with {short} after the audit failed: {e}");
                    }
                    let r = a.result;
                    // The lines below carry the audit's space and seeder.
                    let space = id.short();
                    tracing::info_span!("audit", space = %space, peer = %short).in_scope(|| match &r {
                        Ok(rec) if rec.ok() => {
                            tracing::info!(
                                "audit of {short} for space {space}: {}/{} blobs proven",
                                rec.passed,
                                rec.challenged
                            );
                        }
                        Ok(rec) => tracing::warn!(
                            "audit of {short} for space {space}: {}/{} blobs proven - FAILED",
                            rec.passed,
                            rec.challenged
                        ),
                        Err(e) => tracing::warn!("audit of {short} for space {space} could not run: {e}"),
                    });
                    let refusal = r.as_ref().err().and_then(Error::refusal);
                    d.tell(Activity::Audited { space: id, seeder, result: r.map_err(|e| e.to_string()), refusal });
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Progress;

    #[test]
    fn a_scan_reports_its_phase_and_bytes() {
        let p = Scanning::default();
        p.start("scanning", 100);
        p.advance(30);
        p.advance(20);
        assert_eq!(*p.phase.lock().unwrap(), "scanning");
        assert_eq!(p.done.load(std::sync::atomic::Ordering::Relaxed), 50);
        p.start("scanning", 10);
        assert_eq!(p.done.load(std::sync::atomic::Ordering::Relaxed), 0, "a new phase starts from nothing");
    }
}
