//! Seeders: a space's seeding agreements and audits, and the seeders this device administers.

use super::*;

impl CoboxApp {
    pub(super) fn seeders(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
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
                        Some(why) => ui.label(a.state.as_str()).on_hover_text(format!("the seeder answered: {why}")),
                        None => ui.label(a.state.as_str()),
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
                    if (a.state == cobox_engine::agreements::State::Active
                        || a.state == cobox_engine::agreements::State::Proposed)
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
    pub(super) fn my_seeders(&mut self, ui: &mut egui::Ui) {
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
    pub(super) fn policy(&mut self, ui: &mut egui::Ui, r: &cobox_engine::admin::Report) {
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
                let policy = cobox_engine::admin::Policy {
                    seed_for,
                    max_quota: (gib * (1u64 << 30) as f64) as u64,
                    operator: r.policy.operator.clone(),
                };
                self.engine.send(Cmd::SetSeederPolicy { seeder: r.device, policy });
                self.policy_edit = None;
            } else if ui.button("Cancel").clicked() {
                self.policy_edit = None;
            }
        });
    }
}
