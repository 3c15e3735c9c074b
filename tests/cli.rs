//! The `guildkeep` binary as an operator runs it: `check`, `schema status|upgrade`, `stats`,
//! `gdpr export-user --out`, configuration and `.env` errors, and the systemd units' command
//! lines, each on a real data directory.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use rusqlite::Connection;
use tempfile::TempDir;

fn guildkeep(data: &Path, args: &[&str]) -> (bool, String, String) {
    let data_dir = data.to_str().expect("a UTF-8 temporary path");
    let args: Vec<&str> = ["--data-dir", data_dir]
        .iter()
        .chain(args)
        .copied()
        .collect();
    guildkeep_in(data, &args)
}

/// The binary run in `cwd`, with no data directory named unless `args` name one.
fn guildkeep_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guildkeep"))
        // Not the repository: a developer's .env there must not reach these runs.
        .current_dir(cwd)
        .args(args)
        .env_remove("DISCORD_TOKEN")
        .env_remove("GUILDKEEP_DATA_DIR")
        .env_remove("GUILDKEEP_CONFIG")
        .env("GUILDKEEP_LOG", "warn")
        .output()
        .expect("run guildkeep");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn guild_db(data: &Path, guild: u64) -> std::path::PathBuf {
    data.join("guilds")
        .join(guild.to_string())
        .join("quotes.db")
}

/// Guilds made by a running store, as the bot would leave them.
async fn make_guilds(data: &Path, guilds: &[u64]) {
    let store =
        guildkeep::store::GuildDatabaseManager::new(guildkeep::store::StoreConfig::new(data))
            .unwrap();
    for &guild in guilds {
        store
            .with_guild(guild, |c| {
                c.execute(
                    "INSERT INTO quotes (text, created_at, updated_at) VALUES ('hi', 0, 0)",
                    [],
                )
                .unwrap()
            })
            .await
            .unwrap();
    }
    store.shutdown().await;
}

#[tokio::test]
async fn check_passes_healthy_guilds_and_names_a_corrupted_one() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[11, 22, 33]).await;
    let (ok, stdout, _) = guildkeep(tmp.path(), &["check"]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("checked 3 guilds: 3 ok"), "{stdout}");

    // Damage a page in the middle of guild 22's file.
    let db = guild_db(tmp.path(), 22);
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > 3 * page);
    bytes[2 * page..3 * page].fill(0x5a);
    std::fs::write(&db, bytes).unwrap();

    let (ok, stdout, stderr) = guildkeep(tmp.path(), &["check"]);
    assert!(!ok);
    assert!(
        stderr.contains("guild(s) 22") && !stderr.contains("11"),
        "{stderr}"
    );
    assert!(stdout.contains("guild 22:"), "{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let (ok, _, _) = guildkeep(tmp.path(), &["check", "--guild", "11"]);
    assert!(ok, "checking only a healthy guild passes");
}

#[tokio::test]
async fn schema_upgrade_migrates_a_data_dir_of_old_guilds() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[5]).await;
    // Version 0: a database that predates every migration, so it has no tables yet (one with
    // tables at version 0 is not ours and is refused untouched: tests/ops_verabot.rs).
    for guild in [6u64, 7] {
        let db = guild_db(tmp.path(), guild);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE notes (x); DROP TABLE notes;")
            .unwrap();
    }
    let (ok, stdout, _) = guildkeep(tmp.path(), &["schema", "status"]);
    assert!(ok);
    assert!(
        stdout.contains("guild 6: v0") && stdout.contains("guilds behind: 2"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = guildkeep(tmp.path(), &["schema", "upgrade"]);
    assert!(ok, "{stdout}{stderr}");
    let latest = guildkeep::store::Migrations::embedded().latest();
    assert!(
        stdout.contains(&format!("guild 6: v0 -> v{latest}"))
            && stdout.contains(&format!("guild 7: v0 -> v{latest}")),
        "{stdout}"
    );
    let (_, stdout, _) = guildkeep(tmp.path(), &["schema", "status"]);
    assert!(stdout.contains("guilds behind: 0"), "{stdout}");
    let conn = Connection::open(guild_db(tmp.path(), 6)).unwrap();
    conn.prepare("SELECT text FROM quotes")
        .expect("the quotes table exists after the upgrade");
}

#[tokio::test]
async fn stats_reports_guilds_bytes_and_versions() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[1, 2]).await;
    let (ok, stdout, _) = guildkeep(tmp.path(), &["stats"]);
    assert!(ok);
    assert!(stdout.contains("guilds on disk: 2"), "{stdout}");
    let latest = guildkeep::store::Migrations::embedded().latest();
    assert!(stdout.contains(&format!("v{latest}: 2")), "{stdout}");
    assert!(stdout.contains("largest guilds:"), "{stdout}");
    assert!(stdout.contains("quarantined:    0\n"), "{stdout}");
    // No bot runs: no live figures to show.
    assert!(!stdout.contains("running bot's store"), "{stdout}");
}

