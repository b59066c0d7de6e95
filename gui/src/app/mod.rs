//! The app's screens. It reads snapshots of the engine's [`Model`] and sends [`Cmd`]s; nothing
//! here touches the disk or the network.

mod files;
mod glance;
mod history;
mod network;
mod recovery;
mod seeders;
mod space;

use crate::engine::{Cmd, EngineHandle, Model, SpaceState, SpaceView};
use cobox_engine::{HistoryItem, Keep, SpaceId};
use eframe::egui;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screen {
    Spaces,
    /// Seeders this device administers.
    Seeders,
    Network,
    /// What happened that the user should hear of.
    Activity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Files,
    Members,
    Conflicts,
    /// Past states and deleted files.
    History,
    Seeders,
    Ignored,
    Recovery,
}

/// Whose text an editor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// The saved one: it follows the model (a sync may change it).
    Clean,
    /// The user's, not saved.
    Edited,
    /// The user's, sent to be saved: clean once the model shows it.
    Saving,
}

/// The app.
pub(crate) struct CoboxApp {
    engine: EngineHandle,
    pub(crate) model: Arc<Model>,
    pub(crate) screen: Screen,
    pub(crate) tab: Tab,
    pub(crate) selected: Option<SpaceId>,
    pub(crate) new_name: String,
    pub(crate) new_path: String,
    pub(crate) join_code: String,
    pub(crate) join_path: String,
    pub(crate) seeder_id: String,
    /// The quota as typed, with its unit ("50G": 50 GiB; "50GB": 50 × 10⁹ bytes).
    pub(crate) quota_text: String,
    pub(crate) days: u32,
    /// The role the next invite grants.
    pub(crate) invite_role: cobox_engine::roster::Role,
    /// A removal waiting for the user's confirmation: the space, the device id, its name.
    pub(crate) confirm_remove: Option<(SpaceId, String, String)>,
    /// The ignore rules in the editor: the space, the text, and whether it is the user's.
    pub(crate) ignore_edit: Option<(SpaceId, String, Edit)>,
    /// A tab to switch to at the end of the frame (asked from code that only reads the app).
    tab_request: std::cell::Cell<Option<Tab>>,
    /// The pairing code (or seeder address) being typed.
    pub(crate) pair_code: String,
    /// What to call the seeder being paired or proposed to ("" no name).
    pub(crate) seeder_name: String,
    /// A seeder being named: its device and the name typed.
    pub(crate) renaming_seeder: Option<(cobox_engine::DeviceId, String)>,
    /// A seeder policy being edited: the seeder, seeding for this device by itself, the quota.
    pub(crate) policy_edit: Option<(cobox_engine::DeviceId, bool, f64)>,
    /// The folder shown of each space ("" for its root).
    pub(crate) browse_dir: std::collections::HashMap<SpaceId, String>,
    /// The search over file names ("" shows the folder).
    pub(crate) search: String,
    /// Put the keyboard in the search box next frame (Ctrl+F).
    focus_search: bool,
    /// The code last put on the clipboard, by a click on its Copy button (once: never on a
    /// repaint, which would overwrite what the person copied since).
    pub(crate) copied: Option<String>,
    /// The next invite's name for the joiner ("" none) and how many days it works.
    pub(crate) invite_name: String,
    pub(crate) invite_days: u32,
    /// The notice closed by the person (its time), so it stays closed.
    pub(crate) notice_closed: i64,
    /// This device's name being typed (asked at first start, changed any time).
    pub(crate) device_name_edit: String,
    /// The text size last applied from the model (so a change made here is not undone).
    zoom_applied: Option<f32>,
    /// A version restore waiting for the person's yes: space, path, version id, its time.
    pub(crate) confirm_version: Option<(SpaceId, String, String, String)>,
    /// A member being renamed: the space, its device id, the name typed.
    pub(crate) renaming: Option<(SpaceId, String, String)>,
    /// The current folder's rows (or the search's hits), kept until the model, the folder or
    /// the search changes: building them walks every file.
    listing: Option<Listing>,
    /// "Restore this folder as it was": the time (or history id) and the new folder.
    pub(crate) restore_at: String,
    pub(crate) restore_into: String,
    /// The day and time picked for a restore (`None`: now, until the person picks).
    pub(crate) restore_day: Option<(jiff::civil::Date, u32, u32)>,
    /// The space whose past was last asked of the engine (it keeps it up to date after).
    past_asked: Option<SpaceId>,
    /// A screen showed the past this frame; when none does, the engine stops keeping it (reading
    /// it walks every entry of the manifest at each refresh).
    past_shown: bool,
    /// Transfer limits being edited, KB/s (0: none).
    pub(crate) limits_edit: Option<(f64, f64)>,
    /// Recovery custodians being typed (one per line), how many are needed, the wait (hours).
    pub(crate) recovery_custodians: String,
    pub(crate) recovery_threshold: usize,
    pub(crate) recovery_wait_h: u32,
    /// A recovery request code being checked before this device gives its share.
    pub(crate) approve_code: String,
    /// A folder picked in the native dialog (it runs on its own thread), and which field it
    /// fills; `None` when no folder came back.
    picked: Arc<Mutex<Option<Picked>>>,
    /// The window's close button was pressed and the person is asked what to do.
    pub(crate) asking_close: bool,
    /// "Remember my choice" in that question.
    pub(crate) remember_close: bool,
    /// The person chose to quit: the next close goes through.
    quitting: bool,
    /// What the app itself has to say (an opener or picker that did not work): words, time.
    pub(crate) own_notice: Option<(String, i64)>,
}

