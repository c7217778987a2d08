//! The data lifecycle through the API, on an embedded agent (SQLite and a
//! local directory): retention by time and by bytes, explicit trim,
//! object compaction under a paging reader and a live subscriber, the
//! sweep of sparse partitions into shared objects, key
//! compaction with expiring tombstones, and a deleted topic's objects
//! collected after the grace while a topic of the same name lives on.
//! The same runs over PostgreSQL and SeaweedFS with three agents are in
//! `data_lifecycle_cluster.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Api, TestAgent, follow_sse as follow, wait_for};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Lifecycle work every 200 ms on anything flushed; released objects go
/// after 5 s (index rows are cached for at most 2 s).
pub const FAST: &[&str] = &[
    "--linger",
    "1ms",
    "--compaction-interval",
    "200ms",
    "--compaction-min-age",
    "0s",
    "--gc-grace",
    "5s",
    "--index-cache-ttl",
    "1s",
    "--compaction-target-bytes",
    "1MiB",
];

async fn partition(api: &Api, topic: &str, p: usize) -> Value {
    api.describe(topic).await.expect(200)["partition_details"][p].clone()
}

async fn patch(api: &Api, topic: &str, body: Value) -> Value {
    api.send(
        |c, u| c.patch(u).json(&body),
        &format!("/v1/topics/{topic}"),
    )
    .await
    .expect(200)
}

async fn trim(api: &Api, topic: &str, p: i32, before: i64) -> common::api::Reply {
    api.post(
        &format!("/v1/topics/{topic}/partitions/{p}/trim"),
        &json!({ "before": before }),
    )
    .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Files under `dir` (recursively), the object store's objects.
fn files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { files(&p) } else { 1 }
        })
        .sum()
}

#[tokio::test]
async fn retention_by_time_and_by_bytes_moves_the_log_start_and_collects_objects() {
    // No compaction here: merged chunks would blur the time boundary.
    let a = TestAgent::start(&[
        "--linger",
        "1ms",
        "--compaction-interval",
        "200ms",
        "--compaction-min-age",
        "1h",
        "--gc-grace",
        "5s",
        "--index-cache-ttl",
        "1s",
    ])
    .await;
    let objects = a.dir.as_ref().unwrap().path().join("objects");
    a.create_topic("aged", 1).await;
    let old = now_ms() - 2 * 3_600_000;
    for i in 0..3 {
        a.produce(
            "aged",
            json!({"records": [{"value": i, "timestamp": old}, {"value": i, "timestamp": old}]}),
        )
        .await;
    }
    for i in 3..5 {
        a.produce("aged", json!({"records": [{"value": i}, {"value": i}]}))
            .await;
    }
    let before = files(&objects);
    let changed = patch(&a.api, "aged", json!({"retention_ms": 3_600_000})).await;
    assert_eq!(changed["retention_ms"], 3_600_000);
    let start = wait_for("time retention", Duration::from_secs(10), || async {
        let p = partition(&a.api, "aged", 0).await;
        (p["log_start_offset"] == 6).then_some(p)
    })
    .await;
    assert_eq!(start["high_watermark"], 10);
    assert_eq!(start["objects"], 2);
    let below = a.api.read("aged", 0, "offset=0").await.expect(416);
    assert_eq!(
        (
            below["log_start_offset"].as_i64(),
            below["high_watermark"].as_i64()
        ),
        (Some(6), Some(10))
    );
    let left: Vec<Value> = a.api.read_all_from("aged", 0, 6).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|r| r["offset"].as_i64().unwrap() >= 6));

    // By bytes: ten rows of one record; keep about three of them.
    a.create_topic("sized", 1).await;
    for i in 0..10 {
        a.produce(
            "sized",
            json!({"records": [{"value": format!("{i:0>200}")}]}),
        )
        .await;
    }
    let total = partition(&a.api, "sized", 0).await["bytes"]
        .as_i64()
        .unwrap();
    let limit = total * 3 / 10 + 1;
    patch(&a.api, "sized", json!({"retention_bytes": limit})).await;
    let p = wait_for("size retention", Duration::from_secs(10), || async {
        let p = partition(&a.api, "sized", 0).await;
        (p["log_start_offset"] == 7).then_some(p)
    })
    .await;
    assert!(p["bytes"].as_i64().unwrap() <= limit, "{p}");
    assert_eq!(a.api.read_all_from("sized", 0, 7).await.len(), 3);

    // The released objects are deleted once their grace is over.
    wait_for(
        "released objects deleted",
        Duration::from_secs(15),
        || async { (a.metrics.lifecycle.gc_objects_deleted.get() >= 10).then_some(()) },
    )
    .await;
    assert_eq!(
        files(&objects),
        before + 10 - 10,
        "3 + 7 objects went, 10 came"
    );
    // Settings are validated and named.
    let bad = a
        .api
        .send(
            |c, u| c.patch(u).json(&json!({"retention_bytes": 0})),
            "/v1/topics/sized",
        )
        .await
        .expect(400);
    assert_eq!(bad["field"], "retention_bytes");
}

