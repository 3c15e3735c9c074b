//! The Discord bot (serenity + poise). `guildkeep run` and the end-to-end tests build it the
//! same way: [`Builder`] -> [`Bot`] -> [`Bot::run`]; [`run`] is that chain in one call.
//!
//! Layout:
//! - `types.rs`: [`Data`], [`Context`], [`Error`].
//! - `error.rs`: [`UserError`] and the one `on_error`.
//! - `reply.rs`, `buttons.rs`: how replies, confirmations and pages are sent.
//! - `commands/<group>.rs`: one file per slash group; `commands::all()` lists them.
//! - `events.rs` -> `events/<event>.rs`: guild joins and removals.
//! - `deletions.rs`: deletes guilds whose grace period after removal has ended.
//! - `delivery.rs`: sends due reminders through Discord for the scheduler.
//! - `gate.rs`: stops taking interactions on shutdown and waits for running ones.
//! - `permissions.rs`: server-wide permissions from the guild's roles.
//!
//! Not here: SQL or rules (domain modules), paths or pools (`store/`).

mod buttons;
mod commands;
mod deletions;
mod delivery;
mod error;
mod events;
mod gate;
mod permissions;
mod reply;
mod types;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::{bail, Context as _};
use poise::serenity_prelude as serenity;

pub use error::{domain, MemberFixable, OrUserError, UserError};
pub use permissions::is_moderator;
pub use types::{Context, Data, Error};

use crate::{
    config::Config,
    reminders::{Clock, Scheduler, SchedulerConfig, SystemClock},
    store::{GuildDatabaseManager, PendingDeletions},
};

/// Gateway intents: guild events only; no privileged intent is needed.
pub const INTENTS: serenity::GatewayIntents = serenity::GatewayIntents::GUILDS;

/// How long running commands may take to finish after a shutdown request.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the bot until `shutdown` completes, then shuts down cleanly.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Builder::new(config).build().await?.run(shutdown).await
}

/// The bot's settings beyond [`Config`]; tests shorten the timers and move the clock.
pub struct Builder {
    config: Config,
    write_cooldown: Duration,
    button_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl Builder {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            write_cooldown: Duration::from_secs(3),
            button_timeout: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }

    /// Per-member cooldown of commands that write (zero: none).
    pub fn write_cooldown(mut self, cooldown: Duration) -> Self {
        self.write_cooldown = cooldown;
        self
    }

    /// How long confirmation and paging buttons stay live.
    pub fn button_timeout(mut self, timeout: Duration) -> Self {
        self.button_timeout = timeout;
        self
    }

    /// The clock the reminder scheduler reads (default: the system clock).
    pub fn scheduler_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the token, opens the store and builds the client; does not connect yet.
    pub async fn build(self) -> anyhow::Result<Bot> {
        let token = checked_token(self.config.discord_token.as_deref())?.to_owned();
        let mut store_config = self.config.store.clone();
        // The bot meets new guilds one at a time, each with a member waiting for the reply.
        store_config.keep_spare_guild = true;
        let store =
            GuildDatabaseManager::new(store_config).context("opening the data directory")?;
        let pending = PendingDeletions::open(&self.config.store.data_dir)
            .context("reading pending guild deletions")?;
        let base = Base {
            config: Arc::new(self.config),
            store,
            pending: Arc::new(pending),
            button_timeout: self.button_timeout,
            clock: self.clock,
            roles: Arc::default(),
        };
        let mut http = serenity::HttpBuilder::new(&token);
        if let Some(api) = &base.config.api_base {
            http = http.proxy(api.as_str()).ratelimiter_disabled(true);
        }
        let gate = Arc::new(gate::Gate::default());
        let started = Arc::new(Started::default());
        let framework = gate::Gated {
            inner: framework(base.clone(), self.write_cooldown, started.clone()),
            gate: gate.clone(),
        };
        let client = serenity::ClientBuilder::new_with_http(http.build(), INTENTS)
            .framework(framework)
            .await
            .context("building the Discord client")?;
        Ok(Bot {
            client,
            base,
            gate,
            started,
        })
    }
}

/// What exists before the bot connects; [`Data`] adds the scheduler on the first READY.
#[derive(Clone)]
struct Base {
    config: Arc<Config>,
    store: GuildDatabaseManager,
    pending: Arc<PendingDeletions>,
    button_timeout: Duration,
    clock: Arc<dyn Clock>,
    roles: Arc<permissions::GuildRoles>,
}

/// Set up on the first READY (the scheduler delivers through the connected client's HTTP
/// handle): the data commands see, and the background tasks to stop at shutdown.
#[derive(Default)]
struct Started {
    running: std::sync::Mutex<Option<Running>>,
    /// Why start-up failed, if it did; `Bot::run` returns it.
    failed: std::sync::Mutex<Option<anyhow::Error>>,
}

struct Running {
    data: Data,
    deletions: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// A built bot, not yet connected.
pub struct Bot {
    client: serenity::Client,
    base: Base,
    gate: Arc<gate::Gate>,
    started: Arc<Started>,
}

impl Bot {
    /// The store the bot uses (tests read and seed guild data through it).
    pub fn store(&self) -> &GuildDatabaseManager {
        &self.base.store
    }

    /// Guilds whose data is due to be deleted.
    pub fn pending_deletions(&self) -> Arc<PendingDeletions> {
        self.base.pending.clone()
    }

