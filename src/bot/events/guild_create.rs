//! GUILD_CREATE: the bot is (again) in a guild. If the guild's data was due to be deleted
//! because the bot had been removed, the deletion is cancelled and its reminders resume.

use crate::bot::{Data, Error};

pub async fn handle(data: &Data, guild: u64) -> Result<(), Error> {
    if data.pending.get(guild).is_none() {
        return Ok(());
    }
    let pending = data.pending.clone();
    if tokio::task::spawn_blocking(move || pending.cancel(guild)).await?? {
        tracing::info!(guild, "the bot rejoined: the guild's data will be kept");
        data.scheduler.resume_guild(guild).await?;
    }
    Ok(())
}
