//! `guildkeep restore --guild ID --from FILE`: puts a backup copy back as a guild's live data.
//!
//! The operator's file is only ever read (read-only connection, with the settings for a file
//! from outside, [`distrust`]) and is checked before anything else happens: when it sits in a
//! backup set, its sha256 must be the one `manifest.json` lists for it; it must pass
//! `PRAGMA integrity_check`; it must not have a newer schema than this binary; and its schema
//! must be exactly the one its version has (`store::migrate::schema_drift`): a trigger, view,
//! table or index added to a copy would otherwise run inside the bot once restored, so any is
//! refused by name. It is then copied into memory, where an older schema is migrated, so the
//! file itself is never changed. The live database keeps its current content beside it as
//! `quotes.db.pre-restore-<timestamp>` and receives the prepared content through SQLite's
//! backup API on a connection to the live file, through the owner's store; the running bot's
//! scheduler then reads the guild's reminders again.
//!
//! Not here: the online-backup copies themselves (`store/backup.rs`), making backup sets
//! (`backup.rs`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure, Context as _};
use rusqlite::{Connection, OpenFlags};

use super::{
    backup::{Manifest, MANIFEST},
    files::{distrust, hex, sha256_file},
    Owner,
};
use crate::store::{
    backup::{copy_into, integrity_check, row_counts},
    migrate::{schema_drift, user_version},
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
fn prepare(from: &Path) -> anyhow::Result<(Connection, u32)> {
    ensure!(from.is_file(), "{} is not a file", from.display());
    match_manifest(from)?;
    let file = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", from.display()))?;
    distrust(&file)?;
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
    let drift = schema_drift(&file)?;
    if let Some(first) = drift.first() {
        bail!(
            "{} does not have guildkeep's schema v{found}: {first}{}; nothing was restored",
            from.display(),
            match drift.len() - 1 {
                0 => String::new(),
                more => format!(" (and {more} more difference(s))"),
            }
        );
    }
    let mut prepared = Connection::open_in_memory()?;
    copy_into(&file, &mut prepared)?;
    prepared.pragma_update(None, "foreign_keys", true)?;
    Migrations::embedded().apply(&mut prepared)?;
    Ok((prepared, found))
}

/// When `from` sits in a backup set (a `manifest.json` beside it), its bytes must be the ones
/// the manifest lists for it: a copy changed since it was verified is refused.
fn match_manifest(from: &Path) -> anyhow::Result<()> {
    let manifest_path = from.with_file_name(MANIFEST);
    let bytes = match std::fs::read(&manifest_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest_path.display())),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a backup manifest", manifest_path.display()))?;
    let name = from
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(listed) = manifest.guilds.values().find(|copy| copy.file == name) else {
        bail!(
            "{} is not listed in {}; nothing was restored",
            from.display(),
            manifest_path.display()
        );
    };
    let found = hex(&sha256_file(from)?);
    if found != listed.sha256 {
        bail!(
            "{} does not match its backup manifest (sha256 {found}, manifest {}): the copy \
             changed after it was verified; nothing was restored",
            from.display(),
            listed.sha256
        );
    }
    Ok(())
}
