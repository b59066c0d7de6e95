//! Seeders under agreements: owner, seeders and a new member as real processes.

use crate::util::{Daemon, Device, create_space, http, random_bytes, snapshot, write};
use std::fs;
use std::path::Path;

const MARKER: &str = "CONFIDENTIAL-MARKER-7f3a";
const NAME_MARKER: &str = "payroll-MARKER-name";

fn replicas(dev: &Device, space: &str) -> u64 {
    dev.json(&["status", space])["replicas"].as_u64().expect("replicas")
}

/// Every byte under `dir`, searched for `needle`.
fn contains_bytes(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

fn propose(owner: &Device, seeder: &str, quota: &str) -> (String, String) {
    let v = owner.json(&["agreement", "propose", "docs", "--seeder", seeder, "--quota", quota, "--days", "30"]);
    (v["agreement"]["id"].as_str().expect("id").to_owned(), v["seed_code"].as_str().expect("code").to_owned())
}

#[test]
fn seeders_store_blindly_within_quota_pass_audits_and_restore_a_lost_space() {
    let dir = tempfile::tempdir().expect("tmp");
    let folder = dir.path().join("docs");
    write(&folder.join(format!("{NAME_MARKER}.txt")), format!("salaries {MARKER}\n").as_bytes());
    write(&folder.join("big.bin"), &random_bytes(3 << 20, 1));
    write(&folder.join("sub/notes.md"), b"notes\n");
    let owner = Device::new();
    create_space(&owner, "docs", &folder);
    owner.ok(&["scan", "docs"]);
    let (s1, s2, newcomer) = (Device::new(), Device::new(), Device::new());
    let (s1_id, s2_id) = (s1.ok(&["id"]).trim().to_owned(), s2.ok(&["id"]).trim().to_owned());
    assert_eq!(replicas(&owner, "docs"), 0);
    assert_eq!(owner.json(&["status", "docs"])["replicas_target"], 2, "the default target");
    owner.ok(&["space", "target", "docs", "3"]);
    assert_eq!(owner.json(&["status", "docs"])["replicas_target"], 3);

    // A seed code with a typo is refused, and nothing is registered.
    let od = Daemon::start(&owner);
    let invite = owner.ok(&["invite", "docs"]).trim().to_owned();
    let (a1, code1) = propose(&owner, &s1_id, "100M");
    let mut typo: Vec<char> = code1.chars().collect();
    typo[20] = if typo[20] == 'a' { 'b' } else { 'a' };
    assert!(s1.fails(&["seed", &typo.iter().collect::<String>()]).contains("mistyped"));
    assert!(s1.fails(&["seed", &invite]).contains("not a CoBox seed code"));
    // The seeder is shown the terms before it countersigns from the code, then takes the blobs.
    // Without a terminal to ask at, terms are accepted only with --yes.
    let err = s1.fails(&["seed", &code1, "--no-relay"]);
    assert!(err.contains("pass --yes"), "{err}");
    let out = s1.run(&["seed", &code1, "--no-relay", "--json", "--yes"]);
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && shown.contains("hold up to 100.0 MiB for space"), "{shown}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["agreement"], a1.as_str());
    assert!(v["stored_bytes"].as_u64().expect("bytes") > 3 << 20);
    let list = owner.json(&["agreement", "list"]);
    assert_eq!(list["agreements"][0]["state"], "active", "{list}");
    assert_eq!(list["agreements"][0]["signatures_ok"], true);
    od.stop();

    // A seeder without an agreement refuses.
    let d2 = Daemon::start(&s2);
    let err = owner.fails(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);
    assert!(err.contains("does not hold space"), "{err}");
    d2.stop();
    // Under a standing policy it takes proposals up to its limit, and no more.
    let owner_id = owner.ok(&["id"]).trim().to_owned();
    let d2 = Daemon::start_with(&s2, &["--seed-for", &owner_id, "--max-quota", "1G"]);
    let (over, _) = propose(&owner, &s2_id, "2G");
    let err = owner.fails(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);
    assert!(err.contains("no active agreement") && err.contains("over this seeder's limit of 1.0 GiB"), "{err}");
    // It answered in the ledger: the owner reads why it waits, and its operator may still take it.
    let list = owner.json(&["agreement", "list"]);
    let waiting = list["agreements"].as_array().unwrap().iter().find(|a| a["id"] == over.as_str()).unwrap();
    assert_eq!(waiting["state"], "proposed", "{list}");
    assert!(waiting["answer"].as_str().unwrap().contains("--max-quota"), "{list}");
    // An over-quota push is refused with a clear error; both sides keep what they had.
    let (small, _) = propose(&owner, &s2_id, "1M");
    let err = owner.fails(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);
    assert!(err.contains("over quota"), "{err}");
    assert_eq!(snapshot(&folder).len(), 4, "the owner's folder is intact");
    let (big, _) = propose(&owner, &s2_id, "100M");
    owner.ok(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);

    // 0 -> 1 -> 2 as seeders pass audits.
    let d1 = Daemon::start(&s1);
    assert_eq!(replicas(&owner, "docs"), 0, "signed but never audited");
    owner.ok(&["audit", "docs", "--all", "--peer", &d1.addr, "--no-relay"]);
    assert_eq!(replicas(&owner, "docs"), 1);
    owner.ok(&["audit", "docs", "--peer", &d2.addr, "--no-relay"]);
    assert_eq!(replicas(&owner, "docs"), 2);
    // The daemon audits on its own schedule (the seeders' addresses came from the audits above).
    let audit_times = |dev: &Device| -> Vec<serde_json::Value> {
        let l = dev.json(&["agreement", "list"]);
        l["agreements"].as_array().unwrap().iter().map(|a| a["last_audit"]["time_ms"].clone()).collect()
    };
    let before = audit_times(&owner);
    let od = Daemon::start_with(&owner, &["--audit-every", "1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while audit_times(&owner) == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = od.stop();
    assert_ne!(audit_times(&owner), before, "no scheduled audit: {log}");

    // An invite made now carries the seeders' addresses (from the address book): a new device
    // restores from them with no --peer while every member device is off.
    let v = owner.json(&["invite", "docs"]);
    let carried: Vec<&str> = v["peers"].as_array().unwrap().iter().filter_map(|p| p["device"].as_str()).collect();
    assert!(carried.contains(&s1_id.as_str()) && carried.contains(&s2_id.as_str()), "{v}");
    // The seeders learn of the invite at the owner's next sync; then it can be redeemed there.
    owner.ok(&["sync", "docs", "--no-relay"]);
    let late = Device::new();
    let late_folder = dir.path().join("late");
    late.ok(&["join", v["code"].as_str().unwrap(), "--path", late_folder.to_str().unwrap()]);
    late.ok(&["sync", "docs", "--no-relay"]);
    assert_eq!(snapshot(&late_folder), snapshot(&folder));

    // The seeders hold no name, no plaintext, no key.
    for s in [&s1, &s2] {
        assert!(contains_bytes(s.home.path(), MARKER.as_bytes()).is_empty());
        assert!(contains_bytes(s.home.path(), NAME_MARKER.as_bytes()).is_empty());
        assert!(contains_bytes(s.home.path(), b"notes.md").is_empty());
        assert!(fs::read_dir(s.home.path().join("spaces")).expect("spaces").next().is_none());
        let secret = fs::read(
            fs::read_dir(owner.home.path().join("spaces")).unwrap().next().unwrap().unwrap().path().join("secret.key"),
        )
        .unwrap();
        assert!(contains_bytes(s.home.path(), &secret[32..]).is_empty(), "no space key");
    }

    // Corrupt one of s1's blobs: its audit fails and the count drops.
    let pack = &s1.seed_packs()[0];
    let mut bytes = fs::read(pack).expect("pack");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(pack, &bytes).expect("corrupt");
    let err = owner.fails(&["audit", "docs", "--all", "--peer", &d1.addr, "--no-relay"]);
    assert!(err.contains("failed"), "{err}");
    assert_eq!(replicas(&owner, "docs"), 1);
    // The seeder, unable to prove the blob, stops claiming what it lost; the owner's next sync
    // sends it again (the seeder asking again for what it had acknowledged is a failed audit
    // too, with the blob named), and the next audit passes. Before: the sync said "in sync"
    // and the audit kept failing.
    let out = owner.run(&["sync", "docs", "--peer", &d1.addr, "--no-relay"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("asked again for 1 blob(s) it acknowledged holding"));
    assert_eq!(replicas(&owner, "docs"), 1);
    owner.ok(&["audit", "docs", "--all", "--peer", &d1.addr, "--no-relay"]);
    assert_eq!(replicas(&owner, "docs"), 2, "repaired in one round");

    // Revoking s2's agreements drops it; its daemon deletes the blobs after the grace period.
    owner.ok(&["agreement", "revoke", &big[..10]]);
    owner.ok(&["agreement", "revoke", &small[..10]]);
    assert_eq!(replicas(&owner, "docs"), 1);
    // The next session carries the revocations to s2 (its ledger can be read while it runs).
    owner.ok(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);
    let listed = s2.json(&["agreement", "list"]);
    let states: Vec<&str> =
        listed["agreements"].as_array().unwrap().iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "revoked").count(), 2, "two revoked: {listed}");
    assert_eq!(states.iter().filter(|s| **s == "proposed").count(), 1, "one answered, still open: {listed}");

    // Every member device lost: a new device joins with the invite and restores from s2 alone
    // (revoked, inside its grace period, it still serves members).
    newcomer.ok(&["join", &invite, "--path", dir.path().join("restored").to_str().unwrap()]);
    newcomer.ok(&["sync", "docs", "--peer", &d2.addr, "--no-relay"]);
    assert_eq!(snapshot(&dir.path().join("restored")), snapshot(&folder));

    // Share ratio, each side.
    let s1_log = d1.stop();
    assert!(s1_log.contains("lost on this disk"), "the seeder's log says what it lost: {s1_log}");
    d2.stop();
    let st = s2.json(&["stats"]);
    assert!(st["seeded_for_others"].as_u64().unwrap() > 3 << 20, "{st}");
    let st = owner.json(&["stats"]);
    assert!(st["seeded_by_others"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["share_ratio"], 0.0);
    // With no grace period, s2's daemon deletes the revoked space's blobs.
    let d2 = Daemon::start_with(&s2, &["--seed-grace", "0", "--interval", "1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s2.seed_packs().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = d2.stop();
    assert!(s2.seed_packs().is_empty(), "{log}");
}

#[test]
fn http_api_needs_the_token_and_answers_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let folder = dir.path().join("docs");
    write(&folder.join("a.txt"), b"a\n");
    let owner = Device::new();
    create_space(&owner, "docs", &folder);
    let seeder = Device::new();
    let seeder_id = seeder.ok(&["id"]).trim().to_owned();
    let d = Daemon::start_with(&owner, &["--http", "127.0.0.1:0"]);
    let at = d.http.clone().expect("http address");
    let token = fs::read_to_string(owner.home.path().join("api-token")).expect("token");
    assert_eq!(http(&at, "GET", "/api/spaces", None, "").0, 401);
    assert_eq!(http(&at, "GET", "/api/spaces", Some("wrong"), "").0, 401);
    let (code, body) = http(&at, "GET", "/api/spaces", Some(&token), "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v[0]["name"], "docs");
    // A bad body is a 400 with a JSON error that says what is wrong, not a 422 in plain text.
    let (code, body) = http(&at, "POST", "/api/agreements", Some(&token), r#"{"space":"docs","quota":"lots"}"#);
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(v["error"].as_str().unwrap().contains("request body"), "{v}");
    let req = format!(r#"{{"space":"docs","seeder":"{seeder_id}","quota":1048576,"days":7}}"#);
    let (code, body) = http(&at, "POST", "/api/agreements", Some(&token), &req);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(v["seed_code"].as_str().unwrap().starts_with("cobox-seed-"));
    let id = v["agreement"]["id"].as_str().unwrap().to_owned();
    let (_, body) = http(&at, "GET", "/api/spaces/docs/status", Some(&token), "");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["replicas"], 0);
    assert_eq!(v["agreements"][0]["state"], "proposed");
    let (code, _) = http(&at, "POST", &format!("/api/agreements/{id}/revoke"), Some(&token), "");
    assert_eq!(code, 200);
    // Members: the roster, an invite made and cancelled, and a bad role refused with a 400.
    let (code, body) = http(&at, "POST", "/api/spaces/docs/invites", Some(&token), r#"{"role":"read","name":"Cy"}"#);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["code"].as_str().unwrap().starts_with("cobox-invite-"), "{v}");
    let (code, body) = http(&at, "POST", "/api/spaces/docs/invites", Some(&token), r#"{"role":"boss"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(&at, "GET", "/api/spaces/docs/members", Some(&token), "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["members"][0]["role"], "manage", "{v}");
    assert_eq!(v["invites"][0]["name"], "Cy", "{v}");
    let invite_id = v["invites"][0]["id"].as_str().unwrap().to_owned();
    let (code, _) = http(&at, "POST", &format!("/api/spaces/docs/invites/{invite_id}/cancel"), Some(&token), "");
    assert_eq!(code, 200);
    let (_, body) = http(&at, "GET", "/api/spaces/docs/members", Some(&token), "");
    assert!(body.contains(r#""state":"cancelled""#), "{body}");
    let (code, _) = http(&at, "POST", "/api/spaces/docs/members/nobody/remove", Some(&token), "");
    assert_eq!(code, 404);
    let (_, body) = http(&at, "GET", "/api/agreements", Some(&token), "");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["agreements"][0]["state"], "revoked");
    let (code, body) = http(&at, "GET", "/api/spaces/nope/status", Some(&token), "");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(&at, "GET", "/api/stats", Some(&token), "");
    assert_eq!(code, 200, "{body}");
    assert!(!d.stop().contains("beyond this machine"), "no warning on loopback");
    // Bound beyond loopback in plain HTTP: it runs, and says what that exposes.
    let d = Daemon::start_with(&owner, &["--http", "0.0.0.0:0"]);
    let log = d.stop();
    assert!(log.contains("beyond this machine, in plain HTTP"), "{log}");
    // `up --json` prints JSON lines a script can read, not words.
    let mut up = owner
        .cmd(&["up", "--json", "--bind", "127.0.0.1:0", "--no-relay", "--http", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cobox up");
    let mut out = std::io::BufReader::new(up.stdout.take().expect("stdout"));
    let mut lines = [String::new(), String::new()];
    for l in &mut lines {
        std::io::BufRead::read_line(&mut out, l).expect("a line");
    }
    let _ = up.kill();
    let _ = up.wait();
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
    assert!(first["listening"].as_str().unwrap().contains('@') && first["device"].is_string(), "{first}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).expect("JSON");
    assert!(second["http"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{second}");
}

#[test]
fn demo_runs_the_whole_story() {
    let dev = Device::new();
    let out = dev.ok(&["demo"]);
    assert!(out.contains("demo finished: every step checked"), "{out}");
    assert!(out.contains("sync-conflict") && out.contains("byte-identical"), "{out}");
}

/// Bytes of every file under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// A device that joins only to audit (`join --audit-only`) fetches the manifest's changes and
/// chunk lists from the seeder it audits, never content, and audits it: it holds well under
/// 10 MB of a 50 MB space. It has no folder to scan, and its audit counts like any member's.
#[test]
fn a_device_that_joins_to_audit_holds_no_content_and_audits_the_seeder() {
    let dir = tempfile::tempdir().expect("tmp");
    let folder = dir.path().join("docs");
    for i in 0..25u64 {
        write(&folder.join(format!("part-{i}.bin")), &random_bytes(2 << 20, 40 + i));
    }
    write(&folder.join("notes/readme.md"), b"what the co-op keeps\n");
    let owner = Device::new();
    create_space(&owner, "docs", &folder);
    owner.ok(&["scan", "docs"]);
    let seeder = Device::new();
    let seeder_id = seeder.ok(&["id"]).trim().to_owned();
    // The invite is in the ledger the seeder takes, so the seeder knows it when the auditor comes.
    let invite = owner.ok(&["invite", "docs", "--role", "read"]).trim().to_owned();
    let od = Daemon::start(&owner);
    let (_, code) = propose(&owner, &seeder_id, "200M");
    seeder.ok(&["seed", &code, "--no-relay", "--yes"]);
    od.stop();
    let sd = Daemon::start(&seeder);

    let auditor = Device::new();
    auditor.ok(&["join", &invite, "--audit-only", "--name", "docs"]);
    // Joined, it waits to be let in; the seeder lets it in at its first audit.
    assert!(auditor.fails(&["scan", "docs"]).contains("waits for its first sync"));
    let out = auditor.ok(&["audit", "docs", "--peer", &sd.addr, "--no-relay"]);
    assert!(out.contains("passed"), "{out}");
    assert!(auditor.fails(&["scan", "docs"]).contains("audit its seeders only"));
    let held = du(auditor.home.path());
    assert!(held < 10 << 20, "the auditor holds {held} bytes of a 50 MB space");
    assert!(du(seeder.home.path()) > 50 << 20, "the seeder holds the content");
    // Its audit is in the ledger, passed, over the blobs the space names (content included).
    let v = auditor.json(&["agreement", "list"]);
    let last = &v["agreements"][0]["last_audit"];
    assert_eq!(last["ok"], true, "{v}");
    assert!(last["challenged"].as_u64().is_some_and(|n| n >= 400), "{v}");
    sd.stop();
}
