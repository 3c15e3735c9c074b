//! What an operator can see of a running bot: Prometheus metrics, liveness and readiness, and
//! systemd's notifications.
//!
//! Layout:
//! - this file: [`Metrics`], the registry and the figures the bot updates as things happen
//!   (commands and their latency, store refusals, missed deadlines, gateway shards,
//!   readiness, guilds on disk as sampled), and [`ReminderSends`], Discord's answers to
//!   reminder sends;
//! - `snapshot.rs`: figures read at scrape time from what already keeps them (the store's
//!   counters and histograms, the scheduler's index and counts, pending deletions, the
//!   quarantine directory, the newest backup manifests);
//! - `http.rs`: the listener serving `/metrics`, `/healthz` and `/readyz`;
//! - `systemd.rs`: `READY=1` and the watchdog ping.
//!
//! Labels are bounded sets (command names, outcomes, refusal reasons, shard states, shard
//! numbers, open origins, Discord error codes mapped to a fixed few): never a guild or user
//! id. Not here: Discord or serenity types (the bot translates its events into the plain
//! calls below), SQL.

mod http;
mod snapshot;
pub mod systemd;

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::sync::watch;

pub use http::MetricsListener;
pub use snapshot::Sources;

use crate::{reminders::DeliveryError, store::GuildDatabaseManager};

/// How an interaction ended, as counted in `guildkeep_commands_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused or answered with a message the member can act on (a check, a cooldown, a
    /// [`crate::bot::UserError`], a busy store).
    UserError,
    /// Logged with a reference id; the member saw a generic apology.
    InternalError,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UserError => "user_error",
            Self::InternalError => "internal_error",
        }
    }
}

/// Why the store turned a command away, as counted in `guildkeep_store_refusals_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Refusal {
    AtCapacity,
    BeingDeleted,
    ShuttingDown,
    NotOurShard,
}

impl Refusal {
    const ALL: [Self; 4] = [
        Self::AtCapacity,
        Self::BeingDeleted,
        Self::ShuttingDown,
        Self::NotOurShard,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::AtCapacity => "at_capacity",
            Self::BeingDeleted => "being_deleted",
            Self::ShuttingDown => "shutting_down",
            Self::NotOurShard => "not_our_shard",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandName {
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    outcome: &'static str,
    code: &'static str,
}

/// Discord's answers to reminder sends, by outcome and error code, as counted in
/// `guildkeep_reminder_deliveries_total`. Made before the scheduler starts (its deliverer
/// counts into it) and registered by [`Metrics::new`]; clones count into the same family.
#[derive(Clone, Debug, Default)]
pub struct ReminderSends(Family<SendLabels, Counter>);

impl ReminderSends {
    /// A send ended as `outcome`; `code` is the bot's name for Discord's answer, from a fixed
    /// few (`none` for a delivery): never anything a member or a guild chose.
    pub fn answered(&self, outcome: &Result<(), DeliveryError>, code: &'static str) {
        let outcome = match outcome {
            Ok(()) => "delivered",
            Err(DeliveryError::Transient(_)) => "transient",
            Err(DeliveryError::Refused(_)) => "refused",
            Err(DeliveryError::Permanent(_)) => "permanent",
            Err(DeliveryError::Unauthorized) => "unauthorized",
        };
        self.0.get_or_create(&SendLabels { outcome, code }).inc();
    }

    /// A send was dropped before Discord answered (timed out, or cut off by a shutdown): a
    /// transient failure, as the scheduler records it.
    pub fn unanswered(&self) {
        let (outcome, code) = ("transient", "timeout");
        self.0.get_or_create(&SendLabels { outcome, code }).inc();
    }
}

/// How often `guildkeep_store_guilds_on_disk` is counted: one read of the guilds directory,
/// cheap at 100,000 guilds but not worth doing at every scrape.
pub const GUILDS_ON_DISK_EVERY: Duration = Duration::from_secs(300);

/// Every shard state the gateway sampler reports, so that a state with no shard reads 0
/// rather than vanishing.
pub const SHARD_STATES: [&str; 6] = [
    "connected",
    "connecting",
    "disconnected",
    "handshake",
    "identifying",
    "resuming",
];

/// The registry and the figures updated as things happen. One per running bot, shared.
pub struct Metrics {
    registry: Registry,
    commands: Family<CommandLabels, Counter>,
    first_response: Family<CommandName, Histogram>,
    final_response: Family<CommandName, Histogram>,
    refusals: Family<RefusalLabels, Counter>,
    missed_deadlines: Counter,
    shards: Family<StateLabels, Gauge>,
    shard_latency: Family<ShardLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    guilds_on_disk: Gauge,
    ready: Gauge,
    started: AtomicBool,
    shards_ready: AtomicBool,
    /// The gateway's shard count as READY gives it; 0 before the first READY.
    shard_total: AtomicUsize,
}

/// Seconds from 10 ms to about 20 s: Discord's 3 s window for a first response sits inside.
fn response_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 12)
}