#[tokio::test]
async fn trim_moves_the_log_start_to_exactly_the_offset() {
    let a = TestAgent::start(FAST).await;
    a.create_topic("cut", 2).await;
    let many: Vec<Value> = (0..10)
        .map(|i| json!({"value": i, "partition": 0}))
        .collect();
    a.produce("cut", json!({ "records": many })).await;
    let more: Vec<Value> = (10..15)
        .map(|i| json!({"value": i, "partition": 0}))
        .collect();
    a.produce("cut", json!({ "records": more })).await;
    let done = trim(&a.api, "cut", 0, 3).await.expect(200);
    assert_eq!(
        done,
        json!({"partition": 0, "log_start_offset": 3, "high_watermark": 15})
    );
    let below = a.api.read("cut", 0, "offset=2").await.expect(416);
    assert_eq!(below["log_start_offset"], 3);
    let page = a.api.read("cut", 0, "offset=3&limit=2").await.expect(200);
    assert_eq!(page["records"][0]["offset"], 3);
    assert_eq!(page["records"][0]["value"], 3);
    assert_eq!(page["log_start_offset"], 3);
    // Earliest means the log start; lower trims change nothing.
    let first = a.api.read("cut", 0, "limit=1").await.expect(200);
    assert_eq!(first["records"][0]["offset"], 3);
    let same = trim(&a.api, "cut", 0, 1).await.expect(200);
    assert_eq!(same["log_start_offset"], 3);
    // Past the end, a negative offset, a partition that does not exist.
    let past = trim(&a.api, "cut", 0, 16).await.expect(416);
    assert_eq!(
        (past["field"].as_str(), past["high_watermark"].as_i64()),
        (Some("before"), Some(15))
    );
    assert_eq!(
        trim(&a.api, "cut", 0, -1).await.expect(400)["field"],
        "before"
    );
    trim(&a.api, "cut", 7, 1).await.expect(404);
    // Trimming to the end leaves an empty partition that still takes records.
    trim(&a.api, "cut", 0, 15).await.expect(200);
    let after = a
        .produce(
            "cut",
            json!({"records": [{"value": "next", "partition": 0}]}),
        )
        .await;
    assert_eq!(after["offsets"][0]["offset"], 15);
    assert_eq!(a.api.read_all_from("cut", 0, 15).await.len(), 1);
    // The SSE subscriber that starts below the log start is told where it is.
    let r = a
        .client
        .get(a.u("/v1/topics/cut/partitions/0/records?from=2"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["log_start_offset"], 15);
}

#[tokio::test]
async fn compaction_under_a_paging_reader_and_a_subscriber_keeps_every_record() {
    let a = TestAgent::start(FAST).await;
    a.create_topic("c", 2).await;
    const REQUESTS: usize = 120;
    const PER: usize = 5;
    let total = REQUESTS / 2 * PER;
    let follower = tokio::spawn(follow(
        a.u("/v1/topics/c/partitions/0/records?from=earliest"),
        total,
    ));
    let api = a.api.clone();
    let producer = tokio::spawn(async move {
        let mut n = [0usize; 2];
        for i in 0..REQUESTS {
            let p = i % 2;
            let records: Vec<Value> = (0..PER)
                .map(|j| json!({"partition": p, "value": {"n": n[p] + j}, "key": format!("k{j}")}))
                .collect();
            n[p] += PER;
            api.produce("c", Value::Array(records)).await.expect(200);
        }
    });
    // A reader paging through partition 0 again and again meanwhile.
    let api = a.api.clone();
    let pager = tokio::spawn(async move {
        let mut rounds = 0;
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            let mut offset = 0;
            loop {
                let r = api.read("c", 0, &format!("offset={offset}&limit=7")).await;
                if r.status != 200 {
                    errors.push(r.text.clone());
                    break;
                }
                for rec in r.body["records"].as_array().unwrap() {
                    assert_eq!(rec["offset"], offset, "no gap, no repeat");
                    assert_eq!(rec["value"], json!({"n": offset}), "identical");
                    offset += 1;
                }
                if offset >= r.body["high_watermark"].as_i64().unwrap() {
                    break;
                }
            }
            rounds += 1;
        }
        (rounds, errors)
    });
    producer.await.unwrap();
    let got = follower.await.unwrap();
    assert_eq!(got.len(), total);
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!((*offset, value), (i as i64, &json!({"n": i})));
    }
    // Compaction leaves no flush object (the lag gauge is the age of the
    // oldest one) and each partition in a few objects (size-tiered merges).
    wait_for("compaction", Duration::from_secs(20), || async {
        let lag = a.api.get("/metrics").await.text;
        let d = a.api.describe("c").await.expect(200);
        let parts = d["partition_details"].as_array().unwrap().clone();
        (lag.contains("\nstreamhouse_compaction_lag_seconds 0.0\n")
            && parts.iter().all(|p| p["objects"].as_i64().unwrap() <= 3))
        .then_some(())
    })
    .await;
    let (rounds, errors) = pager.await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(rounds > 1);
    for p in 0..2 {
        let all = a.api.read_all("c", p).await;
        assert_eq!(all.len(), total);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(
                (r["offset"].as_i64(), &r["value"]),
                (Some(i as i64), &json!({"n": i}))
            );
            assert_eq!(r["key"], format!("k{}", i % PER));
        }
    }
    assert!(a.metrics.lifecycle.compaction_bytes_in.get() > 0);
    // Chunks this small are merged by the sweep, many rows into one.
    let life = &a.metrics.lifecycle;
    assert!(life.sweep_rows_replaced.get() > life.sweep_rows_written.get());
    // The flush objects go after the grace; the compacted ones stay (an
    // object the sweep wrote holds both partitions, and counts for each).
    let objects = a.dir.as_ref().unwrap().path().join("objects");
    wait_for("flush objects deleted", Duration::from_secs(15), || async {
        let d = a.api.describe("c").await.expect(200);
        let live: usize = d["partition_details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["objects"].as_u64().unwrap() as usize)
            .sum();
        (files(&objects) <= live).then_some(())
    })
    .await;
    assert_eq!(a.api.read_all("c", 1).await.len(), total);
}

