//! `migrate-legacy` against a legacy database the tests build, one test per rule of
//! shared/legacy-format.md: guild ids, the default guild, per-guild tags from global ones,
//! orphans, recomputed ratings, time formats, opt-ins, idempotence, `--guild`, `--dry-run`,
//! the report, and the source left byte-for-byte unchanged. Also a hostile source: views where
//! tables belong, a view that never ends, and a 1 MB text, refused or cut quickly and in
//! bounded memory.

mod ops_support;

use guildkeep::ops::Owner;
use std::{collections::BTreeMap, path::Path};

use guildkeep::{
    ops::legacy::{migrate_legacy, GuildCounts, ImportOptions},
    store::GuildDatabaseManager,
};
use ops_support::{import, import_checked, legacy_db, store};
use rusqlite::{params, Connection};

const A: u64 = 111_111_111_111_111_111;
const B: u64 = 222_222_222_222_222_222;
/// 2030-01-01 10:00:00 UTC.
const DUE: i64 = 1_893_492_000;

/// id, guildId, text, author, addedBy, category.
type QuoteRow<'a> = (
    i64,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
);
/// id, guildId, subject, when, content, link, status, method, channelId.
type ReminderRow<'a> = (
    i64,
    Option<&'a str>,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
    Option<&'a str>,
);

