//! The app driven through its widgets against a real engine in a temp `COBOX_HOME`.

use crate::app::{CoboxApp, Tab};
use crate::engine::{EngineConfig, Model, spawn};
use cobox_engine::Home;
use cobox_engine::sync::net::NetConfig;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn app(home: &Path) -> CoboxApp {
    let net = NetConfig { bind: Some(([127, 0, 0, 1], 0).into()), no_relay: true, ..NetConfig::default() };
    CoboxApp::new(spawn(EngineConfig { home: home.to_owned(), net, interval: 3600, notify: false }, Arc::new(|| {})))
}

pub(crate) fn harness(app: CoboxApp) -> Harness<'static, CoboxApp> {
    Harness::builder().with_size([1100.0, 750.0]).build_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app)
}

/// Type a name and the folder into the new-space form and press "Create space", as a person
/// would on the first screen.
pub(crate) fn create_space(h: &mut Harness<'_, CoboxApp>, folder: &Path) {
    h.state_mut().new_name = "co-op".into();
    h.state_mut().new_path = folder.display().to_string();
    h.step();
    h.get_by_label("Create space").click();
}

/// Step frames until the engine's model satisfies `cond`.
pub(crate) fn wait(h: &mut Harness<'_, CoboxApp>, what: &str, cond: impl Fn(&Model) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        h.step();
        if cond(&h.state().model) {
            h.step();
            h.step();
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; model notice: {:?}", h.state().model.notice);
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn create_a_space_and_see_its_files() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    std::fs::create_dir(folder.path().join("budget")).unwrap();
    std::fs::write(folder.path().join("budget/2026.csv"), "a,b\n1,2\n").unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("No spaces yet. Make one from a folder, or join one with an invite code.");
    create_space(&mut h, folder.path());
    wait(&mut h, "the new space's files", |m| m.spaces.first().is_some_and(|s| s.files.len() == 2));
    h.get_by_label("budget/");
    h.get_by_label("minutes.txt");
    assert_eq!(h.get_all_by_label("In sync").count(), 2, "the list and the space both show the state");
    assert!(h.state().model.notice.as_ref().is_some_and(|(err, _)| !err));
    // Saved into the folder with nothing clicked: the watcher sees it and the list shows it.
    std::fs::write(folder.path().join("agenda.txt"), "next meeting\n").unwrap();
    wait(&mut h, "the new file, seen by the watcher", |m| m.spaces.first().is_some_and(|s| s.files.len() == 3));
    h.get_by_label("agenda.txt");
}

/// A home whose list of spaces cannot be read is not a first run: the app says what is wrong
/// and keeps showing the spaces it had, instead of "No spaces yet" (before, the error was
/// dropped and the first-run screen shown).
#[test]
fn a_home_whose_spaces_cannot_be_read_says_so() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    create_space(&mut h, folder.path());
    wait(&mut h, "the space", |m| m.spaces.len() == 1);
    let space = h.state().model.spaces[0].id;
    let bad = home.path().join("spaces").join("9f".repeat(32));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("space.json"), b"{ not json").unwrap();
    h.state().send_for_test(crate::engine::Cmd::Scan(space));
    wait(&mut h, "the error", |m| m.spaces_error.is_some());
    h.step();
    let why = h.state().model.spaces_error.clone().unwrap();
    assert!(why.contains("space.json"), "the problem names the file: {why}");
    assert_eq!(h.state().model.spaces.len(), 1, "the space shown stays");
    h.get_by_label_contains("could not read this device's spaces");
    assert!(h.query_by_label("No spaces yet. Make one from a folder, or join one with an invite code.").is_none());
}

#[test]
fn a_bad_invite_code_gets_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.state_mut().join_code = "cobox-invite-aebqhelloworld".into();
    h.state_mut().join_path = folder.path().join("joined").display().to_string();
    h.step();
    h.get_by_label("Join").click();
    wait(&mut h, "an error", |m| m.notice.is_some());
    let (err, text) = h.state().model.notice.clone().unwrap();
    assert!(err && text.contains("invite code") && text.contains("mistyped"), "{text}");
    h.get_by_label(&format!("Problem: {text}"));
    assert!(h.state().model.spaces.is_empty(), "nothing half-joined");
}

/// Close the app (its engine lets the home go) and open it again on the same home.
fn reopen(h: Harness<'static, CoboxApp>, home: &Path) -> Harness<'static, CoboxApp> {
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Home::open(home).is_err() {
        assert!(Instant::now() < deadline, "the closed app still holds the home");
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut h = harness(app(home));
    wait(&mut h, "the engine", |m| m.ready);
    h
}

/// What the app put on the clipboard over five frames.
fn copied_over_frames(h: &mut Harness<'_, CoboxApp>) -> Vec<String> {
    let mut copied = Vec::new();
    for _ in 0..5 {
        h.step();
        copied.extend(copied_texts(h));
    }
    copied
}

/// What the app put on the clipboard in the last frame.
fn copied_texts(h: &Harness<'_, CoboxApp>) -> Vec<String> {
    h.output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            eframe::egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// At first start the app asks what to call this device; the name is then this device's in
/// the spaces it makes, and a member (this device) can be renamed from the Members tab.
#[test]
fn the_app_asks_for_this_devices_name_and_members_can_be_renamed() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("What should others call this device?");
    h.state_mut().device_name_edit = "Bo's desk".into();
    h.step();
    h.get_by_label("Name this device").click();
    wait(&mut h, "the name", |m| m.device_name.as_deref() == Some("Bo's desk"));
    h.get_by_label("This device: Bo's desk");
    create_space(&mut h, folder.path());
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.roster.is_some()));
    let me = |h: &Harness<'_, CoboxApp>| {
        h.state().model.spaces[0].roster.as_ref().unwrap().members.iter().find(|m| m.me).unwrap().name.clone()
    };
    assert_eq!(me(&h), "Bo's desk", "the space knows this device by its name");
    h.get_by_label("Members").click();
    h.step();
    h.get_by_label("Rename").click();
    h.step();
    if let Some((_, _, name)) = h.state_mut().renaming.as_mut() {
        *name = "Bo's old desk".into();
    }
    h.step();
    h.get_by_label("Save name").click();
    wait(&mut h, "the new name", |m| {
        m.spaces[0].roster.as_ref().is_some_and(|r| r.members.iter().any(|x| x.me && x.name == "Bo's old desk"))
    });
    h.get_by_label("Bo's old desk (this device)");
}

