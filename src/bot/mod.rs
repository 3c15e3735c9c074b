//! The Discord bot (serenity + poise). `guildkeep run` and the end-to-end tests build it the
//! same way: [`Builder`] -> [`Bot`] -> [`Bot::run`]; [`run`] is that chain in one call.
//!
//! Layout:
//! - `types.rs`: [`Data`], [`Context`], [`Error`].
//! - `error.rs`: [`UserError`] and the one `on_error`.
//! - `reply.rs`, `buttons.rs`: how replies, confirmations and pages are sent.
//! - `commands/<group>.rs`: one file per slash group; `commands::all()` lists them.
//! - `events.rs` -> `events/<event>.rs`: guild joins and removals.
//! - `retention.rs`: the daily sweep of ended reminders and old delivery records.
//! - `deletions.rs`: deletes guilds whose grace period after removal has ended.
//! - `delivery.rs`: sends due reminders through Discord for the scheduler.
//! - `snooze.rs`: the snooze and done buttons on a delivered reminder.
//! - `throttle.rs`: how often a member may run a full-text search.
//! - `gate.rs`: stops taking interactions on shutdown and waits for running ones.
//! - `measure.rs`, `gateway.rs`: feed the command and gateway metrics (`crate::observe`).
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
mod gateway;
mod measure;
mod permissions;
mod reply;
mod retention;
mod snooze;
mod throttle;
mod types;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{bail, Context as _};
use poise::serenity_prelude as serenity;

pub use error::{domain, MemberFixable, OrUserError, UserError};
pub use permissions::is_moderator;
pub use types::{Context, Data, Error};

use crate::{
    config::Config,
    control::ControlServer,
    observe::{self, Metrics, MetricsListener},
    reminders::{Clock, DeliveryPolicy, Scheduler, SchedulerConfig, SystemClock},
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
    search_interval: Duration,
    button_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl Builder {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            write_cooldown: Duration::from_secs(3),
            search_interval: Duration::from_secs(1),
            button_timeout: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }

    /// Per-member cooldown of commands that write (zero: none).
    pub fn write_cooldown(mut self, cooldown: Duration) -> Self {
        self.write_cooldown = cooldown;
        self
    }

    /// How often each member may run a full-text search (zero: as often as they like).
    pub fn search_interval(mut self, every: Duration) -> Self {
        self.search_interval = every;
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
        let metrics_listener = match self.config.metrics_addr {
            Some(addr) => Some(
                MetricsListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on metrics_addr {addr}"))?,
            ),
            None => None,
        };
        let base = Base {
            config: Arc::new(self.config),
            store,
            pending: Arc::new(pending),
            button_timeout: self.button_timeout,
            clock: self.clock,
            roles: Arc::default(),
            searches: Arc::new(throttle::Throttle::new(self.search_interval)),
        };
        let mut http = serenity::HttpBuilder::new(&token);
        if let Some(api) = &base.config.api_base {
            http = http.proxy(api.as_str()).ratelimiter_disabled(true);
        }
        let gate = Arc::new(gate::Gate::default());
        let started = Arc::new(std::sync::OnceLock::new());
        let framework = gate::Gated {
            inner: framework(self.write_cooldown, started.clone()),
            gate: gate.clone(),
            started: started.clone(),
        };
        // Nothing reads serenity's cache (roles are kept by `permissions.rs`): off, it keeps no
        // channel, role, emoji or member of any guild.
        let mut cache = serenity::cache::Settings::default();
        cache.cache_guilds = false;
        cache.cache_channels = false;
        cache.cache_users = false;
        cache.max_messages = 0;
        let client = serenity::ClientBuilder::new_with_http(http.build(), INTENTS)
            .cache_settings(cache)
            .framework(framework)
            .await
            .context("building the Discord client")?;
        Ok(Bot {
            client,
            base,
            gate,
            started,
            metrics_listener,
        })
    }
}

/// What exists before the bot starts; [`Data`] adds the scheduler.
#[derive(Clone)]
struct Base {
    config: Arc<Config>,
    store: GuildDatabaseManager,
    pending: Arc<PendingDeletions>,
    button_timeout: Duration,
    clock: Arc<dyn Clock>,
    roles: Arc<permissions::GuildRoles>,
    searches: Arc<throttle::Throttle>,
}

/// The data commands see, set before the bot connects and handed to poise on READY.
type Started = std::sync::OnceLock<Data>;

/// What [`start`] started: the data, and the background tasks to stop at shutdown.
struct Running {
    data: Data,
    /// The deletion task and the retention sweep.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    control: ControlServer,
}

/// A built bot, not yet connected.
pub struct Bot {
    client: serenity::Client,
    base: Base,
    gate: Arc<gate::Gate>,
    started: Arc<Started>,
    metrics_listener: Option<MetricsListener>,
}

impl Bot {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

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
        let running = match start(&self.client.http, self.base.clone()).await {
            Ok(running) => running,
            Err(e) => {
                self.base.store.shutdown().await;
                return Err(e);
            }
        };
        // Ready before connecting: the first interaction finds the data set up.
        let _ = self.started.set(running.data.clone());
        let mut tasks = running.tasks;
        let metrics = running.data.metrics.clone();
        if let Some(listener) = self.metrics_listener.take() {
            let mut stopped = running.stop.subscribe();
            tasks.push(listener.serve(metrics.clone(), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }));
        }
        tasks.push(tokio::spawn(gateway::sample(
            self.client.shard_manager.clone(),
            metrics,
            owned_shards(&self.base.config),
            running.stop.subscribe(),
        )));
        tasks.extend(observe::systemd::watchdog(running.stop.subscribe()));
        let shards = self.client.shard_manager.clone();
        let gate = self.gate.clone();
        let token_refused = running.data.scheduler.token_refused();
        let on_shutdown = tokio::spawn(async move {
            tokio::select! {
                () = shutdown => {}
                () = token_refused => {
                    tracing::error!("stopping the bot: Discord refused its token");
                }
            }
            observe::systemd::stopping();
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
        // Operator jobs use the scheduler: they end first.
        running.control.shutdown(DRAIN_LIMIT).await;
        running.data.scheduler.shutdown().await;
        let _ = running.stop.send(true);
        for task in tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a background task ended abnormally");
            }
        }
        self.base.store.shutdown().await;
        tracing::info!("stopped");
        if running.data.scheduler.has_refused_token() {
            bail!("Discord refused the bot's token (401 Unauthorized): set DISCORD_TOKEN to the token from the developer portal's Bot page");
        }
        result.context("Discord gateway")
    }
}

