//! Shutdown and crashes, with the agent as a real process: SIGTERM drains
//! and answers buffered producers; kill -9 loses nothing acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{AgentProcess, TestAgent};
use serde_json::{Value, json};

#[tokio::test]
async fn shutdown_turns_readiness_off_refuses_new_work_and_flushes_buffered_records() {
    let a = TestAgent::start(&["--linger", "3s"]).await;
    a.create_topic("d", 1).await;
    let (c, u) = (a.client.clone(), a.u("/v1/topics/d/records"));
    let pending = tokio::spawn(async move {
        c.post(u)
            .json(&json!({"records": [{"value": "buffered"}]}))
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.client.get(a.u("/readyz")).send().await.unwrap().status(),
        200
    );
    a.draining.cancel();
    // The buffered request is flushed at once, not after the 3 s linger.
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("answered promptly")
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = a.client.get(a.u("/readyz")).send().await;
    if let Ok(r) = after {
        assert_eq!(r.status(), 503);
    }
}

fn produce_loop(
    url: String,
    worker: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i64, i64, String)>> {
    tokio::spawn(async move {
        let client = common::client();
        let mut acked = Vec::new();
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let values: Vec<String> = (0..5).map(|j| format!("w{worker}-{i}-{j}")).collect();
            let body =
                json!({"records": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()});
            match client
                .post(format!("{url}/v1/topics/crash/records"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    let ack: Value = r.json().await.unwrap();
                    for (o, v) in ack["offsets"].as_array().unwrap().iter().zip(values) {
                        acked.push((
                            o["partition"].as_i64().unwrap(),
                            o["offset"].as_i64().unwrap(),
                            v,
                        ));
                    }
                }
                _ => break,
            }
            i += 1;
        }
        acked
    })
}

async fn read_all(url: &str, partitions: i64) -> BTreeMap<(i64, i64), String> {
    let client = common::client();
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let mut offset = 0;
        loop {
            let page: Value = client
                .get(format!(
                    "{url}/v1/topics/crash/partitions/{p}/records?offset={offset}&limit=10000"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in page["records"].as_array().unwrap() {
                out.insert(
                    (p, r["offset"].as_i64().unwrap()),
                    r["value"].as_str().unwrap().to_string(),
                );
            }
            offset = page["next_offset"].as_i64().unwrap();
            if offset >= page["high_watermark"].as_i64().unwrap() {
                break;
            }
        }
    }
    out
}

async fn crash_and_check(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut agent = AgentProcess::start(&["--data-dir", data, "--linger", "20ms"], &[]);
    let client = common::client();
    let r = client
        .post(format!("{}/v1/topics", agent.url))
        .json(&json!({"name": "crash", "partitions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|w| produce_loop(agent.url.clone(), w, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.signal(signal);
    let status = agent
        .wait_exit(Duration::from_secs(20))
        .expect("agent exits");
    if signal == "TERM" {
        assert!(
            status.success(),
            "clean exit after SIGTERM: {status:?}\n{:?}",
            agent.log()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in workers {
        acked.extend(w.await.unwrap());
    }
    assert!(acked.len() > 100, "the load ran ({} acked)", acked.len());

    let again = AgentProcess::start(&["--data-dir", data], &[]);
    let stored = read_all(&again.url, 4).await;
    for (p, o, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {p}/{o} survives kill -{signal}"
        );
    }
    // Offsets are gapless: every partition holds 0..hw with nothing missing.
    for p in 0..4 {
        let offs: Vec<i64> = stored
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert!(
            offs.iter().enumerate().all(|(i, o)| *o == i as i64),
            "partition {p} is gapless"
        );
    }
}

#[tokio::test]
async fn sigkill_during_heavy_produce_loses_no_acknowledged_record() {
    crash_and_check("KILL").await;
}

#[tokio::test]
async fn sigterm_during_heavy_produce_answers_everyone_and_exits_cleanly() {
    crash_and_check("TERM").await;
}
