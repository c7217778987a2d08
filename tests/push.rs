//! Push between agents on PostgreSQL: a commit on one agent wakes readers
//! on another through NOTIFY, long before the (slowed) poll would, and
//! hands it the index rows so the woken readers look nothing up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_agent_wakes_a_long_poll_on_another_through_notify() {
    // A 3 s poll runs every 30 s while the feed is up: only the push can
    // answer the long-polls below within their 5 s.
    let fleet = Fleet::start(2, "push", &["--watermark-poll-interval", "3s"]).await;
    let (a, b) = (fleet.api(0), fleet.api(1));
    a.create_topic("pushed", 1).await.expect(201);
    // Let the second agent's listener connect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let misses = r#"streamhouse_cache_misses_total{cache="index"}"#;
    let misses_before = b.metric(misses).await;
    for i in 0..5 {
        let reader = b.clone();
        let waiting = tokio::spawn(async move {
            reader
                .read("pushed", 0, &format!("offset={i}&wait_ms=5000"))
                .await
                .expect(200)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        a.produce("pushed", json!([{ "value": i }]))
            .await
            .expect(200);
        let page = waiting.await.unwrap();
        assert_eq!(page["records"][0]["value"], i, "woken by the push: {page}");
    }
    assert!(b.metric("streamhouse_index_rows_announced_total").await >= 5.0);
    assert_eq!(
        b.metric(misses).await,
        misses_before,
        "the woken readers found the announced rows cached"
    );
}
