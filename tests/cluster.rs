//! Many stateless agents: three agent processes sharing one PostgreSQL and
//! one S3-API server (SeaweedFS), all started by the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::seaweed::Seaweed;
use common::{AgentProcess, TestAgent};
use serde_json::{Value, json};

struct Cluster {
    agents: Vec<AgentProcess>,
    client: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
    _s3: Seaweed,
    _pg: Postgres,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let pg = Postgres::start();
        let url = pg.database(false);
        let s3 = Seaweed::start("cluster").await;
        let mut agents = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let mut args: Vec<String> = vec![
                "--data-dir".into(),
                dir.path().display().to_string(),
                "--metadata-url".into(),
                url.clone(),
                "--linger".into(),
                "20ms".into(),
                "--watermark-poll-interval".into(),
                "100ms".into(),
            ];
            args.extend(s3.agent_flags("c1"));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            agents.push(AgentProcess::start(&refs, &[]));
            dirs.push(dir);
        }
        Cluster {
            agents,
            client: common::client(),
            _dirs: dirs,
            _s3: s3,
            _pg: pg,
        }
    }

    fn url(&self, agent: usize, path: &str) -> String {
        format!("{}{path}", self.agents[agent].url)
    }

    async fn produce(&self, agent: usize, topic: &str, records: Value) -> reqwest::Response {
        self.client
            .post(self.url(agent, &format!("/v1/topics/{topic}/records")))
            .json(&json!({ "records": records }))
            .send()
            .await
            .unwrap()
    }

    async fn read_all(&self, agent: usize, topic: &str, partition: i64) -> Vec<(i64, Value)> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page: Value = self
                .client
                .get(self.url(agent, &format!("/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&limit=10000")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in page["records"].as_array().unwrap() {
                out.push((r["offset"].as_i64().unwrap(), r["value"].clone()));
            }
            offset = page["next_offset"].as_i64().unwrap();
            if offset >= page["high_watermark"].as_i64().unwrap() {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn three_agents_share_one_log() {
    let c = Cluster::start(3).await;

    // A topic created through A is usable through B and C at once.
    let r = c
        .client
        .post(c.url(0, "/v1/topics"))
        .json(&json!({"name": "shared", "partitions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for agent in [1, 2] {
        let r = c
            .client
            .get(c.url(agent, "/v1/topics/shared"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            c.produce(
                agent,
                "shared",
                json!([{"value": format!("hello from {agent}"), "partition": 0}])
            )
            .await
            .status(),
            200
        );
    }

    // Concurrent produce to the same partitions through all three agents.
    let mut tasks = Vec::new();
    for agent in 0..3 {
        for w in 0..6 {
            let url = c.url(agent, "/v1/topics/shared/records");
            let client = c.client.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let records: Vec<Value> = (0..4).map(|j| json!({"value": format!("a{agent}-w{w}-{i}-{j}"), "partition": (i + j) % 4})).collect();
                    let r = client.post(&url).json(&json!({"records": records.clone()})).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let ack: Value = r.json().await.unwrap();
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
    for agent in 0..3 {
        let mut log = BTreeMap::new();
        for p in 0..4 {
            let recs = c.read_all(agent, "shared", p).await;
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
    let hw = c.read_all(1, "shared", 3).await.len() as i64;
    let url = c.url(
        1,
        &format!("/v1/topics/shared/partitions/3/records?offset={hw}&wait_ms=15000"),
    );
    let client = c.client.clone();
    let waiter = tokio::spawn(async move {
        client
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    assert_eq!(
        c.produce(
            0,
            "shared",
            json!([{"value": "across agents", "partition": 3}])
        )
        .await
        .status(),
        200
    );
    let page = waiter.await.unwrap();
    let delay = sent.elapsed();
    assert_eq!(page["records"][0]["value"], "across agents");
    assert!(
        delay < Duration::from_secs(5),
        "woken by the poll, took {delay:?}"
    );

    // B's cached watermark is older than A's commit; reading at it refreshes.
    let p2 = c.read_all(1, "shared", 2).await.len() as i64;
    let r = c
        .produce(0, "shared", json!([{"value": "fresh", "partition": 2}]))
        .await;
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["offsets"][0]["offset"], p2);
    let page: Value = c
        .client
        .get(c.url(
            1,
            &format!("/v1/topics/shared/partitions/2/records?offset={p2}"),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["records"][0]["value"], "fresh");

    // Two agents creating one topic at once: one wins, the other gets 409.
    let (r1, r2) = tokio::join!(
        c.client
            .post(c.url(0, "/v1/topics"))
            .json(&json!({"name": "race", "partitions": 2}))
            .send(),
        c.client
            .post(c.url(1, "/v1/topics"))
            .json(&json!({"name": "race", "partitions": 2}))
            .send(),
    );
    let mut statuses = [r1.unwrap().status().as_u16(), r2.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);

    // Deleting through A while B and C produce: they get 404, and no agent
    // serves the topic's records afterwards.
    let mut writers = Vec::new();
    for agent in [1, 2] {
        let url = c.url(agent, "/v1/topics/race/records");
        let client = c.client.clone();
        writers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                let r = client
                    .post(&url)
                    .json(&json!({"records": [{"value": i}]}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        c.client
            .delete(c.url(0, "/v1/topics/race"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
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
    for agent in 0..3 {
        let r = c
            .client
            .get(c.url(agent, "/v1/topics/race/partitions/0/records?offset=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            404,
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
    let r = a
        .client
        .post(a.u("/v1/topics/m/records"))
        .json(&json!({"records": [{"value": "during"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("not stored"), "{p}");
    let r = a
        .client
        .get(a.u("/v1/topics/other/partitions/0/records"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a lookup that needs the store answers 503");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answers, does not hang"
    );

    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = a
            .client
            .post(a.u("/v1/topics/m/records"))
            .json(&json!({"records": [{"value": "after"}]}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
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
