//! Shutdown for interactions: once the gate closes, new slash commands and autocompletes are
//! ignored, and [`Gate::drained`] waits for the ones already running to finish.
//!
//! It wraps poise's framework rather than hooking `pre_command`/`post_command`, because only
//! the wrapper sees every way a command ends (success, error, panic caught by poise).
//! Button presses still flow while draining: a running command may be waiting for one.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use poise::serenity_prelude as serenity;
use tokio::sync::watch;

use super::{Data, Error};

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
}

#[serenity::async_trait]
impl serenity::Framework for Gated {
    async fn init(&mut self, client: &serenity::Client) {
        self.inner.init(client).await;
    }

    async fn dispatch(&self, ctx: serenity::Context, event: serenity::FullEvent) {
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
            tracing::info!("ignoring an interaction: shutting down");
            return;
        }
        self.inner.dispatch(ctx, event).await;
    }
}