/// A folder dialog's answer: whether it was for a new space (else a join), and the folder
/// chosen, if one was.
type Picked = (bool, Option<PathBuf>);

/// Seconds good news stays on screen.
const NOTICE_OK_S: i64 = 8;
/// Seconds a problem stays on screen (the Activity screen keeps what matters longer).
const NOTICE_ERR_S: i64 = 30;

/// Search hits shown at most: past this many, the name is too short to be a search.
const SEARCH_MAX: usize = 1000;

/// A folder's rows, and what they were built from.
struct Listing {
    /// Held weakly: the model's memory goes when the engine replaces it, but its address is not
    /// reused for a newer model while this is held, so a match is the same model.
    model: std::sync::Weak<Model>,
    space: SpaceId,
    dir: String,
    search: String,
    rows: Arc<Vec<crate::browse::Row>>,
}

/// Sizes in the units the CLI uses too (a 50 GiB quota shows as "50.0 GiB").
fn human(n: u64) -> String {
    cobox_engine::units::format_bytes(n)
}

/// "1 file", "2 files": a count with its noun.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An RFC 3339 time as this computer's clock shows it ("Mon 14 Dec 2026, 10:00"); the text as
/// given if it does not parse.
pub(crate) fn local_time(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => t.with_timezone(&chrono::Local).format("%a %-d %b %Y, %H:%M").to_string(),
        Err(_) => t.to_owned(),
    }
}

fn ago(ms: i64) -> String {
    let s = (cobox_engine::now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} ago", plural((s / 86400) as usize, "day", "days")),
    }
}

impl CoboxApp {
    pub(crate) fn new(engine: EngineHandle) -> Self {
        let model = engine.snapshot();
        Self {
            engine,
            model,
            screen: Screen::Spaces,
            tab: Tab::Files,
            invite_role: cobox_engine::roster::Role::Write,
            confirm_remove: None,
            selected: None,
            new_name: String::new(),
            new_path: String::new(),
            join_code: String::new(),
            join_path: String::new(),
            seeder_id: String::new(),
            quota_text: "50G".into(),
            days: 365,
            ignore_edit: None,
            pair_code: String::new(),
            seeder_name: String::new(),
            renaming_seeder: None,
            tab_request: std::cell::Cell::new(None),
            policy_edit: None,
            limits_edit: None,
            browse_dir: Default::default(),
            search: String::new(),
            focus_search: false,
            copied: None,
            invite_name: String::new(),
            invite_days: 7,
            notice_closed: 0,
            device_name_edit: String::new(),
            renaming: None,
            confirm_version: None,
            zoom_applied: None,
            listing: None,
            restore_at: String::new(),
            restore_into: String::new(),
            past_asked: None,
            past_shown: false,
            restore_day: None,
            asking_close: false,
            remember_close: false,
            quitting: false,
            recovery_custodians: String::new(),
            recovery_threshold: 2,
            recovery_wait_h: 48,
            approve_code: String::new(),
            picked: Arc::new(Mutex::new(None)),
            own_notice: None,
        }
    }

    fn send(&self, c: Cmd) {
        self.engine.send(c);
    }

    #[cfg(test)]
    pub(crate) fn send_for_test(&self, c: Cmd) {
        self.send(c);
    }

    fn browse(&self, for_new: bool) {
        let slot = self.picked.clone();
        std::thread::spawn(move || {
            let p = rfd::FileDialog::new().set_title("Choose a folder").pick_folder();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((for_new, p));
        });
    }

