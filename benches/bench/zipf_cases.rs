//! Many guilds at once, Zipf-distributed ([`FLEET_GUILDS`] guilds drawn Zipf(1.1), 256 open,
//! 8 workers), measured three ways in the same run: ours; the design's own limit, the same
//! operations on the same guild files through plain rusqlite connections in a plain
//! `lru::LruCache` of the same cap (the goal: what the store's machinery costs or wins); and
//! one shared SQLite file, the legacy design (reported under `"shared_file"`: what the
//! per-guild design costs). And `zipf_open_loop`: the same draws arriving at a realistic fixed
//! rate, ours beside the shared file; and `writers`: writes only, on 1 to 8 workers, ours
//! beside the shared file's one writer.

use std::{
    num::NonZeroUsize,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use guildkeep::store::{
    configure, paths::DataDir, ConnectionSettings, GuildDatabaseManager, GuildId, StoreConfig,
};
use lru::LruCache;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use crate::{
    measure::{median, process_cpu_secs, Samples},
    store_cases::{fleet, insert, insert_and_read, raw_open, store, FLEET_GUILDS, SCHEMA},
    Case, Size, REPEATS,
};

const TASKS: usize = 8;
const CAP: usize = 256;

/// Guild ids drawn Zipf(1.1) over `guilds`, the same sequence for every side.
fn zipf_draws(guilds: u64, n: usize, seed: u64) -> Vec<u64> {
    let zipf = rand_distr::Zipf::new(guilds as f64, 1.1).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.sample(zipf) as u64).collect()
}

/// One side's run over the draws.
struct Run {
    samples: Samples,
    secs: f64,
    cpu_secs: f64,
    hit_rate: Option<f64>,
}

/// Medians over repeats of one side's figures.
fn summary(runs: &[Run], ops: usize) -> Value {
    let of = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let mut figures = json!({
        "ops_per_s": of(&|r| ops as f64 / r.secs),
        "p99_ms": of(&|r| r.samples.percentile_ms(99.0)),
        "cpu_ms_per_op": of(&|r| r.cpu_secs * 1000.0 / ops as f64),
    });
    if runs.iter().all(|r| r.hit_rate.is_some()) {
        figures["cache_hit_rate"] = json!(of(&|r| r.hit_rate.unwrap()));
    }
    figures
}

/// `threads` threads taking the draws in turn, each through its own `use_guild`.
fn on_threads<U: FnMut(u64)>(threads: usize, draws: &[u64], make: impl Fn() -> U + Sync) -> Run {
    let next = AtomicU64::new(0);
    let (started, cpu_before) = (Instant::now(), process_cpu_secs());
    let mut samples = Samples::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut use_guild = make();
                    let mut samples = Samples::default();
                    while let Some(&guild) =
                        draws.get(next.fetch_add(1, Ordering::Relaxed) as usize)
                    {
                        samples.time(|| use_guild(guild));
                    }
                    samples
                })
            })
            .collect();
        for worker in workers {
            samples.extend(worker.join().unwrap());
        }
    });
    Run {
        samples,
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: process_cpu_secs() - cpu_before,
        hit_rate: None,
    }
}

async fn run_ours(fleet: &Path, draws: &Arc<Vec<u64>>) -> Run {
    let store = store(fleet, CAP);
    let mut run = on_tasks(&store, TASKS, draws, insert_and_read).await;
    let stats = store.stats();
    store.shutdown().await;
    run.hit_rate = Some(stats.hits as f64 / (stats.hits + stats.misses) as f64);
    run
}

