//! The Network screen (this device, its limits, its peers) and the activity feed.

use super::*;

impl CoboxApp {
    /// The activity log: news the app also raised as desktop notifications, newest first.
    pub(super) fn activity(&mut self, ui: &mut egui::Ui) {
        ui.heading("Activity");
        if self.model.activity.is_empty() {
            ui.label(
                "Nothing to tell yet. Joins, settled and new conflicts, audits, restores, full seeders and removed \
                 members show up here, and stay across restarts.",
            );
            return;
        }
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            egui::Grid::new("activity").striped(true).show(ui, |ui| {
                for (at, text) in self.model.activity.iter().rev() {
                    ui.label(local_time(&cobox_engine::util::rfc3339(*at)));
                    ui.label(text);
                    ui.end_row();
                }
            });
        });
    }

    /// This device's upload and download limits, and their editor.
    pub(super) fn limits(&mut self, ui: &mut egui::Ui) {
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

    pub(super) fn network(&mut self, ui: &mut egui::Ui) {
        self.glance(ui);
        ui.heading("This device");
        ui.label(match &self.model.device_name {
            Some(n) => format!("{n}, as its spaces know it"),
            None => "Not named yet: name it on the Spaces screen, so members see a name and not an id.".into(),
        });
        // The id and addresses are for the few who type them: out of the way until asked for.
        egui::CollapsingHeader::new("This device's id and addresses").show(ui, |ui| {
            ui.monospace(&self.model.address);
        });
        if let Some(st) = &self.model.stats {
            ui.label(format!(
                "You seed {} for others; others seed {} for you. Share ratio: {}",
                human(st.seeded_for_others),
                human(st.seeded_by_others),
                st.share_ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
            ));
        }
        self.limits(ui);
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("When the window closes");
            let now = self.model.keep_syncing_on_close;
            let words = |k: Option<bool>| match k {
                None => "ask what to do",
                Some(true) => "keep syncing (minimized)",
                Some(false) => "quit and stop syncing",
            };
            egui::ComboBox::from_id_salt("on-close")
                .selected_text(words(now))
                .show_ui(ui, |ui| {
                    for k in [None, Some(true), Some(false)] {
                        if ui.selectable_label(now == k, words(k)).clicked() && now != k {
                            self.engine.send(Cmd::SetOnClose(k));
                        }
                    }
                })
                .response
                .labelled_by(l.id);
        });
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
        ui.separator();
        self.custody(ui);
    }
}
