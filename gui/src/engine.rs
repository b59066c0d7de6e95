//! The engine side of the app: one thread owns the home, a tokio runtime and the network node.
//! The UI sends [`Cmd`]s over a channel and reads [`Model`] snapshots; the engine thread asks
//! for a repaint whenever the model changes. The UI never waits on the engine.

use cobox_engine::agreement_service;
use cobox_engine::codes::{Invite, PeerAddr};
use cobox_engine::daemon::{AUDIT_SAMPLE, Activity, Daemon, Schedule};
use cobox_engine::sync::net::{Held, NetConfig, SeedPolicy, parse_peer};
use cobox_engine::{Home, Keep, SpaceId};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the UI asks for.
#[derive(Debug, Clone)]
pub(crate) enum Cmd {
    Create {
        name: String,
        path: PathBuf,
    },
    Join {
        code: String,
        path: PathBuf,
    },
    /// Make an invite code for a role (a writer's from the space's header).
    Invite {
        space: SpaceId,
        role: cobox_engine::roster::Role,
    },
    /// Remove a member (by device id); the user confirmed what removal does.
    RemoveMember {
        space: SpaceId,
        device: String,
    },
    /// Cancel an invite not yet used.
    CancelInvite {
        space: SpaceId,
        id: String,
    },
    Scan(SpaceId),
    Sync(SpaceId),
    FileHistory {
        space: SpaceId,
        path: String,
    },
    RestoreVersion {
        space: SpaceId,
        path: String,
        history_id: String,
    },
    Resolve {
        space: SpaceId,
        copy: String,
        keep: Keep,
    },
    Propose {
        space: SpaceId,
        seeder: String,
        quota: u64,
        days: u32,
    },
    Revoke(String),
    Audit(SpaceId),
    SetTarget {
        space: SpaceId,
        copies: u32,
    },
    /// Replace the folder's `.coboxignore` rules, then check the folder under them.
    SetIgnores {
        space: SpaceId,
        rules: String,
    },
    /// Administer a seeder: pair from its code (or its ID@IP:PORT when it named this device).
    PairSeeder(String),
    /// Ask every paired seeder for its report (in the background).
    AskSeeders,
    /// Restore a folder (or the whole space, `dir` empty) as it was at `at` (a time or a
    /// history id) into a new folder `into`.
    RestoreFolder {
        space: SpaceId,
        dir: String,
        at: String,
        into: PathBuf,
    },
    /// Set this device's upload and download limits (bytes per second; 0: none).
    SetLimits {
        up: u64,
        down: u64,
    },
    /// Replace a paired seeder's standing policy.
    SetSeederPolicy {
        seeder: cobox_engine::DeviceId,
        policy: cobox_engine::admin::Policy,
    },
}

pub(crate) use crate::model::{ConflictView, FileRow, Model, SeederView, SpaceState, SpaceView};

/// Entries the activity log keeps.
const ACTIVITY_KEPT: usize = 200;

/// What the app has told the user about already, so each thing is told once.
#[derive(Default)]
struct Told {
    /// Conflict copies per space.
    conflicts: std::collections::HashMap<SpaceId, std::collections::BTreeSet<String>>,
    /// Removed devices per space.
    removed: std::collections::HashMap<SpaceId, std::collections::BTreeSet<String>>,
    /// Seeders that said they were full.
    full: std::collections::BTreeSet<String>,
    /// Seeders whose copy of a space was behind at their last session.
    stale: std::collections::BTreeSet<(String, SpaceId)>,
    /// False until the first refresh: what is there at start is no news.
    primed: bool,
}

/// The UI's end of the engine.
pub(crate) struct EngineHandle {
    tx: Sender<Cmd>,
    /// The newest model. The UI takes an `Arc` of it per frame (no copy); the engine changes it
    /// copy-on-write, so a frame being drawn keeps the model it started with.
    pub(crate) model: Arc<Mutex<Arc<Model>>>,
}

impl EngineHandle {
    pub(crate) fn send(&self, c: Cmd) {
        // The engine thread only stops with the app; a failed send means it died, which the model shows.
        let _ = self.tx.send(c);
    }

