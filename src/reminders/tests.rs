//! Tests of reminder storage (create, cap, list, cancel, autocomplete) and of the delivery
//! bookkeeping, on a real guild database file. Scheduler tests live in `scheduler/tests.rs`.

use chrono::{Duration, TimeZone};
use chrono_tz::{Europe::Berlin, Tz};

use super::*;
use crate::{optins::set_dm_opt_in, test_support::guild_db};

const ALICE: u64 = 1_000_000_000_000_001;
const BOB: u64 = 1_000_000_000_000_002;
const CHANNEL: u64 = 2_000_000_000_000_001;
const ROLE: u64 = 3_000_000_000_000_001;
const GUILD: u64 = 4_000_000_000_000_001;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
}

fn dm(creator: u64, message: &str, due_in: Duration) -> NewReminder {
    NewReminder {
        creator,
        target: Target::Dm,
        message: message.into(),
        due_at: now() + due_in,
        time_zone: Berlin,
        recurrence: None,
        recurrence_end: None,
    }
}

fn create_ok(conn: &Connection, new: &NewReminder) -> Reminder {
    create(conn, new, 25, now()).unwrap()
}

fn delivery_row(conn: &Connection, id: u64) -> Vec<(i64, String, u32, bool)> {
    let mut stmt = conn
        .prepare(
            "SELECT due_at, status, attempts, late FROM reminder_deliveries
             WHERE reminder_id = ?1 ORDER BY due_at",
        )
        .unwrap();
    stmt.query_map([sql_id(id).unwrap()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn create_stores_a_dm_and_a_channel_post_with_deduplicated_assignees() {
    let (_dir, conn) = guild_db();
    let mine = create_ok(&conn, &dm(ALICE, "  stretch  ", Duration::hours(1)));
    assert_eq!(mine.message, "stretch");
    assert_eq!(mine.target, Target::Dm);
    assert_eq!(mine.created_by, Some(ALICE));
    assert_eq!(mine.status, Status::Active);
    assert_eq!(mine.due_at, now() + Duration::hours(1));
    assert_eq!(get(&conn, mine.id).unwrap(), Some(mine.clone()));

    let mut post = dm(ALICE, "standup", Duration::hours(2));
    post.target = Target::Channel {
        channel: CHANNEL,
        users: vec![BOB, ALICE, BOB],
        roles: vec![ROLE],
    };
    post.recurrence = Some("daily at 9:00".parse().unwrap());
    post.recurrence_end = Some(RepeatEnd::At(now() + Duration::days(30)));
    let stored = create_ok(&conn, &post);
    assert_eq!(
        stored.target,
        Target::Channel {
            channel: CHANNEL,
            users: vec![ALICE, BOB],
            roles: vec![ROLE],
        }
    );
    assert_eq!(
        stored.recurrence.map(|r| r.to_string()).as_deref(),
        Some("daily 09:00")
    );
    assert_eq!(
        stored.recurrence_end.map(RepeatEnd::At),
        post.recurrence_end
    );
    assert_eq!(get(&conn, 999).unwrap(), None);
}

#[test]
fn a_repeat_by_days_or_months_is_stored_at_the_day_and_time_of_its_first_occurrence() {
    let (_dir, conn) = guild_db();
    // now() + 2h is 15:00 in Berlin (CET) on 2027-01-10.
    for (typed, stored) in [
        ("every 2 days", "every 2d at 15:00"),
        ("monthly", "monthly on day 10 at 15:00"),
        ("monthly on the 31st", "monthly on day 31 at 15:00"),
    ] {
        let mut new = dm(ALICE, "stretch", Duration::hours(2));
        new.recurrence = Some(typed.parse().unwrap());
        let created = create_ok(&conn, &new);
        assert_eq!(
            created.recurrence.map(|r| r.to_string()).as_deref(),
            Some(stored),
            "{typed}"
        );
    }
}

#[test]
fn upcoming_times_follow_the_rule_and_stop_at_its_end() {
    let (_dir, conn) = guild_db();
    let mut new = dm(ALICE, "stretch", Duration::hours(2));
    new.recurrence = Some("every 2h".parse().unwrap());
    let open_ended = create_ok(&conn, &new);
    let first = now() + Duration::hours(2);
    assert_eq!(
        open_ended.upcoming(3),
        [
            first,
            first + Duration::hours(2),
            first + Duration::hours(4)
        ]
    );
    new.recurrence_end = Some(RepeatEnd::At(first + Duration::hours(3)));
    let ending = create_ok(&conn, &new);
    assert_eq!(ending.upcoming(3), [first, first + Duration::hours(2)]);
    let once = create_ok(&conn, &dm(ALICE, "once", Duration::hours(2)));
    assert_eq!(once.upcoming(3), [first]);
}

#[test]
fn create_refuses_what_a_member_can_fix_with_a_message() {
    let (_dir, conn) = guild_db();
    let mut too_many = dm(ALICE, "x", Duration::hours(1));
    too_many.target = Target::Channel {
        channel: CHANNEL,
        users: (1..=20).collect(),
        roles: (100..=105).collect(),
    };
    let mut ends_early = dm(ALICE, "x", Duration::hours(2));
    ends_early.recurrence = Some("every 1h".parse().unwrap());
    ends_early.recurrence_end = Some(RepeatEnd::At(now() + Duration::hours(1)));
    let cases = [
        (
            dm(ALICE, "  ", Duration::hours(1)),
            "Write what you want to be reminded of.",
        ),
        (
            dm(
                ALICE,
                &"x".repeat(MAX_MESSAGE_CHARS + 1),
                Duration::hours(1),
            ),
            "A reminder can be at most 1000 characters long.",
        ),
        (
            too_many,
            "A reminder can mention at most 25 users and roles.",
        ),
        (
            dm(ALICE, "x", Duration::zero()),
            "That time is in the past.",
        ),
        (
            dm(ALICE, "x", Duration::days(5 * 366)),
            "That is more than 5 years away. Pick an earlier time.",
        ),
        (
            ends_early,
            "The repeat has to end after the first reminder.",
        ),
    ];
    for (new, message) in cases {
        let err = create(&conn, &new, 25, now()).unwrap_err();
        assert_eq!(err.user_message().as_deref(), Some(message));
    }
    // 1000 characters, multi-byte ones included, is still fine.
    create_ok(
        &conn,
        &dm(ALICE, &"é".repeat(MAX_MESSAGE_CHARS), Duration::hours(1)),
    );
    assert_eq!(list(&conn, ALICE, false).unwrap().len(), 1);
}

#[test]
fn the_cap_counts_only_the_members_active_reminders() {
    let (_dir, conn) = guild_db();
    let first = create(&conn, &dm(ALICE, "one", Duration::hours(1)), 2, now()).unwrap();
    create(&conn, &dm(ALICE, "two", Duration::hours(1)), 2, now()).unwrap();
    let err = create(&conn, &dm(ALICE, "three", Duration::hours(1)), 2, now()).unwrap_err();
    assert!(matches!(err, ReminderError::CapReached { cap: 2 }));
    assert_eq!(
        err.user_message().as_deref(),
        Some("You already have 2 active reminders. Cancel one before adding another.")
    );
    create(&conn, &dm(BOB, "bob's", Duration::hours(1)), 2, now()).unwrap();
    cancel(&conn, first.id, ALICE, false, now()).unwrap();
    create(&conn, &dm(ALICE, "three", Duration::hours(1)), 2, now()).unwrap();
}

#[test]
fn members_list_their_own_and_moderators_list_all_by_due_time() {
    let (_dir, conn) = guild_db();
    let late = create_ok(&conn, &dm(ALICE, "later", Duration::hours(3)));
    let bobs = create_ok(&conn, &dm(BOB, "bob", Duration::hours(2)));
    let soon = create_ok(&conn, &dm(ALICE, "soon", Duration::hours(1)));
    let cancelled = create_ok(&conn, &dm(ALICE, "gone", Duration::hours(1)));
    cancel(&conn, cancelled.id, ALICE, false, now()).unwrap();
    let ids = |v: Vec<Reminder>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(list(&conn, ALICE, false).unwrap()), [soon.id, late.id]);
    assert_eq!(
        ids(list(&conn, ALICE, true).unwrap()),
        [soon.id, bobs.id, late.id]
    );
}

#[test]
fn only_the_creator_or_a_moderator_can_cancel() {
    let (_dir, conn) = guild_db();
    let mine = create_ok(&conn, &dm(ALICE, "mine", Duration::hours(1)));
    let err = cancel(&conn, mine.id, BOB, false, now()).unwrap_err();
    assert_eq!(
        err.user_message(),
        Some(format!(
            "Only the member who set reminder #{}, or a moderator, can change or cancel it.",
            mine.id
        ))
    );
    assert_eq!(get(&conn, mine.id).unwrap().unwrap().status, Status::Active);
    let cancelled = cancel(&conn, mine.id, BOB, true, now() + Duration::minutes(1)).unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(cancelled.updated_at, now() + Duration::minutes(1));
    let again = cancel(&conn, mine.id, ALICE, false, now()).unwrap_err();
    assert!(matches!(again, ReminderError::NotActive(id) if id == mine.id));
    let missing = cancel(&conn, 4242, ALICE, true, now()).unwrap_err();
    assert_eq!(
        missing.user_message().as_deref(),
        Some("There is no reminder #4242 here.")
    );
    let own = create_ok(&conn, &dm(ALICE, "own", Duration::hours(1)));
    assert_eq!(
        cancel(&conn, own.id, ALICE, false, now()).unwrap().status,
        Status::Cancelled
    );
}

#[test]
fn choices_match_number_or_text_and_fit_discords_limit() {
    let (_dir, conn) = guild_db();
    let tea = create_ok(&conn, &dm(ALICE, "Put the kettle on", Duration::hours(1)));
    let long = create_ok(&conn, &dm(ALICE, &"word ".repeat(60), Duration::hours(2)));
    create_ok(&conn, &dm(BOB, "kettle for bob", Duration::hours(1)));
    let kettle = choices(&conn, ALICE, "KETTLE", 25).unwrap();
    assert_eq!(
        kettle,
        [Choice {
            id: tea.id,
            label: format!("#{} · 2027-01-10 14:00 · Put the kettle on", tea.id),
        }]
    );
    let by_number = choices(&conn, ALICE, &format!("#{}", long.id), 25).unwrap();
    assert_eq!(by_number.len(), 1);
    assert_eq!(by_number[0].label.chars().count(), 100);
    assert!(by_number[0].label.ends_with('…'));
    assert_eq!(choices(&conn, ALICE, "", 1).unwrap().len(), 1);
}

#[test]
fn failures_are_not_shown_to_members() {
    assert_eq!(
        ReminderError::from(rusqlite::Error::InvalidQuery).user_message(),
        None
    );
    let corrupt = ReminderError::Corrupt {
        id: 1,
        column: "status",
        value: "lost".into(),
    };
    assert_eq!(corrupt.user_message(), None);
}

#[test]
fn an_unreadable_row_is_reported_not_guessed() {
    let (_dir, conn) = guild_db();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    conn.execute("UPDATE reminders SET recurrence = 'fortnightly-ish'", [])
        .unwrap();
    assert!(matches!(
        get(&conn, r.id),
        Err(ReminderError::Corrupt {
            column: "recurrence",
            ..
        })
    ));
}

/// What the scheduler would index, every row readable.
fn due_times(conn: &Connection) -> Vec<NextLook> {
    active_due_times(conn)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn active_due_times_lists_every_active_reminder() {
    let (_dir, conn) = guild_db();
    let a = create_ok(&conn, &dm(ALICE, "a", Duration::hours(1)));
    let b = create_ok(&conn, &dm(BOB, "b", Duration::hours(2)));
    cancel(&conn, a.id, ALICE, false, now()).unwrap();
    assert_eq!(due_times(&conn), [(b.id, b.due_at)]);
}

#[test]
fn active_due_times_reports_an_unreadable_row_in_its_place_and_lists_the_rest() {
    let (_dir, conn) = guild_db();
    let a = create_ok(&conn, &dm(ALICE, "a", Duration::hours(1)));
    let b = create_ok(&conn, &dm(BOB, "b", Duration::hours(2)));
    conn.execute(
        "UPDATE reminders SET due_at = 'soon' WHERE id = ?1",
        [sql_id(a.id).unwrap()],
    )
    .unwrap();
    let rows = active_due_times(&conn).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|row| matches!(
        row,
        Err(ReminderError::Corrupt { id, column: "due_at", .. }) if *id == a.id
    )));
    assert!(rows
        .iter()
        .any(|row| matches!(row, Ok(look) if *look == (b.id, b.due_at))));
}

// --- delivery bookkeeping ---

fn policy() -> DeliveryPolicy {
    DeliveryPolicy::default()
}

fn claim_at(conn: &Connection, id: u64, at: DateTime<Utc>) -> Claim {
    delivery::claim(conn, GUILD, id, at, at, &policy()).unwrap()
}

fn sent(claim: Claim) -> Delivery {
    match claim {
        Claim::Send(delivery) => delivery,
        Claim::Settled { next } => panic!("expected a send, got settled until {next:?}"),
    }
}

#[test]
fn nothing_is_claimed_before_its_due_time() {
    let (_dir, conn) = guild_db();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    assert_eq!(
        claim_at(&conn, r.id, r.due_at - Duration::seconds(1)),
        Claim::Settled {
            next: Some(r.due_at)
        }
    );
    assert!(delivery_row(&conn, r.id).is_empty());
}

#[test]
fn a_delivered_one_off_is_sent_and_never_delivered_again() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "stretch", Duration::hours(1)));
    let delivery = sent(claim_at(&conn, r.id, r.due_at));
    assert_eq!(
        delivery,
        Delivery {
            guild: GUILD,
            reminder: r.id,
            target: DeliveryTarget::Dm { user: ALICE },
            message: "stretch".into(),
            due_at: r.due_at,
            late: false,
            attempt: 1,
        }
    );
    let next = delivery::finish(&conn, r.id, r.due_at, Ok(()), r.due_at, &policy()).unwrap();
    assert_eq!(next, None);
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Sent);
    assert_eq!(
        delivery_row(&conn, r.id),
        [(r.due_at.timestamp(), "delivered".into(), 1, false)]
    );
    // Finishing again, claiming again, or an edit putting it back: never a second send.
    assert_eq!(
        delivery::finish(&conn, r.id, r.due_at, Ok(()), r.due_at, &policy()).unwrap(),
        None
    );
    assert_eq!(
        claim_at(&conn, r.id, r.due_at),
        Claim::Settled { next: None }
    );
    conn.execute("UPDATE reminders SET status = 'active'", [])
        .unwrap();
    assert_eq!(
        claim_at(&conn, r.id, r.due_at),
        Claim::Settled { next: None }
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Sent);
}