#[test]
fn a_bad_config_value_fails_with_the_keys_name() {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("guildkeep.toml");
    std::fs::write(&config, "max_open_guilds = \"many\"\n").unwrap();
    let (ok, _, stderr) = guildkeep(tmp.path(), &["--config", config.to_str().unwrap(), "stats"]);
    assert!(!ok);
    assert!(stderr.contains("`max_open_guilds` = `many`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    std::fs::write(&config, "max_open_guild = 3\n").unwrap();
    let (ok, _, stderr) = guildkeep(tmp.path(), &["--config", config.to_str().unwrap(), "stats"]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown configuration key `max_open_guild`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn destructive_gdpr_commands_refuse_without_a_terminal_unless_confirmed() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[8]).await;
    let (ok, _, stderr) = guildkeep(tmp.path(), &["gdpr", "delete-guild", "8"]);
    assert!(!ok);
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(guild_db(tmp.path(), 8).exists(), "nothing was deleted");
    let (ok, _, stderr) = guildkeep(tmp.path(), &["gdpr", "forget-user", "5"]);
    assert!(!ok && stderr.contains("pass --yes"), "{stderr}");

    let (ok, stdout, _) = guildkeep(tmp.path(), &["gdpr", "delete-guild", "8", "--yes"]);
    assert!(ok, "{stdout}");
    assert!(!guild_db(tmp.path(), 8).exists());
    let (ok, stdout, _) = guildkeep(tmp.path(), &["gdpr", "delete-guild", "9", "--yes"]);
    assert!(ok && stdout.contains("guild 9 had no data"), "{stdout}");
    let (ok, _, stderr) = guildkeep(tmp.path(), &["gdpr", "delete-guild", "0", "--yes"]);
    assert!(
        !ok && stderr.contains("not a Discord snowflake"),
        "{stderr}"
    );
}

#[tokio::test]
async fn export_user_prints_json_keyed_by_guild_and_backup_then_restore_round_trips() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[3, 4]).await;
    let (ok, stdout, _) = guildkeep(tmp.path(), &["gdpr", "export-user", "1"]);
    assert!(ok);
    let export: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert!(export.is_object(), "{stdout}");

    let out = tmp.path().join("sets");
    let (ok, stdout, stderr) = guildkeep(tmp.path(), &["backup", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("2 guilds copied and verified"), "{stdout}");
    let set = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = set.join("3.db");

    Connection::open(guild_db(tmp.path(), 3))
        .unwrap()
        .execute("DELETE FROM quotes", [])
        .unwrap();
    let (ok, stdout, stderr) = guildkeep(
        tmp.path(),
        &["restore", "--guild", "3", "--from", copy.to_str().unwrap()],
    );
    assert!(ok, "{stdout}{stderr}");
    let conn = Connection::open(guild_db(tmp.path(), 3)).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM quotes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1, "the deleted quote is back");
}

