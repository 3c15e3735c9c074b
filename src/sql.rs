//! How plain values are kept in a guild database: Discord ids as INTEGER (checked both ways,
//! since rusqlite binds no `u64` and a silent `as` would turn an impossible id into a
//! negative one) and times as INTEGER unix seconds in UTC. Shared by the domain modules.

use chrono::{DateTime, Utc};
use rusqlite::Row;

/// A Discord id as SQLite stores it.
pub(crate) fn sql_id(id: u64) -> rusqlite::Result<i64> {
    i64::try_from(id).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

/// Reads back an id (or a count) stored as INTEGER: column `index` of `row`. A negative value
/// means a damaged row and is reported, not wrapped.
pub(crate) fn row_id(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

pub(crate) fn opt_row_id(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(index)?;
    value
        .map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, v)))
        .transpose()
}

/// Reads an INTEGER unix-seconds column as a UTC time.
pub(crate) fn row_time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let secs: i64 = row.get(index)?;
    DateTime::from_timestamp(secs, 0).ok_or(rusqlite::Error::IntegralValueOutOfRange(index, secs))
}

pub(crate) fn opt_row_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(index)? {
        Some(_) => row_time(row, index).map(Some),
        None => Ok(None),
    }
}
