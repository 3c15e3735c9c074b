//! Whole-database copies through SQLite's online backup API, the store side of the operator
//! jobs `backup`, `restore` and `migrate-legacy --dry-run`. A copy is taken in one backup step,
//! so it is one consistent snapshot of the database however busy the bot is, and it never
//! reads the file behind SQLite's back: a plain file copy of a live WAL database can miss
//! committed pages or catch half-written ones.
//!
//! Not here: which guilds to copy, where backup sets live and how they are verified and
//! pruned (`ops/backup.rs`, `ops/restore.rs`).

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rusqlite::{
    backup::{Backup, StepResult},
    Connection,
};

use super::{
    open::{self, FORMAT_VERSIONS_AT, ROLLBACK_FORMAT},
    paths::{self, GuildId},
    GuildDatabaseManager, Migrations, StoreError,
};

/// How long a copy waits for a lock held by another connection (the bot writing, say) before
/// giving up. Longer than the store's busy timeout: an operator job may wait, a member not.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Copies all of `from` into `to` in a single backup step (a single read transaction on
/// `from`), retrying while either side is locked by another connection.
pub fn copy_into(from: &Connection, to: &mut Connection) -> Result<(), StoreError> {
    step_past_locks(&Backup::new(from, to)?, -1).map(drop)
}

/// Replaces the content of `live` by that of `prepared`, after copying the content it
/// replaces into the new file `kept` (see [`copy_to_new_file`]) through `snapshot`, another
/// connection to the live database. The replacement takes the live database's write lock
/// before the copy reads and keeps it to its end, so no commit, from this process or
/// another, falls between the two: the copy holds exactly what was replaced.
fn replace_keeping_copy(
    prepared: &Connection,
    live: &mut Connection,
    snapshot: &Connection,
    kept: &Path,
) -> Result<(), StoreError> {
    let replacement = Backup::new(prepared, live)?;
    // A step of no pages only locks the destination (a database has at least one page, so
    // it is never done), and SQLite holds that lock until the backup ends.
    step_past_locks(&replacement, 0)?;
    copy_to_new_file(snapshot, kept)?;
    step_past_locks(&replacement, -1).map(drop)
}

/// One backup step of `pages` (-1: all), retried while another connection's lock holds it
/// off, for up to [`LOCK_WAIT`].
fn step_past_locks(backup: &Backup, pages: std::ffi::c_int) -> Result<StepResult, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup.step(pages)? {
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            StepResult::Busy | StepResult::Locked => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("database stayed locked for {LOCK_WAIT:?}")),
                )
                .into())
            }
            stepped => return Ok(stepped),
        }
    }
}

/// Copies `from` into a new file `to` (mode 0600; it must not exist yet), as a database in
/// rollback-journal mode so that the copy is one self-contained file, and fsyncs it.
pub fn copy_to_new_file(from: &Connection, to: &Path) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(StoreError::io(to))?;
    let mut copy = Connection::open(to)?;
    // Nothing else opens the new file, and a failed copy is deleted, not rolled back: the copy
    // needs no rollback journal, which would be one more file created and removed per guild.
    copy.pragma_update(None, "journal_mode", "OFF")?;
    copy_into(from, &mut copy)?;
    copy.close().map_err(|(_, e)| e)?;
    into_rollback_mode(to).map_err(StoreError::io(to))
}

/// Marks the closed database `path` as in rollback-journal mode, and fsyncs it. A copy of a
/// WAL database carries its source's header, which says WAL, and the next connection to open
/// it would create a `-wal` and `-shm` beside it. Setting the mode with `PRAGMA journal_mode`
/// does that very thing first, creating both files, checkpointing an empty WAL and removing
/// them: a third of the cost of copying a guild. The copy's WAL is empty, since the backup
/// wrote every page to the file itself, so rewriting the two bytes is all the switch does.
fn into_rollback_mode(path: &Path) -> std::io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut versions = [0; 2];
    file.read_exact_at(&mut versions, FORMAT_VERSIONS_AT as u64)?;
    if versions != ROLLBACK_FORMAT {
        file.write_all_at(&ROLLBACK_FORMAT, FORMAT_VERSIONS_AT as u64)?;
    }
    file.sync_all()
}

/// `PRAGMA integrity_check`: `"ok"`, or the problems it found, one per line.
pub fn integrity_check(conn: &Connection) -> rusqlite::Result<String> {
    let mut statement = conn.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(lines.join("\n"))
}

/// Rows in every ordinary table (not SQLite's own, not the full-text index's shadow tables).
pub fn row_counts(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = BTreeMap::new();
    for table in tables {
        let quoted = table.replace('"', "\"\"");
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| {
            r.get(0)
        })?;
        counts.insert(table, n as u64);
    }
    Ok(counts)
}

impl GuildDatabaseManager {
    /// Copies `guild`'s database into the new file `to` (see [`copy_to_new_file`]) from a
    /// read-only connection of its own: the copy neither migrates nor otherwise writes the
    /// guild's file, and takes no slot in the pool cache.
    pub async fn backup_guild(&self, guild: u64, to: PathBuf) -> Result<(), StoreError> {
        self.inspect_guild(guild, move |conn| copy_to_new_file(conn, &to))
            .await?
    }

    /// Replaces the content of `guild`'s database by that of `prepared` (a verified database
    /// at this binary's schema version, typically in memory), through a connection to the live
    /// file: another process that holds it open sees the restored data at its next query. The
    /// content it replaces is first copied to `quotes.db.pre-restore-<stamp>` in the guild's
    /// directory, whose path is returned; no write falls between that copy and the
    /// replacement (see `replace_keeping_copy`). A guild without a database gets one.
    pub async fn restore_guild(
        &self,
        guild: u64,
        prepared: Connection,
    ) -> Result<PathBuf, StoreError> {
        let id = GuildId::new(guild)?;
        let dir = self.paths().clone();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let kept = paths::with_suffix(&dir.guild_db(id), &format!(".pre-restore-{stamp}"));
        let kept_in_lease = kept.clone();
        self.with_guild(guild, move |live| {
            let snapshot = open::open_read_only(&dir, id, LOCK_WAIT)?;
            replace_keeping_copy(&prepared, live, &snapshot, &kept_in_lease)
        })
        .await??;
        if let Some(dir) = kept.parent() {
            tokio::task::spawn_blocking({
                let dir = dir.to_path_buf();
                move || paths::fsync_dir(&dir)
            })
            .await??;
        }
        Ok(kept)
    }

    /// A private in-memory copy of `guild`'s database at the latest schema, or a fresh empty
    /// one when the guild has none, for rehearsing changes (`migrate-legacy --dry-run`)
    /// without writing under the data directory.
    pub async fn guild_in_memory(&self, guild: u64) -> Result<Connection, StoreError> {
        fn ready(mut memory: Connection) -> Result<Connection, StoreError> {
            memory.pragma_update(None, "foreign_keys", true)?;
            Migrations::embedded().apply(&mut memory)?;
            Ok(memory)
        }
        let copied = self
            .inspect_guild(guild, |conn| {
                let mut memory = Connection::open_in_memory()?;
                copy_into(conn, &mut memory)?;
                ready(memory)
            })
            .await;
        match copied {
            Ok(copy) => copy,
            Err(StoreError::UnknownGuild(_)) => {
                tokio::task::spawn_blocking(|| ready(Connection::open_in_memory()?)).await?
            }
            Err(e) => Err(e),
        }
    }
}