    /// Open a file or folder with the desktop's application for it, saying so when there is none.
    fn open_path(&mut self, path: &std::path::Path) {
        if let Err(e) = open::that_detached(path) {
            self.tell(format!(
                "Could not open {}: {e}. This desktop has no application set to open it; open it from your file manager.",
                path.display()
            ));
        }
    }

    /// A button that puts `text` on the clipboard when clicked (once; never on a repaint), and says so.
    fn copy_button(&mut self, ui: &mut egui::Ui, label: &str, text: &str) {
        let copied = self.copied.as_deref() == Some(text);
        if ui.button(label).clicked() {
            ui.ctx().copy_text(text.to_owned());
            self.copied = Some(text.to_owned());
        }
        if copied {
            ui.label("Copied.");
        }
    }

    /// Something the app itself has to say, in the notice line.
    pub(crate) fn tell(&mut self, text: String) {
        self.own_notice = Some((text, cobox_engine::now_ms()));
    }

    /// Draw one frame.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui) {
        self.model = self.engine.snapshot();
        // The text size the person chose, kept in the home (`app-settings.json`).
        if let Some(z) = self.model.zoom
            && (ui.ctx().zoom_factor() - z).abs() > 0.001
            && self.zoom_applied != Some(z)
        {
            ui.ctx().set_zoom_factor(z);
            self.zoom_applied = Some(z);
        }
        let picked = self.picked.lock().unwrap_or_else(|e| e.into_inner()).take();
        match picked {
            Some((for_new, Some(p))) => {
                *(if for_new { &mut self.new_path } else { &mut self.join_path }) = p.display().to_string();
            }
            Some((_, None)) => self.tell(
                "No folder was chosen. If no window to choose one appeared, type the folder's path instead.".into(),
            ),
            None => {}
        }
        if self.selected.is_none() {
            self.selected = self.model.spaces.first().map(|s| s.id);
        }
        self.on_close(ui);
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        if let Some(fatal) = self.model.fatal.clone() {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.heading("CoBox cannot start");
                ui.colored_label(ui.visuals().error_fg_color, fatal);
            });
            return;
        }
        match self.screen {
            Screen::Spaces => {
                egui::Panel::left("spaces")
                    .default_size(260.0)
                    .size_range(160.0..=600.0)
                    .resizable(true)
                    .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.space_list(ui)));
                // Scrolls rather than cutting off what does not fit (a small window, large text).
                egui::CentralPanel::default().show(ui, |ui| {
                    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| self.space_detail(ui))
                });
            }
            Screen::Seeders => {
                egui::CentralPanel::default()
                    .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.my_seeders(ui)));
            }
            Screen::Network => {
                egui::CentralPanel::default()
                    .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.network(ui)));
            }
            Screen::Activity => {
                egui::CentralPanel::default().show(ui, |ui| self.activity(ui));
            }
        }
        if !std::mem::take(&mut self.past_shown) && self.past_asked.take().is_some() {
            self.send(Cmd::ForgetPast);
        }
        // Keep the rate plot and "syncing" states moving while something happens; the rate plot
        // only while it is on screen. Otherwise nothing is drawn until the model or the user
        // changes something (the engine asks for a repaint then).
        if !self.model.busy.is_empty() || !self.model.syncing.is_empty() {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(500));
        } else if self.screen == Screen::Network {
            ui.ctx().request_repaint_after(std::time::Duration::from_secs(1));
        }
    }

    /// The window's close button: syncing stops when the app quits, so a person decides once
    /// whether closing keeps it running (minimized) or quits; never silently either.
    fn on_close(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if ctx.input(|i| i.viewport().close_requested()) && !self.quitting {
            match self.model.keep_syncing_on_close {
                Some(false) => return,
                Some(true) => self.keep_syncing(&ctx),
                None => {
                    ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                    self.asking_close = true;
                }
            }
        }
        if !self.asking_close {
            return;
        }
        egui::Window::new("Close CoBox?").collapsible(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(
            &ctx,
            |ui| {
                ui.label(
                    "While CoBox runs it keeps this device's folders in sync and answers members and seeders. \
                     Quit, it stops until you start it again (or run `cobox up`).",
                );
                ui.checkbox(&mut self.remember_close, "Remember my choice (change it on the Network screen)");
                ui.horizontal_wrapped(|ui| {
                    if ui.button("Keep syncing in the background").clicked() {
                        if self.remember_close {
                            self.send(Cmd::SetOnClose(Some(true)));
                        }
                        self.asking_close = false;
                        self.keep_syncing(&ctx);
                    }
                    if ui.button("Quit and stop syncing").clicked() {
                        if self.remember_close {
                            self.send(Cmd::SetOnClose(Some(false)));
                        }
                        self.asking_close = false;
                        self.quitting = true;
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                    if ui.button("Cancel").clicked() {
                        self.asking_close = false;
                    }
                });
            },
        );
    }

    /// Close the window but not the app: minimized, still syncing.
    fn keep_syncing(&mut self, ctx: &egui::Context) {
        ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(true));
        self.tell("CoBox keeps syncing in the background; its window is minimized.".into());
    }

    /// Shortcuts, so every screen and the search are a key away: Alt+1..4 pick a screen, Ctrl+F
    /// goes to the search (on the Files tab), Escape leaves the search.
    fn shortcuts(&mut self, ui: &mut egui::Ui) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let screens = [
            (Key::Num1, Screen::Spaces),
            (Key::Num2, Screen::Seeders),
            (Key::Num3, Screen::Network),
            (Key::Num4, Screen::Activity),
        ];
        for (key, screen) in screens {
            if ui.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::ALT, key))) {
                self.screen = screen;
                if screen == Screen::Seeders {
                    self.send(Cmd::AskSeeders);
                }
            }
        }
        if ui.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::F))) {
            self.screen = Screen::Spaces;
            self.tab = Tab::Files;
            self.focus_search = true;
        }
        if !self.search.is_empty() && ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            self.search.clear();
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        self.shortcuts(ui);
        ui.horizontal(|ui| {
            ui.heading("CoBox");
            ui.separator();
            ui.selectable_value(&mut self.screen, Screen::Spaces, "Spaces");
            if ui.selectable_value(&mut self.screen, Screen::Seeders, "My seeders").clicked() {
                self.send(Cmd::AskSeeders);
            }
            ui.selectable_value(&mut self.screen, Screen::Network, "Network");
            let n = self.model.activity.len();
            ui.selectable_value(
                &mut self.screen,
                Screen::Activity,
                if n == 0 { "Activity".to_owned() } else { format!("Activity ({n})") },
            );
            ui.separator();
            let zoom = ui.ctx().zoom_factor();
            let smaller = ui.add_enabled(zoom > 0.75, egui::Button::new("A-").small()).on_hover_text("Smaller text");
            let larger = ui.add_enabled(zoom < 2.5, egui::Button::new("A+").small()).on_hover_text("Larger text");
            let step = if smaller.clicked() {
                -0.25
            } else if larger.clicked() {
                0.25
            } else {
                0.0
            };
            if step != 0.0 {
                let z = ((zoom + step) * 4.0).round() / 4.0;
                ui.ctx().set_zoom_factor(z);
                self.zoom_applied = Some(z);
                self.send(Cmd::SetZoom(z));
            }
            if !self.model.ready || !self.model.busy.is_empty() {
                ui.spinner();
                ui.label(if self.model.ready { "Working..." } else { "Starting..." });
            }
        });
        self.notice_line(ui);
    }

    /// The last result, in a line of its own that is there whether or not there is anything to
    /// say, so nothing below moves when a notice comes or goes. Good news fades after
    /// [`NOTICE_OK_S`] seconds and a problem after [`NOTICE_ERR_S`]; either can be closed.
    fn notice_line(&mut self, ui: &mut egui::Ui) {
        let height = ui.text_style_height(&egui::TextStyle::Button) + 4.0;
        // The newer of the engine's notice and the app's own (the app's are problems).
        let own = self.own_notice.clone().map(|(t, at)| (true, t, at));
        let engine = self.model.notice.clone().map(|(e, t)| (e, t, self.model.notice_at_ms));
        let newest = match (engine, own) {
            (Some(a), Some(b)) => Some(if b.2 > a.2 { b } else { a }),
            (a, b) => a.or(b),
        };
        let shown = newest.filter(|(err, _, at)| {
            let keep = if *err { NOTICE_ERR_S } else { NOTICE_OK_S } * 1000;
            *at != self.notice_closed && cobox_engine::now_ms() - at < keep
        });
        let width = ui.available_width();
        ui.allocate_ui_with_layout(egui::vec2(width, height), egui::Layout::left_to_right(egui::Align::Center), |ui| {
            ui.set_min_size(egui::vec2(width, height));
            let Some((err, text, at)) = shown else { return };
            if ui.small_button("Close").on_hover_text("Close this notice").clicked() {
                self.notice_closed = at;
            }
            let line = if err {
                egui::RichText::new(format!("Problem: {text}")).color(ui.visuals().error_fg_color)
            } else {
                egui::RichText::new(text.clone())
            };
            ui.add(egui::Label::new(line).truncate()).on_hover_text(text);
            // Drawn again when it is time for it to fade.
            let keep = if err { NOTICE_ERR_S } else { NOTICE_OK_S } * 1000;
            let left = (at + keep - cobox_engine::now_ms()).max(0) as u64;
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(left + 50));
        });
    }

    /// A device as people know it: its name from a roster, else its id's first characters.
    fn name_of(&self, device: &str) -> String {
        match self.model.names.get(device) {
            Some(n) => format!("{n} ({})", device.get(..8).unwrap_or(device)),
            None => format!("device {}", device.get(..8).unwrap_or(device)),
        }
    }
}

