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
    fleet.listening().await;
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

const PEER_SECRET: &str = "a-cluster-secret-of-at-least-32-bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_objects_are_read_from_their_writer_and_from_the_store_when_it_is_gone() {
    // The poll runs every 30 s while the feed is up: a reader woken by it
    // between a commit and its announcement would not know the writer yet
    // and read the store instead, which is right but not what this counts.
    let fleet = Fleet::start(
        3,
        "peer",
        &[
            "--peer-secret",
            PEER_SECRET,
            "--watermark-poll-interval",
            "3s",
        ],
    )
    .await;
    let (a, b) = (fleet.api(0), fleet.api(1));
    a.create_topic("fresh", 2).await.expect(201);
    fleet.listening().await;
    let gets = "streamhouse_object_gets_total";
    let gets_before = b.metric(gets).await;
    for i in 0..5 {
        let reader = b.clone();
        let waiting = tokio::spawn(async move {
            reader
                .read("fresh", 1, &format!("offset={i}&wait_ms=5000"))
                .await
                .expect(200)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        a.produce("fresh", json!([{ "value": i, "partition": 1 }]))
            .await
            .expect(200);
        let page = waiting.await.unwrap();
        assert_eq!(page["records"][0]["value"], i, "{page}");
    }
    let fetched = b.metric("streamhouse_peer_fetches_total").await;
    let fell_back = b.metric("streamhouse_peer_fetch_fallbacks_total").await;
    let got = b.metric(gets).await - gets_before;
    assert!(
        fetched >= 5.0,
        "read from the writer: {fetched} ranges from it, {fell_back} fell back, {got} GETs"
    );
    assert!(a.metric("streamhouse_peer_serves_total").await >= 5.0);
    assert_eq!(b.metric(gets).await, gets_before, "no GET for fresh chunks");

    // The writer is gone: the reader falls back to the store, same bytes.
    let c = fleet.api(2);
    a.produce(
        "fresh",
        json!([{ "value": "after", "partition": 0 }, { "value": "more", "partition": 0 }]),
    )
    .await
    .expect(200);
    // c has heard of the object (its rows came with the announcement).
    let heard = "streamhouse_index_rows_announced_total";
    for _ in 0..100 {
        if c.metric(heard).await >= 6.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fleet = fleet;
    fleet.kill(0);
    let page = c.read("fresh", 0, "offset=0").await.expect(200);
    assert_eq!(page["records"][0]["value"], "after", "{page}");
    assert_eq!(page["records"][1]["value"], "more", "{page}");
    assert!(c.metric("streamhouse_peer_fetch_fallbacks_total").await >= 1.0);
    assert!(c.metric(gets).await >= 1.0, "read from the store instead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_route_answers_only_a_valid_token_for_an_object_kept_in_memory() {
    use streamhouse_server::peer::PeerConfig;
    let fleet = Fleet::start(1, "peer-route", &["--peer-secret", PEER_SECRET]).await;
    let a = fleet.api(0);
    let object = uuid::Uuid::now_v7();
    let path = |q: &str| format!("/internal/v1/objects/{}?{q}", object.simple());
    let config = PeerConfig::new(&fleet.urls()[0], PEER_SECRET).unwrap();
    let far = i64::MAX / 2;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let forged = PeerConfig::new(&fleet.urls()[0], &"x".repeat(40)).unwrap();
    let cases = [
        (None, 401),
        (Some("garbage".to_string()), 401),
        (Some(config.token(object, &(0..10), now_ms() - 1)), 401),
        (Some(config.token(object, &(0..10), far)), 401),
        (Some(forged.token(object, &(0..10), now_ms() + 30_000)), 401),
        (Some(config.token(object, &(0..11), now_ms() + 30_000)), 401),
        (Some(config.token(object, &(0..10), now_ms() + 30_000)), 404),
    ];
    for (token, status) in cases {
        let reply = a
            .send(
                |c, u| match &token {
                    Some(t) => c.get(u).header("x-streamhouse-peer", t),
                    None => c.get(u),
                },
                &path("start=0&end=10"),
            )
            .await;
        assert_eq!(reply.status, status, "{token:?}: {}", reply.text);
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{token:?}"
        );
    }
    let bad = a.get(&path("start=10&end=9")).await.expect(400);
    assert!(bad.to_string().contains("end"), "{bad}");
    a.get(&path("start=0&end=99999999999")).await.expect(400);
    a.get(&path("start=-1&end=3")).await.expect(400);
    a.get("/internal/v1/objects/not-a-uuid?start=0&end=1")
        .await
        .expect(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_reads_are_off_without_the_peer_settings() {
    let fleet = Fleet::start(1, "no-peer", &[]).await;
    let a = fleet.api(0);
    let off = a
        .get(&format!(
            "/internal/v1/objects/{}?start=0&end=1",
            uuid::Uuid::now_v7().simple()
        ))
        .await
        .expect(404);
    assert!(off.to_string().contains("peer reads are off"), "{off}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_hangs_costs_a_reader_one_short_timeout_then_nothing() {
    let fleet = Fleet::start(2, "peer-hang", &["--peer-secret", PEER_SECRET]).await;
    let (a, b) = (fleet.api(0), fleet.api(1));
    a.create_topic("hung", 1).await.expect(201);
    fleet.listening().await;
    let heard = "streamhouse_index_rows_announced_total";
    for (i, value) in ["one", "two"].iter().enumerate() {
        a.produce("hung", json!([{ "value": value }]))
            .await
            .expect(200);
        for _ in 0..100 {
            if b.metric(heard).await > i as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The writer stops answering (not dead: its connections stay open).
    fleet.agent(0).signal("STOP");
    let started = std::time::Instant::now();
    let first = b.read("hung", 0, "offset=0&limit=1").await.expect(200);
    let first_took = started.elapsed();
    let second = b.read("hung", 0, "offset=1&limit=1").await.expect(200);
    fleet.agent(0).signal("CONT");
    assert_eq!(first["records"][0]["value"], "one", "{first}");
    assert_eq!(second["records"][0]["value"], "two", "{second}");
    assert!(first_took < Duration::from_secs(3), "{first_took:?}");
    // One timeout, then the writer rests: the next object is read from the
    // store without asking it (an attempt would count a second fallback).
    let fallbacks = b.metric("streamhouse_peer_fetch_fallbacks_total").await;
    assert_eq!(fallbacks, 1.0);
    assert!(b.metric("streamhouse_object_gets_total").await >= 2.0);
}
