//! The `guildkeep` binary: parses the command line, loads the configuration, dispatches to
//! the library, and turns any failure into one line on stderr and a non-zero exit.
//! Nothing else lives here.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use guildkeep::{config::Config, ops::inspect, store::GuildDatabaseManager};

#[derive(Parser)]
#[command(
    version,
    about = "A Discord bot that keeps every guild's data in its own SQLite file"
)]
struct Cli {
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
}

#[derive(Subcommand)]
enum SchemaAction {
    /// Each guild's schema version, without changing anything.
    Status,
    /// Migrate every guild to the latest schema.
    Upgrade,
}

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth knowing about.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("error: .env: {e}");
            return ExitCode::FAILURE;
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUILDKEEP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, for a terminal or a log collector.
fn one_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        config.store.data_dir = dir;
    }
    let store = GuildDatabaseManager::new(config.store.clone())
        .with_context(|| format!("data directory {}", config.store.data_dir.display()))?;
    let result = match cli.command {
        Command::Stats => print_stats(&store).await,
        Command::Check { guilds } => check(&store, &guilds).await,
        Command::Schema {
            action: SchemaAction::Status,
        } => schema_status(&store).await,
        Command::Schema {
            action: SchemaAction::Upgrade,
        } => schema_upgrade(&store).await,
    };
    store.shutdown().await;
    result
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
    let latest = guildkeep::store::Migrations::embedded().latest();
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