    /// Connects and serves until `shutdown` completes or the gateway fails for good. Then:
    /// stop taking interactions, let running ones finish, disconnect, stop the scheduler and
    /// the deletion task, shut the store down.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shards = self.client.shard_manager.clone();
        let gate = self.gate.clone();
        let on_shutdown = tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new interactions");
            gate.close();
            if !gate.drained(DRAIN_LIMIT).await {
                tracing::warn!(
                    "commands still running after {DRAIN_LIMIT:?}; disconnecting anyway"
                );
            }
            shards.shutdown_all().await;
        });
        let config = &self.base.config;
        let result = match (config.shard_count, &config.store.shards) {
            (Some(count), Some(owned)) => {
                // serenity 0.12 starts shards `start` through `end` inclusive; the configured
                // range excludes its end (and is never empty).
                let range = u32::try_from(owned.owned.start)?..u32::try_from(owned.owned.end - 1)?;
                self.client
                    .start_shard_range(range, u32::try_from(count)?)
                    .await
            }
            (Some(count), None) => self.client.start_shards(u32::try_from(count)?).await,
            (None, _) => self.client.start_autosharded().await,
        };
        on_shutdown.abort();
        let running = lock(&self.started.running).take();
        if let Some(running) = running {
            running.data.scheduler.shutdown().await;
            let _ = running.stop.send(true);
            if let Err(e) = running.deletions.await {
                tracing::warn!(error = %e, "the deletion task ended abnormally");
            }
        }
        self.base.store.shutdown().await;
        tracing::info!("stopped");
        if let Some(failed) = lock(&self.started.failed).take() {
            return Err(failed);
        }
        result.context("Discord gateway")
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the scheduler and the deletion task, then registers the commands.
async fn start(
    ctx: &serenity::Context,
    commands: &[poise::Command<Data, Error>],
    base: Base,
    started: &Started,
) -> anyhow::Result<Data> {
    let deliver = Arc::new(delivery::DiscordDelivery::new(ctx.http.clone()));
    let scheduler = Scheduler::start(
        base.store.clone(),
        deliver,
        base.clock.clone(),
        SchedulerConfig::default(),
    )
    .await
    .context("starting the reminder scheduler")?;
    let data = Data {
        config: base.config,
        store: base.store,
        pending: base.pending,
        scheduler: Arc::new(scheduler),
        button_timeout: base.button_timeout,
        roles: base.roles,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let deletions = tokio::spawn(deletions::run(data.clone(), stopped));
    *lock(&started.running) = Some(Running {
        data: data.clone(),
        deletions,
        stop,
    });
    let registered = match data.config.dev_guild {
        Some(guild) => {
            poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(guild)).await
        }
        None => poise::builtins::register_globally(ctx, commands).await,
    };
    // Commands registered by an earlier run keep working; serving beats stopping here.
    if let Err(e) = registered {
        tracing::error!(error = %e, "registering slash commands failed");
    }
    Ok(data)
}

/// The token, or one line saying what to set.
fn checked_token(token: Option<&str>) -> anyhow::Result<&str> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        bail!("no Discord bot token: set DISCORD_TOKEN (in the environment or in .env) to your bot's token");
    };
    if serenity::validate_token(token).is_err() || token.contains(char::is_whitespace) {
        bail!("DISCORD_TOKEN does not look like a Discord bot token (three dot-separated parts); set DISCORD_TOKEN to the token from the developer portal's Bot page");
    }
    Ok(token)
}

/// poise's framework: the command list, checks, the error handler and event dispatch.
fn framework(
    base: Base,
    write_cooldown: Duration,
    started: Arc<Started>,
) -> poise::Framework<Data, Error> {
    let mut commands = commands::all();
    commands::set_write_cooldown(&mut commands, write_cooldown);
    let options = poise::FrameworkOptions {
        commands,
        on_error: |error| Box::pin(error::on_error(error)),
        pre_command: |ctx| Box::pin(reply::defer(ctx)),
        event_handler: |framework, event| Box::pin(events::handle(framework.user_data, event)),
        allowed_mentions: Some(reply::no_pings()),
        skip_checks_for_owners: false,
        initialize_owners: false,
        ..Default::default()
    };
    poise::Framework::builder()
        .options(options)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "connected");
                match start(ctx, &framework.options().commands, base, &started).await {
                    Ok(data) => Ok(data),
                    Err(e) => {
                        // Without its data no event can be handled: stop, and let run() say why.
                        tracing::error!(error = %format!("{e:#}"), "start-up failed");
                        *lock(&started.failed) = Some(e);
                        framework.shard_manager().shutdown_all().await;
                        Err(anyhow::anyhow!("start-up failed"))
                    }
                }
            })
        })
        .build()
}

/// The commands as they are registered with Discord (the body of `PUT .../commands`).
pub fn registration_json() -> serde_json::Value {
    let commands = poise::builtins::create_application_commands(&commands::all());
    serde_json::to_value(commands).expect("commands serialise")
}

/// The guild an interaction came from, as a plain id (commands are guild-only).
pub fn guild_of(ctx: Context<'_>) -> Result<u64, Error> {
    Ok(ctx
        .guild_id()
        .ok_or_else(|| UserError("This command only works in a server.".into()))?
        .get())
}
