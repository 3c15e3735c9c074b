//! `migrate-legacy` against databases that VeraBot's own code wrote (tests/fixtures/verabot,
//! made by scripts/verabot-fixtures): every quote text byte for byte, every time against what
//! VeraBot stored, every reminder's status and where the scheduler would send it, the report,
//! a second run, the dry run and the untouched source. What VeraBot did with each fixture row
//! is commented in scripts/verabot-fixtures/single.js and per-guild.js.

mod ops_support;

use std::{collections::BTreeMap, path::Path, path::PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use guildkeep::{
    ops::{
        legacy::{migrate_legacy, GuildCounts, ImportOptions, ImportReport},
        Owner,
    },
    reminders::{delivery, Claim, DeliveryPolicy, DeliveryTarget},
    store::GuildDatabaseManager,
};
use ops_support::{
    import, import_checked, store,
    verabot::{assert_verabot_file_untouched, verabot_file_at},
};
use rusqlite::{Connection, OpenFlags, Row};

const GUILD: u64 = 123_456_789_012_345_678;
const CHANNEL: u64 = 333_333_333_333_333_333;
const ANN: i64 = 180_000_000_000_000_001;
const BO: i64 = 180_000_000_000_000_002;
const CY: i64 = 180_000_000_000_000_003;
const ROLE: i64 = 280_000_000_000_000_001;
/// The thirty members with one DM reminder each, "Check-in N of 30" for member N.
const CHECK_INS: std::ops::RangeInclusive<i64> = 180_000_000_000_000_101..=180_000_000_000_000_130;

/// A copy of the fixture in a directory of its own, so that nothing can appear beside it
/// unnoticed and the committed file is never the one read.
fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let source = dir.join(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/verabot")
            .join(name),
        &source,
    )
    .unwrap();
    source
}

/// A fresh data directory and a copy of the fixture `name` beside it.
fn setup(name: &str) -> (tempfile::TempDir, PathBuf, GuildDatabaseManager) {
    let dir = tempfile::tempdir().unwrap();
    let source = copy_fixture(dir.path(), name);
    let store = store(&dir.path().join("data"));
    (dir, source, store)
}

fn options(source: &Path) -> ImportOptions {
    ImportOptions {
        source: source.to_path_buf(),
        default_guild: Some(GUILD),
        ..ImportOptions::default()
    }
}

async fn query<T: Send + 'static>(
    store: &GuildDatabaseManager,
    f: impl FnOnce(&Connection) -> T + Send + 'static,
) -> T {
    store
        .with_existing_guild(GUILD, move |c| f(c))
        .await
        .unwrap()
}

/// A VeraBot time as unix seconds, read here independently of the import: `toISOString()`
/// or SQLite's `CURRENT_TIMESTAMP` (UTC).
fn verabot_time(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .map(|t| t.and_utc().timestamp())
        })
        .unwrap_or_else(|_| panic!("VeraBot wrote {text:?}"))
}

/// Every row of `sql` in `conn`, through `f`.
fn all<T>(conn: &Connection, sql: &str, f: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
    let mut statement = conn.prepare(sql).unwrap();
    let found = statement.query_map([], f).unwrap();
    found.collect::<rusqlite::Result<_>>().unwrap()
}

/// Every row of `sql` in the VeraBot file itself, as VeraBot wrote it.
fn written<T>(path: &Path, sql: &str, f: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    all(&conn, sql, f)
}

