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
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            // About twenty lines for a whole job, however large.
            None if done == self.total || done.is_multiple_of((self.total / 20).max(1)) => {
                tracing::info!(job = self.job, done, total = self.total, "progress");
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
