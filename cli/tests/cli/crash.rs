//! kill -9 a scan at random moments; the store must open, verify, and accept a new scan.
//! `scripts/crash-test.sh` runs the same with 100 kills.

use crate::util::*;
use std::time::{Duration, SystemTime};

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
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for round in 0..4u64 {
        // Change some content so every scan has work to do.
        write(&f.join(format!("big{}.bin", round % 4)), &random_bytes(24 << 20, 100 + round));
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = 20 + (seed >> 33) % 600;
        let mut child = dev
            .cmd(&["scan", "s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let v = dev.run(&["verify", "s"]);
        assert!(v.status.success(), "verify after kill at {delay} ms: {}", String::from_utf8_lossy(&v.stderr));
    }
    dev.ok(&["scan", "s"]);
    dev.ok(&["verify", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(f));
}

/// A pseudo-random delay in `lo..hi` ms (from the clock: every run tries other moments).
fn delay(state: &mut u64, lo: u64, hi: u64) -> Duration {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Duration::from_millis(lo + (*state >> 33) % (hi - lo))
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
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let quiet = |c: &mut std::process::Command| {
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    for trial in 0..3u64 {
        // New content each trial, so each sync has work when it is killed.
        write(&fa.path().join(format!("big{}.bin", trial % 3)), &random_bytes(16 << 20, 100 + trial));
        a.ok(&["scan", "s"]);
        let wait = delay(&mut seed, 30, 700);
        match trial {
            // The receiver, a one-off command pulling from the sender's daemon.
            0 => {
                let d = Daemon::start(&a);
                let mut c = quiet(&mut b.cmd(&["sync", "s", "--peer", &d.addr, "--no-relay"]));
                std::thread::sleep(wait);
                let _ = c.kill();
                let _ = c.wait();
                d.stop();
            }
            // The receiver as a daemon, while it stores and writes files.
            1 => {
                let d = Daemon::start(&b);
                let mut c = quiet(&mut a.cmd(&["sync", "s", "--peer", &d.addr, "--no-relay"]));
                std::thread::sleep(wait);
                d.kill9();
                let _ = c.kill();
                let _ = c.wait();
            }
            // The sender, a one-off command pushing to the receiver's daemon.
            _ => {
                let d = Daemon::start(&b);
                let mut c = quiet(&mut a.cmd(&["sync", "s", "--peer", &d.addr, "--no-relay"]));
                std::thread::sleep(wait);
                let _ = c.kill();
                let _ = c.wait();
                d.stop();
            }
        }
        for dev in [&a, &b] {
            let v = dev.run(&["verify", "s"]);
            assert!(
                v.status.success(),
                "trial {trial}, kill at {wait:?}: {}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            );
        }
    }
    let d = Daemon::start(&a);
    b.ok(&["sync", "s", "--peer", &d.addr, "--no-relay"]);
    d.stop();
    assert_eq!(snapshot(fb.path()), snapshot(fa.path()), "every file, byte for byte");
}

/// kill -9 `gc` at random moments while it prunes history: the store verifies after each, and
/// the current state still restores byte for byte.
#[test]
fn kill_9_during_gc_leaves_a_store_that_verifies() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path();
    create_space(&dev, "s", f);
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for round in 0..3u64 {
        for v in 0..3u64 {
            write(&f.join(format!("v{v}.bin")), &random_bytes(8 << 20, round * 10 + v));
            dev.ok(&["scan", "s"]);
        }
        let wait = delay(&mut seed, 5, 400);
        let mut child = dev
            .cmd(&["gc", "s", "--keep-within", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        let _ = child.kill();
        let _ = child.wait();
        let v = dev.run(&["verify", "s"]);
        assert!(
            v.status.success(),
            "verify after a gc killed at {wait:?}: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    dev.ok(&["gc", "s", "--keep-within", "0"]);
    dev.ok(&["verify", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(f));
}
