//! The only owner of per-guild SQLite files. Maps a guild id (a u64, never a string) to
//! `<data_dir>/guilds/<id>/quotes.db`, keeps at most `max_open_guilds` guilds' pools of
//! connections (`open::GuildConnections`; closing first those `slots.rs` picks), and runs
//! every closure given to [`GuildDatabaseManager::with_guild`] where it blocks no other task:
//! on the blocking pool, or, on a multi-thread runtime, on the caller's thread once tokio's
//! `block_in_place` has handed that worker's other tasks away.
//!
//! Guarantees: a leased pool is never evicted or closed; concurrent first uses of a guild
//! share one open; at the cap an open waits (bounded) for a pool to become idle rather than
//! exceeding it; a guild being deleted is never reopened while the deletion runs; shutdown
//! waits for running leases and checkpoints every WAL. With `keep_spare_guild`, each new guild
//! is followed by making the next spare (`spare.rs`) in the background.
//! Not here: SQL about quotes or reminders (domain modules), migrations (`migrate.rs`),
//! how a file is opened (`open.rs`).

use std::{
    collections::HashSet,
    future::Future,
    ops::Range,
    panic::{catch_unwind, AssertUnwindSafe},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::Duration,
};

use rusqlite::Connection;
use tokio::{
    sync::{oneshot, watch, Notify},
    task::JoinHandle,
    time::Instant,
};

use super::{
    open::{self, ConnectionSettings, GuildConnections, Origin, Synchronous, Template},
    owner::OwnerLock,
    paths::{self, DataDir, GuildId, SIDE_FILES},
    slots::Slots,
    spare, Migrations, StoreError,
};
use crate::timings::{Timings, TimingsSnapshot};

/// The Discord gateway shards this process runs. A guild lives with the process that owns
/// its shard, so no database file is ever shared between machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwnership {
    pub count: u64,
    pub owned: Range<u64>,
}

impl ShardOwnership {
    /// Discord's rule: `(guild_id >> 22) % shard_count`.
    pub fn shard_of(&self, guild: u64) -> u64 {
        (guild >> 22) % self.count
    }
}

/// What the manager needs to know; `StoreConfig::new(data_dir)` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub max_open_guilds: usize,
    pub idle_timeout: Duration,
    pub connections_per_guild: u32,
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
    /// The largest one guild's database may grow (see `open::ConnectionSettings`).
    pub max_guild_bytes: u64,
    /// How long a use may wait for a free slot when every open pool is leased.
    pub open_wait: Duration,
    /// `None`: this process owns every guild.
    pub shards: Option<ShardOwnership>,
    /// Keep one empty guild ready on disk (`spare.rs`), so that a new guild's first use costs
    /// a rename instead of five fsyncs. For the bot, which meets new guilds one at a time;
    /// off by default, so one-shot operator jobs leave nothing behind.
    pub keep_spare_guild: bool,
    pub migrations: Migrations,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_open_guilds: 256,
            idle_timeout: Duration::from_secs(600),
            connections_per_guild: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            max_guild_bytes: 256 << 20,
            open_wait: Duration::from_secs(10),
            shards: None,
            keep_spare_guild: false,
            migrations: Migrations::embedded(),
        }
    }

    /// What every connection of this store is opened with (see [`configure`]). Public so
    /// that the benchmarks' bare-rusqlite baselines open their files exactly as the store does.
    ///
    /// [`configure`]: super::configure
    pub fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            busy_timeout: self.busy_timeout,
            synchronous: self.synchronous,
            max_guild_bytes: self.max_guild_bytes,
        }
    }
}

/// A snapshot of the manager's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub open_pools: usize,
    /// Pools whose file is being opened, and pools being closed (evicted, idle, or their
    /// guild deleted) whose files are not closed yet. Both count toward `max_open_guilds`
    /// with the open ones. A pool evicted to make room for an opening one is closed by the
    /// use that opens, before it opens: the two count once, as the opening one.
    pub opening_pools: usize,
    pub closing_pools: usize,
    pub leased: usize,
    /// Uses served by an already open pool.
    pub hits: u64,
    /// Uses that had to open the guild's file (or wait for another use opening it).
    pub misses: u64,
    /// Files actually opened: with single-flight, at most one per miss burst. The sum of
    /// `reopens` and `created`.
    pub opens: u64,
    /// Opens of a guild database that was already on disk.
    pub reopens: u64,
    /// Guild databases created: the sum of those made from the spare (`keep_spare_guild`)
    /// and those made from the template.
    pub created: u64,
    pub created_from_spare: u64,
    pub created_from_template: u64,
    pub evictions: u64,
    pub idle_closes: u64,
    /// Uses refused with [`StoreError::AtCapacity`], whoever asked (commands, the
    /// scheduler, operator jobs).
    pub at_capacity: u64,
    /// How long each successful open took ([`OPEN_LATENCY_BOUNDS`]).
    pub open_latency: TimingsSnapshot,
    /// How long uses waited for a slot ([`SLOT_WAIT_BOUNDS`]): those that found the cap
    /// reached (or their guild's pool still closing), whether they then got one or were
    /// refused at `open_wait`.
    pub slot_wait: TimingsSnapshot,
}

