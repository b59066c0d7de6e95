//! `cobox-gui`: the CoBox desktop app. It talks to the engine only through its public API.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod app;

fn main() -> eframe::Result {
    let home = cobox_engine::Home::default_root();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([720.0, 480.0]).with_title("CoBox"),
        ..Default::default()
    };
    eframe::run_native("CoBox", options, Box::new(move |_cc| Ok(Box::new(app::CoboxApp::new(home)))))
}
