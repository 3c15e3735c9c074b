//! Helpers for unit tests of the domain modules: a real guild database file at the latest
//! schema, in a temporary directory that lives as long as the returned guard.

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
