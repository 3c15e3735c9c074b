//! Reminders: what members ask to be reminded of, when, for whom and how it repeats, in one
//! guild's database. Functions here take a `&Connection`, plain ids and `now`; the bot turns
//! Discord input into these values and calls [`Scheduler`] after every change.
//!
//! - `mod.rs` (this file): the reminder record, create / get / list / edit / cancel,
//!   autocomplete.
//! - `parse.rs`: "in 2h", "tomorrow 9:00", … in the member's zone, into a UTC instant.
//! - `recurrence.rs`: repeating rules, their stored text and the next occurrence.
//! - `delivery.rs`: the SQL bookkeeping around one send (claim before, finish after).
//! - `notice.rs`: telling a reminder's creator that it stopped or missed a time, once.
//! - `snooze.rs`: a member's answer to a delivered time: snooze it, or mark it done.
//! - `scheduler.rs`: the one process-wide task that sends reminders when they are due.
//!
//! Not here: anything Discord, and whether the caller is a moderator (a plain `bool`).

pub mod delivery;
pub mod notice;
pub mod parse;
pub mod recurrence;
pub mod scheduler;
pub mod snooze;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{types::Value, Connection, OptionalExtension, Transaction, TransactionBehavior};

pub use delivery::{Claim, Delivery, DeliveryError, DeliveryPolicy, DeliveryTarget};
pub use parse::{parse_end, parse_when, ParseError, RepeatEnd};
pub use recurrence::{Recurrence, RecurrenceError, Unit};
pub use scheduler::{
    Clock, Deliver, DeliveryFuture, Scheduler, SchedulerConfig, SystemClock, TokioClock,
};

use crate::{
    optins::OptInError,
    sql::{row_id, sql_id},
};

