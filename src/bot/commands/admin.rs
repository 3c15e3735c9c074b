//! `/admin data delete|stats`: for members with Manage Server. Discord hides the command from
//! others (`default_member_permissions`), and every subcommand checks the permission again on
//! the server (`required_permissions`), so a crafted interaction is refused too.

use poise::serenity_prelude as serenity;

use crate::bot::{self, buttons, deletions, reply, Context, Error};

/// Manage this server's data stored by the bot.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("data"),
    default_member_permissions = "MANAGE_GUILD",
    required_permissions = "MANAGE_GUILD"
)]
pub async fn admin(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// This server's data stored by the bot.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("delete", "stats"),
    required_permissions = "MANAGE_GUILD"
)]
pub async fn data(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Delete everything the bot stores for this server (asks for confirmation first).
#[poise::command(
    slash_command,
    guild_only,
    required_permissions = "MANAGE_GUILD",
    user_cooldown = 10
)]
pub async fn delete(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let bytes = ctx.data().store.guild_bytes(guild).await?;
    if bytes == 0 {
        return reply::ephemeral(ctx, "The bot stores no data for this server.").await;
    }
    let prompt = serenity::CreateEmbed::new()
        .title("Delete all of this server's data?")
        .description("This cannot be undone. The bot will keep working and start afresh.")
        .field("On disk", format!("{} KiB", bytes.div_ceil(1024)), true);
    let Some(press) = buttons::confirm(ctx, prompt, "Delete everything").await? else {
        return Ok(());
    };
    deletions::delete_now(ctx.data(), guild).await?;
    tracing::info!(guild, admin = %ctx.author().id, "an admin deleted the guild's data");
    buttons::update(ctx, &press, "Deleted all of this server's data.").await
}

/// What the bot stores for this server.
#[poise::command(slash_command, guild_only, required_permissions = "MANAGE_GUILD")]
pub async fn stats(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let bytes = ctx.data().store.guild_bytes(guild).await?;
    let mut embed = serenity::CreateEmbed::new()
        .title("This server's data")
        .field("On disk", format!("{} KiB", bytes.div_ceil(1024)), true);
    if let Some(at) = ctx.data().pending.get(guild) {
        embed = embed.field(
            "Scheduled deletion",
            format!("<t:{}:R>", at.timestamp()),
            true,
        );
    }
    ctx.send(reply::quiet_reply().embed(embed).ephemeral(true))
        .await?;
    Ok(())
}
