//! Privacy: what one guild's database holds about a member (export), erasing it (forget),
//! and what deleting the whole guild would lose (the admin's confirmation screen).
//!
//! Works over one guild's `rusqlite::Connection` with plain Discord ids. Not here: removing
//! the guild's file (`store`), telling the reminder scheduler about deleted reminders (the
//! caller's job after [`forget_user`]), and any Discord wording.
//!
//! `forget_user` runs in one `BEGIN IMMEDIATE` transaction, for the reason `quotes` gives:
//! it reads before it writes, possibly while the bot writes from another process.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::{
    quotes::{self, quote_from_row, Quote},
    sql::{opt_row_id, opt_row_time, row_id, row_time},
};

/// Everything this guild holds about or by one member. Times serialise as RFC 3339 (UTC).
///
/// Reminders list whether the member made them or is assigned to them, but not the other
/// members involved: those ids are other people's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserExport {
    pub user_id: u64,
    pub quotes_added: Vec<Quote>,
    /// Quotes someone else saved (or whose saver was forgotten) that name this member.
    pub quotes_about_you: Vec<Quote>,
    pub ratings: Vec<RatingRecord>,
    pub reminders: Vec<ReminderRecord>,
    /// Delivery attempts of the reminders above.
    pub deliveries: Vec<DeliveryRecord>,
    pub optins: Option<OptinRecord>,
}

impl UserExport {
    pub fn is_empty(&self) -> bool {
        self.quotes_added.is_empty()
            && self.quotes_about_you.is_empty()
            && self.ratings.is_empty()
            && self.reminders.is_empty()
            && self.deliveries.is_empty()
            && self.optins.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatingRecord {
    pub quote_id: i64,
    pub rating: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReminderRecord {
    pub id: i64,
    pub created_by_you: bool,
    pub assigned_to_you: bool,
    pub target_kind: String,
    pub channel_id: Option<u64>,
    pub message: String,
    pub due_at: DateTime<Utc>,
    pub time_zone: String,
    pub recurrence: Option<String>,
    pub recurrence_end: Option<DateTime<Utc>>,
    /// The number of times the repeat was set to go off, when its end was given that way.
    pub recurrence_count: Option<u32>,
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    pub reminder_id: i64,
    pub due_at: DateTime<Utc>,
    pub status: String,
    pub attempts: u32,
    pub late: bool,
    pub claimed_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// How it was answered through its message's buttons: "snoozed" or "done".
    pub answer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptinRecord {
    pub dm_opt_in: bool,
    pub time_zone: Option<String>,
    pub preferences: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What happens to the quotes that hold a forgotten member: those they saved, and those of
/// their words (`author_id`). Unless deleted, a quote of their words keeps its text but loses
/// their id, their name (it reads "Anonymous") and the link to the source message, which would
/// identify them just as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetMode {
    /// Keep the texts they saved, without their id (`added_by` becomes NULL).
    Anonymise,
    /// Delete the quotes they saved, with everyone's ratings and tags of those quotes.
    Delete,
    /// Delete the quotes they saved and the quotes of their words.
    DeleteAll,
}

/// Who asked to forget a member, as recorded in the audit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetActor {
    /// The member themself, through `/privacy forget`.
    Member,
    /// An operator, through `guildkeep gdpr forget-user`.
    Operator,
}

impl ForgetActor {
    fn as_audit_actor(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Operator => "operator",
        }
    }
}

/// Rows changed by [`forget_user`]; also the audit row's detail, so it holds counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForgetCounts {
    pub quotes_deleted: u64,
    pub quotes_anonymised: u64,
    /// Quotes that named the member as author and no longer do.
    pub quotes_unnamed: u64,
    /// Quotes of the member's words, deleted ([`ForgetMode::DeleteAll`]).
    pub quotes_of_them_deleted: u64,
    pub ratings_deleted: u64,
    pub reminders_deleted: u64,
    /// The member's places on other members' reminders.
    pub assignments_deleted: u64,
    pub optins_deleted: u64,
}

/// Rows per table that deleting the whole guild would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuildSummary {
    pub quotes: u64,
    pub tags: u64,
    pub quote_tags: u64,
    pub quote_ratings: u64,
    pub reminders: u64,
    pub reminder_assignees: u64,
    pub reminder_deliveries: u64,
    pub optins: u64,
    pub audit: u64,
}

