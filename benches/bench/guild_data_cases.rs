//! Where per-guild files win, each beside one shared file holding the same rows: one guild's
//! data out (`export_guild`: our backup copy against a per-guild SELECT into a new file), and
//! one guild erased for good (`delete_guild`: our real deletion against `DELETE … WHERE
//! guild_id = ?` with `secure_delete`, the full-text index merged and the WAL truncated, and
//! what one VACUUM of the shared file does to the operations running beside it).
//!
//! The guilds measured have 1,000 quotes of about 600 bytes, each rated three times and tagged
//! twice, 20 tags and 100 reminders with an assignee; they sit in the zipf fleet
//! ([`FLEET_GUILDS`] guilds). The shared file holds the same rows, copied from our files, and a quote for each
//! guild of the fleet.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use guildkeep::{
    ops::{gdpr, Owner},
    store::{paths::DataDir, GuildId},
};
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::{
    measure::Samples,
    store_cases::{fleet, raw_open, store, FLEET_GUILDS, SCHEMA},
    zipf_cases::{shared_file, shared_insert_and_read},
    Case, Size,
};

const QUOTES: usize = 1_000;
const TAGS: usize = 20;
const REMINDERS: usize = 100;
/// Shared-file ids are `guild * ID_SPAN + id`, so every guild's rows keep their own ids.
const ID_SPAN: i64 = 1 << 20;

/// The guilds measured and the files that hold them, made once and shared by both cases.
struct GuildData {
    fleet: PathBuf,
    shared: PathBuf,
    guilds: Vec<u64>,
}

fn sizes(size: Size) -> (u64, usize) {
    (size.pick(2_000, FLEET_GUILDS) as u64, size.pick(10, 100))
}