/// One legacy database exercising every rule; the comments say what each row is for.
fn fixture(path: &Path) {
    let db = legacy_db(path);
    let (a, b) = (A.to_string(), B.to_string());
    let quotes: &[QuoteRow] = &[
        (1, Some(&a), "a one", Some("Ann"), Some("1001"), "General"),
        (2, Some(&a), "a two", None, None, "Funny"), // category = a legacy tag's name
        (3, Some(&b), "b one", Some("Bo"), Some("1002"), "general"),
        (4, None, "no guild", None, None, "General"),
        (5, Some(""), "empty guild", None, None, "Deep Thoughts"), // category-only tag
        (6, Some("abc"), "invalid guild", None, None, "General"),
        (7, Some("0"), "guild zero", None, None, "General"),
        (8, Some("-5"), "negative guild", None, None, "General"),
        (9, Some(&b), "", None, None, "General"), // empty text
    ];
    for (id, guild, text, author, added_by, category) in quotes {
        db.execute(
            "INSERT INTO quotes (id, guildId, text, author, addedBy, addedAt, category, \
             averageRating, ratingCount) VALUES (?1, ?2, ?3, ?4, ?5, '2024-01-02 03:04:05', ?6, 4.9, 9)",
            params![id, guild, text, author, added_by, category],
        )
        .unwrap();
    }
    db.execute_batch(
        "INSERT INTO tags (id, name, description, createdAt) VALUES
             (1, 'Funny ', 'laughs', '2024-01-01T00:00:00Z'),
             (2, 'FUNNY', 'other spelling', NULL),
             (3, 'Wisdom', NULL, NULL),
             (4, 'unused', NULL, NULL);
         INSERT INTO quote_tags (quoteId, tagId) VALUES
             (1, 1), (1, 2),   -- two spellings of one tag on one quote
             (1, 3), (3, 3),   -- one global tag used by two guilds
             (2, 2),           -- same as quote 2's category
             (99, 1),          -- orphan: no quote 99
             (3, 99),          -- orphan: no tag 99
             (6, 1);           -- quote in an invalid guild
         INSERT INTO quote_ratings (id, quoteId, userId, rating, createdAt) VALUES
             (1, 1, '2001', 5, '2024-02-01 00:00:00'),
             (2, 1, '2002', 3, NULL),
             (3, 1, 'x', 4, NULL),      -- invalid user
             (4, 2, '2003', 9, NULL),   -- out of range
             (5, 99, '2004', 5, NULL);  -- orphan",
    )
    .unwrap();
    let reminders: &[ReminderRow] = &[
        (
            1,
            Some(&a),
            "iso z",
            "2030-01-01T10:00:00Z",
            None,
            None,
            "active",
            "dm",
            None,
        ),
        (
            2,
            Some(&a),
            "offset",
            "2030-01-01T12:00:00+02:00",
            None,
            None,
            "active",
            "dm",
            None,
        ),
        (
            3,
            Some(&a),
            "sql form",
            "2030-01-01 10:00:00",
            None,
            None,
            "active",
            "dm",
            None,
        ),
        (
            4,
            Some(&a),
            "millis",
            "1893492000000",
            None,
            None,
            "active",
            "dm",
            None,
        ),
        (
            5,
            Some(&a),
            "words",
            "tomorrow",
            None,
            None,
            "active",
            "dm",
            None,
        ),
        (
            6,
            Some(&a),
            "posted",
            "2030-01-01T10:00:00Z",
            Some("body"),
            Some("https://x.example"),
            "sent",
            "server",
            Some("3001"),
        ),
        (
            7,
            Some(&a),
            "nowhere",
            "2030-01-01T10:00:00Z",
            None,
            None,
            "active",
            "server",
            None,
        ),
        (
            8,
            Some(&a),
            "called off",
            "2030-01-01T10:00:00Z",
            None,
            None,
            "cancelled",
            "dm",
            None,
        ),
        (
            9,
            None,
            "no guild",
            "2030-01-01T10:00:00Z",
            None,
            None,
            "active",
            "dm",
            None,
        ),
    ];
    for (id, guild, subject, when, content, link, status, method, channel) in reminders {
        db.execute(
            "INSERT INTO reminders (id, guildId, subject, when_datetime, content, link, status, \
             notification_method, channelId, createdBy, createdAt) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '1001', '2024-03-01 00:00:00')",
            params![id, guild, subject, when, content, link, status, method, channel],
        )
        .unwrap();
    }
    db.execute_batch(&format!(
        "INSERT INTO reminder_assignments (id, reminderId, assigneeType, assigneeId) VALUES
             (1, 6, 'user', '1003'), (2, 6, 'role', '4001'),
             (3, 6, 'team', '1'),        -- invalid type
             (4, 6, 'user', 'bad'),      -- invalid id
             (5, 99, 'user', '1');       -- orphan
         INSERT INTO user_communications (user_id, guild_id, opted_in, preferences) VALUES
             ('1001', NULL, 1, '{{\"tz\":\"UTC\"}}'),  -- global; 1001 appears in A only
             ('1002', NULL, 1, NULL),                  -- global; 1002 appears in B only
             ('2001', NULL, 1, NULL),                  -- global, overridden in A
             ('2001', '{a}', 0, NULL),
             ('5555', NULL, 1, NULL),                  -- global; appears nowhere
             ('1003', '{b}', 1, 'not json'),
             ('bad', '{a}', 1, NULL),
             ('1004', 'xyz', 1, NULL);"
    ))
    .unwrap();
}

fn options(source: &Path) -> ImportOptions {
    ImportOptions {
        source: source.to_path_buf(),
        ..ImportOptions::default()
    }
}

async fn query<T: Send + 'static>(
    store: &GuildDatabaseManager,
    guild: u64,
    f: impl FnOnce(&Connection) -> T + Send + 'static,
) -> T {
    store
        .with_existing_guild(guild, move |c| f(c))
        .await
        .unwrap()
}

fn expected_a() -> GuildCounts {
    GuildCounts {
        quotes: 2,
        tags: 2,
        quote_tags: 3,
        ratings: 2,
        reminders: 8,
        assignees: 2,
        optins: 2,
    }
}

fn expected_b() -> GuildCounts {
    GuildCounts {
        quotes: 1,
        tags: 1,
        quote_tags: 1,
        ratings: 0,
        reminders: 0,
        assignees: 0,
        optins: 2,
    }
}

