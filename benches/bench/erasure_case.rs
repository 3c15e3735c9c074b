//! What physical erasure costs: the hot path's writes with `secure_delete` (every connection
//! of ours) beside the same writes without it, and a member's forget with its purge (index
//! rebuild, VACUUM, WAL truncate) beside the forget alone, in a guild of 1,000 quotes of about
//! 1 KiB.

use std::{path::Path, time::Instant};

use chrono::Utc;
use guildkeep::{
    privacy::{self, ForgetActor, ForgetMode},
    store::GuildDatabaseManager,
};
use rusqlite::Connection;
use serde_json::json;

use crate::{
    measure::{median, Samples},
    ops_data, set_aside,
    store_cases::store,
    Case, Size, REPEATS,
};

/// The member forgotten: they saved every tenth quote.
const MEMBER: i64 = 7_000_000_000_000_000;

/// A quote saved and a quote deleted: the writes `secure_delete` adds work to.
fn add_and_delete(conn: &Connection) {
    conn.prepare_cached(
        "INSERT INTO quotes (text, author_name, added_by, created_at, updated_at) \
         VALUES ('a quote to delete again, long enough to fill some of a page', 'x', 42, 0, 0)",
    )
    .unwrap()
    .execute([])
    .unwrap();
    conn.prepare_cached("DELETE FROM quotes WHERE id = last_insert_rowid()")
        .unwrap()
        .execute([])
        .unwrap();
}

/// `n` leases of `guild`, each saving and deleting a quote; `secure`: as our connections
/// are, else with `secure_delete` turned off first.
async fn writes(store: &GuildDatabaseManager, guild: u64, n: usize, secure: bool) -> Samples {
    let mut run = Samples::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        store
            .with_guild(guild, move |c| {
                if !secure {
                    c.execute_batch("PRAGMA secure_delete = OFF;").unwrap();
                }
                add_and_delete(c)
            })
            .await
            .unwrap();
        run.push(started.elapsed());
    }
    run
}

/// Forgets the member in `guild` (1,000 quotes), with or without the purge; milliseconds.
async fn forget(store: &GuildDatabaseManager, guild: u64, purge: bool) -> f64 {
    store
        .with_guild(guild, move |c| {
            ops_data::fill_guild(c, guild, 1000)?;
            c.execute(
                "UPDATE quotes SET added_by = ?1 WHERE id % 10 = 0",
                [MEMBER],
            )
        })
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    store
        .with_guild(guild, move |c| {
            privacy::forget_user(
                c,
                MEMBER as u64,
                ForgetMode::Delete,
                ForgetActor::Operator,
                Utc::now(),
            )?;
            if purge {
                privacy::purge_erased(c)?;
            }
            Ok::<_, privacy::PrivacyError>(())
        })
        .await
        .unwrap()
        .unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

pub async fn erasure(size: Size, scratch: &Path) -> Case {
    let n = size.pick(1000, 5000);
    let dir = scratch.join("erasure");
    let store = store(&dir, 256);
    let (mut secure, mut plain) = (Vec::new(), Vec::new());
    let (mut purged, mut unpurged) = (Vec::new(), Vec::new());
    for repeat in 0..REPEATS as u64 {
        secure.push(writes(&store, 1, n, true).await);
        plain.push(writes(&store, 2, n, false).await);
        purged.push(forget(&store, 10 + 2 * repeat, true).await);
        unpurged.push(forget(&store, 11 + 2 * repeat, false).await);
    }
    store.shutdown().await;
    set_aside(&dir);
    let p50 = |runs: &[Samples]| median(runs.iter().map(|s| s.percentile_ms(50.0)).collect());
    let (secure_ms, plain_ms) = (p50(&secure), p50(&plain));
    let ratio = secure_ms / plain_ms;
    Case::new(
        "erasure",
        json!({"write_p50_ms": secure_ms, "forget_with_purge_ms": median(purged)}),
        Some(json!({"write_p50_ms_without_secure_delete": plain_ms,
                    "forget_without_purge_ms": median(unpurged)})),
        Some(ratio),
        "writes with secure_delete ≤ 1.2× without (the purge is reported)",
        ratio <= 1.2,
    )
}
