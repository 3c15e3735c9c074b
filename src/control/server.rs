//! The bot's end of the control socket. Listens on `<data_dir>/control.sock` (0600, in the
//! 0700 data directory) and serves only peers running as the bot's own user. Each connection
//! carries one job: the request is checked (protocol, a job this build knows, a schema
//! upgrade not newer than this build), then the job runs in a task of its own, so a command
//! line that goes away mid-job leaves it to finish; the job's lines are forwarded as they come.
//!
//! Not here: what jobs do (`ops/`), the command line's side (`client.rs`).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, RwLock},
    task::JoinHandle,
};

use super::{Build, Reply, Request, PROTOCOL};
use crate::{
    ops::{one_line, progress, Console, Job, Owner, SchemaAction},
    store::owner::control_socket,
};

/// How long a connected peer may take to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(10);
/// The longest request line; a job is a few hundred bytes.
const MAX_REQUEST: u64 = 64 * 1024;

/// The listening socket and the jobs it started.
pub struct ControlServer {
    path: PathBuf,
    accept: JoinHandle<()>,
    /// Each running job holds a read guard; shutdown takes the write side to wait for them.
    running: Arc<RwLock<()>>,
}

impl ControlServer {
    /// Listens on `data_dir`'s control socket, replacing one a dead owner left behind (the
    /// caller owns the directory, so no live process serves it).
    pub fn start(data_dir: &Path, owner: Owner) -> anyhow::Result<Self> {
        let path = control_socket(data_dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing the old {}", path.display()))
            }
            _ => {}
        }
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        let running = Arc::new(RwLock::new(()));
        let accept = tokio::spawn(accept_loop(listener, owner, running.clone()));
        tracing::info!(socket = %path.display(), "taking operator commands");
        Ok(Self {
            path,
            accept,
            running,
        })
    }

    /// Stops taking requests and waits up to `limit` for running jobs; a job still running
    /// then is stopped with the store's shutdown, its guild work done or rolled back.
    pub async fn shutdown(self, limit: Duration) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
        if tokio::time::timeout(limit, self.running.write())
            .await
            .is_err()
        {
            tracing::warn!("operator jobs still running after {limit:?}; stopping anyway");
        }
    }
}

async fn accept_loop(listener: UnixListener, owner: Owner, running: Arc<RwLock<()>>) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let bot_user = unsafe { libc::geteuid() };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting on the control socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(peer) if peer.uid() == bot_user => {}
            Ok(peer) => {
                tracing::warn!(
                    uid = peer.uid(),
                    "control socket: refused a peer of another user"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket: peer credentials unreadable");
                continue;
            }
        }
        tokio::spawn(serve(stream, owner.clone(), running.clone()));
    }
}

/// One connection: read the request, run its job, forward its lines.
async fn serve(stream: UnixStream, owner: Owner, running: Arc<RwLock<()>>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut request = BufReader::new(read.take(MAX_REQUEST));
    let job = match tokio::time::timeout(REQUEST_WAIT, request.read_line(&mut line)).await {
        Ok(Ok(_)) => accept(&line),
        Ok(Err(e)) => Err(format!("the request could not be read: {e}")),
        Err(_) => Err(format!("no request within {REQUEST_WAIT:?}")),
    };
    let job = match job {
        Ok(job) => job,
        Err(refusal) => {
            tracing::warn!(reason = %refusal, "control socket: request refused");
            let _ = send(
                &mut write,
                &Reply::Done {
                    error: Some(refusal),
                },
            )
            .await;
            return;
        }
    };
    tracing::info!(?job, "operator job starting");
    let (replies, mut outgoing) = mpsc::unbounded_channel();
    let guard = running.read_owned().await;
    tokio::spawn(async move {
        let _running = guard;
        let console = ToPeer(replies.clone());
        let to_peer = replies.clone();
        let remote_progress: progress::RemoteProgress = Arc::new(move |job, done, total| {
            let _ = to_peer.send(Reply::Progress {
                job: job.to_owned(),
                done,
                total,
            });
        });
        let outcome = progress::report_to(remote_progress, job.run(&owner, &console)).await;
        let error = outcome.err().map(|e| one_line(&e));
        match &error {
            None => tracing::info!("operator job done"),
            Some(e) => tracing::warn!(error = %e, "operator job failed"),
        }
        let _ = replies.send(Reply::Done { error });
    });
    while let Some(reply) = outgoing.recv().await {
        if send(&mut write, &reply).await.is_err() {
            // The command line went away; the job goes on without it.
            return;
        }
    }
}

/// The job a request line asks for, or why it is refused.
fn accept(line: &str) -> Result<Job, String> {
    let request: Request =
        serde_json::from_str(line).map_err(|e| format!("not a control request: {e}"))?;
    let ours = Build::this();
    if request.protocol != PROTOCOL {
        return Err(format!(
            "the running bot (guildkeep {}) speaks control protocol {PROTOCOL}, this command \
             line (guildkeep {}) speaks {}: use the bot's own binary",
            ours.version, request.client.version, request.protocol
        ));
    }
    let job: Job = serde_json::from_value(request.job).map_err(|e| {
        format!(
            "the running bot (guildkeep {}) does not know this command ({e}); use the bot's \
             own binary",
            ours.version
        )
    })?;
    let upgrade = Job::Schema {
        action: SchemaAction::Upgrade,
    };
    if job == upgrade && request.client.schema > ours.schema {
        return Err(format!(
            "this guildkeep ({}, schema v{}) is newer than the running bot ({}, schema v{}): \
             restart the bot with the new binary, which upgrades each guild as it opens it",
            request.client.version, request.client.schema, ours.version, ours.schema
        ));
    }
    Ok(job)
}

async fn send(write: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).expect("a reply serialises");
    line.push(b'\n');
    write.write_all(&line).await
}

/// A job's lines, on their way to the command line that asked for it.
struct ToPeer(mpsc::UnboundedSender<Reply>);

impl Console for ToPeer {
    fn out(&self, line: &str) {
        let _ = self.0.send(Reply::Out(line.to_owned()));
    }

    fn err(&self, line: &str) {
        let _ = self.0.send(Reply::Err(line.to_owned()));
    }
}
