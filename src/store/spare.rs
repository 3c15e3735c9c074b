//! The spare guild: one empty guild, complete on disk at `guilds/.spare-v<schema version>/`,
//! so that a new guild's first use renames a directory and fsyncs its parent (one fsync)
//! instead of writing its file and fsyncing that file, its directory, the directory's name
//! and SQLite's first WAL header (five). The member waits for the rename; the next spare is
//! made in the background.
//!
//! A spare is made whole under a temporary name (file, WAL and directory fsynced) and only
//! then renamed to the spare's name, and taking it is one rename, so a crash leaves a
//! complete spare, or a complete guild, never part of either. Its WAL holds one frame: a
//! write to an empty WAL starts it with a header that SQLite fsyncs, a write to this one
//! appends.

use std::{
    fs::{self, DirBuilder},
    io,
    os::unix::fs::DirBuilderExt,
    path::Path,
};

use rusqlite::Connection;

use super::{
    open::{configure, flags, ConnectionSettings, Synchronous, Template},
    paths::{self, DataDir, GuildId, DB_FILE},
    StoreError,
};

/// Renames the spare for schema `version` to `guild`'s directory; the caller fsyncs
/// `guilds/` before the guild is used. `Ok(false)`: there is no spare, or the guild's
/// directory holds an old guild's leftovers (the rename refuses a directory that is not
/// empty; the template path clears them), and the caller creates the guild from the template.
pub fn take(dir: &DataDir, guild: GuildId, version: u32) -> Result<bool, StoreError> {
    let target = dir.guild_dir(guild);
    match fs::rename(dir.spare_guild_dir(version), &target) {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::AlreadyExists
                    | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::io(&target)(e)),
    }
}

/// Makes the spare for schema `version` if there is none. Run in the background after a
/// guild was created; a failure costs the next new guild its fast path, nothing else.
pub fn make(
    dir: &DataDir,
    template: &Template,
    settings: ConnectionSettings,
    version: u32,
) -> Result<(), StoreError> {
    let spare = dir.spare_guild_dir(version);
    if spare.exists() {
        return Ok(());
    }
    let building = dir.building_spare_dir();
    let made = build(&building, template, settings, version).and_then(|()| {
        match fs::rename(&building, &spare) {
            Ok(()) => paths::fsync_dir(&dir.guilds_dir()),
            // Another process made one meanwhile.
            Err(e) if spare.exists() => {
                tracing::debug!(error = %e, "spare guild already made");
                Ok(())
            }
            Err(e) => Err(StoreError::io(&spare)(e)),
        }
    });
    if building.exists() {
        if let Err(e) = fs::remove_dir_all(&building) {
            tracing::warn!(path = %building.display(), error = %e, "removing an unused spare guild failed");
        }
    }
    made
}

fn build(
    building: &Path,
    template: &Template,
    settings: ConnectionSettings,
    version: u32,
) -> Result<(), StoreError> {
    // Not `create_private_dir`: its parent `guilds/` exists (a guild was just created in it),
    // and a data directory removed meanwhile must not be made again.
    DirBuilder::new()
        .mode(0o700)
        .create(building)
        .map_err(StoreError::io(building))?;
    let db = building.join(DB_FILE);
    template.write_new(&db)?;
    let conn = Connection::open_with_flags(&db, flags())?;
    // `full`: the commit fsyncs the new WAL and, being its first, the WAL's directory
    // (SQLite's own rule for a journal it creates), so the spare is durable when it returns.
    configure(
        &conn,
        ConnectionSettings {
            synchronous: Synchronous::Full,
            ..settings
        },
    )?;
    // The frame that makes the first real write an append (see the module's comment).
    conn.pragma_update(None, "user_version", version)?;
    Ok(())
}
