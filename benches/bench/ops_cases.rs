//! The operator jobs' cases, each beside its baseline in the same run: the legacy import
//! against a plain `INSERT … SELECT` copy of the same rows, and a backup set of every guild
//! against a bare loop of SQLite online backups of the same files.

use std::{
    fs::File,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use guildkeep::ops::{
    backup::{backup as backup_set, BackupOptions},
    legacy::{migrate_legacy, ImportOptions},
    Owner, PARALLEL_GUILDS,
};
use rusqlite::{
    backup::{Backup, StepResult},
    Connection, OpenFlags,
};
use serde_json::json;

use crate::{
    measure::{median, peak_rss_mib, reset_peak_rss, rss_mib},
    ops_data, set_aside,
    store_cases::{checkpoint_every_guild, job_store, raw_open},
    Case, Size, REPEATS,
};

/// Quotes per guild of the backup case: about 1 MB of database each.
const QUOTES_PER_GUILD: usize = 1024;

pub async fn import(size: Size, scratch: &Path) -> Case {
    let dir = scratch.join("import");
    std::fs::create_dir_all(&dir).unwrap();
    let legacy = dir.join("legacy.db");
    // Quick: 50 guilds' worth, to stay within the quick run's minute.
    let rows = size.pick(50_000, 1_000_000) as u64;
    let generating = Instant::now();
    let tables = {
        let legacy = legacy.clone();
        tokio::task::spawn_blocking(move || {
            ops_data::legacy_database(&legacy, rows).unwrap();
            legacy_tables(&Connection::open(&legacy).unwrap())
        })
        .await
        .unwrap()
    };
    let source_rows: u64 = tables.iter().map(|(_, rows)| rows).sum();
    let source_mib = std::fs::metadata(&legacy).unwrap().len() as f64 / 1048576.0;
    let generate_s = generating.elapsed().as_secs_f64();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for repeat in 0..REPEATS {
        let data = dir.join(format!("ours_{repeat}"));
        let store = job_store(&data);
        reset_peak_rss();
        let rss_before = rss_mib();
        let started = Instant::now();
        let report = migrate_legacy(
            &Owner::standalone(store.clone()),
            ImportOptions {
                source: legacy.clone(),
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap();
        let took = started.elapsed();
        let peak_growth = peak_rss_mib() - rss_before;
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        store.shutdown().await;
        ours.push((source_rows as f64 / took.as_secs_f64(), peak_growth));

        let (legacy, copy) = (legacy.clone(), dir.join(format!("copy_{repeat}.db")));
        let names: Vec<String> = tables.iter().map(|(name, _)| name.clone()).collect();
        let took = tokio::task::spawn_blocking(move || insert_select_copy(&legacy, &names, &copy))
            .await
            .unwrap();
        baseline.push(source_rows as f64 / took.as_secs_f64());
        set_aside(&data);
    }
    set_aside(&dir);
    let ours_rate = median(ours.iter().map(|o| o.0).collect());
    let base_rate = median(baseline);
    Case::new(
        "legacy import",
        json!({
            "rows_per_s": ours_rate,
            // Resident includes the pages of the legacy file the reader maps (source_mib).
            "peak_rss_growth_mib": median(ours.iter().map(|o| o.1).collect()),
            "source_rows": source_rows,
            "source_mib": source_mib,
            "generate_s": generate_s,
        }),
        Some(json!({ "rows_per_s": base_rate })),
        Some(ours_rate / base_rate),
        "≥ 100,000 source rows/s (ratio: ours / plain INSERT … SELECT copy)",
        ours_rate >= 100_000.0,
    )
}

/// Every table of the legacy database with its row count.
fn legacy_tables(conn: &Connection) -> Vec<(String, u64)> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    names
        .into_iter()
        .map(|name| {
            let rows: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                    r.get(0)
                })
                .unwrap();
            (name, rows as u64)
        })
        .collect()
}

