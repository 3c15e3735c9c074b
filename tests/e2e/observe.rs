//! End to end: what an operator sees on the metrics listener while members use the bot.

use std::{collections::HashMap, sync::Arc};

use chrono::TimeDelta;
use serde_json::json;

use crate::support::{
    option, quick, Ahead, Recorded, TestBot, ALICE, BOB, CHANNEL, GUILD, OTHER_GUILD, WAIT,
};

/// Parses a scrape with a Prometheus parser (not by hand), keyed by metric name.
fn parse(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .expect("the scrape parses")
        .samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v)) => *v,
        Some(prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

async fn scrape(bot: &TestBot) -> Vec<prometheus_parse::Sample> {
    let (status, text) = bot.http_get("/metrics").await;
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

/// Between two looks at the listener while waiting for the gateway sampler (once a second).
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// `/readyz` turns 200 once the shard is READY; polled, bounded by [`WAIT`].
async fn until_ready(bot: &TestBot) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot.http_get("/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn commands_and_refusals_move_the_counters_and_no_label_is_an_id() {
    let bot = TestBot::start().await;
    assert_eq!(bot.http_get("/healthz").await.0, 200);
    until_ready(&bot).await;
    let before = scrape(&bot).await;
    assert_eq!(value(&before, "guildkeep_ready", &[]), 1.0);
    assert_eq!(
        value(
            &before,
            "guildkeep_gateway_shards",
            &[("state", "connected")]
        ),
        1.0
    );

    bot.slash(ALICE, "quote add", json!([option("text", "measure twice")]))
        .await;
    let missing = bot.slash(BOB, "quote get", json!([option("id", 99)])).await;
    assert_eq!(
        missing["data"]["content"],
        "There is no quote #99 in this server."
    );

    let after = scrape(&bot).await;
    let ok = [("command", "quote add"), ("outcome", "ok")];
    let refused = [("command", "quote get"), ("outcome", "user_error")];
    assert_eq!(value(&after, "guildkeep_commands_total", &ok), 1.0);
    assert_eq!(value(&after, "guildkeep_commands_total", &refused), 1.0);
    assert!(!after.iter().any(|s| s.metric == "guildkeep_commands_total"
        && s.labels.get("outcome") == Some("internal_error")));
    // The first use of the guild opened its file (a miss); the second found it open (a hit).
    let moved = |name| value(&after, name, &[]) - value(&before, name, &[]);
    assert!(moved("guildkeep_store_misses_total") >= 1.0);
    assert!(moved("guildkeep_store_hits_total") >= 1.0);
    assert_eq!(value(&after, "guildkeep_store_guilds_open", &[]), 1.0);
    assert_eq!(value(&after, "guildkeep_store_pending_deletions", &[]), 0.0);
    bot.remove_from(GUILD).await;
    let removed = scrape(&bot).await;
    assert_eq!(
        value(&removed, "guildkeep_store_pending_deletions", &[]),
        1.0
    );
    let answered = [("command", "quote add")];
    assert_eq!(
        value_count(&after, "guildkeep_command_response_seconds", &answered),
        1.0
    );
    assert_eq!(
        value_count(
            &after,
            "guildkeep_command_first_response_seconds",
            &answered
        ),
        1.0
    );

    no_label_is_an_id(&after);
    bot.shutdown().await;
}

/// No label value is one of the test's ids, nor any number as long as a snowflake.
fn no_label_is_an_id(samples: &[prometheus_parse::Sample]) {
    let ids: Vec<String> = [ALICE, BOB, GUILD, OTHER_GUILD, CHANNEL]
        .iter()
        .map(u64::to_string)
        .collect();
    for sample in samples {
        let labels: HashMap<_, _> = sample.labels.iter().collect();
        for (key, value) in labels {
            assert!(!ids.contains(value), "{} has an id in {key}", sample.metric);
            assert!(
                value.len() < 16 || !value.chars().all(|c| c.is_ascii_digit()),
                "{key}={value}"
            );
        }
    }
}

/// Scrapes until `moved` holds of a scrape (the figures of a send are counted just after
/// Discord's answer), bounded by [`WAIT`].
async fn scrape_until(
    bot: &TestBot,
    what: &str,
    moved: impl Fn(&[prometheus_parse::Sample]) -> bool,
) -> Vec<prometheus_parse::Sample> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let samples = scrape(bot).await;
        if moved(&samples) {
            return samples;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A histogram's cumulative count at bucket `le`.
fn at_or_below(samples: &[prometheus_parse::Sample], name: &str, le: f64) -> f64 {
    let found = samples.iter().find(|s| s.metric == name);
    let Some(prometheus_parse::Value::Histogram(buckets)) = found.map(|s| &s.value) else {
        panic!("{name} is not a histogram in the scrape");
    };
    buckets
        .iter()
        .find(|b| b.less_than == le)
        .unwrap_or_else(|| panic!("{name} has no bucket {le}"))
        .count
}

/// The scheduler an hour ahead (a reminder set "in 2m" goes out at once, 58 minutes late on
/// its clock), one guild slot for two guilds on disk, Discord refusing DMs to [`BOB`]: a DM
/// delivered to [`ALICE`] and one refused to Bob move the reminder metrics, and the store's
/// histograms and open origins move as the slot is handed between the guilds.
#[tokio::test]
async fn a_reminder_delivered_and_one_refused_are_counted_and_the_store_histograms_move() {
    let bot = TestBot::start_with(|s| {
        s.builder = |b| quick(b).scheduler_clock(Arc::new(Ahead(TimeDelta::hours(1))));
        s.config.store.max_open_guilds = 1;
        s.on_disk = vec![GUILD, OTHER_GUILD];
    })
    .await;
    until_ready(&bot).await;
    let started = scrape_until(&bot, "the guilds on disk counted", |s| {
        s.iter()
            .any(|s| s.metric == "guildkeep_store_guilds_on_disk")
    })
    .await;
    assert_eq!(value(&started, "guildkeep_store_guilds_on_disk", &[]), 2.0);
    // The scheduler read both guilds at start-up, one slot at a time.
    let reopens = [("origin", "reopen")];
    assert!(value(&started, "guildkeep_store_opens_total", &reopens) >= 2.0);
    assert_eq!(
        value(
            &started,
            "guildkeep_store_opens_total",
            &[("origin", "template")]
        ),
        0.0
    );
    assert!(value_count(&started, "guildkeep_store_open_latency_seconds", &[]) >= 2.0);
    assert!(value_count(&started, "guildkeep_store_slot_wait_seconds", &[]) >= 1.0);
    assert_eq!(
        value(&started, "guildkeep_store_at_capacity_total", &[]),
        0.0
    );
    assert_eq!(
        value_count(&started, "guildkeep_reminder_lateness_seconds", &[]),
        0.0
    );

    bot.fake
        .fail(&format!("/channels/{}/messages", BOB + 7), 403, 50007);
    for member in [ALICE, BOB] {
        bot.slash(member, "optin dm on", json!([])).await;
        let when = [option("when", "in 2m"), option("what", "stretch")];
        bot.slash(member, "remind me", json!(when)).await;
    }
    let dm = format!("/channels/{}/messages", ALICE + 7);
    bot.fake
        .wait_for("the DM", |r: &Recorded| r.path == dm && r.accepted())
        .await;
    let delivered = [("outcome", "delivered"), ("code", "none")];
    let refused = [("outcome", "refused"), ("code", "50007")];
    let deliveries = "guildkeep_reminder_deliveries_total";
    let sent = scrape_until(&bot, "both sends counted", |s| {
        s.iter()
            .any(|s| s.metric == deliveries && s.labels.get("code") == Some("50007"))
            && value(s, deliveries, &delivered) >= 1.0
    })
    .await;
    assert_eq!(value(&sent, deliveries, &delivered), 1.0);
    assert_eq!(value(&sent, deliveries, &refused), 1.0);
    assert!(value(&sent, "guildkeep_reminders_claimed_total", &[]) >= 2.0);
    // Only the delivered one has a lateness: due 2 minutes after it was set, sent at once on
    // a clock an hour ahead, so between a quarter of an hour and an hour.
    let lateness = "guildkeep_reminder_lateness_seconds";
    assert_eq!(value_count(&sent, lateness, &[]), 1.0);
    assert_eq!(at_or_below(&sent, lateness, 900.0), 0.0);
    assert_eq!(at_or_below(&sent, lateness, 3600.0), 1.0);
    let late = value(&sent, "guildkeep_reminder_lateness_seconds_sum", &[]);
    assert!((3300.0..3600.0).contains(&late), "{late}");
    assert!(sent
        .iter()
        .any(|s| s.metric == "guildkeep_reminders_send_queue"));
    no_label_is_an_id(&sent);
    bot.shutdown().await;
}

/// A histogram's `_count`, as the parser presents it.
fn value_count(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            buckets.last().map_or(0.0, |b| b.count)
        }
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

/// An interaction older than Discord's window is dropped, and counted.
#[tokio::test]
async fn a_stale_interaction_is_counted_as_a_missed_deadline() {
    let bot = TestBot::start().await;
    let stale = bot.fake.id_made(std::time::Duration::from_secs(10));
    bot.send_slash_as(
        stale,
        ALICE,
        "quote add",
        json!([option("text", "replayed")]),
    );
    bot.slash(ALICE, "quote add", json!([option("text", "fresh")]))
        .await;
    let missed = "guildkeep_interactions_missed_deadline_total";
    let deadline = tokio::time::Instant::now() + WAIT;
    let samples = loop {
        let samples = scrape(&bot).await;
        if value(&samples, missed, &[]) >= 1.0 {
            break samples;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stale one never counted"
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(value(&samples, missed, &[]), 1.0);
    let ok = [("command", "quote add"), ("outcome", "ok")];
    assert_eq!(value(&samples, "guildkeep_commands_total", &ok), 1.0);
    bot.shutdown().await;
}

/// Writes a backup set as the backup job would, with one guild copied and none failed.
fn complete_backup_set(data_dir: &std::path::Path, name: &str, bytes: u64) {
    use guildkeep::ops::backup::{GuildCopy, Manifest, MANIFEST};
    let set = data_dir.join("backups").join(name);
    std::fs::create_dir_all(&set).expect("set directory");
    let copy = GuildCopy {
        file: format!("{}.db", crate::support::GUILD),
        bytes,
        sha256: String::new(),
        schema_version: 1,
        rows: Default::default(),
        integrity: "ok".into(),
    };
    let manifest = Manifest {
        started_at: "2026-01-02T03:04:00+00:00".into(),
        finished_at: "2026-01-02T03:04:05+00:00".into(),
        guildkeep_version: "test".into(),
        schema_latest: 1,
        guilds: [(crate::support::GUILD, copy)].into(),
        failed: Default::default(),
        erasures: vec![],
    };
    let text = serde_json::to_vec(&manifest).expect("manifest");
    std::fs::write(set.join(MANIFEST), text).expect("manifest written");
}

/// Every metric the shipped dashboard and alert rules query is in a scrape (declared, at
/// least: a labelled family with no sample yet still has its `# TYPE` line).
#[tokio::test]
async fn the_dashboard_and_the_alert_rules_name_only_metrics_that_exist() {
    let bot = TestBot::start().await;
    complete_backup_set(bot.dir.path(), "20260102T030400.000Z", 4096);
    until_ready(&bot).await;
    // Labelled families appear with their first sample.
    bot.slash(
        ALICE,
        "quote add",
        json!([option("text", "for the histograms")]),
    )
    .await;
    let (_, text) = bot.http_get("/metrics").await;
    let samples = parse(&text);
    assert_eq!(
        value(&samples, "guildkeep_backup_last_complete_guilds", &[]),
        1.0
    );
    assert_eq!(
        value(&samples, "guildkeep_backup_last_complete_bytes", &[]),
        4096.0
    );
    assert_eq!(
        value(
            &samples,
            "guildkeep_backup_last_complete_timestamp_seconds",
            &[]
        ),
        1_767_323_045.0
    );
    assert_eq!(
        value(&samples, "guildkeep_backup_newest_failed_guilds", &[]),
        0.0
    );
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let exists = |name: &str| {
        let base = ["_bucket", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        samples.iter().any(|s| s.metric == name || s.metric == base)
            || declared.contains(&name)
            || declared.contains(&base)
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for file in ["guildkeep.dashboard.json", "guildkeep.rules.yml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("shipped file");
        let mut named = 0;
        for (at, _) in text.match_indices("guildkeep_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(exists(&name), "{file} names {name}, which no scrape has");
            named += 1;
        }
        assert!(named > 5, "{file} names too few metrics");
    }
    // promtool lints the classic text format, in which a counter's `# HELP` names the
    // `_total` series; OpenMetrics names the family. Any other complaint fails.
    let complaints = promtool(&["check", "metrics"], &text).await;
    for complaint in complaints.lines() {
        let counter = complaint
            .strip_suffix(" no help text")
            .and_then(|name| name.strip_suffix("_total"));
        assert!(
            counter.is_some_and(|family| text.contains(&format!("# HELP {family} "))),
            "promtool check metrics: {complaint}"
        );
    }
    let rules = root.join("guildkeep.rules.yml");
    let rules = promtool(
        &["check", "rules", rules.to_str().expect("a UTF-8 path")],
        "",
    )
    .await;
    assert!(rules.is_empty() || rules.contains("SUCCESS"), "{rules}");
    bot.shutdown().await;
}

/// Runs `promtool` (Debian's `prometheus` package) with `input` on its standard input and
/// returns what it said; nothing where it is not installed (the test says it skipped).
async fn promtool(args: &[&str], input: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let child = tokio::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!(
            "promtool is not installed: `promtool {}` skipped",
            args.join(" ")
        );
        return String::new();
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("written");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool ran");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A process owning shards 0..2: once shard 0 is READY and shard 1 (started 5 s later by
/// serenity) is not, the bot is not ready; once both are, it is.
#[tokio::test]
async fn readyz_waits_for_every_owned_shard() {
    let bot = TestBot::start_with(|s| {
        s.config.shard_count = Some(4);
        s.config.store.shards = Some(guildkeep::store::ShardOwnership {
            count: 4,
            owned: 0..2,
        });
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let one_connected = loop {
        let samples = scrape(&bot).await;
        if value(
            &samples,
            "guildkeep_gateway_shards",
            &[("state", "connected")],
        ) >= 1.0
        {
            break samples;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "shard 0 never READY"
        );
        tokio::time::sleep(POLL).await;
    };
    let connected = value(
        &one_connected,
        "guildkeep_gateway_shards",
        &[("state", "connected")],
    );
    let ready = value(&one_connected, "guildkeep_ready", &[]);
    assert_eq!(ready, if connected >= 2.0 { 1.0 } else { 0.0 });
    if bot.http_get("/readyz").await.0 == 200 {
        // Only if shard 1 has meanwhile identified too.
        assert_eq!(bot.fake.identifies_so_far().len(), 2);
    }
    bot.fake.identifies(2).await;
    until_ready(&bot).await;
    let samples = scrape(&bot).await;
    assert_eq!(
        value(
            &samples,
            "guildkeep_gateway_shards",
            &[("state", "connected")]
        ),
        2.0
    );
    assert_eq!(value(&samples, "guildkeep_ready", &[]), 1.0);
    bot.shutdown().await;
}