#[test]
fn a_claim_left_by_a_crash_or_a_shutdown_is_claimed_again_as_the_same_attempt() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    assert_eq!(sent(claim_at(&conn, r.id, r.due_at)).attempt, 1);
    let again = sent(claim_at(&conn, r.id, r.due_at + Duration::minutes(5)));
    assert_eq!((again.attempt, again.late), (1, true));
    assert_eq!(
        delivery_row(&conn, r.id),
        [(r.due_at.timestamp(), "claimed".into(), 0, true)],
        "no outcome recorded, no attempt counted"
    );
}

#[test]
fn a_claim_ahead_is_for_its_send_time_and_a_released_one_is_not_counted() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    let ahead = |send_at| {
        delivery::claim(
            &conn,
            GUILD,
            r.id,
            r.due_at - Duration::seconds(20),
            send_at,
            &policy(),
        )
        .unwrap()
    };
    assert_eq!(
        ahead(r.due_at - Duration::seconds(1)),
        Claim::Settled {
            next: Some(r.due_at)
        },
        "not due by the send time"
    );
    let first = sent(ahead(r.due_at));
    assert_eq!((first.attempt, first.late), (1, false));
    assert_eq!(
        delivery_row(&conn, r.id),
        [(r.due_at.timestamp(), "claimed".into(), 0, false)]
    );

    delivery::release(&conn, r.id, r.due_at).unwrap();
    assert!(
        delivery_row(&conn, r.id).is_empty(),
        "a first claim leaves no row"
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().attempts, 0);

    assert_eq!(sent(claim_at(&conn, r.id, r.due_at)).attempt, 1);
    let outcome = Err(DeliveryError::Transient("503".into()));
    let retry = delivery::finish(&conn, r.id, r.due_at, outcome, r.due_at, &policy())
        .unwrap()
        .unwrap();
    assert_eq!(sent(claim_at(&conn, r.id, retry)).attempt, 2);
    delivery::release(&conn, r.id, r.due_at).unwrap();
    assert_eq!(
        delivery_row(&conn, r.id),
        [(r.due_at.timestamp(), "claimed".into(), 1, false)],
        "the failed attempt still counts, the released one does not"
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().attempts, 1);
}

