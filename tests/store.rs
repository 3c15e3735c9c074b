//! The GuildDatabaseManager against real files in a temporary data directory: creation,
//! isolation, the cap and eviction, leases, idle close, deletion, quarantine, migrations,
//! shutdown and permissions, as an operator would observe them on disk.

use std::{
    collections::HashSet,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use guildkeep::store::{GuildDatabaseManager, Migration, Migrations, StoreConfig, StoreError};
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

const LATEST: u32 = 5;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
}

fn db_path(dir: &Path, guild: u64) -> PathBuf {
    dir.join("guilds").join(guild.to_string()).join("quotes.db")
}

fn insert_quote(conn: &Connection, text: &str) -> i64 {
    conn.execute(
        "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 1, 0, 0)",
        [text],
    )
    .expect("insert");
    conn.last_insert_rowid()
}

fn quote_texts(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT text FROM quotes ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(conn: &Connection) -> u32 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Takes a lease on `guild` and holds it until the returned sender is used, then runs `then`
/// on the leased connection. Returns once the lease is held.
async fn hold_lease<T: Send + 'static>(
    store: &GuildDatabaseManager,
    guild: u64,
    then: impl FnOnce(&mut Connection) -> T + Send + 'static,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<T, StoreError>>,
) {
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let store = store.clone();
    let lease = tokio::spawn(async move {
        store
            .with_guild(guild, move |c| {
                started_tx.send(()).unwrap();
                hold.recv().unwrap();
                then(c)
            })
            .await
    });
    started.await.unwrap();
    (release, lease)
}

/// [`hold_lease`] whose use, once released, writes the quote `text` and then raises the
/// returned flag: a test can tell whether that write finished before what it waited for.
async fn hold_writing_lease(
    store: &GuildDatabaseManager,
    guild: u64,
    text: &'static str,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
    Arc<AtomicBool>,
) {
    let finished = Arc::new(AtomicBool::new(false));
    let (release, lease) = hold_lease(store, guild, {
        let finished = finished.clone();
        move |c| {
            insert_quote(c, text);
            finished.store(true, Ordering::SeqCst);
        }
    })
    .await;
    (release, lease, finished)
}

#[tokio::test]
async fn first_use_creates_the_file_at_the_latest_version_and_the_second_is_a_cache_hit() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    assert!(!db_path(tmp.path(), 42).exists());
    let version = store.with_guild(42, |c| user_version(c)).await.unwrap();
    assert_eq!(version, LATEST);
    assert!(db_path(tmp.path(), 42).is_file());
    let first = store.stats();
    assert_eq!((first.misses, first.hits, first.opens), (1, 0, 1));
    store.with_guild(42, |_| ()).await.unwrap();
    let second = store.stats();
    assert_eq!((second.misses, second.hits, second.opens), (1, 1, 1));
    let mode: String = store
        .with_guild(42, |c| {
            c.pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap()
        })
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

/// On a single worker thread, a use of an open guild that waits for another task still lets
/// that task run: the store never does SQLite work where it stalls the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_use_of_an_open_guild_stalls_no_other_task_even_on_one_worker() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    store
        .with_guild(42, |c| insert_quote(c, "open"))
        .await
        .unwrap();
    let (ask, asked) = tokio::sync::oneshot::channel::<()>();
    let (answer, answered) = std::sync::mpsc::channel();
    let other = tokio::spawn(async move {
        asked.await.unwrap();
        answer.send("from another task").unwrap();
    });
    // Spawned, so that it runs on the one worker: the test's own body does not.
    let using = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .with_guild(42, move |c| {
                    ask.send(()).unwrap();
                    (
                        answered.recv_timeout(Duration::from_secs(10)),
                        quote_texts(c),
                    )
                })
                .await
        }
    });
    let (heard, texts) = using.await.unwrap().unwrap();
    assert_eq!(heard, Ok("from another task"));
    assert_eq!(texts, ["open"]);
    assert_eq!(store.stats().hits, 1, "the second use found the guild open");
    other.await.unwrap();
}

