//! The command list: one module per slash group, registered in [`all`].

mod admin;
mod optin;
mod privacy;
mod quote;
mod remind;

pub use remind::tell_notices;

use std::{fmt::Display, str::FromStr, time::Duration};

use poise::serenity_prelude as serenity;
use rusqlite::Connection;

use super::{Context, Data, Error, UserError};

/// Every command the bot registers. All of them keep data per server, so they are installed
/// with the bot in a server and offered in servers only: never as a user-installed app, in DMs
/// or in group DMs (where there is no server to keep data for).
pub fn all() -> Vec<poise::Command<Data, Error>> {
    let mut commands = vec![
        quote::quote(),
        quote::save_as_quote(),
        remind::remind(),
        optin::optin(),
        privacy::privacy(),
        admin::admin(),
    ];
    for command in &mut commands {
        command.install_context = Some(vec![serenity::InstallationContext::Guild]);
        command.interaction_context = Some(vec![serenity::InteractionContext::Guild]);
    }
    commands
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
/// by `choice` (`None`: not offered), at most the 25 Discord takes. Autocomplete has no way to show an error: outside a guild, or when the query
/// fails, it offers nothing (and logs the failure).
async fn suggestions<T, E>(
    ctx: Context<'_>,
    query: impl FnOnce(&mut Connection) -> Result<Vec<T>, E> + Send + 'static,
    choice: impl FnMut(T) -> Option<serenity::AutocompleteChoice>,
) -> serenity::CreateAutocompleteResponse
where
    T: Send + 'static,
    E: Display + Send + 'static,
{
    let Some(guild) = ctx.guild_id() else {
        return serenity::CreateAutocompleteResponse::new();
    };
    let choices = match ctx.data().store.with_guild(guild.get(), query).await {
        Ok(Ok(found)) => found.into_iter().filter_map(choice).take(25).collect(),
        Ok(Err(e)) => log_failure(&e),
        Err(e) => log_failure(&e),
    };
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

fn log_failure(error: &dyn Display) -> Vec<serenity::AutocompleteChoice> {
    tracing::warn!(error = %error, "autocomplete failed");
    Vec::new()
}

/// The number in an id option. Id options are text, not INTEGER, because a Discord client
/// lets only digits into an INTEGER option, and members search these by words: the choice
/// they pick sends the number, and a typed `#12` works too.
fn parse_id<T: FromStr>(typed: &str, what: &str) -> Result<T, UserError> {
    let digits = typed.trim().trim_start_matches('#');
    let digits = digits.split_whitespace().next().unwrap_or_default();
    digits.parse().map_err(|_| {
        UserError(format!(
            "Pick a {what} from the list, or type its number (like 12)."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn ids_are_read_from_a_picked_choice_or_a_typed_number() {
        assert_eq!(parse_id::<i64>("12", "quote").unwrap(), 12);
        assert_eq!(parse_id::<i64>(" #12 some words", "quote").unwrap(), 12);
        assert!(parse_id::<u64>("lunch", "reminder").is_err());
        assert!(parse_id::<u64>("", "reminder").is_err());
    }
}
