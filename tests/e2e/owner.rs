//! One owner per data directory, with real processes: the `guildkeep` binary runs as the bot
//! against the fake Discord while the same binary's operator commands run on its data
//! directory and members keep writing. The commands must run inside the bot (over the
//! control socket) and say what a standalone run says; a second owner is refused; a killed
//! owner's directory is taken over without cleanup.

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use guildkeep::store::{GuildDatabaseManager, StoreConfig};
use serde_json::{json, Value};
use tokio::{process::Child, time::Instant};

use crate::support::{payloads, *};

/// A real process needs longer than an in-process bot: it starts, reads, and is on a busy
/// machine.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

const CAROL: u64 = 300_000_000_000_000_004;
/// Writers each write as a member of their own, so no per-member cooldown slows them.
const FIRST_WRITER: u64 = 400_000_000_000_000_000;

/// The `guildkeep` binary on `dir`, with nothing of this process's environment that could
/// point it elsewhere.
fn guildkeep(dir: &Path, fake: &FakeDiscord) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_guildkeep"));
    command
        .current_dir(dir)
        .env_remove("GUILDKEEP_CONFIG")
        .env_remove("GUILDKEEP_SHARDS")
        .env_remove("GUILDKEEP_SHARD_COUNT")
        .env_remove("DISCORD_DEV_GUILD")
        .env("GUILDKEEP_DATA_DIR", dir)
        .env("GUILDKEEP_LOG", "warn")
        // Not the default port: bots of tests running at the same time would fight over it.
        .env("GUILDKEEP_METRICS_ADDR", "127.0.0.1:0")
        .env("DISCORD_TOKEN", TOKEN)
        .env("DISCORD_API_BASE", &fake.api_base)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// `guildkeep run` on `dir`, serving once it has registered its commands with `fake` and
/// identified on the gateway. Its log goes to the test's stderr.
async fn start_bot(dir: &Path, fake: &FakeDiscord) -> Child {
    start_bot_logging_to(dir, fake, Stdio::inherit()).await
}

/// [`start_bot`] with the bot's log (stderr) sent to `log`.
async fn start_bot_logging_to(dir: &Path, fake: &FakeDiscord, log: Stdio) -> Child {
    let bot = guildkeep(dir, fake)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the bot starts");
    fake.wait_for_within(PROCESS_WAIT, "command registration", |r| {
        r.method == "PUT" && r.path.starts_with("/applications/")
    })
    .await;
    fake.identified().await;
    bot
}