    pub(crate) fn snapshot(&self) -> Arc<Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
impl EngineHandle {
    /// A handle showing a fixed model, with no engine behind it (for snapshot tests).
    pub(crate) fn fixed(model: Model) -> Self {
        let (tx, _) = std::sync::mpsc::channel();
        Self { tx, model: Arc::new(Mutex::new(Arc::new(model))) }
    }
}

/// Where the engine keeps its state and how it reaches peers.
#[derive(Clone)]
pub(crate) struct EngineConfig {
    pub(crate) home: PathBuf,
    pub(crate) net: NetConfig,
    /// Seconds between background syncs with known peers.
    pub(crate) interval: u64,
    /// Raise desktop notifications for news (off in tests).
    pub(crate) notify: bool,
}

/// Start the engine thread. `repaint` is called whenever the model changed.
pub(crate) fn spawn(cfg: EngineConfig, repaint: Arc<dyn Fn() + Send + Sync>) -> EngineHandle {
    let (tx, rx) = std::sync::mpsc::channel();
    let model = Arc::new(Mutex::new(Arc::new(Model::default())));
    let m = model.clone();
    std::thread::Builder::new()
        .name("cobox-engine".into())
        .spawn(move || {
            if let Err(e) = run(cfg, rx, &m, &repaint) {
                let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                let g2 = Arc::make_mut(&mut g);
                g2.fatal = Some(e);
                g2.ready = true;
                drop(g);
                repaint();
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| {
            Arc::make_mut(&mut model.lock().unwrap_or_else(|p| p.into_inner())).fatal = Some(e.to_string())
        });
    EngineHandle { tx, model }
}

struct Engine {
    home: Arc<Home>,
    /// The same daemon `cobox up` runs: watching, scans, syncs, audits, seed expiry, rescans.
    daemon: Arc<Daemon>,
    rt: tokio::runtime::Runtime,
    model: Arc<Mutex<Arc<Model>>>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    /// What the daemon did.
    activity: tokio::sync::mpsc::UnboundedReceiver<Activity>,
    /// What the user was told of.
    told: Told,
    notify: bool,
}

fn run(
    cfg: EngineConfig,
    rx: Receiver<Cmd>,
    model: &Arc<Mutex<Arc<Model>>>,
    repaint: &Arc<dyn Fn() + Send + Sync>,
) -> Result<(), String> {
    let home = Arc::new(Home::open(&cfg.home).map_err(|e| match e {
        cobox_engine::Error::Locked { .. } => format!("{e}. CoBox can run once per device: close the other one."),
        e => format!("Cannot open CoBox's data folder: {e}"),
    })?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("Cannot start: {e}"))?;
    // The same log file `cobox up` writes, so `cobox logs` shows what the app's daemon did.
    // Without it the app still works; it says so once it is up.
    let unlogged = cobox_engine::logfile::init(home.root(), false).err();
    let schedule = Schedule { interval: Duration::from_secs(cfg.interval.max(1)), ..Schedule::default() };
    // The standing policy `cobox up` also starts from (an administrator may have set it).
    let standing =
        cobox_engine::seeder_admin::standing_policy(home.root()).map_err(|e| format!("Cannot start: {e}"))?;
    let policy = SeedPolicy { owners: standing.seed_for, max_quota: standing.max_quota, accept: Vec::new() };
    let (daemon, activity) =
        rt.block_on(Daemon::start(&home, &cfg.net, policy, schedule)).map_err(|e| format!("Cannot start: {e}"))?;
    // The control socket, as `cobox up` serves it: the CLI works beside the app.
    let control = {
        let _in_runtime = rt.enter();
        match cobox_http::bind_control(home.root()) {
            Ok(l) => {
                Some(rt.spawn(cobox_http::serve_control(l, cobox_http::Api::control(daemon.clone(), home.clone()))))
            }
            Err(_) => None,
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(daemon.clone().run(async move {
        let _ = stop_rx.await;
    }));
    let mut eng = Engine {
        home,
        daemon,
        rt,
        model: model.clone(),
        repaint: repaint.clone(),
        activity,
        told: Told::default(),
        notify: cfg.notify,
    };
    eng.update(|m| {
        m.device = eng.home.device_id().to_string();
        m.address = eng.daemon.node().addr_string();
        m.limits = eng.daemon.node().limits();
    });
    eng.refresh();
    eng.ask_seeders();
    if let Some(e) = unlogged {
        eng.notice(true, format!("CoBox cannot write its log, so `cobox logs` will not show this session: {e}"));
    }
    let start = Instant::now();
    let mut last_traffic = eng.daemon.node().traffic();
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    loop {
        let wait = next_sample.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(cmd) => {
                // Reading a history or an invite changes nothing the model shows elsewhere.
                let changes = !matches!(cmd, Cmd::FileHistory { .. });
                eng.handle(cmd);
                if changes {
                    eng.refresh();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            let t = eng.daemon.node().traffic();
            let (up, down) = ((t.0 - last_traffic.0) as f64 / 1000.0, (t.1 - last_traffic.1) as f64 / 1000.0);
            last_traffic = t;
            let peers = eng.daemon.node().peers_seen();
            let receiving = eng.daemon.node().receiving();
            let scanning = eng.daemon.scanning();
            // The rate plot ticks every second without a repaint of its own: the Network screen,
            // when shown, asks for one each second; other screens do not change with it, so an
            // idle app draws nothing. Peers changing is news for every screen.
            let news = {
                let m = eng.model.lock().unwrap_or_else(|p| p.into_inner());
                m.peers != peers || m.receiving != receiving || m.scanning != scanning
            };
            let change = |m: &mut Model| {
                m.receiving = receiving;
                m.scanning = scanning;
                m.rates.push_back([start.elapsed().as_secs_f64(), up, down]);
                while m.rates.len() > 300 {
                    m.rates.pop_front();
                }
                m.peers = peers;
            };
            if news {
                eng.update(change);
            } else {
                eng.update_quietly(change);
            }
        }
        eng.take_activity();
        eng.tell_news();
    }
    let _ = stop_tx.send(());
    let Engine { rt, daemon, home, .. } = eng;
    rt.block_on(async move {
        if let Some(c) = control {
            c.abort();
            let _ = c.await;
            let _ = std::fs::remove_file(home.root().join(cobox_http::CONTROL_SOCKET));
        }
        let _ = running.await;
        if let Ok(d) = Arc::try_unwrap(daemon)
            && let Ok(n) = Arc::try_unwrap(d.into_node())
        {
            n.shutdown().await;
        }
    });
    Ok(())
}

/// News about seeders from their last sessions: one that said it was full, one whose copy of a
/// space was behind what a member had noted. Each is told once until it changes.
fn peer_news(m: &Model, told: &mut Told) -> Vec<String> {
    let mut news = Vec::new();
    for p in &m.peers {
        let full = p.refusal == Some(cobox_engine::sync::proto::Refusal::SeederFull);
        let short = p.device.get(..8).unwrap_or(&p.device).to_owned();
        if full && told.full.insert(p.device.clone()) {
            news.push(format!("Seeder {short} is full: it takes no more of your data until its operator frees space."));
        } else if !full {
            told.full.remove(&p.device);
        }
        match &p.stale {
            Some((space, st)) if told.stale.insert((p.device.clone(), *space)) => {
                let name = m.spaces.iter().find(|s| s.id == *space).map_or_else(|| space.short(), |s| s.name.clone());
                let who = st.device.to_string();
                let who = m.names.get(&who).cloned().unwrap_or_else(|| st.device.short());
                news.push(format!(
                    "Seeder {short} holds an old copy of {name}: it lacks changes {who} had made by {}. Sync \
                     with another seeder or a member before restoring from it.",
                    rfc3339_ns(st.time_ms.saturating_mul(1_000_000))
                ));
            }
            Some(_) => {}
            None => {
                told.stale.retain(|(d, _)| d != &p.device);
            }
        }
    }
    news
}

/// Change the model from a background task and ask for a repaint.
fn update_model(model: &Mutex<Arc<Model>>, repaint: &(dyn Fn() + Send + Sync), f: impl FnOnce(&mut Model)) {
    f(Arc::make_mut(&mut model.lock().unwrap_or_else(|p| p.into_inner())));
    repaint();
}

fn rfc3339_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).format("%Y-%m-%d %H:%M").to_string()
}

impl Engine {
    fn update(&self, f: impl FnOnce(&mut Model)) {
        f(Arc::make_mut(&mut self.model.lock().unwrap_or_else(|p| p.into_inner())));
        (self.repaint)();
    }

    /// Something the user should hear of: into the activity log, and a desktop notification.
    fn news(&self, text: String) {
        if self.notify {
            // A desktop without a notification service still has the log.
            let _ = notify_rust::Notification::new().summary("CoBox").body(&text).appname("CoBox").show();
        }
        self.update(|m| {
            m.activity.push_back((cobox_engine::now_ms(), text));
            while m.activity.len() > ACTIVITY_KEPT {
                m.activity.pop_front();
            }
        });
    }

    /// Compare what the model shows now with what the user was told: new conflicts, removed
    /// members and full seeders are news.
    fn tell_news(&mut self) {
        let m = self.model.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut news = Vec::new();
        for s in &m.spaces {
            let now: std::collections::BTreeSet<String> = s.conflicts.iter().map(|c| c.original.clone()).collect();
            let before = self.told.conflicts.insert(s.id, now.clone()).unwrap_or_default();
            for f in now.difference(&before) {
                news.push(format!("New conflict in {}: {f} was changed on two devices while apart.", s.name));
            }
            let removed: std::collections::BTreeSet<String> =
                s.roster.as_ref().map(|r| r.removed.iter().cloned().collect()).unwrap_or_default();
            let before = self.told.removed.insert(s.id, removed.clone()).unwrap_or_default();
            for d in removed.difference(&before) {
                news.push(format!("{d} was removed from {}.", s.name));
            }
        }
        news.extend(peer_news(&m, &mut self.told));
        if std::mem::replace(&mut self.told.primed, true) {
            for n in news {
                self.news(n);
            }
        }
    }

    /// Change the model without a repaint: what changed shows at the next frame anyone asks for.
    fn update_quietly(&self, f: impl FnOnce(&mut Model)) {
        f(Arc::make_mut(&mut self.model.lock().unwrap_or_else(|p| p.into_inner())));
    }

    fn notice(&self, err: bool, text: impl Into<String>) {
        let t = text.into();
        self.update(|m| m.notice = Some((err, t)));
    }

    /// Rebuild the model from the engine.
    fn refresh(&self) {
        let mut spaces = Vec::new();
        // A home whose spaces cannot be listed is not a home without spaces: keep what was
        // shown and say why, rather than show the first-run screen.
        let infos = match self.home.spaces() {
            Ok(i) => i,
            Err(e) => {
                let why = format!("could not read this device's spaces in {}: {e}", self.home.root().display());
                self.update(|m| {
                    m.spaces_error = Some(why);
                    m.ready = true;
                });
                return;
            }
        };
        let (last_syncs, syncing) = {
            let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
            (m.spaces.iter().map(|s| (s.id, s.last_sync.clone())).collect::<Vec<_>>(), m.syncing.clone())
        };
        for info in infos {
            let Some(s) = self.daemon.node().space(&info.id) else {
                if cobox_engine::Home::join_pending_at(self.home.root(), &info.id) {
                    let last_sync = last_syncs.iter().find(|(id, _)| *id == info.id).and_then(|(_, l)| l.clone());
                    spaces.push(SpaceView {
                        id: info.id,
                        name: info.name.clone(),
                        path: info.path.clone(),
                        status: None,
                        files: Vec::new(),
                        conflicts: Vec::new(),
                        agreements: Vec::new(),
                        state: SpaceState::Joining,
                        last_sync,
                        ignores: String::new(),
                        roster: None,
                    });
                }
                continue;
            };
            // Read in one piece of work on the blocking pool; the lock is not held here after.
            let read = self.on(&s, |s| Ok((s.status(), s.files(), s.device_names(), s.ignore_rules())));
            let (status, files, names, ignores) = match read {
                Ok(r) => r,
                Err(e) => (Err(e), Ok(Vec::new()), Default::default(), Ok(String::new())),
            };
            let (status, mut error) = match status {
                Ok(st) => (Some(st), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let entries = files.unwrap_or_else(|e| {
                error = Some(e.to_string());
                Vec::new()
            });
            let size_of =
                |p: &str| entries.iter().find(|(q, _)| q == p).map(|(_, e)| (e.size(), rfc3339_ns(e.mtime_ns)));
            let files: Vec<FileRow> = entries
                .iter()
                .filter(|(_, e)| matches!(e.kind, cobox_engine::entry::Kind::File { .. }))
                .map(|(p, e)| FileRow {
                    path: p.clone(),
                    size: e.size(),
                    modified: rfc3339_ns(e.mtime_ns),
                    device: names.get(&e.device[..]).cloned().unwrap_or_else(|| hex_short(&e.device)),
                })
                .collect();
            let conflicts: Vec<ConflictView> = files
                .iter()
                .filter_map(|f| {
                    let original = cobox_engine::conflict_original(&f.path)?;
                    let (osize, omod) = size_of(&original).unwrap_or((0, "gone".into()));
                    Some(ConflictView {
                        copy: f.path.clone(),
                        original,
                        copy_size: f.size,
                        original_size: osize,
                        copy_modified: f.modified.clone(),
                        original_modified: omod,
                    })
                })
                .collect();
            let last_sync = last_syncs.iter().find(|(id, _)| *id == info.id).and_then(|(_, l)| l.clone());
            let state = if let Some(e) = &error {
                SpaceState::Error(e.clone())
            } else if syncing.contains(&info.id) {
                SpaceState::Syncing
            } else if !conflicts.is_empty() {
                SpaceState::Conflicts(conflicts.len())
            } else if matches!(&last_sync, Some((_, Some(_)))) {
                SpaceState::Offline
            } else {
                SpaceState::InSync
            };
            let agreements = status.as_ref().map(|st| st.agreements.clone()).unwrap_or_default();
            let ignores = ignores.unwrap_or_else(|e| {
                error.get_or_insert(e.to_string());
                String::new()
            });
            let roster =
                cobox_engine::members::list(self.home.root(), &info.id.to_string(), cobox_engine::now_ms()).ok();
            spaces.push(SpaceView {
                id: info.id,
                name: info.name.clone(),
                path: info.path.clone(),
                status,
                files,
                conflicts,
                agreements,
                state,
                last_sync,
                ignores,
                roster,
            });
        }
        let mut seeds = Vec::new();
        for (id, h) in self.daemon.node().held() {
            if let Held::Seed(s) = h {
                seeds.push((id, s.view().used));
            }
        }
        let stats = agreement_service::stats(self.home.root(), cobox_engine::now_ms(), &|id| {
            seeds.iter().find(|(s, _)| s == id).map(|(_, u)| *u)
        })
        .ok();
        let names = spaces
            .iter()
            .filter_map(|s| s.roster.as_ref())
            .flat_map(|r| r.members.iter())
            .filter(|m| !m.name.is_empty())
            .map(|m| (m.device.clone(), m.name.clone()))
            .collect();
        self.update(|m| {
            m.names = names;
            m.spaces = spaces;
            m.spaces_error = None;
            m.seeds = seeds;
            m.stats = stats;
            m.ready = true;
        });
    }

    /// Show what the daemon did: scans with changes and audits redraw the spaces; syncs mark
    /// their space while they run.
    fn take_activity(&mut self) {
        let mut refresh = false;
        while let Ok(a) = self.activity.try_recv() {
            match a {
                Activity::Audited { space, seeder, result, refusal } => {
                    let name =
                        self.home.spaces().ok().and_then(|v| v.into_iter().find(|i| i.id == space)).map(|i| i.name);
                    let name = name.unwrap_or_else(|| space.short());
                    let short = seeder.get(..8).unwrap_or(&seeder).to_owned();
                    match &result {
                        Ok(r) if !r.ok() => self.news(format!(
                            "Seeder {short} failed an audit of {name}: it proved {} of {} blobs.",
                            r.passed, r.challenged
                        )),
                        Err(_) if refusal == Some(cobox_engine::sync::proto::Refusal::SeederFull) => {}
                        Err(e) => self.news(format!("Seeder {short} could not be audited for {name}: {e}")),
                        Ok(_) => {}
                    }
                    refresh = true;
                }
                Activity::Scanned { .. } | Activity::SeedExpired(_) => refresh = true,
                Activity::SyncStarted(id) => self.update(|m| {
                    if !m.syncing.contains(&id) {
                        m.syncing.push(id);
                    }
                    if let Some(s) = m.spaces.iter_mut().find(|s| s.id == id) {
                        s.state = SpaceState::Syncing;
                    }
                }),
                Activity::SyncEnded { space, error, moved } => {
                    // A failure, or anything that moved, changes what the screens show; a
                    // periodic sync that moved nothing only updates its time and state.
                    refresh |= moved || error.is_some();
                    self.update(|m| {
                        m.syncing.retain(|s| *s != space);
                        if let Some(s) = m.spaces.iter_mut().find(|s| s.id == space) {
                            s.last_sync = Some((cobox_engine::now_ms(), error));
                            if s.state == SpaceState::Syncing {
                                s.state = if s.conflicts.is_empty() {
                                    SpaceState::InSync
                                } else {
                                    SpaceState::Conflicts(s.conflicts.len())
                                };
                            }
                        }
                    });
                }
            }
        }
        if refresh {
            self.refresh();
        }
    }

    /// Ask every paired seeder for its report on the runtime; each answer lands in the model.
    fn ask_seeders(&self) {
        let paired = cobox_engine::seeder_admin::seeders(self.home.root()).unwrap_or_default();
        let root = self.home.root().to_owned();
        self.update(|m| {
            let old = std::mem::take(&mut m.seeders);
            m.seeders = paired
                .iter()
                .map(|p| {
                    old.iter().find(|o| o.seeder.device == p.seeder.device).cloned().unwrap_or(SeederView {
                        seeder: p.seeder.clone(),
                        report: None,
                        error: None,
                    })
                })
                .collect();
        });
        for p in paired {
            let (node, model, repaint) = (self.daemon.node().clone(), self.model.clone(), self.repaint.clone());
            let reach = cobox_engine::seeder_admin::reach(&root, &p.seeder);
            self.rt.spawn(async move {
                let r = match cobox_engine::sync::net::dial_addr(&reach) {
                    Ok(addr) => node.admin(addr, &cobox_engine::admin::Request::Report).await,
                    Err(e) => Err(e),
                };
                update_model(&model, &*repaint, |m| {
                    let Some(v) = m.seeders.iter_mut().find(|v| v.seeder.device == p.seeder.device) else { return };
                    match r {
                        Ok(cobox_engine::admin::Response::Report(rep)) => {
                            v.report = Some((cobox_engine::now_ms(), rep));
                            v.error = None;
                        }
                        Ok(cobox_engine::admin::Response::Refused(why)) => v.error = Some(why),
                        Ok(_) => v.error = Some("the seeder gave no report".into()),
                        Err(e) => v.error = Some(e.to_string()),
                    }
                });
            });
        }
    }

    /// One request to a paired seeder, waited for (pairing, a policy): short, and the user asked.
    fn ask_seeder(
        &self,
        seeder: &PeerAddr,
        req: &cobox_engine::admin::Request,
    ) -> Result<cobox_engine::admin::Response, String> {
        let addr = cobox_engine::sync::net::dial_addr(seeder).map_err(|e| e.to_string())?;
        let node = self.daemon.node().clone();
        match self.rt.block_on(async move { node.admin(addr, req).await }) {
            Ok(cobox_engine::admin::Response::Refused(why)) => Err(why),
            Ok(r) => Ok(r),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Work on a space on the runtime's blocking pool ([`cobox_engine::handle::on_space`]): the
    /// lock is taken there, never held by this thread, and a panic in the work is an error
    /// shown, not a dead app.
    fn on<R: Send + 'static>(
        &self,
        s: &cobox_engine::handle::SpaceHandle,
        f: impl FnOnce(&mut cobox_engine::Space) -> Result<R, cobox_engine::Error> + Send + 'static,
    ) -> Result<R, cobox_engine::Error> {
        self.rt.block_on(cobox_engine::handle::on_space(s, f))
    }

    /// Hand a newly opened space to the daemon (node and watcher).
    fn add_space(&mut self, s: cobox_engine::Space) -> Result<(), cobox_engine::Error> {
        self.daemon.add_space(s)
    }

    /// Sync one space with every known peer on the runtime, until each converges as `cobox
    /// sync` does (a person asked for it); the daemon's activity says when it starts and ends.
    fn sync_background(&self, id: SpaceId) {
        let d = self.daemon.clone();
        self.rt.spawn(async move { d.sync_now(id).await });
    }

    fn handle(&mut self, cmd: Cmd) {
        let label = format!("{cmd:?}");
        self.update(|m| m.busy.push(label.clone()));
        self.apply(cmd);
        self.update(|m| m.busy.retain(|b| *b != label));
    }

    fn space(&self, id: &SpaceId) -> Option<cobox_engine::handle::SpaceHandle> {
        let s = self.daemon.node().space(id);
        if s.is_none() {
            self.notice(true, "That space is no longer open.");
        }
        s
    }

    fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Create { name, path } => match self.home.create_space(&name, &path).and_then(|i| {
                let s = self.home.open_space(&i.id.to_string())?;
                self.add_space(s)?;
                Ok(i)
            }) {
                Ok(info) => {
                    let scanned = match self.daemon.node().space(&info.id) {
                        Some(s) => self.on(&s, |s| s.scan(&cobox_engine::NoProgress)).map(|_| ()),
                        None => Ok(()),
                    };
                    match scanned {
                        Ok(()) => self.notice(false, format!("Created '{}' over {}.", info.name, info.path.display())),
                        Err(e) => {
                            self.notice(true, format!("Created '{}', but could not check its folder: {e}", info.name))
                        }
                    }
                }
                Err(e) => self.notice(true, format!("Could not create the space: {e}")),
            },
            Cmd::Join { code, path } => {
                let inv = match Invite::parse(&code) {
                    Ok(i) => i,
                    Err(e) => return self.notice(true, format!("That invite code does not work: {e}")),
                };
                // The code holds no secret: the space opens when a peer accepts the invite, tried
                // now and at every scheduled sync until one does.
                match self.home.join(&inv, &path, None) {
                    Ok(info) => {
                        self.notice(
                            false,
                            format!("Joined '{}'. The folder fills once a member accepts the invite.", info.name),
                        );
                        self.sync_background(info.id);
                    }
                    Err(e) => self.notice(true, format!("Could not join: {e}")),
                }
            }
            Cmd::RemoveMember { space, device } => {
                match cobox_engine::members::remove(self.home.root(), &space.to_string(), &device) {
                    Ok(name) => self.notice(
                        false,
                        format!(
                            "Removed {name}. Devices that hear of it stop syncing with it; what it already had stays readable to it."
                        ),
                    ),
                    Err(e) => self.notice(true, format!("Could not remove the member: {e}")),
                }
            }
            Cmd::CancelInvite { space, id } => {
                match cobox_engine::members::cancel_invite(self.home.root(), &space.to_string(), &id) {
                    Ok(()) => self.notice(false, "Invite cancelled: the code no longer works."),
                    Err(e) => self.notice(true, format!("Could not cancel the invite: {e}")),
                }
            }
            Cmd::Invite { space: id, role } => {
                let request = cobox_engine::home::InviteRequest { role, ..cobox_engine::home::InviteRequest::writer() };
                match Home::invite(self.home.root(), &id.to_string(), &request).map(|i| i.encode()) {
                    Ok(Ok(code)) => self.update(|m| m.invite = Some((id, code))),
                    Ok(Err(e)) => self.notice(true, format!("Could not make an invite code: {e}")),
                    Err(e) => self.notice(true, format!("Could not make an invite code: {e}")),
                }
            }
            Cmd::Scan(id) => {
                if let Some(s) = self.space(&id) {
                    match self.on(&s, |s| s.scan(&cobox_engine::NoProgress)) {
                        Ok(r) => self.notice(
                            false,
                            format!(
                                "Checked the folder: {} added, {} changed, {} deleted.",
                                r.added, r.changed, r.deleted
                            ),
                        ),
                        Err(e) => self.notice(true, format!("Could not check the folder: {e}")),
                    }
                }
            }
            Cmd::Sync(id) => {
                match self.home.peers() {
                    Ok(book) if book.is_empty() => {
                        self.notice(true, "No other device is known yet: invite one, or join with a code.")
                    }
                    Ok(_) => {}
                    Err(e) => self.notice(true, format!("Could not read the address book: {e}")),
                }
                self.sync_background(id);
            }
            Cmd::FileHistory { space, path } => {
                if let Some(s) = self.space(&space) {
                    let p = path.clone();
                    match self.on(&s, move |s| s.history(Some(&p))) {
                        Ok(h) => self.update(|m| m.file_history = Some((space, path, h))),
                        Err(e) => self.notice(true, format!("Could not read the history: {e}")),
                    }
                }
            }
            Cmd::RestoreVersion { space, path, history_id } => {
                if let Some(s) = self.space(&space) {
                    let (p, v) = (path.clone(), history_id.clone());
                    let r = self.on(&s, move |s| {
                        s.restore_version(&p, &v)?;
                        s.history(Some(&p))
                    });
                    match r {
                        Ok(h) => {
                            self.notice(false, format!("Restored {path} as it was in version {history_id}."));
                            self.update(|m| m.file_history = Some((space, path, h)));
                        }
                        Err(e) => self.notice(true, format!("Could not restore {path}: {e}")),
                    }
                }
            }
            Cmd::Resolve { space, copy, keep } => {
                if let Some(s) = self.space(&space) {
                    match self.on(&s, move |s| s.resolve_conflict(&copy, keep)) {
                        Ok(_) => {
                            self.notice(false, "Conflict settled; other devices get the result on their next sync.")
                        }
                        Err(e) => self.notice(true, format!("Could not settle the conflict: {e}")),
                    }
                }
            }
            Cmd::Propose { space, seeder, quota, days } => {
                let addr = match parse_peer(seeder.trim()) {
                    Ok(a) => a,
                    Err(_) => {
                        return self.notice(
                            true,
                            "The seeder id should be 64 characters (0-9, a-f), as `cobox id` prints it on the seeder.",
                        );
                    }
                };
                let peer = PeerAddr {
                    device: cobox_engine::DeviceId(*addr.id.as_bytes()),
                    addrs: seeder
                        .split_once('@')
                        .map(|(_, x)| x.split(',').map(|a| a.trim().to_owned()).collect())
                        .unwrap_or_default(),
                };
                match agreement_service::propose(self.home.root(), &space.to_string(), &peer, quota, days, "") {
                    Ok((a, code)) => {
                        let c = match code.encode() {
                            Ok(c) => c,
                            Err(e) => return self.notice(true, format!("Proposed, but the seed code failed: {e}")),
                        };
                        self.update(|m| m.seed_code = Some(c));
                        self.notice(
                            false,
                            format!("Proposed agreement {}. Give the seed code to the seeder.", &a.id[..12]),
                        );
                    }
                    Err(e) => self.notice(true, format!("Could not propose: {e}")),
                }
            }
            Cmd::SetTarget { space, copies } => {
                if let Some(s) = self.space(&space)
                    && let Err(e) = self.on(&s, move |s| s.set_replicas_target(copies))
                {
                    self.notice(true, format!("Could not save the target: {e}"));
                }
            }
            Cmd::SetIgnores { space, rules } => {
                let Some(s) = self.space(&space) else { return };
                let saved = self.on(&s, move |s| {
                    let bad = s.set_ignore_rules(&rules)?;
                    Ok((bad, s.scan(&cobox_engine::NoProgress)?))
                });
                match saved {
                    Ok((bad, _)) if !bad.is_empty() => self.notice(true, format!("Saved, but {}", bad.join("; "))),
                    Ok((_, r)) => self.notice(
                        false,
                        format!(
                            "Saved the ignore rules: {} {} left out.",
                            r.ignored,
                            if r.ignored == 1 { "path" } else { "paths" }
                        ),
                    ),
                    Err(e) => self.notice(true, format!("Could not save the ignore rules: {e}")),
                }
                self.refresh();
            }
            Cmd::PairSeeder(code) => {
                let (seeder, req) = if code.trim().to_ascii_lowercase().starts_with(cobox_engine::admin::PAIR_PREFIX) {
                    match cobox_engine::admin::PairCode::parse(&code) {
                        Ok(c) => (
                            c.seeder,
                            cobox_engine::admin::Request::Pair { secret: c.secret, name: "CoBox app".into() },
                        ),
                        Err(e) => return self.notice(true, format!("That pairing code does not work: {e}")),
                    }
                } else {
                    match code.trim().parse::<PeerAddr>() {
                        Ok(p) => (
                            cobox_engine::seeder_admin::reach(self.home.root(), &p),
                            cobox_engine::admin::Request::Report,
                        ),
                        Err(_) => {
                            return self.notice(
                                true,
                                "Paste the pairing code the seeder's `cobox up` printed (cobox-pair-...).",
                            );
                        }
                    }
                };
                match self.ask_seeder(&seeder, &req) {
                    Ok(_) => {
                        if let Err(e) = cobox_engine::seeder_admin::remember_seeder(
                            self.home.root(),
                            seeder.clone(),
                            cobox_engine::now_ms(),
                        ) {
                            return self.notice(true, format!("Paired, but could not remember the seeder: {e}"));
                        }
                        self.notice(
                            false,
                            format!("Paired with seeder {}: you administer it now.", seeder.device.short()),
                        );
                        self.ask_seeders();
                    }
                    Err(e) => self.notice(true, format!("Could not pair: {e}")),
                }
            }
            Cmd::AskSeeders => self.ask_seeders(),
            Cmd::RestoreFolder { space, dir, at, into } => {
                let at = match cobox_engine::At::parse(at.trim()) {
                    Ok(a) => a,
                    Err(_) => {
                        return self.notice(
                            true,
                            "Give the time as 2026-11-24T10:00:00Z, or a version id from a file's history.",
                        );
                    }
                };
                let Some(s) = self.space(&space) else { return };
                let (only, to) = ((!dir.is_empty()).then(|| dir.clone()), into.clone());
                let r = self.on(&s, move |s| s.restore(&to, &at, only.as_deref(), false, &cobox_engine::NoProgress));
                let what = if dir.is_empty() { "the space".to_owned() } else { format!("'{dir}'") };
                match r {
                    Ok(r) if r.errors.is_empty() => self.notice(
                        false,
                        format!("Restored {what} as it was: {} files into {}.", r.files, into.display()),
                    ),
                    Ok(r) => self.notice(
                        true,
                        format!(
                            "Restored {what} into {}, but {} paths failed: {}",
                            into.display(),
                            r.errors.len(),
                            r.errors.join("; ")
                        ),
                    ),
                    Err(e) => self.notice(true, format!("Could not restore {what}: {e}")),
                }
            }
            Cmd::SetLimits { up, down } => {
                self.daemon.node().set_limits(up, down);
                let limits = cobox_engine::home::Limits { up, down };
                if let Err(e) = Home::set_limits_at(self.home.root(), &limits) {
                    return self.notice(true, format!("The limits hold until CoBox closes, but were not saved: {e}"));
                }
                let now = self.daemon.node().limits();
                self.update(|m| m.limits = now);
                self.notice(false, "Transfer limits set.");
            }
            Cmd::SetSeederPolicy { seeder, policy } => {
                let Some(p) = cobox_engine::seeder_admin::seeders(self.home.root())
                    .unwrap_or_default()
                    .into_iter()
                    .find(|p| p.seeder.device == seeder)
                else {
                    return self.notice(true, "That seeder is no longer paired.");
                };
                let reach = cobox_engine::seeder_admin::reach(self.home.root(), &p.seeder);
                match self.ask_seeder(&reach, &cobox_engine::admin::Request::SetPolicy(policy)) {
                    Ok(_) => {
                        self.notice(false, format!("Seeder {}'s policy is set.", seeder.short()));
                        self.ask_seeders();
                    }
                    Err(e) => self.notice(true, format!("Could not set the policy: {e}")),
                }
            }
            Cmd::Revoke(id) => match agreement_service::revoke(self.home.root(), &id) {
                Ok(a) => self.notice(false, format!("Revoked agreement {}.", &a.id[..12])),
                Err(e) => self.notice(true, format!("Could not revoke: {e}")),
            },
            Cmd::Audit(id) => {
                let node = self.daemon.node().clone();
                let root = self.home.root().to_owned();
                let opts = cobox_engine::ops::AuditOptions::asked(Vec::new(), AUDIT_SAMPLE);
                let audits = self.rt.block_on(async move { cobox_engine::ops::audit(&node, &root, &id, &opts).await });
                let results: Vec<_> = match audits {
                    Ok(a) if a.is_empty() => return self.notice(true, "No seeder with an active agreement to check."),
                    Ok(a) => a.into_iter().map(|a| a.result).collect(),
                    Err(e) => return self.notice(true, format!("Could not check the seeders: {e}")),
                };
                let passed = results.iter().filter(|r| r.as_ref().is_ok_and(|x| x.ok())).count();
                self.notice(
                    passed < results.len(),
                    format!("{passed} of {} seeders proved they hold the data.", results.len()),
                );
            }
        }
    }
}

fn hex_short(b: &[u8; 8]) -> String {
    b[..4].iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod news_tests {
    use super::*;
    use cobox_engine::space::Stale;
    use cobox_engine::sync::net::PeerSeen;

    /// A seeder whose copy was behind is news once, by the name of the member whose changes it
    /// lacks; again only after a session found it caught up and then behind once more.
    #[test]
    fn a_stale_seeder_is_news_once() {
        let space = SpaceId([4; 32]);
        let ana = cobox_engine::DeviceId([9; 32]);
        let behind = Stale { device: ana, time_ms: 1_800_000_000_000, missing: 2 };
        let seeder = |stale: Option<Stale>| PeerSeen {
            device: "5eed".repeat(16),
            last_ms: 1_800_000_100_000,
            ok: true,
            error: None,
            refusal: None,
            stale: stale.map(|s| (space, s)),
        };
        let mut m = Model::default();
        m.names.insert(ana.to_string(), "Ana's laptop".into());
        m.peers = vec![seeder(Some(behind))];
        let mut told = Told::default();
        let news = peer_news(&m, &mut told);
        assert_eq!(news.len(), 1, "{news:?}");
        assert!(news[0].starts_with("Seeder 5eed5eed holds an old copy of"), "{}", news[0]);
        assert!(news[0].contains("Ana's laptop had made by"), "{}", news[0]);
        assert!(peer_news(&m, &mut told).is_empty(), "told once");
        m.peers = vec![seeder(None)];
        assert!(peer_news(&m, &mut told).is_empty());
        m.peers = vec![seeder(Some(behind))];
        assert_eq!(peer_news(&m, &mut told).len(), 1, "behind again is news again");
    }
}
