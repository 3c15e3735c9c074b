//! Sharding: a process given a shard range identifies as exactly those shards.

use std::time::Duration;

use guildkeep::store::ShardOwnership;

use crate::support::*;

/// serenity starts one shard every 5 s; a shard beyond the range would identify by then.
const NEXT_SHARD_BOOT: Duration = Duration::from_secs(7);

async fn on_shards(owned: std::ops::Range<u64>) -> TestBot {
    TestBot::start_with(move |s| {
        s.config.shard_count = Some(4);
        s.config.store.shards = Some(ShardOwnership { count: 4, owned });
    })
    .await
}

fn shards(identifies: &[serde_json::Value]) -> Vec<serde_json::Value> {
    identifies.iter().map(|i| i["shard"].clone()).collect()
}

#[tokio::test]
async fn two_processes_on_0_2_and_2_4_of_4_identify_as_exactly_their_shards() {
    let (low, high) = tokio::join!(on_shards(0..2), on_shards(2..4));
    let (low_two, high_two) = tokio::join!(low.fake.identifies(2), high.fake.identifies(2));
    assert_eq!(
        shards(&low_two),
        [serde_json::json!([0, 4]), serde_json::json!([1, 4])]
    );
    assert_eq!(
        shards(&high_two),
        [serde_json::json!([2, 4]), serde_json::json!([3, 4])]
    );
    // No third shard follows in either process.
    let third = async {
        tokio::join!(low.fake.identifies(3), high.fake.identifies(3));
    };
    assert!(tokio::time::timeout(NEXT_SHARD_BOOT, third).await.is_err());
    assert_eq!(shards(&low.fake.identifies_so_far()).len(), 2);
    assert_eq!(shards(&high.fake.identifies_so_far()).len(), 2);
    tokio::join!(low.shutdown(), high.shutdown());
}
