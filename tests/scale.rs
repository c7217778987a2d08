//! Scale: 100,000 partitions (100 topics × 1,000) on PostgreSQL can be
//! created, produced to and read, and listing paginates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use common::postgres::Postgres;
use serde_json::{Value, json};

#[tokio::test]
async fn one_hundred_thousand_partitions() {
    let pg = Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--metadata-url", &url, "--linger", "50ms"]).await;
    let creates = (0..100).map(|t| {
        let (c, u) = (a.client.clone(), a.u("/v1/topics"));
        async move {
            let r = c
                .post(u)
                .json(&json!({"name": format!("scale-{t:03}"), "partitions": 1000}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    });
    futures_util::future::join_all(creates).await;

    // One record in every partition: 100 requests of 1,000 records.
    let produces = (0..100).map(|t| {
        let (c, u) = (
            a.client.clone(),
            a.u(&format!("/v1/topics/scale-{t:03}/records")),
        );
        async move {
            let records: Vec<Value> = (0..1000)
                .map(|p| json!({"value": format!("{t}/{p}"), "partition": p}))
                .collect();
            let r = c
                .post(u)
                .json(&json!({"records": records}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let ack: Value = r.json().await.unwrap();
            assert!(
                ack["offsets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|o| o["offset"] == 0)
            );
        }
    });
    futures_util::future::join_all(produces).await;

    // Listing pages through all 100 topics.
    let mut names = Vec::new();
    let mut after = String::new();
    loop {
        let page: Value = a
            .client
            .get(a.u(&format!("/v1/topics?limit=30&after={after}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for t in page["topics"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_string());
        }
        match page["next_after"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(names.len(), 100);

    // Describing pages through partitions; reads see the records.
    let d: Value = a
        .client
        .get(a.u("/v1/topics/scale-042?partition_from=900&partition_limit=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["partition_details"].as_array().unwrap().len(), 50);
    assert_eq!(d["next_partition"], 950);
    assert!(
        d["partition_details"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["high_watermark"] == 1)
    );
    for (t, p) in [(0, 0), (42, 917), (99, 999), (57, 3)] {
        let page = a.read(&format!("scale-{t:03}"), p, "offset=0").await;
        assert_eq!(page["records"][0]["value"], format!("{t}/{p}"));
    }
}
