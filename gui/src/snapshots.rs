//! Snapshot tests of the main screens, rendered headless (wgpu) from a fixed model so the
//! images do not depend on temp paths, ids or the clock. `UPDATE_SNAPSHOTS=1` rewrites them.

use crate::app::{CoboxApp, Screen, Tab};
use crate::engine::{ConflictView, EngineHandle, FileRow, Model, SpaceState, SpaceView, Writer};
use cobox_engine::agreement_service::{AgreementSummary, AuditSummary, PeerShare, Stats};
use cobox_engine::{Pending, SpaceId, Status};
use egui_kittest::Harness;

fn model() -> Model {
    let now = cobox_engine::now_ms();
    let audit = AuditSummary {
        time: String::new(),
        time_ms: now - 2 * 3600 * 1000 - 60_000,
        challenged: 32,
        passed: 32,
        ok: true,
        stored_bytes: 3_100_000,
        auditor: "57520a5a".repeat(8),
    };
    let agreement = |seeder: &str, state: &'static str, ok: bool| AgreementSummary {
        id: "a1b2c3d4e5f6".repeat(5) + "a1b2",
        space: "9f".repeat(32),
        space_name: Some("Garden co-op".into()),
        role: "member".into(),
        owner: "57520a5a".repeat(8),
        seeder: seeder.repeat(8),
        quota: 20 << 30,
        start: "2026-11-24T10:00:00.000Z".into(),
        end: "2027-11-24T10:00:00.000Z".into(),
        terms: "nightly backup".into(),
        state: match state {
            "active" => cobox_engine::agreements::State::Active,
            "proposed" => cobox_engine::agreements::State::Proposed,
            _ => cobox_engine::agreements::State::Invalid,
        },
        signatures_ok: ok,
        problem: (!ok).then(|| "the seeder signature does not verify".into()),
        answer: (state == "proposed").then(|| {
            "20 GiB is over this seeder's limit of 10 GiB (--max-quota); its operator may still take it".into()
        }),
        operator: (state == "active").then(|| "Rivers Tech Co-op".into()),
        last_audit: (state == "active").then(|| audit.clone()),
        verified: state == "active",
    };
    let agreements = vec![
        agreement("d6b7900d", "active", true),
        agreement("1c0ffee1", "proposed", true),
        agreement("bad0bad0", "invalid", false),
    ];
    // 2026-11-24 09:41 UTC; `by` indexes the space's writers below.
    let file =
        |path: &str, size: u64, by: u16| FileRow { path: path.into(), size, mtime_ns: 1_795_513_260_000_000_000, by };
    let status = Status {
        id: "9f".repeat(32),
        name: "Garden co-op".into(),
        path: "/home/ana/Garden co-op".into(),
        files: 5,
        dirs: 2,
        symlinks: 0,
        bytes: 3_000_180,
        blobs: 12,
        stored_bytes: 3_001_000,
        snapshots: 8,
        last_scan: Some("2026-11-24T09:41:07.000Z".into()),
        pending: Pending::default(),
        conflicts: vec!["accounts/budget.txt".into()],
        replicas: 1,
        replicas_target: 2,
        agreements: agreements.clone(),
        quarantined: Vec::new(),
        not_written: Vec::new(),
        disk_free: None,
        peers: Vec::new(),
        last_error: None,
        waiting_changes: 0,
        recovering: Vec::new(),
        recovery_warning: None,
    };
    let space = SpaceView {
        id: SpaceId([0x9f; 32]),
        name: "Garden co-op".into(),
        path: "/home/ana/Garden co-op".into(),
        status: Some(status),
        files: vec![
            file("accounts/budget.sync-conflict-20261124-094107-e548c4b2.txt", 22, 0),
            file("accounts/budget.txt", 23, 1),
            file("minutes/2026-11-12.txt", 45, 1),
            file("minutes/2026-11-19.txt", 112, 0),
            file("photo-of-the-garden.jpg", 3_000_000, 1),
        ],
        writers: vec![
            Writer { short: "e548c4b2".into(), label: "Ana's laptop".into() },
            Writer { short: "57520a5a".into(), label: "57520a5a".into() },
        ],
        conflicts: vec![ConflictView {
            copy: "accounts/budget.sync-conflict-20261124-094107-e548c4b2.txt".into(),
            original: "accounts/budget.txt".into(),
            copy_size: 22,
            original_size: 23,
            copy_modified: "2026-11-24T09:40:00.000Z".into(),
            original_modified: "2026-11-24T09:41:00.000Z".into(),
            copy_by: "Ana's laptop".into(),
            original_by: "Bo's desk".into(),
        }],
        agreements,
        state: SpaceState::Conflicts(1),
        last_sync: None,
        ignores: "*.tmp\n".into(),
        roster: Some(roster()),
        recovery: Some(recovery()),
    };
    let mut other = space.clone();
    other.id = SpaceId([0x11; 32]);
    other.name = "Accounts".into();
    other.state = SpaceState::InSync;
    let mut peers = std::collections::BTreeMap::new();
    peers.insert("d6b7900d".repeat(8), PeerShare { seeded_for_them: 0, seeded_for_us: 3_100_000 });
    peers.insert("e548c4b2".repeat(8), PeerShare { seeded_for_them: 1_800_000, seeded_for_us: 0 });
    Model {
        ready: true,
        network: Some(Ok(network())),
        custody: vec![cobox_engine::recovery::Held {
            space: "11".repeat(32),
            name: "Garden co-op".into(),
            share: 1,
            of: 3,
            threshold: 2,
            dealer: "e548c4b2".repeat(8),
            made: "2026-11-20T09:12:00.000Z".into(),
        }],
        device: "57520a5a".repeat(8),
        device_name: Some("Bo's desk".into()),
        address: format!("{}@192.168.1.20:4433", "57520a5a".repeat(8)),
        spaces: vec![space, other],
        stats: Some(Stats {
            seeded_for_others: 1_800_000,
            seeded_by_others: 3_100_000,
            share_ratio: Some(0.58),
            peers,
        }),
        rates: (0..120)
            .map(|i| {
                let t = f64::from(i);
                [
                    t,
                    if (40..70).contains(&i) { 900.0 + 300.0 * (t / 3.0).sin() } else { 0.0 },
                    if i > 80 { 400.0 } else { 5.0 },
                ]
            })
            .collect(),
        peers: vec![
            cobox_engine::sync::net::PeerSeen {
                device: "e548c4b2".repeat(8),
                last_ms: now - 5 * 60_000,
                ok: true,
                error: None,
                refusal: None,
                stale: None,
            },
            cobox_engine::sync::net::PeerSeen {
                device: "1c0ffee1".repeat(8),
                last_ms: now - 20 * 60_000,
                ok: false,
                error: Some(format!("the peer refused: {}", cobox_engine::sync::net::SEEDER_FULL)),
                refusal: Some(cobox_engine::sync::proto::Refusal::SeederFull),
                stale: None,
            },
        ],
        seeders: vec![seeder_view(now)],
        names: [("e548c4b2".repeat(8), "Ana's laptop".to_owned()), ("57520a5a".repeat(8), "Bo's desk".to_owned())]
            .into_iter()
            .collect(),
        // Fixed times: the log shows clock times, which must not move the image.
        activity: [
            (
                1_795_950_000_000,
                "Seeder 1c0ffee1 is full: it takes no more of your data until its operator frees space.",
            ),
            (
                1_795_960_000_000,
                "New conflict in Garden co-op: accounts/budget.txt was changed on two devices while apart.",
            ),
        ]
        .into_iter()
        .map(|(t, s)| (t, s.to_owned()))
        .collect(),
        ..Model::default()
    }
}

