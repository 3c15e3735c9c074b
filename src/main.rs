//! The `guildkeep` binary: loads `./.env` (the working directory's, never a parent's), sets up
//! logging and the runtime, parses the command line and hands it to [`guildkeep::cli::run`];
//! any failure becomes one line on stderr and a non-zero exit. Nothing else lives here.

use std::{io::IsTerminal, path::Path, process::ExitCode};

use clap::Parser;
use guildkeep::{
    cli::{self, Cli},
    config,
    ops::one_line,
};

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth knowing about.
    if let Err(e) = config::load_dotenv(Path::new(config::DOTENV)) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal; journald and cron logs get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUILDKEEP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let parsed = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(cli::run(parsed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