/// The text size chosen with A+ is kept in the home: the app opened again shows it.
#[test]
fn the_text_size_is_remembered() {
    let home = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("A+").click();
    h.step();
    h.get_by_label("A+").click();
    wait(&mut h, "the size kept", |m| m.zoom == Some(1.5));
    assert_eq!(h.ctx.zoom_factor(), 1.5);
    let mut h = reopen(h, home.path());
    h.step();
    assert_eq!(h.ctx.zoom_factor(), 1.5, "the size chosen before the restart");
}

#[test]
fn propose_and_revoke_an_agreement() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    Home::open(home.path()).unwrap().create_space("co-op", folder.path()).unwrap();
    let seeder_home = tempfile::tempdir().unwrap();
    let seeder = Home::open(seeder_home.path()).unwrap().device_id().to_string();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the space", |m| !m.spaces.is_empty());
    h.get_by_label("Seeders").click();
    h.step();
    assert_eq!(h.state().tab, Tab::Seeders);
    h.get_by_label("0 verified copies");
    h.state_mut().seeder_id = "not-an-id".into();
    h.step();
    h.get_by_label("Propose").click();
    wait(&mut h, "a refusal", |m| m.notice.as_ref().is_some_and(|(e, _)| *e));
    h.state_mut().seeder_id = seeder.clone();
    h.step();
    h.get_by_label("Propose").click();
    wait(&mut h, "the proposal", |m| m.spaces[0].agreements.len() == 1 && m.seed_code.is_some());
    assert_eq!(h.state().model.spaces[0].agreements[0].state, cobox_engine::agreements::State::Proposed);
    h.get_by_label("waiting for the seeder to accept");
    // Copying the seed code puts that code, once, on the clipboard.
    let code = h.state().model.seed_code.clone().unwrap();
    h.get_by_label("Copy seed code").click();
    let copied = copied_over_frames(&mut h);
    assert_eq!(copied, vec![code.clone()]);
    // A second proposal to the same seeder is not offered while this one waits.
    h.get_by_label_contains("This seeder already has an agreement for this space");
    {
        use egui_kittest::kittest::NodeT;
        assert!(h.get_by_label("Propose").accesskit_node().is_disabled(), "Propose is disabled");
    }
    // The code again, on demand, for an operator who lost it.
    h.get_by_label("Show seed code").click();
    wait(&mut h, "the code again", |m| m.notice.as_ref().is_some_and(|(e, t)| !e && t.contains("seed code is below")));
    assert_eq!(h.state().model.seed_code.as_ref(), Some(&code));
    h.get_by_label("End agreement").click();
    wait(&mut h, "the revocation", |m| m.spaces[0].agreements[0].state == cobox_engine::agreements::State::Revoked);
    h.get_by_label("ended (revoked); the seeder keeps the copy a week");
    assert!(h.query_by_label("Show seed code").is_none(), "an ended agreement has no seed code");
}

#[test]
fn restore_an_older_version_of_a_file() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path().join("budget.txt");
    {
        let h = Home::open(home.path()).unwrap();
        h.create_space("co-op", folder.path()).unwrap();
        let mut s = h.open_space("co-op").unwrap();
        std::fs::write(&f, "budget: 1200\n").unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
        std::fs::write(&f, "budget: 1500 (amended)\n").unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
    }
    let mut h = harness(app(home.path()));
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.files.len() == 1));
    h.get_by_label("Versions").click();
    wait(&mut h, "the file's history", |m| m.file_history.as_ref().is_some_and(|(_, _, v)| v.len() == 2));
    // Restoring asks first, saying it changes the file for every member; Cancel changes nothing.
    h.get_by_label("Restore this version").click();
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label_contains("changes the file for every member");
    h.get_by_label("Cancel").click();
    for _ in 0..3 {
        h.step();
    }
    assert!(h.state().confirm_version.is_none());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "budget: 1500 (amended)\n");
    h.get_by_label("Restore this version").click();
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Restore for everyone").click();
    wait(&mut h, "the restore", |m| m.file_history.as_ref().is_some_and(|(_, _, v)| v.len() == 3));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "budget: 1200\n");
}

#[test]
fn settle_a_conflict_by_keeping_the_other_version() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("budget.txt"), "budget: 1400 (desk)\n").unwrap();
    let copy = "budget.sync-conflict-20261124-073334-93a3f7ff.txt";
    std::fs::write(folder.path().join(copy), "budget: 1350 (laptop)\n").unwrap();
    {
        let h = Home::open(home.path()).unwrap();
        h.create_space("co-op", folder.path()).unwrap();
        h.open_space("co-op").unwrap().scan(&cobox_engine::NoProgress).unwrap();
    }
    let mut h = harness(app(home.path()));
    wait(&mut h, "the conflict", |m| m.spaces.first().is_some_and(|s| s.conflicts.len() == 1));
    assert_eq!(h.get_all_by_label("1 conflict").count(), 2);
    h.get_by_label("Conflicts (1)").click();
    h.step();
    // Compare first: the line each side has, marked.
    h.get_by_label("Compare").click();
    wait(&mut h, "the comparison", |m| m.compare.is_some());
    h.get_by_label("- budget: 1400 (desk)");
    h.get_by_label("+ budget: 1350 (laptop)");
    h.get_by_label("Keep the other version").click();
    wait(&mut h, "the conflict settled", |m| m.spaces[0].conflicts.is_empty());
    assert_eq!(std::fs::read_to_string(folder.path().join("budget.txt")).unwrap(), "budget: 1350 (laptop)\n");
    assert!(!folder.path().join(copy).exists());
    assert_eq!(h.state().model.spaces[0].files.len(), 1, "the manifest records the result");
}