/// What the scheduler does with the reminder imported into `guild` from `legacy_id` at its
/// due time.
async fn claim_when_due(
    store: &GuildDatabaseManager,
    guild: u64,
    legacy_id: i64,
    due_at: i64,
) -> Claim {
    let due = DateTime::<Utc>::from_timestamp(due_at, 0).unwrap();
    store
        .with_existing_guild(guild, move |c| {
            let id: i64 = c
                .query_row(
                    "SELECT id FROM reminders WHERE legacy_id = ?1",
                    [legacy_id],
                    |r| r.get(0),
                )
                .unwrap();
            delivery::claim(c, guild, id as u64, due, due, &DeliveryPolicy::default()).unwrap()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn v2_9_quotes_ratings_and_tags_arrive_byte_for_byte_with_verabots_times() {
    let (_dir, source, store) = setup("v2.9.0-single.db");
    let report = import(&store, options(&source)).await;
    assert_eq!(report.layout, "verabot-single");
    assert_eq!(
        report.guilds,
        BTreeMap::from([(
            GUILD,
            GuildCounts {
                quotes: 5,
                tags: 2,
                quote_tags: 3,
                ratings: 3,
                reminders: 39,
                assignees: 38,
                optins: 33,
            }
        )])
    );

    let written: Vec<(i64, String, String, String, String)> = written(
        &source,
        "SELECT id, text, author, addedAt, updatedAt FROM quotes ORDER BY id",
        |r| r.try_into(),
    );
    let imported: Vec<(i64, String, String, Option<i64>, i64, i64)> = query(&store, |c| {
        all(
            c,
            "SELECT legacy_id, text, author_name, added_by, created_at, updated_at \
                 FROM quotes ORDER BY legacy_id",
            |r| r.try_into(),
        )
    })
    .await;
    assert_eq!(imported.len(), written.len());
    for ((id, text, author, added_at, updated_at), got) in written.iter().zip(&imported) {
        assert_eq!(
            got,
            &(
                *id,
                text.clone(),
                author.clone(),
                None, // VeraBot never stored who saved a quote
                verabot_time(added_at),
                verabot_time(updated_at),
            )
        );
    }
    assert!(
        written.iter().any(|(_, text, ..)| text.contains('日')),
        "the fixture has non-ASCII text"
    );

    // Ratings recomputed (VeraBot rounded its average to one decimal); tags by name.
    let (average, count, tags): (f64, i64, String) = query(&store, |c| {
        c.query_row(
            "SELECT rating_avg, rating_count, (SELECT group_concat(t.name, ',') FROM quote_tags qt \
             JOIN tags t ON t.id = qt.tag_id JOIN quotes q ON q.id = qt.quote_id \
             WHERE q.legacy_id = 4) FROM quotes WHERE legacy_id = 2",
            [],
            |r| r.try_into(),
        )
        .unwrap()
    })
    .await;
    assert_eq!((average, count, tags.as_str()), (3.5, 2, "funny"));
}

/// What VeraBot's notifier did with each fixture reminder, by subject, and what the import
/// must make of it: status, creator (the DM's recipient), channel.
fn expected_reminders(
    channel: Option<i64>,
) -> Vec<(String, &'static str, Option<i64>, Option<i64>)> {
    let posted = |active| {
        if channel.is_some() {
            active
        } else {
            "cancelled"
        }
    };
    vec![
        ("Team standup", "active", Some(ANN), None),
        ("Water the plants", "active", Some(BO), None),
        ("Conference talk", "active", Some(ANN), None),
        ("Raid night", posted("active"), None, channel),
        ("Pay rent", posted("active"), None, channel),
        ("Already sent", "sent", Some(BO), None),
        ("Called off", "cancelled", Some(ANN), None),
        ("Dentist (moved)", "active", Some(ANN), None),
        ("Nobody to tell", "cancelled", None, None),
    ]
    .into_iter()
    .map(|(subject, status, creator, channel)| (subject.to_owned(), status, creator, channel))
    .chain(CHECK_INS.enumerate().map(|(i, member)| {
        (
            format!("Check-in {} of 30", i + 1),
            "active",
            Some(member),
            None,
        )
    }))
    .collect()
}

type ImportedReminder = (
    i64,
    String,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

async fn imported_reminders(store: &GuildDatabaseManager, guild: u64) -> Vec<ImportedReminder> {
    store
        .with_existing_guild(guild, |c| {
            all(
                c,
                "SELECT legacy_id, message, due_at, status, created_by, channel_id, last_error \
                 FROM reminders ORDER BY legacy_id",
                |r| r.try_into(),
            )
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn v2_9_reminders_keep_verabots_times_and_statuses_and_dms_go_to_the_assignee() {
    let (_dir, source, store) = setup("v2.9.0-single.db");
    let report = import(&store, options(&source)).await;
    assert_eq!(
        report.skipped,
        BTreeMap::from(
            [
                // CommandBase's permission audit log: the guild id VeraBot's code wrote into
                // its single database, on a table the import has no use for.
                ("permission_audit_log.table_not_imported", 1),
                ("proxy_config.table_not_imported", 1),
                ("reminder_assignments.duplicate", 1),
                (
                    "reminders.for_role_or_several_members_without_channel_kept_cancelled",
                    1
                ),
                ("reminders.no_assignee_kept_cancelled", 1),
                (
                    "reminders.server_reminder_without_channel_kept_cancelled",
                    1
                ),
                // DEE opted in but appears in no quote, rating or reminder.
                (
                    "user_communications.global_choice_of_user_in_no_imported_guild",
                    1
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v))
        )
    );

    let written: Vec<(i64, String, String, String)> = written(
        &source,
        "SELECT id, subject, when_datetime, notificationTime FROM reminders ORDER BY id",
        |r| r.try_into(),
    );
    let imported = imported_reminders(&store, GUILD).await;
    assert_eq!(imported.len(), written.len());
    for ((id, subject, when, notify), (subject_expected, status, creator, channel)) in
        written.iter().zip(expected_reminders(None))
    {
        let (legacy_id, message, due_at, got_status, got_creator, got_channel, error) =
            imported.iter().find(|r| r.0 == *id).unwrap().clone();
        assert_eq!(subject, &subject_expected);
        assert_eq!(legacy_id, *id);
        assert!(message.starts_with(subject.as_str()), "{message:?}");
        // VeraBot's notifier fired at notificationTime, which an edit of the time left as it was.
        assert_eq!(due_at, verabot_time(notify), "{subject}");
        if when != notify {
            assert!(message.contains(&format!("When: {when}")), "{message:?}");
        }
        assert_eq!(
            (got_status.as_str(), got_creator, got_channel),
            (status, creator, channel),
            "{subject}"
        );
        assert_eq!(
            error.is_some(),
            status == "cancelled" && subject != "Called off",
            "{subject}: {error:?}"
        );
    }
    let standup = &imported[0].1;
    assert_eq!(
        standup,
        "Team standup\nCategory: Meeting\nBring the numbers\nhttps://example.com/agenda\n\
         https://example.com/chart.png"
    );

    // What the scheduler does at each active reminder's due time: a DM to the member VeraBot
    // sent it to (all of them opted in through VeraBot's /opt-in).
    let mut deliverable = 0;
    for (id, message, due_at, status, creator, ..) in imported.clone() {
        if status != "active" {
            continue;
        }
        deliverable += 1;
        let claim = claim_when_due(&store, GUILD, id, due_at).await;
        let Claim::Send(send) = claim else {
            panic!("reminder {id} is not sent: {claim:?}")
        };
        assert_eq!(
            send.target,
            DeliveryTarget::Dm {
                user: creator.unwrap() as u64
            }
        );
        assert_eq!(send.message, message);
    }
    assert_eq!(deliverable, 34, "the thirty check-ins and four others");

    let optins: Vec<(i64, bool)> = query(&store, |c| {
        all(
            c,
            "SELECT user_id, dm_opt_in FROM optins ORDER BY user_id",
            |r| r.try_into(),
        )
    })
    .await;
    let expected: Vec<(i64, bool)> = [(ANN, true), (BO, true), (CY, false)]
        .into_iter()
        .chain(CHECK_INS.map(|member| (member, true)))
        .collect();
    assert_eq!(optins, expected);
}

#[tokio::test]
async fn with_a_reminder_channel_role_and_server_reminders_are_posted_there() {
    let (dir, source, store) = setup("v2.9.0-single.db");
    let report = import_checked(
        &store,
        &dir.path().join("data"),
        ImportOptions {
            reminder_channel: Some(CHANNEL),
            ..options(&source)
        },
    )
    .await;
    assert!(!report
        .skipped
        .keys()
        .any(|reason| reason.contains("without_channel")));
    let imported = imported_reminders(&store, GUILD).await;
    for (
        (id, message, due_at, status, creator, channel, _),
        (subject, expected_status, expected_creator, expected_channel),
    ) in imported
        .iter()
        .zip(expected_reminders(Some(CHANNEL as i64)))
    {
        assert!(message.starts_with(subject.as_str()));
        assert_eq!(
            (status.as_str(), *creator, *channel),
            (expected_status, expected_creator, expected_channel),
            "{subject}"
        );
        if expected_channel.is_none() {
            continue;
        }
        let claim = claim_when_due(&store, GUILD, *id, *due_at).await;
        let Claim::Send(send) = claim else {
            panic!("{subject} is not sent: {claim:?}")
        };
        // VeraBot pinged the role in its channel; the member of a server reminder, who had
        // declined DMs, is mentioned there instead.
        let (users, roles) = if subject == "Raid night" {
            (vec![], vec![ROLE as u64])
        } else {
            (vec![CY as u64], vec![])
        };
        assert_eq!(
            send.target,
            DeliveryTarget::Channel {
                channel: CHANNEL,
                users,
                roles
            }
        );
    }
}

#[tokio::test]
async fn dry_run_predicts_the_import_a_second_run_adds_nothing_and_the_source_is_unchanged() {
    let (dir, source, store) = setup("v2.9.0-single.db");
    let report = import_checked(&store, &dir.path().join("data"), options(&source)).await;
    assert_eq!(report.guilds[&GUILD].reminders, 39);
}

#[tokio::test]
async fn without_a_default_guild_every_row_of_the_single_database_is_skipped_and_counted() {
    let (_dir, source, store) = setup("v2.9.0-single.db");
    let report = import(
        &store,
        ImportOptions {
            default_guild: None,
            ..options(&source)
        },
    )
    .await;
    assert!(report.guilds.is_empty());
    for (reason, n) in [
        ("quotes.no_guild", 5),
        ("quote_tags.no_guild", 3),
        ("quote_ratings.no_guild", 3),
        ("reminders.no_guild", 39),
        ("reminder_assignments.no_guild", 39),
        (
            "user_communications.global_choice_of_user_in_no_imported_guild",
            34,
        ),
    ] {
        assert_eq!(report.skipped.get(reason), Some(&n), "{reason}");
    }
}

#[tokio::test]
async fn v2_0_database_without_reminder_or_opt_in_tables_imports_its_quotes() {
    let (dir, source, store) = setup("v2.0.0-single.db");
    let report = import_checked(&store, &dir.path().join("data"), options(&source)).await;
    assert_eq!(report.layout, "verabot-single");
    assert_eq!(
        report.guilds[&GUILD],
        GuildCounts {
            quotes: 5,
            tags: 2,
            quote_tags: 3,
            ratings: 3,
            ..GuildCounts::default()
        }
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let texts: Vec<String> = written(&source, "SELECT text FROM quotes ORDER BY id", |r| r.get(0));
    let imported: Vec<String> = query(&store, |c| {
        all(c, "SELECT text FROM quotes ORDER BY legacy_id", |r| {
            r.get(0)
        })
    })
    .await;
    assert_eq!(imported, texts);
}

#[tokio::test]
async fn a_file_without_quotes_or_a_needed_column_is_refused_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"));
    for (schema, missing) in [
        ("CREATE TABLE notes (id INTEGER);", "no `quotes` table"),
        (
            "CREATE TABLE quotes (id INTEGER PRIMARY KEY, body TEXT);",
            "table `quotes` has no column `text`",
        ),
        (
            "CREATE TABLE quotes (id INTEGER PRIMARY KEY, text TEXT); \
             CREATE TABLE reminder_assignments (id INTEGER PRIMARY KEY, assigneeId TEXT);",
            "table `reminder_assignments` has no column `reminderId`",
        ),
    ] {
        let source = dir.path().join("odd.db");
        let _ = std::fs::remove_file(&source);
        Connection::open(&source)
            .unwrap()
            .execute_batch(schema)
            .unwrap();
        let error = migrate_legacy(&Owner::standalone(store.clone()), options(&source))
            .await
            .expect_err(missing);
        assert!(format!("{error:#}").contains(missing), "{error:#}");
    }
    assert!(!dir
        .path()
        .join("data/guilds")
        .join(GUILD.to_string())
        .exists());
}

const GUILD_A: u64 = 400_000_000_000_000_001;
const GUILD_B: u64 = 400_000_000_000_000_002;

/// A copy of VeraBot's per-guild fixture `name` (its `data/db`, guilds A and B) imported with
/// `--source-dir` and `reminder_channel` into a fresh data directory, through
/// [`import_checked`]. Every imported quote
/// is checked against VeraBot's file: text byte for byte, author, time. Returns the import's
/// report and the copied files, guild A's first.
async fn import_per_guild(
    name: &str,
    reminder_channel: Option<u64>,
) -> (
    tempfile::TempDir,
    GuildDatabaseManager,
    ImportReport,
    [PathBuf; 2],
) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/verabot")
        .join(name);
    let source = dir.path().join("verabot-data");
    let files = [GUILD_A, GUILD_B].map(|guild| {
        let relative = Path::new("guilds")
            .join(guild.to_string())
            .join("quotes.db");
        std::fs::create_dir_all(source.join(&relative).parent().unwrap()).unwrap();
        std::fs::copy(fixture.join(&relative), source.join(&relative)).unwrap();
        source.join(relative)
    });
    let data = dir.path().join("data");
    let store = store(&data);
    let options = ImportOptions {
        source,
        per_guild: true,
        reminder_channel,
        ..ImportOptions::default()
    };
    let report = import_checked(&store, &data, options).await;
    assert_eq!(report.layout, "verabot-per-guild");

    for (guild, file) in [GUILD_A, GUILD_B].into_iter().zip(&files) {
        let written: Vec<(String, String, String)> = written(
            file,
            "SELECT text, author, addedAt FROM quotes ORDER BY id",
            |r| r.try_into(),
        );
        let imported: Vec<(String, String, i64)> = store
            .with_existing_guild(guild, |c| {
                all(
                    c,
                    "SELECT text, author_name, created_at FROM quotes ORDER BY legacy_id",
                    |r| r.try_into(),
                )
            })
            .await
            .unwrap();
        let expected: Vec<_> = written
            .into_iter()
            .map(|(text, author, at)| (text, author, verabot_time(&at)))
            .collect();
        assert!(!expected.is_empty(), "guild {guild} has quotes");
        assert_eq!(imported, expected, "guild {guild}");
    }
    (dir, store, report, files)
}

#[tokio::test]
async fn v4_9_per_guild_files_import_guild_by_guild_with_each_guilds_own_opt_ins_and_reminders() {
    let (_dir, store, report, files) = import_per_guild("v4.9.0-per-guild", Some(CHANNEL)).await;
    assert_eq!(
        report.guilds,
        BTreeMap::from([
            (
                GUILD_A,
                GuildCounts {
                    quotes: 2,
                    tags: 1,
                    quote_tags: 1,
                    ratings: 2,
                    reminders: 3,
                    assignees: 3,
                    optins: 2,
                }
            ),
            (
                GUILD_B,
                GuildCounts {
                    quotes: 1,
                    optins: 1,
                    ..GuildCounts::default()
                }
            ),
        ])
    );

    // Each guild's own choices: Bo opted out in A and in in B.
    let optins = |guild| {
        store.with_existing_guild(guild, |c| {
            all(
                c,
                "SELECT user_id, dm_opt_in FROM optins ORDER BY user_id",
                |r| r.try_into(),
            )
        })
    };
    let a: Vec<(i64, bool)> = optins(GUILD_A).await.unwrap();
    let b: Vec<(i64, bool)> = optins(GUILD_B).await.unwrap();
    assert_eq!((a, b), (vec![(ANN, true), (BO, false)], vec![(BO, true)]));

    let reminders = imported_reminders(&store, GUILD_A).await;
    let notify: Vec<String> = written(
        &files[0],
        "SELECT notificationTime FROM reminders ORDER BY id",
        |r| r.get(0),
    );
    let due: Vec<i64> = reminders.iter().map(|r| r.2).collect();
    let expected: Vec<i64> = notify.iter().map(|t| verabot_time(t)).collect();
    assert_eq!(due, expected);
    let summary: Vec<(&str, &str, Option<i64>, Option<i64>)> = reminders
        .iter()
        .map(|(_, m, _, s, c, ch, _)| (m.lines().next().unwrap(), s.as_str(), *c, *ch))
        .collect();
    assert_eq!(
        summary,
        [
            ("Guild A standup", "active", Some(ANN), None),
            ("Guild A raid", "active", None, Some(CHANNEL as i64)),
            ("Guild A done", "sent", Some(BO), None),
        ]
    );
    // At their due times: the DM to Ann, and the raid in the channel, pinging the role.
    let mut targets = Vec::new();
    for (legacy_id, _, due_at, status, ..) in &reminders {
        if status == "active" {
            let claim = claim_when_due(&store, GUILD_A, *legacy_id, *due_at).await;
            let Claim::Send(send) = claim else {
                panic!("reminder {legacy_id} is not sent: {claim:?}")
            };
            targets.push(send.target);
        }
    }
    assert_eq!(
        targets,
        [
            DeliveryTarget::Dm { user: ANN as u64 },
            DeliveryTarget::Channel {
                channel: CHANNEL,
                users: vec![],
                roles: vec![ROLE as u64]
            }
        ]
    );
}

/// v2.10.0, the first release with per-guild files, wrote only quotes, tags and ratings into
/// them: its reminder and opt-in services wrote into the single database, into guild-id
/// columns that database never had, and failed (tests/fixtures/verabot/README.md).
#[tokio::test]
async fn v2_10_per_guild_files_import_their_quotes_tags_and_ratings() {
    let (_dir, store, report, files) = import_per_guild("v2.10.0-per-guild", None).await;
    assert_eq!(
        report.guilds,
        BTreeMap::from([
            (
                GUILD_A,
                GuildCounts {
                    quotes: 2,
                    tags: 1,
                    quote_tags: 1,
                    ratings: 2,
                    ..GuildCounts::default()
                }
            ),
            (
                GUILD_B,
                GuildCounts {
                    quotes: 1,
                    ..GuildCounts::default()
                }
            ),
        ])
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);

    // The average VeraBot kept beside each quote, recomputed from the ratings it kept.
    let written: Vec<(f64, i64)> = written(
        &files[0],
        "SELECT averageRating, ratingCount FROM quotes ORDER BY id",
        |r| r.try_into(),
    );
    let imported: Vec<(f64, i64, Option<String>)> = store
        .with_existing_guild(GUILD_A, |c| {
            all(
                c,
                "SELECT rating_avg, rating_count, (SELECT group_concat(t.name) FROM quote_tags qt \
                 JOIN tags t ON t.id = qt.tag_id WHERE qt.quote_id = q.id) \
                 FROM quotes q ORDER BY legacy_id",
                |r| r.try_into(),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        imported,
        [
            (written[0].0, written[0].1, Some("wisdom".to_owned())),
            (written[1].0, written[1].1, None),
        ]
    );
}

#[tokio::test]
async fn a_verabot_file_at_a_guild_path_is_refused_untouched_naming_the_import_and_check_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An operator copied VeraBot's data/db/guilds into our data directory: same path shape.
    let file = verabot_file_at(&data, GUILD_A);
    let store = store(&data);

    let error = store
        .with_existing_guild(GUILD_A, |c| {
            c.query_row("SELECT count(*) FROM quotes", [], |r| r.get::<_, i64>(0))
        })
        .await
        .expect_err("a foreign database is refused");
    assert!(
        error
            .to_string()
            .contains("guildkeep migrate-legacy --source-dir"),
        "{error}"
    );
    let results = guildkeep::ops::inspect::check(&store, &[]).await.unwrap();
    assert_eq!(results.len(), 1);
    assert!(
        results[0]
            .problems
            .iter()
            .any(|p| p.contains("not guildkeep's")
                && p.contains("guildkeep migrate-legacy --source-dir")),
        "{:?}",
        results[0].problems
    );

    assert_verabot_file_untouched(&file);
}

#[tokio::test]
async fn check_fails_for_a_guild_whose_schema_is_newer_than_this_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"));
    store
        .with_guild(GUILD_A, |c| c.pragma_update(None, "user_version", 999))
        .await
        .unwrap()
        .unwrap();
    let results = guildkeep::ops::inspect::check(&store, &[GUILD_A])
        .await
        .unwrap();
    assert!(
        results[0].problems.iter().any(|p| p.contains("999")),
        "{:?}",
        results[0].problems
    );
}

#[tokio::test]
async fn guild_ids_on_reminders_alone_make_a_guild_aware_file_whose_quotes_go_everywhere() {
    // What VeraBot's own single-to-multi script read: guild ids on reminders (and opt-ins)
    // only; it copied every quote into every guild.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("quotes.db");
    Connection::open(&source)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE quotes (id INTEGER PRIMARY KEY, text TEXT, author TEXT, addedAt TEXT);
             CREATE TABLE reminders (id INTEGER PRIMARY KEY, guildId TEXT, subject TEXT,
                 when_datetime TEXT);
             CREATE TABLE reminder_assignments (id INTEGER PRIMARY KEY, reminderId INTEGER,
                 assigneeType TEXT, assigneeId TEXT);
             INSERT INTO quotes VALUES (1, 'shared by all', 'Ann', '2026-01-03T12:00:00.000Z');
             INSERT INTO reminders VALUES (1, '{GUILD_A}', 'a only', '2031-01-01T00:00:00.000Z'),
                 (2, '{GUILD_B}', 'b only', '2031-01-01T00:00:00.000Z');
             INSERT INTO reminder_assignments VALUES (1, 1, 'user', '{ANN}'), (2, 2, 'user', '{BO}');"
        ))
        .unwrap();
    let store = store(&dir.path().join("data"));
    let report = import(
        &store,
        ImportOptions {
            source,
            to_every_guild: true,
            ..ImportOptions::default()
        },
    )
    .await;
    assert_eq!(report.layout, "guild-aware");
    for (guild, recipient) in [(GUILD_A, ANN), (GUILD_B, BO)] {
        let counts = report.guilds[&guild];
        assert_eq!((counts.quotes, counts.reminders), (1, 1), "guild {guild}");
        let owner: i64 = store
            .with_existing_guild(guild, |c| {
                c.query_row("SELECT created_by FROM reminders", [], |r| r.get(0))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner, recipient);
    }
}