/// A seeder this device administers, holding the Garden co-op for two owners.
fn seeder_view(now: i64) -> crate::engine::SeederView {
    use cobox_engine::DeviceId;
    use cobox_engine::admin::{AgreementLine, AuditLine, Event, HeldSpace, Policy, Report};
    let me = DeviceId([0x57, 0x52, 0x0a, 0x5a].repeat(8).try_into().unwrap_or([0; 32]));
    let other = DeviceId([0xe5; 32]);
    let line = |owner, state, quota| AgreementLine {
        id: "a1b2c3d4".repeat(8),
        owner,
        state,
        quota,
        expires_ms: now + 300 * 86_400_000,
    };
    let spaces = vec![
        HeldSpace {
            space: SpaceId([0x9f; 32]),
            bytes: 3_100_000,
            blobs: 12,
            agreements: vec![line(me, cobox_engine::agreements::State::Active, 20 << 30)],
            last_audit: Some(AuditLine { at_ms: now - 2 * 3600 * 1000, challenged: 32, passed: 32 }),
        },
        HeldSpace {
            space: SpaceId([0x3c; 32]),
            bytes: 41_000_000_000,
            blobs: 9_800,
            agreements: vec![line(other, cobox_engine::agreements::State::Active, 50 << 30)],
            last_audit: None,
        },
    ];
    let report = Report {
        device: DeviceId([0xd6; 32]),
        held_bytes: spaces.iter().map(|s| s.bytes).sum(),
        disk_free: Some(180 << 30),
        policy: Policy { seed_for: vec![me], max_quota: 50 << 30, operator: "Rivers Tech Co-op".into() },
        owners: cobox_engine::admin::owner_use(&spaces),
        spaces,
        errors: vec![Event {
            at_ms: now - 3 * 3600 * 1000,
            text: "session with 77aa12cd: this device was removed".into(),
        }],
        actions: vec![Event {
            at_ms: now - 86_400_000,
            text: "paired 57520a5a (Bo's desk) as an administrator".into(),
        }],
        full_since_ms: None,
    };
    crate::engine::SeederView {
        seeder: cobox_engine::codes::PeerAddr { device: DeviceId([0xd6; 32]), addrs: vec!["192.168.1.30:4433".into()] },
        report: Some((now - 60_000, report)),
        error: None,
    }
}