/// Uses polled together in one task run at the same time when the task runs them
/// side by side: each of these two waits for the other to have started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_run_side_by_side_in_one_task_run_at_the_same_time() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    for guild in [1, 2] {
        store
            .with_guild(guild, |c| insert_quote(c, "open"))
            .await
            .unwrap();
    }
    let meet =
        |guild: u64, tell: std::sync::mpsc::Sender<()>, hear: std::sync::mpsc::Receiver<()>| {
            store.with_guild(guild, move |_| {
                tell.send(()).unwrap();
                hear.recv_timeout(Duration::from_secs(10))
            })
        };
    let (to_two, from_one) = std::sync::mpsc::channel();
    let (to_one, from_two) = std::sync::mpsc::channel();
    let (one, two) = guildkeep::store::side_by_side(async {
        tokio::join!(meet(1, to_two, from_two), meet(2, to_one, from_one))
    })
    .await;
    assert_eq!((one.unwrap(), two.unwrap()), (Ok(()), Ok(())));
}

/// A use whose closure panics gets an error, its writes are rolled back, and the guild is
/// neither left leased nor unusable.
async fn a_panicking_use_fails_alone(store: GuildDatabaseManager) {
    store
        .with_guild(42, |c| insert_quote(c, "kept"))
        .await
        .unwrap();
    let failed = store
        .with_guild(42, |c| {
            let tx = c.transaction().unwrap();
            insert_quote(&tx, "half done");
            panic!("a bug in a command");
        })
        .await;
    match failed {
        Err(StoreError::Task(message)) => assert!(message.contains("a bug in a command")),
        other => panic!("expected the panic as an error, got {other:?}"),
    }
    assert_eq!(store.stats().leased, 0);
    assert_eq!(
        store.with_guild(42, |c| quote_texts(c)).await.unwrap(),
        ["kept"]
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_use_of_an_open_guild_fails_alone() {
    let tmp = TempDir::new().unwrap();
    a_panicking_use_fails_alone(GuildDatabaseManager::new(config(tmp.path())).unwrap()).await;
}

#[tokio::test]
async fn a_panicking_use_on_the_blocking_pool_fails_alone() {
    let tmp = TempDir::new().unwrap();
    a_panicking_use_fails_alone(GuildDatabaseManager::new(config(tmp.path())).unwrap()).await;
}

#[tokio::test]
async fn guilds_get_separate_files_and_never_see_each_others_rows() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    store
        .with_guild(1, |c| insert_quote(c, "only in one"))
        .await
        .unwrap();
    let other = store.with_guild(2, |c| quote_texts(c)).await.unwrap();
    assert!(other.is_empty());
    assert_eq!(
        store.with_guild(1, |c| quote_texts(c)).await.unwrap(),
        ["only in one"]
    );
    assert!(db_path(tmp.path(), 1).is_file() && db_path(tmp.path(), 2).is_file());
    assert_eq!(store.guilds_on_disk().await.unwrap(), [1, 2]);
}

#[tokio::test]
async fn guild_id_zero_is_rejected_and_nothing_is_created() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let err = store.with_guild(0, |_| ()).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidGuildId(0)), "{err}");
    assert!(matches!(
        store.delete_guild(0).await,
        Err(StoreError::InvalidGuildId(0))
    ));
    assert!(
        !tmp.path().join("guilds").exists(),
        "no directory was made for it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_of_one_guild_share_a_single_open() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let uses: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .with_guild(7, move |c| insert_quote(c, &format!("q{i}")))
                    .await
            })
        })
        .collect();
    for used in uses {
        used.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.opens, 1, "{stats:?}");
    assert_eq!(
        store.with_guild(7, |c| quote_texts(c).len()).await.unwrap(),
        32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_cap_pools_are_evicted_no_data_is_lost_and_file_descriptors_stay_bounded() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_open_guilds = 4;
    let store = GuildDatabaseManager::new(cfg).unwrap();
    let baseline = open_fds();
    let peak = Arc::new(AtomicUsize::new(0));
    for round in 0..3 {
        let uses: Vec<_> = (1..=50u64)
            .map(|guild| {
                let (store, peak) = (store.clone(), peak.clone());
                tokio::spawn(async move {
                    store
                        .with_guild(guild, move |c| {
                            peak.fetch_max(open_fds(), Ordering::Relaxed);
                            insert_quote(c, &format!("g{guild} r{round}"))
                        })
                        .await
                })
            })
            .collect();
        for used in uses {
            used.await.unwrap().unwrap();
        }
        assert!(store.stats().open_pools <= 4);
    }
    for guild in 1..=50u64 {
        let texts = store.with_guild(guild, |c| quote_texts(c)).await.unwrap();
        assert_eq!(
            texts,
            (0..3).map(|r| format!("g{guild} r{r}")).collect::<Vec<_>>()
        );
    }
    let stats = store.stats();
    assert!(stats.open_pools <= 4 && stats.evictions >= 46, "{stats:?}");
    // Each open guild holds the database, its WAL and its shared-memory file per connection.
    let per_guild = 3 * 4;
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        grown <= 4 * per_guild + 16,
        "{grown} descriptors above baseline"
    );
}

