//! `/remind`, `/optin dm` and the scheduler's deliveries through the fake Discord.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use guildkeep::{
    ops::{
        legacy::{migrate_legacy, ImportOptions},
        Owner,
    },
    optins,
    reminders::{self, NewReminder, Target},
    store::{GuildDatabaseManager, StoreConfig},
};
use serde_json::{json, Value};

use crate::support::{payloads, *};

fn content(body: &Value) -> &str {
    body["data"]["content"].as_str().unwrap_or_default()
}

/// The text of a message the bot posted (not an interaction response).
fn message(body: &Value) -> &str {
    body["content"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn optin_dm_on_off_and_status() {
    let bot = TestBot::start().await;
    let status = bot.slash(ALICE, "optin dm status", json!([])).await;
    assert!(is_ephemeral(&status));
    assert!(content(&status).contains("**off**"), "{status}");
    let on = bot.slash(ALICE, "optin dm on", json!([])).await;
    assert!(is_ephemeral(&on));
    let status = bot.slash(ALICE, "optin dm status", json!([])).await;
    assert!(content(&status).contains("**on**"), "{status}");
    let off = bot.slash(ALICE, "optin dm off", json!([])).await;
    assert!(is_ephemeral(&off));
    let stored = bot
        .store
        .with_guild(GUILD, |c| optins::dm_opted_in(c, ALICE))
        .await
        .unwrap()
        .unwrap();
    assert!(!stored);
    bot.shutdown().await;
}

#[tokio::test]
async fn remind_me_needs_an_opt_in_and_then_arrives_by_dm() {
    let bot = bot_ahead().await;
    let refused = bot
        .slash(
            ALICE,
            "remind me",
            json!([option("when", "in 2m"), option("what", "stretch")]),
        )
        .await;
    assert!(is_ephemeral(&refused));
    assert!(content(&refused).contains("/optin dm on"), "{refused}");

    bot.slash(ALICE, "optin dm on", json!([])).await;
    let set = bot
        .slash(
            ALICE,
            "remind me",
            json!([option("when", "in 2m"), option("what", "stretch @everyone")]),
        )
        .await;
    assert!(is_ephemeral(&set));
    assert!(content(&set).starts_with("Reminder #1 set"), "{set}");
    assert_no_pings(&set);

    let dm = bot
        .fake
        .wait_for("the DM channel", |r| r.path == "/users/@me/channels")
        .await;
    assert_eq!(dm.body["recipient_id"], ALICE.to_string());
    let sent = bot
        .fake
        .wait_for("the DM", |r| {
            r.method == "POST" && r.path.ends_with("/messages")
        })
        .await;
    assert_eq!(sent.path, format!("/channels/{}/messages", ALICE + 7));
    assert!(sent.body["content"]
        .as_str()
        .unwrap()
        .contains("stretch @everyone"));
    assert_eq!(sent.body["allowed_mentions"]["parse"], json!([]));
    bot.shutdown().await;
}

#[tokio::test]
async fn remind_channel_confirms_quietly_and_posts_pinging_exactly_its_targets() {
    let bot = bot_ahead().await;
    let who = format!("<@{BOB}> <@&{ROLE}>");
    let set = bot
        .slash(
            ALICE,
            "remind channel",
            json!([
                option("when", "in 2m"),
                option("what", "standup @everyone"),
                option("who", who)
            ]),
        )
        .await;
    assert!(!is_ephemeral(&set));
    assert!(content(&set).contains("standup @everyone"), "{set}");
    assert_no_pings(&set);

    let post = bot
        .fake
        .wait_for("the channel post", |r| {
            r.path == format!("/channels/{CHANNEL}/messages")
        })
        .await;
    let mentions = &post.body["allowed_mentions"];
    assert_eq!(mentions["parse"], json!([]), "no @everyone: {mentions}");
    assert_eq!(mentions["users"], json!([BOB.to_string()]));
    assert_eq!(mentions["roles"], json!([ROLE.to_string()]));
    let text = post.body["content"].as_str().unwrap();
    assert!(
        text.contains(&format!("<@{BOB}>")) && text.contains("standup"),
        "{text}"
    );
    bot.shutdown().await;
}

/// Written "by an earlier run": a channel reminder that came due an hour ago.
fn overdue_reminder(conn: &rusqlite::Connection) {
    let then = Utc::now() - TimeDelta::hours(2);
    let new = NewReminder {
        creator: ALICE,
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![ROLE],
        },
        message: "water the plants".into(),
        due_at: then + TimeDelta::hours(1),
        time_zone: chrono_tz::Tz::UTC,
        recurrence: None,
        recurrence_end: None,
    };
    reminders::create(conn, &new, 25, then).expect("reminder stored");
}

/// Reminder #1 of [`GUILD`] as the running `bot` has it now.
async fn reminder_one(bot: &TestBot) -> reminders::Reminder {
    let found = bot.store.with_guild(GUILD, |c| reminders::get(c, 1)).await;
    found.unwrap().unwrap().expect("reminder #1")
}

/// `/remind channel` by [`ALICE`] "in 1h", pinging [`BOB`], with `what` and `more` options;
/// what she sees.
async fn remind_bob_in_an_hour(bot: &TestBot, what: &str, more: &[Value]) -> Value {
    let mut options = vec![
        option("when", "in 1h"),
        option("what", what),
        option("who", format!("<@{BOB}>")),
    ];
    options.extend_from_slice(more);
    bot.slash(ALICE, "remind channel", Value::Array(options))
        .await
}

#[tokio::test]
async fn a_repeating_reminder_confirms_with_its_next_three_times() {
    let bot = TestBot::start().await;
    let confirmed = remind_bob_in_an_hour(&bot, "stretch", &[option("repeat", "every 2h")]).await;
    let text = content(&confirmed);
    let (_, repeats) = text.split_once("Repeats `every 2h`: ").expect(text);
    let times: Vec<i64> = repeats
        .split("<t:")
        .skip(1)
        .map(|t| t.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 3, "{text}");
    assert_eq!([times[1] - times[0], times[2] - times[1]], [7200, 7200]);
    let once = remind_bob_in_an_hour(&bot, "once", &[]).await;
    assert!(!content(&once).contains("Repeats"), "{once}");
    bot.shutdown().await;
}

#[tokio::test]
async fn a_repeat_ends_at_its_until_or_after_a_number_of_times_and_until_needs_a_repeat() {
    let bot = TestBot::start().await;
    let confirmed = remind_bob_in_an_hour(
        &bot,
        "stretch",
        &[option("repeat", "every 2h"), option("until", "in 4h")],
    )
    .await;
    let text = content(&confirmed);
    assert_eq!(
        text.matches("<t:").count(),
        2 + 2 + 1,
        "when (twice), two repeats and the end: {text}"
    );
    let stored = reminder_one(&bot).await;
    let end = stored.recurrence_end.expect("an end");
    assert_eq!((end - stored.due_at).num_minutes(), 180);
    let counted = remind_bob_in_an_hour(
        &bot,
        "stretch",
        &[option("repeat", "every 2h"), option("until", "2 times")],
    )
    .await;
    let text = content(&counted);
    let (_, repeats) = text.split_once("Repeats `every 2h`: ").expect(text);
    assert_eq!(
        repeats.matches("<t:").count(),
        2 + 1,
        "two, then the last: {text}"
    );
    assert!(repeats.contains("2 times, the last <t:"), "{text}");
    let listed = listed(&bot, ALICE, json!([])).await;
    assert!(
        listed.contains("(every 2h, 2 times, the last <t:"),
        "{listed}"
    );
    let refused = remind_bob_in_an_hour(&bot, "once", &[option("until", "in 4h")]).await;
    assert!(is_ephemeral(&refused), "{refused}");
    assert!(
        content(&refused).contains("`until` ends a repeat"),
        "{refused}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn a_reminder_that_came_due_while_down_is_posted_late_with_the_right_mentions() {
    let bot = TestBot::start_with(|s| s.seed = Some(overdue_reminder)).await;
    let post = bot
        .fake
        .wait_for("the late post", |r| {
            r.path == format!("/channels/{CHANNEL}/messages")
        })
        .await;
    let mentions = &post.body["allowed_mentions"];
    assert_eq!(mentions["parse"], json!([]));
    assert_eq!(mentions["users"], json!([BOB.to_string()]));
    assert_eq!(mentions["roles"], json!([ROLE.to_string()]));
    let text = post.body["content"].as_str().unwrap();
    assert!(
        text.contains("water the plants") && text.contains("late"),
        "{text}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn list_cancel_and_their_autocomplete() {
    let bot = TestBot::start().await;
    let who = format!("<@{BOB}>");
    bot.slash(
        ALICE,
        "remind channel",
        json!([
            option("when", "in 3h"),
            option("what", "lunch"),
            option("who", who)
        ]),
    )
    .await;

    let list = bot.slash(ALICE, "remind list", json!([])).await;
    assert!(is_ephemeral(&list));
    let lines = list["data"]["embeds"][0]["description"].as_str().unwrap();
    assert!(
        lines.contains("**#1**") && lines.contains("lunch"),
        "{lines}"
    );

    let choices = bot.autocomplete(ALICE, "remind cancel", "id", "lu").await;
    assert_eq!(choices[0]["value"], "1");
    assert!(
        bot.autocomplete(BOB, "remind cancel", "id", "")
            .await
            .is_empty(),
        "not Bob's"
    );

    let refused = bot
        .slash(BOB, "remind cancel", json!([option("id", 1)]))
        .await;
    assert!(
        is_ephemeral(&refused) && content(&refused).contains("Only the member"),
        "{refused}"
    );
    let cancelled = bot
        .slash(ALICE, "remind cancel", json!([option("id", 1)]))
        .await;
    assert_eq!(content(&cancelled), "Cancelled reminder #1.");
    let empty = bot.slash(ALICE, "remind list", json!([])).await;
    assert!(
        content(&empty).starts_with("No active reminders"),
        "{empty}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn timezone_is_validated_and_autocompleted() {
    let bot = TestBot::start().await;
    let zones = bot
        .autocomplete(ALICE, "remind timezone", "zone", "berl")
        .await;
    assert_eq!(zones[0]["value"], "Europe/Berlin");
    let set = bot
        .slash(
            ALICE,
            "remind timezone",
            json!([option("zone", "europe/berlin")]),
        )
        .await;
    assert!(is_ephemeral(&set));
    assert_eq!(content(&set), "Your time zone here is now Europe/Berlin.");
    let bad = bot
        .slash(
            ALICE,
            "remind timezone",
            json!([option("zone", "Mars/Olympus")]),
        )
        .await;
    assert!(
        is_ephemeral(&bad) && content(&bad).contains("Mars/Olympus"),
        "{bad}"
    );
    let who = format!("<@{BOB}>");
    let unreadable = bot
        .slash(
            ALICE,
            "remind channel",
            json!([
                option("when", "someday"),
                option("what", "x"),
                option("who", who)
            ]),
        )
        .await;
    assert!(
        is_ephemeral(&unreadable) && content(&unreadable).contains("someday"),
        "{unreadable}"
    );
    bot.shutdown().await;
}

/// Stops `bot` (the scheduler records the outcome of sends in progress first) and reads
/// reminder `id` of [`GUILD`] as it was left.
async fn left_after_stop(bot: &mut TestBot, id: u64) -> reminders::Reminder {
    bot.stop().await;
    left_in(bot, id).await
}

/// Reminder `id` of [`GUILD`] as a stopped `bot` left it.
async fn left_in(bot: &TestBot, id: u64) -> reminders::Reminder {
    let store = guildkeep::store::GuildDatabaseManager::new(guildkeep::store::StoreConfig::new(
        bot.dir.path(),
    ))
    .unwrap();
    let reminder = store
        .with_guild(GUILD, move |c| reminders::get(c, id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    store.shutdown().await;
    reminder
}

#[tokio::test]
async fn closed_dms_leave_a_one_off_to_be_tried_again_later_saying_what_to_do() {
    let mut bot = bot_ahead().await;
    bot.slash(ALICE, "optin dm on", json!([])).await;
    bot.fake
        .fail(&format!("/channels/{}/messages", ALICE + 7), 403, 50007);
    bot.slash(
        ALICE,
        "remind me",
        json!([option("when", "in 2m"), option("what", "stretch")]),
    )
    .await;
    bot.fake
        .wait_for("the refused DM", |r| {
            r.path.ends_with(&format!("{}/messages", ALICE + 7))
        })
        .await;
    let reminder = left_after_stop(&mut bot, 1).await;
    assert_eq!(reminder.status, reminders::Status::Active, "not given up");
    let reason = reminder.last_error.unwrap();
    assert!(reason.contains("Allow direct messages"), "{reason}");
}

/// A bot (an hour ahead) whose posts in [`CHANNEL`] Discord refuses with `status` and `code`,
/// with reminder #1 set there "in 2m" and its post refused once.
async fn channel_post_refused(status: u16, code: u32) -> TestBot {
    let bot = bot_ahead().await;
    bot.fake
        .fail(&format!("/channels/{CHANNEL}/messages"), status, code);
    bot.slash(
        ALICE,
        "remind channel",
        json!([
            option("when", "in 2m"),
            option("what", "standup"),
            option("who", format!("<@{BOB}>"))
        ]),
    )
    .await;
    let refused = bot
        .fake
        .wait_for("the refused post", |r| {
            r.path == format!("/channels/{CHANNEL}/messages")
        })
        .await;
    assert_eq!(refused.status, status);
    bot
}

#[tokio::test]
async fn an_unknown_channel_ends_a_reminder_at_once_saying_why() {
    let mut bot = channel_post_refused(404, 10003).await;
    let reminder = left_after_stop(&mut bot, 1).await;
    assert_eq!(reminder.status, reminders::Status::Failed);
    let reason = reminder.last_error.unwrap();
    assert!(reason.contains("no longer exists"), "{reason}");
}

/// Waits until reminder #1 of [`GUILD`] has failed.
async fn until_failed(bot: &TestBot) {
    until_stored(bot, "the failed reminder", |c| {
        let failed = reminders::get(c, 1).unwrap()?;
        (failed.status == reminders::Status::Failed).then_some(())
    })
    .await;
}

/// The text of the embed `/remind list` shows `user` with these options.
async fn listed(bot: &TestBot, user: u64, options: Value) -> String {
    let list = bot.slash(user, "remind list", options).await;
    assert!(is_ephemeral(&list), "{list}");
    let embed = &list["data"]["embeds"][0];
    format!(
        "{} {}{}",
        embed["title"].as_str().unwrap_or_default(),
        embed["description"].as_str().unwrap_or_default(),
        content(&list)
    )
}

#[tokio::test]
async fn remind_list_shows_failed_reminders_with_why_under_its_filter() {
    let bot = channel_post_refused(404, 10003).await;
    until_failed(&bot).await;
    let active = listed(&bot, ALICE, json!([])).await;
    assert!(active.contains("No active reminders"), "{active}");
    // 0: active, 1: failed, 2: all.
    for show in [1, 2] {
        let failed = listed(&bot, ALICE, json!([option("show", show)])).await;
        assert!(
            failed.contains("#1")
                && failed.contains("Stopped: the channel it was to be posted in no longer exists"),
            "{failed}"
        );
    }
    let none = listed(&bot, BOB, json!([option("show", 1)])).await;
    assert!(
        none.contains("No failed reminders"),
        "only the creator's: {none}"
    );
    bot.shutdown().await;
}

/// Follow-ups (`POST` to the interaction's webhook) of interaction `id` so far.
fn follow_ups(bot: &TestBot, id: u64) -> Vec<Value> {
    bot.fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/token-{id}")))
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn a_creator_without_dms_is_told_once_at_their_next_remind_that_a_reminder_stopped() {
    let bot = channel_post_refused(404, 10003).await;
    until_failed(&bot).await;
    let first = bot.send_slash(ALICE, "remind list", json!([]));
    bot.seen(first, "the first list").await;
    let told = bot
        .fake
        .wait_for("the notice", |r| {
            r.method == "POST"
                && r.path.ends_with(&format!("/token-{first}"))
                && content(&json!({"data": r.body})).starts_with("Your reminder")
        })
        .await;
    assert!(is_ephemeral(&json!({"data": told.body})), "{}", told.body);
    assert_no_pings(&told.body);
    let text = told.body["content"].as_str().unwrap();
    assert!(
        text.contains("#1") && text.contains("has stopped") && text.contains("no longer exists"),
        "{text}"
    );

    let second = bot.send_slash(ALICE, "remind list", json!([]));
    bot.seen(second, "the second list").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again: Vec<Value> = follow_ups(&bot, second)
        .into_iter()
        .filter(|body| content(&json!({"data": body})).starts_with("Your reminder"))
        .collect();
    assert!(again.is_empty(), "told once: {again:?}");
    bot.shutdown().await;
}

#[tokio::test]
async fn remind_list_shows_a_one_off_paused_after_a_refusal_with_its_next_try_and_why() {
    let bot = channel_post_refused(403, 50013).await;
    let retry = until_stored(&bot, "the refusal", |c| {
        reminders::get(c, 1).unwrap()?.retry_at
    })
    .await;
    let paused = format!(
        "Paused until <t:{}:f>, then tried again: I'm missing a permission",
        retry.timestamp()
    );
    // 0: active, 2: all; paused reminders are active ones.
    for show in [
        json!([]),
        json!([option("show", 0)]),
        json!([option("show", 2)]),
    ] {
        let listed = listed(&bot, ALICE, show).await;
        assert!(
            listed.contains("#1") && listed.contains(&paused),
            "{listed}"
        );
    }
    let failed = listed(&bot, ALICE, json!([option("show", 1)])).await;
    assert!(failed.contains("No failed reminders"), "{failed}");
    bot.shutdown().await;
}

#[tokio::test]
async fn missing_permissions_leave_a_channel_reminder_waiting_for_an_admin() {
    let mut bot = channel_post_refused(403, 50013).await;
    let reminder = left_after_stop(&mut bot, 1).await;
    assert_eq!(reminder.status, reminders::Status::Active);
    let reason = reminder.last_error.unwrap();
    assert!(reason.contains("Ask an admin"), "{reason}");
}

#[tokio::test]
async fn a_refused_token_stops_the_bot_and_fails_no_reminder() {
    let mut bot = channel_post_refused(401, 0).await;
    let ended = bot.ended().await;
    let error = format!("{:#}", ended.expect_err("the bot stops with an error"));
    assert!(error.contains("DISCORD_TOKEN"), "{error}");
    let posts = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/channels/{CHANNEL}/messages"))
        .count();
    assert_eq!(posts, 1, "no further sends");
    let reminder = left_in(&bot, 1).await;
    assert_eq!(
        (reminder.status, reminder.attempts, reminder.last_error),
        (reminders::Status::Active, 0, None)
    );
}

/// A channel reminder due five seconds after the bot starts (its scheduler runs an hour ahead).
fn due_in_five_seconds(conn: &rusqlite::Connection) {
    let now = Utc::now();
    let new = NewReminder {
        creator: ALICE,
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![],
        },
        message: "standup".into(),
        due_at: now + TimeDelta::hours(1) + TimeDelta::seconds(5),
        time_zone: chrono_tz::Tz::UTC,
        recurrence: None,
        recurrence_end: None,
    };
    reminders::create(conn, &new, 25, now).expect("reminder stored");
}

#[tokio::test]
async fn a_guild_in_its_grace_period_gets_no_reminders_and_a_rejoin_sends_them() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(TimeDelta::hours(1))));
        s.seed = Some(due_in_five_seconds);
    })
    .await;
    bot.remove_from(GUILD).await;
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let posted = |bot: &TestBot| {
        bot.fake
            .requests()
            .into_iter()
            .any(|r| r.path == format!("/channels/{CHANNEL}/messages"))
    };
    assert!(!posted(&bot), "nothing sent while removed");

    bot.fake
        .dispatch("GUILD_CREATE", payloads::guild(GUILD, &payloads::ROLES));
    let post = bot
        .fake
        .wait_for("the post after the rejoin", |r| {
            r.path == format!("/channels/{CHANNEL}/messages")
        })
        .await;
    assert!(post.body["content"].as_str().unwrap().contains("standup"));
    bot.shutdown().await;
}

#[tokio::test]
async fn a_dm_claimed_ahead_is_called_off_when_its_member_opts_out() {
    // "in 2m" is due five seconds from now for this scheduler, so it is claimed at once
    // (reminders are claimed 20 s ahead) and waits for its time.
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(TimeDelta::seconds(115))));
    })
    .await;
    bot.slash(ALICE, "optin dm on", json!([])).await;
    bot.slash(
        ALICE,
        "remind me",
        json!([option("when", "in 2m"), option("what", "private")]),
    )
    .await;
    until_stored(&bot, "the claim", |c| {
        c.query_row("SELECT 1 FROM reminder_deliveries", [], |_| Ok(()))
            .ok()
    })
    .await;

    bot.slash(ALICE, "optin dm off", json!([])).await;
    let reminder = until_stored(&bot, "the reminder's outcome", |c| {
        reminders::get(c, 1)
            .unwrap()
            .filter(|r| r.status != reminders::Status::Active)
    })
    .await;
    assert_eq!(
        (reminder.status, reminder.last_error.as_deref()),
        (
            reminders::Status::Failed,
            Some(reminders::delivery::NOT_OPTED_IN)
        )
    );
    let dms: Vec<_> = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/users/@me/channels" || r.path.ends_with("/messages"))
        .collect();
    assert!(dms.is_empty(), "nothing sent: {dms:?}");
    bot.shutdown().await;
}