#[test]
fn a_dm_to_a_member_who_has_not_opted_in_fails_without_a_send() {
    let (_dir, conn) = guild_db();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    // Opting in after creating is enough: the check is made at delivery time.
    let other = create_ok(&conn, &dm(BOB, "y", Duration::hours(1)));
    set_dm_opt_in(&conn, BOB, true, now()).unwrap();
    assert_eq!(
        claim_at(&conn, r.id, r.due_at),
        Claim::Settled { next: None }
    );
    let failed = get(&conn, r.id).unwrap().unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.last_error.as_deref(), Some(delivery::NOT_OPTED_IN));
    assert_eq!(delivery_row(&conn, r.id)[0].1, "failed");
    sent(claim_at(&conn, other.id, other.due_at));
}

#[test]
fn channel_posts_need_no_opt_in_and_carry_their_mentions() {
    let (_dir, conn) = guild_db();
    let mut new = dm(ALICE, "standup", Duration::hours(1));
    new.target = Target::Channel {
        channel: CHANNEL,
        users: vec![BOB],
        roles: vec![ROLE],
    };
    let r = create_ok(&conn, &new);
    let delivery = sent(claim_at(&conn, r.id, r.due_at + Duration::minutes(2)));
    assert_eq!(
        delivery.target,
        DeliveryTarget::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![ROLE],
        }
    );
    assert!(delivery.late);
}

