//! The engine side of the app: one thread owns the home, a tokio runtime and the network node.
//! The UI sends [`Cmd`]s over a channel and reads [`Model`] snapshots; the engine thread asks
//! for a repaint whenever the model changes. The UI never waits on the engine.
//!
//! Here: the command enum, the engine thread and its loop. `view` builds the model from the
//! engine and tells the user what is news; `spaces`, `files`, `seeders` and `recovery` carry out
//! commands.

mod files;
mod recovery;
mod seeders;
mod spaces;
mod view;

use cobox_engine::daemon::{Activity, Daemon, Schedule};
use cobox_engine::sync::net::NetConfig;
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
    /// An invite: the role it grants, the joiner's name on the roster, how many days it works.
    Invite {
        space: SpaceId,
        role: cobox_engine::roster::Role,
        name: Option<String>,
        days: u32,
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
    /// Read a space's past states and deleted files (kept up to date until another space's are
    /// asked for).
    Past(SpaceId),
    /// Stop keeping a space's past up to date: no screen shows it.
    ForgetPast,
    /// Put a deleted path back as it was before its deletion.
    Undelete {
        space: SpaceId,
        path: String,
    },
    /// Compare a conflict copy with the file it was made for.
    Compare {
        space: SpaceId,
        copy: String,
    },
    /// Put the comparison away.
    CloseCompare,
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
    PairSeeder {
        code: String,
        /// What to call it on this device ("" none).
        name: String,
    },
    /// Call a seeder (or any device without a roster name) something on this device.
    NameSeeder {
        device: cobox_engine::DeviceId,
        name: String,
    },
    /// Ask every paired seeder for its report (in the background).
    AskSeeders,
    /// Show a waiting proposal's seed code again.
    SeedCode(String),
    /// Name this device in every space (and those it joins later).
    NameDevice(String),
    /// Keep the text size chosen.
    SetZoom(f32),
    /// What closing the window does from now on: keep syncing (minimized), quit, or ask.
    SetOnClose(Option<bool>),
    /// Rename a member of a space (a manager any, a device itself).
    RenameMember {
        space: SpaceId,
        device: String,
        name: String,
    },
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
    /// Split a new recovery key among custodians (`threshold` of them rebuild it).
    RecoverySetup {
        space: SpaceId,
        custodians: Vec<cobox_engine::codes::PeerAddr>,
        threshold: usize,
        wait_ms: i64,
    },
    /// Ask each custodian to prove it still holds its share.
    RecoveryCheck(SpaceId),
    /// Cancel the space's recoveries announced and not in effect yet.
    RecoveryCancel(SpaceId),
    /// As a custodian: release this device's share to the device whose request code this is
    /// (the person compared its fingerprint).
    RecoveryApprove(String),
}

pub(crate) use crate::model::{
    CompareView, ConflictView, FileRow, Model, Past, SeederView, SpaceState, SpaceView, Writer,
};

/// Entries the activity log keeps.
const ACTIVITY_KEPT: usize = 200;
/// The file in the home that keeps the activity log across restarts.
const ACTIVITY_FILE: &str = "app-activity.json";

/// The file in the home with the app's own settings.
const SETTINGS_FILE: &str = "app-settings.json";

/// The app's settings kept in the home.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Settings {
    /// The text size (egui's zoom factor).
    zoom: Option<f32>,
    /// What closing the window does: keep syncing minimized (`true`), quit (`false`), or ask.
    #[serde(default)]
    keep_syncing_on_close: Option<bool>,
}

