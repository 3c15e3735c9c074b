//! Benchmarks of the operator jobs, driven by `scripts/bench-import` and `scripts/bench-backup`,
//! each in separate steps so that a job's time and peak memory are measured alone:
//!
//! ```text
//! ops_bench generate FILE [ROWS]        a legacy database of ROWS rows (default 1,000,000)
//! ops_bench import FILE DATA_DIR        migrate-legacy into DATA_DIR; prints rows/s, VmHWM
//! ops_bench guilds DATA_DIR N KIB       N guilds of about KIB KiB of quotes each
//! ops_bench backup DATA_DIR             one backup set of every guild; prints the time
//! ```
//!
//! The generated data is deterministic and shaped like a real bot's: 1,000 guilds of uneven
//! size, 200 global tags, most quotes rated and tagged, reminders in every time format, a few
//! orphans and invalid guild ids. Not here: correctness checks (tests/ops_legacy.rs).

use std::{path::Path, time::Instant};

use guildkeep::{
    ops::{
        backup::{backup, BackupOptions},
        legacy::{migrate_legacy, ImportOptions},
    },
    store::{GuildDatabaseManager, StoreConfig},
};
use rusqlite::{params, Connection};

const GUILDS: u64 = 1_000;
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

fn guild_text(rng: &mut Rng) -> String {
    // Skewed: a few big guilds, many small ones, like real bots. One row in 2,000 is broken.
    match rng.below(2_000) {
        0 => "not-a-guild".to_owned(),
        1 => String::new(),
        _ => {
            let g = rng.below(GUILDS).min(rng.below(GUILDS));
            (100_000_000_000_000_000 + g * 7_919).to_string()
        }
    }
}

fn user_text(rng: &mut Rng) -> String {
    (200_000_000_000_000_000 + rng.below(50_000)).to_string()
}

fn generate(path: &Path, rows: u64) -> rusqlite::Result<()> {
    let mut db = Connection::open(path)?;
    db.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    db.execute_batch(include_str!("../tests/fixtures/legacy_schema.sql"))?;
    let tx = db.transaction()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
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
                guild_text(&mut rng),
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
                guild_text(&mut rng),
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
            let guild = (!o.is_multiple_of(3)).then(|| guild_text(&mut rng));
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

/// Peak resident memory of this process, from /proc (Linux).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() >= 3 => {
            let rows = args.get(3).map_or(Ok(1_000_000), |r| r.parse())?;
            let started = Instant::now();
            generate(Path::new(&args[2]), rows)?;
            println!("generated {rows} rows in {:.1?}", started.elapsed());
        }
        Some("import") if args.len() == 4 => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let source = Connection::open(&args[2])?;
                let mut rows = 0u64;
                for table in ["quotes", "tags", "quote_tags", "quote_ratings", "reminders",
                              "reminder_assignments", "user_communications"] {
                    rows += source.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))? as u64;
                }
                drop(source);
                let store = GuildDatabaseManager::new(StoreConfig::new(&args[3]))?;
                let started = Instant::now();
                let report = migrate_legacy(
                    &store,
                    ImportOptions { source: args[2].clone().into(), ..ImportOptions::default() },
                )
                .await?;
                let elapsed = started.elapsed();
                store.shutdown().await;
                let imported: u64 = report
                    .guilds
                    .values()
                    .map(|c| c.quotes + c.tags + c.quote_tags + c.ratings + c.reminders + c.assignees + c.optins)
                    .sum();
                println!(
                    "imported {} guilds: {rows} source rows ({imported} rows written, {} skipped) in {:.2?}",
                    report.guilds.len(),
                    report.skipped.values().sum::<u64>(),
                    elapsed
                );
                println!("rate: {:.0} source rows/s", rows as f64 / elapsed.as_secs_f64());
                println!("peak memory (VmHWM): {}", peak_memory());
                anyhow::ensure!(report.failures.is_empty(), "failed guilds: {:?}", report.failures);
                Ok(())
            })?;
        }
        Some("guilds") if args.len() == 5 => {
            let (count, kib): (u64, usize) = (args[3].parse()?, args[4].parse()?);
            tokio::runtime::Runtime::new()?.block_on(async {
                let store = GuildDatabaseManager::new(StoreConfig::new(&args[2]))?;
                let started = Instant::now();
                for guild in 1..=count {
                    store
                        .with_guild(guild, move |c| {
                            let tx = c.transaction()?;
                            // About 1 KiB per quote with its full-text index entries.
                            for i in 0..kib {
                                tx.execute(
                                    "INSERT INTO quotes (text, added_by, created_at, updated_at) \
                                     VALUES (?1, 7, 1, 1)",
                                    [format!(
                                        "quote {i} of {guild} {}",
                                        "lorem ipsum ".repeat(50)
                                    )],
                                )?;
                            }
                            tx.commit()
                        })
                        .await??;
                }
                store.shutdown().await;
                println!("created {count} guilds in {:.1?}", started.elapsed());
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Some("backup") if args.len() == 3 => {
            tokio::runtime::Runtime::new()?.block_on(async {
                let store = GuildDatabaseManager::new(StoreConfig::new(&args[2]))?;
                let started = Instant::now();
                let report = backup(&store, BackupOptions::default()).await?;
                let elapsed = started.elapsed();
                let bytes: u64 = report.manifest.guilds.values().map(|g| g.bytes).sum();
                println!(
                    "backed up {} guilds ({:.0} MB) in {elapsed:.2?}; {} failed",
                    report.manifest.guilds.len(),
                    bytes as f64 / 1e6,
                    report.failures().len()
                );
                println!("peak memory (VmHWM): {}", peak_memory());
                Ok::<_, anyhow::Error>(())
            })?;
        }
        _ => anyhow::bail!(
            "usage: ops_bench generate FILE [ROWS] | import FILE DATA_DIR | guilds DATA_DIR N KIB \
             | backup DATA_DIR"
        ),
    }
    Ok(())
}
