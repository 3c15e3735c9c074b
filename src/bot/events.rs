//! Gateway events the bot acts on, each handled in its own file under `events/`. Everything
//! else is left to poise (interactions) or ignored.

mod guild_create;
mod guild_delete;
mod roles;

use poise::serenity_prelude as serenity;

use super::{Data, Error};

pub async fn handle(data: &Data, event: &serenity::FullEvent) -> Result<(), Error> {
    roles::record(&data.roles, event);
    match event {
        serenity::FullEvent::GuildCreate { guild, .. } => {
            guild_create::handle(data, guild.id.get()).await
        }
        serenity::FullEvent::GuildDelete { incomplete, .. } => {
            guild_delete::handle(data, incomplete.id.get(), incomplete.unavailable).await
        }
        _ => Ok(()),
    }
}