#[test]
fn transient_failures_back_off_then_give_up() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    let mut at = r.due_at;
    let mut waits = Vec::new();
    for attempt in 1..=4 {
        assert_eq!(sent(claim_at(&conn, r.id, at)).attempt, attempt);
        let outcome = Err(DeliveryError::Transient("rate limited".into()));
        let retry = delivery::finish(&conn, r.id, r.due_at, outcome, at, &policy())
            .unwrap()
            .unwrap();
        waits.push((retry - at).num_seconds());
        at = retry;
    }
    assert_eq!(waits, [30, 60, 120, 240]);
    let pending = get(&conn, r.id).unwrap().unwrap();
    assert_eq!((pending.status, pending.attempts), (Status::Active, 4));
    assert_eq!(pending.last_error.as_deref(), Some("rate limited"));
    sent(claim_at(&conn, r.id, at));
    let outcome = Err(DeliveryError::Transient("rate limited".into()));
    assert_eq!(
        delivery::finish(&conn, r.id, r.due_at, outcome, at, &policy()).unwrap(),
        None
    );
    let failed = get(&conn, r.id).unwrap().unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("rate limited (tried 5 times)")
    );
    assert_eq!(delivery_row(&conn, r.id)[0].1, "failed");
}

#[test]
fn a_retry_after_a_transient_failure_waits_for_its_stored_time_and_can_succeed() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    sent(claim_at(&conn, r.id, r.due_at));
    let outcome = Err(DeliveryError::Transient("timeout".into()));
    let retry = delivery::finish(&conn, r.id, r.due_at, outcome, r.due_at, &policy())
        .unwrap()
        .unwrap();
    assert_eq!(retry, r.due_at + Duration::seconds(30));
    assert_eq!(due_times(&conn), [(r.id, retry)], "as read at start-up");
    assert_eq!(
        claim_at(&conn, r.id, retry - Duration::seconds(1)),
        Claim::Settled { next: Some(retry) }
    );
    assert_eq!(sent(claim_at(&conn, r.id, retry)).attempt, 2);
    assert_eq!(
        delivery::finish(&conn, r.id, r.due_at, Ok(()), retry, &policy()).unwrap(),
        None
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Sent);
}

