//! What the benchmark cases measure with: latency samples and their percentiles, medians of
//! repeats, and the process's resident memory and open file descriptors.

use std::time::{Duration, Instant};

/// Latencies of one run of a case.
#[derive(Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub fn push(&mut self, took: Duration) {
        self.0.push(took);
    }

    /// Times `f` and records it.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.push(started.elapsed());
        out
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// The `p`th percentile in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median of figure `key` over the JSON figures of several runs (child processes, say).
pub fn median_of(runs: &[serde_json::Value], key: &str) -> f64 {
    median(runs.iter().map(|r| r[key].as_f64().unwrap()).collect())
}

/// Resident set size of this process, in MiB.
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

/// The part of the resident set that is the process's own heap and stacks (not mapped files
/// such as SQLite's `-shm`), in MiB.
pub fn anon_rss_mib() -> f64 {
    status_kib("RssAnon:") / 1024.0
}

/// The highest resident set size of this process since it started or since
/// [`reset_peak_rss`], in MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Starts the peak over from the current resident set size (Linux 4.0 and later), so that a
/// peak belongs to the work that follows and not to an earlier case in the same process.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0.0)
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// CPU time used so far by this whole process (every thread, user and kernel), in seconds.
/// Unlike wall time, it barely moves when other processes load the machine, so it compares
/// two designs fairly on a shared host. Linux reports it in clock ticks of 1/100 s.
pub fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11) // utime and stime are fields 14 and 15; this slice starts at field 3
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
