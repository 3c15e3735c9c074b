//! The one scheduler of the process: a single tokio task that sends every guild's reminders
//! when they come due.
//!
//! It keeps an in-memory index of the next due time of every active reminder in every guild on
//! disk: built in the background from start-up by reading each guild through the store
//! (never creating one; an unreadable reminder is logged and left out, and a guild that cannot
//! be read for now, busy or out of file descriptors, is read again later with backoff), while
//! the reminders already found go out; the guilds whose reminders were due soonest when the
//! index was last saved are read first (see [`soonest_first`]). It is then kept current by the bot
//! ([`Scheduler::upsert`] after a create, [`Scheduler::change`] for an edit or a cancel,
//! [`Scheduler::forget_guild`] when a guild's data is deleted, [`Scheduler::reload_guild`]
//! after an operator's job wrote a guild's database). The task sleeps until the
//! earliest entry and is woken early when an earlier one arrives. Reminders that came due while
//! the bot was down are simply due at start-up, and go out marked late.
//!
//! A guild the bot was removed from is paused for its grace period ([`Scheduler::pause_guild`],
//! or [`SchedulerConfig::paused`] from start-up): nothing of it is sent, nothing fails.
//! [`Scheduler::resume_guild`] on a rejoin moves its repeating reminders past the occurrences
//! missed meanwhile and schedules the rest again; a one-off missed meanwhile goes out late.
//! When Discord refuses the bot's token the task stops at once, records nothing for the send
//! refused, and says so through [`Scheduler::token_refused`]: the bot then stops too.
//!
//! The index is a cache: every send starts with [`delivery::claim`], which reads the reminder
//! from the database and settles a stale entry (cancelled, moved) without sending. A reminder
//! is claimed up to [`SchedulerConfig::claim_ahead`] before it is due and then waits for its
//! time, so that thousands due in the same second (each in its own guild file, opened for the
//! claim) still go out within it. A change the bot makes meanwhile (a cancel, an edit, a
//! member's opt-out or erasure, a guild deleted) calls the waiting send off and releases its
//! claim, up to the moment the send has its send slot. An edit or a cancel goes through
//! [`Scheduler::change`], which takes turns with that last moment (see there), so that nothing
//! a member changed is sent as it was once they were told it changed. Guild reads and writes
//! run at most [`SchedulerConfig::max_concurrent`] at once, and so do sends; never two for one
//! reminder.
//! A send that went out is never repeated because its outcome could not be recorded at once:
//! the record is retried instead. Time is read from an injected [`Clock`] and slept on
//! with tokio's timer, so tests run it under `tokio::time::pause()` with a [`TokioClock`].
//!
//! Not here: the bookkeeping SQL (`delivery.rs`) and Discord (the bot implements [`Deliver`]).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::{
    sync::{watch, Notify, Semaphore},
    task::{JoinError, JoinHandle, JoinSet},
    time::Instant,
};

use super::{
    active_due_times,
    delivery::{self, Claim, Delivery, DeliveryError, DeliveryPolicy},
    notice, NextLook, Reminder, ReminderError, Status,
};
use crate::{
    store::{side_by_side, GuildDatabaseManager, StoreError},
    timings::{Timings, TimingsSnapshot},
};

/// Where the scheduler reads the wall time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that moves with tokio's clock from a fixed start, so that under
/// `tokio::time::pause()` a test's `advance` (or auto-advance) moves both together.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed =
            chrono::Duration::from_std(self.origin.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.start
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// What [`Deliver::deliver`] returns: a boxed future, so the trait stays object-safe.
pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// Sends one reminder: the Discord layer in the bot, a recorder in tests. A DM's opt-in has
/// been checked already; a channel post must mention exactly the given users and roles.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture<'_>;

    /// DMs `user` (who opted in) a notice about one of their reminders, pinging nobody.
    fn notify(&self, user: u64, text: String) -> DeliveryFuture<'_>;
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Guild reads and writes (start-up reads, claims, records) running at once; and,
    /// separately, sends running at once.
    pub max_concurrent: usize,
    /// How long before its due time a reminder is claimed. Long enough to claim a burst due in
    /// the same second (about a millisecond of work per guild file); a change the bot makes in
    /// this time still stops the send, one made from another process (the operator's command
    /// line) may not.
    pub claim_ahead: Duration,
    /// A send that takes longer counts as a transient failure.
    pub delivery_timeout: Duration,
    /// When to look again at a reminder whose guild database could not be used.
    pub store_retry: Duration,
    /// How long [`Scheduler::shutdown`] lets sends in progress finish and be recorded. With
    /// the bot's 10 s for commands to drain, this stays well inside the 60 s `TimeoutStopSec`
    /// of `scripts/guildkeep.service`. A send still running then is abandoned: it stays
    /// claimed and goes again after the restart.
    pub shutdown_limit: Duration,
    pub policy: DeliveryPolicy,
    /// Guilds paused from the start: those in their grace period after the bot was removed.
    pub paused: HashSet<u64>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 16,
            claim_ahead: Duration::from_secs(20),
            delivery_timeout: Duration::from_secs(30),
            store_retry: Duration::from_secs(60),
            shutdown_limit: Duration::from_secs(20),
            policy: DeliveryPolicy::default(),
            paused: HashSet::new(),
        }
    }
}

