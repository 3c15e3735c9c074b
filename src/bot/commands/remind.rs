//! `/remind me|channel|list|edit|cancel|timezone`. Times are read in the member's time zone by
//! `crate::reminders::parse_when`; every change is passed on to the scheduler (edits and
//! cancels through `Scheduler::change`, so they never race a send). Confirmations echo the
//! member's text and so ping nobody; only the delivered channel post pings, and only its
//! targets (`bot/delivery.rs`).

use chrono::{DateTime, Utc};
use poise::serenity_prelude as serenity;

use super::{parse_id, suggestions};
use crate::{
    bot::{self, permissions, reply, Context, Error, UserError},
    optins,
    reminders::{
        self, NewReminder, Pings, Recurrence, Reminder, ReminderEdit, ReminderError, Status, Target,
    },
};

/// Reminders for yourself (by DM) or for others (posted here).
#[poise::command(
    slash_command,
    guild_only,
    subcommands("me", "channel", "list", "edit", "cancel", "timezone")
)]
pub async fn remind(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Remind yourself by DM (turn DMs on first with /optin dm on).
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 3)]
pub async fn me(
    ctx: Context<'_>,
    #[description = "When: \"in 2h\", \"tomorrow 9:00\", \"2026-12-24 18:00\""] when: String,
    #[description = "What to remind you of"]
    #[max_length = 1000]
    what: String,
    #[description = "Repeat: \"every 2h\", \"daily 09:00\", \"weekdays at 9:00\", \"monthly on the 31st\""]
    repeat: Option<String>,
    #[description = "When the repeat ends: \"2027-06-30 18:00\", \"in 3 weeks\", \"10 times\""]
    until: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let repeat = parse_repeat(repeat.as_deref())?;
    let cap = ctx.data().config.reminder_cap;
    let created = ctx
        .data()
        .store
        .with_guild(guild, move |c| -> Result<Option<Reminder>, ReminderError> {
            if !optins::dm_opted_in(c, user)? {
                return Ok(None);
            }
            let new = new_reminder(c, user, Target::Dm, &when, what, repeat, until)?;
            reminders::create(c, &new, cap, Utc::now()).map(Some)
        })
        .await?
        .map_err(bot::domain)?;
    let reminder = created.ok_or_else(|| {
        UserError("I can only DM you after you allow it: use /optin dm on first.".into())
    })?;
    ctx.data()
        .scheduler
        .upsert(guild, reminder.id, reminder.due_at);
    reply::ephemeral(
        ctx,
        format!(
            "Reminder #{} set: I'll DM you {}.{}\n> {}",
            reminder.id,
            when_text(reminder.due_at),
            next_times(&reminder),
            reminder.message
        ),
    )
    .await
}

/// Post a reminder in this channel that pings the users and roles you name.
#[poise::command(slash_command, guild_only, user_cooldown = 3)]
pub async fn channel(
    ctx: Context<'_>,
    #[description = "When: \"in 2h\", \"tomorrow 9:00\", \"2026-12-24 18:00\""] when: String,
    #[description = "What to remind them of"]
    #[max_length = 1000]
    what: String,
    #[description = "Who to ping: @mentions of members and roles"] who: String,
    #[description = "Repeat: \"every 2h\", \"daily 09:00\", \"weekdays at 9:00\", \"monthly on the 31st\""]
    repeat: Option<String>,
    #[description = "When the repeat ends: \"2027-06-30 18:00\", \"in 3 weeks\", \"10 times\""]
    until: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let (users, roles) = checked_mentions(ctx, guild, &who).await?;
    let repeat = parse_repeat(repeat.as_deref())?;
    let mentioned = mentions_text(&users, &roles);
    let target = Target::Channel {
        channel: ctx.channel_id().get(),
        users,
        roles,
    };
    let cap = ctx.data().config.reminder_cap;
    let reminder = ctx
        .data()
        .store
        .with_guild(guild, move |c| {
            let new = new_reminder(c, user, target, &when, what, repeat, until)?;
            reminders::create(c, &new, cap, Utc::now())
        })
        .await?
        .map_err(bot::domain)?;
    ctx.data()
        .scheduler
        .upsert(guild, reminder.id, reminder.due_at);
    reply::quiet(
        ctx,
        format!(
            "Reminder #{} set for {}, for {}.{}\n> {}",
            reminder.id,
            when_text(reminder.due_at),
            mentioned,
            next_times(&reminder),
            reminder.message
        ),
    )
    .await
}