/// Nothing in this module is for a member to fix: a bad id is a caller's bug and the rest
/// are database failures.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{0} is not a Discord id (it must be between 1 and 2^63-1)")]
    InvalidId(u64),
    #[error("stored data could not be read as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("the erased rows are gone, but readers kept the guild's WAL, which still holds old copies of them, from being emptied; run the erasure again")]
    WalBusy,
}

impl PrivacyError {
    /// Always `None`: the bot shows its generic failure line and logs the error. Present so
    /// every domain error is handled the same way.
    pub fn user_message(&self) -> Option<String> {
        None
    }
}

pub fn export_user(conn: &Connection, user_id: u64) -> Result<UserExport, PrivacyError> {
    let user = id_param(user_id)?;
    // One read transaction: a consistent snapshot even while the scheduler writes.
    let tx = conn.unchecked_transaction()?;
    let quotes_where = |condition: &str| -> rusqlite::Result<Vec<Quote>> {
        tx.prepare(&format!(
            "{} WHERE {condition} ORDER BY q.id",
            quotes::QUOTE_SELECT
        ))?
        .query_map([user], quote_from_row)?
        .collect()
    };
    let quotes_added = quotes_where("q.added_by = ?1")?;
    // Who saved a quote of the member's words is that other member's data, not theirs.
    let quotes_about_you =
        quotes_where("q.author_id = ?1 AND (q.added_by IS NULL OR q.added_by <> ?1)")?
            .into_iter()
            .map(|quote| Quote {
                added_by: None,
                ..quote
            })
            .collect();
    let ratings = tx
        .prepare(
            "SELECT quote_id, rating, created_at, updated_at FROM quote_ratings
             WHERE user_id = ?1 ORDER BY quote_id",
        )?
        .query_map([user], |r| {
            Ok(RatingRecord {
                quote_id: r.get(0)?,
                rating: r.get(1)?,
                created_at: row_time(r, 2)?,
                updated_at: row_time(r, 3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let reminders = tx
        .prepare(&format!(
            "SELECT r.id, r.created_by IS ?1, {ASSIGNED}, r.target_kind, r.channel_id,
                    r.message, r.due_at, r.time_zone, r.recurrence, r.recurrence_end, r.status,
                    r.attempts, r.last_error, r.created_at, r.updated_at, r.recurrence_count
             FROM reminders r WHERE r.created_by = ?1 OR {ASSIGNED} ORDER BY r.id"
        ))?
        .query_map([user], reminder_from_row)?
        .collect::<Result<_, _>>()?;
    let deliveries = tx
        .prepare(&format!(
            "SELECT d.reminder_id, d.due_at, d.status, d.attempts, d.late, d.claimed_at,
                    d.finished_at, d.error, d.answer
             FROM reminder_deliveries d JOIN reminders r ON r.id = d.reminder_id
             WHERE r.created_by = ?1 OR {ASSIGNED} ORDER BY d.reminder_id, d.due_at"
        ))?
        .query_map([user], delivery_from_row)?
        .collect::<Result<_, _>>()?;
    let optins = tx
        .query_row(
            "SELECT dm_opt_in, time_zone, preferences, created_at, updated_at
             FROM optins WHERE user_id = ?1",
            [user],
            |r| {
                let preferences: Option<String> = r.get(2)?;
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    preferences,
                    row_time(r, 3)?,
                    row_time(r, 4)?,
                ))
            },
        )
        .optional()?
        .map(
            |(dm_opt_in, time_zone, preferences, created_at, updated_at)| {
                Ok::<_, PrivacyError>(OptinRecord {
                    dm_opt_in,
                    time_zone,
                    preferences: preferences
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()?,
                    created_at,
                    updated_at,
                })
            },
        )
        .transpose()?;
    tx.commit()?;
    Ok(UserExport {
        user_id,
        quotes_added,
        quotes_about_you,
        ratings,
        reminders,
        deliveries,
        optins,
    })
}

/// Erases a member from this guild in one transaction and records an audit row holding only
/// the counts. See [`ForgetMode`] for what happens to quotes; in both modes their ratings go
/// (the averages of the quotes they rated are recomputed), as do the reminders they created
/// (with those reminders' assignees and deliveries), their places on others' reminders and
/// their opt-in row. Forgetting a member the guild knows nothing about changes nothing but
/// is still audited.
pub fn forget_user(
    conn: &Connection,
    user_id: u64,
    mode: ForgetMode,
    actor: ForgetActor,
    now: DateTime<Utc>,
) -> Result<ForgetCounts, PrivacyError> {
    let user = id_param(user_id)?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let rated: Vec<i64> = tx
        .prepare("SELECT quote_id FROM quote_ratings WHERE user_id = ?1")?
        .query_map([user], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let changed = |sql: &str| -> rusqlite::Result<u64> {
        // usize -> u64 cannot lose anything on the platforms Rust supports.
        tx.execute(sql, [user]).map(|n| n as u64)
    };
    let mut counts = ForgetCounts {
        ratings_deleted: changed("DELETE FROM quote_ratings WHERE user_id = ?1")?,
        ..ForgetCounts::default()
    };
    match mode {
        ForgetMode::Anonymise => {
            counts.quotes_anonymised =
                changed("UPDATE quotes SET added_by = NULL WHERE added_by = ?1")?;
        }
        ForgetMode::Delete | ForgetMode::DeleteAll => {
            counts.quotes_deleted = changed("DELETE FROM quotes WHERE added_by = ?1")?;
        }
    }
    if mode == ForgetMode::DeleteAll {
        counts.quotes_of_them_deleted = changed("DELETE FROM quotes WHERE author_id = ?1")?;
    }
    counts.quotes_unnamed = changed(
        "UPDATE quotes SET author_id = NULL, author_name = 'Anonymous',
                           source_channel_id = NULL, source_message_id = NULL
         WHERE author_id = ?1",
    )?;
    for quote in rated {
        quotes::refresh_rating(&tx, quote)?;
    }
    counts.reminders_deleted = changed("DELETE FROM reminders WHERE created_by = ?1")?;
    counts.assignments_deleted = changed(
        "DELETE FROM reminder_assignees WHERE assignee_kind = 'user' AND assignee_id = ?1",
    )?;
    counts.optins_deleted = changed("DELETE FROM optins WHERE user_id = ?1")?;
    tx.execute(
        "INSERT INTO audit (at, actor, action, detail) VALUES (?1, ?2, 'forget_user', ?3)",
        params![
            now.timestamp(),
            actor.as_audit_actor(),
            serde_json::to_string(&counts)?
        ],
    )?;
    tx.commit()?;
    Ok(counts)
}

/// Makes what was erased unrecoverable from the guild's files, not only from its queries:
/// the full-text index is rebuilt (its old segments hold erased words until merged), the
/// file is rewritten without free pages, and the WAL, which holds old copies of changed pages,
/// is checkpointed and cut to nothing. Run outside a transaction, after the erasure committed.
pub fn purge_erased(conn: &Connection) -> Result<(), PrivacyError> {
    conn.execute_batch("INSERT INTO quotes_fts (quotes_fts) VALUES ('rebuild'); VACUUM;")?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(PrivacyError::WalBusy);
    }
    Ok(())
}

pub fn delete_guild_summary(conn: &Connection) -> Result<GuildSummary, PrivacyError> {
    let tx = conn.unchecked_transaction()?;
    // Table names come from this fixed list, never from input.
    let count = |table: &str| -> rusqlite::Result<u64> {
        tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            row_id(r, 0)
        })
    };
    let summary = GuildSummary {
        quotes: count("quotes")?,
        tags: count("tags")?,
        quote_tags: count("quote_tags")?,
        quote_ratings: count("quote_ratings")?,
        reminders: count("reminders")?,
        reminder_assignees: count("reminder_assignees")?,
        reminder_deliveries: count("reminder_deliveries")?,
        optins: count("optins")?,
        audit: count("audit")?,
    };
    tx.commit()?;
    Ok(summary)
}

/// Whether reminder `r` has the member (`?1`) among its assignees.
const ASSIGNED: &str = "EXISTS (SELECT 1 FROM reminder_assignees a WHERE a.reminder_id = r.id
                                AND a.assignee_kind = 'user' AND a.assignee_id = ?1)";

