//! The app's screens. It reads snapshots of the engine's [`Model`] and sends [`Cmd`]s; nothing
//! here touches the disk or the network.

use crate::engine::{Cmd, EngineHandle, Model, SpaceState, SpaceView};
use cobox_engine::{Keep, SpaceId};
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
    Seeders,
    Ignored,
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
    pub(crate) quota_gib: f64,
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
    /// A seeder policy being edited: the seeder, seeding for this device by itself, the quota.
    pub(crate) policy_edit: Option<(cobox_engine::DeviceId, bool, f64)>,
    /// The folder shown of each space ("" for its root).
    pub(crate) browse_dir: std::collections::HashMap<SpaceId, String>,
    /// The search over file names ("" shows the folder).
    pub(crate) search: String,
    /// Put the keyboard in the search box next frame (Ctrl+F).
    focus_search: bool,
    /// The invite code last put on the clipboard: it is copied once when it arrives, not on
    /// every repaint (which overwrote whatever the person copied since).
    pub(crate) copied_invite: Option<String>,
    /// The current folder's rows (or the search's hits), kept until the model, the folder or
    /// the search changes: building them walks every file.
    listing: Option<Listing>,
    /// "Restore this folder as it was": the time (or history id) and the new folder.
    pub(crate) restore_at: String,
    pub(crate) restore_into: String,
    /// Transfer limits being edited, KB/s (0: none).
    pub(crate) limits_edit: Option<(f64, f64)>,
    /// A folder picked in the native dialog (it runs on its own thread), and which field it fills.
    picked: Arc<Mutex<Option<(bool, PathBuf)>>>,
}

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

