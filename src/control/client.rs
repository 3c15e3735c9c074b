//! The command line's end of the control socket: sends one job to the bot that owns the data
//! directory and prints what comes back, so the command prints and exits exactly as the same
//! job run standalone would.
//!
//! Not here: deciding whether a bot owns the directory (the store's lock says so, `cli.rs`).

use std::{collections::HashMap, path::Path};

use anyhow::{anyhow, Context as _};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{Build, Reply, Request, PROTOCOL};
use crate::{
    ops::{progress::Progress, Console, Job},
    store::owner::{control_socket, OwnerRecord},
};

/// Runs `job` in the bot that owns `data_dir` (as its lock file names it: `owner`), writing
/// the job's lines to `console`. `Err` carries the job's own one-line failure, or why the
/// bot could not be asked.
pub async fn send(
    data_dir: &Path,
    owner: Option<&OwnerRecord>,
    job: Job,
    console: &dyn Console,
) -> anyhow::Result<()> {
    let holder = owner.map_or("another process".to_owned(), |o| format!("guildkeep {o}"));
    let path = control_socket(data_dir);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        anyhow!(
            "data directory {} is in use by {holder}, which takes no operator commands \
             ({}: {e}); only a running bot connected to Discord does: try again when it ends",
            data_dir.display(),
            path.display(),
        )
    })?;
    let (read, mut write) = stream.into_split();
    let request = Request {
        protocol: PROTOCOL,
        client: Build::this(),
        job: serde_json::to_value(&job)?,
    };
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .with_context(|| format!("sending the job to {holder}"))?;
    let mut replies = BufReader::new(read).lines();
    let mut bars: HashMap<String, (Progress, u64)> = HashMap::new();
    while let Some(line) = replies
        .next_line()
        .await
        .with_context(|| format!("reading the reply of {holder}"))?
    {
        let reply: Reply = serde_json::from_str(&line)
            .with_context(|| format!("{holder} sent a reply this guildkeep cannot read"))?;
        match reply {
            Reply::Out(line) => console.out(&line),
            Reply::Err(line) => console.err(&line),
            Reply::Progress { job, done, total } => {
                let (bar, shown) = bars
                    .entry(job.clone())
                    .or_insert_with(|| (Progress::new(job, total), 0));
                bar.advance_by(done.saturating_sub(*shown));
                *shown = done.max(*shown);
            }
            Reply::Done { error } => {
                bars.values().for_each(|(bar, _)| bar.finish());
                return error.map_or(Ok(()), |e| Err(anyhow!(e)));
            }
        }
    }
    Err(anyhow!(
        "{holder} closed the connection before the job ended (it may have stopped); the job \
         finished or was rolled back inside it: see its log"
    ))
}
