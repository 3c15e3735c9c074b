//! The SQL bookkeeping around sending one reminder, so that each due time is delivered at
//! least once and recorded at most once, across crashes and restarts.
//!
//! A send is bracketed by two transactions on the guild's database:
//! 1. [`claim`] checks the reminder is active and due, and claims its `(reminder, due_at)` row
//!    in `reminder_deliveries` (inserting it, or re-claiming a `claimed` row left by a crash,
//!    a shutdown or a failed attempt — so a crash between sending and [`finish`] sends again:
//!    at least once). A `delivered` row is never claimed again, nor a failed attempt's row
//!    before its `retry_at`. A DM whose member has not opted in fails here, permanently,
//!    without being sent.
//!    A claim may be made a little before the due time; [`release`] undoes one whose send was
//!    called off before it went out.
//! 2. [`finish`] records the outcome, and only then counts the attempt (`attempts`), so a
//!    claim never sent (called off, or left by a shutdown) is not counted; one cut short by a
//!    crash mid-send is not either, and is made again under the same number. Delivered: the
//!    row becomes `delivered`; a one-off reminder becomes `sent`, a recurring one moves to its
//!    next occurrence (or becomes `sent` past its end). Transient failure: the row stays
//!    `claimed` with the time of the next attempt in `retry_at`, after a backoff, until
//!    [`DeliveryPolicy::max_attempts`]. Refused for now (DMs closed, access or a permission
//!    missing: things members and admins fix): a one-off is tried again hours later, up to
//!    [`DeliveryPolicy::refused_attempts`]; a recurring one skips this occurrence at once.
//!    A due time given up on makes its row `failed`, and a one-off reminder too, while a
//!    recurring one moves on, until [`DeliveryPolicy::max_failed_occurrences`] occurrences
//!    in a row have failed, which ends it. Permanent failure (the channel or the member is
//!    gone): row and reminder `failed` at once. Every end by failure leaves its reason in
//!    `last_error`. The bot's token refused: nothing is recorded, the claim stays for the
//!    next run.
//!
//! Both return when the reminder next needs looking at, which is all the scheduler indexes.
//! Not here: timing and sending (`scheduler.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{load, timestamp, Reminder, ReminderError, Status, Target};
use crate::{optins, sql::sql_id};

/// Why a DM is refused at delivery time; stored as the reminder's `last_error`.
pub const NOT_OPTED_IN: &str = "the member has not opted in to DMs";
/// Why a DM without a recorded creator cannot go anywhere.
pub const NO_RECIPIENT: &str = "the reminder has no member to DM";

/// One send, as plain values for whatever delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub guild: u64,
    pub reminder: u64,
    pub target: DeliveryTarget,
    pub message: String,
    /// The due time being delivered (the original one when `late`).
    pub due_at: DateTime<Utc>,
    /// More than [`DeliveryPolicy::late_after`] past `due_at`, e.g. because the bot was down:
    /// the message should say when it was due.
    pub late: bool,
    /// 1 for the first attempt at this due time.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryTarget {
    Dm {
        user: u64,
    },
    /// Mention exactly `users` and `roles`, nobody else.
    Channel {
        channel: u64,
        users: Vec<u64>,
        roles: Vec<u64>,
    },
}

/// How a send failed, as the deliverer judges it. The texts of `Refused` and `Permanent` are
/// shown to members (`/remind list`, the notice of an end): plain words and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying soon: rate limits, timeouts, Discord outages.
    #[error("transient: {0}")]
    Transient(String),
    /// Refused until a member or an admin changes something (DMs closed, the bot's access or
    /// a permission missing): not worth retrying within minutes, but within hours.
    #[error("{0}")]
    Refused(String),
    /// Will never work: the channel or the member is gone, or the message itself was refused.
    #[error("{0}")]
    Permanent(String),
    /// Discord refused the bot's own token: no reminder's fault, so nothing is recorded.
    #[error("Discord refused the bot's token")]
    Unauthorized,
}

