//! The operator cases' data, deterministic and shaped like a real bot's: a legacy database
//! to import (one guild per 1,000 rows, of uneven size, 200 global tags, most quotes rated and tagged,
//! reminders in every time format, a few orphans and invalid guild ids), and guilds of a
//! given size to back up. Not here: correctness checks (tests/ops_legacy.rs).

use std::path::Path;

use guildkeep::store::GuildDatabaseManager;
use rusqlite::{params, Connection};

pub const LEGACY_SCHEMA: &str = include_str!("../../tests/fixtures/legacy_schema.sql");

/// Source rows per guild on average: 1,000 guilds in a million rows, and as many rows per
/// guild at any size, so that a smaller run is the same import in miniature.
const ROWS_PER_GUILD: u64 = 1_000;
const TAGS: u64 = 200;

/// xorshift64*: deterministic, dependency-free, and plenty for fixture data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// An id-like value in `0..n`, as SQLite stores integers.
    fn id_below(&mut self, n: u64) -> i64 {
        self.below(n) as i64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn guild_text(rng: &mut Rng, guilds: u64) -> String {
    // Skewed: a few big guilds, many small ones, like real bots. One row in 2,000 is broken.
    match rng.below(2_000) {
        0 => "not-a-guild".to_owned(),
        1 => String::new(),
        _ => {
            let g = rng.below(guilds).min(rng.below(guilds));
            (100_000_000_000_000_000 + g * 7_919).to_string()
        }
    }
}

fn user_text(rng: &mut Rng) -> String {
    (200_000_000_000_000_000 + rng.below(50_000)).to_string()
}

/// A legacy database of about `rows` rows at `path`.
pub fn legacy_database(path: &Path, rows: u64) -> rusqlite::Result<()> {
    let mut db = Connection::open(path)?;
    db.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    db.execute_batch(LEGACY_SCHEMA)?;
    let tx = db.transaction()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let guilds = (rows / ROWS_PER_GUILD).max(1);
    // Shares of ROWS: quotes 40%, quote_tags 20%, ratings 25%, reminders 10%,
    // assignments 4%, opt-ins 1%.
    let quotes = rows * 40 / 100;
    let reminders = rows * 10 / 100;
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    {
        let mut tag =
            tx.prepare("INSERT INTO tags (name, description, createdAt) VALUES (?1, ?2, ?3)")?;
        for t in 0..TAGS {
            // Every tenth name differs from another only by case: the import merges them.
            let name = if t % 10 == 9 {
                format!("TAG{}", t - 1)
            } else {
                format!("tag{t}")
            };
            tag.execute(params![name, "a tag", "2023-05-01T10:00:00Z"])?;
        }
        let mut quote = tx.prepare(
            "INSERT INTO quotes (guildId, text, author, addedBy, addedAt, category, averageRating, \
             ratingCount) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 3.5, 7)",
        )?;
        for q in 0..quotes {
            let text: Vec<&str> = (0..8 + rng.below(12))
                .map(|_| words[rng.below(8) as usize])
                .collect();
            let category = if q % 4 == 0 { "Funny" } else { "General" };
            quote.execute(params![
                guild_text(&mut rng, guilds),
                text.join(" "),
                format!("Author {}", rng.below(500)),
                user_text(&mut rng),
                "2023-06-01 12:00:00",
                category
            ])?;
        }
        let mut link =
            tx.prepare("INSERT OR IGNORE INTO quote_tags (quoteId, tagId) VALUES (?1, ?2)")?;
        for _ in 0..rows * 20 / 100 {
            // A few orphans: quote ids past the end.
            link.execute(params![
                1 + rng.id_below(quotes + quotes / 1_000),
                1 + rng.id_below(TAGS)
            ])?;
        }
        let mut rating = tx.prepare(
            "INSERT OR IGNORE INTO quote_ratings (quoteId, userId, rating, createdAt) \
             VALUES (?1, ?2, ?3, '2023-07-01T00:00:00.000Z')",
        )?;
        for _ in 0..rows * 25 / 100 {
            rating.execute(params![
                1 + rng.id_below(quotes),
                user_text(&mut rng),
                1 + rng.id_below(5)
            ])?;
        }
        let mut reminder = tx.prepare(
            "INSERT INTO reminders (guildId, subject, when_datetime, content, link, status, \
             notification_method, channelId, createdBy, createdAt) \
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8, '2023-08-01 09:00:00')",
        )?;
        for r in 0..reminders {
            let when = match r % 5 {
                0 => "2030-01-01T10:00:00Z".to_owned(),
                1 => "2030-01-01T12:00:00+02:00".to_owned(),
                2 => "2030-01-01 10:00:00".to_owned(),
                3 => "1893492000000".to_owned(),
                _ if r % 50 == 4 => "next tuesday".to_owned(),
                _ => "2029-06-30T08:15:00.000Z".to_owned(),
            };
            let server = r % 3 == 0;
            reminder.execute(params![
                guild_text(&mut rng, guilds),
                "stand-up",
                when,
                "bring notes",
                if r % 7 == 0 { "sent" } else { "active" },
                if server { "server" } else { "dm" },
                server.then(|| (300_000_000_000_000_000 + rng.below(10_000)).to_string()),
                user_text(&mut rng)
            ])?;
        }
        let mut assignment = tx.prepare(
            "INSERT OR IGNORE INTO reminder_assignments (reminderId, assigneeType, assigneeId) \
             VALUES (?1, ?2, ?3)",
        )?;
        for a in 0..rows * 4 / 100 {
            let kind = if a % 4 == 0 { "role" } else { "user" };
            assignment.execute(params![
                1 + rng.id_below(reminders),
                kind,
                user_text(&mut rng)
            ])?;
        }
        let mut optin = tx.prepare(
            "INSERT OR IGNORE INTO user_communications (user_id, guild_id, opted_in, preferences, \
             created_at, updated_at) VALUES (?1, ?2, ?3, '{\"lang\":\"en\"}', ?4, ?4)",
        )?;
        for o in 0..rows / 100 {
            let guild = (!o.is_multiple_of(3)).then(|| guild_text(&mut rng, guilds));
            optin.execute(params![
                user_text(&mut rng),
                guild,
                (o % 2) as i64,
                "2023-01-01 00:00:00"
            ])?;
        }
    }
    tx.commit()
}

/// Guilds 1..=`count` through the store, each with `quotes` quotes of about 1 KiB (with their
/// full-text index entries), a few guilds at a time.
pub async fn guilds(store: &GuildDatabaseManager, count: u64, quotes: usize) {
    use futures::StreamExt;
    futures::stream::iter(1..=count)
        .for_each_concurrent(4, |guild| async move {
            store
                .with_guild(guild, move |c| fill_guild(c, guild, quotes))
                .await
                .unwrap()
                .unwrap();
        })
        .await;
}

/// One guild's `quotes` quotes of about 1 KiB.
pub fn fill_guild(conn: &mut Connection, guild: u64, quotes: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 7, 1, 1)",
        )?;
        let filler = "lorem ipsum ".repeat(50);
        for i in 0..quotes {
            insert.execute([format!("quote {i} of {guild} {filler}")])?;
        }
    }
    tx.commit()
}
