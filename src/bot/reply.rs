//! Every reply goes through here, so that "no pings" and "ephemeral for errors" are decided in
//! one place. The framework's default `allowed_mentions` is already empty; these helpers set
//! it explicitly as well, so a reply stays quiet even if that default ever changes.
//!
//! Not here: what the replies say (commands) or buttons (`bot/buttons.rs`).

use poise::{serenity_prelude as serenity, CreateReply};

use super::{Context, Error};

/// Mentions nobody: no @everyone, no roles, no users.
pub fn no_pings() -> serenity::CreateAllowedMentions {
    serenity::CreateAllowedMentions::new()
}

/// A reply builder that pings nobody.
pub fn quiet_reply() -> CreateReply {
    CreateReply::default().allowed_mentions(no_pings())
}

/// Only the invoker sees it.
pub async fn ephemeral(ctx: Context<'_>, text: impl Into<String>) -> Result<(), Error> {
    ctx.send(quiet_reply().content(text).ephemeral(true))
        .await?;
    Ok(())
}

/// Everyone in the channel sees it; nobody is pinged.
pub async fn quiet(ctx: Context<'_>, text: impl Into<String>) -> Result<(), Error> {
    ctx.send(quiet_reply().content(text)).await?;
    Ok(())
}

/// An embed everyone in the channel sees; nobody is pinged.
pub async fn embed(ctx: Context<'_>, embed: serenity::CreateEmbed) -> Result<(), Error> {
    ctx.send(quiet_reply().embed(embed)).await?;
    Ok(())
}

/// For replies whose failure can only be logged (the member is already gone, say).
pub fn log_failure(result: Result<(), Error>) {
    if let Err(e) = result {
        tracing::warn!(error = %format!("{e:#}"), "could not send a reply");
    }
}

/// Shortens `text` to at most `max` characters, marking the cut with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}
