//! Shared by the `tests/ops_*.rs` integration tests: a store over a temporary data directory,
//! an empty legacy database, an import (plain, or with everything the import promises around
//! it checked), and a listing of everything under a directory (to show that a job created,
//! changed or removed nothing). Not here: assertions about what one import brings in.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::{Path, PathBuf};

use guildkeep::{
    ops::{
        legacy::{migrate_legacy, GuildCounts, ImportOptions, ImportReport},
        Owner,
    },
    store::{GuildDatabaseManager, StoreConfig},
};
use rusqlite::Connection;

pub mod verabot;

pub fn store(data_dir: &Path) -> GuildDatabaseManager {
    GuildDatabaseManager::new(StoreConfig::new(data_dir)).expect("store opens")
}

/// Runs `migrate-legacy` as the CLI does without a bot; every guild must import.
pub async fn import(store: &GuildDatabaseManager, options: ImportOptions) -> ImportReport {
    let report = migrate_legacy(&Owner::standalone(store.clone()), options)
        .await
        .expect("import runs");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

/// The import as an operator runs it, with what `migrate-legacy` promises around it checked:
/// the dry run writes nothing under `data_dir` and reports exactly what the import then does;
/// a second run, rehearsed or real, imports nothing; and the source (a file, or with
/// `per_guild` a directory) is left byte for byte, with nothing created beside it (no -wal,
/// -shm or -journal). Returns the import's report.
pub async fn import_checked(
    store: &GuildDatabaseManager,
    data_dir: &Path,
    options: ImportOptions,
) -> ImportReport {
    let source = source_files(&options, data_dir);
    let before = listing(data_dir);
    let rehearsal = import(
        store,
        ImportOptions {
            dry_run: true,
            ..options.clone()
        },
    )
    .await;
    assert!(rehearsal.dry_run);
    assert_eq!(listing(data_dir), before, "the dry run wrote nothing");
    let report = import(store, options.clone()).await;
    assert!(!report.dry_run);
    assert_eq!(
        (rehearsal.layout, &rehearsal.guilds, &rehearsal.skipped),
        (report.layout, &report.guilds, &report.skipped),
        "the dry run predicted the import"
    );
    for dry_run in [true, false] {
        let again = import(
            store,
            ImportOptions {
                dry_run,
                ..options.clone()
            },
        )
        .await;
        assert!(
            again.guilds.values().all(|c| *c == GuildCounts::default()),
            "a second run (dry run: {dry_run}) imports nothing: {:?}",
            again.guilds
        );
    }
    assert_eq!(
        source_files(&options, data_dir),
        source,
        "the source is unchanged"
    );
    report
}

/// Every file where the import's source is (beside the file, or under the directory), except
/// the data directory, with its sha256.
fn source_files(options: &ImportOptions, data_dir: &Path) -> Vec<(PathBuf, String)> {
    let dir = if options.per_guild {
        options.source.as_path()
    } else {
        options.source.parent().expect("a source file's directory")
    };
    listing(dir)
        .into_iter()
        .filter(|(path, ..)| !path.starts_with(data_dir) && !data_dir.starts_with(path))
        .filter(|(path, ..)| path.is_file())
        .map(|(path, ..)| {
            let digest = sha256(&path);
            (path, digest)
        })
        .collect()
}

/// A new legacy database at `path`, with the schema of shared/legacy-format.md.
pub fn legacy_db(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("create legacy database");
    conn.execute_batch(include_str!("../fixtures/legacy_schema.sql"))
        .expect("legacy schema");
    conn
}

/// Every file under `dir` with its size and modification time, sorted.
pub fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                pending.push(entry.path());
            }
            out.push((entry.path(), meta.len(), meta.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}

pub fn sha256(path: &Path) -> String {
    guildkeep::ops::files::hex(&guildkeep::ops::files::sha256_file(path).expect("hash"))
}
