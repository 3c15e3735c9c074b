//! Writing one guild's [`GuildPlan`] into that guild's database: one `BEGIN IMMEDIATE`
//! transaction, prepared cached statements, rows already imported (found by `legacy_id`, tags
//! and opt-ins by name and user) left alone, so a second run adds nothing. Before committing,
//! the table counts are checked against what was written and every planned row is looked up
//! by its legacy id; a mismatch rolls the guild back and is an error.
//!
//! Not here: deciding what a legacy row becomes (`source.rs`), choosing the database (`mod.rs`).

use std::collections::{HashMap, HashSet};

use anyhow::bail;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::Serialize;

use super::source::{GuildPlan, Skipped};

/// Rows one run imported into one guild, as the `--report` JSON names them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuildCounts {
    pub quotes: u64,
    pub tags: u64,
    pub quote_tags: u64,
    pub ratings: u64,
    pub reminders: u64,
    pub assignees: u64,
    pub optins: u64,
}

const TABLES: [&str; 7] = [
    "quotes",
    "tags",
    "quote_tags",
    "quote_ratings",
    "reminders",
    "reminder_assignees",
    "optins",
];

impl GuildCounts {
    fn by_table(&self) -> [u64; 7] {
        [
            self.quotes,
            self.tags,
            self.quote_tags,
            self.ratings,
            self.reminders,
            self.assignees,
            self.optins,
        ]
    }
}

fn table_counts(tx: &Transaction<'_>) -> rusqlite::Result<[u64; 7]> {
    let mut counts = [0; 7];
    for (count, table) in counts.iter_mut().zip(TABLES) {
        let n: i64 = tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        *count = n as u64;
    }
    Ok(counts)
}

fn legacy_ids(tx: &Transaction<'_>, table: &str) -> rusqlite::Result<HashMap<i64, i64>> {
    let mut statement = tx.prepare(&format!(
        "SELECT legacy_id, {} FROM {table} WHERE legacy_id IS NOT NULL",
        if table == "quote_ratings" || table == "reminder_assignees" {
            "rowid"
        } else {
            "id"
        }
    ))?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Imports `plan` into `conn` and commits, or changes nothing and fails. `now` stands in for
/// legacy times that could not be read. Returns the rows written and the planned rows that
/// the target already held in a form that wins (a member's own rating or opt-in).
pub fn write_guild(
    conn: &mut Connection,
    plan: &GuildPlan,
    now: i64,
) -> anyhow::Result<(GuildCounts, Skipped)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before = table_counts(&tx)?;
    let mut counts = GuildCounts::default();
    let mut skipped = Skipped::default();

    let mut tag_ids = Vec::with_capacity(plan.tags.len());
    {
        let mut existing: HashMap<String, i64> = HashMap::new();
        let mut statement = tx.prepare("SELECT name, id FROM tags")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            existing.insert(row.get::<_, String>(0)?.trim().to_lowercase(), row.get(1)?);
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO tags (name, description, created_at, legacy_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for tag in &plan.tags {
            let id = match existing.get(&tag.name) {
                Some(id) => *id,
                None => {
                    insert.execute(params![
                        tag.name,
                        tag.description,
                        tag.created_at.unwrap_or(now),
                        tag.legacy_id
                    ])?;
                    counts.tags += 1;
                    tx.last_insert_rowid()
                }
            };
            tag_ids.push(id);
        }
    }

    let imported_before: HashSet<i64> = legacy_ids(&tx, "quotes")?.into_keys().collect();
    {
        // Quotes go in through a staging table and one INSERT ... SELECT: each statement
        // that writes to `quotes` opens a savepoint, at which the full-text index flushes its
        // pending terms to disk. Row by row that is one tiny index segment (and later merges)
        // per quote; one statement is one flush per guild.
        tx.execute_batch(
            "CREATE TEMP TABLE import_quotes (text, author_name, added_by, rating_avg, \
             rating_count, created_at, updated_at, legacy_id)",
        )?;
        let mut stage = tx.prepare_cached(
            "INSERT INTO temp.import_quotes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for quote in &plan.quotes {
            if imported_before.contains(&quote.legacy_id) {
                continue;
            }
            let created = quote.created_at.unwrap_or(now);
            stage.execute(params![
                quote.text,
                quote.author_name,
                quote.added_by,
                quote.rating_avg,
                quote.rating_count,
                created,
                quote.updated_at.unwrap_or(created),
                quote.legacy_id
            ])?;
            counts.quotes += 1;
        }
        tx.execute_batch(
            "INSERT INTO quotes (text, author_name, added_by, rating_avg, rating_count, \
             created_at, updated_at, legacy_id) \
             SELECT text, author_name, added_by, rating_avg, rating_count, created_at, \
             updated_at, legacy_id FROM temp.import_quotes ORDER BY rowid; \
             DROP TABLE temp.import_quotes;",
        )?;
    }
    let quote_ids = legacy_ids(&tx, "quotes")?;

    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO quote_tags (quote_id, tag_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for (quote, tag) in &plan.quote_tags {
            counts.quote_tags += insert.execute(params![quote_ids[quote], tag_ids[*tag]])? as u64;
        }
    }

    let rating_ids = legacy_ids(&tx, "quote_ratings")?;
    let mut rerate = HashSet::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at, \
             legacy_id) VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT DO NOTHING",
        )?;
        for rating in &plan.ratings {
            if rating_ids.contains_key(&rating.legacy_id) {
                continue;
            }
            let quote = quote_ids[&rating.quote_legacy_id];
            let added = insert.execute(params![
                quote,
                rating.user_id,
                rating.rating,
                rating.created_at.unwrap_or(now),
                rating.legacy_id
            ])?;
            if added == 0 {
                skipped.add("quote_ratings", "member_already_rated_in_target", 1);
            } else if imported_before.contains(&rating.quote_legacy_id) {
                // A quote imported by an earlier run: its stored average does not include
                // this rating yet. New quotes were inserted with the plan's average.
                rerate.insert(quote);
            }
            counts.ratings += added as u64;
        }
        let mut update = tx.prepare_cached(
            "UPDATE quotes SET rating_avg = coalesce((SELECT avg(rating) FROM quote_ratings \
             WHERE quote_id = ?1), 0), rating_count = (SELECT count(*) FROM quote_ratings \
             WHERE quote_id = ?1) WHERE id = ?1",
        )?;
        for quote in rerate {
            update.execute([quote])?;
        }
    }

    let mut reminder_ids = legacy_ids(&tx, "reminders")?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at, status, \
             last_error, created_at, updated_at, legacy_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for reminder in &plan.reminders {
            if reminder_ids.contains_key(&reminder.legacy_id) {
                continue;
            }
            let created = reminder.created_at.unwrap_or(now);
            insert.execute(params![
                reminder.created_by,
                if reminder.channel_id.is_some() {
                    "channel"
                } else {
                    "dm"
                },
                reminder.channel_id,
                reminder.message,
                reminder.due_at,
                reminder.status,
                reminder.last_error,
                created,
                reminder.updated_at.unwrap_or(created),
                reminder.legacy_id
            ])?;
            counts.reminders += 1;
            reminder_ids.insert(reminder.legacy_id, tx.last_insert_rowid());
        }
    }

    let assignee_ids = legacy_ids(&tx, "reminder_assignees")?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id, legacy_id) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )?;
        for assignee in &plan.assignees {
            if assignee_ids.contains_key(&assignee.legacy_id) {
                continue;
            }
            let added = insert.execute(params![
                reminder_ids[&assignee.reminder_legacy_id],
                assignee.kind,
                assignee.assignee_id,
                assignee.legacy_id
            ])?;
            if added == 0 {
                skipped.add("reminder_assignments", "already_assigned_in_target", 1);
            }
            counts.assignees += added as u64;
        }
    }

    {
        // A member's own choice in this guild (or an earlier import's) wins.
        let mut insert = tx.prepare_cached(
            "INSERT INTO optins (user_id, dm_opt_in, preferences, created_at, updated_at, \
             legacy_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?;
        for optin in &plan.optins {
            let created = optin.created_at.unwrap_or(now);
            counts.optins += insert.execute(params![
                optin.user_id,
                optin.dm_opt_in,
                optin.preferences,
                created,
                optin.updated_at.unwrap_or(created),
                optin.legacy_id
            ])? as u64;
        }
    }

    verify(&tx, plan, &before, &counts, &skipped)?;
    tx.commit()?;
    Ok((counts, skipped))
}

