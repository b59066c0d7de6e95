//! Running it for real (operations issue, 21): the CLI beside a running daemon.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;

/// `status`, `scan`, `history` and `verify` beside a running `cobox up` ask it over the control
/// socket and print what they print without one.
#[test]
fn commands_beside_a_running_daemon_give_what_they_give_without_one() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("a.txt"), b"first\n");
    write(&folder.path().join("docs/b.md"), b"second\n");
    create_space(&dev, "s", folder.path());
    dev.ok(&["scan", "s"]);
    // The daemon scans when it starts, so the time of the last scan moves; free disk space
    // moves with every file any process writes; peers' sessions are what the daemon adds
    // (checked below).
    let moving = ["last scan", "disk ", "peer ", "last error"];
    let text = |c: &str| {
        let out = dev.ok(&[c, "s"]);
        out.lines().filter(|l| !moving.iter().any(|m| l.starts_with(m))).collect::<Vec<_>>().join("\n")
    };
    let json = |c: &str| {
        let mut v = dev.json(&[c, "s"]);
        if let Some(o) = v.as_object_mut() {
            for k in ["last_scan", "disk_free", "peers", "last_error"] {
                o.remove(k);
            }
        }
        v
    };
    let alone: Vec<(String, serde_json::Value)> =
        ["status", "history", "verify"].iter().map(|c| (text(c), json(c))).collect();
    let path_alone = dev.json(&["history", "s", "docs/b.md"]);
    let stats_alone = dev.ok(&["stats"]);
    let list_alone = dev.ok(&["space", "list"]);
    let audit_alone = dev.fails(&["audit", "s"]);

    let d = Daemon::start(&dev);
    let socket = dev.home.path().join("control.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600, "only this user");
    // Another user cannot connect (as root, CI tries it as `nobody`; root itself passes any mode).
    let other = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c"])
        .arg(format!("import socket; socket.socket(socket.AF_UNIX).connect({:?})", socket.display().to_string()))
        .output();
    if let Ok(o) = other
        && std::process::Command::new("id").arg("-u").output().is_ok_and(|u| u.stdout == b"0\n")
    {
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && said.contains("Permission denied"), "another user reached the socket: {said}");
    }
    for (c, (text_alone, json_alone)) in ["status", "history", "verify"].iter().zip(&alone) {
        assert_eq!(&text(c), text_alone, "`cobox {c}` beside the daemon");
        assert_eq!(&json(c), json_alone, "`cobox {c} --json` beside the daemon");
    }
    assert_eq!(dev.json(&["history", "s", "docs/b.md"]), path_alone);
    assert_eq!(dev.ok(&["stats"]), stats_alone);
    assert_eq!(dev.ok(&["space", "list"]), list_alone);
    dev.ok(&["space", "target", "s", "3"]);
    let gc = dev.json(&["gc", "s"]);
    assert_eq!(gc["blobs_removed"], 0, "every state kept by default: {gc}");
    assert_eq!(dev.json(&["status", "s"])["replicas_target"], 3, "set through the daemon, seen by it");
    // A restore beside the daemon writes the same files; a second one refuses to replace them.
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("restored");
    let said = dev.ok(&["restore", "s", dest.to_str().unwrap()]);
    assert!(said.starts_with("restored 2 files"), "{said}");
    assert_eq!(read(&dest.join("docs/b.md")), "second\n");
    let err = dev.fails(&["restore", "s", dest.to_str().unwrap()]);
    assert!(err.contains("--overwrite"), "{err}");
    let audit = dev.fails(&["audit", "s"]);
    assert!(audit.contains("no seeder with an active agreement"), "{audit} (alone: {audit_alone})");
    // A scan beside the daemon records through it; an error comes back as one line.
    pause();
    write(&folder.path().join("c.txt"), b"third\n");
    let r = dev.json(&["scan", "s"]);
    assert_eq!(r["added"].as_u64(), Some(1), "{r}");
    let err = dev.fails(&["status", "nope"]);
    assert!(err.contains("no space named") && err.contains("running daemon") && err.lines().count() == 1, "{err}");
    // A sync beside the daemon goes through it: the same lines, and the peer is remembered.
    let other = Device::new();
    let other_folder = tempfile::tempdir().unwrap();
    let code = dev.ok(&["invite", "s"]).trim().to_owned();
    other.ok(&["join", &code, "--path", other_folder.path().to_str().unwrap()]);
    let od = Daemon::start(&other);
    let out = dev.ok(&["sync", "s", "--peer", &od.addr]);
    assert!(out.starts_with("in sync with ") && out.contains("changes applied"), "{out}");
    let v = dev.json(&["sync", "s"]);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "the peer was remembered by the daemon: {v}");
    // Network options the daemon does not take from a command are named, not dropped silently.
    let out = dev.run(&["sync", "s", "--no-relay", "--limit-up", "1M"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("--no-relay, --limit-up apply only without it"), "{said}");
    // Health: free disk space, and each peer's last session as the daemon saw it.
    let st = dev.json(&["status", "s"]);
    assert!(st["disk_free"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["peers"][0]["ok"], true, "{st}");
    assert!(dev.ok(&["status", "s"]).contains("last session"));
    od.stop();
    assert_eq!(read(&other_folder.path().join("c.txt")), "third\n");
    // A space created beside the daemon is taken on by it: watched and scanned.
    let second = tempfile::tempdir().unwrap();
    let id = dev.ok(&["space", "create", "t", "--path", second.path().to_str().unwrap()]);
    assert_eq!(id.trim().len(), 64, "{id}");
    write(&second.path().join("new.txt"), b"seen by the daemon's watcher\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dev.json(&["status", "t"])["files"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the daemon never scanned the new space");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A device whose daemon runs joins beside it, and syncs through it.
    let third = Device::new();
    let third_folder = tempfile::tempdir().unwrap();
    let td = Daemon::start(&third);
    let code = dev.ok(&["invite", "s"]).trim().to_owned();
    third.ok(&["join", &code, "--path", third_folder.path().to_str().unwrap()]);
    third.ok(&["sync", "s", "--peer", &d.addr]);
    assert_eq!(read(&third_folder.path().join("docs/b.md")), "second\n");
    td.stop();
    // A second daemon on the same home is refused.
    let out = dev.run(&["up", "--bind", "127.0.0.1:0", "--no-relay"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("in use by another cobox process"));
    d.stop();
    assert!(!socket.exists(), "the socket goes with the daemon");
    // What the daemon recorded is there without it.
    assert!(dev.json(&["history", "s"]).as_array().unwrap().len() >= 2);
}

/// A seeder operator starts `cobox up`, then runs `cobox seed CODE` beside it: the daemon shows
/// the terms, countersigns and takes the blobs, and serves them from then on.
#[test]
fn seed_beside_a_running_daemon() {
    let (owner, seeder) = (Device::new(), Device::new());
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("notes.txt"), b"to be seeded\n");
    create_space(&owner, "docs", folder.path());
    owner.ok(&["scan", "docs"]);
    let od = Daemon::start(&owner);
    let ds = Daemon::start(&seeder);
    let s_id = seeder.ok(&["id"]).trim().to_owned();
    let v = owner.json(&["agreement", "propose", "docs", "--seeder", &s_id, "--quota", "10M", "--days", "30"]);
    let code = v["seed_code"].as_str().unwrap().to_owned();
    let out = seeder.run(&["seed", &code, "--yes"]);
    let (said, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert!(err.contains("hold up to 10.0 MiB"), "the terms are shown first: {err}");
    assert!(said.starts_with("seeding space "), "{said}");
    let listed = seeder.json(&["agreement", "list"]);
    assert_eq!(listed["agreements"][0]["state"], "active", "{listed}");
    assert!(seeder.json(&["stats"])["seeded_for_others"].as_u64().unwrap() > 0);
    ds.stop();
    od.stop();
}

/// `systemd-analyze verify` on a unit: passes with nothing said (it warns on stderr and still
/// exits 0 for an unknown key, so silence is the check).
fn systemd_verify(unit: &std::path::Path) {
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (package systemd) is on CI's machine");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{} does not verify: {said}", unit.display());
}

/// `cobox service install` writes units systemd accepts, for a user and for the machine, with
/// the options given to `cobox up`; `uninstall` removes them and says when there is nothing.
#[test]
fn service_units_pass_systemd_analyze_and_uninstall_removes_them() {
    let dev = Device::new();
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user");
    let said = dev.ok(&[
        "service",
        "install",
        "--user",
        "--unit-dir",
        user.to_str().unwrap(),
        "--",
        "--seed-for",
        "OWNER",
        "--max-quota",
        "5G",
    ]);
    assert!(said.contains("not enabled"), "{said}");
    let unit = user.join("cobox.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(&format!("ExecStart={BIN} up --seed-for OWNER --max-quota 5G\n")), "{text}");
    assert!(text.contains(&format!("COBOX_HOME={}", dev.home.path().display())), "{text}");
    systemd_verify(&unit);

    let system = dir.path().join("system");
    dev.ok(&["service", "install", "--unit-dir", system.to_str().unwrap()]);
    let unit = system.join("cobox.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("User=cobox\n") && text.contains("StateDirectory=cobox\n"), "{text}");
    systemd_verify(&unit);

    dev.ok(&["service", "uninstall", "--user", "--unit-dir", user.to_str().unwrap()]);
    assert!(!user.join("cobox.service").exists());
    let err = dev.fails(&["service", "uninstall", "--user", "--unit-dir", user.to_str().unwrap()]);
    assert!(err.contains("nothing to uninstall"), "{err}");
}

/// A seeder's `cobox up` prints a pairing code; the device that pairs with it reads the
/// seeder's report and changes its standing policy over iroh, and the new policy is in force at
/// once (a proposal is countersigned by itself) and after a restart. A device that did not pair
/// is refused, and each remote action and refusal is in the seeder's log.
#[test]
fn a_paired_device_administers_a_seeder_and_an_unpaired_one_is_refused() {
    let (owner, seeder, stranger) = (Device::new(), Device::new(), Device::new());
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("a.txt"), b"kept by a seeder\n");
    create_space(&owner, "docs", folder.path());
    owner.ok(&["scan", "docs"]);
    let owner_id = owner.ok(&["id"]).trim().to_owned();
    let seeder_id = seeder.ok(&["id"]).trim().to_owned();

    let d = Daemon::start(&seeder);
    let code = seeder.ok(&["seeder", "pairing-code"]).trim().to_owned();
    assert!(code.starts_with("cobox-pair-"), "{code}");
    owner.ok(&["seeder", "pair", &code, "--name", "owner laptop", "--no-relay"]);
    // Named here, as the app names it: the list shows the name; nobody else sees it.
    owner.ok(&["seeder", "name", &seeder_id, "Rivers' Pi"]);
    assert_eq!(owner.json(&["seeder", "list"])[0]["name"], "Rivers' Pi");
    let err = owner.fails(&["seeder", "name", &seeder_id, "a\u{7}bell"]);
    assert!(err.contains("without control characters"), "{err}");
    // The code pairs once.
    let err = stranger.fails(&["seeder", "pair", &code, "--no-relay"]);
    assert!(err.contains("no pairing code open"), "{err}");
    // A device that knows where the seeder is but did not pair is refused by the seeder itself.
    std::fs::copy(owner.home.path().join("seeders.json"), stranger.home.path().join("seeders.json")).unwrap();
    let err = stranger.fails(&["seeder", "status", &seeder_id[..8], "--no-relay"]);
    assert!(err.contains("is not an administrator of this seeder"), "{err}");
    let err = stranger.fails(&["seeder", "policy", &seeder_id[..8], "--max-quota", "1T", "--no-relay"]);
    assert!(err.contains("is not an administrator"), "{err}");

    // Nothing held yet; no standing owners.
    let r = owner.json(&["seeder", "status", "--no-relay"]);
    assert_eq!(r[0]["device"], seeder_id.as_str(), "{r}");
    assert_eq!(r[0]["spaces"].as_array().unwrap().len(), 0, "{r}");
    assert!(r[0]["disk_free"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r[0]["policy"]["seed_for"].as_array().unwrap().len(), 0, "{r}");

    let long = "x".repeat(65);
    let err = owner.fails(&["seeder", "policy", &seeder_id[..8], "--operator", &long, "--no-relay"]);
    assert!(err.contains("at most 64 bytes"), "{err}");
    let set = owner.json(&[
        "seeder",
        "policy",
        &seeder_id[..8],
        "--seed-for",
        &owner_id,
        "--max-quota",
        "2G",
        "--operator",
        "Rivers Tech Co-op",
        "--no-relay",
    ]);
    assert_eq!(set["seed_for"][0], owner_id.as_str(), "{set}");
    assert_eq!(set["max_quota"], 2u64 << 30, "{set}");
    assert_eq!(set["operator"], "Rivers Tech Co-op", "{set}");
    // In force at once: a proposal within it is countersigned with no one at the seeder.
    let v = owner.json(&["agreement", "propose", "docs", "--seeder", &seeder_id, "--quota", "1G", "--days", "30"]);
    let agreement = v["agreement"]["id"].as_str().unwrap().to_owned();
    owner.ok(&["sync", "docs", "--peer", &d.addr, "--no-relay"]);
    let r = owner.json(&["seeder", "status", &seeder_id[..8], "--no-relay"]);
    let held = &r[0]["spaces"][0];
    assert_eq!(held["agreements"][0]["id"], agreement.as_str(), "{r}");
    assert_eq!(held["agreements"][0]["state"], "active", "{r}");
    // The seeder named its operator in the ledger as it countersigned.
    let net = owner.json(&["network"]);
    assert_eq!(net["spaces"][0]["seeders"][0]["operator"], "Rivers Tech Co-op", "{net}");
    assert!(held["bytes"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r[0]["owners"][0]["owner"], owner_id.as_str(), "{r}");
    assert_eq!(r[0]["owners"][0]["quota"], 1u64 << 30, "{r}");
    let actions: Vec<String> =
        r[0]["actions"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap().to_owned()).collect();
    assert!(actions.iter().any(|a| a.contains("paired") && a.contains("owner laptop")), "{actions:?}");
    assert!(actions.iter().any(|a| a.contains("set the policy")), "{actions:?}");
    assert!(actions.iter().any(|a| a.contains("refused")), "{actions:?}");
    let text = owner.ok(&["seeder", "status", "--no-relay"]);
    assert!(text.contains("agreement") && text.contains("active") && text.contains("1.0 GiB"), "{text}");
    // Beside the owner's own daemon the request goes out from the daemon's endpoint (no second
    // endpoint with the same key): the same report, and the note that says whose settings apply.
    let od = Daemon::start(&owner);
    let out = owner.run(&["seeder", "status", "--no-relay", "--json"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("apply only without it"), "{said}");
    let through: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(through[0]["device"], seeder_id.as_str(), "{through}");
    assert_eq!(through[0]["spaces"][0]["agreements"][0]["id"], agreement.as_str(), "{through}");
    od.stop();
    let log = d.stop();
    assert!(log.contains("cobox seeder pair cobox-pair-"), "a seeder with no administrator prints a code: {log}");
    assert!(log.contains(&format!("admin: refused an admin request from {}", &stranger.ok(&["id"])[..8])), "{log}");

    // The policy stands over a restart (no --seed-for on this command line). The seeder came
    // back on another port: the owner's address book learns it from a sync.
    let d = Daemon::start(&seeder);
    owner.ok(&["sync", "docs", "--peer", &d.addr, "--no-relay"]);
    let r = owner.json(&["seeder", "status", "--no-relay"]);
    assert_eq!(r[0]["policy"]["seed_for"][0], owner_id.as_str(), "{r}");
    let log = d.stop();
    assert!(!log.contains("cobox seeder pair"), "a seeder with an administrator prints no code: {log}");
}

/// A seeder whose disk fills refuses the push as "seeder full" (not a failed sync with its
/// paths), keeps what it holds, and its administrator's report says it is full.
#[test]
#[ignore = "needs root: mounts a tmpfs (CI runs it as root with --ignored)"]
fn a_full_seeder_says_seeder_full_to_the_owner_and_its_administrator() {
    let disk = SmallDisk::new("24m");
    let owner = Device::new();
    let seeder = Device { home: tempfile::tempdir_in(disk.0.path()).unwrap() };
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("big.bin"), &random_bytes(40 << 20, 9));
    create_space(&owner, "docs", folder.path());
    owner.ok(&["scan", "docs"]);
    let owner_id = owner.ok(&["id"]).trim().to_owned();
    let seeder_id = seeder.ok(&["id"]).trim().to_owned();
    let d = Daemon::start_with(&seeder, &["--seed-for", &owner_id, "--max-quota", "1G", "--admin", &owner_id]);
    owner.ok(&["agreement", "propose", "docs", "--seeder", &seeder_id, "--quota", "1G", "--days", "30"]);
    let err = owner.fails(&["sync", "docs", "--peer", &d.addr, "--no-relay"]);
    assert!(err.contains("seeder full"), "{err}");
    assert!(!err.contains(&disk.0.path().display().to_string()), "the seeder's paths stay its own: {err}");
    // The administrator (named by --admin, so no code) adds the seeder by its address and sees it.
    owner.ok(&["seeder", "pair", &d.addr, "--no-relay"]);
    let err = Device::new().fails(&["seeder", "pair", &d.addr, "--no-relay"]);
    assert!(err.contains("not an administrator"), "{err}");
    let r = owner.json(&["seeder", "status", "--no-relay"]);
    assert!(r[0]["full_since_ms"].as_i64().is_some(), "{r}");
    let text = owner.ok(&["seeder", "status", "--no-relay"]);
    assert!(text.contains("FULL"), "{text}");
    d.stop();
}

/// `cobox up` writes its log to the home, one JSON object per line; `cobox logs` reads it back
/// (text, `--json`, `--warnings`), and `--follow` prints lines as the daemon writes them.
#[test]
fn the_daemon_logs_to_a_file_that_cobox_logs_reads_and_follows() {
    use std::io::BufRead;
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("a.txt"), b"a\n");
    create_space(&dev, "s", folder.path());
    let d = Daemon::start(&dev);
    let mut follow = dev.cmd(&["logs", "--follow", "-n", "0"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut followed = std::io::BufReader::new(follow.stdout.take().unwrap());
    // A stranger asks for a space the daemon does not hold: refused, logged as a warning.
    let stranger = Device::new();
    let theirs = tempfile::tempdir().unwrap();
    create_space(&stranger, "x", theirs.path());
    stranger.fails(&["sync", "x", "--peer", &d.addr, "--no-relay"]);
    // --follow prints what the daemon writes after it started: read until the refusal comes
    // (the read blocks until a line does; the test's own timeout bounds it).
    let mut line = String::new();
    while !line.contains("does not hold space") {
        line.clear();
        assert!(followed.read_line(&mut line).unwrap() > 0, "--follow ended before the refusal");
    }
    d.stop();
    let _ = follow.kill();
    let _ = follow.wait();

    let text = dev.ok(&["logs"]);
    assert!(text.contains("cobox up 0.1.0 starting"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    let json = dev.ok(&["logs", "--json"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["time"].is_string() && l["ms"].is_i64() && l["level"].is_string()), "{json}");
    // The refusal is a warning with the session's fields: the stranger as its peer.
    let refusal = lines.iter().find(|l| l["msg"].as_str().is_some_and(|m| m.contains("does not hold space"))).unwrap();
    assert_eq!(refusal["level"], "warn", "{refusal}");
    let stranger_id = stranger.ok(&["id"]);
    assert!(stranger_id.trim().starts_with(refusal["fields"]["peer"].as_str().unwrap()), "{refusal}");
    assert_eq!(dev.ok(&["logs", "-n", "1"]).lines().count(), 1);
    let warnings = dev.ok(&["logs", "--warnings"]);
    assert!(warnings.contains("does not hold space"), "{warnings}");
    // Health: the newest warning is the status's last error.
    let st = dev.json(&["status", "s"]);
    assert!(st["last_error"]["msg"].as_str().unwrap().contains("does not hold space"), "{st}");
    assert!(warnings.lines().all(|l| l.contains(" warn ")), "{warnings}");
}

/// Beside a daemon, `scan`, `verify` and `restore` draw their progress bars from the daemon's
/// work: with `?progress=1` the control socket answers with JSON lines as the work goes.
#[test]
fn the_control_socket_streams_progress_then_the_result() {
    use std::io::{Read, Write};
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("big.bin"), &random_bytes(3 << 20, 5));
    create_space(&dev, "s", folder.path());
    let d = Daemon::start(&dev);
    dev.ok(&["scan", "s"]);
    let mut c = std::os::unix::net::UnixStream::connect(dev.home.path().join("control.sock")).unwrap();
    c.write_all(b"POST /api/spaces/s/verify?progress=1 HTTP/1.1\r\nHost: cobox\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    d.stop();
    assert!(answer.contains("application/x-ndjson"), "{answer}");
    let lines: Vec<serde_json::Value> =
        answer.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.first().is_some_and(|v| v.get("start").is_some()), "{answer}");
    let advanced: u64 = lines.iter().filter_map(|v| v["advance"].as_u64()).sum();
    assert!(advanced >= 3 << 20, "the bar moved through the blobs: {answer}");
    let last = lines.last().unwrap();
    assert!(last["result"]["blobs_checked"].as_u64().unwrap() > 0, "{answer}");
}

/// A home set inside a space's folder is refused before anything (its device key above all) is
/// created there. Before: the home was made, and the running daemon recorded the key into the
/// space's shared history.
#[test]
fn a_home_inside_a_spaces_folder_is_refused_before_anything_is_created() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("a.txt"), b"shared\n");
    // The platform home (no COBOX_HOME) holds the space.
    let run = |home: Option<&std::path::Path>, args: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.env_remove("COBOX_HOME").env("XDG_DATA_HOME", data.path()).args(args);
        if let Some(h) = home {
            c.env("COBOX_HOME", h);
        }
        c.output().unwrap()
    };
    let out = run(None, &["space", "create", "s", "--path", folder.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inner = folder.path().join(".config/cobox");
    let out = run(Some(&inner), &["id"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("inside the folder of space \"s\""), "{err}");
    assert!(!folder.path().join(".config").exists(), "nothing created in the folder");
    // Beside it, a home of its own is fine.
    let beside = data.path().join("other");
    assert!(run(Some(&beside), &["id"]).status.success());
}

/// `--bind 127.0.0.1:P` listens there and nowhere else. Before: the endpoint's own sockets on
/// 0.0.0.0 and [::] listened beside it, on every interface.
#[test]
fn bind_listens_only_where_asked() {
    let dev = Device::new();
    let d = Daemon::start_with(&dev, &["--no-mdns"]);
    let socks = d.udp_sockets();
    assert!(!socks.is_empty());
    assert!(socks.iter().all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST), "{socks:?}");
    assert!(socks.iter().any(|a| d.addr.ends_with(&a.to_string())), "{socks:?} vs {}", d.addr);
}

/// docs/operations.md's five steps, as written: a seeder with a standing policy, paired by
/// its owner, countersigns an in-policy proposal at the owner's next contact with no command
/// at either end; a proposal over the policy is answered with the limit it breaks, which the
/// owner reads in `agreement list`, and stays open for the operator's `cobox seed CODE`.
#[test]
fn the_operations_guides_five_steps_work_as_written() {
    let (owner, seeder) = (Device::new(), Device::new());
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("a.txt"), b"kept by a seeder\n");
    create_space(&owner, "docs", folder.path());
    owner.ok(&["scan", "docs"]);
    let owner_id = owner.ok(&["id"]).trim().to_owned();
    let seeder_id = seeder.ok(&["id"]).trim().to_owned();
    // 2. Who it seeds for, and how much.
    let sd = Daemon::start_with(&seeder, &["--seed-for", &owner_id, "--max-quota", "500M"]);
    // 3. Pairing.
    let code = seeder.ok(&["seeder", "pairing-code"]).trim().to_owned();
    owner.ok(&["seeder", "pair", &code, "--no-relay"]);
    let od = Daemon::start_with(&owner, &["--interval", "1"]);
    let state = |id: &str| -> serde_json::Value {
        let l = owner.json(&["agreement", "list"]);
        l["agreements"].as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap_or_default()
    };
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    // 4. Within the policy: countersigned by itself at the owner's next contact.
    let v = owner.json(&["agreement", "propose", "docs", "--seeder", &seeder_id, "--quota", "200M", "--days", "365"]);
    let inside = v["agreement"]["id"].as_str().unwrap().to_owned();
    wait_for("the in-policy proposal is countersigned", &|| state(&inside)["state"] == "active");
    // Over it: answered with the limit it breaks, and still open.
    let v = owner.json(&["agreement", "propose", "docs", "--seeder", &seeder_id, "--quota", "2G", "--days", "365"]);
    let over = v["agreement"]["id"].as_str().unwrap().to_owned();
    let seed_code = v["seed_code"].as_str().unwrap().to_owned();
    wait_for("the seeder's answer reaches the owner", &|| state(&over)["answer"].is_string());
    let a = state(&over);
    assert_eq!(a["state"], "proposed", "{a}");
    assert!(a["answer"].as_str().unwrap().contains("--max-quota"), "{a}");
    let text = owner.ok(&["agreement", "list"]);
    assert!(text.contains("over this seeder's limit"), "{text}");
    // The operator takes it after all; the running service holds it from then on.
    seeder.ok(&["seed", &seed_code, "--yes", "--no-relay"]);
    wait_for("the operator's countersignature reaches the owner", &|| state(&over)["state"] == "active");
    // 5. Check: an audit counts a verified copy.
    owner.ok(&["audit", "docs", "--no-relay"]);
    assert_eq!(owner.json(&["status", "docs"])["replicas"], 1);
    od.stop();
    sd.stop();
}
