//! Consumer-group offsets: commit, fetch, lag, over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use serde_json::{Value, json};

#[tokio::test]
async fn commit_fetch_and_lag() {
    let a = TestAgent::start(&[]).await;
    let api = &a.api;
    a.create_topic("orders", 2).await;
    let recs: Vec<Value> = (0..10)
        .map(|i| json!({"value": i, "partition": i % 2}))
        .collect();
    api.produce("orders", json!(recs)).await.expect(200);

    let empty = api.group_offsets("billing").await.expect(200);
    assert_eq!(empty, json!({"group": "billing", "offsets": []}));

    let committed = api
        .commit(
            "billing",
            json!([
                {"topic": "orders", "partition": 0, "offset": 3, "metadata": "host-a"},
                {"topic": "orders", "partition": 1, "offset": 5}
            ]),
        )
        .await
        .expect(200);
    assert_eq!(committed, json!({"group": "billing", "committed": 2}));

    let got = api.group_offsets("billing").await.expect(200);
    let offs = got["offsets"].as_array().unwrap();
    assert_eq!(offs.len(), 2);
    assert_eq!(
        (offs[0]["partition"].as_i64(), offs[0]["offset"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(offs[0]["metadata"], "host-a");
    assert!(offs[0]["updated_at"].as_i64().unwrap() > 0);

    let lag = api.lag("billing").await.expect(200);
    assert_eq!(lag["total_lag"], 2);
    assert_eq!(
        lag["partitions"][0],
        json!({"topic":"orders","partition":0,"committed_offset":3,"high_watermark":5,"lag":2})
    );
    assert_eq!(lag["partitions"][1]["lag"], 0);

    // A failed commit changes nothing (all or none).
    let both = json!([
        {"topic": "orders", "partition": 0, "offset": 4},
        {"topic": "missing", "partition": 0, "offset": 1}
    ]);
    api.commit("billing", both).await.expect(404);
    let again = api.group_offsets("billing").await.expect(200);
    assert_eq!(again["offsets"][0]["offset"], 3);

    // Deleting the topic drops its offsets; a re-created topic starts fresh.
    api.delete("/v1/topics/orders").await.expect(204);
    a.create_topic("orders", 2).await;
    let lag = api.lag("billing").await.expect(200);
    assert_eq!(lag["partitions"], json!([]));
}

#[tokio::test]
async fn a_partition_named_twice_keeps_its_last_offset_on_postgres() {
    let pg = common::postgres::Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--metadata-url", &url]).await;
    a.create_topic("dup", 1).await;
    let twice = json!([
        {"topic": "dup", "partition": 0, "offset": 1},
        {"topic": "dup", "partition": 0, "offset": 2}
    ]);
    a.api.commit("g", twice).await.expect(200);
    let got = a.api.group_offsets("g").await.expect(200);
    assert_eq!(got["offsets"].as_array().unwrap().len(), 1);
    assert_eq!(got["offsets"][0]["offset"], 2);
}
