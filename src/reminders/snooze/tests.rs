//! Snooze and done on real guild database files: the arithmetic of the new time (tomorrow
//! across Berlin's DST changes), who may answer, and that a delivered time is answered once.

use chrono::Utc;
use chrono_tz::{Europe::Berlin, Tz};

use super::*;
use crate::{
    reminders::{create, delivery, get, DeliveryPolicy, NewReminder, Recurrence},
    test_support::{berlin, guild_db, utc},
};

const ALICE: u64 = 1_000_000_000_000_001;
const BOB: u64 = 1_000_000_000_000_002;
const CAROL: u64 = 1_000_000_000_000_003;
const CHANNEL: u64 = 2_000_000_000_000_001;
const ROLE: u64 = 3_000_000_000_000_001;
const GUILD: u64 = 4_000_000_000_000_001;

fn until(snooze: Snooze, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    snooze.until(zone, now)
}

#[test]
fn tomorrow_keeps_the_wall_time_across_both_dst_changes_in_berlin() {
    // 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    let table = [
        // Before spring forward: 09:00 tomorrow is 23 hours away.
        (berlin(2026, 3, 28, 9, 0), berlin(2026, 3, 29, 9, 0), 23),
        // Before fall back: 25 hours away.
        (berlin(2026, 10, 24, 9, 0), berlin(2026, 10, 25, 9, 0), 25),
        // 02:30 tomorrow is in the gap: 03:30 CEST, the gap's length on.
        (utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), 24),
        // 02:30 tomorrow happens twice: the first one, still CEST.
        (utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), 24),
        // An ordinary day.
        (berlin(2026, 6, 1, 18, 15), berlin(2026, 6, 2, 18, 15), 24),
    ];
    for (now, expected, hours) in table {
        let got = until(Snooze::Tomorrow, Berlin, now);
        assert_eq!(got, expected, "tomorrow from {now}");
        assert_eq!((got - now).num_hours(), hours, "from {now}");
    }
    let in_gap = until(Snooze::Tomorrow, Berlin, utc(2026, 3, 28, 1, 30));
    assert_eq!(
        in_gap.with_timezone(&Berlin).format("%H:%M %Z").to_string(),
        "03:30 CEST"
    );
}

#[test]
fn minutes_and_hours_are_real_time_even_across_a_change() {
    // 01:55 CET + 10 minutes is 03:05 CEST on the wall clock.
    let now = berlin(2026, 3, 29, 1, 55);
    let later = until(Snooze::TenMinutes, Berlin, now);
    assert_eq!(later - now, Duration::minutes(10));
    assert_eq!(
        later.with_timezone(&Berlin).format("%H:%M").to_string(),
        "03:05"
    );
    assert_eq!(
        until(Snooze::OneHour, Berlin, now) - now,
        Duration::hours(1)
    );
    // Stored times are whole seconds.
    let fractional = now + Duration::milliseconds(700);
    assert_eq!(until(Snooze::TenMinutes, Berlin, fractional), later);
}

fn now() -> DateTime<Utc> {
    utc(2027, 1, 10, 12, 0)
}

fn alice() -> Presser {
    Presser {
        user: ALICE,
        roles: vec![],
    }
}

/// Creates `new` and delivers its first time, as the scheduler would; returns its id and the
/// time delivered.
fn delivered(conn: &Connection, new: &NewReminder) -> (u64, DateTime<Utc>) {
    let created = create(conn, new, 25, now() - Duration::hours(1)).unwrap();
    let policy = DeliveryPolicy::default();
    let at = created.due_at;
    let claim = delivery::claim(conn, GUILD, created.id, at, at, &policy).unwrap();
    assert!(matches!(claim, delivery::Claim::Send(_)), "{claim:?}");
    delivery::finish(conn, created.id, at, Ok(()), at, &policy).unwrap();
    (created.id, at)
}

fn channel_reminder(recurrence: Option<&str>) -> NewReminder {
    NewReminder {
        creator: ALICE,
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![ROLE],
        },
        message: "standup".into(),
        due_at: now() - Duration::minutes(5),
        time_zone: Berlin,
        recurrence: recurrence.map(|r| r.parse::<Recurrence>().unwrap()),
        recurrence_end: None,
    }
}

fn reminder_count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM reminders", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_snoozed_one_off_is_due_again_once_however_often_it_is_pressed() {
    let (_dir, conn) = guild_db();
    let (id, at) = delivered(&conn, &channel_reminder(None));
    assert_eq!(get(&conn, id).unwrap().unwrap().status, Status::Sent);
    let snooze = Action::Snooze(Snooze::TenMinutes);
    let first = answer(&conn, id, at, snooze, &alice(), now()).unwrap();
    let due_at = now() + Duration::minutes(10);
    assert_eq!(first, Answered::Snoozed { id, due_at });
    let again = get(&conn, id).unwrap().unwrap();
    assert_eq!((again.status, again.due_at), (Status::Active, due_at));
    // The double click, an hour snooze from another target, and done: all too late.
    let bob = Presser {
        user: BOB,
        roles: vec![],
    };
    let second = answer(&conn, id, at, Action::Snooze(Snooze::OneHour), &bob, now());
    assert!(
        matches!(second, Err(AnswerError::AlreadySnoozed)),
        "{second:?}"
    );
    let done = answer(&conn, id, at, Action::Done, &alice(), now());
    assert!(matches!(done, Err(AnswerError::AlreadySnoozed)), "{done:?}");
    assert_eq!(get(&conn, id).unwrap().unwrap().due_at, due_at);
    assert_eq!(reminder_count(&conn), 1);
}