#[test]
fn ignore_rules_are_edited_saved_into_the_folder_and_applied() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("notes.txt"), "kept\n").unwrap();
    let h0 = Home::open(home.path()).unwrap();
    h0.create_space("co-op", folder.path()).unwrap();
    h0.open_space("co-op").unwrap().scan(&cobox_engine::NoProgress).unwrap();
    drop(h0);
    let mut h = harness(app(home.path()));
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.files.len() == 1));
    h.get_by_label("Ignored paths").click();
    h.run_steps(2);
    let editor = h.get_by_role(eframe::egui::accesskit::Role::MultilineTextInput);
    editor.focus();
    editor.type_text("*.log");
    h.run_steps(2);
    h.get_by_label("Save rules").click();
    wait(&mut h, "the saved rules", |m| m.spaces.first().is_some_and(|s| s.ignores == "*.log"));
    assert_eq!(std::fs::read_to_string(folder.path().join(".coboxignore")).unwrap(), "*.log");
    assert!(h.state().model.notice.as_ref().is_some_and(|(err, t)| !err && t.contains("Saved the ignore rules")));
    // Applied from then on: a new log stays out, a new note goes in.
    std::fs::write(folder.path().join("debug.log"), "noise\n").unwrap();
    std::fs::write(folder.path().join("agenda.txt"), "next meeting\n").unwrap();
    wait(&mut h, "the new note", |m| {
        m.spaces.first().is_some_and(|s| s.files.iter().any(|f| &*f.path == "agenda.txt"))
    });
    let files: Vec<String> = h.state().model.spaces[0].files.iter().map(|f| f.path.to_string()).collect();
    assert_eq!(files, [".coboxignore", "agenda.txt", "notes.txt"]);
}

/// The Members tab: this device manages; an invite made for a reader; the device that uses it
/// appears by its name; removing it asks first, says what removal cannot do, then rotates the key.
#[test]
fn invite_a_reader_then_remove_it_after_a_confirmation() {
    use cobox_engine::roster::{Action, OpId, Role};
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    create_space(&mut h, folder.path());
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.roster.is_some()));
    h.get_by_label("Members").click();
    h.step();
    h.get_by_label_contains("(this device)");
    assert_eq!(h.state().model.spaces[0].roster.as_ref().unwrap().members[0].role, cobox_engine::roster::Role::Manage);
    // The invite asks whom for, what they may do, and for how long, before the code is made.
    h.get_by_label("read").click();
    h.state_mut().invite_name = "Ana's tablet".into();
    h.state_mut().invite_days = 3;
    h.step();
    h.get_by_label("Make invite code").click();
    wait(&mut h, "the invite", |m| m.invite.is_some());
    // Nothing goes to the clipboard by itself, however often the screen is drawn (which
    // overwrote whatever the person copied meanwhile); a click on Copy puts the code there once.
    let copied = copied_over_frames(&mut h);
    assert!(copied.is_empty(), "nothing copied without a click: {copied:?}");
    let code = h.state().model.invite.clone().unwrap().1;
    h.get_by_label("Copy invite code").click();
    let copied = copied_over_frames(&mut h);
    assert_eq!(copied, vec![code.clone()], "the code, once");
    h.get_by_label("Copied.");
    // Pending, named, and until a time three days on, in this computer's time.
    let invite = h.state().model.spaces[0].roster.as_ref().unwrap().invites[0].clone();
    let left =
        chrono::DateTime::parse_from_rfc3339(&invite.expires).unwrap().timestamp_millis() - cobox_engine::now_ms();
    assert!((3 * 86_400_000 - 120_000..=3 * 86_400_000).contains(&left), "three days: {left} ms");
    h.get_by_label(&format!("read invite for Ana's tablet, works until {}", crate::app::local_time(&invite.expires)));
    let invite = cobox_engine::codes::Invite::parse(&code).unwrap();
    // A device redeems it, as its first sync would bring the redemption here.
    let space = h.state().model.spaces[0].id;
    let ledger = cobox_engine::ledger::LedgerFile::new(space, &cobox_engine::home::paths::space(home.path(), &space));
    let reader = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let key = ed25519_dalek::SigningKey::from_bytes(&invite.key);
    let redeem = Action::Redeem { invite: key.verifying_key().to_bytes(), at_ms: cobox_engine::now_ms() };
    let redeem = ledger.add_roster_op_after(&reader, vec![OpId(invite.op)], redeem, Some(&key)).unwrap();
    // And this device's countersignature, as that session would make it.
    let seed: [u8; 32] = std::fs::read(cobox_engine::home::paths::device_key(home.path())).unwrap().try_into().unwrap();
    let me = ed25519_dalek::SigningKey::from_bytes(&seed);
    let admit = Action::Admit { redeem, at_ms: cobox_engine::now_ms(), credential: vec![] };
    ledger.add_roster_op(&me, admit, None).unwrap();
    let name = reader.verifying_key().to_bytes();
    let short = cobox_engine::DeviceId(name).short();
    // Any command refreshes the model.
    h.state().send_for_test(crate::engine::Cmd::Scan(space));
    wait(&mut h, "the reader on the roster", |m| {
        m.spaces[0]
            .roster
            .as_ref()
            .is_some_and(|r| r.members.iter().any(|x| x.role == cobox_engine::roster::Role::Read))
    });
    assert_eq!(h.state().model.spaces[0].roster.as_ref().unwrap().members.len(), 2);
    let shown = h.state().model.spaces[0]
        .roster
        .as_ref()
        .unwrap()
        .members
        .iter()
        .find(|x| x.role == Role::Read)
        .unwrap()
        .name
        .clone();
    assert!(shown == "Ana's tablet" || shown == short, "{shown}");
    h.get_by_label(&shown).hover();
    h.get_by_label("Remove").click();
    // A new window is sized on its first frame and shown on the next.
    for _ in 0..3 {
        h.step();
    }
    assert!(h.state().confirm_remove.is_some(), "the removal waits for a confirmation");
    for _ in 0..10 {
        h.step();
    }
    h.get_by_label("Keep it");
    h.get_by_label_contains("cannot take back");
    h.get_by_label("Remove device").click();
    wait(&mut h, "the removal", |m| m.spaces[0].roster.as_ref().is_some_and(|r| r.removed.len() == 1));
    let r = h.state().model.spaces[0].roster.clone().unwrap();
    assert_eq!(r.members.len(), 1);
    assert_ne!(r.key_epoch, "00000000", "a new key epoch for those who stay");
    assert!(r.key_held);
    assert_eq!(ledger.roster().unwrap().role(&name), None::<Role>);
    // The join was good news, kept in the Activity log, which a restart does not forget.
    wait(&mut h, "the join in the log", |m| m.activity.iter().any(|(_, t)| t.contains("joined")));
    let h = reopen(h, home.path());
    let kept: Vec<String> = h.state().model.activity.iter().map(|(_, t)| t.clone()).collect();
    assert!(kept.iter().any(|t| t.contains("joined") && t.contains("may read")), "{kept:?}");
    assert!(kept.iter().any(|t| t.contains("was removed")), "{kept:?}");
}

