//! Social recovery in the app: a space's Recovery tab (its custodians, when each last proved
//! its share, setting it up) with a banner on every tab while a recovery waits to take effect,
//! and the custodian's side (shares kept for others, approving a request) on the Network screen.

use super::*;
use cobox_engine::codes::PeerAddr;

/// A waiting period in words ("48 h", "30 min").
fn wait_words(s: i64) -> String {
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An RFC 3339 time as "2026-12-07 08:30".
fn when(t: &str) -> String {
    t.get(..16).unwrap_or(t).replace('T', " ")
}

/// The custodians typed, one per line: each parsed, or the first line that is not one.
pub(crate) fn parse_custodians(text: &str) -> Result<Vec<PeerAddr>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<PeerAddr>().map_err(|e| format!("\"{l}\" is not a device: {e}")))
        .collect()
}

impl CoboxApp {
    /// Shown above every tab while a recovery of the space waits to take effect: members are to
    /// notice it, and stop it if no one lost their devices.
    pub(super) fn recovering_banner(&self, ui: &mut egui::Ui, s: &SpaceView) {
        let Some(st) = &s.status else { return };
        if st.recovering.is_empty() {
            return;
        }
        ui.group(|ui| {
            for line in &st.recovering {
                ui.colored_label(ui.visuals().error_fg_color, line);
            }
            ui.horizontal(|ui| {
                ui.label("If no one you know lost all their devices, stop it:");
                if ui.button("Cancel this recovery").clicked() {
                    self.send(Cmd::RecoveryCancel(s.id));
                }
            });
        });
    }

    pub(super) fn recovery(&mut self, ui: &mut egui::Ui, s: &SpaceView) {
        ui.label(
            "If every device of this space is lost, custodians you trust can give it back: enough of them together \
             rebuild a manager's key, and none alone learns anything. A recovery waits before it takes effect, and \
             any member can cancel it then.",
        );
        if let Some(w) = s.status.as_ref().and_then(|st| st.recovery_warning.as_ref()) {
            ui.colored_label(ui.visuals().warn_fg_color, w);
        }
        match &s.recovery {
            None => {
                ui.label("No recovery is set up from this device.");
            }
            Some(r) => {
                ui.strong(format!(
                    "Any {} of {} custodians can give this space back, after a wait of {}.",
                    r.threshold,
                    r.custodians.len(),
                    wait_words(r.wait_s)
                ));
                egui::Grid::new(("custodians", s.id)).striped(true).show(ui, |ui| {
                    for h in ["Custodian", "Share", "Last proof", "Problem"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for c in &r.custodians {
                        ui.label(self.name_of(&c.device));
                        ui.label(if c.delivered { "held" } else { "not delivered yet" });
                        ui.label(c.proved.as_deref().map_or_else(|| "never".to_owned(), when));
                        match &c.error {
                            Some(e) => ui.colored_label(ui.visuals().warn_fg_color, e),
                            None => ui.label(""),
                        };
                        ui.end_row();
                    }
                });
                ui.weak(format!("Set up {}; custodians are checked weekly.", when(&r.made)));
                if ui.button("Check custodians now").clicked() {
                    self.send(Cmd::RecoveryCheck(s.id));
                }
            }
        }
        ui.separator();
        ui.heading(if s.recovery.is_some() { "Set up again" } else { "Set up recovery" });
        if s.recovery.is_some() {
            ui.weak("Setting up again makes a new key: the custodians' old shares stop working.");
        }
        let l = ui.label(
            "Custodians, one device per line (its id, or ID@IP:PORT): any CoBox device, such as a member's, a \
             friend's laptop or another co-op's seeder.",
        );
        ui.add(
            egui::TextEdit::multiline(&mut self.recovery_custodians)
                .desired_rows(3)
                .desired_width(f32::INFINITY)
                .hint_text("device id or ID@IP:PORT"),
        )
        .labelled_by(l.id);
        let parsed = parse_custodians(&self.recovery_custodians);
        let n = parsed.as_ref().map_or(0, Vec::len);
        ui.horizontal(|ui| {
            let l = ui.label("Custodians needed");
            ui.add(egui::DragValue::new(&mut self.recovery_threshold).range(2..=n.max(2))).labelled_by(l.id);
            let l = ui.label("Waiting period");
            ui.add(egui::DragValue::new(&mut self.recovery_wait_h).range(0..=24 * 30).suffix(" h")).labelled_by(l.id);
        });
        match &parsed {
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Ok(c) if c.len() < 2 => {
                ui.weak("Name at least two custodians.");
            }
            Ok(_) => {}
        }
        let ready = matches!(&parsed, Ok(c) if c.len() >= 2);
        if ui.add_enabled(ready, egui::Button::new("Give these custodians their shares")).clicked()
            && let Ok(custodians) = parsed
        {
            self.send(Cmd::RecoverySetup {
                space: s.id,
                custodians,
                threshold: self.recovery_threshold,
                wait_ms: i64::from(self.recovery_wait_h) * 3_600_000,
            });
        }
    }

    /// The custodian's side: shares kept here for others, and giving one back to a device whose
    /// request code someone sent, once its fingerprint matches.
    pub(super) fn custody(&mut self, ui: &mut egui::Ui) {
        ui.heading("Recovery shares kept here");
        if let Some(e) = &self.model.custody_error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Could not read them: {e}"));
        }
        if self.model.custody.is_empty() {
            ui.label("None: this device is no one's recovery custodian.");
        }
        for k in &self.model.custody {
            ui.label(format!(
                "Share {} of {} ({} needed) of '{}', for {}, since {}",
                k.share,
                k.of,
                k.threshold,
                k.name,
                self.name_of(&k.dealer),
                when(&k.made)
            ));
        }
        let l = ui.label("Someone asking for a space back? Paste the request code they sent:");
        ui.add(egui::TextEdit::singleline(&mut self.approve_code).desired_width(f32::INFINITY)).labelled_by(l.id);
        let code = self.approve_code.trim().to_owned();
        if code.is_empty() {
            return;
        }
        match cobox_engine::recovery_core::Request::parse(&code) {
            Ok(r) => {
                ui.strong(format!("Fingerprint: {}", r.fingerprint()));
                ui.label(
                    "Ask the person to read their fingerprint out, by voice or video. Give your share only if it is \
                     the same: anyone with enough shares becomes a manager of the space.",
                );
                if ui.button("It matches: give my share").clicked() {
                    self.send(Cmd::RecoveryApprove(code));
                    self.approve_code.clear();
                }
            }
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("That code does not work: {e}"));
            }
        }
    }
}
