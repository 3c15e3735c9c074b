//! The store's cases, each beside its baseline in the same run: creating a guild, reopening
//! an evicted one, a cached insert + read, and memory/descriptor growth with the number of
//! guilds on disk; and the fleet of guilds and the helpers that `zipf_cases.rs` shares.

use std::{
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use guildkeep::store::{GuildDatabaseManager, StoreConfig};
use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::{
    measure::{anon_rss_mib, median, median_of, open_fds, rss_mib, Samples},
    set_aside, Case, Size, REPEATS,
};

pub const SCHEMA: &str = include_str!("../../schema/0001_init.sql");
const INSERT: &str = "INSERT INTO quotes (text, author_name, added_by, created_at, updated_at) \
                      VALUES ('benchmark quote text', 'someone', 42, 0, 0)";
const READ_RANDOM: &str = "SELECT id, text FROM quotes WHERE id >= \
                           (SELECT abs(random()) % max(id) + 1 FROM quotes) ORDER BY id LIMIT 1";

/// The store as the bot configures it.
pub fn store(dir: &Path, cap: usize) -> GuildDatabaseManager {
    let mut config = StoreConfig::new(dir);
    config.max_open_guilds = cap;
    config.keep_spare_guild = true;
    GuildDatabaseManager::new(config).expect("store")
}

/// The store as `guildkeep`'s operator commands configure it: the defaults.
pub fn job_store(dir: &Path) -> GuildDatabaseManager {
    GuildDatabaseManager::new(StoreConfig::new(dir)).expect("store")
}

/// The PRAGMAs the store sets, for the raw baselines.
pub fn raw_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .unwrap();
    conn
}

/// One quote saved: the write of every many-guild case.
pub fn insert(conn: &Connection) {
    conn.prepare_cached(INSERT).unwrap().execute([]).unwrap();
}

pub fn insert_and_read(conn: &Connection) {
    insert(conn);
    conn.prepare_cached(READ_RANDOM)
        .unwrap()
        .query_row([], |row| row.get::<_, i64>(0))
        .unwrap();
}

/// Median over repeats of each run's p50 and p99.
fn summary(runs: &[Samples]) -> Value {
    json!({
        "p50_ms": median(runs.iter().map(|s| s.percentile_ms(50.0)).collect()),
        "p99_ms": median(runs.iter().map(|s| s.percentile_ms(99.0)).collect()),
    })
}

fn p50_ratio(ours: &Value, baseline: &Value) -> f64 {
    ours["p50_ms"].as_f64().unwrap() / baseline["p50_ms"].as_f64().unwrap()
}

/// Median over repeats of each run's p50 and p99, and the ratio of the p50 medians.
fn compare(ours: Vec<Samples>, baseline: Vec<Samples>) -> (Value, Value, f64) {
    let (ours, baseline) = (summary(&ours), summary(&baseline));
    let ratio = p50_ratio(&ours, &baseline);
    (ours, baseline, ratio)
}

/// The baseline's work as the design has all SQLite work done, off the async threads: the
/// same closure on the blocking pool, timed from the async side. Beside the baseline, so the
/// store's own cost can be told from the hop every design-abiding caller pays.
async fn timed_off_runtime(run: &mut Samples, work: impl FnOnce() + Send + 'static) {
    let started = Instant::now();
    tokio::task::spawn_blocking(work).await.unwrap();
    run.push(started.elapsed());
}

/// The figures of [`timed_off_runtime`] runs, with ours's p50 ratio to them.
fn off_runtime_figures(ours: &Value, runs: &[Samples]) -> Value {
    let mut figures = summary(runs);
    figures["ours_ratio"] = json!(p50_ratio(ours, &figures));
    figures
}

