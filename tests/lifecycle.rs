//! Shutdown and crashes, with the agent as a real process: SIGTERM drains
//! and answers buffered producers; kill -9 loses nothing acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{AgentProcess, Api, TestAgent};
use serde_json::json;

#[tokio::test]
async fn shutdown_turns_readiness_off_refuses_new_work_and_flushes_buffered_records() {
    let a = TestAgent::start(&["--linger", "3s"]).await;
    a.create_topic("d", 1).await;
    let api = a.api.clone();
    let pending =
        tokio::spawn(async move { api.produce("d", json!([{"value": "buffered"}])).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.api.get("/readyz").await.expect(200);
    a.draining.cancel();
    // The buffered request is flushed at once, not after the 3 s linger.
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("answered promptly")
        .unwrap();
    assert_eq!(r.status, 200);
    if let Ok(r) = a.api.try_send(|c, u| c.get(u), "/readyz").await {
        assert_eq!(r.status, 503);
    }
}

fn produce_loop(
    api: Api,
    worker: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i64, i64, String)>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let values: Vec<String> = (0..5).map(|j| format!("w{worker}-{i}-{j}")).collect();
            let body =
                json!({"records": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()});
            match api
                .try_send(|c, u| c.post(u).json(&body), "/v1/topics/crash/records")
                .await
            {
                Ok(r) if r.status == 200 => {
                    let ack = r.body;
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

async fn read_all(api: &Api, partitions: i64) -> BTreeMap<(i64, i64), String> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        for r in api.read_all("crash", p).await {
            out.insert(
                (p, r["offset"].as_i64().unwrap()),
                r["value"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

async fn crash_and_check(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut agent = AgentProcess::start(&["--data-dir", data, "--linger", "20ms"], &[]);
    agent.api().create_topic("crash", 4).await.expect(201);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|w| produce_loop(agent.api(), w, stop.clone()))
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
    let stored = read_all(&again.api(), 4).await;
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