/// The My seeders screen against a real seeder node: pair from its code, read its report, and
/// set its policy; the seeder records the new policy.
#[test]
fn pair_with_a_seeder_read_its_report_and_set_its_policy() {
    let seeder_home = tempfile::tempdir().unwrap();
    let seeder_seed = Home::open(seeder_home.path()).unwrap().device_seed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let net = NetConfig { bind: Some(([127, 0, 0, 1], 0).into()), no_relay: true, ..NetConfig::default() };
    let setup = cobox_engine::sync::net::NodeSetup {
        home: Some(seeder_home.path().to_owned()),
        policy: cobox_engine::sync::net::SeedPolicy { max_quota: 10 << 30, ..Default::default() },
        ..cobox_engine::sync::net::NodeSetup::default()
    };
    let node = rt.block_on(cobox_engine::sync::net::Node::start_with(seeder_seed, setup, &net)).unwrap();
    let code = cobox_engine::seeder_admin::new_pairing(
        seeder_home.path(),
        node.device(),
        node.addrs(),
        cobox_engine::now_ms(),
    )
    .unwrap();

    let home = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("My seeders").click();
    h.step();
    h.get_by_label("No seeder paired yet.");
    h.state_mut().pair_code = code;
    h.step();
    // Named as it is paired: shown by that name from then on, the id only beside it.
    h.get_by_label("Call it");
    h.state_mut().seeder_name = "Rivers' Pi".into();
    h.step();
    h.get_by_label("Pair").click();
    wait(&mut h, "the seeder's report", |m| m.seeders.first().is_some_and(|s| s.report.is_some()));
    let short = node.device().short();
    wait(&mut h, "the seeder's name", |m| m.names.values().any(|n| n == "Rivers' Pi"));
    h.get_by_label(&format!("Seeder Rivers' Pi ({short})"));
    h.get_by_label_contains("Disk: 0 B held");
    h.get_by_label("Accepts by itself: proposals from no one here up to 10.0 GiB");
    h.get_by_label(&format!("Change policy of {short}")).click();
    h.step();
    h.step();
    h.get_by_label("Accept this device's proposals by itself").click();
    h.step();
    h.step();
    h.get_by_label("Save policy").click();
    wait(&mut h, "the new policy", |m| {
        m.seeders.first().and_then(|s| s.report.as_ref()).is_some_and(|(_, r)| !r.policy.seed_for.is_empty())
    });
    h.get_by_label("Accepts by itself: proposals from this device up to 10.0 GiB");
    let me: cobox_engine::DeviceId = h.state().model.device.parse().unwrap();
    let standing = cobox_engine::seeder_admin::policy(seeder_home.path()).unwrap().unwrap();
    assert_eq!(standing.seed_for, vec![me], "the seeder recorded the policy its administrator set");
    // A proposal over the limit: warned of before it is made, and the seeder's reason shown
    // once it answered (at the next sync).
    let folder = tempfile::tempdir().unwrap();
    h.get_by_label("Spaces").click();
    h.step();
    create_space(&mut h, folder.path());
    wait(&mut h, "the space", |m| m.spaces.len() == 1);
    h.state_mut().tab = Tab::Seeders;
    h.state_mut().seeder_id = node.device().to_string();
    h.state_mut().quota_text = "20G".into();
    h.step();
    h.step();
    h.get_by_label("This seeder takes up to 10.0 GiB from you by itself: a larger proposal waits for its operator.");
    h.get_by_label("Propose").click();
    wait(&mut h, "the proposal", |m| m.spaces[0].agreements.len() == 1);
    // By name in the agreement and in the picker of seeders this device administers.
    assert_eq!(h.get_all_by_label(&format!("Rivers' Pi ({short})")).count(), 2);
    h.get_by_label("Sync now").click();
    wait(&mut h, "the seeder's answer", |m| m.spaces[0].agreements[0].answer.is_some());
    // In the agreement's block, and in the form's note that this seeder already has one.
    let why = "waiting: the seeder did not take it by itself: 20.0 GiB is over this seeder's limit of 10.0 GiB";
    assert_eq!(h.get_all_by_label_contains(why).count(), 2);
    rt.block_on(node.shutdown());
}

