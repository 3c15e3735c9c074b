//! The daily sweep that applies [`crate::retention::prune`] to every guild on disk, one guild
//! at a time so members' commands keep the store's slots. The first sweep runs a while after
//! start-up, so a bot restarted every day still sweeps.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::Data;
use crate::retention::{self, Pruned};

/// From start-up to the first sweep.
const FIRST_SWEEP: Duration = Duration::from_secs(10 * 60);
/// Between sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs until `stop` becomes true.
pub async fn run(data: Data, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST_SWEEP;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = sweep(&data) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        wait = SWEEP_EVERY;
    }
}

/// Prunes every guild on disk; a guild that cannot be pruned now is left for the next sweep.
async fn sweep(data: &Data) {
    let Ok(retention) = chrono::TimeDelta::from_std(data.config.reminder_retention) else {
        return;
    };
    let before = Utc::now() - retention;
    let guilds = match data.store.guilds_on_disk().await {
        Ok(guilds) => guilds,
        Err(e) => {
            tracing::warn!(error = %e, "retention sweep: guilds on disk unreadable");
            return;
        }
    };
    let mut total = Pruned::default();
    for guild in guilds {
        match data
            .store
            .with_existing_guild(guild, move |c| retention::prune(c, before))
            .await
        {
            Ok(Ok(pruned)) => {
                total.reminders += pruned.reminders;
                total.deliveries += pruned.deliveries;
            }
            Ok(Err(e)) => tracing::warn!(guild, error = %e, "retention sweep failed in guild"),
            Err(e) => tracing::debug!(guild, error = %e, "retention sweep skipped guild"),
        }
    }
    tracing::info!(
        reminders = total.reminders,
        deliveries = total.deliveries,
        "retention sweep done"
    );
}
