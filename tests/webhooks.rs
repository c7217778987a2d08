//! Push subscriptions: agents POST a topic's records to a receiver in this
//! process, which checks every signature. A healthy receiver sees each
//! record once, in order per partition; one that fails, hangs and asks to
//! retry later still gets every record, in order, through an agent killed
//! mid-delivery; exhausted batches go to the dead-letter topic; the SSRF
//! guard refuses private targets that are not listed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::api::Api;
use common::fleet::Fleet;
use common::receiver::{Mode, Receiver};
use common::{TestAgent, wait_for};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-of-some-length";
const FLAGS: &[&str] = &[
    "--webhook-allow",
    "127.0.0.1",
    "--webhook-session-timeout",
    "2s",
    "--webhook-poll-interval",
    "200ms",
    "--webhook-retry-base",
    "50ms",
    "--webhook-max-backoff",
    "400ms",
    "--webhook-timeout",
    "1s",
];

async fn produce(api: &Api, topic: &str, from: i64, n: i64, partitions: i64) {
    let records: Vec<Value> = (from..from + n)
        .map(|i| json!({"partition": i % partitions, "value": i}))
        .collect();
    api.produce(topic, json!(records)).await.expect(200);
}

/// Per partition, the acknowledged deliveries leave no gap and go
/// forward: each starts at most one past the furthest acknowledged
/// offset, and records within a delivery are consecutive.
fn assert_in_order(r: &Receiver) {
    let mut furthest: BTreeMap<i64, i64> = BTreeMap::new();
    for d in r.deliveries().iter().filter(|d| d.acked) {
        for w in d.offsets.windows(2) {
            assert!(w[1] > w[0], "in order within a delivery: {:?}", d.offsets);
        }
        let end = furthest.entry(d.partition).or_insert(-1);
        assert!(
            d.offsets[0] <= *end + 1,
            "partition {} jumped from {} to {}",
            d.partition,
            end,
            d.offsets[0]
        );
        *end = (*end).max(*d.offsets.last().unwrap());
    }
}

