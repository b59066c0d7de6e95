//! kill -9 a scan, either side of a sync, and gc at random moments; the stores must open and
//! verify, and the next scan or sync must complete. `scripts/crash-test.sh` (scans) and
//! `scripts/crash-campaign.sh` (sync, gc, ledger writes) run 100 kills of each.

use crate::util::*;
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

/// Random moments to kill at: seeded from the clock, so every run tries other ones; the seed is
/// printed, and `COBOX_CRASH_SEED` replays it. It also counts the kills that hit a running
/// process: a kill after the process ended tests nothing.
struct Moments {
    state: u64,
    seed: u64,
    live: u32,
}

impl Moments {
    fn new() -> Self {
        let seed = std::env::var("COBOX_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("crash moments from seed {seed} (replay: COBOX_CRASH_SEED={seed})");
        Self { state: seed, seed, live: 0 }
    }

    /// Count a kill that hit a running process.
    fn killed(&mut self, alive: bool) {
        self.live += u32::from(alive);
    }

    /// At least one kill hit a running process.
    fn assert_some_hit(&self) {
        assert!(
            self.live > 0,
            "every kill came after its process had ended, so nothing was tested (seed {})",
            self.seed
        );
    }

    /// A delay in `lo..hi` ms.
    fn next(&mut self, lo: u64, hi: u64) -> Duration {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Duration::from_millis(lo + (self.state >> 33) % (hi - lo))
    }
}

/// Start `cobox ARGS` on `dev` with its output discarded.
fn spawn_quiet(dev: &Device, args: &[&str]) -> Child {
    dev.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// kill -9 after `wait`; whether the process was still running then.
fn kill_9_after(mut child: Child, wait: Duration) -> bool {
    std::thread::sleep(wait);
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    alive
}

/// `verify` passes on `dev`; `what` says which kill it followed.
fn assert_verifies(dev: &Device, what: &str) {
    let v = dev.run(&["verify", "s"]);
    assert!(
        v.status.success(),
        "verify after {what}: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn kill_9_during_scan_leaves_a_store_that_verifies() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path();
    for i in 0..4 {
        write(&f.join(format!("big{i}.bin")), &random_bytes(24 << 20, i));
    }
    for i in 0..300 {
        write(&f.join(format!("small/{}/{i}.txt", i % 10)), format!("file {i}\n").repeat(50).as_bytes());
    }
    create_space(&dev, "s", f);
    let mut moments = Moments::new();
    for round in 0..4u64 {
        // Change some content so every scan has work to do.
        write(&f.join(format!("big{}.bin", round % 4)), &random_bytes(24 << 20, 100 + round));
        let wait = moments.next(20, 620);
        moments.killed(kill_9_after(spawn_quiet(&dev, &["scan", "s"]), wait));
        assert_verifies(&dev, &format!("a scan killed at {wait:?}"));
    }
    moments.assert_some_hit();
    dev.ok(&["scan", "s"]);
    dev.ok(&["verify", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(f));
}

/// kill -9 either side of a sync at a random moment: the receiver as a one-off `cobox sync`
/// and as a daemon (mid-transfer or mid-write), and the sender. After each kill both stores
/// verify; at the end one more sync brings every file, byte for byte.
/// `scripts/crash-campaign.sh` runs 100 trials of each.
#[test]
fn kill_9_of_either_side_mid_sync_loses_nothing() {
    let (a, b) = (Device::new(), Device::new());
    let (fa, fb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..3 {
        write(&fa.path().join(format!("big{i}.bin")), &random_bytes(16 << 20, 10 + i));
    }
    for i in 0..100 {
        write(&fa.path().join(format!("small/{i}.txt")), format!("small {i}\n").repeat(40).as_bytes());
    }
    create_space(&a, "s", fa.path());
    let code = a.ok(&["invite", "s"]).trim().to_owned();
    b.ok(&["join", &code, "--path", fb.path().to_str().unwrap()]);
    // B is let in first, so every kill below hits a sync of content.
    let d = Daemon::start(&a);
    b.ok(&["sync", "s", "--peer", &d.addr, "--no-relay"]);
    d.stop();
    let mut moments = Moments::new();
    for trial in 0..3u64 {
        // New content each trial, so each sync has work when it is killed.
        write(&fa.path().join(format!("big{}.bin", trial % 3)), &random_bytes(16 << 20, 100 + trial));
        a.ok(&["scan", "s"]);
        let wait = moments.next(30, 700);
        // Trial 0: B pulls from A's daemon and B dies; 1: A pushes to B's daemon and the
        // daemon dies while it stores and writes files; 2: A pushes and A dies.
        let (serving, dialing) = if trial == 0 { (&a, &b) } else { (&b, &a) };
        let d = Daemon::start(serving);
        let sync = spawn_quiet(dialing, &["sync", "s", "--peer", &d.addr, "--no-relay"]);
        if trial == 1 {
            std::thread::sleep(wait);
            moments.killed(d.kill9());
            kill_9_after(sync, Duration::ZERO);
        } else {
            moments.killed(kill_9_after(sync, wait));
            d.stop();
        }
        for dev in [&a, &b] {
            assert_verifies(dev, &format!("trial {trial}, a kill at {wait:?}"));
        }
    }
    moments.assert_some_hit();
    let d = Daemon::start(&a);
    b.ok(&["sync", "s", "--peer", &d.addr, "--no-relay"]);
    d.stop();
    assert_same_tree(fb.path(), fa.path(), &format!("every file, byte for byte (seed {})", moments.seed));
}

/// kill -9 `gc` at random moments while it prunes history: the store verifies after each, and
/// the current state still restores byte for byte.
#[test]
fn kill_9_during_gc_leaves_a_store_that_verifies() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path();
    create_space(&dev, "s", f);
    let mut moments = Moments::new();
    // How long a gc of one round takes here: the kills fall inside it (before, they were drawn
    // up to 400 ms, and a gc often had ended by then, which tested nothing).
    let mut took = Duration::ZERO;
    for round in 0..4u64 {
        for v in 0..3u64 {
            write(&f.join(format!("v{v}.bin")), &random_bytes(8 << 20, round * 10 + v));
            dev.ok(&["scan", "s"]);
        }
        if round == 0 {
            let t = std::time::Instant::now();
            dev.ok(&["gc", "s", "--keep-within", "0"]);
            took = t.elapsed();
            continue;
        }
        let wait = moments.next(1, (took.as_millis() as u64).max(2));
        moments.killed(kill_9_after(spawn_quiet(&dev, &["gc", "s", "--keep-within", "0"]), wait));
        assert_verifies(&dev, &format!("a gc killed at {wait:?}"));
    }
    moments.assert_some_hit();
    dev.ok(&["gc", "s", "--keep-within", "0"]);
    dev.ok(&["verify", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(f));
}
