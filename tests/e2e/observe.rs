//! End to end: what an operator sees on the metrics listener while members use the bot.

use std::collections::HashMap;

use serde_json::json;

use crate::support::{option, TestBot, ALICE, BOB, WAIT};

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

/// `/readyz` turns 200 once the shard is READY; polled, bounded by [`WAIT`].
async fn until_ready(bot: &TestBot) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot.http_get("/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::task::yield_now().await;
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

    let ids: Vec<String> = [ALICE, BOB, crate::support::GUILD, crate::support::CHANNEL]
        .iter()
        .map(u64::to_string)
        .collect();
    for sample in &after {
        let labels: HashMap<_, _> = sample.labels.iter().collect();
        for (key, value) in labels {
            assert!(!ids.contains(value), "{} has an id in {key}", sample.metric);
            assert!(
                value.len() < 20 || !value.chars().all(|c| c.is_ascii_digit()),
                "{key}={value}"
            );
        }
    }
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
