//! `cobox-gui`: the CoBox desktop app. It talks to the engine only through its public API, on
//! an engine thread of its own (see `engine`).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod app;
mod browse;
mod engine;
mod model;
#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod tests;

use std::sync::Arc;

fn main() -> eframe::Result {
    // Before any thread starts: freed buffers (file lists, blobs) go back to the system.
    cobox_engine::priority::small_footprint();
    let home = cobox_engine::Home::default_root();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1100.0, 720.0]).with_title("CoBox"),
        ..Default::default()
    };
    eframe::run_native(
        "CoBox",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let net = cobox_engine::sync::net::NetConfig { lan_discovery: true, ..Default::default() };
            let cfg = engine::EngineConfig { home, net, interval: 60, notify: true };
            let handle = engine::spawn(cfg, Arc::new(move || ctx.request_repaint()));
            let mut app = app::CoboxApp::new(handle);
            // For scripts/screenshot.sh: open on a given screen.
            match std::env::var("COBOX_GUI_SCREEN").as_deref() {
                Ok("network") => app.screen = app::Screen::Network,
                Ok("conflicts") => app.tab = app::Tab::Conflicts,
                Ok("seeders") => app.tab = app::Tab::Seeders,
                Ok("activity") => app.screen = app::Screen::Activity,
                Ok("my-seeders") => app.screen = app::Screen::Seeders,
                _ => {}
            }
            Ok(Box::new(app))
        }),
    )
}
