//! Exactly-once produce with Idempotency-Key: retries, concurrent retries,
//! a different body, expiry, and two agents racing with one key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::api::Reply;
use common::postgres::Postgres;
use common::{Api, TestAgent};
use serde_json::{Value, json};

/// POSTs a JSON body with an `Idempotency-Key`.
async fn post(a: &TestAgent, path: &str, key: &str, body: Value) -> Reply {
    let send = |c: &reqwest::Client, u| c.post(u).header("idempotency-key", key).json(&body);
    a.api.send(send, path).await
}

/// Publishes `body` to `topic` with an `Idempotency-Key`.
async fn publish(api: &Api, topic: &str, key: &str, body: &'static str) -> Reply {
    let send = |c: &reqwest::Client, u| {
        c.post(u)
            .header("idempotency-key", key)
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    api.send(send, &format!("/v1/topics/{topic}/publish")).await
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
    assert!(first.headers.get("idempotency-replayed").is_none());
    let first = first.expect(200);
    for _ in 0..3 {
        let again = post(&a, "/v1/topics/once/records", "order-17", body.clone()).await;
        assert_eq!(again.headers["idempotency-replayed"], "true");
        assert_eq!(again.expect(200), first);
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
    assert_eq!(other.problem(), Some("idempotency-key-reused"));
    let p = other.expect(422);
    assert_eq!(p["field"], "Idempotency-Key");

    // Keys are per topic; publish takes them too.
    a.create_topic("twice", 1).await;
    let one = json!({"records": [{"value": 1}]});
    post(&a, "/v1/topics/twice/records", "order-17", one)
        .await
        .expect(200);
    let pub1 = publish(&a.api, "twice", "hook-1", "evt").await.expect(200);
    let pub2 = publish(&a.api, "twice", "hook-1", "evt").await.expect(200);
    assert_eq!(pub1, pub2);
    publish(&a.api, "twice", "hook-1", "other")
        .await
        .expect(422);
    publish(&a.api, "twice", "", "x").await.expect(400);
}

#[tokio::test]
async fn concurrent_retries_wait_for_the_first() {
    let a = TestAgent::start(&["--linger", "300ms"]).await;
    a.create_topic("race", 1).await;
    let body = json!({"records": [{"value": "only once"}]});
    let sends = (0..10).map(|_| async {
        post(&a, "/v1/topics/race/records", "same", body.clone())
            .await
            .expect(200)
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
    let r1 = post(&a, "/v1/topics/exp/records", "k", body.clone())
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r2 = post(&a, "/v1/topics/exp/records", "k", body.clone())
        .await
        .expect(200);
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
            b.api
                .produce("dup", json!([{"value": format!("other-{round}")}])),
        );
        assert_eq!((ra.status, rb.status), (200, 200));
        assert_eq!(ra.body, rb.body, "both agents answer with the one copy");
        assert_eq!(other.status, 200);
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

/// A producer times out while its keyed request is buffered, then retries
/// within the linger while another producer sends too: the retry joins the
/// buffered original (one copy, answered with its offsets) and the other
/// producer is unaffected.
async fn a_retry_of_a_timed_out_request_joins_it(a: &TestAgent) {
    a.create_topic("joined", 1).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let first = impatient
        .post(a.api.url("/v1/topics/joined/records"))
        .header("idempotency-key", "k")
        .json(&json!({"records": [{"value": "keyed"}]}))
        .send()
        .await;
    assert!(first.is_err(), "the first attempt times out while buffered");
    let (plain, retry) = tokio::join!(
        a.api.produce("joined", json!([{"value": "plain"}])),
        post(
            a,
            "/v1/topics/joined/records",
            "k",
            json!({"records": [{"value": "keyed"}]})
        ),
    );
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.headers["idempotency-replayed"], "true");
    let values: Vec<Value> = a
        .api
        .read_all("joined", 0)
        .await
        .into_iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values.len(), 2, "{values:?}");
    assert_eq!(values.iter().filter(|v| **v == "keyed").count(), 1);
    assert_eq!(a.metrics.idempotency_conflicts.get(), 0);
}

#[tokio::test]
async fn a_retry_of_a_timed_out_request_joins_it_on_sqlite() {
    let a = TestAgent::start(&["--linger", "1500ms"]).await;
    a_retry_of_a_timed_out_request_joins_it(&a).await;
}

#[tokio::test]
async fn a_retry_of_a_timed_out_request_joins_it_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--linger", "1500ms", "--metadata-url", &url]).await;
    a_retry_of_a_timed_out_request_joins_it(&a).await;
}
