//! Discord's limits on what the bot sends: every text is measured and cut or paged to fit, so
//! that the fake (as strict as Discord) never refuses an answer after the write happened.

use chrono::{TimeDelta, Utc};
use guildkeep::reminders::{self, NewReminder, Recurrence, Target};
use serde_json::json;

use crate::{quotes::seed, support::*};

#[tokio::test]
async fn a_long_reminder_list_fits_one_embed_and_says_how_many_more() {
    let bot = TestBot::start().await;
    bot.store
        .with_guild(GUILD, |c| {
            for n in 0..60 {
                let new = NewReminder {
                    creator: ALICE + n % 3,
                    target: Target::Channel {
                        channel: CHANNEL,
                        users: vec![BOB],
                        roles: vec![],
                    },
                    message: "a long message about the weekly planning ".repeat(20),
                    due_at: Utc::now() + TimeDelta::hours(3),
                    time_zone: chrono_tz::Tz::UTC,
                    recurrence: Some("every 2h".parse::<Recurrence>().unwrap()),
                    recurrence_end: None,
                };
                reminders::create(c, &new, 100, Utc::now()).unwrap();
            }
        })
        .await
        .unwrap();
    let list = bot.slash(MODERATOR, "remind list", json!([])).await;
    let description = list["data"]["embeds"][0]["description"].as_str().unwrap();
    assert!(description.chars().count() <= 4096);
    assert!(description.ends_with("more."), "{description}");
    bot.shutdown().await;
}

#[tokio::test]
async fn a_channel_reminder_confirmation_stays_within_2000_characters() {
    let bot = TestBot::start().await;
    let who = format!("<@{BOB}> ").repeat(100);
    let set = bot
        .slash(
            ALICE,
            "remind channel",
            json!([
                option("when", "in 3h"),
                option("what", "w".repeat(1000)),
                option("who", who)
            ]),
        )
        .await;
    let text = set["data"]["content"].as_str().unwrap();
    assert!(text.starts_with("Reminder #1 set"), "{text}");
    assert!(text.chars().count() <= 2000);
    bot.shutdown().await;
}

#[tokio::test]
async fn tag_suggestions_whose_value_would_exceed_100_characters_are_not_offered() {
    let bot = TestBot::start().await;
    seed(&bot, "tagged", ALICE, &["memes"]).await;
    let typed = format!("{}, me", "t".repeat(95));
    let choices = bot.autocomplete(ALICE, "quote random", "tag", &typed).await;
    assert!(choices.is_empty(), "{choices:?}");
    let short = bot
        .autocomplete(ALICE, "quote random", "tag", "fun, me")
        .await;
    assert_eq!(short[0]["value"], "fun, memes");
    bot.shutdown().await;
}

#[tokio::test]
async fn quote_text_is_escaped_in_list_lines() {
    let bot = TestBot::start().await;
    for text in ["```unclosed code", "after the block"] {
        seed(&bot, text, ALICE, &[]).await;
    }
    let list = bot.slash(BOB, "quote list", json!([])).await;
    let description = list["data"]["embeds"][0]["description"].as_str().unwrap();
    assert!(
        description.contains("\\`\\`\\`unclosed code"),
        "{description}"
    );
    assert!(!description.contains("```"), "{description}");
    bot.shutdown().await;
}
