//! Exactly-once produce with Idempotency-Key: retries, concurrent retries,
//! a different body, expiry, and two agents racing with one key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestAgent;
use common::postgres::Postgres;
use serde_json::{Value, json};

async fn post(a: &TestAgent, path: &str, key: &str, body: Value) -> reqwest::Response {
    a.client
        .post(a.u(path))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn hw(a: &TestAgent, topic: &str, p: i32) -> i64 {
    a.read(topic, p, "offset=0&limit=1").await["high_watermark"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_retry_returns_the_first_answer_and_appends_nothing() {
    let a = TestAgent::start(&["--linger", "30ms"]).await;
    a.create_topic("once", 2).await;
    let body = json!({"records": [{"value": 1, "partition": 0}, {"value": 2, "partition": 1}]});
    let first = post(&a, "/v1/topics/once/records", "order-17", body.clone()).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    for _ in 0..3 {
        let again = post(&a, "/v1/topics/once/records", "order-17", body.clone()).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotency-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap(), first);
    }
    assert_eq!((hw(&a, "once", 0).await, hw(&a, "once", 1).await), (1, 1));

    // The same key with another body is refused.
    let other = post(
        &a,
        "/v1/topics/once/records",
        "order-17",
        json!({"records": [{"value": 3}]}),
    )
    .await;
    assert_eq!(other.status(), 422);
    let p: Value = other.json().await.unwrap();
    assert_eq!(p["type"], "urn:streamhouse:problem:idempotency-key-reused");
    assert_eq!(p["field"], "Idempotency-Key");

    // Keys are per topic; publish takes them too.
    a.create_topic("twice", 1).await;
    assert_eq!(
        post(
            &a,
            "/v1/topics/twice/records",
            "order-17",
            json!({"records": [{"value": 1}]})
        )
        .await
        .status(),
        200
    );
    let pub1 = a
        .client
        .post(a.u("/v1/topics/twice/publish"))
        .header("idempotency-key", "hook-1")
        .body("evt")
        .send()
        .await
        .unwrap();
    let pub2 = a
        .client
        .post(a.u("/v1/topics/twice/publish"))
        .header("idempotency-key", "hook-1")
        .body("evt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pub1.json::<Value>().await.unwrap(),
        pub2.json::<Value>().await.unwrap()
    );
    let bad = a
        .client
        .post(a.u("/v1/topics/twice/publish"))
        .header("idempotency-key", "hook-1")
        .body("other")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let empty = a
        .client
        .post(a.u("/v1/topics/twice/publish"))
        .header("idempotency-key", "")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
}

#[tokio::test]
async fn concurrent_retries_wait_for_the_first() {
    let a = TestAgent::start(&["--linger", "300ms"]).await;
    a.create_topic("race", 1).await;
    let body = json!({"records": [{"value": "only once"}]});
    let sends = (0..10).map(|_| {
        let (c, u, b) = (
            a.client.clone(),
            a.u("/v1/topics/race/records"),
            body.clone(),
        );
        async move {
            let r = c
                .post(u)
                .header("idempotency-key", "same")
                .json(&b)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(hw(&a, "race", 0).await, 1);
}

#[tokio::test]
async fn an_expired_key_may_be_used_again() {
    let a = TestAgent::start(&["--idempotency-window", "1s", "--linger", "5ms"]).await;
    a.create_topic("exp", 1).await;
    let body = json!({"records": [{"value": 1}]});
    let r1: Value = post(&a, "/v1/topics/exp/records", "k", body.clone())
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r2: Value = post(&a, "/v1/topics/exp/records", "k", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            r1["offsets"][0]["offset"].as_i64(),
            r2["offsets"][0]["offset"].as_i64()
        ),
        (Some(0), Some(1))
    );
}

#[tokio::test]
async fn two_agents_racing_with_one_key_make_exactly_one_copy() {
    let pg = Postgres::start();
    let url = pg.database(false);
    let objects = tempfile::tempdir().unwrap();
    let dir = objects.path().to_str().unwrap().to_string();
    let flags = [
        "--metadata-url",
        url.as_str(),
        "--object-store",
        dir.as_str(),
        "--linger",
        "200ms",
    ];
    let a = TestAgent::start(&flags).await;
    let b = TestAgent::start(&flags).await;
    a.create_topic("dup", 1).await;
    for round in 0..5 {
        let key = format!("race-{round}");
        // Other records share the flushes, so the losing flush must re-commit them.
        let (ra, rb, other) = tokio::join!(
            post(
                &a,
                "/v1/topics/dup/records",
                &key,
                json!({"records": [{"value": round}]})
            ),
            post(
                &b,
                "/v1/topics/dup/records",
                &key,
                json!({"records": [{"value": round}]})
            ),
            b.client
                .post(b.u("/v1/topics/dup/records"))
                .json(&json!({"records": [{"value": format!("other-{round}")}]}))
                .send(),
        );
        assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
        let (ja, jb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
        assert_eq!(ja, jb, "both agents answer with the one copy");
        assert_eq!(other.unwrap().status(), 200);
    }
    let page = a.read("dup", 0, "offset=0&limit=100").await;
    let values: Vec<String> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].to_string())
        .collect();
    assert_eq!(
        values.len(),
        10,
        "5 keyed records once each, plus 5 others: {values:?}"
    );
    for round in 0..5 {
        assert_eq!(
            values.iter().filter(|v| **v == round.to_string()).count(),
            1
        );
    }
    assert!(
        a.metrics.idempotency_conflicts.get() + b.metrics.idempotency_conflicts.get() > 0,
        "the race reached the commit at least once"
    );
    let offsets: Vec<i64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "gapless");
}