/// Buckets of [`Stats::open_latency`]: a reopen takes about a millisecond, a creation a few,
/// a migration or a cold disk up to seconds.
pub const OPEN_LATENCY_BOUNDS: &[Duration] = &[
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// Buckets of [`Stats::slot_wait`], up to past the default `open_wait` (10 s), at which a
/// use is refused.
pub const SLOT_WAIT_BOUNDS: &[Duration] = &[
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Cheap to clone: every clone is a handle on the same store.
#[derive(Clone)]
pub struct GuildDatabaseManager {
    inner: Arc<Inner>,
}

struct Inner {
    dir: DataDir,
    config: StoreConfig,
    settings: ConnectionSettings,
    template: Template,
    state: Mutex<State>,
    /// Woken whenever a lease ends, an open finishes, or a pool or tombstone goes away:
    /// everything that waits on the state re-checks it then.
    changed: Notify,
    counters: Counters,
    open_latency: Timings,
    slot_wait: Timings,
    /// Set when a guild was created and the store keeps a spare: the next lease to end
    /// starts making one, so the member whose guild took the spare is not kept waiting.
    spare_wanted: AtomicBool,
    /// The background job making the next spare guild, if one has run; shutdown waits for it.
    spare_refill: Mutex<Option<JoinHandle<()>>>,
    /// This store owns the data directory until shutdown has closed every file.
    owner: Mutex<Option<OwnerLock>>,
    /// Held while `<data_dir>/reminder-order` is rewritten: by the scheduler's saves, and by a
    /// guild's deletion, which takes the guild out of it.
    reminder_order: Mutex<()>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    reopens: AtomicU64,
    created_from_spare: AtomicU64,
    created_from_template: AtomicU64,
    evictions: AtomicU64,
    idle_closes: AtomicU64,
    at_capacity: AtomicU64,
}

struct State {
    /// Every slot counts against the cap, whether its open is still running or done.
    slots: Slots<GuildId, Slot>,
    /// Tombstones: guilds whose deletion is running. No use may open them meanwhile.
    deleting: HashSet<GuildId>,
    /// Guilds whose evicted, idle or deleted pool is being closed in the background. Until
    /// the close (for an idle guild, a WAL checkpoint first) is done their files are still
    /// open: they count toward the cap, shutdown waits for them, and a reopen or a deletion
    /// of the guild waits rather than running beside the close.
    closing: HashSet<GuildId>,
    /// How many of the `closing` pools are closed by the use that evicted them, just before
    /// it opens its own guild in their room: that room is the opening slot's, so they do not
    /// count toward the cap a second time.
    handed_over: usize,
    shutting_down: bool,
}

impl State {
    /// Whether any use of `guild` may start now: not while the store shuts down, and not
    /// while the guild is being deleted.
    fn admits(&self, guild: GuildId) -> Result<(), StoreError> {
        if self.shutting_down {
            return Err(StoreError::ShuttingDown);
        }
        if self.deleting.contains(&guild) {
            return Err(StoreError::BeingDeleted(guild.get()));
        }
        Ok(())
    }
}

enum Slot {
    /// Another use is opening the file; the value turns `Some` when it is done.
    Opening(watch::Receiver<Option<Opened>>),
    Open(Arc<GuildPool>),
}

/// How an open that other uses wait on ended.
#[derive(Clone)]
enum Opened {
    Ready,
    /// The guild has no database and the opening use was not allowed to create one. That is
    /// its answer, not the file's: each waiter decides for itself (and may create it).
    Absent,
    /// The failure, as text, so waiters report it instead of retrying.
    Failed(String),
}

struct GuildPool {
    pool: GuildConnections,
    /// Changed only under the state lock when rising, so eviction, which checks it under
    /// the same lock, never picks a pool that is about to be leased. Shared with each
    /// [`Lease`] so a lease can let go of the pool before it counts itself out: at zero, the
    /// slot's handle is the last, and closing it really closes the files.
    leases: Arc<AtomicUsize>,
    last_used: Mutex<Instant>,
}

impl GuildPool {
    fn is_idle(&self) -> bool {
        self.leases.load(Ordering::Acquire) == 0
    }

    /// Copies the WAL into the database and empties it, leaving the database complete on its
    /// own; closing does not (see `open.rs`). It does not wait for other connections: a
    /// reader elsewhere (an operator's backup or check) holding an older snapshot would
    /// otherwise keep the guild closing for the whole busy timeout. What it cannot copy stays
    /// in the WAL, which SQLite reads back at the next open, and a failure is logged: the WAL
    /// still holds it all. Only for a pool about to be closed, since it leaves the
    /// connection it used without a busy timeout.
    fn checkpoint(&self) {
        let checkpointed = self.pool.get().map_err(|e| e.to_string()).and_then(|conn| {
            conn.busy_timeout(Duration::ZERO)
                .and_then(|()| {
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                        row.get::<_, bool>(0)
                    })
                })
                .map_err(|e| e.to_string())
        });
        match checkpointed {
            Ok(false) => {}
            Ok(true) => tracing::debug!("WAL checkpoint cut short by another connection"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// A use of one guild's pool. Dropping it (on the blocking thread, once the closure has
/// returned or panicked) ends the lease.
struct Lease {
    pool: Option<Arc<GuildPool>>,
    leases: Arc<AtomicUsize>,
    inner: Arc<Inner>,
}

impl Lease {
    /// Counts a new lease; called under the state lock.
    fn new(pool: &Arc<GuildPool>, inner: &Arc<Inner>) -> Self {
        pool.leases.fetch_add(1, Ordering::AcqRel);
        Self {
            pool: Some(pool.clone()),
            leases: pool.leases.clone(),
            inner: inner.clone(),
        }
    }

    fn pool(&self) -> &GuildConnections {
        &self.pool.as_ref().expect("held until drop").pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            *pool.last_used.lock().expect("lock poisoned") = Instant::now();
        }
        // Before the lease counts itself out: shutdown, which waits for leases, then finds
        // the job.
        if self.inner.spare_wanted.swap(false, Ordering::AcqRel) {
            self.inner.make_spare_in_background();
        }
        self.leases.fetch_sub(1, Ordering::AcqRel);
        self.inner.changed.notify_waiters();
    }
}

impl GuildDatabaseManager {
    /// Takes the data directory for this process ([`StoreError::Owned`] if another holds it),
    /// builds the store and starts its idle-close task; call inside a tokio runtime.
    pub fn new(config: StoreConfig) -> Result<Self, StoreError> {
        assert!(
            config.max_open_guilds > 0,
            "max_open_guilds must be at least 1"
        );
        let owner = OwnerLock::acquire(&config.data_dir, config.shards.as_ref())?;
        let dir = DataDir::new(&config.data_dir);
        let inner = Arc::new(Inner {
            settings: config.connection_settings(),
            template: Template::build(&config.migrations)?,
            state: Mutex::new(State {
                slots: Slots::new(config.max_open_guilds),
                deleting: HashSet::new(),
                closing: HashSet::new(),
                handed_over: 0,
                shutting_down: false,
            }),
            changed: Notify::new(),
            counters: Counters::default(),
            open_latency: Timings::new(OPEN_LATENCY_BOUNDS),
            slot_wait: Timings::new(SLOT_WAIT_BOUNDS),
            spare_wanted: AtomicBool::new(false),
            spare_refill: Mutex::new(None),
            owner: Mutex::new(Some(owner)),
            reminder_order: Mutex::new(()),
            dir,
            config,
        });
        tokio::spawn(close_idle_pools(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Runs `f` on a connection to `guild`'s database, creating the database if it does not
    /// exist yet; the lease ends when `f` returns. `f` never runs on a thread other tasks
    /// wait for: on a multi-thread runtime it runs in place (tokio's `block_in_place`), else
    /// on the blocking pool. In place, it holds up what shares this task, such as the other
    /// branches of a `join!`: to work on several guilds at once, spawn a task for each, or
    /// run the whole [`side_by_side`].
    pub async fn with_guild<T, F>(&self, guild: u64, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.lease(guild, true, f).await
    }

    /// Like [`with_guild`](Self::with_guild), but never creates a database:
    /// [`StoreError::UnknownGuild`] when the guild has none.
    pub async fn with_existing_guild<T, F>(&self, guild: u64, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.lease(guild, false, f).await
    }

    /// Runs `f` on a read-only connection of its own, outside the pool cache: no PRAGMA that
    /// writes, no migration. For reports that must not change what they look at.
    pub async fn inspect_guild<T, F>(&self, guild: u64, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let guild = GuildId::new(guild)?;
        self.lock().admits(guild)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open::open_read_only(&inner.dir, guild, inner.config.busy_timeout)?;
            Ok(f(&conn))
        })
        .await?
    }

    /// Every guild with a database on disk, ascending.
    pub async fn guilds_on_disk(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.inner.dir.clone();
        let guilds = tokio::task::spawn_blocking(move || dir.guilds_on_disk()).await??;
        Ok(guilds.into_iter().map(GuildId::get).collect())
    }

    /// The guilds in the order the reminder scheduler last saved with
    /// [`Self::save_reminder_order`]; empty when it never did or the file cannot be read. It
    /// only orders the scheduler's start-up reads, so a lost or stale list costs lateness,
    /// never a reminder.
    pub async fn reminder_order(&self) -> Vec<u64> {
        let dir = self.inner.dir.clone();
        match tokio::task::spawn_blocking(move || read_reminder_order(&dir)).await {
            Ok(Ok(order)) => order,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the reminder reading order could not be read");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the reminder reading order failed");
                Vec::new()
            }
        }
    }

    /// Replaces the saved reminder reading order (see [`Self::reminder_order`]).
    pub async fn save_reminder_order(&self, guilds: Vec<u64>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _rewriting = inner.reminder_order.lock().expect("lock poisoned");
            write_reminder_order(&inner.dir, &guilds)
        })
        .await?
    }

    /// About how many guilds have a database on disk, counted cheaply: every guild directory,
    /// including one whose creation or deletion is under way.
    pub async fn guild_dirs_on_disk(&self) -> Result<usize, StoreError> {
        let dir = self.inner.dir.clone();
        tokio::task::spawn_blocking(move || dir.count_guild_dirs()).await?
    }

    /// Bytes on disk of a guild's database and its WAL side files.
    pub async fn guild_bytes(&self, guild: u64) -> Result<u64, StoreError> {
        let db = self.inner.dir.guild_db(GuildId::new(guild)?);
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            for path in
                std::iter::once(db.clone()).chain(SIDE_FILES.map(|s| paths::with_suffix(&db, s)))
            {
                match std::fs::metadata(&path) {
                    Ok(meta) => total += meta.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(&path)(e)),
                }
            }
            Ok(total)
        })
        .await?
    }

    /// Deletes every file of `guild`. While it runs the guild cannot be opened (uses get
    /// [`StoreError::BeingDeleted`]); running leases finish first. Deleting a guild that has
    /// no database is not an error. The next use after it returns creates the guild afresh.
    ///
    /// Once this future has been polled, the deletion runs to its end even if the future is
    /// dropped: a caller that stops waiting (an interaction that timed out, an operator's
    /// request cut off) leaves the guild neither half deleted nor refused for good. A failure
    /// no caller is left to hear of is logged.
    pub async fn delete_guild(&self, guild: u64) -> Result<(), StoreError> {
        let guild = GuildId::new(guild)?;
        self.wait_for(|state| {
            if state.shutting_down {
                return Some(Err(StoreError::ShuttingDown));
            }
            state.deleting.insert(guild).then_some(Ok(()))
        })
        .await?;
        let tombstone = Tombstone {
            guild,
            inner: self.inner.clone(),
        };
        let store = self.clone();
        let (report, result) = oneshot::channel();
        let task = tokio::spawn(async move {
            if let Err(Err(e)) = report.send(store.delete_marked(tombstone).await) {
                tracing::error!(guild = guild.get(), error = %e, "deleting a guild failed after its caller stopped waiting");
            }
        });
        match result.await {
            Ok(deleted) => deleted,
            Err(_) => match task.await {
                Err(e) => Err(e.into()),
                Ok(()) => unreachable!("the task sends its result before it ends"),
            },
        }
    }

    /// The deletion proper, while `tombstone` keeps uses out: once the guild's leases have
    /// ended its pool is closed, then its files are removed, and only then is the tombstone
    /// lifted.
    async fn delete_marked(&self, tombstone: Tombstone) -> Result<(), StoreError> {
        let guild = tombstone.guild;
        self.wait_for(|state| {
            if state.closing.contains(&guild) {
                return None;
            }
            match state.slots.peek(&guild) {
                None => Some(()),
                Some(Slot::Open(pool)) if pool.is_idle() => {
                    // Closing, like an evicted pool, counts toward the cap until it is done;
                    // the files are removed after that.
                    self.inner.close_in_background(state, &[guild], false);
                    None
                }
                Some(_) => None,
            }
        })
        .await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let removed = remove_guild_files(&inner.dir, guild);
            drop(tombstone);
            removed?;
            // Nothing of the guild is left behind, not even its id in the reading order.
            let _rewriting = inner.reminder_order.lock().expect("lock poisoned");
            let order = read_reminder_order(&inner.dir)?;
            if order.contains(&guild.get()) {
                let rest: Vec<u64> = order.into_iter().filter(|&g| g != guild.get()).collect();
                write_reminder_order(&inner.dir, &rest)?;
            }
            Ok(())
        })
        .await?
    }

    /// Stops new leases, waits for running leases and deletions, checkpoints every WAL into
    /// its database, closes every pool and waits for a spare guild being made. Later uses
    /// fail with [`StoreError::ShuttingDown`].
    pub async fn shutdown(&self) {
        self.lock().shutting_down = true;
        self.inner.changed.notify_waiters();
        let pools: Vec<Arc<GuildPool>> = self
            .wait_for(|state| {
                let busy = !state.closing.is_empty()
                    || !state.deleting.is_empty()
                    || state.slots.iter().any(|(_, slot)| match slot {
                        Slot::Opening(_) => true,
                        Slot::Open(pool) => !pool.is_idle(),
                    });
                (!busy).then(|| {
                    state
                        .slots
                        .drain()
                        .filter_map(|slot| match slot {
                            Slot::Open(pool) => Some(pool),
                            Slot::Opening(_) => None,
                        })
                        .collect()
                })
            })
            .await;
        let closed = tokio::task::spawn_blocking(move || {
            for guild in pools {
                guild.checkpoint();
            }
        })
        .await;
        if let Err(e) = closed {
            tracing::error!(error = %e, "closing guild databases at shutdown failed");
        }
        let refill = self
            .inner
            .spare_refill
            .lock()
            .expect("lock poisoned")
            .take();
        if let Some(job) = refill {
            if let Err(e) = job.await {
                tracing::error!(error = %e, "making the spare guild failed");
            }
        }
        self.inner.owner.lock().expect("lock poisoned").take();
    }

    /// The data directory's layout, for the operator jobs' store helpers (`store/backup.rs`)
    /// and for where backup sets go by default.
    pub(crate) fn paths(&self) -> &DataDir {
        &self.inner.dir
    }

    /// Files moved to `<data_dir>/quarantine` because they were not valid SQLite databases
    /// (one directory read, no file opened).
    pub fn quarantined_files(&self) -> usize {
        std::fs::read_dir(self.inner.dir.quarantine_dir())
            .map_or(0, |entries| entries.filter(Result::is_ok).count())
    }

    pub fn stats(&self) -> Stats {
        let (open_pools, opening_pools, leased, closing_pools) = {
            let state = self.lock();
            let (open, opening, leased) = state.slots.iter().fold(
                (0, 0, 0),
                |(open, opening, leased), (_, slot)| match slot {
                    Slot::Open(pool) => (
                        open + 1,
                        opening,
                        leased + pool.leases.load(Ordering::Acquire),
                    ),
                    Slot::Opening(_) => (open, opening + 1, leased),
                },
            );
            (
                open,
                opening,
                leased,
                state.closing.len() - state.handed_over,
            )
        };
        let c = &self.inner.counters;
        let reopens = c.reopens.load(Ordering::Relaxed);
        let created_from_spare = c.created_from_spare.load(Ordering::Relaxed);
        let created_from_template = c.created_from_template.load(Ordering::Relaxed);
        let created = created_from_spare + created_from_template;
        Stats {
            open_pools,
            opening_pools,
            closing_pools,
            leased,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            opens: reopens + created,
            reopens,
            created,
            created_from_spare,
            created_from_template,
            evictions: c.evictions.load(Ordering::Relaxed),
            idle_closes: c.idle_closes.load(Ordering::Relaxed),
            at_capacity: c.at_capacity.load(Ordering::Relaxed),
            open_latency: self.inner.open_latency.snapshot(),
            slot_wait: self.inner.slot_wait.snapshot(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("store state lock poisoned")
    }

    /// Re-evaluates `check` under the state lock each time the state changes, until it
    /// returns `Some`. The notification is armed before the lock is released, so no change
    /// between the check and the wait is missed.
    async fn wait_for<T>(&self, mut check: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            let changed = self.inner.changed.notified();
            if let Some(done) = check(&mut self.lock()) {
                return done;
            }
            changed.await;
        }
    }

    async fn lease<T, F>(&self, guild: u64, create: bool, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let guild = self.admit(guild)?;
        let acquired = self.acquire(guild).await?;
        let inner = self.inner.clone();
        // The open, if this use must open the guild, and `f` run in one go: one hand-off.
        let run = move || match acquired {
            Acquired::Leased(lease) => use_lease(lease, f),
            Acquired::MustOpen(opening) => use_lease(inner.open(guild, create, opening)?, f),
        };
        if in_place() {
            // A use of an open guild costs tens of microseconds, as much again as a trip to
            // the blocking pool and back (two thread wake-ups): this thread runs it instead,
            // once tokio has handed its other tasks to another worker. An open here also
            // closes the pool evicted for it without waking another thread.
            catch_unwind(AssertUnwindSafe(|| tokio::task::block_in_place(run)))
                .unwrap_or_else(|panic| Err(StoreError::panicked(panic.as_ref())))
        } else {
            tokio::task::spawn_blocking(run).await?
        }
    }

    fn admit(&self, guild: u64) -> Result<GuildId, StoreError> {
        let id = GuildId::new(guild)?;
        if let Some(shards) = &self.inner.config.shards {
            let shard = shards.shard_of(guild);
            if !shards.owned.contains(&shard) {
                return Err(StoreError::NotOurShard { guild, shard });
            }
        }
        Ok(id)
    }

    /// Takes a lease on `guild`'s open pool, or the duty to open it.
    async fn acquire(&self, guild: GuildId) -> Result<Acquired, StoreError> {
        let started = Instant::now();
        let deadline = started + self.inner.config.open_wait;
        let mut waited = false;
        let slot_waited = |waited| {
            if waited {
                self.inner.slot_wait.record(started.elapsed());
            }
        };
        loop {
            let changed = self.inner.changed.notified();
            let step = {
                let mut state = self.lock();
                self.step(&mut state, guild)?
            };
            match step {
                Step::Leased(lease) => {
                    slot_waited(waited);
                    return Ok(Acquired::Leased(lease));
                }
                Step::Open(opening) => {
                    slot_waited(waited);
                    return Ok(Acquired::MustOpen(opening));
                }
                Step::AwaitOpen(mut opening) => {
                    let outcome = opening
                        .wait_for(Option::is_some)
                        .await
                        .map(|outcome| outcome.clone());
                    if let Ok(Some(Opened::Failed(reason))) = outcome {
                        return Err(StoreError::OpenFailed {
                            guild: guild.get(),
                            reason,
                        });
                    }
                }
                Step::Wait => {
                    waited = true;
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        slot_waited(waited);
                        let refused = &self.inner.counters.at_capacity;
                        refused.fetch_add(1, Ordering::Relaxed);
                        return Err(StoreError::AtCapacity {
                            cap: self.inner.config.max_open_guilds,
                            waited: self.inner.config.open_wait,
                        });
                    }
                }
            }
        }
    }

    /// One decision of `acquire`, under the state lock.
    fn step(&self, state: &mut State, guild: GuildId) -> Result<Step, StoreError> {
        state.admits(guild)?;
        if state.closing.contains(&guild) {
            return Ok(Step::Wait);
        }
        match state.slots.get(&guild) {
            Some(Slot::Open(pool)) => {
                self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Leased(Lease::new(pool, &self.inner)));
            }
            Some(Slot::Opening(opening)) => return Ok(Step::AwaitOpen(opening.clone())),
            None => {}
        }
        // Pools being opened or closed hold files as much as open ones: all count.
        let held = state.slots.len() + state.closing.len() - state.handed_over;
        let mut victim = None;
        if held >= self.inner.config.max_open_guilds {
            let idle = state
                .slots
                .eviction_order()
                .find_map(|(id, slot)| match slot {
                    Slot::Open(pool) if pool.is_idle() => Some(*id),
                    _ => None,
                });
            let Some(idle) = idle else {
                return Ok(Step::Wait);
            };
            let Some(Slot::Open(pool)) = state.slots.pop(&idle) else {
                unreachable!("found open just above, under the same lock");
            };
            // Closed by this use, before it opens its own guild in the room (`Inner::open`):
            // no other thread to wake and wait for. Until then the guild counts as closing,
            // so a use or a deletion of it waits.
            state.closing.insert(idle);
            state.handed_over += 1;
            self.inner
                .counters
                .evictions
                .fetch_add(1, Ordering::Relaxed);
            victim = Some((idle, pool));
        }
        let (done, opening) = watch::channel(None);
        state.slots.put(guild, Slot::Opening(opening));
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        Ok(Step::Open(Opening { done, victim }))
    }
}

