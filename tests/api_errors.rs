//! Hostile and mistaken input: every bad request gets a 4xx problem+json
//! naming the field (and the limit), nothing 5xx, nothing stored harmed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use reqwest::Method;
use serde_json::{Value, json};

struct Case {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    limit: Option<u64>,
}

fn case(method: Method, path: &'static str, body: &str, status: u16, code: &'static str) -> Case {
    Case {
        method,
        path,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        code,
        field: None,
        limit: None,
    }
}

impl Case {
    fn field(mut self, f: &'static str) -> Self {
        self.field = Some(f);
        self
    }
    fn limit(mut self, l: u64) -> Self {
        self.limit = Some(l);
        self
    }
    fn ctype(mut self, c: Option<&'static str>) -> Self {
        self.content_type = c;
        self
    }
}

async fn check(a: &TestAgent, c: &Case) {
    let mut req = a
        .client
        .request(c.method.clone(), a.u(c.path))
        .body(c.body.clone());
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, c.status, "{} {}: {text}", c.method, c.path);
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "{} {}",
        c.method,
        c.path
    );
    let p: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        p["type"],
        format!("urn:streamhouse:problem:{}", c.code),
        "{text}"
    );
    assert_eq!(p["status"], c.status);
    assert!(!p["detail"].as_str().unwrap().is_empty());
    if let Some(f) = c.field {
        assert_eq!(p["field"], f, "{text}");
    }
    if let Some(l) = c.limit {
        assert_eq!(p["limit"], l, "{text}");
        assert!(
            p["detail"].as_str().unwrap().contains(&l.to_string()),
            "detail names the limit: {text}"
        );
    }
}

