//! Shared by the `tests/ops_*.rs` integration tests: a store over a temporary data directory,
//! an empty legacy database, an import, and a listing of everything under a directory (to show that a
//! job created, changed or removed nothing). Not here: assertions about any one job.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::{Path, PathBuf};

use guildkeep::{
    ops::{
        legacy::{migrate_legacy, ImportOptions, ImportReport},
        Owner,
    },
    store::{GuildDatabaseManager, StoreConfig},
};
use rusqlite::Connection;

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
