//! READY: the guilds Discord lists for this shard. A guild whose data is on disk, that this
//! shard owns, but that READY does not list was left while the bot was offline (its
//! GUILD_DELETE reached no one): its deletion is scheduled with the usual grace, as that
//! GUILD_DELETE would have. A guild merely unavailable is still listed, so an outage deletes
//! nothing; one already scheduled keeps its time.
//!
//! READY also gives the shard count, which readiness needs when the bot is autosharded.

use std::collections::HashSet;

use poise::serenity_prelude as serenity;

use super::guild_delete;
use crate::bot::{Data, Error};

pub async fn handle(data: &Data, ready: &serenity::Ready) -> Result<(), Error> {
    let (shard, count) = ready
        .shard
        .map_or((0, 1), |s| (u64::from(s.id.0), u64::from(s.total)));
    data.metrics
        .shard_total_seen(usize::try_from(count).unwrap_or(usize::MAX));
    let listed: HashSet<u64> = ready.guilds.iter().map(|g| g.id.get()).collect();
    let left = data
        .store
        .guilds_on_disk()
        .await?
        .into_iter()
        .filter(|guild| {
            (guild >> 22) % count == shard
                && !listed.contains(guild)
                && data.pending.get(*guild).is_none()
        });
    for guild in left {
        guild_delete::handle(data, guild, false).await?;
    }
    Ok(())
}
