//! Faults injected into the object store and the metadata store: every
//! acknowledged record survives unchanged, every failed request gets a 503
//! with a reason and leaves nothing visible, and an ambiguous commit
//! (applied, response lost) neither duplicates nor loses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestAgent;
use serde_json::json;
use streamhouse_server::testing::faults::{Fault, Op};

#[derive(Default, Debug)]
struct Tally {
    acked: BTreeMap<(i64, i64), String>,
    failed: Vec<String>,
    unknown: Vec<String>,
}

/// Sends `n` single-record requests from 4 concurrent producers.
async fn load(a: &TestAgent, topic: &str, tag: &str, n: usize) -> Tally {
    let sends = (0..4).map(|w| {
        let (api, tag) = (a.api.clone(), tag.to_string());
        async move {
            let mut t = Tally::default();
            for i in (w..n).step_by(4) {
                let value = format!("{tag}-{i}");
                let r = api
                    .produce(topic, json!([{"value": value, "partition": i % 2}]))
                    .await;
                let (status, body) = (r.status, r.body);
                match status {
                    200 => {
                        let o = &body["offsets"][0];
                        t.acked.insert(
                            (
                                o["partition"].as_i64().unwrap(),
                                o["offset"].as_i64().unwrap(),
                            ),
                            value,
                        );
                    }
                    503 => {
                        assert!(
                            !body["detail"].as_str().unwrap().is_empty(),
                            "a reason is given"
                        );
                        if body["type"] == "urn:streamhouse:problem:commit-outcome-unknown" {
                            t.unknown.push(value);
                        } else {
                            assert_eq!(
                                body["type"], "urn:streamhouse:problem:unavailable",
                                "{body}"
                            );
                            t.failed.push(value);
                        }
                    }
                    other => panic!("unexpected status {other}: {body}"),
                }
            }
            t
        }
    });
    let mut all = Tally::default();
    for t in futures_util::future::join_all(sends).await {
        all.acked.extend(t.acked);
        all.failed.extend(t.failed);
        all.unknown.extend(t.unknown);
    }
    all
}

