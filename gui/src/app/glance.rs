//! The network at a glance, at the top of the Network screen: per space, the headline count of
//! verified copies; a graph of this device, its members and its seeders (edges are syncs and
//! agreements, coloured by health; hovering a peer shows its history); plots of copies, scores
//! and bytes over time; and the network's measures.

use super::*;
use cobox_engine::overview::{HEALTHY_SCORE, NetworkReport, SeederHealth, SpaceHealth};

/// A peer's health as a colour: green when both scores are good, amber when one is low, red
/// when its audit score says it may have lost data.
fn health_colour(audit: f64, online: f64) -> egui::Color32 {
    if audit < HEALTHY_SCORE {
        egui::Color32::from_rgb(200, 50, 50)
    } else if online < HEALTHY_SCORE {
        egui::Color32::from_rgb(220, 150, 30)
    } else {
        egui::Color32::from_rgb(40, 150, 70)
    }
}

fn seeder_colour(x: &SeederHealth) -> egui::Color32 {
    if x.state != cobox_engine::agreements::State::Active {
        return egui::Color32::GRAY;
    }
    health_colour(x.audit_score, x.online_score)
}

/// Window starts (ms) as days before now, for a plot's x axis.
fn days_ago(start_ms: i64, now_ms: i64) -> f64 {
    (start_ms - now_ms) as f64 / 86_400_000.0
}