#[tokio::test]
async fn the_sweep_merges_sparse_partitions_into_shared_objects_keeping_every_record() {
    let a = TestAgent::start(FAST).await;
    const PARTS: usize = 40;
    const ROUNDS: usize = 12;
    a.create_topic("sparse", PARTS as u32).await;
    // One record per partition per flush: every chunk is a few dozen bytes.
    for round in 0..ROUNDS {
        let records: Vec<Value> = (0..PARTS)
            .map(|p| json!({"partition": p, "value": {"p": p, "n": round}}))
            .collect();
        a.api
            .produce("sparse", Value::Array(records))
            .await
            .expect(200);
    }
    // Each partition ends in one row of one object, shared by all.
    wait_for("the sweep", Duration::from_secs(30), || async {
        let lag = a.api.metric("streamhouse_compaction_lag_seconds").await;
        let d = a.api.describe("sparse").await.expect(200);
        let parts = d["partition_details"].as_array().unwrap().clone();
        (lag == 0.0
            && parts
                .iter()
                .all(|p| p["index_rows"] == 1 && p["objects"] == 1))
        .then_some(())
    })
    .await;
    let life = &a.metrics.lifecycle;
    assert!(life.sweep_rows_replaced.get() >= (PARTS * ROUNDS) as u64);
    assert_eq!(a.metrics.lifecycle.compaction_records_dropped.get(), 0);
    for p in 0..PARTS {
        let all = a.api.read_all("sparse", p as i64).await;
        let got: Vec<(i64, Value)> = all
            .iter()
            .map(|r| (r["offset"].as_i64().unwrap(), r["value"].clone()))
            .collect();
        let want: Vec<(i64, Value)> = (0..ROUNDS)
            .map(|n| (n as i64, json!({"p": p, "n": n})))
            .collect();
        assert_eq!(got, want, "partition {p}");
    }
    // The flush objects go after the grace: one object is left.
    let objects = a.dir.as_ref().unwrap().path().join("objects");
    wait_for("flush objects deleted", Duration::from_secs(15), || async {
        (files(&objects) == 1).then_some(())
    })
    .await;
    // Later records are swept into a new object merged with the old one.
    let more: Vec<Value> = (0..PARTS)
        .map(|p| json!({"partition": p, "value": {"p": p, "n": ROUNDS}}))
        .collect();
    a.api
        .produce("sparse", Value::Array(more))
        .await
        .expect(200);
    wait_for("the second sweep", Duration::from_secs(30), || async {
        let d = a.api.describe("sparse").await.expect(200);
        let parts = d["partition_details"].as_array().unwrap().clone();
        parts
            .iter()
            .all(|p| p["index_rows"] == 1 && p["high_watermark"] == ROUNDS + 1)
            .then_some(())
    })
    .await;
    for p in [0, PARTS - 1] {
        let all = a.api.read_all("sparse", p as i64).await;
        assert_eq!(all.len(), ROUNDS + 1);
        assert_eq!(all[ROUNDS]["value"], json!({"p": p, "n": ROUNDS}));
    }
}

