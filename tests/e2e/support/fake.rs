//! An in-process fake Discord: an HTTP server for the REST API and a WebSocket gateway, both on
//! 127.0.0.1:0. It records every REST request the bot makes (what a member would have seen)
//! and lets a test push gateway events. Waiting is on a watch channel with a timeout, never a
//! sleep.
//!
//! Not here: the JSON bodies (`payloads.rs`) or anything about guildkeep's behaviour.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message as WsMessage, WebSocket, WebSocketUpgrade},
        State,
    },
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::mpsc, sync::watch, task::JoinHandle};

use super::payloads;

/// How long a test waits for the bot before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// One REST request the bot made.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// The path under `/api/v10`, e.g. `/interactions/5/token-5/callback`.
    pub path: String,
    /// The JSON body; for multipart requests, the `payload_json` part.
    pub body: Value,
    /// Attachments of a multipart request: (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

/// A REST failure to inject: requests whose path contains `path` get `status`.
struct Failure {
    path: String,
    status: StatusCode,
}

struct Shared {
    ws_url: String,
    guilds: Vec<u64>,
    log: Mutex<Vec<Recorded>>,
    logged: watch::Sender<usize>,
    identified: watch::Sender<Option<Value>>,
    gateway: Mutex<Option<mpsc::UnboundedSender<Value>>>,
    seq: AtomicU64,
    next_id: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

pub struct FakeDiscord {
    /// What the bot's `api_base` is set to.
    pub api_base: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeDiscord {
    /// Starts both servers. The bot is in `guilds` (GUILD_CREATE for each after READY).
    pub async fn start(guilds: &[u64]) -> Self {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let ws = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let (http_addr, ws_addr): (SocketAddr, SocketAddr) =
            (http.local_addr().unwrap(), ws.local_addr().unwrap());
        let shared = Arc::new(Shared {
            ws_url: format!("ws://{ws_addr}"),
            guilds: guilds.to_vec(),
            log: Mutex::default(),
            logged: watch::channel(0).0,
            identified: watch::channel(None).0,
            gateway: Mutex::default(),
            seq: AtomicU64::new(0),
            next_id: AtomicU64::new(2_000_000_000_000_000_000),
            failures: Mutex::default(),
        });
        let rest = Router::new().fallback(rest).with_state(shared.clone());
        let gateway = Router::new()
            .route("/", get(gateway))
            .with_state(shared.clone());
        let tasks = vec![
            tokio::spawn(async move { axum::serve(http, rest).await.expect("rest server") }),
            tokio::spawn(async move { axum::serve(ws, gateway).await.expect("gateway server") }),
        ];
        Self {
            api_base: format!("http://{http_addr}"),
            shared,
            tasks,
        }
    }

    /// A fresh snowflake for interactions and messages.
    pub fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until the bot has identified; returns its IDENTIFY payload.
    pub async fn identified(&self) -> Value {
        let mut rx = self.shared.identified.subscribe();
        let found = tokio::time::timeout(WAIT, rx.wait_for(Option::is_some))
            .await
            .expect("the bot did not identify in time")
            .expect("fake alive");
        found.clone().expect("checked by wait_for")
    }

    /// Sends a dispatch event (`t` = `kind`) over the gateway.
    pub fn dispatch(&self, kind: &str, data: Value) {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let sender = self.shared.gateway.lock().unwrap().clone();
        sender
            .expect("the bot is connected")
            .send(payloads::dispatch(seq, kind, data))
            .expect("gateway task alive");
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Waits for the first request (from the start of the log) that `matches`.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Recorded) -> bool) -> Recorded {
        self.wait_for_within(WAIT, what, matches).await
    }

