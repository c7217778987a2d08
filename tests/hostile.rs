//! Hostile clients: requests shaped to take an agent's memory, time or
//! connections get a clear, bounded answer, and nothing stored is harmed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestAgent;
use serde_json::json;

/// A request body of `len` declared bytes that sends `first` at once and
/// the rest only after `pause` (a slow upload holding its reservation).
fn slow_body(len: usize, first: usize, pause: Duration) -> reqwest::Body {
    let head = bytes::Bytes::from(vec![b' '; first]);
    let tail = bytes::Bytes::from(vec![b' '; len - first]);
    let chunks = futures_util::stream::unfold(0, move |step| {
        let (head, tail) = (head.clone(), tail.clone());
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(head), 1)),
                1 => {
                    tokio::time::sleep(pause).await;
                    Some((Ok(tail), 2))
                }
                _ => None,
            }
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

#[tokio::test]
async fn request_bodies_in_flight_share_one_budget_and_the_excess_gets_429() {
    let a = TestAgent::start(&[
        "--max-body-bytes",
        "8MiB",
        "--max-inflight-body-bytes",
        "10MiB",
    ])
    .await;
    a.create_topic("t", 1).await;
    let url = a.api.url("/v1/topics/t/records");
    let len = 6 << 20;
    // A slow 6 MiB upload holds 6 MiB of the 10 MiB budget...
    let slow = {
        let (client, url) = (a.client.clone(), url.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("content-length", len.to_string())
                .body(slow_body(len, 1024, Duration::from_secs(2)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so a second one, declared or chunked, is refused at once.
    let declared = a
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; len])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 429);
    assert_eq!(declared.headers()["retry-after"], "1");
    let p: serde_json::Value = declared.json().await.unwrap();
    assert_eq!(p["type"], "urn:streamhouse:problem:overloaded");
    assert_eq!(p["limit"], 10 << 20);
    let chunked = a
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(slow_body(len, 1024, Duration::from_millis(10)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        chunked.status(),
        429,
        "a chunked body is counted as it arrives"
    );
    // Small requests still fit beside the slow one.
    a.api.produce("t", json!([{"value": 1}])).await.expect(200);
    // The slow body is whitespace, not JSON: 400 once it is all read.
    assert_eq!(slow.await.unwrap(), 400);
    // With the budget free again, a large body is read.
    let mut records = String::from("{\"records\":[");
    records.push_str(&"{\"value\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"},".repeat(9_000));
    records.push_str("{}]}");
    a.api
        .post_raw("/v1/topics/t/records", "application/json", records)
        .await
        .expect(200);
    assert_eq!(
        a.metrics.inflight_body_bytes.get(),
        0,
        "every reservation returned"
    );
}

#[tokio::test]
async fn a_body_of_millions_of_empty_records_is_refused_while_parsing() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 1).await;
    let mut body = String::from("{\"records\":[");
    body.push_str(&"{},".repeat(5_000_000));
    body.push_str("{}]}");
    let r = a
        .api
        .post_raw("/v1/topics/t/records", "application/json", body)
        .await;
    assert_eq!(r.problem(), Some("payload-too-large"), "{}", r.text);
    assert_eq!(r.body["field"], "records");
    assert_eq!(r.body["limit"], 10_000);
    let page = a.api.read("t", 0, "").await.expect(200);
    assert_eq!(page["high_watermark"], 0, "nothing of it is stored");
}

#[tokio::test]
async fn an_early_refusal_reaches_a_client_still_uploading() {
    // The agent answers 413 before reading the body; closing with the
    // upload unread must not turn that answer into a connection reset.
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 1).await;
    let mut body = b"{\"records\":[{}".to_vec();
    while body.len() < (16 << 20) - 5 {
        body.extend_from_slice(b",{}");
    }
    body.extend_from_slice(b"]}");
    let body = bytes::Bytes::from(body);
    let client = reqwest::Client::new();
    let sends = (0..16).map(|_| {
        let client = client.clone();
        let (url, body) = (a.u("/v1/topics/t/records"), body.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"))
        }
    });
    for answer in futures_util::future::join_all(sends).await {
        assert!(
            matches!(answer, Ok(400 | 413 | 429)),
            "every upload gets its answer: {answer:?}"
        );
    }
}

