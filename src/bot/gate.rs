//! Shutdown for interactions: once the gate closes, new slash commands are answered with a
//! short "restarting" (and autocompletes with no choices) instead of running, and
//! [`Gate::drained`] waits for the ones already running to finish.
//!
//! It wraps poise's framework rather than hooking `pre_command`/`post_command`, because only
//! the wrapper sees every way a command ends (success, error, panic caught by poise).
//! Button presses still flow while draining: a running command may be waiting for one.
//!
//! The gate also drops stale interactions before anything runs: one created (its id's
//! timestamp) longer ago than Discord's 3 s window can no longer be answered, for instance
//! when it is replayed after a RESUME, and must not write what its member will never see
//! confirmed.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use poise::serenity_prelude as serenity;
use tokio::sync::watch;

use super::{Data, Error, Started};

/// How long Discord waits for an interaction's first response.
const RESPONSE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
    /// How many commands are running.
    running: watch::Sender<usize>,
}

impl Gate {
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until no command is running, at most `limit`; returns whether they all ended.
    pub async fn drained(&self, limit: Duration) -> bool {
        let mut running = self.running.subscribe();
        let drained = tokio::time::timeout(limit, running.wait_for(|n| *n == 0)).await;
        drained.is_ok()
    }
}

/// Decrements the running count however the command ends.
struct Running<'a>(&'a Gate);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n -= 1);
    }
}

/// poise's framework behind the gate.
pub struct Gated {
    pub inner: poise::Framework<Data, Error>,
    pub gate: Arc<Gate>,
    /// Where the metrics are, once the bot has started: stale interactions are counted.
    pub started: Arc<Started>,
}

#[serenity::async_trait]
impl serenity::Framework for Gated {
    async fn init(&mut self, client: &serenity::Client) {
        self.inner.init(client).await;
    }

    async fn dispatch(&self, ctx: serenity::Context, event: serenity::FullEvent) {
        if let serenity::FullEvent::InteractionCreate { interaction } = &event {
            let age = chrono::Utc::now() - *interaction.id().created_at();
            if age > RESPONSE_WINDOW {
                tracing::warn!(id = %interaction.id(), age_ms = age.num_milliseconds(), "skipping an interaction too old to answer");
                if let Some(data) = self.started.get() {
                    data.metrics.missed_deadline();
                }
                return;
            }
        }
        let is_command = matches!(
            &event,
            serenity::FullEvent::InteractionCreate {
                interaction: serenity::Interaction::Command(_)
                    | serenity::Interaction::Autocomplete(_)
            }
        );
        if !is_command {
            return self.inner.dispatch(ctx, event).await;
        }
        self.gate.running.send_modify(|n| *n += 1);
        let _running = Running(&self.gate);
        if self.gate.closed.load(Ordering::SeqCst) {
            tracing::info!("refusing an interaction: shutting down");
            if let serenity::FullEvent::InteractionCreate { interaction } = &event {
                refuse(&ctx, interaction).await;
            }
            return;
        }
        self.inner.dispatch(ctx, event).await;
    }
}

/// Tells the member the bot is restarting, so that the command does not just fail.
async fn refuse(ctx: &serenity::Context, interaction: &serenity::Interaction) {
    let answered = match interaction {
        serenity::Interaction::Command(command) => {
            let message = serenity::CreateInteractionResponseMessage::new()
                .content("The bot is restarting. Try again in a minute.")
                .ephemeral(true)
                .allowed_mentions(super::reply::no_pings());
            command
                .create_response(ctx, serenity::CreateInteractionResponse::Message(message))
                .await
        }
        serenity::Interaction::Autocomplete(autocomplete) => {
            let empty = serenity::CreateAutocompleteResponse::new();
            autocomplete
                .create_response(
                    ctx,
                    serenity::CreateInteractionResponse::Autocomplete(empty),
                )
                .await
        }
        _ => Ok(()),
    };
    if let Err(e) = answered {
        tracing::warn!(error = %e, "could not answer an interaction during shutdown");
    }
}
