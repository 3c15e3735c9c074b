//! The buttons on a delivered reminder: snooze 10 minutes, 1 hour, tomorrow, and done (what
//! each does: `crate::reminders::snooze`).
//!
//! They belong to no invocation and keep working after a restart: the custom id carries all
//! a press needs, `remind:<action>:<guild>:<reminder>:<due time>` (at most 70 of Discord's 100
//! characters), and the event handler routes every press whose id starts with `remind:` here.
//! The id is read strictly: exactly those five parts, an action of the four, ids as plain
//! decimal u64 (non-zero, no sign, no leading zero) and the due time as Unix seconds; any
//! other id is refused without looking anything up. The guild comes from the id because a
//! press in a DM has none; a press in a server must come from the id's server.
//!
//! A press is acknowledged at once (a deferred update); then the answer is given in the
//! guild's database (never creating one), the scheduler is told of a new due time, and the
//! message is edited through the press's token: its text stays, a line says what happened,
//! and the buttons go. A refusal (not the creator or a target, already snoozed, gone) is an
//! ephemeral follow-up; the buttons also go unless the presser was merely not allowed.
//! Nothing sent here pings anyone.
//!
//! Not here: the answer's rules and SQL (`crate::reminders::snooze`), sending reminders
//! (`bot/delivery.rs`).

use chrono::{DateTime, Utc};
use poise::serenity_prelude as serenity;

use super::{buttons, error, reply, Data, Error, UserError};
use crate::{
    reminders::snooze::{self, Action, AnswerError, Answered, Presser, Snooze},
    store::StoreError,
};

/// The first part of every custom id here.
const PREFIX: &str = "remind";

/// Each action: its part of the custom id and its label.
const ACTIONS: [(Action, &str, &str); 4] = [
    (Action::Snooze(Snooze::TenMinutes), "10m", "Snooze 10 min"),
    (Action::Snooze(Snooze::OneHour), "1h", "Snooze 1 hour"),
    (Action::Snooze(Snooze::Tomorrow), "tomorrow", "Tomorrow"),
    (Action::Done, "done", "Done"),
];

/// What a press on one of these buttons asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressed {
    pub action: Action,
    pub guild: u64,
    pub reminder: u64,
    /// The delivered due time the message is about.
    pub occurrence: DateTime<Utc>,
}

impl Pressed {
    fn custom_id(&self) -> String {
        let (_, action, _) = ACTIONS
            .iter()
            .find(|(action, ..)| *action == self.action)
            .expect("every action is in ACTIONS");
        format!(
            "{PREFIX}:{action}:{}:{}:{}",
            self.guild,
            self.reminder,
            self.occurrence.timestamp()
        )
    }
}