fn expected_skipped() -> BTreeMap<String, u64> {
    [
        ("quotes.no_guild", 2),
        ("quotes.invalid_guild_id", 3),
        ("quotes.empty_text", 1),
        ("quote_tags.duplicate_after_tag_merge", 1),
        ("quote_tags.orphan_quote", 1),
        ("quote_tags.orphan_tag", 1),
        ("quote_tags.invalid_guild_id", 1),
        ("quote_ratings.invalid_user_id", 1),
        ("quote_ratings.rating_not_1_to_5", 1),
        ("quote_ratings.orphan_quote", 1),
        ("reminders.unparseable_time_kept_cancelled", 1),
        (
            "reminders.server_reminder_without_channel_kept_cancelled",
            1,
        ),
        ("reminders.no_guild", 1),
        ("reminder_assignments.invalid_assignee_type", 1),
        ("reminder_assignments.invalid_assignee_id", 1),
        ("reminder_assignments.orphan_reminder", 1),
        (
            "user_communications.global_choice_of_user_in_no_imported_guild",
            1,
        ),
        ("user_communications.preferences_not_json_dropped", 1),
        ("user_communications.invalid_user_id", 1),
        ("user_communications.invalid_guild_id", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn report_counts_every_imported_and_skipped_row() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    let report_file = dir.path().join("report.json");
    let report = import(
        &store,
        ImportOptions {
            report: Some(report_file.clone()),
            ..options(&source)
        },
    )
    .await;
    assert_eq!(
        report.guilds,
        BTreeMap::from([(A, expected_a()), (B, expected_b())])
    );
    assert_eq!(report.skipped, expected_skipped());

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(json["dry_run"], false);
    assert_eq!(
        json["guilds"][A.to_string()],
        serde_json::json!({"quotes": 2, "tags": 2, "quote_tags": 3, "ratings": 2,
                           "reminders": 8, "assignees": 2, "optins": 2})
    );
    assert_eq!(json["skipped"]["quotes.no_guild"], 2);
    // The sketch's columns, guild ids included: VeraBot's guild-aware single database.
    assert_eq!(json["layout"], "guild-aware");
    assert_eq!(
        json.as_object().unwrap().len(),
        4,
        "exactly dry_run, layout, guilds, skipped"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&report_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn invalid_guild_ids_never_become_paths() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let data = dir.path().join("data");
    let store = store(&data);
    import(&store, options(&source)).await;
    assert_eq!(store.guilds_on_disk().await.unwrap(), vec![A, B]);
    let names: Vec<String> = std::fs::read_dir(data.join("guilds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn tags_are_per_guild_merged_by_trimmed_lower_case_name_and_categories_become_tags() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    import(
        &store,
        ImportOptions {
            default_guild: Some(A),
            ..options(&source)
        },
    )
    .await;
    let tags = |c: &Connection| -> Vec<(String, Option<String>, Option<i64>)> {
        c.prepare("SELECT name, description, legacy_id FROM tags ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        query(&store, A, tags).await,
        vec![
            ("deep thoughts".into(), None, None),
            ("funny".into(), Some("laughs".into()), Some(1)),
            ("wisdom".into(), None, Some(3)),
        ]
    );
    assert_eq!(
        query(&store, B, tags).await,
        vec![("wisdom".into(), None, Some(3))]
    );
    let links = |c: &Connection| -> Vec<(i64, String)> {
        c.prepare(
            "SELECT q.legacy_id, t.name FROM quote_tags qt JOIN quotes q ON q.id = qt.quote_id \
             JOIN tags t ON t.id = qt.tag_id ORDER BY 1, 2",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert_eq!(
        query(&store, A, links).await,
        vec![
            (1, "funny".into()),
            (1, "wisdom".into()),
            (2, "funny".into()),
            (5, "deep thoughts".into()),
        ]
    );
}

#[tokio::test]
async fn ratings_are_recomputed_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    import(&store, options(&source)).await;
    let ratings = query(&store, A, |c| {
        c.prepare("SELECT legacy_id, rating_avg, rating_count FROM quotes ORDER BY legacy_id")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(ratings, vec![(1, 4.0, 2), (2, 0.0, 0)]);
    let stored = query(&store, A, |c| {
        c.query_row(
            "SELECT count(*), min(created_at) FROM quote_ratings",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap()
    })
    .await;
    assert_eq!(stored, (2, 1_704_164_645)); // rating 2 had no time: its quote's, 2024-01-02 03:04:05
}

#[tokio::test]
async fn every_time_format_is_read_and_an_unreadable_one_is_kept_as_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    import(&store, options(&source)).await;
    type Row = (
        i64,
        String,
        Option<i64>,
        String,
        i64,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = query(&store, A, |c| {
        c.prepare(
            "SELECT legacy_id, target_kind, channel_id, message, due_at, status, last_error \
             FROM reminders ORDER BY legacy_id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    })
    .await;
    for row in &rows[..4] {
        assert_eq!(
            (row.4, row.5.as_str(), row.1.as_str()),
            (DUE, "active", "dm"),
            "{row:?}"
        );
    }
    let words = &rows[4];
    assert_eq!(words.5, "cancelled");
    assert_eq!(words.4, 1_709_251_200, "creation time stands in"); // 2024-03-01
    assert!(
        words.6.as_deref().unwrap().contains("\"tomorrow\""),
        "{words:?}"
    );
    let posted = &rows[5];
    assert_eq!(
        (
            posted.1.as_str(),
            posted.2,
            posted.3.as_str(),
            posted.5.as_str()
        ),
        (
            "channel",
            Some(3001),
            "posted\nbody\nhttps://x.example",
            "sent"
        )
    );
    let nowhere = &rows[6];
    assert_eq!(
        (nowhere.1.as_str(), nowhere.2, nowhere.5.as_str()),
        ("dm", None, "cancelled")
    );
    assert!(nowhere
        .6
        .as_deref()
        .unwrap()
        .contains("without a valid channel"));
    assert_eq!(rows[7].5, "cancelled");
    assert_eq!(rows[7].6, None);
    let assignees = query(&store, A, |c| {
        c.prepare("SELECT assignee_kind, assignee_id FROM reminder_assignees ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(
        assignees,
        vec![("role".into(), 4001), ("user".into(), 1003)]
    );
}

#[tokio::test]
async fn global_opt_ins_apply_where_the_user_appears_and_per_guild_ones_win() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    import(&store, options(&source)).await;
    let optins = |c: &Connection| -> Vec<(i64, bool, Option<String>)> {
        c.prepare("SELECT user_id, dm_opt_in, preferences FROM optins ORDER BY user_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        query(&store, A, optins).await,
        vec![
            (1001, true, Some("{\"tz\":\"UTC\"}".into())),
            (2001, false, None)
        ]
    );
    assert_eq!(
        query(&store, B, optins).await,
        vec![(1002, true, None), (1003, true, None)]
    );
}

#[tokio::test]
async fn default_guild_takes_rows_without_a_guild_and_guild_limits_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    let report = import(
        &store,
        ImportOptions {
            guilds: vec![B],
            default_guild: Some(B),
            ..options(&source)
        },
    )
    .await;
    assert_eq!(report.guilds.keys().copied().collect::<Vec<_>>(), vec![B]);
    assert_eq!(store.guilds_on_disk().await.unwrap(), vec![B]);
    let b = report.guilds[&B];
    assert_eq!(
        (b.quotes, b.reminders, b.tags),
        (3, 1, 2),
        "quotes 4 and 5, reminder 9 joined B"
    );
    assert_eq!(report.skipped["quotes.guild_not_selected"], 2);
    assert_eq!(report.skipped["reminders.guild_not_selected"], 8);
    assert!(!report.skipped.contains_key("quotes.no_guild"));
}

#[tokio::test]
async fn existing_guild_data_is_kept_and_imported_rows_are_added_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    store
        .with_guild(A, |c| {
            c.execute_batch(
                "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES ('mine', 7, 1, 1);
                 INSERT INTO tags (name, created_at) VALUES ('wisdom', 1);
                 INSERT INTO optins (user_id, dm_opt_in, created_at, updated_at) VALUES (1001, 0, 1, 1);",
            )
        })
        .await
        .unwrap()
        .unwrap();
    let report = import(&store, options(&source)).await;
    assert_eq!(report.guilds[&A].tags, 1, "wisdom already existed");
    assert_eq!(report.guilds[&A].optins, 1, "1001's own choice wins");
    let (quotes, own, opted): (i64, String, bool) = query(&store, A, |c| {
        c.query_row(
            "SELECT (SELECT count(*) FROM quotes), (SELECT text FROM quotes WHERE legacy_id IS NULL), \
             (SELECT dm_opt_in FROM optins WHERE user_id = 1001)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    })
    .await;
    assert_eq!((quotes, own.as_str(), opted), (3, "mine", false));
}

#[tokio::test]
async fn dry_run_predicts_the_import_a_second_run_adds_nothing_and_the_source_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let data = dir.path().join("data");
    let report = import_checked(&store(&data), &data, options(&source)).await;
    assert!(report.guilds.values().any(|c| c.quotes > 0));
}

#[tokio::test]
async fn a_source_with_unfinished_writes_or_bad_options_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    fixture(&source);
    let store = store(&dir.path().join("data"));
    let zero = migrate_legacy(
        &Owner::standalone(store.clone()),
        ImportOptions {
            default_guild: Some(0),
            ..options(&source)
        },
    )
    .await;
    assert!(zero.is_err());
    std::fs::write(dir.path().join("legacy.db-wal"), b"pending").unwrap();
    let error = migrate_legacy(&Owner::standalone(store.clone()), options(&source))
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("-wal"), "{error:#}");
    assert!(store.guilds_on_disk().await.unwrap().is_empty());
}

#[tokio::test]
async fn nul_characters_in_legacy_texts_are_dropped_instead_of_failing_the_guild() {
    // SQLite's length() stops at a NUL, so a NUL left in would trip the target's CHECKs and
    // roll the whole guild back.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    let db = legacy_db(&source);
    db.execute(
        "INSERT INTO quotes (guildId, text, author, category) VALUES (?1, ?2, ?3, ?4)",
        params![A.to_string(), "\0a\0b", "\0", "\0Fun"],
    )
    .unwrap();
    db.execute(
        "INSERT INTO reminders (guildId, subject, when_datetime) VALUES (?1, ?2, ?3)",
        params![A.to_string(), "\0", "2030-01-01T10:00:00Z"],
    )
    .unwrap();
    drop(db);
    let store = store(&dir.path().join("data"));
    import(&store, options(&source)).await;
    let (text, author, tag, message) = query(&store, A, |c| {
        c.query_row(
            "SELECT q.text, q.author_name, t.name, r.message FROM quotes q, tags t, reminders r",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .unwrap()
    })
    .await;
    assert_eq!(
        (
            text.as_str(),
            author.as_str(),
            tag.as_str(),
            message.as_str()
        ),
        ("ab", "Anonymous", "fun", "(legacy reminder without text)")
    );
}

/// `guildkeep migrate-legacy --dry-run` run as an operator would, with its exit, its stderr,
/// how long it took and its peak memory (maximum resident set, KiB; the largest of the runs so
/// far, which bounds this one).
fn dry_run_cli(source: &Path, data: &Path) -> (bool, String, std::time::Duration, i64) {
    use std::os::unix::process::CommandExt;
    use std::{io::Read, process::Stdio};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_guildkeep"));
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // Ten seconds of CPU, then SIGKILL: a source that hangs the import fails the test
            // instead of hanging it.
            let limit = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            match libc::setrlimit(libc::RLIMIT_CPU, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let started = std::time::Instant::now();
    let mut child = command
        .current_dir(data.parent().unwrap())
        .arg("--data-dir")
        .arg(data)
        .args(["migrate-legacy", "--dry-run", "--source"])
        .arg(source)
        .env("GUILDKEEP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guildkeep");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let ok = child.wait().unwrap().success();
    let took = started.elapsed();
    // The largest child this process has waited for; the only children of this test binary
    // are the runs of this function.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: `usage` is a live, writable rusage.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    (ok, stderr, took, usage.ru_maxrss)
}

#[test]
fn a_source_with_views_where_tables_belong_is_refused_at_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `quotes` a view that joins a table with itself five times: read, it is 10^15 rows.
    let joined = dir.path().join("joined.db");
    let db = legacy_db(&joined);
    db.execute_batch(
        "ALTER TABLE quotes RENAME TO real_quotes;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO real_quotes (guildId, text) SELECT '111111111111111111', 'q' || i FROM n;
         CREATE VIEW quotes AS SELECT a.* FROM real_quotes a, real_quotes b, real_quotes c,
             real_quotes d, real_quotes e;",
    )
    .unwrap();
    drop(db);
    // A view that never ends, under a name the import does not even read.
    let endless = dir.path().join("endless.db");
    let db = legacy_db(&endless);
    db.execute_batch(
        "CREATE VIEW forever AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
         SELECT i FROM n;",
    )
    .unwrap();
    drop(db);

    for (source, named) in [(joined, "view `quotes`"), (endless, "view `forever`")] {
        let (ok, stderr, took, peak_kib) = dry_run_cli(&source, &data);
        assert!(!ok, "refused");
        assert!(stderr.contains(named), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
        assert!(peak_kib < 64 * 1024, "peak memory {peak_kib} KiB");
        eprintln!(
            "{}: refused in {took:?}, peak {peak_kib} KiB",
            source.display()
        );
    }
    assert!(!data.join("guilds").exists(), "nothing was written");
}

#[tokio::test]
async fn a_generated_column_or_a_trigger_in_the_source_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"));
    for (name, sql, named) in [
        (
            "generated.db",
            "ALTER TABLE reminders ADD COLUMN big TEXT AS (zeroblob(1000000000)) VIRTUAL;",
            "generated column `big`",
        ),
        (
            "trigger.db",
            "CREATE TRIGGER t AFTER INSERT ON tags BEGIN DELETE FROM tags; END;",
            "trigger `t`",
        ),
    ] {
        let source = dir.path().join(name);
        legacy_db(&source).execute_batch(sql).unwrap();
        let error = migrate_legacy(&Owner::standalone(store.clone()), options(&source))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains(named), "{error:#}");
    }
}

#[tokio::test]
async fn a_megabyte_text_is_skipped_or_cut_to_its_documented_limit() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    let db = legacy_db(&source);
    let huge = "w".repeat(1 << 20);
    db.execute(
        "INSERT INTO quotes (guildId, text) VALUES (?1, ?2), (?1, 'short')",
        params![A.to_string(), huge],
    )
    .unwrap();
    db.execute(
        "INSERT INTO reminders (guildId, subject, when_datetime, createdAt)
         VALUES (?1, ?2, '2030-01-01T10:00:00Z', ?2)",
        params![A.to_string(), huge],
    )
    .unwrap();
    drop(db);
    let store = store(&dir.path().join("data"));
    let report = import(&store, options(&source)).await;
    assert_eq!(report.skipped.get("quotes.text_too_long"), Some(&1));
    assert_eq!(
        report
            .skipped
            .get("reminders.message_truncated_to_4000_chars"),
        Some(&1)
    );
    let (texts, message, created) = query(&store, A, |c| {
        let texts: Vec<String> = c
            .prepare("SELECT text FROM quotes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let (message, created): (String, i64) = c
            .query_row("SELECT message, created_at FROM reminders", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        (texts, message, created)
    })
    .await;
    assert_eq!(texts, ["short"]);
    assert_eq!(message, "w".repeat(4000));
    // A megabyte is no time: unreadable, so the import's start time.
    assert!(created > 1_700_000_000, "{created}");
}

#[tokio::test]
async fn the_guild_id_legacy_means_no_guild_as_in_verabots_own_migration_script() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    legacy_db(&source)
        .execute_batch(&format!(
            "INSERT INTO quotes (id, guildId, text, addedBy) VALUES (1, 'legacy', 'old one', '1001'),
                 (2, '{A}', 'a one', '1002');
             INSERT INTO reminders (id, guildId, subject, when_datetime, createdBy)
                 VALUES (1, 'legacy', 'old reminder', '2030-01-01T10:00:00.000Z', '1001');
             INSERT INTO user_communications (user_id, guild_id, opted_in) VALUES ('1001', 'legacy', 1);"
        ))
        .unwrap();
    let store = store(&dir.path().join("data"));
    let skipped = import(&store, options(&source)).await.skipped;
    assert_eq!(skipped.get("quotes.no_guild"), Some(&1));
    assert_eq!(skipped.get("reminders.no_guild"), Some(&1));
    let report = import(
        &store,
        ImportOptions {
            default_guild: Some(A),
            ..options(&source)
        },
    )
    .await;
    let counts = report.guilds[&A];
    // 1001's 'legacy' opt-in is a global one: it applies where 1001 appears.
    assert_eq!(
        (counts.quotes, counts.reminders, counts.optins),
        (1, 1, 1),
        "{report:?}"
    );
    let due: i64 = query(&store, A, |c| {
        c.query_row("SELECT due_at FROM reminders", [], |r| r.get(0))
            .unwrap()
    })
    .await;
    assert_eq!(due, DUE);
}

#[tokio::test]
async fn to_every_guild_copies_rows_without_a_guild_and_global_opt_ins_into_each_guild() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    legacy_db(&source)
        .execute_batch(&format!(
            "INSERT INTO quotes (id, guildId, text) VALUES (1, NULL, 'before guilds'),
                 (2, 'legacy', 'marked legacy'), (3, '{A}', 'a only'), (4, '{B}', 'b only');
             INSERT INTO tags (id, name) VALUES (1, 'old');
             INSERT INTO quote_tags (quoteId, tagId) VALUES (1, 1);
             INSERT INTO reminders (id, guildId, subject, when_datetime, createdBy)
                 VALUES (1, NULL, 'everyone', '2030-01-01T10:00:00.000Z', '1001');
             INSERT INTO user_communications (user_id, guild_id, opted_in) VALUES ('1003', NULL, 1);"
        ))
        .unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    let every = ImportOptions {
        to_every_guild: true,
        ..options(&source)
    };
    let report = import_checked(&store, &data, every).await;
    for guild in [A, B] {
        let counts = report.guilds[&guild];
        assert_eq!(
            (
                counts.quotes,
                counts.quote_tags,
                counts.reminders,
                counts.optins
            ),
            (3, 1, 1, 1),
            "guild {guild}: 1003's global choice, though 1003 appears in no guild"
        );
        let texts: Vec<String> = query(&store, guild, |c| {
            let mut s = c
                .prepare("SELECT text FROM quotes ORDER BY legacy_id")
                .unwrap();
            let found = s.query_map([], |r| r.get(0)).unwrap();
            found.collect::<rusqlite::Result<_>>().unwrap()
        })
        .await;
        let own = if guild == A { "a only" } else { "b only" };
        assert_eq!(texts, ["before guilds", "marked legacy", own]);
    }
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);

    let both = migrate_legacy(
        &Owner::standalone(store.clone()),
        ImportOptions {
            to_every_guild: true,
            default_guild: Some(A),
            ..options(&source)
        },
    )
    .await
    .expect_err("one place for rows without a guild");
    assert!(format!("{both:#}").contains("not both"), "{both:#}");
}
