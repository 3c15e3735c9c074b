//! The poise types every handler uses: [`Data`] (what a command can reach), [`Error`] and
//! [`Context`]. Not here: building them (`bot/mod.rs`) or error handling (`bot/error.rs`).

use std::{sync::Arc, time::Duration};

use super::{buttons::LiveButtons, permissions::GuildRoles, throttle::Throttle};
use crate::{
    config::Config,
    observe::Metrics,
    ops::{BotParts, Owner},
    reminders::{Clock, Scheduler},
    store::{GuildDatabaseManager, PendingDeletions},
};

/// Shared by every command and event. Cheap to clone: each field is a handle.
#[derive(Clone)]
pub struct Data {
    pub config: Arc<Config>,
    pub store: GuildDatabaseManager,
    /// Guilds whose data goes once the grace period after the bot's removal ends.
    pub pending: Arc<PendingDeletions>,
    /// The process-wide reminder scheduler; told of every reminder change.
    pub scheduler: Arc<Scheduler>,
    /// The scheduler's clock: a snooze counts from the time the scheduler keeps.
    pub clock: Arc<dyn Clock>,
    /// How long confirmation and paging buttons stay live.
    pub button_timeout: Duration,
    /// Every guild's roles and owner, for server-wide permission checks.
    pub roles: Arc<GuildRoles>,
    /// Which invocations' buttons are still collected.
    pub live_buttons: Arc<LiveButtons>,
    /// Full-text searches per member, from `/quote search` and from autocomplete.
    pub searches: Arc<Throttle>,
    /// What `/metrics` shows; commands and the gateway sampler feed it.
    pub metrics: Arc<Metrics>,
}

impl Data {
    /// The bot as the data directory's owner, for the operator jobs it runs and for its own
    /// deletions and erasures, which go the same way.
    pub fn owner(&self) -> Owner {
        Owner {
            store: self.store.clone(),
            bot: Some(BotParts {
                scheduler: self.scheduler.clone(),
                pending: self.pending.clone(),
            }),
        }
    }
}

/// Errors in `bot/` are anyhow errors; members only ever see [`super::UserError`]s.
pub type Error = anyhow::Error;

pub type Context<'a> = poise::Context<'a, Data, Error>;