/// The baseline: every row of the `tables` of `legacy` copied into the new file `copy`, in
/// tables of the same schema (so indexes are maintained as the import's are), with the
/// store's PRAGMAs, in one transaction. Returns the time up to the commit: the import's time
/// likewise ends before the store's shutdown checkpoints its files.
fn insert_select_copy(legacy: &Path, tables: &[String], copy: &Path) -> Duration {
    let started = Instant::now();
    let mut conn = raw_open(copy);
    conn.execute_batch(ops_data::LEGACY_SCHEMA).unwrap();
    conn.execute(
        "ATTACH DATABASE ?1 AS legacy",
        [legacy.to_str().expect("UTF-8 scratch path")],
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for table in tables {
        tx.execute(
            &format!("INSERT INTO main.\"{table}\" SELECT * FROM legacy.\"{table}\""),
            [],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let took = started.elapsed();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    took
}

pub async fn backup(size: Size, scratch: &Path) -> Case {
    let dir = scratch.join("backup");
    // Quick: few guilds, because making them (full-text indexing a megabyte each) takes
    // longer than backing them up.
    let guilds = size.pick(25, 1_000) as u64;
    let generating = Instant::now();
    {
        let store = job_store(&dir);
        ops_data::guilds(&store, guilds, QUOTES_PER_GUILD).await;
        store.shutdown().await;
    }
    // The files a backup job finds when the bot is idle, the same for every repeat: the
    // baseline's raw connections checkpoint a WAL when they close.
    checkpoint_every_guild(&dir).await;
    let generate_s = generating.elapsed().as_secs_f64();
    // The job as `guildkeep backup` runs it: its own store over the data directory.
    let store = job_store(&dir);
    let on_disk = store.guilds_on_disk().await.unwrap();
    let (mut ours, mut baseline, mut bytes) = (Vec::new(), Vec::new(), 0);
    for repeat in 0..REPEATS {
        let started = Instant::now();
        let report = backup_set(&store, BackupOptions::default()).await.unwrap();
        ours.push(started.elapsed().as_secs_f64());
        assert!(report.failures().is_empty(), "{:?}", report.failures());
        bytes = report
            .manifest
            .guilds
            .values()
            .map(|g| g.bytes)
            .sum::<u64>();
        let copies = dir.join(format!("raw_{repeat}"));
        let (guilds_dir, files) = (dir.join("guilds"), on_disk.clone());
        let took = tokio::task::spawn_blocking(move || {
            let took = raw_backups(&guilds_dir, &files, &copies);
            set_aside(&copies);
            set_aside(&report.set);
            took
        })
        .await
        .unwrap();
        baseline.push(took.as_secs_f64());
    }
    store.shutdown().await;
    set_aside(&dir);
    let (ours_s, base_s) = (median(ours), median(baseline));
    let ratio = ours_s / base_s;
    Case::new(
        "backup",
        json!({
            "seconds": ours_s,
            "mb_per_s": bytes as f64 / 1e6 / ours_s,
            "guilds": guilds,
            "mb": bytes as f64 / 1e6,
            "generate_s": generate_s,
            "also_does": "per copy: integrity_check, row counts and sha256 of the copy, a \
                          temporary name renamed into place; then a fsynced manifest",
            "guilds_at_once": PARALLEL_GUILDS,
        }),
        Some(json!({
            "seconds": base_s,
            "mb_per_s": bytes as f64 / 1e6 / base_s,
            "does": "per copy: backup API in one step into a new file, journal_mode=DELETE, \
                     fsync",
            "guilds_at_once": PARALLEL_GUILDS,
        })),
        Some(ratio),
        "time ratio ≤ 1.3 (ours verifies every copy; the baseline does not)",
        ratio <= 1.3,
    )
}

/// The baseline: each guild's file copied the plain rusqlite way (online backup API, all pages
/// in one step, the copy made self-contained with `PRAGMA journal_mode`, fsynced) and nothing
/// else, as many at once as the backup job copies. Returns how long it took.
fn raw_backups(guilds_dir: &Path, guilds: &[u64], copies: &Path) -> Duration {
    let started = Instant::now();
    std::fs::create_dir_all(copies).unwrap();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_GUILDS {
            scope.spawn(|| {
                while let Some(guild) = guilds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let from = guilds_dir.join(guild.to_string()).join("quotes.db");
                    raw_backup(&from, &copies.join(format!("{guild}.db")));
                }
            });
        }
    });
    started.elapsed()
}

fn raw_backup(from: &Path, to: &Path) {
    let from = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let mut copy = Connection::open(to).unwrap();
    // One step of all pages, as the store takes it (`run_to_completion` wants a positive
    // step); nothing else writes these files, so the step never finds them locked.
    let step = Backup::new(&from, &mut copy).unwrap().step(-1).unwrap();
    assert!(matches!(step, StepResult::Done), "{step:?}");
    copy.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(copy);
    File::open(to).unwrap().sync_all().unwrap();
}
