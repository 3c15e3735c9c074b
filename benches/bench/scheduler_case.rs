//! The reminder scheduler's case: a restart over a million reminders. How soon a command is
//! answered after start-up, how long the index of every active reminder of every guild on disk
//! takes to build in the background and how much memory it takes, and how late the reminders
//! due in the first seconds after the start go out while it is built. No baseline: the goals
//! are absolute.
//!
//! Each repeat runs in a fresh child process (see `main.rs`), so start-up reads the guilds
//! as a restarted bot would and the memory figures are not those of earlier cases. RSS growth
//! across start-up is the index plus the store's cache of open guilds the reads leave behind.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use guildkeep::reminders::{Clock, Deliver, Delivery, DeliveryFuture, Scheduler, SchedulerConfig};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::{
    measure::{median_of, peak_rss_mib, rss_mib, Samples},
    set_aside,
    store_cases::{copy_guilds, store},
    Case, Size, REPEATS,
};

const REMINDERS_PER_GUILD: u64 = 100;
const DAY_SECS: i64 = 86_400;
/// The channel every seeded reminder posts in; the case's delivery sends nothing.
const CHANNEL: i64 = 1;

/// One repeat, as the child process is told it besides the data directory: when it starts
/// (the daily reminders come due over the seconds after), how many reminders to expect due
/// then, and how far ahead the scheduler claims them.
pub struct Point {
    pub start_at: i64,
    pub due: usize,
    pub claim_ahead_ms: i64,
}

impl Point {
    pub fn to_args(&self) -> Vec<String> {
        [self.start_at, self.due as i64, self.claim_ahead_ms]
            .map(|n| n.to_string())
            .to_vec()
    }

    pub fn from_args(args: &[String]) -> Self {
        let number = |i: usize| args[i].parse::<i64>().expect("scheduler point argument");
        Self {
            start_at: number(0),
            due: number(1) as usize,
            claim_ahead_ms: number(2),
        }
    }
}

pub async fn scheduler(
    size: Size,
    scratch: &Path,
    measure_child: impl Fn(&Path, &Point) -> Value,
) -> Case {
    // Quick: few guilds, because creating and seeding each one costs fsyncs, and the due
    // reminders in the first second, because each repeat waits for the last of them. Full:
    // due over the first 20 s, the time the index takes to build here. The bot's claim ahead
    // (20 s) is sized for a burst of 10,000; a second claims the quick ones.
    let guilds = size.pick(100, 10_000) as u64;
    let spread = size.pick(1, 20) as u64;
    let claim_ahead = if size.quick {
        Duration::from_secs(1)
    } else {
        SchedulerConfig::default().claim_ahead
    };
    let dir = scratch.join("scheduler");
    // Tomorrow, so that nothing is due before a child moves its clock there.
    let first_start = Utc::now().timestamp() + DAY_SECS;
    let seeding = Instant::now();
    seed(&dir, guilds, spread, first_start).await;
    let seed_secs = seeding.elapsed().as_secs_f64();
    // The due reminders repeat daily, so each repeat starts a day after the last one and every
    // start-up indexes the same number of active ones. The first start finds no saved reading
    // order (as after an import): it is reported on its own, and the repeats after it, which
    // read the guilds soonest first as a restarted bot does, give the figures.
    let mut runs: Vec<Value> = (0..=REPEATS as i64)
        .map(|repeat| {
            let point = Point {
                start_at: first_start + repeat * DAY_SECS,
                due: guilds as usize,
                claim_ahead_ms: claim_ahead.as_millis() as i64,
            };
            measure_child(&dir, &point)
        })
        .collect();
    set_aside(&dir);
    let no_saved_order = runs.remove(0);
    let figure = |key: &str| median_of(&runs, key);
    let (first_answer_s, index_s, p99_ms) = (
        figure("first_answer_s"),
        figure("index_s"),
        figure("lateness_p99_ms"),
    );
    Case::new(
        "reminder scheduler",
        json!({
            "first_answer_s": first_answer_s,
            "index_s": index_s,
            "startup_rss_growth_mib": figure("startup_rss_growth_mib"),
            "peak_rss_mib": figure("peak_rss_mib"),
            "lateness_p50_ms": figure("lateness_p50_ms"),
            "lateness_p99_ms": p99_ms,
            "lateness_max_ms": figure("lateness_max_ms"),
            "no_saved_order_lateness_p99_ms": no_saved_order["lateness_p99_ms"],
            "reminders": guilds * REMINDERS_PER_GUILD,
            "guilds": guilds,
            "due_in_first_s": spread,
            "due_then": guilds,
            "claimed_ahead_s": claim_ahead.as_secs_f64(),
            "seed_s": seed_secs,
        }),
        None,
        None,
        "first answer < 1 s; index < 10 s; lateness p99 < 1 s",
        first_answer_s < 1.0 && index_s < 10.0 && p99_ms < 1000.0,
    )
}