/// The longest single sleep, so that a wall clock stepped by NTP is noticed within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The first wait before recording a send's outcome again; doubled up to
/// [`SchedulerConfig::store_retry`].
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// A guild that keeps failing to be read is read again at most every `store_retry` times 2^this.
const MAX_REREAD_DOUBLINGS: u32 = 5;

/// The most reminders claimed and waiting for their time at once, which bounds the memory a
/// burst takes; the rest are claimed as these go out.
const MAX_IN_FLIGHT: usize = 100_000;

/// Buckets of [`SchedulerStats::lateness`]: within a second is on time; minutes to a day are
/// reminders that waited out an outage.
pub const LATENESS_BOUNDS: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(24 * 3600),
];

/// What the scheduler holds and has done, for the operator's metrics (`crate::observe` reads
/// it at scrape time, as it reads the store's counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Reminders in the index, as [`Scheduler::pending`].
    pub indexed: usize,
    /// Reminders taken from the index to be sent and not settled yet: being claimed, claimed
    /// and waiting for their time or a send slot, being sent, being recorded.
    pub in_flight: usize,
    /// Due times claimed for a send (each attempt, retries included).
    pub claimed: u64,
    /// From each delivered reminder's due time to Discord's acceptance of it, on the
    /// scheduler's clock.
    pub lateness: TimingsSnapshot,
}

/// The counts behind [`SchedulerStats`]: plain atomics, so the scheduler needs no metrics
/// crate and a send pays two relaxed additions.
struct SendCounts {
    claimed: AtomicU64,
    lateness: Timings,
}

