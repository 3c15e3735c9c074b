//! The command list: one module per slash group, registered in [`all`].

mod admin;
mod optin;
mod privacy;
mod quote;
mod remind;

use std::{fmt::Display, time::Duration};

use poise::serenity_prelude as serenity;
use rusqlite::Connection;

use super::{Context, Data, Error};

/// Every command the bot registers.
pub fn all() -> Vec<poise::Command<Data, Error>> {
    vec![
        quote::quote(),
        quote::save_as_quote(),
        remind::remind(),
        optin::optin(),
        privacy::privacy(),
        admin::admin(),
    ]
}

/// Commands that write declare a per-user cooldown in their attribute; this replaces its
/// length with `cooldown` (zero: no cooldown), through every level of subcommands.
pub fn set_write_cooldown(commands: &mut [poise::Command<Data, Error>], cooldown: Duration) {
    for command in commands {
        set_write_cooldown(&mut command.subcommands, cooldown);
        let mut config = command
            .cooldown_config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if config.user.is_some() {
            config.user = (!cooldown.is_zero()).then_some(cooldown);
        }
    }
}

/// An autocomplete answer from one query of the guild's database, each result made a choice
/// by `choice`. Autocomplete has no way to show an error: outside a guild, or when the query
/// fails, it offers nothing (and logs the failure).
async fn suggestions<T, E>(
    ctx: Context<'_>,
    query: impl FnOnce(&mut Connection) -> Result<Vec<T>, E> + Send + 'static,
    choice: impl FnMut(T) -> serenity::AutocompleteChoice,
) -> serenity::CreateAutocompleteResponse
where
    T: Send + 'static,
    E: Display + Send + 'static,
{
    let Some(guild) = ctx.guild_id() else {
        return serenity::CreateAutocompleteResponse::new();
    };
    let choices = match ctx.data().store.with_guild(guild.get(), query).await {
        Ok(Ok(found)) => found.into_iter().map(choice).collect(),
        Ok(Err(e)) => log_failure(&e),
        Err(e) => log_failure(&e),
    };
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

fn log_failure(error: &dyn Display) -> Vec<serenity::AutocompleteChoice> {
    tracing::warn!(error = %error, "autocomplete failed");
    Vec::new()
}
