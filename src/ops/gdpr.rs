//! `guildkeep gdpr`: an operator answering a data-protection request from the command line.
//!
//! - `delete-guild`: every file of one guild, through the store (which waits for running uses
//!   and never lets the guild reopen meanwhile), with the scheduler told first. The guild's audit table goes with it, so the
//!   deletion is logged instead, with the row counts it removed and no content.
//! - `forget-user`: [`privacy::forget_user`] in one guild or every guild on disk, a few at a
//!   time, with per-guild counts; each guild records its own audit row (operator, counts).
//! - `export-user`: [`privacy::export_user`] per guild, keyed by guild id, from read-only
//!   connections.
//!
//! Confirmation prompts and refusing to delete without a terminal or `--yes` are the command
//! line's (`cli.rs`); the rules of what is erased are `privacy.rs`'s.

use std::collections::BTreeMap;

use futures::{stream, StreamExt};
use serde::Serialize;

use anyhow::bail;

use super::{
    erase_backups::{erase_in_backups, Erasure},
    progress::Progress,
    Owner, PARALLEL_GUILDS,
};
use crate::{
    privacy::{self, ForgetActor, ForgetCounts, ForgetMode, GuildSummary, UserExport},
    reminders,
    store::{side_by_side, GuildDatabaseManager, StoreError},
};

#[derive(Debug, Serialize)]
pub struct DeleteGuildReport {
    pub guild: u64,
    /// What the deletion removed; `None` when the guild had no database.
    pub removed: Option<GuildSummary>,
}

/// Deletes all of `guild`'s data. Deleting a guild without data is not an error.
pub async fn delete_guild(owner: &Owner, guild: u64) -> anyhow::Result<DeleteGuildReport> {
    let removed = match owner
        .store
        .inspect_guild(guild, privacy::delete_guild_summary)
        .await
    {
        Ok(summary) => Some(summary?),
        Err(StoreError::UnknownGuild(_)) => None,
        Err(e) => return Err(e.into()),
    };
    remove_guild(owner, guild).await?;
    // The guild's audit table is gone with it: this log line is the record.
    match &removed {
        Some(summary) => tracing::warn!(
            guild,
            actor = "operator",
            action = "delete_guild",
            detail = %serde_json::to_string(summary)?,
            "guild data deleted"
        ),
        None => tracing::warn!(
            guild,
            actor = "operator",
            action = "delete_guild",
            "guild had no data to delete"
        ),
    }
    Ok(DeleteGuildReport { guild, removed })
}

/// Deletes every file of `guild` and everything the bot holds about it: the guild's
/// reminders are called off before the files go (sends already claimed included), and again
/// after, for any made meanwhile; a scheduled deletion of it is dropped. The bot's own
/// deletions (an admin's, the grace period's end) come here too.
pub async fn remove_guild(owner: &Owner, guild: u64) -> anyhow::Result<()> {
    let forget = || {
        if let Some(bot) = &owner.bot {
            bot.scheduler.forget_guild(guild);
        }
    };
    forget();
    owner.store.delete_guild(guild).await?;
    forget();
    if let Some(bot) = &owner.bot {
        let pending = bot.pending.clone();
        tokio::task::spawn_blocking(move || pending.cancel(guild)).await??;
    }
    erase_backups(owner, guild, Erasure::DeleteGuild).await
}

/// Applies `erasure` to `guild` in every backup set; an error names each set left behind.
async fn erase_backups(owner: &Owner, guild: u64, erasure: Erasure) -> anyhow::Result<()> {
    let root = owner.store.paths().backups_dir();
    let now = chrono::Utc::now();
    let failed =
        tokio::task::spawn_blocking(move || erase_in_backups(&root, guild, erasure, now)).await?;
    if failed.is_empty() {
        return Ok(());
    }
    let sets: Vec<String> = failed.keys().map(|s| s.display().to_string()).collect();
    bail!(
        "guild {guild}'s live data is erased, but these backup sets still hold it: {}",
        sets.join(", ")
    )
}

#[derive(Debug, Clone, Copy)]
pub struct ForgetOptions {
    pub user: u64,
    /// `None`: every guild on disk.
    pub guild: Option<u64>,
    pub mode: ForgetMode,
}

#[derive(Debug, Default, Serialize)]
pub struct ForgetReport {
    pub user: u64,
    pub guilds: BTreeMap<u64, ForgetCounts>,
    /// Guilds where forgetting failed (nothing changed there): the command names them and
    /// exits non-zero.
    pub failures: BTreeMap<u64, String>,
}

