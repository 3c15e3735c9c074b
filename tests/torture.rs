//! Concurrency torture: many tasks use, evict (a cap of two over six guilds), idle-close
//! (paused time, a one-second idle timeout), delete, recreate, back up and finally shut down
//! one store in a seeded random interleaving, and a simple model checks what each guild holds.
//! A backup copy is a snapshot taken somewhere inside the backup's interval, so each
//! successful copy is checked exactly like a read over that interval.
//!
//! The model needs no locks: every operation records when it started and ended on one
//! logical clock, and the checks only use what those intervals settle. A write that ended
//! before a read began, with no deletion of its guild overlapping either, must be seen; a
//! write followed by a whole deletion must not be; a read never sees another guild's rows;
//! uses refused as "being deleted" must overlap a deletion, and "shutting down" must come
//! after the shutdown began. After the run a fresh store checks every file the same way.
//!
//! After every operation, the pools open, being opened and being closed together stay within
//! the cap: a pool still closing holds its files as much as an open one.
//!
//! Every seed runs twice: on one thread with paused time, and on two worker threads with a
//! spare guild kept (as the bot runs), where the store's own tasks and the uses race for its
//! locks in parallel. Tokio cannot pause time on more than one thread, so that run waits in
//! real time, on a shorter idle timeout and shorter pauses.
//!
//! The seed fixes every task's operations and pauses; the threads of the blocking pool still
//! run in the operating system's order, so a failing seed is re-run, and printed, to
//! reproduce it. `GUILDKEEP_TORTURE_SEEDS=N` runs seeds 1..=N (CI: 4),
//! `GUILDKEEP_TORTURE_SEED=S` one seed. Not here: crashes (`crash.rs`).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use guildkeep::{
    ops::backup::{backup, BackupOptions},
    store::{GuildDatabaseManager, StoreConfig, StoreError},
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

const GUILDS: u64 = 6;
const CAP: usize = 2;
const TASKS: u64 = 8;
const OPS_PER_TASK: u64 = 50;

/// The runtime a seed runs on.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    /// One thread, paused time; a one-second idle timeout, pauses of up to three seconds.
    Paused,
    /// Two worker threads and a spare guild kept; real pauses five times shorter, and an
    /// idle timeout ten times shorter, since real operations take part of the pauses' time.
    Parallel,
}

impl Flavor {
    fn pause(self, up_to_3s: Duration) -> Duration {
        match self {
            Self::Paused => up_to_3s,
            Self::Parallel => up_to_3s / 5,
        }
    }

    fn idle_timeout(self) -> Duration {
        match self {
            Self::Paused => Duration::from_secs(1),
            Self::Parallel => Duration::from_millis(100),
        }
    }
}

/// An operation's span on the logical clock: `start` is taken before it is called and `end`
/// after it returned.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    fn overlaps(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

#[derive(Debug)]
struct Write {
    guild: u64,
    key: String,
    span: Span,
}

#[derive(Debug)]
struct Read {
    guild: u64,
    span: Span,
    /// `None`: the guild had no database.
    rows: Option<Vec<String>>,
}

#[derive(Default)]
struct History {
    writes: Vec<Write>,
    reads: Vec<Read>,
    deletions: Vec<(u64, Span)>,
    /// Uses refused because their guild was being deleted.
    refused: Vec<(u64, Span)>,
    shutdown_began: Option<u64>,
    /// Uses refused because the store was shutting down.
    stopped: Vec<Span>,
    ops: usize,
    evictions: u64,
    idle_closes: u64,
    /// Backup copies made and checked as reads.
    backups: usize,
}

impl History {
    fn deletions_of(&self, guild: u64) -> impl Iterator<Item = Span> + '_ {
        self.deletions
            .iter()
            .filter(move |(g, _)| *g == guild)
            .map(|(_, span)| *span)
    }

    /// `write` must be in every read that starts after it ended, unless a deletion of its
    /// guild could have run in between.
    fn must_see(&self, write: &Write, read_start: u64, read_end: u64) -> bool {
        write.span.end < read_start
            && !self
                .deletions_of(write.guild)
                .any(|d| d.end > write.span.start && d.start < read_end)
    }

    /// `write` is gone for every read that starts after a deletion that began after it.
    fn must_not_see(&self, write: &Write, read_start: u64) -> bool {
        self.deletions_of(write.guild)
            .any(|d| d.start > write.span.end && d.end < read_start)
    }
}

struct Run {
    store: GuildDatabaseManager,
    clock: AtomicU64,
    history: Mutex<History>,
}

impl Run {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn record(&self, f: impl FnOnce(&mut History)) {
        let mut history = self.history.lock().unwrap();
        history.ops += 1;
        f(&mut history);
    }

