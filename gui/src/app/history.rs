//! A space's past as a person thinks of it: the states it went through (when, who, what
//! changed) to pick one and restore from, and the files deleted, each to bring back.

use super::*;

/// "3 added, 1 changed, 2 deleted": what a past state changed, in words.
pub(crate) fn what_changed(h: &HistoryItem) -> String {
    let parts: Vec<String> =
        [(h.added, "added"), (h.changed, "changed"), (h.deleted, "deleted"), (h.renamed, "renamed")]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
    if parts.is_empty() { "no file changed".to_owned() } else { parts.join(", ") }
}

impl CoboxApp {
    /// Who made a past state: its roster name, or this device, or the id's first characters.
    pub(super) fn state_by(&self, h: &HistoryItem) -> String {
        if h.device == self.model.device {
            return "this device".to_owned();
        }
        h.device_name.clone().unwrap_or_else(|| self.name_of(&h.device))
    }

    /// "Mon 7 Dec 2026, 10:00 by Ana: 3 added": one past state on one line.
    pub(super) fn state_line(&self, h: &HistoryItem) -> String {
        format!("{} by {}: {}", local_time(&h.time), self.state_by(h), what_changed(h))
    }

    /// Ask the engine for the space's past once; it keeps it up to date while shown.
    pub(super) fn want_past(&mut self, id: SpaceId) {
        self.past_shown = true;
        if self.past_asked != Some(id) {
            self.past_asked = Some(id);
            self.send(Cmd::Past(id));
        }
    }

    pub(super) fn history(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        self.want_past(s.id);
        let Some(past) = self.model.past.clone().filter(|p| p.space == s.id) else {
            ui.label("Reading the space's past...");
            return;
        };
        if let Some(e) = &past.error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Cannot read the space's past: {e}"));
        }
        egui::ScrollArea::vertical().id_salt("history-tab").auto_shrink([false, false]).show(ui, |ui| {
            ui.strong("Past states");
            ui.weak(
                "Each time a device recorded changes to the folder. Pick one to restore the whole space as it was \
                 then, into a new folder; the folder itself is not changed.",
            );
            if past.states.is_empty() {
                ui.label("No past states yet.");
            }
            egui::ScrollArea::vertical().id_salt("past-states").max_height(260.0).show(ui, |ui| {
                egui::Grid::new("past-states-grid").striped(true).num_columns(4).show(ui, |ui| {
                    ui.strong("When");
                    ui.strong("By");
                    ui.strong("What changed");
                    ui.label("");
                    ui.end_row();
                    for (i, h) in past.states.iter().enumerate() {
                        ui.label(local_time(&h.time)).on_hover_text(format!("version {}", h.id));
                        ui.label(self.state_by(h));
                        ui.label(what_changed(h));
                        if i == 0 {
                            ui.weak("now");
                        } else if self.restore_at == h.id {
                            ui.strong("picked");
                        } else if ui
                            .button("Pick")
                            .on_hover_text(format!("Restore as of {}", self.state_line(h)))
                            .clicked()
                        {
                            self.restore_at = h.id.clone();
                        }
                        ui.end_row();
                    }
                });
            });
            ui.add_space(6.0);
            self.restore_form(ui, s, "", &past.states);
            ui.separator();
            self.deleted_files(ui, s, &past);
        });
    }

    fn deleted_files(&mut self, ui: &mut egui::Ui, s: &SpaceView, past: &crate::engine::Past) {
        ui.strong("Deleted files");
        if past.deleted.is_empty() {
            ui.label("Nothing deleted. A file deleted on any device shows here, to bring back.");
            return;
        }
        ui.weak(format!(
            "{}, newest first. Restore puts one back as it was just before it was deleted, for every member.",
            plural(past.deleted.len(), "path", "paths")
        ));
        egui::Grid::new("deleted-files").striped(true).num_columns(3).show(ui, |ui| {
            for d in &past.deleted {
                ui.label(&d.path);
                let who = if self.model.device.starts_with(&d.device) {
                    "this device".to_owned()
                } else {
                    d.device_name.clone().unwrap_or_else(|| self.name_of(&d.device))
                };
                ui.label(format!("deleted {} by {who}", local_time(&cobox_engine::util::rfc3339(d.time_ms))));
                if ui.button("Restore").on_hover_text(format!("Put {} back in the folder", d.path)).clicked() {
                    self.send(Cmd::Undelete { space: s.id, path: d.path.clone() });
                }
                ui.end_row();
            }
        });
    }
}