    /// [`wait_for`](Self::wait_for) with another limit, for a bot in another process.
    pub async fn wait_for_within(
        &self,
        limit: Duration,
        what: &str,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let mut rx = self.shared.logged.subscribe();
        let found = tokio::time::timeout(limit, async {
            loop {
                if let Some(hit) = self.requests().into_iter().find(&matches) {
                    return hit;
                }
                rx.changed().await.expect("fake alive");
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let seen: Vec<_> = self
                .requests()
                .into_iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            panic!("timed out waiting for {what}; requests seen: {seen:#?}")
        })
    }

    /// Requests whose path contains `path` fail with `status` from now on.
    pub fn fail(&self, path: &str, status: u16) {
        self.shared.failures.lock().unwrap().push(Failure {
            path: path.to_owned(),
            status: StatusCode::from_u16(status).expect("valid status"),
        });
    }
}

async fn rest(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/api/v10")
        .unwrap_or(uri.path())
        .to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, files) = match content_type.split_once("boundary=") {
        Some((_, boundary)) => multipart(&body, boundary),
        None => (serde_json::from_slice(&body).unwrap_or(Value::Null), vec![]),
    };
    let recorded = Recorded {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
        files,
    };
    {
        let mut log = shared.log.lock().unwrap();
        log.push(recorded);
        shared.logged.send_replace(log.len());
    }
    let failure = shared
        .failures
        .lock()
        .unwrap()
        .iter()
        .find(|f| path.contains(&f.path))
        .map(|f| f.status);
    if let Some(status) = failure {
        let code = if status == StatusCode::FORBIDDEN {
            50007
        } else {
            0
        };
        return (
            status,
            Json(json!({"message": "injected failure", "code": code})),
        )
            .into_response();
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["gateway"]) => Json(json!({"url": shared.ws_url})).into_response(),
        ("GET", ["gateway", "bot"]) => Json(payloads::gateway_bot(&shared.ws_url)).into_response(),
        ("GET", ["oauth2", "applications", "@me"]) => {
            Json(payloads::application_info()).into_response()
        }
        ("PUT", ["applications", ..]) => Json(json!([])).into_response(),
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST" | "PATCH" | "GET", ["webhooks", ..]) => {
            let content = body["content"].as_str().unwrap_or_default();
            Json(payloads::message(
                id,
                payloads::CHANNEL,
                payloads::APP,
                content,
            ))
            .into_response()
        }
        ("DELETE", ["webhooks", ..]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["users", "@me", "channels"]) => {
            let recipient = body["recipient_id"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .or_else(|| body["recipient_id"].as_u64())
                .unwrap_or(1);
            Json(payloads::dm_channel(recipient + 7, recipient)).into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            let channel = channel.parse().unwrap_or(payloads::CHANNEL);
            let content = body["content"].as_str().unwrap_or_default();
            Json(payloads::message(id, channel, payloads::APP, content)).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "unknown route in fake", "code": 0})),
        )
            .into_response(),
    }
}

/// Splits a multipart/form-data body into its `payload_json` and its files.
fn multipart(body: &[u8], boundary: &str) -> (Value, Vec<(String, Vec<u8>)>) {
    let boundary = format!("--{}", boundary.trim_matches('"'));
    let mut payload = Value::Null;
    let mut files = vec![];
    for part in split(body, boundary.as_bytes()).into_iter().skip(1) {
        let Some(head_end) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..head_end]);
        let mut content = &part[head_end + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        if head.contains("name=\"payload_json\"") {
            payload = serde_json::from_slice(content).unwrap_or(Value::Null);
        } else if let Some(name) = head.split("filename=\"").nth(1) {
            let name = name.split('"').next().unwrap_or_default().to_owned();
            files.push((name, content.to_vec()));
        }
    }
    (payload, files)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut body: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = vec![];
    while let Some(at) = find(body, separator) {
        parts.push(&body[..at]);
        body = &body[at + separator.len()..];
    }
    parts.push(body);
    parts
}

async fn gateway(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(shared, socket))
}

/// One gateway session: HELLO, wait for IDENTIFY, READY and GUILD_CREATEs, then relay.
async fn session(shared: Arc<Shared>, mut socket: WebSocket) {
    let send = |v: Value| WsMessage::text(v.to_string());
    if socket.send(send(payloads::hello())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { return };
                let Ok(text) = message.to_text() else { continue };
                let Ok(payload) = serde_json::from_str::<Value>(text) else { continue };
                match payload["op"].as_u64() {
                    Some(1) => {
                        let _ = tx.send(payloads::heartbeat_ack());
                    }
                    Some(2) => {
                        shared.identified.send_replace(Some(payload["d"].clone()));
                        *shared.gateway.lock().unwrap() = Some(tx.clone());
                        let ready = payloads::ready(&shared.guilds, &shared.ws_url);
                        let _ = tx.send(json!({"t": "READY", "d": ready}));
                        for guild in &shared.guilds {
                            let _ = tx.send(json!({"t": "GUILD_CREATE", "d": payloads::guild(*guild)}));
                        }
                    }
                    _ => {}
                }
            }
            Some(out) = rx.recv() => {
                // Events queued here before IDENTIFY carry only t/d; give them a sequence.
                let out = if out.get("op").is_some() {
                    out
                } else {
                    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    payloads::dispatch(seq, out["t"].as_str().unwrap_or_default(), out["d"].clone())
                };
                if socket.send(send(out)).await.is_err() {
                    return;
                }
            }
        }
    }
}