#[tokio::test]
async fn manage_messages_in_one_channel_only_neither_reads_nor_cancels_others_reminders() {
    let bot = TestBot::start().await;
    bot.slash(ALICE, "optin dm on", json!([])).await;
    bot.slash(
        ALICE,
        "remind me",
        json!([option("when", "in 3h"), option("what", "my private note")]),
    )
    .await;
    bot.fake.allow_in_channel(BOB, MANAGE_MESSAGES);
    let list = bot.slash(BOB, "remind list", json!([])).await;
    assert!(
        content(&list).starts_with("No active reminders"),
        "Bob sees only his own: {list}"
    );
    let refused = bot
        .slash(BOB, "remind cancel", json!([option("id", 1)]))
        .await;
    assert!(
        is_ephemeral(&refused) && content(&refused).contains("Only the member"),
        "{refused}"
    );
    let moderator = bot.slash(MODERATOR, "remind list", json!([])).await;
    let lines = moderator["data"]["embeds"][0]["description"]
        .as_str()
        .unwrap();
    assert!(
        lines.contains("my private note"),
        "a server-wide moderator sees all: {lines}"
    );
    bot.shutdown().await;
}

/// `/remind channel` in 3 h for `who`, by `user`.
async fn remind_channel(bot: &TestBot, user: u64, who: String) -> Value {
    bot.slash(
        user,
        "remind channel",
        json!([
            option("when", "in 3h"),
            option("what", "standup"),
            option("who", who)
        ]),
    )
    .await
}