impl DeliveryError {
    /// The reason alone, as stored in `last_error`.
    fn reason(&self) -> String {
        match self {
            Self::Transient(reason) | Self::Refused(reason) | Self::Permanent(reason) => {
                reason.clone()
            }
            Self::Unauthorized => self.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Attempts per due time, the first included.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub late_after: Duration,
    /// Attempts at one due time of a one-off reminder, the first included, while Discord
    /// refuses it for a reason that may pass ([`DeliveryError::Refused`]).
    pub refused_attempts: u32,
    /// Wait after the first such refusal; doubled after each further one. Discord counts
    /// refusals against the bot (10,000 in 10 minutes ban its address), so never minutes.
    pub refused_backoff: Duration,
    /// Occurrences in a row of a recurring reminder that could not be delivered, after which
    /// the series ends (at least 1).
    pub max_failed_occurrences: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(15 * 60),
            late_after: Duration::from_secs(60),
            refused_attempts: 4,
            refused_backoff: Duration::from_secs(3600),
            max_failed_occurrences: 3,
        }
    }
}

impl DeliveryPolicy {
    /// How long to wait before the next attempt at a due time after `failed_attempts` that
    /// failed with `error`; `None`: give up on this due time now.
    fn retry_wait(
        &self,
        error: &DeliveryError,
        failed_attempts: u32,
        recurring: bool,
    ) -> Option<Duration> {
        let (first, max) = match error {
            DeliveryError::Transient(_) if failed_attempts < self.max_attempts => {
                (self.first_backoff, self.max_backoff)
            }
            DeliveryError::Refused(_) if !recurring && failed_attempts < self.refused_attempts => {
                (self.refused_backoff, Duration::MAX)
            }
            _ => return None,
        };
        let doublings = failed_attempts.saturating_sub(1).min(16);
        Some(first.saturating_mul(1 << doublings).min(max))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: send this, then call [`finish`].
    Send(Delivery),
    /// Nothing to send now; look again at `next` (`None`: never).
    Settled { next: Option<DateTime<Utc>> },
}

/// Claims reminder `id` of `guild` at `now` for a send at `send_at` (`now`, or a little later
/// when the scheduler claims ahead), if it is active and due by then.
pub fn claim(
    conn: &Connection,
    guild: u64,
    id: u64,
    now: DateTime<Utc>,
    send_at: DateTime<Utc>,
    policy: &DeliveryPolicy,
) -> Result<Claim, ReminderError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let Some(reminder) = load(&tx, sql_id(id)?)? else {
        return Ok(Claim::Settled { next: None });
    };
    if reminder.status != Status::Active {
        return Ok(Claim::Settled { next: None });
    }
    if reminder.due_at > send_at {
        return Ok(Claim::Settled {
            next: Some(reminder.due_at),
        });
    }
    let due = reminder.due_at.timestamp();
    let late = (send_at - reminder.due_at)
        .to_std()
        .is_ok_and(|behind| behind > policy.late_after);
    let existing: Option<(String, u32, Option<i64>)> = tx
        .query_row(
            "SELECT status, attempts, retry_at FROM reminder_deliveries
             WHERE reminder_id = ?1 AND due_at = ?2",
            rusqlite::params![sql_id(id)?, due],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let attempt = match existing {
        // Recorded before, yet the reminder still waits at this due time: only an edit behind
        // our back does that. Never send twice; move the reminder on as after a delivery.
        Some((status, ..)) if status != "claimed" => {
            let next = conclude(&tx, &reminder, Outcome::Delivered, now, policy)?;
            tx.commit()?;
            return Ok(Claim::Settled { next });
        }
        Some((_, _, Some(retry))) if retry > send_at.timestamp() => {
            return Ok(Claim::Settled {
                next: Some(timestamp(id, "retry_at", retry)?),
            });
        }
        Some((_, attempts, _)) => attempts + 1,
        None => 1,
    };
    tx.execute(
        "INSERT INTO reminder_deliveries (reminder_id, due_at, status, late, claimed_at)
         VALUES (?1, ?2, 'claimed', ?3, ?4)
         ON CONFLICT (reminder_id, due_at) DO UPDATE
         SET late = excluded.late, claimed_at = excluded.claimed_at",
        rusqlite::params![sql_id(id)?, due, late, now.timestamp()],
    )?;
    let target = match &reminder.target {
        Target::Channel {
            channel,
            users,
            roles,
        } => DeliveryTarget::Channel {
            channel: *channel,
            users: users.clone(),
            roles: roles.clone(),
        },
        Target::Dm => match reminder.created_by {
            Some(user) if optins::dm_opted_in(&tx, user)? => DeliveryTarget::Dm { user },
            creator => {
                let reason = if creator.is_some() {
                    NOT_OPTED_IN
                } else {
                    NO_RECIPIENT
                };
                let refused = Err(DeliveryError::Permanent(reason.into()));
                let next = record(&tx, &reminder, refused, now, policy)?;
                tx.commit()?;
                return Ok(Claim::Settled { next });
            }
        },
    };
    tx.commit()?;
    Ok(Claim::Send(Delivery {
        guild,
        reminder: id,
        target,
        message: reminder.message,
        due_at: reminder.due_at,
        late,
        attempt,
    }))
}

/// Calls off the claim at `(id, due_at)` before anything was sent (the reminder changed while
/// its send waited): a claim with no attempt recorded leaves no delivery row; one after failed
/// attempts stays as those left it, since claiming counts nothing.
pub fn release(conn: &Connection, id: u64, due_at: DateTime<Utc>) -> Result<(), ReminderError> {
    conn.execute(
        "DELETE FROM reminder_deliveries
         WHERE reminder_id = ?1 AND due_at = ?2 AND status = 'claimed' AND attempts = 0",
        rusqlite::params![sql_id(id)?, due_at.timestamp()],
    )?;
    Ok(())
}

/// Records how the send of `(id, due_at)` went; returns when to look at the reminder again
/// (the retry time after a transient failure). A refused token records nothing: the claim
/// stays, to be taken again by the next run.
pub fn finish(
    conn: &Connection,
    id: u64,
    due_at: DateTime<Utc>,
    outcome: Result<(), DeliveryError>,
    now: DateTime<Utc>,
    policy: &DeliveryPolicy,
) -> Result<Option<DateTime<Utc>>, ReminderError> {
    if outcome == Err(DeliveryError::Unauthorized) {
        return Ok(Some(due_at));
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let Some(reminder) = load(&tx, sql_id(id)?)? else {
        return Ok(None);
    };
    let next = if reminder.due_at == due_at {
        record(&tx, &reminder, outcome, now, policy)?
    } else {
        // Edited while it was being sent: the delivery row is still written, the reminder's new
        // schedule is left alone.
        tx.execute(
            "UPDATE reminder_deliveries
             SET status = ?3, finished_at = ?4, error = ?5, attempts = attempts + 1,
                 retry_at = NULL
             WHERE reminder_id = ?1 AND due_at = ?2 AND status = 'claimed'",
            rusqlite::params![
                sql_id(id)?,
                due_at.timestamp(),
                if outcome.is_ok() {
                    "delivered"
                } else {
                    "failed"
                },
                now.timestamp(),
                outcome.err().map(|e| e.to_string()),
            ],
        )?;
        (reminder.status == Status::Active).then_some(reminder.due_at)
    };
    tx.commit()?;
    Ok(next)
}

/// The outcome for the reminder itself.
enum Outcome {
    Delivered,
    /// This due time will not be delivered; `last_error` says why.
    GaveUp {
        reason: String,
        permanent: bool,
    },
}

/// Writes `outcome` of an attempt at `reminder.due_at` to its delivery row and the reminder.
fn record(
    tx: &Transaction<'_>,
    reminder: &Reminder,
    outcome: Result<(), DeliveryError>,
    now: DateTime<Utc>,
    policy: &DeliveryPolicy,
) -> Result<Option<DateTime<Utc>>, ReminderError> {
    let key = rusqlite::params![sql_id(reminder.id)?, reminder.due_at.timestamp()];
    let attempts: Option<u32> = tx
        .query_row(
            "SELECT attempts FROM reminder_deliveries
             WHERE reminder_id = ?1 AND due_at = ?2 AND status = 'claimed'",
            key,
            |r| r.get(0),
        )
        .optional()?;
    let Some(attempts) = attempts.map(|recorded| recorded + 1) else {
        // Already recorded: finishing twice must not move the reminder on twice.
        return Ok((reminder.status == Status::Active).then_some(reminder.due_at));
    };
    if matches!(outcome, Err(DeliveryError::Refused(_))) && reminder.last_error.is_none() {
        // The first refusal in a row: the creator can fix it before the next time.
        tx.execute(
            "UPDATE reminders SET notice = 1 WHERE id = ?1",
            [sql_id(reminder.id)?],
        )?;
    }
    let retry = match &outcome {
        Err(error) if reminder.status == Status::Active => policy
            .retry_wait(error, attempts, reminder.recurrence.is_some())
            .map(|wait| {
                let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                (error.reason(), now.checked_add_signed(wait).unwrap_or(now))
            }),
        _ => None,
    };
    if let Some((reason, retry)) = retry {
        tx.execute(
            "UPDATE reminder_deliveries SET attempts = ?3, error = ?4, retry_at = ?5
             WHERE reminder_id = ?1 AND due_at = ?2",
            rusqlite::params![
                sql_id(reminder.id)?,
                reminder.due_at.timestamp(),
                attempts,
                reason,
                retry.timestamp()
            ],
        )?;
        tx.execute(
            "UPDATE reminders SET attempts = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            rusqlite::params![sql_id(reminder.id)?, attempts, reason, now.timestamp()],
        )?;
        return Ok(Some(retry));
    }
    let (row_status, error, outcome) = match outcome {
        Ok(()) => ("delivered", None, Outcome::Delivered),
        // Refused here means given up on (see `retry_wait`), as a transient failure can be.
        Err(DeliveryError::Transient(reason) | DeliveryError::Refused(reason)) => {
            let reason = if attempts > 1 {
                format!("{reason} (tried {attempts} times)")
            } else {
                reason
            };
            let permanent = false;
            (
                "failed",
                Some(reason.clone()),
                Outcome::GaveUp { reason, permanent },
            )
        }
        Err(DeliveryError::Permanent(reason)) => (
            "failed",
            Some(reason.clone()),
            Outcome::GaveUp {
                reason,
                permanent: true,
            },
        ),
        Err(DeliveryError::Unauthorized) => return Ok(Some(reminder.due_at)),
    };
    tx.execute(
        "UPDATE reminders SET attempts = ?2 WHERE id = ?1",
        rusqlite::params![sql_id(reminder.id)?, attempts],
    )?;
    tx.execute(
        "UPDATE reminder_deliveries
         SET status = ?3, finished_at = ?4, error = ?5, attempts = ?6, retry_at = NULL
         WHERE reminder_id = ?1 AND due_at = ?2",
        rusqlite::params![
            sql_id(reminder.id)?,
            reminder.due_at.timestamp(),
            row_status,
            now.timestamp(),
            error,
            attempts
        ],
    )?;
    conclude(tx, reminder, outcome, now, policy)
}

/// Moves `reminder` past its current due time: to the next occurrence, or to its final status.
fn conclude(
    tx: &Transaction<'_>,
    reminder: &Reminder,
    outcome: Outcome,
    now: DateTime<Utc>,
    policy: &DeliveryPolicy,
) -> Result<Option<DateTime<Utc>>, ReminderError> {
    if reminder.status != Status::Active {
        // Cancelled while it was being sent: the delivery is recorded, the cancel stands.
        return Ok(None);
    }
    let (mut reason, permanent) = match outcome {
        Outcome::Delivered => (None, false),
        Outcome::GaveUp { reason, permanent } => (Some(reason), permanent),
    };
    let mut next = if permanent {
        None
    } else {
        reminder.next_occurrence(now)
    };
    if let (Some(why), Some(_)) = (&reason, next) {
        let failed = failed_in_a_row(tx, reminder.id, policy.max_failed_occurrences)?;
        if failed >= policy.max_failed_occurrences.max(1) {
            reason = Some(format!(
                "{why}. The last {failed} times in a row could not be delivered, so the \
                 repeat has stopped"
            ));
            next = None;
        }
    }
    let id = sql_id(reminder.id)?;
    match next {
        Some(next) => tx.execute(
            "UPDATE reminders SET due_at = ?2, attempts = 0, last_error = ?3, updated_at = ?4
             WHERE id = ?1",
            rusqlite::params![id, next.timestamp(), reason, now.timestamp()],
        )?,
        // An end by failure is always told to the creator.
        None => tx.execute(
            "UPDATE reminders SET status = ?2, last_error = ?3, updated_at = ?4,
                                  notice = notice OR ?5
             WHERE id = ?1",
            rusqlite::params![
                id,
                if reason.is_some() { "failed" } else { "sent" },
                reason,
                now.timestamp(),
                reason.is_some()
            ],
        )?,
    };
    Ok(next)
}

/// How many of the latest (at most `limit`) recorded occurrences of reminder `id` failed, in
/// a row from the latest back.
fn failed_in_a_row(tx: &Transaction<'_>, id: u64, limit: u32) -> Result<u32, ReminderError> {
    let mut stmt = tx.prepare(
        "SELECT status FROM reminder_deliveries
         WHERE reminder_id = ?1 AND status != 'claimed'
         ORDER BY due_at DESC LIMIT ?2",
    )?;
    let statuses = stmt.query_map(rusqlite::params![sql_id(id)?, limit.max(1)], |r| {
        r.get::<_, String>(0)
    })?;
    let mut failed = 0;
    for status in statuses {
        if status? != "failed" {
            break;
        }
        failed += 1;
    }
    Ok(failed)
}
