//! Start-up: the token check, the gateway intents, commands answered before the reminders
//! on disk are read, and a clean shutdown.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

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

/// The scheduler reads the guilds on disk in the background: while a connection of its own (as
/// another process would) holds one guild's file locked, so that its read waits (here for up
/// to an hour), the bot still connects and answers a command in another guild. Before,
/// start-up waited for every read.
#[tokio::test]
async fn a_command_is_answered_while_a_guild_on_disk_cannot_be_read_yet() {
    let holder: Arc<Mutex<Option<rusqlite::Connection>>> = Arc::default();
    let lock = holder.clone();
    // Had start-up waited for the locked guild's read, the fake would give up waiting for the
    // bot to register its commands, and this would fail.
    let bot = TestBot::start_with(move |s| {
        s.config.store.busy_timeout = Duration::from_secs(3600);
        let file = s
            .config
            .store
            .data_dir
            .join("guilds")
            .join(OTHER_GUILD.to_string())
            .join("quotes.db");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; PRAGMA user_version = 1; COMMIT;",
        )
        .unwrap();
        *lock.lock().unwrap() = Some(conn);
    })
    .await;
    let status = bot.slash(ALICE, "optin dm status", json!([])).await;
    assert!(
        status["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("**off**"),
        "{status}"
    );
    // Let go, so that the waiting read ends and shutdown need not wait for it.
    holder.lock().unwrap().take();
    bot.shutdown().await;
}