#[tokio::test]
async fn buffered_requests_count_the_body_their_records_keep_alive() {
    let a = TestAgent::start(&[
        "--linger",
        "1500ms",
        "--max-flush-bytes",
        "1MiB",
        "--max-buffered-bytes",
        "1MiB",
        "--max-body-bytes",
        "1MiB",
    ])
    .await;
    a.create_topic("t", 1).await;
    // One small record in a 900 KB body: its value is a slice of the body,
    // so the whole body waits in the buffer with it.
    let padded = format!("{{\"records\":[{{\"value\":1}}]{}}}", " ".repeat(900_000));
    let api = a.api.clone();
    let first = tokio::spawn(async move {
        api.post_raw("/v1/topics/t/records", "application/json", padded)
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = format!("{{\"records\":[{{\"value\":2}}]{}}}", " ".repeat(200_000));
    let r = a
        .api
        .post_raw("/v1/topics/t/records", "application/json", second)
        .await;
    assert_eq!(r.problem(), Some("overloaded"), "{}", r.text);
    assert_eq!(first.await.unwrap(), 200);
}

/// Reads from `stream` until EOF or error, up to `within`; true when the
/// server closed the connection in time.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (read.is_ok(), String::from_utf8_lossy(&got).into_owned())
}

async fn connect(a: &TestAgent) -> tokio::net::TcpStream {
    let addr = a.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    use tokio::io::AsyncWriteExt;
    let a = TestAgent::start(&["--header-read-timeout", "500ms"]).await;
    let mut slow = connect(&a).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let (closed, _) = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a half-sent request head is cut after the header timeout"
    );

    // A kept-alive connection that goes quiet after a request is closed too.
    let mut idle = connect(&a).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (closed, answer) = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    use tokio::io::AsyncWriteExt;
    let a = TestAgent::start(&["--body-read-timeout", "500ms"]).await;
    a.create_topic("t", 1).await;
    let mut slow = connect(&a).await;
    slow.write_all(
        b"POST /v1/topics/t/records HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"records\":",
    )
    .await
    .unwrap();
    let (_, answer) = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("urn:streamhouse:problem:request-timeout"),
        "{answer}"
    );
    assert_eq!(
        a.metrics.inflight_body_bytes.get(),
        0,
        "its reservation is returned"
    );
}