#[test]
fn a_permanent_failure_fails_at_once_with_its_reason() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let mut new = dm(ALICE, "x", Duration::hours(1));
    new.recurrence = Some("every 1d".parse().unwrap());
    let r = create_ok(&conn, &new);
    sent(claim_at(&conn, r.id, r.due_at));
    let outcome = Err(DeliveryError::Permanent("DMs closed".into()));
    assert_eq!(
        delivery::finish(&conn, r.id, r.due_at, outcome, r.due_at, &policy()).unwrap(),
        None
    );
    let failed = get(&conn, r.id).unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (Status::Failed, Some("DMs closed"))
    );
    assert_eq!(
        claim_at(&conn, r.id, r.due_at + Duration::days(1)),
        Claim::Settled { next: None }
    );
}

#[test]
fn a_recurring_reminder_moves_on_until_its_end() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let mut new = dm(ALICE, "water", Duration::hours(1));
    new.recurrence = Some("every 2h".parse().unwrap());
    new.recurrence_end = Some(RepeatEnd::At(new.due_at + Duration::hours(4)));
    let r = create_ok(&conn, &new);
    let mut due = r.due_at;
    let mut dues = Vec::new();
    loop {
        dues.push(due);
        sent(claim_at(&conn, r.id, due));
        match delivery::finish(&conn, r.id, due, Ok(()), due, &policy()).unwrap() {
            Some(next) => due = next,
            None => break,
        }
    }
    assert_eq!(
        dues,
        [
            r.due_at,
            r.due_at + Duration::hours(2),
            r.due_at + Duration::hours(4)
        ]
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Sent);
    assert_eq!(delivery_row(&conn, r.id).len(), 3);
}

