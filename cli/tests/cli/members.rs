//! The roster end to end: invites with roles, a reader's edits kept at home, a removed device
//! refused by a manager, a reader and a seeder, invites that work once, and two managers
//! removing devices while apart.

use crate::util::*;
use std::path::Path;

fn join(dev: &Device, code: &str, folder: &Path) {
    dev.ok(&["join", code, "--path", folder.to_str().expect("utf-8")]);
}

fn invite(dev: &Device, args: &[&str]) -> String {
    let mut all = vec!["invite"];
    all.extend(args);
    dev.ok(&all).trim().to_owned()
}

/// `cobox member list --json`: (name, role) of each member, and the removed devices.
pub(crate) fn roster(dev: &Device, space: &str) -> (Vec<(String, String)>, usize) {
    let v = dev.json(&["member", "list", space]);
    let mut members: Vec<(String, String)> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["name"].as_str().expect("name").to_owned(), m["role"].as_str().expect("role").to_owned()))
        .collect();
    members.sort();
    (members, v["removed"].as_array().expect("removed").len())
}

#[test]
fn a_manager_invites_a_writer_and_a_reader_and_removes_the_writer() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = |n: &str| dir.path().join(n);
    let (m, w, r, s) = (Device::new(), Device::new(), Device::new(), Device::new());
    write(&f("m").join("hello.txt"), b"from the manager\n");
    let id = create_space(&m, "team", &f("m"));
    m.ok(&["device", "name", "Ana's desk"]);
    m.ok(&["scan", "team"]);
    let dm = Daemon::start(&m);

    let writer = invite(&m, &["team", "--role", "write", "--name", "Bo's laptop"]);
    let reader = invite(&m, &["team", "--role", "read", "--name", "Cy's tablet"]);
    join(&w, &writer, &f("w"));
    sync_with(&w, "team", &dm);
    join(&r, &reader, &f("r"));
    sync_with(&r, "team", &dm);
    assert_eq!(read(&f("r").join("hello.txt")), "from the manager\n");
    let names = |v: Vec<(String, String)>| v;
    assert_eq!(
        names(roster(&m, "team").0),
        [("Ana's desk", "manage"), ("Bo's laptop", "write"), ("Cy's tablet", "read")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(roster(&r, "team"), roster(&m, "team"), "the reader holds the same roster");

    // An invite works once; a cancelled or expired one not at all. Each is refused by the
    // manager with a reason the joining device shows.
    let x = Device::new();
    join(&x, &writer, &f("x"));
    // The code gave it nothing to open the space with: it holds no secret, and only a peer that
    // lets the device in sends the ledger, where the secret is sealed to the invite.
    let secret = std::fs::read(m.home.path().join("spaces").join(&id).join("secret.key")).expect("secret");
    let holds_secret = |d: &Device| secret.chunks(32).any(|half| find_bytes(d.home.path(), half).is_some());
    assert!(!holds_secret(&x), "a joined device holds the space secret before anyone let it in");
    assert!(holds_secret(&w), "the device let in does");
    let err = x.fails(&["sync", "team", "--peer", &dm.addr, "--no-relay"]);
    assert!(err.contains("already used"), "{err}");
    // The refused space, never accepted, goes (the folder stays); a second try says so.
    assert!(err.contains("was removed from this device"), "{err}");
    assert!(x.json(&["space", "list"]).as_array().is_some_and(|l| l.is_empty()));
    assert!(f("x").exists());

    assert!(x.fails(&["status", "team"]).contains("team"));
    let cancelled = invite(&m, &["team", "--role", "read"]);
    let pending = m.json(&["invite", "list", "team"]);
    let id = pending.as_array().expect("invites").iter().find(|i| i["state"] == "pending").expect("pending")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    m.ok(&["invite", "cancel", "team", &id]);
    let y = Device::new();
    join(&y, &cancelled, &f("y"));
    let err = y.fails(&["sync", "team", "--peer", &dm.addr, "--no-relay"]);
    assert!(err.contains("cancelled"), "{err}");
    let short = invite(&m, &["team", "--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let z = Device::new();
    join(&z, &short, &f("z"));
    let err = z.fails(&["sync", "team", "--peer", &dm.addr, "--no-relay"]);
    assert!(err.contains("expired") && err.contains("was removed"), "{err}");
    assert_eq!(roster(&m, "team").0.len(), 3, "none of them joined");

    // The reader's edit stays on its disk, said so; the writer's reaches the manager.
    pause();
    write(&f("r").join("reader.txt"), b"a reader's note\n");
    write(&f("r").join("hello.txt"), b"the reader changed this\n");
    let out = r.run(&["scan", "team"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("stay on this device only"), "{said}");
    let v = sync_with(&r, "team", &dm);
    assert_eq!(v[0]["stats"]["sent_blobs"], 0, "nothing of the reader's edit is sent: {v}");
    write(&f("w").join("writer.txt"), b"a writer's note\n");
    w.ok(&["scan", "team"]);
    sync_with(&w, "team", &dm);
    assert_eq!(read(&f("m").join("writer.txt")), "a writer's note\n");
    assert!(!f("m").join("reader.txt").exists(), "the reader's new file reached no one");
    assert_eq!(read(&f("m").join("hello.txt")), "from the manager\n", "nor its edit");
    assert_eq!(read(&f("r").join("reader.txt")), "a reader's note\n", "it stays on the reader's disk");
    assert_eq!(read(&f("r").join("hello.txt")), "the reader changed this\n");

    // A seeder under an agreement.
    let s_id = s.ok(&["id"]).trim().to_owned();
    let v = m.json(&["agreement", "propose", "team", "--seeder", &s_id, "--quota", "100M", "--days", "30"]);
    let code = v["seed_code"].as_str().expect("seed code").to_owned();
    // A lost code is printed again while the proposal waits.
    let id = v["agreement"]["id"].as_str().expect("agreement id").to_owned();
    assert_eq!(m.ok(&["agreement", "code", &id[..12]]).trim(), code);
    s.ok(&["seed", &code, "--no-relay", "--yes"]);
    let ds = Daemon::start(&s);
    // The space secret the reader holds grants no power over agreements: its revocation and
    // proposal are refused before anything is signed, naming the role needed.
    sync_with(&r, "team", &dm);
    let err = r.fails(&["agreement", "revoke", &id[..12]]);
    assert!(err.contains("only a manager") && err.contains("read"), "{err}");
    let err = r.fails(&["agreement", "propose", "team", "--seeder", &s_id, "--quota", "1M", "--days", "1"]);
    assert!(err.contains("only a manager"), "{err}");

    // The writer is removed; the manager tells the seeder and the reader.
    m.ok(&["member", "remove", "team", "Bo's laptop"]);
    dm.stop();
    // Written after the removal: sealed under the new key epoch, which the reader holds.
    write(&f("m").join("after-removal.txt"), b"for those who stay\n");
    write(&f("m").join("hello.txt"), b"from the manager, again\n");
    m.ok(&["scan", "team"]);
    m.ok(&["sync", "team", "--peer", &ds.addr, "--no-relay"]);
    let dm = Daemon::start(&m);
    sync_with(&r, "team", &dm);
    assert_eq!(roster(&r, "team").1, 1, "the reader knows of the removal");
    assert_eq!(read(&f("r").join("after-removal.txt")), "for those who stay\n");
    // The space's next version of the file it edited came in: the reader's edit is kept
    // beside it as a conflict copy, on its disk, unshared.
    assert_eq!(read(&f("r").join("hello.txt")), "from the manager, again\n");
    let kept: Vec<String> = std::fs::read_dir(f("r"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hello.sync-conflict-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(read(&f("r").join(&kept[0])), "the reader changed this\n");
    assert!(!f("m").join(&kept[0]).exists(), "the copy is not shared either");
    let dr = Daemon::start(&r);
    write(&f("w").join("after.txt"), b"written after the removal\n");
    w.ok(&["scan", "team"]);
    for (who, d) in [("manager", &dm), ("reader", &dr), ("seeder", &ds)] {
        let out = w.run(&["sync", "team", "--peer", &d.addr, "--no-relay"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("removed from the space"),
            "the {who} refuses the removed writer: {err}"
        );
    }
    assert!(!f("m").join("after.txt").exists() && !f("r").join("after.txt").exists());
    // The reader leaves; the manager refuses it from its next session, its folder stays.
    r.ok(&["member", "leave", "team"]);
    let err = r.fails(&["sync", "team", "--peer", &dm.addr]);
    assert!(err.contains("removed from the space"), "{err}");
    assert_eq!(read(&f("r").join(&kept[0])), "the reader changed this\n", "its folder stays");
    dr.stop();
    ds.stop();
    dm.stop();
}

/// The space secret a reader holds makes no genesis that counts (issue 31 item 2). Before, a
/// reader that dropped its ledger and opened the space again signed a genesis with the shared
/// key (the upgrade for spaces made before rosters), became a manager, and could remove the
/// creator; now the space's id derives from the creator's genesis and nothing else makes one.
#[test]
fn a_reader_that_drops_its_ledger_is_still_a_reader() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = |n: &str| dir.path().join(n);
    let (m, r) = (Device::new(), Device::new());
    write(&f("m").join("hello.txt"), b"from the manager\n");
    let id = create_space(&m, "team", &f("m"));
    m.ok(&["device", "name", "Ana's desk"]);
    let dm = Daemon::start(&m);
    let code = invite(&m, &["team", "--role", "read", "--name", "Cy's tablet"]);
    join(&r, &code, &f("r"));
    sync_with(&r, "team", &dm);
    let before = roster(&m, "team");
    assert_eq!(before.0.len(), 2, "{before:?}");

    // It drops its ledger and opens the space again: no roster, so no power at all.
    std::fs::remove_file(r.home.path().join("spaces").join(&id).join("ledger.am")).expect("the reader's ledger");
    r.ok(&["status", "team"]);
    assert!(r.fails(&["member", "remove", "team", &m.ok(&["id"]).trim()[..16]]).contains("manage"));
    // Synced again, it is the reader it was, at the manager and at home.
    sync_with(&r, "team", &dm);
    assert_eq!(roster(&m, "team"), before, "the manager's roster is unchanged");
    assert_eq!(roster(&r, "team"), before, "the reader's roster is the manager's");
    let err = r.fails(&["member", "remove", "team", "Ana's desk"]);
    assert!(err.contains("only a manager") && err.contains("read"), "{err}");
    // And the manager still manages: it removes the reader.
    m.ok(&["member", "remove", "team", "Cy's tablet"]);
    assert_eq!(roster(&m, "team").1, 1);
    dm.stop();
}

#[test]
fn two_managers_removing_different_devices_while_apart_converge() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = |n: &str| dir.path().join(n);
    let (m1, m2, a, b) = (Device::new(), Device::new(), Device::new(), Device::new());
    write(&f("m1").join("f.txt"), b"shared\n");
    create_space(&m1, "s", &f("m1"));
    m1.ok(&["scan", "s"]);
    let d1 = Daemon::start(&m1);
    join(&m2, &invite(&m1, &["s", "--role", "manage", "--name", "m2"]), &f("m2"));
    join(&a, &invite(&m1, &["s", "--name", "a"]), &f("a"));
    join(&b, &invite(&m1, &["s", "--name", "b"]), &f("b"));
    for dev in [&m2, &a, &b, &m2] {
        sync_with(dev, "s", &d1);
    }
    assert_eq!(roster(&m2, "s"), roster(&m1, "s"));
    d1.stop();
    // Apart: each manager removes a different device.
    m1.ok(&["member", "remove", "s", "a"]);
    m2.ok(&["member", "remove", "s", "b"]);
    let epoch = |d: &Device| d.json(&["member", "list", "s"])["key_epoch"].as_str().expect("epoch").to_owned();
    let (e1, e2) = (epoch(&m1), epoch(&m2));
    assert_ne!(e1, e2, "each drew its own key epoch");
    let d1 = Daemon::start(&m1);
    sync_with(&m2, "s", &d1);
    let log = d1.stop();
    // Each of the two epochs reached the device the other removed: a third is drawn, for the
    // two who stay only, and both end on it.
    assert!(log.contains("drew key epoch"), "{log}");
    let (n1, n2) = (epoch(&m1), epoch(&m2));
    assert_eq!(n1, n2);
    assert!(n1 != e1 && n1 != e2, "{n1} {e1} {e2}");
    assert_eq!(m2.json(&["member", "list", "s"])["key_held"], true);
    let (members, removed) = roster(&m1, "s");
    assert_eq!(roster(&m2, "s"), (members.clone(), removed));
    assert_eq!(removed, 2);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 2, "{members:?}");
    assert!(names.contains(&"m2"), "{members:?}");

    // A removed manager's pending invites die with it: m2 invites, m1 hears of it, then
    // removes m2; the code no longer lets anyone in. Before: it stayed valid.
    let code = invite(&m2, &["s", "--name", "c"]);
    let d1 = Daemon::start(&m1);
    sync_with(&m2, "s", &d1);
    d1.stop();
    m1.ok(&["member", "remove", "s", "m2"]);
    let d1 = Daemon::start(&m1);
    let c = Device::new();
    join(&c, &code, &f("c"));
    let err = c.fails(&["sync", "s", "--peer", &d1.addr, "--no-relay"]);
    assert!(err.contains("made the invite was removed"), "{err}");
    d1.stop();
    assert_eq!(roster(&m1, "s").0.len(), 1, "only m1 is left");
}
