//! Gateway events the bot acts on, each handled in its own file under `events/`, and button
//! presses no invocation collects: those on delivered reminders (`snooze::handle`), and the
//! rest, left from a command that has ended (`buttons::answer_if_expired`). Everything else is
//! left to poise (interactions) or ignored.

mod guild_create;
mod guild_delete;
mod ready;
mod roles;

use poise::serenity_prelude as serenity;

use super::{buttons, snooze, Data, Error};

pub async fn handle(
    ctx: &serenity::Context,
    data: &Data,
    event: &serenity::FullEvent,
) -> Result<(), Error> {
    roles::record(&data.roles, event);
    match event {
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(press),
        } if snooze::is_ours(&press.data.custom_id) => snooze::handle(ctx, data, press).await,
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(press),
        } => buttons::answer_if_expired(ctx, data, press).await,
        serenity::FullEvent::Ready { data_about_bot } => ready::handle(data, data_about_bot).await,
        serenity::FullEvent::GuildCreate { guild, .. } => {
            guild_create::handle(data, guild.id.get()).await
        }
        serenity::FullEvent::GuildDelete { incomplete, .. } => {
            guild_delete::handle(data, incomplete.id.get(), incomplete.unavailable).await
        }
        _ => Ok(()),
    }
}