/// What `quotes.db` alone holds, without its `-wal`: what an idle close or shutdown made
/// complete. Read from a copy, so that SQLite does not replay the WAL beside it.
fn texts_in_database_alone(dir: &Path, guild: u64) -> Vec<String> {
    let alone = dir.join(format!("{guild}-alone.db"));
    std::fs::copy(db_path(dir, guild), &alone).unwrap();
    let texts = quote_texts(&Connection::open(&alone).unwrap());
    std::fs::remove_file(alone).unwrap();
    texts
}

fn wal_bytes(dir: &Path, guild: u64) -> u64 {
    let wal = format!("{}-wal", db_path(dir, guild).display());
    std::fs::metadata(wal).unwrap().len()
}

/// An evicted guild is closed cheaply: no checkpoint (its write stays in its WAL) and no
/// files removed, so reopening it creates none. Shutdown checkpoints the guilds still open.
#[tokio::test]
async fn evicted_guilds_keep_their_wal_and_side_files_so_reopening_creates_none() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_open_guilds = 1;
    let store = GuildDatabaseManager::new(cfg).unwrap();
    let inodes = |guild: u64| {
        ["-wal", "-shm"].map(|suffix| {
            let side = format!("{}{suffix}", db_path(tmp.path(), guild).display());
            std::fs::metadata(side).unwrap().ino()
        })
    };
    store
        .with_guild(1, |c| insert_quote(c, "one"))
        .await
        .unwrap();
    let before = inodes(1);
    store
        .with_guild(2, |c| insert_quote(c, "two"))
        .await
        .unwrap();
    assert_eq!(store.stats().evictions, 1);
    assert!(
        wal_bytes(tmp.path(), 1) > 0,
        "eviction checkpointed the WAL"
    );
    let texts = store.with_guild(1, |c| quote_texts(c)).await.unwrap();
    assert_eq!(texts, ["one"], "the reopened guild reads its WAL");
    assert_eq!(
        inodes(1),
        before,
        "reopening guild 1 replaced its side files"
    );
    store.shutdown().await;
    assert_eq!(wal_bytes(tmp.path(), 1), 0, "shutdown left guild 1's WAL");
    assert_eq!(texts_in_database_alone(tmp.path(), 1), ["one"]);
    assert!(
        wal_bytes(tmp.path(), 2) > 0,
        "guild 2 was evicted before shutdown"
    );
    let conn = Connection::open(db_path(tmp.path(), 2)).unwrap();
    assert_eq!(quote_texts(&conn), ["two"], "guild 2's write is in its WAL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leased_guild_is_not_closed_while_others_churn_through_the_cap() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_open_guilds = 4;
    let store = GuildDatabaseManager::new(cfg).unwrap();
    store
        .with_guild(1000, |c| insert_quote(c, "before"))
        .await
        .unwrap();
    let (release, held) = hold_lease(&store, 1000, |c| {
        insert_quote(c, "after the churn");
        quote_texts(c)
    })
    .await;
    for guild in 1..=50u64 {
        store
            .with_guild(guild, move |c| insert_quote(c, "x"))
            .await
            .unwrap();
    }
    release.send(()).unwrap();
    assert_eq!(held.await.unwrap().unwrap(), ["before", "after the churn"]);
    assert!(store.stats().evictions >= 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_every_pool_is_leased_an_open_waits_for_a_lease_to_end() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_open_guilds = 2;
    cfg.open_wait = Duration::from_secs(60);
    let store = GuildDatabaseManager::new(cfg).unwrap();
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for guild in [1u64, 2] {
        let (release, holder) = hold_lease(&store, guild, |_| ()).await;
        releases.push(release);
        holders.push(holder);
    }
    let ran = Arc::new(AtomicBool::new(false));
    let third = {
        let (store, ran) = (store.clone(), ran.clone());
        tokio::spawn(async move {
            store
                .with_guild(3, move |_| ran.store(true, Ordering::SeqCst))
                .await
        })
    };
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        !ran.load(Ordering::SeqCst),
        "the third guild opened above the cap"
    );
    assert_eq!(store.stats().open_pools, 2);
    releases.remove(0).send(()).unwrap();
    third.await.unwrap().unwrap();
    assert!(ran.load(Ordering::SeqCst));
    assert!(store.stats().open_pools <= 2);
    releases.remove(0).send(()).unwrap();
    for holder in holders {
        holder.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_pool_stays_leased_an_open_fails_clearly_after_the_wait_limit() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_open_guilds = 1;
    cfg.open_wait = Duration::from_millis(50);
    let store = GuildDatabaseManager::new(cfg).unwrap();
    let (release, holder) = hold_lease(&store, 1, |_| ()).await;
    let err = store.with_guild(2, |_| ()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity { cap: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("try again"), "{err}");
    let stats = store.stats();
    assert_eq!(stats.open_pools, 1);
    // Counted by the store itself, whoever asked: here no command, as for the scheduler.
    assert_eq!(stats.at_capacity, 1);
    assert_eq!(stats.slot_wait.count(), 1, "the refused use waited");
    assert!(stats.slot_wait.sum >= Duration::from_millis(50));
    assert!(!db_path(tmp.path(), 2).exists());
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_pools_are_closed_after_the_idle_timeout_and_not_before() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.idle_timeout = Duration::from_secs(60);
    let store = GuildDatabaseManager::new(cfg).unwrap();
    store.with_guild(5, |c| insert_quote(c, "x")).await.unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(store.stats().open_pools, 1);
    assert_eq!(store.stats().idle_closes, 0);
    // The idle task looks every idle_timeout / 4, so the pool is gone within 1.25 timeouts.
    tokio::time::timeout(Duration::from_secs(60), async {
        while store.stats().open_pools > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
    .expect("the idle pool was closed");
    assert_eq!(store.stats().idle_closes, 1);
    // The reopen waits for the background close to finish.
    assert_eq!(
        store.with_guild(5, |c| quote_texts(c)).await.unwrap(),
        ["x"]
    );
    assert_eq!(wal_bytes(tmp.path(), 5), 0, "the idle close left WAL");
    assert_eq!(
        texts_in_database_alone(tmp.path(), 5),
        ["x"],
        "the idle close checkpointed the WAL into the database"
    );
}

/// An operator's `backup` or `check` holds a read transaction on guild 1 while the idle
/// pools of guilds 1 and 2 are closed in one batch. The close does not wait for that reader:
/// both guilds answer their next use at once, where they used to wait out the busy timeout.
#[tokio::test(start_paused = true)]
async fn a_reader_outside_the_store_does_not_hold_up_idle_closes() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.idle_timeout = Duration::from_secs(60);
    cfg.busy_timeout = Duration::from_secs(20);
    let store = GuildDatabaseManager::new(cfg).unwrap();
    store.with_guild(1, |c| insert_quote(c, "a")).await.unwrap();
    store.with_guild(2, |c| insert_quote(c, "b")).await.unwrap();
    let reader =
        Connection::open_with_flags(db_path(tmp.path(), 1), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    assert_eq!(quote_texts(&reader), ["a"]);
    // Written after the reader's snapshot: no checkpoint can finish while it reads.
    store.with_guild(1, |c| insert_quote(c, "c")).await.unwrap();

    tokio::time::advance(Duration::from_secs(90)).await;
    while store.stats().idle_closes < 2 {
        tokio::task::yield_now().await;
    }
    let started = std::time::Instant::now();
    assert_eq!(
        store.with_guild(2, |c| quote_texts(c)).await.unwrap(),
        ["b"]
    );
    assert_eq!(
        store.with_guild(1, |c| quote_texts(c)).await.unwrap(),
        ["a", "c"]
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the guilds waited {waited:?} for a reader elsewhere"
    );
    drop(reader);
}

/// A restore while members keep writing: every acknowledged write is in the restored guild
/// or in the copy the restore kept of what it replaced. None falls between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_falls_between_a_restores_kept_copy_and_the_restore() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    store.with_guild(3, |_| ()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let text = format!("w{}", acknowledged.len());
                let written = text.clone();
                store
                    .with_guild(3, move |c| insert_quote(c, &written))
                    .await
                    .unwrap();
                acknowledged.push(text);
            }
            acknowledged
        })
    };
    let mut kept = Vec::new();
    for _ in 0..20 {
        let prepared = tokio::task::spawn_blocking(|| {
            let mut conn = Connection::open_in_memory().unwrap();
            Migrations::embedded().apply(&mut conn).unwrap();
            insert_quote(&conn, "restored");
            conn
        })
        .await
        .unwrap();
        kept.push(store.restore_guild(3, prepared).await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let acknowledged = writer.await.unwrap();
    let mut seen: HashSet<String> = store
        .with_guild(3, |c| quote_texts(c))
        .await
        .unwrap()
        .into_iter()
        .collect();
    for copy in &kept {
        let conn = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        seen.extend(quote_texts(&conn));
    }
    let lost: Vec<_> = acknowledged.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are neither restored over nor kept: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_waits_for_running_leases_refuses_uses_meanwhile_and_removes_every_file() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let db = db_path(tmp.path(), 9);
    store
        .with_guild(9, |c| insert_quote(c, "doomed"))
        .await
        .unwrap();
    assert!(Path::new(&format!("{}-wal", db.display())).exists());

    let (release, lease, finished) = hold_writing_lease(&store, 9, "last write").await;
    let deletion = {
        let store = store.clone();
        tokio::spawn(async move { store.delete_guild(9).await })
    };
    // The deletion is waiting for the lease: a new use is refused, not given a fresh file.
    let refused = loop {
        match store.with_guild(9, |_| ()).await {
            Err(e @ StoreError::BeingDeleted(9)) => break e,
            Ok(()) => tokio::task::yield_now().await, // the deletion has not started yet
            Err(e) => panic!("unexpected error {e}"),
        }
    };
    assert!(refused.to_string().contains("being deleted"));
    assert!(!deletion.is_finished());
    release.send(()).unwrap();
    lease.await.unwrap().unwrap();
    deletion.await.unwrap().unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "the lease finished before the files went"
    );
    for path in [
        db.clone(),
        format!("{}-wal", db.display()).into(),
        format!("{}-shm", db.display()).into(),
    ] {
        assert!(!path.exists(), "{} still exists", path.display());
    }
    assert!(!tmp.path().join("guilds/9").exists());
    assert_eq!(store.stats().open_pools, 0);
    store
        .delete_guild(123_456)
        .await
        .expect("deleting an unknown guild is fine");
    // Afterwards the guild can be used again, and starts empty.
    assert!(store
        .with_guild(9, |c| quote_texts(c))
        .await
        .unwrap()
        .is_empty());
}