/// Forgets `options.user` in one guild or all of them. A named guild without a database is a
/// failure (a typo should not look like success); across all guilds, each that fails is listed
/// and the others are still done.
pub async fn forget_user(owner: &Owner, options: ForgetOptions) -> anyhow::Result<ForgetReport> {
    let guilds = scope(&owner.store, options.guild).await?;
    let progress = Progress::new("forget", guilds.len() as u64);
    let now = chrono::Utc::now();
    let forgetting = stream::iter(guilds)
        .map(|guild| {
            let progress = &progress;
            async move {
                let forgotten = forget_in_guild(
                    owner,
                    guild,
                    options.user,
                    options.mode,
                    ForgetActor::Operator,
                    now,
                )
                .await;
                progress.advance();
                (guild, forgotten)
            }
        })
        .buffer_unordered(PARALLEL_GUILDS)
        .collect();
    let outcomes: Vec<(u64, anyhow::Result<ForgetCounts>)> = side_by_side(forgetting).await;
    progress.finish();
    let mut report = ForgetReport {
        user: options.user,
        ..ForgetReport::default()
    };
    for (guild, outcome) in outcomes {
        match outcome {
            Ok(counts) => {
                report.guilds.insert(guild, counts);
            }
            Err(e) => {
                tracing::error!(
                    guild,
                    error = format!("{e:#}"),
                    "forget-user failed in guild"
                );
                report.failures.insert(guild, format!("{e:#}"));
            }
        }
    }
    Ok(report)
}

/// Forgets `user` in `guild` ([`privacy::forget_user`]) and calls off what the scheduler
/// holds of theirs: their reminders leave its index, and the guild's claimed reminders are
/// checked again before they go (the member may be a target). A guild without a database is
/// [`StoreError::UnknownGuild`]: none is made just to forget someone in it.
pub async fn forget_in_guild(
    owner: &Owner,
    guild: u64,
    user: u64,
    mode: ForgetMode,
    actor: ForgetActor,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ForgetCounts> {
    let forget = move |conn: &mut rusqlite::Connection| -> anyhow::Result<_> {
        let theirs = reminders::list(conn, user, false)?;
        let counts = privacy::forget_user(conn, user, mode, actor, now)?;
        Ok((counts, theirs))
    };
    let (counts, theirs) = owner.store.with_existing_guild(guild, forget).await??;
    if let Some(bot) = &owner.bot {
        for reminder in theirs {
            bot.scheduler.remove(guild, reminder.id);
        }
        bot.scheduler.recheck_guild(guild);
    }
    owner
        .store
        .with_existing_guild(guild, |conn| privacy::purge_erased(conn))
        .await??;
    erase_backups(owner, guild, Erasure::ForgetUser { user, mode }).await?;
    Ok(counts)
}

#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
    /// The JSON the command prints: guild id → what that guild holds about the user. Across all
    /// guilds, guilds holding nothing about the user are left out.
    pub guilds: BTreeMap<u64, UserExport>,
    #[serde(skip)]
    pub failures: BTreeMap<u64, String>,
}

/// Exports what one guild (or every guild) holds about `user`, changing nothing.
pub async fn export_user(
    store: &GuildDatabaseManager,
    user: u64,
    guild: Option<u64>,
) -> anyhow::Result<ExportReport> {
    let guilds = scope(store, guild).await?;
    let progress = Progress::new("export", guilds.len() as u64);
    let outcomes: Vec<(u64, anyhow::Result<UserExport>)> = stream::iter(guilds)
        .map(|g| {
            let progress = &progress;
            async move {
                let exported = store
                    .inspect_guild(g, move |conn| privacy::export_user(conn, user))
                    .await;
                progress.advance();
                (g, flatten(exported))
            }
        })
        .buffer_unordered(PARALLEL_GUILDS)
        .collect()
        .await;
    progress.finish();
    let mut report = ExportReport::default();
    for (g, outcome) in outcomes {
        match outcome {
            Ok(export) if guild.is_some() || !export.is_empty() => {
                report.guilds.insert(g, export);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(
                    guild = g,
                    error = format!("{e:#}"),
                    "export-user failed in guild"
                );
                report.failures.insert(g, format!("{e:#}"));
            }
        }
    }
    Ok(report)
}

async fn scope(store: &GuildDatabaseManager, guild: Option<u64>) -> anyhow::Result<Vec<u64>> {
    Ok(match guild {
        Some(guild) => vec![guild],
        None => store.guilds_on_disk().await?,
    })
}

fn flatten<T>(outcome: Result<Result<T, privacy::PrivacyError>, StoreError>) -> anyhow::Result<T> {
    Ok(outcome??)
}