/// Transfer limits set in the app hold at once (the node's limiters) and are saved for the
/// next start, of the app or of `cobox up`.
#[test]
fn set_transfer_limits_from_the_network_screen() {
    let home = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("Network").click();
    h.step();
    h.get_by_label("Upload: no limit, download: no limit (all peers together)");
    h.get_by_label("Change limits").click();
    h.step();
    h.step();
    h.state_mut().limits_edit = Some((1000.0, 250.0));
    h.step();
    h.get_by_label("Save limits").click();
    wait(&mut h, "the limits", |m| m.limits == (1_000_000, 250_000));
    h.get_by_label_contains("Upload: 976.6 KiB/s");
    let saved = Home::limits_at(home.path()).unwrap();
    assert_eq!((saved.up, saved.down), (1_000_000, 250_000));
    // The app closed (its engine lets the home go) and opened again: its daemon starts with
    // the saved limits.
    let h = reopen(h, home.path());
    assert_eq!(h.state().model.limits, (1_000_000, 250_000), "the daemon's limits after a restart");
}

/// A conflict settled in the app reaches the peer at once (the folder changed, so the daemon
/// syncs), though the app's schedule would sync only in an hour; and "Sync now" brings what the
/// peer changed since, as `cobox sync` does.
/// Screens follow the network: a device that joins by dialing this app's daemon appears in
/// Members, and an edit it sends appears in the files, with no click here (the app's own syncs
/// are an hour apart in this test, so only the served session can have told it).
#[test]
fn a_join_and_a_peers_edit_show_without_a_click() {
    let (desk, desk_folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (laptop, laptop_folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(desk_folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    let (space, inv) = {
        let h = Home::open(desk.path()).unwrap();
        let info = h.create_space("co-op", desk_folder.path()).unwrap();
        h.open_space("co-op").unwrap().scan(&cobox_engine::NoProgress).unwrap();
        let request = cobox_engine::home::InviteRequest {
            name: Some("Ana's laptop".into()),
            ..cobox_engine::home::InviteRequest::writer()
        };
        (info.id, Home::invite(desk.path(), "co-op", &request).unwrap())
    };
    let mut h = harness(app(desk.path()));
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.roster.is_some()));
    h.get_by_label("Members").click();
    h.step();
    // The laptop joins, dialing the app's daemon where it listens.
    Home::open(laptop.path()).unwrap().join(&inv, laptop_folder.path(), None).unwrap();
    let desk_at = cobox_engine::codes::PeerAddr {
        device: Home::peek_device_id(desk.path()).unwrap().expect("the desk's key"),
        addrs: Home::listening_at(desk.path()).unwrap(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lh = Home::open(laptop.path()).unwrap();
    let net = NetConfig { bind: Some(([127, 0, 0, 1], 0).into()), no_relay: true, ..NetConfig::default() };
    let setup = cobox_engine::sync::net::NodeSetup { home: Some(laptop.path().to_owned()), ..Default::default() };
    let node = rt.block_on(cobox_engine::sync::net::Node::start_with(lh.device_seed(), setup, &net)).unwrap();
    rt.block_on(cobox_engine::ops::join(&node, laptop.path(), &space, std::slice::from_ref(&desk_at), None))
        .unwrap_or_else(|e| panic!("{e:?}"));
    wait(&mut h, "the laptop in Members", |m| {
        m.spaces[0].roster.as_ref().is_some_and(|r| r.members.iter().any(|x| x.name == "Ana's laptop"))
    });
    h.get_by_label("Ana's laptop");
    // The laptop writes a file and syncs it to the desk: the desk's Files show it.
    std::fs::write(laptop_folder.path().join("agenda.txt"), "1. budget\n").unwrap();
    let s = node.space(&space).expect("the joined space, held");
    rt.block_on(s.run(|s| s.scan(&cobox_engine::NoProgress))).unwrap().unwrap();
    let peers = vec![desk_at];
    let opts = cobox_engine::ops::SyncOptions { peers, peer_limit: None };
    rt.block_on(cobox_engine::ops::sync(&node, laptop.path(), &space, &opts)).unwrap();
    wait(&mut h, "the laptop's file", |m| m.spaces[0].files.iter().any(|f| &*f.path == "agenda.txt"));
    let log: Vec<&String> = h.state().model.activity.iter().map(|(_, t)| t).collect();
    assert!(log.iter().any(|t| t.contains("joined co-op")), "the join told as good news: {log:?}");
    drop(h);
    rt.block_on(node.shutdown());
}

#[test]
fn a_conflict_settled_then_sync_now_reaches_the_peer() {
    let (desk, desk_folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (laptop, laptop_folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(desk_folder.path().join("budget.txt"), "budget: 1400 (desk)\n").unwrap();
    let copy = "budget.sync-conflict-20261124-073334-93a3f7ff.txt";
    std::fs::write(desk_folder.path().join(copy), "budget: 1350 (laptop)\n").unwrap();
    let space = {
        let h = Home::open(desk.path()).unwrap();
        let info = h.create_space("co-op", desk_folder.path()).unwrap();
        h.open_space("co-op").unwrap().scan(&cobox_engine::NoProgress).unwrap();
        let inv = Home::invite(desk.path(), "co-op", &cobox_engine::home::InviteRequest::writer()).unwrap();
        Home::open(laptop.path()).unwrap().join(&inv, laptop_folder.path(), None).unwrap();
        Home::join_beside(desk.path(), laptop.path(), &inv.space).unwrap();
        info.id
    };
    // The laptop: a node serving its space on loopback, in the desk's address book.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lh = Home::open(laptop.path()).unwrap();
    let net = NetConfig { bind: Some(([127, 0, 0, 1], 0).into()), no_relay: true, ..NetConfig::default() };
    let node = rt
        .block_on(cobox_engine::sync::net::Node::start(lh.device_seed(), vec![lh.open_space("co-op").unwrap()], &net))
        .unwrap();
    Home::remember_peer_at(desk.path(), &space, &node.device(), &node.addrs()).unwrap();
    let laptop_has = |budget: &str, with_copy: bool| {
        std::fs::read_to_string(laptop_folder.path().join("budget.txt")).ok().as_deref() == Some(budget)
            && laptop_folder.path().join(copy).exists() == with_copy
    };
    let mut h = harness(app(desk.path()));
    wait(&mut h, "the conflict", |m| m.spaces.first().is_some_and(|s| s.conflicts.len() == 1));
    // The app's first sync at start brings the laptop the conflict as it stands.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !laptop_has("budget: 1400 (desk)\n", true) {
        assert!(Instant::now() < deadline, "the first sync did not reach the laptop");
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    h.get_by_label("Conflicts (1)").click();
    h.step();
    // Compare first: the line each side has, marked.
    h.get_by_label("Compare").click();
    wait(&mut h, "the comparison", |m| m.compare.is_some());
    h.get_by_label("- budget: 1400 (desk)");
    h.get_by_label("+ budget: 1350 (laptop)");
    h.get_by_label("Keep the other version").click();
    wait(&mut h, "the conflict settled", |m| m.spaces[0].conflicts.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !laptop_has("budget: 1350 (laptop)\n", false) {
        assert!(
            Instant::now() < deadline,
            "the settled conflict did not reach the laptop; {:?}",
            h.state().model.notice
        );
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    // The laptop edits; only a sync the desk asks for brings it (the laptop does not push).
    wait(&mut h, "the syncs to end", |m| m.syncing.is_empty());
    std::fs::write(laptop_folder.path().join("budget.txt"), "budget: 1500 (agreed)\n").unwrap();
    let s = node.space(&space).unwrap();
    rt.block_on(s.run(|s| s.scan(&cobox_engine::NoProgress))).unwrap().unwrap();
    h.get_by_label("Sync now").click();
    let deadline = Instant::now() + Duration::from_secs(30);
    let budget = desk_folder.path().join("budget.txt");
    while std::fs::read_to_string(&budget).unwrap() != "budget: 1500 (agreed)\n" {
        assert!(Instant::now() < deadline, "Sync now did not bring the laptop's edit; {:?}", h.state().model.notice);
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(h);
    rt.block_on(node.shutdown());
}

/// The app serves the control socket as `cobox up` does, so the CLI works beside it: a request
/// on the socket is answered by the app's engine, and the socket goes when the app closes.
#[test]
fn the_app_answers_on_the_control_socket() {
    use std::io::{Read, Write};
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    Home::open(home.path()).unwrap().create_space("co-op", folder.path()).unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the space", |m| !m.spaces.is_empty());
    let socket = home.path().join(cobox_http::CONTROL_SOCKET);
    let mut c = std::os::unix::net::UnixStream::connect(&socket).expect("the app's control socket");
    c.write_all(b"GET /api/spaces/co-op/status HTTP/1.1\r\nHost: cobox\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"name\":\"co-op\""), "{answer}");
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!socket.exists(), "the socket goes with the app");
}

/// Files as folders: into a folder and back by the breadcrumb, a search over names, and a
/// folder restored as it was at a time into a new folder.
#[test]
fn browse_folders_search_and_restore_a_folder_as_it_was() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("budget/2026")).unwrap();
    std::fs::write(folder.path().join("budget/2026/q1.csv"), "a,b\n").unwrap();
    std::fs::write(folder.path().join("budget/notes.md"), "first draft\n").unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "assembly\n").unwrap();
    let before = {
        let h = Home::open(home.path()).unwrap();
        h.create_space("co-op", folder.path()).unwrap();
        let mut s = h.open_space("co-op").unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let before = cobox_engine::util::rfc3339(cobox_engine::now_ms());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(folder.path().join("budget/notes.md"), "amended\n").unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
        before
    };
    let mut h = harness(app(home.path()));
    wait(&mut h, "the files", |m| m.spaces.first().is_some_and(|s| s.files.len() == 3));
    h.get_by_label("minutes.txt");
    h.get_by_label("budget/").click();
    h.step();
    h.step();
    h.get_by_label("notes.md");
    h.get_by_label("2026/");
    assert!(h.query_by_label("minutes.txt").is_none(), "only the folder's own files");
    // Back by the breadcrumb (the space's name is also in the list of spaces: the link is this).
    h.get_by_role_and_label(eframe::egui::accesskit::Role::Link, "co-op").click();
    h.step();
    h.step();
    h.get_by_label("minutes.txt");
    // Search by name, across folders: the hit shows its whole path.
    h.state_mut().search = "Q1".into();
    h.step();
    h.step();
    h.get_by_label("budget/2026/q1.csv");
    h.get_by_label("1 file named like \"Q1\"");
    h.get_by_label("Clear search").click();
    h.step();
    h.step();
    // The budget folder as it was before the amendment, into a new folder.
    h.get_by_label("budget/").click();
    h.step();
    h.step();
    h.get_by_label("Restore the folder budget as it was...").click();
    h.step();
    h.step();
    h.state_mut().restore_at = before;
    h.state_mut().restore_into = out.path().join("old budget").display().to_string();
    h.step();
    h.get_by_label("Restore the folder budget").click();
    wait(&mut h, "the restore", |m| m.notice.as_ref().is_some_and(|(_, t)| t.contains("Restored")));
    let (err, text) = h.state().model.notice.clone().unwrap();
    assert!(!err, "{text}");
    // The folder's content lands in the folder named, not one level further down.
    let restored = out.path().join("old budget");
    assert_eq!(std::fs::read_to_string(restored.join("notes.md")).unwrap(), "first draft\n");
    assert!(restored.join("2026/q1.csv").exists());
    assert!(!restored.join("budget").exists(), "not one level deeper");
    assert!(!restored.join("minutes.txt").exists(), "only the folder");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1, "nothing left beside it");
    h.get_by_label("Open restored folder");
    assert_eq!(
        std::fs::read_to_string(folder.path().join("budget/notes.md")).unwrap(),
        "amended\n",
        "the space untouched"
    );
}

/// A conflict that appears while the app runs is news: it lands in the activity log (and, on a
/// desktop, a notification); what was there at start is not.
#[test]
fn a_new_conflict_raises_a_notice_in_the_activity_log() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("budget.txt"), "1200\n").unwrap();
    Home::open(home.path()).unwrap().create_space("co-op", folder.path()).unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the file", |m| m.spaces.first().is_some_and(|s| s.files.len() == 1));
    h.get_by_label("Activity").click();
    h.step();
    h.step();
    h.get_by_label_contains("Nothing to tell yet.");
    // Another device's version, kept beside ours: what a sync of edits made apart leaves.
    let copy = format!("budget.sync-conflict-20261124-094107-{}.txt", "e548c4b2");
    std::fs::write(folder.path().join(copy), "1350\n").unwrap();
    wait(&mut h, "the news", |m| !m.activity.is_empty());
    let (_, text) = h.state().model.activity[0].clone();
    assert!(text.contains("New conflict in co-op: budget.txt"), "{text}");
    h.get_by_label(&text);
    h.get_by_label("Activity (1)");
}

