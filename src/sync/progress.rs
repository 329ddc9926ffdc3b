//! Run progress: an indicatif spinner on a terminal, a log line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// Progress of the opportunity phase.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    last_log: Instant,
}

impl Progress {
    /// A spinner when `enabled` and stderr is a terminal; periodic log lines when only `enabled`.
    pub(super) fn new(enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            enabled,
            last_log: Instant::now(),
        }
    }

    /// Reports counts (ids and numbers only).
    pub(super) fn update(&mut self, listed: usize, done: u64, api_calls: u64) {
        let message =
            format!("{done} of {listed} listed opportunities synced, {api_calls} API calls");
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        } else if self.enabled && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            tracing::info!(listed, done, api_calls, "sync progress");
        }
    }

    /// Clears the spinner.
    pub(super) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