/// The check legacy-format.md asks for: each table grew by exactly what was written, and every
/// planned quote, reminder, rating and assignee is present under its legacy id.
fn verify(
    tx: &Transaction<'_>,
    plan: &GuildPlan,
    before: &[u64; 7],
    counts: &GuildCounts,
    skipped: &Skipped,
) -> anyhow::Result<()> {
    let after = table_counts(tx)?;
    for ((table, before), (after, written)) in TABLES
        .iter()
        .zip(before)
        .zip(after.iter().zip(counts.by_table()))
    {
        if after - before != written {
            bail!(
                "guild {}: {table} has {} new rows, {written} were written",
                plan.guild,
                after - before
            );
        }
    }
    let explained = |reason: &str| skipped.0.get(reason).copied().unwrap_or(0);
    let checks = [
        (
            "quotes",
            plan.quotes.iter().map(|q| q.legacy_id).collect::<Vec<_>>(),
            0,
        ),
        (
            "quote_ratings",
            plan.ratings.iter().map(|r| r.legacy_id).collect(),
            explained("quote_ratings.member_already_rated_in_target"),
        ),
        (
            "reminders",
            plan.reminders.iter().map(|r| r.legacy_id).collect(),
            0,
        ),
        (
            "reminder_assignees",
            plan.assignees.iter().map(|a| a.legacy_id).collect(),
            explained("reminder_assignments.already_assigned_in_target"),
        ),
    ];
    for (table, planned, explained) in checks {
        let present = legacy_ids(tx, table)?;
        let missing = planned
            .iter()
            .filter(|id| !present.contains_key(id))
            .count() as u64;
        if missing != explained {
            bail!(
                "guild {}: {} planned {table} rows are missing after the import",
                plan.guild,
                missing.abs_diff(explained)
            );
        }
    }
    Ok(())
}
