//! Discord's 3 s window for the first response: commands are deferred before any work that
//! can wait, and the bot is ready before it connects.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_command_whose_guild_is_busy_for_5_s_is_deferred_in_time_and_answered_after() {
    let bot = TestBot::start().await;
    // Another writer holds the guild's database for up to 5 s (SQLite waits on it).
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let store = bot.store.clone();
    let holder = tokio::spawn(async move {
        store
            .with_guild(GUILD, move |c| {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                let _ = locked.send(());
                let _ = held.recv_timeout(Duration::from_secs(5));
                c.execute_batch("COMMIT").unwrap();
            })
            .await
    });
    is_locked.await.unwrap();
    let id = bot.send_slash(ALICE, "quote add", json!([option("text", "patience")]));
    let deferral = bot.response(id, "quote add").await;
    assert_eq!(deferral.body["type"], 5, "{:?}", deferral.body);
    assert!(
        !bot.fake
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/webhooks/") && r.path.contains(&format!("token-{id}"))),
        "no answer while the guild is busy"
    );
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let answer = bot.seen(id, "quote add").await;
    assert_eq!(
        answer.body["data"]["embeds"][0]["title"], "Saved quote #1",
        "{:?}",
        answer.body
    );
    assert!(!is_ephemeral(&answer.body));
    bot.shutdown().await;
}

#[tokio::test]
async fn an_error_after_a_public_deferral_is_still_shown_only_to_the_member() {
    let bot = TestBot::start().await;
    let missing = bot.slash(BOB, "quote get", json!([option("id", 99)])).await;
    assert!(is_ephemeral(&missing), "{missing}");
    assert_eq!(
        missing["data"]["content"],
        "There is no quote #99 in this server."
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn commands_are_registered_before_the_bot_connects() {
    let bot = TestBot::start().await;
    let before = bot.fake.requests_before_identify();
    assert!(
        before
            .iter()
            .any(|r| r.method == "PUT" && r.path.starts_with("/applications/")),
        "registered before IDENTIFY: {:?}",
        before.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn an_interaction_older_than_the_deadline_is_skipped_before_any_write() {
    let bot = TestBot::start().await;
    // Replayed after a RESUME, say: Discord made it 10 s ago and its token is dead.
    let stale = bot.fake.id_made(Duration::from_secs(10));
    bot.send_slash_as(
        stale,
        ALICE,
        "quote add",
        json!([option("text", "replayed")]),
    );
    let fresh = bot
        .slash(ALICE, "quote add", json!([option("text", "fresh")]))
        .await;
    assert_eq!(fresh["data"]["embeds"][0]["description"], "fresh");
    let texts = bot
        .store
        .with_guild(GUILD, |c| {
            c.prepare("SELECT text FROM quotes")
                .unwrap()
                .query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        })
        .await
        .unwrap();
    assert_eq!(texts, ["fresh"]);
    assert!(
        !bot.fake
            .requests()
            .iter()
            .any(|r| r.path.contains(&format!("token-{stale}"))),
        "no answer attempted"
    );
    bot.shutdown().await;
}
