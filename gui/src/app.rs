//! The app's state and screens. For now: the list of spaces and a form to create one.

use cobox_engine::{Home, SpaceInfo};
use eframe::egui;
use std::path::PathBuf;

/// The app.
pub(crate) struct CoboxApp {
    home: PathBuf,
    spaces: Result<Vec<SpaceInfo>, String>,
    new_name: String,
    new_path: String,
    message: Option<String>,
}

impl CoboxApp {
    /// An app over the given home directory.
    pub(crate) fn new(home: PathBuf) -> Self {
        let mut app =
            Self { home, spaces: Ok(Vec::new()), new_name: String::new(), new_path: String::new(), message: None };
        app.refresh();
        app
    }

    fn refresh(&mut self) {
        // The home is locked only for the moment of each action, so the CLI can run alongside.
        self.spaces = Home::open(&self.home).and_then(|h| h.spaces()).map_err(|e| e.to_string());
    }

    fn create(&mut self) {
        let result =
            Home::open(&self.home).and_then(|h| h.create_space(&self.new_name, &PathBuf::from(self.new_path.trim())));
        self.message = Some(match result {
            Ok(info) => {
                self.new_name.clear();
                self.new_path.clear();
                format!("Created space “{}”.", info.name)
            }
            Err(e) => format!("Could not create the space: {e}"),
        });
        self.refresh();
    }

    /// Draw one frame.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui) {
        egui::Frame::central_panel(ui.style()).show(ui, |ui| {
            ui.heading("Your spaces");
            if ui.button("Refresh").clicked() {
                self.refresh();
            }
            ui.separator();
            match &self.spaces {
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Cannot read your spaces: {e}"));
                }
                Ok(list) if list.is_empty() => {
                    ui.label("No spaces yet. Create one below to start keeping a folder.");
                }
                Ok(list) => {
                    egui::Grid::new("spaces").striped(true).show(ui, |ui| {
                        for s in list {
                            ui.strong(&s.name);
                            ui.label(s.path.display().to_string());
                            ui.monospace(s.id.short());
                            ui.end_row();
                        }
                    });
                }
            }
            ui.separator();
            ui.heading("New space");
            ui.horizontal(|ui| {
                let label = ui.label("Name");
                ui.text_edit_singleline(&mut self.new_name).labelled_by(label.id);
            });
            ui.horizontal(|ui| {
                let label = ui.label("Folder");
                ui.text_edit_singleline(&mut self.new_path).labelled_by(label.id);
            });
            let ready = !self.new_name.trim().is_empty() && !self.new_path.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Create space")).clicked() {
                self.create();
            }
            if let Some(m) = &self.message {
                ui.label(m);
            }
        });
    }
}

impl eframe::App for CoboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        CoboxApp::ui(self, ui);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    #[test]
    fn lists_spaces_created_by_the_engine_and_from_the_form() {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        {
            let h = Home::open(home.path()).unwrap();
            h.create_space("photos", folder.path()).unwrap();
        }
        let app = CoboxApp::new(home.path().to_owned());
        let mut harness = Harness::new_ui_state(|ui, app: &mut CoboxApp| app.ui(ui), app);
        harness.run();
        harness.get_by_label("photos");

        let second = tempfile::tempdir().unwrap();
        harness.state_mut().new_name = "accounts".into();
        harness.state_mut().new_path = second.path().display().to_string();
        harness.run();
        harness.get_by_label("Create space").click();
        harness.run();
        harness.get_by_label("accounts");
        assert_eq!(Home::open(home.path()).unwrap().spaces().unwrap().len(), 2);

        // A duplicate name is refused in plain words.
        harness.state_mut().new_name = "photos".into();
        harness.state_mut().new_path = second.path().display().to_string();
        harness.run();
        harness.get_by_label("Create space").click();
        harness.run();
        assert!(harness.state().message.as_deref().unwrap_or("").starts_with("Could not create the space"));
    }
}