/// The handle the bot keeps. Dropping it stops the task at once (sends in progress are
/// abandoned and, being claimed, are sent again after a restart); [`Scheduler::shutdown`]
/// lets them finish for a bounded time, and leaves those not started claimed.
pub struct Scheduler {
    worker: Arc<Worker>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts the task and returns once it knows which guilds are on disk: their reminders
    /// are read into the index in the background ([`Scheduler::indexed`]), while those
    /// already read go out, so that nothing of the bot waits for a million reminders to be read.
    pub async fn start(
        store: GuildDatabaseManager,
        deliver: Arc<dyn Deliver>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Result<Self, StoreError> {
        let guilds = soonest_first(store.guilds_on_disk().await?, &store.reminder_order().await);
        let index = Index {
            paused: config.paused.clone(),
            ..Index::default()
        };
        let (stop, stopped) = watch::channel(false);
        let worker = Arc::new(Worker {
            stop,
            token_refused: watch::channel(false).0,
            indexed: watch::channel(false).0,
            shared: Shared {
                index: Mutex::new(index),
                wake: Notify::new(),
                reread: Notify::new(),
                turns: Turns::default(),
            },
            store,
            deliver,
            clock,
            bookkeeping: Semaphore::new(config.max_concurrent.max(1)),
            sending: Semaphore::new(config.max_concurrent.max(1)),
            counts: SendCounts {
                claimed: AtomicU64::new(0),
                lateness: Timings::new(LATENESS_BOUNDS),
            },
            config,
        });
        let task = tokio::spawn(worker.clone().run(stopped, guilds));
        Ok(Self {
            worker,
            task: Mutex::new(Some(task)),
        })
    }

    /// Completes once every guild on disk at start-up has been read into the index once
    /// (a guild that could not be read is read again later, as before); never if the
    /// scheduler stops first.
    pub fn indexed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut indexed = self.worker.indexed.subscribe();
        async move {
            if indexed.wait_for(|indexed| *indexed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Reminder `id` of `guild` is (now) next due at `due`.
    pub fn upsert(&self, guild: u64, id: u64, due: DateTime<Utc>) {
        let mut index = self.worker.shared.lock();
        index.changed(guild);
        if index.upsert(guild, id, due) {
            self.worker.shared.wake.notify_one();
        }
    }

    /// Reminder `id` of `guild` will not be due again.
    pub fn remove(&self, guild: u64, id: u64) {
        let mut index = self.worker.shared.lock();
        index.changed(guild);
        index.remove(guild, id);
    }

    /// Changes reminder `id` of `guild` with `write` (an edit or a cancel, run on its database)
    /// and schedules it as `write` left it, taking turns with the reminder's sends: a send
    /// holds the reminder's turn from its last check (with its send slot in hand) until its
    /// outcome is recorded, and `write` runs, and the index learns of the change, within a turn.
    /// So a send either finds the change at its last check and is called off (its claim
    /// released, the reminder looked at again as changed), or went out and was recorded before
    /// `write` runs, which then applies to what is left (a repeat's next occurrence; a one-off
    /// has ended). Either way nothing sent after this returns is as the reminder was before it.
    ///
    /// Why turns in this process rather than a version checked by the send: the check and the
    /// request to Discord cannot be one step, so a version alone would still let a send that
    /// passed its check go out after the member was told of the change. The bot is the one
    /// owner of its data directory, so every send and every member's change meet here.
    ///
    /// A send holds its turn for at most its `delivery_timeout` and its record; a change that
    /// waits longer than twice that gives up with [`ReminderError::BeingSent`].
    pub async fn change(
        &self,
        guild: u64,
        id: u64,
        write: impl FnOnce(&mut rusqlite::Connection) -> Result<Reminder, ReminderError>
            + Send
            + 'static,
    ) -> Result<Result<Reminder, ReminderError>, StoreError> {
        let patience = self.worker.config.delivery_timeout.saturating_mul(2);
        let turns = &self.worker.shared.turns;
        let Ok(_turn) = tokio::time::timeout(patience, turns.take((guild, id))).await else {
            return Ok(Err(ReminderError::BeingSent(id)));
        };
        let changed = self.worker.store.with_guild(guild, write).await?;
        if let Ok(reminder) = &changed {
            match reminder.status {
                Status::Active => self.upsert(guild, id, reminder.due_at),
                _ => self.remove(guild, id),
            }
        }
        Ok(changed)
    }

    /// `guild`'s data is gone: drop all of its reminders from the index. Nothing of the guild
    /// is sent after this, not even a send already claimed or waiting for a send slot.
    pub fn forget_guild(&self, guild: u64) {
        self.worker.shared.lock().forget_guild(guild);
    }

    /// The bot was removed from `guild`: nothing of it is sent (sends claimed or waiting for a
    /// slot are called off) until [`Scheduler::resume_guild`]; its data is left as it is.
    pub fn pause_guild(&self, guild: u64) {
        self.worker.shared.lock().pause_guild(guild);
    }

    /// The bot is back in paused `guild`: its repeating reminders skip the occurrences missed
    /// meanwhile, and its reminders are scheduled again as start-up does (a one-off missed
    /// meanwhile is due at once, and goes out marked late).
    pub async fn resume_guild(&self, guild: u64) -> Result<(), StoreError> {
        self.worker.shared.lock().paused.remove(&guild);
        let now = self.worker.clock.now();
        let skipped = self
            .worker
            .on_guild(guild, move |c| super::skip_missed(c, now))
            .await?;
        if let Err(e) = skipped {
            tracing::error!(guild, error = %e, "missed repeats not skipped on resume");
        }
        self.reload_guild(guild).await
    }

    /// Completes once Discord has refused the bot's token (never otherwise); the scheduler has
    /// stopped sending by then.
    pub fn token_refused(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut refused = self.worker.token_refused.subscribe();
        async move {
            if refused.wait_for(|refused| *refused).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether Discord has refused the bot's token (see [`Scheduler::token_refused`]).
    pub fn has_refused_token(&self) -> bool {
        *self.worker.token_refused.borrow()
    }

    /// A member of `guild` changed what may be sent to or about them (an opt-out, an erasure):
    /// the guild's claimed reminders are checked against the database again before they go.
    pub fn recheck_guild(&self, guild: u64) {
        self.worker.shared.lock().recheck_guild(guild);
    }

    /// `guild`'s database was written behind the bot's commands (an operator's restore or
    /// legacy import): drops the guild's entries from the index, has its sends under way
    /// checked against the database again before they go, then reads its active reminders as
    /// start-up does. On an error that may pass (busy, at capacity) the guild is also read
    /// again later, as a guild skipped at start-up is.
    pub async fn reload_guild(&self, guild: u64) -> Result<(), StoreError> {
        let fallback = self.worker.config.store_retry;
        let generation = self.worker.shared.lock().unload(guild, fallback);
        self.worker.read_into_index(guild, generation).await
    }

    /// Reminders in the index, those claimed or being sent not counted.
    pub fn pending(&self) -> usize {
        self.worker.shared.lock().queue.len()
    }

    pub fn stats(&self) -> SchedulerStats {
        let (indexed, in_flight) = {
            let index = self.worker.shared.lock();
            (index.queue.len(), index.in_flight.len())
        };
        let counts = &self.worker.counts;
        SchedulerStats {
            indexed,
            in_flight,
            claimed: counts.claimed.load(Ordering::Relaxed),
            lateness: counts.lateness.snapshot(),
        }
    }

    /// Stops taking due reminders and lets sends in progress finish and record their outcome,
    /// for at most [`SchedulerConfig::shutdown_limit`]. Sends not started (waiting for their
    /// time or for a send slot) stay claimed, and go after the restart.
    pub async fn shutdown(&self) {
        self.worker.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut task) = task else { return };
        let limit = self.worker.config.shutdown_limit;
        match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the reminder scheduler task failed"),
            Err(_) => {
                tracing::warn!(
                    ?limit,
                    "reminder sends still running at the shutdown limit were abandoned; \
                     they stay claimed and go again after the restart"
                );
                task.abort();
            }
        }
        // A partial index would put the guilds it had not read yet last: keep the order saved
        // when it was complete.
        if *self.worker.indexed.borrow() {
            self.worker.save_reading_order().await;
        }
    }
}

/// `on_disk` with the guilds of `order` first, in that order, then the rest as they were: the
/// start-up reads follow it, so the guilds whose reminders came due soonest when the order was
/// saved are read, and their reminders sent, before the rest.
fn soonest_first(mut on_disk: Vec<u64>, order: &[u64]) -> Vec<u64> {
    let rank: HashMap<u64, usize> = order.iter().enumerate().map(|(i, &g)| (g, i)).collect();
    on_disk.sort_by_key(|guild| rank.get(guild).copied().unwrap_or(usize::MAX));
    on_disk
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Reads `guild`'s active reminders for the index: each one that cannot be read is logged and
/// left out, the rest are returned.
async fn read_guild(store: &GuildDatabaseManager, guild: u64) -> Result<Vec<NextLook>, StoreError> {
    let rows = store
        .with_existing_guild(guild, |c| active_due_times(c))
        .await??;
    let readable = rows.into_iter().filter_map(|row| {
        row.inspect_err(
            |e| tracing::error!(guild, error = %e, "reminder unreadable; not scheduled"),
        )
        .ok()
    });
    Ok(readable.collect())
}

/// Whether a guild that could not be used may be usable later (busy, at capacity, out of file
/// descriptors), rather than gone, quarantined or not this process's.
fn may_pass(error: &StoreError) -> bool {
    !matches!(
        error,
        StoreError::InvalidGuildId(_)
            | StoreError::UnknownGuild(_)
            | StoreError::BeingDeleted(_)
            | StoreError::NotOurShard { .. }
            | StoreError::Quarantined { .. }
            | StoreError::ShuttingDown
    )
}

fn skipped(guild: u64, error: &StoreError) {
    if may_pass(error) {
        tracing::error!(guild, %error, "guild skipped for now: its reminders could not be read; will read it again");
    } else {
        tracing::error!(guild, %error, "guild skipped: its reminders could not be read");
    }
}

struct Shared {
    index: Mutex<Index>,
    /// Woken when an entry becomes the earliest, so the task does not oversleep it.
    wake: Notify,
    /// Woken when a guild is to be read again.
    reread: Notify,
    /// Whose turn it is with each reminder: its send's last moments, or a member's change.
    turns: Turns,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Index> {
        // Index operations do not panic part-way, so a poisoned index is still consistent.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One turn at a time per reminder (see [`Scheduler::change`]). Only reminders someone is
/// waiting for or holding have an entry.
#[derive(Default)]
struct Turns(Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>);

/// A reminder's turn, held until dropped.
struct Turn<'a> {
    turns: &'a Turns,
    key: Key,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `key`'s turn (tokio's mutex queues its waiters fairly).
    async fn take(&self, key: Key) -> Turn<'_> {
        let lock = self.entries().entry(key).or_default().clone();
        let mut turn = Turn {
            turns: self,
            key,
            held: None,
        };
        turn.held = Some(lock.lock_owned().await);
        turn
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.held.take();
        let mut entries = self.turns.entries();
        // Nobody else holds or waits for it (their `Turn` would hold a clone).
        if entries
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            entries.remove(&self.key);
        }
    }
}

/// (guild, reminder)
type Key = (u64, u64);

#[derive(Default)]
struct Index {
    /// Ordered by due time: the first entry is the next to send.
    queue: BTreeSet<(DateTime<Utc>, u64, u64)>,
    /// Each queued reminder's due time, by guild, to find its queue entry.
    due: HashMap<u64, HashMap<u64, DateTime<Utc>>>,
    /// Reminders being sent, with what the bot said about them meanwhile.
    in_flight: HashMap<Key, Meanwhile>,
    /// Guilds to be read again: those whose reminders could not be read (busy, at capacity,
    /// out of file descriptors), and those being reloaded, in case that read never ends.
    unread: HashMap<u64, Unread>,
    /// How often each guild was forgotten or paused: a read begun before must not put the
    /// guild's reminders back.
    forgets: HashMap<u64, u64>,
    /// How often the bot changed each guild's entries or had it reloaded: a read begun before
    /// may hold a row from before the change, so its guild is read again instead.
    changes: HashMap<u64, u64>,
    /// Guilds whose reminders wait (the bot was removed from them): kept out of the queue.
    paused: HashSet<u64>,
}

/// Where a read of one guild began, to tell at its end what happened to the guild meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation {
    forgets: u64,
    changes: u64,
}

#[derive(Clone, Copy)]
struct Unread {
    at: Instant,
    /// Failed reads in a row; each one doubles the wait, up to [`MAX_REREAD_DOUBLINGS`].
    failures: u32,
}

#[derive(Clone, Copy)]
enum Meanwhile {
    Nothing,
    Upserted(DateTime<Utc>),
    Removed,
    /// Look at it again before sending (`Scheduler::recheck_guild`).
    Recheck,
}

impl Index {
    /// Returns whether the entry is now the earliest.
    fn upsert(&mut self, guild: u64, id: u64, due: DateTime<Utc>) -> bool {
        if self.paused.contains(&guild) {
            return false;
        }
        if let Some(meanwhile) = self.in_flight.get_mut(&(guild, id)) {
            *meanwhile = Meanwhile::Upserted(due);
            return false;
        }
        self.unqueue(guild, id);
        self.due.entry(guild).or_default().insert(id, due);
        self.queue.insert((due, guild, id));
        self.queue.first() == Some(&(due, guild, id))
    }

