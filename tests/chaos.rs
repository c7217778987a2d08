//! Chaos: three agent processes on PostgreSQL and SeaweedFS; producers send
//! records with idempotency keys and retry on any error or timeout, while
//! agents are killed with SIGKILL and restarted every few seconds, the S3
//! server is stopped for a few seconds once, and PostgreSQL is restarted
//! once; meanwhile compaction (the sweep, for records this small) and the
//! collector run every second. A fresh agent then reads every partition
//! and checks that every acknowledged record is present exactly once, at
//! the offset it was acknowledged with, unchanged; that offsets are
//! gapless; and that nothing appears that was never sent.
//!
//! The short form runs in the test command (`STREAMHOUSE_CHAOS_SECONDS`,
//! default 30). The long form:
//!
//! ```sh
//! STREAMHOUSE_CHAOS_SECONDS=600 cargo test --release --test chaos -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Api;
use common::fleet::Fleet;
use serde_json::{Value, json};

const PARTITIONS: u64 = 4;
const WORKERS: usize = 8;

/// One produced record as the producer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    key: String,
    value: String,
    header: String,
}

#[derive(Default)]
struct Ledger {
    /// Every record ever sent, by value.
    sent: HashMap<String, Sent>,
    /// (partition, offset) → value, for acknowledged records.
    acked: BTreeMap<(i64, i64), String>,
}

fn seconds() -> u64 {
    std::env::var("STREAMHOUSE_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

async fn producer(
    w: usize,
    urls: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    retried: Arc<AtomicU64>,
) -> u64 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut unacked = 0;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let n = 1 + (seq % 4) as usize;
        let partition = (seq + w as u64) % PARTITIONS;
        let records: Vec<Sent> = (0..n)
            .map(|j| Sent {
                key: format!("w{w}"),
                value: format!("w{w}-{seq}-{j}"),
                header: format!("h{seq}.{j}"),
            })
            .collect();
        let body = json!({"records": records.iter().map(|r| json!({
            "key": r.key, "value": r.value, "headers": {"trace": r.header}, "partition": partition
        })).collect::<Vec<_>>()})
        .to_string();
        {
            let mut l = ledger.lock().unwrap();
            for r in &records {
                l.sent.insert(r.value.clone(), r.clone());
            }
        }
        let key = format!("w{w}-req-{seq}");
        let mut attempt = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let url = &urls[(w + attempt) % urls.len()];
            let r = client
                .post(format!("{url}/v1/topics/chaos/records"))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(body.clone())
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == 200
                && let Ok(ack) = r.json::<Value>().await
            {
                let mut l = ledger.lock().unwrap();
                for (o, rec) in ack["offsets"].as_array().unwrap().iter().zip(&records) {
                    let at = (
                        o["partition"].as_i64().unwrap(),
                        o["offset"].as_i64().unwrap(),
                    );
                    if let Some(prev) = l.acked.insert(at, rec.value.clone()) {
                        assert_eq!(prev, rec.value, "one offset acknowledged for two records");
                    }
                }
                break;
            }
            attempt += 1;
            retried.fetch_add(1, Ordering::Relaxed);
            if Instant::now() > deadline {
                unacked += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 + 50 * (attempt.min(10) as u64))).await;
        }
    }
    unacked
}