/// The most a member may write; the schema allows more for imported reminders.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Users plus roles one channel reminder may mention.
pub const MAX_ASSIGNEES: usize = 25;
/// Autocomplete labels are cut to Discord's limit for a choice name.
const MAX_LABEL_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error(transparent)]
    When(#[from] ParseError),
    #[error(transparent)]
    Repeat(#[from] RecurrenceError),
    #[error("Write what you want to be reminded of.")]
    EmptyMessage,
    #[error("A reminder can be at most {max} characters long.")]
    MessageTooLong { max: usize },
    #[error("A reminder can mention at most {max} users and roles.")]
    TooManyAssignees { max: usize },
    #[error("The repeat has to end after the first reminder.")]
    EndsBeforeStart,
    #[error("`until` ends a repeat: add a repeat, or leave `until` out.")]
    EndWithoutRepeat,
    #[error("You already have {cap} active reminders. Cancel one before adding another.")]
    CapReached { cap: usize },
    #[error("There is no reminder #{0} here.")]
    NotFound(u64),
    #[error("Reminder #{0} has already finished or been cancelled.")]
    NotActive(u64),
    #[error("Only the member who set reminder #{0}, or a moderator, can change or cancel it.")]
    NotYours(u64),
    #[error("Reminder #{0} is sent by DM and pings nobody; only a channel reminder has `who`.")]
    NoOneToPing(u64),
    #[error("Reminder #{id} posts in <#{channel}>: change whom it pings from there.")]
    PingsElsewhere { id: u64, channel: u64 },
    #[error("Reminder #{0} is being sent right now. Try again in a minute.")]
    BeingSent(u64),
    #[error("reminder {id} has an unreadable {column}: {value:?}")]
    Corrupt {
        id: u64,
        column: &'static str,
        value: String,
    },
    #[error(transparent)]
    OptIn(#[from] OptInError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

impl ReminderError {
    /// The text a member may read, for the variants they can fix; `None` for failures.
    pub fn user_message(&self) -> Option<String> {
        match self {
            Self::When(e) => e.user_message(),
            Self::Repeat(e) => e.user_message(),
            Self::OptIn(e) => e.user_message(),
            Self::Corrupt { .. } | Self::Sql(_) => None,
            _ => Some(self.to_string()),
        }
    }
}

/// Where a reminder goes. A DM always goes to the member who set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Dm,
    /// A post in `channel` that mentions (pings) exactly these users and roles.
    Channel {
        channel: u64,
        users: Vec<u64>,
        roles: Vec<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Sent,
    Cancelled,
    Failed,
}

/// What a member asks for; [`create`] validates it.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub creator: u64,
    pub target: Target,
    pub message: String,
    pub due_at: DateTime<Utc>,
    /// The zone recurrence follows (usually the member's, [`crate::optins::time_zone`]).
    pub time_zone: Tz,
    pub recurrence: Option<Recurrence>,
    /// When the repeat ends; refused without `recurrence`.
    pub recurrence_end: Option<RepeatEnd>,
}

/// What an edit changes; each `None` leaves that part as it is.
#[derive(Debug, Clone, Default)]
pub struct ReminderEdit {
    pub due_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    /// `Some(None)`: no longer repeats (and so no longer has an end).
    pub recurrence: Option<Option<Recurrence>>,
    pub recurrence_end: Option<RepeatEnd>,
    pub mentions: Option<Pings>,
}

/// Whom a channel reminder is to ping, as checked in `checked_in`: the channel where the
/// member changed them, which must be the reminder's own (the checks of who may be pinged, and
/// whether the bot may post there, hold for that channel only).
#[derive(Debug, Clone)]
pub struct Pings {
    pub checked_in: u64,
    pub users: Vec<u64>,
    pub roles: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub id: u64,
    /// `None` for an imported reminder whose creator was not recorded.
    pub created_by: Option<u64>,
    pub target: Target,
    pub message: String,
    /// The next time it is due.
    pub due_at: DateTime<Utc>,
    pub time_zone: Tz,
    pub recurrence: Option<Recurrence>,
    /// Its last occurrence may be at this time, not after.
    pub recurrence_end: Option<DateTime<Utc>>,
    /// Set when the end was given as a number of times: that number, counted from the due time
    /// it was set at. `recurrence_end` is then the last of those times.
    pub recurrence_count: Option<u32>,
    pub status: Status,
    /// Attempts at the current due time.
    pub attempts: u32,
    /// Why the last attempt failed, for operators and for "why didn't it arrive?".
    pub last_error: Option<String>,
    /// When the current due time is to be tried again, after a failed attempt (a refusal a
    /// member can fix, or a transient failure): the reminder is paused until then.
    pub retry_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Reminder {
    /// Its first occurrence after both its due time and `now`, within its end; `None` for a
    /// one-off or a series that is over.
    fn next_occurrence(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.following(self.due_at, now)
    }

    /// Its due times from the current one on, at most `n`, within its end: what a member is
    /// shown when they set it (one time for a one-off).
    pub fn upcoming(&self, n: usize) -> Vec<DateTime<Utc>> {
        series(
            self.recurrence,
            self.time_zone,
            self.due_at,
            self.recurrence_end,
            n,
        )
    }

    /// The occurrence after `prev` that is also after `after`, within its end.
    fn following(&self, prev: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        following(
            self.recurrence,
            self.time_zone,
            self.recurrence_end,
            prev,
            after,
        )
    }
}

/// The due times of a series first due at `first`, at most `n`, none after `end`.
fn series(
    rule: Option<Recurrence>,
    zone: Tz,
    first: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut times = Vec::with_capacity(n.min(16));
    let mut due = Some(first);
    while let Some(at) = due.filter(|_| times.len() < n) {
        times.push(at);
        due = following(rule, zone, end, at, at);
    }
    times
}

/// The occurrence of `rule` after `prev` that is also after `after`, not after `end`.
fn following(
    rule: Option<Recurrence>,
    zone: Tz,
    end: Option<DateTime<Utc>>,
    prev: DateTime<Utc>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    rule.and_then(|rule| rule.next_after(zone, prev, after))
        .filter(|next| end.is_none_or(|end| *next <= end))
}

/// One autocomplete choice: the reminder's id and a short label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: u64,
    pub label: String,
}

/// A reminder's text and repeat as checked for storing: what [`create`] inserts and [`edit`]
/// writes.
struct Checked {
    message: String,
    /// Anchored at the first due time.
    recurrence: Option<Recurrence>,
    end: Option<DateTime<Utc>>,
    count: Option<u32>,
}

/// Every check of a reminder but its time window and the creator's cap: the text, the
/// targets, the repeat and its end (a count becomes the time of its last occurrence).
fn check(new: &NewReminder) -> Result<Checked, ReminderError> {
    let message = new.message.trim();
    if message.is_empty() {
        return Err(ReminderError::EmptyMessage);
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ReminderError::MessageTooLong {
            max: MAX_MESSAGE_CHARS,
        });
    }
    let recurrence = new
        .recurrence
        .map(|r| r.anchored(new.time_zone, new.due_at));
    let (end, count) = match (recurrence, new.recurrence_end) {
        (_, None) => (None, None),
        (None, Some(_)) => return Err(ReminderError::EndWithoutRepeat),
        (Some(_), Some(RepeatEnd::At(end))) if end < new.due_at => {
            return Err(ReminderError::EndsBeforeStart)
        }
        (Some(_), Some(RepeatEnd::At(end))) => (Some(end), None),
        (Some(_), Some(RepeatEnd::After(times))) => {
            let n = usize::try_from(times).unwrap_or(usize::MAX);
            let last = series(recurrence, new.time_zone, new.due_at, None, n).pop();
            (last, Some(times))
        }
    };
    if target_row(&new.target)?.assignees.len() > MAX_ASSIGNEES {
        return Err(ReminderError::TooManyAssignees { max: MAX_ASSIGNEES });
    }
    Ok(Checked {
        message: message.to_owned(),
        recurrence,
        end,
        count,
    })
}

/// Stores a new active reminder, refusing it when `new.creator` already has `cap` active ones.
/// The caller then calls [`Scheduler::upsert`] with the returned id and due time.
pub fn create(
    conn: &Connection,
    new: &NewReminder,
    cap: usize,
    now: DateTime<Utc>,
) -> Result<Reminder, ReminderError> {
    let checked = check(new)?;
    parse::check_window(new.due_at, now)?;
    // IMMEDIATE: the count and the insert must see the same rows, or two quick creates from one
    // member could both pass the cap.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let active: i64 = tx.query_row(
        "SELECT count(*) FROM reminders WHERE created_by = ?1 AND status = 'active'",
        [sql_id(new.creator)?],
        |r| r.get(0),
    )?;
    if usize::try_from(active).is_ok_and(|active| active >= cap) {
        return Err(ReminderError::CapReached { cap });
    }
    let id = insert(
        &tx,
        &Stored {
            creator: Some(new.creator),
            target: &new.target,
            message: &checked.message,
            due_at: new.due_at,
            time_zone: new.time_zone,
            recurrence: checked.recurrence,
            recurrence_end: checked.end,
            recurrence_count: checked.count,
        },
        now,
    )?;
    let reminder = load(&tx, id)?.ok_or_else(|| rusqlite::Error::QueryReturnedNoRows)?;
    tx.commit()?;
    Ok(reminder)
}

