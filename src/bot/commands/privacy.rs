//! `/privacy export|forget`: a member's own data in this server. The export arrives as an
//! ephemeral JSON attachment; forgetting asks for confirmation first. What is exported and
//! erased is decided in `crate::privacy`.

use chrono::Utc;
use poise::serenity_prelude as serenity;

use crate::{
    bot::{self, buttons, reply, Context, Error},
    ops::gdpr,
    privacy::{self, ForgetActor, ForgetCounts, ForgetMode},
    store::StoreError,
};

/// Your data in this server: export it or have it erased.
#[poise::command(slash_command, guild_only, subcommands("export", "forget"))]
pub async fn privacy(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Get everything the bot stores about you in this server, as a JSON file only you see.
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 30)]
pub async fn export(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let export = ctx
        .data()
        .store
        .with_guild(guild, move |c| privacy::export_user(c, user))
        .await?
        .map_err(bot::domain)?;
    if export.is_empty() {
        return reply::ephemeral(ctx, "The bot stores nothing about you in this server.").await;
    }
    // Discord refuses a file over the interaction's `attachment_size_limit` (it depends on the
    // server's boost level): indented if that fits, else compact, else the operator's export.
    let limit = match ctx {
        poise::Context::Application(app) => app.interaction.attachment_size_limit as usize,
        poise::Context::Prefix(_) => 0,
    };
    let pretty = serde_json::to_vec_pretty(&export)?;
    let json = if pretty.len() <= limit {
        pretty
    } else {
        serde_json::to_vec(&export)?
    };
    if json.len() > limit {
        return reply::ephemeral(
            ctx,
            format!(
                "Your data here is {} KiB, more than the {} KiB Discord lets me attach in this \
                 server. Ask the bot's operator for it: `guildkeep gdpr export-user {user} \
                 --guild {guild}`.",
                json.len().div_ceil(1024),
                limit / 1024
            ),
        )
        .await;
    }
    let file = serenity::CreateAttachment::bytes(json, format!("guildkeep-{guild}-{user}.json"));
    reply::private(
        ctx,
        reply::quiet_reply()
            .content("Everything the bot stores about you in this server:")
            .attachment(file),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum SavedQuotes {
    #[name = "keep them without my name"]
    Keep,
    #[name = "delete them"]
    Delete,
    #[name = "delete them, and quotes of my words"]
    DeleteAll,
}

/// Erase your ratings, reminders and settings here, and your name from quotes (asks first).
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 30)]
pub async fn forget(
    ctx: Context<'_>,
    #[description = "Quotes you saved (default: keep them without your name)"] saved_quotes: Option<
        SavedQuotes,
    >,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let mode = match saved_quotes.unwrap_or(SavedQuotes::Keep) {
        SavedQuotes::Keep => ForgetMode::Anonymise,
        SavedQuotes::Delete => ForgetMode::Delete,
        SavedQuotes::DeleteAll => ForgetMode::DeleteAll,
    };
    let quotes_line = match mode {
        ForgetMode::Anonymise => "Quotes you saved stay, without your name.",
        ForgetMode::Delete => "Quotes you saved are deleted, with their ratings and tags.",
        ForgetMode::DeleteAll => {
            "Quotes you saved and quotes of your words are deleted, with their ratings and tags."
        }
    };
    let prompt = serenity::CreateEmbed::new()
        .title("Erase your data in this server?")
        .description(format!(
            "Your ratings, your reminders, your opt-in settings and your place on others' \
             reminders are deleted; quotes of your words no longer name you. {quotes_line} \
             This cannot be undone."
        ));
    let Some(press) = buttons::confirm(ctx, prompt, "Erase my data").await? else {
        return Ok(());
    };
    let owner = ctx.data().owner();
    let forgotten =
        gdpr::forget_in_guild(&owner, guild, user, mode, ForgetActor::Member, Utc::now()).await;
    let counts = match forgotten {
        Err(e) if matches!(e.downcast_ref(), Some(StoreError::UnknownGuild(_))) => {
            ForgetCounts::default()
        }
        forgotten => forgotten?,
    };
    tracing::info!(guild, ?counts, "a member had their data erased");
    let text = format!(
        "Done. Removed {} rating(s) and {} reminder(s); {} quote(s) kept without your name, \
         {} deleted, {} no longer name you.",
        counts.ratings_deleted,
        counts.reminders_deleted,
        counts.quotes_anonymised,
        counts.quotes_deleted + counts.quotes_of_them_deleted,
        counts.quotes_unnamed,
    );
    buttons::update(ctx, &press, text).await
}