pub async fn new_guild(size: Size, scratch: &Path) -> Case {
    let n = size.pick(50, 200);
    let (mut ours, mut baseline, mut from_spare) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..REPEATS {
        let dir = scratch.join(format!("new_guild_{repeat}"));
        let store = store(&dir.join("ours"), 256);
        let mut ours_run = Samples::with_capacity(n);
        let mut base_run = Samples::with_capacity(n);
        std::fs::create_dir_all(dir.join("raw")).unwrap();
        for i in 0..n as u64 {
            let started = Instant::now();
            store
                .with_guild(i + 1, |c| c.execute(INSERT, []).unwrap())
                .await
                .unwrap();
            ours_run.push(started.elapsed());
            let path = dir.join("raw").join(format!("{i}.db"));
            base_run.time(|| {
                let mut conn = raw_open(&path);
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                tx.execute_batch(SCHEMA).unwrap();
                tx.pragma_update(None, "user_version", 1).unwrap();
                tx.commit().unwrap();
                conn.execute(INSERT, []).unwrap();
            });
        }
        let stats = store.stats();
        from_spare.push(stats.created_from_spare as f64 / stats.created as f64);
        store.shutdown().await;
        set_aside(&dir);
        ours.push(ours_run);
        baseline.push(base_run);
    }
    let (mut ours, baseline, ratio) = compare(ours, baseline);
    // The share of new guilds that found a spare ready (`keep_spare_guild`, as the bot runs).
    ours["from_spare"] = json!(median(from_spare));
    let met = ratio <= 1.2 && ours["p50_ms"].as_f64().unwrap() <= 2.0;
    Case::new(
        "new guild",
        ours,
        Some(baseline),
        Some(ratio),
        "ratio ≤ 1.2 and p50 ≤ 2 ms (predecessor: 42–49 ms)",
        met,
    )
}

pub async fn reopen(size: Size, scratch: &Path) -> Case {
    let n = size.pick(200, 2000);
    let dir = scratch.join("reopen");
    let setup = store(&dir, 256);
    setup
        .with_guild(1, |c| c.execute(INSERT, []).unwrap())
        .await
        .unwrap();
    // Shutdown checkpoints guild 1; the others are copies of it: creating each through the
    // store, with its fsyncs, took most of the case's minute.
    setup.shutdown().await;
    drop(setup);
    copy_guild_one(&dir, 2..=n as u64).await;
    // The baseline opens copies: a raw connection deletes the side files on close, which the
    // store keeps, and would otherwise make ours recreate them.
    let raw_dir = scratch.join("reopen_raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let raw_path = |guild: u64| raw_dir.join(format!("{guild}.db"));
    for guild in 1..=n as u64 {
        let db = dir.join("guilds").join(guild.to_string()).join("quotes.db");
        std::fs::copy(db, raw_path(guild)).unwrap();
    }
    let (mut ours, mut baseline, mut off_runtime) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        // A cap far below the number of guilds: every use in the cycle reopens.
        let store = store(&dir, 8);
        let mut ours_run = Samples::with_capacity(n);
        let mut base_run = Samples::with_capacity(n);
        for guild in 1..=n as u64 {
            let started = Instant::now();
            store
                .with_existing_guild(guild, |c| {
                    c.query_row("SELECT count(*) FROM quotes", [], |r| r.get::<_, i64>(0))
                        .unwrap()
                })
                .await
                .unwrap();
            ours_run.push(started.elapsed());
        }
        assert!(store.stats().opens >= n as u64, "every use reopened");
        store.shutdown().await;
        let bare_reopen = |path: PathBuf| {
            move || {
                let conn = raw_open(&path);
                conn.query_row("SELECT count(*) FROM quotes", [], |r| r.get::<_, i64>(0))
                    .unwrap();
                drop(conn);
            }
        };
        let mut off_run = Samples::with_capacity(n);
        for guild in 1..=n as u64 {
            base_run.time(bare_reopen(raw_path(guild)));
            timed_off_runtime(&mut off_run, bare_reopen(raw_path(guild))).await;
        }
        ours.push(ours_run);
        baseline.push(base_run);
        off_runtime.push(off_run);
    }
    set_aside(&dir);
    set_aside(&raw_dir);
    let (ours, baseline, ratio) = compare(ours, baseline);
    let off_runtime = off_runtime_figures(&ours, &off_runtime);
    Case::new(
        "reopen",
        ours,
        Some(baseline),
        Some(ratio),
        "ratio ≤ 1.2 (predecessor: 17 ms)",
        ratio <= 1.2,
    )
    .with("baseline_off_async_threads", off_runtime)
}

