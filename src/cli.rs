//! The command line: clap definitions, dispatch to the library, and the text each command
//! prints. `main.rs` only sets up logging and the runtime around [`run`].
//! Not here: what the commands do (`ops/`, `bot/`).

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    bot,
    config::Config,
    ops::{backup, gdpr, inspect, legacy, restore},
    privacy::ForgetMode,
    store::{GuildDatabaseManager, Migrations},
};

#[derive(Parser)]
#[command(
    version,
    about = "A Discord bot that keeps every guild's data in its own SQLite file"
)]
pub struct Cli {
    /// The data directory (overrides `data_dir` in the config file and GUILDKEEP_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The config file [default: guildkeep.toml, when present].
    #[arg(long, global = true, value_name = "FILE", env = "GUILDKEEP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot (needs DISCORD_TOKEN, from the environment or .env) until SIGINT/SIGTERM.
    Run,
    #[command(flatten)]
    Operator(OperatorCommand),
}

/// The commands that work on a data directory through a store of their own; the bot builds
/// its store itself.
#[derive(Subcommand)]
enum OperatorCommand {
    /// Guilds on disk, total bytes, the largest guilds and schema versions.
    Stats,
    /// Integrity and foreign-key check of every guild (or those named); non-zero exit naming
    /// each failing guild.
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
    /// Split a legacy single database into per-guild databases.
    MigrateLegacy {
        #[arg(long, value_name = "FILE")]
        source: PathBuf,
        /// Print the report without writing anything under the data directory.
        #[arg(long)]
        dry_run: bool,
        /// Import only these guilds.
        #[arg(long = "guild", value_name = "ID")]
        guilds: Vec<u64>,
        /// Where quotes and reminders without a guild go (otherwise they are skipped).
        #[arg(long, value_name = "ID")]
        default_guild: Option<u64>,
        /// Also write the report to this file as JSON.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SchemaAction {
    /// Each guild's schema version, without changing anything.
    Status,
    /// Migrate every guild to the latest schema.
    Upgrade,
}

#[derive(Subcommand)]
enum GdprAction {
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
        #[arg(long, value_enum, default_value_t = Mode::Anonymise)]
        mode: Mode,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// One member's data as JSON on stdout, keyed by guild id.
    ExportUser {
        user_id: u64,
        #[arg(long, value_name = "ID")]
        guild: Option<u64>,
    },
}

/// `--mode` of forget-user.
#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Keep the quote texts they saved, without their id.
    Anonymise,
    /// Delete the quotes they saved as well.
    Delete,
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        config.store.data_dir = dir;
    }
    let command = match cli.command {
        Command::Run => return bot::run(config, shutdown_signal()).await,
        Command::Operator(command) => command,
    };
    let store = GuildDatabaseManager::new(config.store.clone())
        .with_context(|| format!("data directory {}", config.store.data_dir.display()))?;
    let result = dispatch(&store, command).await;
    store.shutdown().await;
    result
}

async fn dispatch(store: &GuildDatabaseManager, command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Stats => print_stats(store).await,
        OperatorCommand::Check { guilds } => check(store, &guilds).await,
        OperatorCommand::Schema {
            action: SchemaAction::Status,
        } => schema_status(store).await,
        OperatorCommand::Schema {
            action: SchemaAction::Upgrade,
        } => schema_upgrade(store).await,
        OperatorCommand::Backup { guilds, out, keep } => {
            let keep = keep.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let report = backup::backup(store, backup::BackupOptions { guilds, out, keep }).await?;
            println!(
                "backup set {}: {} guilds copied and verified",
                report.set.display(),
                report.manifest.guilds.len()
            );
            for removed in &report.removed {
                println!("removed old set {}", removed.display());
            }
            fail_on("backup", report.failures())
        }
        OperatorCommand::Restore { guild, from } => {
            let report = restore::restore(store, restore::RestoreOptions { guild, from }).await?;
            if let Some(version) = report.migrated_from {
                println!("migrated the copy from schema v{version}");
            }
            println!(
                "guild {} restored; the replaced data is kept at {}",
                report.guild,
                report.kept.display()
            );
            Ok(())
        }
        OperatorCommand::Gdpr { action } => gdpr_command(store, action).await,
        OperatorCommand::MigrateLegacy {
            source,
            dry_run,
            guilds,
            default_guild,
            report,
        } => {
            let options = legacy::ImportOptions {
                source,
                dry_run,
                guilds,
                default_guild,
                report,
            };
            let report = legacy::migrate_legacy(store, options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            fail_on("import", &report.failures)
        }
    }
}