fn id_param(id: u64) -> Result<i64, PrivacyError> {
    quotes::db_id(id).ok_or(PrivacyError::InvalidId(id))
}

fn reminder_from_row(r: &Row<'_>) -> rusqlite::Result<ReminderRecord> {
    Ok(ReminderRecord {
        id: r.get(0)?,
        created_by_you: r.get(1)?,
        assigned_to_you: r.get(2)?,
        target_kind: r.get(3)?,
        channel_id: opt_row_id(r, 4)?,
        message: r.get(5)?,
        due_at: row_time(r, 6)?,
        time_zone: r.get(7)?,
        recurrence: r.get(8)?,
        recurrence_end: opt_row_time(r, 9)?,
        status: r.get(10)?,
        attempts: r.get(11)?,
        last_error: r.get(12)?,
        created_at: row_time(r, 13)?,
        updated_at: row_time(r, 14)?,
        recurrence_count: r.get(15)?,
    })
}

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        reminder_id: r.get(0)?,
        due_at: row_time(r, 1)?,
        status: r.get(2)?,
        attempts: r.get(3)?,
        late: r.get(4)?,
        claimed_at: row_time(r, 5)?,
        finished_at: opt_row_time(r, 6)?,
        error: r.get(7)?,
        answer: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    //! Export and forget against a real guild database holding three members' data.

    use chrono::TimeZone;

    use super::*;
    use crate::{
        quotes::{add, get, rate, NewQuote, QuoteSource},
        test_support::guild_db,
    };

    const ALICE: u64 = 1_000_000_000_000_001;
    const BOB: u64 = 1_000_000_000_000_002;
    const CAROL: u64 = 1_000_000_000_000_003;
    const ROLE: i64 = 555;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
    }

    fn sql_id(id: u64) -> i64 {
        quotes::db_id(id).unwrap()
    }

    /// Ids of what [`seed`] stored.
    struct World {
        /// Saved by Alice; the second names Carol as its author.
        alice_quotes: [i64; 2],
        /// Saved by Bob from Alice's message, naming her.
        bob_names_alice: i64,
        bob_plain: i64,
        carol_quote: i64,
        alice_reminder: i64,
        /// Bob's channel reminder for Alice, Carol and a role.
        bob_reminder: i64,
    }

    fn seed(conn: &Connection) -> World {
        let quote = |text: &str, by, author_id, source| {
            add(
                conn,
                &NewQuote {
                    text: text.into(),
                    added_by: by,
                    author_id,
                    source,
                    tags: vec!["wisdom".into()],
                    ..NewQuote::default()
                },
                t(0),
            )
            .unwrap()
            .id
        };
        let alice_quotes = [
            quote("Alice saved this", ALICE, None, None),
            quote("Carol said this", ALICE, Some(CAROL), None),
        ];
        let source = QuoteSource {
            channel_id: 77,
            message_id: 78,
        };
        let bob_names_alice = quote("Alice said this", BOB, Some(ALICE), Some(source));
        let bob_plain = quote("Bob saved this", BOB, None, None);
        let carol_quote = quote("Carol saved this", CAROL, None, None);
        for (quote, user, stars) in [
            (alice_quotes[0], ALICE, 5),
            (bob_plain, ALICE, 3),
            (carol_quote, ALICE, 1),
            (alice_quotes[0], BOB, 4),
            (bob_names_alice, BOB, 2),
            (carol_quote, BOB, 5),
            (alice_quotes[1], CAROL, 2),
            (bob_plain, CAROL, 5),
        ] {
            rate(conn, quote, user, stars, t(1)).unwrap();
        }
        let reminder = |by: u64, kind: &str, message: &str| -> i64 {
            conn.execute(
                "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at,
                                        recurrence, created_at, updated_at)
                 VALUES (?1, ?2, CASE ?2 WHEN 'channel' THEN 99 END, ?3, ?4, 'daily 09:00',
                         ?5, ?5)",
                params![
                    sql_id(by),
                    kind,
                    message,
                    t(3600).timestamp(),
                    t(2).timestamp()
                ],
            )
            .unwrap();
            let id = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO reminder_deliveries (reminder_id, due_at, status, claimed_at,
                                                  finished_at, answer)
                 VALUES (?1, ?2, 'delivered', ?2, ?3, 'snoozed')",
                params![id, t(60).timestamp(), t(61).timestamp()],
            )
            .unwrap();
            id
        };
        let alice_reminder = reminder(ALICE, "dm", "stretch");
        let bob_reminder = reminder(BOB, "channel", "stand-up");
        let carol_reminder = reminder(CAROL, "channel", "team lunch");
        for (reminder, kind, who) in [
            (bob_reminder, "user", sql_id(ALICE)),
            (bob_reminder, "user", sql_id(CAROL)),
            (bob_reminder, "role", ROLE),
            (carol_reminder, "role", ROLE),
        ] {
            conn.execute(
                "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id)
                 VALUES (?1, ?2, ?3)",
                params![reminder, kind, who],
            )
            .unwrap();
        }
        for (user, preferences) in [(ALICE, Some(r#"{"lang":"en"}"#)), (BOB, None)] {
            conn.execute(
                "INSERT INTO optins (user_id, dm_opt_in, time_zone, preferences, created_at,
                                     updated_at)
                 VALUES (?1, 1, 'Europe/Berlin', ?2, ?3, ?3)",
                params![sql_id(user), preferences, t(5).timestamp()],
            )
            .unwrap();
        }
        World {
            alice_quotes,
            bob_names_alice,
            bob_plain,
            carol_quote,
            alice_reminder,
            bob_reminder,
        }
    }

    fn quote_ids(quotes: &[Quote]) -> Vec<i64> {
        quotes.iter().map(|q| q.id).collect()
    }

    #[test]
    fn export_holds_everything_about_and_by_the_member() {
        let (_dir, conn) = guild_db();
        let w = seed(&conn);
        let export = export_user(&conn, ALICE).unwrap();
        assert!(!export.is_empty());
        assert_eq!(export.user_id, ALICE);
        assert_eq!(quote_ids(&export.quotes_added), w.alice_quotes);
        assert_eq!(quote_ids(&export.quotes_about_you), [w.bob_names_alice]);
        let rated: Vec<_> = export
            .ratings
            .iter()
            .map(|r| (r.quote_id, r.rating))
            .collect();
        assert_eq!(
            rated,
            [(w.alice_quotes[0], 5), (w.bob_plain, 3), (w.carol_quote, 1)]
        );
        let reminders: Vec<_> = export
            .reminders
            .iter()
            .map(|r| (r.id, r.created_by_you, r.assigned_to_you))
            .collect();
        assert_eq!(
            reminders,
            [
                (w.alice_reminder, true, false),
                (w.bob_reminder, false, true)
            ]
        );
        assert_eq!(export.reminders[0].message, "stretch");
        assert_eq!(export.reminders[1].channel_id, Some(99));
        let delivered: Vec<_> = export.deliveries.iter().map(|d| d.reminder_id).collect();
        assert_eq!(delivered, [w.alice_reminder, w.bob_reminder]);
        assert_eq!(export.deliveries[0].finished_at, Some(t(61)));
        assert_eq!(export.deliveries[0].answer.as_deref(), Some("snoozed"));
        let optins = export.optins.as_ref().unwrap();
        assert!(optins.dm_opt_in);
        assert_eq!(optins.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(optins.preferences, Some(serde_json::json!({"lang": "en"})));

        let json = serde_json::to_value(&export).unwrap();
        let created = json["ratings"][0]["created_at"].as_str().unwrap();
        assert_eq!(DateTime::parse_from_rfc3339(created).unwrap(), t(1));
        let due = json["reminders"][0]["due_at"].as_str().unwrap();
        assert_eq!(DateTime::parse_from_rfc3339(due).unwrap(), t(3600));
        // Other members on Alice's reminders are not hers to export.
        assert!(!json["reminders"].to_string().contains(&CAROL.to_string()));
        // A role on a reminder does not make its members assignees.
        let bobs: Vec<i64> = export_user(&conn, BOB)
            .unwrap()
            .reminders
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(bobs, [w.bob_reminder]);
    }

    #[test]
    fn a_stranger_has_an_empty_export() {
        let (_dir, conn) = guild_db();
        seed(&conn);
        let export = export_user(&conn, 42).unwrap();
        assert!(export.is_empty());
        assert_eq!(export.user_id, 42);
    }

    #[test]
    fn anonymise_keeps_the_texts_without_the_member() {
        let (_dir, conn) = guild_db();
        let w = seed(&conn);
        let counts = forget_user(
            &conn,
            ALICE,
            ForgetMode::Anonymise,
            ForgetActor::Member,
            t(9),
        )
        .unwrap();
        assert_eq!(
            counts,
            ForgetCounts {
                quotes_deleted: 0,
                quotes_anonymised: 2,
                quotes_unnamed: 1,
                quotes_of_them_deleted: 0,
                ratings_deleted: 3,
                reminders_deleted: 1,
                assignments_deleted: 1,
                optins_deleted: 1,
            }
        );
        assert!(export_user(&conn, ALICE).unwrap().is_empty());
        for id in w.alice_quotes {
            let quote = get(&conn, id).unwrap().unwrap();
            assert_eq!(quote.added_by, None);
            assert_eq!(quote.tags, ["wisdom"]);
        }
        let kept = get(&conn, w.alice_quotes[1]).unwrap().unwrap();
        assert_eq!(
            (kept.text.as_str(), kept.author_id),
            ("Carol said this", Some(CAROL))
        );
        let named = get(&conn, w.bob_names_alice).unwrap().unwrap();
        assert_eq!(named.text, "Alice said this");
        assert_eq!(named.author_name, "Anonymous");
        assert_eq!(named.added_by, Some(BOB));
        assert_eq!(
            (
                named.author_id,
                named.source_channel_id,
                named.source_message_id
            ),
            (None, None, None)
        );
        // Only Bob's 4 is left on the quote Alice saved and rated herself.
        let own = get(&conn, w.alice_quotes[0]).unwrap().unwrap();
        assert_eq!((own.rating_avg, own.rating_count), (4.0, 1));
        assert_audit(&conn, "member", &counts);
    }

    #[test]
    fn delete_removes_the_quotes_they_saved_but_not_quotes_naming_them() {
        let (_dir, conn) = guild_db();
        let w = seed(&conn);
        let counts = forget_user(
            &conn,
            ALICE,
            ForgetMode::Delete,
            ForgetActor::Operator,
            t(9),
        )
        .unwrap();
        assert_eq!(
            counts,
            ForgetCounts {
                quotes_deleted: 2,
                quotes_anonymised: 0,
                quotes_unnamed: 1,
                quotes_of_them_deleted: 0,
                ratings_deleted: 3,
                reminders_deleted: 1,
                assignments_deleted: 1,
                optins_deleted: 1,
            }
        );
        assert!(export_user(&conn, ALICE).unwrap().is_empty());
        for id in w.alice_quotes {
            assert_eq!(get(&conn, id).unwrap(), None);
        }
        let named = get(&conn, w.bob_names_alice).unwrap().unwrap();
        assert_eq!(
            (named.text.as_str(), named.author_id),
            ("Alice said this", None)
        );
        // Of 8 ratings, Alice's 3 went, and Bob's and Carol's of her quotes went with them.
        let summary = delete_guild_summary(&conn).unwrap();
        assert_eq!((summary.quotes, summary.quote_ratings), (3, 3));
        assert_audit(&conn, "operator", &counts);
    }

    #[test]
    fn delete_all_also_removes_the_quotes_of_their_words() {
        let (_dir, conn) = guild_db();
        let w = seed(&conn);
        let counts = forget_user(
            &conn,
            ALICE,
            ForgetMode::DeleteAll,
            ForgetActor::Member,
            t(9),
        )
        .unwrap();
        assert_eq!(
            (counts.quotes_deleted, counts.quotes_of_them_deleted),
            (2, 1)
        );
        assert_eq!(counts.quotes_unnamed, 0);
        assert_eq!(get(&conn, w.bob_names_alice).unwrap(), None);
        assert!(get(&conn, w.bob_plain).unwrap().is_some());
        assert!(export_user(&conn, ALICE).unwrap().is_empty());
    }

    #[test]
    fn an_export_does_not_name_who_saved_a_quote_of_the_member() {
        let (_dir, conn) = guild_db();
        let w = seed(&conn);
        let export = export_user(&conn, ALICE).unwrap();
        let about = &export.quotes_about_you;
        assert!(about.iter().any(|q| q.id == w.bob_names_alice), "{about:?}");
        assert!(about.iter().all(|q| q.added_by.is_none()), "{about:?}");
        assert!(!serde_json::to_string(&export)
            .unwrap()
            .contains(&BOB.to_string()));
    }

    fn assert_audit(conn: &Connection, actor: &str, counts: &ForgetCounts) {
        let (at, logged_actor, action, detail): (i64, String, String, String) = conn
            .query_row("SELECT at, actor, action, detail FROM audit", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!(
            (at, logged_actor.as_str(), action.as_str()),
            (t(9).timestamp(), actor, "forget_user")
        );
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(detail, serde_json::to_value(counts).unwrap());
        let text = detail.to_string();
        assert!(!text.contains(&ALICE.to_string()) && !text.contains("said"));
    }

    /// Every quote's average and count agree with its remaining ratings.
    fn assert_averages_consistent(conn: &Connection) {
        let stale: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM quotes q WHERE q.rating_count <>
                     (SELECT COUNT(*) FROM quote_ratings WHERE quote_id = q.id)
                  OR q.rating_avg <>
                     COALESCE((SELECT AVG(rating) FROM quote_ratings WHERE quote_id = q.id), 0)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stale, 0);
    }

    #[test]
    fn other_members_keep_their_data_and_averages_in_both_modes() {
        for mode in [ForgetMode::Anonymise, ForgetMode::Delete] {
            let (_dir, conn) = guild_db();
            let w = seed(&conn);
            let bob_before = export_user(&conn, BOB).unwrap();
            let carol_before = export_user(&conn, CAROL).unwrap();
            let untouched_before = get(&conn, w.bob_names_alice).unwrap().unwrap();

            forget_user(&conn, ALICE, mode, ForgetActor::Operator, t(9)).unwrap();
            assert!(export_user(&conn, ALICE).unwrap().is_empty());
            assert_averages_consistent(&conn);

            // Alice never rated the quote naming her: its average is unchanged.
            let untouched = get(&conn, w.bob_names_alice).unwrap().unwrap();
            assert_eq!(
                (untouched.rating_avg, untouched.rating_count),
                (untouched_before.rating_avg, untouched_before.rating_count)
            );

            // Bob: the documented effects only. His quote no longer names Alice; his other
            // quote lost Alice's 3 (5 from Carol remains); with Delete, his rating of Alice's
            // quote went with it.
            let mut bob = bob_before;
            for quote in &mut bob.quotes_added {
                if quote.id == w.bob_names_alice {
                    quote.author_id = None;
                    quote.author_name = "Anonymous".into();
                    quote.source_channel_id = None;
                    quote.source_message_id = None;
                }
                if quote.id == w.bob_plain {
                    (quote.rating_avg, quote.rating_count) = (5.0, 1);
                }
            }
            if mode == ForgetMode::Delete {
                bob.ratings
                    .retain(|r| !w.alice_quotes.contains(&r.quote_id));
            }
            assert_eq!(export_user(&conn, BOB).unwrap(), bob, "{mode:?}");

            // Carol: her quote lost Alice's 1. The quote Alice saved naming Carol loses its
            // saver (Anonymise) or goes with Carol's rating of it (Delete).
            let mut carol = carol_before;
            carol.quotes_added[0].rating_avg = 5.0;
            carol.quotes_added[0].rating_count = 1;
            match mode {
                ForgetMode::Anonymise => carol.quotes_about_you[0].added_by = None,
                ForgetMode::Delete | ForgetMode::DeleteAll => {
                    carol.quotes_about_you.clear();
                    carol.ratings.retain(|r| r.quote_id != w.alice_quotes[1]);
                }
            }
            assert_eq!(export_user(&conn, CAROL).unwrap(), carol, "{mode:?}");
            // Carol's place on Bob's reminder and its delivery are hers and stay.
            assert!(carol.reminders.iter().any(|r| r.id == w.bob_reminder));
            assert!(carol
                .deliveries
                .iter()
                .any(|d| d.reminder_id == w.bob_reminder));
        }
    }

    #[test]
    fn forgetting_is_all_or_nothing() {
        let (_dir, conn) = guild_db();
        seed(&conn);
        let before = export_user(&conn, ALICE).unwrap();
        let summary = delete_guild_summary(&conn).unwrap();
        // Make the last step fail, after quotes, ratings and reminders were already changed.
        conn.execute_batch(
            "CREATE TEMP TRIGGER optins_fail BEFORE DELETE ON main.optins
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
        let err =
            forget_user(&conn, ALICE, ForgetMode::Delete, ForgetActor::Member, t(9)).unwrap_err();
        assert!(matches!(err, PrivacyError::Sql(_)));
        assert_eq!(err.user_message(), None);
        assert_eq!(export_user(&conn, ALICE).unwrap(), before);
        assert_eq!(delete_guild_summary(&conn).unwrap(), summary);
    }

    #[test]
    fn forgetting_an_unknown_member_changes_nothing_but_is_audited() {
        let (_dir, conn) = guild_db();
        seed(&conn);
        let before = delete_guild_summary(&conn).unwrap();
        let counts = forget_user(&conn, 42, ForgetMode::Delete, ForgetActor::Member, t(9)).unwrap();
        assert_eq!(counts, ForgetCounts::default());
        let after = delete_guild_summary(&conn).unwrap();
        assert_eq!(after, GuildSummary { audit: 1, ..before });
    }

    #[test]
    fn ids_that_are_not_snowflakes_are_refused() {
        let (_dir, conn) = guild_db();
        for bad in [0, u64::MAX] {
            assert!(matches!(
                export_user(&conn, bad),
                Err(PrivacyError::InvalidId(id)) if id == bad
            ));
            let err = forget_user(&conn, bad, ForgetMode::Delete, ForgetActor::Operator, t(0))
                .unwrap_err();
            assert!(matches!(err, PrivacyError::InvalidId(_)));
            assert_eq!(err.user_message(), None);
        }
    }

    #[test]
    fn the_guild_summary_counts_every_table() {
        let (_dir, conn) = guild_db();
        assert_eq!(
            delete_guild_summary(&conn).unwrap(),
            GuildSummary::default()
        );
        seed(&conn);
        assert_eq!(
            delete_guild_summary(&conn).unwrap(),
            GuildSummary {
                quotes: 5,
                tags: 1,
                quote_tags: 5,
                quote_ratings: 8,
                reminders: 3,
                reminder_assignees: 4,
                reminder_deliveries: 3,
                optins: 2,
                audit: 0,
            }
        );
    }
}
