//! `guildkeep backup`: a backup set of every guild (or the ones named) in
//! `<out or data_dir/backups>/<UTC timestamp>/<guild_id>.db`, plus `manifest.json`.
//!
//! Each copy is made with SQLite's online backup API from a read-only connection (safe while
//! the bot writes, in this process or another), written under a temporary name, checked with
//! `PRAGMA integrity_check`, and only then renamed to `<id>.db`. Up to [`PARALLEL_GUILDS`] guilds
//! are copied at once. The manifest is written last, atomically: a set is complete exactly when
//! its manifest exists and lists no failed guild. A guild that fails is named in the manifest's
//! `failed` and in the report, and the others are still backed up.
//!
//! Retention (`--keep N`) runs only after the new set is complete; it counts and removes only
//! complete sets, oldest first, and only directories whose names this job writes. An
//! interrupted set (no manifest) or one with failures is never removed nor counted, so it can
//! never cause a good old set to go; the operator decides about those.
//!
//! Not here: copying a database (`store/backup.rs`), putting a copy back (`restore.rs`).

use std::{
    collections::BTreeMap,
    fs::DirBuilder,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use anyhow::{ensure, Context as _};
use futures::{stream, StreamExt};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::{
    files::{hex, sha256_file},
    progress::Progress,
    PARALLEL_GUILDS,
};
use crate::store::{
    backup::{integrity_check, row_counts},
    migrate::user_version,
    paths, GuildDatabaseManager, Migrations,
};

pub const MANIFEST: &str = "manifest.json";
/// Set directory names: UTC, fixed width, so that name order is time order.
const SET_NAME: &str = "%Y%m%dT%H%M%S%.3fZ";

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Empty: every guild on disk.
    pub guilds: Vec<u64>,
    /// Where sets go; `None`: `<data_dir>/backups`.
    pub out: Option<PathBuf>,
    /// Keep this many complete sets (the new one included); `None`: keep all.
    pub keep: Option<usize>,
}

/// One guild's entry in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildCopy {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub schema_version: u32,
    /// Rows per table in the copy.
    pub rows: BTreeMap<String, u64>,
    /// `PRAGMA integrity_check` of the copy: always "ok" for a listed guild.
    pub integrity: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// When the set was started (UTC, RFC 3339).
    pub started_at: String,
    pub finished_at: String,
    pub guildkeep_version: String,
    /// The newest schema version the binary that made the set knows.
    pub schema_latest: u32,
    pub guilds: BTreeMap<u64, GuildCopy>,
    /// Guilds that could not be backed up, with the reason. A set with any is not complete.
    pub failed: BTreeMap<u64, String>,
    /// Erasures applied to the set after it was made (`erase_backups.rs`).
    #[serde(default)]
    pub erasures: Vec<ErasureRecord>,
}

/// One entry of a manifest's `erasures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    /// UTC, RFC 3339.
    pub at: String,
    /// "forget-user" or "delete-guild".
    pub action: String,
    pub guild: u64,
}

#[derive(Debug)]
pub struct BackupReport {
    /// The new set's directory.
    pub set: PathBuf,
    pub manifest: Manifest,
    /// Older sets removed by `--keep`.
    pub removed: Vec<PathBuf>,
}

impl BackupReport {
    /// Guilds that failed: the command names them and exits non-zero.
    pub fn failures(&self) -> &BTreeMap<u64, String> {
        &self.manifest.failed
    }
}

