//! Helpers for unit tests of the domain modules: a real guild database file at the latest
//! schema, in a temporary directory that lives as long as the returned guard, and the times
//! the reminder tests write as dates.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use rusqlite::Connection;
use tempfile::TempDir;

use crate::store::Migrations;

/// A fresh guild database on disk, with the PRAGMAs the store sets that change behaviour.
pub fn guild_db() -> (TempDir, Connection) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut conn = Connection::open(dir.path().join("quotes.db")).expect("open test database");
    conn.pragma_update(None, "foreign_keys", true)
        .expect("foreign keys on");
    Migrations::embedded()
        .apply(&mut conn)
        .expect("schema applies");
    (dir, conn)
}

/// A time given in UTC, to the minute.
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A wall-clock time in Berlin, to the minute (the earlier of a repeated one).
pub fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}
