//! Cost shape: N produce requests spread over M partitions cost one object
//! PUT and a constant number of metadata round trips per flush, whatever M:
//! five on SQLite, one on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use common::postgres::Postgres;
use serde_json::{Value, json};

/// Produces one record to each of `partitions` partitions in `requests`
/// concurrent requests, all inside one linger window; returns the object
/// PUTs, commit round trips and flushes it cost.
async fn one_flush_cost(
    a: &TestAgent,
    topic: &str,
    partitions: u32,
    requests: u32,
) -> (u64, u64, u64) {
    a.create_topic(topic, partitions).await;
    let m = &a.metrics;
    let before = (
        m.object_puts.get(),
        m.commit_statements.get(),
        m.flushes.get(),
    );
    let sends = (0..requests).map(|i| {
        let records: Vec<Value> = (i..partitions)
            .step_by(requests as usize)
            .map(|p| json!({"value": p, "partition": p}))
            .collect();
        let api = a.api.clone();
        async move {
            api.produce(topic, json!(records)).await.expect(200);
        }
    });
    futures_util::future::join_all(sends).await;
    (
        m.object_puts.get() - before.0,
        m.commit_statements.get() - before.1,
        m.flushes.get() - before.2,
    )
}

async fn check_constant_cost(a: &TestAgent, shapes: &[(u32, u32)], expected_trips: u64) {
    let mut round_trips = Vec::new();
    for (i, &(partitions, requests)) in shapes.iter().enumerate() {
        let (puts, trips, flushes) =
            one_flush_cost(a, &format!("cost{i}"), partitions, requests).await;
        assert_eq!(flushes, 1, "{partitions} partitions: one flush");
        assert_eq!(puts, 1, "{partitions} partitions: one object PUT");
        round_trips.push(trips);
    }
    assert!(
        round_trips.windows(2).all(|w| w[0] == w[1]),
        "round trips per flush {round_trips:?}"
    );
    assert_eq!(
        round_trips[0], expected_trips,
        "round trips of a flush commit"
    );
}

#[tokio::test]
async fn sqlite_flush_costs_one_put_and_constant_statements() {
    // A long linger, so 300 concurrent requests on a loaded machine still land
    // in one flush.
    let a = TestAgent::start(&["--linger", "3s"]).await;
    // BEGIN, the object row, the partition rows, the index rows, COMMIT.
    check_constant_cost(&a, &[(1, 1), (10, 10), (300, 300)], 5).await;
}

#[tokio::test]
async fn postgres_flush_of_1000_partitions_costs_what_one_partition_costs() {
    let pg = Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--linger", "2s", "--metadata-url", &url]).await;
    // One statement does it all.
    check_constant_cost(&a, &[(1, 1), (1000, 100), (10, 10)], 1).await;
}