async fn gdpr_command(store: &GuildDatabaseManager, action: GdprAction) -> anyhow::Result<()> {
    match action {
        GdprAction::DeleteGuild { id, yes } => {
            confirm(
                yes,
                &format!("Delete ALL data of guild {id}? This cannot be undone."),
            )?;
            let report = gdpr::delete_guild(store, id).await?;
            match report.removed {
                Some(summary) => {
                    println!("guild {id} deleted: {}", serde_json::to_string(&summary)?)
                }
                None => println!("guild {id} had no data"),
            }
            Ok(())
        }
        GdprAction::ForgetUser {
            user_id,
            guild,
            mode,
            yes,
        } => {
            let scope = guild.map_or("every guild".to_owned(), |g| format!("guild {g}"));
            confirm(yes, &format!("Forget member {user_id} in {scope}?"))?;
            let mode = match mode {
                Mode::Anonymise => ForgetMode::Anonymise,
                Mode::Delete => ForgetMode::Delete,
            };
            let report = gdpr::forget_user(
                store,
                gdpr::ForgetOptions {
                    user: user_id,
                    guild,
                    mode,
                },
            )
            .await?;
            for (guild, counts) in &report.guilds {
                println!("guild {guild}: {}", serde_json::to_string(counts)?);
            }
            println!("forgot member {user_id} in {} guilds", report.guilds.len());
            fail_on("forget-user", &report.failures)
        }
        GdprAction::ExportUser { user_id, guild } => {
            let report = gdpr::export_user(store, user_id, guild).await?;
            println!("{}", serde_json::to_string_pretty(&report.guilds)?);
            fail_on("export-user", &report.failures)
        }
    }
}

/// Completes on SIGINT or SIGTERM: the bot then stops taking interactions, finishes the
/// running ones and shuts the store down.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
}

/// Names every guild a job failed for, after the job has reported the rest.
fn fail_on(job: &str, failures: &std::collections::BTreeMap<u64, String>) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    for (guild, reason) in failures {
        eprintln!("guild {guild}: {reason}");
    }
    let names: Vec<String> = failures.keys().map(ToString::to_string).collect();
    bail!("{job} failed for guild(s) {}", names.join(", "))
}

/// Asks on the terminal unless `yes`; without a terminal, refuses unless `yes`.
fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal: pass --yes to confirm");
    }
    eprint!("{question} Type 'yes' to continue: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

async fn print_stats(store: &GuildDatabaseManager) -> anyhow::Result<()> {
    let stats = inspect::stats(store).await?;
    println!("guilds on disk: {}", stats.guilds);
    println!("total bytes:    {}", stats.total_bytes);
    println!("schema versions (this build: {}):", stats.latest_version);
    for (version, count) in &stats.versions {
        match version {
            Some(v) => println!("  v{v}: {count}"),
            None => println!("  unreadable: {count}"),
        }
    }
    if !stats.largest.is_empty() {
        println!("largest guilds:");
        for (guild, bytes) in &stats.largest {
            println!("  {guild}: {bytes} bytes");
        }
    }
    Ok(())
}

async fn check(store: &GuildDatabaseManager, guilds: &[u64]) -> anyhow::Result<()> {
    let results = inspect::check(store, guilds).await?;
    let failing: Vec<_> = results.iter().filter(|r| !r.problems.is_empty()).collect();
    for result in &failing {
        for problem in result.problems.iter().take(5) {
            println!("guild {}: {problem}", result.guild);
        }
    }
    println!(
        "checked {} guilds: {} ok, {} failing",
        results.len(),
        results.len() - failing.len(),
        failing.len()
    );
    if !failing.is_empty() {
        let names: Vec<String> = failing.iter().map(|r| r.guild.to_string()).collect();
        bail!("integrity check failed for guild(s) {}", names.join(", "));
    }
    Ok(())
}

async fn schema_status(store: &GuildDatabaseManager) -> anyhow::Result<()> {
    let latest = Migrations::embedded().latest();
    let mut behind = 0;
    for (guild, version) in inspect::schema_status(store).await? {
        match version {
            Some(v) if v == latest => {}
            Some(v) => {
                behind += 1;
                println!("guild {guild}: v{v}");
            }
            None => println!("guild {guild}: unreadable"),
        }
    }
    println!("latest schema: v{latest}; guilds behind: {behind}");
    Ok(())
}

async fn schema_upgrade(store: &GuildDatabaseManager) -> anyhow::Result<()> {
    let upgrades = inspect::schema_upgrade(store).await?;
    let mut failed = Vec::new();
    for upgrade in &upgrades {
        match &upgrade.outcome {
            Ok((from, to)) if from != to => println!("guild {}: v{from} -> v{to}", upgrade.guild),
            Ok(_) => {}
            Err(e) => {
                println!("guild {}: {e}", upgrade.guild);
                failed.push(upgrade.guild.to_string());
            }
        }
    }
    println!(
        "{} guilds at the latest schema",
        upgrades.len() - failed.len()
    );
    if !failed.is_empty() {
        bail!("schema upgrade failed for guild(s) {}", failed.join(", "));
    }
    Ok(())
}