async fn stored(a: &TestAgent, topic: &str) -> BTreeMap<(i64, i64), String> {
    let mut out = BTreeMap::new();
    for p in 0..2 {
        for r in a.api.read_all(topic, p).await {
            out.insert(
                (p, r["offset"].as_i64().unwrap()),
                r["value"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

/// The invariants: acknowledged records are all there, at their offsets,
/// unchanged; failed ones are nowhere; nothing appears twice; no gaps.
fn check(tally: &Tally, stored: &BTreeMap<(i64, i64), String>, scenario: &str) {
    for (at, v) in &tally.acked {
        assert_eq!(
            stored.get(at),
            Some(v),
            "{scenario}: acknowledged {at:?} must read back"
        );
    }
    let values: Vec<&String> = stored.values().collect();
    for v in &tally.failed {
        assert!(
            !values.contains(&v),
            "{scenario}: failed {v} must not be visible"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for v in &values {
        assert!(seen.insert(*v), "{scenario}: {v} is stored twice");
    }
    assert_eq!(
        stored.len(),
        tally.acked.len() + tally.unknown.iter().filter(|v| values.contains(v)).count(),
        "{scenario}: nothing unexpected"
    );
    for p in 0..2 {
        let offs: Vec<i64> = stored
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert!(
            offs.iter().enumerate().all(|(i, o)| *o == i as i64),
            "{scenario}: partition {p} gapless: {offs:?}"
        );
    }
}

#[tokio::test]
async fn every_fault_keeps_acknowledged_records_and_hides_failed_ones() {
    let (a, plan) = TestAgent::start_faulty(&["--linger", "5ms"]).await;
    type Setup = fn(&streamhouse_server::testing::faults::FaultPlan);
    let scenarios: Vec<(&str, Setup, bool)> = vec![
        (
            "put-fails",
            |p| {
                p.nth(Op::Put, 2, Fault::Fail);
                p.nth(Op::Put, 3, Fault::Fail);
                p.nth(Op::Put, 4, Fault::Fail);
            },
            true,
        ),
        (
            "third-put-fails",
            |p| {
                p.nth(Op::Put, 3, Fault::Fail);
                p.nth(Op::Put, 4, Fault::Fail);
                p.nth(Op::Put, 5, Fault::Fail);
            },
            true,
        ),
        (
            "put-times-out",
            |p| {
                p.during(
                    Op::Put,
                    Duration::from_secs(4),
                    Fault::Hang(Duration::from_secs(1)),
                )
            },
            true,
        ),
        (
            "put-response-lost-once",
            |p| {
                p.nth(Op::Put, 2, Fault::LoseResponse);
                p.nth(Op::Put, 6, Fault::LoseResponse);
            },
            false,
        ),
        (
            "put-responses-lost-for-a-while",
            |p| p.during(Op::Put, Duration::from_millis(500), Fault::LoseResponse),
            true,
        ),
        (
            "put-slow",
            |p| {
                p.during(
                    Op::Put,
                    Duration::from_millis(500),
                    Fault::Delay(Duration::from_millis(300)),
                )
            },
            false,
        ),
        (
            "commit-refused",
            |p| {
                p.nth(Op::Commit, 2, Fault::Fail);
                p.nth(Op::Commit, 3, Fault::Fail);
                p.nth(Op::Commit, 7, Fault::Hang(Duration::from_millis(300)));
            },
            true,
        ),
        (
            "commit-applied-response-lost",
            |p| {
                p.nth(Op::Commit, 2, Fault::LoseResponse);
                p.nth(Op::Commit, 5, Fault::LoseResponse);
            },
            false,
        ),
        (
            "commit-responses-lost-for-a-while",
            |p| p.during(Op::Commit, Duration::from_millis(800), Fault::LoseResponse),
            false,
        ),
        (
            "commit-slow",
            |p| {
                p.during(
                    Op::Commit,
                    Duration::from_secs(1),
                    Fault::Delay(Duration::from_millis(400)),
                )
            },
            false,
        ),
    ];
    for (i, (name, setup, expect_failures)) in scenarios.into_iter().enumerate() {
        let topic = format!("f{i}");
        a.create_topic(&topic, 2).await;
        let before = plan.injected();
        setup(&plan);
        let tally = load(&a, &topic, name, 40).await;
        plan.clear();
        assert!(plan.injected() > before, "{name}: the fault was injected");
        if expect_failures {
            assert!(!tally.failed.is_empty(), "{name}: some requests failed");
        } else {
            assert!(
                tally.failed.is_empty(),
                "{name}: no request failed ({:?})",
                tally.failed
            );
        }
        assert!(!tally.acked.is_empty(), "{name}: some requests succeeded");
        check(&tally, &stored(&a, &topic).await, name);
    }
}

#[tokio::test]
async fn read_faults_answer_503_and_recover() {
    let (a, plan) = TestAgent::start_faulty(&["--linger", "5ms", "--chunk-cache-bytes", "0"]).await;
    a.create_topic("r", 2).await;
    let tally = load(&a, "r", "r", 20).await;
    plan.during(Op::Get, Duration::from_millis(500), Fault::Fail);
    let r = a.api.read("r", 0, "offset=0").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    plan.during(Op::MetadataRead, Duration::from_millis(500), Fault::Fail);
    a.api
        .get("/v1/topics/r/partitions/1/offsets?timestamp=0")
        .await
        .expect(503);
    tokio::time::sleep(Duration::from_millis(600)).await;
    plan.clear();
    check(&tally, &stored(&a, "r").await, "reads");
}

#[tokio::test]
async fn a_chunk_damaged_on_the_way_is_fetched_again() {
    let (a, plan) =
        TestAgent::start_faulty(&["--linger", "1ms", "--chunk-cache-bytes", "64KiB"]).await;
    a.create_topic("d", 1).await;
    // A hundred flushes of 4 KB: the first ones leave the 64 KiB cache.
    let filler = "x".repeat(4000);
    for i in 0..100 {
        a.api
            .produce("d", json!([{ "value": format!("{i}-{filler}") }]))
            .await
            .expect(200);
    }
    let gets = "streamhouse_object_gets_total";
    let before = a.api.metric(gets).await as u64;
    plan.nth(Op::Get, 1, Fault::Corrupt);
    let page = a.api.read("d", 0, "offset=0&limit=1").await.expect(200);
    let value = page["records"][0]["value"].as_str().unwrap();
    assert!(value.starts_with("0-x"), "{value:.20}");
    assert_eq!(plan.injected(), 1, "the first GET was damaged");
    assert_eq!(
        a.api.metric(gets).await as u64,
        before + 2,
        "and the chunk fetched once more"
    );
    assert_eq!(
        a.api.metric("streamhouse_chunks_refetched_total").await,
        1.0
    );
}

#[tokio::test]
async fn an_agent_is_ready_only_once_it_has_reached_both_stores() {
    use streamhouse_server::testing::faults::FaultPlan;
    let plan = std::sync::Arc::new(FaultPlan::default());
    plan.during(Op::Get, Duration::from_secs(3), Fault::Fail);
    plan.during(Op::MetadataRead, Duration::from_millis(1500), Fault::Fail);
    let a = TestAgent::start_with_plan(&[], plan).await;
    let first = a.api.get("/readyz").await.expect(503);
    let detail = first["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("object store"), "{first}");
    let mut saw_metadata_first = detail.contains("metadata store");
    let started = std::time::Instant::now();
    loop {
        let r = a.api.get("/readyz").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let detail = r.body["detail"].as_str().unwrap_or_default();
        saw_metadata_first |= detail.contains("metadata store");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still not ready: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ready while the object store still failed"
    );
    assert!(
        saw_metadata_first,
        "the metadata store was named while it failed"
    );
    // Ready for good: a later outage is answered request by request.
    a.api.get("/readyz").await.expect(200);
}
