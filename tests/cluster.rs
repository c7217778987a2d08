//! Many stateless agents: three agent processes sharing one PostgreSQL and
//! one S3-API server (SeaweedFS), all started by the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::TestAgent;
use common::fleet::Fleet;
use common::postgres::Postgres;
use serde_json::{Value, json};

/// The (offset, value) of every record of a partition, read through `api`.
async fn log_of(api: &common::Api, topic: &str, partition: i64) -> Vec<(i64, Value)> {
    api.read_all(topic, partition)
        .await
        .into_iter()
        .map(|r| (r["offset"].as_i64().unwrap(), r["value"].clone()))
        .collect()
}

#[tokio::test]
async fn three_agents_share_one_log() {
    let fleet = Fleet::start(
        3,
        "c1",
        &["--linger", "20ms", "--watermark-poll-interval", "100ms"],
    )
    .await;
    let api: Vec<common::Api> = (0..3).map(|i| fleet.api(i)).collect();

    // A topic created through A is usable through B and C at once.
    api[0].create_topic("shared", 4).await.expect(201);
    for agent in [1, 2] {
        api[agent].describe("shared").await.expect(200);
        let hello = json!([{"value": format!("hello from {agent}"), "partition": 0}]);
        api[agent].produce("shared", hello).await.expect(200);
    }

    // Concurrent produce to the same partitions through all three agents.
    let mut tasks = Vec::new();
    for agent in 0..3 {
        for w in 0..6 {
            let api = api[agent].clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let records: Vec<Value> = (0..4)
                        .map(|j| json!({"value": format!("a{agent}-w{w}-{i}-{j}"), "partition": (i + j) % 4}))
                        .collect();
                    let ack = api.produce("shared", json!(records.clone())).await.expect(200);
                    for (o, rec) in ack["offsets"].as_array().unwrap().iter().zip(records) {
                        acked.push((o["partition"].as_i64().unwrap(), o["offset"].as_i64().unwrap(), rec["value"].clone()));
                    }
                }
                acked
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let unique: BTreeSet<(i64, i64)> = acked.iter().map(|(p, o, _)| (*p, *o)).collect();
    assert_eq!(
        unique.len(),
        acked.len(),
        "every acknowledged offset is unique"
    );

    // Every agent returns the same gapless log holding every acknowledged record.
    let mut logs: Vec<BTreeMap<(i64, i64), Value>> = Vec::new();
    for (agent, api) in api.iter().enumerate() {
        let mut log = BTreeMap::new();
        for p in 0..4 {
            let recs = log_of(api, "shared", p).await;
            assert!(
                recs.iter().enumerate().all(|(i, (o, _))| *o == i as i64),
                "partition {p} is gapless on agent {agent}"
            );
            for (o, v) in recs {
                log.insert((p, o), v);
            }
        }
        logs.push(log);
    }
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    for (p, o, v) in &acked {
        assert_eq!(
            logs[0].get(&(*p, *o)),
            Some(v),
            "acknowledged {p}/{o} reads back"
        );
    }

    // A long-poll waiting on B returns a record committed through A.
    let hw = api[1].read_all("shared", 3).await.len() as i64;
    let b = api[1].clone();
    let waiter = tokio::spawn(async move {
        b.read("shared", 3, &format!("offset={hw}&wait_ms=15000"))
            .await
            .expect(200)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let across = json!([{"value": "across agents", "partition": 3}]);
    api[0].produce("shared", across).await.expect(200);
    let page = waiter.await.unwrap();
    let delay = sent.elapsed();
    assert_eq!(page["records"][0]["value"], "across agents");
    assert!(
        delay < Duration::from_secs(5),
        "woken by the poll, took {delay:?}"
    );

    // B's cached watermark is older than A's commit; reading at it refreshes.
    let p2 = api[1].read_all("shared", 2).await.len() as i64;
    let fresh = json!([{"value": "fresh", "partition": 2}]);
    let ack = api[0].produce("shared", fresh).await.expect(200);
    assert_eq!(ack["offsets"][0]["offset"], p2);
    let page = api[1]
        .read("shared", 2, &format!("offset={p2}"))
        .await
        .expect(200);
    assert_eq!(page["records"][0]["value"], "fresh");

    // Two agents creating one topic at once: one wins, the other gets 409.
    let (r1, r2) = tokio::join!(
        api[0].create_topic("race", 2),
        api[1].create_topic("race", 2),
    );
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);

    // Deleting through A while B and C produce: they get 404, and no agent
    // serves the topic's records afterwards.
    let mut writers = Vec::new();
    for agent in [1, 2] {
        let api = api[agent].clone();
        writers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                statuses.push(api.produce("race", json!([{"value": i}])).await.status);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    api[0].delete("/v1/topics/race").await.expect(204);
    for w in writers {
        let statuses = w.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 404),
            "{statuses:?}"
        );
        assert_eq!(
            *statuses.last().unwrap(),
            404,
            "writers learn of the deletion"
        );
    }
    for (agent, api) in api.iter().enumerate() {
        let r = api.read("race", 0, "offset=0").await;
        assert_eq!(
            r.status, 404,
            "agent {agent} no longer serves the deleted topic"
        );
    }
}

#[tokio::test]
async fn a_metadata_outage_answers_503_and_agents_recover_by_themselves() {
    let mut pg = Postgres::start();
    let url = pg.database(false);
    let a = TestAgent::start(&["--metadata-url", &url, "--linger", "10ms"]).await;
    a.create_topic("m", 1).await;
    a.produce("m", json!({"records": [{"value": "before"}]}))
        .await;
    pg.stop();

    let started = Instant::now();
    let p = a
        .api
        .produce("m", json!([{"value": "during"}]))
        .await
        .expect(503);
    assert!(p["detail"].as_str().unwrap().contains("not stored"), "{p}");
    let r = a.api.read("other", 0, "").await;
    assert_eq!(r.status, 503, "a lookup that needs the store answers 503");
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answers, does not hang"
    );

    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if a.api.produce("m", json!([{"value": "after"}])).await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = a.read("m", 0, "offset=0").await;
    let values: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["before", "after"],
        "nothing of the failed request is visible"
    );
}