pub async fn hot(size: Size, scratch: &Path) -> Case {
    let n = size.pick(2000, 10000);
    let dir = scratch.join("hot");
    let store = store(&dir, 256);
    store
        .with_guild(1, |c| c.execute(INSERT, []).unwrap())
        .await
        .unwrap();
    let raw = raw_open(&dir.join("raw.db"));
    raw.execute_batch(SCHEMA).unwrap();
    raw.execute(INSERT, []).unwrap();
    let raw = Arc::new(Mutex::new(raw));
    let (mut ours, mut baseline, mut off_runtime) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let mut ours_run = Samples::with_capacity(n);
        let mut base_run = Samples::with_capacity(n);
        let mut off_run = Samples::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            store.with_guild(1, |c| insert_and_read(c)).await.unwrap();
            ours_run.push(started.elapsed());
            base_run.time(|| insert_and_read(&raw.lock().unwrap()));
            let raw = raw.clone();
            timed_off_runtime(&mut off_run, move || insert_and_read(&raw.lock().unwrap())).await;
        }
        ours.push(ours_run);
        baseline.push(base_run);
        off_runtime.push(off_run);
    }
    store.shutdown().await;
    drop(raw);
    set_aside(&dir);
    let (ours, baseline, ratio) = compare(ours, baseline);
    let off_runtime = off_runtime_figures(&ours, &off_runtime);
    Case::new(
        "hot",
        ours,
        Some(baseline),
        Some(ratio),
        "ratio ≤ 1.3 (predecessor: about 2.5 ms)",
        ratio <= 1.3,
    )
    .with("baseline_off_async_threads", off_runtime)
}

/// Leaves every guild in `dir` as a bot that went idle leaves it: its WAL checkpointed into
/// the database and emptied. A store's shutdown does that only for the guilds still open; the
/// ones it evicted keep their last writes in their WAL.
pub async fn checkpoint_every_guild(dir: &Path) {
    let store = store(dir, 256);
    for guild in store.guilds_on_disk().await.unwrap() {
        store
            .with_existing_guild(guild, |c| {
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap()
            })
            .await
            .unwrap();
    }
    store.shutdown().await;
}

/// The full run's fleet: the guilds on disk of zipf, its open loop, export and delete, and
/// growth's last point. The trace has 100,000; each guild takes about 200 kB (its
/// schema, full-text index included, and side files), and the disk this runs on is shared:
/// with 50,000 the whole run peaked at 17 GB of scratch.
pub const FLEET_GUILDS: usize = 50_000;

/// A data directory holding guilds 1..=n, shared by the growth and zipf cases. Guild 1 is
/// created by the store; the others are copies of its three files, made without the fsyncs
/// (and the open and close) of a real creation: this is setup, and creating 100,000 guilds
/// through the store took three of the full run's fifteen minutes. Only the guilds not there
/// yet are made, so growth can add to it point by point before zipf uses it.
pub async fn fleet(scratch: &Path, n: u64) -> PathBuf {
    let dir = scratch.join("fleet");
    let store = store(&dir, 256);
    store.with_guild(1, |_| ()).await.unwrap();
    let present = store.guilds_on_disk().await.unwrap().len() as u64;
    store.shutdown().await;
    copy_guild_one(&dir, present + 1..=n).await;
    dir
}

