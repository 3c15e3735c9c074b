//! Deletes the data of guilds the bot was removed from, once their grace period has ended.
//! The schedule lives in the store's [`PendingDeletions`](crate::store::PendingDeletions)
//! file, so a restart picks up where the last run left off; this task sleeps until the next
//! due time or until the schedule changes.
//!
//! Not here: deciding to schedule or cancel (`events/guild_delete.rs`, `events/guild_create.rs`).

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::{Data, Error};

/// How long to wait before retrying after a deletion failed.
const RETRY: Duration = Duration::from_secs(60);

/// Runs until `stop` becomes true.
pub async fn run(data: Data, mut stop: watch::Receiver<bool>) {
    let mut changed = data.pending.subscribe();
    loop {
        let mut wait = None;
        while let Some((guild, at)) = data.pending.next_due() {
            let until = at - Utc::now();
            if until > chrono::TimeDelta::zero() {
                wait = Some(until.to_std().unwrap_or(RETRY));
                break;
            }
            if let Err(e) = delete_now(&data, guild).await {
                tracing::error!(guild, error = %format!("{e:#}"), "deleting a removed guild's data failed; will retry");
                wait = Some(RETRY);
                break;
            }
            tracing::info!(
                guild,
                "deleted the data of a guild the bot was removed from"
            );
        }
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = changed.changed() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Deletes every file of `guild` now and forgets any scheduled deletion of it.
pub async fn delete_now(data: &Data, guild: u64) -> Result<(), Error> {
    crate::ops::gdpr::remove_guild(&data.owner(), guild).await
}
