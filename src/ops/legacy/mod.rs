//! `guildkeep migrate-legacy`: splits a single database written by VeraBot, the Node.js
//! predecessor, into per-guild databases. Which layout the file is (VeraBot's plain single
//! database up to v2.9.0, or the guild-aware one of shared/legacy-format.md) is decided by its
//! tables and columns (`layout.rs`, docs/verabot-formats.md) and named in the report.
//!
//! The source is opened read-only with `immutable=1` (no lock, no journal, no WAL or shm file
//! created beside it) and its sha256 is compared before and after. It is not trusted: it is
//! read with SQLite's defensive settings and without memory mapping, and refused unless it
//! passes `quick_check` and holds only ordinary tables (and indexes) under the names read
//! (`source::vet`). A source with a `-wal` or `-journal` beside it is refused: immutable mode
//! would not read it, and the operator should checkpoint or recover it with the tool that
//! wrote it first. One reader thread streams the source guild by guild (`source.rs`) into a
//! short queue; each guild's plan is written in one transaction (`target.rs`), four guilds at
//! a time, so reading and writing overlap.
//!
//! Decisions where the spec leaves room (also in docs/operating.md):
//! - A guild id (and any snowflake) must be canonical decimal: digits, no sign, no spaces, no
//!   leading zero, not zero, at most i64::MAX. `' 123'` or `'0123'` are invalid, not guild 123.
//! - `--default-guild` also takes reminders with a NULL or empty `guildId`: like such quotes
//!   they come from before multi-guild support. It does not apply to opt-ins without a guild,
//!   which are global choices (applied per the spec).
//! - A quote's `category` becomes a tag (trimmed, lower case, merged with a legacy tag of the
//!   same name), except the default 'General' and empty ones.
//! - Quotes with empty text or text over 2000 characters are skipped and counted; author names
//!   are trimmed, cut to 100 characters, 'Anonymous' when empty. Tag descriptions are cut to
//!   200 characters; tags whose names are empty or over 32 characters are not imported.
//! - Reminders: message = subject, then the category (unless 'General'), the event time when
//!   VeraBot notified ahead of it, content, link and image, one per line, cut to 4000
//!   characters (counted). Due at VeraBot's `notificationTime` (what its notifier fired on),
//!   else `when_datetime`. Statuses: `completed` is sent; an active one with a successful
//!   `reminder_notifications` row is sent too (VeraBot never sent it again).
//! - Where a reminder goes: a 'server' one is posted in its `channelId`, else in
//!   `--reminder-channel` (VeraBot stored no channel and posted in one its environment named).
//!   A DM one without `createdBy` (all of VeraBot's) goes as a DM to its one member assignee,
//!   who becomes its creator (VeraBot sent it to the assignees, and its commands assign one
//!   member per reminder); one for a role or several members is posted in
//!   `--reminder-channel`. An active one with nowhere to go is kept as a cancelled DM-kind
//!   row with the reason in `last_error` (posting it nowhere, or as a DM to people who never
//!   asked for one, would both be wrong), and counted. Repeated assignments are one.
//!   An unparseable time keeps the reminder as cancelled, `due_at` = its creation time, the raw
//!   text quoted in `last_error`. Unknown statuses become cancelled the same way.
//! - Guild ids: `'legacy'` means none, as in VeraBot's own single-to-multi script;
//!   `--to-every-guild` copies rows without one (and global opt-ins) into every guild of the
//!   source, as that script did. A per-guild file (`--source-dir`) is its guild's, opt-ins too.
//! - Unreadable `addedAt`/`createdAt` times become the import's start time.
//! - No text reaches this process whole: each is cut in SQL to the bytes (four per character,
//!   UTF-8's most; NULs count) of one character more than its limit above: quote text 2001,
//!   author 101, tag name and category 33, reminder subject, content and link 4001 each; tag
//!   descriptions 200; preferences 4001 (longer preferences are dropped and counted); ids 20
//!   (longer is invalid anyway); times, statuses, kinds, ratings and opt-in flags 65 (a longer
//!   time is unreadable). A 1 MB quote is skipped as too long after reading 8 KB of it.
//! - Where the target already has a row that wins (a member's own rating of an imported quote,
//!   an opt-in choice), the legacy row is not imported and is counted.
//! - The `skipped` report counts, by `<source table>.<reason>`, every source row not imported
//!   as it was, including rows kept in a changed form (`*_kept_cancelled`, `*_truncated_*`).
//!
//! Not here: the command line (`main.rs`).

mod layout;
mod source;
mod target;
mod time;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, ensure, Context as _};
use futures::{stream, StreamExt};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use self::{
    layout::Layout,
    source::{GuildPlan, Scope},
};
pub use self::{
    source::{parse_snowflake, Skipped},
    target::GuildCounts,
};
use super::{
    files::{distrust, hex, sha256_file},
    progress::Progress,
    Owner,
};
use crate::store::{paths, side_by_side};

