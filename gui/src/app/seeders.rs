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
        let me_manager = manages(s);
        if s.agreements.is_empty() {
            ui.label("No seeders yet. A seeder keeps an encrypted copy it cannot read; propose one below.");
        } else {
            // One block per agreement, wrapping to the width there is (a wide table was cut off
            // at the right, buttons and all, in a narrow window or at a large text size).
            for a in &s.agreements {
                ui.group(|ui| {
                    ui.set_width(ui.available_width());
                    let who = match &a.operator {
                        Some(o) => format!("{} ({o})", self.name_of(&a.seeder)),
                        None => self.name_of(&a.seeder),
                    };
                    ui.horizontal_wrapped(|ui| {
                        ui.strong(who).on_hover_text(format!("seeder {}\nagreement {}", a.seeder, a.id));
                        ui.label(format!("up to {} until {}", human(a.quota), local_time(&a.end)));
                    });
                    if !a.signatures_ok {
                        ui.colored_label(
                            ui.visuals().error_fg_color,
                            format!("Invalid, never honoured: {}", a.problem.clone().unwrap_or_default()),
                        );
                    } else {
                        let (words, why) = agreement_words(a);
                        let l = ui.add(egui::Label::new(words).wrap());
                        if let Some(why) = why {
                            l.on_hover_text(why);
                        }
                    }
                    ui.horizontal_wrapped(|ui| {
                        // A seeder out of disk is shown as such, not as a failed check.
                        if seeder_full(&self.model, &a.seeder) {
                            ui.colored_label(ui.visuals().error_fg_color, "Seeder full");
                        } else {
                            match &a.last_audit {
                                Some(x) if x.ok => {
                                    ui.label(format!("Checked {}: all {} pieces there", ago(x.time_ms), x.challenged))
                                }
                                Some(x) => ui.colored_label(
                                    ui.visuals().error_fg_color,
                                    format!(
                                        "Checked {}: {} of {} pieces there",
                                        ago(x.time_ms),
                                        x.passed,
                                        x.challenged
                                    ),
                                ),
                                None => ui.label("Not checked yet"),
                            };
                        }
                        use cobox_engine::agreements::State;
                        if me_manager && a.state == State::Proposed && ui.small_button("Show seed code").clicked() {
                            self.send(Cmd::SeedCode(a.id.clone()));
                        }
                        if me_manager
                            && matches!(a.state, State::Active | State::Proposed)
                            && ui
                                .small_button("End agreement")
                                .on_hover_text(format!("Revoke agreement {}", &a.id[..8]))
                                .clicked()
                        {
                            self.send(Cmd::Revoke(a.id.clone()));
                        }
                    });
                });
            }
        }
        // Only this space's code: a code made in another space's tab is not this one's.
        let ours = |c: &String| cobox_engine::codes::SeedCode::parse(c).is_ok_and(|x| x.space == s.id);
        if let Some(code) = self.model.seed_code.clone().filter(ours) {
            ui.label("Seed code for the seeder's operator (they run `cobox seed CODE` there):");
            ui.add(egui::TextEdit::singleline(&mut code.as_str()).desired_width(f32::INFINITY));
            self.copy_button(ui, "Copy seed code", &code);
        }
        ui.separator();
        if !me_manager {
            ui.label("Only a manager proposes and ends agreements with seeders.");
            return;
        }
        self.propose_form(ui, s);
    }

    /// Propose an agreement: a paired seeder picked, or one named by its id; the quota as a size
    /// checked against what that seeder takes by itself; never a second one beside one in force.
    fn propose_form(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        ui.strong("Add a seeder");
        let paired: Vec<_> = self.model.seeders.clone();
        if !paired.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label("Seeders you administer:");
                for v in &paired {
                    let id = v.seeder.device.to_string();
                    let operator = v.report.as_ref().map(|(_, r)| r.policy.operator.clone()).filter(|o| !o.is_empty());
                    let label = match operator {
                        Some(o) => format!("{} ({o})", self.name_of(&id)),
                        None => self.name_of(&id),
                    };
                    ui.selectable_value(&mut self.seeder_id, id, label);
                }
            });
        }
        ui.label(
            "Or ask the seeder's operator for its id (`cobox id` on it) and paste it here. Then send them the \
             seed code, unless the seeder already takes your proposals by itself.",
        );
        let l = ui.label("Seeder id");
        ui.text_edit_singleline(&mut self.seeder_id).labelled_by(l.id);
        let typed: Option<cobox_engine::DeviceId> =
            self.seeder_id.trim().split('@').next().and_then(|d| d.parse().ok());
        // A seeder with no name here yet is named as it is proposed to, so it is never an id.
        let unnamed = typed.is_some_and(|d| !self.model.names.contains_key(&d.to_string()));
        if unnamed {
            ui.horizontal(|ui| {
                let l = ui.label("Call it");
                ui.add(
                    egui::TextEdit::singleline(&mut self.seeder_name).hint_text("e.g. Rivers' Pi").desired_width(200.0),
                )
                .labelled_by(l.id);
            });
        }
        let quota = cobox_engine::units::parse_size(self.quota_text.trim());
        ui.horizontal(|ui| {
            let l = ui.label("It may keep up to");
            ui.add(egui::TextEdit::singleline(&mut self.quota_text).desired_width(80.0)).labelled_by(l.id);
            let l = ui.label("for");
            ui.add(egui::DragValue::new(&mut self.days).range(1..=3650)).labelled_by(l.id);
            ui.label(if self.days == 1 { "day" } else { "days" });
        });
        let id = self.seeder_id.trim().split('@').next().unwrap_or("").to_owned();
        match &quota {
            Ok(q) => {
                ui.label(format!("= {} (G and T are powers of 1024; GB and TB of 1000)", human(*q)));
            }
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Not a size: {e}. Try 50G or 2T."));
            }
        }
        // What the seeder takes by itself, when this device administers it and it said.
        let limit = paired
            .iter()
            .find(|v| v.seeder.device.to_string() == id)
            .and_then(|v| v.report.as_ref())
            .filter(|(_, r)| r.policy.seed_for.iter().any(|d| d.to_string() == self.model.device))
            .map(|(_, r)| r.policy.max_quota);
        if let (Some(limit), Ok(q)) = (limit, &quota)
            && *q > limit
        {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "This seeder takes up to {} from you by itself: a larger proposal waits for its operator.",
                    human(limit)
                ),
            );
        }
        let existing = s.agreements.iter().find(|a| {
            a.seeder == id
                && matches!(
                    a.state,
                    cobox_engine::agreements::State::Active | cobox_engine::agreements::State::Proposed
                )
        });
        if let Some(a) = existing {
            ui.label(format!(
                "This seeder already has an agreement for this space ({}): end it first to propose other terms.",
                agreement_words(a).0
            ));
        }
        let ok = !id.is_empty() && quota.is_ok() && existing.is_none();
        if ui.add_enabled(ok, egui::Button::new("Propose")).clicked()
            && let Ok(q) = quota
        {
            if let Some(device) = typed.filter(|_| unnamed && !self.seeder_name.trim().is_empty()) {
                let name = std::mem::take(&mut self.seeder_name).trim().to_owned();
                self.send(Cmd::NameSeeder { device, name });
            }
            self.send(Cmd::Propose {
                space: s.id,
                seeder: self.seeder_id.trim().to_owned(),
                quota: q,
                days: self.days,
            });
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
            let l = ui.label("Call it");
            ui.add(egui::TextEdit::singleline(&mut self.seeder_name).hint_text("e.g. Rivers' Pi").desired_width(160.0))
                .labelled_by(l.id);
            if ui.add_enabled(!self.pair_code.trim().is_empty(), egui::Button::new("Pair")).clicked() {
                let code = std::mem::take(&mut self.pair_code).trim().to_owned();
                let name = std::mem::take(&mut self.seeder_name).trim().to_owned();
                self.send(Cmd::PairSeeder { code, name });
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
            ui.horizontal_wrapped(|ui| {
                let id = v.seeder.device.to_string();
                match self.model.names.get(&id) {
                    Some(n) => ui.strong(format!("Seeder {n} ({})", v.seeder.device.short())),
                    None => ui.strong(format!("Seeder {}", v.seeder.device.short())),
                }
                .on_hover_text(format!("seeder {id}"));
                self.seeder_rename(ui, v.seeder.device);
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
                    // By its name where this device is a member (a seeder never learns names).
                    match self.model.spaces.iter().find(|v| v.id == sp.space) {
                        Some(v) => ui.label(&v.name).on_hover_text(format!("space {}", sp.space)),
                        None => ui.label(format!("a space you are not in ({})", sp.space.short())),
                    };
                    ui.label(format!("{} in {}", human(sp.bytes), plural(sp.blobs as usize, "blob", "blobs")));
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

    /// Name a seeder on this device: a button, then a field while renaming.
    fn seeder_rename(&mut self, ui: &mut egui::Ui, device: cobox_engine::DeviceId) {
        match &mut self.renaming_seeder {
            Some((d, text)) if *d == device => {
                let l = ui.label("Its name here");
                ui.add(egui::TextEdit::singleline(text).desired_width(160.0)).labelled_by(l.id);
                if ui.button("Save name").clicked() {
                    let name = text.trim().to_owned();
                    self.send(Cmd::NameSeeder { device, name });
                    self.renaming_seeder = None;
                } else if ui.button("Cancel").clicked() {
                    self.renaming_seeder = None;
                }
            }
            _ => {
                if ui.small_button("Name it").on_hover_text("What you call this seeder; only you see it").clicked() {
                    let now = self.model.names.get(&device.to_string()).cloned().unwrap_or_default();
                    self.renaming_seeder = Some((device, now));
                }
            }
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
            if others > 0 {
                format!(" and {}", plural(others, "other device", "other devices"))
            } else {
                String::new()
            },
            human(r.policy.max_quota)
        ));
        ui.label(if r.policy.operator.is_empty() {
            "Tells owners no operator name (`cobox up --operator NAME` on it sets one)".to_owned()
        } else {
            format!("Tells owners it is run by {}", r.policy.operator)
        });
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

/// Where an agreement stands, in words, and why when the seeder said.
pub(crate) fn agreement_words(a: &cobox_engine::ledger::AgreementSummary) -> (String, Option<String>) {
    use cobox_engine::agreements::State;
    match a.state {
        State::Proposed => match &a.answer {
            // The seeder's own reason, in full: the owner needs it to decide what to do.
            Some(why) => (format!("waiting: the seeder did not take it by itself: {why}"), None),
            None => (
                "waiting for the seeder to accept".into(),
                Some(
                    "Signed by this space; the seeder signs when it takes it (by itself, or with the seed code)."
                        .into(),
                ),
            ),
        },
        State::Active => ("in force: the seeder keeps a copy".into(), None),
        State::Revoked => ("ended (revoked); the seeder keeps the copy a week".into(), None),
        State::Expired => ("ended (its term is over)".into(), None),
        State::Invalid => ("invalid: never honoured".into(), a.problem.clone()),
    }
}
