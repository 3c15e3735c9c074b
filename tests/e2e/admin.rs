//! `/admin data delete|stats` as admins and non-admins see them.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn stats_shows_the_guilds_data_ephemerally() {
    let bot = TestBot::start().await;
    let body = bot.slash(ADMIN, "admin data stats", json!([])).await;
    assert!(is_ephemeral(&body), "{body}");
    assert_eq!(body["data"]["embeds"][0]["title"], "This server's data");
    assert_no_pings(&body);
    bot.shutdown().await;
}

#[tokio::test]
async fn a_non_admin_is_refused_even_when_the_command_is_sent() {
    let bot = TestBot::start().await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    let body = bot.slash(ALICE, "admin data delete", json!([])).await;
    assert!(is_ephemeral(&body), "{body}");
    let text = body["data"]["content"].as_str().unwrap();
    assert!(text.contains("permission"), "{text}");
    assert!(buttons(&body).is_empty(), "no confirmation offered: {body}");
    assert!(bot.guild_dir(GUILD).exists());
    bot.shutdown().await;
}

#[tokio::test]
async fn delete_asks_first_and_deletes_on_confirmation() {
    let bot = TestBot::start().await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    let body = bot.slash(ADMIN, "admin data delete", json!([])).await;
    assert!(is_ephemeral(&body), "{body}");
    let ids = buttons(&body);
    assert_eq!(ids.len(), 2, "{body}");
    assert!(
        bot.guild_dir(GUILD).exists(),
        "nothing deleted before confirming"
    );
    let confirm = ids.iter().find(|id| id.ends_with(":confirm")).unwrap();
    let answer = bot.press(ADMIN, confirm).await;
    assert_eq!(
        answer["type"], 6,
        "acknowledged, then the message edited: {answer}"
    );
    assert_eq!(answer["data"]["components"], json!([]));
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap()
        .contains("Deleted"));
    assert!(!bot.guild_dir(GUILD).exists());
    bot.shutdown().await;
}

#[tokio::test]
async fn delete_confirmation_expires() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).button_timeout(std::time::Duration::from_millis(200));
    })
    .await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    let sent = bot.slash_seen(ADMIN, "admin data delete", json!([])).await;
    let token = sent.path.split('/').nth(3).unwrap().to_owned();
    let edit = bot.webhook("PATCH", &token).await;
    assert!(
        edit.body["content"].as_str().unwrap().contains("expired"),
        "{:?}",
        edit.body
    );
    assert_eq!(edit.body["components"], json!([]));
    // A press that still reaches the bot (a stale client, say) is told the buttons expired.
    let confirm = format!("{}:confirm", token.trim_start_matches("token-"));
    let late = bot.press(ADMIN, &confirm).await;
    assert!(is_ephemeral(&late), "{late}");
    assert_eq!(
        late["data"]["content"],
        "These buttons have expired. Run the command again."
    );
    assert!(bot.guild_dir(GUILD).exists());
    bot.shutdown().await;
}

#[tokio::test]
async fn a_press_on_a_button_from_before_a_restart_is_answered() {
    let bot = TestBot::start().await;
    let answer = bot.press(ALICE, "1234567890:next").await;
    assert!(is_ephemeral(&answer), "{answer}");
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{answer}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_a_running_command_finish() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).button_timeout(std::time::Duration::from_millis(300));
    })
    .await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    let sent = bot.slash_seen(ADMIN, "admin data delete", json!([])).await;
    let token = sent.path.split('/').nth(3).unwrap().to_owned();
    let mut bot = bot;
    bot.stop().await;
    assert!(
        bot.fake
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains(&token)),
        "the confirmation was closed before the bot stopped"
    );
}

#[tokio::test]
async fn manage_server_granted_in_one_channel_only_is_not_enough() {
    let bot = TestBot::start().await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    bot.fake.allow_in_channel(BOB, MANAGE_GUILD);
    let body = bot.slash(BOB, "admin data delete", json!([])).await;
    assert!(is_ephemeral(&body), "{body}");
    let text = body["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("Manage Server for the whole server"),
        "{text}"
    );
    assert!(buttons(&body).is_empty(), "no confirmation offered: {body}");
    assert!(bot.guild_dir(GUILD).exists());
    bot.shutdown().await;
}

#[tokio::test]
async fn a_command_sent_while_shutting_down_is_told_the_bot_is_restarting() {
    let mut bot = TestBot::start().await;
    bot.store.with_guild(GUILD, |_| ()).await.unwrap();
    // A running command (waiting on its confirmation) keeps the bot draining for a while.
    bot.slash(ADMIN, "admin data delete", json!([])).await;
    bot.request_stop();
    let mut answer = String::new();
    for _ in 0..50 {
        let body = bot.slash(ALICE, "optin dm status", json!([])).await;
        answer = body["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if answer.contains("restarting") {
            assert!(is_ephemeral(&body), "{body}");
            break;
        }
    }
    assert_eq!(answer, "The bot is restarting. Try again in a minute.");
    bot.stop().await;
}