// --- ends by count ---

/// `rule` in `zone` first due at the wall time `first` there, ending after `times`: its due
/// times in local wall time, as `create` schedules them and as delivering them one by one
/// (claim, then finish) moves through them.
fn counted(rule: &str, zone: Tz, first: (i32, u32, u32, u32), times: u32) -> Vec<String> {
    let (_dir, conn) = guild_db();
    let (y, m, d, h) = first;
    let first = zone
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let new = NewReminder {
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![],
        },
        due_at: first,
        time_zone: zone,
        recurrence: Some(rule.parse().unwrap()),
        recurrence_end: Some(RepeatEnd::After(times)),
        ..dm(ALICE, "x", Duration::hours(1))
    };
    let r = create(&conn, &new, 25, first - Duration::hours(1)).unwrap();
    assert_eq!(r.recurrence_count, Some(times));
    let scheduled = r.upcoming(usize::MAX);
    let mut delivered = vec![];
    let mut due = Some(r.due_at);
    while let Some(at) = due {
        delivered.push(at);
        sent(claim_at(&conn, r.id, at));
        due = delivery::finish(&conn, r.id, at, Ok(()), at, &policy()).unwrap();
    }
    assert_eq!(scheduled, delivered, "{rule}: as scheduled, so delivered");
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Sent);
    delivered
        .iter()
        .map(|t| {
            t.with_timezone(&zone)
                .format("%a %Y-%m-%d %H:%M")
                .to_string()
        })
        .collect()
}

#[test]
fn a_repeat_ends_after_its_count_whatever_the_rule_and_across_dst() {
    use chrono_tz::America::New_York;
    // (rule, zone, first local date and hour, times, every local time it goes off)
    type Row<'a> = (&'a str, Tz, (i32, u32, u32, u32), u32, &'a [&'a str]);
    let table: [Row; 5] = [
        (
            "monthly on the 31st",
            Berlin,
            (2027, 1, 31, 9),
            4,
            &[
                "Sun 2027-01-31 09:00",
                "Sun 2027-02-28 09:00",
                "Wed 2027-03-31 09:00",
                "Fri 2027-04-30 09:00",
            ],
        ),
        (
            "every 2nd tuesday",
            New_York,
            (2027, 2, 9, 18),
            3,
            &[
                "Tue 2027-02-09 18:00",
                "Tue 2027-03-09 18:00",
                "Tue 2027-04-13 18:00",
            ],
        ),
        (
            "weekdays at 9:00",
            Berlin,
            (2027, 3, 26, 9),
            3,
            &[
                "Fri 2027-03-26 09:00",
                "Mon 2027-03-29 09:00",
                "Tue 2027-03-30 09:00",
            ],
        ),
        (
            "daily at 9:00",
            New_York,
            (2027, 11, 6, 9),
            2,
            &["Sat 2027-11-06 09:00", "Sun 2027-11-07 09:00"],
        ),
        (
            "every 2h",
            Berlin,
            (2027, 1, 10, 15),
            1,
            &["Sun 2027-01-10 15:00"],
        ),
    ];
    for (rule, zone, first, times, expected) in table {
        assert_eq!(counted(rule, zone, first, times), expected, "{rule}");
    }
}

// --- edit ---

fn edit_as(
    conn: &Connection,
    id: u64,
    caller: u64,
    moderator: bool,
    change: ReminderEdit,
) -> Result<Reminder, ReminderError> {
    edit(conn, id, caller, moderator, &change, now())
}

#[test]
fn an_edit_changes_only_what_is_given() {
    let (_dir, conn) = guild_db();
    let mut new = dm(ALICE, "stretch", Duration::hours(2));
    new.recurrence = Some("every 2h".parse().unwrap());
    let r = create_ok(&conn, &new);
    let text = ReminderEdit {
        message: Some("  drink water ".into()),
        ..ReminderEdit::default()
    };
    let edited = edit_as(&conn, r.id, ALICE, false, text).unwrap();
    assert_eq!(edited.message, "drink water");
    assert_eq!(
        (edited.due_at, edited.recurrence, &edited.target),
        (r.due_at, r.recurrence, &r.target)
    );
    let later = now() + Duration::hours(5);
    let moved = ReminderEdit {
        due_at: Some(later),
        recurrence: Some(None),
        ..ReminderEdit::default()
    };
    let edited = edit_as(&conn, r.id, ALICE, false, moved).unwrap();
    assert_eq!(
        (edited.due_at, edited.recurrence, edited.message.as_str()),
        (later, None, "drink water")
    );
    assert_eq!(get(&conn, r.id).unwrap(), Some(edited));
}