fn roster() -> cobox_engine::members::Roster {
    use cobox_engine::members::{InviteSummary, MemberSummary, Roster};
    let member = |device: &str, name: &str, role: &str, me: bool| MemberSummary {
        device: device.repeat(8),
        name: name.into(),
        role: role.parse().expect("a role's name"),
        me,
    };
    Roster {
        space: "Garden co-op".into(),
        members: vec![
            member("57520a5a", "Bo's desk", "manage", true),
            member("e548c4b2", "Ana's laptop", "write", false),
            member("0badcafe", "Cy's tablet", "read", false),
        ],
        removed: vec!["77aa12cd".into()],
        invites: vec![InviteSummary {
            id: "3f9e01ab".into(),
            role: cobox_engine::roster::Role::Read,
            name: Some("Dee's phone".into()),
            expires: "2026-12-01T09:00:00.000Z".into(),
            state: cobox_engine::members::InviteState::Pending,
            used_by: None,
            by: "Bo's desk".into(),
        }],
        invalid: Vec::new(),
        key_epoch: "5c1e00d2".into(),
        key_held: true,
    }
}

/// The network as `cobox network` reports it: one seeder verified and healthy, one failing
/// audits, a member, two weeks of history.
pub(crate) fn network() -> cobox_engine::overview::NetworkReport {
    use cobox_engine::overview::*;
    // Two weeks of windows, the newest the report's own.
    let start = |i: i64| 1_796_000_000_000 / 43_200_000 * 43_200_000 - (27 - i) * 43_200_000;
    let history = |fall: bool| -> Vec<ScorePoint> {
        (0..28)
            .map(|i| ScorePoint {
                start_ms: start(i),
                audit: if fall && i > 20 { 1.0 - 0.08 * (i - 20) as f32 } else { 1.0 },
                online: if i % 9 == 4 { 0.9 } else { 1.0 },
                sessions_ok: 2,
                failures: u32::from(fall && i > 20),
            })
            .collect()
    };
    let seeder = |device: &str, operator: &str, verified: bool, audit: f64| SeederHealth {
        device: device.repeat(8),
        operator: Some(operator.into()),
        state: cobox_engine::agreements::State::Active,
        quota: 50 << 30,
        held_bytes: Some(2_900_000),
        completion: Some(0.97),
        quota_used: Some(0.0001),
        verified,
        last_audit: Some("2026-12-07T06:00:00.000Z".into()),
        last_audit_ok: Some(verified),
        audit_score: audit,
        online_score: 0.97,
        last_seen: Some("2026-12-07T08:00:00.000Z".into()),
        history: history(!verified),
    };
    NetworkReport {
        device: "57520a5a".repeat(8),
        at: "2026-12-07T09:00:00.000Z".into(),
        at_ms: 1_796_000_000_000,
        spaces: vec![SpaceHealth {
            space: SpaceId([0x9f; 32]).to_string(),
            name: "Garden co-op".into(),
            verified: 1,
            seeders_total: 2,
            headline: "1 of 2 seeders verified within the last day".into(),
            needs_bytes: Some(3_001_000),
            seeders: vec![
                seeder("d6b7900d", "Rivers Tech Co-op", true, 1.0),
                seeder("1c0ffee1", "Hill Seeds", false, 0.62),
            ],
            members: vec![MemberHealth {
                device: "e548c4b2".repeat(8),
                name: "Ana's laptop".into(),
                role: cobox_engine::roster::Role::Write,
                me: false,
                last_sync: Some("2026-12-07T08:55:00.000Z".into()),
                online_score: 0.93,
                bytes_from: 3_100_000,
                bytes_to: 1_800_000,
                share_ratio: Some(0.58),
                history: (0..28)
                    .map(|i| SharePoint { start_ms: start(i), bytes_from: 110_000, bytes_to: 64_000 })
                    .collect(),
            }],
            history: (0..28)
                .map(|i| CopiesPoint { start_ms: start(i), verified: if i > 20 { 1 } else { 2 }, bytes: 200_000 })
                .collect(),
        }],
        seeding: Vec::new(),
        measures: Measures {
            devices: 3,
            seeders: 2,
            agreements: 2,
            organisations: 2,
            share_ratio: Some(0.58),
            under_target: 1,
        },
        // The co-op grew: a seeder and an organisation joined ten days ago.
        measures_history: (0..28)
            .map(|i| MeasuresPoint {
                start_ms: start(i),
                devices: if i > 10 { 3 } else { 2 },
                seeders: if i > 8 { 2 } else { 1 },
                agreements: if i > 8 { 2 } else { 1 },
                organisations: if i > 8 { 2 } else { 1 },
                share_ratio: Some(0.58),
                verified: if i > 20 {
                    1
                } else if i > 8 {
                    2
                } else {
                    1
                },
            })
            .collect(),
    }
}