tokio::task_local! {
    /// Set by [`side_by_side`] for the task it runs in.
    static SIDE_BY_SIDE: ();
}

/// Runs `work`, a future that polls several store uses at once in one task (a
/// `buffer_unordered` over guilds, a `join!`), with each of those uses on the blocking pool:
/// run in place, as the store otherwise does on a multi-thread runtime, they would hold up
/// each other and run one after another.
pub async fn side_by_side<T>(work: impl Future<Output = T>) -> T {
    SIDE_BY_SIDE.scope((), work).await
}

/// Whether a use runs on the calling task's own thread (see `lease`): tokio can hand a
/// worker's other tasks away only on a multi-thread runtime, and not when the caller runs
/// uses [`side_by_side`]. Elsewhere (a current-thread runtime, as in tests with paused time)
/// it goes to the blocking pool.
fn in_place() -> bool {
    tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        && SIDE_BY_SIDE.try_with(|()| ()).is_err()
}

/// Runs `f` on one of the leased pool's connections; blocks. The lease ends when it returns.
fn use_lease<T>(lease: Lease, f: impl FnOnce(&mut Connection) -> T) -> Result<T, StoreError> {
    let mut conn = lease.pool().get()?;
    let result = f(&mut conn);
    drop(conn);
    drop(lease);
    Ok(result)
}

