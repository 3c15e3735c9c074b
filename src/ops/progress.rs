//! Progress of a long operator job: a bar on a terminal, plain log lines otherwise (cron,
//! systemd, CI), so an unattended run still shows how far it got.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicU64, Ordering},
};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    job: &'static str,
    total: u64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(job: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(job);
            bar
        });
        Self {
            job,
            total,
            done: AtomicU64::new(0),
            bar,
        }
    }

    /// One more item of the job is finished.
    pub fn advance(&self) {
        self.advance_by(1);
    }

    /// `n` more items are finished (rows, for jobs that count rows rather than guilds).
    pub fn advance_by(&self, n: u64) {
        if n == 0 {
            return;
        }
        let before = self.done.fetch_add(n, Ordering::Relaxed);
        let done = before + n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            // About twenty lines for a whole job, however large: one each time `done` passes
            // a twentieth of the total, and one at the end.
            None => {
                let step = (self.total / 20).max(1);
                if done == self.total || before / step != done / step {
                    tracing::info!(job = self.job, done, total = self.total, "progress");
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
