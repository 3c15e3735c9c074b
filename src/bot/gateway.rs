//! Samples serenity's shard manager for the gateway metrics and readiness: each owned shard's
//! connection state and heartbeat latency, once a second. The first time the bot is ready,
//! systemd is told (`READY=1`).
//!
//! Not here: the metrics (`crate::observe`) or reconnecting (serenity does).

use std::{sync::Arc, time::Duration};

use poise::serenity_prelude as serenity;
use tokio::sync::watch;

use crate::observe::{systemd, Metrics};

/// Cheap (a lock on a map of a few shards), and short enough for a probe to see READY soon.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

fn state_name(stage: serenity::ConnectionStage) -> &'static str {
    use serenity::ConnectionStage as S;
    match stage {
        S::Connected => "connected",
        S::Connecting => "connecting",
        S::Disconnected => "disconnected",
        S::Handshake => "handshake",
        S::Identifying => "identifying",
        S::Resuming => "resuming",
        // The enum is non-exhaustive; a new stage is some way of not being connected.
        _ => "connecting",
    }
}

/// Samples until `stop` turns true. `owned`: how many shards this process runs, when the
/// configuration says. Autosharded, it runs them all: as many as READY said there are.
/// serenity starts shards 5 s apart, so "every shard started so far" would be ready early.
pub async fn sample(
    shards: Arc<serenity::ShardManager>,
    metrics: Arc<Metrics>,
    owned: Option<usize>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut told_systemd = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let sampled: Vec<_> = shards
            .runners
            .lock()
            .await
            .iter()
            .map(|(id, runner)| (id.0, state_name(runner.stage), runner.latency))
            .collect();
        let owned = owned.or_else(|| metrics.shard_total());
        let all_ready = owned.is_some_and(|owned| sampled.len() >= owned)
            && sampled.iter().all(|(_, state, _)| *state == "connected");
        metrics.gateway_sampled(&sampled, all_ready);
        if metrics.is_ready() && !told_systemd {
            systemd::ready();
            told_systemd = true;
        }
    }
}