impl Metrics {
    /// The registry with every metric, the scrape-time ones reading `sources`, and the
    /// counts of `sends`.
    pub fn new(sources: Sources, sends: ReminderSends) -> Self {
        let mut registry = Registry::with_prefix("guildkeep");
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Slash commands and autocompletes handled, by command and outcome",
            commands.clone(),
        );
        let histograms = || {
            Family::<CommandName, Histogram>::new_with_constructor(
                (|| Histogram::new(response_buckets())) as fn() -> Histogram,
            )
        };
        let first_response = histograms();
        registry.register(
            "command_first_response_seconds",
            "From the interaction's creation (its id's timestamp, from which Discord counts its 3 s) to the bot's first response (the deferral)",
            first_response.clone(),
        );
        let final_response = histograms();
        registry.register(
            "command_response_seconds",
            "From the interaction's creation to the command's final answer or error",
            final_response.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        // Every reason from the start: `increase()` then sees the first refusal.
        for reason in Refusal::ALL {
            let reason = reason.label();
            refusals.get_or_create(&RefusalLabels { reason }).inc_by(0);
        }
        registry.register(
            "store_refusals",
            "Commands the store turned away, by reason (at_capacity: no slot freed within open_wait)",
            refusals.clone(),
        );
        let missed_deadlines = Counter::default();
        registry.register(
            "interactions_missed_deadline",
            "Interactions dropped unanswered: older than Discord's 3 s window when they arrived (replayed after a RESUME, or a stalled gateway)",
            missed_deadlines.clone(),
        );
        let shards = Family::<StateLabels, Gauge>::default();
        for state in SHARD_STATES {
            shards.get_or_create(&StateLabels { state }).set(0);
        }
        registry.register(
            "gateway_shards",
            "This process's gateway shards by connection state",
            shards.clone(),
        );
        let shard_latency = Family::default();
        registry.register_with_unit(
            "gateway_latency",
            "Heartbeat round trip per shard, as last measured",
            prometheus_client::registry::Unit::Seconds,
            shard_latency.clone(),
        );
        let guilds_on_disk = Gauge::default();
        registry.register(
            "store_guilds_on_disk",
            "Guild directories under <data_dir>/guilds, as last counted (every 5 minutes)",
            guilds_on_disk.clone(),
        );
        // A delivery from the start, so that the family is there before the first send.
        sends
            .0
            .get_or_create(&SendLabels {
                outcome: "delivered",
                code: "none",
            })
            .inc_by(0);
        registry.register(
            "reminder_deliveries",
            "Reminder sends by outcome (delivered, transient, refused, permanent, unauthorized) and Discord's answer (none, 10003, 10013, 50001, 50007, 50013, 401, 429, 5xx, other, network, timeout)",
            sends.0,
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when every owned shard is READY and the store and scheduler are loaded",
            ready.clone(),
        );
        registry.register_collector(Box::new(sources));
        Self {
            registry,
            commands,
            first_response,
            final_response,
            refusals,
            missed_deadlines,
            shards,
            shard_latency,
            guilds_on_disk,
            ready,
            started: AtomicBool::new(false),
            shards_ready: AtomicBool::new(false),
            shard_total: AtomicUsize::new(0),
        }
    }

    /// A command ended with `outcome`, `since` after its interaction was created.
    pub fn command_ended(&self, command: &str, outcome: Outcome, since: Duration) {
        let command = command.to_owned();
        self.final_response
            .get_or_create(&CommandName {
                command: command.clone(),
            })
            .observe(since.as_secs_f64());
        self.commands
            .get_or_create(&CommandLabels {
                command,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// A command's first response went out `since` after its interaction was created.
    pub fn first_response(&self, command: &str, since: Duration) {
        self.first_response
            .get_or_create(&CommandName {
                command: command.to_owned(),
            })
            .observe(since.as_secs_f64());
    }

    pub fn store_refused(&self, reason: Refusal) {
        let reason = reason.label();
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// An interaction arrived too late to be answered and was dropped.
    pub fn missed_deadline(&self) {
        self.missed_deadlines.inc();
    }

    /// The gateway as last sampled: each owned shard's state (one of [`SHARD_STATES`]) and
    /// latency (none before its first heartbeat), and whether every owned shard is connected.
    pub fn gateway_sampled(
        &self,
        shards: &[(u32, &'static str, Option<Duration>)],
        all_ready: bool,
    ) {
        for state in SHARD_STATES {
            let count = shards.iter().filter(|(_, s, _)| *s == state).count();
            self.shards
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for (shard, _, latency) in shards {
            // NaN until the shard's first heartbeat is acknowledged: present, but no number.
            self.shard_latency
                .get_or_create(&ShardLabels { shard: *shard })
                .set(latency.map_or(f64::NAN, |l| l.as_secs_f64()));
        }
        self.shards_ready.store(all_ready, Ordering::SeqCst);
        self.update_ready();
    }

    /// A shard's READY said how many shards the bot has in all.
    pub fn shard_total_seen(&self, total: usize) {
        self.shard_total.store(total, Ordering::SeqCst);
    }

    /// The shard count a READY gave, if any has arrived.
    pub fn shard_total(&self) -> Option<usize> {
        Some(self.shard_total.load(Ordering::SeqCst)).filter(|n| *n > 0)
    }

    /// Counts the guild directories on disk now and every [`GUILDS_ON_DISK_EVERY`], until
    /// `stop` turns true. A count that fails keeps the last one and is logged.
    pub async fn sample_guilds_on_disk(
        &self,
        store: GuildDatabaseManager,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(GUILDS_ON_DISK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            match store.guild_dirs_on_disk().await {
                Ok(count) => {
                    self.guilds_on_disk
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::warn!(error = %e, "counting the guilds on disk failed"),
            }
        }
    }

    /// The store is open and the scheduler has built its index.
    pub fn started(&self) {
        self.started.store(true, Ordering::SeqCst);
        self.update_ready();
    }

    /// What `/readyz` answers.
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::SeqCst) && self.shards_ready.load(Ordering::SeqCst)
    }

    fn update_ready(&self) {
        self.ready.set(i64::from(self.is_ready()));
    }

    /// The Prometheus text exposition of every metric. Reads files and takes the store's
    /// locks: call it off the async threads.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
