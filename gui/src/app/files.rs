//! A space's files: the browser, search, a file's versions and restoring a folder.

use super::*;

impl CoboxApp {
    pub(super) fn files(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
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
                    ui.label(local_time(&h.time));
                    ui.label(h.action.clone().unwrap_or_default());
                    let who = match &h.device_name {
                        Some(n) => n.clone(),
                        None => self.name_of(&h.device),
                    };
                    ui.label(format!("by {who}")).on_hover_text(format!("device {}\nversion {}", h.device, h.id));
                    if i == 0 {
                        ui.label("current");
                    } else if h.action.as_deref() != Some("deleted")
                        && ui.button("Restore this version").on_hover_text(format!("version {}", &h.id[..8])).clicked()
                    {
                        self.confirm_version = Some((space, path.clone(), h.id.clone(), local_time(&h.time)));
                    }
                    ui.end_row();
                }
            });
            // Restoring changes the file for every member: asked first, in words.
            if let Some((sp, p, id, when)) = self.confirm_version.clone().filter(|(sp, _, _, _)| *sp == s.id) {
                egui::Window::new("Restore a version")
                    .collapsible(false)
                    .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
                    .show(ui.ctx(), |ui| {
                        ui.label(format!("Put {p} back as it was on {when}?"));
                        ui.label(
                            "This changes the file for every member of the space at their next sync. The version \
                             there now stays in the history and can be restored in turn.",
                        );
                        ui.horizontal(|ui| {
                            if ui.button("Restore for everyone").clicked() {
                                self.send(Cmd::RestoreVersion { space: sp, path: p.clone(), history_id: id.clone() });
                                self.confirm_version = None;
                            }
                            if ui.button("Cancel").clicked() {
                                self.confirm_version = None;
                            }
                        });
                    });
            }
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
                            let name = if searching { &*f.path } else { f.path.rsplit('/').next().unwrap_or(&f.path) };
                            ui.label(name);
                            ui.label(human(f.size));
                            ui.label(crate::engine::rfc3339_ns(f.mtime_ns));
                            match s.writers.get(f.by as usize) {
                                Some(w) if self.model.device.starts_with(&w.short) => ui.label("this device"),
                                Some(w) => ui.label(&w.label),
                                None => ui.label(""),
                            };
                            ui.horizontal(|ui| {
                                if ui
                                    .small_button("Versions")
                                    .on_hover_text(format!("Past versions of {}", f.path))
                                    .clicked()
                                {
                                    self.send(Cmd::FileHistory { space: s.id, path: f.path.to_string() });
                                }
                                let on_disk = s.path.join(&*f.path);
                                if ui.small_button("Open").on_hover_text(format!("Open {}", f.path)).clicked() {
                                    self.open_path(&on_disk);
                                }
                                if ui.small_button("Show in folder").clicked() {
                                    self.open_path(on_disk.parent().unwrap_or(&s.path));
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
    pub(super) fn rows(&mut self, s: &SpaceView, dir: &str) -> Arc<Vec<crate::browse::Row>> {
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
    pub(super) fn restore_folder(&mut self, ui: &mut egui::Ui, s: &SpaceView, dir: &str) {
        let what = if dir.is_empty() { "this space".to_owned() } else { format!("the folder {dir}") };
        let header = egui::CollapsingHeader::new(format!("Restore {what} as it was..."))
            .id_salt(("restore-folder", s.id))
            .show(ui, |ui| {
                let states = self.model.past.as_ref().filter(|p| p.space == s.id).map(|p| p.states.clone());
                self.restore_form(ui, s, dir, &states.unwrap_or_default());
            });
        // Its past states to pick from, asked for when the form opens.
        if header.body_returned.is_some() {
            self.want_past(s.id);
        }
    }

    /// The restore form: when (a past state picked from the list, or a time typed on this
    /// computer's clock) and into which new folder.
    pub(super) fn restore_form(&mut self, ui: &mut egui::Ui, s: &SpaceView, dir: &str, states: &[HistoryItem]) {
        let what = if dir.is_empty() { "the space".to_owned() } else { format!("the folder {dir}") };
        // Now, in this computer's time: a person moves back from there.
        if self.restore_at.is_empty() {
            self.restore_at = chrono::Local::now().format("%Y-%m-%d %H:%M").to_string();
        }
        if self.restore_into.is_empty() {
            let base = s.path.parent().unwrap_or(&s.path);
            let name = dir.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(&s.name);
            self.restore_into = base.join(format!("{name} (restored)")).display().to_string();
        }
        let picked = states.iter().find(|h| h.id == self.restore_at);
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("As of the past state");
            let shown = picked.map_or_else(|| "pick one, or type a time below".to_owned(), |h| self.state_line(h));
            egui::ComboBox::from_id_salt(("past-state", s.id, dir.to_owned()))
                .selected_text(shown)
                .width(360.0)
                .show_ui(ui, |ui| {
                    for h in states.iter().skip(1) {
                        let line = self.state_line(h);
                        ui.selectable_value(&mut self.restore_at, h.id.clone(), line);
                    }
                })
                .response
                .labelled_by(l.id);
        });
        // Or a day from a calendar and a time, on this computer's clock; the text field takes
        // either, or a version id pasted from a file's history.
        let (mut day, mut hour, mut minute) = self.restore_day.unwrap_or_else(|| {
            use chrono::{Datelike, Timelike};
            let now = chrono::Local::now();
            let day = jiff::civil::Date::new(now.year() as i16, now.month() as i8, now.day() as i8)
                .unwrap_or(jiff::civil::date(2026, 1, 1));
            (day, now.hour(), now.minute())
        });
        let before = (day, hour, minute);
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("or on");
            ui.add(
                egui_extras::DatePickerButton::new(&mut day)
                    .id_salt("restore-day")
                    .calendar_week(false)
                    .show_icon(false),
            )
            .labelled_by(l.id);
            let l = ui.label("at");
            ui.add(egui::DragValue::new(&mut hour).range(0..=23).custom_formatter(|n, _| format!("{n:02}")))
                .labelled_by(l.id);
            let l = ui.label(":");
            ui.add(egui::DragValue::new(&mut minute).range(0..=59).custom_formatter(|n, _| format!("{n:02}")))
                .labelled_by(l.id);
        });
        self.restore_day = Some((day, hour, minute));
        if (day, hour, minute) != before {
            self.restore_at = format!("{day} {hour:02}:{minute:02}");
        }
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("As of");
            ui.text_edit_singleline(&mut self.restore_at).labelled_by(l.id);
            ui.weak("a date and time on this computer's clock (2026-11-24 10:00), or a version id");
        });
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Into the new folder");
            ui.text_edit_singleline(&mut self.restore_into).labelled_by(l.id);
        });
        ui.horizontal_wrapped(|ui| {
            let label = if dir.is_empty() { "Restore the space".to_owned() } else { format!("Restore {what}") };
            if ui.button(label).clicked() {
                self.send(Cmd::RestoreFolder {
                    space: s.id,
                    dir: dir.to_owned(),
                    at: self.restore_at.clone(),
                    into: PathBuf::from(self.restore_into.trim()),
                });
            }
            if let Some(done) = self.model.restored.clone()
                && ui.button("Open restored folder").clicked()
            {
                self.open_path(&done);
            }
        });
    }
}