/// The app's settings (none, or unreadable: the defaults).
fn settings(root: &std::path::Path) -> Settings {
    std::fs::read(root.join(SETTINGS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

impl Engine {
    /// Change the kept settings.
    fn save_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), String> {
        let mut s = settings(self.home.root());
        change(&mut s);
        let b = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
        cobox_engine::util::write_atomic(&self.home.root().join(SETTINGS_FILE), &b).map_err(|e| e.to_string())
    }

    fn set_zoom(&self, z: f32) -> Outcome {
        let z = z.clamp(0.5, 3.0);
        self.update(|m| m.zoom = Some(z));
        self.save_settings(|s| s.zoom = Some(z))
            .map_err(|e| format!("The text size holds until CoBox closes, but was not saved: {e}"))?;
        Ok(None)
    }

    fn set_on_close(&self, keep: Option<bool>) -> Outcome {
        self.update(|m| m.keep_syncing_on_close = keep);
        self.save_settings(|s| s.keep_syncing_on_close = keep)
            .map_err(|e| format!("The choice holds until CoBox closes, but was not saved: {e}"))?;
        Ok(None)
    }
}

/// The activity log as the last run left it (none, or unreadable: an empty one).
fn kept_activity(root: &std::path::Path) -> std::collections::VecDeque<(i64, String)> {
    std::fs::read(root.join(ACTIVITY_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<(i64, String)>>(&b).ok())
        .map(|mut v| {
            let excess = v.len().saturating_sub(ACTIVITY_KEPT);
            v.drain(..excess);
            v.into()
        })
        .unwrap_or_default()
}

/// What the app has told the user about already, so each thing is told once.
#[derive(Default)]
struct Told {
    /// Conflict copies per space.
    conflicts: std::collections::HashMap<SpaceId, std::collections::BTreeSet<String>>,
    /// Removed devices per space.
    removed: std::collections::HashMap<SpaceId, std::collections::BTreeSet<String>>,
    /// Member devices per space (a new one joined).
    members: std::collections::HashMap<SpaceId, std::collections::BTreeSet<String>>,
    /// Seeders that said they were full.
    full: std::collections::BTreeSet<String>,
    /// Seeders whose copy of a space was behind at their last session.
    stale: std::collections::BTreeSet<(String, SpaceId)>,
    /// Seeders (space, device) whose health fell below the mark, told once.
    unhealthy: std::collections::BTreeSet<(String, String)>,
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
    /// Spaces whose sync the person asked for ("Sync now"): its end is said in the notice line.
    asked_sync: std::cell::RefCell<std::collections::HashSet<SpaceId>>,
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
    // Started as `cobox up` starts it, control socket and all: the CLI works beside the app.
    let (launched, activity) =
        rt.block_on(cobox_http::launch(home.clone(), &cfg.net, schedule)).map_err(|e| format!("Cannot start: {e}"))?;
    let daemon = launched.daemon.clone();
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
        asked_sync: Default::default(),
    };
    let kept = kept_activity(eng.home.root());
    let named = cobox_engine::members::device_name(eng.home.root());
    let kept_settings = settings(eng.home.root());
    eng.update(|m| {
        m.activity = kept;
        m.zoom = kept_settings.zoom;
        m.keep_syncing_on_close = kept_settings.keep_syncing_on_close;
        m.device_name = named;
        m.device = eng.home.device_id().to_string();
        m.address = eng.daemon.node().addr_string();
        m.limits = eng.daemon.node().limits();
    });
    eng.refresh();
    // What is there at start is no news: known now, so a change a second later already is.
    eng.tell_news();
    eng.ask_seeders();
    if let Some(e) = unlogged {
        eng.notice(true, format!("CoBox cannot write its log, so `cobox logs` will not show this session: {e}"));
    }
    if let Some(e) = &launched.control_error {
        eng.notice(true, format!("The cobox command cannot reach the app ({e}): close the app to use it."));
    }
    let start = Instant::now();
    let mut last_traffic = eng.daemon.node().traffic();
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    loop {
        let wait = next_sample.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(cmd) => {
                // Reading a history or an invite changes nothing the model shows elsewhere.
                let changes = !matches!(
                    cmd,
                    Cmd::FileHistory { .. } | Cmd::Past(_) | Cmd::Compare { .. } | Cmd::CloseCompare | Cmd::ForgetPast
                );
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
    let Engine { rt, daemon, .. } = eng;
    rt.block_on(async move {
        let _ = running.await;
        drop(daemon);
        launched.shut_down().await;
    });
    Ok(())
}

/// Change the model from a background task and ask for a repaint.
fn update_model(model: &Mutex<Arc<Model>>, repaint: &(dyn Fn() + Send + Sync), f: impl FnOnce(&mut Model)) {
    f(Arc::make_mut(&mut model.lock().unwrap_or_else(|p| p.into_inner())));
    repaint();
}

pub(crate) fn rfc3339_ns(ns: i64) -> String {
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
        self.log(text);
    }

    /// Good news worth keeping but not worth interrupting anyone for: into the activity log only.
    fn good(&self, text: String) {
        self.log(text);
    }

    /// Into the activity log, which is kept in the home so a restart forgets nothing.
    fn log(&self, text: String) {
        self.update(|m| {
            m.activity.push_back((cobox_engine::now_ms(), text));
            while m.activity.len() > ACTIVITY_KEPT {
                m.activity.pop_front();
            }
        });
        let kept: Vec<(i64, String)> =
            self.model.lock().unwrap_or_else(|p| p.into_inner()).activity.iter().cloned().collect();
        let path = self.home.root().join(ACTIVITY_FILE);
        let written = serde_json::to_vec(&kept)
            .map_err(|e| e.to_string())
            .and_then(|b| cobox_engine::util::write_atomic(&path, &b).map_err(|e| e.to_string()));
        if let Err(e) = written {
            // The log on screen still has it; only a restart would lose it.
            tracing::warn!("cannot keep the app's activity in {}: {e}", path.display());
        }
    }

    /// Change the model without a repaint: what changed shows at the next frame anyone asks for.
    fn update_quietly(&self, f: impl FnOnce(&mut Model)) {
        f(Arc::make_mut(&mut self.model.lock().unwrap_or_else(|p| p.into_inner())));
    }

    fn notice(&self, err: bool, text: impl Into<String>) {
        let t = text.into();
        self.update(|m| {
            m.notice = Some((err, t));
            m.notice_at_ms = cobox_engine::now_ms();
        });
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
        self.daemon.node().space(id)
    }

    /// Do what the UI asked: each command is one method (in `spaces`, `files`, `seeders`),
    /// whose outcome is shown as a notice.
    fn apply(&mut self, cmd: Cmd) {
        let kept = matches!(
            cmd,
            Cmd::RestoreVersion { .. } | Cmd::RestoreFolder { .. } | Cmd::Resolve { .. } | Cmd::Undelete { .. }
        );
        let outcome = match cmd {
            Cmd::Create { name, path } => self.create(&name, &path),
            Cmd::Join { code, path } => self.join(&code, &path),
            Cmd::Invite { space, role, name, days } => self.invite(space, role, name, days),
            Cmd::RemoveMember { space, device } => self.remove_member(&space, &device),
            Cmd::CancelInvite { space, id } => self.cancel_invite(&space, &id),
            Cmd::Scan(id) => self.scan(&id),
            Cmd::Sync(id) => self.sync(id),
            Cmd::FileHistory { space, path } => self.file_history(space, path),
            Cmd::RestoreVersion { space, path, history_id } => self.restore_version(space, path, history_id),
            Cmd::Past(space) => self.past(space),
            Cmd::Undelete { space, path } => self.undelete(space, path),
            Cmd::Compare { space, copy } => self.compare(space, copy),
            Cmd::ForgetPast => {
                self.update(|m| m.past = None);
                Ok(None)
            }
            Cmd::CloseCompare => {
                self.update(|m| m.compare = None);
                Ok(None)
            }
            Cmd::Resolve { space, copy, keep } => self.resolve(&space, copy, keep),
            Cmd::Propose { space, seeder, quota, days } => self.propose(&space, &seeder, quota, days),
            Cmd::Revoke(id) => self.revoke(&id),
            Cmd::Audit(id) => self.audit(id),
            Cmd::SetTarget { space, copies } => self.set_target(&space, copies),
            Cmd::SetIgnores { space, rules } => self.set_ignores(&space, rules),
            Cmd::PairSeeder { code, name } => self.pair_seeder(&code, &name),
            Cmd::NameSeeder { device, name } => self.name_seeder(device, &name),
            Cmd::SeedCode(id) => self.seed_code(&id),
            Cmd::NameDevice(name) => self.name_device(&name),
            Cmd::SetZoom(z) => self.set_zoom(z),
            Cmd::SetOnClose(keep) => self.set_on_close(keep),
            Cmd::RenameMember { space, device, name } => self.rename_member(&space, &device, &name),
            Cmd::AskSeeders => {
                self.ask_seeders();
                Ok(None)
            }
            Cmd::RestoreFolder { space, dir, at, into } => self.restore_folder(&space, dir, &at, into),
            Cmd::SetLimits { up, down } => self.set_limits(up, down),
            Cmd::SetSeederPolicy { seeder, policy } => self.set_seeder_policy(seeder, policy),
            Cmd::RecoverySetup { space, custodians, threshold, wait_ms } => {
                self.recovery_setup(space, custodians, threshold, wait_ms)
            }
            Cmd::RecoveryCheck(space) => self.recovery_check(space),
            Cmd::RecoveryCancel(space) => self.recovery_cancel(&space),
            Cmd::RecoveryApprove(code) => self.recovery_approve(code),
        };
        match outcome {
            // A restore or a settled conflict is worth finding in the log later.
            Ok(Some(said)) if kept => {
                self.good(said.clone());
                self.notice(false, said);
            }
            Ok(Some(said)) => self.notice(false, said),
            Ok(None) => {}
            Err(why) => self.notice(true, why),
        }
    }
}

/// What a command did: a notice to show (`Ok(None)`: nothing to say), or why it failed.
type Outcome = Result<Option<String>, String>;

/// A command done, with what to say.
fn done(said: impl Into<String>) -> Outcome {
    Ok(Some(said.into()))
}

/// Said when a command names a space no longer open.
const GONE: &str = "That space is no longer open.";

fn hex_short(b: &[u8; 8]) -> String {
    b[..4].iter().map(|x| format!("{x:02x}")).collect()
}