/// The scheduler's saved reading order names guilds; a deleted guild leaves it, so its id is in
/// no file of the data directory afterwards.
#[tokio::test]
async fn a_deleted_guild_leaves_the_reminder_reading_order() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    const DELETED: u64 = 777_777_777_777;
    for guild in [DELETED, 9] {
        store.with_guild(guild, |_| ()).await.unwrap();
    }
    store.save_reminder_order(vec![DELETED, 9]).await.unwrap();
    store.delete_guild(DELETED).await.unwrap();
    assert_eq!(store.reminder_order().await, [9]);
    let saved = std::fs::read(tmp.path().join("reminder-order")).unwrap();
    assert_eq!(saved, b"9\n");
}

/// A deletion whose caller stops waiting for it (an interaction that timed out, an operator's
/// request cut off) still runs to its end: the guild is neither refused for good nor
/// reopened with its old rows.
#[tokio::test]
async fn a_deletion_whose_caller_gives_up_still_finishes() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    store
        .with_guild(9, |c| insert_quote(c, "doomed"))
        .await
        .unwrap();
    let (release, lease, _) = hold_writing_lease(&store, 9, "last write").await;
    let mut deletion = Box::pin(store.delete_guild(9));
    // Polled until it has begun (uses are refused), then dropped while it waits for the lease.
    loop {
        assert!(futures::poll!(deletion.as_mut()).is_pending());
        match store.with_guild(9, |_| ()).await {
            Err(StoreError::BeingDeleted(9)) => break,
            Ok(()) => tokio::task::yield_now().await,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    drop(deletion);
    assert!(matches!(
        store.with_guild(9, |_| ()).await,
        Err(StoreError::BeingDeleted(9))
    ));
    release.send(()).unwrap();
    lease.await.unwrap().unwrap();
    let rows = loop {
        match store.with_guild(9, |c| quote_texts(c)).await {
            Ok(rows) => break rows,
            Err(StoreError::BeingDeleted(9)) => tokio::task::yield_now().await,
            Err(e) => panic!("unexpected error {e}"),
        }
    };
    assert!(rows.is_empty(), "the deleted guild came back with {rows:?}");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_quarantined_and_other_guilds_keep_working() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let db = db_path(tmp.path(), 66);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(
        &db,
        b"this is not a database, it is a shopping list. ".repeat(200),
    )
    .unwrap();
    let err = store.with_guild(66, |_| ()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Quarantined { guild: 66, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not a valid SQLite file"));
    assert!(!db.exists());
    let quarantined: Vec<_> = std::fs::read_dir(tmp.path().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(quarantined.len(), 1);
    let name = quarantined[0]
        .as_ref()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    assert!(name.starts_with("66-") && name.ends_with(".db"), "{name}");
    store
        .with_guild(67, |c| insert_quote(c, "fine"))
        .await
        .unwrap();
}

fn add_column() -> Migration {
    Migration {
        version: 2,
        sql: "ALTER TABLE quotes ADD COLUMN mood TEXT;",
    }
}

fn with_migrations(dir: &Path, steps: Vec<Migration>) -> StoreConfig {
    let mut cfg = config(dir);
    cfg.migrations = Migrations::new(steps);
    cfg
}

fn v1() -> Migration {
    Migration {
        version: 1,
        sql: include_str!("../schema/0001_init.sql"),
    }
}

fn v2() -> Migration {
    Migration {
        version: 2,
        sql: include_str!("../schema/0002_delivery_retry_at.sql"),
    }
}

fn v3() -> Migration {
    Migration {
        version: 3,
        sql: include_str!("../schema/0003_reminder_notice.sql"),
    }
}

fn v4() -> Migration {
    Migration {
        version: 4,
        sql: include_str!("../schema/0004_reminder_answers.sql"),
    }
}

fn v5() -> Migration {
    Migration {
        version: 5,
        sql: include_str!("../schema/0005_recurrence_count.sql"),
    }
}

#[tokio::test]
async fn an_old_database_is_upgraded_and_a_failing_migration_changes_nothing() {
    let tmp = TempDir::new().unwrap();
    let old = GuildDatabaseManager::new(with_migrations(tmp.path(), vec![v1()])).unwrap();
    old.with_guild(3, |c| insert_quote(c, "kept"))
        .await
        .unwrap();
    old.shutdown().await;

    // Fails only where there are rows to violate the CHECK, as real data-migration bugs do;
    // the empty template built at start-up passes.
    let failing = Migration {
        version: 2,
        sql: "ALTER TABLE quotes ADD COLUMN mood TEXT; UPDATE quotes SET text = '';",
    };
    let broken =
        GuildDatabaseManager::new(with_migrations(tmp.path(), vec![v1(), failing])).unwrap();
    let err = broken.with_guild(3, |_| ()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Migration { version: 2, .. }),
        "{err}"
    );
    broken.shutdown().await;
    let conn = Connection::open(db_path(tmp.path(), 3)).unwrap();
    assert_eq!(user_version(&conn), 1);
    assert!(
        conn.prepare("SELECT mood FROM quotes").is_err(),
        "the half-applied step was rolled back"
    );
    drop(conn);

    let new =
        GuildDatabaseManager::new(with_migrations(tmp.path(), vec![v1(), add_column()])).unwrap();
    let (version, texts) = new
        .with_guild(3, |c| {
            let v = user_version(c);
            c.execute("UPDATE quotes SET mood = 'glad'", []).unwrap();
            (v, quote_texts(c))
        })
        .await
        .unwrap();
    assert_eq!((version, texts), (2, vec!["kept".to_string()]));
}

#[tokio::test]
async fn a_database_newer_than_this_build_is_refused_and_left_untouched() {
    let tmp = TempDir::new().unwrap();
    let future = Migration {
        version: LATEST + 1,
        ..add_column()
    };
    let steps = vec![v1(), v2(), v3(), v4(), v5(), future];
    let newer = GuildDatabaseManager::new(with_migrations(tmp.path(), steps)).unwrap();
    newer
        .with_guild(4, |c| insert_quote(c, "from the future"))
        .await
        .unwrap();
    newer.shutdown().await;
    let db = db_path(tmp.path(), 4);
    let before = std::fs::read(&db).unwrap();

    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let err = store.with_guild(4, |_| ()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooNew { found, supported: LATEST } if found == LATEST + 1
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this build"));
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_leases_checkpoints_the_wal_and_refuses_later_uses() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    for guild in 1..=3u64 {
        store
            .with_guild(guild, |c| insert_quote(c, "x"))
            .await
            .unwrap();
    }
    let (release, lease, finished) = hold_writing_lease(&store, 1, "during shutdown").await;
    let shutdown = {
        let store = store.clone();
        tokio::spawn(async move { store.shutdown().await })
    };
    let refused = loop {
        match store.with_guild(2, |_| ()).await {
            Err(e) => break e,
            Ok(()) => tokio::task::yield_now().await,
        }
    };
    assert!(matches!(refused, StoreError::ShuttingDown), "{refused}");
    assert!(refused.to_string().contains("shutting down"));
    assert!(!shutdown.is_finished());
    release.send(()).unwrap();
    lease.await.unwrap().unwrap();
    shutdown.await.unwrap();
    assert!(finished.load(Ordering::SeqCst));
    for guild in 1..=3u64 {
        let size = wal_bytes(tmp.path(), guild);
        assert_eq!(size, 0, "guild {guild} left {size} bytes of WAL");
    }
    let conn = Connection::open(db_path(tmp.path(), 1)).unwrap();
    assert_eq!(quote_texts(&conn), ["x", "during shutdown"]);
}

#[tokio::test]
async fn files_are_0600_and_directories_0700() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let store = GuildDatabaseManager::new(config(&data)).unwrap();
    store
        .with_guild(77, |c| insert_quote(c, "x"))
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [data.clone(), data.join("guilds"), data.join("guilds/77")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    let db = db_path(&data, 77);
    for file in [
        db.clone(),
        format!("{}-wal", db.display()).into(),
        format!("{}-shm", db.display()).into(),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn guilds_of_shards_this_process_does_not_run_are_refused() {
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(tmp.path());
    cfg.shards = Some(guildkeep::store::ShardOwnership {
        count: 2,
        owned: 0..1,
    });
    let store = GuildDatabaseManager::new(cfg).unwrap();
    let ours = 2u64 << 22; // shard 0
    let theirs = 1u64 << 22; // shard 1
    store.with_guild(ours, |_| ()).await.unwrap();
    let err = store.with_guild(theirs, |_| ()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotOurShard { shard: 1, .. }),
        "{err}"
    );
    assert!(!db_path(tmp.path(), theirs).exists());
}

/// Found by `tests/torture.rs`: a use that may create the guild waited on a concurrent
/// existing-only use's open and was handed its "no database" as a failure. Tasks on this
/// single-threaded runtime run in spawn order, so the second use always finds the first's
/// open still running.
#[tokio::test]
async fn a_use_waiting_on_an_existing_only_open_of_a_guild_without_a_database_decides_for_itself() {
    let tmp = TempDir::new().unwrap();
    let store = GuildDatabaseManager::new(config(tmp.path())).unwrap();
    let spawn_existing_only = |guild: u64| {
        let store = store.clone();
        tokio::spawn(async move { store.with_existing_guild(guild, |_| ()).await })
    };
    let first = spawn_existing_only(10);
    let creating = {
        let store = store.clone();
        tokio::spawn(async move { store.with_guild(10, |c| insert_quote(c, "first")).await })
    };
    assert!(matches!(
        first.await.unwrap(),
        Err(StoreError::UnknownGuild(10))
    ));
    creating
        .await
        .unwrap()
        .expect("the creating use creates the guild");
    assert_eq!(
        store.with_guild(10, |c| quote_texts(c)).await.unwrap(),
        ["first"]
    );

    let (a, b) = (spawn_existing_only(11), spawn_existing_only(11));
    for outcome in [a.await.unwrap(), b.await.unwrap()] {
        assert!(
            matches!(outcome, Err(StoreError::UnknownGuild(11))),
            "{outcome:?}"
        );
    }
}

fn spare_dir(data: &Path, version: u32) -> PathBuf {
    data.join("guilds").join(format!(".spare-v{version}"))
}

fn with_spare(dir: &Path) -> StoreConfig {
    let mut config = config(dir);
    config.keep_spare_guild = true;
    config
}

#[tokio::test]
async fn a_store_that_keeps_a_spare_makes_the_next_new_guild_from_it() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let store = GuildDatabaseManager::new(with_spare(data)).unwrap();
    store
        .with_guild(1, |c| insert_quote(c, "first guild"))
        .await
        .unwrap();
    // Shutdown waits for the spare being made after the first guild.
    store.shutdown().await;
    assert!(spare_dir(data, LATEST).join("quotes.db").is_file());

    let store = GuildDatabaseManager::new(with_spare(data)).unwrap();
    store
        .with_guild(2, |c| insert_quote(c, "second guild"))
        .await
        .unwrap();
    let stats = store.stats();
    assert_eq!((stats.created, stats.created_from_spare), (1, 1));
    store.shutdown().await;

    let conn = Connection::open(db_path(data, 2)).unwrap();
    assert_eq!(quote_texts(&conn), ["second guild"]);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(user_version(&conn), LATEST);
    drop(conn);
    // Taken, and made again; neither guild sees it as one of the guilds.
    assert!(spare_dir(data, LATEST).join("quotes.db").is_file());
    let store = GuildDatabaseManager::new(config(data)).unwrap();
    assert_eq!(store.guilds_on_disk().await.unwrap(), [1, 2]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let spare = spare_dir(data, LATEST);
    assert_eq!(mode(&spare), 0o700);
    for entry in std::fs::read_dir(&spare).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[tokio::test]
async fn a_spare_is_not_used_over_an_old_guilds_leftovers_nor_from_another_schema_version() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let store = GuildDatabaseManager::new(with_spare(data)).unwrap();
    store.with_guild(1, |_| ()).await.unwrap();
    store.shutdown().await;
    assert!(spare_dir(data, LATEST).is_dir());

    // A deletion cut short left guild 5's old WAL behind: that guild is made from the
    // template, which removes the WAL, and the spare stays for the next guild.
    let stale_wal = data.join("guilds/5/quotes.db-wal");
    std::fs::create_dir_all(stale_wal.parent().unwrap()).unwrap();
    std::fs::write(&stale_wal, b"an old guild's WAL").unwrap();
    let store = GuildDatabaseManager::new(with_spare(data)).unwrap();
    store
        .with_guild(5, |c| insert_quote(c, "new guild 5"))
        .await
        .unwrap();
    assert_eq!(store.stats().created_from_spare, 0);
    store.shutdown().await;
    assert!(spare_dir(data, LATEST).is_dir());
    let conn = Connection::open(db_path(data, 5)).unwrap();
    assert_eq!(quote_texts(&conn), ["new guild 5"]);
    drop(conn);

    // Only a spare another build made for a newer schema: not used, and left alone.
    std::fs::rename(spare_dir(data, LATEST), spare_dir(data, LATEST + 1)).unwrap();
    let store = GuildDatabaseManager::new(config(data)).unwrap();
    let version = store.with_guild(6, |c| user_version(c)).await.unwrap();
    assert_eq!(version, LATEST);
    assert_eq!(store.stats().created_from_spare, 0);
    store.shutdown().await;
    assert!(spare_dir(data, LATEST + 1).join("quotes.db").is_file());
}