/// One operator command, to completion.
async fn operator(dir: &Path, fake: &FakeDiscord, args: &[&str]) -> Output {
    let run = guildkeep(dir, fake)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    tokio::time::timeout(PROCESS_WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("`guildkeep {}` did not finish", args.join(" ")))
        .expect("the command runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command succeeded; returns its stdout.
fn succeeded(args: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "`guildkeep {args}` failed: {}{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Stops the bot as systemd does and returns what it printed (where that was piped).
async fn sigterm_and_wait(bot: Child) -> Output {
    let pid = bot.id().expect("running") as i32;
    // SAFETY: signals a child of this test that has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output = tokio::time::timeout(PROCESS_WAIT, bot.wait_with_output())
        .await
        .expect("the bot stops on SIGTERM")
        .unwrap();
    assert!(
        output.status.success(),
        "the bot stopped with {}",
        output.status
    );
    output
}

/// A quote a member saw saved: in which guild, with which text, acknowledged when.
#[derive(Clone)]
struct Acknowledged {
    guild: u64,
    text: String,
    at: Instant,
}

/// Members adding quotes to both guilds, one after another, until stopped.
fn keep_writing(
    fake: Arc<FakeDiscord>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Acknowledged>> {
    tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let guild = if n.is_multiple_of(2) {
                GUILD
            } else {
                OTHER_GUILD
            };
            let text = format!("written {n} in {guild}");
            let body = slash_in(
                &fake,
                guild,
                FIRST_WRITER + n,
                "quote add",
                json!([option("text", text.clone())]),
            )
            .await
            .body;
            let title = body["data"]["embeds"][0]["title"]
                .as_str()
                .unwrap_or_default();
            if title.starts_with("Saved quote") {
                acknowledged.push(Acknowledged {
                    guild,
                    text,
                    at: Instant::now(),
                });
            }
        }
        acknowledged
    })
}

/// Every quote text in `guild`'s database, read after the bot stopped.
async fn quote_texts(dir: &Path, guild: u64) -> Vec<String> {
    let store = GuildDatabaseManager::new(StoreConfig::new(dir)).expect("the bot is gone");
    let texts = store
        .with_existing_guild(guild, |c| {
            let mut select = c.prepare("SELECT text FROM quotes").unwrap();
            let texts: Vec<String> = select
                .query_map([], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            texts
        })
        .await
        .unwrap_or_default();
    store.shutdown().await;
    texts
}

/// A DM reminder for `user` in `guild`, due `after` from now.
async fn dm_reminder(fake: &FakeDiscord, guild: u64, user: u64, what: &str, after: Duration) {
    let on = slash_in(fake, guild, user, "optin dm on", json!([])).await;
    let answer = on.body["data"]["content"].as_str().unwrap_or_default();
    assert!(answer.contains("DM"), "{}", on.body);
    let due = (Utc::now() + after).to_rfc3339_opts(SecondsFormat::Secs, true);
    let set = slash_in(
        fake,
        guild,
        user,
        "remind me",
        json!([option("when", due), option("what", what)]),
    )
    .await;
    let content = set.body["data"]["content"].as_str().unwrap_or_default();
    assert!(content.starts_with("Reminder #"), "{}", set.body);
}

/// A message the bot posted (not an interaction reply) that contains `text`.
fn is_dm_containing(request: &Recorded, text: &str) -> bool {
    request.method == "POST"
        && request.path.starts_with("/channels/")
        && request.path.ends_with("/messages")
        && request.body["content"]
            .as_str()
            .is_some_and(|c| c.contains(text))
}

fn dms_containing(fake: &FakeDiscord, text: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| is_dm_containing(r, text))
        .count()
}

/// A legacy database with one quote for `guild`.
fn legacy_source(path: &Path, guild: u64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(include_str!("../fixtures/legacy_schema.sql"))
        .unwrap();
    conn.execute(
        "INSERT INTO quotes (guildId, text, author) VALUES (?1, 'imported from the old bot', 'Old')",
        [guild.to_string()],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_run_inside_the_running_bot_while_members_write() {
    let fake = Arc::new(FakeDiscord::start(&[GUILD, OTHER_GUILD], &payloads::ROLES).await);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let bot = start_bot(dir, &fake).await;
    // One member each: the bot's per-member cooldown on writes would refuse a second.
    for (guild, member) in [(GUILD, ADMIN), (OTHER_GUILD, ADMIN + 100)] {
        let first = json!([option("text", "the first quote")]);
        let saved = slash_in(&fake, guild, member, "quote add", first).await;
        let title = &saved.body["data"]["embeds"][0]["title"];
        assert!(
            title.as_str().is_some_and(|t| t.starts_with("Saved quote")),
            "{}",
            saved.body
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers = keep_writing(fake.clone(), stop.clone());
    let mark = || Instant::now();

    // A backup while members write, and a check.
    let backup_started = mark();
    let backup = succeeded("backup", &operator(dir, &fake, &["backup"]).await);
    assert!(
        backup.contains(": 2 guilds copied and verified"),
        "{backup}"
    );
    let set = PathBuf::from(
        backup
            .strip_prefix("backup set ")
            .and_then(|rest| rest.split(": ").next())
            .unwrap_or_else(|| panic!("{backup}")),
    );
    let check = succeeded("check", &operator(dir, &fake, &["check"]).await);
    assert!(
        check.contains("checked 2 guilds: 2 ok, 0 failing"),
        "{check}"
    );

    // A restore of GUILD from that backup, and an import into it.
    let copy = set.join(format!("{GUILD}.db"));
    let restore = operator(
        dir,
        &fake,
        &[
            "restore",
            "--guild",
            &GUILD.to_string(),
            "--from",
            copy.to_str().unwrap(),
        ],
    )
    .await;
    assert!(succeeded("restore", &restore).contains(&format!("guild {GUILD} restored")));
    let restored = mark();
    let legacy = data.path().join("legacy.db");
    legacy_source(&legacy, GUILD);
    let import = operator(dir, &fake, &["migrate-legacy", "--source", "legacy.db"]).await;
    succeeded("migrate-legacy", &import);
    let found = slash_in(
        &fake,
        GUILD,
        ALICE,
        "quote search",
        json!([option("query", "imported")]),
    )
    .await;
    assert!(
        found.body.to_string().contains("imported from the old bot"),
        "the bot serves what the import wrote: {}",
        found.body
    );

    // Reminders claimed ahead of their time (the scheduler claims 20 s ahead), then erased
    // with their member or their guild well before they are due, even on a slow machine.
    dm_reminder(
        &fake,
        GUILD,
        ALICE,
        "alice's secret",
        Duration::from_secs(15),
    )
    .await;
    dm_reminder(
        &fake,
        OTHER_GUILD,
        CAROL,
        "carol's plan",
        Duration::from_secs(15),
    )
    .await;
    dm_reminder(&fake, GUILD, BOB, "bob's sentinel", Duration::from_secs(18)).await;
    let forget = operator(
        dir,
        &fake,
        &[
            "gdpr",
            "forget-user",
            &ALICE.to_string(),
            "--guild",
            &GUILD.to_string(),
            "--yes",
        ],
    )
    .await;
    assert!(
        succeeded("forget-user", &forget).contains(&format!("forgot member {ALICE} in 1 guilds"))
    );
    let deletion_started = mark();
    let delete = operator(
        dir,
        &fake,
        &["gdpr", "delete-guild", &OTHER_GUILD.to_string(), "--yes"],
    )
    .await;
    assert!(
        succeeded("delete-guild", &delete).starts_with(&format!("guild {OTHER_GUILD} deleted: "))
    );
    let deleted = mark();

    // Reminders go out in due order: once Bob's is sent, Alice's and Carol's were due.
    fake.wait_for_within(PROCESS_WAIT, "bob's reminder", |r| {
        is_dm_containing(r, "bob's sentinel")
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writers.await.unwrap();
    assert!(
        acknowledged.len() > 10,
        "members kept writing: {}",
        acknowledged.len()
    );

    // At rest, the bot's answers are a standalone run's.
    let compared: [&[&str]; 4] = [
        &["check"],
        &["schema", "status"],
        &["gdpr", "export-user", &BOB.to_string()],
        &[
            "restore",
            "--guild",
            &GUILD.to_string(),
            "--from",
            "no-such-file.db",
        ],
    ];
    let mut in_bot = Vec::new();
    for args in compared {
        in_bot.push(operator(dir, &fake, args).await);
    }
    sigterm_and_wait(bot).await;
    for (args, in_bot) in compared.iter().zip(in_bot) {
        let alone = operator(dir, &fake, args).await;
        let args = args.join(" ");
        assert_eq!(in_bot.status.code(), alone.status.code(), "`{args}`");
        assert_eq!(stdout(&in_bot), stdout(&alone), "`{args}`");
        assert_eq!(stderr(&in_bot), stderr(&alone), "`{args}`");
    }
    let check = operator(dir, &fake, &["check"]).await;
    assert!(succeeded("check", &check).contains("0 failing"));

    assert_eq!(dms_containing(&fake, "bob's sentinel"), 1, "sent once");
    assert_eq!(
        dms_containing(&fake, "alice's secret"),
        0,
        "sent after its member was forgotten"
    );
    assert_eq!(
        dms_containing(&fake, "carol's plan"),
        0,
        "sent after its guild was deleted"
    );

    let kept = quote_texts(dir, GUILD).await;
    assert!(kept.iter().any(|t| t == "imported from the old bot"));
    let other = quote_texts(dir, OTHER_GUILD).await;
    for quote in &acknowledged {
        let present = match quote.guild {
            GUILD => kept.contains(&quote.text),
            _ => other.contains(&quote.text),
        };
        let must_be_kept = match quote.guild {
            // Restored from a backup taken after it was saved, or saved after the restore.
            GUILD => quote.at < backup_started || quote.at > restored,
            _ => quote.at > deleted,
        };
        if must_be_kept {
            assert!(present, "acknowledged and lost: {}", quote.text);
        }
        if quote.guild == OTHER_GUILD && quote.at < deletion_started {
            assert!(!present, "deleted and back: {}", quote.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_is_refused_by_name_and_a_killed_owner_is_replaced() {
    let fake = FakeDiscord::start(&[GUILD], &payloads::ROLES).await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let mut bot = start_bot(dir, &fake).await;
    let pid = bot.id().expect("running");

    let second = operator(dir, &fake, &["run"]).await;
    assert!(!second.status.success());
    let refusal = stderr(&second);
    assert_eq!(refusal.lines().count(), 1, "{refusal}");
    assert!(
        refusal.contains(&format!("in use by guildkeep pid {pid} ")),
        "{refusal}"
    );

    // A command line that owns the directory has no control socket: a writing command
    // refused, naming it.
    bot.start_kill().unwrap();
    bot.wait().await.unwrap();
    let holder =
        GuildDatabaseManager::new(StoreConfig::new(dir)).expect("taken over after SIGKILL");
    let refused = operator(
        dir,
        &fake,
        &["gdpr", "delete-guild", &GUILD.to_string(), "--yes"],
    )
    .await;
    assert!(!refused.status.success());
    let refusal = stderr(&refused);
    assert_eq!(refusal.lines().count(), 1, "{refusal}");
    assert!(
        refusal.contains(&format!("in use by guildkeep pid {} ", std::process::id())),
        "{refusal}"
    );
    holder.shutdown().await;

    // Free again: a new bot takes it and answers commands.
    let fake = FakeDiscord::start(&[GUILD], &payloads::ROLES).await;
    let bot = start_bot(dir, &fake).await;
    slash_in(&fake, GUILD, ADMIN, "quote random", json!([])).await;
    slash_in(&fake, GUILD, ADMIN, "quote random", json!([])).await;
    let stats = operator(dir, &fake, &["stats"]).await;
    let stats = succeeded("stats", &stats);
    assert!(stats.contains("guilds on disk: 1\n"), "{stats}");
    // The bot answered it: its store's figures since it started, the two commands' uses.
    assert!(
        stats.contains("running bot's store, since it started:"),
        "{stats}"
    );
    assert!(stats.contains(" 1 misses ("), "{stats}");
    assert!(
        stats.contains("1 created from the spare") || stats.contains("1 from the template"),
        "{stats}"
    );
    sigterm_and_wait(bot).await;
}

#[tokio::test]
async fn a_request_the_bot_does_not_understand_gets_a_clear_answer() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let bot = TestBot::start().await;
    let socket = bot.dir.path().join("control.sock");
    for (request, answer) in [
        ("not json\n", "not a control request"),
        (
            "{\"protocol\":99,\"client\":{\"version\":\"9.0.0\",\"schema\":1},\"job\":\"stats\"}\n",
            "speaks control protocol 1",
        ),
        (
            "{\"protocol\":1,\"client\":{\"version\":\"9.0.0\",\"schema\":1},\"job\":\"reticulate\"}\n",
            "does not know this command",
        ),
        (
            "{\"protocol\":1,\"client\":{\"version\":\"9.0.0\",\"schema\":999},\"job\":{\"schema\":{\"action\":\"upgrade\"}}}\n",
            "is newer than the running bot",
        ),
    ] {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut line = String::new();
        tokio::time::timeout(WAIT, BufReader::new(stream).read_line(&mut line))
            .await
            .expect("answered, not hung")
            .unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        let error = reply["done"]["error"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(error.contains(answer), "{request} -> {error}");
    }
    bot.shutdown().await;
}

#[tokio::test]
async fn the_control_socket_and_lock_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let bot = TestBot::start().await;
    for name in ["control.sock", ".lock"] {
        let mode = std::fs::metadata(bot.dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_command_line_went_away_still_finishes_inside_the_bot() {
    use tokio::io::AsyncWriteExt;

    let bot = TestBot::start().await;
    let seeded = slash_in(
        &bot.fake,
        GUILD,
        ALICE,
        "quote add",
        json!([option("text", "kept")]),
    );
    seeded.await;
    let backups = bot.dir.path().join("backups");
    let mut stream = tokio::net::UnixStream::connect(bot.dir.path().join("control.sock"))
        .await
        .unwrap();
    stream
        .write_all(b"{\"protocol\":1,\"client\":{\"version\":\"0.1.0\",\"schema\":1},\"job\":{\"backup\":{\"guilds\":[],\"out\":null,\"keep\":null}}}\n")
        .await
        .unwrap();
    // The operator's command line is killed before it reads a word of the answer.
    drop(stream);
    let manifest = tokio::time::timeout(WAIT, async {
        loop {
            let found = std::fs::read_dir(&backups)
                .into_iter()
                .flatten()
                .filter_map(|set| set.ok().map(|s| s.path().join("manifest.json")))
                .find(|m| m.is_file());
            if let Some(manifest) = found {
                return manifest;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the backup finished although nobody was listening");
    let manifest: Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert!(
        manifest["guilds"][GUILD.to_string()]["sha256"].is_string(),
        "{manifest}"
    );
    bot.shutdown().await;
}

/// VeraBot's per-guild files have our path shape, so an operator may copy one into the data
/// directory. The real `guildkeep run` refuses that guild (the member gets an error, the log
/// line with its reference names the import) and `guildkeep check` fails naming it too; the
/// file is left byte for byte, with nothing created beside it.
#[tokio::test]
async fn a_verabot_file_at_a_guild_path_is_refused_by_run_and_check_naming_the_import() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let file = verabot_file_at(dir, GUILD);
    let import = "guildkeep migrate-legacy --source-dir";

    let fake = FakeDiscord::start(&[GUILD], &payloads::ROLES).await;
    let bot = start_bot_logging_to(dir, &fake, Stdio::piped()).await;
    let refused = slash_in(&fake, GUILD, ADMIN, "quote random", json!([])).await;
    let content = refused.body["data"]["content"].as_str().unwrap_or_default();
    let reference = content
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no reference in {content:?}"))
        .to_owned();

    let check = operator(dir, &fake, &["check"]).await;
    assert!(!check.status.success(), "{}", stdout(&check));
    assert!(
        stdout(&check).contains(&format!("guild {GUILD}: ")) && stdout(&check).contains(import),
        "{}",
        stdout(&check)
    );

    let log = stderr(&sigterm_and_wait(bot).await);
    let line = log
        .lines()
        .find(|line| line.contains(&reference))
        .unwrap_or_else(|| panic!("no log line with reference {reference}: {log}"));
    assert!(line.contains(import), "{line}");

    assert_verabot_file_untouched(&file);
}