/// Whether the press belongs here (its id may still be refused as malformed).
pub fn is_ours(custom_id: &str) -> bool {
    custom_id
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Reads a custom id made by [`row`]; `None` for anything else.
pub fn parse(custom_id: &str) -> Option<Pressed> {
    let mut parts = custom_id.split(':');
    let (Some(PREFIX), Some(action), Some(guild), Some(reminder), Some(at), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let action = ACTIONS
        .iter()
        .find(|(_, part, _)| *part == action)
        .map(|(action, ..)| *action)?;
    let occurrence = DateTime::from_timestamp(i64::try_from(decimal(at)?).ok()?, 0)?;
    Some(Pressed {
        action,
        guild: decimal(guild).filter(|g| *g > 0)?,
        reminder: decimal(reminder).filter(|r| i64::try_from(*r).is_ok_and(|r| r > 0))?,
        occurrence,
    })
}

/// A plain decimal u64: digits only, no leading zero (but "0" itself).
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// The buttons for the delivered time `occurrence` of `reminder` in `guild`.
pub fn row(guild: u64, reminder: u64, occurrence: DateTime<Utc>) -> serenity::CreateActionRow {
    let buttons = ACTIONS
        .iter()
        .map(|&(action, _, label)| {
            let pressed = Pressed {
                action,
                guild,
                reminder,
                occurrence,
            };
            let style = if action == Action::Done {
                serenity::ButtonStyle::Success
            } else {
                serenity::ButtonStyle::Secondary
            };
            serenity::CreateButton::new(pressed.custom_id())
                .label(label)
                .style(style)
        })
        .collect();
    serenity::CreateActionRow::Buttons(buttons)
}

/// Answers a press of one of these buttons.
pub async fn handle(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let Some(pressed) = parse(&press.data.custom_id) else {
        return buttons::refuse(ctx, press, "This button is not one I know.").await;
    };
    if press.guild_id.is_some_and(|g| g.get() != pressed.guild) {
        return buttons::refuse(ctx, press, "This button belongs to another server.").await;
    }
    press.defer(ctx).await?;
    let presser = Presser {
        user: press.user.id.get(),
        roles: press
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
    };
    let user = presser.user;
    let (final_answer, refused) = match answer(data, pressed, presser).await {
        Ok(Ok(answered)) => return show(ctx, data, press, pressed.guild, answered, user).await,
        Ok(Err(refused)) => (refused.is_final(), super::domain(refused)),
        Err(failed) => (false, failed),
    };
    let (text, _) = error::shown(
        &refused,
        data,
        &press.data.custom_id,
        Some(pressed.guild),
        user,
    );
    if final_answer {
        let without_buttons = serenity::EditInteractionResponse::new()
            .components(vec![])
            .allowed_mentions(reply::no_pings());
        press.edit_response(ctx, without_buttons).await?;
    }
    let followup = serenity::CreateInteractionResponseFollowup::new()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(reply::no_pings());
    press.create_followup(ctx, followup).await?;
    Ok(())
}

/// Tells the scheduler of a new due time, and edits the message: its text, a line saying
/// what `user` did, no buttons.
async fn show(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    guild: u64,
    answered: Answered,
    user: u64,
) -> Result<(), Error> {
    let status = match answered {
        Answered::Snoozed { id, due_at } => {
            data.scheduler.upsert(guild, id, due_at);
            format!(
                "💤 Snoozed until <t:{0}:f> (<t:{0}:R>) by <@{user}>.",
                due_at.timestamp()
            )
        }
        Answered::Done { next: Some(next) } => format!(
            "✅ Done (<@{user}>). Next time: <t:{}:f>.",
            next.timestamp()
        ),
        Answered::Done { next: None } => format!("✅ Done (<@{user}>)."),
    };
    let status = format!("\n-# {status}");
    let kept = reply::shorten(
        &press.message.content,
        reply::MAX_CONTENT - status.chars().count(),
    );
    buttons::update(ctx, press, format!("{kept}{status}")).await
}

/// Gives the answer in the guild's database (never creating it). The outer error is the
/// bot's: the guild is in its grace period after the bot was removed, or the store failed.
async fn answer(
    data: &Data,
    pressed: Pressed,
    presser: Presser,
) -> Result<Result<Answered, AnswerError>, Error> {
    if data.pending.get(pressed.guild).is_some() {
        return Err(UserError(
            "I'm no longer in this reminder's server, so it can't be snoozed.".into(),
        )
        .into());
    }
    let now = data.clock.now();
    let answered = data
        .store
        .with_existing_guild(pressed.guild, move |c| {
            snooze::answer(
                c,
                pressed.reminder,
                pressed.occurrence,
                pressed.action,
                &presser,
                now,
            )
        })
        .await;
    match answered {
        Err(StoreError::UnknownGuild(_)) => Ok(Err(AnswerError::Gone)),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn every_button_id_reads_back_and_fits_discord() {
        let (guild, reminder) = (u64::MAX, i64::MAX.unsigned_abs());
        let occurrence = at(DateTime::<Utc>::MAX_UTC.timestamp());
        for (action, ..) in ACTIONS {
            let pressed = Pressed {
                action,
                guild,
                reminder,
                occurrence,
            };
            let id = pressed.custom_id();
            assert!(id.len() <= 70, "{id}");
            assert!(is_ours(&id));
            assert_eq!(parse(&id), Some(pressed), "{id}");
        }
    }

    #[test]
    fn anything_but_our_exact_form_is_refused() {
        assert_eq!(
            parse("remind:10m:42:7:1767225600"),
            Some(Pressed {
                action: Action::Snooze(Snooze::TenMinutes),
                guild: 42,
                reminder: 7,
                occurrence: at(1_767_225_600),
            })
        );
        for bad in [
            "remind:10m:42:7",
            "remind:10m:42:7:1767225600:x",
            "remind:5m:42:7:1767225600",
            "remind:10m:+42:7:1767225600",
            "remind:10m:042:7:1767225600",
            "remind:10m:0:7:1767225600",
            "remind:10m:-1:7:1767225600",
            "remind:10m:42:0:1767225600",
            "remind:10m:42:9223372036854775808:1767225600",
            "remind:10m:18446744073709551616:7:1767225600",
            "remind:10m:../../etc:7:1767225600",
            "remind:10m:42:7:-5",
            "remind:10m:42:7:",
            "remind:10m: 42:7:1767225600",
            "reminder:10m:42:7:1767225600",
            "123:confirm",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(is_ours("remind:anything"));
        assert!(!is_ours("reminder:10m"));
        assert!(!is_ours("123:next"));
    }
}
