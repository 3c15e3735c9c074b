//! Scheduler tests of what each answer from Discord does to a reminder (as the bot maps them to
//! [`DeliveryError`]), and of guilds paused for their grace period after the bot was removed.

use super::*;

const OTHER_GUILD: u64 = 4_000_000_000_000_002;

fn closed_dms() -> Result<(), DeliveryError> {
    Err(DeliveryError::Refused("DMs closed".into()))
}

/// "daily at 12:00" UTC for [`ALICE`], first due at `first`.
fn daily_noon(first: DateTime<Utc>) -> NewReminder {
    NewReminder {
        recurrence: Some("daily at 12:00".parse().unwrap()),
        ..dm(ALICE, "water the plants", first)
    }
}

fn day(n: i64) -> DateTime<Utc> {
    t0() + Span::days(n)
}

#[tokio::test(start_paused = true)]
async fn closed_dms_skip_one_day_of_a_daily_reminder_and_it_fires_the_next() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let id = env.remind(GUILD, daily_noon(day(1)), t0()).await;
    let recorder = env.recorder();
    recorder.answer(id, [closed_dms()]);
    let _scheduler = env.start(&recorder).await;

    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let skipped = env.reminder(GUILD, id).await;
    assert_eq!(
        (
            skipped.status,
            skipped.due_at,
            skipped.last_error.as_deref()
        ),
        (Status::Active, day(2), Some("DMs closed")),
        "moved on to tomorrow, saying why today's did not arrive"
    );
    let sent = recorder.wait_for(2).await;
    let times: Vec<_> = sent.iter().map(|a| a.at).collect();
    assert_eq!(times, [day(1), day(2)], "no retry within the day");
    assert_eq!(sent[1].outcome, Ok(()));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.reminder(GUILD, id).await.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn three_refusals_in_a_row_end_a_repeating_reminder_with_the_reason() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let id = env.remind(GUILD, daily_noon(day(1)), t0()).await;
    let recorder = env.recorder();
    let missing = || Err(DeliveryError::Refused("missing Send Messages".into()));
    // A delivered day in between starts the count again.
    recorder.answer(
        id,
        [
            missing(),
            missing(),
            Ok(()),
            missing(),
            missing(),
            missing(),
        ],
    );
    let _scheduler = env.start(&recorder).await;

    recorder.wait_for(6).await;
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(recorder.attempts().len(), 6, "nothing after the end");
    let ended = env.reminder(GUILD, id).await;
    assert_eq!(ended.status, Status::Failed);
    let reason = ended.last_error.unwrap();
    assert!(
        reason.starts_with("missing Send Messages") && reason.contains("3 times in a row"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_one_off_refused_is_tried_again_hours_apart_then_fails_with_the_reason() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let due = day(1);
    let id = env.remind(GUILD, dm(ALICE, "call mum", due), t0()).await;
    let recorder = env.recorder();
    recorder.answer(id, [closed_dms(), closed_dms(), closed_dms(), closed_dms()]);
    let _scheduler = env.start(&recorder).await;

    let tries = recorder.wait_for(4).await;
    let times: Vec<_> = tries.iter().map(|a| a.at).collect();
    assert_eq!(
        times,
        [
            due,
            due + Span::hours(1),
            due + Span::hours(3),
            due + Span::hours(7)
        ]
    );
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(recorder.attempts().len(), 4);
    let failed = env.reminder(GUILD, id).await;
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (Status::Failed, Some("DMs closed (tried 4 times)"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_one_off_refused_once_then_accepted_arrives_an_hour_late() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let id = env.remind(GUILD, dm(ALICE, "call mum", day(1)), t0()).await;
    let recorder = env.recorder();
    recorder.answer(id, [closed_dms()]);
    let _scheduler = env.start(&recorder).await;

    let tries = recorder.wait_for(2).await;
    assert_eq!(tries[1].at, day(1) + Span::hours(1));
    assert!(tries[1].delivery.late, "says when it was due");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_stops_the_scheduler_and_fails_nothing() {
    let env = Env::new(t0());
    let first = env.remind(GUILD, post("first", day(1)), t0()).await;
    let second = env
        .remind(GUILD, post("second", day(1) + Span::minutes(5)), t0())
        .await;
    let recorder = env.recorder();
    recorder.answer(first, [Err(DeliveryError::Unauthorized)]);
    let scheduler = env.start(&recorder).await;
    assert!(!scheduler.has_refused_token());

    tokio::time::timeout(
        Duration::from_secs(2 * 24 * 3600),
        scheduler.token_refused(),
    )
    .await
    .expect("the refusal is reported");
    assert!(scheduler.has_refused_token());
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(sent_ids(&recorder), [first], "nothing after the refusal");
    for id in [first, second] {
        let kept = env.reminder(GUILD, id).await;
        assert_eq!(
            (kept.status, kept.attempts, kept.last_error),
            (Status::Active, 0, None)
        );
    }
    assert_eq!(
        env.deliveries(GUILD, first).await,
        [("claimed".to_owned(), 0)],
        "left for the next run, no attempt counted"
    );
    scheduler.shutdown().await;

    let again = env.recorder();
    let _restarted = env.start(&again).await;
    again.wait_for(2).await;
    let mut sent = sent_ids(&again);
    sent.sort_unstable();
    assert_eq!(sent, [first, second], "the next run sends both");
}

impl Recorder {
    fn notices(&self) -> Vec<(u64, String)> {
        self.notices.lock().unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn the_creator_is_told_once_when_refusals_start_and_once_when_the_reminder_ends() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let id = env.remind(GUILD, daily_noon(day(1)), t0()).await;
    let recorder = env.recorder();
    recorder.answer(id, [closed_dms(), closed_dms(), closed_dms()]);
    let _scheduler = env.start(&recorder).await;

    recorder.wait_for(3).await;
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    let told = recorder.notices();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told.iter().all(|(user, _)| *user == ALICE));
    assert!(
        told[0].1.contains("could not be delivered this time") && told[0].1.contains("DMs closed"),
        "{told:?}"
    );
    assert!(
        told[1].1.contains("#1") && told[1].1.contains("has stopped"),
        "{told:?}"
    );
    let left = env.on(GUILD, |c| notice::take(c, ALICE).unwrap()).await;
    assert!(
        left.is_empty(),
        "told by DM, so not again at /remind: {left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_creator_without_dms_is_told_once_at_their_next_remind() {
    let env = Env::new(t0());
    let id = env.remind(GUILD, post("standup", day(1)), t0()).await;
    let recorder = env.recorder();
    recorder.answer(id, [Err(DeliveryError::Permanent("channel gone".into()))]);
    let _scheduler = env.start(&recorder).await;

    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(recorder.notices().is_empty(), "no DM without an opt-in");
    let first = env.on(GUILD, |c| notice::take(c, ALICE).unwrap()).await;
    assert_eq!(
        first,
        ["Your reminder #1 (\"standup\") has stopped. Why: channel gone"]
    );
    let second = env.on(GUILD, |c| notice::take(c, ALICE).unwrap()).await;
    assert!(second.is_empty(), "told once");
}

#[tokio::test(start_paused = true)]
async fn a_paused_guild_sends_nothing_and_a_resume_sends_a_missed_one_off_late_and_moves_repeats_on(
) {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let once = env.remind(GUILD, post("once", day(1)), t0()).await;
    let daily = env.remind(GUILD, daily_noon(day(1)), t0()).await;
    let elsewhere = env
        .remind(OTHER_GUILD, post("elsewhere", day(1)), t0())
        .await;
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;
    scheduler.pause_guild(GUILD);

    let sent = recorder.wait_for(1).await;
    assert_eq!(
        (sent[0].delivery.guild, sent[0].delivery.reminder),
        (OTHER_GUILD, elsewhere)
    );
    // Nearly three days pass in the grace period: nothing of the paused guild is sent or fails.
    tokio::time::sleep(Duration::from_secs(3 * 24 * 3600 - 3600)).await;
    assert_eq!(recorder.attempts().len(), 1);
    for id in [once, daily] {
        let waiting = env.reminder(GUILD, id).await;
        assert_eq!((waiting.status, waiting.due_at), (Status::Active, day(1)));
    }

    let rejoined = env.clock.now();
    scheduler.resume_guild(GUILD).await.unwrap();
    let sent = recorder.wait_for(2).await;
    assert_eq!(sent[1].delivery.reminder, once);
    assert!(sent[1].delivery.late, "marked late");
    assert!(sent[1].at - rejoined < Span::seconds(1), "at once");
    // The repeat skips the days missed and fires next at its time, once.
    let sent = recorder.wait_for(3).await;
    assert_eq!((sent[2].delivery.reminder, sent[2].at), (daily, day(4)));
    assert!(!sent[2].delivery.late);
    // Recorded after the recorder saw it: let the record land.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.reminder(GUILD, daily).await.due_at, day(5));
}

#[tokio::test(start_paused = true)]
async fn a_guild_paused_from_start_up_sends_nothing_until_resumed() {
    let env = Env::new(t0());
    let id = env.remind(GUILD, post("kept", day(1)), t0()).await;
    let recorder = env.recorder();
    let config = SchedulerConfig {
        paused: HashSet::from([GUILD]),
        ..SchedulerConfig::default()
    };
    let scheduler = env.start_with(&recorder, config).await;

    tokio::time::sleep(Duration::from_secs(3 * 24 * 3600)).await;
    assert!(recorder.attempts().is_empty());
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Active);
    scheduler.resume_guild(GUILD).await.unwrap();
    let sent = recorder.wait_for(1).await;
    assert!(sent[0].delivery.late);
}

#[tokio::test(start_paused = true)]
async fn a_send_claimed_ahead_is_called_off_when_its_guild_is_paused() {
    let env = Env::new(t0());
    let (id, recorder, scheduler) = claimed_ahead(&env, post("x", in_a_minute())).await;
    scheduler.pause_guild(GUILD);
    nothing_sent_for_an_hour(&recorder).await;
    assert!(env.deliveries(GUILD, id).await.is_empty(), "claim released");
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Active);
}

#[tokio::test(start_paused = true)]
async fn a_repeat_ending_after_four_times_counts_the_times_missed_in_the_grace_and_ends() {
    let env = Env::new(t0());
    let four_times = NewReminder {
        recurrence_end: Some(reminders::RepeatEnd::After(4)),
        ..daily_noon(day(1))
    };
    let new = NewReminder {
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: vec![],
        },
        ..four_times
    };
    let id = env.remind(GUILD, new, t0()).await;
    let recorder = env.recorder();
    let config = SchedulerConfig {
        paused: HashSet::from([GUILD]),
        ..SchedulerConfig::default()
    };
    let scheduler = env.start_with(&recorder, config).await;
    // Days 1 and 2 pass in the grace period; the rejoin comes on day 2 in the afternoon.
    tokio::time::sleep(Duration::from_secs(2 * 24 * 3600 + 3600)).await;
    scheduler.resume_guild(GUILD).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    let sent: Vec<_> = recorder.attempts().iter().map(|a| a.at).collect();
    assert_eq!(sent, [day(3), day(4)], "the third and fourth times only");
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
}