/// A reminder as written to its row, already checked.
struct Stored<'a> {
    creator: Option<u64>,
    target: &'a Target,
    message: &'a str,
    due_at: DateTime<Utc>,
    time_zone: Tz,
    recurrence: Option<Recurrence>,
    recurrence_end: Option<DateTime<Utc>>,
    recurrence_count: Option<u32>,
}

/// A target as stored: its row's `target_kind` and `channel_id`, and its
/// `reminder_assignees` rows, each once.
struct TargetRow {
    kind: &'static str,
    channel: Option<i64>,
    assignees: BTreeSet<(&'static str, u64)>,
}

fn target_row(target: &Target) -> Result<TargetRow, ReminderError> {
    Ok(match target {
        Target::Dm => TargetRow {
            kind: "dm",
            channel: None,
            assignees: BTreeSet::new(),
        },
        Target::Channel {
            channel,
            users,
            roles,
        } => TargetRow {
            kind: "channel",
            channel: Some(sql_id(*channel)?),
            assignees: users
                .iter()
                .map(|&u| ("user", u))
                .chain(roles.iter().map(|&r| ("role", r)))
                .collect(),
        },
    })
}

/// Inserts an active reminder and its targets; returns its row id.
fn insert(
    tx: &Transaction<'_>,
    row: &Stored<'_>,
    now: DateTime<Utc>,
) -> Result<i64, ReminderError> {
    let TargetRow {
        kind,
        channel,
        assignees,
    } = target_row(row.target)?;
    tx.execute(
        "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at, time_zone,
                                recurrence, recurrence_end, recurrence_count, created_at,
                                updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        rusqlite::params![
            row.creator.map(sql_id).transpose()?,
            kind,
            channel,
            row.message,
            row.due_at.timestamp(),
            row.time_zone.name(),
            row.recurrence.map(|r| r.to_string()),
            row.recurrence_end.map(|e| e.timestamp()),
            row.recurrence_count,
            now.timestamp(),
        ],
    )?;
    let id = tx.last_insert_rowid();
    insert_assignees(tx, id, &assignees)?;
    Ok(id)
}

fn insert_assignees(
    tx: &Transaction<'_>,
    id: i64,
    assignees: &BTreeSet<(&str, u64)>,
) -> Result<(), ReminderError> {
    for (kind, assignee) in assignees {
        tx.execute(
            "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id)
             VALUES (?1, ?2, ?3)",
            rusqlite::params![id, kind, sql_id(*assignee)?],
        )?;
    }
    Ok(())
}

/// Reminder `id`, if it is active and `caller` may change it: its creator, or a moderator.
fn changeable(
    tx: &Transaction<'_>,
    id: u64,
    caller: u64,
    is_moderator: bool,
) -> Result<Reminder, ReminderError> {
    let reminder = load(tx, sql_id(id)?)?.ok_or(ReminderError::NotFound(id))?;
    if !is_moderator && reminder.created_by != Some(caller) {
        return Err(ReminderError::NotYours(id));
    }
    if reminder.status != Status::Active {
        return Err(ReminderError::NotActive(id));
    }
    Ok(reminder)
}

/// Changes an active reminder for its creator or a moderator, with the checks of [`create`]
/// (the time window only for a new due time; the cap not, as the count does not change);
/// returns it as it now stands. A new `when` is the next time; the repeat keeps its rule
/// unless a new one is given, which is anchored at that time. A repeat that ends after a
/// number of times and is moved (a new time or rule) keeps the number still to come. A claim
/// of the old due time is dropped with it. Run it through [`Scheduler::change`], which keeps
/// it from racing a send.
pub fn edit(
    conn: &Connection,
    id: u64,
    caller: u64,
    is_moderator: bool,
    change: &ReminderEdit,
    now: DateTime<Utc>,
) -> Result<Reminder, ReminderError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let reminder = changeable(&tx, id, caller, is_moderator)?;
    let recurrence = change.recurrence.unwrap_or(reminder.recurrence);
    let due_at = change.due_at.unwrap_or(reminder.due_at);
    let moved = due_at != reminder.due_at || recurrence != reminder.recurrence;
    // A series that keeps its times keeps its end as it is (and the count it was given);
    // a counted one moved to new times ends after as many times as it had still to come.
    let kept_end = match (reminder.recurrence_count, reminder.recurrence_end) {
        (Some(_), Some(_)) if moved => {
            let left = reminder.upcoming(usize::MAX).len();
            Some(RepeatEnd::After(u32::try_from(left).unwrap_or(u32::MAX)))
        }
        (_, end) => end.map(RepeatEnd::At),
    };
    let target = match (&change.mentions, &reminder.target) {
        (None, target) => target.clone(),
        (Some(pings), Target::Channel { channel, .. }) if pings.checked_in == *channel => {
            Target::Channel {
                channel: *channel,
                users: pings.users.clone(),
                roles: pings.roles.clone(),
            }
        }
        (Some(_), &Target::Channel { channel, .. }) => {
            return Err(ReminderError::PingsElsewhere { id, channel })
        }
        (Some(_), Target::Dm) => return Err(ReminderError::NoOneToPing(id)),
    };
    let edited = NewReminder {
        creator: caller,
        target,
        message: change.message.clone().unwrap_or(reminder.message),
        due_at,
        time_zone: reminder.time_zone,
        recurrence,
        recurrence_end: change.recurrence_end.or(recurrence.and(kept_end)),
    };
    let checked = check(&edited)?;
    if due_at != reminder.due_at {
        parse::check_window(due_at, now)?;
        tx.execute(
            "DELETE FROM reminder_deliveries
             WHERE reminder_id = ?1 AND due_at = ?2 AND status = 'claimed'",
            rusqlite::params![sql_id(id)?, reminder.due_at.timestamp()],
        )?;
    }
    tx.execute(
        "UPDATE reminders
         SET message = ?2, due_at = ?3, recurrence = ?4, recurrence_end = ?5,
             recurrence_count = ?6, updated_at = ?7,
             attempts = CASE WHEN due_at = ?3 THEN attempts ELSE 0 END
         WHERE id = ?1",
        rusqlite::params![
            sql_id(id)?,
            checked.message,
            due_at.timestamp(),
            checked.recurrence.map(|r| r.to_string()),
            checked.end.map(|e| e.timestamp()),
            match (change.recurrence_end, moved) {
                (None, false) => reminder.recurrence_count,
                _ => checked.count,
            },
            now.timestamp(),
        ],
    )?;
    if change.mentions.is_some() {
        tx.execute(
            "DELETE FROM reminder_assignees WHERE reminder_id = ?1",
            [sql_id(id)?],
        )?;
        insert_assignees(&tx, sql_id(id)?, &target_row(&edited.target)?.assignees)?;
    }
    let edited = load(&tx, sql_id(id)?)?.ok_or(ReminderError::NotFound(id))?;
    tx.commit()?;
    Ok(edited)
}

