//! The command line: clap definitions, finding the data directory's owner, and handing
//! each operator command to it. `main.rs` only sets up logging and the runtime around
//! [`run`]. An operator command runs in the bot when a bot owns the directory (over the
//! control socket), else in this process, which then owns the directory while it runs.
//! Not here: what the commands do and print (`ops/`), the bot (`bot/`).

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

use crate::{
    bot,
    config::Config,
    control,
    ops::{one_line, Job, Owner, StdConsole},
    store::{GuildDatabaseManager, StoreError},
};

#[derive(Parser)]
#[command(
    version,
    about = "A Discord bot that keeps every guild's data in its own SQLite file"
)]
pub struct Cli {
    /// The data directory (overrides `data_dir` in the config file and GUILDKEEP_DATA_DIR);
    /// `stats` and `check` take several.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Vec<PathBuf>,
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
    Operator(Job),
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let dirs = match cli.data_dir.as_slice() {
        [] => vec![config.store.data_dir.clone()],
        dirs => dirs.to_vec(),
    };
    let job = match cli.command {
        Command::Operator(job @ (Job::Stats | Job::Check { .. })) => job,
        _ if dirs.len() > 1 => bail!("only `stats` and `check` take several --data-dir"),
        Command::Run => {
            config.store.data_dir = dirs[0].clone();
            return bot::run(config, shutdown_signal()).await;
        }
        Command::Operator(job) => job,
    };
    let job = confirm(job)?.with_paths_from(&std::env::current_dir()?);
    if let [dir] = dirs.as_slice() {
        config.store.data_dir = dir.clone();
        return run_job(&config, job).await;
    }
    let mut failed = Vec::new();
    for dir in dirs {
        println!("data directory {}:", dir.display());
        config.store.data_dir = dir.clone();
        if let Err(e) = run_job(&config, job.clone()).await {
            eprintln!("error: {}: {}", dir.display(), one_line(&e));
            failed.push(dir.display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!("failed for data director(ies) {}", failed.join(", "));
    }
    Ok(())
}

/// Runs `job` in the owner of `config`'s data directory: the running bot if there is one,
/// else this process, which holds the directory while the job runs.
async fn run_job(config: &Config, job: Job) -> anyhow::Result<()> {
    let dir = &config.store.data_dir;
    match GuildDatabaseManager::new(config.store.clone()) {
        Ok(store) => {
            let owner = Owner::standalone(store);
            let result = job.run(&owner, &StdConsole).await;
            owner.store.shutdown().await;
            result
        }
        Err(StoreError::Owned { owner, .. }) => {
            control::send(dir, owner.as_ref(), job, &StdConsole).await
        }
        Err(e) => Err(e).with_context(|| format!("data directory {}", dir.display())),
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

/// Asks on the terminal before a job that destroys data, unless `--yes` was given; without a
/// terminal, refuses unless `--yes`. Returns the job marked as confirmed.
fn confirm(job: Job) -> anyhow::Result<Job> {
    let Some(question) = job.confirmation() else {
        return Ok(job);
    };
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
    Ok(job.confirmed())
}