#[tokio::test]
async fn beyond_max_connections_a_connection_gets_503_and_is_closed() {
    use tokio::io::AsyncWriteExt;
    let a = TestAgent::start(&["--max-connections", "3", "--header-read-timeout", "30s"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&a).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&a).await;
    let (closed, answer) = closed_within(&mut extra, Duration::from_secs(5)).await;
    assert!(closed, "refused at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("urn:streamhouse:problem:too-many-connections"),
        "{answer}"
    );
    assert!(answer.contains("\"limit\":3"), "{answer}");
    assert_eq!(a.metrics.connections_refused.get(), 1);
    // A freed slot serves again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect(&a).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed_within(&mut again, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn request_heads_the_parser_refuses_get_problem_documents() {
    use tokio::io::AsyncWriteExt;
    let a = TestAgent::start(&[]).await;
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let big_head = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let many_fields = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    for (request, status, kind, limit) in [
        (
            long_target.as_str(),
            "414",
            "uri-too-long",
            Some("\"limit\":65534"),
        ),
        (
            big_head.as_str(),
            "431",
            "head-too-large",
            Some("\"limit\":417792"),
        ),
        (
            many_fields.as_str(),
            "431",
            "head-too-large",
            Some("\"limit\":417792"),
        ),
        ("NOT HTTP AT ALL\r\n\r\n", "400", "malformed-request", None),
    ] {
        let mut c = connect(&a).await;
        // The agent may answer and close before a large head is all sent.
        let _ = c.write_all(request.as_bytes()).await;
        let (closed, answer) = closed_within(&mut c, Duration::from_secs(5)).await;
        assert!(
            closed,
            "the connection is closed after the {status} answer; got {answer:?}"
        );
        // The last status line (the agent's detail text says HTTP/1.1 too).
        let last = answer
            .match_indices("HTTP/1.1 ")
            .filter(|(i, _)| answer[i + 9..].starts_with(|c: char| c.is_ascii_digit()))
            .last()
            .expect("an answer")
            .0;
        let answer = &answer[last..];
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(
            answer.contains(&format!("urn:streamhouse:problem:{kind}")),
            "{answer}"
        );
        if let Some(limit) = limit {
            assert!(answer.contains(limit), "{answer}");
        }
    }
    // After a normal exchange on the same connection too.
    let mut c = connect(&a).await;
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"}") {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "the first answer arrives");
        got.extend_from_slice(&buf[..n]);
    }
    let _ = c.write_all(long_target.as_bytes()).await;
    let (_, answer) = closed_within(&mut c, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    assert!(
        answer.contains("urn:streamhouse:problem:uri-too-long"),
        "{answer}"
    );
    // The agent still serves.
    assert_eq!(
        a.client
            .get(format!("{}/healthz", a.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(a: &TestAgent) -> Ws {
    let url = a.url.replace("http://", "ws://") + "/v1/ws";
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message, as JSON; `None` when the connection closed.
async fn next_json(ws: &mut Ws) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")?;
        match m {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

#[tokio::test]
async fn websocket_clients_get_bounded_answers() {
    let a = TestAgent::start(&[
        "--linger",
        "1s",
        "--ws-max-inflight-requests",
        "2",
        "--ws-max-message-bytes",
        "8KiB",
    ])
    .await;
    a.create_topic("t", 1).await;
    let mut c = ws(&a).await;

    // Echoed fields are bounded, and a bad one is not echoed.
    send(
        &mut c,
        json!({"type": "ping", "request_id": "r".repeat(300)}),
    )
    .await;
    let e = next_json(&mut c).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["field"].as_str()),
        (Some("error"), Some("request_id"))
    );
    assert!(e.get("request_id").is_none());
    send(
        &mut c,
        json!({"type": "subscribe", "id": "s", "topic": "t".repeat(300)}),
    )
    .await;
    let e = next_json(&mut c).await.unwrap();
    assert_eq!(e["field"], "topic");
    assert!(e.to_string().len() < 600, "{e}");

    // Commits meet the REST limits.
    let big = "m".repeat(1500);
    send(&mut c, json!({"type": "commit", "request_id": "c", "group": "g",
        "offsets": [{"topic": "t", "partition": 0, "offset": 0, "metadata": big.clone() + &big + &big}]})).await;
    let e = next_json(&mut c).await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["status"], 413, "{e}");
    send(
        &mut c,
        json!({"type": "commit", "request_id": "c", "group": "g", "offsets": []}),
    )
    .await;
    assert_eq!(next_json(&mut c).await.unwrap()["field"], "offsets");

    // Two produce requests may wait at once; a third is refused, not queued.
    for r in ["p1", "p2", "p3"] {
        send(
            &mut c,
            json!({"type": "produce", "request_id": r, "topic": "t", "records": [{"value": r}]}),
        )
        .await;
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        let m = next_json(&mut c).await.unwrap();
        answers.push((
            m["request_id"].as_str().unwrap().to_string(),
            m["type"].as_str().unwrap().to_string(),
            m["status"].as_i64(),
        ));
    }
    answers.sort();
    assert_eq!(answers[0].1, "produced");
    assert_eq!(answers[1].1, "produced");
    assert_eq!(
        (answers[2].1.as_str(), answers[2].2),
        ("error", Some(429)),
        "{answers:?}"
    );

    // Oversized messages count as malformed: ten in a row and more closes it.
    let oversized = json!({"type": "ping", "request_id": "x", "pad": "y".repeat(9000)});
    let mut closed = false;
    for _ in 0..12 {
        send(&mut c, oversized.clone()).await;
        if next_json(&mut c).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a client that keeps sending oversized messages is disconnected"
    );
}

#[tokio::test]
async fn stream_errors_hide_internal_causes_as_rest_does() {
    use futures_util::StreamExt;
    use streamhouse_server::testing::faults::{Fault, Op};
    let (a, plan) = TestAgent::start_faulty(&["--chunk-cache-bytes", "0", "--linger", "5ms"]).await;
    a.create_topic("t", 1).await;
    a.api.produce("t", json!([{"value": 1}])).await.expect(200);
    plan.during(Op::Get, Duration::from_secs(5), Fault::Fail);
    let rest = a.api.read("t", 0, "offset=0").await;
    assert_eq!(rest.status, 503);
    let r = a
        .client
        .get(a.api.url("/v1/topics/t/partitions/0/records?from=earliest"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: error") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("an event in time")
            .expect("the stream is open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("injected"), "{text}");
    assert!(
        text.contains(rest.body["detail"].as_str().unwrap()),
        "the REST detail: {text}"
    );
}

#[tokio::test]
async fn opening_a_stream_costs_a_few_queries_whatever_the_partitions() {
    use futures_util::StreamExt;
    let a = TestAgent::start(&["--linger", "5ms"]).await;
    a.create_topic("wide", 2000).await;
    let records: Vec<_> = (0..2000)
        .map(|p| json!({"value": p, "partition": p, "timestamp": 1_000_000 + p}))
        .collect();
    a.api.produce("wide", json!(records)).await.expect(200);
    for from in ["earliest", "latest", "ts:1001500"] {
        let before = a.metrics.metadata_statements.get();
        let r = a
            .client
            .get(a.api.url(&format!("/v1/topics/wide/stream?from={from}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        if from != "latest" {
            let _first = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("an event");
        }
        let spent = a.metrics.metadata_statements.get() - before;
        assert!(
            spent <= 12,
            "from={from}: {spent} metadata statements to open a 2,000-partition stream"
        );
    }
}

#[tokio::test]
async fn a_topic_named_twice_in_a_stream_is_followed_once() {
    use futures_util::StreamExt;
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 1).await;
    a.api
        .produce("t", json!([{"value": "once"}]))
        .await
        .expect(200);
    let r = a
        .client
        .get(a.api.url("/v1/stream?topics=t,t,t&from=earliest"))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(text.matches("\"once\"").count(), 1, "{text}");
    assert!(text.contains("id: t=1\n"), "{text}");
}

#[tokio::test]
async fn a_websocket_connection_follows_a_bounded_number_of_partitions() {
    let a = TestAgent::start(&["--ws-max-partitions", "3"]).await;
    a.create_topic("two", 2).await;
    let mut c = ws(&a).await;
    send(
        &mut c,
        json!({"type": "subscribe", "id": "a", "topic": "two"}),
    )
    .await;
    assert_eq!(next_json(&mut c).await.unwrap()["type"], "subscribed");
    send(
        &mut c,
        json!({"type": "subscribe", "id": "b", "topic": "two"}),
    )
    .await;
    let e = next_json(&mut c).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["status"].as_i64()),
        (Some("error"), Some(413))
    );
    assert_eq!(
        (e["field"].as_str(), e["limit"].as_i64()),
        (Some("partitions"), Some(3))
    );
    send(
        &mut c,
        json!({"type": "subscribe", "id": "c", "topic": "two", "partitions": [1]}),
    )
    .await;
    assert_eq!(
        next_json(&mut c).await.unwrap()["type"],
        "subscribed",
        "one more fits"
    );
    send(&mut c, json!({"type": "unsubscribe", "subscription": "a"})).await;
    assert_eq!(next_json(&mut c).await.unwrap()["type"], "unsubscribed");
    send(
        &mut c,
        json!({"type": "subscribe", "id": "d", "topic": "two"}),
    )
    .await;
    assert_eq!(
        next_json(&mut c).await.unwrap()["type"],
        "subscribed",
        "room freed"
    );
}

#[tokio::test]
async fn a_client_that_trickles_a_large_response_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = TestAgent::start(&["--stall-timeout", "2s", "--min-write-rate", "64KiB"]).await;
    a.create_topic("big", 1).await;
    let value = "v".repeat(1000);
    for _ in 0..10 {
        let records: Vec<_> = (0..1000).map(|_| json!({"value": value})).collect();
        a.api.produce("big", json!(records)).await.expect(200);
    }
    // A small receive window, so the response cannot hide in the
    // client's kernel buffers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket
        .connect(a.url.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    slow.write_all(
        b"GET /v1/topics/big/partitions/0/records?offset=0&limit=10000&max_bytes=67108864 HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let serving = a.metrics.open_connections.get();
    // Take 512 bytes every 250 ms (2 KiB/s) until the agent lets go of
    // the connection (what stays in kernel buffers may still trickle in).
    let started = std::time::Instant::now();
    let mut taken = 0usize;
    let mut buf = [0u8; 512];
    while a.metrics.open_connections.get() >= serving {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the trickling reader is disconnected"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
            taken += n;
        }
    }
    assert!(
        taken < 1_000_000,
        "before it took the response ({taken} bytes)"
    );
    // A reader that keeps up gets the same response whole.
    let page = a
        .api
        .read("big", 0, "offset=0&limit=10000&max_bytes=67108864")
        .await
        .expect(200);
    assert_eq!(page["records"].as_array().unwrap().len(), 10_000);
}