#[test]
fn run_without_a_token_fails_with_one_line_saying_what_to_set() {
    let tmp = TempDir::new().unwrap();
    let (ok, _, stderr) = guildkeep(tmp.path(), &["run"]);
    assert!(!ok);
    assert!(stderr.contains("DISCORD_TOKEN"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn stats_and_check_take_several_data_directories_and_nothing_else_does() {
    let (one, two) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    make_guilds(one.path(), &[11]).await;
    make_guilds(two.path(), &[22, 33]).await;
    let second = two.path().to_str().unwrap();
    let (ok, stdout, stderr) = guildkeep(one.path(), &["--data-dir", second, "check"]);
    assert!(ok, "{stderr}");
    for (dir, summary) in [
        (one.path(), "checked 1 guilds"),
        (two.path(), "checked 2 guilds"),
    ] {
        let heading = format!("data directory {}:\n", dir.display());
        let report = stdout
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(report.contains(summary), "{stdout}");
    }
    let (ok, stdout, _) = guildkeep(one.path(), &["--data-dir", second, "stats"]);
    assert!(ok);
    assert_eq!(stdout.matches("guilds on disk:").count(), 2, "{stdout}");

    let (ok, _, stderr) = guildkeep(one.path(), &["--data-dir", second, "backup"]);
    assert!(!ok);
    assert!(
        stderr.contains("only `stats` and `check` take several --data-dir"),
        "{stderr}"
    );
    assert!(!one.path().join("backups").exists(), "nothing was done");
}

#[tokio::test]
async fn check_names_a_guild_with_a_view_guildkeep_did_not_make() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[11, 22]).await;
    Connection::open(guild_db(tmp.path(), 22))
        .unwrap()
        .execute_batch("CREATE VIEW members AS SELECT DISTINCT added_by FROM quotes;")
        .unwrap();
    let (ok, stdout, stderr) = guildkeep(tmp.path(), &["check"]);
    assert!(!ok);
    assert!(
        stdout.contains("guild 22: unexpected view `members`"),
        "{stdout}"
    );
    assert!(
        stderr.contains("guild(s) 22") && !stderr.contains("11"),
        "{stderr}"
    );
}

#[tokio::test]
async fn export_user_out_writes_the_json_to_a_file_only_its_owner_can_read() {
    let tmp = TempDir::new().unwrap();
    make_guilds(tmp.path(), &[3]).await;
    Connection::open(guild_db(tmp.path(), 3))
        .unwrap()
        .execute(
            "INSERT INTO quotes (text, added_by, created_at, updated_at)
             VALUES ('words of member one', 1, 0, 0)",
            [],
        )
        .unwrap();
    // An older export, readable by everyone: replaced, and no longer readable by others.
    let file = tmp.path().join("export.json");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    // A relative path, as an operator types it: relative to where the command runs.
    let (ok, stdout, stderr) = guildkeep(
        tmp.path(),
        &["gdpr", "export-user", "1", "--out", "export.json"],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("written to"), "{stdout}");
    assert!(
        !stdout.contains("words of member one"),
        "not on stdout: {stdout}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let export: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).expect("JSON in the file");
    assert!(
        export["3"].to_string().contains("words of member one"),
        "{export}"
    );
}

#[test]
fn only_the_working_directorys_env_file_is_read_and_a_bad_one_is_not_echoed() {
    let tmp = TempDir::new().unwrap();
    let child = tmp.path().join("child");
    std::fs::create_dir(&child).unwrap();
    let planted = tmp.path().join("planted");
    let dotenv = format!("GUILDKEEP_DATA_DIR={}\n", planted.display());
    std::fs::write(tmp.path().join(".env"), &dotenv).unwrap();

    let (ok, stdout, stderr) = guildkeep_in(&child, &["stats"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(!planted.exists(), "the parent directory's .env was read");
    assert!(
        child.join("data").is_dir(),
        "the default data directory was used"
    );

    // The same file in the working directory is read, so the check above can fail.
    std::fs::write(child.join(".env"), &dotenv).unwrap();
    let (ok, stdout, stderr) = guildkeep_in(&child, &["stats"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(planted.is_dir(), "the working directory's .env was read");

    let secret = "MTIzNDU2.secret-token-text";
    std::fs::write(
        child.join(".env"),
        format!("GUILDKEEP_LOG=warn\nDISCORD_TOKEN {secret}\n"),
    )
    .unwrap();
    let (ok, _, stderr) = guildkeep_in(&child, &["stats"]);
    assert!(!ok);
    assert!(stderr.contains(".env: line 2"), "{stderr}");
    assert!(!stderr.contains("secret-token"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn the_systemd_units_command_lines_run_without_a_config_file() {
    for (unit, stand_in) in [
        // `run` needs Discord; `stats` loads the configuration the same way.
        (
            include_str!("../scripts/guildkeep.service"),
            Some(("run", "stats")),
        ),
        (include_str!("../scripts/guildkeep-backup.service"), None),
    ] {
        let tmp = TempDir::new().unwrap();
        let (etc, data) = (tmp.path().join("etc"), tmp.path().join("data"));
        std::fs::create_dir(&etc).unwrap();
        let exec = unit
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart="))
            .expect("an ExecStart line");
        let working = unit
            .lines()
            .find_map(|line| line.strip_prefix("WorkingDirectory="))
            .expect("a WorkingDirectory line");
        let data_dir = data.to_str().unwrap();
        let args: Vec<&str> = exec
            .split_whitespace()
            .skip(1)
            .map(|arg| match arg {
                "/var/lib/guildkeep" => data_dir,
                arg if stand_in.is_some_and(|(from, _)| from == arg) => stand_in.unwrap().1,
                arg => arg,
            })
            .collect();
        // The unit's working directory, with no guildkeep.toml in it.
        assert_eq!(working, "/etc/guildkeep");
        let (ok, stdout, stderr) = guildkeep_in(&etc, &args);
        assert!(ok, "{exec}: {stdout}{stderr}");
    }
}
