//! The Spaces screen: the list, a space's page (state, replication, members, ignored paths)
//! and its conflicts.

use super::*;

impl CoboxApp {
    pub(super) fn space_list(&mut self, ui: &mut egui::Ui) {
        self.device_name_box(ui);
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

    pub(super) fn space_detail(&mut self, ui: &mut egui::Ui) {
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
                "{}, {}, {}, last checked {}",
                plural(st.files as usize, "file", "files"),
                human(st.bytes),
                plural(st.snapshots as usize, "past version", "past versions"),
                st.last_scan
                    .as_deref()
                    .map(|t| t.get(..16).unwrap_or(t).replace('T', " "))
                    .unwrap_or_else(|| "never".into())
            ));
            if !st.not_written.is_empty() {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{} not written, retried at the next sync", plural(st.not_written.len(), "file", "files")),
                )
                .on_hover_text(st.not_written.join("\n"));
            }
            if !st.quarantined.is_empty() {
                // Changes waiting for a key epoch (or unreadable): their files are not shown yet.
                ui.colored_label(ui.visuals().warn_fg_color, set_aside_line(st.quarantined.len()))
                    .on_hover_text(st.quarantined.join("\n"));
            }
        }
        // The state and what is under way, in a block of fixed height: a sync or a scan that
        // starts or ends never moves the buttons and tabs below (a click would land elsewhere).
        let row = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y + 4.0;
        let width = ui.available_width();
        ui.allocate_ui_with_layout(egui::vec2(width, 4.0 * row), egui::Layout::top_down(egui::Align::Min), |ui| {
            ui.set_min_size(egui::vec2(width, 4.0 * row));
            self.state_block(ui, s);
        });
        let me_manager = manages(s);
        ui.horizontal(|ui| {
            if ui.button("Check folder now").clicked() {
                self.send(Cmd::Scan(s.id));
            }
            if ui.button("Sync now").clicked() {
                self.send(Cmd::Sync(s.id));
            }
            // Only a manager invites: nobody else is shown a button that would be refused.
            if me_manager && ui.button("Invite someone").clicked() {
                self.tab = Tab::Members;
            }
            if ui.button("Open folder").clicked() {
                self.open_path(&s.path);
            }
        });
        ui.separator();
        // Wrapped: at a large text size the tabs take two lines rather than lose the last ones.
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Files, "Files");
            ui.selectable_value(&mut self.tab, Tab::Members, "Members");
            ui.selectable_value(&mut self.tab, Tab::Conflicts, format!("Conflicts ({})", s.conflicts.len()));
            ui.selectable_value(&mut self.tab, Tab::History, "History");
            ui.selectable_value(&mut self.tab, Tab::Seeders, "Seeders");
            ui.selectable_value(&mut self.tab, Tab::Ignored, "Ignored paths");
            ui.selectable_value(&mut self.tab, Tab::Recovery, "Recovery");
        });
        self.recovering_banner(ui, s);
        if let Some(t) = self.tab_request.take() {
            self.tab = t;
        }
        match self.tab {
            Tab::Files => self.files(ui, s),
            Tab::Members => self.members(ui, s),
            Tab::Conflicts => self.conflicts(ui, s),
            Tab::History => self.history(ui, s),
            Tab::Seeders => self.seeders(ui, s),
            Tab::Ignored => self.ignored(ui, s),
            Tab::Recovery => self.recovery(ui, s),
        }
    }

    /// What this device is called: asked for until it has a name (members see it, not an id),
    /// and changed from here after.
    fn device_name_box(&mut self, ui: &mut egui::Ui) {
        if !self.model.ready {
            return;
        }
        match self.model.device_name.clone() {
            Some(name) if self.device_name_edit.is_empty() => {
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("This device: {name}"));
                    if ui.small_button("Rename this device").clicked() {
                        self.device_name_edit = name;
                    }
                });
            }
            named => {
                if named.is_none() {
                    ui.strong("What should others call this device?");
                }
                let l = ui.label("This device's name");
                ui.add(egui::TextEdit::singleline(&mut self.device_name_edit).hint_text("e.g. Ana's laptop"))
                    .labelled_by(l.id);
                let name = self.device_name_edit.trim().to_owned();
                if ui.add_enabled(!name.is_empty(), egui::Button::new("Name this device")).clicked() {
                    self.send(Cmd::NameDevice(name));
                    self.device_name_edit.clear();
                }
            }
        }
        ui.separator();
    }

    /// The space's state, a sync or scan under way, the last sync's error, and its copies.
    fn state_block(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
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
    }

    pub(super) fn members(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        use cobox_engine::roster::Role;
        let Some(r) = &s.roster else {
            ui.label("The roster cannot be read right now.");
            return;
        };
        let me_manager = manages(s);
        let model = self.model.clone();
        let last_seen = |device: &str| {
            model.peers.iter().find(|p| p.device == device).map(|p| ago(p.last_ms)).unwrap_or_else(|| "—".into())
        };
        egui::Grid::new("members").striped(true).num_columns(4).show(ui, |ui| {
            ui.strong("Member");
            ui.strong("Role");
            ui.strong("Last seen");
            ui.label("");
            ui.end_row();
            for m in &r.members {
                let editing = self.renaming.as_ref().is_some_and(|(sp, d, _)| *sp == s.id && *d == m.device);
                if editing {
                    if let Some((_, _, name)) = self.renaming.as_mut() {
                        ui.add(egui::TextEdit::singleline(name).desired_width(160.0));
                    }
                } else {
                    ui.label(if m.me { format!("{} (this device)", m.name) } else { m.name.clone() })
                        .on_hover_text(format!("device {}", m.device));
                }
                ui.label(m.role.as_str());
                ui.label(if m.me { "now".to_owned() } else { last_seen(&m.device) });
                ui.horizontal(|ui| {
                    if editing {
                        if ui.small_button("Save name").clicked()
                            && let Some((space, device, name)) = self.renaming.take()
                            && !name.trim().is_empty()
                        {
                            self.send(Cmd::RenameMember { space, device, name: name.trim().to_owned() });
                        }
                        if ui.small_button("Keep the name").clicked() {
                            self.renaming = None;
                        }
                    } else if (me_manager || m.me)
                        && ui.small_button("Rename").on_hover_text(format!("Rename {}", m.name)).clicked()
                    {
                        self.renaming = Some((s.id, m.device.clone(), m.name.clone()));
                    }
                    if me_manager
                        && !m.me
                        && ui.small_button("Remove").on_hover_text(format!("Remove {}", m.name)).clicked()
                    {
                        self.confirm_remove = Some((s.id, m.device.clone(), m.name.clone()));
                    }
                });
                ui.end_row();
            }
        });
        if !r.removed.is_empty() {
            ui.label(format!("Removed: {}", r.removed.join(", ")));
        }
        ui.separator();
        if me_manager {
            ui.strong("Invite someone");
            ui.horizontal_wrapped(|ui| {
                ui.label("They may");
                for (role, words) in
                    [(Role::Read, "read"), (Role::Write, "read and write"), (Role::Manage, "read, write and manage")]
                {
                    ui.selectable_value(&mut self.invite_role, role, words)
                        .on_hover_text(format!("the {} role", role.as_str()));
                }
            });
            ui.horizontal_wrapped(|ui| {
                let l = ui.label("Their name (shown to members)");
                ui.add(
                    egui::TextEdit::singleline(&mut self.invite_name)
                        .hint_text("e.g. Ana's laptop")
                        .desired_width(200.0),
                )
                .labelled_by(l.id);
                let l = ui.label("The code works for");
                ui.add(egui::DragValue::new(&mut self.invite_days).range(1..=90)).labelled_by(l.id);
                ui.label(if self.invite_days == 1 { "day" } else { "days" });
            });
            if ui.button("Make invite code").clicked() {
                let name = self.invite_name.trim();
                self.send(Cmd::Invite {
                    space: s.id,
                    role: self.invite_role,
                    name: (!name.is_empty()).then(|| name.to_owned()),
                    days: self.invite_days.max(1),
                });
                self.invite_name.clear();
            }
            if let Some((_, code)) = self.model.invite.clone().filter(|(id, _)| *id == s.id) {
                ui.label("The invite code lets one device into this space: send it privately.");
                ui.add(egui::TextEdit::singleline(&mut code.as_str()).desired_width(f32::INFINITY));
                self.copy_button(ui, "Copy invite code", &code);
            }
            ui.label("A code works once, at any member or seeder that has heard of it.");
        } else {
            ui.label("Only a manager invites and removes members.");
        }
        let pending: Vec<_> =
            r.invites.iter().filter(|i| i.state == cobox_engine::members::InviteState::Pending).collect();
        if !pending.is_empty() {
            ui.strong("Pending invites");
            for i in pending {
                ui.horizontal(|ui| {
                    let who = i.name.as_deref().map(|n| format!(" for {n}")).unwrap_or_default();
                    ui.label(format!("{} invite{who}, works until {}", i.role.as_str(), local_time(&i.expires)));
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

    pub(super) fn ignored(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
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

    pub(super) fn replication_line(&self, ui: &mut egui::Ui, s: &SpaceView) {
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
        let no_seeder = s.agreements.iter().all(|a| {
            a.state == cobox_engine::agreements::State::Revoked
                || a.state == cobox_engine::agreements::State::Expired
                || a.state == cobox_engine::agreements::State::Invalid
        });
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

    pub(super) fn conflicts(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        // "Ana's laptop and Bo's desk", or one name when both versions came from one device.
        fn both_names(c: &crate::model::ConflictView) -> String {
            if c.copy_by == c.original_by || c.original_by.is_empty() {
                format!("{} (twice)", c.copy_by)
            } else {
                format!("{} and {}", c.original_by, c.copy_by)
            }
        }
        if s.conflicts.is_empty() {
            ui.label("No conflicts. When two devices change the same file while apart, both versions show up here.");
            return;
        }
        for c in &s.conflicts {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.strong(&c.original);
                ui.label(format!("{} changed it on two devices while they were apart.", both_names(c)));
                let side =
                    |ui: &mut egui::Ui, this: &mut Self, what: &str, by: &str, size: u64, when: &str, path: &str| {
                        ui.horizontal_wrapped(|ui| {
                            ui.label(format!("{what}: by {by}, {}, changed {}", human(size), local_time(when)));
                            if ui.small_button("Open").on_hover_text(format!("Open {path}")).clicked() {
                                this.open_path(&s.path.join(path));
                            }
                        });
                    };
                side(ui, self, "This version", &c.original_by, c.original_size, &c.original_modified, &c.original);
                side(ui, self, "The other version", &c.copy_by, c.copy_size, &c.copy_modified, &c.copy);
                ui.weak(format!(
                    "Keep both: the other version stays beside it as {}.",
                    cobox_engine::util::other_version_name(&c.original)
                ));
                let shown = self.model.compare.as_ref().filter(|v| v.space == s.id && v.copy == c.copy).cloned();
                if shown.is_none()
                    && ui.button("Compare").on_hover_text("Show what differs between the two versions").clicked()
                {
                    self.send(Cmd::Compare { space: s.id, copy: c.copy.clone() });
                }
                if let Some(v) = shown {
                    self.comparison(ui, &v);
                }
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

    /// What differs between a conflict's two versions: removed lines red, added green.
    fn comparison(&mut self, ui: &mut egui::Ui, v: &crate::engine::CompareView) {
        ui.horizontal(|ui| {
            ui.strong("What differs");
            ui.weak("- only in this version, + only in the other");
            if ui.button("Close comparison").clicked() {
                self.send(Cmd::CloseCompare);
            }
        });
        let (red, green) = (ui.visuals().error_fg_color, egui::Color32::from_rgb(40, 150, 70));
        egui::ScrollArea::both().id_salt(("compare", &v.copy)).max_height(240.0).show(ui, |ui| {
            for (tag, line) in &v.lines {
                let text = egui::RichText::new(format!("{tag} {line}")).monospace();
                match tag {
                    '-' => ui.colored_label(red, text),
                    '+' => ui.colored_label(green, text),
                    _ => ui.label(text),
                };
            }
            if v.more > 0 {
                ui.weak(format!("and {} more; open each version to see them all.", plural(v.more, "line", "lines")));
            }
        });
    }
}