async fn subscribe(api: &Api, name: &str, topic: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "topic": topic, "url": url, "secret": SECRET,
                          "start": "earliest", "max_batch_wait_ms": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.post("/v1/subscriptions", &body).await.expect(201)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_in_order_and_once_while_healthy_then_survive_failures_and_a_killed_agent()
 {
    let mut fleet = Fleet::start(3, "hooks", FLAGS).await;
    let apis = [fleet.api(0), fleet.api(1), fleet.api(2)];
    apis[0].create_topic("events", 4).await.expect(201);
    let rx = Receiver::start(SECRET).await;
    subscribe(
        &apis[1],
        "to-rx",
        "events",
        &rx.url,
        json!({"max_batch_records": 20, "max_attempts": 100}),
    )
    .await;

    // Healthy: every record exactly once, in order, with a good signature.
    for i in 0..8 {
        produce(&apis[i % 3], "events", i as i64 * 50, 50, 4).await;
    }
    wait_for("400 records delivered", Duration::from_secs(60), || async {
        let n: usize = rx.acked_offsets().values().map(|s| s.len()).sum();
        (n == 400).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered: usize = rx.deliveries().iter().map(|d| d.offsets.len()).sum();
    assert_eq!(
        delivered, 400,
        "no duplicates while the receiver never failed"
    );
    assert_eq!(rx.bad_signatures(), 0);
    assert_in_order(&rx);
    let d = wait_for("the counters", Duration::from_secs(10), || async {
        let d = apis[2].get("/v1/subscriptions/to-rx").await.expect(200);
        (d["delivered"] == 400 && d["lag"] == 0).then_some(d)
    })
    .await;
    assert_eq!(d["attempts_failed"], 0, "{d}");
    assert!(d.get("secret").is_none(), "the secret is never shown again");

    // Unhealthy: failures, hangs past the 1 s timeout, and 429 with
    // Retry-After, while records keep coming and one agent is killed.
    let before = rx.deliveries().len();
    let modes = [Mode::Fail, Mode::Hang, Mode::RetryLater, Mode::Ok];
    for (i, mode) in modes.iter().enumerate() {
        rx.set(*mode);
        produce(&apis[(i % 2) + 1], "events", 400 + i as i64 * 40, 40, 4).await;
        if i == 1 {
            fleet.kill(0);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    rx.set(Mode::Ok);
    let start = Instant::now();
    wait_for(
        "every record after the failures",
        Duration::from_secs(90),
        || async {
            let n: usize = rx.acked_offsets().values().map(|s| s.len()).sum();
            if start.elapsed().as_secs().is_multiple_of(10) {
                let d = apis[1].get("/v1/subscriptions/to-rx").await.body;
                eprintln!("{n} acked; {d}");
            }
            (n == 560).then_some(())
        },
    )
    .await;
    let took = start.elapsed();
    for (p, offsets) in rx.acked_offsets() {
        assert_eq!(offsets.len(), 140, "partition {p}");
        assert_eq!(*offsets.last().unwrap(), 139);
    }
    assert_in_order(&rx);
    assert_eq!(rx.bad_signatures(), 0);
    let failed = rx.deliveries()[before..]
        .iter()
        .filter(|d| !d.acked)
        .count();
    assert!(failed > 0, "the receiver refused some deliveries");
    let d = apis[1].get("/v1/subscriptions/to-rx").await.expect(200);
    assert!(d["attempts_failed"].as_i64().unwrap() > 0, "{d}");
    assert!(d["last_error"].as_str().is_some(), "{d}");
    println!("recovered in {took:?} after the receiver came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_batches_go_to_the_dead_letter_topic_and_subscriptions_are_managed() {
    let agent = TestAgent::start(FLAGS).await;
    let api = Api::new(agent.u(""));
    api.create_topic("orders", 2).await.expect(201);
    let rx = Receiver::start(SECRET).await;

    // The SSRF guard: only listed private addresses.
    for (url, ok) in [
        ("http://10.0.0.1/hook", false),
        ("http://127.0.0.2/hook", false),
        ("http://[::1]/hook", false),
        ("ftp://127.0.0.1/hook", false),
        ("http://localhost/hook", false),
        (rx.url.as_str(), true),
    ] {
        let r = api
            .post(
                "/v1/subscriptions",
                &json!({"name": "probe", "topic": "orders", "url": url}),
            )
            .await;
        if ok {
            assert_eq!(r.status, 201, "{url}: {}", r.text);
            assert_eq!(r.body["secret"].as_str().unwrap().len(), 64, "generated");
            api.delete("/v1/subscriptions/probe").await.expect(204);
        } else {
            assert_eq!(
                (r.status, r.body["field"].as_str()),
                (400, Some("url")),
                "{url}: {}",
                r.text
            );
        }
    }
    for (body, field) in [
        (
            json!({"name": "x", "topic": "orders", "url": rx.url, "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"name": "x", "topic": "orders", "url": rx.url, "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "a b", "topic": "orders", "url": rx.url}),
            "name",
        ),
        (
            json!({"name": "x", "topic": "nope", "url": rx.url}),
            "topic",
        ),
    ] {
        let r = api.post("/v1/subscriptions", &body).await;
        assert!(r.status == 400 || r.status == 404, "{body}: {}", r.text);
        assert_eq!(r.body["field"], field, "{}", r.text);
    }

    // Every attempt fails: after 2, the batch is dead-lettered and
    // delivery goes on.
    rx.set(Mode::Fail);
    subscribe(
        &api,
        "fragile",
        "orders",
        &rx.url,
        json!({"max_attempts": 2}),
    )
    .await;
    let dup = api
        .post(
            "/v1/subscriptions",
            &json!({"name": "fragile", "topic": "orders", "url": rx.url}),
        )
        .await;
    assert_eq!(
        (dup.status, dup.problem()),
        (409, Some("subscription-exists"))
    );
    produce(&api, "orders", 0, 10, 2).await;
    let dlq = wait_for("dead letters", Duration::from_secs(30), || async {
        let a = api.read("fragile.dlq", 0, "offset=0").await;
        (a.status == 200 && a.body["records"].as_array().unwrap().len() == 10).then_some(a.body)
    })
    .await;
    let first = &dlq["records"][0];
    let names: Vec<&str> = first["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    for h in [
        "streamhouse-dlq-topic",
        "streamhouse-dlq-partition",
        "streamhouse-dlq-offset",
        "streamhouse-dlq-error",
    ] {
        assert!(names.contains(&h), "{first}");
    }
    let d = wait_for("the counters", Duration::from_secs(10), || async {
        let d = api.get("/v1/subscriptions/fragile").await.expect(200);
        (d["dead_lettered"] == 10 && d["lag"] == 0).then_some(d)
    })
    .await;
    assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
    let metrics = api.get("/metrics").await.text;
    for line in [
        "streamhouse_webhook_records_total{outcome=\"dead_lettered\"} 10",
        "streamhouse_webhook_workers 1",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics");
    }
    assert!(metrics.contains("streamhouse_webhook_deliveries_total{outcome=\"failed\"}"));
    assert!(metrics.contains("streamhouse_group_swaps_total{outcome=\"won\"}"));

    // Pause: nothing is delivered; resume: delivery continues.
    rx.set(Mode::Ok);
    api.post("/v1/subscriptions/fragile/pause", &json!({}))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = rx.deliveries().len();
    produce(&api, "orders", 10, 6, 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.deliveries().len(), seen, "paused");
    let listed = api.get("/v1/subscriptions").await.expect(200);
    assert_eq!(listed["subscriptions"][0]["paused"], true, "{listed}");
    api.post("/v1/subscriptions/fragile/resume", &json!({}))
        .await
        .expect(200);
    wait_for("delivery after resume", Duration::from_secs(20), || async {
        let n: usize = rx.acked_offsets().values().map(|s| s.len()).sum();
        (n == 6).then_some(())
    })
    .await;
    api.delete("/v1/subscriptions/fragile").await.expect(204);
    let gone = api.get("/v1/subscriptions/fragile").await;
    assert_eq!(
        (gone.status, gone.problem()),
        (404, Some("subscription-not-found"))
    );
    agent.stop().await;
}
