//! `cobox network` with real processes: an owner and a member, two seeders; one seeder stops
//! and the other loses a blob, and the report follows, across restarts.

use crate::util::{Daemon, Device, create_space, random_bytes, write};

fn id_of(d: &Device) -> String {
    d.ok(&["id"]).trim().to_owned()
}

fn seeder<'a>(net: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    net["spaces"][0]["seeders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["device"] == id)
        .unwrap_or_else(|| panic!("{net}"))
}

fn score(v: &serde_json::Value, which: &str) -> f64 {
    v[which].as_f64().unwrap_or_else(|| panic!("{which} in {v}"))
}

#[test]
fn the_network_report_follows_a_stopped_and_a_corrupted_seeder_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("books");
    write(&folder.join("ledger.txt"), b"accounts\n");
    write(&folder.join("scans/big.bin"), &random_bytes(2 << 20, 3));
    let (owner, member) = (Device::new(), Device::new());
    create_space(&owner, "books", &folder);
    owner.ok(&["scan", "books"]);
    let code = owner.ok(&["invite", "books"]).trim().to_owned();
    member.ok(&["join", &code, "--path", dir.path().join("member").to_str().unwrap()]);
    let seeders = [Device::new(), Device::new()];
    let ids: Vec<String> = seeders.iter().map(id_of).collect();
    // Both seeders are run by one co-op, which spells its name two ways: one organisation.
    let mut sds: Vec<Daemon> = seeders
        .iter()
        .zip(["Rivers Tech Co-op", "rivers tech co-op"])
        .map(|(s, op)| Daemon::start_with(s, &["--seed-for", &id_of(&owner), "--max-quota", "1G", "--operator", op]))
        .collect();
    for id in &ids {
        owner.ok(&["agreement", "propose", "books", "--seeder", id, "--quota", "100M", "--days", "30"]);
    }
    let od = Daemon::start(&owner);
    member.ok(&["sync", "books", "--peer", &od.addr, "--no-relay"]);
    for d in &sds {
        owner.ok(&["sync", "books", "--peer", &d.addr, "--no-relay"]);
        owner.ok(&["audit", "books", "--all", "--peer", &d.addr, "--no-relay"]);
    }
    let net = owner.json(&["network"]);
    let space = &net["spaces"][0];
    assert_eq!(space["headline"], "2 of 2 seeders verified within the last day", "{net}");
    for id in &ids {
        let s = seeder(&net, id);
        assert_eq!(s["state"], "active");
        assert!(s["completion"].as_f64().unwrap() > 0.9, "a seeder holds the whole space: {s}");
        assert!(s["quota_used"].as_f64().unwrap() > 0.01, "{s}");
        assert_eq!((score(s, "audit_score"), score(s, "online_score")), (1.0, 1.0), "{s}");
        assert!(s["last_seen"].is_string(), "{s}");
    }
    let member_id = id_of(&member);
    let m = space["members"].as_array().unwrap().iter().find(|m| m["device"] == member_id.as_str()).unwrap();
    assert!(m["last_sync"].is_string(), "the member's session is recorded: {m}");
    // The member dialed and the owner's daemon served: the served side counts the bytes too.
    assert!(m["bytes_to"].as_u64().unwrap() > 2 << 20, "the owner sent the member the space: {m}");
    let windows = m["history"].as_array().unwrap();
    let sent: u64 = windows.iter().map(|w| w["bytes_to"].as_u64().unwrap()).sum();
    assert_eq!(sent, m["bytes_to"].as_u64().unwrap(), "the same bytes, window by window: {m}");
    assert_eq!(net["measures"]["seeders"], 2);
    assert_eq!(net["measures"]["devices"], 2);
    assert_eq!(net["measures"]["agreements"], 2);
    assert_eq!(seeder(&net, &ids[0])["operator"], "Rivers Tech Co-op", "{net}");
    assert_eq!(seeder(&net, &ids[1])["operator"], "rivers tech co-op", "{net}");
    assert_eq!(net["measures"]["organisations"], 1, "one co-op runs both seeders: {net}");
    let kept = net["measures_history"].as_array().unwrap();
    assert_eq!(kept.last().unwrap()["organisations"], 1, "the measures are kept over time: {net}");
    assert_eq!(kept.last().unwrap()["verified"], 2, "{net}");
    // The seeders see what they hold, for whom.
    let held = seeders[0].json(&["network"]);
    assert_eq!(held["seeding"][0]["owners"][0], id_of(&owner), "{held}");

    // One seeder stops; the other loses a blob.
    let stopped_addr = sds[0].addr.clone();
    sds.remove(0).stop();
    let pack = &seeders[1].seed_packs()[0];
    let mut bytes = std::fs::read(pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(pack, &bytes).unwrap();
    for _ in 0..3 {
        let out = owner.run(&["audit", "books", "--peer", &stopped_addr, "--no-relay"]);
        assert!(!out.status.success(), "a stopped seeder passes no audit");
    }
    let err = owner.fails(&["audit", "books", "--all", "--peer", &sds[0].addr, "--no-relay"]);
    assert!(err.contains("failed"), "{err}");
    let net = owner.json(&["network"]);
    assert_eq!(net["spaces"][0]["headline"], "1 of 2 seeders verified within the last day", "{net}");
    let (off, bad) = (seeder(&net, &ids[0]), seeder(&net, &ids[1]));
    assert!(score(off, "online_score") < 0.9, "the stopped seeder's online score falls: {off}");
    assert_eq!(score(off, "audit_score"), 1.0, "not reached is not a failed audit: {off}");
    assert!(score(bad, "audit_score") < 1.0, "the corrupted seeder's audit score falls: {bad}");
    assert_eq!(score(bad, "online_score"), 1.0, "{bad}");
    assert!(!bad["verified"].as_bool().unwrap() && off["verified"].as_bool().unwrap(), "{net}");
    assert!(owner.ok(&["network"]).contains("1 of 2 seeders verified within the last day"));

    // Everything restarts: the history is still there.
    od.stop();
    for d in sds {
        d.stop();
    }
    let here = owner.json(&["network"]);
    assert_eq!(seeder(&here, &ids[1])["audit_score"], bad["audit_score"], "read from the home: {here}");
    let od = Daemon::start(&owner);
    let again = owner.json(&["network"]);
    let (off2, bad2) = (seeder(&again, &ids[0]), seeder(&again, &ids[1]));
    assert_eq!(bad2["audit_score"], bad["audit_score"], "{again}");
    assert!(score(off2, "online_score") <= score(off, "online_score"), "{again}");
    assert!(!off2["history"].as_array().unwrap().is_empty() && !bad2["history"].as_array().unwrap().is_empty());
    let kept = again["measures_history"].as_array().unwrap();
    // One point per 12-hour window (two if the test ran across a window's edge), kept across
    // restarts, the newest report's in the last.
    assert!((1..=2).contains(&kept.len()), "{again}");
    assert_eq!(kept.last().unwrap()["verified"], 1, "{again}");
    od.stop();
}
