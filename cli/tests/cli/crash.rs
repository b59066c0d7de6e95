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
