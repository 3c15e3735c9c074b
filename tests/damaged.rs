//! Damaged guild files, as they turn up on real disks: a database cut short, a garbage
//! header, WAL side files that belong to another file, a directory or a plain file in the
//! wrong place, a read-only database, a guild directory the bot may not enter. Each must
//! give that one guild a clear error (or quarantine it, logged once) while every other guild
//! keeps reading and writing.
//!
//! The permission cases need an unprivileged process: root ignores permission bits. When the
//! tests run as root they re-run those cases in a child dropped to `nobody` with `setpriv`,
//! and say so loudly if that is impossible. Not here: crashes (`crash.rs`) and resource
//! exhaustion (`exhaustion.rs`).

use std::{
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, OnceLock},
};

use guildkeep::{
    ops::inspect,
    store::{GuildDatabaseManager, StoreConfig, StoreError},
};
use rusqlite::{Connection, ErrorCode};
use tempfile::TempDir;

/// Healthy neighbours of every damaged guild.
const NEIGHBOURS: [u64; 2] = [1, 2];

fn db_path(dir: &Path, guild: u64) -> PathBuf {
    dir.join("guilds").join(guild.to_string()).join("quotes.db")
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

fn store(dir: &Path) -> GuildDatabaseManager {
    GuildDatabaseManager::new(StoreConfig::new(dir)).unwrap()
}

fn insert(conn: &Connection, text: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 1, 0, 0)",
        [text],
    )
}

fn texts(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT text FROM quotes ORDER BY id")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// `count` quotes big enough that the file spans many pages, written and checkpointed by a
/// store that then shuts down, as a bot leaves its files on a clean stop.
async fn populate(dir: &Path, guilds: &[u64], count: usize) {
    let store = store(dir);
    for &guild in guilds {
        store
            .with_guild(guild, move |c| {
                for i in 0..count {
                    insert(c, &format!("guild {guild} quote {i} {}", "x".repeat(400))).unwrap();
                }
            })
            .await
            .unwrap();
    }
    store.shutdown().await;
}

/// Every neighbour still takes a write and shows all its rows.
async fn neighbours_work(store: &GuildDatabaseManager, before: usize) {
    for guild in NEIGHBOURS {
        let rows = store
            .with_guild(guild, |c| {
                insert(c, "still here").unwrap();
                texts(c).unwrap().len()
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            before + 1,
            "guild {guild} lost rows or refused a write"
        );
    }
}

/// Log lines the store wrote about `guild`. One subscriber for the whole test binary, since
/// the store logs from blocking-pool threads; tests tell their lines apart by guild id.
fn logged_about(guild: u64) -> Vec<String> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .init();
        log
    });
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let field = format!("guild={guild} ");
    text.lines()
        .filter(|line| line.contains(&field))
        .map(str::to_owned)
        .collect()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn quarantined_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("quarantine")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The quarantine path: the first use fails naming the guild and the file's new place, one
/// error is logged, the next use starts the guild afresh (no second quarantine, no second
/// log line), and the neighbours never notice.
async fn assert_quarantined_once(dir: &Path, guild: u64, neighbour_rows: usize) {
    logged_about(guild);
    let store = store(dir);
    store.with_guild(NEIGHBOURS[0], |_| ()).await.unwrap();
    let err = store.with_guild(guild, |_| ()).await.unwrap_err();
    let StoreError::Quarantined {
        guild: named,
        moved_to,
    } = &err
    else {
        panic!("guild {guild}: expected quarantine, got {err}");
    };
    assert_eq!(*named, guild);
    assert!(moved_to.is_file(), "{}", moved_to.display());
    assert!(err.to_string().contains("not a valid SQLite file"), "{err}");
    assert_eq!(
        store
            .with_guild(guild, |c| texts(c).unwrap())
            .await
            .unwrap(),
        Vec::<String>::new(),
        "the guild starts afresh after quarantine"
    );
    let logged = logged_about(guild);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("ERROR") && logged[0].contains("quarantined"));
    let moved = quarantined_files(dir);
    assert_eq!(
        moved
            .iter()
            .filter(|n| n.starts_with(&format!("{guild}-")))
            .count(),
        1,
        "{moved:?}"
    );
    neighbours_work(&store, neighbour_rows).await;
}

#[tokio::test]
async fn a_garbage_header_is_quarantined_logged_once_and_other_guilds_keep_working() {
    let tmp = TempDir::new().unwrap();
    let guild = 3001;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
    let db = db_path(tmp.path(), guild);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].copy_from_slice(&[0xA5; 100]);
    std::fs::write(&db, bytes).unwrap();
    assert_quarantined_once(tmp.path(), guild, 10).await;
}

