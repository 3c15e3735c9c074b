//! What a member may read versus what goes to the log, and the one `on_error` of the
//! framework.
//!
//! A [`UserError`] is written for the member and shown verbatim, ephemerally. Domain errors
//! that a member can fix (`user_message()` is `Some`) become one through [`domain`]. Anything
//! else is internal: it is logged with the command, guild, user and error chain under a short
//! reference id, and the member sees a generic message carrying the same id.
//!
//! Not here: the wording of ordinary replies (`bot/reply.rs`).

use poise::FrameworkError;

use super::{measure, reply, Context, Data, Error};
use crate::{
    observe::{Outcome, Refusal},
    store::StoreError,
};

/// A message written for the member, shown verbatim and ephemerally. Never wrap internal text
/// in it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Turns "absent" into a message for the member: `found.or_user("No such quote.")?`.
pub trait OrUserError<T> {
    fn or_user(self, message: impl Into<String>) -> Result<T, UserError>;
}

impl<T> OrUserError<T> for Option<T> {
    fn or_user(self, message: impl Into<String>) -> Result<T, UserError> {
        self.ok_or_else(|| UserError(message.into()))
    }
}

/// A domain error that knows which of its cases a member can fix.
pub trait MemberFixable: std::error::Error + Send + Sync + 'static {
    fn user_message(&self) -> Option<String>;
}

impl MemberFixable for crate::quotes::QuoteError {
    fn user_message(&self) -> Option<String> {
        Self::user_message(self)
    }
}

impl MemberFixable for crate::privacy::PrivacyError {
    fn user_message(&self) -> Option<String> {
        Self::user_message(self)
    }
}

impl MemberFixable for crate::reminders::ReminderError {
    fn user_message(&self) -> Option<String> {
        Self::user_message(self)
    }
}

impl MemberFixable for crate::reminders::snooze::AnswerError {
    fn user_message(&self) -> Option<String> {
        Self::user_message(self)
    }
}

impl MemberFixable for crate::optins::OptInError {
    fn user_message(&self) -> Option<String> {
        Self::user_message(self)
    }
}

/// The bot's view of a domain error: a [`UserError`] when the member can fix it, otherwise
/// the error itself (internal). Use as `.map_err(bot::domain)?`.
pub fn domain<E: MemberFixable>(error: E) -> Error {
    match error.user_message() {
        Some(message) => UserError(message).into(),
        None => error.into(),
    }
}

/// Store conditions a member can understand (and usually just retry).
fn store_message(error: &StoreError) -> Option<(Refusal, &'static str)> {
    Some(match error {
        StoreError::BeingDeleted(_) => (
            Refusal::BeingDeleted,
            "This server's data is being deleted right now. Try again in a moment.",
        ),
        StoreError::AtCapacity { .. } => (
            Refusal::AtCapacity,
            "The bot is very busy right now. Try again in a moment.",
        ),
        StoreError::ShuttingDown => (
            Refusal::ShuttingDown,
            "The bot is restarting. Try again in a minute.",
        ),
        StoreError::NotOurShard { .. } => (
            Refusal::NotOurShard,
            "This server is served by another instance of the bot; try again shortly.",
        ),
        _ => return None,
    })
}

/// Whether `cause` is SQLite saying the database is full: the guild reached `max_guild_mib`
/// (or the disk is full).
/// SQLite's own error is looked for, not rusqlite's: domain errors wrap rusqlite's
/// transparently, which leaves SQLite's as the cause in the chain.
fn is_full(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<rusqlite::ffi::Error>()
        .is_some_and(|e| e.code == rusqlite::ErrorCode::DiskFull)
}

/// The framework's only error handler. Every command that ends here is counted, by whether
/// the member was told something they can act on or a failure was logged.
pub async fn on_error(error: FrameworkError<'_, Data, Error>) {
    use FrameworkError as Fw;
    let (ctx, shown) = match error {
        Fw::Command { ctx, error, .. }
        | Fw::CommandCheckFailed {
            ctx,
            error: Some(error),
            ..
        } => {
            let (shown, outcome) = shown_for(ctx, &error);
            measure::ended(ctx, outcome);
            reply::log_failure(reply::ephemeral(ctx, shown).await);
            return;
        }
        Fw::CommandCheckFailed {
            ctx, error: None, ..
        } => (ctx, "You can't use this here.".into()),
        Fw::MissingUserPermissions {
            ctx,
            missing_permissions,
            ..
        } => {
            let needed = missing_permissions
                .map(|p| format!(" You need: {p}."))
                .unwrap_or_default();
            tracing::info!(
                command = %ctx.command().qualified_name,
                guild = ?ctx.guild_id(),
                user = %ctx.author().id,
                "refused: missing permissions"
            );
            (
                ctx,
                format!("You don't have permission to use this.{needed}"),
            )
        }
        Fw::MissingBotPermissions {
            ctx,
            missing_permissions,
            ..
        } => (
            ctx,
            format!("I need these permissions here first: {missing_permissions}."),
        ),
        Fw::CooldownHit {
            ctx,
            remaining_cooldown,
            ..
        } => (
            ctx,
            format!(
                "Slow down a little: try again in {} s.",
                remaining_cooldown.as_secs().max(1)
            ),
        ),
        Fw::GuildOnly { ctx, .. } => (ctx, "This command only works in a server.".into()),
        Fw::ArgumentParse { ctx, input, .. } => {
            let what = input.map(|i| format!(" (`{i}`)")).unwrap_or_default();
            (ctx, format!("I couldn't read one of the options{what}."))
        }
        Fw::EventHandler { error, event, .. } => {
            tracing::error!(event = event.snake_case_name(), error = %format!("{error:#}"), "event handler failed");
            return;
        }
        other => {
            if let Some(ctx) = other.ctx() {
                measure::ended(ctx, Outcome::InternalError);
            }
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %e, "could not report an error");
            }
            return;
        }
    };
    measure::ended(ctx, Outcome::UserError);
    reply::log_failure(reply::ephemeral(ctx, shown).await);
}

/// What the member sees for `error`: its own text if it is meant for them, otherwise a
/// generic line with a reference id that is also logged.
fn shown_for(ctx: Context<'_>, error: &Error) -> (String, Outcome) {
    shown(
        error,
        ctx.data(),
        &ctx.command().qualified_name,
        ctx.guild_id().map(|g| g.get()),
        ctx.author().id.get(),
    )
}

/// [`shown_for`] outside a command: `what` the member did (e.g. a button's id), in `guild`.
pub fn shown(
    error: &Error,
    data: &Data,
    what: &str,
    guild: Option<u64>,
    user: u64,
) -> (String, Outcome) {
    if let Some(user) = error.downcast_ref::<UserError>() {
        return (user.to_string(), Outcome::UserError);
    }
    if let Some((refusal, message)) = error.downcast_ref::<StoreError>().and_then(store_message) {
        tracing::info!(command = %what, error = %error, "store refused");
        data.metrics.store_refused(refusal);
        return (message.into(), Outcome::UserError);
    }
    if error.chain().any(is_full) {
        tracing::warn!(command = %what, guild = ?guild, "a guild's database is full");
        return ("This server has reached the space the bot keeps for it, so nothing new was saved. Delete old quotes or reminders, or ask the bot's operator to raise the limit.".into(), Outcome::UserError);
    }
    let reference = format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff);
    tracing::error!(
        reference = %reference,
        command = %what,
        guild = ?guild,
        user = %user,
        error = %format!("{error:#}"),
        "command failed"
    );
    (format!("Something went wrong on our side. If it keeps happening, tell the bot's operator: reference `{reference}`."), Outcome::InternalError)
}
