//! Hostile input at the domain level, against a real guild database file: random strings
//! through quote and tag normalisation and FTS search never reach the member as an SQL or
//! FTS error and keep the documented invariants; random strings through the reminder time
//! parser in random zones never panic and give either a time inside the allowed window or a
//! message for the member; a legacy database full of odd guild ids, texts and times imports
//! or is refused with a reason, never panics, and leaves only sound guild files under
//! canonical names; and tables of bad arguments for every quote command and for the
//! reminder and opt-in calls, with the message (`user_message()`) the member gets for each.
//!
//! Property cases run 128 times each in CI; `PROPTEST_CASES` raises that. Not here: what the
//! bot does with the messages (tests/e2e), store failures (`damaged.rs`, `exhaustion.rs`).

mod ops_support;

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};
use guildkeep::ops::Owner;
use guildkeep::{
    ops::legacy::{migrate_legacy, ImportOptions},
    optins,
    quotes::{self, NewQuote, QuoteEdit, QuoteError, MAX_TAGS, MAX_TAG_CHARS},
    reminders::{
        self,
        parse::{parse_end, parse_when},
        NewReminder, Recurrence, ReminderEdit, ReminderError, Target, MAX_ASSIGNEES,
    },
    store::Migrations,
};
use proptest::{
    collection::vec,
    prelude::*,
    sample::select,
    test_runner::{Config, TestRunner},
};
use rusqlite::Connection;
use tempfile::TempDir;

const ALICE: u64 = 1_000_000_000_000_001;
const BOB: u64 = 1_000_000_000_000_002;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000, 0).unwrap()
}

/// A guild database at the latest schema, with the store's behaviour-changing PRAGMA.
fn guild_db() -> (TempDir, Connection) {
    let dir = TempDir::new().unwrap();
    let mut conn = Connection::open(dir.path().join("quotes.db")).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    Migrations::embedded().apply(&mut conn).unwrap();
    (dir, conn)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Strings a member might type, weighted toward the awkward: FTS5 syntax, SQL, quotes,
/// control characters, NUL, combining marks, wide and right-to-left scripts, and noise.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = select(vec![
        "\"",
        "'",
        "*",
        "-",
        "^",
        ":",
        "(",
        ")",
        "{",
        "}",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "NEAR(a b, 2)",
        "text:",
        "'); DROP TABLE quotes; --",
        "%",
        "_",
        "\\",
        "\0",
        "\t",
        "\n",
        " ",
        "  ",
        "\u{200b}",
        "\u{202e}",
        "e\u{301}",
        "İ",
        "ß",
        "ǅ",
        "²",
        "🦀",
        "日本語",
        "مرحبا",
        "cat",
        "Cat",
        "dog",
        "0",
        "42",
    ]);
    prop_oneof![
        any::<String>(),
        vec(pieces, 0..12).prop_map(|p| p.concat()),
        "[ -~]{0,40}",
    ]
}

#[test]
fn tag_normalisation_is_idempotent_trimmed_single_spaced_and_lower_case() {
    runner()
        .run(&hostile_text(), |raw| {
            let tag = quotes::normalise_tag(&raw);
            prop_assert_eq!(quotes::normalise_tag(&tag), tag.clone());
            prop_assert_eq!(tag.trim(), tag.as_str());
            prop_assert!(!tag.contains("  "), "{:?}", tag);
            prop_assert!(!tag.chars().any(|c| c.is_whitespace() && c != ' '));
            prop_assert_eq!(tag.to_lowercase(), tag.clone());
            Ok(())
        })
        .unwrap();
}