/// A first run: the words explained, a space made from a folder, the calm "no seeder yet" with
/// what a seeder is, and the guided way to one: propose, and the seed code to send.
#[test]
fn the_first_run_explains_creates_a_space_and_proposes_to_a_seeder() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    let seeder_home = tempfile::tempdir().unwrap();
    let seeder = Home::open(seeder_home.path()).unwrap().device_id().to_string();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    h.get_by_label("Welcome to CoBox");
    h.get_by_label("A seeder");
    create_space(&mut h, folder.path());
    wait(&mut h, "the new space", |m| m.spaces.first().is_some_and(|s| s.files.len() == 1));
    h.get_by_label("0 verified copies");
    h.get_by_label_contains("This space lives on your devices only.");
    h.get_by_label("Add a seeder").click();
    h.step();
    h.step();
    assert_eq!(h.state().tab, Tab::Seeders);
    h.get_by_label_contains("ask the seeder's operator for its id");
    h.state_mut().seeder_id = seeder;
    h.step();
    h.get_by_label("Propose").click();
    wait(&mut h, "the proposal", |m| m.seed_code.is_some() && m.spaces[0].agreements.len() == 1);
    h.get_by_label("Copy seed code");
    // Proposed: no longer "no seeder", so the target speaks up.
    h.get_by_label_contains("Below this space's target");
}