/// Guild plans read ahead of the writers. Small: each holds one guild's rows.
const QUEUE: usize = 4;
/// Guilds written at once. More than the cores: a guild's first write waits on file
/// creation and fsyncs in the store, and those waits overlap.
const WRITERS: usize = 4;

/// What `migrate-legacy` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The single database, or with `per_guild` VeraBot's data directory (`--source-dir`).
    pub source: PathBuf,
    /// `source` holds VeraBot's per-guild files, `guilds/<GUILD_ID>/quotes.db`.
    pub per_guild: bool,
    pub dry_run: bool,
    /// Empty: every guild in the source.
    pub guilds: Vec<u64>,
    pub default_guild: Option<u64>,
    /// Rows without a guild (or with `'legacy'`) and global opt-ins go to every guild in the
    /// source, as VeraBot's own single-to-multi script copied them.
    pub to_every_guild: bool,
    /// Where reminders go that VeraBot posted in the one channel its environment named.
    pub reminder_channel: Option<u64>,
    /// Where to write the report as JSON, besides returning it.
    pub report: Option<PathBuf>,
}

/// The `--report` JSON, exactly as legacy-format.md gives it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Which of VeraBot's layouts the source is (docs/verabot-formats.md).
    pub layout: &'static str,
    /// Rows imported by this run, per guild.
    pub guilds: BTreeMap<u64, GuildCounts>,
    pub skipped: BTreeMap<String, u64>,
    /// Guilds whose import failed (rolled back), with the reason. Not part of the JSON: the
    /// command names them and exits non-zero.
    #[serde(skip)]
    pub failures: BTreeMap<u64, String>,
}

/// Runs the import (or, with `dry_run`, rehearses it on in-memory copies of the guilds'
/// databases). Fails before writing anything on a bad source or bad options; a guild that
/// fails to import is rolled back and listed in `failures`, the others are still imported.
pub async fn migrate_legacy(owner: &Owner, options: ImportOptions) -> anyhow::Result<ImportReport> {
    for guild in options.guilds.iter().chain(&options.default_guild) {
        ensure!(
            parse_snowflake(&guild.to_string()).is_some(),
            "{guild} is not a guild id (a non-zero snowflake)"
        );
    }
    if let Some(channel) = options.reminder_channel {
        ensure!(
            parse_snowflake(&channel.to_string()).is_some(),
            "{channel} is not a channel id (a non-zero snowflake)"
        );
    }
    ensure!(
        !(options.to_every_guild && options.default_guild.is_some()),
        "rows without a guild go either to --default-guild or to every guild, not both"
    );
    let scope = Scope {
        guilds: options.guilds.iter().copied().collect(),
        default_guild: options.default_guild,
        reminder_channel: options.reminder_channel,
        to_every_guild: options.to_every_guild,
    };
    let report = if options.per_guild {
        import_guild_files(owner, &options.source, &scope, options.dry_run).await?
    } else {
        import_file(owner, &options.source, None, &scope, options.dry_run).await?
    };
    if let Some(path) = &options.report {
        let json = serde_json::to_vec_pretty(&report)?;
        let path = path.clone();
        tokio::task::spawn_blocking(move || paths::replace_file(&path, &json)).await??;
    }
    Ok(report)
}

/// Imports one file: the single database (`file_guild` `None`), or the per-guild file of
/// `file_guild`. Returns its report, without writing the report file.
async fn import_file(
    owner: &Owner,
    source: &Path,
    file_guild: Option<u64>,
    scope: &Scope,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    let source_path = source.to_path_buf();
    let (digest, total, layout, conn) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            refuse_side_files(&source_path)?;
            let digest = sha256_file(&source_path)?;
            let conn = open_source(&source_path)?;
            let layout = Layout::detect(&conn, file_guild)
                .with_context(|| format!("{} cannot be imported", source_path.display()))?;
            let total = source::count_rows(&conn, &layout)?;
            Ok((digest, total, layout, conn))
        })
        .await??;

    let now = chrono::Utc::now().timestamp();
    let progress = Arc::new(Progress::new("import", total));
    let (plans, queue) = tokio::sync::mpsc::channel::<GuildPlan>(QUEUE);
    let reader = {
        let progress = progress.clone();
        let layout = layout.clone();
        let scope = scope.clone();
        tokio::task::spawn_blocking(move || {
            source::read_source(&conn, &layout, &scope, now, &progress, |plan| {
                plans
                    .blocking_send(plan)
                    .context("the import's writers stopped")
            })
        })
    };

    let importing = stream::unfold(queue, |mut queue| async move {
        queue.recv().await.map(|plan| (plan, queue))
    })
    .map(|plan| async move {
        let guild = plan.guild;
        (guild, import_guild(owner, plan, now, dry_run).await)
    })
    .buffer_unordered(WRITERS)
    .collect();
    let outcomes: Vec<(u64, anyhow::Result<(GuildCounts, Skipped)>)> =
        side_by_side(importing).await;
    let read_skipped = reader.await??;
    progress.finish();

    let mut report = ImportReport {
        dry_run,
        layout: layout.name,
        ..ImportReport::default()
    };
    let mut skipped = read_skipped;
    for (guild, outcome) in outcomes {
        match outcome {
            Ok((counts, guild_skipped)) => {
                report.guilds.insert(guild, counts);
                skipped.merge(guild_skipped);
            }
            Err(e) => {
                tracing::error!(
                    guild,
                    error = format!("{e:#}"),
                    "legacy import of guild failed"
                );
                report.failures.insert(guild, format!("{e:#}"));
            }
        }
    }
    report.skipped = skipped.0;

    let source_path = source.to_path_buf();
    let after = tokio::task::spawn_blocking(move || sha256_file(&source_path)).await??;
    if after != digest {
        bail!(
            "{} changed during the import (sha256 before {}, after {})",
            source.display(),
            hex(&digest),
            hex(&after)
        );
    }
    Ok(report)
}