#[tokio::test]
async fn a_database_cut_off_inside_its_header_is_quarantined_and_logged_once() {
    let tmp = TempDir::new().unwrap();
    let guild = 3002;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
    let db = db_path(tmp.path(), guild);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(60)
        .unwrap();
    assert_quarantined_once(tmp.path(), guild, 10).await;
}

#[tokio::test]
async fn a_database_truncated_mid_file_is_quarantined_and_logged_once() {
    let tmp = TempDir::new().unwrap();
    let guild = 3003;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 40).await;
    let db = db_path(tmp.path(), guild);
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_quarantined_once(tmp.path(), guild, 40).await;
}

/// An empty file is a valid, empty database to SQLite, so without a check the guild would
/// silently start afresh and nobody would learn its data was gone. The store never writes
/// an empty file (new files are written whole, then linked), so this is outside damage.
#[tokio::test]
async fn a_database_truncated_to_nothing_is_quarantined_not_silently_started_afresh() {
    let tmp = TempDir::new().unwrap();
    let guild = 3010;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
    std::fs::File::create(db_path(tmp.path(), guild)).unwrap();
    assert_quarantined_once(tmp.path(), guild, 10).await;
}

#[tokio::test]
async fn pages_overwritten_inside_a_database_fail_its_uses_as_corrupt_and_check_names_only_it() {
    let tmp = TempDir::new().unwrap();
    let guild = 3008;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 40).await;
    let db = db_path(tmp.path(), guild);
    let mut bytes = std::fs::read(&db).unwrap();
    // The tail pages hold the newest quotes; the schema near the start stays readable.
    let tail = bytes.len() - 4 * 4096;
    bytes[tail..].fill(0x5A);
    std::fs::write(&db, bytes).unwrap();

    let store = store(tmp.path());
    // The file opens; reading the damaged pages is what fails, on every use, and the file
    // stays where it is: most of it can still be salvaged, and `check` names it.
    for _ in 0..2 {
        let read = store.with_guild(guild, |c| texts(c)).await.unwrap();
        let err = read.expect_err("reading damaged pages must fail");
        assert_eq!(
            err.sqlite_error_code(),
            Some(ErrorCode::DatabaseCorrupt),
            "{err}"
        );
        assert!(err.to_string().contains("malformed"), "{err}");
    }
    assert!(db.is_file());
    neighbours_work(&store, 40).await;

    let report = inspect::check(&store, &[]).await.unwrap();
    let damaged: Vec<u64> = report
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| r.guild)
        .collect();
    assert_eq!(damaged, [guild], "{report:?}");
}

#[tokio::test]
async fn a_directory_where_the_database_should_be_is_an_open_error_and_nothing_is_moved() {
    let tmp = TempDir::new().unwrap();
    let guild = 3004;
    populate(tmp.path(), &NEIGHBOURS, 10).await;
    let db = db_path(tmp.path(), guild);
    std::fs::create_dir_all(db.join("left-by-someone")).unwrap();

    let store = store(tmp.path());
    for _ in 0..2 {
        let err = store.with_guild(guild, |_| ()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::OpenFailed { guild: g, .. } if g == guild),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("guild {guild}")), "{err}");
    }
    assert!(
        db.join("left-by-someone").is_dir(),
        "an operator's directory is left alone"
    );
    assert!(quarantined_files(tmp.path()).is_empty());
    neighbours_work(&store, 10).await;
}

#[tokio::test]
async fn a_file_where_the_guild_directory_should_be_is_a_clear_error_naming_the_path() {
    let tmp = TempDir::new().unwrap();
    let guild = 3005;
    populate(tmp.path(), &NEIGHBOURS, 10).await;
    let guild_dir = tmp.path().join("guilds").join(guild.to_string());
    std::fs::write(&guild_dir, b"notes").unwrap();

    let store = store(tmp.path());
    let err = store.with_guild(guild, |_| ()).await.unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains(&guild.to_string()), "{err}");
    assert_eq!(std::fs::read(&guild_dir).unwrap(), b"notes");
    neighbours_work(&store, 10).await;
}