#[tokio::test]
async fn a_member_cannot_have_a_reminder_ping_a_role_they_could_not_ping_themselves() {
    let bot = TestBot::start().await;
    let refused = remind_channel(&bot, ALICE, format!("<@&{QUIET_ROLE}>")).await;
    assert!(is_ephemeral(&refused), "{refused}");
    assert_eq!(
        content(&refused),
        format!(
            "You can't have a reminder ping <@&{QUIET_ROLE}>: the role isn't mentionable, and \
             pinging it needs the Mention Everyone permission, which you don't have here."
        )
    );
    assert_no_pings(&refused);
    let everyone = remind_channel(&bot, ALICE, format!("<@&{GUILD}>")).await;
    assert_eq!(content(&everyone), "A reminder can't ping @everyone.");
    let unknown = remind_channel(&bot, ALICE, "<@&42>".into()).await;
    assert_eq!(content(&unknown), "<@&42> is not a role in this server.");

    // Mention Everyone granted in this channel only is not enough; with it server-wide too,
    // the member could ping the role here themselves.
    bot.fake.allow_in_channel(BOB, MENTION_EVERYONE);
    let channel_only = remind_channel(&bot, BOB, format!("<@&{QUIET_ROLE}>")).await;
    assert!(is_ephemeral(&channel_only), "{channel_only}");
    bot.fake.give_role(BOB, PINGER_ROLE);
    // The bot needs the permission too, to ping a role that is not mentionable.
    bot.fake
        .set_app_permissions(payloads::BOT_PERMISSIONS | MENTION_EVERYONE);
    let allowed = remind_channel(&bot, BOB, format!("<@&{QUIET_ROLE}>")).await;
    assert!(!is_ephemeral(&allowed), "{allowed}");
    assert!(
        content(&allowed).starts_with("Reminder #1 set"),
        "{allowed}"
    );
    let mentionable = remind_channel(&bot, ALICE, format!("<@&{ROLE}>")).await;
    assert!(
        content(&mentionable).starts_with("Reminder #2 set"),
        "{mentionable}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn a_channel_reminder_the_bot_could_not_post_is_refused_naming_what_it_lacks() {
    let bot = TestBot::start().await;
    bot.fake.set_app_permissions(payloads::VIEW_CHANNEL);
    let refused = remind_channel(&bot, ALICE, format!("<@{BOB}>")).await;
    assert!(is_ephemeral(&refused), "{refused}");
    assert_eq!(
        content(&refused),
        "I can't post reminders in this channel: I'm missing Send Messages here. Ask an admin \
         to grant it to me, or set the reminder in another channel."
    );
    bot.fake.set_app_permissions(payloads::BOT_PERMISSIONS);
    bot.fake.give_role(ALICE, PINGER_ROLE);
    bot.fake.allow_in_channel(ALICE, MENTION_EVERYONE);
    let no_mention = remind_channel(&bot, ALICE, format!("<@&{QUIET_ROLE}>")).await;
    assert!(
        content(&no_mention).contains("I'm missing Mention @everyone, @here, and All Roles here"),
        "{no_mention}"
    );
    let stored = bot
        .store
        .with_guild(GUILD, |c| reminders::list(c, ALICE, false))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.is_empty(), "nothing was set");
    let fine = remind_channel(&bot, ALICE, format!("<@{BOB}>")).await;
    assert!(content(&fine).starts_with("Reminder #1 set"), "{fine}");
    bot.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_post_leaves_the_reminder_to_be_retried() {
    let mut bot = channel_post_refused(429, 0).await;
    let refused = bot
        .fake
        .wait_for("the rate-limited post", |r| {
            r.path == format!("/channels/{CHANNEL}/messages")
        })
        .await;
    assert!(refused.refusal.unwrap()["retry_after"].as_f64().is_some());
    let reminder = left_after_stop(&mut bot, 1).await;
    assert_eq!(
        reminder.status,
        reminders::Status::Active,
        "kept for a retry"
    );
}

/// Reminders imported from VeraBot's own v2.9.0 database (tests/fixtures/verabot) reach the
/// members VeraBot sent them to: with the scheduler's clock past their due times, each of its
/// 34 active DM reminders (thirty of them for thirty members) arrives as a DM to its assignee,
/// the two VeraBot posted in its notification channel are posted in `--reminder-channel`, and
/// the sent and cancelled ones are not sent at all.
#[tokio::test]
async fn reminders_imported_from_verabot_reach_the_members_it_sent_them_to() {
    const ANN: u64 = 180_000_000_000_000_001;
    const BO: u64 = 180_000_000_000_000_002;
    let bot = TestBot::start_with(|s| {
        // The fixture's reminders are due in 2031.
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(TimeDelta::days(6 * 366))));
        let data_dir = s.config.store.data_dir.clone();
        // Imported before the bot starts, as an operator would, by the same code as the CLI.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let store = GuildDatabaseManager::new(StoreConfig::new(&data_dir)).unwrap();
                let options = ImportOptions {
                    source: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/fixtures/verabot/v2.9.0-single.db"),
                    default_guild: Some(GUILD),
                    reminder_channel: Some(CHANNEL),
                    ..ImportOptions::default()
                };
                migrate_legacy(&Owner::standalone(store.clone()), options)
                    .await
                    .unwrap();
                store.shutdown().await;
            })
        })
        .join()
        .unwrap();
    })
    .await;

    // The fake's DM channel with a member; the channel VeraBot's environment named, now this one.
    let dm = |user: u64| format!("/channels/{}/messages", user + 7);
    let channel = format!("/channels/{CHANNEL}/messages");
    let expected: Vec<(String, String)> = [
        (ANN, "Team standup"),
        (BO, "Water the plants"),
        (ANN, "Conference talk"),
        (ANN, "Dentist (moved)"),
    ]
    .map(|(user, subject)| (dm(user), subject.to_owned()))
    .into_iter()
    .chain((1..=30).map(|n| {
        (
            dm(180_000_000_000_000_100 + n),
            format!("Check-in {n} of 30"),
        )
    }))
    // For a role, and for a member who had declined DMs.
    .chain(["Raid night", "Pay rent"].map(|subject| (channel.clone(), subject.to_owned())))
    .collect();
    for (path, subject) in &expected {
        bot.fake
            .wait_for(subject, |r| {
                r.method == "POST" && &r.path == path && message(&r.body).contains(subject.as_str())
            })
            .await;
    }
    let posted: Vec<String> = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .map(|r| message(&r.body).to_owned())
        .collect();
    for never in ["Already sent", "Called off", "Nobody to tell"] {
        assert!(
            !posted.iter().any(|m| m.contains(never)),
            "{never}: {posted:?}"
        );
    }
    assert_eq!(
        posted.len(),
        expected.len(),
        "one message per active reminder: {posted:?}"
    );
    bot.shutdown().await;
}