/// Starts the scheduler (which builds its index of due reminders in the background), the
/// control socket, the deletion task and the retention sweep, then registers the commands: all
/// before the bot connects, so that no interaction waits for them and operator commands work
/// while Discord is unreachable.
async fn start(http: &Arc<serenity::Http>, base: Base) -> anyhow::Result<Running> {
    let sends = observe::ReminderSends::default();
    let deliver = Arc::new(delivery::DiscordDelivery::new(http.clone(), sends.clone()));
    let config = SchedulerConfig {
        policy: DeliveryPolicy {
            max_failed_occurrences: base.config.reminder_failed_runs,
            ..DeliveryPolicy::default()
        },
        // In their grace period after the bot was removed: a rejoin resumes them.
        paused: base.pending.all().into_keys().collect(),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::start(base.store.clone(), deliver, base.clock.clone(), config)
        .await
        .context("starting the reminder scheduler")?;
    let scheduler = Arc::new(scheduler);
    let metrics = Arc::new(Metrics::new(
        observe::Sources {
            store: base.store.clone(),
            scheduler: scheduler.clone(),
            pending: base.pending.clone(),
            guild_cap: base.config.store.max_open_guilds,
        },
        sends,
    ));
    let data = Data {
        config: base.config,
        store: base.store,
        pending: base.pending,
        scheduler,
        metrics,
        clock: base.clock,
        button_timeout: base.button_timeout,
        roles: base.roles,
        live_buttons: Arc::default(),
        searches: base.searches,
    };
    let control = ControlServer::start(&data.config.store.data_dir, data.owner())
        .context("starting the control socket")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (metrics, store) = (data.metrics.clone(), data.store.clone());
    let tasks = vec![
        tokio::spawn(deletions::run(data.clone(), stopped.clone())),
        tokio::spawn(retention::run(data.clone(), stopped.clone())),
        tokio::spawn(async move { metrics.sample_guilds_on_disk(store, stopped).await }),
    ];
    // Commands registered by an earlier run keep working; serving beats stopping here.
    if let Err(e) = register(http, data.config.dev_guild).await {
        tracing::error!(error = %e, "registering slash commands failed");
    }
    data.metrics.started();
    Ok(Running {
        data,
        tasks,
        stop,
        control,
    })
}

/// Registers the commands in `dev_guild`, or globally. Before connecting the application id
/// is not known from READY yet, so it is asked for first.
async fn register(http: &serenity::Http, dev_guild: Option<u64>) -> Result<(), serenity::Error> {
    let application = http.get_current_application_info().await?;
    http.set_application_id(application.id);
    match dev_guild {
        Some(guild) => {
            serenity::GuildId::new(guild)
                .set_commands(http, registration())
                .await?;
        }
        None => {
            serenity::Command::set_global_commands(http, registration()).await?;
        }
    }
    Ok(())
}

/// The commands as Discord is told of them.
fn registration() -> Vec<serenity::CreateCommand> {
    poise::builtins::create_application_commands(&commands::all())
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
fn framework(write_cooldown: Duration, started: Arc<Started>) -> poise::Framework<Data, Error> {
    let mut commands = commands::all();
    commands::set_write_cooldown(&mut commands, write_cooldown);
    let options = poise::FrameworkOptions {
        commands,
        on_error: |error| Box::pin(error::on_error(error)),
        pre_command: |ctx| Box::pin(measure::pre_command(ctx)),
        post_command: |ctx| Box::pin(measure::post_command(ctx)),
        event_handler: |framework, event| {
            Box::pin(events::handle(
                framework.serenity_context,
                framework.user_data,
                event,
            ))
        },
        allowed_mentions: Some(reply::no_pings()),
        skip_checks_for_owners: false,
        initialize_owners: false,
        ..Default::default()
    };
    poise::Framework::builder()
        .options(options)
        .setup(move |_ctx, ready, _framework| {
            Box::pin(async move {
                tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "connected");
                started
                    .get()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("connected before start-up"))
            })
        })
        .build()
}

/// How many shards this process runs, when the configuration says (not autosharded).
fn owned_shards(config: &Config) -> Option<usize> {
    match (config.shard_count, &config.store.shards) {
        (_, Some(owned)) => usize::try_from(owned.owned.end - owned.owned.start).ok(),
        (Some(count), None) => usize::try_from(count).ok(),
        (None, None) => None,
    }
}

/// The commands as they are registered with Discord (the body of `PUT .../commands`).
pub fn registration_json() -> serde_json::Value {
    serde_json::to_value(registration()).expect("commands serialise")
}

/// The guild an interaction came from, as a plain id (commands are guild-only).
pub fn guild_of(ctx: Context<'_>) -> Result<u64, Error> {
    Ok(ctx
        .guild_id()
        .ok_or_else(|| UserError("This command only works in a server.".into()))?
        .get())
}