/// Every screen and the search are a key away: Alt+2 opens My seeders, Alt+1 goes back,
/// Ctrl+F puts typing into the search, Escape leaves it.
#[test]
fn screens_and_search_are_reachable_by_keyboard() {
    use eframe::egui::{Key, Modifiers};
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    std::fs::write(folder.path().join("budget.csv"), "a,b\n").unwrap();
    Home::open(home.path()).unwrap().create_space("co-op", folder.path()).unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the files", |m| m.spaces.first().is_some_and(|s| s.files.len() == 2));
    h.key_press_modifiers(Modifiers::ALT, Key::Num2);
    h.step();
    h.step();
    assert_eq!(h.state().screen, crate::app::Screen::Seeders);
    h.key_press_modifiers(Modifiers::ALT, Key::Num1);
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::F);
    h.step();
    h.step();
    // Typed to the window, not to a node: it lands in the search only if Ctrl+F put focus there.
    h.event(eframe::egui::Event::Text("minu".into()));
    h.step();
    h.step();
    assert_eq!(h.state().search, "minu");
    h.get_by_label("1 file named like \"minu\"");
    h.key_press(Key::Escape);
    h.step();
    h.step();
    assert!(h.state().search.is_empty());
}

/// Recovery set up from the app: three custodians (real nodes with homes of their own) take
/// their shares, the tab lists them, and a check has each prove it still holds its share.
#[test]
fn set_up_recovery_and_check_the_custodians_from_the_app() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let net = NetConfig { bind: Some(([127, 0, 0, 1], 0).into()), no_relay: true, ..NetConfig::default() };
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<cobox_engine::sync::net::Node> = homes
        .iter()
        .map(|home| {
            let seed = Home::open(home.path()).unwrap().device_seed();
            let setup = cobox_engine::sync::net::NodeSetup {
                home: Some(home.path().to_owned()),
                ..cobox_engine::sync::net::NodeSetup::default()
            };
            rt.block_on(cobox_engine::sync::net::Node::start_with(seed, setup, &net)).unwrap()
        })
        .collect();
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("minutes.txt"), "general assembly\n").unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    create_space(&mut h, folder.path());
    wait(&mut h, "the space", |m| m.spaces.len() == 1);
    // The tab's label, and the space list's badge of the same word when one shows: the tab comes first.
    h.get_all_by_label("Recovery").next().expect("the Recovery tab").click();
    h.step();
    h.get_by_label("No recovery is set up from this device.");
    // One custodian is not enough: the button waits for a second.
    h.state_mut().recovery_custodians =
        format!("{}\n", cobox_engine::codes::PeerAddr { device: nodes[0].device(), addrs: nodes[0].addrs() });
    h.step();
    h.step();
    h.get_by_label("Name at least two custodians.");
    h.state_mut().recovery_custodians = "not-a-device\n".into();
    h.step();
    h.step();
    h.get_by_label_contains("\"not-a-device\" is not a device");
    h.state_mut().recovery_custodians = nodes
        .iter()
        .map(|n| cobox_engine::codes::PeerAddr { device: n.device(), addrs: n.addrs() }.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    h.step();
    h.step();
    h.get_by_label("Give these custodians their shares").click();
    wait(&mut h, "the recovery set up", |m| m.spaces[0].recovery.is_some());
    h.get_by_label("Any 2 of 3 custodians can give this space back, after a wait of 48 h.");
    assert_eq!(h.get_all_by_label("held").count(), 3, "every custodian took their share");
    for c in &homes {
        let kept = cobox_engine::recovery::custody(c.path()).unwrap();
        assert_eq!(kept.len(), 1, "each custodian keeps one share");
    }
    h.get_by_label("Check custodians now").click();
    wait(&mut h, "the custodians' proofs", |m| {
        m.spaces[0].recovery.as_ref().is_some_and(|r| r.custodians.iter().all(|c| c.proved.is_some()))
    });
    let said = h.state().model.notice.clone();
    assert_eq!(said, Some((false, "3 of 3 custodians proved they still hold their share.".into())));
    drop(h);
    for n in nodes {
        rt.block_on(n.shutdown());
    }
}

