//! Every reply goes through here, so that "no pings" and "ephemeral for errors" are decided in
//! one place. The framework's default `allowed_mentions` is already empty; these helpers set
//! it explicitly as well, so a reply stays quiet even if that default ever changes.
//!
//! Every command is deferred before it runs ([`defer`]): Discord wants a first response within
//! 3 s, and a command may wait on its guild's database for longer. The deferral is ephemeral
//! when the command's answer is (`#[poise::command(ephemeral)]`). The answer then replaces the
//! loading message and keeps its visibility, so a private answer (an error, say) after a public
//! deferral first deletes the loading message and is then sent as a new, private one.
//!
//! Not here: what the replies say (commands) or buttons (`bot/buttons.rs`).

use poise::{serenity_prelude as serenity, CreateReply};

use super::{Context, Error};

/// Discord's limits on what a message shows (`resources/message`): every text sent is measured
/// against its limit and cut (or paged) to fit, never refused by Discord after the write.
pub const MAX_CONTENT: usize = 2000;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELD_VALUE: usize = 1024;
/// An autocomplete choice's name, and a text choice's value.
pub const MAX_CHOICE: usize = 100;

/// Marks an invocation whose public loading message has not been replaced yet.
struct PublicLoading;

/// Acknowledges the command (Discord shows "thinking…"), publicly or privately as its answer
/// will be. Runs before every command (poise's `pre_command`), after its checks.
pub async fn defer(ctx: Context<'_>) {
    let private = ctx.command().ephemeral;
    let deferred = if private {
        ctx.defer_ephemeral().await
    } else {
        ctx.defer().await
    };
    match deferred {
        Ok(()) if !private => ctx.set_invocation_data(PublicLoading).await,
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(command = %ctx.command().qualified_name, error = %e, "could not defer")
        }
    }
}

/// Sends `reply` for everyone in the channel; it replaces a public loading message.
pub async fn public<'a>(
    ctx: Context<'a>,
    reply: CreateReply,
) -> Result<poise::ReplyHandle<'a>, Error> {
    ctx.set_invocation_data(()).await;
    Ok(ctx.send(reply.ephemeral(false)).await?)
}

/// Sends `reply` to the invoker only. A public loading message would turn it public, so that
/// is deleted first.
pub async fn private<'a>(
    ctx: Context<'a>,
    reply: CreateReply,
) -> Result<poise::ReplyHandle<'a>, Error> {
    let loading = ctx.invocation_data::<PublicLoading>().await.is_some();
    if loading {
        ctx.set_invocation_data(()).await;
        if let poise::Context::Application(app) = ctx {
            app.interaction.delete_response(ctx.http()).await?;
        }
    }
    Ok(ctx.send(reply.ephemeral(true)).await?)
}

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
    private(
        ctx,
        quiet_reply().content(shorten(&text.into(), MAX_CONTENT)),
    )
    .await?;
    Ok(())
}

/// Everyone in the channel sees it; nobody is pinged.
pub async fn quiet(ctx: Context<'_>, text: impl Into<String>) -> Result<(), Error> {
    public(
        ctx,
        quiet_reply().content(shorten(&text.into(), MAX_CONTENT)),
    )
    .await?;
    Ok(())
}

/// An embed everyone in the channel sees; nobody is pinged.
pub async fn embed(ctx: Context<'_>, embed: serenity::CreateEmbed) -> Result<(), Error> {
    public(ctx, quiet_reply().embed(embed)).await?;
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

/// Member-written text for one line of a list: on one line, at most `max` characters, and with
/// Markdown escaped, so that an unclosed code block or spoiler cannot swallow the lines after.
pub fn list_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut escaped = String::new();
    for c in shorten(&flat, max).chars() {
        if "\\*_~`|>#[]-".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `lines` joined, as many as fit in `max` characters; the rest counted in a last line.
pub fn lines_within(lines: &[String], max: usize) -> String {
    let mut shown = String::new();
    for (n, line) in lines.iter().enumerate() {
        let more = format!("\n…and {} more.", lines.len() - n);
        let needed = shown.chars().count() + 1 + line.chars().count();
        let rest = lines.len() - n - 1;
        let reserve = if rest > 0 { more.chars().count() } else { 0 };
        if needed + reserve > max {
            shown.push_str(&more);
            return shown.trim_start().to_owned();
        }
        shown.push('\n');
        shown.push_str(line);
    }
    shown.trim_start().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_are_flat_short_and_escaped() {
        assert_eq!(list_line("```rust\nfn", 90), "\\`\\`\\`rust fn");
        assert_eq!(list_line("||spoiler", 90), "\\|\\|spoiler");
        assert_eq!(list_line(&"x".repeat(200), 10).chars().count(), 10);
    }

    #[test]
    fn lines_are_cut_to_fit_and_the_rest_counted() {
        let lines: Vec<String> = (0..100).map(|n| format!("{n:>50}")).collect();
        let shown = lines_within(&lines, MAX_DESCRIPTION);
        assert!(shown.chars().count() <= MAX_DESCRIPTION, "{}", shown.len());
        assert!(shown.ends_with("more."), "{shown}");
        let few = lines_within(&lines[..3], MAX_DESCRIPTION);
        assert_eq!(few.lines().count(), 3);
    }
}