/// The position in the fake's log of the first request that `matches`.
fn logged_at(bot: &TestBot, matches: impl Fn(&Recorded) -> bool) -> usize {
    bot.fake
        .requests()
        .iter()
        .position(matches)
        .expect("logged")
}

#[tokio::test]
async fn an_edit_during_a_send_answers_only_after_the_old_text_went_out_and_applies_next_time() {
    let bot = bot_ahead().await;
    let posts = format!("/channels/{CHANNEL}/messages");
    bot.fake.hold(&posts);
    remind_bob_in_an_hour(&bot, "old text", &[option("repeat", "every 2h")]).await;
    // An hour ahead, the scheduler finds it due at once; Discord holds the post open.
    bot.fake.until_held(1).await;

    let edit = bot.send_slash(
        ALICE,
        "remind edit",
        json!([option("id", "1"), option("what", "new text")]),
    );
    bot.response(edit, "the edit's deferral").await;
    let token = format!("/token-{edit}");
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        bot.fake.wait_for("an early answer", |r| {
            r.path.starts_with("/webhooks/") && r.path.contains(&token)
        }),
    )
    .await;
    assert!(early.is_err(), "answered while the old text was being sent");
    bot.fake.let_go(&posts);
    let answer = bot.seen(edit, "remind edit").await;
    let text = content(&answer.body);
    assert!(text.starts_with("Reminder #1 changed"), "{text}");
    assert!(
        text.contains("new text") && text.contains("Repeats"),
        "{text}"
    );
    assert!(is_ephemeral(&answer.body), "{answer:?}");
    assert_no_pings(&answer.body);

    let old_post = logged_at(&bot, |r| {
        r.path == posts && message(&r.body).contains("old text")
    });
    let answered = logged_at(&bot, |r| {
        r.path.starts_with("/webhooks/") && r.path.contains(&token)
    });
    assert!(
        old_post < answered,
        "the old text went out before the answer"
    );
    let stored = reminder_one(&bot).await;
    let first = bot
        .store
        .with_guild(GUILD, |c| {
            c.query_row("SELECT due_at FROM reminder_deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.message.as_str(), stored.due_at.timestamp()),
        ("new text", first + 7200),
        "the edit applies to the next time"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn an_edit_between_the_claim_and_the_send_calls_the_old_text_off() {
    // "in 2m" is due five seconds from now for this scheduler, so it is claimed at once
    // (reminders are claimed 20 s ahead) and waits for its time.
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(TimeDelta::seconds(115))));
    })
    .await;
    bot.slash(
        ALICE,
        "remind channel",
        json!([
            option("when", "in 2m"),
            option("what", "old text"),
            option("who", format!("<@{BOB}>"))
        ]),
    )
    .await;
    until_stored(&bot, "the claim", |c| {
        c.query_row("SELECT 1 FROM reminder_deliveries", [], |_| Ok(()))
            .ok()
    })
    .await;
    let edited = bot
        .slash(
            ALICE,
            "remind edit",
            json!([option("id", "1"), option("what", "new text")]),
        )
        .await;
    assert!(
        content(&edited).starts_with("Reminder #1 changed"),
        "{edited}"
    );
    let posts = format!("/channels/{CHANNEL}/messages");
    let post = bot.fake.wait_for("the post", |r| r.path == posts).await;
    assert!(message(&post.body).contains("new text"), "{}", post.body);
    let old: Vec<_> = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| message(&r.body).contains("old text") && r.path == posts)
        .collect();
    assert!(old.is_empty(), "the old text was never posted: {old:?}");
    bot.shutdown().await;
}

