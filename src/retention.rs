//! How long finished records stay: reminders that ended (sent, cancelled or failed) and the
//! delivery records of past due times go once they are older than the retention period, so
//! no table of a guild grows without bound while the guild is used.
//!
//! Works over one guild's `Connection`; the bot's daily sweep (`bot/retention.rs`) runs it
//! over every guild. Not here: quotes, which members keep until they delete them (bounded by
//! the per-guild size cap), and the audit table, which holds a row per admin action.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::Serialize;

/// Rows [`prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub reminders: u64,
    pub deliveries: u64,
}

/// Removes reminders that ended before `before` (with their targets and deliveries), and
/// deliveries of other reminders that finished before it. An active reminder's due times
/// still ahead are untouched, and so is a delivery still claimed.
pub fn prune(conn: &Connection, before: DateTime<Utc>) -> rusqlite::Result<Pruned> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let cutoff = before.timestamp();
    let reminders = tx.execute(
        "DELETE FROM reminders WHERE status IN ('sent', 'cancelled', 'failed') AND updated_at < ?1",
        params![cutoff],
    )?;
    let deliveries = tx.execute(
        "DELETE FROM reminder_deliveries WHERE status <> 'claimed' AND finished_at < ?1",
        params![cutoff],
    )?;
    tx.commit()?;
    Ok(Pruned {
        reminders: reminders as u64,
        deliveries: deliveries as u64,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::test_support::guild_db;

    fn reminder(conn: &Connection, status: &str, updated_at: i64) -> i64 {
        conn.execute(
            "INSERT INTO reminders (created_by, target_kind, message, due_at, status, created_at, updated_at)
             VALUES (1, 'dm', 'm', 100, ?1, 0, ?2)",
            params![status, updated_at],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    fn delivery(
        conn: &Connection,
        reminder: i64,
        due_at: i64,
        status: &str,
        finished: Option<i64>,
    ) {
        conn.execute(
            "INSERT INTO reminder_deliveries (reminder_id, due_at, status, claimed_at, finished_at)
             VALUES (?1, ?2, ?3, 0, ?4)",
            params![reminder, due_at, status, finished],
        )
        .unwrap();
    }

    fn ids(conn: &Connection, sql: &str) -> Vec<i64> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn only_what_ended_before_the_cutoff_goes() {
        let (_dir, conn) = guild_db();
        let old_sent = reminder(&conn, "sent", 10);
        reminder(&conn, "cancelled", 10);
        let new_failed = reminder(&conn, "failed", 1000);
        let active = reminder(&conn, "active", 10);
        delivery(&conn, old_sent, 5, "delivered", Some(10));
        delivery(&conn, active, 5, "delivered", Some(10));
        delivery(&conn, active, 50, "failed", Some(1000));
        delivery(&conn, active, 60, "claimed", None);

        let pruned = prune(&conn, Utc.timestamp_opt(500, 0).unwrap()).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                reminders: 2,
                deliveries: 1
            }
        );
        assert_eq!(
            ids(&conn, "SELECT id FROM reminders ORDER BY id"),
            [new_failed, active]
        );
        assert_eq!(
            ids(
                &conn,
                "SELECT due_at FROM reminder_deliveries ORDER BY due_at"
            ),
            [50, 60],
            "the old sent reminder's delivery went with it, the claim stays"
        );
    }
}
