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
        let api = a.api.clone();
        async move {
            let name = format!("scale-{t:03}");
            api.create_topic(&name, 1000).await.expect(201);
        }
    });
    futures_util::future::join_all(creates).await;

    // One record in every partition: 100 requests of 1,000 records.
    let produces = (0..100).map(|t| {
        let api = a.api.clone();
        async move {
            let records: Vec<Value> = (0..1000)
                .map(|p| json!({"value": format!("{t}/{p}"), "partition": p}))
                .collect();
            let ack = api.produce(&format!("scale-{t:03}"), json!(records)).await;
            assert_eq!(ack.status, 200);
            assert!(ack.offsets().iter().all(|o| *o == 0));
        }
    });
    futures_util::future::join_all(produces).await;

    // Listing pages through all 100 topics.
    let mut names = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/topics?limit=30&after={after}");
        let page = a.api.get(&path).await.expect(200);
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
    let d = a
        .api
        .get("/v1/topics/scale-042?partition_from=900&partition_limit=50")
        .await
        .expect(200);
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
