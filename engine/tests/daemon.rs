//! The daemon that `cobox up` and the app both run, on a real home and folder with a node on
//! loopback: a folder edit is scanned on its own, and a seed whose agreements ended longer than
//! the grace period ago is deleted.

use cobox_engine::agreements::{Agreement, Entry};
use cobox_engine::daemon::{Activity, Daemon, Schedule};
use cobox_engine::replica::Replica;
use cobox_engine::sync::net::{NetConfig, SeedPolicy};
use cobox_engine::{Home, NoProgress, SpaceId};
use ed25519_dalek::SigningKey;
use std::sync::Arc;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_edit_is_scanned_without_being_asked() {
    let root = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("a.txt"), b"first").unwrap();
    let home = Home::open(root.path()).unwrap();
    let info = home.create_space("s", folder.path()).unwrap();
    home.open_space("s").unwrap().scan(&NoProgress).unwrap();
    let schedule = Schedule { interval: Duration::from_secs(3600), ..Schedule::default() };
    let (d, mut activity) =
        Daemon::start(&home, &loopback(), SeedPolicy::default(), schedule, Arc::new(|_: &str| {})).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.clone().run(async move {
        let _ = stopped.await;
    }));
    // The first tick's full rescan finds nothing new; then an edit arrives through the watcher.
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(folder.path().join("b.txt"), b"second").unwrap();
    let a = wait_for(&mut activity, 20, |a| matches!(a, Activity::Scanned { .. })).await;
    assert!(matches!(a, Activity::Scanned { space, added: 1, .. } if space == info.id), "{a:?}");
    let s = d.node().space(&info.id).unwrap();
    assert!(s.lock().await.files().iter().any(|(p, _)| p == "b.txt"));
    let _ = stop.send(());
    run.await.unwrap();
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
    seed.ledger().insert(&Entry::propose(agreement.clone(), &owner, &space_key)).unwrap();
    seed.ledger().insert(&Entry::accept(&agreement, home.device_key())).unwrap();
    drop(seed);
    let seed_dir = root.path().join("seeds").join(space.to_string());
    assert!(seed_dir.exists());
    let schedule = Schedule { interval: Duration::from_secs(1), seed_grace: Duration::ZERO, ..Schedule::default() };
    let (d, mut activity) =
        Daemon::start(&home, &loopback(), SeedPolicy::default(), schedule, Arc::new(|_: &str| {})).await.unwrap();
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
