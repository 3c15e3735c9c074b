//! Start-up: the token check, the gateway intents, and a clean shutdown.

use guildkeep::{bot::Builder, config::Config, store::StoreConfig};
use serde_json::json;

use crate::support::*;

async fn build_error(token: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        store: StoreConfig::new(dir.path()),
        discord_token: token.map(str::to_owned),
        ..Config::default()
    };
    match Builder::new(config).build().await {
        Ok(_) => panic!("built without a usable token"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_missing_or_malformed_token_is_one_line_naming_discord_token() {
    for token in [None, Some("not-a-token"), Some("a.b")] {
        let error = build_error(token).await;
        assert!(error.contains("set DISCORD_TOKEN"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
}

#[tokio::test]
async fn identifies_with_the_guilds_intent_only_and_stops_cleanly() {
    let bot = TestBot::start().await;
    let identify = bot.fake.identified().await;
    assert_eq!(identify["intents"], 1, "GUILDS only: {identify}");
    bot.shutdown().await;
}

/// VeraBot's per-guild files have our path shape. One copied into the data directory is not
/// opened as ours: the bot starts, answers in that guild with an error instead of running our
/// migrations over the file, serves the other guilds, and leaves the file as VeraBot wrote it.
#[tokio::test]
async fn a_verabot_file_at_a_guild_path_is_left_untouched_by_the_running_bot() {
    let bot = TestBot::start_with(|s| {
        verabot_file_at(&s.config.store.data_dir, GUILD);
    })
    .await;

    let refused = bot.slash(ALICE, "quote random", json!([])).await;
    assert!(
        is_ephemeral(&refused) && refused.to_string().contains("went wrong"),
        "{refused}"
    );
    let elsewhere = slash_in(&bot.fake, OTHER_GUILD, ALICE, "quote random", json!([]))
        .await
        .body;
    assert!(
        !elsewhere.to_string().contains("went wrong"),
        "other guilds are served: {elsewhere}"
    );

    assert_verabot_file_untouched(
        &bot.dir
            .path()
            .join("guilds")
            .join(GUILD.to_string())
            .join("quotes.db"),
    );
    bot.shutdown().await;
}
