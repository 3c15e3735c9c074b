//! `TestBot`: the real bot, built by the same `bot::Builder` as `guildkeep run`, connected to
//! an in-process fake Discord, with a fresh data directory. Helpers send interactions and
//! return what the bot answered; every wait is bounded by [`fake::WAIT`], none is a sleep.

pub mod fake;
pub mod payloads;
pub mod rules;

use std::{sync::Arc, time::Duration};

use guildkeep::{
    bot::Builder,
    config::Config,
    reminders::Clock,
    store::{GuildDatabaseManager, PendingDeletions, StoreConfig},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

pub use fake::{FakeDiscord, Recorded, WAIT};
#[path = "../../ops_support/verabot.rs"]
mod verabot;
pub use payloads::{
    option, ADMIN_ROLE, CHANNEL, GUILD, MANAGE_GUILD, MANAGE_MESSAGES, MENTION_EVERYONE,
    MODERATOR_ROLE, OTHER_GUILD, PINGER_ROLE, QUIET_ROLE, ROLE,
};
pub use verabot::{assert_verabot_file_untouched, verabot_file_at};

pub const ALICE: u64 = 300_000_000_000_000_001;
pub const BOB: u64 = 300_000_000_000_000_002;
/// Has [`ADMIN_ROLE`] (Manage Server).
pub const ADMIN: u64 = 300_000_000_000_000_003;
/// Has [`MODERATOR_ROLE`] (Manage Messages).
pub const MODERATOR: u64 = 300_000_000_000_000_004;

/// A syntactically valid token; the fake accepts any.
pub const TOKEN: &str = "MTIz.fake.token";

pub struct TestBot {
    pub fake: FakeDiscord,
    pub store: GuildDatabaseManager,
    pub pending: Arc<PendingDeletions>,
    pub dir: tempfile::TempDir,
    /// Where the bot serves `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: std::net::SocketAddr,
    /// What the bot was started with, for [`TestBot::restart`].
    config: Config,
    builder: fn(Builder) -> Builder,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What a test may change before the bot starts.
pub struct Setup {
    pub config: Config,
    pub builder: fn(Builder) -> Builder,
    /// Runs on [`GUILD`]'s database before the bot starts (as if written by an earlier run).
    pub seed: Option<fn(&rusqlite::Connection)>,
    /// Guilds whose (empty) databases an earlier run left on disk.
    pub on_disk: Vec<u64>,
}

/// A scheduler clock running `ahead` of the wall clock: reminders set "in 2m" through the
/// commands (which read the real time) are already due for the scheduler.
pub struct Ahead(pub chrono::TimeDelta);

impl Clock for Ahead {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}

impl TestBot {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a bot after `adjust` has changed its setup.
    pub async fn start_with(adjust: impl FnOnce(&mut Setup)) -> Self {
        init_logging();
        let fake = FakeDiscord::start(&[GUILD, OTHER_GUILD], &payloads::ROLES).await;
        fake.give_role(ADMIN, ADMIN_ROLE);
        fake.give_role(MODERATOR, MODERATOR_ROLE);
        let dir = tempfile::tempdir().expect("data dir");
        let mut setup = Setup {
            config: Config {
                store: StoreConfig::new(dir.path()),
                discord_token: Some(TOKEN.into()),
                api_base: Some(fake.api_base.clone()),
                metrics_addr: Some(([127, 0, 0, 1], 0).into()),
                ..Config::default()
            },
            builder: quick,
            seed: None,
            on_disk: vec![],
        };
        adjust(&mut setup);
        let seeder = GuildDatabaseManager::new(StoreConfig::new(dir.path())).expect("store");
        if let Some(seed) = setup.seed {
            seeder
                .with_guild(GUILD, move |c| seed(c))
                .await
                .expect("seeded");
        }
        for guild in setup.on_disk {
            seeder.with_guild(guild, |_| ()).await.expect("created");
        }
        seeder.shutdown().await;
        let launched = launch(&fake, setup.config.clone(), setup.builder).await;
        Self {
            fake,
            store: launched.store,
            pending: launched.pending,
            dir,
            metrics_addr: launched.metrics_addr,
            config: setup.config,
            builder: setup.builder,
            stop: Some(launched.stop),
            task: Some(launched.task),
        }
    }

    /// Stops the bot as SIGTERM does and starts it again, as a new process would: same data
    /// directory, configuration and fake Discord (whose log goes on).
    pub async fn restart(&mut self) {
        self.stop().await;
        let launched = launch(&self.fake, self.config.clone(), self.builder).await;
        self.stop = Some(launched.stop);
        self.task = Some(launched.task);
        self.store = launched.store;
        self.pending = launched.pending;
        self.metrics_addr = launched.metrics_addr;
    }

    /// `GET path` on the metrics listener: the status code and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .expect("the metrics listener accepts");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
        (status.expect("a status code"), body.to_owned())
    }

    /// Sends a slash command as `user` (with the roles and channel permissions the fake gives
    /// them); returns what they see: the response, or after a deferral the message that
    /// replaced it (see [`TestBot::seen`]).
    pub async fn slash(&self, user: u64, path: &str, options: Value) -> Value {
        self.slash_seen(user, path, options).await.body
    }

    /// Like [`slash`](Self::slash), with the whole request that showed the answer.
    pub async fn slash_seen(&self, user: u64, path: &str, options: Value) -> Recorded {
        let id = self.send_slash(user, path, options);
        self.seen(id, path).await
    }

    /// Sends a slash command as `user` and returns the interaction's id at once.
    pub fn send_slash(&self, user: u64, path: &str, options: Value) -> u64 {
        self.send_slash_as(self.fake.next_id(), user, path, options)
    }

    /// Like [`send_slash`](Self::send_slash), for an interaction with the id `id`.
    pub fn send_slash_as(&self, id: u64, user: u64, path: &str, options: Value) -> u64 {
        send_slash_in(&self.fake, GUILD, id, user, path, options);
        id
    }

    /// Sends an autocomplete request with one focused option, typed as a real client does for
    /// that option's type (digits only for numbers); returns the choices offered.
    pub async fn autocomplete(&self, user: u64, path: &str, name: &str, typed: &str) -> Vec<Value> {
        let id = self.fake.next_id();
        let registered = self.fake.registered();
        let kind = registered_option(&registered, path, name)["type"].clone();
        if kind == 4 || kind == 10 {
            assert!(
                typed
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '.'),
                "a Discord client only lets numbers into option `{name}` of /{path}"
            );
        }
        let focused =
            serde_json::json!([{"name": name, "type": kind, "value": typed, "focused": true}]);
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::autocomplete(id, &self.fake.invoker(user), path, focused),
        );
        let body = self.response(id, path).await.body;
        assert_eq!(body["type"], 8, "an autocomplete result: {body}");
        body["data"]["choices"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs a message context menu command on `target` (a message payload).
    pub async fn message_command(&self, user: u64, name: &str, target: &Value) -> Value {
        let id = self.fake.next_id();
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::message_command(id, &self.fake.invoker(user), name, target),
        );
        self.seen(id, name).await.body
    }

    /// Presses the button `custom_id` on the bot's message; returns what the presser sees:
    /// the response, or after a deferred update the edit that followed it.
    pub async fn press(&self, user: u64, custom_id: &str) -> Value {
        let message = payloads::message(self.fake.next_id(), CHANNEL, payloads::APP, "");
        let id = self.send_press(user, custom_id, &message);
        self.seen(id, custom_id).await.body
    }

    /// Presses the button `custom_id` on `message` (a message payload) in [`GUILD`], as
    /// `user` with their roles; returns the interaction's id at once.
    pub fn send_press(&self, user: u64, custom_id: &str, message: &Value) -> u64 {
        let id = self.fake.next_id();
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::button(id, &self.fake.invoker(user), custom_id, message),
        );
        id
    }

    /// Like [`send_press`](Self::send_press), on a message in `user`'s DM channel.
    pub fn send_dm_press(&self, user: u64, custom_id: &str, message: &Value) -> u64 {
        let id = self.fake.next_id();
        let channel = message["channel_id"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .expect("the message's channel");
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::dm_button(id, user, channel, custom_id, message),
        );
        id
    }

    /// The accepted first response to interaction `id`.
    pub async fn response(&self, id: u64, what: &str) -> Recorded {
        response(&self.fake, id, what).await
    }

    /// What the member sees of interaction `id` (see the free [`seen`]).
    pub async fn seen(&self, id: u64, what: &str) -> Recorded {
        seen(&self.fake, id, what).await
    }

    /// Waits for the next request to the interaction's webhook (follow-ups and edits).
    pub async fn webhook(&self, method: &str, nth_interaction_token: &str) -> Recorded {
        self.fake
            .wait_for(&format!("{method} webhook"), |r| {
                r.method == method && r.path.contains(nth_interaction_token)
            })
            .await
    }

    /// Removes the bot from `guild` (a GUILD_DELETE that is no outage) and waits until its
    /// deletion is scheduled.
    pub async fn remove_from(&self, guild: u64) {
        let mut changes = self.pending.subscribe();
        self.fake
            .dispatch("GUILD_DELETE", payloads::guild_delete(guild, false));
        tokio::time::timeout(
            WAIT,
            changes.wait_for(|_| self.pending.get(guild).is_some()),
        )
        .await
        .expect("deletion scheduled")
        .expect("the pending list is open");
    }

    /// The data directory of `guild`.
    pub fn guild_dir(&self, guild: u64) -> std::path::PathBuf {
        self.dir.path().join("guilds").join(guild.to_string())
    }

    /// Stops the bot the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Asks the bot to stop (as SIGTERM does) without waiting for it.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the bot to stop by itself (no stop requested); returns how it ended.
    pub async fn ended(&mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the bot stops by itself in time")
            .expect("the bot task did not panic")
    }

    /// Like [`shutdown`](Self::shutdown), keeping the fake and the data directory for a look
    /// afterwards.
    pub async fn stop(&mut self) {
        self.request_stop();
        let task = self.task.take().expect("running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the bot stops in time")
            .expect("the bot task did not panic")
            .expect("the bot stops cleanly");
    }
}