#[tokio::test]
async fn every_bad_request_gets_a_precise_problem() {
    let a = TestAgent::start(&[
        "--max-records-per-request",
        "5",
        "--max-key-bytes",
        "8",
        "--max-value-bytes",
        "64",
        "--max-header-bytes",
        "32",
        "--max-headers-per-record",
        "2",
        "--max-body-bytes",
        "4KiB",
        "--max-partitions-per-topic",
        "16",
        "--max-wait",
        "2s",
    ])
    .await;
    a.create_topic("t", 2).await;
    a.produce("t", json!({"records": [{"value": "keep me"}]}))
        .await;
    let before = a.read("t", 0, "offset=0").await;
    let post = Method::POST;
    let get = Method::GET;
    let big_body = format!("{{\"records\":[{{\"value\":\"{}\"}}]}}", "x".repeat(5000));
    let cases =
        vec![
        // topics
        case(post.clone(), "/v1/topics", "{", 400, "invalid-json").field("body"),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x"}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":1,"color":"red"}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"bad name","partitions":1}"#,
            400,
            "invalid-field",
        )
        .field("name")
        .limit(249),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"..","partitions":1}"#,
            400,
            "invalid-field",
        )
        .field("name"),
        case(
            post.clone(),
            "/v1/topics",
            &format!(r#"{{"name":"{}","partitions":1}}"#, "n".repeat(250)),
            400,
            "invalid-field",
        )
        .field("name"),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":0}"#,
            400,
            "invalid-field",
        )
        .field("partitions")
        .limit(16),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":17}"#,
            400,
            "invalid-field",
        )
        .field("partitions")
        .limit(16),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":99999999999999}"#,
            400,
            "invalid-field",
        )
        .field("partitions"),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":1,"compression":"gzip"}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"x","partitions":1,"retention_ms":-5}"#,
            400,
            "invalid-field",
        )
        .field("retention_ms"),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"t","partitions":1}"#,
            409,
            "topic-exists",
        )
        .field("name"),
        case(get.clone(), "/v1/topics?limit=0", "", 400, "invalid-query")
            .field("limit")
            .limit(1000),
        case(
            get.clone(),
            "/v1/topics?limit=abc",
            "",
            400,
            "invalid-query",
        ),
        case(get.clone(), "/v1/topics/nope", "", 404, "topic-not-found"),
        case(
            Method::DELETE,
            "/v1/topics/nope",
            "",
            404,
            "topic-not-found",
        ),
        // produce
        case(
            post.clone(),
            "/v1/topics/nope/records",
            r#"{"records":[{"value":1}]}"#,
            404,
            "topic-not-found",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1}]"#,
            400,
            "invalid-json",
        )
        .field("body"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"vlaue":1}]}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[]}"#,
            400,
            "invalid-field",
        )
        .field("records"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"recs":[]}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"[1,2]"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{},{},{},{},{},{}]}"#,
            413,
            "payload-too-large",
        )
        .field("records")
        .limit(5),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"key":"123456789"}]}"#,
            413,
            "payload-too-large",
        )
        .field("records[0].key")
        .limit(8),
        case(
            post.clone(),
            "/v1/topics/t/records",
            &format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "v".repeat(70)),
            413,
            "payload-too-large",
        )
        .field("records[0].value")
        .limit(64),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"headers":{"a":"1","b":"2","c":"3"}}]}"#,
            413,
            "payload-too-large",
        )
        .field("records[0].headers")
        .limit(2),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"headers":{"a":"0123456789012345678901234567890123456789"}}]}"#,
            413,
            "payload-too-large",
        )
        .field("records[0].headers")
        .limit(32),
        case(
            post.clone(),
            "/v1/topics/t/records",
            &big_body,
            413,
            "payload-too-large",
        )
        .field("body")
        .limit(4096),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"partition":2}]}"#,
            404,
            "partition-not-found",
        )
        .field("records[0].partition"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"partition":-1}]}"#,
            404,
            "partition-not-found",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"partition":"0"}]}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"key":"a","key_b64":"YQ=="}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].key"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"value_b64":"YQ=="}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].value"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value_b64":"***"}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].value_b64"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value_b64":"eyJh","headers":{"content-type":"application/json"}}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].value_b64"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"headers":{"content-type":"text/plain"}}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].headers"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"value":1,"timestamp":-2}]}"#,
            400,
            "invalid-field",
        )
        .field("records[0].timestamp"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[{"headers":{"a":5}}]}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/records",
            "{\"value\":1}\n{nope}\n",
            400,
            "invalid-json",
        )
        .ctype(Some("application/x-ndjson")),
        case(
            post.clone(),
            "/v1/topics/t/records",
            "\n\n",
            400,
            "invalid-field",
        )
        .ctype(Some("application/x-ndjson")),
        case(
            post.clone(),
            "/v1/topics/t/records",
            "a=1",
            415,
            "unsupported-media-type",
        )
        .ctype(Some("application/x-www-form-urlencoded"))
        .field("content-type"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            "\u{0}\u{1}garbage",
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/topics/t/publish",
            "{not json",
            400,
            "invalid-json",
        )
        .field("body"),
        // A form type a cross-site page could send, without a token: refused.
        case(post.clone(), "/v1/topics/t/publish", "x", 415, "unsupported-media-type")
            .ctype(Some("text/plain"))
            .field("content-type"),
        case(post.clone(), "/v1/topics/t/publish", "x", 415, "unsupported-media-type")
            .ctype(Some("multipart/form-data; boundary=x"))
            .field("content-type"),
        case(
            post.clone(),
            "/v1/topics",
            r#"{"name":"csrf","partitions":1}"#,
            415,
            "unsupported-media-type",
        )
        .ctype(Some("text/plain"))
        .field("content-type"),
        case(
            post.clone(),
            "/v1/topics/t/publish?partition=9",
            "x",
            404,
            "partition-not-found",
        )
        .ctype(Some("application/octet-stream")),
        case(
            post.clone(),
            "/v1/topics/t/publish?key=123456789",
            "x",
            413,
            "payload-too-large",
        )
        .ctype(Some("application/octet-stream"))
        .field("key")
        .limit(8),
        case(
            post.clone(),
            "/v1/topics/t/publish?bogus=1",
            "x",
            400,
            "invalid-query",
        )
        .ctype(Some("application/octet-stream")),
        case(
            post.clone(),
            "/v1/topics/t/publish",
            &"p".repeat(65),
            413,
            "payload-too-large",
        )
        .ctype(Some("application/octet-stream"))
        .field("body")
        .limit(64),
        // read
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?offset=5",
            "",
            416,
            "offset-out-of-range",
        )
        .field("offset"),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?offset=-1",
            "",
            400,
            "invalid-query",
        )
        .field("offset"),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?offset=x",
            "",
            400,
            "invalid-query",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?limit=0",
            "",
            400,
            "invalid-query",
        )
        .field("limit")
        .limit(10000),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?limit=10001",
            "",
            400,
            "invalid-query",
        )
        .field("limit")
        .limit(10000),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?max_bytes=0",
            "",
            400,
            "invalid-query",
        )
        .field("max_bytes"),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?wait_ms=2001",
            "",
            400,
            "invalid-query",
        )
        .field("wait_ms")
        .limit(2000),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/records?wait_ms=99999999999999999999999",
            "",
            400,
            "invalid-query",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/2/records",
            "",
            404,
            "partition-not-found",
        )
        .field("partition"),
        case(
            get.clone(),
            "/v1/topics/t/partitions/-1/records",
            "",
            404,
            "partition-not-found",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/abc/records",
            "",
            400,
            "invalid-field",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/99999999999999999999/records",
            "",
            400,
            "invalid-field",
        ),
        case(
            get.clone(),
            "/v1/topics/nope/partitions/0/records",
            "",
            404,
            "topic-not-found",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/offsets?timestamp=abc",
            "",
            400,
            "invalid-query",
        ),
        // groups
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[{"topic":"nope","partition":0,"offset":1}]}"#,
            404,
            "topic-not-found",
        )
        .field("offsets.topic"),
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[{"topic":"t","partition":5,"offset":1}]}"#,
            404,
            "partition-not-found",
        )
        .field("offsets.partition"),
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[{"topic":"t","partition":0,"offset":-1}]}"#,
            400,
            "invalid-field",
        )
        .field("offsets[0].offset"),
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[]}"#,
            400,
            "invalid-field",
        )
        .field("offsets"),
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[{"topic":"t","partition":0,"offset":1,"metadata":"MMMM"}], "x":1}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/groups/bad%20group/offsets",
            r#"{"offsets":[{"topic":"t","partition":0,"offset":1}]}"#,
            400,
            "invalid-field",
        )
        .field("group")
        .limit(255),
        case(
            get.clone(),
            "/v1/groups/bad%20group/lag",
            "",
            400,
            "invalid-field",
        )
        .field("group"),
        // a struct is a JSON object, never an array of its fields
        case(post.clone(), "/v1/topics", r#"["x", 1]"#, 400, "invalid-json").field("body"),
        case(
            post.clone(),
            "/v1/topics/t/records",
            r#"{"records":[[null, null]]}"#,
            400,
            "invalid-json",
        ),
        case(
            post.clone(),
            "/v1/groups/g/offsets",
            r#"{"offsets":[["t", 0, 1]]}"#,
            400,
            "invalid-json",
        ),
        case(
            get.clone(),
            "/v1/topics/t/partitions/0/offsets?timestamp=-1",
            "",
            400,
            "invalid-query",
        )
        .field("timestamp"),
        case(get.clone(), "/v1/ws", "", 426, "upgrade-required"),
        // routing
        case(get.clone(), "/v2/nothing", "", 404, "route-not-found"),
        case(Method::PUT, "/v1/topics/t", "", 405, "method-not-allowed"),
        case(Method::PATCH, "/v1/topics", "", 405, "method-not-allowed"),
    ];
    for c in &cases {
        check(&a, c).await;
    }
    // Nothing already stored was harmed.
    assert_eq!(a.read("t", 0, "offset=0").await, before);
}

