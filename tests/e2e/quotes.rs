//! `/quote` and "Save as quote", as members see them through the fake Discord.

use std::time::Duration;

use chrono::Utc;
use guildkeep::quotes::{self, NewQuote};
use serde_json::{json, Value};

use crate::support::{payloads, *};

/// Saves a quote straight through the domain, as if `by` had added it.
pub async fn seed(bot: &TestBot, text: &str, by: u64, tags: &[&str]) -> i64 {
    let new = NewQuote {
        text: text.into(),
        author_name: Some("Ada".into()),
        added_by: by,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..NewQuote::default()
    };
    bot.store
        .with_guild(GUILD, move |c| quotes::add(c, &new, Utc::now()))
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn stored(bot: &TestBot, id: i64) -> Option<quotes::Quote> {
    bot.store
        .with_guild(GUILD, move |c| quotes::get(c, id))
        .await
        .unwrap()
        .unwrap()
}

fn embed(body: &Value) -> &Value {
    &body["data"]["embeds"][0]
}

fn field<'a>(embed: &'a Value, name: &str) -> &'a str {
    embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}: {embed}"))["value"]
        .as_str()
        .unwrap()
}

fn content(body: &Value) -> &str {
    body["data"]["content"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn add_shows_the_quote_as_an_embed_and_pings_nobody() {
    let bot = TestBot::start().await;
    let text = "@everyone look <@&123> and <@456>";
    let body = bot
        .slash(
            ALICE,
            "quote add",
            json!([
                option("text", text),
                option("author", "Ada"),
                option("tags", "Funny, cats")
            ]),
        )
        .await;
    assert_eq!(body["type"], 5, "deferred, then answered");
    assert!(!is_ephemeral(&body));
    assert_eq!(embed(&body)["title"], "Saved quote #1");
    assert_eq!(embed(&body)["description"], text);
    assert_eq!(field(embed(&body), "Author"), "Ada");
    assert_eq!(field(embed(&body), "Tags"), "cats, funny");
    assert_no_pings(&body);
    let saved = stored(&bot, 1).await.unwrap();
    assert_eq!(saved.text, text);
    assert_eq!(saved.added_by, Some(ALICE));
    bot.shutdown().await;
}

#[tokio::test]
async fn get_random_today_and_a_missing_quote() {
    let bot = TestBot::start().await;
    let id = seed(&bot, "to be or not", ALICE, &["drama"]).await;
    seed(&bot, "other", ALICE, &[]).await;

    let got = bot.slash(BOB, "quote get", json!([option("id", id)])).await;
    assert_eq!(embed(&got)["description"], "to be or not");
    assert_no_pings(&got);

    let random = bot
        .slash(BOB, "quote random", json!([option("tag", "Drama")]))
        .await;
    assert_eq!(embed(&random)["description"], "to be or not");

    let today = bot.slash(BOB, "quote today", json!([])).await;
    assert!(embed(&today)["title"]
        .as_str()
        .unwrap()
        .starts_with("Quote of the day"));
    assert_no_pings(&today);

    let missing = bot.slash(BOB, "quote get", json!([option("id", 99)])).await;
    assert!(is_ephemeral(&missing));
    assert_eq!(content(&missing), "There is no quote #99 in this server.");
    bot.shutdown().await;
}

#[tokio::test]
async fn search_finds_by_words() {
    let bot = TestBot::start().await;
    seed(&bot, "the quick brown fox", ALICE, &[]).await;
    seed(&bot, "lazy dogs", ALICE, &[]).await;
    let body = bot
        .slash(BOB, "quote search", json!([option("query", "fox")]))
        .await;
    let description = embed(&body)["description"].as_str().unwrap();
    assert!(description.contains("quick brown fox"), "{description}");
    assert!(!description.contains("lazy"), "{description}");
    assert_no_pings(&body);
    let none = bot
        .slash(BOB, "quote search", json!([option("query", "zebra")]))
        .await;
    assert!(is_ephemeral(&none));
    bot.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_buttons_only_the_invoker_can_press() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).button_timeout(std::time::Duration::from_millis(1500));
    })
    .await;
    for n in 1..=12 {
        seed(&bot, &format!("quote number {n}"), ALICE, &[]).await;
    }
    let sent = bot.slash_seen(ALICE, "quote list", json!([])).await;
    let body = &sent.body;
    assert!(!is_ephemeral(body));
    assert_no_pings(body);
    assert!(embed(body)["description"]
        .as_str()
        .unwrap()
        .contains("quote number 10"));
    let ids = buttons(body);
    assert_eq!(ids.len(), 2, "{body}");
    let next = ids.iter().find(|i| i.ends_with(":next")).unwrap().clone();

    let refused = bot.press(BOB, &next).await;
    assert_eq!(refused["type"], 4);
    assert!(is_ephemeral(&refused), "{refused}");

    let turned = bot.press(ALICE, &next).await;
    assert_eq!(
        turned["type"], 6,
        "acknowledged before the page loads: {turned}"
    );
    let page2 = turned["data"]["embeds"][0]["description"].as_str().unwrap();
    assert!(
        page2.contains("quote number 11") && !page2.contains("quote number 10\n"),
        "{page2}"
    );
    assert_no_pings(&turned);

    // After the timeout the buttons are removed from the message, through the last press's
    // token (the command's own dies 15 minutes after the command).
    let edit = bot
        .fake
        .wait_for("the buttons removed", |r| {
            r.method == "PATCH" && r.body["components"] == json!([])
        })
        .await;
    assert!(edit.accepted(), "{:?}", edit.refusal);
    let command_token = sent.path.split('/').nth(3).unwrap().to_owned();
    assert!(!edit.path.contains(&command_token), "{}", edit.path);
    bot.shutdown().await;
}