/// After a `/remind` command: tells the member, privately and once, what no DM told them of
/// their reminders since (one stopped, or a time missed for a reason they can fix).
pub async fn tell_notices(ctx: Context<'_>) {
    let (Some(guild), true) = (
        ctx.guild_id(),
        ctx.command().qualified_name.starts_with("remind "),
    ) else {
        return;
    };
    let user = ctx.author().id.get();
    let taken = ctx
        .data()
        .store
        .with_guild(guild.get(), move |c| reminders::notice::take(c, user))
        .await;
    match taken
        .map_err(Error::from)
        .and_then(|r| r.map_err(Error::from))
    {
        Ok(notices) if notices.is_empty() => {}
        Ok(notices) => reply::log_failure(reply::ephemeral(ctx, notices.join("\n")).await),
        Err(e) => {
            tracing::error!(guild = guild.get(), error = %format!("{e:#}"), "reminder notices unreadable")
        }
    }
}

/// Which reminders `/remind list` shows.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum Show {
    #[name = "active"]
    Active,
    #[name = "failed"]
    Failed,
    #[name = "all"]
    All,
}

// A reminder paused until a later try (a one-off Discord refused for a reason the member can
// fix, or a send that failed for now) is still active: it shows under `active` and `all`,
// marked with when it is tried again and why. Reminders of a guild in its deletion grace are
// paused too, but nobody can list them: the bot is no longer in that guild to be asked.
/// Your reminders (a moderator sees everyone's): active ones, failed ones with why, or both.
#[poise::command(slash_command, ephemeral, guild_only)]
pub async fn list(
    ctx: Context<'_>,
    #[description = "Which: active (default), failed, or all"] show: Option<Show>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let (user, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    let (show, title) = match show.unwrap_or(Show::Active) {
        Show::Active => (reminders::Show::Active, "Active reminders"),
        Show::Failed => (reminders::Show::Failed, "Failed reminders"),
        Show::All => (reminders::Show::All, "Active and failed reminders"),
    };
    let found = ctx
        .data()
        .store
        .with_guild(guild, move |c| {
            reminders::list_some(c, user, moderator, show)
        })
        .await?
        .map_err(bot::domain)?;
    if found.is_empty() {
        let none = match show {
            reminders::Show::Failed => "No failed reminders.",
            _ => "No active reminders. Set one with /remind me or /remind channel.",
        };
        return reply::ephemeral(ctx, none).await;
    }
    let lines: Vec<String> = found
        .iter()
        .map(|r| {
            let target = match &r.target {
                Target::Dm => "DM".to_owned(),
                Target::Channel { channel, .. } => format!("<#{channel}>"),
            };
            let repeat = r
                .recurrence
                .map(|rule| format!(" ({rule}{})", end_text(r)))
                .unwrap_or_default();
            let line = format!(
                "**#{}** {} · {target}{repeat} — {}",
                r.id,
                when_text(r.due_at),
                reply::list_line(&r.message, 80)
            );
            // Why it stopped, why it waits, or why the last time did not arrive: the member
            // can act on it.
            let why = r
                .last_error
                .as_deref()
                .map(|why| reply::list_line(why, 300));
            match (r.status, why, r.retry_at) {
                (Status::Failed, Some(why), _) => format!("{line}\n  ❌ Stopped: {why}"),
                (Status::Failed, None, _) => format!("{line}\n  ❌ Stopped"),
                (_, why, Some(retry)) => format!(
                    "{line}\n  ⏸️ Paused until <t:{}:f>, then tried again{}",
                    retry.timestamp(),
                    why.map(|why| format!(": {why}")).unwrap_or_default()
                ),
                (_, Some(why), None) => format!("{line}\n  ⚠️ Last time: {why}"),
                (_, None, None) => line,
            }
        })
        .collect();
    let embed = serenity::CreateEmbed::new()
        .title(format!("{title} ({})", found.len()))
        .description(reply::lines_within(&lines, reply::MAX_DESCRIPTION));
    reply::private(ctx, reply::quiet_reply().embed(embed)).await?;
    Ok(())
}

