//! `TestBot`: the real bot, built by the same `bot::Builder` as `guildkeep run`, connected to
//! an in-process fake Discord, with a fresh data directory. Helpers send interactions and
//! return what the bot answered; every wait is bounded by [`fake::WAIT`], none is a sleep.

pub mod fake;
pub mod payloads;

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
pub use payloads::{
    option, CHANNEL, GUILD, MANAGE_GUILD, MANAGE_MESSAGES, MEMBER_PERMISSIONS, OTHER_GUILD, ROLE,
};

pub const ALICE: u64 = 300_000_000_000_000_001;
pub const BOB: u64 = 300_000_000_000_000_002;
pub const ADMIN: u64 = 300_000_000_000_000_003;

/// A syntactically valid token; the fake accepts any.
pub const TOKEN: &str = "MTIz.fake.token";

pub struct TestBot {
    pub fake: FakeDiscord,
    pub store: GuildDatabaseManager,
    pub pending: Arc<PendingDeletions>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What a test may change before the bot starts.
pub struct Setup {
    pub config: Config,
    pub builder: fn(Builder) -> Builder,
    /// Runs on [`GUILD`]'s database before the bot starts (as if written by an earlier run).
    pub seed: Option<fn(&rusqlite::Connection)>,
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
        let fake = FakeDiscord::start(&[GUILD, OTHER_GUILD]).await;
        let dir = tempfile::tempdir().expect("data dir");
        let mut setup = Setup {
            config: Config {
                store: StoreConfig::new(dir.path()),
                discord_token: Some(TOKEN.into()),
                api_base: Some(fake.api_base.clone()),
                ..Config::default()
            },
            builder: quick,
            seed: None,
        };
        adjust(&mut setup);
        if let Some(seed) = setup.seed {
            let seeder = GuildDatabaseManager::new(StoreConfig::new(dir.path())).expect("store");
            seeder
                .with_guild(GUILD, move |c| seed(c))
                .await
                .expect("seeded");
            seeder.shutdown().await;
        }
        let bot = (setup.builder)(Builder::new(setup.config))
            .build()
            .await
            .expect("the bot builds");
        let store = bot.store().clone();
        let pending = bot.pending_deletions();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(bot.run(async move {
            let _ = stopped.await;
        }));
        // Commands are registered once setup has run: from then on interactions are served.
        fake.wait_for("command registration", |r| {
            r.method == "PUT" && r.path.starts_with("/applications/")
        })
        .await;
        Self {
            fake,
            store,
            pending,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends a slash command as a member with ordinary permissions; returns the body of the
    /// interaction response.
    pub async fn slash(&self, user: u64, path: &str, options: Value) -> Value {
        self.slash_with(user, MEMBER_PERMISSIONS, path, options)
            .await
            .body
    }

    /// Sends a slash command as a member with `permissions`; returns the interaction response.
    pub async fn slash_with(
        &self,
        user: u64,
        permissions: u64,
        path: &str,
        options: Value,
    ) -> Recorded {
        slash_in(&self.fake, GUILD, user, permissions, path, options).await
    }

    /// Sends an autocomplete request with one focused option; returns the choices offered.
    pub async fn autocomplete(
        &self,
        user: u64,
        path: &str,
        name: &str,
        typed: &str,
        kind: u8,
    ) -> Vec<Value> {
        let id = self.fake.next_id();
        let focused =
            serde_json::json!([{"name": name, "type": kind, "value": typed, "focused": true}]);
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::autocomplete(id, user, path, focused),
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
            payloads::message_command(id, user, name, target),
        );
        self.response(id, name).await.body
    }

    /// Presses the button `custom_id` on the bot's message; returns the response to the press.
    pub async fn press(&self, user: u64, custom_id: &str) -> Value {
        let id = self.fake.next_id();
        let message = payloads::message(self.fake.next_id(), CHANNEL, payloads::APP, "");
        self.fake.dispatch(
            "INTERACTION_CREATE",
            payloads::button(id, user, custom_id, &message),
        );
        self.response(id, custom_id).await.body
    }

    async fn response(&self, id: u64, what: &str) -> Recorded {
        response(&self.fake, id, what).await
    }

    /// Waits for the next request to the interaction's webhook (follow-ups and edits).
    pub async fn webhook(&self, method: &str, nth_interaction_token: &str) -> Recorded {
        self.fake
            .wait_for(&format!("{method} webhook"), |r| {
                r.method == method && r.path.contains(nth_interaction_token)
            })
            .await
    }

    /// The data directory of `guild`.
    pub fn guild_dir(&self, guild: u64) -> std::path::PathBuf {
        self.dir.path().join("guilds").join(guild.to_string())
    }

    /// Stops the bot the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Like [`shutdown`](Self::shutdown), keeping the fake and the data directory for a look
    /// afterwards.
    pub async fn stop(&mut self) {
        let _ = self.stop.take().expect("running").send(());
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

/// Sends a slash command in `guild` to whichever bot is connected to `fake` (in this process
/// or another); returns the interaction response.
pub async fn slash_in(
    fake: &FakeDiscord,
    guild: u64,
    user: u64,
    permissions: u64,
    path: &str,
    options: Value,
) -> Recorded {
    let id = fake.next_id();
    let mut interaction = payloads::slash(id, user, permissions, path, options);
    interaction["guild_id"] = guild.to_string().into();
    fake.dispatch("INTERACTION_CREATE", interaction);
    response(fake, id, path).await
}

async fn response(fake: &FakeDiscord, id: u64, what: &str) -> Recorded {
    let path = format!("/interactions/{id}/token-{id}/callback");
    fake.wait_for(&format!("the response to `{what}`"), |r| r.path == path)
        .await
}

/// The builder settings of every test bot: no cooldowns, buttons live for 5 s.
pub fn quick(builder: Builder) -> Builder {
    builder
        .write_cooldown(Duration::ZERO)
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
