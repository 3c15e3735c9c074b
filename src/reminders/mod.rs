//! Reminders: what members ask to be reminded of, when, for whom and how it repeats, in one
//! guild's database. Functions here take a `&Connection`, plain ids and `now`; the bot turns
//! Discord input into these values and calls [`Scheduler`] after every change.
//!
//! - `mod.rs` (this file): the reminder record, create / get / list / cancel, autocomplete.
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
pub use parse::{parse_when, ParseError};
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
    #[error("You already have {cap} active reminders. Cancel one before adding another.")]
    CapReached { cap: usize },
    #[error("There is no reminder #{0} here.")]
    NotFound(u64),
    #[error("Reminder #{0} has already finished or been cancelled.")]
    NotActive(u64),
    #[error("Only the member who set reminder #{0}, or a moderator, can cancel it.")]
    NotYours(u64),
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
    /// No occurrence after this; ignored without `recurrence`.
    pub recurrence_end: Option<DateTime<Utc>>,
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
    pub recurrence_end: Option<DateTime<Utc>>,
    pub status: Status,
    /// Attempts at the current due time.
    pub attempts: u32,
    /// Why the last attempt failed, for operators and for "why didn't it arrive?".
    pub last_error: Option<String>,
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
        let mut times = Vec::with_capacity(n);
        let mut due = Some(self.due_at);
        while let Some(at) = due.filter(|_| times.len() < n) {
            times.push(at);
            due = self.following(at, at);
        }
        times
    }

    /// The occurrence after `prev` that is also after `after`, within its end.
    fn following(&self, prev: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.recurrence
            .and_then(|rule| rule.next_after(self.time_zone, prev, after))
            .filter(|next| self.recurrence_end.is_none_or(|end| *next <= end))
    }
}

/// One autocomplete choice: the reminder's id and a short label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: u64,
    pub label: String,
}

/// Stores a new active reminder, refusing it when `new.creator` already has `cap` active ones.
/// The caller then calls [`Scheduler::upsert`] with the returned id and due time.
pub fn create(
    conn: &Connection,
    new: &NewReminder,
    cap: usize,
    now: DateTime<Utc>,
) -> Result<Reminder, ReminderError> {
    let message = new.message.trim();
    if message.is_empty() {
        return Err(ReminderError::EmptyMessage);
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ReminderError::MessageTooLong {
            max: MAX_MESSAGE_CHARS,
        });
    }
    parse::check_window(new.due_at, now)?;
    let end = new.recurrence.and(new.recurrence_end);
    if end.is_some_and(|end| end < new.due_at) {
        return Err(ReminderError::EndsBeforeStart);
    }
    if let Target::Channel { users, roles, .. } = &new.target {
        if assignees(users, roles).len() > MAX_ASSIGNEES {
            return Err(ReminderError::TooManyAssignees { max: MAX_ASSIGNEES });
        }
    }
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
            message,
            due_at: new.due_at,
            time_zone: new.time_zone,
            recurrence: new
                .recurrence
                .map(|r| r.anchored(new.time_zone, new.due_at)),
            recurrence_end: end,
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
}

/// A channel reminder's targets as `reminder_assignees` rows, each once.
fn assignees(users: &[u64], roles: &[u64]) -> BTreeSet<(&'static str, u64)> {
    users
        .iter()
        .map(|&u| ("user", u))
        .chain(roles.iter().map(|&r| ("role", r)))
        .collect()
}

/// Inserts an active reminder and its targets; returns its row id.
fn insert(
    tx: &Transaction<'_>,
    row: &Stored<'_>,
    now: DateTime<Utc>,
) -> Result<i64, ReminderError> {
    let (kind, channel, assignees) = match row.target {
        Target::Dm => ("dm", None, BTreeSet::new()),
        Target::Channel {
            channel,
            users,
            roles,
        } => ("channel", Some(sql_id(*channel)?), assignees(users, roles)),
    };
    tx.execute(
        "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at, time_zone,
                                recurrence, recurrence_end, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        rusqlite::params![
            row.creator.map(sql_id).transpose()?,
            kind,
            channel,
            row.message,
            row.due_at.timestamp(),
            row.time_zone.name(),
            row.recurrence.map(|r| r.to_string()),
            row.recurrence_end.map(|e| e.timestamp()),
            now.timestamp(),
        ],
    )?;
    let id = tx.last_insert_rowid();
    for (kind, assignee) in assignees {
        tx.execute(
            "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id)
             VALUES (?1, ?2, ?3)",
            rusqlite::params![id, kind, sql_id(assignee)?],
        )?;
    }
    Ok(id)
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
    let reminder = load(&tx, sql_id(id)?)?.ok_or(ReminderError::NotFound(id))?;
    if !is_moderator && reminder.created_by != Some(caller) {
        return Err(ReminderError::NotYours(id));
    }
    if reminder.status != Status::Active {
        return Err(ReminderError::NotActive(id));
    }
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
                    updated_at
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
            status,
            attempts: self.attempts,
            last_error: self.last_error,
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