pub fn get(conn: &Connection, id: u64) -> Result<Option<Reminder>, ReminderError> {
    load(conn, sql_id(id)?)
}

/// Active reminders by due time: the viewer's own, or everyone's for a moderator.
pub fn list(
    conn: &Connection,
    viewer: u64,
    is_moderator: bool,
) -> Result<Vec<Reminder>, ReminderError> {
    list_some(conn, viewer, is_moderator, Show::Active)
}

/// Which reminders [`list_some`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Still to come.
    Active,
    /// Ended because they could not be delivered; each says why in `last_error`.
    Failed,
    /// Active and failed ones: what is set, and what stopped without being asked to.
    All,
}

/// The viewer's reminders (everyone's for a moderator) that `show` asks for: active ones by
/// due time, then failed ones, the latest to fail first.
pub fn list_some(
    conn: &Connection,
    viewer: u64,
    is_moderator: bool,
    show: Show,
) -> Result<Vec<Reminder>, ReminderError> {
    let (active, failed) = match show {
        Show::Active => (true, false),
        Show::Failed => (false, true),
        Show::All => (true, true),
    };
    let mut stmt = conn.prepare(
        "SELECT id FROM reminders
         WHERE ((?3 AND status = 'active') OR (?4 AND status = 'failed'))
           AND (?2 OR created_by = ?1)
         ORDER BY status != 'active', CASE status WHEN 'active' THEN due_at ELSE -updated_at END,
                  id",
    )?;
    let ids = stmt
        .query_map(
            rusqlite::params![sql_id(viewer)?, is_moderator, active, failed],
            |r| r.get::<_, i64>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    ids.into_iter()
        .filter_map(|id| load(conn, id).transpose())
        .collect()
}

/// Cancels an active reminder for its creator or a moderator; returns it as it now stands.
/// The caller then calls [`Scheduler::remove`].
pub fn cancel(
    conn: &Connection,
    id: u64,
    caller: u64,
    is_moderator: bool,
    now: DateTime<Utc>,
) -> Result<Reminder, ReminderError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    changeable(&tx, id, caller, is_moderator)?;
    tx.execute(
        "UPDATE reminders SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
        rusqlite::params![sql_id(id)?, now.timestamp()],
    )?;
    let cancelled = load(&tx, sql_id(id)?)?.ok_or(ReminderError::NotFound(id))?;
    tx.commit()?;
    Ok(cancelled)
}

