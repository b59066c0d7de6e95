//! Social recovery with real processes: an owner, three custodians, a seeder, and new devices
//! that ask for the space back after every owner device is lost.

use crate::util::{Daemon, Device, assert_same_tree, create_space, find_bytes, random_bytes, write};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"RECOVERY-PLAINTEXT-MARKER-51c2";

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn id_of(d: &Device) -> String {
    d.ok(&["id"]).trim().to_owned()
}

/// A new device's request for `space`: its code (the fingerprint goes to stderr).
fn request(dev: &Device, space: &str, path: &std::path::Path, seeder: &Daemon) -> String {
    let v = dev.json(&["recovery", "request", space, "--path", path.to_str().unwrap(), "--peer", &seeder.addr]);
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 14, "{v}");
    v["code"].as_str().unwrap().to_owned()
}

#[test]
fn custodians_give_a_space_back_and_a_member_can_cancel_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("books");
    write(&folder.join("ledger.txt"), &[b"accounts ", MARKER].concat());
    write(&folder.join("scans/big.bin"), &random_bytes(2 << 20, 7));
    let owner = Device::new();
    let space = create_space(&owner, "books", &folder);
    owner.ok(&["scan", "books"]);
    // A seeder serving the owner by its standing policy, and three custodians running.
    let seeder = Device::new();
    let sd = Daemon::start_with(&seeder, &["--seed-for", &id_of(&owner), "--max-quota", "1G"]);
    owner.ok(&["agreement", "propose", "books", "--seeder", &id_of(&seeder), "--quota", "100M", "--days", "30"]);
    let custodians: Vec<Device> = (0..3).map(|_| Device::new()).collect();
    let cds: Vec<Daemon> = custodians.iter().map(Daemon::start).collect();

    // Refused with a reason: one custodian alone, more than there are, one named twice, itself.
    let c = |i: usize| cds[i].addr.clone();
    for (args, words) in [
        (vec!["--custodian", &c(0), "--custodian", &c(1), "--threshold", "1"], "one custodian alone"),
        (vec!["--custodian", &c(0), "--custodian", &c(1), "--threshold", "3"], "can never be reached"),
        (vec!["--custodian", &c(0), "--custodian", &c(0), "--threshold", "2"], "named twice"),
    ] {
        let mut cmd = vec!["recovery", "setup", "books", "--no-relay"];
        cmd.extend(args);
        let err = owner.fails(&cmd);
        assert!(err.contains(words), "{err}");
    }
    let me = id_of(&owner);
    let err =
        owner.fails(&["recovery", "setup", "books", "--custodian", &c(0), "--custodian", &me, "--threshold", "2"]);
    assert!(err.contains("its own custodian"), "{err}");

    // 2 of 3, a short wait for the test; every share delivered and proven.
    let r = owner.json(&[
        "recovery",
        "setup",
        "books",
        "--custodian",
        &c(0),
        "--custodian",
        &c(1),
        "--custodian",
        &c(2),
        "--threshold",
        "2",
        "--wait",
        "3s",
        "--no-relay",
    ]);
    assert_eq!(r["threshold"], 2);
    assert!(r["custodians"].as_array().unwrap().iter().all(|c| c["delivered"] == true), "{r}");
    let r = owner.json(&["recovery", "check", "books", "--no-relay"]);
    assert!(r["custodians"].as_array().unwrap().iter().all(|c| c["proved"].is_string()), "{r}");
    assert!(r["warning"].is_null(), "{r}");
    // Custodians hold no key and no plaintext: a share sealed to their device key, nothing else.
    for cu in &custodians {
        assert!(find_bytes(cu.home.path(), MARKER).is_none());
        assert!(find_bytes(cu.home.path(), b"ledger.txt").is_none());
        assert!(
            !cu.home.path().join("spaces").exists()
                || std::fs::read_dir(cu.home.path().join("spaces")).unwrap().next().is_none()
        );
        let kept = cu.json(&["recovery", "status"]);
        assert_eq!(kept["custody"].as_array().unwrap().len(), 1, "{kept}");
    }
    // A custodian that lost its share is reported missing, and the margin warned of.
    std::fs::remove_dir_all(custodians[2].home.path().join("custody")).unwrap();
    let r = owner.json(&["recovery", "check", "books", "--no-relay"]);
    let lost = &r["custodians"][2];
    assert!(lost["error"].as_str().unwrap().contains("missing"), "{r}");
    assert!(r["warning"].as_str().unwrap().contains("only 2 of 3"), "{r}");
    assert!(owner.ok(&["status", "books"]).contains("recovery  warning"), "status shows the warning");
    // The seeder takes everything, the recovery invite in the ledger included.
    owner.ok(&["sync", "books", "--peer", &sd.addr, "--no-relay"]);

    // Every owner device is lost.
    drop(owner);

    // A new device asks; one approval rebuilds nothing; an approval of an older request is refused.
    let new = Device::new();
    let nd = Daemon::start_with(&new, &["--interval", "1"]);
    let restored = dir.path().join("restored");
    let old_code = request(&new, &space, &restored, &sd);
    let v = custodians[0].json(&["recovery", "approve", &old_code, "--yes", "--no-relay"]);
    assert_eq!((v["have"].as_u64(), v["need"].as_u64()), (Some(1), Some(2)), "{v}");
    let err = custodians[0].fails(&["recovery", "approve", &old_code, "--yes", "--no-relay"]);
    assert!(err.contains("already released"), "a duplicated approval: {err}");
    assert!(new.json(&["space", "list"]).as_array().unwrap().is_empty(), "one share joins nothing");
    let code = request(&new, &space, &restored, &sd);
    let err = custodians[0].fails(&["recovery", "approve", &old_code, "--yes", "--no-relay"]);
    assert!(err.contains("another request"), "a replayed approval: {err}");
    // Without confirming the fingerprint, nothing is released.
    let out = custodians[1]
        .cmd(&["recovery", "approve", &code, "--no-relay"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not approved"));
    custodians[0].ok(&["recovery", "approve", &code, "--yes", "--no-relay"]);
    let v = custodians[1].json(&["recovery", "approve", &code, "--yes", "--no-relay"]);
    assert_eq!((v["have"].as_u64(), v["need"].as_u64()), (Some(2), Some(2)), "{v}");
    // The key is rebuilt; the seeder announces the recovery, lets it in after the wait, and the
    // folder comes back byte for byte.
    wait_for("the restored folder", 60, || {
        restored.join("scans/big.bin").exists() && restored.join("ledger.txt").exists()
    });
    assert_same_tree(&restored, &folder, "the recovered folder");
    let members = new.json(&["member", "list", "books"]);
    let me = id_of(&new);
    let mine = members["members"].as_array().unwrap().iter().find(|m| m["device"] == me.as_str()).cloned();
    assert_eq!(mine.map(|m| m["role"].clone()), Some(serde_json::json!("manage")), "{members}");

    // The recovered device sets recovery up again (the old shares are worthless now); a second
    // recovery by a stranger with two custodians' approvals is cancelled by the surviving member
    // in its window, and grants nothing.
    let r = new.json(&[
        "recovery",
        "setup",
        "books",
        "--custodian",
        &c(0),
        "--custodian",
        &c(1),
        "--threshold",
        "2",
        "--wait",
        "20s",
    ]);
    assert!(r["custodians"].as_array().unwrap().iter().all(|c| c["delivered"] == true), "{r}");
    wait_for("the new plan at the seeder", 30, || {
        new.json(&["sync", "books", "--peer", &sd.addr, "--no-relay"]).is_array()
    });
    let stranger = Device::new();
    let xd = Daemon::start_with(&stranger, &["--interval", "1"]);
    let other = dir.path().join("other");
    let code = request(&stranger, &space, &other, &sd);
    custodians[0].ok(&["recovery", "approve", &code, "--yes", "--no-relay"]);
    custodians[1].ok(&["recovery", "approve", &code, "--yes", "--no-relay"]);
    wait_for("the stranger's key rebuilt", 30, || {
        stranger.json(&["recovery", "status"])["requests"][0]["joined"] == true
    });
    assert_eq!(stranger.json(&["space", "list"]).as_array().unwrap().len(), 1, "the stranger waits to be let in");
    let asked = Instant::now();
    // The member hears of it from the seeder, is told, and cancels it.
    wait_for("the announcement", 30, || {
        let _ = new.run(&["sync", "books", "--peer", &sd.addr, "--no-relay"]);
        new.ok(&["status", "books"]).contains("is recovering this space")
    });
    new.ok(&["recovery", "cancel", "books"]);
    new.ok(&["sync", "books", "--peer", &sd.addr, "--no-relay"]);
    assert!(!new.ok(&["status", "books"]).contains("is recovering this space"));
    // Refused at the stranger's next try past its wait: it grants nothing.
    let stranger_id = id_of(&stranger);
    std::thread::sleep(Duration::from_secs(21).saturating_sub(asked.elapsed()));
    wait_for("the stranger's recovery refused", 60, || {
        stranger.json(&["space", "list"]).as_array().unwrap().is_empty()
    });
    let members = new.json(&["member", "list", "books"]);
    assert!(!members["members"].as_array().unwrap().iter().any(|m| m["device"] == stranger_id.as_str()), "{members}");
    assert!(find_bytes(&other, MARKER).is_none(), "nothing of the space reached the stranger");
    for d in [xd, nd, sd] {
        d.stop();
    }
    drop(cds);
}
