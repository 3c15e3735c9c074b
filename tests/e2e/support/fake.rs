//! An in-process fake Discord: an HTTP server for the REST API and a WebSocket gateway, both on
//! 127.0.0.1:0. It records every REST request the bot makes (what a member would have seen)
//! and lets a test push gateway events. Waiting is on a watch channel with a timeout, never a
//! sleep.
//!
//! It is as strict as Discord where the bot can go wrong: each gateway session is one shard
//! (READY names it and lists only its guilds; a shard beyond the count is closed with 4010);
//! an interaction must get its first response within 3 s (later: 10062) and only one (a
//! second: 40060); follow-ups need that response and die after 15 minutes; every body is held
//! to Discord's limits (`rules.rs`, 50035). A member's permissions in an interaction are
//! computed from their roles plus this channel's overwrites, as Discord does.
//!
//! Not here: the JSON bodies (`payloads.rs`), the limits (`rules.rs`), or anything about
//! guildkeep's behaviour.

use std::{
    collections::HashMap,
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
        ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade},
        State,
    },
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::mpsc, sync::watch, task::JoinHandle, time::Instant};

use super::{payloads, rules};

/// How long a test waits for the bot before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Discord's window for the first response to an interaction.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(3);

/// How long an interaction token takes follow-ups and edits.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// One REST request the bot made, and how the fake answered it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// The path under `/api/v10`, e.g. `/interactions/5/token-5/callback`.
    pub path: String,
    /// The JSON body; for multipart requests, the `payload_json` part.
    pub body: Value,
    /// Attachments of a multipart request: (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// The status the fake answered with.
    pub status: StatusCode,
    /// The fake's answer when it refused the request (Discord's JSON error body).
    pub refusal: Option<Value>,
}

impl Recorded {
    pub fn accepted(&self) -> bool {
        self.status.is_success()
    }
}

/// Requests whose path contains `path` are held open (unanswered, not yet logged) until the
/// test lets them go: Discord taking its time over a send.
struct Hold {
    path: String,
    /// Closed to let the held requests go.
    gate: Arc<tokio::sync::Semaphore>,
}

/// A REST failure to inject: requests whose path contains `path` get `status` and `code`.
struct Failure {
    path: String,
    status: StatusCode,
    code: u32,
}

/// A role of every guild in the fake: (id, permissions, mentionable). Each guild also has its
/// @everyone role, whose id is the guild's.
pub type Role = (u64, u64, bool);

/// An interaction the fake sent, keyed by token: when Discord made it (its id's timestamp),
/// and how it was first answered.
struct Pending {
    sent: Instant,
    /// The callback type of the initial response, once accepted.
    answered: Option<u64>,
}

/// What Discord knows that decides what it sends and accepts.
struct World {
    roles: Vec<Role>,
    member_roles: HashMap<u64, Vec<u64>>,
    /// Allows granted to one member by the interaction channel's overwrites.
    channel_allows: HashMap<u64, u64>,
    app_permissions: u64,
    attachment_size_limit: u64,
    interactions: HashMap<String, Pending>,
    registered: Value,
}

/// A connected gateway session: the shard it identified as, and its outbox.
struct Session {
    shard: [u64; 2],
    outbox: mpsc::UnboundedSender<Value>,
}

