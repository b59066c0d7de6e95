//! The daemon that `cobox up` and the app both run, on a real home and folder with a node on
//! loopback: a folder edit is scanned on its own, and a seed whose agreements ended longer than
//! the grace period ago is deleted.

use cobox_engine::agreements::{Agreement, Entry};
use cobox_engine::daemon::{Activity, Daemon, Schedule};
use cobox_engine::replica::Replica;
use cobox_engine::sync::net::{NetConfig, SeedPolicy};
use cobox_engine::{Home, NoProgress, SpaceId};
use ed25519_dalek::SigningKey;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

fn loopback() -> NetConfig {
    NetConfig { bind: Some("127.0.0.1:0".parse().unwrap()), no_relay: true, ..NetConfig::default() }
}

/// Wait until the daemon reports something `want` accepts; panics after `secs`.
async fn wait_for(activity: &mut UnboundedReceiver<Activity>, secs: u64, want: impl Fn(&Activity) -> bool) -> Activity {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match activity.recv().await {
                Some(a) if want(&a) => return a,
                Some(_) => {}
                None => panic!("the daemon stopped"),
            }
        }
    })
    .await
    .expect("the daemon did not report it in time")
}

/// Two daemons running: the inviter's, idle, and the joiner's, syncing every second with the
/// inviter (whose address it knows); the joiner's activity.
async fn inviter_and_joiner(
    home_a: &Home,
    home_b: &Home,
    root_b: &std::path::Path,
    space: &cobox_engine::SpaceId,
) -> (Running, UnboundedReceiver<Activity>) {
    let idle = Schedule { interval: Duration::from_secs(3600), ..Schedule::default() };
    let (da, _) = Daemon::start(home_a, &loopback(), SeedPolicy::default(), idle).await.unwrap();
    Home::remember_peer_at(root_b, space, &home_a.device_id(), &da.node().addrs()).unwrap();
    let every_second = Schedule { interval: Duration::from_secs(1), ..Schedule::default() };
    let (db, activity) = Daemon::start(home_b, &loopback(), SeedPolicy::default(), every_second).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runs = [da, db]
        .into_iter()
        .map(|d| {
            let mut s = stopped.clone();
            tokio::spawn(d.run(async move {
                let _ = s.wait_for(|v| *v).await;
            }))
        })
        .collect();
    (Running { stop, runs }, activity)
}

/// Daemons running until [`Running::stop`].
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    runs: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for r in self.runs {
            r.await.unwrap();
        }
    }
}

/// A home holding space "s" over a folder with `a.txt`, scanned: (home dir, folder, home, space).
fn scanned_space() -> (tempfile::TempDir, tempfile::TempDir, Home, cobox_engine::Space) {
    let root = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("a.txt"), b"first").unwrap();
    let home = Home::open(root.path()).unwrap();
    home.create_space("s", folder.path()).unwrap();
    let mut s = home.open_space("s").unwrap();
    s.scan(&NoProgress).unwrap();
    (root, folder, home, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_edit_is_scanned_without_being_asked() {
    let root = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("a.txt"), b"first").unwrap();
    let home = Home::open(root.path()).unwrap();
    let info = home.create_space("s", folder.path()).unwrap();
    home.open_space("s").unwrap().scan(&NoProgress).unwrap();
    // Manifests unused for 300 ms are let go; the edits below load them again.
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        release_idle: Duration::from_millis(300),
        ..Schedule::default()
    };
    let (d, mut activity) = Daemon::start(&home, &loopback(), SeedPolicy::default(), schedule).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.clone().run(async move {
        let _ = stopped.await;
    }));
    let s = d.node().space(&info.id).unwrap();
    // The first tick's full rescan finds nothing new; then an edit arrives through the watcher.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, expect) in [("b.txt", vec!["a.txt", "b.txt"]), ("c.txt", vec!["a.txt", "b.txt", "c.txt"])] {
        // Idle: the manifest goes.
        tokio::time::timeout(Duration::from_secs(10), async {
            while s.run(|s| s.manifest_loaded()).await.unwrap() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("an idle daemon keeps its manifest");
        std::fs::write(folder.path().join(name), name.as_bytes()).unwrap();
        let a = wait_for(&mut activity, 20, |a| matches!(a, Activity::Scanned { .. })).await;
        assert!(matches!(a, Activity::Scanned { space, added: 1, .. } if space == info.id), "{a:?}");
        let files: Vec<String> = s.run(|s| s.files()).await.unwrap().unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(files, expect);
    }
    assert!(s.run(|s| s.verify(&NoProgress)).await.unwrap().unwrap().ok());
    let _ = stop.send(());
    run.await.unwrap();
}