#[tokio::test]
async fn chaos_loses_and_duplicates_nothing() {
    let run_for = Duration::from_secs(seconds());
    // Peer reads on, as a cluster runs them: restarted agents come back
    // on their URLs while the others' hints still name them.
    let mut fleet = Fleet::start(
        3,
        "chaos",
        &[
            "--linger",
            "20ms",
            "--peer-secret",
            "chaos-cluster-secret-of-at-least-32-bytes",
            // The lifecycle at work throughout: these records are small,
            // so the sweep merges them across partitions every second,
            // through the kills and outages, and the collector deletes
            // what it replaced.
            "--compaction-interval",
            "1s",
            "--compaction-min-age",
            "2s",
            "--compaction-target-bytes",
            "1MiB",
            "--index-cache-ttl",
            "2s",
            "--gc-grace",
            "5s",
        ],
    )
    .await;
    let urls = fleet.urls();
    fleet
        .api(0)
        .create_topic("chaos", PARTITIONS as u32)
        .await
        .expect(201);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let retried = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(producer(
                w,
                urls.clone(),
                ledger.clone(),
                stop.clone(),
                retried.clone(),
            ))
        })
        .collect();

    // The chaos: kill and restart agents every few seconds, S3 down once, PG restarted once.
    let started = Instant::now();
    let (mut kills, mut s3_outage, mut pg_restart) = (0u64, false, false);
    let mut victim = 0usize;
    // Run for `run_for`, and on (on a slow machine, where restarts take
    // long) until every kind of chaos has happened at least as often as
    // the checks below ask.
    while started.elapsed() < run_for || kills < 3 || !s3_outage || !pg_restart {
        tokio::time::sleep(Duration::from_millis(2500 + (kills % 3) * 500)).await;
        let t = started.elapsed();
        if !s3_outage && t > run_for / 3 {
            fleet.s3.kill();
            tokio::time::sleep(Duration::from_secs(4)).await;
            fleet.s3.restart().await;
            s3_outage = true;
            continue;
        }
        if !pg_restart && t > run_for * 2 / 3 {
            fleet.pg.stop();
            tokio::time::sleep(Duration::from_secs(2)).await;
            fleet.pg.start_server();
            pg_restart = true;
            continue;
        }
        fleet.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.restart(victim);
        victim = (victim + 1) % 3;
    }
    stop.store(true, Ordering::Relaxed);
    let mut unacked = 0;
    for p in producers {
        unacked += p.await.unwrap();
    }
    assert!(s3_outage && pg_restart, "every kind of chaos happened");

    // The checker: a fresh agent reads everything.
    let checker = fleet.add();
    let checker: Api = fleet.api(checker);
    // Every flush object swept (the gauge is the age of the oldest one
    // left), so the reads below go through the rewritten index.
    common::wait_for("the sweep", Duration::from_secs(120), || async {
        (checker.metric("streamhouse_compaction_lag_seconds").await == 0.0).then_some(())
    })
    .await;
    let described = checker.describe("chaos").await.expect(200);
    let index_rows: i64 = described["partition_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index_rows"].as_i64().unwrap())
        .sum();
    let mut stored: BTreeMap<(i64, i64), (String, String, String)> = BTreeMap::new();
    for p in 0..PARTITIONS as i64 {
        for r in checker.read_all("chaos", p).await {
            let header = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["key"] == "trace")
                .map(|h| h["value"].as_str().unwrap().to_string())
                .unwrap_or_default();
            stored.insert(
                (p, r["offset"].as_i64().unwrap()),
                (
                    r["key"].as_str().unwrap_or_default().to_string(),
                    r["value"].as_str().unwrap_or_default().to_string(),
                    header,
                ),
            );
        }
    }
    let ledger = ledger.lock().unwrap();
    let mut lost = 0;
    for (at, value) in &ledger.acked {
        let sent = &ledger.sent[value];
        match stored.get(at) {
            Some((k, v, h)) if k == &sent.key && v == &sent.value && h == &sent.header => {}
            other => {
                lost += 1;
                eprintln!("LOST or CHANGED {at:?}: sent {sent:?}, found {other:?}");
            }
        }
    }
    let mut seen = HashSet::new();
    let mut duplicated = 0;
    let mut unexpected = 0;
    for (k, v, h) in stored.values() {
        if !seen.insert(v.clone()) {
            duplicated += 1;
        }
        match ledger.sent.get(v) {
            Some(s) if &s.key == k && &s.header == h => {}
            _ => unexpected += 1,
        }
    }
    let mut gaps = 0;
    for p in 0..PARTITIONS as i64 {
        let offs: Vec<i64> = stored
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        gaps += offs
            .iter()
            .enumerate()
            .filter(|(i, o)| **o != *i as i64)
            .count();
    }
    let report = json!({
        "seconds": started.elapsed().as_secs(),
        "agent_kills": kills,
        "s3_outages": 1,
        "postgres_restarts": 1,
        "sent": ledger.sent.len(),
        "acknowledged": ledger.acked.len(),
        "retried": retried.load(Ordering::Relaxed),
        "unacknowledged_requests": unacked,
        "found": stored.len(),
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "gaps": gaps,
        "index_rows_after_the_sweep": index_rows,
    });
    println!("chaos report: {report}");
    eprintln!("chaos report: {report}");
    assert!(ledger.acked.len() > 100, "the load ran: {report}");
    assert!(kills >= 3, "agents were killed: {report}");
    assert_eq!(
        (lost, duplicated, unexpected, gaps),
        (0, 0, 0, 0),
        "{report}"
    );
}
