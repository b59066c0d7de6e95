//! A co-op's first week, defect by defect: each test is the real-process scenario that
//! failed before its fix (issue 30).

use crate::util::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Every `*.sync-conflict-*` path under `root`.
fn conflict_copies(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().filter(|p| p.contains(".sync-conflict-")).collect()
}

fn join(dev: &Device, code: &str, folder: &Path) {
    dev.ok(&["join", code, "--path", folder.to_str().expect("utf-8")]);
}

/// A new member joins, starts its daemon (which syncs with the inviter at start) and at once
/// asks it for a sync with the same peer: the two sessions run side by side on one space.
/// Before: hundreds of conflict copies of files nobody edited, identical to their originals,
/// recorded by the new member and spread to everyone.
#[test]
fn a_new_members_first_sync_beside_its_daemon_makes_no_conflict_copies() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (Device::new(), Device::new());
    for i in 0..3000 {
        write(&pa.join(format!("d{}/f{i}.txt", i % 30)), format!("file {i}\n").repeat(1 + i % 7).as_bytes());
    }
    // Sent last (senders go in pack order, and the scan stores by name): the start-up session
    // has written the small files and is still receiving this when the asked-for one begins.
    write(&pa.join("zz-big.bin"), &random_bytes(48 << 20, 30));
    create_space(&a, "team", &pa);
    pause();
    a.ok(&["scan", "team"]);
    let da = Daemon::start(&a);
    // Made while the daemon listens: the code carries its address, so B's daemon syncs at start.
    let code = a.ok(&["invite", "team"]).trim().to_owned();
    join(&b, &code, &pb);
    let db = Daemon::start(&b);
    let asked = sync_with(&b, "team", &da);
    assert!(asked.is_array(), "{asked}");
    // The daemon's own start-up session may still be writing: let it end, then once more.
    std::thread::sleep(std::time::Duration::from_secs(2));
    sync_with(&b, "team", &da);
    let b_log = db.stop();
    da.stop();
    assert_eq!(conflict_copies(&pb), Vec::<String>::new(), "no phantom copies on the new member:\n{b_log}");
    assert_eq!(snapshot(&pa).len(), snapshot(&pb).len());
    let st = b.json(&["status", "team"]);
    assert_eq!(st["conflicts"].as_array().map(Vec::len), Some(0), "{st}");
    // Nothing it wrote was taken for its own edit: its next scan records nothing.
    let scan = b.json(&["scan", "team"]);
    assert!(scan["snapshot"].is_null(), "the new member recorded changes it never made: {scan}");
    assert_eq!(snapshot(&pa), snapshot(&pb), "byte for byte");
    assert_eq!(conflict_copies(&pa), Vec::<String>::new());
}