    fn remove(&mut self, guild: u64, id: u64) {
        if let Some(meanwhile) = self.in_flight.get_mut(&(guild, id)) {
            *meanwhile = Meanwhile::Removed;
        }
        self.unqueue(guild, id);
    }

    fn forget_guild(&mut self, guild: u64) {
        self.unqueue_guild(guild);
        for (_, meanwhile) in self.in_flight.iter_mut().filter(|((g, _), _)| *g == guild) {
            *meanwhile = Meanwhile::Removed;
        }
        self.unread.remove(&guild);
        self.paused.remove(&guild);
        *self.forgets.entry(guild).or_default() += 1;
    }

    fn pause_guild(&mut self, guild: u64) {
        self.forget_guild(guild);
        self.paused.insert(guild);
    }

    /// Before `guild` is read afresh: its queued entries go, its in-flight ones are looked at
    /// again, and it is to be read again after `fallback` unless this read fills the index (its
    /// caller may drop it half-way). Returns the generation the read belongs to.
    fn unload(&mut self, guild: u64, fallback: Duration) -> Generation {
        self.changed(guild);
        self.unqueue_guild(guild);
        self.recheck_guild(guild);
        let at = Instant::now() + fallback;
        self.unread.insert(guild, Unread { at, failures: 0 });
        self.generation(guild)
    }

