//! Consumer-group offsets: commit, fetch, lag, over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use serde_json::{Value, json};

#[tokio::test]
async fn commit_fetch_and_lag() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("orders", 2).await;
    let recs: Vec<Value> = (0..10)
        .map(|i| json!({"value": i, "partition": i % 2}))
        .collect();
    a.produce("orders", json!({"records": recs})).await;

    let empty: Value = a
        .client
        .get(a.u("/v1/groups/billing/offsets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"group": "billing", "offsets": []}));

    let r = a
        .client
        .post(a.u("/v1/groups/billing/offsets"))
        .json(&json!({"offsets": [
            {"topic": "orders", "partition": 0, "offset": 3, "metadata": "host-a"},
            {"topic": "orders", "partition": 1, "offset": 5}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group": "billing", "committed": 2})
    );

    let got: Value = a
        .client
        .get(a.u("/v1/groups/billing/offsets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let offs = got["offsets"].as_array().unwrap();
    assert_eq!(offs.len(), 2);
    assert_eq!(
        (offs[0]["partition"].as_i64(), offs[0]["offset"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(offs[0]["metadata"], "host-a");
    assert!(offs[0]["updated_at"].as_i64().unwrap() > 0);

    let lag: Value = a
        .client
        .get(a.u("/v1/groups/billing/lag"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lag["total_lag"], 2);
    assert_eq!(
        lag["partitions"][0],
        json!({"topic":"orders","partition":0,"committed_offset":3,"high_watermark":5,"lag":2})
    );
    assert_eq!(lag["partitions"][1]["lag"], 0);

    // A failed commit changes nothing (all or none).
    let r = a
        .client
        .post(a.u("/v1/groups/billing/offsets"))
        .json(&json!({"offsets": [{"topic": "orders", "partition": 0, "offset": 4}, {"topic": "missing", "partition": 0, "offset": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let again: Value = a
        .client
        .get(a.u("/v1/groups/billing/offsets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["offsets"][0]["offset"], 3);

    // Deleting the topic drops its offsets; a re-created topic starts fresh.
    a.client
        .delete(a.u("/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    a.create_topic("orders", 2).await;
    let lag: Value = a
        .client
        .get(a.u("/v1/groups/billing/lag"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lag["partitions"], json!([]));
}

#[tokio::test]
async fn a_partition_named_twice_keeps_its_last_offset_on_postgres() {
    let pg = common::postgres::Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--metadata-url", &url]).await;
    a.create_topic("dup", 1).await;
    let r = a
        .client
        .post(a.u("/v1/groups/g/offsets"))
        .json(&json!({"offsets": [
            {"topic": "dup", "partition": 0, "offset": 1},
            {"topic": "dup", "partition": 0, "offset": 2}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let got: Value = a
        .client
        .get(a.u("/v1/groups/g/offsets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["offsets"].as_array().unwrap().len(), 1);
    assert_eq!(got["offsets"][0]["offset"], 2);
}
