//! Resource exhaustion: too few file descriptors for `max_open_guilds`, and a full disk.
//!
//! Each test re-runs its own binary as a child under `sh -c 'ulimit …; exec …'`, so the
//! limit applies to that process only; the child prints one line per outcome, and the
//! parent, without limits, checks the files the child left. A failed use must come back as
//! an error that says why, nothing may panic, and every file must stay sound with every
//! acknowledged write in it. Not here: crashes (`crash.rs`), damaged files (`damaged.rs`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
};

use guildkeep::store::{GuildDatabaseManager, StoreConfig};
use rusqlite::Connection;
use tempfile::TempDir;

const CHILD: &str = "GUILDKEEP_EXHAUSTION_CHILD";

/// Runs `test_name` of this binary as a child with `limits` (shell `ulimit` commands) set,
/// on the data directory `dir`, and returns what it printed.
fn run_limited(test_name: &str, limits: &str, dir: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{limits} && exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .output()
        .unwrap()
}

/// The data directory when this process is the limited child. It then ends the line libtest
/// began (`test <name> ... ` has no newline yet), so its first own line is a whole line.
fn child_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(CHILD).map(PathBuf::from)?;
    println!();
    Some(dir)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn insert(conn: &Connection, text: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 1, 0, 0)",
        [text],
    )
}

/// The lines of the child's output that start with `word`, without it.
fn lines<'a>(out: &'a str, word: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(word).map(str::trim))
        .collect()
}

/// Every guild file passes `integrity_check`; returns each guild's row count.
fn sound_files(dir: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("guilds")).unwrap() {
        let entry = entry.unwrap();
        let db = entry.path().join("quotes.db");
        if !db.exists() {
            continue;
        }
        let guild: u64 = entry.file_name().to_str().unwrap().parse().unwrap();
        let conn = Connection::open(&db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "guild {guild}");
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM quotes", [], |r| r.get(0))
            .unwrap();
        counts.insert(guild, usize::try_from(rows).unwrap());
    }
    counts
}

fn assert_child_finished(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "done"),
        "the limited child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const FEW_FDS: &str =
    "fewer_file_descriptors_than_the_cap_needs_fail_new_guilds_clearly_and_corrupt_nothing";

/// 64 guilds may be open, each needing three descriptors (database, WAL, shared memory), but
/// the process may hold only 48. Guilds already open keep working; opening more fails with
/// the operating system's reason until descriptors are free again.
#[test]
fn fewer_file_descriptors_than_the_cap_needs_fail_new_guilds_clearly_and_corrupt_nothing() {
    if let Some(dir) = child_dir() {
        return runtime().block_on(few_fds_child(dir));
    }
    let tmp = TempDir::new().unwrap();
    let out = run_limited(FEW_FDS, "ulimit -n 48", tmp.path());
    let stdout = assert_child_finished(&out);
    let refused = lines(&stdout, "refused");
    assert!(!refused.is_empty(), "the limit never bit:\n{stdout}");
    for reason in &refused {
        assert!(
            reason.contains("Too many open files") || reason.contains("unable to open"),
            "unclear: {reason}"
        );
    }
    let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
    for guild in lines(&stdout, "ack") {
        *acked.entry(guild.parse().unwrap()).or_default() += 1;
    }
    let on_disk = sound_files(tmp.path());
    for (guild, count) in &acked {
        let said: Vec<&str> = stdout
            .lines()
            .filter(|l| l.split([' ', ':']).nth(1) == Some(&guild.to_string()))
            .collect();
        assert_eq!(on_disk.get(guild), Some(count), "guild {guild}: {said:?}");
    }
    println!(
        "few descriptors: {} guilds written, {} uses refused, e.g. {}",
        acked.len(),
        refused.len(),
        refused[0]
    );
}

async fn few_fds_child(dir: PathBuf) {
    let mut config = StoreConfig::new(&dir);
    config.max_open_guilds = 64;
    let store = GuildDatabaseManager::new(config).unwrap();
    let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let (store, opened) = (store.clone(), opened.clone());
            tokio::spawn(async move {
                for guild in (1..=64u64).filter(|g| g % 8 == task) {
                    let outcome = store
                        .with_guild(guild, move |c| insert(c, "while descriptors ran out"))
                        .await;
                    match outcome {
                        Ok(Ok(_)) => {
                            println!("ack {guild}");
                            opened.lock().unwrap().push(guild);
                        }
                        Ok(Err(e)) => println!("refused {guild}: {e}"),
                        Err(e) => println!("refused {guild}: {e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // The guilds that did open still take writes.
    let opened = opened.lock().unwrap().clone();
    for guild in opened {
        store
            .with_guild(guild, |c| insert(c, "afterwards"))
            .await
            .unwrap()
            .unwrap();
        println!("ack {guild}");
    }
    store.shutdown().await;
    println!("done");
}

const DISK_FULL: &str = "a_full_disk_fails_writes_with_an_error_and_keeps_earlier_data_intact";

/// RLIMIT_FSIZE of 1 MiB, with SIGXFSZ ignored so writes past it fail with EFBIG as they do
/// on a full disk: writes fail with an error, the guild stays readable, and everything
/// acknowledged before is there afterwards, in files that pass `integrity_check`.
#[test]
fn a_full_disk_fails_writes_with_an_error_and_keeps_earlier_data_intact() {
    if let Some(dir) = child_dir() {
        return runtime().block_on(disk_full_child(dir));
    }
    let tmp = TempDir::new().unwrap();
    let out = run_limited(DISK_FULL, "trap '' XFSZ && ulimit -f 2048", tmp.path());
    let stdout = assert_child_finished(&out);
    let refused = lines(&stdout, "refused");
    assert!(!refused.is_empty(), "the disk never filled:\n{stdout}");
    for reason in &refused {
        assert!(
            reason.contains("full") || reason.contains("disk I/O error"),
            "unclear: {reason}"
        );
    }
    let acked = lines(&stdout, "ack").len();
    assert_eq!(
        lines(&stdout, "readable"),
        [acked.to_string()],
        "reads on the full disk"
    );
    let on_disk = sound_files(tmp.path());
    assert_eq!(on_disk.get(&1), Some(&acked), "{stdout}");
    println!(
        "disk full: {acked} writes acknowledged and kept, {} refused with: {}",
        refused.len(),
        refused[0]
    );
}

async fn disk_full_child(dir: PathBuf) {
    let store = GuildDatabaseManager::new(StoreConfig::new(&dir)).unwrap();
    let text = "a quote that fills the disk ".repeat(70);
    let mut refusals = 0;
    // Until a few writes in a row have failed: the first failure is not the last word.
    for _ in 0..5000 {
        let text = text.clone();
        match store
            .with_guild(1, move |c| insert(c, &text))
            .await
            .unwrap()
        {
            Ok(_) => {
                println!("ack");
                refusals = 0;
            }
            Err(e) => {
                println!("refused {e}");
                refusals += 1;
                if refusals == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(refusals, 3, "1 MiB never filled up");
    // Reading still works on a full disk.
    let rows: i64 = store
        .with_guild(1, |c| {
            c.query_row("SELECT COUNT(*) FROM quotes", [], |r| r.get(0))
        })
        .await
        .unwrap()
        .unwrap();
    println!("readable {rows}");
    store.shutdown().await;
    println!("done");
}