/// Change one of your reminders (a moderator may change anyone's): only what you give changes.
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 3)]
pub async fn edit(
    ctx: Context<'_>,
    #[description = "Reminder number, or words from it to search"]
    #[autocomplete = "complete_reminder"]
    #[max_length = 100]
    id: String,
    #[description = "Its next time: \"in 2h\", \"tomorrow 9:00\", \"2026-12-24 18:00\""]
    when: Option<String>,
    #[description = "What to remind of"]
    #[max_length = 1000]
    what: Option<String>,
    #[description = "Repeat: \"every 2h\", \"daily 09:00\", \"monthly on the 31st\"; \"none\" to stop"]
    repeat: Option<String>,
    #[description = "When the repeat ends: \"2027-06-30 18:00\", \"10 times\""] until: Option<
        String,
    >,
    #[description = "Who to ping (a channel reminder; change it from its channel)"] who: Option<
        String,
    >,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: u64 = parse_id(&id, "reminder")?;
    let (user, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    if [&when, &what, &repeat, &until, &who]
        .iter()
        .all(|given| given.is_none())
    {
        return Err(
            UserError("Give what to change: when, what, repeat, until or who.".into()).into(),
        );
    }
    let recurrence = match repeat.as_deref().map(str::trim) {
        None => None,
        Some(off) if ["none", "off", "never", "no"].contains(&off.to_lowercase().as_str()) => {
            Some(None)
        }
        Some(rule) => Some(Some(parse_repeat(Some(rule))?.ok_or_else(|| {
            UserError("Give a repeat, or \"none\" to stop repeating.".into())
        })?)),
    };
    let mentions = match who {
        Some(who) => {
            let (users, roles) = checked_mentions(ctx, guild, &who).await?;
            Some(Pings {
                checked_in: ctx.channel_id().get(),
                users,
                roles,
            })
        }
        None => None,
    };
    let edited = ctx
        .data()
        .scheduler
        .change(guild, id, move |c| {
            let zone = optins::time_zone(c, user)?;
            let now = Utc::now();
            let change = ReminderEdit {
                due_at: when
                    .map(|when| reminders::parse_when(&when, zone, now))
                    .transpose()?,
                message: what,
                recurrence,
                recurrence_end: until
                    .map(|until| reminders::parse_end(&until, zone, now))
                    .transpose()?,
                mentions,
            };
            reminders::edit(c, id, user, moderator, &change, now)
        })
        .await?
        .map_err(bot::domain)?;
    let target = match &edited.target {
        Target::Dm => "by DM".to_owned(),
        Target::Channel {
            channel,
            users,
            roles,
        } => format!("in <#{channel}> for {}", mentions_text(users, roles)),
    };
    reply::ephemeral(
        ctx,
        format!(
            "Reminder #{} changed: next {}, {target}.{}\n> {}",
            edited.id,
            when_text(edited.due_at),
            next_times(&edited),
            edited.message
        ),
    )
    .await
}

/// Cancel one of your reminders (a moderator may cancel anyone's).
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 3)]
pub async fn cancel(
    ctx: Context<'_>,
    #[description = "Reminder number, or words from it to search"]
    #[autocomplete = "complete_reminder"]
    #[max_length = 100]
    id: String,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: u64 = parse_id(&id, "reminder")?;
    let (user, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    let cancelled = ctx
        .data()
        .scheduler
        .change(guild, id, move |c| {
            reminders::cancel(c, id, user, moderator, Utc::now())
        })
        .await?
        .map_err(bot::domain)?;
    reply::ephemeral(ctx, format!("Cancelled reminder #{}.", cancelled.id)).await
}

/// Set the time zone your reminder times are read in.
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 3)]
pub async fn timezone(
    ctx: Context<'_>,
    #[description = "A zone name such as Europe/Berlin (empty: back to UTC)"]
    #[autocomplete = "complete_zone"]
    zone: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let user = ctx.author().id.get();
    let set = ctx
        .data()
        .store
        .with_guild(guild, move |c| {
            optins::set_time_zone(c, user, zone.as_deref(), Utc::now())
        })
        .await?
        .map_err(bot::domain)?;
    reply::ephemeral(ctx, format!("Your time zone here is now {}.", set.name())).await
}