fn ago(ms: i64) -> String {
    let s = (cobox_engine::now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
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
            quota_gib: 50.0,
            days: 365,
            ignore_edit: None,
            pair_code: String::new(),
            tab_request: std::cell::Cell::new(None),
            policy_edit: None,
            limits_edit: None,
            browse_dir: Default::default(),
            search: String::new(),
            focus_search: false,
            copied_invite: None,
            listing: None,
            restore_at: String::new(),
            restore_into: String::new(),
            picked: Arc::new(Mutex::new(None)),
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
            if let Some(p) = rfd::FileDialog::new().set_title("Choose a folder").pick_folder() {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((for_new, p));
            }
        });
    }

    /// Draw one frame.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui) {
        self.model = self.engine.snapshot();
        if let Some((for_new, p)) = self.picked.lock().unwrap_or_else(|e| e.into_inner()).take() {
            *(if for_new { &mut self.new_path } else { &mut self.join_path }) = p.display().to_string();
        }
        if self.selected.is_none() {
            self.selected = self.model.spaces.first().map(|s| s.id);
        }
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
                egui::Panel::left("spaces").default_size(260.0).resizable(true).show(ui, |ui| self.space_list(ui));
                egui::CentralPanel::default().show(ui, |ui| self.space_detail(ui));
            }
            Screen::Seeders => {
                egui::CentralPanel::default()
                    .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.my_seeders(ui)));
            }
            Screen::Network => {
                egui::CentralPanel::default().show(ui, |ui| self.network(ui));
            }
            Screen::Activity => {
                egui::CentralPanel::default().show(ui, |ui| self.activity(ui));
            }
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
            if !self.model.ready || !self.model.busy.is_empty() {
                ui.spinner();
                ui.label(if self.model.ready { "Working..." } else { "Starting..." });
            }
        });
        if let Some((err, text)) = self.model.notice.clone() {
            ui.horizontal(|ui| {
                if err {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Problem: {text}"));
                } else {
                    ui.label(text.to_string());
                }
            });
        }
    }

    fn space_list(&mut self, ui: &mut egui::Ui) {
        ui.heading("Your spaces");
        if let Some(why) = &self.model.spaces_error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Problem: {why}"));
        } else if self.model.spaces.is_empty() && self.model.ready {
            ui.label("No spaces yet. Make one from a folder, or join one with an invite code.");
        }
        for s in &self.model.spaces {
            let (badge, color) = state_badge(&s.state, ui);
            ui.horizontal(|ui| {
                if ui.selectable_label(self.selected == Some(s.id), &s.name).clicked() {
                    self.selected = Some(s.id);
                }
                ui.colored_label(color, badge);
            });
        }
        if !self.model.seeds.is_empty() {
            ui.separator();
            ui.label(format!("Seeding {} spaces for others", self.model.seeds.len()));
        }
        ui.separator();
        egui::CollapsingHeader::new("New space").default_open(self.model.spaces.is_empty()).show(ui, |ui| {
            let l = ui.label("Name");
            ui.text_edit_singleline(&mut self.new_name).labelled_by(l.id);
            let l = ui.label("Folder");
            ui.horizontal(|ui| {
                ui.text_edit_singleline(&mut self.new_path).labelled_by(l.id);
                if ui.button("Browse...").clicked() {
                    self.browse(true);
                }
            });
            let ready = !self.new_name.trim().is_empty() && !self.new_path.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Create space")).clicked() {
                self.send(Cmd::Create {
                    name: self.new_name.trim().to_owned(),
                    path: PathBuf::from(self.new_path.trim()),
                });
                self.new_name.clear();
                self.new_path.clear();
            }
        });
        egui::CollapsingHeader::new("Join a space").default_open(self.model.spaces.is_empty()).show(ui, |ui| {
            let l = ui.label("Invite code");
            ui.text_edit_singleline(&mut self.join_code).labelled_by(l.id);
            let l = ui.label("Keep it in folder");
            ui.horizontal(|ui| {
                ui.text_edit_singleline(&mut self.join_path).labelled_by(l.id);
                if ui.button("Browse ...").clicked() {
                    self.browse(false);
                }
            });
            let ready = !self.join_code.trim().is_empty() && !self.join_path.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Join")).clicked() {
                self.send(Cmd::Join {
                    code: self.join_code.trim().to_owned(),
                    path: PathBuf::from(self.join_path.trim()),
                });
            }
        });
    }

    fn space_detail(&mut self, ui: &mut egui::Ui) {
        // The frame's model is shared, not copied: hold it while this space is drawn.
        let model = self.model.clone();
        let Some(s) = model.spaces.iter().find(|s| Some(s.id) == self.selected) else {
            if model.spaces.is_empty() && model.ready {
                first_run(ui);
            } else {
                ui.label("Choose a space on the left.");
            }
            return;
        };
        ui.heading(&s.name);
        ui.label(s.path.display().to_string());
        if let Some(st) = &s.status {
            ui.label(format!(
                "{} files, {}, {} past versions, last checked {}",
                st.files,
                human(st.bytes),
                st.snapshots,
                st.last_scan
                    .as_deref()
                    .map(|t| t.get(..16).unwrap_or(t).replace('T', " "))
                    .unwrap_or_else(|| "never".into())
            ));
            if !st.not_written.is_empty() {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{} files not written, retried at the next sync", st.not_written.len()),
                )
                .on_hover_text(st.not_written.join("\n"));
            }
            if !st.quarantined.is_empty() {
                // Changes waiting for a key epoch (or unreadable): their files are not shown yet.
                ui.colored_label(ui.visuals().warn_fg_color, set_aside_line(st.quarantined.len()))
                    .on_hover_text(st.quarantined.join("\n"));
            }
        }
        let (badge, color) = state_badge(&s.state, ui);
        ui.colored_label(color, badge);
        if s.state == SpaceState::Syncing {
            let r = self.model.rates.back().copied().unwrap_or([0.0; 3]);
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Syncing: receiving {:.0} KB/s, sending {:.0} KB/s", r[2], r[1]));
            });
            if let Some(t) = self.model.receiving.iter().find(|t| t.space == s.id) {
                ui.label(receiving_line(t, cobox_engine::now_ms()));
            }
        }
        if let Some(sc) = self.model.scanning.iter().find(|x| x.space == s.id) {
            ui.horizontal(|ui| {
                let part = if sc.total == 0 { 0.0 } else { sc.done as f32 / sc.total as f32 };
                ui.add(egui::ProgressBar::new(part.min(1.0)).desired_width(160.0));
                ui.label(scanning_line(sc));
            });
        }
        if let SpaceState::Error(e) = &s.state {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some((_, Some(e))) = &s.last_sync {
            ui.label(format!("Last sync attempt: {e}"));
        }
        self.replication_line(ui, s);
        ui.horizontal(|ui| {
            if ui.button("Check folder now").clicked() {
                self.send(Cmd::Scan(s.id));
            }
            if ui.button("Sync now").clicked() {
                self.send(Cmd::Sync(s.id));
            }
            if ui.button("Copy invite code").clicked() {
                self.send(Cmd::Invite { space: s.id, role: cobox_engine::roster::Role::Write });
            }
            if ui.button("Open folder").clicked() {
                // The desktop's file manager; failing to start one is not worth an error dialog.
                let _ = std::process::Command::new("xdg-open").arg(&s.path).spawn();
            }
        });
        if let Some((_, code)) = self.model.invite.clone().filter(|(id, _)| *id == s.id) {
            if self.copied_invite.as_ref() != Some(&code) {
                ui.ctx().copy_text(code.clone());
                self.copied_invite = Some(code.clone());
            }
            ui.label("Invite code (copied). It lets a device into this space: send it privately.");
            ui.add(egui::TextEdit::singleline(&mut code.as_str()).desired_width(f32::INFINITY));
        }
        ui.separator();
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Files, "Files");
            ui.selectable_value(&mut self.tab, Tab::Members, "Members");
            ui.selectable_value(&mut self.tab, Tab::Conflicts, format!("Conflicts ({})", s.conflicts.len()));
            ui.selectable_value(&mut self.tab, Tab::Seeders, "Seeders");
            ui.selectable_value(&mut self.tab, Tab::Ignored, "Ignored paths");
        });
        if let Some(t) = self.tab_request.take() {
            self.tab = t;
        }
        match self.tab {
            Tab::Files => self.files(ui, s),
            Tab::Members => self.members(ui, s),
            Tab::Conflicts => self.conflicts(ui, s),
            Tab::Seeders => self.seeders(ui, s),
            Tab::Ignored => self.ignored(ui, s),
        }
    }

    fn members(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        use cobox_engine::roster::Role;
        let Some(r) = &s.roster else {
            ui.label("The roster cannot be read right now.");
            return;
        };
        let me_manager = r.members.iter().any(|m| m.me && m.role == "manage");
        let last_seen = |device: &str| {
            self.model.peers.iter().find(|p| p.device == device).map(|p| ago(p.last_ms)).unwrap_or_else(|| "—".into())
        };
        egui::Grid::new("members").striped(true).num_columns(4).show(ui, |ui| {
            ui.strong("Member");
            ui.strong("Role");
            ui.strong("Last seen");
            ui.label("");
            ui.end_row();
            for m in &r.members {
                ui.label(if m.me { format!("{} (this device)", m.name) } else { m.name.clone() });
                ui.label(&m.role);
                ui.label(if m.me { "now".to_owned() } else { last_seen(&m.device) });
                if me_manager
                    && !m.me
                    && ui.small_button("Remove").on_hover_text(format!("Remove {}", m.name)).clicked()
                {
                    self.confirm_remove = Some((s.id, m.device.clone(), m.name.clone()));
                }
                ui.end_row();
            }
        });
        if !r.removed.is_empty() {
            ui.label(format!("Removed: {}", r.removed.join(", ")));
        }
        ui.separator();
        if me_manager {
            ui.horizontal(|ui| {
                ui.label("Invite a device as");
                for role in [Role::Read, Role::Write, Role::Manage] {
                    ui.selectable_value(&mut self.invite_role, role, role.as_str());
                }
                if ui.button("Make invite code").clicked() {
                    self.send(Cmd::Invite { space: s.id, role: self.invite_role });
                }
            });
            ui.label("A code works once, for seven days, at any member or seeder that has heard of it.");
        } else {
            ui.label("Only a manager invites and removes members.");
        }
        let pending: Vec<_> = r.invites.iter().filter(|i| i.state == "pending").collect();
        if !pending.is_empty() {
            ui.strong("Pending invites");
            for i in pending {
                ui.horizontal(|ui| {
                    let who = i.name.as_deref().map(|n| format!(" for {n}")).unwrap_or_default();
                    ui.label(format!("{} invite{who}, until {}", i.role, i.expires));
                    if me_manager && ui.small_button("Cancel invite").clicked() {
                        self.send(Cmd::CancelInvite { space: s.id, id: i.id.clone() });
                    }
                });
            }
        }
        if let Some((space, device, name)) = self.confirm_remove.clone().filter(|(id, _, _)| *id == s.id) {
            egui::Window::new("Remove a member").collapsible(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(ui.ctx(), |ui| {
                ui.label(format!("Remove {name} from {}?", s.name));
                ui.label(
                    "Members and seeders stop syncing with it as soon as they hear of the removal, and what is written from now on is sealed under a new key it never gets. Removal cannot take back what it already has: files it received stay readable to it.",
                );
                ui.horizontal(|ui| {
                    if ui.button("Remove device").clicked() {
                        self.send(Cmd::RemoveMember { space, device: device.clone() });
                        self.confirm_remove = None;
                    }
                    if ui.button("Keep it").clicked() {
                        self.confirm_remove = None;
                    }
                });
            });
        }
    }

    fn ignored(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        ui.label(
            "Paths matching these rules stay on each device: never sent, never written, never deleted by a \
             sync. One pattern per line, as in .gitignore: *.tmp, node_modules/, /only-at-the-top, !keep.log. \
             The rules are saved in the folder as .coboxignore and shared with the space.",
        );
        // The user's text stays until saved (and seen saved) or undone; otherwise the editor
        // follows the rules on disk, which a sync may change.
        let theirs = matches!(&self.ignore_edit, Some((id, text, edit)) if *id == s.id
            && (*edit == Edit::Edited || (*edit == Edit::Saving && *text != s.ignores)));
        if !theirs {
            self.ignore_edit = Some((s.id, s.ignores.clone(), Edit::Clean));
        }
        let Some((_, text, edit)) = self.ignore_edit.as_mut() else { return };
        let box_ = egui::TextEdit::multiline(text)
            .code_editor()
            .desired_rows(8)
            .desired_width(f32::INFINITY)
            .hint_text("*.tmp\nnode_modules/");
        if ui.add(box_).changed() {
            *edit = Edit::Edited;
        }
        let changed = *text != s.ignores;
        let rules = text.clone();
        ui.horizontal(|ui| {
            if ui.add_enabled(changed, egui::Button::new("Save rules")).clicked() {
                self.ignore_edit = Some((s.id, rules.clone(), Edit::Saving));
                self.send(Cmd::SetIgnores { space: s.id, rules });
            }
            if ui.add_enabled(changed, egui::Button::new("Undo changes")).clicked() {
                self.ignore_edit = Some((s.id, s.ignores.clone(), Edit::Clean));
            }
        });
    }

    fn replication_line(&self, ui: &mut egui::Ui, s: &SpaceView) {
        let replicas = s.status.as_ref().map_or(0, |st| st.replicas);
        let target = s.status.as_ref().map_or(0, |st| st.replicas_target);
        let last = s.agreements.iter().filter_map(|a| a.last_audit.as_ref()).map(|a| a.time_ms).max();
        let text = format!(
            "{replicas} verified {}{}",
            if replicas == 1 { "copy" } else { "copies" },
            last.map(|t| format!(", last audit {}", ago(t))).unwrap_or_default()
        );
        let strong = egui::RichText::new(text).size(18.0).strong();
        // No seeder yet is where every space starts, not a fault: said calmly, with what a
        // seeder is and how to get one.
        let no_seeder =
            s.agreements.iter().all(|a| a.state == "revoked" || a.state == "expired" || a.state == "invalid");
        if no_seeder && replicas < target {
            ui.label(strong);
            ui.label(format!(
                "This space lives on your devices only. A seeder, an always-on computer of your collective or \
                 a friend, can keep an encrypted copy it cannot read; CoBox checks it still holds it. This space \
                 asks for {target} such {}.",
                if target == 1 { "copy" } else { "copies" }
            ));
            if ui.button("Add a seeder").clicked() {
                self.tab_request.set(Some(Tab::Seeders));
            }
            return;
        }
        if replicas < target {
            ui.colored_label(ui.visuals().warn_fg_color, strong);
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Below this space's target of {target}: add a seeder or check the ones you have."),
            );
        } else {
            ui.label(strong);
        }
    }

    fn files(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        if let Some((space, path, history)) = self.model.file_history.clone().filter(|(sp, _, _)| *sp == s.id) {
            ui.horizontal(|ui| {
                ui.strong(format!("History of {path}"));
                if ui.button("Close history").clicked() {
                    Arc::make_mut(&mut self.model).file_history = None;
                    Arc::make_mut(&mut self.engine.model.lock().unwrap_or_else(|e| e.into_inner())).file_history = None;
                }
            });
            egui::Grid::new("history").striped(true).show(ui, |ui| {
                for (i, h) in history.iter().enumerate() {
                    ui.label(h.time.get(..16).unwrap_or(&h.time).replace('T', " "));
                    ui.label(h.action.clone().unwrap_or_default());
                    ui.monospace(h.device.get(..8).unwrap_or(&h.device));
                    if i == 0 {
                        ui.label("current");
                    } else if h.action.as_deref() != Some("deleted")
                        && ui.button(format!("Restore version {}", &h.id[..8])).clicked()
                    {
                        self.send(Cmd::RestoreVersion { space, path: path.clone(), history_id: h.id.clone() });
                    }
                    ui.end_row();
                }
            });
            ui.separator();
        }
        if s.files.is_empty() {
            ui.label("No files yet. Put some in the folder; CoBox picks them up.");
            return;
        }
        let dir = self.browse_dir.get(&s.id).cloned().unwrap_or_default();
        ui.horizontal(|ui| {
            let l = ui.label("Search");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut self.search).hint_text("a file name (Ctrl+F)").desired_width(240.0),
                )
                .labelled_by(l.id);
            if std::mem::take(&mut self.focus_search) {
                field.request_focus();
            }
            if !self.search.is_empty() && ui.button("Clear search").clicked() {
                self.search.clear();
            }
        });
        let searching = !self.search.trim().is_empty();
        if !searching {
            ui.horizontal_wrapped(|ui| {
                for (i, (path, name)) in crate::browse::crumbs(&s.name, &dir).into_iter().enumerate() {
                    if i > 0 {
                        ui.label("/");
                    }
                    if path == dir {
                        ui.strong(name);
                    } else if ui.link(name).clicked() {
                        self.browse_dir.insert(s.id, path);
                    }
                }
            });
            self.restore_folder(ui, s, &dir);
        }
        let rows = self.rows(s, &dir);
        if searching {
            ui.label(format!(
                "{} file{} named like \"{}\"{}",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" },
                self.search.trim(),
                if rows.len() >= SEARCH_MAX { " (the first ones)" } else { "" }
            ));
        }
        let row_h = ui.text_style_height(&egui::TextStyle::Body) + 6.0;
        let mut open_dir = None;
        egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_h, rows.len(), |ui, range| {
            egui::Grid::new("files").striped(true).num_columns(5).show(ui, |ui| {
                ui.strong("Name");
                ui.strong("Size");
                ui.strong("Modified");
                ui.strong("Changed by");
                ui.label("");
                ui.end_row();
                for r in &rows[range] {
                    match r {
                        crate::browse::Row::Folder { name, files, bytes } => {
                            if ui.button(format!("{name}/")).on_hover_text(format!("Open the folder {name}")).clicked()
                            {
                                open_dir = Some(if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") });
                            }
                            ui.label(human(*bytes));
                            ui.label(format!("{files} file{}", if *files == 1 { "" } else { "s" }));
                            ui.label("");
                            ui.label("");
                        }
                        crate::browse::Row::File(i) => {
                            let Some(f) = s.files.get(*i) else { continue };
                            let name =
                                if searching { f.path.as_str() } else { f.path.rsplit('/').next().unwrap_or(&f.path) };
                            ui.label(name);
                            ui.label(human(f.size));
                            ui.label(&f.modified);
                            if self.model.device.starts_with(&f.device) {
                                ui.label("this device");
                            } else {
                                ui.label(&f.device);
                            }
                            ui.horizontal(|ui| {
                                if ui
                                    .small_button("History")
                                    .on_hover_text(format!("Past versions of {}", f.path))
                                    .clicked()
                                {
                                    self.send(Cmd::FileHistory { space: s.id, path: f.path.clone() });
                                }
                                let on_disk = s.path.join(&f.path);
                                if ui.small_button("Open").on_hover_text(format!("Open {}", f.path)).clicked() {
                                    let _ = open::that_detached(&on_disk);
                                }
                                if ui.small_button("Show in folder").clicked() {
                                    let _ = open::that_detached(on_disk.parent().unwrap_or(&s.path));
                                }
                            });
                        }
                    }
                    ui.end_row();
                }
            });
        });
        if let Some(d) = open_dir {
            self.browse_dir.insert(s.id, d);
        }
    }

    /// The rows shown: the search's hits, or the folder's listing; rebuilt only when what they
    /// come from changed.
    fn rows(&mut self, s: &SpaceView, dir: &str) -> Arc<Vec<crate::browse::Row>> {
        let model = Arc::downgrade(&self.model);
        let search = self.search.trim().to_owned();
        if let Some(l) = &self.listing
            && l.model.ptr_eq(&model)
            && l.space == s.id
            && l.dir == dir
            && l.search == search
        {
            return l.rows.clone();
        }
        let rows = if search.is_empty() {
            crate::browse::listing(&s.files, dir)
        } else {
            crate::browse::search(&s.files, &search, SEARCH_MAX).into_iter().map(crate::browse::Row::File).collect()
        };
        let rows = Arc::new(rows);
        self.listing = Some(Listing { model, space: s.id, dir: dir.to_owned(), search, rows: rows.clone() });
        rows
    }

    /// "Restore this folder as it was": into a new folder beside the space's, as of a time.
    fn restore_folder(&mut self, ui: &mut egui::Ui, s: &SpaceView, dir: &str) {
        let what = if dir.is_empty() { "this space".to_owned() } else { format!("the folder {dir}") };
        egui::CollapsingHeader::new(format!("Restore {what} as it was...")).id_salt(("restore-folder", s.id)).show(
            ui,
            |ui| {
                if self.restore_at.is_empty() {
                    self.restore_at = cobox_engine::util::rfc3339(cobox_engine::now_ms() - 86_400_000);
                }
                if self.restore_into.is_empty() {
                    let base = s.path.parent().unwrap_or(&s.path);
                    let name = dir.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(&s.name);
                    self.restore_into = base.join(format!("{name} (restored)")).display().to_string();
                }
                ui.horizontal(|ui| {
                    let l = ui.label("As of");
                    ui.text_edit_singleline(&mut self.restore_at).labelled_by(l.id);
                    ui.weak("a time (2026-11-24T10:00:00Z) or a version id");
                });
                ui.horizontal(|ui| {
                    let l = ui.label("Into the new folder");
                    ui.text_edit_singleline(&mut self.restore_into).labelled_by(l.id);
                });
                if ui.button(format!("Restore {what}")).clicked() {
                    self.send(Cmd::RestoreFolder {
                        space: s.id,
                        dir: dir.to_owned(),
                        at: self.restore_at.clone(),
                        into: PathBuf::from(self.restore_into.trim()),
                    });
                }
            },
        );
    }

    fn conflicts(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        if s.conflicts.is_empty() {
            ui.label("No conflicts. When two devices change the same file while apart, both versions show up here.");
            return;
        }
        for c in &s.conflicts {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.strong(&c.original);
                ui.label(format!("This version: {}, modified {}", human(c.original_size), c.original_modified));
                ui.label(format!("Other version: {}, modified {} ({})", human(c.copy_size), c.copy_modified, c.copy));
                ui.horizontal_wrapped(|ui| {
                    if ui.button("Keep this version").clicked() {
                        self.send(Cmd::Resolve { space: s.id, copy: c.copy.clone(), keep: Keep::Current });
                    }
                    if ui.button("Keep the other version").clicked() {
                        self.send(Cmd::Resolve { space: s.id, copy: c.copy.clone(), keep: Keep::Copy });
                    }
                    if ui.button("Keep both").clicked() {
                        self.send(Cmd::Resolve { space: s.id, copy: c.copy.clone(), keep: Keep::Both });
                    }
                });
            });
        }
    }

    fn seeders(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        ui.horizontal(|ui| {
            ui.label("Target:");
            let mut target = s.status.as_ref().map_or(0, |st| st.replicas_target);
            if ui.add(egui::DragValue::new(&mut target).range(0..=10).suffix(" verified copies")).changed() {
                self.send(Cmd::SetTarget { space: s.id, copies: target });
            }
            if ui.button("Check seeders now").clicked() {
                self.send(Cmd::Audit(s.id));
            }
        });
        if s.agreements.is_empty() {
            ui.label("No seeders yet. A seeder keeps an encrypted copy it cannot read; propose one below.");
        } else {
            egui::Grid::new("agreements").striped(true).show(ui, |ui| {
                for h in ["Seeder", "Quota", "Until", "State", "Signatures", "Last check", ""] {
                    ui.strong(h);
                }
                ui.end_row();
                for a in &s.agreements {
                    ui.monospace(&a.seeder[..8]);
                    ui.label(human(a.quota));
                    ui.label(a.end.get(..10).unwrap_or(&a.end));
                    match &a.answer {
                        Some(why) => ui.label(&a.state).on_hover_text(format!("the seeder answered: {why}")),
                        None => ui.label(&a.state),
                    };
                    if a.signatures_ok {
                        ui.label("verified");
                    } else {
                        ui.colored_label(
                            ui.visuals().error_fg_color,
                            format!("INVALID: {}", a.problem.clone().unwrap_or_default()),
                        );
                    }
                    // A seeder out of disk is shown as such, not as a failed check.
                    if seeder_full(&self.model, &a.seeder) {
                        ui.colored_label(ui.visuals().error_fg_color, "seeder full");
                    } else {
                        match &a.last_audit {
                            Some(x) => ui.label(format!("{} ({}/{})", ago(x.time_ms), x.passed, x.challenged)),
                            None => ui.label("never"),
                        };
                    }
                    if (a.state == "active" || a.state == "proposed")
                        && ui.button(format!("Revoke {}", &a.id[..8])).clicked()
                    {
                        self.send(Cmd::Revoke(a.id.clone()));
                    }
                    ui.end_row();
                }
            });
        }
        ui.separator();
        ui.strong("Add a seeder");
        ui.label(
            "1. Ask the seeder's operator for its id (`cobox id` on it). 2. Choose how much it may hold and for how \
             long, and propose. 3. Send the seed code to the operator, who runs `cobox seed CODE`; a seeder that \
             already accepts your proposals by itself (My seeders) needs no code.",
        );
        let l = ui.label("Seeder id");
        ui.text_edit_singleline(&mut self.seeder_id).labelled_by(l.id);
        ui.horizontal(|ui| {
            ui.label("Quota");
            ui.add(egui::DragValue::new(&mut self.quota_gib).range(0.001..=100_000.0).suffix(" GiB"));
            ui.label("for");
            ui.add(egui::DragValue::new(&mut self.days).range(1..=3650).suffix(" days"));
        });
        if ui.add_enabled(!self.seeder_id.trim().is_empty(), egui::Button::new("Propose")).clicked() {
            self.send(Cmd::Propose {
                space: s.id,
                seeder: self.seeder_id.trim().to_owned(),
                quota: (self.quota_gib * (1u64 << 30) as f64) as u64,
                days: self.days,
            });
        }
        if let Some(code) = &self.model.seed_code {
            ui.label("Seed code for the seeder (run `cobox seed CODE` there):");
            let mut c = code.as_str();
            ui.add(egui::TextEdit::singleline(&mut c).desired_width(f32::INFINITY));
            if ui.button("Copy seed code").clicked() {
                ui.ctx().copy_text(code.clone());
            }
        }
    }

    /// Seeders this device administers: how each is doing, and its standing policy.
    fn my_seeders(&mut self, ui: &mut egui::Ui) {
        ui.heading("Seeders you administer");
        ui.label(
            "A seeder is an always-on computer (a server, a Raspberry Pi) that keeps encrypted copies of \
             spaces it cannot read. Pair with yours to see its disk, what it holds and for whom, and to \
             set whose proposals it accepts by itself.",
        );
        ui.horizontal(|ui| {
            let l = ui.label("Pairing code");
            ui.add(egui::TextEdit::singleline(&mut self.pair_code).hint_text("cobox-pair-...")).labelled_by(l.id);
            if ui.add_enabled(!self.pair_code.trim().is_empty(), egui::Button::new("Pair")).clicked() {
                let code = std::mem::take(&mut self.pair_code).trim().to_owned();
                self.send(Cmd::PairSeeder(code));
            }
            if ui.button("Refresh").clicked() {
                self.send(Cmd::AskSeeders);
            }
        });
        ui.weak("The seeder's `cobox up` prints its pairing code; `cobox seeder pairing-code` there makes a new one.");
        if self.model.seeders.is_empty() {
            ui.label("No seeder paired yet.");
        }
        let model = self.model.clone();
        for v in &model.seeders {
            ui.separator();
            ui.horizontal(|ui| {
                ui.strong(format!("Seeder {}", v.seeder.device.short()));
                match (&v.report, &v.error) {
                    (_, Some(e)) => {
                        ui.colored_label(ui.visuals().warn_fg_color, format!("not reached: {e}"));
                    }
                    (Some((_, r)), None) if r.full() => {
                        ui.colored_label(ui.visuals().error_fg_color, "seeder full");
                    }
                    (Some((at, _)), None) => {
                        ui.label(format!("answered {}", ago(*at)));
                    }
                    (None, None) => {
                        ui.spinner();
                    }
                }
            });
            let Some((_, r)) = &v.report else { continue };
            let free = r.disk_free.map_or_else(|| "unknown".to_owned(), human);
            ui.label(format!("Disk: {} held, {free} free", human(r.held_bytes)));
            self.policy(ui, r);
            if !r.owners.is_empty() {
                ui.strong("Quota per owner");
                egui::Grid::new(("owners", r.device)).striped(true).show(ui, |ui| {
                    for o in &r.owners {
                        let me = o.owner.to_string() == model.device;
                        ui.monospace(if me { "this device".to_owned() } else { o.owner.short() });
                        ui.label(format!("{} of {}", human(o.used), human(o.quota)));
                        ui.end_row();
                    }
                });
            }
            ui.strong(format!("Spaces held ({})", r.spaces.len()));
            egui::Grid::new(("held", r.device)).striped(true).show(ui, |ui| {
                for h in ["Space", "Held", "Agreements", "Last audit"] {
                    ui.strong(h);
                }
                ui.end_row();
                for sp in &r.spaces {
                    ui.monospace(sp.space.short());
                    ui.label(format!("{} in {} blobs", human(sp.bytes), sp.blobs));
                    let states: Vec<String> =
                        sp.agreements.iter().map(|a| format!("{} {}", a.state, human(a.quota))).collect();
                    ui.label(states.join(", "));
                    ui.label(
                        sp.last_audit
                            .as_ref()
                            .map_or("never".into(), |a| format!("{} ({}/{})", ago(a.at_ms), a.passed, a.challenged)),
                    );
                    ui.end_row();
                }
            });
            egui::CollapsingHeader::new(format!("Recent errors ({})", r.errors.len()))
                .id_salt(("errors", r.device))
                .show(ui, |ui| {
                    for e in r.errors.iter().rev() {
                        ui.label(format!("{}  {}", ago(e.at_ms), e.text));
                    }
                });
            egui::CollapsingHeader::new(format!("Remote actions ({})", r.actions.len()))
                .id_salt(("actions", r.device))
                .show(ui, |ui| {
                    for e in r.actions.iter().rev() {
                        ui.label(format!("{}  {}", ago(e.at_ms), e.text));
                    }
                });
        }
    }

    /// A seeder's standing policy, and its editor.
    fn policy(&mut self, ui: &mut egui::Ui, r: &cobox_engine::admin::Report) {
        let me: Option<cobox_engine::DeviceId> = self.model.device.parse().ok();
        let for_me = me.is_some_and(|d| r.policy.seed_for.contains(&d));
        let others = r.policy.seed_for.iter().filter(|d| Some(**d) != me).count();
        ui.label(format!(
            "Accepts by itself: proposals from {}{} up to {}",
            if for_me { "this device" } else { "no one here" },
            if others > 0 { format!(" and {others} other devices") } else { String::new() },
            human(r.policy.max_quota)
        ));
        let Some((d, mut mine, mut gib)) = self.policy_edit else {
            if ui.button(format!("Change policy of {}", r.device.short())).clicked() {
                self.policy_edit = Some((r.device, for_me, r.policy.max_quota as f64 / (1u64 << 30) as f64));
            }
            return;
        };
        if d != r.device {
            return;
        }
        ui.checkbox(&mut mine, "Accept this device's proposals by itself");
        ui.horizontal(|ui| {
            ui.label("Largest quota");
            ui.add(egui::DragValue::new(&mut gib).range(0.001..=100_000.0).suffix(" GiB"));
        });
        self.policy_edit = Some((d, mine, gib));
        ui.horizontal(|ui| {
            if ui.button("Save policy").clicked() {
                let mut seed_for: Vec<_> = r.policy.seed_for.iter().copied().filter(|x| Some(*x) != me).collect();
                if mine && let Some(me) = me {
                    seed_for.push(me);
                }
                let policy = cobox_engine::admin::Policy { seed_for, max_quota: (gib * (1u64 << 30) as f64) as u64 };
                self.engine.send(Cmd::SetSeederPolicy { seeder: r.device, policy });
                self.policy_edit = None;
            } else if ui.button("Cancel").clicked() {
                self.policy_edit = None;
            }
        });
    }

    /// A device as people know it: its name from a roster, else its id's first characters.
    fn name_of(&self, device: &str) -> String {
        match self.model.names.get(device) {
            Some(n) => format!("{n} ({})", device.get(..8).unwrap_or(device)),
            None => format!("device {}", device.get(..8).unwrap_or(device)),
        }
    }

    /// The activity log: news the app also raised as desktop notifications, newest first.
    fn activity(&mut self, ui: &mut egui::Ui) {
        ui.heading("Activity");
        if self.model.activity.is_empty() {
            ui.label(
                "Nothing to tell yet. New conflicts, failed audits, full seeders and removed members show up here.",
            );
            return;
        }
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            egui::Grid::new("activity").striped(true).show(ui, |ui| {
                for (at, text) in self.model.activity.iter().rev() {
                    ui.label(cobox_engine::util::rfc3339(*at).get(..16).unwrap_or("").replace('T', " "));
                    ui.label(text);
                    ui.end_row();
                }
            });
        });
    }

    /// This device's upload and download limits, and their editor.
    fn limits(&mut self, ui: &mut egui::Ui) {
        let (up, down) = self.model.limits;
        let show = |b: u64| if b == 0 { "no limit".to_owned() } else { format!("{}/s", human(b)) };
        ui.label(format!("Upload: {}, download: {} (all peers together)", show(up), show(down)));
        let Some((mut u, mut d)) = self.limits_edit else {
            if ui.button("Change limits").clicked() {
                self.limits_edit = Some((up as f64 / 1000.0, down as f64 / 1000.0));
            }
            return;
        };
        ui.horizontal(|ui| {
            let l = ui.label("Upload limit");
            ui.add(egui::DragValue::new(&mut u).range(0.0..=10_000_000.0).suffix(" KB/s")).labelled_by(l.id);
            let l = ui.label("Download limit");
            ui.add(egui::DragValue::new(&mut d).range(0.0..=10_000_000.0).suffix(" KB/s")).labelled_by(l.id);
            ui.weak("0: no limit");
        });
        self.limits_edit = Some((u, d));
        ui.horizontal(|ui| {
            if ui.button("Save limits").clicked() {
                self.engine.send(Cmd::SetLimits { up: (u * 1000.0) as u64, down: (d * 1000.0) as u64 });
                self.limits_edit = None;
            } else if ui.button("Cancel").clicked() {
                self.limits_edit = None;
            }
        });
    }

    fn network(&mut self, ui: &mut egui::Ui) {
        ui.heading("This device");
        ui.monospace(&self.model.address);
        if let Some(st) = &self.model.stats {
            ui.label(format!(
                "You seed {} for others; others seed {} for you. Share ratio: {}",
                human(st.seeded_for_others),
                human(st.seeded_by_others),
                st.share_ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
            ));
        }
        self.limits(ui);
        ui.separator();
        ui.heading("Transfer rate");
        let sent: Vec<[f64; 2]> = self.model.rates.iter().map(|r| [r[0], r[1]]).collect();
        let received: Vec<[f64; 2]> = self.model.rates.iter().map(|r| [r[0], r[2]]).collect();
        egui_plot::Plot::new("rates")
            .height(180.0)
            .legend(egui_plot::Legend::default())
            .x_axis_label("seconds")
            .y_axis_label("KB/s")
            .show(ui, |p| {
                p.line(egui_plot::Line::new("sent", sent));
                p.line(egui_plot::Line::new("received", received));
            });
        if let Some(st) = &self.model.stats
            && !st.peers.is_empty()
        {
            ui.heading("Seeding, per peer");
            let bars =
                |f: &dyn Fn(&cobox_engine::agreement_service::PeerShare) -> u64, dx: f64| -> Vec<egui_plot::Bar> {
                    st.peers
                        .iter()
                        .enumerate()
                        .map(|(i, (id, p))| {
                            egui_plot::Bar::new(i as f64 + dx, f(p) as f64 / 1e6).width(0.35).name(self.name_of(id))
                        })
                        .collect()
                };
            let (ours, theirs) = (bars(&|p| p.seeded_for_them, -0.2), bars(&|p| p.seeded_for_us, 0.2));
            // Each pair of bars is labelled with its peer's name, not its index.
            let labels: Vec<String> = st.peers.keys().map(|id| self.name_of(id)).collect();
            egui_plot::Plot::new("share")
                .height(140.0)
                .legend(egui_plot::Legend::default())
                .y_axis_label("MB")
                .x_axis_formatter(move |mark, _| {
                    let i = mark.value.round();
                    match labels.get(i as usize) {
                        Some(l) if (mark.value - i).abs() < 1e-9 && i >= 0.0 => l.clone(),
                        _ => String::new(),
                    }
                })
                .show(ui, |p| {
                    p.bar_chart(egui_plot::BarChart::new("we seed for them", ours));
                    p.bar_chart(egui_plot::BarChart::new("they seed for us", theirs));
                });
            for (id, p) in &st.peers {
                ui.label(format!(
                    "{} - we seed {} for them, they seed {} for us",
                    self.name_of(id),
                    human(p.seeded_for_them),
                    human(p.seeded_for_us)
                ));
            }
        }
        ui.separator();
        ui.heading("Peers");
        if self.model.peers.is_empty() {
            ui.label("No peer contacted yet.");
        }
        egui::Grid::new("peers").striped(true).show(ui, |ui| {
            for p in &self.model.peers {
                ui.label(self.name_of(&p.device));
                ui.label(ago(p.last_ms));
                if p.ok {
                    ui.label("connected");
                } else {
                    ui.colored_label(ui.visuals().warn_fg_color, p.error.clone().unwrap_or_default());
                }
                ui.end_row();
            }
        });
    }
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
    format!(
        "{n} change(s) set aside: sealed under a key this device does not hold yet, or unreadable; a manager hands keys over at their next sync"
    )
}
