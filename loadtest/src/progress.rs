//! The progress bar on stderr while load runs: elapsed time against the planned duration, calls, errors, dropped
//! calls and the current rate. Hidden when stderr is not a terminal or with `--quiet`; it never affects results.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::recorder::Recorder;

/// How often the bar is refreshed.
const REFRESH: Duration = Duration::from_millis(250);

/// A running progress bar; finished on drop of its updater.
pub struct Progress {
    bar: ProgressBar,
    updater: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts a bar of `duration` fed from `recorder`.
    pub fn start(label: &str, duration: Duration, recorder: Arc<Recorder>, quiet: bool) -> Progress {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(duration.as_millis() as u64);
            let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {elapsed:>4}/{len_s} {msg}")
                .expect("valid template")
                .with_key("len_s", |state: &indicatif::ProgressState, writer: &mut dyn std::fmt::Write| {
                    let _ = write!(writer, "{}s", state.len().unwrap_or(0) / 1000);
                })
                .progress_chars("=> ");
            bar.with_style(style).with_prefix(label.to_string())
        };
        let updater = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut last_calls = 0;
                let mut ticker = tokio::time::interval(REFRESH);
                loop {
                    ticker.tick().await;
                    let (calls, errors, dropped) = recorder.progress();
                    let rate = (calls - last_calls) as f64 / REFRESH.as_secs_f64();
                    last_calls = calls;
                    bar.set_position(recorder.start().elapsed().as_millis() as u64);
                    bar.set_message(format!("calls {calls} errors {errors} dropped {dropped} ({rate:.0}/s)"));
                }
            })
        };
        Progress { bar, updater }
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.updater.abort();
        self.bar.finish_and_clear();
    }
}