    fn unqueue_guild(&mut self, guild: u64) {
        for (id, due) in self.due.remove(&guild).unwrap_or_default() {
            self.queue.remove(&(due, guild, id));
        }
    }

    /// Which reads of `guild` may still fill the index: those begun at this generation.
    fn generation(&self, guild: u64) -> Generation {
        Generation {
            forgets: self.forgets.get(&guild).copied().unwrap_or(0),
            changes: self.changes.get(&guild).copied().unwrap_or(0),
        }
    }

    /// The bot changed `guild`'s entries (or is reloading it).
    fn changed(&mut self, guild: u64) {
        *self.changes.entry(guild).or_default() += 1;
    }

    /// Puts what a read of `guild` begun at `generation` found into the index, unless the
    /// guild was forgotten since; if the bot changed the guild since, it is to be read again
    /// now instead (the read may have seen a row before a change, and merging it would undo
    /// the change). Returns whether an entry is now the earliest.
    fn merge(&mut self, guild: u64, generation: Generation, found: Vec<NextLook>) -> bool {
        let now = self.generation(guild);
        if now.forgets != generation.forgets {
            return false;
        }
        if now != generation {
            let at = Instant::now();
            self.unread.insert(guild, Unread { at, failures: 0 });
            return false;
        }
        self.unread.remove(&guild);
        found.into_iter().fold(false, |earliest, (id, due)| {
            self.upsert(guild, id, due) | earliest
        })
    }

    /// A read of `guild` failed with `error`: if that may pass, read it again after
    /// `first_wait`, doubled for each failure in a row.
    fn read_failed(&mut self, guild: u64, error: &StoreError, first_wait: Duration) {
        if !may_pass(error) {
            self.unread.remove(&guild);
            return;
        }
        let failures = self.unread.get(&guild).map_or(0, |u| u.failures) + 1;
        let wait = first_wait.saturating_mul(1 << (failures - 1).min(MAX_REREAD_DOUBLINGS));
        let at = Instant::now() + wait;
        self.unread.insert(guild, Unread { at, failures });
    }

    /// The guild to read again now, with its generation; otherwise when the next one is due.
    fn next_reread(&self, now: Instant) -> Result<(u64, Generation), Option<Instant>> {
        match self.unread.iter().min_by_key(|(_, unread)| unread.at) {
            Some((&guild, unread)) if unread.at <= now => Ok((guild, self.generation(guild))),
            next => Err(next.map(|(_, unread)| unread.at)),
        }
    }

    fn recheck_guild(&mut self, guild: u64) {
        for (_, meanwhile) in self.in_flight.iter_mut().filter(|((g, _), _)| *g == guild) {
            if let Meanwhile::Nothing = meanwhile {
                *meanwhile = Meanwhile::Recheck;
            }
        }
    }

    /// Whether the bot said nothing about in-flight `key` since it was taken.
    fn unchanged(&self, key: Key) -> bool {
        matches!(self.in_flight.get(&key), Some(Meanwhile::Nothing))
    }