#[test]
fn snoozing_a_time_of_a_repeat_makes_one_one_off_and_leaves_the_series() {
    let (_dir, conn) = guild_db();
    let (id, at) = delivered(&conn, &channel_reminder(Some("every 1d")));
    let series = get(&conn, id).unwrap().unwrap();
    assert_eq!(
        series.due_at,
        at + Duration::days(1),
        "moved on at delivery"
    );
    let tomorrow = Action::Snooze(Snooze::Tomorrow);
    let Answered::Snoozed { id: copy, due_at } =
        answer(&conn, id, at, tomorrow, &alice(), now()).unwrap()
    else {
        panic!("snoozed")
    };
    assert_ne!(copy, id);
    assert_eq!(due_at, now() + Duration::days(1));
    let copied = get(&conn, copy).unwrap().unwrap();
    assert_eq!(copied.recurrence, None);
    assert_eq!(
        (copied.status, copied.due_at, copied.created_by),
        (Status::Active, due_at, Some(ALICE))
    );
    assert_eq!(
        (copied.target, copied.message),
        (series.target.clone(), series.message.clone())
    );
    assert_eq!(
        get(&conn, id).unwrap().unwrap(),
        series,
        "the series untouched"
    );
    let twice = answer(&conn, id, at, tomorrow, &alice(), now());
    assert!(
        matches!(twice, Err(AnswerError::AlreadySnoozed)),
        "{twice:?}"
    );
    assert_eq!(reminder_count(&conn), 2);
}

#[test]
fn done_on_a_repeat_acknowledges_the_time_and_the_series_goes_on() {
    let (_dir, conn) = guild_db();
    let (id, at) = delivered(&conn, &channel_reminder(Some("every 1d")));
    let done = answer(&conn, id, at, Action::Done, &alice(), now()).unwrap();
    assert_eq!(
        done,
        Answered::Done {
            next: Some(at + Duration::days(1))
        }
    );
    let snooze = answer(
        &conn,
        id,
        at,
        Action::Snooze(Snooze::TenMinutes),
        &alice(),
        now(),
    );
    assert!(
        matches!(snooze, Err(AnswerError::AlreadyDone)),
        "{snooze:?}"
    );
    assert_eq!(reminder_count(&conn), 1);
    assert_eq!(get(&conn, id).unwrap().unwrap().status, Status::Active);
}

#[test]
fn only_the_creator_and_the_targets_may_answer() {
    let (_dir, conn) = guild_db();
    let (id, at) = delivered(&conn, &channel_reminder(Some("every 2h")));
    let carol = |roles: Vec<u64>| Presser { user: CAROL, roles };
    let refused = answer(&conn, id, at, Action::Done, &carol(vec![7]), now());
    assert!(matches!(refused, Err(AnswerError::NotYours)), "{refused:?}");
    // Carol holding the targeted role may.
    assert!(answer(&conn, id, at, Action::Done, &carol(vec![ROLE]), now()).is_ok());

    crate::optins::set_dm_opt_in(&conn, ALICE, true, now()).unwrap();
    let mut dm = channel_reminder(None);
    dm.target = Target::Dm;
    let (dm_id, dm_at) = delivered(&conn, &dm);
    let bob = Presser {
        user: BOB,
        roles: vec![ROLE],
    };
    let refused = answer(&conn, dm_id, dm_at, Action::Done, &bob, now());
    assert!(matches!(refused, Err(AnswerError::NotYours)), "{refused:?}");
    assert!(answer(&conn, dm_id, dm_at, Action::Done, &alice(), now()).is_ok());
}

#[test]
fn what_was_removed_or_changed_is_not_brought_back() {
    let (_dir, conn) = guild_db();
    let snooze = Action::Snooze(Snooze::OneHour);
    // Erased (its creator forgotten): gone, and still gone after the press.
    let (erased, at) = delivered(&conn, &channel_reminder(None));
    conn.execute(
        "DELETE FROM reminders WHERE id = ?1",
        [sql_id(erased).unwrap()],
    )
    .unwrap();
    let gone = answer(&conn, erased, at, snooze, &alice(), now());
    assert!(matches!(gone, Err(AnswerError::Gone)), "{gone:?}");
    assert_eq!(reminder_count(&conn), 0);

    // A time that was never delivered (a forged or mistyped occurrence).
    let (id, at) = delivered(&conn, &channel_reminder(None));
    let other = at - Duration::days(3);
    let unknown = answer(&conn, id, other, snooze, &alice(), now());
    assert!(
        matches!(unknown, Err(AnswerError::NotOnRecord)),
        "{unknown:?}"
    );

    // Moved to another time since (an edit): not snoozed, and the time stays unanswered.
    conn.execute(
        "UPDATE reminders SET status = 'active', due_at = ?2 WHERE id = ?1",
        rusqlite::params![sql_id(id).unwrap(), (now() + Duration::days(2)).timestamp()],
    )
    .unwrap();
    let changed = answer(&conn, id, at, snooze, &alice(), now());
    assert!(matches!(changed, Err(AnswerError::Changed)), "{changed:?}");
    let answer_left: Option<String> = conn
        .query_row(
            "SELECT answer FROM reminder_deliveries WHERE reminder_id = ?1",
            [sql_id(id).unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(answer_left, None, "rolled back with the refusal");

    // A repeat cancelled after its time was delivered makes no copy.
    let (series, at) = delivered(&conn, &channel_reminder(Some("every 2h")));
    crate::reminders::cancel(&conn, series, ALICE, false, now()).unwrap();
    let before = reminder_count(&conn);
    let stopped = answer(&conn, series, at, snooze, &alice(), now());
    assert!(matches!(stopped, Err(AnswerError::Stopped)), "{stopped:?}");
    assert_eq!(reminder_count(&conn), before);
}
