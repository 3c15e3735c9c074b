//! Operator jobs run from the command line, each safe while `guildkeep run` works on the same
//! data directory in another process: they go through the store, whose SQLite locking and
//! busy timeout serialise them with the bot.
//!
//! - `inspect.rs`: `stats`, `check`, `schema status` and `schema upgrade`.
//! - `progress.rs`: progress bars on a terminal, log lines otherwise.
//! - `legacy/`: `migrate-legacy`, the one-shot import of the legacy single database.
//! - `backup.rs`, `restore.rs`: online backup sets with manifests and retention; restoring
//!   one guild from a copy.
//! - `gdpr.rs`: `delete-guild`, `forget-user` and `export-user` for operators.
//! - `files.rs`: private atomic writes and sha256 digests shared by the jobs.

pub mod backup;
pub mod files;
pub mod gdpr;
pub mod inspect;
pub mod legacy;
pub mod progress;
pub mod restore;

/// How many guilds a job works on at once: enough to overlap I/O, few enough to leave the
/// machine (and a running bot) room.
pub const PARALLEL_GUILDS: usize = 4;
