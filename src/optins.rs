//! A member's standing choices in one guild: whether the bot may DM them, the time zone their
//! times are read in, and free-form preferences (a JSON value). Without a row a member is not
//! opted in and uses UTC. Writes are upserts that keep the row's `created_at`.
//!
//! Not here: what a DM says or when it is sent (`reminders`), and export or erasure of the row
//! (`privacy`).

use chrono::{DateTime, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};
use rusqlite::{Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum OptInError {
    #[error(
        "I don't know the time zone \"{0}\". Use a name like Europe/Berlin or America/New_York."
    )]
    UnknownTimeZone(String),
    #[error("optins row has time zone {0:?}, which this build does not know")]
    StoredZoneUnknown(String),
    #[error("optins preferences: {0}")]
    Preferences(#[from] serde_json::Error),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

impl OptInError {
    /// The text a member may read, for the variants they can fix; `None` for failures.
    pub fn user_message(&self) -> Option<String> {
        match self {
            Self::UnknownTimeZone(_) => Some(self.to_string()),
            Self::StoredZoneUnknown(_) | Self::Preferences(_) | Self::Sql(_) => None,
        }
    }
}

/// What the guild holds for a member; the defaults when it holds nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct OptInStatus {
    pub dm_opt_in: bool,
    /// `None` when the member never chose one; times are then read as UTC.
    pub time_zone: Option<Tz>,
    pub preferences: Option<serde_json::Value>,
    /// `None` when there is no row.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn status(conn: &Connection, user: u64) -> Result<OptInStatus, OptInError> {
    let row = conn
        .query_row(
            "SELECT dm_opt_in, time_zone, preferences, created_at, updated_at
             FROM optins WHERE user_id = ?1",
            [sql_id(user)?],
            |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((dm_opt_in, zone, preferences, created, updated)) = row else {
        return Ok(OptInStatus {
            dm_opt_in: false,
            time_zone: None,
            preferences: None,
            created_at: None,
            updated_at: None,
        });
    };
    Ok(OptInStatus {
        dm_opt_in,
        time_zone: zone.map(|name| stored_zone(&name)).transpose()?,
        preferences: preferences
            .map(|text| serde_json::from_str(&text))
            .transpose()?,
        created_at: DateTime::from_timestamp(created, 0),
        updated_at: DateTime::from_timestamp(updated, 0),
    })
}

/// The check every DM goes through, made when the DM is about to be sent.
pub fn dm_opted_in(conn: &Connection, user: u64) -> Result<bool, OptInError> {
    Ok(conn
        .query_row(
            "SELECT dm_opt_in FROM optins WHERE user_id = ?1",
            [sql_id(user)?],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false))
}

/// The zone a member's times are read in; UTC unless they chose one.
pub fn time_zone(conn: &Connection, user: u64) -> Result<Tz, OptInError> {
    let name: Option<String> = conn
        .query_row(
            "SELECT time_zone FROM optins WHERE user_id = ?1",
            [sql_id(user)?],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    name.map_or(Ok(Tz::UTC), |name| stored_zone(&name))
}

pub fn set_dm_opt_in(
    conn: &Connection,
    user: u64,
    opt_in: bool,
    now: DateTime<Utc>,
) -> Result<(), OptInError> {
    conn.execute(
        "INSERT INTO optins (user_id, dm_opt_in, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (user_id) DO UPDATE SET dm_opt_in = excluded.dm_opt_in,
                                             updated_at = excluded.updated_at",
        rusqlite::params![sql_id(user)?, opt_in, now.timestamp()],
    )?;
    Ok(())
}

/// Sets (`Some(name)`, validated, any letter case) or clears (`None`, back to UTC) the member's
/// zone. Returns the zone now in effect.
pub fn set_time_zone(
    conn: &Connection,
    user: u64,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Tz, OptInError> {
    let zone = name.map(parse_time_zone).transpose()?;
    conn.execute(
        "INSERT INTO optins (user_id, time_zone, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (user_id) DO UPDATE SET time_zone = excluded.time_zone,
                                             updated_at = excluded.updated_at",
        rusqlite::params![sql_id(user)?, zone.map(Tz::name), now.timestamp()],
    )?;
    Ok(zone.unwrap_or(Tz::UTC))
}

/// Replaces the member's preferences; `None` removes them.
pub fn set_preferences(
    conn: &Connection,
    user: u64,
    preferences: Option<&serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), OptInError> {
    let text = preferences.map(serde_json::to_string).transpose()?;
    conn.execute(
        "INSERT INTO optins (user_id, preferences, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (user_id) DO UPDATE SET preferences = excluded.preferences,
                                             updated_at = excluded.updated_at",
        rusqlite::params![sql_id(user)?, text, now.timestamp()],
    )?;
    Ok(())
}

/// An IANA zone name as a member might type it: exact, or differing only in letter case
/// (`europe/berlin`), with surrounding spaces ignored.
pub fn parse_time_zone(name: &str) -> Result<Tz, OptInError> {
    let name = name.trim();
    name.parse::<Tz>()
        .ok()
        .or_else(|| {
            TZ_VARIANTS
                .iter()
                .copied()
                .find(|zone| zone.name().eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| OptInError::UnknownTimeZone(name.to_owned()))
}

/// Zone names for autocomplete: those starting with `typed` (any case) first, then those
/// containing it anywhere (so "berlin" finds Europe/Berlin), each group alphabetical.
pub fn zone_suggestions(typed: &str, limit: usize) -> Vec<&'static str> {
    let typed = typed.trim().to_ascii_lowercase();
    let mut starts = Vec::new();
    let mut contains = Vec::new();
    for zone in TZ_VARIANTS {
        let lower = zone.name().to_ascii_lowercase();
        if lower.starts_with(&typed) {
            starts.push(zone.name());
        } else if lower.contains(&typed) {
            contains.push(zone.name());
        }
    }
    starts.sort_unstable();
    contains.sort_unstable();
    starts.into_iter().chain(contains).take(limit).collect()
}

/// A Discord id as SQLite stores it. rusqlite (without its `fallible_uint` feature) binds no
/// `u64`, and a silent `as i64` would turn an impossible id into a negative one.
pub(crate) fn sql_id(id: u64) -> rusqlite::Result<i64> {
    i64::try_from(id).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

/// Reads back an id stored by [`sql_id`]: column `index` of `row`.
pub(crate) fn row_id(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn stored_zone(name: &str) -> Result<Tz, OptInError> {
    name.parse()
        .map_err(|_| OptInError::StoredZoneUnknown(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::test_support::guild_db;

    const ALICE: u64 = 1_000_000_000_000_001;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_member_without_a_row_is_not_opted_in_and_uses_utc() {
        let (_dir, conn) = guild_db();
        let status = status(&conn, ALICE).unwrap();
        assert!(!status.dm_opt_in);
        assert_eq!(status.time_zone, None);
        assert_eq!(status.created_at, None);
        assert!(!dm_opted_in(&conn, ALICE).unwrap());
        assert_eq!(time_zone(&conn, ALICE).unwrap(), Tz::UTC);
    }

    #[test]
    fn opting_in_and_out_keeps_created_at() {
        let (_dir, conn) = guild_db();
        set_dm_opt_in(&conn, ALICE, true, at(0)).unwrap();
        assert!(dm_opted_in(&conn, ALICE).unwrap());
        set_dm_opt_in(&conn, ALICE, false, at(60)).unwrap();
        let status = status(&conn, ALICE).unwrap();
        assert!(!status.dm_opt_in);
        assert_eq!(status.created_at, Some(at(0)));
        assert_eq!(status.updated_at, Some(at(60)));
    }

    #[test]
    fn each_setting_leaves_the_others_alone() {
        let (_dir, conn) = guild_db();
        set_dm_opt_in(&conn, ALICE, true, at(0)).unwrap();
        set_time_zone(&conn, ALICE, Some("Europe/Berlin"), at(1)).unwrap();
        let prefs = serde_json::json!({"quiet_hours": [22, 7]});
        set_preferences(&conn, ALICE, Some(&prefs), at(2)).unwrap();
        let status = status(&conn, ALICE).unwrap();
        assert!(status.dm_opt_in);
        assert_eq!(status.time_zone, Some(chrono_tz::Europe::Berlin));
        assert_eq!(status.preferences, Some(prefs));
        assert_eq!(status.created_at, Some(at(0)));
        assert_eq!(status.updated_at, Some(at(2)));
    }

    #[test]
    fn zones_match_in_any_case_and_can_be_cleared() {
        let (_dir, conn) = guild_db();
        let zone = set_time_zone(&conn, ALICE, Some("  america/new_york "), at(0)).unwrap();
        assert_eq!(zone, chrono_tz::America::New_York);
        assert_eq!(time_zone(&conn, ALICE).unwrap(), zone);
        assert_eq!(set_time_zone(&conn, ALICE, None, at(1)).unwrap(), Tz::UTC);
        assert_eq!(time_zone(&conn, ALICE).unwrap(), Tz::UTC);
    }

    #[test]
    fn an_unknown_zone_is_a_message_for_the_member_and_changes_nothing() {
        let (_dir, conn) = guild_db();
        set_time_zone(&conn, ALICE, Some("Asia/Tokyo"), at(0)).unwrap();
        let err = set_time_zone(&conn, ALICE, Some("Mars/Olympus"), at(1)).unwrap_err();
        assert_eq!(
            err.user_message().as_deref(),
            Some(
                "I don't know the time zone \"Mars/Olympus\". \
                 Use a name like Europe/Berlin or America/New_York."
            )
        );
        assert_eq!(time_zone(&conn, ALICE).unwrap(), chrono_tz::Asia::Tokyo);
    }

    #[test]
    fn failures_have_no_member_message() {
        let err = OptInError::from(rusqlite::Error::InvalidQuery);
        assert_eq!(err.user_message(), None);
    }

    #[test]
    fn suggestions_put_prefix_matches_before_substring_matches() {
        assert_eq!(
            zone_suggestions("europe/be", 5),
            ["Europe/Belfast", "Europe/Belgrade", "Europe/Berlin"]
        );
        let berlin = zone_suggestions("BERLIN", 5);
        assert_eq!(berlin, ["Europe/Berlin"]);
        assert_eq!(zone_suggestions("", 3).len(), 3);
        assert!(zone_suggestions("no such place", 5).is_empty());
    }
}