#[test]
fn saving_any_quote_gives_it_back_as_saved_or_a_message_for_the_member() {
    let (_dir, conn) = guild_db();
    let input = (
        hostile_text(),
        proptest::option::of(hostile_text()),
        vec(hostile_text(), 0..(MAX_TAGS + 3)),
    );
    runner()
        .run(&input, |(text, author_name, tags)| {
            let new = NewQuote {
                text: text.clone(),
                author_name,
                added_by: ALICE,
                tags,
                ..NewQuote::default()
            };
            match quotes::add(&conn, &new, now()) {
                Ok(quote) => {
                    let without_nul = text.replace('\0', "");
                    prop_assert_eq!(quote.text.as_str(), without_nul.trim());
                    prop_assert!(quote.tags.len() <= MAX_TAGS);
                    for tag in &quote.tags {
                        prop_assert!(!tag.is_empty() && tag.chars().count() <= MAX_TAG_CHARS);
                        prop_assert_eq!(&quotes::normalise_tag(tag), tag);
                    }
                    prop_assert!(
                        quote.tags.windows(2).all(|w| w[0] < w[1]),
                        "{:?}",
                        quote.tags
                    );
                    prop_assert_eq!(quotes::get(&conn, quote.id).unwrap(), Some(quote));
                }
                Err(e) => prop_assert!(e.user_message().is_some(), "a failure for {new:?}: {e}"),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_search_is_answered_without_an_sql_or_fts_error_and_finds_quotes_by_their_words() {
    let (_dir, conn) = guild_db();
    // Latin-1's lower-case letters, without U+00F7 DIVISION SIGN, which sits among them.
    let word = "[a-zA-Z0-9\u{e0}-\u{f6}\u{f8}-\u{ff}]{1,12}";
    let input = (hostile_text(), vec(word, 1..6), 0u32..80);
    runner()
        .run(&input, |(query, words, limit)| {
            match quotes::search(&conn, &query, limit) {
                Ok(found) => {
                    prop_assert!(found.len() <= limit.clamp(1, quotes::MAX_PAGE_SIZE) as usize)
                }
                Err(QuoteError::EmptySearch) => {
                    prop_assert!(!query.chars().any(char::is_alphanumeric), "{query:?}")
                }
                Err(e) => prop_assert!(false, "search {query:?} failed: {e}"),
            }
            // A quote is found by any one of its words, wrapped in whatever noise.
            let text = words.join(" ");
            let saved = quotes::add(
                &conn,
                &NewQuote {
                    text,
                    added_by: ALICE,
                    ..NewQuote::default()
                },
                now(),
            )
            .unwrap();
            let wanted = &words[words.len() / 2];
            let hits =
                quotes::search(&conn, &format!("\"({wanted}*"), quotes::MAX_PAGE_SIZE).unwrap();
            // A full page may rank other quotes sharing a short prefix first.
            let found = hits.iter().any(|q| q.id == saved.id)
                || hits.len() == quotes::MAX_PAGE_SIZE as usize;
            prop_assert!(found, "searching {wanted:?} missed {:?}", saved.text);
            Ok(())
        })
        .unwrap();
}

/// Every quote command's bad arguments, and the exact message the member reads.
#[test]
fn every_bad_argument_to_a_quote_command_gets_its_message() {
    let (_dir, conn) = guild_db();
    let mine = quotes::add(
        &conn,
        &NewQuote {
            text: "mine".into(),
            added_by: ALICE,
            ..NewQuote::default()
        },
        now(),
    )
    .unwrap()
    .id;
    let quote = |text: &str| NewQuote {
        text: text.into(),
        added_by: ALICE,
        ..NewQuote::default()
    };
    let tags =
        |n: usize, len: usize| -> Vec<String> { (0..n).map(|i| format!("{i:0>len$}")).collect() };
    type Call<'a> = Box<dyn Fn() -> Result<(), QuoteError> + 'a>;
    let c = &conn;
    let cases: Vec<(&str, Call, &str)> = vec![
        (
            "/quote add text:\"\"",
            Box::new(|| quotes::add(c, &quote(""), now()).map(drop)),
            "A quote can't be empty.",
        ),
        (
            "/quote add text:<spaces>",
            Box::new(|| quotes::add(c, &quote(" \n\t "), now()).map(drop)),
            "A quote can't be empty.",
        ),
        (
            "/quote add text:<2001 chars>",
            Box::new(|| quotes::add(c, &quote(&"a".repeat(2001)), now()).map(drop)),
            "A quote can be at most 2000 characters.",
        ),
        (
            "/quote add author:<spaces>",
            Box::new(|| {
                quotes::add(
                    c,
                    &NewQuote {
                        author_name: Some("  ".into()),
                        ..quote("x")
                    },
                    now(),
                )
                .map(drop)
            }),
            "An author name can't be empty.",
        ),
        (
            "/quote add author:<101 chars>",
            Box::new(|| {
                quotes::add(
                    c,
                    &NewQuote {
                        author_name: Some("b".repeat(101)),
                        ..quote("x")
                    },
                    now(),
                )
                .map(drop)
            }),
            "An author name can be at most 100 characters.",
        ),
        (
            "/quote add tags:<11 tags>",
            Box::new(|| {
                quotes::add(
                    c,
                    &NewQuote {
                        tags: tags(11, 2),
                        ..quote("x")
                    },
                    now(),
                )
                .map(drop)
            }),
            "A quote can have at most 10 tags.",
        ),
        (
            "/quote add tags:<33 chars>",
            Box::new(|| {
                quotes::add(
                    c,
                    &NewQuote {
                        tags: tags(1, 33),
                        ..quote("x")
                    },
                    now(),
                )
                .map(drop)
            }),
            "A tag can be at most 32 characters.",
        ),
        (
            "/quote add text:<NUL>",
            Box::new(|| quotes::add(c, &quote("\0"), now()).map(drop)),
            "A quote can't be empty.",
        ),
        (
            "/quote add author:<NUL>",
            Box::new(|| {
                quotes::add(
                    c,
                    &NewQuote {
                        author_name: Some("\0 ".into()),
                        ..quote("x")
                    },
                    now(),
                )
                .map(drop)
            }),
            "An author name can't be empty.",
        ),
        (
            "/quote search query:\"\"",
            Box::new(|| quotes::search(c, "", 10).map(drop)),
            "Type at least one word to search for.",
        ),
        (
            "/quote search query:\"!!! -- *\"",
            Box::new(|| quotes::search(c, "!!! -- *", 10).map(drop)),
            "Type at least one word to search for.",
        ),
        (
            "/quote edit id:999",
            Box::new(|| {
                quotes::edit(
                    c,
                    999,
                    ALICE,
                    false,
                    &QuoteEdit {
                        text: Some("x".into()),
                        author_name: None,
                    },
                    now(),
                )
                .map(drop)
            }),
            "There is no quote #999 in this server.",
        ),
        (
            "/quote edit (no changes)",
            Box::new(|| {
                quotes::edit(c, mine, ALICE, false, &QuoteEdit::default(), now()).map(drop)
            }),
            "Give a new text or author to change.",
        ),
        (
            "/quote edit text:\"\"",
            Box::new(|| {
                quotes::edit(
                    c,
                    mine,
                    ALICE,
                    false,
                    &QuoteEdit {
                        text: Some(" ".into()),
                        author_name: None,
                    },
                    now(),
                )
                .map(drop)
            }),
            "A quote can't be empty.",
        ),
        (
            "/quote edit by another member",
            Box::new(|| {
                quotes::edit(
                    c,
                    mine,
                    BOB,
                    false,
                    &QuoteEdit {
                        text: Some("x".into()),
                        author_name: None,
                    },
                    now(),
                )
                .map(drop)
            }),
            "Only the member who saved this quote or a moderator can change it (and the member it quotes can delete it).",
        ),
        (
            "/quote delete id:999",
            Box::new(|| quotes::delete(c, 999, ALICE, true)),
            "There is no quote #999 in this server.",
        ),
        (
            "/quote delete by another member",
            Box::new(|| quotes::delete(c, mine, BOB, false)),
            "Only the member who saved this quote or a moderator can change it (and the member it quotes can delete it).",
        ),
        (
            "/quote rate stars:0",
            Box::new(|| quotes::rate(c, mine, BOB, 0, now()).map(drop)),
            "A rating is a whole number from 1 to 5.",
        ),
        (
            "/quote rate stars:6",
            Box::new(|| quotes::rate(c, mine, BOB, 6, now()).map(drop)),
            "A rating is a whole number from 1 to 5.",
        ),
        (
            "/quote rate id:999",
            Box::new(|| quotes::rate(c, 999, BOB, 3, now()).map(drop)),
            "There is no quote #999 in this server.",
        ),
        (
            "/quote tag add <11 tags>",
            Box::new(|| quotes::add_tags(c, mine, ALICE, false, &tags(11, 2), now()).map(drop)),
            "A quote can have at most 10 tags.",
        ),
        (
            "/quote tag add by another member",
            Box::new(|| quotes::add_tags(c, mine, BOB, false, &tags(1, 2), now()).map(drop)),
            "Only the member who saved this quote or a moderator can change it (and the member it quotes can delete it).",
        ),
        (
            "/quote tag remove id:999",
            Box::new(|| quotes::remove_tags(c, 999, ALICE, true, &tags(1, 2)).map(drop)),
            "There is no quote #999 in this server.",
        ),
    ];
    for (command, call, message) in cases {
        let err = call().expect_err(command);
        assert_eq!(err.user_message().as_deref(), Some(message), "{command}");
    }
    assert_eq!(
        quotes::get(&conn, mine).unwrap().unwrap().text,
        "mine",
        "nothing changed"
    );
}

/// Any zone this build knows.
fn any_zone() -> impl Strategy<Value = Tz> {
    select(TZ_VARIANTS.to_vec())
}

/// A `now` anywhere from 2000 to 2100, so DST rules of many eras are crossed.
fn any_now() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// What a member might type for "when", weighted toward the parser's edges: huge counts,
/// impossible clocks and dates, dates at chrono's limits, offsets, zone names real and not.
fn hostile_when() -> impl Strategy<Value = String> {
    let pieces = select(vec![
        "in ",
        "in",
        " ",
        "a ",
        "an ",
        "and ",
        ", ",
        "2h",
        "30m",
        "90 minutes",
        "1 day",
        "w",
        "mins",
        "99999999999999999999m",
        "9223372036854775807 weeks",
        "153722867280912930 minutes",
        "today ",
        "tomorrow ",
        "friday ",
        "fri ",
        "at ",
        "9am",
        "12am",
        "12pm",
        "13pm",
        "0pm",
        "18:00",
        "25:00",
        "23:59:60",
        "9:30pm",
        "1:2:3:4",
        "2026-12-24",
        "2026-02-30",
        "0000-01-01",
        "9999-12-31",
        "262142-12-31",
        "2026-12-24t18:00",
        "T",
        "t",
        "Z",
        "+01:00",
        "-23:59",
        "+99:99",
        "Europe/Berlin",
        "europe/berlin",
        "Nowhere/Land",
        "utc",
        "UTC",
        "/",
        "-",
        ":",
    ]);
    prop_oneof![
        vec(pieces, 0..8).prop_map(|p| p.concat()),
        hostile_text(),
        "[0-9 :tTzZ+-]{0,24}",
    ]
}

#[test]
fn any_when_parses_to_a_time_inside_the_window_or_a_message_for_the_member() {
    runner()
        .run(
            &(hostile_when(), any_zone(), any_now()),
            |(input, zone, now)| {
                match parse_when(&input, zone, now) {
                    Ok(due) => {
                        prop_assert!(due > now, "{input:?} in {zone} gave {due}, not after {now}");
                        let limit = now.checked_add_months(Months::new(60)).unwrap();
                        prop_assert!(due <= limit, "{input:?} in {zone} gave {due}, too far");
                    }
                    Err(e) => {
                        let message = e.user_message();
                        prop_assert!(
                            message.as_deref().is_some_and(|m| !m.trim().is_empty()),
                            "{input:?} in {zone}: {e:?}"
                        );
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn well_formed_relative_times_and_future_dates_parse() {
    // Up to about 1.9 years in minutes, and a date 2 to 1400 days ahead in the member's zone.
    let input = (
        1i64..1_000_000,
        2u64..1400,
        0u32..24,
        0u32..60,
        any_zone(),
        any_now(),
    );
    runner()
        .run(&input, |(minutes, days, hour, minute, zone, now)| {
            prop_assert_eq!(
                parse_when(&format!("in {minutes}m"), zone, now),
                Ok(now + Duration::minutes(minutes))
            );
            let date: NaiveDate = now.with_timezone(&zone).date_naive() + chrono::Days::new(days);
            let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap());
            let typed = local.format("%Y-%m-%d %H:%M").to_string();
            let due = parse_when(&typed, zone, now);
            prop_assert!(due.is_ok(), "{typed:?} in {zone} at {now}: {due:?}");
            // Outside a DST gap the member gets exactly the wall time they typed.
            if let Some(expected) = zone.from_local_datetime(&local).earliest() {
                prop_assert_eq!(due.unwrap(), expected.with_timezone(&Utc));
            }
            Ok(())
        })
        .unwrap();
}

/// The bad arguments a member can give to reminder and opt-in commands, and the exact message
/// the member reads for each.
#[test]
fn every_bad_argument_to_a_reminder_or_opt_in_gets_its_message() {
    let (_dir, conn) = guild_db();
    const CAP: usize = 3;
    let reminder = |message: &str| NewReminder {
        creator: ALICE,
        target: Target::Dm,
        message: message.into(),
        due_at: now() + Duration::hours(1),
        time_zone: Tz::UTC,
        recurrence: None,
        recurrence_end: None,
    };
    let mine = reminders::create(&conn, &reminder("mine"), CAP, now())
        .unwrap()
        .id;
    let done = reminders::create(&conn, &reminder("done"), CAP, now())
        .unwrap()
        .id;
    reminders::cancel(&conn, done, ALICE, false, now()).unwrap();
    let not_yours = format!(
        "Only the member who set reminder #{mine}, or a moderator, can change or cancel it."
    );
    let not_active = format!("Reminder #{done} has already finished or been cancelled.");
    let c = &conn;
    type Call<'a> = Box<dyn Fn() -> Result<(), ReminderError> + 'a>;
    let create = |new: NewReminder| -> Call {
        Box::new(move || reminders::create(c, &new, CAP, now()).map(drop))
    };
    let edit = |id: u64, caller: u64, moderator: bool, change: ReminderEdit| -> Call {
        Box::new(move || reminders::edit(c, id, caller, moderator, &change, now()).map(drop))
    };
    let cases: Vec<(&str, Call, &str)> =
        vec![
        (
            "/remind message:\"\"",
            create(reminder("")),
            "Write what you want to be reminded of.",
        ),
        (
            "/remind message:<spaces>",
            create(reminder(" \n\t ")),
            "Write what you want to be reminded of.",
        ),
        (
            "/remind message:<1001 chars>",
            create(reminder(&"a".repeat(1001))),
            "A reminder can be at most 1000 characters long.",
        ),
        (
            "/remind when:<now>",
            create(NewReminder {
                due_at: now(),
                ..reminder("x")
            }),
            "That time is in the past.",
        ),
        (
            "/remind when:<61 months ahead>",
            create(NewReminder {
                due_at: now().checked_add_months(Months::new(61)).unwrap(),
                ..reminder("x")
            }),
            "That is more than 5 years away. Pick an earlier time.",
        ),
        (
            "/remind when:\"yesterday\"",
            Box::new(|| parse_when("yesterday", Tz::UTC, now()).map(drop).map_err(Into::into)),
            "I can't read \"yesterday\" as a time. Try \"in 2h30m\", \"tomorrow 9:00\", \
             \"friday 18:00\" or \"2026-12-24 18:00\".",
        ),
        (
            "/remind when:\"tomorrow 9:00 Mars/Olympus\"",
            Box::new(|| {
                parse_when("tomorrow 9:00 Mars/Olympus", Tz::UTC, now())
                    .map(drop)
                    .map_err(Into::into)
            }),
            "I don't know the time zone \"Mars/Olympus\". Use a name like Europe/Berlin or \
             America/New_York.",
        ),
        (
            "/remind repeat:\"every 1m\"",
            Box::new(|| "every 1m".parse::<Recurrence>().map(drop).map_err(Into::into)),
            "A reminder can repeat at most every 5 minutes.",
        ),
        (
            "/remind repeat:\"sometimes\"",
            Box::new(|| "sometimes".parse::<Recurrence>().map(drop).map_err(Into::into)),
            "I can't read \"sometimes\" as a repeat. Try \"every 2h\", \"every 3 days\", \
             \"weekly\", \"daily at 09:00\", \"weekdays at 09:00\" or \"monthly on the 31st\".",
        ),
        (
            "/remind repeat:\"daily at 25:00\"",
            Box::new(|| "daily at 25:00".parse::<Recurrence>().map(drop).map_err(Into::into)),
            "\"25:00\" is not a time of day.",
        ),
        (
            "/remind repeat_until:<before the first>",
            create(NewReminder {
                recurrence: Some("every 2h".parse().unwrap()),
                recurrence_end: Some(reminders::RepeatEnd::At(now() + Duration::minutes(30))),
                ..reminder("x")
            }),
            "The repeat has to end after the first reminder.",
        ),
        (
            "/remind for:<26 users and roles>",
            create(NewReminder {
                target: Target::Channel {
                    channel: 7,
                    users: (1..=13).collect(),
                    roles: (100..=112).collect(),
                },
                ..reminder("x")
            }),
            "A reminder can mention at most 25 users and roles.",
        ),
        (
            "/remind (cap reached)",
            Box::new(|| {
                // `mine` is active; fill up to the cap, then one more is refused.
                for _ in 1..CAP {
                    reminders::create(c, &reminder("filler"), CAP, now())?;
                }
                reminders::create(c, &reminder("one too many"), CAP, now()).map(drop)
            }),
            "You already have 3 active reminders. Cancel one before adding another.",
        ),
        (
            "/remind until:\"0 times\"",
            Box::new(|| parse_end("0 times", Tz::UTC, now()).map(drop).map_err(Into::into)),
            "A repeat can go off from 1 to 10000 times.",
        ),
        (
            "/remind until:<without a repeat>",
            create(NewReminder {
                recurrence_end: Some(reminders::RepeatEnd::After(3)),
                ..reminder("x")
            }),
            "`until` ends a repeat: add a repeat, or leave `until` out.",
        ),
        (
            "/remind edit what:<spaces>",
            edit(mine, BOB, true, ReminderEdit {
                message: Some("   ".into()),
                ..ReminderEdit::default()
            }),
            "Write what you want to be reminded of.",
        ),
        (
            "/remind edit when:<now>",
            edit(mine, ALICE, false, ReminderEdit {
                due_at: Some(now()),
                ..ReminderEdit::default()
            }),
            "That time is in the past.",
        ),
        (
            "/remind edit by another member",
            edit(mine, BOB, false, ReminderEdit {
                message: Some("bob's now".into()),
                ..ReminderEdit::default()
            }),
            &not_yours,
        ),
        (
            "/remind edit (already cancelled)",
            edit(done, ALICE, false, ReminderEdit {
                message: Some("back".into()),
                ..ReminderEdit::default()
            }),
            &not_active,
        ),
        (
            "/reminder cancel id:999",
            Box::new(|| reminders::cancel(c, 999, ALICE, true, now()).map(drop)),
            "There is no reminder #999 here.",
        ),
        (
            "/reminder cancel by another member",
            Box::new(|| reminders::cancel(c, mine, BOB, false, now()).map(drop)),
            &not_yours,
        ),
        (
            "/reminder cancel (already cancelled)",
            Box::new(|| reminders::cancel(c, done, ALICE, false, now()).map(drop)),
            &not_active,
        ),
        (
            "/timezone set zone:\"Mars/Olympus\"",
            Box::new(|| {
                optins::set_time_zone(c, ALICE, Some("Mars/Olympus"), now())
                    .map(drop)
                    .map_err(Into::into)
            }),
            "I don't know the time zone \"Mars/Olympus\". Use a name like Europe/Berlin or \
             America/New_York.",
        ),
        (
            "/timezone set zone:\"\"",
            Box::new(|| {
                optins::set_time_zone(c, ALICE, Some("  "), now())
                    .map(drop)
                    .map_err(Into::into)
            }),
            "I don't know the time zone \"\". Use a name like Europe/Berlin or America/New_York.",
        ),
    ];
    assert_eq!(
        MAX_ASSIGNEES, 25,
        "the table's 26 mentions are one too many"
    );
    for (command, call, message) in cases {
        let err = call().expect_err(command);
        assert_eq!(err.user_message().as_deref(), Some(message), "{command}");
    }
    let mine = reminders::get(&conn, mine).unwrap().unwrap();
    assert_eq!(
        (mine.message.as_str(), mine.status),
        ("mine", reminders::Status::Active),
        "nothing changed"
    );
    assert_eq!(optins::time_zone(&conn, ALICE).unwrap(), Tz::UTC);
}

/// Guild and user ids as the legacy bot stored them, as TEXT: valid, zero, signed, padded,
/// too big for i64 or u64, not numbers, empty, NULL.
fn legacy_id() -> impl Strategy<Value = Option<String>> {
    let odd = select(vec![
        "",
        "0",
        "00",
        "abc",
        "-5",
        "+7",
        " 123",
        "123 ",
        "0123",
        "1e5",
        "1.0",
        "111111111111111111",
        "222222222222222222",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
    ]);
    proptest::option::weighted(0.9, prop_oneof![odd.prop_map(String::from), "[0-9]{1,20}"])
}

/// `when_datetime` / `addedAt` values: every documented form, near misses and noise.
fn legacy_time() -> impl Strategy<Value = String> {
    let forms = select(vec![
        "2030-01-01T10:00:00Z",
        "2030-01-01T12:00:00+02:00",
        "2030-01-01 10:00:00",
        "2030-01-01T10:00:00.123Z",
        "1893492000000",
        "1893492000",
        "-1",
        "0",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "2030-02-30 10:00:00",
        "2030-01-01 25:00:00",
        "262143-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "",
        "tomorrow",
    ]);
    prop_oneof![
        forms.prop_map(String::from),
        "[0-9 :TZ.+-]{0,30}",
        any::<String>()
    ]
}

/// guildId, text, author, addedBy, addedAt, category.
type LegacyQuote = (
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);
/// guildId, subject, when_datetime, status, notification_method, channelId, createdBy.
type LegacyReminder = (
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);
/// user_id, guild_id, opted_in, preferences.
type LegacyOptIn = (Option<String>, Option<String>, i64, Option<String>);

/// Legacy rows of each kind, all columns drawn from the strategies above.
#[derive(Debug, Clone)]
struct LegacyRows {
    quotes: Vec<LegacyQuote>,
    reminders: Vec<LegacyReminder>,
    opt_ins: Vec<LegacyOptIn>,
}

fn legacy_rows() -> impl Strategy<Value = LegacyRows> {
    let status = select(vec![
        "active",
        "sent",
        "cancelled",
        "completed",
        "",
        "ACTIVE",
    ]);
    let method = select(vec!["dm", "channel", "both", "", "pigeon"]);
    let quote = (
        legacy_id(),
        hostile_text(),
        proptest::option::of(hostile_text()),
        legacy_id(),
        legacy_time(),
        hostile_text(),
    );
    let reminder = (
        legacy_id(),
        hostile_text(),
        legacy_time(),
        status.prop_map(String::from),
        method.prop_map(String::from),
        legacy_id(),
        legacy_id(),
    );
    let preferences = proptest::option::of(prop_oneof![
        Just("{\"a\":1}".to_owned()),
        Just("not json".to_owned()),
        hostile_text()
    ]);
    let opt_in = (legacy_id(), legacy_id(), -1i64..3, preferences);
    (vec(quote, 0..12), vec(reminder, 0..12), vec(opt_in, 0..6)).prop_map(
        |(quotes, reminders, opt_ins)| LegacyRows {
            quotes,
            reminders,
            opt_ins,
        },
    )
}

fn write_legacy(path: &std::path::Path, rows: &LegacyRows) {
    let db = ops_support::legacy_db(path);
    for (guild, text, author, added_by, added_at, category) in &rows.quotes {
        db.execute(
            "INSERT INTO quotes (guildId, text, author, addedBy, addedAt, category)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![guild, text, author, added_by, added_at, category],
        )
        .unwrap();
    }
    for (guild, subject, when, status, method, channel, created_by) in &rows.reminders {
        db.execute(
            "INSERT INTO reminders (guildId, subject, when_datetime, status,
                                    notification_method, channelId, createdBy)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![guild, subject, when, status, method, channel, created_by],
        )
        .unwrap();
    }
    for (user, guild, opted_in, preferences) in &rows.opt_ins {
        // user_id is NOT NULL and (user_id, guild_id) UNIQUE in the legacy schema.
        db.execute(
            "INSERT OR IGNORE INTO user_communications (user_id, guild_id, opted_in, preferences)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![user.as_deref().unwrap_or(""), guild, opted_in, preferences],
        )
        .unwrap();
    }
}

#[test]
fn any_legacy_database_imports_into_sound_guild_files_under_canonical_names() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Each case builds two databases and a store, so fewer cases than the pure properties.
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .map_or(16, |n| n.div_ceil(8)),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&legacy_rows(), |rows| {
            let dir = TempDir::new().unwrap();
            let source = dir.path().join("legacy.db");
            write_legacy(&source, &rows);
            let data = dir.path().join("data");
            let store = {
                let _inside = runtime.enter();
                ops_support::store(&data)
            };
            let options = ImportOptions {
                source,
                ..ImportOptions::default()
            };
            let result =
                runtime.block_on(migrate_legacy(&Owner::standalone(store.clone()), options));
            runtime.block_on(store.shutdown());
            match result {
                Ok(report) => {
                    prop_assert!(report.failures.is_empty(), "{:?}", report.failures)
                }
                Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
            }
            let guilds = data.join("guilds");
            let Ok(entries) = std::fs::read_dir(&guilds) else {
                return Ok(());
            };
            for entry in entries {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let canonical = name
                    .parse::<u64>()
                    .is_ok_and(|id| id != 0 && id.to_string() == name);
                prop_assert!(canonical, "guild directory {name:?}");
                let conn = Connection::open(guilds.join(&name).join("quotes.db")).unwrap();
                let check: String = conn
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                prop_assert_eq!(check, "ok", "guild {}", name);
            }
            Ok(())
        })
        .unwrap();
}
