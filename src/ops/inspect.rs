//! Reports on the guild databases of a data directory: `stats`, `check`, `schema status`,
//! and `schema upgrade`, which migrates every guild now instead of at its next use.
//! Reports open files read-only and change nothing. Not here: backups and repairs.

use futures::{stream, StreamExt};
use serde::Serialize;

use super::{progress::Progress, PARALLEL_GUILDS};
use crate::store::{
    migrate::{schema_drift, user_version, Migrations},
    side_by_side, GuildDatabaseManager, StoreError,
};

/// What `guildkeep stats` prints.
#[derive(Debug, Serialize)]
pub struct DiskStats {
    pub guilds: usize,
    pub total_bytes: u64,
    /// Largest first, at most [`LARGEST`].
    pub largest: Vec<(u64, u64)>,
    /// Schema version → number of guilds; `None` counts files that could not be read.
    pub versions: Vec<(Option<u32>, usize)>,
    pub latest_version: u32,
    pub quarantined: usize,
}

pub const LARGEST: usize = 10;

/// One guild's result from `check`: empty `problems` means healthy.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub guild: u64,
    pub problems: Vec<String>,
}

/// One guild's outcome of `schema upgrade`.
#[derive(Debug)]
pub struct Upgrade {
    pub guild: u64,
    pub outcome: Result<(u32, u32), StoreError>,
}

pub async fn stats(store: &GuildDatabaseManager) -> Result<DiskStats, StoreError> {
    let guilds = store.guilds_on_disk().await?;
    let rows: Vec<(u64, u64, Option<u32>)> = stream::iter(guilds.iter().copied())
        .map(|guild| async move {
            let bytes = store.guild_bytes(guild).await.unwrap_or(0);
            let version = store
                .inspect_guild(guild, |conn| user_version(conn).ok())
                .await
                .ok()
                .flatten();
            (guild, bytes, version)
        })
        .buffer_unordered(PARALLEL_GUILDS * 4)
        .collect()
        .await;
    let mut largest: Vec<(u64, u64)> = rows.iter().map(|(g, bytes, _)| (*g, *bytes)).collect();
    largest.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    largest.truncate(LARGEST);
    let mut versions = std::collections::BTreeMap::new();
    for (_, _, version) in &rows {
        *versions.entry(*version).or_insert(0) += 1;
    }
    Ok(DiskStats {
        guilds: rows.len(),
        total_bytes: rows.iter().map(|(_, bytes, _)| bytes).sum(),
        largest,
        versions: versions.into_iter().collect(),
        latest_version: crate::store::Migrations::embedded().latest(),
        quarantined: store.quarantined_files(),
    })
}

/// `PRAGMA integrity_check`, `PRAGMA foreign_key_check` and the schema (exactly the one its
/// version has, nothing planted beside it) of each guild (every guild on disk when `guilds` is
/// empty). Results are in guild order.
pub async fn check(
    store: &GuildDatabaseManager,
    guilds: &[u64],
) -> Result<Vec<CheckResult>, StoreError> {
    let guilds = selected(store, guilds).await?;
    let progress = Progress::new("check", guilds.len() as u64);
    let mut results: Vec<CheckResult> = stream::iter(guilds)
        .map(|guild| {
            let progress = &progress;
            async move {
                let problems = match store.inspect_guild(guild, check_one).await {
                    Ok(Ok(problems)) => problems,
                    Ok(Err(e)) => vec![e.to_string()],
                    Err(e) => vec![e.to_string()],
                };
                progress.advance();
                CheckResult { guild, problems }
            }
        })
        .buffer_unordered(PARALLEL_GUILDS)
        .collect()
        .await;
    progress.finish();
    results.sort_unstable_by_key(|r| r.guild);
    Ok(results)
}

fn check_one(conn: &rusqlite::Connection) -> Result<Vec<String>, StoreError> {
    let mut problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|line| line != "ok")
        .collect();
    let orphans: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |row| {
            Ok(format!(
                "foreign key: row {} of {} points to a missing {} row",
                row.get::<_, Option<i64>>(1)?
                    .map_or("?".into(), |id| id.to_string()),
                row.get::<_, String>(0)?,
                row.get::<_, String>(2)?
            ))
        })?
        .collect::<Result<_, _>>()?;
    problems.extend(orphans);
    // A file newer than this binary, or not ours at all, is not "ok" however intact it is;
    // one that is ours must have exactly our schema for its version.
    match Migrations::embedded().judge(conn) {
        Ok(_) => problems.extend(schema_drift(conn)?),
        Err(e @ StoreError::Sqlite(_)) => return Err(e),
        Err(other) => problems.push(other.to_string()),
    }
    Ok(problems)
}

/// Each guild's schema version on disk, read without migrating; `None` if unreadable.
pub async fn schema_status(
    store: &GuildDatabaseManager,
) -> Result<Vec<(u64, Option<u32>)>, StoreError> {
    let guilds = store.guilds_on_disk().await?;
    Ok(stream::iter(guilds)
        .map(|guild| async move {
            let version = store
                .inspect_guild(guild, |conn| user_version(conn).ok())
                .await
                .ok()
                .flatten();
            (guild, version)
        })
        .buffered(PARALLEL_GUILDS * 4)
        .collect()
        .await)
}

/// Migrates every guild to the latest schema now. A guild that fails is reported and the
/// others go on; its file stays at its previous version.
pub async fn schema_upgrade(store: &GuildDatabaseManager) -> Result<Vec<Upgrade>, StoreError> {
    let guilds = store.guilds_on_disk().await?;
    let progress = Progress::new("upgrade", guilds.len() as u64);
    let latest = crate::store::Migrations::embedded().latest();
    let upgrading = stream::iter(guilds)
        .map(|guild| {
            let progress = &progress;
            async move {
                let before = store.inspect_guild(guild, user_version).await;
                let outcome = match before {
                    Ok(Ok(before)) => store
                        .with_existing_guild(guild, |_| ())
                        .await
                        .map(|()| (before, latest)),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e),
                };
                progress.advance();
                Upgrade { guild, outcome }
            }
        })
        .buffer_unordered(PARALLEL_GUILDS)
        .collect();
    let mut upgrades: Vec<Upgrade> = side_by_side(upgrading).await;
    progress.finish();
    upgrades.sort_unstable_by_key(|u| u.guild);
    Ok(upgrades)
}

async fn selected(store: &GuildDatabaseManager, guilds: &[u64]) -> Result<Vec<u64>, StoreError> {
    if guilds.is_empty() {
        store.guilds_on_disk().await
    } else {
        Ok(guilds.to_vec())
    }
}
