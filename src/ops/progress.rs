//! Progress of a long operator job: a bar on a terminal, plain log lines otherwise (cron,
//! systemd, CI), so an unattended run still shows how far it got. A job the running bot
//! carries out for the command line reports to that command line instead
//! ([`report_to`]), which shows it the same way.

use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use indicatif::{ProgressBar, ProgressStyle};

/// Where a remote job's progress goes: (job, done, total).
pub type RemoteProgress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

tokio::task_local! {
    static REMOTE: RemoteProgress;
}

/// Runs `job` with every [`Progress`] it makes reporting to `remote`.
pub async fn report_to<F: std::future::Future>(remote: RemoteProgress, job: F) -> F::Output {
    REMOTE.scope(remote, job).await
}

pub struct Progress {
    job: String,
    total: u64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
    remote: Option<RemoteProgress>,
}

impl Progress {
    pub fn new(job: impl Into<String>, total: u64) -> Self {
        let job = job.into();
        let remote = REMOTE.try_with(Arc::clone).ok();
        let bar = (remote.is_none() && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(job.clone());
            bar
        });
        Self {
            job,
            total,
            done: AtomicU64::new(0),
            bar,
            remote,
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
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        // About a hundred steps for a whole job, however large: one each time `done` passes
        // a hundredth of the total, and one at the end; a log gets every fifth.
        let step = (self.total / 100).max(1);
        let passed = |step: u64| done == self.total || before / step != done / step;
        match &self.remote {
            Some(remote) if passed(step) => remote(&self.job, done, self.total),
            None if passed(step * 5) => {
                tracing::info!(
                    job = self.job.as_str(),
                    done,
                    total = self.total,
                    "progress"
                );
            }
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