/// The member's zone (for reading `when`) and the validated reminder.
fn new_reminder(
    conn: &rusqlite::Connection,
    creator: u64,
    target: Target,
    when: &str,
    message: String,
    recurrence: Option<Recurrence>,
    until: Option<String>,
) -> Result<NewReminder, ReminderError> {
    let time_zone = optins::time_zone(conn, creator)?;
    let due_at = reminders::parse_when(when, time_zone, Utc::now())?;
    let recurrence_end = until
        .map(|until| reminders::parse_end(&until, time_zone, Utc::now()))
        .transpose()?;
    Ok(NewReminder {
        creator,
        target,
        message,
        due_at,
        time_zone,
        recurrence,
        recurrence_end,
    })
}

/// The repeat as typed (none when empty).
fn parse_repeat(repeat: Option<&str>) -> Result<Option<Recurrence>, Error> {
    Ok(repeat
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<Recurrence>())
        .transpose()
        .map_err(|e| UserError(e.to_string()))?)
}

/// `who` read into users and roles, refused as `/remind channel` refuses it: pings the member
/// could not make, or posts the bot could not make in this channel.
async fn checked_mentions(
    ctx: Context<'_>,
    guild: u64,
    who: &str,
) -> Result<(Vec<u64>, Vec<u64>), Error> {
    let (users, roles) = parse_mentions(who)?;
    let pings_unmentionable = check_role_pings(ctx, guild, &roles).await?;
    check_bot_can_post(ctx, pings_unmentionable)?;
    Ok((users, roles))
}

/// The targets as parsed, not as typed: an echo stays short however `who` was written.
fn mentions_text(users: &[u64], roles: &[u64]) -> String {
    let mentioned: Vec<String> = users
        .iter()
        .map(|u| format!("<@{u}>"))
        .chain(roles.iter().map(|r| format!("<@&{r}>")))
        .collect();
    mentioned.join(" ")
}

/// Refuses a role the member could not ping themselves: @everyone (the role whose id is the
/// guild's) always; a role that is not mentionable unless they have Mention Everyone both
/// server-wide and in this channel (an overwrite may deny it here). Returns whether a role
/// that is not mentionable is pinged (the bot then needs Mention Everyone too).
async fn check_role_pings(ctx: Context<'_>, guild: u64, roles: &[u64]) -> Result<bool, Error> {
    if roles.contains(&guild) {
        return Err(UserError("A reminder can't ping @everyone.".into()).into());
    }
    if roles.is_empty() {
        return Ok(false);
    }
    let server_wide = permissions::invoker(ctx).await?.unwrap_or_default();
    let may_ping_any =
        server_wide.mention_everyone() && permissions::in_channel(ctx).mention_everyone();
    let mut unmentionable = false;
    for &role in roles {
        let facts = ctx
            .data()
            .roles
            .role(guild, role)
            .ok_or_else(|| UserError(format!("<@&{role}> is not a role in this server.")))?;
        if !facts.mentionable && !may_ping_any {
            return Err(UserError(format!(
                "You can't have a reminder ping <@&{role}>: the role isn't mentionable, and \
                 pinging it needs the Mention Everyone permission, which you don't have here."
            ))
            .into());
        }
        unmentionable |= !facts.mentionable;
    }
    Ok(unmentionable)
}

/// Refuses a channel reminder the bot could not post here, naming what it lacks: it needs to
/// see the channel and send in it (in threads: send in threads), and Mention Everyone to ping
/// roles that are not mentionable.
fn check_bot_can_post(ctx: Context<'_>, pings_unmentionable: bool) -> Result<(), Error> {
    use serenity::Permissions as P;
    let (has, thread) = permissions::bot_in_channel(ctx);
    let mut needs = P::VIEW_CHANNEL;
    needs |= if thread {
        P::SEND_MESSAGES_IN_THREADS
    } else {
        P::SEND_MESSAGES
    };
    if pings_unmentionable {
        needs |= P::MENTION_EVERYONE;
    }
    let missing = needs - has;
    if missing.is_empty() || has.administrator() {
        return Ok(());
    }
    Err(UserError(format!(
        "I can't post reminders in this channel: I'm missing {missing} here. Ask an admin to \
         grant it to me, or set the reminder in another channel."
    ))
    .into())
}

