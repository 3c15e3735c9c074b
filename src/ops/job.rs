//! Every operator command as one [`Job`]: what the command line parses, what travels over the
//! control socket, and what [`Job::run`] carries out inside the data directory's owner,
//! writing the same lines to a [`Console`] wherever it runs. A job run in the bot for the
//! command line therefore prints and fails exactly as the same job run standalone.
//!
//! Not here: asking for confirmation (the command line's, before a job is sent), the socket
//! (`control/`), what each job does (`backup.rs`, `gdpr.rs`, …).

use std::{collections::BTreeMap, path::Path, path::PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use super::{backup, gdpr, inspect, legacy, restore, Owner};
use crate::{
    privacy,
    store::{paths, Migrations},
};

/// An operator command, as parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// Guilds on disk, total bytes, the largest guilds and schema versions.
    Stats,
    /// Integrity, foreign-key and schema check of every guild (or those named): any object
    /// guildkeep's migrations did not make is named. Non-zero exit naming each failing guild.
    Check {
        #[arg(long = "guild", value_name = "ID")]
        guilds: Vec<u64>,
    },
    /// Schema versions on disk, or migrate every guild now.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Online backup of every guild (or those named) into a new timestamped set.
    Backup {
        #[arg(long = "guild", value_name = "ID")]
        guilds: Vec<u64>,
        /// Where backup sets go [default: <data_dir>/backups].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Keep this many complete sets, removing older ones once the new set is verified.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        keep: Option<u64>,
    },
    /// Replace one guild's data with a backup copy (the replaced data is kept beside it).
    Restore {
        #[arg(long, value_name = "ID")]
        guild: u64,
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Data-protection requests.
    Gdpr {
        #[command(subcommand)]
        action: GdprAction,
    },
    /// Import VeraBot's database (one file, or its per-guild files) into per-guild databases.
    MigrateLegacy(MigrateLegacyArgs),
}

/// `migrate-legacy`'s command line; [`legacy::ImportOptions`] is what the import takes.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
pub struct MigrateLegacyArgs {
    /// VeraBot's single database (`data/db/quotes.db`, up to its v2.9.0).
    #[arg(long, value_name = "FILE", required_unless_present = "source_dir")]
    source: Option<PathBuf>,
    /// VeraBot's `data/db` directory with per-guild files, `guilds/<ID>/quotes.db`
    /// (its v2.10.0 on).
    #[arg(long, value_name = "DIR", conflicts_with = "source")]
    source_dir: Option<PathBuf>,
    /// Print the report without writing anything under the data directory.
    #[arg(long)]
    dry_run: bool,
    /// Import only these guilds.
    #[arg(long = "guild", value_name = "ID")]
    guilds: Vec<u64>,
    /// Where quotes and reminders without a guild go (otherwise they are skipped).
    #[arg(long, value_name = "ID")]
    default_guild: Option<u64>,
    /// Rows without a guild, and global opt-ins, go to every guild in the source (what
    /// VeraBot's own single-to-multi script did).
    #[arg(long, conflicts_with = "default_guild")]
    to_every_guild: bool,
    /// The channel where reminders go that VeraBot posted in its one notification channel
    /// (server reminders, reminders for roles); without it they are kept cancelled.
    #[arg(long, value_name = "ID")]
    reminder_channel: Option<u64>,
    /// Also write the report to this file as JSON.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

impl TryFrom<MigrateLegacyArgs> for legacy::ImportOptions {
    type Error = anyhow::Error;

    /// Fails on a job that names no source, which only the control socket can send.
    fn try_from(args: MigrateLegacyArgs) -> anyhow::Result<Self> {
        let (source, per_guild) = match (args.source, args.source_dir) {
            (_, Some(dir)) => (dir, true),
            (Some(file), None) => (file, false),
            (None, None) => bail!("give --source FILE or --source-dir DIR"),
        };
        Ok(Self {
            source,
            per_guild,
            dry_run: args.dry_run,
            guilds: args.guilds,
            default_guild: args.default_guild,
            to_every_guild: args.to_every_guild,
            reminder_channel: args.reminder_channel,
            report: args.report,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaAction {
    /// Each guild's schema version, without changing anything.
    Status,
    /// Migrate every guild to the latest schema.
    Upgrade,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GdprAction {
    /// Delete all of one guild's data.
    DeleteGuild {
        id: u64,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Remove one member's data from one guild or from every guild.
    ForgetUser {
        user_id: u64,
        #[arg(long, value_name = "ID")]
        guild: Option<u64>,
        #[arg(long, value_enum, default_value_t = ForgetMode::Anonymise)]
        mode: ForgetMode,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// One member's data as JSON on stdout (or in a file), keyed by guild id.
    ExportUser {
        user_id: u64,
        #[arg(long, value_name = "ID")]
        guild: Option<u64>,
        /// Write the JSON to this file instead, readable by its owner only (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `--mode` of forget-user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForgetMode {
    /// Keep the quote texts they saved, without their id.
    Anonymise,
    /// Delete the quotes they saved as well.
    Delete,
    /// Delete the quotes they saved and the quotes of their words.
    DeleteAll,
}

impl From<ForgetMode> for privacy::ForgetMode {
    fn from(mode: ForgetMode) -> Self {
        match mode {
            ForgetMode::Anonymise => Self::Anonymise,
            ForgetMode::Delete => Self::Delete,
            ForgetMode::DeleteAll => Self::DeleteAll,
        }
    }
}

/// Where a job's lines go: this process's stdout and stderr, or the command line that sent
/// the job over the control socket.
pub trait Console: Send + Sync {
    /// A line of the job's result (stdout).
    fn out(&self, line: &str);
    /// A line about something that went wrong (stderr).
    fn err(&self, line: &str);
}

/// This process's stdout and stderr.
pub struct StdConsole;

impl Console for StdConsole {
    fn out(&self, line: &str) {
        println!("{line}");
    }

    fn err(&self, line: &str) {
        eprintln!("{line}");
    }
}

impl Job {
    /// The question to confirm before the job runs, for those that destroy data.
    pub fn confirmation(&self) -> Option<String> {
        match self {
            Job::Gdpr {
                action: GdprAction::DeleteGuild { id, yes: false },
            } => Some(format!(
                "Delete ALL data of guild {id}? This cannot be undone."
            )),
            Job::Gdpr {
                action:
                    GdprAction::ForgetUser {
                        user_id,
                        guild,
                        yes: false,
                        ..
                    },
            } => {
                let scope = guild.map_or("every guild".to_owned(), |g| format!("guild {g}"));
                Some(format!("Forget member {user_id} in {scope}?"))
            }
            _ => None,
        }
    }

    /// Records that the operator confirmed, so the owner runs it without asking.
    pub fn confirmed(mut self) -> Self {
        if let Job::Gdpr {
            action: GdprAction::DeleteGuild { yes, .. } | GdprAction::ForgetUser { yes, .. },
        } = &mut self
        {
            *yes = true;
        }
        self
    }

    /// The job with every path made absolute against `cwd`: the owner that runs it may have
    /// another working directory.
    pub fn with_paths_from(mut self, cwd: &Path) -> Self {
        let absolute = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = cwd.join(&*path);
            }
        };
        match &mut self {
            Job::Backup { out, .. } => out.iter_mut().for_each(absolute),
            Job::Restore { from, .. } => absolute(from),
            Job::MigrateLegacy(args) => {
                let paths = [&mut args.source, &mut args.source_dir, &mut args.report];
                paths.into_iter().flatten().for_each(absolute);
            }
            Job::Gdpr {
                action: GdprAction::ExportUser { out, .. },
            } => out.iter_mut().for_each(absolute),
            _ => {}
        }
        self
    }

    /// Carries the job out and writes its report. An error is the one-line reason the
    /// command exits non-zero with.
    pub async fn run(self, owner: &Owner, console: &dyn Console) -> anyhow::Result<()> {
        if self.confirmation().is_some() {
            bail!("not confirmed; nothing was changed");
        }
        let store = &owner.store;
        match self {
            Job::Stats => print_stats(owner, console).await,
            Job::Check { guilds } => check(owner, &guilds, console).await,
            Job::Schema {
                action: SchemaAction::Status,
            } => schema_status(owner, console).await,
            Job::Schema {
                action: SchemaAction::Upgrade,
            } => schema_upgrade(owner, console).await,
            Job::Backup { guilds, out, keep } => {
                let keep = keep.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
                let report =
                    backup::backup(store, backup::BackupOptions { guilds, out, keep }).await?;
                console.out(&format!(
                    "backup set {}: {} guilds copied and verified",
                    report.set.display(),
                    report.manifest.guilds.len()
                ));
                for removed in &report.removed {
                    console.out(&format!("removed old set {}", removed.display()));
                }
                fail_on("backup", report.failures(), console)
            }
            Job::Restore { guild, from } => {
                let report =
                    restore::restore(owner, restore::RestoreOptions { guild, from }).await?;
                if let Some(version) = report.migrated_from {
                    console.out(&format!("migrated the copy from schema v{version}"));
                }
                console.out(&format!(
                    "guild {} restored; the replaced data is kept at {}",
                    report.guild,
                    report.kept.display()
                ));
                Ok(())
            }
            Job::Gdpr { action } => gdpr_job(owner, action, console).await,
            Job::MigrateLegacy(args) => {
                let options = legacy::ImportOptions::try_from(args)?;
                let report = legacy::migrate_legacy(owner, options).await?;
                console.out(&serde_json::to_string_pretty(&report)?);
                fail_on("import", &report.failures, console)
            }
        }
    }
}

async fn gdpr_job(owner: &Owner, action: GdprAction, console: &dyn Console) -> anyhow::Result<()> {
    match action {
        GdprAction::DeleteGuild { id, .. } => {
            let report = gdpr::delete_guild(owner, id).await?;
            match report.removed {
                Some(summary) => console.out(&format!(
                    "guild {id} deleted: {}",
                    serde_json::to_string(&summary)?
                )),
                None => console.out(&format!("guild {id} had no data")),
            }
            Ok(())
        }
        GdprAction::ForgetUser {
            user_id,
            guild,
            mode,
            ..
        } => {
            let options = gdpr::ForgetOptions {
                user: user_id,
                guild,
                mode: mode.into(),
            };
            let report = gdpr::forget_user(owner, options).await?;
            for (guild, counts) in &report.guilds {
                console.out(&format!(
                    "guild {guild}: {}",
                    serde_json::to_string(counts)?
                ));
            }
            console.out(&format!(
                "forgot member {user_id} in {} guilds",
                report.guilds.len()
            ));
            fail_on("forget-user", &report.failures, console)
        }
        GdprAction::ExportUser {
            user_id,
            guild,
            out,
        } => {
            let report = gdpr::export_user(&owner.store, user_id, guild).await?;
            let json = serde_json::to_string_pretty(&report.guilds)?;
            match out {
                // Personal data: never left readable by others, never half written.
                Some(path) => {
                    let written = path.clone();
                    tokio::task::spawn_blocking(move || {
                        paths::replace_file(&path, json.as_bytes())
                    })
                    .await??;
                    console.out(&format!(
                        "member {user_id}'s data written to {}",
                        written.display()
                    ));
                }
                None => console.out(&json),
            }
            fail_on("export-user", &report.failures, console)
        }
    }
}

/// The error and its causes on one line: how a failed job (or any command) ends, on a
/// terminal, in a log collector, or sent back over the control socket.
pub fn one_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// Names every guild a job failed for, after the job has reported the rest.
fn fail_on(
    job: &str,
    failures: &BTreeMap<u64, String>,
    console: &dyn Console,
) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    for (guild, reason) in failures {
        console.err(&format!("guild {guild}: {reason}"));
    }
    let names: Vec<String> = failures.keys().map(ToString::to_string).collect();
    bail!("{job} failed for guild(s) {}", names.join(", "))
}

async fn print_stats(owner: &Owner, console: &dyn Console) -> anyhow::Result<()> {
    let stats = inspect::stats(&owner.store).await?;
    console.out(&format!("guilds on disk: {}", stats.guilds));
    console.out(&format!("total bytes:    {}", stats.total_bytes));
    console.out(&format!("quarantined:    {}", stats.quarantined));
    console.out(&format!(
        "schema versions (this build: {}):",
        stats.latest_version
    ));
    for (version, count) in &stats.versions {
        match version {
            Some(v) => console.out(&format!("  v{v}: {count}")),
            None => console.out(&format!("  unreadable: {count}")),
        }
    }
    if !stats.largest.is_empty() {
        console.out("largest guilds:");
        for (guild, bytes) in &stats.largest {
            console.out(&format!("  {guild}: {bytes} bytes"));
        }
    }
    if let Some(bot) = &owner.bot {
        print_live_store(owner.store.stats(), bot.pending.all().len(), console);
    }
    Ok(())
}

/// The running bot's store since it started: the figures `/metrics` exports as `store_*`.
fn print_live_store(live: crate::store::Stats, pending_deletions: usize, console: &dyn Console) {
    let uses = live.hits + live.misses;
    // Lossy only beyond 2^53 uses, far past any figure worth a decimal.
    #[allow(clippy::cast_precision_loss)]
    let hit_rate = if uses == 0 {
        0.0
    } else {
        100.0 * live.hits as f64 / uses as f64
    };
    console.out("running bot's store, since it started:");
    console.out(&format!(
        "  open guild databases: {} (opening {}, closing {}), {} connections lent",
        live.open_pools, live.opening_pools, live.closing_pools, live.leased
    ));
    console.out(&format!(
        "  uses: {} hits, {} misses ({hit_rate:.1}% hits)",
        live.hits, live.misses
    ));
    console.out(&format!(
        "  opens: {} reopened, {} created from the spare, {} from the template",
        live.reopens, live.created_from_spare, live.created_from_template
    ));
    console.out(&format!(
        "  closes: {} evictions, {} idle; {} uses refused at capacity",
        live.evictions, live.idle_closes, live.at_capacity
    ));
    console.out(&format!("  pending guild deletions: {pending_deletions}"));
}

async fn check(owner: &Owner, guilds: &[u64], console: &dyn Console) -> anyhow::Result<()> {
    let results = inspect::check(&owner.store, guilds).await?;
    let failing: Vec<_> = results.iter().filter(|r| !r.problems.is_empty()).collect();
    for result in &failing {
        for problem in result.problems.iter().take(5) {
            console.out(&format!("guild {}: {problem}", result.guild));
        }
    }
    console.out(&format!(
        "checked {} guilds: {} ok, {} failing",
        results.len(),
        results.len() - failing.len(),
        failing.len()
    ));
    if !failing.is_empty() {
        let names: Vec<String> = failing.iter().map(|r| r.guild.to_string()).collect();
        bail!("integrity check failed for guild(s) {}", names.join(", "));
    }
    Ok(())
}

async fn schema_status(owner: &Owner, console: &dyn Console) -> anyhow::Result<()> {
    let latest = Migrations::embedded().latest();
    let mut behind = 0;
    for (guild, version) in inspect::schema_status(&owner.store).await? {
        match version {
            Some(v) if v == latest => {}
            Some(v) => {
                behind += 1;
                console.out(&format!("guild {guild}: v{v}"));
            }
            None => console.out(&format!("guild {guild}: unreadable")),
        }
    }
    console.out(&format!(
        "latest schema: v{latest}; guilds behind: {behind}"
    ));
    Ok(())
}

async fn schema_upgrade(owner: &Owner, console: &dyn Console) -> anyhow::Result<()> {
    let upgrades = inspect::schema_upgrade(&owner.store).await?;
    let mut failed = Vec::new();
    for upgrade in &upgrades {
        match &upgrade.outcome {
            Ok((from, to)) if from != to => {
                console.out(&format!("guild {}: v{from} -> v{to}", upgrade.guild))
            }
            Ok(_) => {}
            Err(e) => {
                console.out(&format!("guild {}: {e}", upgrade.guild));
                failed.push(upgrade.guild.to_string());
            }
        }
    }
    console.out(&format!(
        "{} guilds at the latest schema",
        upgrades.len() - failed.len()
    ));
    if !failed.is_empty() {
        bail!("schema upgrade failed for guild(s) {}", failed.join(", "));
    }
    Ok(())
}
