//! The engine's progress reports drawn as an indicatif bar on stderr (hidden when stderr is
//! not a terminal); warnings always go to stderr.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar for one command.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub(crate) fn new() -> Self {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self(pb)
    }
}

impl cobox_engine::Progress for Bar {
    fn start(&self, phase: &str, total_bytes: u64) {
        self.0.set_message(phase.to_owned());
        self.0.set_length(total_bytes);
        self.0.set_position(0);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn warn(&self, message: &str) {
        self.0.suspend(|| eprintln!("warning: {}", cobox_engine::util::printable(message)));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
