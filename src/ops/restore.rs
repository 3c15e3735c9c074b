//! `guildkeep restore --guild ID --from FILE`: puts a backup copy back as a guild's live data.
//!
//! The operator's file is only ever read (read-only connection) and is checked before anything
//! else happens: it must pass `PRAGMA integrity_check` and must not have a newer schema than
//! this binary. It is then copied into memory, where an older schema is migrated, so the file
//! itself is never changed. The live database keeps its current content beside it as
//! `quotes.db.pre-restore-<timestamp>` and receives the prepared content through SQLite's
//! backup API on a connection to the live file, through the owner's store; the running bot's
//! scheduler then reads the guild's reminders again.
//!
//! Not here: the online-backup copies themselves (`store/backup.rs`), making backup sets
//! (`backup.rs`).

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{bail, ensure, Context as _};
use rusqlite::{Connection, OpenFlags};

use super::Owner;
use crate::store::{
    backup::{copy_into, integrity_check, row_counts},
    migrate::user_version,
    Migrations,
};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub guild: u64,
    pub from: PathBuf,
}

#[derive(Debug)]
pub struct RestoreReport {
    pub guild: u64,
    /// The replaced content, kept in the guild's directory.
    pub kept: PathBuf,
    /// The file's schema version, when it was older than this binary's and was migrated.
    pub migrated_from: Option<u32>,
    /// Rows per table now in the guild's database.
    pub rows: BTreeMap<String, u64>,
}

/// Checks and prepares `options.from`, then replaces the guild's data with it. Any refusal
/// happens before the live database is touched.
pub async fn restore(owner: &Owner, options: RestoreOptions) -> anyhow::Result<RestoreReport> {
    let store = &owner.store;
    let from = options.from.clone();
    let (prepared, found) = tokio::task::spawn_blocking(move || prepare(&from)).await??;
    let latest = Migrations::embedded().latest();
    let kept = store
        .restore_guild(options.guild, prepared)
        .await
        .with_context(|| format!("restoring guild {}", options.guild))?;
    owner.reload_reminders(options.guild).await?;
    let rows = store
        .with_existing_guild(options.guild, |conn| row_counts(conn))
        .await??;
    tracing::warn!(
        guild = options.guild,
        from = %options.from.display(),
        kept = %kept.display(),
        "guild database restored by operator"
    );
    Ok(RestoreReport {
        guild: options.guild,
        kept,
        migrated_from: (found < latest).then_some(found),
        rows,
    })
}

/// The operator's file, verified and brought to this binary's schema, as an in-memory
/// database; with the schema version the file had.
fn prepare(from: &std::path::Path) -> anyhow::Result<(Connection, u32)> {
    ensure!(from.is_file(), "{} is not a file", from.display());
    let file = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", from.display()))?;
    let integrity = integrity_check(&file)
        .with_context(|| format!("{} is not a readable SQLite database", from.display()))?;
    if integrity != "ok" {
        bail!(
            "{} failed its integrity check; nothing was restored: {integrity}",
            from.display()
        );
    }
    let found = user_version(&file)?;
    let latest = Migrations::embedded().latest();
    if found > latest {
        bail!(
            "{} has schema version {found}, newer than this guildkeep supports ({latest}); \
             nothing was restored. Restore it with the newer guildkeep that made it",
            from.display()
        );
    }
    if found == 0 {
        bail!(
            "{} is not a guildkeep guild database (schema version 0)",
            from.display()
        );
    }
    let mut prepared = Connection::open_in_memory()?;
    copy_into(&file, &mut prepared)?;
    prepared.pragma_update(None, "foreign_keys", true)?;
    Migrations::embedded().apply(&mut prepared)?;
    Ok((prepared, found))
}