/// A recovery set up 2-of-3, one custodian's share lost at the last check.
fn recovery() -> cobox_engine::ops::RecoveryReport {
    let custodian = |device: &str, error: Option<&str>| cobox_engine::ops::CustodianLine {
        device: device.repeat(8),
        delivered: true,
        proved: Some("2026-11-30T10:00:00.000Z".into()),
        checked: Some("2026-12-07T10:00:00.000Z".into()),
        error: error.map(Into::into),
    };
    cobox_engine::ops::RecoveryReport {
        space: SpaceId([0x9f; 32]).to_string(),
        name: "Garden co-op".into(),
        threshold: 2,
        wait_s: 48 * 3600,
        made: "2026-11-20T09:12:00.000Z".into(),
        custodians: vec![
            custodian("e548c4b2", None),
            custodian("d6b7900d", None),
            custodian("4be1f0c2", Some("missing: this device holds no share of that recovery plan")),
        ],
        warning: None,
    }
}

/// The app on a fixed model, `setup` applied, drawn twice (a new layout settles on its second frame).
fn fixed_harness(model: Model, setup: impl FnOnce(&mut CoboxApp)) -> Harness<'static, CoboxApp> {
    let mut app = CoboxApp::new(EngineHandle::fixed(model));
    setup(&mut app);
    let mut h = Harness::builder().with_size([1100.0, 720.0]).build_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app);
    h.step();
    h.step();
    h
}

fn shot(name: &str, setup: impl FnOnce(&mut CoboxApp)) {
    shot_of(name, model(), setup);
}

fn shot_of(name: &str, model: Model, setup: impl FnOnce(&mut CoboxApp)) {
    if let Err(e) = try_shot(name, model, setup) {
        panic!("{e}");
    }
}

fn try_shot(name: &str, model: Model, setup: impl FnOnce(&mut CoboxApp)) -> Result<(), String> {
    let mut app = CoboxApp::new(EngineHandle::fixed(model));
    setup(&mut app);
    let mut h = Harness::builder().with_size([1100.0, 720.0]).build_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app);
    // A few frames settle layout; the app asks for periodic repaints, so `run` would not settle.
    for _ in 0..4 {
        h.step();
    }
    h.try_snapshot(name).map_err(|e| format!("{name}: {e}"))
}