struct Shared {
    ws_url: String,
    guilds: Vec<u64>,
    log: Mutex<Vec<Recorded>>,
    logged: watch::Sender<usize>,
    identified: watch::Sender<Vec<Value>>,
    /// How many requests had been logged when the first IDENTIFY came.
    logged_before_identify: Mutex<Option<usize>>,
    sessions: Mutex<Vec<Session>>,
    seq: AtomicU64,
    next_id: AtomicU64,
    failures: Mutex<Vec<Failure>>,
    holds: Mutex<Vec<Hold>>,
    /// How many requests have been held so far.
    held: watch::Sender<usize>,
    world: Mutex<World>,
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
    /// Starts both servers. The bot is in `guilds` (GUILD_CREATE for each after READY, on
    /// the shard each belongs to); every guild has `roles` besides @everyone.
    pub async fn start(guilds: &[u64], roles: &[Role]) -> Self {
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
            identified: watch::channel(vec![]).0,
            logged_before_identify: Mutex::default(),
            sessions: Mutex::default(),
            seq: AtomicU64::new(0),
            next_id: AtomicU64::new(2_000_000_000_000_000_000),
            failures: Mutex::default(),
            holds: Mutex::default(),
            held: watch::channel(0).0,
            world: Mutex::new(World {
                roles: roles.to_vec(),
                member_roles: HashMap::new(),
                channel_allows: HashMap::new(),
                app_permissions: payloads::BOT_PERMISSIONS,
                attachment_size_limit: payloads::ATTACHMENT_SIZE_LIMIT,
                interactions: HashMap::new(),
                registered: json!([]),
            }),
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

    /// A fresh snowflake for interactions and messages, made "now" by Discord's clock: its
    /// timestamp part is the current time since the Discord epoch.
    pub fn next_id(&self) -> u64 {
        self.id_made(Duration::ZERO)
    }

    /// A fresh snowflake made `ago`: an interaction Discord created that long ago (its
    /// response deadline counts from then).
    pub fn id_made(&self, ago: Duration) -> u64 {
        let counter = self.shared.next_id.fetch_add(1, Ordering::Relaxed) & 0x3f_ffff;
        let at = chrono::Utc::now() - chrono::TimeDelta::from_std(ago).expect("short");
        let since_epoch = at.timestamp_millis() - payloads::DISCORD_EPOCH_MS;
        (u64::try_from(since_epoch).expect("after 2015") << 22) | counter
    }

    /// Waits until the bot has identified; returns its first IDENTIFY payload.
    pub async fn identified(&self) -> Value {
        self.identifies(1).await.remove(0)
    }

    /// Waits until the bot has sent `count` IDENTIFYs; returns them all (in order).
    pub async fn identifies(&self, count: usize) -> Vec<Value> {
        let mut rx = self.shared.identified.subscribe();
        let found = tokio::time::timeout(WAIT, rx.wait_for(|sent| sent.len() >= count))
            .await
            .expect("the bot did not identify in time")
            .expect("fake alive");
        found.clone()
    }

    /// The requests the bot made before it first identified on the gateway.
    pub fn requests_before_identify(&self) -> Vec<Recorded> {
        let count = self
            .shared
            .logged_before_identify
            .lock()
            .unwrap()
            .unwrap_or(0);
        self.requests().into_iter().take(count).collect()
    }

    /// Every IDENTIFY so far.
    pub fn identifies_so_far(&self) -> Vec<Value> {
        self.shared.identified.borrow().clone()
    }

    /// Sends a dispatch event (`t` = `kind`) over the gateway, on the shard of the guild it is
    /// about (shard 0 when it names none). An interaction starts its response deadline now.
    pub fn dispatch(&self, kind: &str, data: Value) {
        if kind == "INTERACTION_CREATE" {
            let token = data["token"].as_str().expect("a token").to_owned();
            let id: u64 = data["id"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .expect("an id");
            let made = payloads::DISCORD_EPOCH_MS + i64::try_from(id >> 22).expect("ms");
            let age = chrono::Utc::now().timestamp_millis() - made;
            let age = Duration::from_millis(u64::try_from(age).unwrap_or(0));
            let pending = Pending {
                sent: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                answered: None,
            };
            self.world().interactions.insert(token, pending);
        }
        let guild = match kind {
            "GUILD_CREATE" | "GUILD_UPDATE" | "GUILD_DELETE" => &data["id"],
            _ => &data["guild_id"],
        };
        let guild = guild.as_str().and_then(|g| g.parse::<u64>().ok());
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let sessions = self.shared.sessions.lock().unwrap();
        let session = sessions
            .iter()
            .filter(|s| !s.outbox.is_closed())
            .find(|s| guild.map_or(s.shard[0] == 0, |g| shard_of(g, s.shard[1]) == s.shard[0]))
            .expect("the shard of this event is connected");
        session
            .outbox
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
                .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                .collect();
            panic!("timed out waiting for {what}; requests seen: {seen:#?}")
        })
    }

    /// Requests whose path contains `path` fail from now on with `status` and Discord's JSON
    /// error `code` (e.g. 403 with 50007: cannot DM this user).
    pub fn fail(&self, path: &str, status: u16, code: u32) {
        self.shared.failures.lock().unwrap().push(Failure {
            path: path.to_owned(),
            status: StatusCode::from_u16(status).expect("valid status"),
            code,
        });
    }

