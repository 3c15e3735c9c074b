//! A member's answer to a delivered reminder, given through the buttons on its message: snooze
//! it (10 minutes, an hour, or tomorrow) or mark it done.
//!
//! Who may answer: the member who set the reminder and its targets (the users a channel post
//! pings, and members holding a role it pings; a DM's only target is its creator).
//!
//! What an answer to the delivered time `occurrence` of a reminder does:
//! - Snooze a one-off: the reminder itself is due again at the new time.
//! - Snooze a time of a repeat: a new one-off (same creator, targets, text and zone) is due at
//!   the new time; the series is left as it is.
//! - Done: nothing is sent again. A one-off stays sent; a repeat goes on at its next time,
//!   which it already moved to when this time was delivered: "skip to the next one" is the
//!   acknowledgement itself, and it takes the snooze buttons away from this time.
//!
//! "Tomorrow" is the wall time of the press, the next calendar day, in the reminder's zone
//! (its creator's when it was set), with the DST rules of `parse.rs`: a time in a
//! spring-forward gap moves on by the gap's length, a repeated hour takes its first instance.
//! So 09:00 stays 09:00 across a change, 23 or 25 hours later.
//!
//! Each delivered time is answered at most once: its `reminder_deliveries` row's `answer` is
//! set from NULL (a compare-and-set) in the same transaction as the snooze it stands for, so a
//! second press, a double click or a press on an old message changes nothing. A time no longer
//! on record (the reminder swept after it ended, erased with its creator, its guild deleted)
//! cannot be answered, and nothing that was removed comes back. A one-off whose time was
//! changed since is not snoozed, nor is a cancelled or failed reminder.
//!
//! Not here: the buttons and their ids (`crate::bot`), telling the scheduler (the caller).

use chrono::{DateTime, Days, Duration, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{insert, load, parse::resolve_local, Reminder, ReminderError, Status, Stored, Target};
use crate::sql::sql_id;

/// How long a snooze puts a reminder off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snooze {
    TenMinutes,
    OneHour,
    /// The same wall time tomorrow, in the reminder's zone.
    Tomorrow,
}

impl Snooze {
    /// When a reminder snoozed at `now` in `zone` is due again, to the second (as stored).
    pub fn until(self, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        match self {
            Self::TenMinutes => now + Duration::minutes(10),
            Self::OneHour => now + Duration::hours(1),
            Self::Tomorrow => {
                let local = now.with_timezone(&zone).naive_local();
                resolve_local(zone, local.checked_add_days(Days::new(1)).unwrap_or(local))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Snooze(Snooze),
    Done,
}

/// Who pressed: their user id, and their roles in the reminder's guild (none in a DM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presser {
    pub user: u64,
    pub roles: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Reminder `id` (the one-off itself, or the new copy of a repeat's time) is due at
    /// `due_at`; the caller tells the scheduler.
    Snoozed { id: u64, due_at: DateTime<Utc> },
    /// Acknowledged; `next` is when the repeat comes next (`None`: a one-off, or a series over).
    Done { next: Option<DateTime<Utc>> },
}

/// Why an answer changed nothing; every case but `Reminder` is for the member to read.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("This reminder no longer exists.")]
    Gone,
    #[error("Only the member who set this reminder, or those it reminds, can snooze it or mark it done.")]
    NotYours,
    #[error("This reminder was already snoozed.")]
    AlreadySnoozed,
    #[error("This reminder was already marked done.")]
    AlreadyDone,
    #[error("This reminder is still being delivered. Try again in a moment.")]
    StillSending,
    #[error("This time of the reminder is no longer on record, so it can't be snoozed.")]
    NotOnRecord,
    #[error("This reminder was changed since this message was sent, so it was not snoozed.")]
    Changed,
    #[error("This reminder was cancelled or has stopped, so it was not snoozed.")]
    Stopped,
    #[error(transparent)]
    Reminder(#[from] ReminderError),
}

impl AnswerError {
    /// Whether no later press of the same button can succeed: not for a presser who may not
    /// answer (someone else may), a time still being sent, or a failure.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Self::NotYours | Self::StillSending | Self::Reminder(_)
        )
    }

    /// The text a member may read; `None` for failures.
    pub fn user_message(&self) -> Option<String> {
        match self {
            Self::Reminder(e) => e.user_message(),
            _ => Some(self.to_string()),
        }
    }
}

impl From<rusqlite::Error> for AnswerError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Reminder(error.into())
    }
}

