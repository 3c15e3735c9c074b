//! Scheduler tests: real guild files through the store in a temporary data directory, tokio
//! time paused, the wall time from a [`TokioClock`], and a recorder in place of Discord.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::Write,
};

use chrono::{Datelike, Duration as Span, TimeZone, Timelike};
use chrono_tz::{Europe::Berlin, Tz};
use rusqlite::Connection;
use tempfile::TempDir;

use super::*;
use crate::{
    optins::set_dm_opt_in,
    reminders::{
        self, delivery::NOT_OPTED_IN, DeliveryTarget, NewReminder, Recurrence, Status, Target,
    },
    store::StoreConfig,
};

const ALICE: u64 = 1_000_000_000_000_001;
const BOB: u64 = 1_000_000_000_000_002;
const CHANNEL: u64 = 2_000_000_000_000_001;
const GUILD: u64 = 4_000_000_000_000_001;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
}

/// One attempt as the recorder saw it.
#[derive(Debug, Clone)]
struct Attempt {
    delivery: Delivery,
    at: DateTime<Utc>,
    outcome: Result<(), DeliveryError>,
}

/// Stands in for Discord: records every attempt and answers from a script (default: success).
struct Recorder {
    clock: Arc<dyn Clock>,
    attempts: Mutex<Vec<Attempt>>,
    script: Mutex<HashMap<u64, VecDeque<Result<(), DeliveryError>>>>,
    /// Reminders whose sends hang until let go, holding their send slot.
    held: Mutex<HashMap<u64, Arc<Semaphore>>>,
    /// Sends begun (held ones included), by reminder, in order.
    begun: Mutex<Vec<u64>>,
    changed: Notify,
    /// Notices DMed: (user, text).
    notices: Mutex<Vec<(u64, String)>>,
}

impl Recorder {
    fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            attempts: Mutex::default(),
            script: Mutex::default(),
            held: Mutex::default(),
            begun: Mutex::default(),
            changed: Notify::new(),
            notices: Mutex::default(),
        })
    }

    /// Sends of `reminder` hang (until [`Recorder::let_go`] or the delivery timeout).
    fn hold(&self, reminder: u64) {
        self.held
            .lock()
            .unwrap()
            .insert(reminder, Arc::new(Semaphore::new(0)));
    }

    fn let_go(&self, reminder: u64) {
        self.held.lock().unwrap()[&reminder].add_permits(1);
    }

    fn answer(&self, reminder: u64, outcomes: impl IntoIterator<Item = Result<(), DeliveryError>>) {
        self.script
            .lock()
            .unwrap()
            .insert(reminder, outcomes.into_iter().collect());
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// Waits (in paused time: lets the clock run) until `n` attempts have been made; fails
    /// after a virtual month instead of hanging.
    async fn wait_for(&self, n: usize) -> Vec<Attempt> {
        let waiting = self.wait_for_unbounded(n);
        match tokio::time::timeout(Duration::from_secs(31 * 24 * 3600), waiting).await {
            Ok(attempts) => attempts,
            Err(_) => panic!("waited for {n} attempts, saw {}", self.attempts().len()),
        }
    }

    async fn wait_for_unbounded(&self, n: usize) -> Vec<Attempt> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let attempts = self.attempts();
            if attempts.len() >= n {
                return attempts;
            }
            changed.await;
        }
    }
}

impl Deliver for Recorder {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture<'_> {
        Box::pin(async move {
            self.begun.lock().unwrap().push(delivery.reminder);
            let held = self.held.lock().unwrap().get(&delivery.reminder).cloned();
            if let Some(held) = held {
                held.acquire().await.unwrap().forget();
            }
            let outcome = self
                .script
                .lock()
                .unwrap()
                .get_mut(&delivery.reminder)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Ok(()));
            self.attempts.lock().unwrap().push(Attempt {
                delivery,
                at: self.clock.now(),
                outcome: outcome.clone(),
            });
            self.changed.notify_waiters();
            outcome
        })
    }

    fn notify(&self, user: u64, text: String) -> DeliveryFuture<'_> {
        self.notices.lock().unwrap().push((user, text));
        Box::pin(std::future::ready(Ok(())))
    }
}

struct Env {
    dir: TempDir,
    store: GuildDatabaseManager,
    clock: Arc<TokioClock>,
}

/// For tests that hold a guild's lock: a use gives up after a (real) tenth of a second.
fn impatient(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        busy_timeout: Duration::from_millis(100),
        ..StoreConfig::new(dir)
    }
}

impl Env {
    fn new(start: DateTime<Utc>) -> Self {
        Self::with_store(start, |dir| StoreConfig::new(dir))
    }

    fn impatient(start: DateTime<Utc>) -> Self {
        Self::with_store(start, impatient)
    }

    fn with_store(
        start: DateTime<Utc>,
        config: impl FnOnce(&std::path::Path) -> StoreConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = GuildDatabaseManager::new(config(dir.path())).unwrap();
        Self {
            dir,
            store,
            clock: Arc::new(TokioClock::starting_at(start)),
        }
    }

    async fn on<T: Send + 'static>(
        &self,
        guild: u64,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> T {
        self.store.with_guild(guild, move |c| f(c)).await.unwrap()
    }

    /// A reminder of `creator` in `guild` due at `due`, created at `created` (before `due`).
    async fn remind(&self, guild: u64, new: NewReminder, created: DateTime<Utc>) -> u64 {
        self.on(guild, move |c| {
            reminders::create(c, &new, usize::MAX, created).unwrap().id
        })
        .await
    }

