//! The command list: one module per slash group, registered in [`all`].

mod admin;
mod optin;
mod privacy;
mod quote;
mod remind;

use std::time::Duration;

use super::{Data, Error};

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