/// Makes guilds `to` in the data directory `dir` copies of its guild 1: its database and
/// side files, modes included. Setup, not measurement: it skips the fsyncs of a real creation.
pub async fn copy_guild_one(dir: &Path, to: std::ops::RangeInclusive<u64>) {
    copy_guilds(dir, 1, to).await;
}

/// Makes guilds `to` copies of guilds 1..=`models` in turn: guild `g` a copy of guild
/// `(g - 1) % models + 1`.
pub async fn copy_guilds(dir: &Path, models: u64, to: std::ops::RangeInclusive<u64>) {
    const COPIERS: u64 = 4;
    let guilds = dir.join("guilds");
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            for copier in 0..COPIERS {
                let (guilds, to) = (&guilds, to.clone());
                scope.spawn(move || {
                    for guild in to.filter(|g| g % COPIERS == copier) {
                        let model = guilds.join(((guild - 1) % models + 1).to_string());
                        copy_guild(&model, &guilds.join(guild.to_string()));
                    }
                });
            }
        });
    })
    .await
    .unwrap();
}

/// A guild directory like `model`, with its database and side files (modes included).
fn copy_guild(model: &Path, to: &Path) {
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    for file in ["quotes.db", "quotes.db-wal", "quotes.db-shm"] {
        std::fs::copy(model.join(file), to.join(file)).unwrap();
    }
}

/// Memory and descriptors of a fresh process holding `guilds` guilds on disk, after two passes
/// of `uses` seeded random uses of them: run in a child process (see `main.rs`) so each figure
/// starts clean.
pub async fn growth_point(dir: &Path, guilds: u64, uses: u64) -> Value {
    const CAP: usize = 256;
    let store = store(dir, CAP);
    let on_disk = store.guilds_on_disk().await.unwrap().len() as u64;
    assert_eq!(on_disk, guilds);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..2 {
        for _ in 0..uses {
            let guild = rng.random_range(1..=guilds);
            store
                .with_existing_guild(guild, |c| insert_and_read(c))
                .await
                .unwrap();
        }
    }
    let figures = json!({
        "guilds": guilds,
        "rss_mib": rss_mib(),
        "anon_rss_mib": anon_rss_mib(),
        "fds": open_fds(),
        "cap": CAP,
    });
    store.shutdown().await;
    figures
}

pub async fn growth(
    size: Size,
    scratch: &Path,
    measure_child: impl Fn(&Path, u64, u64) -> Value,
) -> Case {
    let points: &[u64] = if size.quick {
        &[500, 2_000]
    } else {
        &[1_000, 10_000, FLEET_GUILDS as u64]
    };
    // Nearly every use at the larger points opens a file; the quick run's minute allows fewer.
    let uses = size.pick(100, 2_000) as u64;
    let mut figures = Vec::new();
    for &point in points {
        let dir = fleet(scratch, point).await;
        let runs: Vec<Value> = (0..REPEATS)
            .map(|_| measure_child(&dir, point, uses))
            .collect();
        let figure = |key: &str| median_of(&runs, key);
        figures.push(json!({
            "guilds": point,
            "rss_mib": figure("rss_mib"),
            "anon_rss_mib": figure("anon_rss_mib"),
            "fds": figure("fds") as u64,
            "cap": runs[0]["cap"],
            "uses": 2 * uses,
        }));
    }
    let first = &figures[0];
    let last = figures.last().unwrap();
    let rss_growth = last["rss_mib"].as_f64().unwrap() / first["rss_mib"].as_f64().unwrap();
    let fds_ok = figures
        .iter()
        .all(|f| f["fds"].as_u64().unwrap() <= 3 * 256 + 64);
    Case::new(
        "growth",
        json!({ "points": figures, "rss_last_over_first": rss_growth }),
        None,
        None,
        "flat: RSS at the largest count within 10% of the smallest; fds ≤ 3 × cap + 64",
        rss_growth <= 1.10 && fds_ok,
    )
}
