//! What can go wrong in the store, worded for an operator's log. The bot decides which of
//! these a member may read (see `bot/error.rs`).

use std::{path::PathBuf, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("guild id {0} is not a Discord snowflake (it must be a non-zero number)")]
    InvalidGuildId(u64),
    #[error("guild {0} is being deleted")]
    BeingDeleted(u64),
    #[error("guild {0} has no database")]
    UnknownGuild(u64),
    #[error("guild {guild} belongs to shard {shard}, which this process does not run")]
    NotOurShard { guild: u64, shard: u64 },
    #[error("data directory {} is in use by guildkeep {}", data_dir.display(), owner.as_ref().map_or("in another process".to_owned(), |o| o.to_string()))]
    Owned {
        data_dir: PathBuf,
        owner: Option<super::owner::OwnerRecord>,
    },
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("all {cap} open guild databases stayed busy for {waited:?}; try again shortly")]
    AtCapacity { cap: usize, waited: Duration },
    #[error("guild {guild}'s database was not a valid SQLite file; it was moved to {moved_to}")]
    Quarantined { guild: u64, moved_to: PathBuf },
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade guildkeep")]
    TooNew { found: u32, supported: u32 },
    #[error(
        "the database is not guildkeep's (schema version 0, yet it has tables: {tables}, …); \
         a VeraBot per-guild file is imported with `guildkeep migrate-legacy --source-dir DIR` \
         into another data directory. It was left untouched"
    )]
    Foreign { tables: String },
    #[error("schema migration {version} failed: {source}")]
    Migration {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("guild {guild}: opening the database failed: {reason}")]
    OpenFailed { guild: u64, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("all {max} connections to {} stayed in use for {waited:?}; try again shortly", db.display())]
    ConnectionsBusy {
        db: PathBuf,
        max: usize,
        waited: Duration,
    },
    #[error("a database task panicked or was cancelled: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Task(e.to_string())
    }
}

impl StoreError {
    /// A closure that panicked where the store ran it in place, worded like the blocking
    /// pool's report of one that panicked there.
    pub(crate) fn panicked(panic: &(dyn std::any::Any + Send)) -> Self {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("no message");
        Self::Task(format!("panicked with message {message:?}"))
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
