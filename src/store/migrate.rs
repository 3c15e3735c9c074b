//! Schema migrations: the numbered files of `schema/`, embedded in the binary, applied to a
//! guild's database in one `BEGIN IMMEDIATE` transaction with the version kept in
//! `PRAGMA user_version`. A failed migration rolls back to the previous version; a file newer
//! than this binary, or one that is not ours (tables at version 0: VeraBot's per-guild files
//! have the same path shape), is refused without being written to.
//!
//! Also the schema each version must have, for telling a guildkeep file from one with planted
//! objects ([`schema_drift`]): a trigger or view added to a backup copy would run inside the bot
//! once restored, so nothing but what the migrations create is accepted.
//!
//! Not here: where files live and when they are opened (`store/open.rs`, `store/manager.rs`).

use std::{collections::BTreeMap, sync::LazyLock};

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
    Migration {
        version: 4,
        sql: include_str!("../../schema/0004_reminder_answers.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../schema/0005_recurrence_count.sql"),
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
        let found = self.judge(conn)?;
        if found == self.latest() {
            return Ok(found);
        }
        // IMMEDIATE takes the write lock now, so another process migrating the same file at the
        // same moment waits (busy_timeout) and then sees the new version below.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before = self.judge(&tx)?;
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

    /// The schema version of `conn`, or why these migrations must not touch it: it is newer
    /// than they know, or it is not ours at all.
    pub fn judge(&self, conn: &Connection) -> Result<u32, StoreError> {
        let found = user_version(conn)?;
        if found > self.latest() {
            return Err(StoreError::TooNew {
                found,
                supported: self.latest(),
            });
        }
        if found == 0 {
            let tables: Vec<String> = conn
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name LIMIT 4",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if !tables.is_empty() {
                return Err(StoreError::Foreign {
                    tables: tables.join(", "),
                });
            }
        }
        Ok(found)
    }
}

pub fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// The objects of `sqlite_schema`: their SQL (`None` for automatic indexes) by type and name
/// (a trigger may share its name with a table).
type Schema = BTreeMap<(String, String), Option<String>>;

/// The schema of every embedded version, index 0 holding version 1, built once by applying the
/// migrations to an empty in-memory database: the same statements, so the same SQL text, as
/// every guild file that guildkeep created or migrated.
static EXPECTED: LazyLock<Vec<Schema>> = LazyLock::new(|| {
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    let embedded = Migrations::embedded();
    (1..=embedded.latest())
        .map(|version| {
            Migrations::new(embedded.0[..version as usize].to_vec())
                .apply(&mut conn)
                .expect("the embedded migrations apply to an empty database");
            read_schema(&conn).expect("the schema of an in-memory database")
        })
        .collect()
});

/// How `conn`'s schema differs from the one its `user_version` must have: one line per object
/// that is not ours, missing, or changed, naming it. Empty when the schema is exactly ours;
/// nothing is tolerated, not even `ANALYZE`'s statistics tables, which steer query plans. A
/// version this binary does not know (0, or newer) has no expected schema and yields one line.
pub fn schema_drift(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let version = user_version(conn)?;
    let Some(expected) = version
        .checked_sub(1)
        .and_then(|index| EXPECTED.get(index as usize))
    else {
        return Ok(vec![format!(
            "schema version {version} is not one this guildkeep knows (1 to {})",
            Migrations::embedded().latest()
        )]);
    };
    let found = read_schema(conn)?;
    let mut drift = Vec::new();
    // A planted name may hold anything, a line break included.
    let named = |kind: &str, name: &str| format!("{kind} `{}`", name.escape_debug());
    for ((kind, name), sql) in &found {
        match expected.get(&(kind.clone(), name.clone())) {
            None => drift.push(format!("unexpected {}", named(kind, name))),
            Some(ours) if ours != sql => drift.push(format!(
                "{} differs from schema version {version}",
                named(kind, name)
            )),
            Some(_) => {}
        }
    }
    for (kind, name) in expected.keys() {
        if !found.contains_key(&(kind.clone(), name.clone())) {
            drift.push(format!("missing {}", named(kind, name)));
        }
    }
    Ok(drift)
}

fn read_schema(conn: &Connection) -> rusqlite::Result<Schema> {
    conn.prepare("SELECT type, name, sql FROM main.sqlite_schema")?
        .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?
        .collect()
}