enum Acquired {
    Leased(Lease),
    /// This use opens the file (`Inner::open`).
    MustOpen(Opening),
}

/// The duty to open a guild: publish the outcome through `done`, after closing `victim`, the
/// idle pool evicted to make room for it, if there was one.
struct Opening {
    done: watch::Sender<Option<Opened>>,
    victim: Option<(GuildId, Arc<GuildPool>)>,
}

enum Step {
    Leased(Lease),
    Open(Opening),
    AwaitOpen(watch::Receiver<Option<Opened>>),
    /// For a slot to free up (a pool closing, or a lease ending so that one can be closed),
    /// or for this guild's background close to finish.
    Wait,
}

impl Inner {
    /// Closes the pool evicted for `guild`, if any, then opens `guild`'s file and builds its
    /// pool, and publishes the outcome to the slot and to every use waiting on it. Blocks.
    fn open(
        self: &Arc<Self>,
        guild: GuildId,
        create: bool,
        Opening { done, victim }: Opening,
    ) -> Result<Lease, StoreError> {
        if let Some((evicted, pool)) = victim {
            // Closed without a checkpoint: a guild evicted under churn is likely back soon,
            // and its WAL is checkpointed once it has grown (see `open.rs`).
            drop(pool);
            let mut state = self.state.lock().expect("store state lock poisoned");
            state.closing.remove(&evicted);
            state.handed_over -= 1;
            drop(state);
            self.changed.notify_waiters();
        }
        // The outcome must be published however the open ends, or the guild's slot would
        // stay "opening" and every later use of it would wait for nothing.
        let opened = catch_unwind(AssertUnwindSafe(|| self.open_pool(guild, create)))
            .unwrap_or_else(|_| {
                Err(StoreError::OpenFailed {
                    guild: guild.get(),
                    reason: "the open panicked".to_owned(),
                })
            });
        let mut state = self.state.lock().expect("store state lock poisoned");
        let result = match opened {
            Ok((pool, origin)) => {
                self.opened(origin);
                let pool = Arc::new(GuildPool {
                    pool,
                    leases: Arc::new(AtomicUsize::new(0)),
                    last_used: Mutex::new(Instant::now()),
                });
                let lease = Lease::new(&pool, self);
                state.slots.put(guild, Slot::Open(pool));
                done.send_replace(Some(Opened::Ready));
                Ok(lease)
            }
            Err(e) => {
                state.slots.pop(&guild);
                done.send_replace(Some(match &e {
                    StoreError::UnknownGuild(_) => Opened::Absent,
                    failed => Opened::Failed(failed.to_string()),
                }));
                Err(e)
            }
        };
        drop(state);
        self.changed.notify_waiters();
        result
    }