/// Runs `case` as an unprivileged user: directly when the tests are not root, else in this
/// test binary re-run as `nobody` under `setpriv`. Skips (loudly) only when neither works.
fn unprivileged(test_name: &str, case: impl FnOnce()) {
    const CHILD: &str = "GUILDKEEP_UNPRIVILEGED_CHILD";
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        return case();
    }
    assert!(
        std::env::var_os(CHILD).is_none(),
        "setpriv left the child running as root"
    );
    let drop_to_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let exe = std::env::current_exe().unwrap();
    // Listing the tests proves both that setpriv works and that `nobody` may run this binary.
    let usable = Command::new("setpriv")
        .args(drop_to_nobody)
        .arg(&exe)
        .arg("--list")
        .output()
        .is_ok_and(|out| out.status.success());
    if !usable {
        eprintln!(
            "SKIPPED {test_name}: the tests run as root, where permission bits do not stop \
             reads or writes, and `setpriv` cannot run this test binary as `nobody` here"
        );
        return;
    }
    let out = Command::new("setpriv")
        .args(drop_to_nobody)
        .arg(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        // A temporary directory `nobody` may write in, whatever the caller's TMPDIR is.
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the unprivileged run failed:\n{stdout}\n{stderr}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_database_file_refuses_writes_clearly_and_keeps_its_data() {
    unprivileged(
        "a_read_only_database_file_refuses_writes_clearly_and_keeps_its_data",
        || {
            runtime().block_on(async {
                let tmp = TempDir::new().unwrap();
                let guild = 3006;
                populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
                let db = db_path(tmp.path(), guild);
                chmod(&db, 0o400);

                let store = store(tmp.path());
                let write = store
                    .with_guild(guild, |c| insert(c, "must not land"))
                    .await;
                let message = match write {
                    Ok(Ok(_)) => panic!("a write to a read-only file succeeded"),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(message.contains("readonly"), "{message}");
                neighbours_work(&store, 10).await;
                store.shutdown().await;

                chmod(&db, 0o600);
                let conn = Connection::open(&db).unwrap();
                let rows = texts(&conn).unwrap();
                assert_eq!(rows.len(), 10);
                assert!(!rows.iter().any(|t| t == "must not land"));
                let check: String = conn
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(check, "ok");
            })
        },
    );
}

#[test]
fn a_guild_directory_without_permission_is_a_clear_error_for_that_guild_only() {
    unprivileged(
        "a_guild_directory_without_permission_is_a_clear_error_for_that_guild_only",
        || {
            runtime().block_on(async {
                let tmp = TempDir::new().unwrap();
                let guild = 3007;
                populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
                let guild_dir = db_path(tmp.path(), guild).parent().unwrap().to_owned();
                chmod(&guild_dir, 0o000);

                let store = store(tmp.path());
                let err = store.with_guild(guild, |_| ()).await.unwrap_err();
                assert!(err.to_string().contains("ermission denied"), "{err}");
                neighbours_work(&store, 10).await;
                store.shutdown().await;

                chmod(&guild_dir, 0o700);
                let store = self::store(tmp.path());
                let rows = store
                    .with_guild(guild, |c| texts(c).unwrap().len())
                    .await
                    .unwrap();
                assert_eq!(rows, 10, "the guild's data is intact once access returns");
            })
        },
    );
}

/// A crash between removing `quotes.db` and removing its `-wal` (deleting a guild whose WAL
/// was left by an earlier crash) leaves the old WAL beside no database. SQLite replays any
/// valid WAL into the file beside it, so the guild's next, fresh database must not inherit it:
/// the deleted rows must not come back.
#[tokio::test]
async fn a_stale_wal_beside_a_missing_database_does_not_bring_deleted_rows_back() {
    let tmp = TempDir::new().unwrap();
    let guild = 3009;
    populate(tmp.path(), &[NEIGHBOURS[0], NEIGHBOURS[1], guild], 10).await;
    let db = db_path(tmp.path(), guild);
    let stale = tmp.path().join("stale-wal");
    {
        // A WAL holding committed rows that were never checkpointed, as a killed bot leaves it.
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        insert(&conn, "deleted with the guild").unwrap();
        std::fs::copy(side(&db, "-wal"), &stale).unwrap();
    }
    std::fs::remove_file(&db).unwrap();
    std::fs::copy(&stale, side(&db, "-wal")).unwrap();

    let store = store(tmp.path());
    let rows = store
        .with_guild(guild, |c| texts(c).unwrap())
        .await
        .unwrap();
    assert_eq!(rows, Vec::<String>::new(), "deleted rows came back");
    let check: String = store
        .with_guild(guild, |c| {
            c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(check, "ok");
    neighbours_work(&store, 10).await;
}
