//! Consumer groups with members: three members served by two agents
//! (alternating per request) share a topic; a member that dies without
//! leaving loses its partitions after its session; nothing is lost, no
//! partition is delivered to two members in one generation, and stale or
//! foreign commits are fenced. Then the admin calls on the empty group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::api::Api;
use common::fleet::Fleet;
use common::{TestAgent, wait_for};
use serde_json::{Value, json};

const PARTITIONS: i64 = 6;

struct Member {
    id: String,
    generation: i64,
    /// Partitions it was last told it owns.
    owned: BTreeSet<i64>,
}

/// Every delivery: (partition, generation) → members, and offsets seen.
#[derive(Default)]
struct Log {
    owners: HashMap<(i64, i64), BTreeSet<String>>,
    seen: BTreeMap<i64, BTreeSet<i64>>,
    deliveries: usize,
}

fn learn(m: &mut Member, answer: &Value) {
    m.generation = answer["generation"].as_i64().unwrap();
    m.owned = answer["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["partition"].as_i64().unwrap())
        .collect();
}

/// One fetch and commit by `m` through `api`; records deliveries.
async fn step(api: &Api, m: &mut Member, log: &mut Log) {
    let r = api
        .get(&format!(
            "/v1/groups/workers/members/{}/records?max_records=40&wait_ms=200",
            m.id
        ))
        .await;
    let answer = r.expect(200);
    learn(m, &answer);
    let mut offsets = Vec::new();
    for b in answer["batches"].as_array().unwrap() {
        let p = b["partition"].as_i64().unwrap();
        assert!(
            m.owned.contains(&p),
            "records of a partition it does not own"
        );
        let recs = b["records"].as_array().unwrap();
        let mut last = -1;
        for rec in recs {
            let o = rec["offset"].as_i64().unwrap();
            assert!(o > last, "in order within a partition");
            last = o;
            log.seen.entry(p).or_default().insert(o);
            log.deliveries += 1;
        }
        log.owners
            .entry((p, m.generation))
            .or_default()
            .insert(m.id.clone());
        offsets.push(json!({"topic": "jobs", "partition": p, "offset": b["next_offset"]}));
    }
    if offsets.is_empty() {
        return;
    }
    let body = json!({"member_id": m.id, "generation": m.generation, "offsets": offsets});
    let c = api.post("/v1/groups/workers/offsets", &body).await;
    // A rebalance between the fetch and the commit fences it: the records
    // come again to whoever owns them next (at least once).
    assert!(
        c.status == 200
            || (c.status == 409
                && matches!(
                    c.problem(),
                    Some("stale-generation" | "not-partition-owner")
                )),
        "{}",
        c.text
    );
}

async fn join(api: &Api, session_ms: i64) -> Member {
    let r = api
        .post(
            "/v1/groups/workers/members",
            &json!({"topics": ["jobs"], "session_timeout_ms": session_ms}),
        )
        .await
        .expect(201);
    let mut m = Member {
        id: r["member_id"].as_str().unwrap().to_string(),
        generation: 0,
        owned: BTreeSet::new(),
    };
    learn(&mut m, &r);
    m
}

async fn produce(api: &Api, from: i64, n: i64) {
    let records: Vec<Value> = (from..from + n)
        .map(|i| json!({"partition": i % PARTITIONS, "value": i}))
        .collect();
    api.produce("jobs", json!(records)).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_two_agents_share_a_topic_and_survive_a_dead_member() {
    let fleet = Fleet::start(2, "groups", &[]).await;
    let agents = [fleet.api(0), fleet.api(1)];
    agents[0]
        .create_topic("jobs", PARTITIONS as u32)
        .await
        .expect(201);
    produce(&agents[0], 0, 300).await;
    let mut log = Log::default();
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(join(&agents[i % 2], 3000).await);
    }
    // Heartbeats (alternating agents) until every partition has settled.
    let mut turn = 0usize;
    wait_for("a settled assignment", Duration::from_secs(20), || {
        turn += 1;
        let agents = agents.clone();
        let mut ms: Vec<(String, i64)> = members
            .iter()
            .map(|m| (m.id.clone(), m.generation))
            .collect();
        async move {
            let mut owned = Vec::new();
            for (i, (id, _)) in ms.iter_mut().enumerate() {
                let r = agents[(turn + i) % 2]
                    .post(
                        &format!("/v1/groups/workers/members/{id}/heartbeat"),
                        &json!({}),
                    )
                    .await
                    .expect(200);
                if !r["revoking"].as_array().unwrap().is_empty() {
                    return None;
                }
                owned.push(r["assignment"].as_array().unwrap().len());
            }
            (owned.iter().sum::<usize>() == PARTITIONS as usize && owned.iter().all(|n| *n == 2))
                .then_some(())
        }
    })
    .await;
    for (i, m) in members.iter_mut().enumerate() {
        let r = agents[i % 2]
            .post(
                &format!("/v1/groups/workers/members/{}/heartbeat", m.id),
                &json!({}),
            )
            .await
            .expect(200);
        learn(m, &r);
    }
    let all: BTreeSet<i64> = members.iter().flat_map(|m| m.owned.clone()).collect();
    assert_eq!(all.len(), PARTITIONS as usize, "every partition assigned");
    assert_eq!(
        members.iter().map(|m| m.owned.len()).sum::<usize>(),
        PARTITIONS as usize,
        "disjoint"
    );
    let describe = agents[1].get("/v1/groups/workers").await.expect(200);
    assert_eq!(describe["state"], "stable", "{describe}");
    assert_eq!(describe["members"].as_array().unwrap().len(), 3);

    // Fencing: a stale generation, a partition owned by another member,
    // and a plain commit while members are live.
    let m0 = &members[0];
    let stale = agents[1]
        .post(
            "/v1/groups/workers/offsets",
            &json!({"member_id": m0.id, "generation": m0.generation - 1,
                    "offsets": [{"topic": "jobs", "partition": m0.owned.first(), "offset": 1}]}),
        )
        .await;
    assert_eq!(
        (stale.status, stale.problem()),
        (409, Some("stale-generation"))
    );
    let foreign = *members[1].owned.first().unwrap();
    let theirs = agents[0]
        .post(
            "/v1/groups/workers/offsets",
            &json!({"member_id": m0.id, "generation": m0.generation,
                    "offsets": [{"topic": "jobs", "partition": foreign, "offset": 1}]}),
        )
        .await;
    assert_eq!(
        (theirs.status, theirs.problem()),
        (409, Some("not-partition-owner"))
    );
    let plain = agents[0]
        .commit(
            "workers",
            json!([{"topic": "jobs", "partition": 0, "offset": 1}]),
        )
        .await;
    assert_eq!(
        (plain.status, plain.problem()),
        (409, Some("group-has-members"))
    );

    // Consume, producing more as we go; member 2 dies (stops calling)
    // after a few rounds and its partitions must move to the others.
    let mut produced = 300;
    let dead = members[2].id.clone();
    let mut died_at = None;
    let mut moved_after = None;
    let mut round = 0usize;
    let start = Instant::now();
    loop {
        round += 1;
        if round <= 6 {
            produce(&agents[round % 2], produced, 60).await;
            produced += 60;
        }
        if round == 4 {
            died_at = Some(Instant::now());
        }
        for (i, m) in members.iter_mut().enumerate() {
            if m.id == dead && died_at.is_some() {
                continue;
            }
            step(&agents[(round + i) % 2], m, &mut log).await;
        }
        if let Some(t) = died_at
            && moved_after.is_none()
            && members[..2].iter().map(|m| m.owned.len()).sum::<usize>() == PARTITIONS as usize
        {
            moved_after = Some(t.elapsed());
        }
        let delivered: usize = log.seen.values().map(BTreeSet::len).sum();
        if delivered == produced as usize && moved_after.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "consumed {delivered} of {produced} after {round} rounds"
        );
    }
    let moved_after = moved_after.unwrap();
    assert!(
        moved_after >= Duration::from_millis(1900),
        "the dead member's partitions moved only after its session (renewed once a third of its 3 s had passed): {moved_after:?}"
    );
    // Nothing lost: every offset of every partition was delivered.
    for p in 0..PARTITIONS {
        let seen = &log.seen[&p];
        assert_eq!(seen.len() as i64, produced / PARTITIONS, "partition {p}");
        assert_eq!(*seen.last().unwrap(), produced / PARTITIONS - 1);
    }
    // Never two members in one generation for one partition.
    for ((p, g), who) in &log.owners {
        assert_eq!(who.len(), 1, "partition {p} generation {g}: {who:?}");
    }
    // The dead member is gone and is told so.
    let gone = agents[0]
        .post(
            &format!("/v1/groups/workers/members/{dead}/heartbeat"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (gone.status, gone.problem()),
        (404, Some("member-not-found"))
    );
    let lag = agents[1].lag("workers").await.expect(200);
    assert_eq!(lag["total_lag"], 0, "{lag}");

    // Leave; then the admin calls work on the empty group.
    for (i, m) in members[..2].iter().enumerate() {
        agents[i % 2]
            .delete(&format!("/v1/groups/workers/members/{}", m.id))
            .await
            .expect(204);
    }
    let d = agents[0].get("/v1/groups/workers").await.expect(200);
    assert_eq!(d["state"], "empty", "{d}");
    let reset = agents[1]
        .post(
            "/v1/groups/workers/reset",
            &json!({"topic": "jobs", "to": "earliest"}),
        )
        .await
        .expect(200);
    assert!(
        reset["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["offset"] == 0)
    );
    let lag = agents[0].lag("workers").await.expect(200);
    assert_eq!(lag["total_lag"], produced, "{lag}");
    agents[0].delete("/v1/groups/workers").await.expect(204);
    let offsets = agents[1].group_offsets("workers").await.expect(200);
    assert!(offsets["offsets"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn member_calls_answer_bad_requests_with_problems() {
    let agent = TestAgent::start(&[]).await;
    let api = Api::new(agent.u(""));
    api.create_topic("t", 2).await.expect(201);
    let bad = [
        (json!({"topics": []}), "topics"),
        (
            json!({"topics": ["t"], "session_timeout_ms": 10}),
            "session_timeout_ms",
        ),
        (
            json!({"topics": ["t"], "auto_offset_reset": "never"}),
            "body",
        ),
        (json!({"topics": ["t"], "extra": 1}), "body"),
    ];
    for (body, field) in bad {
        let r = api.post("/v1/groups/g/members", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["field"], field, "{}", r.text);
    }
    let missing = api
        .post("/v1/groups/g/members", &json!({"topics": ["nope"]}))
        .await;
    assert_eq!(
        (missing.status, missing.problem()),
        (404, Some("topic-not-found"))
    );
    let unknown = api
        .post("/v1/groups/g/members/0190-abc/heartbeat", &json!({}))
        .await;
    assert_eq!(
        (unknown.status, unknown.problem()),
        (404, Some("member-not-found"))
    );
    let bad_id = api
        .post("/v1/groups/g/members/a%20b/heartbeat", &json!({}))
        .await;
    assert_eq!(
        (bad_id.status, bad_id.body["field"].as_str()),
        (400, Some("member"))
    );

    // One member: everything assigned at once, records from the start.
    api.produce(
        "t",
        json!([{"partition": 0, "value": 1}, {"partition": 1, "value": 2}]),
    )
    .await
    .expect(200);
    let m = api
        .post(
            "/v1/groups/g/members",
            &json!({"topics": ["t"], "session_timeout_ms": 5000}),
        )
        .await
        .expect(201);
    let id = m["member_id"].as_str().unwrap();
    assert_eq!(m["assignment"].as_array().unwrap().len(), 2, "{m}");
    let too_long = api
        .get(&format!("/v1/groups/g/members/{id}/records?wait_ms=99999"))
        .await;
    assert_eq!(
        (too_long.status, too_long.body["field"].as_str()),
        (400, Some("wait_ms"))
    );
    let f = api
        .get(&format!("/v1/groups/g/members/{id}/records?max_records=10"))
        .await
        .expect(200);
    let got: usize = f["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["records"].as_array().unwrap().len())
        .sum();
    assert_eq!(got, 2, "{f}");
    // The next fetch waits, then returns nothing new.
    let t = Instant::now();
    let f = api
        .get(&format!("/v1/groups/g/members/{id}/records?wait_ms=300"))
        .await
        .expect(200);
    assert!(f["batches"].as_array().unwrap().is_empty(), "{f}");
    assert!(t.elapsed() >= Duration::from_millis(250));
    // A generation but no member, and the reverse.
    let r = api
        .post(
            "/v1/groups/g/offsets",
            &json!({"generation": 1, "offsets": [{"topic": "t", "partition": 0, "offset": 1}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("member_id"))
    );
    let r = api.delete("/v1/groups/g").await;
    assert_eq!((r.status, r.problem()), (409, Some("group-has-members")));
    let r = api
        .post(
            "/v1/groups/g/reset",
            &json!({"topic": "t", "to": "sometime"}),
        )
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("to")));
    agent.stop().await;
}

/// The values of a member fetch's records, by partition then offset.
fn fetched_values(f: &Value) -> Vec<Value> {
    let mut batches: Vec<&Value> = f["batches"].as_array().unwrap().iter().collect();
    batches.sort_by_key(|b| b["partition"].as_i64());
    batches
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap().iter())
        .map(|r| r["value"].clone())
        .collect()
}

#[tokio::test]
async fn a_member_whose_answer_was_lost_fetches_again_from_the_committed_offsets() {
    let agent = TestAgent::start(&[]).await;
    let api = Api::new(agent.u(""));
    api.create_topic("t", 2).await.expect(201);
    let m = api
        .post(
            "/v1/groups/g/members",
            &json!({"topics": ["t"], "session_timeout_ms": 10000}),
        )
        .await
        .expect(201);
    let id = m["member_id"].as_str().unwrap().to_string();
    let generation = m["generation"].as_i64().unwrap();
    let records = |from: i64| {
        "/v1/groups/g/members/{id}/records?max_records=100".replace("{id}", &id)
            + if from == 1 { "&from=committed" } else { "" }
    };
    api.produce(
        "t",
        json!([{"partition": 0, "value": "a"}, {"partition": 1, "value": "b"}]),
    )
    .await
    .expect(200);
    // Fetched, processed and committed.
    let f = api.get(&records(0)).await.expect(200);
    assert_eq!(fetched_values(&f), [json!("a"), json!("b")], "{f}");
    api.post(
        "/v1/groups/g/offsets",
        &json!({"member_id": id, "generation": generation,
                "offsets": [{"topic": "t", "partition": 0, "offset": 1},
                            {"topic": "t", "partition": 1, "offset": 1}]}),
    )
    .await
    .expect(200);
    api.produce(
        "t",
        json!([{"partition": 0, "value": "c"}, {"partition": 1, "value": "d"}]),
    )
    .await
    .expect(200);
    // This answer is lost on its way: the position moved past c and d.
    let lost = api.get(&records(0)).await.expect(200);
    assert_eq!(fetched_values(&lost), [json!("c"), json!("d")], "{lost}");
    let next = api.get(&records(0)).await.expect(200);
    assert!(fetched_values(&next).is_empty(), "{next}");
    // From the committed offsets: c and d again, not a and b.
    let again = api.get(&records(1)).await.expect(200);
    assert_eq!(fetched_values(&again), [json!("c"), json!("d")], "{again}");
    assert_eq!(again["member_id"], json!(id));
    // And the positions go on from there.
    let after = api.get(&records(0)).await.expect(200);
    assert!(fetched_values(&after).is_empty(), "{after}");
    let bad = api
        .get(&format!("/v1/groups/g/members/{id}/records?from=start"))
        .await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (400, Some("from")),
        "{}",
        bad.text
    );
    agent.stop().await;
}

/// An SSE connection's events.
type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// Opens a group stream (resuming a member with `last_event_id`).
async fn group_stream(url: String, last_event_id: Option<&str>) -> Events {
    use eventsource_stream::Eventsource;
    let mut req = common::client()
        .get(url)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    Box::pin(r.bytes_stream().eventsource())
}

async fn next_event(events: &mut Events) -> (String, Value) {
    use futures_util::StreamExt;
    let e = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    (e.event, serde_json::from_str(&e.data).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_stream_is_a_member_for_the_life_of_its_connection() {
    let agent = TestAgent::start(&[]).await;
    let api = Api::new(agent.u(""));
    api.create_topic("feed", 2).await.expect(201);
    let url = agent.u("/v1/groups/live/stream?topics=feed&session_timeout_ms=3000");
    let mut a = group_stream(url.clone(), None).await;
    let (kind, first) = next_event(&mut a).await;
    assert_eq!(kind, "assignment", "{first}");
    assert_eq!(first["assignment"].as_array().unwrap().len(), 2, "{first}");
    let member = first["member_id"].as_str().unwrap().to_string();
    api.produce(
        "feed",
        json!([{"partition": 0, "value": 1}, {"partition": 1, "value": 2},
               {"partition": 0, "value": 3}, {"partition": 1, "value": 4}]),
    )
    .await
    .expect(200);
    let mut got = 0;
    while got < 4 {
        let (kind, e) = next_event(&mut a).await;
        if kind != "records" {
            continue;
        }
        assert_eq!(e["member_id"], member.as_str());
        got += e["records"].as_array().unwrap().len();
        let c = api
            .post(
                "/v1/groups/live/offsets",
                &json!({"member_id": member, "generation": e["generation"],
                        "offsets": [{"topic": "feed", "partition": e["partition"], "offset": e["next_offset"]}]}),
            )
            .await;
        assert_eq!(c.status, 200, "{}", c.text);
    }
    // Reconnect as the same member: same partitions, from the commits.
    drop(a);
    let mut a = group_stream(url.clone(), Some(&member)).await;
    let (kind, again) = next_event(&mut a).await;
    assert_eq!(
        (kind.as_str(), again["member_id"].as_str()),
        ("assignment", Some(member.as_str()))
    );
    api.produce("feed", json!([{"partition": 1, "value": 5}]))
        .await
        .expect(200);
    let (kind, e) = next_event(&mut a).await;
    assert_eq!(kind, "records", "{e}");
    assert_eq!(
        e["records"][0]["value"], 5,
        "nothing committed comes again: {e}"
    );
    // A second member takes one partition once the first lets it go.
    let mut b = group_stream(url, None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let settled = loop {
        assert!(Instant::now() < deadline, "one partition each in time");
        let (kind, e) = next_event(&mut b).await;
        if kind == "assignment" && e["assignment"].as_array().unwrap().len() == 1 {
            break e;
        }
    };
    assert_ne!(settled["member_id"], member.as_str());
    agent.stop().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(base: &str) -> Ws {
    let url = base.replace("http://", "ws://") + "/v1/ws";
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, v: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

async fn recv(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_group_subscription_is_a_member_and_commits_fenced() {
    let agent = TestAgent::start(&[]).await;
    let api = Api::new(agent.u(""));
    api.create_topic("wsg", 2).await.expect(201);
    let mut a = ws(&agent.u("")).await;
    send(
        &mut a,
        json!({"type": "subscribe", "id": "g1", "topic": "wsg", "group": "wsgroup", "session_timeout_ms": 3000}),
    )
    .await;
    let sub = recv(&mut a).await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    assert_eq!(sub["partitions"].as_array().unwrap().len(), 2, "{sub}");
    let member = sub["member_id"].as_str().unwrap().to_string();
    // Partitions and from belong to the group: refused.
    send(
        &mut a,
        json!({"type": "subscribe", "id": "bad", "topic": "wsg", "group": "wsgroup", "from": "earliest"}),
    )
    .await;
    let bad = recv(&mut a).await;
    assert_eq!(
        (bad["type"].as_str(), bad["field"].as_str()),
        (Some("error"), Some("group"))
    );
    api.produce("wsg", json!([{"partition": 0, "value": "x"}]))
        .await
        .expect(200);
    let rec = loop {
        let m = recv(&mut a).await;
        if m["type"] == "records" {
            break m;
        }
    };
    assert_eq!(rec["member_id"], member.as_str(), "{rec}");
    assert_eq!(rec["records"][0]["value"], "x");
    // A stale generation is fenced; the current one commits.
    let offsets = json!([{"topic": "wsg", "partition": 0, "offset": rec["next_offset"]}]);
    send(
        &mut a,
        json!({"type": "commit", "request_id": "c0", "group": "wsgroup", "offsets": offsets,
               "member_id": member, "generation": rec["generation"].as_i64().unwrap() - 1}),
    )
    .await;
    let stale = recv(&mut a).await;
    assert_eq!(
        (stale["type"].as_str(), stale["code"].as_str()),
        (Some("error"), Some("stale-generation")),
        "{stale}"
    );
    send(
        &mut a,
        json!({"type": "commit", "request_id": "c1", "group": "wsgroup", "offsets": offsets,
               "member_id": member, "generation": rec["generation"]}),
    )
    .await;
    let ok = recv(&mut a).await;
    assert_eq!(ok["type"], "committed", "{ok}");
    // A second connection joins: the first hears its assignment shrink.
    let mut b = ws(&agent.u("")).await;
    send(
        &mut b,
        json!({"type": "subscribe", "id": "g2", "topic": "wsg", "group": "wsgroup"}),
    )
    .await;
    assert_eq!(recv(&mut b).await["type"], "subscribed");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the first member's assignment shrinks"
        );
        let m = recv(&mut a).await;
        if m["type"] == "assignment" && m["partitions"].as_array().unwrap().len() == 1 {
            break;
        }
    }
    // Closing a connection leaves the group at once.
    drop(a);
    let d = wait_for("one member left", Duration::from_secs(10), || async {
        let d = api.get("/v1/groups/wsgroup").await.expect(200);
        (d["members"].as_array().unwrap().len() == 1).then_some(d)
    })
    .await;
    assert_ne!(d["members"][0]["member_id"], member.as_str());
    agent.stop().await;
}

#[tokio::test]
async fn a_token_reads_a_member_only_with_consume_on_its_topics() {
    use common::tokens::{JWT_FLAGS, token};
    let agent = TestAgent::start(JWT_FLAGS).await;
    let admin = Api::with_token(
        agent.u(""),
        &token("t1", &["admin:*", "produce:*", "consume:*", "commit:*"]),
    );
    admin.create_topic("secret", 1).await.expect(201);
    admin.create_topic("public", 1).await.expect(201);
    admin
        .produce("secret", json!([{"value": "hidden"}]))
        .await
        .expect(200);
    let m = admin
        .post("/v1/groups/g/members", &json!({"topics": ["secret"]}))
        .await
        .expect(201);
    let id = m["member_id"].as_str().unwrap();
    // Commit on the group and consume on another topic: not enough to
    // read the member's records, or to take it over by resuming.
    let other = Api::with_token(agent.u(""), &token("t1", &["consume:public", "commit:g"]));
    let r = other
        .get(&format!("/v1/groups/g/members/{id}/records"))
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (403, Some("topics")),
        "{}",
        r.text
    );
    let r = other
        .client
        .get(other.url("/v1/groups/g/stream?topics=public"))
        .header("accept", "text/event-stream")
        .header("last-event-id", id)
        .send()
        .await
        .unwrap();
    // The resume is refused, so the stream is a new member of "public"
    // (the refused member keeps its position).
    assert_eq!(r.status(), 403);
    let f = admin
        .get(&format!("/v1/groups/g/members/{id}/records"))
        .await
        .expect(200);
    assert_eq!(f["batches"][0]["records"][0]["value"], "hidden", "{f}");
    // A subscription needs produce on its dead-letter topic.
    let hooks = Api::with_token(agent.u(""), &token("t1", &["admin:public"]));
    let r = hooks
        .post(
            "/v1/subscriptions",
            &json!({"name": "billing", "topic": "public", "url": "https://hooks.example.com/x"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (403, Some("name")),
        "{}",
        r.text
    );
    agent.stop().await;
}