    /// Requests whose path contains `path` are held open from now on, until [`Self::let_go`].
    pub fn hold(&self, path: &str) {
        self.shared.holds.lock().unwrap().push(Hold {
            path: path.to_owned(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        });
    }

    /// Answers the requests held for `path`, and those to come, as usual.
    pub fn let_go(&self, path: &str) {
        let mut holds = self.shared.holds.lock().unwrap();
        for hold in holds.iter().filter(|h| h.path == path) {
            hold.gate.close();
        }
        holds.retain(|h| h.path != path);
    }

    /// Waits until `count` requests have been held.
    pub async fn until_held(&self, count: usize) {
        let mut held = self.shared.held.subscribe();
        tokio::time::timeout(WAIT, held.wait_for(|held| *held >= count))
            .await
            .expect("a request was held in time")
            .expect("fake alive");
    }

    /// `user` has `role` in every guild from now on.
    pub fn give_role(&self, user: u64, role: u64) {
        self.world()
            .member_roles
            .entry(user)
            .or_default()
            .push(role);
    }

    /// The interaction channel's overwrites allow `user` these permissions there.
    pub fn allow_in_channel(&self, user: u64, permissions: u64) {
        *self.world().channel_allows.entry(user).or_default() |= permissions;
    }

    /// The bot's own permissions in the interaction channel from now on.
    pub fn set_app_permissions(&self, permissions: u64) {
        self.world().app_permissions = permissions;
    }

    /// The largest attachment Discord takes from now on (it depends on the server's boosts).
    pub fn set_attachment_size_limit(&self, bytes: u64) {
        self.world().attachment_size_limit = bytes;
    }

    /// The command list the bot registered last (`[]` before registration).
    pub fn registered(&self) -> Value {
        self.world().registered.clone()
    }

    /// `user` as a member in an interaction: their roles, and their permissions in the
    /// interaction channel (roles, then overwrites; Administrator means all), as Discord
    /// computes them. Also the bot's own permissions there.
    pub fn invoker(&self, user: u64) -> payloads::Invoker {
        let world = self.world();
        let roles = world.member_roles.get(&user).cloned().unwrap_or_default();
        let mut permissions = payloads::MEMBER_PERMISSIONS;
        for (id, granted, _) in &world.roles {
            if roles.contains(id) {
                permissions |= granted;
            }
        }
        permissions |= world.channel_allows.get(&user).copied().unwrap_or(0);
        if permissions & payloads::ADMINISTRATOR != 0 {
            permissions = u64::MAX >> 13;
        }
        payloads::Invoker {
            member: payloads::member(user, &roles, permissions),
            app_permissions: world.app_permissions,
            attachment_size_limit: world.attachment_size_limit,
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world.lock().unwrap()
    }
}

/// Discord's shard formula.
pub fn shard_of(guild: u64, count: u64) -> u64 {
    (guild >> 22) % count
}

/// Discord's refusal: `status` with its JSON error `code`; a 429 says when to retry, as
/// Discord's rate limit answer does (`topics/rate-limits`).
fn refusal(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let body = json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false, "code": code});
        return (status, body);
    }
    (status, json!({"code": code, "message": message}))
}

