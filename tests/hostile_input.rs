//! Hostile input at the domain level, against a real guild database file: a table of bad
//! arguments for every quote command with the message (`user_message()`) the member gets.
//!
//! Not here: what the bot does with the messages (tests/e2e), store failures (`damaged.rs`,
//! `exhaustion.rs`).

use chrono::{DateTime, TimeZone, Utc};
use guildkeep::{
    quotes::{self, NewQuote, QuoteEdit, QuoteError},
    store::Migrations,
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
            "Only the member who saved this quote or a moderator can change it.",
        ),
        (
            "/quote delete id:999",
            Box::new(|| quotes::delete(c, 999, ALICE, true)),
            "There is no quote #999 in this server.",
        ),
        (
            "/quote delete by another member",
            Box::new(|| quotes::delete(c, mine, BOB, false)),
            "Only the member who saved this quote or a moderator can change it.",
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
            "Only the member who saved this quote or a moderator can change it.",
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