/// `<@1> <@!2> <@&3>` -> users [1, 2], roles [3]. Anything else is refused, so a typo is not
/// silently dropped.
fn parse_mentions(who: &str) -> Result<(Vec<u64>, Vec<u64>), Error> {
    let (mut users, mut roles) = (vec![], vec![]);
    let spaced = who.replace('>', "> ");
    for word in spaced.split_whitespace() {
        let inner = word
            .strip_prefix("<@")
            .and_then(|w| w.strip_suffix('>'))
            .ok_or_else(|| {
                UserError(format!(
                    "\"{word}\" is not a mention. Mention members and roles with @."
                ))
            })?;
        let (list, digits) = match inner.strip_prefix('&') {
            Some(role) => (&mut roles, role),
            None => (&mut users, inner.trim_start_matches('!')),
        };
        let id = digits
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| UserError(format!("\"{word}\" is not a mention.")))?;
        if !list.contains(&id) {
            list.push(id);
        }
    }
    if users.is_empty() && roles.is_empty() {
        return Err(UserError("Mention at least one member or role to remind.".into()).into());
    }
    Ok((users, roles))
}

/// A time as Discord shows it to each reader in their own zone.
fn when_text(at: DateTime<Utc>) -> String {
    format!("<t:{0}:F> (<t:{0}:R>)", at.timestamp())
}

/// For a repeating reminder, its first three times (in each reader's own time zone, as
/// Discord shows timestamps), so the member sees how the rule reads; nothing for a one-off.
fn next_times(reminder: &Reminder) -> String {
    if reminder.recurrence.is_none() {
        return String::new();
    }
    let times: Vec<String> = reminder
        .upcoming(3)
        .iter()
        .map(|at| format!("<t:{}:f>", at.timestamp()))
        .collect();
    format!(
        " Repeats `{}`: {}…{}.",
        reminder
            .recurrence
            .map(|r| r.to_string())
            .unwrap_or_default(),
        times.join(", "),
        end_text(reminder)
    )
}

/// How a repeat ends, after its rule: `, 10 times, the last <t:…>`, `, until <t:…>`, or
/// nothing for one that does not end.
fn end_text(reminder: &Reminder) -> String {
    match (reminder.recurrence_count, reminder.recurrence_end) {
        (Some(times), Some(last)) => {
            format!(", {times} times, the last <t:{}:f>", last.timestamp())
        }
        (None, Some(end)) => format!(", until <t:{}:f>", end.timestamp()),
        (_, None) => String::new(),
    }
}

async fn complete_reminder(ctx: Context<'_>, typed: &str) -> serenity::CreateAutocompleteResponse {
    let (user, typed) = (ctx.author().id.get(), typed.to_owned());
    suggestions(
        ctx,
        move |c| reminders::choices(c, user, &typed, 25),
        |c| {
            let label = reply::shorten(&c.label, reply::MAX_CHOICE);
            Some(serenity::AutocompleteChoice::new(label, c.id.to_string()))
        },
    )
    .await
}

async fn complete_zone(_ctx: Context<'_>, typed: &str) -> serenity::CreateAutocompleteResponse {
    let choices = optins::zone_suggestions(typed, 25)
        .into_iter()
        .map(|zone| serenity::AutocompleteChoice::new(zone, zone))
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

#[cfg(test)]
mod tests {
    use super::parse_mentions;

    #[test]
    fn mentions_of_users_and_roles() {
        let (users, roles) = parse_mentions("<@1> <@!2><@&3> <@1>").unwrap();
        assert_eq!((users, roles), (vec![1, 2], vec![3]));
        assert!(parse_mentions("@everyone").is_err());
        assert!(parse_mentions("  ").is_err());
        assert!(parse_mentions("<@0>").is_err());
    }
}