#[tokio::test]
async fn only_the_saver_or_a_moderator_may_edit_or_delete() {
    let bot = TestBot::start().await;
    let id = seed(&bot, "original", ALICE, &[]).await;

    let refused = bot
        .slash(
            BOB,
            "quote edit",
            json!([option("id", id), option("text", "hacked")]),
        )
        .await;
    assert!(is_ephemeral(&refused));
    assert!(
        content(&refused).contains("Only the member who saved"),
        "{refused}"
    );

    let edited = bot
        .slash(
            ALICE,
            "quote edit",
            json!([option("id", id), option("text", "better")]),
        )
        .await;
    assert_eq!(embed(&edited)["description"], "better");
    assert_no_pings(&edited);

    let refused = bot
        .slash(BOB, "quote delete", json!([option("id", id)]))
        .await;
    assert!(is_ephemeral(&refused));
    assert!(stored(&bot, id).await.is_some());

    let deleted = bot
        .slash(MODERATOR, "quote delete", json!([option("id", id)]))
        .await;
    assert_eq!(content(&deleted), format!("Deleted quote #{id}."));
    assert!(stored(&bot, id).await.is_none());
    bot.shutdown().await;
}

#[tokio::test]
async fn rate_tag_and_stats() {
    let bot = TestBot::start().await;
    let id = seed(&bot, "rated", ALICE, &[]).await;

    let rated = bot
        .slash(
            BOB,
            "quote rate",
            json!([option("id", id), option("stars", 4)]),
        )
        .await;
    assert!(is_ephemeral(&rated));
    assert!(content(&rated).contains("4.0 from 1 rating"), "{rated}");

    let tagged = bot
        .slash(
            ALICE,
            "quote tag",
            json!([
                option("id", id),
                option("action", 0),
                option("tags", "wise, old")
            ]),
        )
        .await;
    assert_eq!(field(embed(&tagged), "Tags"), "old, wise");
    let untagged = bot
        .slash(
            ALICE,
            "quote tag",
            json!([option("id", id), option("action", 1), option("tags", "old")]),
        )
        .await;
    assert_eq!(field(embed(&untagged), "Tags"), "wise");

    let stats = bot.slash(BOB, "quote stats", json!([])).await;
    assert_eq!(field(embed(&stats), "Quotes"), "1");
    assert_eq!(field(embed(&stats), "Ratings"), "1");
    assert!(field(embed(&stats), "Most quotes saved").contains(&format!("<@{ALICE}>")));
    assert_no_pings(&stats);
    bot.shutdown().await;
}

#[tokio::test]
async fn save_as_quote_stores_the_text_and_its_author() {
    let bot = TestBot::start().await;
    let target = payloads::message(555, CHANNEL, BOB, "I never said that @everyone");
    let body = bot.message_command(ALICE, "Save as quote", &target).await;
    assert_eq!(embed(&body)["description"], "I never said that @everyone");
    assert_no_pings(&body);
    let saved = stored(&bot, 1).await.unwrap();
    assert_eq!(saved.text, "I never said that @everyone");
    assert_eq!(saved.author_id, Some(BOB));
    assert_eq!(saved.added_by, Some(ALICE));
    assert_eq!(saved.source_message_id, Some(555));
    bot.shutdown().await;
}

#[tokio::test]
async fn a_member_searching_faster_than_once_a_second_is_held_back() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).search_interval(Duration::from_secs(3600));
    })
    .await;
    let id = seed(&bot, "find me", ALICE, &[]).await;
    let first = bot.autocomplete(BOB, "quote get", "id", "find").await;
    assert_eq!(first[0]["value"], id.to_string());
    let again = bot.autocomplete(BOB, "quote get", "id", "find m").await;
    assert!(
        again.is_empty(),
        "a second search at once offers nothing: {again:?}"
    );
    let by_number = bot
        .autocomplete(BOB, "quote get", "id", &id.to_string())
        .await;
    assert_eq!(
        by_number[0]["value"],
        id.to_string(),
        "numbers are no search"
    );
    let refused = bot
        .slash(BOB, "quote search", json!([option("query", "find")]))
        .await;
    assert!(
        content(&refused).contains("searching very fast"),
        "{refused}"
    );
    assert!(is_ephemeral(&refused));
    let other = bot
        .slash(ALICE, "quote search", json!([option("query", "find")]))
        .await;
    assert!(
        other.to_string().contains("find me"),
        "another member: {other}"
    );
    bot.shutdown().await;
}

