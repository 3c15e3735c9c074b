//! `/optin dm on|off|status`: whether the bot may DM a member (reminders for themselves).
//! Without opting in, no DM is ever sent to them.

use chrono::Utc;

use crate::{
    bot::{self, reply, Context, Error},
    optins,
};

/// Choose what the bot may do for you in this server.
#[poise::command(slash_command, guild_only, subcommands("dm"))]
pub async fn optin(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Direct messages from the bot (your reminders).
#[poise::command(slash_command, guild_only, subcommands("dm_on", "dm_off", "dm_status"))]
pub async fn dm(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Allow the bot to DM you your reminders.
#[poise::command(slash_command, ephemeral, guild_only, rename = "on", user_cooldown = 3)]
pub async fn dm_on(ctx: Context<'_>) -> Result<(), Error> {
    set(ctx, true).await?;
    reply::ephemeral(
        ctx,
        "Done: the bot may DM you your reminders from this server.",
    )
    .await
}

/// Stop the bot from DMing you.
#[poise::command(
    slash_command,
    ephemeral,
    guild_only,
    rename = "off",
    user_cooldown = 3
)]
pub async fn dm_off(ctx: Context<'_>) -> Result<(), Error> {
    set(ctx, false).await?;
    reply::ephemeral(
        ctx,
        "Done: the bot will not DM you. Reminders for you alone will not be delivered.",
    )
    .await
}

/// Whether the bot may DM you, and your time zone.
#[poise::command(slash_command, ephemeral, guild_only, rename = "status")]
pub async fn dm_status(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let status = ctx
        .data()
        .store
        .with_guild(guild, move |c| optins::status(c, user))
        .await?
        .map_err(bot::domain)?;
    let dms = if status.dm_opt_in { "on" } else { "off" };
    let zone = status.time_zone.map_or("UTC (not set)", |z| z.name());
    reply::ephemeral(
        ctx,
        format!("DMs from the bot: **{dms}**. Your time zone: {zone}."),
    )
    .await
}

async fn set(ctx: Context<'_>, on: bool) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    ctx.data()
        .store
        .with_guild(guild, move |c| {
            optins::set_dm_opt_in(c, user, on, Utc::now())
        })
        .await?
        .map_err(bot::domain)?;
    // A DM already claimed for them must not go out after an opt-out.
    ctx.data().scheduler.recheck_guild(guild);
    Ok(())
}