/// A screen: its snapshot's name, the model it shows and how the app is set to show it.
type Screenful = (&'static str, Model, fn(&mut CoboxApp));

/// Every screen and tab of the app (and its two dialogs), with a model that fills it.
fn every_screen() -> Vec<Screenful> {
    let with_past = || {
        let mut m = model();
        m.past = Some(past());
        m
    };
    let mut compared = model();
    compared.compare = Some(crate::engine::CompareView {
        space: SpaceId([0x9f; 32]),
        copy: "accounts/budget.sync-conflict-20261124-094107-e548c4b2.txt".into(),
        lines: vec![
            (' ', "seeds: 120".into()),
            ('-', "budget: 1400 (desk)".into()),
            ('+', "budget: 1350 (laptop)".into()),
            (' ', "tools: 80".into()),
        ],
        more: 0,
    });
    let mut versions = model();
    versions.file_history = Some((SpaceId([0x9f; 32]), "minutes/2026-11-19.txt".into(), past().states));
    let mut first = Model { ready: true, device: "57520a5a".repeat(8), ..Model::default() };
    first.device_name = None;
    vec![
        ("spaces", model(), |_| {}),
        ("first-run", first, |_| {}),
        ("versions", versions, |_| {}),
        ("members", model(), |a| a.tab = Tab::Members),
        ("conflicts", compared, |a| a.tab = Tab::Conflicts),
        ("history", with_past(), |a| {
            a.tab = Tab::History;
            // The form starts at now: fixed, so the image does not change by the minute.
            a.restore_at = "2026-11-24 10:00".into();
            a.restore_day = Some((jiff::civil::date(2026, 11, 24), 10, 0));
        }),
        ("seeders", model(), |a| a.tab = Tab::Seeders),
        ("ignored", model(), |a| a.tab = Tab::Ignored),
        ("recovery", recovering(), |a| a.tab = Tab::Recovery),
        ("my-seeders", model(), |a| a.screen = Screen::Seeders),
        ("network", model(), |a| a.screen = Screen::Network),
        ("activity", model(), |a| a.screen = Screen::Activity),
        ("close", model(), |a| a.asking_close = true),
    ]
}

/// Snapshots of every screen at the default text size; each is compared (or written, with
/// UPDATE_SNAPSHOTS=1) before any failure is reported.
#[test]
fn snapshot_every_screen() {
    let failed: Vec<String> =
        every_screen().into_iter().filter_map(|(name, m, setup)| try_shot(name, m, setup).err()).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The same at a large text size (the person's A+ twice): each screen wraps or scrolls instead
/// of cutting off its right side.
#[test]
fn snapshot_every_screen_large_text() {
    let failed: Vec<String> = every_screen()
        .into_iter()
        .filter_map(|(name, mut m, setup)| {
            m.zoom = Some(1.5);
            try_shot(&format!("{name}-large"), m, setup).err()
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The model with a recovery announced in the space and too few custodians proving.
fn recovering() -> Model {
    let mut m = model();
    let st = m.spaces[0].status.as_mut().expect("the fixed space has a status");
    st.recovering = vec![
        "device 4be1f0c2 is recovering this space as a manager: announced 2026-12-07T08:00:00.000Z, in effect \
         2026-12-09T08:00:00.000Z (in 172800 s) unless a member cancels it (cobox recovery cancel)"
            .into(),
    ];
    st.recovery_warning = Some(
        "only 2 of 3 recovery custodians proved their share lately, and 2 are needed: one more loss and it could \
         not be; set recovery up again with other custodians"
            .into(),
    );
    m
}

/// A space's past: three states by two devices, two deleted files.
fn past() -> crate::engine::Past {
    let state = |id: &str, time: &str, dev: &str, name: Option<&str>, counts: [u32; 4]| cobox_engine::HistoryItem {
        id: id.into(),
        time: time.into(),
        time_ms: chrono::DateTime::parse_from_rfc3339(time).map(|t| t.timestamp_millis()).unwrap_or(0),
        device: dev.repeat(8),
        device_name: name.map(str::to_owned),
        added: counts[0],
        changed: counts[1],
        deleted: counts[2],
        renamed: counts[3],
        files_changed: counts.iter().sum(),
        action: None,
    };
    crate::engine::Past {
        space: SpaceId([0x9f; 32]),
        states: vec![
            state("3c4d5e6f7a8b9c0d", "2026-11-24T09:41:00Z", "57520a5a", Some("Bo's desk"), [0, 1, 2, 0]),
            state("2b3c4d5e6f7a8b9c", "2026-11-19T16:05:00Z", "e548c4b2", Some("Ana's laptop"), [1, 0, 0, 1]),
            state("1a2b3c4d5e6f7a8b", "2026-11-12T10:00:00Z", "57520a5a", Some("Bo's desk"), [5, 0, 0, 0]),
        ],
        deleted: vec![
            cobox_engine::DeletedFile {
                path: "minutes/draft.txt".into(),
                time_ms: 1_795_945_260_000,
                device: "57520a5a".into(),
                device_name: Some("Bo's desk".into()),
            },
            cobox_engine::DeletedFile {
                path: "old-logo.png".into(),
                time_ms: 1_795_945_260_000,
                device: "e548c4b2".into(),
                device_name: Some("Ana's laptop".into()),
            },
        ],
        error: None,
    }
}

#[test]
fn snapshot_members_removal_confirmation() {
    shot("members-remove", |a| {
        a.tab = Tab::Members;
        a.confirm_remove = Some((SpaceId([0x9f; 32]), "e548c4b2".repeat(8), "Ana's laptop".into()));
    });
}

/// A writer is offered only what it may do: no invite, no proposal or ending of agreements
/// (each would be refused), and it is told who may.
#[test]
fn a_writer_is_not_offered_a_managers_actions() {
    use egui_kittest::kittest::Queryable;
    let mut m = model();
    for x in &mut m.spaces[0].roster.as_mut().expect("the fixed roster").members {
        if x.me {
            x.role = cobox_engine::roster::Role::Write;
        }
    }
    let mut h = fixed_harness(m, |a| {
        a.tab = Tab::Members;
    });
    h.get_by_label("Only a manager invites and removes members.");
    assert!(h.query_by_label("Invite someone").is_none());
    assert!(h.query_by_label("Make invite code").is_none());
    assert!(h.query_by_label("Remove").is_none());
    h.state_mut().tab = Tab::Seeders;
    h.step();
    h.step();
    h.get_by_label("Only a manager proposes and ends agreements with seeders.");
    assert!(h.query_by_label("Propose").is_none());
    assert!(h.query_by_label("End agreement").is_none());
    // The manager it was is offered them.
    let h = fixed_harness(model(), |a| {
        a.tab = Tab::Seeders;
    });
    h.get_by_label("Invite someone");
    assert!(h.query_all_by_label("End agreement").count() >= 1);
}

/// The Recovery tab: custodians and their last proofs, the margin warned of, and a recovery
/// announced in the space with the button that cancels it.
#[test]
fn snapshot_recovery() {
    let m = recovering();
    let h = fixed_harness(m.clone(), |a| {
        a.tab = Tab::Recovery;
    });
    use egui_kittest::kittest::Queryable;
    h.get_by_label("Any 2 of 3 custodians can give this space back, after a wait of 48 h.");
    h.get_by_label("missing: this device holds no share of that recovery plan");
    assert_eq!(h.get_all_by_label("2026-11-30 10:00").count(), 3, "each custodian's last proof");
    h.get_by_label("Cancel this recovery");
    h.get_by_label("Set up again");
    drop(h);
}

/// A custodian pastes a request code: the fingerprint to compare shows before anything is given;
/// a malformed code says why.
#[test]
fn a_request_code_shows_its_fingerprint_before_a_share_is_given() {
    let mut app = CoboxApp::new(EngineHandle::fixed(model()));
    app.screen = Screen::Network;
    let mut h = Harness::builder().with_size([1100.0, 2000.0]).build_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app);
    h.step();
    use egui_kittest::kittest::Queryable;
    h.get_by_label_contains("Share 1 of 3 (2 needed) of 'Garden co-op'");
    let request = cobox_engine::recovery_core::Request {
        space: [0x9f; 32],
        device: [7; 32],
        addrs: vec!["127.0.0.1:4433".into()],
        nonce: [1; 16],
    };
    h.state_mut().approve_code = request.encode().expect("a request encodes");
    h.step();
    h.step();
    h.get_by_label(&format!("Fingerprint: {}", request.fingerprint()));
    h.get_by_label("It matches: give my share");
    h.state_mut().approve_code = "cobox-recover-nonsense".into();
    h.step();
    h.step();
    h.get_by_label_contains("That code does not work");
    assert!(h.query_by_label("It matches: give my share").is_none(), "no share given for a bad code");
}

/// My seeders names the spaces a seeder holds where this device is a member, and says of the
/// others that they are someone else's, not a bare id.
#[test]
fn my_seeders_names_the_spaces_it_holds() {
    use egui_kittest::kittest::Queryable;
    let h = fixed_harness(model(), |a| {
        a.screen = Screen::Seeders;
    });
    h.get_by_label("Garden co-op");
    h.get_by_label(&format!("a space you are not in ({})", SpaceId([0x3c; 32]).short()));
    h.get_by_label("Tells owners it is run by Rivers Tech Co-op");
}

/// A seeder whose last session said it was full shows "Seeder full", not a failed check.
#[test]
fn a_full_seeder_shows_as_full_in_the_space() {
    let h = fixed_harness(model(), |a| {
        a.tab = Tab::Seeders;
    });
    use egui_kittest::kittest::Queryable;
    assert_eq!(h.get_all_by_label("Seeder full").count(), 1, "only the seeder that said so");
    assert!(crate::app::seeder_full(&model(), &"1c0ffee1".repeat(8)));
    assert!(!crate::app::seeder_full(&model(), &"d6b7900d".repeat(8)));
}

/// A scan in progress shows a bar and what is read of what there is to read.
#[test]
fn scan_progress_shows_under_the_space() {
    let mut m = model();
    m.scanning = vec![cobox_engine::daemon::ScanningNow {
        space: SpaceId([0x9f; 32]),
        phase: "scanning".into(),
        done: 1 << 20,
        total: 4 << 20,
    }];
    let h = fixed_harness(m, |_| {});
    use egui_kittest::kittest::Queryable;
    h.get_by_label("Checking the folder: 1.0 MiB of 4.0 MiB read");
}

/// A sync's progress reads as pieces and bytes left, with the time left at the pace so far.
#[test]
fn sync_progress_says_what_is_left_and_how_long() {
    let t = cobox_engine::sync::net::ReceivingNow {
        space: SpaceId([0x9f; 32]),
        wanted: 400,
        got: 100,
        bytes: 100 << 20,
        started_ms: 1_000,
    };
    assert_eq!(
        crate::app::receiving_line(&t, 21_000),
        "300 of 400 pieces left, 100.0 MiB received so far, about 1 min left"
    );
    assert_eq!(
        crate::app::receiving_line(&t, 11_000),
        "300 of 400 pieces left, 100.0 MiB received so far, about 30 s left"
    );
}

/// Peers are shown by the names their rosters give them, with their ids' first characters.
#[test]
fn peers_show_by_name_on_the_network_screen() {
    let h = fixed_harness(model(), |a| {
        a.screen = Screen::Network;
    });
    use egui_kittest::kittest::Queryable;
    h.get_by_label("Ana's laptop (e548c4b2)");
    h.get_by_label("device 1c0ffee1");
    h.get_by_label_contains("Ana's laptop (e548c4b2) - we seed 1.7 MiB");
}

/// The Network screen reads in five seconds: the headline count, the graph's nodes (this
/// device, the member, each seeder), the measures.
#[test]
fn the_network_screen_shows_the_headline_and_the_graph() {
    let mut app = CoboxApp::new(EngineHandle::fixed(model()));
    app.screen = Screen::Network;
    let mut h = Harness::builder().with_size([1100.0, 1400.0]).build_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app);
    h.step();
    h.step();
    use egui_kittest::kittest::Queryable;
    h.get_by_label("1 of 2 seeders verified within the last day");
    h.get_by_label("You (this device)");
    h.get_by_label("Ana's laptop");
    h.get_by_label("seeder run by Rivers Tech Co-op");
    h.get_by_label("seeder run by Hill Seeds");
    h.get_by_label("The network: 3 devices, 2 seeders from 2 organisations, 2 active agreements.");
}

/// A restore's day is picked from a calendar, on this computer's clock: the day after the one
/// shown, saved, is the time the restore asks for.
#[test]
fn a_restore_day_is_picked_from_a_calendar() {
    use egui_kittest::kittest::Queryable;
    let mut m = model();
    m.past = Some(past());
    let mut h = fixed_harness(m, |a| {
        a.tab = Tab::History;
        a.restore_day = Some((jiff::civil::date(2026, 11, 24), 10, 0));
    });
    h.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "or on").click();
    h.step();
    h.step();
    h.get_by_label(">").click();
    h.step();
    h.get_by_label("Save").click();
    h.step();
    h.step();
    assert_eq!(h.state().restore_at, "2026-11-25 10:00");
}
