//! GUILD_DELETE: either an outage (`unavailable: true`), which changes nothing, or the bot was
//! removed from the guild, which schedules deletion of its data after `deletion_grace`
//! (persisted; `bot/deletions.rs` carries it out, at once when the grace is zero) and pauses
//! its reminders meanwhile: they could only fail.

use chrono::Utc;

use crate::bot::{Data, Error};

pub async fn handle(data: &Data, guild: u64, unavailable: bool) -> Result<(), Error> {
    if unavailable {
        tracing::info!(
            guild,
            "guild unavailable (Discord outage): keeping its data"
        );
        return Ok(());
    }
    let grace = chrono::TimeDelta::from_std(data.config.deletion_grace)?;
    let at = Utc::now() + grace;
    let pending = data.pending.clone();
    tokio::task::spawn_blocking(move || pending.schedule(guild, at)).await??;
    data.scheduler.pause_guild(guild);
    tracing::info!(guild, %at, "the bot was removed: the guild's data will be deleted");
    Ok(())
}