#[test]
fn only_the_creator_or_a_moderator_can_edit_an_active_reminder() {
    let (_dir, conn) = guild_db();
    let r = create_ok(&conn, &dm(ALICE, "mine", Duration::hours(1)));
    let text = |t: &str| ReminderEdit {
        message: Some(t.into()),
        ..ReminderEdit::default()
    };
    let refused = edit_as(&conn, r.id, BOB, false, text("bob's")).unwrap_err();
    assert!(matches!(refused, ReminderError::NotYours(id) if id == r.id));
    assert_eq!(get(&conn, r.id).unwrap().unwrap().message, "mine");
    let modded = edit_as(&conn, r.id, BOB, true, text("moderated")).unwrap();
    assert_eq!(modded.message, "moderated");
    assert!(matches!(
        edit_as(&conn, 4242, ALICE, true, text("x")),
        Err(ReminderError::NotFound(4242))
    ));
    cancel(&conn, r.id, ALICE, false, now()).unwrap();
    assert!(matches!(
        edit_as(&conn, r.id, ALICE, false, text("too late")),
        Err(ReminderError::NotActive(_))
    ));
}

#[test]
fn an_edit_is_checked_as_a_creation_is() {
    let (_dir, conn) = guild_db();
    let mine = create_ok(&conn, &dm(ALICE, "mine", Duration::hours(2)));
    let mut post = dm(ALICE, "standup", Duration::hours(2));
    post.target = Target::Channel {
        channel: CHANNEL,
        users: vec![BOB],
        roles: vec![],
    };
    let post = create_ok(&conn, &post);
    let pings = |checked_in, users: Vec<u64>| Pings {
        checked_in,
        users,
        roles: vec![],
    };
    let cases = [
        (
            mine.id,
            ReminderEdit {
                message: Some(" ".into()),
                ..ReminderEdit::default()
            },
            "Write what you want to be reminded of.".to_owned(),
        ),
        (
            mine.id,
            ReminderEdit {
                message: Some("x".repeat(MAX_MESSAGE_CHARS + 1)),
                ..ReminderEdit::default()
            },
            format!("A reminder can be at most {MAX_MESSAGE_CHARS} characters long."),
        ),
        (
            mine.id,
            ReminderEdit {
                due_at: Some(now() - Duration::minutes(1)),
                ..ReminderEdit::default()
            },
            "That time is in the past.".into(),
        ),
        (
            mine.id,
            ReminderEdit {
                recurrence_end: Some(RepeatEnd::After(3)),
                ..ReminderEdit::default()
            },
            "`until` ends a repeat: add a repeat, or leave `until` out.".into(),
        ),
        (
            mine.id,
            ReminderEdit {
                recurrence: Some(Some("every 1h".parse().unwrap())),
                recurrence_end: Some(RepeatEnd::At(now() + Duration::hours(1))),
                ..ReminderEdit::default()
            },
            "The repeat has to end after the first reminder.".into(),
        ),
        (
            mine.id,
            ReminderEdit {
                mentions: Some(pings(CHANNEL, vec![BOB])),
                ..ReminderEdit::default()
            },
            format!(
                "Reminder #{} is sent by DM and pings nobody; only a channel reminder has `who`.",
                mine.id
            ),
        ),
        (
            post.id,
            ReminderEdit {
                mentions: Some(pings(CHANNEL + 1, vec![BOB])),
                ..ReminderEdit::default()
            },
            format!(
                "Reminder #{} posts in <#{CHANNEL}>: change whom it pings from there.",
                post.id
            ),
        ),
        (
            post.id,
            ReminderEdit {
                mentions: Some(pings(CHANNEL, (1..=26).collect())),
                ..ReminderEdit::default()
            },
            format!("A reminder can mention at most {MAX_ASSIGNEES} users and roles."),
        ),
    ];
    for (id, change, expected) in cases {
        let before = get(&conn, id).unwrap();
        let refused = edit_as(&conn, id, ALICE, false, change).unwrap_err();
        assert_eq!(refused.user_message().as_deref(), Some(expected.as_str()));
        assert_eq!(get(&conn, id).unwrap(), before, "unchanged: {expected}");
    }
    let repinged = edit_as(
        &conn,
        post.id,
        ALICE,
        false,
        ReminderEdit {
            mentions: Some(pings(CHANNEL, vec![ALICE, BOB])),
            ..ReminderEdit::default()
        },
    )
    .unwrap();
    assert_eq!(
        repinged.target,
        Target::Channel {
            channel: CHANNEL,
            users: vec![ALICE, BOB],
            roles: vec![],
        }
    );
}

