//! `/privacy export|forget`: a member's own data.

use chrono::Utc;
use guildkeep::quotes::{self, NewQuote};
use serde_json::{json, Value};

use crate::support::*;

async fn seed(bot: &TestBot, by: u64) -> i64 {
    let new = NewQuote {
        text: "mine".into(),
        added_by: by,
        ..NewQuote::default()
    };
    let store = bot.store.clone();
    store
        .with_guild(GUILD, move |c| {
            let q = quotes::add(c, &new, Utc::now())?;
            quotes::rate(c, q.id, by, 5, Utc::now())?;
            Ok::<_, quotes::QuoteError>(q.id)
        })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn export_is_an_ephemeral_json_attachment() {
    let bot = TestBot::start().await;
    let id = seed(&bot, ALICE).await;
    let sent = bot.slash_seen(ALICE, "privacy export", json!([])).await;
    assert!(is_ephemeral(&sent.body), "{:?}", sent.body);
    assert_no_pings(&sent.body);
    assert_eq!(sent.files.len(), 1, "one attachment");
    let (name, bytes) = &sent.files[0];
    assert!(name.ends_with(".json"), "{name}");
    let export: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(export["user_id"], ALICE);
    assert_eq!(export["quotes_added"][0]["id"], id);
    assert_eq!(export["ratings"][0]["rating"], 5);

    let nothing = bot.slash(BOB, "privacy export", json!([])).await;
    assert!(is_ephemeral(&nothing));
    assert!(nothing["data"]["content"]
        .as_str()
        .unwrap()
        .contains("nothing"));
    bot.shutdown().await;
}

#[tokio::test]
async fn forget_asks_first_then_erases() {
    let bot = TestBot::start().await;
    let id = seed(&bot, ALICE).await;
    let body = bot.slash(ALICE, "privacy forget", json!([])).await;
    assert!(is_ephemeral(&body));
    let ids = buttons(&body);
    let cancel = ids.iter().find(|i| i.ends_with(":cancel")).unwrap();
    let cancelled = bot.press(ALICE, cancel).await;
    assert!(cancelled["data"]["content"]
        .as_str()
        .unwrap()
        .contains("Cancelled"));

    let body = bot
        .slash(ALICE, "privacy forget", json!([option("saved_quotes", 1)]))
        .await;
    let confirm = buttons(&body)
        .into_iter()
        .find(|i| i.ends_with(":confirm"))
        .unwrap();
    let done = bot.press(ALICE, &confirm).await;
    assert_eq!(done["type"], 6, "acknowledged, then the message edited");
    let text = done["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("Removed 1 rating(s)") && text.contains("1 deleted"),
        "{text}"
    );
    assert_eq!(done["data"]["components"], json!([]));
    let left = bot
        .store
        .with_guild(GUILD, move |c| quotes::get(c, id))
        .await
        .unwrap()
        .unwrap();
    assert!(left.is_none());
    bot.shutdown().await;
}

#[tokio::test]
async fn an_export_over_the_attachment_size_limit_is_not_attached_and_says_why() {
    let bot = TestBot::start().await;
    seed(&bot, ALICE).await;
    bot.fake.set_attachment_size_limit(100);
    let sent = bot.slash_seen(ALICE, "privacy export", json!([])).await;
    assert!(is_ephemeral(&sent.body), "{:?}", sent.body);
    assert!(sent.files.is_empty(), "nothing attached");
    let text = sent.body["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("more than the 0 KiB Discord lets me attach")
            && text.contains(&format!(
                "guildkeep gdpr export-user {ALICE} --guild {GUILD}"
            )),
        "{text}"
    );
    bot.shutdown().await;
}
