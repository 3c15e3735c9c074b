//! The snooze and done buttons on delivered reminders, pressed through the fake Discord:
//! after a restart, on a repeat, by someone who may not, and twice at once.

use std::{sync::Arc, time::Duration};

use chrono::{TimeDelta, Utc};
use guildkeep::reminders::{self, Status, TokioClock};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::{payloads, *};

fn is_reminder_post(r: &Recorded) -> bool {
    r.method == "POST" && r.path.starts_with("/channels/") && r.path.ends_with("/messages")
}

/// The custom id of the button whose id starts with `remind:<action>:` on a posted reminder.
fn button(post: &Recorded, action: &str) -> String {
    let ids = buttons(&post.body);
    let prefix = format!("remind:{action}:");
    ids.into_iter()
        .find(|id| id.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {action} button on {}", post.body))
}

/// The posted reminder as the message a press on it carries.
fn as_message(bot: &TestBot, post: &Recorded) -> Value {
    let channel = post.path.split('/').nth(2).unwrap().parse().unwrap();
    let content = post.body["content"].as_str().unwrap();
    payloads::message(bot.fake.next_id(), channel, payloads::APP, content)
}

/// `/remind channel` by ALICE "in 2m" for BOB, with `more` options; the post it makes.
async fn channel_reminder_posted(bot: &TestBot, more: &[Value]) -> Recorded {
    let mut options = vec![
        option("when", "in 2m"),
        option("what", "standup"),
        option("who", format!("<@{BOB}>")),
    ];
    options.extend_from_slice(more);
    bot.slash(ALICE, "remind channel", Value::Array(options))
        .await;
    let post = bot
        .fake
        .wait_for("the reminder's post", is_reminder_post)
        .await;
    delivery_recorded(bot).await;
    post
}

/// Waits until the scheduler has recorded a delivery: a member answers a message after that.
async fn delivery_recorded(bot: &TestBot) {
    until_stored(bot, "the delivery recorded", |c| {
        c.query_row(
            "SELECT 1 FROM reminder_deliveries WHERE status = 'delivered'",
            [],
            |_| Ok(()),
        )
        .ok()
    })
    .await;
}

async fn all_reminders(bot: &TestBot) -> Vec<reminders::Reminder> {
    bot.store
        .with_guild(GUILD, |c| {
            reminders::list_some(c, ALICE, true, reminders::Show::All)
        })
        .await
        .unwrap()
        .unwrap()
}

/// The first edit of the pressed message through press `id`'s token.
async fn edit_of(bot: &TestBot, id: u64) -> Value {
    bot.webhook("PATCH", &format!("token-{id}")).await.body
}

/// The first follow-up of press `id`: what only the presser sees.
async fn followup_of(bot: &TestBot, id: u64) -> Value {
    let path = format!("/webhooks/{}/token-{id}", payloads::APP);
    let followup = bot
        .fake
        .wait_for("the follow-up", |r| r.method == "POST" && r.path == path)
        .await;
    assert!(followup.accepted(), "{:?}", followup.refusal);
    followup.body
}

/// Every interaction response of press `id` so far was a deferred update.
async fn deferred_update(bot: &TestBot, id: u64) {
    let first = bot.response(id, "the press").await;
    assert_eq!(first.body["type"], 6, "acknowledged as a deferred update");
}

/// Real time until the press, so that the gateway carries it; tokio's time, paused, after.
/// (Paused from the start, the gateway carried no event after READY: serenity reads it in
/// 500 ms timeouts, which auto-advance raced through.)
#[tokio::test]
async fn snooze_after_a_restart_sends_the_reminder_again_ten_minutes_later() {
    // The scheduler's clock moves with tokio's, an hour ahead: "in 2m" is due at once.
    let mut bot = TestBot::start_with(|s| {
        s.builder = |b| {
            let clock = TokioClock::starting_at(Utc::now() + TimeDelta::hours(1));
            quick(b).scheduler_clock(Arc::new(clock))
        };
    })
    .await;
    bot.slash(ALICE, "optin dm on", json!([])).await;
    bot.slash(
        ALICE,
        "remind me",
        json!([option("when", "in 2m"), option("what", "stretch")]),
    )
    .await;
    let dm = bot.fake.wait_for("the DM", is_reminder_post).await;
    let ids = buttons(&dm.body);
    assert_eq!(ids.len(), 4, "{}", dm.body);
    let labels: Vec<&str> = dm.body["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["Snooze 10 min", "Snooze 1 hour", "Tomorrow", "Done"]
    );
    let snooze = button(&dm, "10m");
    assert!(
        snooze.starts_with(&format!("remind:10m:{GUILD}:1:")),
        "{snooze}"
    );

    bot.restart().await;
    let press = bot.send_dm_press(ALICE, &snooze, &as_message(&bot, &dm));
    deferred_update(&bot, press).await;
    let edit = edit_of(&bot, press).await;
    tokio::time::pause();
    let pressed_at = Instant::now();
    assert_eq!(edit["components"], json!([]), "the buttons go");
    assert_no_pings(&edit);
    let text = edit["content"].as_str().unwrap();
    assert!(text.starts_with("⏰ Reminder: stretch"), "{text}");
    let due: i64 = text
        .split("Snoozed until <t:")
        .nth(1)
        .and_then(|t| t.split(':').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let stored = all_reminders(&bot).await;
    assert_eq!(stored.len(), 1, "the one-off itself, re-armed");
    assert_eq!(
        (stored[0].status, stored[0].due_at.timestamp()),
        (Status::Active, due)
    );

    let again = bot
        .fake
        .wait_for_within(Duration::from_secs(900), "the snoozed DM", |r| {
            is_reminder_post(r)
                && buttons(&r.body)
                    .iter()
                    .any(|id| id.ends_with(&format!(":{due}")))
        })
        .await;
    let waited = pressed_at.elapsed();
    assert!(
        (Duration::from_secs(599)..=Duration::from_secs(602)).contains(&waited),
        "sent again {waited:?} after the press"
    );
    assert!(again.body["content"].as_str().unwrap().contains("stretch"));
    let dms = bot
        .fake
        .requests()
        .into_iter()
        .filter(is_reminder_post)
        .count();
    assert_eq!(dms, 2, "the first time and the snoozed one");
    tokio::time::resume();
    bot.shutdown().await;
}

#[tokio::test]
async fn done_on_a_repeat_acknowledges_that_time_and_the_series_goes_on() {
    let bot = bot_ahead().await;
    let post = channel_reminder_posted(&bot, &[option("repeat", "every 2h")]).await;
    let series = all_reminders(&bot).await.remove(0);
    let press = bot.send_press(BOB, &button(&post, "done"), &as_message(&bot, &post));
    deferred_update(&bot, press).await;
    let edit = edit_of(&bot, press).await;
    assert_eq!(edit["components"], json!([]));
    assert_no_pings(&edit);
    let text = edit["content"].as_str().unwrap();
    assert!(text.contains("standup"), "the text stays: {text}");
    assert!(
        text.contains(&format!(
            "✅ Done (<@{BOB}>). Next time: <t:{}:f>.",
            series.due_at.timestamp()
        )),
        "{text}"
    );
    // A stale client's snooze of the same time changes nothing.
    let late = bot.send_press(ALICE, &button(&post, "1h"), &as_message(&bot, &post));
    let told = followup_of(&bot, late).await;
    assert_eq!(told["content"], "This reminder was already marked done.");
    assert_eq!(told["flags"], 64, "ephemeral");
    assert_eq!(
        all_reminders(&bot).await,
        [series],
        "no copy, the series untouched"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn a_press_by_someone_neither_creator_nor_target_is_refused() {
    let bot = bot_ahead().await;
    let post = channel_reminder_posted(&bot, &[]).await;
    let before = all_reminders(&bot).await;
    // A moderator may cancel anyone's reminder, but is not among this one's targets.
    let press = bot.send_press(MODERATOR, &button(&post, "10m"), &as_message(&bot, &post));
    deferred_update(&bot, press).await;
    let told = followup_of(&bot, press).await;
    assert_eq!(
        told["content"],
        "Only the member who set this reminder, or those it reminds, can snooze it or mark it done."
    );
    assert_eq!(told["flags"], 64, "ephemeral");
    assert_no_pings(&told);
    let token = format!("token-{press}");
    assert!(
        !bot.fake
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains(&token)),
        "the buttons stay for those who may press them"
    );
    assert_eq!(all_reminders(&bot).await, before);

    // An id that is not of our form is refused at once, without a lookup.
    let forged = bot.press(BOB, "remind:10m:../guilds:1:1767225600").await;
    assert!(is_ephemeral(&forged), "{forged}");
    assert_eq!(forged["data"]["content"], "This button is not one I know.");
    // Another server's id pressed here.
    let elsewhere = button(&post, "10m").replace(&GUILD.to_string(), &OTHER_GUILD.to_string());
    let refused = bot.press(BOB, &elsewhere).await;
    assert_eq!(
        refused["data"]["content"],
        "This button belongs to another server."
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn a_double_press_snoozes_once() {
    let bot = bot_ahead().await;
    let post = channel_reminder_posted(&bot, &[]).await;
    let message = as_message(&bot, &post);
    let first = bot.send_press(ALICE, &button(&post, "10m"), &message);
    let second = bot.send_press(BOB, &button(&post, "1h"), &message);
    deferred_update(&bot, first).await;
    deferred_update(&bot, second).await;
    let tokens = [format!("token-{first}"), format!("token-{second}")];
    let of_these = |r: &Recorded| tokens.iter().any(|t| r.path.contains(t.as_str()));
    let says_snoozed = |r: &Recorded| {
        r.method == "PATCH"
            && r.body["content"]
                .as_str()
                .is_some_and(|c| c.contains("Snoozed until"))
    };
    let snoozed = bot
        .fake
        .wait_for("the snooze", |r| of_these(r) && says_snoozed(r))
        .await;
    let refused = bot
        .fake
        .wait_for("the refusal", |r| {
            of_these(r) && r.method == "POST" && r.path.starts_with("/webhooks/")
        })
        .await;
    assert_eq!(
        refused.body["content"],
        "This reminder was already snoozed."
    );
    let token = |r: &Recorded| r.path.split('/').nth(3).unwrap().to_owned();
    assert_ne!(token(&snoozed), token(&refused), "one of each");
    let snoozes = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| of_these(r) && says_snoozed(r))
        .count();
    assert_eq!(snoozes, 1);
    let stored = all_reminders(&bot).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].status, Status::Active);
    bot.shutdown().await;
}

/// Runs a command that asks for confirmation, and confirms it.
async fn confirmed(bot: &TestBot, user: u64, command: &str) {
    let asked = bot.slash(user, command, json!([])).await;
    let ids = buttons(&asked);
    let confirm = ids.iter().find(|i| i.ends_with(":confirm")).unwrap();
    bot.press(user, confirm).await;
}

#[tokio::test]
async fn a_press_after_an_erasure_or_the_servers_deletion_brings_nothing_back() {
    let bot = bot_ahead().await;
    let post = channel_reminder_posted(&bot, &[]).await;
    let message = as_message(&bot, &post);
    // Its creator erases her data here: the reminder goes with it.
    confirmed(&bot, ALICE, "privacy forget").await;
    let press = bot.send_press(BOB, &button(&post, "10m"), &message);
    let told = followup_of(&bot, press).await;
    assert_eq!(told["content"], "This reminder no longer exists.");
    assert_eq!(edit_of(&bot, press).await["components"], json!([]));
    assert_eq!(all_reminders(&bot).await, []);

    // The server's data deleted: a press neither answers from nor re-creates its database.
    confirmed(&bot, ADMIN, "admin data delete").await;
    assert!(!bot.guild_dir(GUILD).exists());
    let press = bot.send_press(BOB, &button(&post, "1h"), &message);
    let told = followup_of(&bot, press).await;
    assert_eq!(told["content"], "This reminder no longer exists.");
    assert!(!bot.guild_dir(GUILD).exists(), "not re-created");
    bot.shutdown().await;
}