/// Makes one backup set and then applies `--keep`. An error means no set was made (or its
/// manifest could not be written); failures of single guilds are in the report instead.
pub async fn backup(
    store: &GuildDatabaseManager,
    options: BackupOptions,
) -> anyhow::Result<BackupReport> {
    ensure!(
        options.keep != Some(0),
        "--keep 0 would remove the set just made; keep at least 1"
    );
    let root = options
        .out
        .clone()
        .unwrap_or_else(|| store.paths().backups_dir());
    let guilds = if options.guilds.is_empty() {
        store.guilds_on_disk().await?
    } else {
        options.guilds.clone()
    };
    let started = chrono::Utc::now();
    let set = root.join(started.format(SET_NAME).to_string());
    {
        let (root, set) = (root.clone(), set.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            paths::create_private_dir(&root)?;
            // Not recursive: two runs in the same millisecond must not share a set.
            DirBuilder::new()
                .mode(0o700)
                .create(&set)
                .with_context(|| format!("creating {}", set.display()))?;
            // The set's name lives in the root: without this, a power loss could take away a
            // set whose manifest was fsynced.
            paths::fsync_dir(&root)?;
            Ok(())
        })
        .await??;
    }

    let progress = Progress::new("backup", guilds.len() as u64);
    let copies: Vec<(u64, anyhow::Result<GuildCopy>)> = stream::iter(guilds)
        .map(|guild| {
            let (set, progress) = (&set, &progress);
            async move {
                let copy = copy_guild(store, guild, set).await;
                progress.advance();
                (guild, copy)
            }
        })
        .buffer_unordered(PARALLEL_GUILDS)
        .collect()
        .await;
    progress.finish();

    let mut manifest = Manifest {
        started_at: started.to_rfc3339(),
        finished_at: String::new(),
        guildkeep_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_latest: Migrations::embedded().latest(),
        guilds: BTreeMap::new(),
        failed: BTreeMap::new(),
        erasures: Vec::new(),
    };
    for (guild, copy) in copies {
        match copy {
            Ok(copy) => {
                manifest.guilds.insert(guild, copy);
            }
            Err(e) => {
                tracing::error!(guild, error = format!("{e:#}"), "backup of guild failed");
                manifest.failed.insert(guild, format!("{e:#}"));
            }
        }
    }
    manifest.finished_at = chrono::Utc::now().to_rfc3339();
    let json = serde_json::to_vec_pretty(&manifest)?;
    let removed = {
        let (set, keep, complete) = (set.clone(), options.keep, manifest.failed.is_empty());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<PathBuf>> {
            paths::fsync_dir(&set)?;
            paths::replace_file(&set.join(MANIFEST), &json)?;
            match keep {
                Some(keep) if complete => prune(&root, keep),
                Some(_) => {
                    tracing::warn!("the new backup set is incomplete; no old set was removed");
                    Ok(Vec::new())
                }
                None => Ok(Vec::new()),
            }
        })
        .await??
    };
    Ok(BackupReport {
        set,
        manifest,
        removed,
    })
}

/// Copies one guild into `<set>/<id>.db` by way of a temporary name, verified before rename.
async fn copy_guild(
    store: &GuildDatabaseManager,
    guild: u64,
    set: &Path,
) -> anyhow::Result<GuildCopy> {
    let file = format!("{guild}.db");
    let partial = set.join(format!(".{file}.partial"));
    let done = set.join(&file);
    if let Err(e) = store.backup_guild(guild, partial.clone()).await {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(partial)).await;
        return Err(e.into());
    }
    tokio::task::spawn_blocking(move || {
        let verified = verify(&partial, file).and_then(|copy| {
            std::fs::rename(&partial, &done)
                .with_context(|| format!("renaming {}", partial.display()))?;
            Ok(copy)
        });
        if verified.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        verified
    })
    .await?
}

/// How much of a copy its verification maps into memory; a larger copy reads the rest.
const VERIFY_MMAP_BYTES: i64 = 256 << 20;

/// Reads a finished copy back: integrity, schema version, rows per table, size and digest.
pub(super) fn verify(copy: &Path, file: String) -> anyhow::Result<GuildCopy> {
    let (integrity, schema_version, rows) = {
        let conn = Connection::open_with_flags(
            copy,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The checks read every page, some more than once: mapped, each read is a memory
        // access instead of a system call. Safe here, as nothing else has the copy open.
        conn.pragma_update(None, "mmap_size", VERIFY_MMAP_BYTES)?;
        (
            integrity_check(&conn)?,
            user_version(&conn)?,
            row_counts(&conn)?,
        )
    };
    ensure!(
        integrity == "ok",
        "the copy failed its integrity check: {integrity}"
    );
    Ok(GuildCopy {
        file,
        bytes: std::fs::metadata(copy)?.len(),
        sha256: hex(&sha256_file(copy)?),
        schema_version,
        rows,
        integrity,
    })
}

/// Whether `set` is a set this job wrote and finished without failures.
fn is_complete(set: &Path) -> bool {
    let Some(name) = set.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if chrono::NaiveDateTime::parse_from_str(name, SET_NAME).is_err() {
        return false;
    }
    std::fs::read(set.join(MANIFEST))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
        .is_some_and(|manifest| manifest.failed.is_empty())
}

/// Removes the oldest complete sets in `root` beyond the newest `keep`.
fn prune(root: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut complete: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("listing {}", root.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir() && is_complete(path))
        .collect();
    complete.sort();
    let excess = complete.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for old in complete.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        tracing::info!(set = %old.display(), "removed old backup set");
        removed.push(old);
    }
    if !removed.is_empty() {
        paths::fsync_dir(root)?;
    }
    Ok(removed)
}
