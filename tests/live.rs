//! Live consumption across two agent processes sharing PostgreSQL and an
//! object directory: SSE (parsed by a real SSE parser) and WebSocket
//! (tokio-tungstenite) subscribers on one agent, producers on the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::AgentProcess;
use common::postgres::Postgres;
use eventsource_stream::Eventsource;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Pair {
    a: AgentProcess,
    b: AgentProcess,
    client: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
    _pg: Postgres,
}

async fn pair(b_extra: &[&str]) -> Pair {
    let pg = Postgres::start();
    let url = pg.database(false);
    let objects = tempfile::tempdir().unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = objects.path().display().to_string();
    let common_args = |dir: &tempfile::TempDir| {
        vec![
            "--data-dir".to_string(),
            dir.path().display().to_string(),
            "--metadata-url".into(),
            url.clone(),
            "--object-store".into(),
            shared.clone(),
            "--linger".into(),
            "20ms".into(),
        ]
    };
    let a_args = common_args(&da);
    let mut b_args = common_args(&db);
    b_args.extend(b_extra.iter().map(|s| s.to_string()));
    let a = AgentProcess::start(&a_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let b = AgentProcess::start(&b_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    Pair {
        a,
        b,
        client: common::client(),
        _dirs: vec![objects, da, db],
        _pg: pg,
    }
}

impl Pair {
    async fn create(&self, topic: &str, partitions: u32) {
        self.a
            .api()
            .create_topic(topic, partitions)
            .await
            .expect(201);
    }

    async fn produce(&self, topic: &str, records: Value) -> Value {
        self.a.api().produce(topic, records).await.expect(200)
    }

    async fn metric(&self, base: &str, name: &str) -> f64 {
        let text = common::Api::new(base).get("/metrics").await.text;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

type SseEvents = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<eventsource_stream::Event, String>> + Send>,
>;

async fn sse(client: &reqwest::Client, url: &str, last_id: Option<&str>) -> SseEvents {
    let mut req = client.get(url).header("accept", "text/event-stream");
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    Box::pin(
        r.bytes_stream()
            .eventsource()
            .map(|e| e.map_err(|err| err.to_string())),
    )
}

/// Collects records from events until `want` are in hand; returns the
/// (offset, value) pairs and the last event id.
async fn take(events: &mut SseEvents, want: usize) -> (Vec<(i64, Value)>, String) {
    let mut got = Vec::new();
    let mut last = String::new();
    while got.len() < want {
        let e = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        assert_eq!(e.event, "records", "{e:?}");
        let data: Value = serde_json::from_str(&e.data).unwrap();
        for r in data["records"].as_array().unwrap() {
            got.push((r["offset"].as_i64().unwrap(), r["value"].clone()));
        }
        last = e.id;
    }
    (got, last)
}

#[tokio::test]
async fn sse_follows_another_agent_and_resumes_exactly() {
    let p = pair(&[]).await;
    p.create("feed", 2).await;
    // 300 records in partition 0, produced on A while the subscriber reads on B.
    let writer = {
        let api = p.a.api();
        tokio::spawn(async move {
            for i in 0..30 {
                let recs: Vec<Value> = (0..10)
                    .map(|j| json!({"value": i * 10 + j, "partition": 0}))
                    .collect();
                api.produce("feed", json!(recs)).await.expect(200);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let url = format!(
        "{}/v1/topics/feed/partitions/0/records?from=earliest&limit=7",
        p.b.url
    );
    let mut events = sse(&p.client, &url, None).await;
    let (mut got, last) = take(&mut events, 60).await;
    drop(events);
    // Resume: Last-Event-ID wins over from=latest; no gap, no duplicate.
    let url = format!(
        "{}/v1/topics/feed/partitions/0/records?from=latest",
        p.b.url
    );
    let mut events = sse(&p.client, &url, Some(&last)).await;
    let (more, _) = take(&mut events, 300 - got.len()).await;
    got.extend(more);
    writer.await.unwrap();
    let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..300).collect::<Vec<_>>());
    assert!(got.iter().all(|(o, v)| v.as_i64() == Some(*o)));

    // A multi-topic stream resumes from a token covering every partition.
    p.create("side", 1).await;
    let url = format!("{}/v1/stream?topics=feed,side&from=earliest", p.b.url);
    let mut events = sse(&p.client, &url, None).await;
    let mut seen: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut token = String::new();
    while seen.len() < 300 {
        let e = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let data: Value = serde_json::from_str(&e.data).unwrap();
        for r in data["records"].as_array().unwrap() {
            seen.insert(
                (
                    data["topic"].as_str().unwrap().to_string(),
                    r["offset"].as_i64().unwrap(),
                ),
                1,
            );
        }
        token = e.id;
    }
    assert_eq!(token, "feed=300,0~side=0");
    drop(events);
    p.produce("side", json!([{"value": "s"}])).await;
    p.produce("feed", json!([{"value": "f", "partition": 1}]))
        .await;
    let mut events = sse(&p.client, &url, Some(&token)).await;
    let mut after = Vec::new();
    while after.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let data: Value = serde_json::from_str(&e.data).unwrap();
        for r in data["records"].as_array().unwrap() {
            after.push((
                data["topic"].as_str().unwrap().to_string(),
                data["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            ));
        }
    }
    after.sort();
    assert_eq!(
        after,
        [("feed".to_string(), 1, 0), ("side".to_string(), 0, 0)]
    );
}

async fn ws(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let ws_url = url.replace("http://", "ws://") + "/v1/ws";
    tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket connects")
        .0
}

async fn recv_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_subscribe_produce_commit_and_errors() {
    let p = pair(&["--ws-max-subscriptions", "2"]).await;
    p.create("ws", 3).await;
    let mut sub = ws(&p.b.url).await;
    sub.send(Message::text(json!({"type": "subscribe", "id": "all", "topic": "ws", "partitions": "all", "from": "earliest"}).to_string())).await.unwrap();
    let m = recv_json(&mut sub).await;
    assert_eq!(m["type"], "subscribed");
    assert_eq!(m["partitions"].as_array().unwrap().len(), 3);

    // A browser publishes through agent A over its own WebSocket.
    let mut pubr = ws(&p.a.url).await;
    pubr.send(Message::text(json!({"type": "produce", "request_id": "r1", "topic": "ws", "records": [{"key": "k", "value": {"n": 1}}, {"value": "x", "partition": 2}]}).to_string())).await.unwrap();
    let m = recv_json(&mut pubr).await;
    assert_eq!(m["type"], "produced");
    assert_eq!(m["request_id"], "r1");
    assert_eq!(m["offsets"].as_array().unwrap().len(), 2);

    let mut got = Vec::new();
    while got.len() < 2 {
        let m = recv_json(&mut sub).await;
        assert_eq!(m["type"], "records", "{m}");
        assert_eq!(m["subscription"], "all");
        for r in m["records"].as_array().unwrap() {
            got.push(r["value"].clone());
        }
    }
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, [json!("x"), json!({"n": 1})]);

    // Commit, ping, and mistakes answered with error messages.
    sub.send(Message::text(json!({"type": "commit", "request_id": "c1", "group": "g", "offsets": [{"topic": "ws", "partition": 2, "offset": 1}]}).to_string())).await.unwrap();
    let m = recv_json(&mut sub).await;
    assert_eq!(
        (m["type"].as_str(), m["committed"].as_i64()),
        (Some("committed"), Some(1))
    );
    let lag = p.a.api().lag("g").await.expect(200);
    assert_eq!(lag["partitions"][0]["committed_offset"], 1);
    sub.send(Message::text(r#"{"type":"ping","request_id":"p"}"#))
        .await
        .unwrap();
    assert_eq!(recv_json(&mut sub).await["type"], "pong");
    for (msg, code) in [
        ("not json", "invalid-json"),
        (r#"{"type":"dance"}"#, "invalid-json"),
        (r#"{"type":"subscribe","topic":"nope"}"#, "topic-not-found"),
        (
            r#"{"type":"subscribe","topic":"ws","partitions":[7]}"#,
            "partition-not-found",
        ),
        (
            r#"{"type":"subscribe","topic":"ws","from":"yesterday"}"#,
            "invalid-field",
        ),
        (
            r#"{"type":"unsubscribe","subscription":"zzz"}"#,
            "invalid-field",
        ),
        (
            r#"{"type":"produce","topic":"ws","records":[{"vlaue":1}]}"#,
            "invalid-json",
        ),
    ] {
        sub.send(Message::text(msg)).await.unwrap();
        let m = recv_json(&mut sub).await;
        assert_eq!(
            (m["type"].as_str(), m["code"].as_str()),
            (Some("error"), Some(code)),
            "{msg}: {m}"
        );
    }
    // The subscription limit names itself.
    sub.send(Message::text(
        json!({"type": "subscribe", "id": "two", "topic": "ws"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(recv_json(&mut sub).await["type"], "subscribed");
    sub.send(Message::text(
        json!({"type": "subscribe", "id": "three", "topic": "ws"}).to_string(),
    ))
    .await
    .unwrap();
    let m = recv_json(&mut sub).await;
    assert_eq!(
        (m["code"].as_str(), m["limit"].as_i64()),
        (Some("payload-too-large"), Some(2))
    );
    sub.send(Message::text(
        r#"{"type":"unsubscribe","subscription":"two"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(recv_json(&mut sub).await["type"], "unsubscribed");

    // Deleting the topic ends its subscriptions with a reason.
    p.a.api().delete("/v1/topics/ws").await.expect(204);
    let m = recv_json(&mut sub).await;
    assert_eq!(
        (
            m["type"].as_str(),
            m["subscription"].as_str(),
            m["code"].as_str()
        ),
        (Some("error"), Some("all"), Some("topic-not-found"))
    );

    // Garbage without end closes the connection with a policy code.
    for _ in 0..11 {
        if sub.send(Message::text("garbage")).await.is_err() {
            break;
        }
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = sub.next().await {
            if let Ok(Message::Close(Some(frame))) = m {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(1008));
}

#[tokio::test]
async fn a_stalled_reader_costs_bounded_memory_is_closed_and_resumes() {
    let p = pair(&["--stall-timeout", "2s", "--chunk-cache-bytes", "1MiB"]).await;
    p.create("firehose", 1).await;
    p.produce("firehose", json!([{"value": "first"}])).await;
    let rss_before = p.metric(&p.b.url, "process_resident_memory_bytes ").await;

    // A client that reads the first event and then stops reading, with a
    // small receive buffer so the server's writes back up quickly.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stream = sock.connect(p.b.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /v1/topics/firehose/partitions/0/records?from=earliest&limit=100 HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    let mut buf = vec![0u8; 1024];
    while !head.contains("id: 1") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early: {head}");
        head.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(head.contains("200 OK"), "{head}");

    // 40 MB produced while the client does not read.
    let big = "x".repeat(10_000);
    for _ in 0..40 {
        let recs: Vec<Value> = (0..100).map(|_| json!({"value": big})).collect();
        p.produce("firehose", json!(recs)).await;
    }
    let rss_during = p.metric(&p.b.url, "process_resident_memory_bytes ").await;
    assert!(
        rss_during - rss_before < 48.0 * 1024.0 * 1024.0,
        "the stalled stream must not buffer what it cannot send: {} MiB more",
        (rss_during - rss_before) / 1048576.0
    );
    // Closed after the stall timeout.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.metric(&p.b.url, "streamhouse_open_streams ").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was not closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stream);
    // Reconnecting with the last id it saw resumes right after it.
    let url = format!(
        "{}/v1/topics/firehose/partitions/0/records?limit=10",
        p.b.url
    );
    let mut events = sse(&p.client, &url, Some("1")).await;
    let (got, _) = take(&mut events, 10).await;
    assert_eq!(got[0].0, 1);
}

#[tokio::test]
async fn joining_at_latest_during_heavy_produce_sees_a_contiguous_tail_and_deletion_ends_streams() {
    let p = pair(&[]).await;
    p.create("busy", 2).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (api, stop) = (p.a.api(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let recs: Vec<Value> = (0..20)
                    .map(|j| json!({"value": i * 20 + j, "partition": j % 2}))
                    .collect();
                if api.produce("busy", json!(recs)).await.status != 200 {
                    break;
                }
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sub = ws(&p.b.url).await;
    sub.send(Message::text(
        json!({"type": "subscribe", "topic": "busy", "partitions": [0], "from": "latest"})
            .to_string(),
    ))
    .await
    .unwrap();
    let m = recv_json(&mut sub).await;
    let start = m["partitions"][0]["offset"].as_i64().unwrap();
    assert!(start > 0, "joined mid-stream");
    let mut next = start;
    while next < start + 300 {
        let m = recv_json(&mut sub).await;
        for r in m["records"].as_array().unwrap() {
            assert_eq!(
                r["offset"].as_i64().unwrap(),
                next,
                "contiguous from the join point"
            );
            next += 1;
        }
    }
    let mut events = sse(
        &p.client,
        &format!("{}/v1/topics/busy/stream?from=latest", p.b.url),
        None,
    )
    .await;
    let _ = take(&mut events, 1).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    p.a.api().delete("/v1/topics/busy").await.expect(204);
    // The SSE stream ends with an error event naming the reason.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = events.next().await {
            let e = e.unwrap();
            if e.event == "error" {
                return Some(e.data);
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("an error event");
    assert!(
        ended.contains("topic-not-found") && ended.contains("deleted"),
        "{ended}"
    );
    assert!(events.next().await.is_none(), "then the stream ends");
}
