//! Figures read at scrape time from what already keeps them, so nothing on the hot path
//! changes: the store's own counters, histograms and pool census
//! ([`GuildDatabaseManager::stats`]), the scheduler's index and counts
//! ([`Scheduler::stats`]), pending guild deletions, the quarantine directory, and the newest
//! backup manifests the backup job writes under
//! `<data_dir>/backups`. The store and the scheduler count in plain atomics
//! ([`crate::timings`] for their histograms) and know nothing of Prometheus.
//!
//! Encoding takes the store's state lock and reads files: [`super::Metrics::encode`] runs on
//! the blocking pool. Not here: figures updated as things happen (`mod.rs`).

use std::{path::Path, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Unit,
};

use crate::{
    ops::backup::{Manifest, MANIFEST},
    reminders::Scheduler,
    store::{GuildDatabaseManager, PendingDeletions},
    timings::TimingsSnapshot,
};

/// Where the scrape-time figures come from.
#[derive(Clone)]
pub struct Sources {
    pub store: GuildDatabaseManager,
    pub scheduler: Arc<Scheduler>,
    /// Guilds the bot was removed from, whose data goes when their grace period ends.
    pub pending: Arc<PendingDeletions>,
    /// `max_open_guilds`, shown beside the open count.
    pub guild_cap: usize,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Origin {
    origin: &'static str,
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl TryInto<i64>,
) -> std::fmt::Result {
    let value = ConstGauge::new(value.try_into().unwrap_or(i64::MAX));
    value.encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// A histogram in seconds from durations counted into buckets.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    timings: &TimingsSnapshot,
) -> std::fmt::Result {
    let bounds = timings.bounds.iter().map(std::time::Duration::as_secs_f64);
    let buckets: Vec<(f64, u64)> = bounds
        .chain(std::iter::once(f64::INFINITY))
        .zip(timings.counts.iter().copied())
        .collect();
    encoder
        .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(timings.sum.as_secs_f64(), timings.count(), &buckets, None)
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        let stats = self.store.stats();
        gauge(
            e,
            "store_guilds_open",
            "Guild databases with an open pool",
            None,
            stats.open_pools,
        )?;
        gauge(
            e,
            "store_guilds_opening",
            "Guild databases being opened",
            None,
            stats.opening_pools,
        )?;
        gauge(e, "store_guilds_closing", "Pools closing (evicted, idle or deleted) whose files are not closed yet; they count toward the cap", None, stats.closing_pools)?;
        gauge(
            e,
            "store_guilds_cap",
            "max_open_guilds: open, opening and closing pools together stay below it",
            None,
            self.guild_cap,
        )?;
        gauge(
            e,
            "store_connections_leased",
            "Connections in use",
            None,
            stats.leased,
        )?;
        counter(
            e,
            "store_hits",
            "Uses served by an already open pool",
            stats.hits,
        )?;
        counter(
            e,
            "store_misses",
            "Uses that had to open their guild's file or wait for it",
            stats.misses,
        )?;
        let mut opens = e.encode_descriptor(
            "store_opens",
            "Guild files opened, by origin: reopen (already on disk), or a new guild made from the prepared spare or from the template",
            None,
            MetricType::Counter,
        )?;
        for (origin, value) in [
            ("reopen", stats.reopens),
            ("spare", stats.created_from_spare),
            ("template", stats.created_from_template),
        ] {
            ConstCounter::new(value).encode(opens.encode_family(&Origin { origin })?)?;
        }
        histogram(
            e,
            "store_open_latency",
            "How long each successful open of a guild file took, its migration and pool included",
            &stats.open_latency,
        )?;
        histogram(
            e,
            "store_slot_wait",
            "How long uses that found every slot taken (max_open_guilds reached) waited for one; those refused at open_wait count too",
            &stats.slot_wait,
        )?;
        counter(
            e,
            "store_at_capacity",
            "Uses refused because no slot freed within open_wait, from commands, the scheduler and operator jobs alike",
            stats.at_capacity,
        )?;
        counter(
            e,
            "store_evictions",
            "Pools closed to make room (least recently used)",
            stats.evictions,
        )?;
        counter(
            e,
            "store_idle_closes",
            "Pools closed after idling",
            stats.idle_closes,
        )?;
        gauge(
            e,
            "store_quarantined_files",
            "Files moved to <data_dir>/quarantine because they were not valid SQLite databases",
            None,
            self.store.quarantined_files(),
        )?;
        gauge(
            e,
            "store_pending_deletions",
            "Guilds the bot was removed from whose data is deleted when their grace period ends",
            None,
            self.pending.all().len(),
        )?;
        let reminders = self.scheduler.stats();
        gauge(
            e,
            "reminders_indexed",
            "Active reminders in the scheduler's index (not counting those claimed or being sent)",
            None,
            reminders.indexed,
        )?;
        gauge(
            e,
            "reminders_send_queue",
            "Reminders taken from the index and not settled yet: being claimed, claimed and waiting for their time or a send slot, being sent or recorded",
            None,
            reminders.in_flight,
        )?;
        counter(
            e,
            "reminders_claimed",
            "Due times claimed for a send, retries included",
            reminders.claimed,
        )?;
        histogram(
            e,
            "reminder_lateness",
            "From a delivered reminder's due time to Discord's acceptance of it",
            &reminders.lateness,
        )?;
        backups(e, &self.store.paths().backups_dir())
    }
}

/// Files in `dir`; none when it does not exist.
/// How many sets back a scrape looks for a complete one: every night's set failing for this
/// long is already alerted on, and the scrape stays cheap.
const SETS_LOOKED_AT: usize = 32;

/// The newest complete set (time, guilds, bytes) and the failed guilds of the newest set.
/// Nothing is written when there is no set: an alert on "absent" then fires.
fn backups(e: &mut DescriptorEncoder, dir: &Path) -> std::fmt::Result {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    // Set names are fixed-width UTC timestamps: name order is time order.
    let mut sets: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    sets.sort_unstable_by(|a, b| b.cmp(a));
    let manifests = sets.iter().take(SETS_LOOKED_AT).filter_map(|set| {
        let text = std::fs::read(set.join(MANIFEST)).ok()?;
        serde_json::from_slice::<Manifest>(&text).ok()
    });
    let mut newest = true;
    for manifest in manifests {
        if newest {
            gauge(
                e,
                "backup_newest_failed_guilds",
                "Guilds the newest backup set could not copy",
                None,
                manifest.failed.len(),
            )?;
            newest = false;
        }
        let Some(finished) = (manifest.failed.is_empty())
            .then(|| chrono::DateTime::parse_from_rfc3339(&manifest.finished_at).ok())
            .flatten()
        else {
            continue;
        };
        gauge(
            e,
            "backup_last_complete_timestamp",
            "When the newest complete backup set finished (Unix time)",
            Some(&Unit::Seconds),
            finished.timestamp(),
        )?;
        gauge(
            e,
            "backup_last_complete_guilds",
            "Guilds in the newest complete backup set",
            None,
            manifest.guilds.len(),
        )?;
        let bytes: u64 = manifest.guilds.values().map(|g| g.bytes).sum();
        gauge(
            e,
            "backup_last_complete",
            "Size of the newest complete backup set",
            Some(&Unit::Bytes),
            bytes,
        )?;
        break;
    }
    Ok(())
}