impl Drop for TestBot {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What [`launch`] started: its stop signal, its task, and the parts tests look into.
struct Launched {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    store: GuildDatabaseManager,
    pending: Arc<PendingDeletions>,
    metrics_addr: std::net::SocketAddr,
}

/// Builds and runs a bot against `fake`; returns once it has identified (its commands are
/// registered before it connects).
async fn launch(fake: &FakeDiscord, config: Config, builder: fn(Builder) -> Builder) -> Launched {
    let identified = fake.identifies_so_far().len();
    let bot = builder(Builder::new(config))
        .build()
        .await
        .expect("the bot builds");
    let store = bot.store().clone();
    let pending = bot.pending_deletions();
    let metrics_addr = bot.metrics_addr().expect("metrics are served");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(bot.run(async move {
        let _ = stopped.await;
    }));
    fake.identifies(identified + 1).await;
    Launched {
        stop,
        task,
        store,
        pending,
        metrics_addr,
    }
}

/// A bot whose scheduler runs an hour ahead: anything set "in 2m" is due at once.
pub async fn bot_ahead() -> TestBot {
    TestBot::start_with(|s| {
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(chrono::TimeDelta::hours(1))));
    })
    .await
}

/// Polls [`GUILD`]'s database every 20 ms until `read` gives `Some`; fails after ten seconds.
pub async fn until_stored<T: Send + 'static>(
    bot: &TestBot,
    what: &str,
    read: fn(&rusqlite::Connection) -> Option<T>,
) -> T {
    for _ in 0..500 {
        let found = bot.store.with_guild(GUILD, move |c| read(c)).await.unwrap();
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sends a slash command in `guild` as `user` to whichever bot is connected to `fake` (in
/// this process or another); returns what the member sees.
pub async fn slash_in(
    fake: &FakeDiscord,
    guild: u64,
    user: u64,
    path: &str,
    options: Value,
) -> Recorded {
    let id = fake.next_id();
    send_slash_in(fake, guild, id, user, path, options);
    seen(fake, id, path).await
}

/// Sends a slash command with the id `id` in `guild`, typed as registered.
fn send_slash_in(fake: &FakeDiscord, guild: u64, id: u64, user: u64, path: &str, options: Value) {
    let options = typed_as_registered(&fake.registered(), path, options);
    let mut interaction = payloads::slash(id, &fake.invoker(user), path, options);
    interaction["guild_id"] = guild.to_string().into();
    fake.dispatch("INTERACTION_CREATE", interaction);
}

/// The accepted first response to interaction `id`.
pub async fn response(fake: &FakeDiscord, id: u64, what: &str) -> Recorded {
    let path = format!("/interactions/{id}/token-{id}/callback");
    let answer = fake
        .wait_for(&format!("the response to `{what}`"), |r| r.path == path)
        .await;
    assert!(
        answer.accepted(),
        "Discord refused the response to `{what}` ({}): {:?}",
        answer.status,
        answer.refusal
    );
    answer
}

/// What the member sees of interaction `id`: its response; after a deferral (type 5: a
/// loading message, 6: nothing yet), the first message sent through its token instead,
/// with the deferral's type, so that `body["data"]` is what was shown. As on Discord, after a
/// loading message that message replaces it and keeps its visibility, unless the loading
/// message was deleted first.
pub async fn seen(fake: &FakeDiscord, id: u64, what: &str) -> Recorded {
    let response = response(fake, id, what).await;
    let kind = response.body["type"].as_u64();
    if !matches!(kind, Some(5 | 6)) {
        return response;
    }
    let token = format!("/token-{id}");
    let mut shown = fake
        .wait_for(&format!("the answer to `{what}` after its deferral"), |r| {
            r.method != "DELETE" && r.path.starts_with("/webhooks/") && r.path.contains(&token)
        })
        .await;
    let loading_deleted = fake
        .requests()
        .iter()
        .take_while(|r| r.path != shown.path || r.method != shown.method)
        .any(|r| r.method == "DELETE" && r.path.contains(&token));
    assert!(
        shown.accepted(),
        "Discord refused the answer to `{what}` ({}): {:?}",
        shown.status,
        shown.refusal
    );
    let mut data = shown.body.clone();
    // Only a loading message (5) gives its visibility to what replaces it; after a deferred
    // update (6) the first message is a follow-up or an edit of the pressed one.
    if kind == Some(5) && !loading_deleted {
        data["flags"] = response.body["data"]["flags"].as_u64().unwrap_or(0).into();
    }
    shown.body = serde_json::json!({"type": kind, "data": data});
    shown.path = response.path;
    shown
}

/// The builder settings of every test bot: no cooldowns or search limits, buttons live for 5 s.
pub fn quick(builder: Builder) -> Builder {
    builder
        .write_cooldown(Duration::ZERO)
        .search_interval(Duration::ZERO)
        .button_timeout(Duration::from_secs(5))
}

/// Custom ids of every button in a response body.
pub fn buttons(body: &Value) -> Vec<String> {
    let data = if body["data"].is_object() {
        &body["data"]
    } else {
        body
    };
    data["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_owned))
        .collect()
}

/// `options` as a real client sends them for the command `path` as registered: each option's
/// type is the registered one, and its value of that type. Panics on an option the command
/// does not have, a value of the wrong type, a text over its `max_length`, or a value outside
/// the offered choices: a real client sends none of these.
fn typed_as_registered(registered: &Value, path: &str, options: Value) -> Value {
    let options = options.as_array().cloned().unwrap_or_default();
    let typed: Vec<Value> = options
        .into_iter()
        .map(|mut option| {
            let name = option["name"].as_str().expect("option name").to_owned();
            let spec = registered_option(registered, path, &name);
            let value = option["value"].clone();
            let value = match spec["type"].as_u64() {
                Some(3) => Value::String(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                }),
                Some(4) => match &value {
                    Value::Number(n) if n.is_i64() || n.is_u64() => value,
                    _ => panic!("option `{name}` of /{path} takes an integer, not {value}"),
                },
                _ => value,
            };
            if let (Some(max), Some(text)) = (spec["max_length"].as_u64(), value.as_str()) {
                assert!(
                    text.chars().count() as u64 <= max,
                    "a Discord client sends at most {max} characters in option `{name}` of /{path}"
                );
            }
            if let Some(choices) = spec["choices"].as_array().filter(|c| !c.is_empty()) {
                assert!(
                    choices.iter().any(|c| c["value"] == value),
                    "{value} is not a choice of option `{name}` of /{path}"
                );
            }
            option["type"] = spec["type"].clone();
            option["value"] = value;
            option
        })
        .collect();
    Value::Array(typed)
}

/// The registered option `name` of the command `path` (e.g. `"quote get"`).
fn registered_option<'a>(registered: &'a Value, path: &str, name: &str) -> &'a Value {
    let mut words = path.split(' ');
    let first = words.next().expect("a command name");
    let mut at = registered
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == first && c["type"].as_u64().unwrap_or(1) == 1)
        .unwrap_or_else(|| panic!("/{first} is not registered"));
    for word in words {
        at = at["options"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["name"] == word)
            .unwrap_or_else(|| panic!("/{path}: no subcommand {word}"));
    }
    at["options"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("/{path} has no option `{name}`"))
}

/// Asserts the response pings nobody.
pub fn assert_no_pings(body: &Value) {
    let data = if body["data"].is_object() {
        &body["data"]
    } else {
        body
    };
    let mentions = &data["allowed_mentions"];
    assert_eq!(mentions["parse"], serde_json::json!([]), "parse: {body}");
    for list in ["users", "roles"] {
        assert!(
            mentions[list].as_array().is_none_or(Vec::is_empty),
            "{list}: {body}"
        );
    }
}

/// Whether the response is ephemeral (flag 64).
pub fn is_ephemeral(body: &Value) -> bool {
    body["data"]["flags"].as_u64().is_some_and(|f| f & 64 != 0)
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUILDKEEP_LOG")
                .unwrap_or_else(|_| "warn,guildkeep=info".into()),
        )
        .try_init();
}