/// Autocomplete for cancel: `member`'s active reminders whose number starts with `typed` or
/// whose text contains it (any case), soonest first, at most `limit`. Labels read
/// `#12 · 2026-12-24 18:00 · stretch` in the reminder's zone.
pub fn choices(
    conn: &Connection,
    member: u64,
    typed: &str,
    limit: usize,
) -> Result<Vec<Choice>, ReminderError> {
    let typed = typed.trim().trim_start_matches('#').to_lowercase();
    let mine = list(conn, member, false)?;
    Ok(mine
        .into_iter()
        .filter(|r| {
            r.id.to_string().starts_with(&typed) || r.message.to_lowercase().contains(&typed)
        })
        .take(limit)
        .map(|r| {
            let when = r
                .due_at
                .with_timezone(&r.time_zone)
                .format("%Y-%m-%d %H:%M");
            let full = format!("#{} · {when} · {}", r.id, r.message.replace('\n', " "));
            let label = if full.chars().count() > MAX_LABEL_CHARS {
                let mut cut: String = full.chars().take(MAX_LABEL_CHARS - 1).collect();
                cut.push('…');
                cut
            } else {
                full
            };
            Choice { id: r.id, label }
        })
        .collect())
}

/// After a pause (the bot was out of the guild): each active repeating reminder whose due time
/// passed meanwhile moves on to its first occurrence after `now` (or is `sent`, past its end),
/// so that no missed occurrence is sent late. One-off reminders are left due: they go out
/// once, marked late. Returns how many moved on.
pub fn skip_missed(conn: &Connection, now: DateTime<Utc>) -> Result<usize, ReminderError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let ids = tx
        .prepare(
            "SELECT id FROM reminders
             WHERE status = 'active' AND recurrence IS NOT NULL AND due_at < ?1",
        )?
        .query_map([now.timestamp()], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for &id in &ids {
        let Some(reminder) = load(&tx, id)? else {
            continue;
        };
        match reminder.next_occurrence(now) {
            Some(next) => tx.execute(
                "UPDATE reminders SET due_at = ?2, attempts = 0, updated_at = ?3 WHERE id = ?1",
                rusqlite::params![id, next.timestamp(), now.timestamp()],
            )?,
            None => tx.execute(
                "UPDATE reminders SET status = 'sent', updated_at = ?2 WHERE id = ?1",
                rusqlite::params![id, now.timestamp()],
            )?,
        };
    }
    tx.commit()?;
    Ok(ids.len())
}