#[test]
fn a_released_manifest_loads_again_on_use() {
    let (_root, folder, home, mut s) = scanned_space();
    // Used since the last call: kept; then unused: released, and loaded again on use.
    assert!(!s.release_if_unused().unwrap());
    assert!(s.release_if_unused().unwrap());
    assert!(!s.manifest_loaded());
    assert_eq!(s.files().unwrap().len(), 1);
    assert!(s.manifest_loaded());
    std::fs::write(folder.path().join("b.txt"), b"second").unwrap();
    let r = s.scan(&NoProgress).unwrap();
    assert_eq!(r.added, 1);
    assert!(s.release_manifest().unwrap());
    assert_eq!(s.files().unwrap().len(), 2);
    // What was recorded while the manifest came and went is what the next process reads.
    drop(s);
    let again = home.open_space("s").unwrap();
    let files: Vec<String> = again.files().unwrap().into_iter().map(|(p, _)| p).collect();
    assert_eq!(files, ["a.txt", "b.txt"]);
    assert!(again.verify(&NoProgress).unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_whose_agreements_ended_is_deleted() {
    let root = tempfile::tempdir().unwrap();
    let home = Home::open(root.path()).unwrap();
    let space_key = SigningKey::from_bytes(&[5; 32]);
    let owner = SigningKey::from_bytes(&[6; 32]);
    let space = SpaceId(space_key.verifying_key().to_bytes());
    let now = cobox_engine::now_ms();
    let agreement = Agreement {
        space: space.0,
        owner: owner.verifying_key().to_bytes(),
        seeder: home.device_id().0,
        quota: 1 << 20,
        start_ms: now - 10 * 86_400_000,
        end_ms: now - 86_400_000,
        terms: String::new(),
        nonce: [1; 16],
    };
    let seed = home.open_seed(&space, true).unwrap();
    seed.ledger().insert(&Entry::propose(agreement.clone(), &owner)).unwrap();
    seed.ledger().insert(&Entry::accept(&agreement, home.device_key())).unwrap();
    drop(seed);
    let seed_dir = root.path().join("seeds").join(space.to_string());
    assert!(seed_dir.exists());
    let schedule = Schedule { interval: Duration::from_secs(1), seed_grace: Duration::ZERO, ..Schedule::default() };
    let (d, mut activity) = Daemon::start(&home, &loopback(), SeedPolicy::default(), schedule).await.unwrap();
    assert!(d.node().seed(&space).is_some());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.clone().run(async move {
        let _ = stopped.await;
    }));
    let a = wait_for(&mut activity, 20, |a| matches!(a, Activity::SeedExpired(_))).await;
    assert!(matches!(a, Activity::SeedExpired(s) if s == space));
    assert!(d.node().seed(&space).is_none());
    assert!(!seed_dir.exists(), "the seeded blobs are deleted");
    let _ = stop.send(());
    run.await.unwrap();
}

/// Noting the heads and checking members' notes, as every sync does, leaves a released manifest
/// released while nothing changed: a daemon syncing with its peers each minute still lets it go.
#[test]
fn heads_notes_leave_an_unchanged_manifest_released() {
    let (_root, folder, _home, mut s) = scanned_space();
    assert!(s.note_heads().unwrap(), "the first note");
    assert_eq!(s.stale().unwrap(), None);
    assert!(s.release_manifest().unwrap());
    assert!(!s.note_heads().unwrap(), "nothing new to note");
    assert_eq!(s.stale().unwrap(), None);
    assert!(!s.manifest_loaded(), "noting and checking did not load it");
    // A change is noted again.
    std::fs::write(folder.path().join("b.txt"), b"second").unwrap();
    s.scan(&NoProgress).unwrap();
    assert!(s.note_heads().unwrap());
    assert_eq!(s.ledger().heads_notes().unwrap().len(), 2);
}

/// A periodic sync that moves nothing says so (`moved: false`), so the app does not rebuild
/// its model, which would load every released manifest again each minute; one that brings a
/// file says it moved something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_sync_that_moves_nothing_says_so() {
    let (root_a, folder_a, root_b, folder_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    std::fs::write(folder_a.path().join("a.txt"), b"from a").unwrap();
    let home_a = Home::open(root_a.path()).unwrap();
    let info = home_a.create_space("s", folder_a.path()).unwrap();
    home_a.open_space("s").unwrap().scan(&NoProgress).unwrap();
    let invite = Home::invite(root_a.path(), "s", &cobox_engine::home::InviteRequest::writer()).unwrap();
    let home_b = Home::open(root_b.path()).unwrap();
    home_b.join(&invite, folder_b.path(), None).unwrap();
    let (running, mut activity) = inviter_and_joiner(&home_a, &home_b, root_b.path(), &info.id).await;
    let first = wait_for(&mut activity, 30, |a| matches!(a, Activity::SyncEnded { .. })).await;
    assert!(matches!(first, Activity::SyncEnded { error: None, moved: true, .. }), "{first:?}");
    assert_eq!(std::fs::read(folder_b.path().join("a.txt")).unwrap(), b"from a");
    let next = wait_for(&mut activity, 30, |a| matches!(a, Activity::SyncEnded { .. })).await;
    assert!(matches!(next, Activity::SyncEnded { error: None, moved: false, .. }), "{next:?}");
    running.stop().await;
}

/// A daemon whose pending space's invite is refused (here: the manager cancelled it) removes
/// the space, as `cobox sync` does: it held nothing shared, its folder stays, and the daemon
/// stops trying it at every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_removes_a_pending_space_whose_invite_is_refused() {
    let (root_a, folder_a, root_b, folder_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let home_a = Home::open(root_a.path()).unwrap();
    let info = home_a.create_space("s", folder_a.path()).unwrap();
    let invite = Home::invite(root_a.path(), "s", &cobox_engine::home::InviteRequest::writer()).unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&invite.key).verifying_key().to_bytes();
    cobox_engine::members::cancel_invite(root_a.path(), "s", &hex::encode(public)[..12]).unwrap();
    let home_b = Home::open(root_b.path()).unwrap();
    home_b.join(&invite, folder_b.path(), None).unwrap();
    let (running, mut activity) = inviter_and_joiner(&home_a, &home_b, root_b.path(), &info.id).await;
    let ended = wait_for(&mut activity, 30, |a| matches!(a, Activity::SyncEnded { .. })).await;
    assert!(matches!(&ended, Activity::SyncEnded { error: Some(e), .. } if e.contains("cancelled")), "{ended:?}");
    assert!(Home::spaces_at(root_b.path()).unwrap().is_empty(), "the refused space is gone");
    assert!(folder_b.path().exists(), "its folder stays");
    running.stop().await;
}

/// Limits saved in the home hold for every daemon that starts on it: the app (which saved
/// them from its Network screen and never read them back at start) as `cobox up`; limits the
/// caller sets win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_limits_hold_for_every_daemon_unless_it_sets_its_own() {
    let saved = cobox_engine::home::Limits { up: 300_000, down: 2_000_000 };
    // Two homes (a daemon's stores stay open while its tasks wind down).
    let (root, _folder, home, s) = scanned_space();
    drop(s);
    Home::set_limits_at(root.path(), &saved).unwrap();
    let (d, _activity) = Daemon::start(&home, &loopback(), SeedPolicy::default(), Schedule::default()).await.unwrap();
    assert_eq!(d.node().limits(), (300_000, 2_000_000));
    let (root2, _folder2, home2, s2) = scanned_space();
    drop(s2);
    Home::set_limits_at(root2.path(), &saved).unwrap();
    let own = NetConfig { limit_up: 100_000, ..loopback() };
    let (d2, _activity2) = Daemon::start(&home2, &own, SeedPolicy::default(), Schedule::default()).await.unwrap();
    assert_eq!(d2.node().limits(), (100_000, 2_000_000), "the caller's own limit wins");
}
