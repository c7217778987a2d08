//! The data lifecycle on a cluster: three agent processes on a real
//! PostgreSQL and a real S3-API server (SeaweedFS). Compaction runs while
//! records are produced, a reader pages and a subscriber follows; the
//! agent holding compaction jobs is killed with SIGKILL and the others
//! take its jobs over; trim and retention are seen by every agent; a
//! deleted topic's objects (and the killed agent's orphans) leave the
//! bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Api;
use common::fleet::Fleet;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use streamhouse_server::store::ObjectStore;

const FLAGS: &[&str] = &[
    "--linger",
    "20ms",
    "--compaction-interval",
    "300ms",
    "--compaction-min-age",
    "1s",
    "--compaction-target-bytes",
    "1MiB",
    "--gc-grace",
    "4s",
    "--index-cache-ttl",
    "1s",
    "--orphan-grace",
    "10s",
    "--maintenance-interval",
    "1s",
];

async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A counter's value in an agent's `/metrics` (0 when absent).
async fn metric(api: &Api, line_start: &str) -> f64 {
    let text = api.get("/metrics").await.text;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn value(n: usize) -> Value {
    json!({"n": n, "pad": "x".repeat(400)})
}

async fn follow(url: String, want: usize) -> Vec<(i64, Value)> {
    let r = common::client()
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut events = Box::pin(r.bytes_stream().eventsource());
    let mut got = Vec::new();
    while got.len() < want {
        let e = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("well-formed event");
        assert_eq!(e.event, "records", "{}", e.data);
        let data: Value = serde_json::from_str(&e.data).unwrap();
        for r in data["records"].as_array().unwrap() {
            got.push((r["offset"].as_i64().unwrap(), r["value"].clone()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_trim_and_deletion_across_three_agents_with_one_killed() {
    let mut fleet = Fleet::start(3, "life", FLAGS).await;
    let (a1, a2) = (fleet.api(1), fleet.api(2));
    a1.create_topic("f", 2).await.expect(201);
    const REQUESTS: usize = 160;
    const PER: usize = 20;
    let total = REQUESTS / 2 * PER;
    let follower = tokio::spawn(follow(
        a2.url("/v1/topics/f/partitions/0/records?from=earliest"),
        total,
    ));
    // Produced through agents 1 and 2: agent 0 is the one to die.
    let producers = [a1.clone(), a2.clone()];
    let producer = tokio::spawn(async move {
        let mut n = [0usize; 2];
        for i in 0..REQUESTS {
            let p = i % 2;
            let records: Vec<Value> = (0..PER)
                .map(|j| json!({"partition": p, "value": value(n[p] + j)}))
                .collect();
            n[p] += PER;
            producers[(i / 2) % 2]
                .produce("f", Value::Array(records))
                .await
                .expect(200);
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });
    let pager_api = a1.clone();
    let pager = tokio::spawn(async move {
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            let mut offset = 0;
            loop {
                let r = pager_api
                    .read("f", 0, &format!("offset={offset}&limit=37"))
                    .await;
                if r.status != 200 {
                    errors.push(r.text.clone());
                    break;
                }
                for rec in r.body["records"].as_array().unwrap() {
                    assert_eq!(rec["offset"], offset, "no gap, no repeat");
                    assert_eq!(rec["value"], value(offset as usize), "identical");
                    offset += 1;
                }
                if offset >= r.body["high_watermark"].as_i64().unwrap() {
                    break;
                }
            }
        }
        errors
    });
    // Kill agent 0 once it has leased compaction work.
    let a0 = fleet.api(0);
    wait_for(
        "agent 0 to lease a compaction",
        Duration::from_secs(30),
        || async {
            (metric(&a0, "streamhouse_jobs_claimed_total{kind=\"compact\"}").await > 0.0)
                .then_some(())
        },
    )
    .await;
    fleet.kill(0);
    producer.await.unwrap();
    let got = follower.await.unwrap();
    assert_eq!(got.len(), total);
    for (i, (offset, v)) in got.iter().enumerate() {
        assert_eq!((*offset, v), (i as i64, &value(i)));
    }
    // The survivors finish: a partition's 700 KB end in at most two
    // objects (compacted objects under half the 1 MiB target merge).
    wait_for(
        "compaction by the survivors",
        Duration::from_secs(60),
        || async {
            let d = a2.describe("f").await.expect(200);
            let parts = d["partition_details"].as_array().unwrap().clone();
            parts
                .iter()
                .all(|p| p["objects"].as_i64().unwrap() <= 2)
                .then_some(())
        },
    )
    .await;
    let errors = pager.await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    for p in 0..2 {
        let all = a1.read_all("f", p).await;
        assert_eq!(all.len(), total);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(
                (r["offset"].as_i64(), &r["value"]),
                (Some(i as i64), &value(i))
            );
        }
    }

    // A trim through agent 1 is refused below by agent 2 within a second.
    let trimmed = a1
        .post("/v1/topics/f/partitions/1/trim", &json!({"before": 500}))
        .await
        .expect(200);
    assert_eq!(trimmed["log_start_offset"], 500);
    wait_for(
        "agent 2 to see the trim",
        Duration::from_secs(5),
        || async { (a2.read("f", 1, "offset=499").await.status == 416).then_some(()) },
    )
    .await;
    assert_eq!(a2.read_all("f", 1).await.len(), total - 500);

    // Deleting the topic empties the bucket of its objects (and of the
    // dead agent's orphans) once the graces are over.
    let bucket = fleet.s3.store_with_prefix("life").await;
    a1.delete("/v1/topics/f").await.expect(204);
    wait_for("an empty bucket", Duration::from_secs(60), || async {
        let page = bucket.list("objects/", None).await.unwrap();
        page.objects.is_empty().then_some(())
    })
    .await;
    let deleted = metric(&a1, "streamhouse_gc_objects_deleted_total").await
        + metric(&a2, "streamhouse_gc_objects_deleted_total").await;
    assert!(deleted > 0.0);
}
