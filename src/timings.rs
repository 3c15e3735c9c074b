//! Durations counted into fixed buckets with plain atomics: how the store and the reminder
//! scheduler keep a distribution (open latency, waits for a slot, reminder lateness) without
//! knowing of any metrics crate. `observe` reads a [`Timings::snapshot`] at scrape time and
//! writes it as a Prometheus histogram, as it does the store's other counters.
//!
//! Recording is a few relaxed atomic additions, no lock: cheap enough for any path that
//! already does I/O. Not here: encoding (`observe/snapshot.rs`).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// A histogram of durations: how many fell at or below each bound, and above the last.
#[derive(Debug)]
pub struct Timings {
    bounds: &'static [Duration],
    /// One per bound, then one for everything above the last bound.
    counts: Box<[AtomicU64]>,
    /// In microseconds: a sum in nanoseconds would overflow after a million reminders sent a
    /// few hours late (a bot that was down), one in microseconds after a billion.
    sum_micros: AtomicU64,
}

/// What a [`Timings`] held when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingsSnapshot {
    pub bounds: &'static [Duration],
    /// Per bucket, not cumulative: `counts[i]` fell in `(bounds[i-1], bounds[i]]`, and the
    /// last entry above every bound.
    pub counts: Vec<u64>,
    pub sum: Duration,
}

impl TimingsSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Timings {
    /// `bounds` ascending.
    pub fn new(bounds: &'static [Duration]) -> Self {
        debug_assert!(bounds.is_sorted(), "bounds ascend");
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn record(&self, took: Duration) {
        let bucket = self.bounds.partition_point(|bound| *bound < took);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Each bucket read once; a record running meanwhile may be in the counts and not yet in
    /// the sum, which a scrape shrugs off.
    pub fn snapshot(&self) -> TimingsSnapshot {
        TimingsSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Timings;

    const BOUNDS: &[Duration] = &[Duration::from_millis(10), Duration::from_millis(100)];

    #[test]
    fn a_duration_counts_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let timings = Timings::new(BOUNDS);
        for ms in [0, 10, 11, 100, 101, 5000] {
            timings.record(Duration::from_millis(ms));
        }
        let snapshot = timings.snapshot();
        assert_eq!(snapshot.counts, [2, 2, 2]);
        assert_eq!(snapshot.count(), 6);
        assert_eq!(snapshot.sum, Duration::from_millis(5222));
    }
}