    /// A refusal is recorded for the checks; anything else is a failure of the store.
    fn refused(&self, guild: u64, span: Span, err: StoreError) {
        match err {
            StoreError::BeingDeleted(g) if g == guild => {
                self.record(|h| h.refused.push((guild, span)))
            }
            StoreError::ShuttingDown => self.record(|h| h.stopped.push(span)),
            other => panic!("guild {guild}: unexpected error {other}"),
        }
    }
}

fn texts(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT text FROM quotes ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn task(run: Arc<Run>, seed: u64, task: u64, shutdown_at: Option<u64>, flavor: Flavor) {
    let mut rng = StdRng::seed_from_u64(seed * 1000 + task);
    for op in 0..OPS_PER_TASK {
        if shutdown_at == Some(op) {
            run.record(|h| h.shutdown_began = Some(run.tick()));
            run.store.shutdown().await;
        }
        let guild = rng.random_range(1..=GUILDS);
        let start = run.tick();
        match rng.random_range(0..100) {
            0..55 => {
                let key = format!("{guild}:{seed}.{task}.{op}");
                let text = key.clone();
                let result = run
                    .store
                    .with_guild(guild, move |c| {
                        c.execute(
                            "INSERT INTO quotes (text, added_by, created_at, updated_at)
                             VALUES (?1, 1, 0, 0)",
                            [text],
                        )
                        .unwrap();
                    })
                    .await;
                let span = Span {
                    start,
                    end: run.tick(),
                };
                match result {
                    Ok(()) => run.record(|h| h.writes.push(Write { guild, key, span })),
                    Err(e) => run.refused(guild, span, e),
                }
            }
            55..75 => {
                let result = run.store.with_existing_guild(guild, |c| texts(c)).await;
                let span = Span {
                    start,
                    end: run.tick(),
                };
                match result {
                    Ok(rows) => run.record(|h| {
                        h.reads.push(Read {
                            guild,
                            span,
                            rows: Some(rows),
                        })
                    }),
                    Err(StoreError::UnknownGuild(g)) if g == guild => run.record(|h| {
                        h.reads.push(Read {
                            guild,
                            span,
                            rows: None,
                        })
                    }),
                    Err(e) => run.refused(guild, span, e),
                }
            }
            75..83 => {
                let result = run.store.delete_guild(guild).await;
                let span = Span {
                    start,
                    end: run.tick(),
                };
                match result {
                    Ok(()) => run.record(|h| h.deletions.push((guild, span))),
                    Err(e) => run.refused(guild, span, e),
                }
            }
            83..93 => {
                // Paused time: long enough, now and then, for the idle task to close pools.
                let pause = Duration::from_millis(rng.random_range(0..3000));
                tokio::time::sleep(flavor.pause(pause)).await;
            }
            93..96 => {
                let options = BackupOptions {
                    guilds: vec![guild],
                    out: None,
                    keep: Some(2),
                };
                // Failures (no database yet, being deleted, shutting down) are the job's
                // report to an operator; the model checks what a successful copy holds.
                let copy = match backup(&run.store, options).await {
                    Ok(report) => report
                        .manifest
                        .guilds
                        .get(&guild)
                        .map(|copy| report.set.join(&copy.file)),
                    Err(_) => None,
                };
                let span = Span {
                    start,
                    end: run.tick(),
                };
                let rows = match copy {
                    Some(file) => tokio::task::spawn_blocking(move || {
                        match Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                            Ok(conn) => Some(texts(&conn)),
                            // Another task's backup, finished since, removed this set (`keep`).
                            Err(_) if !file.exists() => None,
                            Err(e) => panic!("{}: {e}", file.display()),
                        }
                    })
                    .await
                    .unwrap(),
                    None => None,
                };
                if let Some(rows) = rows {
                    run.record(|h| {
                        h.reads.push(Read {
                            guild,
                            span,
                            rows: Some(rows),
                        })
                    });
                    run.record(|h| h.backups += 1);
                }
            }
            _ => {
                for _ in 0..rng.random_range(1..20) {
                    tokio::task::yield_now().await;
                }
            }
        }
        let stats = run.store.stats();
        let held = stats.open_pools + stats.opening_pools + stats.closing_pools;
        assert!(
            held <= CAP,
            "{held} pools open, opening or closing above the cap of {CAP}: {stats:?}"
        );
    }
}