#[tokio::test]
async fn a_server_at_its_storage_limit_is_told_so_and_nothing_is_half_saved() {
    let bot = TestBot::start_with(|s| {
        s.seed = Some(|c| {
            let text = "a long quote ".repeat(150);
            for _ in 0..300 {
                c.execute(
                    "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, 1, 0, 0)",
                    [&text],
                )
                .unwrap();
            }
        });
        // Below what the seed already takes: the file may not grow at all.
        s.config.store.max_guild_bytes = 256 << 10;
    })
    .await;
    // The last pages may still have room for a quote or two; then the file cannot grow.
    let mut saved = 0;
    let refused = loop {
        let text = format!("one more {saved} {}", "word ".repeat(380));
        let answer = bot
            .slash(ALICE, "quote add", json!([option("text", text)]))
            .await;
        if !content(&answer).is_empty() {
            break answer;
        }
        saved += 1;
        assert!(saved < 10, "still saving past the limit: {answer}");
    };
    assert!(
        content(&refused).contains("reached the space the bot keeps"),
        "{refused}"
    );
    assert!(is_ephemeral(&refused));
    let count = bot
        .store
        .with_guild(GUILD, |c| {
            c.query_row("SELECT count(*) FROM quotes", [], |r| r.get::<_, i64>(0))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 300 + saved, "every answer told the truth");
    bot.shutdown().await;
}

#[tokio::test]
async fn autocomplete_offers_quote_numbers_and_tags() {
    let bot = TestBot::start().await;
    let id = seed(&bot, "autocomplete me", ALICE, &["memes"]).await;
    let choices = bot.autocomplete(BOB, "quote get", "id", "").await;
    assert_eq!(choices[0]["value"], id.to_string());
    let by_words = bot
        .autocomplete(BOB, "quote get", "id", "autocomplete")
        .await;
    assert_eq!(by_words[0]["value"], id.to_string(), "found by its text");
    let picked = bot
        .slash(
            BOB,
            "quote get",
            json!([option("id", by_words[0]["value"].clone())]),
        )
        .await;
    assert_eq!(embed(&picked)["description"], "autocomplete me");
    let typed = bot
        .slash(BOB, "quote get", json!([option("id", "autocomplete")]))
        .await;
    assert!(
        is_ephemeral(&typed) && content(&typed).contains("type its number"),
        "{typed}"
    );
    assert!(choices[0]["name"]
        .as_str()
        .unwrap()
        .contains("autocomplete me"));
    let tags = bot.autocomplete(BOB, "quote random", "tag", "me").await;
    assert_eq!(tags[0]["value"], "memes");
    bot.shutdown().await;
}

#[tokio::test]
async fn write_commands_have_a_per_member_cooldown() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).write_cooldown(std::time::Duration::from_secs(60));
    })
    .await;
    let first = bot
        .slash(ALICE, "quote add", json!([option("text", "one")]))
        .await;
    assert!(!is_ephemeral(&first));
    let second = bot
        .slash(ALICE, "quote add", json!([option("text", "two")]))
        .await;
    assert!(is_ephemeral(&second));
    assert!(content(&second).starts_with("Slow down"), "{second}");
    let other_member = bot
        .slash(BOB, "quote add", json!([option("text", "three")]))
        .await;
    assert!(!is_ephemeral(&other_member), "the cooldown is per member");
    let read = bot
        .slash(ALICE, "quote get", json!([option("id", 1)]))
        .await;
    assert!(!is_ephemeral(&read), "reading has no cooldown");
    bot.shutdown().await;
}

#[tokio::test]
async fn manage_messages_granted_in_one_channel_only_does_not_make_a_moderator() {
    let bot = TestBot::start().await;
    let id = seed(&bot, "Alice's", ALICE, &[]).await;
    bot.fake.allow_in_channel(BOB, MANAGE_MESSAGES);
    let refused = bot
        .slash(BOB, "quote delete", json!([option("id", id)]))
        .await;
    assert!(is_ephemeral(&refused), "{refused}");
    assert!(
        content(&refused).contains("Only the member who saved"),
        "{refused}"
    );
    let refused = bot
        .slash(
            BOB,
            "quote edit",
            json!([option("id", id), option("text", "mine now")]),
        )
        .await;
    assert!(is_ephemeral(&refused), "{refused}");
    assert_eq!(stored(&bot, id).await.unwrap().text, "Alice's");
    bot.shutdown().await;
}