/// Whether Discord accepts this request; `Err` is its refusal. Callbacks must come in time
/// and once; follow-ups need an initial response and a live token; bodies obey the limits,
/// attachments the size limit.
fn judge(
    shared: &Shared,
    method: &Method,
    segments: &[&str],
    body: &Value,
    files: &[(String, Vec<u8>)],
) -> Result<(), (StatusCode, Value)> {
    let invalid = |breaches: Vec<rules::Breach>| {
        (StatusCode::BAD_REQUEST, rules::invalid_form_body(&breaches))
    };
    let mut world = shared.world.lock().unwrap();
    let too_large = files
        .iter()
        .any(|(_, bytes)| bytes.len() as u64 > world.attachment_size_limit);
    if too_large {
        return Err(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            40005,
            "Request entity too large",
        ));
    }
    match (method.as_str(), segments) {
        ("POST", ["interactions", _, token, "callback"]) => {
            let Some(pending) = world.interactions.get_mut(*token) else {
                return Err(refusal(StatusCode::NOT_FOUND, 10062, "Unknown interaction"));
            };
            if pending.sent.elapsed() > RESPONSE_DEADLINE {
                return Err(refusal(StatusCode::NOT_FOUND, 10062, "Unknown interaction"));
            }
            if pending.answered.is_some() {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    40060,
                    "Interaction has already been acknowledged.",
                ));
            }
            rules::callback(body).map_err(invalid)?;
            pending.answered = body["type"].as_u64();
            Ok(())
        }
        (_, ["webhooks", _, token, ..]) => {
            let live = world
                .interactions
                .get(*token)
                .filter(|p| p.answered.is_some());
            let Some(pending) = live else {
                return Err(refusal(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"));
            };
            if pending.sent.elapsed() > TOKEN_LIFETIME {
                return Err(refusal(
                    StatusCode::UNAUTHORIZED,
                    50027,
                    "Invalid Webhook Token",
                ));
            }
            if method != Method::GET && method != Method::DELETE {
                rules::message(body).map_err(invalid)?;
            }
            Ok(())
        }
        ("POST", ["channels", _, "messages"]) => rules::message(body).map_err(invalid),
        ("PUT", ["applications", ..]) => {
            rules::commands(body).map_err(invalid)?;
            world.registered = body.clone();
            Ok(())
        }
        _ => Ok(()),
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
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let hold = shared
        .holds
        .lock()
        .unwrap()
        .iter()
        .find(|h| path.contains(&h.path))
        .map(|h| h.gate.clone());
    if let Some(gate) = hold {
        shared.held.send_modify(|held| *held += 1);
        // Closed by `let_go`: the request goes on as if Discord had just received it.
        let _ = gate.acquire().await;
    }
    let injected = shared
        .failures
        .lock()
        .unwrap()
        .iter()
        .find(|f| path.contains(&f.path))
        .map(|f| refusal(f.status, f.code, "injected failure"));
    let verdict = match injected {
        Some(refused) => Err(refused),
        None => judge(&shared, &method, &segments, &body, &files),
    };
    let (status, refused) = match &verdict {
        Ok(()) => (StatusCode::OK, None),
        Err((status, answer)) => (*status, Some(answer.clone())),
    };
    {
        let mut log = shared.log.lock().unwrap();
        log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
            files,
            status,
            refusal: refused,
        });
        shared.logged.send_replace(log.len());
    }
    if let Err((status, answer)) = verdict {
        let mut refused = (status, Json(answer.clone())).into_response();
        if let Some(after) = answer["retry_after"].as_f64() {
            let headers = refused.headers_mut();
            headers.insert(
                "retry-after",
                after.ceil().to_string().parse().expect("a number"),
            );
            headers.insert("x-ratelimit-scope", "user".parse().expect("ascii"));
        }
        return refused;
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["gateway"]) => Json(json!({"url": shared.ws_url})).into_response(),
        ("GET", ["gateway", "bot"]) => Json(payloads::gateway_bot(&shared.ws_url)).into_response(),
        ("GET", ["oauth2", "applications", "@me"]) => {
            Json(payloads::application_info()).into_response()
        }
        ("PUT", ["applications", ..]) => Json(json!([])).into_response(),
        ("GET", ["guilds", guild]) => {
            let roles = shared.world.lock().unwrap().roles.clone();
            match guild.parse().ok().filter(|g| shared.guilds.contains(g)) {
                Some(guild) => Json(payloads::guild(guild, &roles)).into_response(),
                None => (
                    StatusCode::NOT_FOUND,
                    Json(json!({"code": 10004, "message": "Unknown Guild"})),
                )
                    .into_response(),
            }
        }
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

/// One gateway session: HELLO, wait for IDENTIFY, READY for its shard and a GUILD_CREATE for
/// each guild of that shard, then relay.
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
                        let identify = payload["d"].clone();
                        let logged = shared.log.lock().unwrap().len();
                        shared.logged_before_identify.lock().unwrap().get_or_insert(logged);
                        let shard = identify["shard"]
                            .as_array()
                            .map(|s| [s[0].as_u64().unwrap_or(0), s[1].as_u64().unwrap_or(1)])
                            .unwrap_or([0, 1]);
                        if shard[0] >= shard[1] {
                            shared.identified.send_modify(|sent| sent.push(identify.clone()));
                            let close = CloseFrame { code: 4010, reason: "Invalid shard.".into() };
                            let _ = socket.send(WsMessage::Close(Some(close))).await;
                            return;
                        }
                        // Connected before anyone waiting for the IDENTIFY dispatches to it.
                        shared.sessions.lock().unwrap().push(Session { shard, outbox: tx.clone() });
                        shared.identified.send_modify(|sent| sent.push(identify.clone()));
                        let guilds: Vec<u64> = shared
                            .guilds
                            .iter()
                            .copied()
                            .filter(|g| shard_of(*g, shard[1]) == shard[0])
                            .collect();
                        let ready = payloads::ready(&guilds, &shared.ws_url, shard);
                        let _ = tx.send(json!({"t": "READY", "d": ready}));
                        let roles = shared.world.lock().unwrap().roles.clone();
                        for guild in guilds {
                            let _ = tx.send(json!({"t": "GUILD_CREATE", "d": payloads::guild(guild, &roles)}));
                        }
                    }
                    _ => {}
                }
            }
            Some(out) = rx.recv() => {
                // READY and the GUILD_CREATEs carry only t/d; give them a sequence.
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
