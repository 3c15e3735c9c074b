//! Guild removal, outage and rejoin, as GUILD_DELETE / GUILD_CREATE from the gateway.

use std::time::Duration;

use crate::support::{payloads, *};

#[tokio::test]
async fn outage_keeps_the_data_and_removal_with_no_grace_deletes_it() {
    let bot = TestBot::start_with(|s| s.config.deletion_grace = Duration::ZERO).await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    bot.store.with_guild(OTHER_GUILD, |_| ()).await.unwrap();
    let mut changes = bot.pending.subscribe();
    bot.fake
        .dispatch("GUILD_DELETE", payloads::guild_delete(GUILD, true));
    bot.fake
        .dispatch("GUILD_DELETE", payloads::guild_delete(OTHER_GUILD, false));
    let other = bot.guild_dir(OTHER_GUILD);
    tokio::time::timeout(
        WAIT,
        changes.wait_for(|_| !other.exists() && bot.pending.all().is_empty()),
    )
    .await
    .expect("the removed guild's data is deleted")
    .unwrap();
    assert!(bot.guild_dir(GUILD).exists(), "an outage deletes nothing");
    assert_eq!(bot.pending.get(GUILD), None);
    bot.shutdown().await;
}

#[tokio::test]
async fn rejoining_within_the_grace_period_cancels_the_deletion() {
    let bot = TestBot::start().await; // default grace: 14 days
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    bot.remove_from(GUILD).await;
    let due = bot.pending.get(GUILD).unwrap();
    assert!(
        due > chrono::Utc::now() + chrono::TimeDelta::days(13),
        "{due}"
    );
    let on_disk = std::fs::read_to_string(bot.dir.path().join("pending_deletions.json")).unwrap();
    assert!(on_disk.contains(&GUILD.to_string()), "persisted: {on_disk}");

    let mut changes = bot.pending.subscribe();
    bot.fake
        .dispatch("GUILD_CREATE", payloads::guild(GUILD, &payloads::ROLES));
    tokio::time::timeout(WAIT, changes.wait_for(|_| bot.pending.get(GUILD).is_none()))
        .await
        .expect("deletion cancelled")
        .unwrap();
    assert!(bot.guild_dir(GUILD).exists());
    bot.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_deletion_survives_a_restart() {
    let first = TestBot::start().await;
    first.remove_from(GUILD).await;
    let due = first.pending.get(GUILD);
    let reopened = guildkeep::store::PendingDeletions::open(first.dir.path()).unwrap();
    assert_eq!(reopened.get(GUILD), due);
    first.shutdown().await;
}

#[tokio::test]
async fn a_guild_left_while_offline_is_noticed_at_ready_and_its_deletion_scheduled() {
    // On disk from an earlier run, but READY no longer lists it: the bot was removed meanwhile.
    const LEFT: u64 = 1_000_000_000_000_000_099;
    let bot = TestBot::start_with(|s| s.on_disk = vec![LEFT, GUILD]).await;
    let mut changes = bot.pending.subscribe();
    tokio::time::timeout(WAIT, changes.wait_for(|_| bot.pending.get(LEFT).is_some()))
        .await
        .expect("deletion scheduled")
        .unwrap();
    let due = bot.pending.get(LEFT).unwrap();
    assert!(
        due > chrono::Utc::now() + chrono::TimeDelta::days(13),
        "with the usual grace: {due}"
    );
    assert!(bot.guild_dir(LEFT).exists(), "not deleted yet");
    assert_eq!(bot.pending.get(GUILD), None, "a listed guild is kept");
    assert_eq!(bot.pending.get(OTHER_GUILD), None);
    bot.shutdown().await;
}