/// Guilds 1..=`guilds`, each with [`REMINDERS_PER_GUILD`] active channel reminders: the first
/// repeating daily, due 1 to `spread` seconds after `start` (guild `g` at `(g - 1) % spread +
/// 1`), the others one-offs spread over the year after. The due ones are one per guild, as
/// when many members across the fleet ask for the same time of day: every send then has a
/// guild of its own to open and write. Guilds 1..=`spread` are seeded through the store and
/// the others are copies of them: seeding 10,000 guilds one by one took a third of the case's
/// time.
async fn seed(dir: &Path, guilds: u64, spread: u64, start: i64) {
    let store = store(dir, 256);
    let models = spread.min(guilds);
    for model in 1..=models {
        let due = start + model as i64;
        store
            .with_guild(model, move |c| insert_reminders(c, due))
            .await
            .unwrap()
            .unwrap();
    }
    store.shutdown().await;
    copy_guilds(dir, models, models + 1..=guilds).await;
}

fn insert_reminders(conn: &mut rusqlite::Connection, first_due: i64) -> rusqlite::Result<()> {
    let later = first_due + 30 * DAY_SECS;
    let tx = conn.transaction()?;
    {
        // A raw INSERT rather than `reminders::create`: that one runs its own IMMEDIATE
        // transaction with a cap count and a read-back per reminder, which at a million
        // reminders would take longer than the case it prepares. The columns are those
        // `create` writes for a channel reminder; channel reminders need no opt-in rows.
        let mut insert = tx.prepare(
            "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at, \
             recurrence, created_at, updated_at) \
             VALUES (?1, 'channel', ?2, 'stand-up in five minutes', ?3, ?4, ?5, ?5)",
        )?;
        for i in 0..REMINDERS_PER_GUILD {
            let member = (1_000 + i) as i64;
            let (due, recurrence) = if i == 0 {
                (first_due, Some("every 1d"))
            } else {
                (later + (member * 7_919) % (365 * DAY_SECS), None)
            };
            insert.execute(rusqlite::params![
                member,
                CHANNEL,
                due,
                recurrence,
                first_due - DAY_SECS
            ])?;
        }
    }
    tx.commit()
}

/// One repeat, in a fresh process: move the clock to `point.start_at`, start the scheduler
/// over `dir`, and time the first command answered (in the guild read last) and the index
/// built; record how late each reminder due in the first seconds reaches the (no-op) delivery.
pub async fn scheduler_point(dir: &Path, point: &Point) -> Value {
    let store = store(dir, 256);
    let clock = Arc::new(MovableClock::default());
    let delivery = Arc::new(NoOpDelivery {
        clock: clock.clone(),
        lateness: Mutex::new(Samples::with_capacity(point.due)),
        delivered: AtomicUsize::new(0),
        expected: point.due,
        all_in: Notify::new(),
    });
    let config = SchedulerConfig {
        claim_ahead: Duration::from_millis(point.claim_ahead_ms as u64),
        ..SchedulerConfig::default()
    };
    clock.move_to(DateTime::from_timestamp(point.start_at, 0).unwrap());
    let rss_before = rss_mib();
    let started = Instant::now();
    let scheduler = Scheduler::start(store.clone(), delivery.clone(), clock.clone(), config)
        .await
        .expect("scheduler start-up");
    let all_in = delivery.all_in.notified();
    // A member's `/remind list`, in the guild whose reminders are read last.
    let last = point.due as i64;
    store
        .with_existing_guild(last as u64, move |c| {
            c.query_row(
                "SELECT count(*) FROM reminders WHERE created_by = ?1 AND status = 'active'",
                [1_000],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
        .await
        .unwrap();
    let first_answer = started.elapsed();
    scheduler.indexed().await;
    let index = started.elapsed();
    let rss_growth = rss_mib() - rss_before;
    tokio::time::timeout(Duration::from_secs(300), all_in)
        .await
        .expect("every due reminder delivered");
    scheduler.shutdown().await;
    store.shutdown().await;
    let lateness = delivery.lateness.lock().unwrap();
    json!({
        "first_answer_s": first_answer.as_secs_f64(),
        "index_s": index.as_secs_f64(),
        "startup_rss_growth_mib": rss_growth,
        "peak_rss_mib": peak_rss_mib(),
        "lateness_p50_ms": lateness.percentile_ms(50.0),
        "lateness_p99_ms": lateness.percentile_ms(99.0),
        "lateness_max_ms": lateness.percentile_ms(100.0),
    })
}

/// The real wall clock, moved forward by a settable amount: the seeded reminders come due
/// when the case says, and lateness is still measured in real time.
#[derive(Default)]
struct MovableClock {
    ahead_ms: AtomicI64,
}

impl MovableClock {
    fn move_to(&self, at: DateTime<Utc>) {
        let ahead = (at - Utc::now()).num_milliseconds();
        self.ahead_ms.store(ahead, Ordering::Relaxed);
    }
}

impl Clock for MovableClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
    }
}

/// Sends nothing; records how long after its due time each reminder reached it.
struct NoOpDelivery {
    clock: Arc<MovableClock>,
    lateness: Mutex<Samples>,
    delivered: AtomicUsize,
    expected: usize,
    all_in: Notify,
}

impl Deliver for NoOpDelivery {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture<'_> {
        let late = (self.clock.now() - delivery.due_at)
            .to_std()
            .unwrap_or_default();
        self.lateness.lock().unwrap().push(late);
        if self.delivered.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.all_in.notify_one();
        }
        Box::pin(std::future::ready(Ok(())))
    }
    /// Every delivery succeeds, so no notice is ever due.
    fn notify(&self, _user: u64, _text: String) -> DeliveryFuture<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}