#[tokio::test]
async fn a_full_buffer_answers_429_with_retry_after_and_a_huge_request_413() {
    let a = TestAgent::start(&[
        "--max-flush-bytes",
        "8KiB",
        "--max-buffered-bytes",
        "8KiB",
        "--max-body-bytes",
        "1MiB",
        "--max-value-bytes",
        "4KiB",
        "--max-records-per-request",
        "100000",
        "--linger",
        "2s",
        "--max-inflight-flushes",
        "1",
    ])
    .await;
    a.create_topic("bp", 1).await;
    // One request larger than a flush can ever be: 413 naming the limit.
    let big: Vec<Value> = (0..40)
        .map(|_| json!({"value": "x".repeat(1000)}))
        .collect();
    let r = a
        .client
        .post(a.u("/v1/topics/bp/records"))
        .json(&json!({"records": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["limit"], 8192);

    // Fill the buffer (the long linger holds it), then one more gets 429.
    let fill: Vec<Value> = (0..6).map(|_| json!({"value": "y".repeat(1000)})).collect();
    let (c, u) = (a.client.clone(), a.u("/v1/topics/bp/records"));
    let body = json!({"records": fill});
    let first = tokio::spawn(async move {
        c.post(u)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let more: Vec<Value> = (0..3).map(|_| json!({"value": "z".repeat(1000)})).collect();
    let r = a
        .client
        .post(a.u("/v1/topics/bp/records"))
        .json(&json!({"records": more}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        first.await.unwrap(),
        200,
        "buffered records are still acknowledged"
    );
}

#[tokio::test]
async fn random_bytes_never_cause_a_server_error() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 3).await;
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        "\"records\"",
        ":",
        ",",
        "\"value\"",
        "\"key\"",
        "null",
        "1e999",
        "-0",
        "\"\\u0000\"",
        "\"headers\"",
        "{\"a\":[]}",
        "\"partition\"",
        "99999999999999999999",
        "\"value_b64\"",
        "\"=\"",
        "\u{feff}",
        "\n",
        "true",
        "\"timestamp\"",
    ];
    let paths = [
        "/v1/topics/t/records",
        "/v1/topics/t/publish",
        "/v1/topics",
        "/v1/groups/g/offsets",
    ];
    for i in 0..300 {
        let n = (next() % 30) as usize;
        let mut body = String::new();
        for _ in 0..n {
            body.push_str(fragments[(next() % fragments.len() as u64) as usize]);
        }
        let path = paths[i % paths.len()];
        let ct = if next() % 2 == 0 {
            "application/json"
        } else {
            "application/x-ndjson"
        };
        let r = a
            .client
            .post(a.u(path))
            .header("content-type", ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().as_u16() < 500,
            "{path} {body:?} -> {}",
            r.status()
        );
    }
}
