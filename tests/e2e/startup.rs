//! Start-up: the token check, the gateway intents, and a clean shutdown.

use guildkeep::{bot::Builder, config::Config, store::StoreConfig};

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
