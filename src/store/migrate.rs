//! Schema migrations: the numbered files of `schema/`, embedded in the binary, applied to a
//! guild's database in one `BEGIN IMMEDIATE` transaction with the version kept in
//! `PRAGMA user_version`. A failed migration rolls back to the previous version; a file newer
//! than this binary is refused without being written to.
//!
//! Not here: where files live and when they are opened (`store/open.rs`, `store/manager.rs`).

use rusqlite::Connection;

use super::StoreError;

/// One numbered schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub sql: &'static str,
}

/// An ordered set of migrations, versions 1..=N without gaps. The binary uses
/// [`Migrations::embedded`]; tests may build their own set to exercise upgrades.
#[derive(Debug, Clone)]
pub struct Migrations(Vec<Migration>);

const EMBEDDED: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../schema/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../schema/0002_delivery_retry_at.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../schema/0003_reminder_notice.sql"),
    },
];

impl Migrations {
    pub fn embedded() -> Self {
        Self(EMBEDDED.to_vec())
    }

    /// Panics when versions are not 1, 2, …, N in order: a programming error, not input.
    pub fn new(steps: Vec<Migration>) -> Self {
        for (index, step) in steps.iter().enumerate() {
            assert_eq!(
                step.version as usize,
                index + 1,
                "migrations must be numbered 1..=N"
            );
        }
        Self(steps)
    }

    pub fn latest(&self) -> u32 {
        self.0.last().map_or(0, |m| m.version)
    }

    /// Brings `conn` to the latest version. Returns the version found before, so callers can
    /// tell an upgrade from a no-op.
    pub fn apply(&self, conn: &mut Connection) -> Result<u32, StoreError> {
        let found = user_version(conn)?;
        self.refuse_newer(found)?;
        if found == self.latest() {
            return Ok(found);
        }
        // IMMEDIATE takes the write lock now, so another process migrating the same file at the
        // same moment waits (busy_timeout) and then sees the new version below.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before = user_version(&tx)?;
        self.refuse_newer(before)?;
        for step in self.0.iter().filter(|m| m.version > before) {
            tx.execute_batch(step.sql)
                .map_err(|source| StoreError::Migration {
                    version: step.version,
                    source,
                })?;
        }
        tx.pragma_update(None, "user_version", self.latest())?;
        tx.commit()?;
        Ok(before)
    }

    fn refuse_newer(&self, found: u32) -> Result<(), StoreError> {
        if found > self.latest() {
            return Err(StoreError::TooNew {
                found,
                supported: self.latest(),
            });
        }
        Ok(())
    }
}

pub fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