#[tokio::test]
async fn remind_edit_is_for_the_creator_or_a_moderator_and_checked_as_creation_is() {
    let bot = TestBot::start().await;
    remind_bob_in_an_hour(&bot, "standup", &[]).await;
    let edit = |user, options: Value| bot.slash(user, "remind edit", options);
    let cases = [
        (
            BOB,
            json!([option("id", "1"), option("what", "bob's")]),
            "Only the member who set reminder #1, or a moderator, can change or cancel it.",
        ),
        (
            ALICE,
            json!([option("id", "9"), option("what", "x")]),
            "There is no reminder #9 here.",
        ),
        (
            ALICE,
            json!([option("id", "1")]),
            "Give what to change: when, what, repeat, until or who.",
        ),
        (
            ALICE,
            json!([option("id", "1"), option("when", "yesterday 9:00")]),
            "I can't read \"yesterday 9:00\" as a time.",
        ),
        (
            ALICE,
            json!([option("id", "1"), option("until", "3 times")]),
            "`until` ends a repeat: add a repeat, or leave `until` out.",
        ),
        (
            ALICE,
            json!([option("id", "1"), option("who", format!("<@&{GUILD}>"))]),
            "A reminder can't ping @everyone.",
        ),
    ];
    for (user, options, refusal) in cases {
        let refused = edit(user, options).await;
        assert!(is_ephemeral(&refused), "{refused}");
        assert!(content(&refused).starts_with(refusal), "{refused}");
    }
    let moderated = edit(
        MODERATOR,
        json!([
            option("id", "1"),
            option("what", "standup @everyone"),
            option("repeat", "daily at 9:00"),
            option("until", "3 times"),
            option("who", format!("<@{ALICE}> <@{BOB}>"))
        ]),
    )
    .await;
    let text = content(&moderated);
    assert!(
        text.starts_with("Reminder #1 changed")
            && text.contains(&format!("for <@{ALICE}> <@{BOB}>"))
            && text.contains("3 times, the last <t:")
            && text.contains("standup @everyone"),
        "{text}"
    );
    assert_no_pings(&moderated);
    let stored = reminder_one(&bot).await;
    assert_eq!(stored.recurrence_count, Some(3));
    assert_eq!(stored.upcoming(10).len(), 3);
    bot.shutdown().await;
}