/// Every active reminder's id and when it next needs looking at (its due time, or the later
/// time set for the next attempt after a failed one): what the scheduler indexes. A reminder
/// whose times cannot be read comes back as its error, so that it hides none of the others;
/// the outer `Err` is for a database that cannot be read at all.
pub fn active_due_times(
    conn: &Connection,
) -> Result<Vec<Result<NextLook, ReminderError>>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT r.id, r.due_at, d.retry_at
         FROM reminders r LEFT JOIN reminder_deliveries d
              ON d.reminder_id = r.id AND d.due_at = r.due_at AND d.status = 'claimed'
         WHERE r.status = 'active'",
    )?;
    // Raw values: a value of the wrong type is this row's problem, not the query's.
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
    rows.map(|row| {
        let (id, due, retry) = row?;
        Ok(next_look(id, due, retry))
    })
    .collect()
}

/// A reminder's id and when the scheduler is to look at it next.
pub type NextLook = (u64, DateTime<Utc>);

/// When to look at reminder `id` next, from its stored `due_at` and its claim's `retry_at`.
fn next_look(id: i64, due: Value, retry: Value) -> Result<NextLook, ReminderError> {
    let corrupt = |column, value: &Value| ReminderError::Corrupt {
        id: id.unsigned_abs(),
        column,
        value: format!("{value:?}"),
    };
    let id = u64::try_from(id).map_err(|_| corrupt("id", &Value::Integer(id)))?;
    let time = |column, value: Value| match value {
        Value::Integer(secs) => timestamp(id, column, secs),
        other => Err(corrupt(column, &other)),
    };
    let due = time("due_at", due)?;
    let next = match retry {
        Value::Null => due,
        retry => time("retry_at", retry)?.max(due),
    };
    Ok((id, next))
}