/// The History tab lists the space's past states (when, who, what changed); one picked there is
/// what a restore writes; a deleted file is listed and comes back with a click.
#[test]
fn restore_the_space_as_of_a_picked_past_state_and_bring_back_a_deleted_file() {
    let (home, folder, out) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (minutes, plan) = (folder.path().join("minutes.txt"), folder.path().join("plan.txt"));
    {
        let h = Home::open(home.path()).unwrap();
        h.create_space("co-op", folder.path()).unwrap();
        let mut s = h.open_space("co-op").unwrap();
        std::fs::write(&minutes, "first meeting\n").unwrap();
        std::fs::write(&plan, "the plan\n").unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&minutes, "second meeting\n").unwrap();
        std::fs::remove_file(&plan).unwrap();
        s.scan(&cobox_engine::NoProgress).unwrap();
    }
    let mut h = harness(app(home.path()));
    wait(&mut h, "the space", |m| m.spaces.first().is_some_and(|s| s.files.len() == 1));
    h.get_by_label("History").click();
    wait(&mut h, "the past states", |m| m.past.as_ref().is_some_and(|p| p.states.len() == 2));
    h.get_by_label("1 changed, 1 deleted");
    h.get_by_label("2 added");
    assert_eq!(h.get_all_by_label("this device").count(), 2, "who made each state");
    h.get_by_label_contains("by this device");
    // Pick the first state: the restore writes it, into the folder named.
    h.get_by_label("Pick").click();
    h.step();
    let first = h.state().model.past.as_ref().unwrap().states[1].id.clone();
    assert_eq!(h.state().restore_at, first);
    h.step();
    h.get_by_label("picked");
    let into = out.path().join("as it was");
    h.state_mut().restore_into = into.display().to_string();
    h.step();
    h.get_by_label("Restore the space").click();
    wait(&mut h, "the restore", |m| m.notice.as_ref().is_some_and(|(_, t)| t.contains("Restored")));
    assert_eq!(std::fs::read_to_string(into.join("minutes.txt")).unwrap(), "first meeting\n");
    assert_eq!(std::fs::read_to_string(into.join("plan.txt")).unwrap(), "the plan\n");
    assert_eq!(std::fs::read_to_string(&minutes).unwrap(), "second meeting\n", "the folder untouched");
    // Deleted files: plan.txt, brought back for everyone.
    h.get_by_label("plan.txt");
    h.get_by_label("Restore").click();
    wait(&mut h, "plan.txt back", |m| m.past.as_ref().is_some_and(|p| p.deleted.is_empty()));
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), "the plan\n");
    h.get_by_label_contains("Nothing deleted.");
    wait(&mut h, "a third state", |m| m.past.as_ref().is_some_and(|p| p.states.len() == 3));
    assert!(h.state().model.activity.iter().any(|(_, t)| t.contains("plan.txt is back")), "kept in Activity");
    // Away from the tab, the engine stops reading the past at every refresh.
    h.get_by_label("Files").click();
    wait(&mut h, "the past let go", |m| m.past.is_none());
}

/// Closing the window never stops syncing silently: the app asks; "Keep syncing" keeps the app
/// running minimized, and a remembered choice is kept across restarts.
#[test]
fn closing_the_window_asks_whether_to_keep_syncing() {
    use eframe::egui::{ViewportCommand, ViewportEvent, ViewportId};
    fn close(h: &mut Harness<'_, CoboxApp>) -> Vec<ViewportCommand> {
        h.input_mut().viewports.entry(ViewportId::ROOT).or_default().events.push(ViewportEvent::Close);
        h.step();
        h.output().viewport_output.get(&ViewportId::ROOT).map(|v| v.commands.clone()).unwrap_or_default()
    }
    let home = tempfile::tempdir().unwrap();
    let mut h = harness(app(home.path()));
    wait(&mut h, "the engine", |m| m.ready);
    let asked = close(&mut h);
    assert!(asked.contains(&ViewportCommand::CancelClose), "{asked:?}");
    h.step();
    h.get_by_label_contains("While CoBox runs it keeps this device's folders in sync");
    h.get_by_label("Remember my choice (change it on the Network screen)").click();
    h.step();
    h.get_by_label("Keep syncing in the background").click();
    h.step();
    let out = h.output().viewport_output.get(&ViewportId::ROOT).map(|v| v.commands.clone()).unwrap_or_default();
    assert!(out.contains(&ViewportCommand::Minimized(true)), "{out:?}");
    wait(&mut h, "the choice kept", |m| m.keep_syncing_on_close == Some(true));
    // Asked once: the next close minimizes without a question.
    let again = close(&mut h);
    assert!(again.contains(&ViewportCommand::CancelClose) && again.contains(&ViewportCommand::Minimized(true)));
    assert!(!h.state().asking_close);
    let h = reopen(h, home.path());
    assert_eq!(h.state().model.keep_syncing_on_close, Some(true), "kept across restarts");
}
