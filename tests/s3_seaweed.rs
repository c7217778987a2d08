//! The S3 object store against a real S3-API server (SeaweedFS), and an
//! agent storing its objects there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestAgent;
use common::seaweed::Seaweed;
use serde_json::{Value, json};

#[tokio::test]
async fn s3_store_passes_the_object_store_conformance_suite() {
    let s3 = Seaweed::start("conformance").await;
    let store = s3.store_with_prefix("suite/run1").await;
    streamhouse_server::testing::conformance::store::run(&store).await;
    // The prefix keeps runs apart.
    let other = s3.store_with_prefix("suite/run2").await;
    use streamhouse_server::store::ObjectStore;
    assert!(
        other
            .list("objects/", None)
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

#[tokio::test]
async fn an_agent_on_s3_serves_records_after_a_restart_from_a_cold_cache() {
    let s3 = Seaweed::start("agent").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut flags: Vec<String> = vec![
        "--data-dir".into(),
        data.clone(),
        "--linger".into(),
        "20ms".into(),
    ];
    flags.extend(s3.agent_flags("cluster-a"));
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();

    let a = TestAgent::start_with(common::serve_args(&flag_refs)).await;
    let topic = json!({"name": "s3t", "partitions": 3, "compression": "zstd"});
    a.api.post("/v1/topics", &topic).await.expect(201);
    let recs: Vec<Value> = (0..300)
        .map(|i| json!({"key": format!("k{i}"), "value": {"i": i}}))
        .collect();
    let ack = a.produce("s3t", json!({"records": recs})).await;
    assert_eq!(ack["offsets"].as_array().unwrap().len(), 300);
    let mut before = Vec::new();
    for p in 0..3 {
        before.push(a.read("s3t", p, "offset=0&limit=1000").await);
    }
    assert!(a.metrics.object_puts.get() >= 1);
    a.stop().await;

    // The objects are in the bucket under the prefix.
    use streamhouse_server::store::ObjectStore;
    let listed = s3
        .store_with_prefix("cluster-a")
        .await
        .list("objects/", None)
        .await
        .unwrap();
    assert!(!listed.objects.is_empty());

    let b = TestAgent::start_with(common::serve_args(&flag_refs)).await;
    for p in 0..3 {
        assert_eq!(
            b.read("s3t", p, "offset=0&limit=1000").await,
            before[p as usize]
        );
    }
    assert!(
        b.metrics.object_gets.get() >= 1,
        "a cold agent reads chunks from S3"
    );
    b.stop().await;
}

#[tokio::test]
async fn an_s3_outage_answers_503_and_exposes_nothing() {
    let mut s3 = Seaweed::start("outage").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut flags: Vec<String> = vec!["--data-dir".into(), data, "--linger".into(), "10ms".into()];
    flags.extend(s3.agent_flags(""));
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = TestAgent::start_with(common::serve_args(&flag_refs)).await;
    a.create_topic("o", 1).await;
    a.produce("o", json!({"records": [{"value": "before"}]}))
        .await;
    s3.kill();
    let started = Instant::now();
    let r = a.api.produce("o", json!([{"value": "during"}])).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "fails promptly, not hangs"
    );
    assert_eq!(r.problem(), Some("unavailable"));
    let p = r.expect(503);
    assert!(p["detail"].as_str().unwrap().contains("not stored"), "{p}");
    let page = a.read("o", 0, "offset=0").await;
    assert_eq!(
        page["high_watermark"], 1,
        "nothing of the failed request is visible"
    );
    assert_eq!(page["records"].as_array().unwrap().len(), 1);
}