/// Whether this device manages the space (invites, removes, proposes and ends agreements):
/// only a manager is offered those actions.
fn manages(s: &SpaceView) -> bool {
    s.roster.as_ref().is_some_and(|r| r.members.iter().any(|m| m.me && m.role == cobox_engine::roster::Role::Manage))
}

/// A scan's progress for people.
pub(crate) fn scanning_line(sc: &cobox_engine::daemon::ScanningNow) -> String {
    format!("Checking the folder: {} of {} read", human(sc.done), human(sc.total))
}

/// A transfer's progress for people: pieces left, bytes so far, and the time left at this pace.
pub(crate) fn receiving_line(t: &cobox_engine::sync::net::ReceivingNow, now_ms: i64) -> String {
    let left = t.wanted.saturating_sub(t.got);
    let eta = match t.eta_ms(now_ms) {
        Some(ms) if ms < 60_000 => format!(", about {} s left", (ms / 1000).max(1)),
        Some(ms) => format!(", about {} min left", (ms + 59_999) / 60_000),
        None => String::new(),
    };
    format!("{left} of {} pieces left, {} received so far{eta}", t.wanted, human(t.bytes))
}

/// What someone opening CoBox for the first time needs: what the words mean, what to do.
fn first_run(ui: &mut egui::Ui) {
    ui.heading("Welcome to CoBox");
    ui.add_space(6.0);
    for (word, meaning) in [
        ("A space", "is a folder your devices keep the same, encrypted from end to end, with every past version kept."),
        (
            "A member",
            "is a device in a space: yours, or a collaborator's you invited. Members read, write or manage, as their role says.",
        ),
        (
            "A seeder",
            "is an always-on computer that keeps an encrypted copy of a space it cannot read, under an agreement you both sign. CoBox checks that it still holds it.",
        ),
    ] {
        ui.horizontal_wrapped(|ui| {
            ui.strong(word);
            ui.label(meaning);
        });
    }
    ui.add_space(6.0);
    ui.label("Start on the left: make a space from a folder, or join one with an invite code someone sent you.");
}