impl CoboxApp {
    pub(super) fn glance(&mut self, ui: &mut egui::Ui) {
        let net = match &self.model.network {
            None => return,
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("The network's health cannot be read: {e}"));
                return;
            }
            Some(Ok(n)) => n.clone(),
        };
        for s in &net.spaces {
            self.space_glance(ui, &net, s);
            ui.separator();
        }
        let m = &net.measures;
        ui.label(format!(
            "The network: {}, {} from {}, {}.",
            plural(m.devices, "device", "devices"),
            plural(m.seeders, "seeder", "seeders"),
            plural(m.organisations, "organisation", "organisations"),
            plural(m.agreements, "active agreement", "active agreements")
        ));
        if net.measures_history.len() > 1 {
            let now = net.at_ms;
            let series = |f: &dyn Fn(&cobox_engine::overview::MeasuresPoint) -> usize| -> Vec<[f64; 2]> {
                net.measures_history.iter().map(|p| [days_ago(p.start_ms, now), f(p) as f64]).collect()
            };
            egui_plot::Plot::new("measures")
                .height(110.0)
                .legend(egui_plot::Legend::default())
                .x_axis_label("days")
                .include_y(0.0)
                .show(ui, |p| {
                    p.line(egui_plot::Line::new("devices", series(&|p| p.devices)));
                    p.line(egui_plot::Line::new("seeders", series(&|p| p.seeders)));
                    p.line(egui_plot::Line::new("organisations", series(&|p| p.organisations)));
                    p.line(egui_plot::Line::new("agreements", series(&|p| p.agreements)));
                });
        }
        for s in &net.seeding {
            ui.label(format!(
                "This device seeds space {} for {}: {} held of {}.",
                s.space.get(..8).unwrap_or(&s.space),
                s.owners.iter().map(|o| self.name_of(o)).collect::<Vec<_>>().join(", "),
                s.used.map_or_else(|| "?".into(), human),
                human(s.quota)
            ));
        }
        ui.separator();
    }

    fn space_glance(&self, ui: &mut egui::Ui, net: &NetworkReport, s: &SpaceHealth) {
        let target = self
            .model
            .spaces
            .iter()
            .find(|v| v.id.to_string() == s.space)
            .and_then(|v| v.status.as_ref())
            .map_or(1, |st| st.replicas_target as usize);
        let ok = s.verified >= target.max(1);
        let colour = if ok { egui::Color32::from_rgb(40, 150, 70) } else { ui.visuals().warn_fg_color };
        ui.heading(&s.name);
        ui.colored_label(colour, egui::RichText::new(&s.headline).size(18.0));
        self.graph(ui, net, s);
        ui.add_space(8.0);
        // Counted back from the report's time, so a plot of one report always looks the same.
        let now = net.at_ms;
        if !s.history.is_empty() || s.seeders.iter().any(|x| !x.history.is_empty()) {
            ui.columns(2, |cols| {
                let copies: Vec<[f64; 2]> =
                    s.history.iter().map(|p| [days_ago(p.start_ms, now), p.verified as f64]).collect();
                let bytes: Vec<[f64; 2]> =
                    s.history.iter().map(|p| [days_ago(p.start_ms, now), p.bytes as f64 / 1e6]).collect();
                egui_plot::Plot::new(("copies", &s.space))
                    .height(120.0)
                    .legend(egui_plot::Legend::default())
                    .x_axis_label("days")
                    .show(&mut cols[0], |p| {
                        p.line(egui_plot::Line::new("verified copies", copies));
                        p.line(egui_plot::Line::new("MB moved", bytes));
                    });
                egui_plot::Plot::new(("scores", &s.space))
                    .height(120.0)
                    .legend(egui_plot::Legend::default())
                    .x_axis_label("days")
                    .include_y(0.0)
                    .include_y(1.0)
                    .show(&mut cols[1], |p| {
                        for x in &s.seeders {
                            let who = self.name_of(&x.device);
                            let audit: Vec<[f64; 2]> =
                                x.history.iter().map(|h| [days_ago(h.start_ms, now), f64::from(h.audit)]).collect();
                            let online: Vec<[f64; 2]> =
                                x.history.iter().map(|h| [days_ago(h.start_ms, now), f64::from(h.online)]).collect();
                            p.line(egui_plot::Line::new(format!("{who} audit"), audit));
                            p.line(egui_plot::Line::new(format!("{who} online"), online));
                        }
                    });
            });
        }
    }

    /// This device in the middle, members on the left, seeders on the right; each edge a sync
    /// (members) or an agreement (seeders), coloured by the peer's health.
    fn graph(&self, ui: &mut egui::Ui, net: &NetworkReport, s: &SpaceHealth) {
        let members: Vec<_> = s.members.iter().filter(|m| m.device != net.device).collect();
        let rows = members.len().max(s.seeders.len()).max(1);
        let height = 40.0 + 34.0 * rows as f32;
        let (rect, _) =
            ui.allocate_exact_size(egui::vec2(ui.available_width().min(760.0), height), egui::Sense::hover());
        let centre = egui::pos2(rect.center().x, rect.top() + height / 2.0);
        let at = |i: usize, n: usize, x: f32| egui::pos2(x, rect.top() + height * (i as f32 + 0.5) / n.max(1) as f32);
        let node = egui::vec2(170.0, 26.0);
        let mut places = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let p = at(i, members.len(), rect.left() + node.x / 2.0 + 4.0);
            let colour = health_colour(1.0, m.online_score);
            ui.painter().line_segment([p, centre], egui::Stroke::new(2.0, colour));
            places.push((p, m.name.clone(), colour, Hover::Member(m)));
        }
        for (i, x) in s.seeders.iter().enumerate() {
            let p = at(i, s.seeders.len(), rect.right() - node.x / 2.0 - 4.0);
            let colour = seeder_colour(x);
            let stroke = if x.verified { 3.0 } else { 1.5 };
            ui.painter().line_segment([p, centre], egui::Stroke::new(stroke, colour));
            // A seeder by the name its operator gives, else by the roster's, else its id's start.
            let label = match (&x.operator, self.model.names.contains_key(&x.device)) {
                (Some(o), false) => format!("seeder run by {o}"),
                (Some(o), true) => format!("{} ({o})", self.name_of(&x.device)),
                (None, _) => format!("seeder {}", self.name_of(&x.device)),
            };
            places.push((p, label, colour, Hover::Seeder(x)));
        }
        ui.put(
            egui::Rect::from_center_size(centre, node),
            egui::Button::new(egui::RichText::new("You (this device)").strong()),
        );
        for (p, label, colour, hover) in places {
            let r = ui.put(
                egui::Rect::from_center_size(p, node),
                egui::Button::new(label).stroke(egui::Stroke::new(2.0, colour)),
            );
            r.on_hover_ui(|ui| match hover {
                Hover::Member(m) => {
                    ui.label(format!(
                        "Last sync: {}",
                        m.last_sync.as_deref().map_or("never", |t| t.get(..16).unwrap_or(t))
                    ));
                    ui.label(format!("Online score {:.2}", m.online_score));
                    ui.label(format!(
                        "It sent {}, this device sent {}; share ratio {}",
                        human(m.bytes_from),
                        human(m.bytes_to),
                        m.share_ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
                    ));
                    // What each side gave, window by window: the share ratio over time.
                    let now = net.at_ms;
                    let from: Vec<[f64; 2]> =
                        m.history.iter().map(|h| [days_ago(h.start_ms, now), h.bytes_from as f64 / 1e6]).collect();
                    let to: Vec<[f64; 2]> =
                        m.history.iter().map(|h| [days_ago(h.start_ms, now), h.bytes_to as f64 / 1e6]).collect();
                    egui_plot::Plot::new(("shares", &m.device))
                        .height(100.0)
                        .width(280.0)
                        .include_y(0.0)
                        .legend(egui_plot::Legend::default())
                        .show(ui, |p| {
                            p.line(egui_plot::Line::new("MB it sent", from));
                            p.line(egui_plot::Line::new("MB sent to it", to));
                        });
                }
                Hover::Seeder(x) => {
                    if let Some(o) = &x.operator {
                        ui.label(format!("Run by {o} (its own word)"));
                    }
                    ui.label(format!(
                        "{}: {}, audit score {:.2}, online score {:.2}",
                        x.state,
                        if x.verified { "verified within the last day" } else { "not verified lately" },
                        x.audit_score,
                        x.online_score
                    ));
                    ui.label(format!(
                        "Holds {} ({}) of a {} quota; last seen {}",
                        x.held_bytes.map_or_else(|| "?".into(), human),
                        x.completion
                            .map_or_else(|| "not audited".into(), |c| format!("{:.0}% of the space", c * 100.0)),
                        human(x.quota),
                        x.last_seen.as_deref().map_or("never", |t| t.get(..16).unwrap_or(t))
                    ));
                    let now = net.at_ms;
                    let audit: Vec<[f64; 2]> =
                        x.history.iter().map(|h| [days_ago(h.start_ms, now), f64::from(h.audit)]).collect();
                    let online: Vec<[f64; 2]> =
                        x.history.iter().map(|h| [days_ago(h.start_ms, now), f64::from(h.online)]).collect();
                    egui_plot::Plot::new(("history", &x.device))
                        .height(100.0)
                        .width(280.0)
                        .include_y(0.0)
                        .include_y(1.0)
                        .legend(egui_plot::Legend::default())
                        .show(ui, |p| {
                            p.line(egui_plot::Line::new("audit", audit));
                            p.line(egui_plot::Line::new("online", online));
                        });
                }
            });
        }
    }
}

/// What hovering a node shows.
enum Hover<'a> {
    Member(&'a cobox_engine::overview::MemberHealth),
    Seeder(&'a SeederHealth),
}