/// `tasks` tasks taking the draws in turn, each a use of its guild through `store` running
/// `op`. The store's shutdown is not part of the run.
async fn on_tasks(
    store: &GuildDatabaseManager,
    tasks: usize,
    draws: &Arc<Vec<u64>>,
    op: fn(&Connection),
) -> Run {
    let next = Arc::new(AtomicU64::new(0));
    let (started, cpu_before) = (Instant::now(), process_cpu_secs());
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, draws, next) = (store.clone(), draws.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Samples::default();
                while let Some(&guild) = draws.get(next.fetch_add(1, Ordering::Relaxed) as usize) {
                    let t = Instant::now();
                    store
                        .with_existing_guild(guild, move |c| op(c))
                        .await
                        .unwrap();
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Samples::default();
    for worker in workers {
        samples.extend(worker.await.unwrap());
    }
    Run {
        samples,
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: process_cpu_secs() - cpu_before,
        hit_rate: None,
    }
}

/// The design's limit: what a careful program gets from plain rusqlite over the same files.
/// One connection per guild, opened with the store's flags and PRAGMAs (`configure`), kept in
/// a plain LRU of the store's cap. A connection evicted while in use closes when its user is
/// done; a guild missed by two threads at once is opened twice, and the second stays.
struct PlainLru {
    cache: Mutex<LruCache<u64, Arc<Mutex<Connection>>>>,
    dir: DataDir,
    settings: ConnectionSettings,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PlainLru {
    fn use_guild(&self, guild: u64, f: impl FnOnce(&Connection)) {
        let cached = self.cache.lock().unwrap().get(&guild).cloned();
        let conn = match cached {
            Some(conn) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                conn
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let path = self.dir.guild_db(GuildId::new(guild).unwrap());
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .unwrap();
                configure(&conn, self.settings).unwrap();
                let conn = Arc::new(Mutex::new(conn));
                // The evicted connection closes here, after the cache's lock is released.
                let _evicted = self.cache.lock().unwrap().push(guild, conn.clone());
                conn
            }
        };
        f(&conn.lock().unwrap());
    }
}

fn run_plain_lru(fleet: &Path, draws: &[u64]) -> Run {
    let plain = PlainLru {
        cache: Mutex::new(LruCache::new(NonZeroUsize::new(CAP).unwrap())),
        dir: DataDir::new(fleet),
        settings: StoreConfig::new(fleet).connection_settings(),
        hits: AtomicU64::new(0),
        misses: AtomicU64::new(0),
    };
    let mut run = on_threads(TASKS, draws, || {
        |guild| plain.use_guild(guild, insert_and_read)
    });
    let (hits, misses) = (plain.hits.into_inner(), plain.misses.into_inner());
    run.hit_rate = Some(hits as f64 / (hits + misses) as f64);
    // Closing what is still open is part of the run's CPU, as the store's shutdown is of ours.
    let cpu_before = process_cpu_secs();
    drop(plain.cache);
    run.cpu_secs += process_cpu_secs() - cpu_before;
    run
}

/// One shared file with the same tables (full-text index and triggers included), plus the
/// guild column and index that one shared file needs, so both designs do the same work.
pub fn shared_file(path: &Path) -> Connection {
    let conn = raw_open(path);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(
        "ALTER TABLE quotes ADD COLUMN guild_id INTEGER NOT NULL DEFAULT 0; \
         CREATE INDEX quotes_guild ON quotes (guild_id, id);",
    )
    .unwrap();
    conn
}

fn run_shared(path: &Path, draws: &[u64]) -> Run {
    // One writer at a time, as a careful shared-file application does: SQLite's own busy
    // waiting sleeps and starves writers under this load, which would flatter ours.
    let writer = Mutex::new(());
    on_threads(TASKS, draws, || {
        let conn = raw_open(path);
        let writer = &writer;
        move |guild| shared_insert_and_read(&conn, writer, guild)
    })
}

pub fn shared_insert_and_read(conn: &Connection, writer: &Mutex<()>, guild: u64) {
    shared_insert(conn, writer, guild);
    // rusqlite binds signed integers only; guild ids fit.
    let guild = i64::try_from(guild).unwrap();
    conn.prepare_cached(
        "SELECT id, text FROM quotes WHERE guild_id = ?1 AND id >= \
         (SELECT abs(random()) % max(id) + 1 FROM quotes WHERE guild_id = ?1) ORDER BY id LIMIT 1",
    )
    .unwrap()
    .query_row([guild], |row| row.get::<_, i64>(0))
    .unwrap();
}

pub async fn zipf(size: Size, scratch: &Path) -> Case {
    let guilds = size.pick(2_000, FLEET_GUILDS) as u64;
    // 30,000 ops per side and repeat: the hit rates settle within the first few thousand, and
    // three sides of 200,000 (the earlier size) would take the full run past 15 minutes alone.
    let ops = size.pick(2_000, 30_000);
    let dir = fleet(scratch, guilds).await;
    let shared_path = scratch.join("zipf_shared.db");
    drop(shared_file(&shared_path));
    let (mut ours, mut plain, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..REPEATS {
        let draws = Arc::new(zipf_draws(guilds, ops, repeat as u64));
        // Each side leaves the guilds' WALs longer for the side after it: take turns going first.
        let plain_run = |draws: Arc<Vec<u64>>, dir: std::path::PathBuf| {
            tokio::task::spawn_blocking(move || run_plain_lru(&dir, &draws))
        };
        if repeat % 2 == 0 {
            ours.push(run_ours(&dir, &draws).await);
            plain.push(plain_run(draws.clone(), dir.clone()).await.unwrap());
        } else {
            plain.push(plain_run(draws.clone(), dir.clone()).await.unwrap());
            ours.push(run_ours(&dir, &draws).await);
        }
        let path = shared_path.clone();
        shared.push(
            tokio::task::spawn_blocking(move || run_shared(&path, &draws))
                .await
                .unwrap(),
        );
    }
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{file}", shared_path.display()));
    }
    let (mut ours, plain, shared) = (
        summary(&ours, ops),
        summary(&plain, ops),
        summary(&shared, ops),
    );
    let figure = |side: &Value, key: &str| side[key].as_f64().unwrap();
    let ratio = figure(&ours, "ops_per_s") / figure(&plain, "ops_per_s");
    let met = ratio >= 1.0 && figure(&ours, "p99_ms") <= figure(&plain, "p99_ms");
    ours["guilds"] = json!(guilds);
    ours["ops"] = json!(ops);
    ours["tasks"] = json!(TASKS);
    ours["cap"] = json!(CAP);
    let shared_ratio = figure(&ours, "ops_per_s") / figure(&shared, "ops_per_s");
    let mut shared = shared;
    shared["ratio"] = json!(shared_ratio);
    Case::new(
        "zipf",
        ours,
        Some(plain),
        Some(ratio),
        "throughput ≥ plain rusqlite in an LRU of the same cap (ratio ≥ 1), p99 ≤ its p99",
        met,
    )
    .with("shared_file", shared)
}

/// Our insert, as `shared_insert_and_read` makes it in the shared file: one writer at a time.
fn shared_insert(conn: &Connection, writer: &Mutex<()>, guild: u64) {
    let _writing = writer.lock().unwrap();
    conn.prepare_cached(
        "INSERT INTO quotes (guild_id, text, author_name, added_by, created_at, updated_at) \
         VALUES (?1, 'benchmark quote text', 'someone', 42, 0, 0)",
    )
    .unwrap()
    .execute([i64::try_from(guild).unwrap()])
    .unwrap();
}

/// Write-only throughput on 1, 2, 4 and 8 workers over guilds already open, one guild per
/// worker: ours writes the guilds' files in parallel; the shared file has one writer.
pub async fn writers(size: Size, scratch: &Path) -> Case {
    let ops = size.pick(500, 10_000);
    let dir = scratch.join("writers");
    let store = store(&dir, CAP);
    for guild in 1..=TASKS as u64 {
        store.with_guild(guild, |c| insert(c)).await.unwrap();
    }
    let shared_path = scratch.join("writers_shared.db");
    drop(shared_file(&shared_path));
    let (mut ours, mut shared) = (Vec::new(), Vec::new());
    for workers in [1, 2, 4, TASKS] {
        let draws: Arc<Vec<u64>> =
            Arc::new((0..ops as u64).map(|i| i % workers as u64 + 1).collect());
        let mut ours_runs = Vec::new();
        for _ in 0..REPEATS {
            ours_runs.push(on_tasks(&store, workers, &draws, insert).await);
        }
        let path = shared_path.clone();
        let shared_runs = tokio::task::spawn_blocking(move || {
            let writer = Mutex::new(());
            (0..REPEATS)
                .map(|_| {
                    on_threads(workers, &draws, || {
                        let conn = raw_open(&path);
                        let writer = &writer;
                        move |guild| shared_insert(&conn, writer, guild)
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let point = |runs: &[Run]| json!({"workers": workers, "ops_per_s": median(runs.iter().map(|r| ops as f64 / r.secs).collect())});
        ours.push(point(&ours_runs));
        shared.push(point(&shared_runs));
    }
    store.shutdown().await;
    crate::set_aside(&dir);
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{file}", shared_path.display()));
    }
    let at_most = |points: &[Value]| points.last().unwrap()["ops_per_s"].as_f64().unwrap();
    let ratio = at_most(&ours) / at_most(&shared);
    Case::new(
        "writers",
        json!({ "points": ours, "ops": ops }),
        Some(json!({ "shared_file_points": shared })),
        Some(ratio),
        "ours ≥ the shared file at 8 workers (reported: on 2 cores the curve is short)",
        ratio >= 1.0,
    )
}

/// Offsets from the start of a Poisson process of `rate` arrivals per second over `secs`.
fn poisson_arrivals(rate: f64, secs: f64, seed: u64) -> Vec<Duration> {
    let gaps = rand_distr::Exp::new(rate).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut at = 0.0;
    std::iter::from_fn(|| {
        at += rng.sample(gaps);
        (at < secs).then(|| Duration::from_secs_f64(at))
    })
    .collect()
}

/// The same draws as `zipf`, but arriving at a fixed rate (Poisson) whether or not earlier
/// ones are done, as a bot's commands do; latency runs from arrival, so queueing counts.
pub async fn zipf_open_loop(size: Size, scratch: &Path) -> Case {
    const RATE: f64 = 200.0;
    const SEED: u64 = 11;
    let guilds = size.pick(2_000, FLEET_GUILDS) as u64;
    let secs = size.pick(2, 60) as f64;
    let dir = fleet(scratch, guilds).await;
    let arrivals = Arc::new(poisson_arrivals(RATE, secs, SEED));
    let n = arrivals.len();
    let draws = Arc::new(zipf_draws(guilds, arrivals.len(), SEED));

    let store = store(&dir, CAP);
    let start = tokio::time::Instant::now();
    let mut uses = Vec::with_capacity(arrivals.len());
    for (&at, &guild) in arrivals.iter().zip(draws.iter()) {
        let arrived = start + at;
        tokio::time::sleep_until(arrived).await;
        let store = store.clone();
        uses.push(tokio::spawn(async move {
            store
                .with_existing_guild(guild, |c| insert_and_read(c))
                .await
                .unwrap();
            arrived.elapsed()
        }));
    }
    let mut ours = Samples::with_capacity(n);
    for done in uses {
        ours.push(done.await.unwrap());
    }
    let stats = store.stats();
    store.shutdown().await;

    let shared_path = scratch.join("zipf_open_loop_shared.db");
    drop(shared_file(&shared_path));
    let path = shared_path.clone();
    let shared = tokio::task::spawn_blocking(move || shared_open_loop(&path, &arrivals, &draws))
        .await
        .unwrap();
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{file}", shared_path.display()));
    }
    let summary = |s: &Samples| json!({"p50_ms": s.percentile_ms(50.0), "p99_ms": s.percentile_ms(99.0), "ops": n});
    let (mut ours_figures, shared_figures) = (summary(&ours), summary(&shared));
    ours_figures["cache_hit_rate"] = json!(stats.hits as f64 / (stats.hits + stats.misses) as f64);
    ours_figures["rate_per_s"] = json!(RATE);
    ours_figures["secs"] = json!(secs);
    let p99 = ours.percentile_ms(99.0);
    Case::new(
        "zipf, open loop",
        ours_figures,
        Some(shared_figures),
        Some(p99 / shared.percentile_ms(99.0)),
        "p99 ≤ 50 ms from arrival (ratio: p99 over the shared file's)",
        p99 <= 50.0,
    )
}

/// The shared file's side of the open loop: arrivals handed at their time to `TASKS` threads
/// with a connection each, writes one at a time as in `zipf`.
fn shared_open_loop(path: &Path, arrivals: &[Duration], draws: &[u64]) -> Samples {
    let (arrive, arrived) = std::sync::mpsc::channel::<(Instant, u64)>();
    let arrived = Mutex::new(arrived);
    let writer = Mutex::new(());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..TASKS)
            .map(|_| {
                scope.spawn(|| {
                    let conn = raw_open(path);
                    let mut samples = Samples::default();
                    loop {
                        let next = arrived.lock().unwrap().recv();
                        let Ok((at, guild)) = next else {
                            return samples;
                        };
                        shared_insert_and_read(&conn, &writer, guild);
                        samples.push(at.elapsed());
                    }
                })
            })
            .collect();
        let start = Instant::now();
        for (&at, &guild) in arrivals.iter().zip(draws) {
            let when = start + at;
            std::thread::sleep(when.saturating_duration_since(Instant::now()));
            arrive.send((when, guild)).unwrap();
        }
        drop(arrive);
        let mut samples = Samples::default();
        for worker in workers {
            samples.extend(worker.join().unwrap());
        }
        samples
    })
}
