//! Cost shape: N produce requests spread over M partitions cost one object
//! PUT and a constant number of metadata statements per flush, whatever M.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use serde_json::json;

async fn one_flush_cost(a: &TestAgent, topic: &str, partitions: u32) -> (u64, u64, u64) {
    a.create_topic(topic, partitions).await;
    let (puts, stmts, flushes) = (
        a.metrics.object_puts.get(),
        a.metrics.metadata_statements.get(),
        a.metrics.flushes.get(),
    );
    // Every request lands within one linger window, so one flush takes them all.
    let requests = (0..partitions).map(|p| {
        let (c, u) = (
            a.client.clone(),
            a.u(&format!("/v1/topics/{topic}/records")),
        );
        async move {
            let r = c
                .post(u)
                .json(&json!({"records": [{"value": p, "partition": p}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    });
    futures_util::future::join_all(requests).await;
    (
        a.metrics.object_puts.get() - puts,
        a.metrics.metadata_statements.get() - stmts,
        a.metrics.flushes.get() - flushes,
    )
}

#[tokio::test]
async fn a_flush_costs_one_put_and_constant_statements_whatever_the_partitions() {
    let a = TestAgent::start(&["--linger", "1500ms"]).await;
    let mut statements = Vec::new();
    for (i, m) in [1u32, 10, 300].into_iter().enumerate() {
        let (puts, stmts, flushes) = one_flush_cost(&a, &format!("cost{i}"), m).await;
        assert_eq!(flushes, 1, "{m} partitions: one flush");
        assert_eq!(puts, 1, "{m} partitions: one object PUT");
        statements.push(stmts);
    }
    assert!(
        statements.windows(2).all(|w| w[0] == w[1]),
        "statements per flush {statements:?}"
    );
    assert!(
        statements[0] <= 6,
        "a flush commit is at most 6 statements, got {}",
        statements[0]
    );
}