/// Answers the delivered time `occurrence` of reminder `id` for `presser` at `now`.
pub fn answer(
    conn: &Connection,
    id: u64,
    occurrence: DateTime<Utc>,
    action: Action,
    presser: &Presser,
    now: DateTime<Utc>,
) -> Result<Answered, AnswerError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let reminder = load(&tx, sql_id(id)?)?.ok_or(AnswerError::Gone)?;
    if !may_answer(&reminder, presser) {
        return Err(AnswerError::NotYours);
    }
    let marked = tx.execute(
        "UPDATE reminder_deliveries SET answer = ?3
         WHERE reminder_id = ?1 AND due_at = ?2 AND status = 'delivered' AND answer IS NULL",
        rusqlite::params![
            sql_id(id)?,
            occurrence.timestamp(),
            match action {
                Action::Snooze(_) => "snoozed",
                Action::Done => "done",
            }
        ],
    )?;
    if marked == 0 {
        return Err(why_unanswerable(&tx, id, occurrence)?);
    }
    let answered = match action {
        Action::Done => Answered::Done {
            next: (reminder.recurrence.is_some() && reminder.status == Status::Active)
                .then_some(reminder.due_at),
        },
        Action::Snooze(snooze) => {
            let due_at = snooze.until(reminder.time_zone, now);
            let id = snooze_time(&tx, &reminder, occurrence, due_at, now)?;
            Answered::Snoozed { id, due_at }
        }
    };
    tx.commit()?;
    Ok(answered)
}

/// The creator, a user it pings, or a member holding a role it pings.
fn may_answer(reminder: &Reminder, presser: &Presser) -> bool {
    if reminder.created_by == Some(presser.user) {
        return true;
    }
    match &reminder.target {
        Target::Dm => false,
        Target::Channel { users, roles, .. } => {
            users.contains(&presser.user) || roles.iter().any(|r| presser.roles.contains(r))
        }
    }
}

/// Why the delivered time `(id, occurrence)` could not be marked answered.
fn why_unanswerable(
    tx: &Transaction<'_>,
    id: u64,
    occurrence: DateTime<Utc>,
) -> Result<AnswerError, AnswerError> {
    let row: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT status, answer FROM reminder_deliveries WHERE reminder_id = ?1 AND due_at = ?2",
            rusqlite::params![sql_id(id)?, occurrence.timestamp()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((_, Some(answer))) if answer == "snoozed" => AnswerError::AlreadySnoozed,
        Some((_, Some(_))) => AnswerError::AlreadyDone,
        Some((status, None)) if status == "claimed" => AnswerError::StillSending,
        _ => AnswerError::NotOnRecord,
    })
}

/// Makes `reminder`'s delivered time `occurrence` due again at `due_at`: the one-off itself,
/// or a one-off copy of a repeat's time. Returns the id of the reminder now due.
fn snooze_time(
    tx: &Transaction<'_>,
    reminder: &Reminder,
    occurrence: DateTime<Utc>,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, AnswerError> {
    if matches!(reminder.status, Status::Cancelled | Status::Failed) {
        return Err(AnswerError::Stopped);
    }
    if reminder.recurrence.is_none() {
        if reminder.status != Status::Sent || reminder.due_at != occurrence {
            return Err(AnswerError::Changed);
        }
        tx.execute(
            "UPDATE reminders SET status = 'active', due_at = ?2, attempts = 0, last_error = NULL,
                                  updated_at = ?3
             WHERE id = ?1",
            rusqlite::params![sql_id(reminder.id)?, due_at.timestamp(), now.timestamp()],
        )?;
        return Ok(reminder.id);
    }
    let copy = Stored {
        creator: reminder.created_by,
        target: &reminder.target,
        message: &reminder.message,
        due_at,
        time_zone: reminder.time_zone,
        recurrence: None,
        recurrence_end: None,
        recurrence_count: None,
    };
    // An AUTOINCREMENT rowid is positive.
    Ok(insert(tx, &copy, now)?.unsigned_abs())
}

#[cfg(test)]
mod tests;
