//! Telling the member who set a reminder that it stopped, or that a time of it could not be
//! delivered for a reason they can fix. `delivery.rs` sets the reminder's `notice` flag; the
//! scheduler offers it by DM to a creator who opted in ([`dm_notice`], then [`told`] once the
//! DM went out); whatever is left is shown at the creator's next `/remind` ([`take`]). Either
//! way each notice is told once.
//!
//! Not here: sending (the bot), deciding when a notice is due (`delivery.rs`).

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{load, Reminder, ReminderError, Status};
use crate::{optins, sql::sql_id};

/// How much of the reminder's text a notice quotes.
const QUOTED_CHARS: usize = 100;

/// The notice for reminder `id`, with whom to DM it, if one is pending and its creator has
/// opted in to DMs. Nothing changes: call [`told`] once it went out.
pub fn dm_notice(conn: &Connection, id: u64) -> Result<Option<(u64, String)>, ReminderError> {
    let Some(reminder) = load(conn, sql_id(id)?)? else {
        return Ok(None);
    };
    let Some(creator) = reminder.created_by else {
        return Ok(None);
    };
    if !pending(conn, id)? || !optins::dm_opted_in(conn, creator)? {
        return Ok(None);
    }
    Ok(Some((creator, text(&reminder))))
}

/// Reminder `id`'s notice has been told.
pub fn told(conn: &Connection, id: u64) -> Result<(), ReminderError> {
    conn.execute(
        "UPDATE reminders SET notice = 0 WHERE id = ?1",
        [sql_id(id)?],
    )?;
    Ok(())
}

/// Every notice pending for `creator`, oldest reminder first, each then marked told.
pub fn take(conn: &Connection, creator: u64) -> Result<Vec<String>, ReminderError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let ids = tx
        .prepare("SELECT id FROM reminders WHERE created_by = ?1 AND notice = 1 ORDER BY id")?
        .query_map([sql_id(creator)?], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut notices = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(reminder) = load(&tx, id)? {
            notices.push(text(&reminder));
        }
        tx.execute("UPDATE reminders SET notice = 0 WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(notices)
}

fn pending(conn: &Connection, id: u64) -> Result<bool, ReminderError> {
    Ok(conn.query_row(
        "SELECT notice FROM reminders WHERE id = ?1",
        [sql_id(id)?],
        |r| r.get(0),
    )?)
}

/// What the creator reads: which reminder, what happened, why and what to do.
fn text(reminder: &Reminder) -> String {
    let quoted: String = reminder
        .message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(QUOTED_CHARS)
        .collect();
    let why = reminder
        .last_error
        .as_deref()
        .unwrap_or("it could not be delivered.");
    let what = match reminder.status {
        Status::Failed => "has stopped",
        _ => "could not be delivered this time; it stays set",
    };
    format!(
        "Your reminder #{} (\"{quoted}\") {what}. Why: {why}",
        reminder.id
    )
}