    async fn opt_in(&self, guild: u64, user: u64) {
        self.on(guild, move |c| set_dm_opt_in(c, user, true, t0()).unwrap())
            .await;
    }

    async fn start(&self, recorder: &Arc<Recorder>) -> Scheduler {
        self.start_with(recorder, SchedulerConfig::default()).await
    }

    /// Starts a scheduler on `store`, a new manager of this data directory (as after a restart).
    async fn start_on(&self, store: GuildDatabaseManager, recorder: &Arc<Recorder>) -> Scheduler {
        let config = SchedulerConfig::default();
        Scheduler::start(store, recorder.clone(), self.clock.clone(), config)
            .await
            .unwrap()
    }

    async fn start_with(&self, recorder: &Arc<Recorder>, config: SchedulerConfig) -> Scheduler {
        Scheduler::start(
            self.store.clone(),
            recorder.clone(),
            self.clock.clone(),
            config,
        )
        .await
        .unwrap()
    }

    fn recorder(&self) -> Arc<Recorder> {
        Recorder::new(self.clock.clone())
    }

    /// A connection of its own to `guild`'s file, behind the store's back.
    fn raw(&self, guild: u64) -> Connection {
        let file = self.dir.path().join(format!("guilds/{guild}/quotes.db"));
        Connection::open(file).unwrap()
    }

    async fn reminder(&self, guild: u64, id: u64) -> reminders::Reminder {
        self.on(guild, move |c| reminders::get(c, id).unwrap().unwrap())
            .await
    }
}

fn dm(creator: u64, message: &str, due_at: DateTime<Utc>) -> NewReminder {
    NewReminder {
        creator,
        target: Target::Dm,
        message: message.into(),
        due_at,
        time_zone: Tz::UTC,
        recurrence: None,
        recurrence_end: None,
    }
}

fn post(message: &str, due_at: DateTime<Utc>) -> NewReminder {
    NewReminder {
        target: Target::Channel {
            channel: CHANNEL,
            users: vec![BOB],
            roles: Vec::new(),
        },
        ..dm(ALICE, message, due_at)
    }
}

#[tokio::test(start_paused = true)]
async fn fires_exactly_at_the_due_time_and_not_a_moment_before() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let due = t0() + Span::seconds(10);
    let id = env.remind(GUILD, dm(ALICE, "stretch", due), t0()).await;
    let recorder = env.recorder();
    let _scheduler = env.start(&recorder).await;

    tokio::time::advance(Duration::from_secs(9)).await;
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert!(recorder.attempts().is_empty(), "nothing before {due}");

    let sent = recorder.wait_for(1).await;
    assert_eq!(sent[0].at, due);
    assert_eq!(
        sent[0].delivery,
        Delivery {
            guild: GUILD,
            reminder: id,
            target: DeliveryTarget::Dm { user: ALICE },
            message: "stretch".into(),
            due_at: due,
            late: false,
            attempt: 1,
        }
    );
}

