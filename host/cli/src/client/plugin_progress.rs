//! A spinner on stderr for plugin commands that can take seconds (a Python or JavaScript
//! component compiles for ~20 s on a cold cache).
//!
//! Drawn only when stderr is a terminal (indicatif hides its stderr target otherwise), so
//! scripts, pipes and `-o json` output (on stdout) never see it; the line is erased when the
//! spinner stops.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running spinner; stops (and erases its line) when dropped.
#[derive(Debug)]
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// Starts `⠋ {message} (3s)` on stderr, redrawn every 100 ms, if stderr is a
    /// terminal; otherwise draws nothing.
    pub fn start(message: impl Into<String>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Self { bar }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