/// One device saves a file over and over (and makes and deletes files) while the other
/// syncs with it, each session bringing that device a change of the other's. Before: its
/// fresh save was moved into a conflict copy named after itself and the file went back to
/// the version it replaced; deletes came back.
#[test]
fn saves_made_while_syncs_run_stand() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (Device::new(), Device::new());
    write(&pa.join("saved.txt"), b"save 0\n");
    write(&pa.join("theirs.txt"), b"A's 0\n");
    create_space(&a, "team", &pa);
    pause();
    a.ok(&["scan", "team"]);
    let code = a.ok(&["invite", "team"]).trim().to_owned();
    join(&b, &code, &pb);
    let db = Daemon::start(&b);
    a.ok(&["sync", "team", "--peer", &db.addr, "--no-relay"]);
    assert_eq!(read(&pb.join("saved.txt")), "save 0\n");

    // B's editor saves every 15 ms; every tenth save it makes a file and deletes the last.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saver = {
        let (pb, stop) = (pb.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                fs::write(pb.join("saved.txt"), format!("save {n}\n")).expect("save");
                if n.is_multiple_of(10) {
                    fs::write(pb.join(format!("made-{n}.txt")), "made\n").expect("make");
                    let _ = fs::remove_file(pb.join(format!("made-{}.txt", n - 10)));
                }
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
            n
        })
    };
    // A edits its own file and syncs with B's daemon: every session brings B a change.
    for round in 1..=12 {
        write(&pa.join("theirs.txt"), format!("A's {round}\n").as_bytes());
        a.ok(&["scan", "team"]);
        // B keeps changing, so a sync may end before both sides agree: that alone is fine.
        let out = a.run(&["sync", "team", "--peer", &db.addr, "--no-relay"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || err.contains("not converged"), "round {round}: {err}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = saver.join().expect("saver");
    pause();
    // B's daemon records the last saves (its watcher, or the scan before the next session).
    a.ok(&["sync", "team", "--peer", &db.addr, "--no-relay"]);
    a.ok(&["sync", "team", "--peer", &db.addr, "--no-relay"]);
    let log = db.stop();
    assert_eq!(read(&pb.join("saved.txt")), format!("save {last}\n"), "the last save stands on B:\n{log}");
    assert_eq!(read(&pa.join("saved.txt")), format!("save {last}\n"), "and reached A");
    assert_eq!(read(&pb.join("theirs.txt")), "A's 12\n");
    assert_eq!(conflict_copies(&pb), Vec::<String>::new(), "no false conflict copy on B");
    assert_eq!(conflict_copies(&pa), Vec::<String>::new(), "nor on A");
    let made: Vec<String> = snapshot(&pb).into_keys().filter(|p| p.starts_with("made-")).collect();
    assert_eq!(made, [format!("made-{}.txt", last / 10 * 10)], "no delete undone");
    assert_eq!(snapshot(&pa), snapshot(&pb), "both end identical");
}

/// `cobox device name` is the first command on a new machine (its home does not exist yet),
/// and the name reaches the spaces the device then creates and joins. Before: "cannot access
/// …/.device-name….tmp", and a device named before it made a space showed as a bare id.
#[test]
fn a_device_named_first_shows_by_name_in_every_space() {
    let root = tempfile::tempdir().expect("tmp");
    let home = root.path().join("not-yet");
    let named = |args: &[&str]| {
        let out = Command::new(BIN).env("COBOX_HOME", &home).args(args).output().expect("run cobox");
        assert!(out.status.success(), "cobox {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    named(&["device", "name", "Ana's desk"]);
    let folder = root.path().join("f");
    named(&["space", "create", "team", "--path", folder.to_str().expect("utf-8")]);
    let v: serde_json::Value = serde_json::from_str(&named(&["member", "list", "team", "--json"])).expect("json");
    assert_eq!(v["members"][0]["name"], "Ana's desk", "{v}");

    // A device named before it joins is known by that name to the manager after one sync.
    let a = Device::new();
    create_space(&a, "team", &root.path().join("a"));
    let da = Daemon::start(&a);
    let code = a.ok(&["invite", "team"]).trim().to_owned();
    let b = Device::new();
    b.ok(&["device", "name", "Bo's laptop"]);
    join(&b, &code, &root.path().join("b"));
    sync_with(&b, "team", &da);
    da.stop();
    let names: Vec<String> = crate::members::roster(&a, "team").0.into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"Bo's laptop".to_owned()), "{names:?}");
    assert_eq!(crate::members::roster(&b, "team").0, crate::members::roster(&a, "team").0);
}

/// `cobox status --json`'s pending changes: (added, changed, deleted).
fn pending(dev: &Device, space: &str) -> (u64, u64, u64) {
    let p = dev.json(&["status", space])["pending"].clone();
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("pending.{k}: {p}"));
    (n("added"), n("changed"), n("deleted"))
}

/// The co-op's week, as a standing test: a manager, a writer and a reader; two seeders;
/// offline edits with a conflict each round; a stolen laptop removed, with every daemon
/// restarted after; a seeder losing data and repaired; then every member device lost and the
/// space recovered from the seeders alone with a recovery code made on the first day. Every
/// step is checked, folders byte for byte. `COBOX_WEEK_ROUNDS` sets the rounds of offline
/// edits (`scripts/week.sh` runs a longer week).
#[test]
fn the_coops_week() {
    let rounds: u32 = std::env::var("COBOX_WEEK_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tmp");
    let f = |n: &str| dir.path().join(n);
    let (a, w, r, s1, s2) = (Device::new(), Device::new(), Device::new(), Device::new(), Device::new());

    // Day 1: Ana makes the space and a recovery code she keeps offline, and invites a writer
    // and a reader; two seeders take it under agreements.
    for i in 0..200 {
        write(&f("a").join(format!("docs/{}/note-{i}.md", i % 8)), format!("note {i}\n").repeat(i % 13 + 1).as_bytes());
    }
    write(&f("a").join("media/film.bin"), &random_bytes(5 << 20, 7));
    write(&f("a").join("shared.txt"), b"day 1\n");
    a.ok(&["device", "name", "Ana"]);
    create_space(&a, "coop", &f("a"));
    pause();
    a.ok(&["scan", "coop"]);
    let mut da = Daemon::start(&a);
    let recovery = a.ok(&["invite", "coop", "--role", "manage", "--expires", "3650d", "--name", "recovery"]);
    let wcode = a.ok(&["invite", "coop", "--role", "write", "--name", "Wes"]);
    let rcode = a.ok(&["invite", "coop", "--role", "read", "--name", "Rae"]);
    join(&w, wcode.trim(), &f("w"));
    sync_with(&w, "coop", &da);
    join(&r, rcode.trim(), &f("r"));
    sync_with(&r, "coop", &da);
    assert_eq!(snapshot(&f("w")), snapshot(&f("a")), "the writer holds the folder");
    assert_eq!(snapshot(&f("r")), snapshot(&f("a")), "the reader holds the folder");
    let mut seeders = Vec::new();
    for s in [&s1, &s2] {
        let id = s.ok(&["id"]).trim().to_owned();
        let v = a.json(&["agreement", "propose", "coop", "--seeder", &id, "--quota", "1G", "--days", "30"]);
        s.ok(&["seed", v["seed_code"].as_str().expect("seed code"), "--no-relay", "--yes"]);
        seeders.push(Daemon::start(s));
    }
    for d in &seeders {
        a.ok(&["audit", "coop", "--all", "--peer", &d.addr, "--no-relay"]);
    }
    assert_eq!(a.json(&["status", "coop"])["replicas"], 2);

    // Days 2 and on: Ana and Wes edit while apart, both the same file; they meet; the reader
    // follows. One conflict copy a round, the same everywhere, nothing else.
    for round in 1..=rounds {
        da.stop();
        pause();
        write(&f("a").join(format!("docs/ana-{round}.md")), format!("Ana's round {round}\n").as_bytes());
        write(&f("a").join("shared.txt"), format!("Ana's edit, round {round}\n").as_bytes());
        write(&f("w").join(format!("docs/wes-{round}.md")), format!("Wes's round {round}\n").as_bytes());
        write(&f("w").join("shared.txt"), format!("Wes's edit, round {round}, longer\n").as_bytes());
        fs::remove_file(f("w").join(format!("docs/{}/note-{round}.md", round % 8))).expect("delete");
        pause();
        a.ok(&["scan", "coop"]);
        w.ok(&["scan", "coop"]);
        da = Daemon::start(&a);
        sync_with(&w, "coop", &da);
        sync_with(&r, "coop", &da);
        assert_eq!(snapshot(&f("w")), snapshot(&f("a")), "round {round}: writer and manager agree");
        assert_eq!(snapshot(&f("r")), snapshot(&f("a")), "round {round}: the reader follows");
        assert_eq!(conflict_copies(&f("a")).len(), round as usize, "one conflict copy a round");
        assert!(!f("a").join(format!("docs/{}/note-{round}.md", round % 8)).exists(), "the delete reached Ana");
    }
    let mut versions =
        vec![read(&f("a").join("shared.txt")), read(&f("a").join(&conflict_copies(&f("a"))[rounds as usize - 1]))];
    versions.sort();
    assert_eq!(versions, [format!("Ana's edit, round {rounds}\n"), format!("Wes's edit, round {rounds}, longer\n")]);

    // Day 4: Wes's laptop is stolen. Ana removes it and goes on writing; every daemon restarts.
    a.ok(&["member", "remove", "coop", "Wes"]);
    pause();
    write(&f("a").join("after-removal.txt"), b"for those who stay\n");
    write(&f("a").join("shared.txt"), b"edited after the removal\n");
    a.ok(&["scan", "coop"]);
    for d in &seeders {
        a.ok(&["sync", "coop", "--peer", &d.addr, "--no-relay"]);
    }
    sync_with(&r, "coop", &da);
    let err = w.fails(&["sync", "coop", "--peer", &da.addr, "--no-relay"]);
    assert!(err.contains("removed from the space"), "the stolen laptop is refused: {err}");
    da.stop();
    let seeders: Vec<Daemon> =
        seeders.into_iter().map(Daemon::stop).zip([&s1, &s2]).map(|(_, s)| Daemon::start(s)).collect();
    da = Daemon::start(&a);
    for (who, dev, folder) in [("Ana", &a, f("a")), ("Rae", &r, f("r"))] {
        assert_eq!(read(&folder.join("after-removal.txt")), "for those who stay\n", "{who}");
        assert_eq!(read(&folder.join("shared.txt")), "edited after the removal\n", "{who}");
        assert_eq!(pending(dev, "coop"), (0, 0, 0), "{who}: nothing written after the removal is pending again");
        let h = dev.json(&["history", "coop", "after-removal.txt"]);
        assert_eq!(h.as_array().map(Vec::len), Some(1), "{who}: {h}");
        let out = f(&format!("restored-{who}"));
        dev.ok(&["restore", "coop", out.to_str().expect("utf-8")]);
        assert_eq!(snapshot(&out), snapshot(&folder), "{who}: a restore holds everything");
    }
    assert!(!f("w").join("after-removal.txt").exists());

    // Day 5: a seeder loses a pack. Its audit fails; the next sync sends what it lost again,
    // and the next audit passes.
    let lost = &s1.seed_packs()[0];
    fs::remove_file(lost).expect("lose a pack");
    let err = a.fails(&["audit", "coop", "--all", "--peer", &seeders[0].addr, "--no-relay"]);
    assert!(err.contains("failed"), "{err}");
    a.ok(&["sync", "coop", "--peer", &seeders[0].addr, "--no-relay"]);
    a.ok(&["audit", "coop", "--all", "--peer", &seeders[0].addr, "--no-relay"]);
    assert_eq!(a.json(&["status", "coop"])["replicas"], 2, "repaired");

    // Day 6: every member device is lost. The recovery code made on day 1, before the
    // removal, restores everything from the seeders alone, and makes a manager.
    da.stop();
    let n = Device::new();
    join(&n, recovery.trim(), &f("n"));
    n.ok(&["sync", "coop", "--peer", &seeders[0].addr, "--no-relay"]);
    n.ok(&["sync", "coop", "--peer", &seeders[1].addr, "--no-relay"]);
    assert_eq!(snapshot(&f("n")), snapshot(&f("a")), "recovered byte for byte from the seeders");
    let roles = crate::members::roster(&n, "coop").0;
    assert!(roles.contains(&("recovery".to_owned(), "manage".to_owned())), "{roles:?}");
    let h = n.json(&["history", "coop"]);
    assert!(h.as_array().is_some_and(|v| v.len() as u32 >= 2 + rounds), "history came back too: {h}");
    for d in seeders {
        d.stop();
    }
}