/// Made on first use: `export_guild` runs first and leaves it; `delete_guild` uses it up.
async fn guild_data(size: Size, scratch: &Path) -> GuildData {
    let (fleet_size, count) = sizes(size);
    let fleet = fleet(scratch, fleet_size).await;
    let shared = scratch.join("guild_data_shared.db");
    let guilds: Vec<u64> = (fleet_size + 1..=fleet_size + count as u64).collect();
    let data = GuildData {
        fleet,
        shared,
        guilds,
    };
    if data.shared.exists() {
        return data;
    }
    let store = store(&data.fleet, 256);
    for &guild in &data.guilds {
        store
            .with_guild(guild, move |c| fill(c, guild))
            .await
            .unwrap()
            .unwrap();
    }
    store.shutdown().await;
    drop(store);
    let (shared, fleet, guilds) = (data.shared.clone(), data.fleet.clone(), data.guilds.clone());
    tokio::task::spawn_blocking(move || {
        let conn = shared_file(&shared);
        add_guild_columns(&conn);
        conn.execute(
            "WITH RECURSIVE g(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM g WHERE id < ?1) \
             INSERT INTO quotes (guild_id, text, author_name, added_by, created_at, updated_at) \
             SELECT id, 'a quote of a guild of the fleet', 'someone', 42, 0, 0 FROM g",
            [fleet_size as i64],
        )
        .unwrap();
        let dir = DataDir::new(&fleet);
        for guild in guilds {
            copy_into_shared(&conn, &dir.guild_db(GuildId::new(guild).unwrap()), guild);
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    })
    .await
    .unwrap();
    data
}

/// One guild's rows, the same for every guild but its tag names.
fn fill(conn: &mut Connection, guild: u64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let filler = "lorem ipsum ".repeat(50);
    for t in 0..TAGS {
        tx.execute(
            "INSERT INTO tags (name, created_at) VALUES (?1, 0)",
            [format!("tag{t}")],
        )?;
    }
    {
        let mut quote = tx.prepare(
            "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 7, 1, 1)",
        )?;
        let mut rate = tx.prepare(
            "INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at) \
             VALUES (?1, ?2, 4, 1, 1)",
        )?;
        let mut tag = tx.prepare("INSERT INTO quote_tags (quote_id, tag_id) VALUES (?1, ?2)")?;
        for i in 0..QUOTES {
            quote.execute([format!("quote {i} of {guild} {filler}")])?;
            let id = tx.last_insert_rowid();
            for user in 1..=3 {
                rate.execute([id, user])?;
            }
            for t in [i % TAGS, (i + 1) % TAGS] {
                tag.execute([id, t as i64 + 1])?;
            }
        }
    }
    for r in 0..REMINDERS {
        tx.execute(
            "INSERT INTO reminders (created_by, target_kind, message, due_at, created_at, \
             updated_at) VALUES (7, 'dm', ?1, 2000000000, 1, 1)",
            [format!("reminder {r} of {guild}")],
        )?;
        tx.execute(
            "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id) \
             VALUES (last_insert_rowid(), 'user', 7)",
            [],
        )?;
    }
    tx.commit()
}

/// The guild column of every table a guild owns outright in the shared file (`quotes` has
/// it already); the rest (ratings, quote tags, assignees) go with their parent row by
/// `ON DELETE CASCADE`. The schema's `UNIQUE` on tag names cannot be altered to be per guild,
/// so the shared file's copy suffixes each name with `@guild`.
fn add_guild_columns(conn: &Connection) {
    conn.execute_batch(
        "ALTER TABLE tags ADD COLUMN guild_id INTEGER NOT NULL DEFAULT 0; \
         CREATE INDEX tags_guild ON tags (guild_id); \
         ALTER TABLE reminders ADD COLUMN guild_id INTEGER NOT NULL DEFAULT 0; \
         CREATE INDEX reminders_guild ON reminders (guild_id);",
    )
    .unwrap();
}

/// Copies the guild file `from` into the shared file as `guild`'s rows.
fn copy_into_shared(conn: &Connection, from: &Path, guild: u64) {
    let base = guild as i64 * ID_SPAN;
    conn.execute("ATTACH DATABASE ?1 AS g", [from.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         INSERT INTO main.tags (id, name, created_at, guild_id)
           SELECT {base} + id, name || '@{guild}', created_at, {guild} FROM g.tags;
         INSERT INTO main.quotes (id, text, author_name, added_by, created_at, updated_at,
                                  guild_id)
           SELECT {base} + id, text, author_name, added_by, created_at, updated_at, {guild}
           FROM g.quotes;
         INSERT INTO main.quote_ratings (quote_id, user_id, rating, created_at, updated_at)
           SELECT {base} + quote_id, user_id, rating, created_at, updated_at
           FROM g.quote_ratings;
         INSERT INTO main.quote_tags SELECT {base} + quote_id, {base} + tag_id FROM g.quote_tags;
         INSERT INTO main.reminders (id, created_by, target_kind, message, due_at, created_at,
                                     updated_at, guild_id)
           SELECT {base} + id, created_by, target_kind, message, due_at, created_at,
                  updated_at, {guild} FROM g.reminders;
         INSERT INTO main.reminder_assignees (reminder_id, assignee_kind, assignee_id)
           SELECT {base} + reminder_id, assignee_kind, assignee_id FROM g.reminder_assignees;
         COMMIT;"
    ))
    .unwrap();
    conn.execute("DETACH DATABASE g", []).unwrap();
}

/// p50 and p99 of one pass, in milliseconds.
fn percentiles(samples: &Samples) -> Value {
    json!({"p50_ms": samples.percentile_ms(50.0), "p99_ms": samples.percentile_ms(99.0)})
}

pub async fn export_guild(size: Size, scratch: &Path) -> Case {
    let data = guild_data(size, scratch).await;
    let out = scratch.join("export_guild");
    std::fs::create_dir_all(&out).unwrap();
    let store = store(&data.fleet, 256);
    let mut ours = Samples::default();
    for &guild in &data.guilds {
        let started = Instant::now();
        store
            .backup_guild(guild, out.join(format!("{guild}.db")))
            .await
            .unwrap();
        ours.push(started.elapsed());
    }
    store.shutdown().await;
    let (shared, guilds, out_dir) = (data.shared.clone(), data.guilds.clone(), out.clone());
    let baseline = tokio::task::spawn_blocking(move || {
        let conn = raw_open(&shared);
        let mut samples = Samples::default();
        for guild in guilds {
            let to = out_dir.join(format!("{guild}-shared.db"));
            samples.time(|| export_from_shared(&conn, guild, &to));
        }
        samples
    })
    .await
    .unwrap();
    crate::set_aside(&out);
    let (ours, baseline) = (percentiles(&ours), percentiles(&baseline));
    let ratio = ours["p50_ms"].as_f64().unwrap() / baseline["p50_ms"].as_f64().unwrap();
    Case::new(
        "export one guild",
        ours,
        Some(baseline),
        Some(ratio),
        "ratio ≤ 1 (p50 over the guilds, one pass; ours is a verified-format backup copy)",
        ratio <= 1.0,
    )
}

/// The shared file's export: a new file with the per-guild schema (so its full-text index is
/// built as it fills), filled by one SELECT per table of the guild's rows, fsynced once at the
/// end and written without a journal, as our copy is.
fn export_from_shared(conn: &Connection, guild: u64, to: &Path) {
    let base = guild as i64 * ID_SPAN;
    {
        let copy = Connection::open(to).unwrap();
        copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
            .unwrap();
        copy.execute_batch(SCHEMA).unwrap();
    }
    conn.execute("ATTACH DATABASE ?1 AS out", [to.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(&format!(
        "PRAGMA out.journal_mode = OFF; PRAGMA out.synchronous = OFF;
         BEGIN;
         INSERT INTO out.tags (id, name, created_at)
           SELECT id - {base}, substr(name, 1, instr(name, '@') - 1), created_at
           FROM main.tags WHERE guild_id = {guild};
         INSERT INTO out.quotes (id, text, author_name, added_by, created_at, updated_at)
           SELECT id - {base}, text, author_name, added_by, created_at, updated_at
           FROM main.quotes WHERE guild_id = {guild};
         INSERT INTO out.quote_ratings (quote_id, user_id, rating, created_at, updated_at)
           SELECT r.quote_id - {base}, r.user_id, r.rating, r.created_at, r.updated_at
           FROM main.quote_ratings r JOIN main.quotes q ON q.id = r.quote_id
           WHERE q.guild_id = {guild};
         INSERT INTO out.quote_tags SELECT t.quote_id - {base}, t.tag_id - {base}
           FROM main.quote_tags t JOIN main.quotes q ON q.id = t.quote_id
           WHERE q.guild_id = {guild};
         INSERT INTO out.reminders (id, created_by, target_kind, message, due_at, created_at,
                                    updated_at)
           SELECT id - {base}, created_by, target_kind, message, due_at, created_at, updated_at
           FROM main.reminders WHERE guild_id = {guild};
         INSERT INTO out.reminder_assignees (reminder_id, assignee_kind, assignee_id)
           SELECT a.reminder_id - {base}, a.assignee_kind, a.assignee_id
           FROM main.reminder_assignees a JOIN main.reminders m ON m.id = a.reminder_id
           WHERE m.guild_id = {guild};
         COMMIT;"
    ))
    .unwrap();
    conn.execute("DETACH DATABASE out", []).unwrap();
    std::fs::File::open(to).unwrap().sync_all().unwrap();
}

pub async fn delete_guild(size: Size, scratch: &Path) -> Case {
    let data = guild_data(size, scratch).await;
    let store = store(&data.fleet, 256);
    let owner = Owner::standalone(store.clone());
    let mut ours = Samples::default();
    for &guild in &data.guilds {
        let started = Instant::now();
        gdpr::delete_guild(&owner, guild).await.unwrap();
        ours.push(started.elapsed());
    }
    store.shutdown().await;
    drop((owner, store));
    let (shared, guilds) = (data.shared.clone(), data.guilds.clone());
    let (fleet_size, _) = sizes(size);
    let (baseline, vacuum) = tokio::task::spawn_blocking(move || {
        let conn = raw_open(&shared);
        conn.execute_batch("PRAGMA secure_delete = ON;").unwrap();
        let mut samples = Samples::default();
        let mut vacuum = Value::Null;
        for (i, guild) in guilds.into_iter().enumerate() {
            samples.time(|| delete_from_shared(&conn, guild));
            // While the file still holds every other guild, as it would in production.
            if i == 0 {
                vacuum = vacuum_beside_operations(&conn, &shared, fleet_size);
            }
        }
        (samples, vacuum)
    })
    .await
    .unwrap();
    let (ours, mut baseline) = (percentiles(&ours), percentiles(&baseline));
    baseline["vacuum"] = vacuum;
    let ratio = ours["p50_ms"].as_f64().unwrap() / baseline["p50_ms"].as_f64().unwrap();
    let shared = data.shared.display().to_string();
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{shared}{file}"));
    }
    Case::new(
        "delete one guild for good",
        ours,
        Some(baseline),
        Some(ratio),
        "ratio ≤ 1 (p50 over the guilds, one pass; both leave no byte of the guild behind)",
        ratio <= 1.0,
    )
}

/// Every row of `guild` deleted in one transaction (ratings, quote tags, assignees and the
/// full-text rows follow by cascade and trigger), with `secure_delete` zeroing what the
/// deletes free; then what the zeroing does not reach: the full-text index keeps a deleted
/// row's words until its segments are merged, and the WAL keeps older copies of the pages.
fn delete_from_shared(conn: &Connection, guild: u64) {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         DELETE FROM quotes WHERE guild_id = {guild};
         DELETE FROM tags WHERE guild_id = {guild};
         DELETE FROM reminders WHERE guild_id = {guild};
         COMMIT;
         INSERT INTO quotes_fts (quotes_fts) VALUES ('optimize');
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
}

/// One VACUUM of the shared file (the other way to leave nothing behind) while a thread keeps
/// using the fleet's guilds as the zipf case does, writes one at a time: the writes wait for
/// the VACUUM, which holds the write lock throughout.
fn vacuum_beside_operations(conn: &Connection, shared: &Path, fleet_size: u64) -> Value {
    let writer = Mutex::new(());
    let stop = AtomicBool::new(false);
    let vacuum_began = OnceLock::new();
    let (before, during) = std::thread::scope(|scope| {
        let user = scope.spawn(|| {
            let conn = raw_open(shared);
            let (mut before, mut during) = (Samples::default(), Samples::default());
            let mut guild = 0;
            while !stop.load(Ordering::Relaxed) {
                guild = guild % fleet_size + 1;
                let op = Instant::now();
                shared_insert_and_read(&conn, &writer, guild);
                // An operation that ended once the VACUUM had begun overlapped it.
                match vacuum_began.get() {
                    None => before.push(op.elapsed()),
                    Some(_) => during.push(op.elapsed()),
                }
            }
            (before, during)
        });
        std::thread::sleep(Duration::from_secs(1));
        vacuum_began.set(Instant::now()).unwrap();
        {
            let _writing = writer.lock().unwrap();
            conn.execute_batch("VACUUM;").unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        user.join().unwrap()
    });
    let vacuum_s = vacuum_began.get().unwrap().elapsed().as_secs_f64();
    json!({
        "vacuum_s": vacuum_s,
        "ops_p99_ms_before": before.percentile_ms(99.0),
        "ops_max_ms_during": during.percentile_ms(100.0),
    })
}