fn load(conn: &Connection, id: i64) -> Result<Option<Reminder>, ReminderError> {
    let row = conn
        .query_row(
            "SELECT id, created_by, target_kind, channel_id, message, due_at, time_zone,
                    recurrence, recurrence_end, status, attempts, last_error, created_at,
                    updated_at, recurrence_count,
                    (SELECT d.retry_at FROM reminder_deliveries d
                     WHERE d.reminder_id = reminders.id AND d.due_at = reminders.due_at
                       AND d.status = 'claimed')
             FROM reminders WHERE id = ?1",
            [id],
            |r| {
                Ok(Row {
                    id: row_id(r, 0)?,
                    created_by: r.get::<_, Option<i64>>(1)?,
                    target_kind: r.get(2)?,
                    channel: r.get::<_, Option<i64>>(3)?,
                    message: r.get(4)?,
                    due_at: r.get(5)?,
                    time_zone: r.get(6)?,
                    recurrence: r.get(7)?,
                    recurrence_end: r.get(8)?,
                    status: r.get(9)?,
                    attempts: r.get(10)?,
                    last_error: r.get(11)?,
                    created_at: r.get(12)?,
                    updated_at: r.get(13)?,
                    recurrence_count: r.get(14)?,
                    retry_at: r.get(15)?,
                })
            },
        )
        .optional()?;
    row.map(|row| row.into_reminder(conn)).transpose()
}

/// A `reminders` row as stored, before its text columns are read into types.
struct Row {
    id: u64,
    created_by: Option<i64>,
    target_kind: String,
    channel: Option<i64>,
    message: String,
    due_at: i64,
    time_zone: String,
    recurrence: Option<String>,
    recurrence_end: Option<i64>,
    status: String,
    attempts: u32,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    recurrence_count: Option<u32>,
    retry_at: Option<i64>,
}

impl Row {
    fn into_reminder(self, conn: &Connection) -> Result<Reminder, ReminderError> {
        let id = self.id;
        let corrupt = |column, value: &str| ReminderError::Corrupt {
            id,
            column,
            value: value.to_owned(),
        };
        let stored_id = |column, value: i64| {
            u64::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
        };
        let target = match (self.target_kind.as_str(), self.channel) {
            ("dm", _) => Target::Dm,
            ("channel", Some(channel)) => {
                let mut users = Vec::new();
                let mut roles = Vec::new();
                let mut stmt = conn.prepare_cached(
                    "SELECT assignee_kind, assignee_id FROM reminder_assignees
                     WHERE reminder_id = ?1 ORDER BY assignee_kind, assignee_id",
                )?;
                let rows = stmt.query_map([sql_id(id)?], |r| {
                    Ok((r.get::<_, String>(0)?, row_id(r, 1)?))
                })?;
                for row in rows {
                    match row? {
                        (kind, assignee) if kind == "user" => users.push(assignee),
                        (_, assignee) => roles.push(assignee),
                    }
                }
                Target::Channel {
                    channel: stored_id("channel_id", channel)?,
                    users,
                    roles,
                }
            }
            (kind, _) => return Err(corrupt("target_kind", kind)),
        };
        let status = match self.status.as_str() {
            "active" => Status::Active,
            "sent" => Status::Sent,
            "cancelled" => Status::Cancelled,
            "failed" => Status::Failed,
            other => return Err(corrupt("status", other)),
        };
        Ok(Reminder {
            id,
            created_by: self
                .created_by
                .map(|c| stored_id("created_by", c))
                .transpose()?,
            target,
            message: self.message,
            due_at: timestamp(id, "due_at", self.due_at)?,
            time_zone: self
                .time_zone
                .parse()
                .map_err(|_| corrupt("time_zone", &self.time_zone))?,
            recurrence: self
                .recurrence
                .map(|text| text.parse().map_err(|_| corrupt("recurrence", &text)))
                .transpose()?,
            recurrence_end: self
                .recurrence_end
                .map(|end| timestamp(id, "recurrence_end", end))
                .transpose()?,
            recurrence_count: self.recurrence_count,
            status,
            attempts: self.attempts,
            last_error: self.last_error,
            retry_at: self
                .retry_at
                .map(|at| timestamp(id, "retry_at", at))
                .transpose()?,
            created_at: timestamp(id, "created_at", self.created_at)?,
            updated_at: timestamp(id, "updated_at", self.updated_at)?,
        })
    }
}

fn timestamp(id: u64, column: &'static str, secs: i64) -> Result<DateTime<Utc>, ReminderError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| ReminderError::Corrupt {
        id,
        column,
        value: secs.to_string(),
    })
}

#[cfg(test)]
mod tests;