fn run_seed(seed: u64, flavor: Flavor) -> History {
    let runtime = match flavor {
        Flavor::Paused => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        Flavor::Parallel => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .unwrap();
    let tmp = TempDir::new().unwrap();
    let history = runtime.block_on(async {
        let mut config = StoreConfig::new(tmp.path());
        config.max_open_guilds = CAP;
        config.idle_timeout = flavor.idle_timeout();
        config.keep_spare_guild = matches!(flavor, Flavor::Parallel);
        let run = Arc::new(Run {
            store: GuildDatabaseManager::new(config).unwrap(),
            clock: AtomicU64::new(0),
            history: Mutex::new(History::default()),
        });
        let mut rng = StdRng::seed_from_u64(seed);
        let stopper = rng.random_range(0..TASKS);
        let stop_at = rng.random_range(OPS_PER_TASK / 2..OPS_PER_TASK);
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let shutdown_at = (t == stopper).then_some(stop_at);
                tokio::spawn(task(run.clone(), seed, t, shutdown_at, flavor))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = run.store.stats();
        let mut history = std::mem::take(&mut *run.history.lock().unwrap());
        history.evictions = stats.evictions;
        history.idle_closes = stats.idle_closes;
        history
    });
    check(&history);
    check_files(tmp.path(), &history);
    history
}

fn check(h: &History) {
    for read in &h.reads {
        let rows = read.rows.as_deref().unwrap_or_default();
        for row in rows {
            assert!(
                row.starts_with(&format!("{}:", read.guild)),
                "guild {} shows another guild's row {row}",
                read.guild
            );
        }
        for write in h.writes.iter().filter(|w| w.guild == read.guild) {
            if h.must_see(write, read.span.start, read.span.end) {
                assert!(
                    rows.contains(&write.key),
                    "read {read:?} misses acknowledged {write:?}"
                );
            }
            if h.must_not_see(write, read.span.start) {
                assert!(
                    !rows.contains(&write.key),
                    "read {read:?} shows deleted {write:?}"
                );
            }
        }
    }
    for (guild, span) in &h.refused {
        assert!(
            h.deletions_of(*guild).any(|d| d.overlaps(*span)),
            "guild {guild} refused as being deleted at {span:?} with no deletion running"
        );
    }
    let began = h.shutdown_began.expect("the shutdown ran");
    for span in &h.stopped {
        assert!(
            span.end > began,
            "refused as shutting down before the shutdown"
        );
    }
    let after = |s: &Span| s.start > began;
    assert!(
        !h.writes.iter().any(|w| after(&w.span))
            && !h.reads.iter().any(|r| after(&r.span))
            && !h.deletions.iter().any(|(_, s)| after(s)),
        "an operation started after the shutdown succeeded"
    );
}

/// A fresh store over the same files: every file is sound, and holds what the model says.
fn check_files(dir: &std::path::Path, h: &History) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = GuildDatabaseManager::new(StoreConfig::new(dir)).unwrap();
        for guild in 1..=GUILDS {
            let found = store
                .with_existing_guild(guild, |c| {
                    let check: String = c
                        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                        .unwrap();
                    (check, texts(c))
                })
                .await;
            let rows = match found {
                Ok((check, rows)) => {
                    assert_eq!(check, "ok", "guild {guild}");
                    rows
                }
                Err(StoreError::UnknownGuild(_)) => Vec::new(),
                Err(e) => panic!("guild {guild}: {e}"),
            };
            for write in h.writes.iter().filter(|w| w.guild == guild) {
                if h.must_see(write, u64::MAX - 1, u64::MAX) {
                    assert!(rows.contains(&write.key), "lost {write:?}");
                }
                if h.must_not_see(write, u64::MAX) {
                    assert!(!rows.contains(&write.key), "deleted {write:?} is back");
                }
            }
        }
        store.shutdown().await;
    });
}

#[test]
fn random_interleavings_of_use_eviction_idle_close_deletion_and_shutdown_match_the_model() {
    run_seeds(Flavor::Paused);
}

#[test]
fn the_same_on_two_threads_keeping_a_spare_guild() {
    run_seeds(Flavor::Parallel);
}

fn run_seeds(flavor: Flavor) {
    let seeds: Vec<u64> = match (
        std::env::var("GUILDKEEP_TORTURE_SEED"),
        std::env::var("GUILDKEEP_TORTURE_SEEDS"),
    ) {
        (Ok(one), _) => vec![one.parse().expect("GUILDKEEP_TORTURE_SEED is a number")],
        (_, Ok(n)) => (1..=n.parse().expect("GUILDKEEP_TORTURE_SEEDS is a number")).collect(),
        _ => (1..=4).collect(),
    };
    let (mut ops, mut deletions, mut evictions, mut idle_closes, mut backups) = (0, 0, 0, 0, 0);
    for &seed in &seeds {
        let history = std::panic::catch_unwind(|| run_seed(seed, flavor)).unwrap_or_else(|panic| {
            eprintln!(
                "torture ({flavor:?}) failed at seed {seed}; rerun with GUILDKEEP_TORTURE_SEED={seed}"
            );
            std::panic::resume_unwind(panic)
        });
        ops += history.ops;
        deletions += history.deletions.len();
        evictions += history.evictions;
        idle_closes += history.idle_closes;
        backups += history.backups;
    }
    println!(
        "torture ({flavor:?}): seeds {seeds:?}, {ops} operations, {deletions} deletions, \
         {evictions} evictions, {idle_closes} idle closes, {backups} backup copies checked"
    );
    assert!(
        evictions > 0 && idle_closes > 0 && deletions > 0 && backups > 0,
        "the run exercised too little"
    );
}