impl Env {
    /// `(status, attempts)` of each delivery row of reminder `id`.
    async fn deliveries(&self, guild: u64, id: u64) -> Vec<(String, u32)> {
        self.on(guild, move |c| {
            let mut rows = c
                .prepare("SELECT status, attempts FROM reminder_deliveries WHERE reminder_id = ?1")
                .unwrap();
            rows.query_map([i64::try_from(id).unwrap()], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        })
        .await
    }

    /// Lets (paused) time run a millisecond at a time until reminder `id` is claimed.
    async fn until_claimed(&self, guild: u64, id: u64) {
        for _ in 0..1000 {
            if !self.deliveries(guild, id).await.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("reminder {id} was never claimed");
    }
}

/// When the reminders of the claim-ahead tests are due.
fn in_a_minute() -> DateTime<Utc> {
    t0() + Span::seconds(60)
}

/// Sets `new` (due [`in_a_minute`]) in [`GUILD`], starts a scheduler and lets time run until
/// the reminder is claimed, `claim_ahead` (20 s) early: 10 s before it is due.
async fn claimed_ahead(env: &Env, new: NewReminder) -> (u64, Arc<Recorder>, Scheduler) {
    let id = env.remind(GUILD, new, t0()).await;
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;
    tokio::time::advance(Duration::from_secs(50)).await;
    env.until_claimed(GUILD, id).await;
    assert!(env.clock.now() < t0() + Span::seconds(51));
    (id, recorder, scheduler)
}

async fn nothing_sent_for_an_hour(recorder: &Recorder) {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let sent = recorder.attempts();
    assert!(sent.is_empty(), "sent: {sent:?}");
}

#[tokio::test(start_paused = true)]
async fn a_reminder_is_claimed_ahead_and_still_sent_at_its_due_time() {
    let env = Env::new(t0());
    let (id, recorder, _scheduler) = claimed_ahead(&env, post("standup", in_a_minute())).await;
    assert_eq!(
        env.deliveries(GUILD, id).await,
        [("claimed".into(), 0)],
        "an attempt counts once made"
    );
    assert!(recorder.attempts().is_empty(), "claimed, not sent");

    let sent = recorder.wait_for(1).await;
    assert_eq!((sent[0].at, sent[0].delivery.late), (in_a_minute(), false));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.deliveries(GUILD, id).await, [("delivered".into(), 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_reminder_cancelled_after_its_claim_is_not_sent_and_its_claim_is_released() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let (id, recorder, scheduler) = claimed_ahead(&env, dm(ALICE, "call off", in_a_minute())).await;

    let now = env.clock.now();
    env.on(GUILD, move |c| {
        reminders::cancel(c, id, ALICE, false, now).unwrap()
    })
    .await;
    scheduler.remove(GUILD, id);
    nothing_sent_for_an_hour(&recorder).await;
    assert!(env.deliveries(GUILD, id).await.is_empty(), "no claim left");
    assert_eq!(scheduler.pending(), 0);
}

/// An edit of reminder `id` of [`GUILD`] by [`ALICE`] to `text`, through the scheduler.
async fn edit_text(
    scheduler: &Scheduler,
    clock: &Arc<TokioClock>,
    id: u64,
    text: &str,
) -> reminders::Reminder {
    let (text, now) = (text.to_owned(), clock.now());
    let change = reminders::ReminderEdit {
        message: Some(text),
        ..reminders::ReminderEdit::default()
    };
    scheduler
        .change(GUILD, id, move |c| {
            reminders::edit(c, id, ALICE, false, &change, now)
        })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_edit_after_the_claim_calls_that_send_off_and_the_new_text_goes_at_the_due_time() {
    let env = Env::new(t0());
    let (id, recorder, scheduler) = claimed_ahead(&env, post("old text", in_a_minute())).await;

    edit_text(&scheduler, &env.clock, id, "new text").await;
    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let sent: Vec<_> = recorder
        .attempts()
        .iter()
        .map(|a| (a.delivery.message.clone(), a.at))
        .collect();
    assert_eq!(sent, [("new text".to_owned(), in_a_minute())]);
    assert_eq!(env.deliveries(GUILD, id).await, [("delivered".into(), 1)]);
}

/// Sets `new` in [`GUILD`] and starts a scheduler whose send of it hangs (until let go);
/// returns once that send has begun.
async fn sending_held(env: &Env, new: NewReminder) -> (u64, Arc<Recorder>, Arc<Scheduler>) {
    let id = env.remind(GUILD, new, t0()).await;
    let recorder = env.recorder();
    recorder.hold(id);
    let scheduler = Arc::new(env.start(&recorder).await);
    while recorder.begun.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (id, recorder, scheduler)
}

#[tokio::test(start_paused = true)]
async fn an_edit_during_a_send_waits_for_it_and_applies_to_the_next_time() {
    let env = Env::new(t0());
    let daily = NewReminder {
        recurrence: Some("daily at 12:01".parse().unwrap()),
        ..post("old text", in_a_minute())
    };
    let (id, recorder, scheduler) = sending_held(&env, daily).await;

    let editing = tokio::spawn({
        let (scheduler, clock) = (scheduler.clone(), env.clock.clone());
        async move { edit_text(&scheduler, &clock, id, "new text").await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !editing.is_finished(),
        "the edit waits for the send under way"
    );
    recorder.let_go(id);
    let edited = editing.await.unwrap();
    let first = recorder.attempts();
    assert_eq!(
        first.len(),
        1,
        "the old text went out before the edit returned"
    );
    assert_eq!(
        (first[0].delivery.message.as_str(), first[0].delivery.due_at),
        ("old text", in_a_minute())
    );
    assert_eq!(
        (edited.message.as_str(), edited.due_at),
        ("new text", in_a_minute() + Span::days(1)),
        "applied to the next time"
    );
    assert_eq!(env.deliveries(GUILD, id).await, [("delivered".into(), 1)]);

    // Let go of the next day's send too: it carries the new text.
    recorder.let_go(id);
    let sent = recorder.wait_for(2).await;
    assert_eq!(
        (sent[1].delivery.message.as_str(), sent[1].delivery.due_at),
        ("new text", in_a_minute() + Span::days(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_a_send_of_a_one_off_waits_for_it_and_finds_it_sent() {
    let env = Env::new(t0());
    let (id, recorder, scheduler) = sending_held(&env, post("once", in_a_minute())).await;
    let cancelling = tokio::spawn({
        let (scheduler, now) = (scheduler.clone(), env.clock.now());
        async move {
            scheduler
                .change(GUILD, id, move |c| {
                    reminders::cancel(c, id, ALICE, false, now)
                })
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!cancelling.is_finished());
    recorder.let_go(id);
    let refused = cancelling.await.unwrap().unwrap_err();
    assert!(matches!(refused, ReminderError::NotActive(_)), "{refused}");
    assert_eq!(recorder.attempts().len(), 1);
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
}

#[tokio::test(start_paused = true)]
async fn a_dm_claimed_before_its_member_opted_out_is_not_sent() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let (id, recorder, scheduler) = claimed_ahead(&env, dm(ALICE, "private", in_a_minute())).await;

    let now = env.clock.now();
    env.on(GUILD, move |c| set_dm_opt_in(c, ALICE, false, now).unwrap())
        .await;
    scheduler.recheck_guild(GUILD);
    nothing_sent_for_an_hour(&recorder).await;
    let refused = env.reminder(GUILD, id).await;
    assert_eq!(
        (
            refused.status,
            refused.last_error.as_deref(),
            refused.attempts
        ),
        (Status::Failed, Some(NOT_OPTED_IN), 1),
        "refused at its due time, the released claim not counted"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_claimed_reminders_and_a_restart_sends_them_once() {
    let env = Env::new(t0());
    let (id, first, scheduler) = claimed_ahead(&env, post("after restart", in_a_minute())).await;

    let stopping = env.clock.now();
    scheduler.shutdown().await;
    assert!(
        env.clock.now() - stopping < Span::seconds(1),
        "not held until due"
    );
    assert!(first.attempts().is_empty());

    let second = env.recorder();
    let _restarted = env.start(&second).await;
    let sent = second.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(second.attempts().len(), 1);
    assert_eq!(
        (sent[0].at, sent[0].delivery.attempt),
        (in_a_minute(), 1),
        "the claim left by the shutdown was never sent, so not counted"
    );
    assert_eq!(env.deliveries(GUILD, id).await, [("delivered".into(), 1)]);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_reminder_added_while_sleeping_wakes_the_scheduler() {
    let env = Env::new(t0());
    env.remind(GUILD, post("in an hour", t0() + Span::hours(1)), t0())
        .await;
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;
    tokio::time::advance(Duration::from_secs(5)).await;

    let due = t0() + Span::seconds(20);
    let id = env.remind(GUILD, post("soon", due), env.clock.now()).await;
    scheduler.upsert(GUILD, id, due);
    let sent = recorder.wait_for(1).await;
    assert_eq!((sent[0].delivery.reminder, sent[0].at), (id, due));
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_reminders_in_a_hundred_guilds_go_out_once_in_due_order() {
    let env = Env::new(t0());
    for g in 1..=100u64 {
        env.on(GUILD + g, move |c| {
            for k in 0..100 {
                let due = t0() + Span::seconds(10 + k);
                reminders::create(c, &post(&format!("{g}/{k}"), due), usize::MAX, t0()).unwrap();
            }
        })
        .await;
    }
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;

    let sent = recorder.wait_for(10_000).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(recorder.attempts().len(), 10_000, "nothing sent twice");
    let unique: HashSet<(u64, u64)> = sent
        .iter()
        .map(|a| (a.delivery.guild, a.delivery.reminder))
        .collect();
    assert_eq!(unique.len(), 10_000);
    assert!(
        sent.windows(2)
            .all(|w| w[0].delivery.due_at <= w[1].delivery.due_at),
        "in due order"
    );
    assert!(sent
        .iter()
        .all(|a| a.at == a.delivery.due_at && !a.delivery.late));
    assert_eq!(scheduler.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_way_neither_loses_nor_repeats_a_completed_delivery() {
    let env = Env::new(t0());
    let mut all = HashSet::new();
    for g in 1..=4u64 {
        for k in 0..10 {
            let due = t0() + Span::seconds(1 + k * 4 + i64::try_from(g).unwrap());
            all.insert((GUILD + g, env.remind(GUILD + g, post("x", due), t0()).await));
        }
    }
    let first = env.recorder();
    let scheduler = env.start(&first).await;
    first.wait_for(15).await;
    drop(scheduler);
    // Leases already running finish; the sends the drop abandoned stay claimed.
    env.store.shutdown().await;

    let store = GuildDatabaseManager::new(StoreConfig::new(env.dir.path())).unwrap();
    let mut delivered = HashSet::new();
    for g in 1..=4u64 {
        let rows: Vec<u64> = store
            .with_existing_guild(GUILD + g, |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT reminder_id FROM reminder_deliveries WHERE status = 'delivered'",
                    )
                    .unwrap();
                stmt.query_map([], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .map(|id| id.unwrap().unsigned_abs())
                    .collect()
            })
            .await
            .unwrap();
        delivered.extend(rows.into_iter().map(|id| (GUILD + g, id)));
    }
    assert!(delivered.len() >= 10, "most of the first 15 were recorded");

    let second = Recorder::new(env.clock.clone());
    let restarted = env.start_on(store.clone(), &second).await;
    second.wait_for(all.len() - delivered.len()).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;

    let again: Vec<(u64, u64)> = second
        .attempts()
        .iter()
        .map(|a| (a.delivery.guild, a.delivery.reminder))
        .collect();
    assert_eq!(
        again.len(),
        all.len() - delivered.len(),
        "each undelivered one exactly once"
    );
    assert!(
        again.iter().all(|key| !delivered.contains(key)),
        "no recorded delivery repeated"
    );
    let seen: HashSet<(u64, u64)> = first
        .attempts()
        .iter()
        .map(|a| (a.delivery.guild, a.delivery.reminder))
        .chain(again)
        .collect();
    assert_eq!(seen, all, "nothing lost");
    assert_eq!(restarted.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn reminders_missed_while_down_go_out_at_start_up_marked_late() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let missed_due = t0() - Span::hours(1);
    let missed = env
        .remind(
            GUILD,
            dm(ALICE, "missed", missed_due),
            t0() - Span::hours(2),
        )
        .await;
    let on_time_due = t0() + Span::minutes(5);
    let on_time = env
        .remind(GUILD, dm(ALICE, "on time", on_time_due), t0())
        .await;
    let recorder = env.recorder();
    let _scheduler = env.start(&recorder).await;

    let sent = recorder.wait_for(2).await;
    assert_eq!(sent[0].delivery.reminder, missed);
    assert_eq!(
        (sent[0].at, sent[0].delivery.due_at, sent[0].delivery.late),
        (t0(), missed_due, true)
    );
    assert_eq!(sent[1].delivery.reminder, on_time);
    assert_eq!((sent[1].at, sent[1].delivery.late), (on_time_due, false));
    let late_flag: bool = env
        .on(GUILD, move |c| {
            c.query_row(
                "SELECT late FROM reminder_deliveries WHERE reminder_id = ?1",
                [missed as i64],
                |r| r.get(0),
            )
            .unwrap()
        })
        .await;
    assert!(late_flag);
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_with_backoff_until_it_succeeds() {
    let env = Env::new(t0());
    let due = t0() + Span::seconds(10);
    let id = env.remind(GUILD, post("x", due), t0()).await;
    let recorder = env.recorder();
    let busy = || Err(DeliveryError::Transient("503".into()));
    recorder.answer(id, [busy(), busy(), Ok(())]);
    let _scheduler = env.start(&recorder).await;

    let tries = recorder.wait_for(3).await;
    let times: Vec<DateTime<Utc>> = tries.iter().map(|a| a.at).collect();
    assert_eq!(
        times,
        [due, due + Span::seconds(30), due + Span::seconds(90)]
    );
    assert_eq!(
        tries.iter().map(|a| a.delivery.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(tries.iter().all(|a| a.delivery.due_at == due));
    let outcomes: Vec<bool> = tries.iter().map(|a| a.outcome.is_ok()).collect();
    assert_eq!(outcomes, [false, false, true]);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(recorder.attempts().len(), 3);
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() {
    let env = Env::new(t0());
    let id = env
        .remind(GUILD, post("x", t0() + Span::seconds(10)), t0())
        .await;
    let recorder = env.recorder();
    recorder.answer(
        id,
        [Err(DeliveryError::Permanent("Unknown Channel".into()))],
    );
    let _scheduler = env.start(&recorder).await;

    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    assert_eq!(recorder.attempts().len(), 1);
    let failed = env.reminder(GUILD, id).await;
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (Status::Failed, Some("Unknown Channel"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_who_has_not_opted_in_gets_no_dm() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let bobs = env
        .remind(GUILD, dm(BOB, "for bob", t0() + Span::seconds(10)), t0())
        .await;
    let alices = env
        .remind(
            GUILD,
            dm(ALICE, "for alice", t0() + Span::seconds(20)),
            t0(),
        )
        .await;
    let recorder = env.recorder();
    let _scheduler = env.start(&recorder).await;

    let sent = recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(recorder.attempts().len(), 1);
    assert_eq!(sent[0].delivery.reminder, alices);
    let refused = env.reminder(GUILD, bobs).await;
    assert_eq!(
        (refused.status, refused.last_error.as_deref()),
        (Status::Failed, Some(NOT_OPTED_IN))
    );
}

/// Five deliveries of "daily at 09:00" in Berlin starting on `first_day`; returns their UTC hours.
async fn daily_nine_in_berlin(first_day: (i32, u32, u32)) -> Vec<(u32, u32)> {
    let (y, m, d) = first_day;
    let first = Berlin
        .with_ymd_and_hms(y, m, d, 9, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let env = Env::new(first - Span::hours(1));
    env.opt_in(GUILD, ALICE).await;
    let new = NewReminder {
        time_zone: Berlin,
        recurrence: Some("daily at 09:00".parse::<Recurrence>().unwrap()),
        recurrence_end: Some(reminders::RepeatEnd::At(
            first + Span::days(4) + Span::hours(2),
        )),
        ..dm(ALICE, "standup", first)
    };
    let id = env.remind(GUILD, new, first - Span::hours(1)).await;
    let recorder = env.recorder();
    let _scheduler = env.start(&recorder).await;
    let sent = recorder.wait_for(5).await;
    tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(recorder.attempts().len(), 5, "ends after its end time");
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
    for a in &sent {
        assert_eq!(a.at, a.delivery.due_at);
        assert_eq!(
            a.at.with_timezone(&Berlin).format("%H:%M").to_string(),
            "09:00"
        );
    }
    sent.iter().map(|a| (a.at.day(), a.at.hour())).collect()
}

#[tokio::test(start_paused = true)]
async fn daily_at_nine_berlin_stays_at_nine_across_the_march_change() {
    // Clocks go forward on Sunday 2027-03-28: 09:00 is 08:00 UTC before, 07:00 UTC after.
    assert_eq!(
        daily_nine_in_berlin((2027, 3, 26)).await,
        [(26, 8), (27, 8), (28, 7), (29, 7), (30, 7)]
    );
}

#[tokio::test(start_paused = true)]
async fn daily_at_nine_berlin_stays_at_nine_across_the_october_change() {
    // Clocks go back on Sunday 2027-10-31: 09:00 is 07:00 UTC before, 08:00 UTC after.
    assert_eq!(
        daily_nine_in_berlin((2027, 10, 29)).await,
        [(29, 7), (30, 7), (31, 8), (1, 8), (2, 8)]
    );
}

/// Collects what tracing writes, for assertions on the log.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_guild_is_skipped_with_an_error_and_the_others_still_deliver() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::new(t0());
    let (good, bad, other) = (GUILD + 1, GUILD + 2, GUILD + 3);
    for guild in [good, bad, other] {
        env.remind(guild, post("x", t0() + Span::seconds(10)), t0())
            .await;
    }
    env.store.shutdown().await;
    let file = env
        .dir
        .path()
        .join("guilds")
        .join(bad.to_string())
        .join("quotes.db");
    std::fs::write(
        &file,
        b"this is not a database, just garbage bytes".repeat(100),
    )
    .unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", file.display()));
    }

    let store = GuildDatabaseManager::new(StoreConfig::new(env.dir.path())).unwrap();
    let recorder = env.recorder();
    let _scheduler = env.start_on(store, &recorder).await;
    let sent = recorder.wait_for(2).await;
    let guilds: HashSet<u64> = sent.iter().map(|a| a.delivery.guild).collect();
    assert_eq!(guilds, HashSet::from([good, other]));
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().any(|l| l.contains("ERROR")
            && l.contains("guild skipped")
            && l.contains(&bad.to_string())),
        "log: {text}"
    );
}

#[test]
fn the_index_follows_upserts_removals_and_forgotten_guilds() {
    let mut index = Index::default();
    let at = |s| t0() + Span::seconds(s);
    assert!(index.upsert(1, 10, at(50)));
    assert!(index.upsert(2, 20, at(40)));
    assert!(!index.upsert(2, 21, at(60)));
    assert!(!index.upsert(1, 10, at(70)), "moved later, no longer first");
    assert_eq!(index.pop_due(at(39)), Err(Some(at(40))));
    assert_eq!(index.pop_due(at(40)), Ok(((2, 20), at(40))));
    index.upsert(2, 20, at(45));
    index.forget_guild(2);
    assert!(
        !index.settle((2, 20), Some(at(100))),
        "forgotten while in flight"
    );
    assert_eq!(
        index
            .queue
            .iter()
            .map(|&(_, g, id)| (g, id))
            .collect::<Vec<_>>(),
        [(1, 10)]
    );
    index.remove(1, 10);
    assert_eq!(index.pop_due(at(1000)), Err(None));
}

/// Sends made by `recorder`, as reminder ids in order.
fn sent_ids(recorder: &Recorder) -> Vec<u64> {
    recorder
        .attempts()
        .iter()
        .map(|a| a.delivery.reminder)
        .collect()
}

/// With one send slot: a post due at 10 s hangs in its send, holding the slot, while `queued`
/// (due at 11 s) waits for it. Returns at 15 s with the ids of both.
async fn queued_for_a_send_slot(
    env: &Env,
    queued: NewReminder,
) -> (u64, u64, Arc<Recorder>, Scheduler) {
    let first = env
        .remind(GUILD, post("first", t0() + Span::seconds(10)), t0())
        .await;
    let queued = env.remind(GUILD, queued, t0()).await;
    let recorder = env.recorder();
    recorder.hold(first);
    let one_slot = SchedulerConfig {
        max_concurrent: 1,
        ..SchedulerConfig::default()
    };
    let scheduler = env.start_with(&recorder, one_slot).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(recorder.attempts().is_empty(), "the first send still hangs");
    assert_eq!(env.deliveries(GUILD, queued).await[0].0, "claimed");
    (first, queued, recorder, scheduler)
}

fn at_eleven(new: fn(&str, DateTime<Utc>) -> NewReminder) -> NewReminder {
    new("queued", t0() + Span::seconds(11))
}

#[tokio::test(start_paused = true)]
async fn a_reminder_cancelled_while_queued_for_a_send_slot_is_not_sent() {
    let env = Env::new(t0());
    let (first, queued, recorder, scheduler) = queued_for_a_send_slot(&env, at_eleven(post)).await;

    let now = env.clock.now();
    env.on(GUILD, move |c| {
        reminders::cancel(c, queued, ALICE, false, now).unwrap()
    })
    .await;
    scheduler.remove(GUILD, queued);
    recorder.let_go(first);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&recorder), [first]);
    assert!(
        env.deliveries(GUILD, queued).await.is_empty(),
        "claim released"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dm_queued_for_a_send_slot_is_not_sent_after_its_member_opts_out() {
    let env = Env::new(t0());
    env.opt_in(GUILD, ALICE).await;
    let dm_at_eleven = at_eleven(|message, due| dm(ALICE, message, due));
    let (first, queued, recorder, scheduler) = queued_for_a_send_slot(&env, dm_at_eleven).await;

    let now = env.clock.now();
    env.on(GUILD, move |c| set_dm_opt_in(c, ALICE, false, now).unwrap())
        .await;
    scheduler.recheck_guild(GUILD);
    recorder.let_go(first);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&recorder), [first]);
    let refused = env.reminder(GUILD, queued).await;
    assert_eq!(
        (refused.status, refused.last_error.as_deref()),
        (Status::Failed, Some(NOT_OPTED_IN))
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_of_a_forgotten_guild_is_sent_neither_queued_for_a_slot_nor_claimed_ahead() {
    let env = Env::new(t0());
    let ahead = env
        .remind(GUILD, post("claimed ahead", t0() + Span::seconds(30)), t0())
        .await;
    let (first, _queued, recorder, scheduler) = queued_for_a_send_slot(&env, at_eleven(post)).await;
    assert_eq!(env.deliveries(GUILD, ahead).await[0].0, "claimed");

    scheduler.forget_guild(GUILD);
    recorder.let_go(first);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        sent_ids(&recorder),
        [first],
        "only the send already under way"
    );
    assert_eq!(scheduler.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_send_under_way_finish_and_leaves_queued_ones_for_the_restart() {
    let env = Env::new(t0());
    let (first, queued, recorder, scheduler) = queued_for_a_send_slot(&env, at_eleven(post)).await;

    let let_go_soon = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        recorder.let_go(first);
    };
    tokio::join!(scheduler.shutdown(), let_go_soon);
    assert_eq!(sent_ids(&recorder), [first]);
    assert_eq!(
        env.deliveries(GUILD, first).await,
        [("delivered".into(), 1)]
    );
    assert_eq!(env.deliveries(GUILD, queued).await, [("claimed".into(), 0)]);

    let second = env.recorder();
    let _restarted = env.start(&second).await;
    second.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&second), [queued]);
    assert_eq!(second.attempts()[0].delivery.attempt, 1, "not sent before");
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_a_hung_send_at_its_limit() {
    let env = Env::new(t0());
    let (first, queued, recorder, scheduler) = queued_for_a_send_slot(&env, at_eleven(post)).await;

    let stopping = Instant::now();
    scheduler.shutdown().await;
    let limit = SchedulerConfig::default().shutdown_limit;
    assert!(stopping.elapsed() <= limit, "{:?}", stopping.elapsed());
    assert!(recorder.attempts().is_empty());

    // The hung send may have reached Discord: both go (again) after the restart.
    let second = env.recorder();
    let _restarted = env.start(&second).await;
    second.wait_for(2).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let mut again = sent_ids(&second);
    again.sort_unstable();
    assert_eq!(again, [first, queued]);
}

#[tokio::test(start_paused = true)]
async fn an_outcome_the_database_cannot_take_at_once_is_recorded_later_and_not_sent_again() {
    let env = Env::impatient(t0());
    let id = env
        .remind(GUILD, post("once", t0() + Span::seconds(10)), t0())
        .await;
    let recorder = env.recorder();
    recorder.hold(id);
    let _scheduler = env.start(&recorder).await;
    tokio::time::sleep(Duration::from_secs(15)).await;

    // The send is under way; its record meets a write lock held for ten seconds.
    let blocker = env.raw(GUILD);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    recorder.let_go(id);
    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        env.deliveries(GUILD, id).await[0].0,
        "claimed",
        "not recorded yet"
    );
    blocker.execute_batch("COMMIT").unwrap();

    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&recorder), [id], "sent once");
    assert_eq!(env.deliveries(GUILD, id).await[0].0, "delivered");
    assert_eq!(env.reminder(GUILD, id).await.status, Status::Sent);
}

#[tokio::test(start_paused = true)]
async fn an_edit_gives_up_saying_so_while_a_send_waits_that_long_to_be_recorded() {
    let env = Env::impatient(t0());
    let (id, recorder, scheduler) = sending_held(&env, post("old text", in_a_minute())).await;
    // The send went out; its record meets a write lock, and retries with backoff.
    let blocker = env.raw(GUILD);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    recorder.let_go(id);
    recorder.wait_for(1).await;

    let asked = env.clock.now();
    let change = reminders::ReminderEdit {
        message: Some("new text".into()),
        ..reminders::ReminderEdit::default()
    };
    let refused = scheduler
        .change(GUILD, id, move |c| {
            reminders::edit(c, id, ALICE, false, &change, asked)
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(refused, ReminderError::BeingSent(r) if r == id),
        "{refused}"
    );
    assert_eq!(
        (env.clock.now() - asked).num_seconds(),
        60,
        "twice the delivery timeout"
    );
    blocker.execute_batch("COMMIT").unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let stored = env.reminder(GUILD, id).await;
    assert_eq!(
        (stored.message.as_str(), stored.status),
        ("old text", Status::Sent)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_during_a_retry_backoff_waits_for_the_retry_time() {
    let env = Env::new(t0());
    let due = t0() + Span::seconds(10);
    let id = env.remind(GUILD, post("x", due), t0()).await;
    let first = env.recorder();
    first.answer(id, [Err(DeliveryError::Transient("503".into()))]);
    let scheduler = env.start(&first).await;
    first.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    scheduler.shutdown().await;

    let second = env.recorder();
    let _restarted = env.start(&second).await;
    let retried = second.wait_for(1).await;
    assert_eq!(
        (retried[0].at, retried[0].delivery.attempt),
        (due + Span::seconds(30), 2),
        "the first backoff after the failed attempt, neither at once nor counted twice"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(second.attempts().len(), 1);
    assert_eq!(env.deliveries(GUILD, id).await, [("delivered".into(), 2)]);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_reminder_is_skipped_and_the_rest_of_its_guild_still_go_out() {
    let env = Env::new(t0());
    let broken = env
        .remind(GUILD, post("broken", t0() + Span::seconds(10)), t0())
        .await;
    let fine = env
        .remind(GUILD, post("fine", t0() + Span::seconds(20)), t0())
        .await;
    env.on(GUILD, move |c| {
        c.execute(
            "UPDATE reminders SET due_at = 'soon' WHERE id = ?1",
            [i64::try_from(broken).unwrap()],
        )
        .unwrap()
    })
    .await;
    let recorder = env.recorder();
    let _scheduler = env.start(&recorder).await;
    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&recorder), [fine]);
}

#[tokio::test(start_paused = true)]
async fn a_guild_locked_at_start_up_is_read_again_later_and_its_reminders_go_out() {
    let env = Env::impatient(t0());
    let due = t0() + Span::minutes(5);
    let locked = env.remind(GUILD, post("locked", due), t0()).await;
    let free = env.remind(GUILD + 1, post("free", due), t0()).await;
    env.store.shutdown().await;
    let holder = env.raw(GUILD);
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
        .unwrap();

    let store = GuildDatabaseManager::new(impatient(env.dir.path())).unwrap();
    let recorder = env.recorder();
    let scheduler = env.start_on(store, &recorder).await;
    scheduler.indexed().await;
    assert_eq!(scheduler.pending(), 1, "the locked guild was skipped");
    drop(holder);

    let sent = recorder.wait_for(2).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(recorder.attempts().len(), 2);
    let guilds: HashSet<(u64, u64)> = sent
        .iter()
        .map(|a| (a.delivery.guild, a.delivery.reminder))
        .collect();
    assert_eq!(guilds, HashSet::from([(GUILD, locked), (GUILD + 1, free)]));
    assert!(sent.iter().all(|a| a.at == due), "on time");
}

#[tokio::test(start_paused = true)]
async fn reload_guild_schedules_what_was_written_behind_its_back_and_drops_what_was_deleted() {
    let env = Env::new(t0());
    // Claimed ahead (due in a minute), then deleted behind the scheduler's back.
    let (deleted, recorder, scheduler) = claimed_ahead(&env, post("deleted", in_a_minute())).await;
    let due = in_a_minute() + Span::minutes(5);
    let written = env
        .on(GUILD, move |c| {
            c.execute(
                "DELETE FROM reminders WHERE id = ?1",
                [i64::try_from(deleted).unwrap()],
            )
            .unwrap();
            reminders::create(c, &post("restored", due), usize::MAX, t0())
                .unwrap()
                .id
        })
        .await;

    scheduler.reload_guild(GUILD).await.unwrap();
    let sent = recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent_ids(&recorder), [written]);
    assert_eq!(sent[0].at, due);
    assert_eq!(scheduler.pending(), 0);
}

#[test]
fn a_read_begun_before_its_guild_was_forgotten_puts_nothing_back() {
    let mut index = Index::default();
    let begun = index.unload(1, Duration::from_secs(60));
    index.forget_guild(1);
    assert!(!index.merge(1, begun, vec![(10, t0())]));
    assert_eq!(index.pop_due(t0()), Err(None));
    let begun = index.unload(1, Duration::from_secs(60));
    assert!(
        index.merge(1, begun, vec![(10, t0())]),
        "one begun after it does"
    );
}

#[test]
fn a_read_begun_before_the_bot_changed_its_guild_is_read_again_instead_of_merged() {
    let mut index = Index::default();
    let at = |s| t0() + Span::seconds(s);
    let begun = index.generation(1);
    // The bot moves reminder 10 earlier while the read, which saw the old time, runs.
    index.changed(1);
    index.upsert(1, 10, at(30));
    assert!(!index.merge(1, begun, vec![(10, at(3600)), (11, at(60))]));
    assert_eq!(
        index.pop_due(at(30)),
        Ok(((1, 10), at(30))),
        "the change stands"
    );
    let again = index.generation(1);
    assert_eq!(index.next_reread(Instant::now()), Ok((1, again)));
    assert!(
        index.merge(1, again, vec![(11, at(60))]),
        "now the earliest"
    );
    assert_eq!(
        index.next_reread(Instant::now() + Duration::from_secs(3600)),
        Err(None)
    );
    assert_eq!(index.pop_due(at(60)), Ok(((1, 11), at(60))));
}

#[tokio::test(start_paused = true)]
async fn start_up_reads_no_guild_before_returning_and_reminders_changed_meanwhile_go_out_once_as_changed(
) {
    let env = Env::new(t0());
    let due = t0() + Span::hours(1);
    let mut ids = Vec::new();
    for g in 1..=100u64 {
        ids.push(env.remind(GUILD + g, post("x", due), t0()).await);
    }
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;
    assert_eq!(
        scheduler.pending(),
        0,
        "start-up returned before reading a guild"
    );

    // While the guilds are read: the last ones' reminders move earlier, one is cancelled.
    let moved = t0() + Span::seconds(30);
    for g in 96..=100u64 {
        let id = ids[g as usize - 1];
        env.on(GUILD + g, move |c| {
            c.execute(
                "UPDATE reminders SET due_at = ?1 WHERE id = ?2",
                (moved.timestamp(), i64::try_from(id).unwrap()),
            )
            .unwrap()
        })
        .await;
        scheduler.upsert(GUILD + g, id, moved);
    }
    let cancelled = ids[49];
    env.on(GUILD + 50, move |c| {
        reminders::cancel(c, cancelled, ALICE, false, t0()).unwrap()
    })
    .await;
    scheduler.remove(GUILD + 50, cancelled);
    scheduler.indexed().await;
    assert_eq!(scheduler.pending(), 99);

    let sent = recorder.wait_for(99).await;
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(recorder.attempts().len(), 99, "nothing sent twice");
    for attempt in &sent {
        let g = attempt.delivery.guild - GUILD;
        assert_ne!(g, 50, "the cancelled reminder was not sent");
        let expected = if g > 95 { moved } else { due };
        assert_eq!((g, attempt.at), (g, expected));
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_dropped_half_way_still_leaves_the_guild_scheduled() {
    let env = Env::new(t0());
    let due = t0() + Span::minutes(5);
    let id = env.remind(GUILD, post("kept", due), t0()).await;
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;

    // Polled once (it unloads the guild and starts reading), then dropped. A read quick enough
    // to end within that poll makes a whole reload instead, so try until one is cut short.
    let mut cut_short = false;
    for _ in 0..100 {
        cut_short = tokio::select! {
            biased;
            _ = scheduler.reload_guild(GUILD) => false,
            () = std::future::ready(()) => true,
        };
        if cut_short {
            break;
        }
    }
    assert!(cut_short, "dropped before its read was merged");
    assert_eq!(scheduler.pending(), 0);
    let sent = recorder.wait_for(1).await;
    assert_eq!((sent[0].delivery.reminder, sent[0].at), (id, due));
}

mod outcomes;

#[tokio::test(start_paused = true)]
async fn start_up_reads_first_the_guilds_whose_reminders_were_due_soonest_when_it_last_ran() {
    let env = Env::new(t0());
    // Directory order (ascending ids) would read the guild with the latest reminder first.
    for (days, guild) in [(3, GUILD), (2, GUILD + 1), (1, GUILD + 2)] {
        env.remind(guild, post("stand-up", t0() + Span::days(days)), t0())
            .await;
    }
    let recorder = env.recorder();
    let scheduler = env.start(&recorder).await;
    scheduler.indexed().await;
    scheduler.shutdown().await;

    let saved = env.store.reminder_order().await;
    assert_eq!(saved, [GUILD + 2, GUILD + 1, GUILD]);
    // A guild the saved order does not name (no reminder then) is read after those it does.
    let on_disk = vec![GUILD, GUILD + 1, GUILD + 2, GUILD + 3];
    assert_eq!(
        soonest_first(on_disk, &saved),
        [GUILD + 2, GUILD + 1, GUILD, GUILD + 3]
    );
}
