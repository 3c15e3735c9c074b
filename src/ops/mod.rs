//! Operator jobs run from the command line, each safe while `guildkeep run` works on the same
//! data directory in another process: they go through the store, whose SQLite locking and
//! busy timeout serialise them with the bot.
//!
//! - `inspect.rs`: `stats`, `check`, `schema status` and `schema upgrade`.
//! - `progress.rs`: progress bars on a terminal, log lines otherwise.

pub mod inspect;
pub mod progress;

/// How many guilds a job works on at once: enough to overlap I/O, few enough to leave the
/// machine (and a running bot) room.
pub const PARALLEL_GUILDS: usize = 4;