/// Imports every `<dir>/guilds/<GUILD_ID>/quotes.db`, one file after another, into one report.
/// A directory whose name is not a guild id, or without a `quotes.db`, is counted and left.
async fn import_guild_files(
    owner: &Owner,
    dir: &Path,
    scope: &Scope,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    let guilds_dir = dir.join("guilds");
    let listed = guilds_dir.clone();
    // Names only: one short string per guild directory, however many there are.
    let names = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&listed)
            .with_context(|| format!("{} is not a VeraBot data directory", listed.display()))?
        {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    })
    .await??;
    let mut report = ImportReport {
        dry_run,
        layout: "verabot-per-guild",
        ..ImportReport::default()
    };
    let mut skipped = Skipped::default();
    for name in names {
        let file = guilds_dir.join(&name).join("quotes.db");
        let Some(guild) = parse_snowflake(&name) else {
            skipped.add("guild_directories", "name_not_a_guild_id", 1);
            continue;
        };
        if !file.is_file() {
            skipped.add("guild_directories", "no_quotes_db", 1);
            continue;
        }
        let one = import_file(owner, &file, Some(guild as u64), scope, dry_run)
            .await
            .with_context(|| format!("guild {guild}"))?;
        report.guilds.extend(one.guilds);
        report.failures.extend(one.failures);
        skipped.merge(Skipped(one.skipped));
    }
    report.skipped = skipped.0;
    Ok(report)
}

async fn import_guild(
    owner: &Owner,
    plan: GuildPlan,
    now: i64,
    dry_run: bool,
) -> anyhow::Result<(GuildCounts, Skipped)> {
    let store = &owner.store;
    if dry_run {
        let mut rehearsal = store.guild_in_memory(plan.guild).await?;
        tokio::task::spawn_blocking(move || target::write_guild(&mut rehearsal, &plan, now)).await?
    } else {
        let guild = plan.guild;
        let imported = store
            .with_guild(guild, move |conn| target::write_guild(conn, &plan, now))
            .await??;
        owner.reload_reminders(guild).await?;
        Ok(imported)
    }
}

/// Opens the legacy database so that nothing can be written to or beside it, and so that
/// nothing in it is trusted: see [`source::vet`] for what it must be to be read at all.
fn open_source(path: &Path) -> anyhow::Result<Connection> {
    // A URI, for `immutable=1`; the path's own `%`, `?` and `#` must not be read as URI syntax.
    let mut uri = String::from("file:");
    for c in path
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))?
        .chars()
    {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", path.display()))?;
    // Not mapped into memory, although it is read-only and unchanging: a crafted file must
    // meet SQLite's checked reads, not pointers into its own pages.
    distrust(&conn)?;
    source::vet(&conn).with_context(|| format!("{} was refused", path.display()))?;
    // The reader's sorts (every table by guild) come before the first guild can be written,
    // so they run with helper threads.
    conn.execute_batch("PRAGMA threads = 2;")?;
    Ok(conn)
}

fn refuse_side_files(source: &Path) -> anyhow::Result<()> {
    ensure!(source.is_file(), "{} is not a file", source.display());
    for suffix in ["-wal", "-journal"] {
        let side = paths::with_suffix(source, suffix);
        if side.metadata().is_ok_and(|m| m.len() > 0) {
            bail!(
                "{} exists: the legacy database has unfinished writes; let the program that \
                 wrote it finish them (or run `sqlite3 {} 'PRAGMA wal_checkpoint(TRUNCATE)'`) first",
                side.display(),
                source.display()
            );
        }
    }
    Ok(())
}
