//! Operator jobs. Each runs inside the data directory's owner: in the running bot, when the
//! command line reached it over the control socket (`control/`), or in the command's own
//! process, which then holds the directory's lock. Either way a job works through
//! [`Owner`], the same store and scheduler the bot's own commands use, and never opens a
//! guild's files behind them.
//!
//! - `job.rs`: every operator command as one serialisable [`Job`], run and reported.
//! - `inspect.rs`: `stats`, `check`, `schema status` and `schema upgrade`.
//! - `progress.rs`: progress bars on a terminal, log lines otherwise.
//! - `legacy/`: `migrate-legacy`, the one-shot import of the legacy single database.
//! - `backup.rs`, `restore.rs`: online backup sets with manifests and retention; restoring
//!   one guild from a copy.
//! - `erase_backups.rs`: a forget or a guild deletion applied to every backup set.
//! - `gdpr.rs`: `delete-guild`, `forget-user` and `export-user` for operators.
//! - `files.rs`: private atomic writes and sha256 digests shared by the jobs.

pub mod backup;
pub mod erase_backups;
pub mod files;
pub mod gdpr;
pub mod inspect;
mod job;
pub mod legacy;
pub mod progress;
pub mod restore;

use std::sync::Arc;

pub use job::{one_line, Console, ForgetMode, GdprAction, Job, SchemaAction, StdConsole};

use crate::{
    reminders::Scheduler,
    store::{GuildDatabaseManager, PendingDeletions, StoreError},
};

/// What a job works through: the owner's store and deletion schedule, and the running bot's
/// reminder scheduler, so that whatever a job changes is seen at once by everything that
/// holds the guild.
#[derive(Clone)]
pub struct Owner {
    pub store: GuildDatabaseManager,
    /// The bot's running parts; `None` when no bot runs (the bot reads every guild's
    /// reminders when it starts, and forgives a scheduled deletion of a guild already gone).
    pub bot: Option<BotParts>,
}

/// What of the running bot a job must keep in step.
#[derive(Clone)]
pub struct BotParts {
    pub scheduler: Arc<Scheduler>,
    pub pending: Arc<PendingDeletions>,
}

impl Owner {
    /// This process as the owner, with no bot running: `store` holds the data directory's
    /// lock.
    pub fn standalone(store: GuildDatabaseManager) -> Self {
        Self { store, bot: None }
    }

    /// A job rewrote `guild`'s reminders behind the scheduler (a restore, an import): it
    /// reads them again, so none is missed and none removed is sent.
    pub async fn reload_reminders(&self, guild: u64) -> Result<(), StoreError> {
        match &self.bot {
            Some(bot) => match bot.scheduler.reload_guild(guild).await {
                Err(StoreError::UnknownGuild(_)) => Ok(()),
                reloaded => reloaded,
            },
            None => Ok(()),
        }
    }
}

/// How many guilds a job works on at once: enough to overlap I/O, few enough to leave the
/// machine (and a running bot) room.
pub const PARALLEL_GUILDS: usize = 4;