    fn unqueue(&mut self, guild: u64, id: u64) {
        let Some(ids) = self.due.get_mut(&guild) else {
            return;
        };
        if let Some(due) = ids.remove(&id) {
            self.queue.remove(&(due, guild, id));
        }
        if ids.is_empty() {
            self.due.remove(&guild);
        }
    }

    /// Takes the earliest entry, with its time, if it is due by `horizon`; otherwise says when
    /// the earliest is.
    fn pop_due(
        &mut self,
        horizon: DateTime<Utc>,
    ) -> Result<(Key, DateTime<Utc>), Option<DateTime<Utc>>> {
        match self.queue.first() {
            Some(&(due, guild, id)) if due <= horizon => {
                self.unqueue(guild, id);
                self.in_flight.insert((guild, id), Meanwhile::Nothing);
                Ok(((guild, id), due))
            }
            first => Err(first.map(|&(due, _, _)| due)),
        }
    }

    /// A send of `key` ended; `next` is when the database says to look again. Returns whether
    /// the entry is now the earliest.
    fn settle(&mut self, (guild, id): Key, next: Option<DateTime<Utc>>) -> bool {
        let next = match self.in_flight.remove(&(guild, id)) {
            Some(Meanwhile::Nothing | Meanwhile::Recheck) => next,
            // The bot changed it while it was being sent; the earlier time is safe, because a
            // look that finds nothing due just settles again.
            Some(Meanwhile::Upserted(due)) => Some(next.map_or(due, |next| next.min(due))),
            Some(Meanwhile::Removed) | None => None,
        };
        next.is_some_and(|due| self.upsert(guild, id, due))
    }
}

struct Worker {
    /// Set to stop the task: by [`Scheduler::shutdown`], or when the token was refused.
    stop: watch::Sender<bool>,
    /// Set once Discord refused the bot's token.
    token_refused: watch::Sender<bool>,
    /// Set once every guild on disk at start-up has been read.
    indexed: watch::Sender<bool>,
    shared: Shared,
    store: GuildDatabaseManager,
    deliver: Arc<dyn Deliver>,
    clock: Arc<dyn Clock>,
    /// Permits for guild reads and writes.
    bookkeeping: Semaphore,
    /// Permits for sends.
    sending: Semaphore,
    counts: SendCounts,
    config: SchedulerConfig,
}

impl Worker {
    /// Runs the sends, the rereads and the index build each as a task of its own: the store
    /// runs a use of an open guild in place, holding up whatever shares its task, and a read
    /// must not hold up the sends. Aborting this task aborts all three with their set; a panic
    /// in one ends it as it would have ended a single task.
    async fn run(self: Arc<Self>, stop: watch::Receiver<bool>, guilds: Vec<u64>) {
        let mut loops = JoinSet::new();
        loops.spawn(self.clone().send_due(stop.clone()));
        let worker = self.clone();
        let reread_stop = stop.clone();
        loops.spawn(async move { worker.reread(reread_stop).await });
        loops.spawn(async move { self.build_index(guilds, stop).await });
        while let Some(done) = loops.join_next().await {
            if let Err(e) = done {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }

    /// Reads `guilds` into the index, as many at once as guild reads may run. The reads take
    /// their turn for a guild with the claims and records of the reminders already found, so
    /// a reminder found early is sent while the rest are read; a read that fails is logged and
    /// its guild read again later.
    async fn build_index(&self, guilds: Vec<u64>, mut stop: watch::Receiver<bool>) {
        let started = Instant::now();
        let reads = futures::stream::iter(guilds)
            .map(|guild| async move {
                let generation = self.shared.lock().generation(guild);
                if let Err(e) = self.read_into_index(guild, generation).await {
                    skipped(guild, &e);
                }
            })
            .buffer_unordered(self.config.max_concurrent.max(1))
            .for_each(|()| std::future::ready(()));
        tokio::select! {
            () = side_by_side(reads) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        self.indexed.send_replace(true);
        tracing::info!(
            reminders = self.shared.lock().queue.len(),
            elapsed = ?started.elapsed(),
            "reminder index built"
        );
        self.save_reading_order().await;
    }

    /// Saves the guilds by their next reminder, those being sent first, for the next start
    /// (see [`soonest_first`]): reading a large fleet takes seconds, and the reminders due in
    /// them should not wait for guilds that have nothing due.
    async fn save_reading_order(&self) {
        let order = {
            let index = self.shared.lock();
            let mut seen = HashSet::new();
            index
                .in_flight
                .keys()
                .map(|&(guild, _)| guild)
                .chain(index.queue.iter().map(|&(_, guild, _)| guild))
                .filter(|guild| seen.insert(*guild))
                .collect::<Vec<_>>()
        };
        if let Err(e) = self.store.save_reminder_order(order).await {
            tracing::warn!(error = %e, "the reminder reading order could not be saved");
        }
    }

    /// Reads again, one at a time, the guilds whose reminders could not be read.
    async fn reread(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let next = self.shared.lock().next_reread(Instant::now());
            match next {
                Ok((guild, generation)) => tokio::select! {
                    read = self.read_into_index(guild, generation) => match read {
                        Ok(()) => tracing::info!(guild, "guild's reminders read after all"),
                        Err(e) => skipped(guild, &e),
                    },
                    _ = stop.wait_for(|stopped| *stopped) => return,
                },
                Err(next) => tokio::select! {
                    () = sleep(next.map(|at| at.saturating_duration_since(Instant::now()))) => {}
                    () = self.shared.reread.notified() => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                },
            }
        }
    }

    /// Reads `guild` into the index for a read begun at `generation` (see [`read_guild`]).
    /// A failure that may pass has the guild read again later.
    async fn read_into_index(&self, guild: u64, generation: Generation) -> Result<(), StoreError> {
        let read = {
            let _permit = self.bookkeeping.acquire().await.expect("never closed");
            read_guild(&self.store, guild).await
        };
        let mut index = self.shared.lock();
        match read {
            Ok(found) => {
                if index.merge(guild, generation, found) {
                    self.shared.wake.notify_one();
                }
                if index.unread.contains_key(&guild) {
                    self.shared.reread.notify_one();
                }
                Ok(())
            }
            Err(e) => {
                if index.generation(guild).forgets == generation.forgets {
                    index.read_failed(guild, &e, self.config.store_retry);
                    self.shared.reread.notify_one();
                }
                Err(e)
            }
        }
    }

    /// Sends each reminder as it comes due, until stopped.
    async fn send_due(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let ahead =
            chrono::Duration::from_std(self.config.claim_ahead).unwrap_or(chrono::Duration::zero());
        let mut sends = JoinSet::new();
        loop {
            while let Some(done) = sends.try_join_next() {
                report_panic(done);
            }
            let horizon = self
                .clock
                .now()
                .checked_add_signed(ahead)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let popped = self.shared.lock().pop_due(horizon);
            match popped {
                Ok((key, at)) => {
                    let permit = tokio::select! {
                        permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                        _ = stop.changed() => break,
                    };
                    let (worker, stop) = (self.clone(), stop.clone());
                    sends.spawn(async move {
                        let next = worker.send(key, at, stop).await;
                        drop(permit);
                        if worker.shared.lock().settle(key, next) {
                            worker.shared.wake.notify_one();
                        }
                    });
                }
                Err(earliest) => {
                    let nap = earliest
                        .map(|due| (due - horizon).to_std().unwrap_or_default().min(MAX_SLEEP));
                    tokio::select! {
                        () = sleep(nap) => {}
                        () = self.shared.wake.notified() => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        while let Some(done) = sends.join_next().await {
            report_panic(done);
        }
    }

    /// One look at a reminder the index has for `at`: claim it (up to `claim_ahead` early),
    /// wait for `at`, send, record. Returns when to look at it again.
    async fn send(
        &self,
        (guild, id): Key,
        at: DateTime<Utc>,
        mut stop: watch::Receiver<bool>,
    ) -> Option<DateTime<Utc>> {
        let policy = self.config.policy;
        let now = self.clock.now();
        let send_at = at.max(now);
        let claiming = self.on_guild(guild, move |c| {
            delivery::claim(c, guild, id, now, send_at, &policy)
        });
        let claimed = tokio::select! {
            claimed = claiming => claimed,
            // A burst queued for the claim is left to the next start; a claim already running
            // may still be written, and is then taken again as after a crash.
            _ = stop.wait_for(|stopped| *stopped) => return None,
        };
        let delivery = match self.checked(guild, id, claimed) {
            Ok(Claim::Send(delivery)) => delivery,
            Ok(Claim::Settled { next }) | Err(next) => return next,
        };
        self.counts.claimed.fetch_add(1, Ordering::Relaxed);
        let ready = async {
            let wait = (send_at - self.clock.now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            self.sending.acquire().await.expect("never closed")
        };
        let permit = tokio::select! {
            permit = ready => permit,
            // Not started, so left claimed: `claim` takes it again after a restart.
            _ = stop.wait_for(|stopped| *stopped) => return None,
        };
        // Checked with the send slot and the reminder's turn in hand: a change made while this
        // waited for its time, the slot or the turn (a cancel, an edit, an opt-out, an erasure,
        // a forgotten guild) calls it off. The turn is held until the outcome is recorded.
        let turn = tokio::select! {
            turn = self.shared.turns.take((guild, id)) => turn,
            _ = stop.wait_for(|stopped| *stopped) => return None,
        };
        let due_at = delivery.due_at;
        if !self.shared.lock().unchanged((guild, id)) {
            drop(permit);
            let released = self
                .on_guild(guild, move |c| delivery::release(c, id, due_at))
                .await;
            // Released or not, `settle` looks at it again (or drops it) as the change says.
            let _ = self.checked(guild, id, released);
            return Some(send_at);
        }
        let outcome =
            tokio::time::timeout(self.config.delivery_timeout, self.deliver.deliver(delivery))
                .await
                .unwrap_or_else(|_| Err(DeliveryError::Transient("the send timed out".into())));
        drop(permit);
        match &outcome {
            Err(DeliveryError::Unauthorized) => {
                // Every send would fail the same way; stopping keeps each reminder as it is and
                // spares Discord a burst of refused requests.
                if !self.token_refused.send_replace(true) {
                    tracing::error!(
                        "Discord refused the bot's token (401 Unauthorized): reminders stop \
                         here, none is marked failed; set DISCORD_TOKEN to the token from the \
                         developer portal's Bot page and start the bot again"
                    );
                }
                self.stop.send_replace(true);
                return None;
            }
            Err(e) => {
                tracing::warn!(guild, reminder = id, %due_at, error = %e, "reminder not delivered");
            }
            Ok(()) => {
                let late = (self.clock.now() - due_at).to_std().unwrap_or_default();
                self.counts.lateness.record(late);
            }
        }
        let failed = outcome.is_err();
        let next = self.record(guild, id, due_at, outcome).await;
        drop(turn);
        if failed {
            self.tell(guild, id).await;
        }
        next
    }

    /// DMs the creator of reminder `id` the notice its failure left, if they opted in; a
    /// notice not sent (DMs closed, Discord down) waits for their next `/remind`.
    async fn tell(&self, guild: u64, id: u64) {
        let found = self
            .on_guild(guild, move |c| notice::dm_notice(c, id))
            .await;
        let Ok(Some((user, text))) = self.checked(guild, id, found) else {
            return;
        };
        let sent = tokio::time::timeout(
            self.config.delivery_timeout,
            self.deliver.notify(user, text),
        )
        .await;
        match sent {
            Ok(Ok(())) => {
                let told = self.on_guild(guild, move |c| notice::told(c, id)).await;
                // Not recorded: told again at their next /remind, which is the lesser harm.
                let _ = self.checked(guild, id, told);
            }
            Ok(Err(e)) => {
                tracing::info!(guild, reminder = id, error = %e, "notice not DMed; kept for the member's next /remind");
            }
            Err(_) => {
                tracing::info!(
                    guild,
                    reminder = id,
                    "notice DM timed out; kept for the member's next /remind"
                );
            }
        }
    }

    /// Records the outcome of a send of `(id, due_at)`, trying again for as long as the
    /// database cannot take it (busy, at capacity): a send that went out is never repeated
    /// for want of a record. Only a restart before it is recorded sends it again.
    async fn record(
        &self,
        guild: u64,
        id: u64,
        due_at: DateTime<Utc>,
        outcome: Result<(), DeliveryError>,
    ) -> Option<DateTime<Utc>> {
        let (policy, ended) = (self.config.policy, self.clock.now());
        let mut wait = RECORD_RETRY;
        loop {
            let outcome = outcome.clone();
            let finished = self
                .on_guild(guild, move |c| {
                    delivery::finish(c, id, due_at, outcome, ended, &policy)
                })
                .await;
            match self.checked(guild, id, finished) {
                Ok(next) | Err(next @ None) => return next,
                Err(Some(_)) => tokio::time::sleep(wait).await,
            }
            wait = (wait * 2).min(self.config.store_retry);
        }
    }

    /// Runs `f` on `guild`'s database once a bookkeeping permit is free.
    async fn on_guild<T: Send + 'static>(
        &self,
        guild: u64,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, ReminderError> + Send + 'static,
    ) -> Result<Result<T, ReminderError>, StoreError> {
        let _permit = self.bookkeeping.acquire().await.expect("never closed");
        self.store.with_existing_guild(guild, f).await
    }

    /// Unwraps a guild call. An `Err` says when to look at the reminder again: `None` when
    /// its guild is gone or the row is unreadable, a while later when the database failed.
    fn checked<T>(
        &self,
        guild: u64,
        id: u64,
        result: Result<Result<T, ReminderError>, StoreError>,
    ) -> Result<T, Option<DateTime<Utc>>> {
        let retry = || {
            let wait = chrono::Duration::from_std(self.config.store_retry)
                .unwrap_or(chrono::Duration::MAX);
            Err(self.clock.now().checked_add_signed(wait))
        };
        match result {
            Ok(Ok(value)) => Ok(value),
            Err(e) if !may_pass(&e) => Err(None),
            Err(e) => {
                tracing::error!(guild, reminder = id, error = %e, "guild database unavailable; will retry");
                retry()
            }
            Ok(Err(e @ ReminderError::Corrupt { .. })) => {
                tracing::error!(guild, reminder = id, error = %e, "reminder unreadable; not scheduled");
                Err(None)
            }
            Ok(Err(e)) => {
                tracing::error!(guild, reminder = id, error = %e, "reminder bookkeeping failed; will retry");
                retry()
            }
        }
    }
}

/// Sleeps `nap`, or until woken when there is nothing to wait for.
async fn sleep(nap: Option<Duration>) {
    match nap {
        Some(nap) => tokio::time::sleep(nap).await,
        None => std::future::pending().await,
    }
}

fn report_panic(done: Result<(), JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a reminder send panicked");
    }
}

#[cfg(test)]
mod tests;
