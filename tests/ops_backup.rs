//! `guildkeep backup` on real files: copies taken while another connection keeps writing are
//! whole and consistent, the manifest describes the copies exactly, and `--keep` removes only
//! old complete sets, never because of an interrupted or failed one.

mod ops_support;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use guildkeep::{
    ops::backup::{backup, BackupOptions, Manifest, MANIFEST},
    store::{
        backup::{integrity_check, row_counts},
        GuildDatabaseManager,
    },
};
use ops_support::{sha256, store};
use rusqlite::Connection;

const GUILDS: [u64; 6] = [11, 22, 33, 44, 55, 66];

async fn seed(store: &GuildDatabaseManager, guilds: &[u64], quotes: usize) {
    for &guild in guilds {
        store
            .with_guild(guild, move |c| {
                let tx = c.transaction()?;
                for i in 0..quotes {
                    tx.execute(
                        "INSERT INTO quotes (text, added_by, created_at, updated_at) \
                         VALUES (?1, 7, 1, 1)",
                        [format!("seed quote {i} {}", "x".repeat(200))],
                    )?;
                }
                tx.commit()
            })
            .await
            .unwrap()
            .unwrap();
    }
}

fn quotes_in(path: &Path) -> u64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM quotes", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

fn read_manifest(set: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(set.join(MANIFEST)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_taken_under_continuous_writes_are_whole_and_match_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    seed(&store, &GUILDS, 300).await;

    // A writer on connections of its own, as the bot in another process would be: one row
    // per transaction, round robin over the guilds, counting what it has committed.
    let committed: Arc<Vec<AtomicU64>> =
        Arc::new(GUILDS.iter().map(|_| AtomicU64::new(300)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (committed, stop) = (committed.clone(), stop.clone());
        let paths: Vec<PathBuf> = GUILDS
            .iter()
            .map(|g| data.join("guilds").join(g.to_string()).join("quotes.db"))
            .collect();
        std::thread::spawn(move || {
            let conns: Vec<Connection> = paths
                .iter()
                .map(|p| {
                    let c = Connection::open(p).unwrap();
                    c.busy_timeout(Duration::from_secs(10)).unwrap();
                    c
                })
                .collect();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let i = n % conns.len();
                conns[i]
                    .execute(
                        "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES ('live', 8, 2, 2)",
                        [],
                    )
                    .unwrap();
                committed[i].fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: Vec<u64> = committed.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    let report = backup(&store, BackupOptions::default()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written >= 10, "the writer kept writing ({written} rows)");

    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let manifest = read_manifest(&report.set);
    assert_eq!(manifest.guilds.keys().copied().collect::<Vec<_>>(), GUILDS);
    assert_eq!(
        std::fs::metadata(&report.set).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // One self-contained file per guild: no temporary copy left, no journal, -wal or -shm.
    let mut files: Vec<String> = std::fs::read_dir(&report.set)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = GUILDS.iter().map(|g| format!("{g}.db")).collect();
    expected.push(MANIFEST.to_owned());
    assert_eq!(files, expected);
    for (i, guild) in GUILDS.iter().enumerate() {
        let entry = &manifest.guilds[guild];
        let copy = report.set.join(&entry.file);
        let mode: String = Connection::open(&copy)
            .unwrap()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(
            mode, "delete",
            "guild {guild}: a copy in WAL mode would grow side files when read"
        );
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let conn = Connection::open(&copy).unwrap();
        assert_eq!(integrity_check(&conn).unwrap(), "ok");
        assert_eq!(row_counts(&conn).unwrap(), entry.rows, "guild {guild}");
        drop(conn);
        assert!(
            quotes_in(&copy) >= before[i],
            "guild {guild}: the copy has every row committed before the backup started"
        );
        assert_eq!(entry.sha256, sha256(&copy));
        assert_eq!(entry.bytes, std::fs::metadata(&copy).unwrap().len());
        let latest = guildkeep::store::Migrations::embedded().latest();
        assert_eq!(
            (entry.schema_version, entry.integrity.as_str()),
            (latest, "ok")
        );
    }
}

fn complete_sets(root: &Path) -> Vec<String> {
    let mut sets: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(MANIFEST).exists())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    sets.sort();
    sets
}

async fn one_set(store: &GuildDatabaseManager, out: &Path, keep: Option<usize>) -> PathBuf {
    // Set names have millisecond resolution; keep runs apart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = backup(
        store,
        BackupOptions {
            out: Some(out.to_path_buf()),
            keep,
            ..BackupOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.failures().is_empty());
    report.set
}

#[tokio::test]
async fn keep_leaves_exactly_n_complete_sets_and_interrupted_sets_cost_no_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sets");
    let store = store(&dir.path().join("data"));
    seed(&store, &GUILDS[..2], 10).await;

    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(one_set(&store, &out, None).await);
    }
    // Interrupted runs: an old one and a newer one, each a set directory without manifest.
    let old_interrupted = out.join("20000101T000000.000Z");
    let new_interrupted = out.join("29990101T000000.000Z");
    for set in [&old_interrupted, &new_interrupted] {
        std::fs::create_dir(set).unwrap();
        std::fs::write(set.join(".11.db.partial"), b"half").unwrap();
    }
    // A directory that is not a set at all.
    std::fs::create_dir(out.join("operator-notes")).unwrap();

    let newest = one_set(&store, &out, Some(2)).await;
    let names = |sets: &[&PathBuf]| -> Vec<String> {
        sets.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(complete_sets(&out), names(&[&made[2], &newest]));
    assert!(old_interrupted.exists() && new_interrupted.exists());
    assert!(out.join("operator-notes").exists());

    // A set with a failed guild is not complete: it removes nothing, and is never removed.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failing = backup(
        &store,
        BackupOptions {
            guilds: vec![GUILDS[0], 999],
            out: Some(out.clone()),
            keep: Some(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        failing.failures().keys().copied().collect::<Vec<_>>(),
        vec![999]
    );
    assert!(failing.removed.is_empty());
    assert!(
        failing.set.join(format!("{}.db", GUILDS[0])).exists(),
        "the others are still backed up"
    );
    assert_eq!(read_manifest(&failing.set).failed.len(), 1);

    let last = one_set(&store, &out, Some(1)).await;
    assert_eq!(
        complete_sets(&out),
        vec![
            failing
                .set
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            last.file_name().unwrap().to_string_lossy().into_owned(),
        ]
    );
    assert!(backup(
        &store,
        BackupOptions {
            keep: Some(0),
            ..BackupOptions::default()
        }
    )
    .await
    .is_err());
}

#[tokio::test]
async fn a_data_directory_nobody_has_open_is_backed_up_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = store(&data);
    seed(&first, &GUILDS[..3], 20).await;
    first.shutdown().await;
    drop(first);
    let db = |g: u64| data.join("guilds").join(g.to_string()).join("quotes.db");
    let digests_before: Vec<String> = GUILDS[..3].iter().map(|&g| sha256(&db(g))).collect();

    let store = store(&data);
    let report = backup(&store, BackupOptions::default()).await.unwrap();
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(report.manifest.guilds.len(), 3);
    for entry in report.manifest.guilds.values() {
        assert_eq!(entry.rows["quotes"], 20);
    }
    // The read-only connections may leave empty -wal/-shm files; the databases are unchanged.
    let digests_after: Vec<String> = GUILDS[..3].iter().map(|&g| sha256(&db(g))).collect();
    assert_eq!(digests_after, digests_before);
}