    fn open_pool(
        &self,
        guild: GuildId,
        create: bool,
    ) -> Result<(GuildConnections, Origin), StoreError> {
        let started = std::time::Instant::now();
        let (conn, origin) = open::open_guild(
            &self.dir,
            guild,
            create,
            &self.template,
            &self.config.migrations,
            self.settings,
        )?;
        let pool = GuildConnections::new(
            self.dir.guild_db(guild),
            self.settings,
            self.config.connections_per_guild as usize,
            conn,
        );
        self.open_latency.record(started.elapsed());
        Ok((pool, origin))
    }

    /// Takes the idle pools of `guilds` out of the cache and closes them on the blocking
    /// pool, each after a checkpoint if `checkpoint`, marking each guild as closing until its
    /// own files are closed: one guild's slow checkpoint keeps no other guild of the batch
    /// waiting.
    fn close_in_background(
        self: &Arc<Self>,
        state: &mut State,
        guilds: &[GuildId],
        checkpoint: bool,
    ) {
        let pools: Vec<(GuildId, Arc<GuildPool>)> = guilds
            .iter()
            .filter_map(|id| match state.slots.pop(id) {
                Some(Slot::Open(pool)) => {
                    state.closing.insert(*id);
                    Some((*id, pool))
                }
                _ => None,
            })
            .collect();
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            for (id, pool) in pools {
                if checkpoint {
                    pool.checkpoint();
                }
                drop(pool);
                inner
                    .state
                    .lock()
                    .expect("store state lock poisoned")
                    .closing
                    .remove(&id);
                inner.changed.notify_waiters();
            }
        });
    }

    /// Counts an open by its origin; after a new guild, when the store keeps a spare, the
    /// next one is wanted.
    fn opened(&self, origin: Origin) {
        let counter = match origin {
            Origin::Existing => &self.counters.reopens,
            Origin::Spare => &self.counters.created_from_spare,
            Origin::Template => &self.counters.created_from_template,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if origin != Origin::Existing && self.config.keep_spare_guild {
            self.spare_wanted.store(true, Ordering::Release);
        }
    }

    /// Starts making the spare on the blocking pool, unless that is already running.
    fn make_spare_in_background(self: &Arc<Self>) {
        let mut refill = self.spare_refill.lock().expect("lock poisoned");
        if refill.as_ref().is_some_and(|job| !job.is_finished()) {
            return;
        }
        let inner = self.clone();
        *refill = Some(tokio::task::spawn_blocking(move || {
            let made = spare::make(
                &inner.dir,
                &inner.template,
                inner.settings,
                inner.config.migrations.latest(),
            );
            if let Err(e) = made {
                tracing::warn!(error = %e, "making the spare guild failed; the next new guild is made from the template");
            }
        }));
    }
}