#[tokio::test]
async fn key_compaction_keeps_the_latest_per_key_and_tombstones_expire() {
    let a = TestAgent::start(FAST).await;
    a.api
        .post(
            "/v1/topics",
            &json!({"name": "kv", "partitions": 1, "cleanup_policy": "compact", "delete_retention_ms": 1500}),
        )
        .await
        .expect(201);
    for round in 0..5 {
        let records: Vec<Value> = (0..10)
            .map(|k| json!({"key": format!("k{k}"), "value": {"k": k, "round": round}}))
            .collect();
        a.produce("kv", json!({ "records": records })).await;
    }
    // A tombstone: a key with no value.
    a.produce("kv", json!({"records": [{"key": "k3"}]})).await;
    // The latest of each key stays, and k3's tombstone until it is 1.5 s
    // old (on a loaded machine compaction may first run after that).
    let kept = wait_for("key compaction", Duration::from_secs(10), || async {
        let all = a.api.read_all("kv", 0).await;
        (all.len() <= 10
            && all
                .iter()
                .all(|r| r["key"] == "k3" || r["value"]["round"] == 4))
        .then_some(all)
    })
    .await;
    let offsets: Vec<i64> = kept.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    assert_eq!(
        offsets[..9],
        [40, 41, 42, 44, 45, 46, 47, 48, 49],
        "offsets never change"
    );
    for r in &kept[..9] {
        assert_eq!(r["value"]["round"], 4, "{r}");
        assert_eq!(format!("k{}", r["value"]["k"]), r["key"].as_str().unwrap());
    }
    if let Some(t) = kept.get(9) {
        assert_eq!(
            (
                t["offset"].as_i64(),
                t["key"].as_str(),
                t["value_encoding"].as_str()
            ),
            (Some(50), Some("k3"), Some("tombstone"))
        );
    }
    // A read at a removed offset starts at the next kept one.
    let page = a.api.read("kv", 0, "offset=5&limit=2").await.expect(200);
    assert_eq!(page["records"][0]["offset"], 40);
    assert_eq!(page["next_offset"], 42);
    // The tombstone goes once delete_retention_ms has passed.
    let settled = wait_for("tombstone expiry", Duration::from_secs(10), || async {
        let all = a.api.read_all("kv", 0).await;
        (all.len() == 9).then_some(all)
    })
    .await;
    assert!(settled.iter().all(|r| r["key"] != "k3"));
    let end = a.api.read("kv", 0, "offset=49").await.expect(200);
    assert_eq!(
        (
            end["records"].as_array().unwrap().len(),
            end["next_offset"].as_i64()
        ),
        (1, Some(51))
    );
    // New records are compacted against the old ones.
    a.produce("kv", json!({"records": [{"key": "k0", "value": "new"}]}))
        .await;
    let again = wait_for("recompaction", Duration::from_secs(10), || async {
        let all = a.api.read_all("kv", 0).await;
        (all.len() == 9 && all[8]["offset"] == 51).then_some(all)
    })
    .await;
    assert_eq!(again[0]["offset"], 41, "k0's old record went");
    assert!(a.metrics.lifecycle.compaction_records_dropped.get() >= 42);

    // Every key deleted: once the tombstones expire the partition is empty
    // below its high watermark, and a follower from the start waits
    // quietly in the gap instead of asking the store again and again.
    let all: Vec<Value> = (0..10).map(|k| json!({"key": format!("k{k}")})).collect();
    a.produce("kv", json!({ "records": all })).await;
    wait_for("every key gone", Duration::from_secs(10), || async {
        a.api.read_all("kv", 0).await.is_empty().then_some(())
    })
    .await;
    let per_second = || async {
        let before = a.metrics.metadata_statements.get();
        tokio::time::sleep(Duration::from_secs(1)).await;
        a.metrics.metadata_statements.get() - before
    };
    let quiet = per_second().await;
    let r = a
        .client
        .get(a.u("/v1/topics/kv/partitions/0/records?from=earliest"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let following = per_second().await;
    assert!(
        following < quiet + 50,
        "{following} metadata statements a second with a follower, {quiet} without"
    );
    drop(r);
}

#[tokio::test]
async fn a_deleted_topic_leaves_no_objects_and_its_name_is_reusable_meanwhile() {
    let a = TestAgent::start(FAST).await;
    let objects = a.dir.as_ref().unwrap().path().join("objects");
    a.create_topic("gone", 3).await;
    for i in 0..30 {
        a.produce(
            "gone",
            json!({"records": [{"value": i, "partition": i % 3}]}),
        )
        .await;
    }
    a.api.delete("/v1/topics/gone").await.expect(204);
    // Recreated at once, while the old one's rows are still being released.
    a.create_topic("gone", 1).await;
    for i in 0..3 {
        a.produce("gone", json!({"records": [{"value": format!("new-{i}")}]}))
            .await;
    }
    wait_for(
        "the old topic's objects deleted",
        Duration::from_secs(20),
        || async {
            (files(&objects) == 1
                && a.api.describe("gone").await.body["partition_details"][0]["objects"] == 1)
                .then_some(())
        },
    )
    .await;
    let all = a.api.read_all("gone", 0).await;
    let values: Vec<&Value> = all.iter().map(|r| &r["value"]).collect();
    assert_eq!(values, [&json!("new-0"), &json!("new-1"), &json!("new-2")]);
}

/// The value of `streamhouse_topic_bytes` for topic `s`, if reported.
fn topic_bytes(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with("streamhouse_topic_bytes{") && l.contains("topic=\"s\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn per_topic_storage_figures_are_read_on_their_own_interval() {
    let with = |interval: &'static str| {
        let mut args = FAST.to_vec();
        args.extend(["--storage-report-interval", interval]);
        args
    };
    let hourly = TestAgent::start(&with("1h")).await;
    let often = TestAgent::start(&with("1s")).await;
    // The first tick (at most 250 ms after the start) reads the figures
    // before the topic exists.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for a in [&hourly, &often] {
        a.create_topic("s", 1).await;
        a.produce("s", json!({"records": [{"value": "stored"}]}))
            .await;
    }
    wait_for(
        "the topic's bytes reported",
        Duration::from_secs(10),
        || async {
            topic_bytes(&often.api.get("/metrics").await.text)
                .is_some_and(|b| b > 0.0)
                .then_some(())
        },
    )
    .await;
    // Five more ticks of the hourly agent: its per-topic figures are still
    // those of its first tick, which saw no topic.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = hourly.api.get("/metrics").await.text;
    assert!(metrics.contains("\nstreamhouse_compaction_lag_seconds "));
    assert!(
        topic_bytes(&metrics).is_none_or(|b| b == 0.0),
        "{:?}",
        topic_bytes(&metrics)
    );
}

/// SSE events (`event`, `id`, JSON data) from `url`.
async fn events(
    url: String,
    last_id: Option<&str>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = (String, String, Value)> + Send>> {
    let mut req = common::client()
        .get(url)
        .header("accept", "text/event-stream");
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    Box::pin(r.bytes_stream().eventsource().map(|e| {
        let e = e.expect("well-formed event");
        let data = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        (e.event, e.id, data)
    }))
}

async fn next_event(
    s: &mut std::pin::Pin<Box<dyn futures_util::Stream<Item = (String, String, Value)> + Send>>,
) -> (String, String, Value) {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("an event in time")
        .expect("stream open")
}

#[tokio::test]
async fn snapshot_then_tail_gives_every_key_once_then_every_later_record() {
    // Compaction held back, so every record after the cut must arrive.
    let a = TestAgent::start(&["--linger", "1ms", "--compaction-min-age", "1h"]).await;
    a.api
        .post(
            "/v1/topics",
            &json!({"name": "state", "partitions": 2, "cleanup_policy": "compact"}),
        )
        .await
        .expect(201);
    for round in 0..3 {
        let records: Vec<Value> = (0..20)
            .map(|k| json!({"key": format!("k{k}"), "value": {"k": k, "round": round}}))
            .collect();
        a.produce("state", json!({ "records": records })).await;
    }
    a.produce(
        "state",
        json!({"records": [{"key": "k5"}, {"value": "no key"}]}),
    )
    .await;

    // JSON: the latest of each live key; tombstoned and keyless records left out.
    let snap = a.api.get("/v1/topics/state/snapshot").await.expect(200);
    let mut keys = Vec::new();
    for p in snap["partitions"].as_array().unwrap() {
        let hw = partition(&a.api, "state", p["partition"].as_u64().unwrap() as usize).await
            ["high_watermark"]
            .clone();
        assert_eq!(p["resume_offset"], hw);
        for r in p["records"].as_array().unwrap() {
            assert_eq!(r["value"]["round"], 2, "{r}");
            keys.push(r["key"].as_str().unwrap().to_string());
        }
    }
    keys.sort();
    let mut want: Vec<String> = (0..20)
        .filter(|k| *k != 5)
        .map(|k| format!("k{k}"))
        .collect();
    want.sort();
    assert_eq!(keys, want);
    // NDJSON: a record per line, then where to resume.
    let nd = a
        .api
        .send(
            |c, u| c.get(u).header("accept", "application/x-ndjson"),
            "/v1/topics/state/snapshot",
        )
        .await;
    assert_eq!(nd.status, 200);
    let lines: Vec<Value> = nd
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert!(
        lines[..19]
            .iter()
            .all(|l| l["partition"].is_i64() && l["key"].is_string())
    );
    assert_eq!(lines[19]["resume"].as_array().unwrap().len(), 2);
    // Over SSE the snapshot is followed live from exactly its cut, while
    // records keep arriving.
    let url = a.u("/v1/topics/state/snapshot?then=stream");
    let mut s = events(url.clone(), None).await;
    let api = a.api.clone();
    let producer = tokio::spawn(async move {
        for i in 0..40 {
            api.produce(
                "state",
                json!([{"key": format!("k{}", i % 20), "value": {"live": i}}]),
            )
            .await
            .expect(200);
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let (resume, token) = loop {
        let (event, id, data) = next_event(&mut s).await;
        match event.as_str() {
            "snapshot" => {
                for r in data["records"].as_array().unwrap() {
                    assert!(
                        seen.insert(r["key"].as_str().unwrap().to_string()),
                        "a key once"
                    );
                }
            }
            "snapshot-end" => break (data["resume"].clone(), id),
            other => panic!("unexpected {other} before snapshot-end"),
        }
    };
    assert!(seen.len() >= 19);
    producer.await.unwrap();
    let mut next: Vec<i64> = resume
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    let mut highs = Vec::new();
    for p in 0..2 {
        highs.push(
            partition(&a.api, "state", p).await["high_watermark"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut first_live: Option<Value> = None;
    while next.iter().zip(&highs).any(|(n, h)| n < h) {
        let (event, _, data) = next_event(&mut s).await;
        assert_eq!(event, "records", "{data}");
        let p = data["partition"].as_u64().unwrap() as usize;
        for r in data["records"].as_array().unwrap() {
            assert_eq!(r["offset"].as_i64().unwrap(), next[p], "no gap, no repeat");
            next[p] += 1;
        }
        first_live.get_or_insert(data);
    }
    // Reconnecting with the snapshot's id resumes live at the cut, not
    // before it (key compaction may since have removed superseded records
    // just after the cut, so the first one may come later).
    assert!(first_live.is_some());
    let mut again = events(url, Some(&token)).await;
    let (event, _, data) = next_event(&mut again).await;
    assert_eq!(event, "records");
    let q = data["partition"].as_u64().unwrap() as usize;
    assert!(
        data["records"][0]["offset"].as_i64() >= resume[q]["offset"].as_i64(),
        "{data}"
    );
    // then=stream needs the event stream, and the other way round.
    let bad = a
        .api
        .get("/v1/topics/state/snapshot?then=stream")
        .await
        .expect(400);
    assert_eq!(bad["field"], "then");
}

#[tokio::test]
async fn a_subscriber_that_falls_below_the_log_start_is_told_where_it_is() {
    let a = TestAgent::start(FAST).await;
    a.create_topic("slow", 1).await;
    let big = "x".repeat(10_000);
    // 10 MB: far more than socket buffers hold, so the follower is still
    // near the start when the trim lands.
    for _ in 0..10 {
        let records: Vec<Value> = (0..100).map(|_| json!({ "value": big })).collect();
        a.produce("slow", json!({ "records": records })).await;
    }
    let mut s = events(
        a.u("/v1/topics/slow/partitions/0/records?from=earliest&limit=1"),
        None,
    )
    .await;
    let (event, id, _) = next_event(&mut s).await;
    assert_eq!((event.as_str(), id.as_str()), ("records", "1"));
    trim(&a.api, "slow", 0, 900).await.expect(200);
    loop {
        let (event, _, data) = next_event(&mut s).await;
        if event == "error" {
            assert_eq!(data["type"], "urn:streamhouse:problem:offset-out-of-range");
            assert_eq!(
                (
                    data["log_start_offset"].as_i64(),
                    data["high_watermark"].as_i64()
                ),
                (Some(900), Some(1000))
            );
            break;
        }
        assert_eq!(event, "records");
    }
}
