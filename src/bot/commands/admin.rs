//! `/admin data delete|stats`: for members with Manage Server for the whole server. Discord
//! hides the command from others (`default_member_permissions`), and every subcommand checks
//! the server-wide permission again (`permissions::manage_guild`; Manage Server granted in one
//! channel only is not enough), so a crafted interaction is refused too.

use poise::serenity_prelude as serenity;

use crate::{
    bot::{self, buttons, deletions, permissions, reply, Context, Error},
    privacy::{self, GuildSummary},
    store::StoreError,
};

/// Manage this server's data stored by the bot.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("data"),
    default_member_permissions = "MANAGE_GUILD",
    check = "permissions::manage_guild"
)]
pub async fn admin(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// This server's data stored by the bot.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("delete", "stats"),
    check = "permissions::manage_guild"
)]
pub async fn data(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Delete everything the bot stores for this server (asks for confirmation first).
#[poise::command(
    slash_command,
    ephemeral,
    guild_only,
    check = "permissions::manage_guild",
    user_cooldown = 10
)]
pub async fn delete(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let Some((summary, bytes)) = summary(ctx, guild).await? else {
        return reply::ephemeral(ctx, "The bot stores no data for this server.").await;
    };
    let prompt = summary_embed(&summary, bytes)
        .title("Delete all of this server's data?")
        .description("Everything below is deleted and cannot be recovered. The bot keeps working and starts afresh.");
    let Some(press) = buttons::confirm(ctx, prompt, "Delete everything").await? else {
        return Ok(());
    };
    deletions::delete_now(ctx.data(), guild).await?;
    tracing::info!(guild, admin = %ctx.author().id, "an admin deleted the guild's data");
    buttons::update(ctx, &press, "Deleted all of this server's data.").await
}

/// What the bot stores for this server.
#[poise::command(
    slash_command,
    ephemeral,
    guild_only,
    check = "permissions::manage_guild"
)]
pub async fn stats(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let mut embed = match summary(ctx, guild).await? {
        Some((summary, bytes)) => summary_embed(&summary, bytes),
        None => serenity::CreateEmbed::new().description("The bot stores no data for this server."),
    }
    .title("This server's data");
    if let Some(at) = ctx.data().pending.get(guild) {
        embed = embed.field(
            "Scheduled deletion",
            format!("<t:{}:R>", at.timestamp()),
            false,
        );
    }
    reply::private(ctx, reply::quiet_reply().embed(embed)).await?;
    Ok(())
}

/// Row counts and bytes on disk; `None` when the guild has no database (none is created).
async fn summary(ctx: Context<'_>, guild: u64) -> Result<Option<(GuildSummary, u64)>, Error> {
    let store = &ctx.data().store;
    let summary = match store
        .with_existing_guild(guild, |c| privacy::delete_guild_summary(c))
        .await
    {
        Err(StoreError::UnknownGuild(_)) => return Ok(None),
        found => found?.map_err(bot::domain)?,
    };
    Ok(Some((summary, store.guild_bytes(guild).await?)))
}

fn summary_embed(summary: &GuildSummary, bytes: u64) -> serenity::CreateEmbed {
    let count = |n: u64| n.to_string();
    serenity::CreateEmbed::new()
        .field("Quotes", count(summary.quotes), true)
        .field("Tags", count(summary.tags), true)
        .field("Ratings", count(summary.quote_ratings), true)
        .field("Reminders", count(summary.reminders), true)
        .field(
            "Reminder deliveries",
            count(summary.reminder_deliveries),
            true,
        )
        .field("Member settings", count(summary.optins), true)
        .field("Audit entries", count(summary.audit), true)
        .field("On disk", format!("{} KiB", bytes.div_ceil(1024)), true)
}