/// Whether a seeder (hex id) is full: its last session with this device said so, or its report
/// to this device (when this device administers it) does.
pub(crate) fn seeder_full(m: &Model, seeder: &str) -> bool {
    let said =
        m.peers.iter().any(|p| p.device == seeder && p.refusal == Some(cobox_engine::sync::proto::Refusal::SeederFull));
    let reported = m
        .seeders
        .iter()
        .any(|v| v.seeder.device.to_string() == seeder && v.report.as_ref().is_some_and(|(_, r)| r.full()));
    said || reported
}

fn state_badge(s: &SpaceState, ui: &egui::Ui) -> (String, egui::Color32) {
    let v = ui.visuals();
    match s {
        SpaceState::Joining => ("Waiting to be let in".into(), v.weak_text_color()),
        SpaceState::InSync => ("In sync".into(), egui::Color32::from_rgb(40, 150, 70)),
        SpaceState::Syncing => ("Syncing...".into(), v.hyperlink_color),
        SpaceState::Offline => ("Offline".into(), v.weak_text_color()),
        SpaceState::Conflicts(n) => (format!("{n} conflict{}", if *n == 1 { "" } else { "s" }), v.warn_fg_color),
        SpaceState::Error(_) => ("Error".into(), v.error_fg_color),
    }
}

impl eframe::App for CoboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        CoboxApp::ui(self, ui);
    }
}

/// What the space screen says of changes set aside.
fn set_aside_line(n: usize) -> String {
    let n = plural(n, "change", "changes");
    format!(
        "{n} set aside: sealed under a key this device does not hold yet, or unreadable; a manager hands keys over at their next sync"
    )
}