/// Lifts a guild's tombstone when its deletion ends, however it ends.
struct Tombstone {
    guild: GuildId,
    inner: Arc<Inner>,
}

impl Drop for Tombstone {
    fn drop(&mut self) {
        self.inner
            .state
            .lock()
            .expect("store state lock poisoned")
            .deleting
            .remove(&self.guild);
        self.inner.changed.notify_waiters();
    }
}

/// `<data_dir>/reminder-order`'s guild ids; none when there is no such file.
fn read_reminder_order(dir: &DataDir) -> Result<Vec<u64>, StoreError> {
    let path = dir.reminder_order_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().filter_map(|line| line.parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(&path)(e)),
    }
}

fn write_reminder_order(dir: &DataDir, guilds: &[u64]) -> Result<(), StoreError> {
    let text: String = guilds.iter().map(|guild| format!("{guild}\n")).collect();
    paths::replace_file(&dir.reminder_order_file(), text.as_bytes())
}

fn remove_guild_files(dir: &DataDir, guild: GuildId) -> Result<(), StoreError> {
    let guild_dir = dir.guild_dir(guild);
    if !guild_dir.exists() {
        return Ok(());
    }
    let db = dir.guild_db(guild);
    paths::remove_if_present(&db)?;
    for suffix in SIDE_FILES {
        paths::remove_if_present(&paths::with_suffix(&db, suffix))?;
    }
    // Anything else in the directory (a pre-restore copy, say) is this guild's data too.
    match std::fs::remove_dir_all(&guild_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StoreError::io(&guild_dir)(e))
        }
        _ => {}
    }
    paths::fsync_dir(&dir.guilds_dir())
}

/// Closes pools unused for `idle_timeout`. Holds only a weak handle, so it ends with the
/// manager, and stops at shutdown.
async fn close_idle_pools(inner: Weak<Inner>) {
    let Some(period) = inner
        .upgrade()
        .map(|inner| (inner.config.idle_timeout / 4).max(Duration::from_millis(100)))
    else {
        return;
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut state = inner.state.lock().expect("store state lock poisoned");
        if state.shutting_down {
            return;
        }
        let now = Instant::now();
        let expired: Vec<GuildId> = state
            .slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Open(pool)
                    if pool.is_idle()
                        && now.duration_since(*pool.last_used.lock().expect("lock poisoned"))
                            >= inner.config.idle_timeout =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        if expired.is_empty() {
            continue;
        }
        // A guild idle this long is likely to stay so: its database is made complete.
        inner.close_in_background(&mut state, &expired, true);
        inner
            .counters
            .idle_closes
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        tracing::debug!(closed = expired.len(), "closing idle guild databases");
    }
}