#[test]
fn a_counted_repeat_moved_by_an_edit_keeps_the_number_of_times_still_to_come() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let mut new = dm(ALICE, "water", Duration::hours(1));
    new.recurrence = Some("every 2h".parse().unwrap());
    new.recurrence_end = Some(RepeatEnd::After(5));
    let r = create_ok(&conn, &new);
    assert_eq!(r.recurrence_end, Some(r.due_at + Duration::hours(8)));
    for _ in 0..2 {
        let due = get(&conn, r.id).unwrap().unwrap().due_at;
        sent(claim_at(&conn, r.id, due));
        delivery::finish(&conn, r.id, due, Ok(()), due, &policy()).unwrap();
    }
    let text = ReminderEdit {
        message: Some("water the plants".into()),
        ..ReminderEdit::default()
    };
    let texted = edit_as(&conn, r.id, ALICE, false, text).unwrap();
    assert_eq!(
        (texted.upcoming(10).len(), texted.recurrence_count),
        (3, Some(5)),
        "same times, same end"
    );
    let slower = ReminderEdit {
        recurrence: Some(Some("every 3h".parse().unwrap())),
        ..ReminderEdit::default()
    };
    let moved = edit_as(&conn, r.id, ALICE, false, slower).unwrap();
    let first = r.due_at + Duration::hours(4);
    assert_eq!(
        moved.upcoming(10),
        [
            first,
            first + Duration::hours(3),
            first + Duration::hours(6)
        ],
        "three of five were still to come"
    );
    assert_eq!(moved.recurrence_count, Some(3));
    let longer = ReminderEdit {
        recurrence_end: Some(RepeatEnd::After(4)),
        ..ReminderEdit::default()
    };
    let longer = edit_as(&conn, r.id, ALICE, false, longer).unwrap();
    assert_eq!(longer.upcoming(10).len(), 4);
}

#[test]
fn an_edit_to_a_new_time_drops_the_claim_of_the_old_one() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let r = create_ok(&conn, &dm(ALICE, "x", Duration::hours(1)));
    sent(claim_at(&conn, r.id, r.due_at));
    let refused = Err(DeliveryError::Refused("DMs closed".into()));
    let retry = delivery::finish(&conn, r.id, r.due_at, refused, r.due_at, &policy())
        .unwrap()
        .unwrap();
    let waiting = get(&conn, r.id).unwrap().unwrap();
    assert_eq!(
        (waiting.retry_at, waiting.last_error.as_deref()),
        (Some(retry), Some("DMs closed")),
        "paused until its retry"
    );
    let later = r.due_at + Duration::hours(5);
    let moved = ReminderEdit {
        due_at: Some(later),
        ..ReminderEdit::default()
    };
    let moved = edit_as(&conn, r.id, ALICE, false, moved).unwrap();
    assert_eq!((moved.retry_at, moved.attempts), (None, 0));
    assert!(delivery_row(&conn, r.id).is_empty());
    assert_eq!(sent(claim_at(&conn, r.id, later)).attempt, 1);
}

#[test]
fn a_cancel_during_a_send_keeps_the_reminder_cancelled() {
    let (_dir, conn) = guild_db();
    set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let mut new = dm(ALICE, "x", Duration::hours(1));
    new.recurrence = Some("every 1h".parse().unwrap());
    let r = create_ok(&conn, &new);
    sent(claim_at(&conn, r.id, r.due_at));
    cancel(&conn, r.id, ALICE, false, r.due_at).unwrap();
    assert_eq!(
        delivery::finish(&conn, r.id, r.due_at, Ok(()), r.due_at, &policy()).unwrap(),
        None
    );
    assert_eq!(get(&conn, r.id).unwrap().unwrap().status, Status::Cancelled);
}
