//! Tenants as virtual clusters, quotas per tenant, and revocation across
//! agents on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::tokens::{JWT_FLAGS, claims, hs256, token};
use common::{Api, TestAgent};
use futures_util::StreamExt;
use serde_json::{Value, json};

const ALL: &[&str] = &["admin:*", "produce:*", "consume:*", "commit:*"];

fn names(list: &Value) -> Vec<String> {
    list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn one_tenant_never_sees_another_tenants_names_or_data() {
    let a = TestAgent::start(JWT_FLAGS).await;
    let acme = Api::with_token(a.url.clone(), &token("acme", ALL));
    let globex = Api::with_token(a.url.clone(), &token("globex", ALL));

    // The same name in two tenants is two topics.
    acme.create_topic("orders", 1).await.expect(201);
    globex.create_topic("orders", 2).await.expect(201);
    acme.create_topic("acme-only", 1).await.expect(201);
    acme.produce("orders", json!([{"value": "acme"}]))
        .await
        .expect(200);
    globex
        .produce("orders", json!([{"value": "globex", "partition": 0}]))
        .await
        .expect(200);
    assert_eq!(
        acme.read("orders", 0, "offset=0").await.expect(200)["records"][0]["value"],
        "acme"
    );
    assert_eq!(
        globex.read("orders", 0, "offset=0").await.expect(200)["records"][0]["value"],
        "globex"
    );
    assert_eq!(acme.describe("orders").await.expect(200)["partitions"], 1);
    assert_eq!(globex.describe("orders").await.expect(200)["partitions"], 2);

    // Another tenant's names: 404 everywhere, never 403, never listed.
    assert_eq!(
        names(&acme.get("/v1/topics").await.expect(200)),
        ["acme-only", "orders"]
    );
    assert_eq!(
        names(&globex.get("/v1/topics").await.expect(200)),
        ["orders"]
    );
    for r in [
        globex.describe("acme-only").await,
        globex.read("acme-only", 0, "offset=0").await,
        globex
            .get("/v1/topics/acme-only/partitions/0/offsets")
            .await,
        globex.produce("acme-only", json!([{"value": 1}])).await,
        globex
            .post_raw(
                "/v1/topics/acme-only/publish",
                "application/octet-stream",
                "x",
            )
            .await,
        globex.delete("/v1/topics/acme-only").await,
        globex
            .send(
                |c, u| c.get(u).header("accept", "text/event-stream"),
                "/v1/topics/acme-only/stream",
            )
            .await,
        globex
            .send(
                |c, u| c.get(u).header("accept", "text/event-stream"),
                "/v1/stream?topics=acme-only",
            )
            .await,
        globex
            .commit(
                "g",
                json!([{"topic": "acme-only", "partition": 0, "offset": 0}]),
            )
            .await,
    ] {
        assert_eq!(r.status, 404, "{}", r.text);
        assert_eq!(r.problem(), Some("topic-not-found"));
    }
    acme.describe("acme-only").await.expect(200);

    // Groups are per tenant: same name, separate offsets and lag.
    acme.commit(
        "g",
        json!([{"topic": "orders", "partition": 0, "offset": 1}]),
    )
    .await
    .expect(200);
    let theirs = globex.group_offsets("g").await.expect(200);
    assert!(theirs["offsets"].as_array().unwrap().is_empty(), "{theirs}");
    let ours = acme.lag("g").await.expect(200);
    assert_eq!(ours["partitions"][0]["lag"], 0, "{ours}");

    // Idempotency keys are per tenant: one tenant's key never answers another's.
    let keyed = |api: &Api, v: &'static str| {
        let api = api.clone();
        async move {
            api.send(
                |c, u| {
                    c.post(u)
                        .header("idempotency-key", "k1")
                        .json(&json!({"records": [{"value": v, "partition": 0}]}))
                },
                "/v1/topics/orders/records",
            )
            .await
        }
    };
    let first = keyed(&acme, "a1").await;
    assert_eq!(first.status, 200);
    let other = keyed(&globex, "g1").await;
    assert_eq!(other.status, 200);
    assert!(
        other.headers.get("idempotency-replayed").is_none(),
        "another tenant's key replayed"
    );
    assert_eq!(
        globex.read("orders", 0, "offset=1").await.expect(200)["records"][0]["value"],
        "g1"
    );
    let again = keyed(&acme, "a1").await;
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(again.body, first.body);

    // WebSocket subscriptions resolve names in the token's tenant.
    let ws_url = a.url.replace("http://", "ws://") + "/v1/ws?access_token=" + &token("globex", ALL);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"type": "subscribe", "id": "s", "topic": "acme-only"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(
                    (v["type"].as_str(), v["status"].as_u64()),
                    (Some("error"), Some(404)),
                    "{v}"
                );
                break;
            }
            _ => continue,
        }
    }
    a.stop().await;
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_start)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn tenant_quotas_answer_429_with_retry_after_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = dir.path().join("quotas.toml");
    std::fs::write(
        &quotas,
        "[default]\nopen_streams = 50\n\n[tenants.small]\nrequests_per_second = 5\nopen_streams = 1\nproduce_bytes_per_second = \"1KiB\"\n",
    )
    .unwrap();
    let mut flags = JWT_FLAGS.to_vec();
    flags.extend(["--tenant-quotas", quotas.to_str().unwrap()]);
    let a = TestAgent::start(&flags).await;
    let small = Api::with_token(a.url.clone(), &token("small", ALL));
    let big = Api::with_token(a.url.clone(), &token("big", ALL));
    small.create_topic("t", 1).await.expect(201);
    big.create_topic("t", 1).await.expect(201);

    // Bytes: one large request is admitted, the next waits for the debt to clear.
    let value = "x".repeat(2000);
    small
        .produce("t", json!([{"value": value}]))
        .await
        .expect(200);
    let r = small.produce("t", json!([{"value": "y"}])).await;
    assert_eq!(
        (r.status, r.problem()),
        (429, Some("quota-exceeded")),
        "{}",
        r.text
    );
    assert_eq!(r.body["field"], "produce_bytes_per_second");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    big.produce("t", json!([{"value": value}]))
        .await
        .expect(200);

    // Requests per second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(small.get("/v1/topics").await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 4,
        "{statuses:?}"
    );
    for _ in 0..10 {
        big.get("/v1/topics").await.expect(200);
    }

    // Open streams.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let held = small
        .client
        .get(small.url("/v1/topics/t/stream"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = small
        .send(
            |c, u| c.get(u).header("accept", "text/event-stream"),
            "/v1/topics/t/stream",
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (429, Some("open_streams")),
        "{}",
        r.text
    );
    drop(held);

    let admin = Api::with_token(a.url.clone(), &token("default", &["admin:*"]));
    let m = admin.get("/metrics").await.text;
    assert!(
        metric(
            &m,
            "streamhouse_tenant_throttled_total{tenant=\"small\",limit=\"produce_bytes_per_second\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "streamhouse_tenant_throttled_total{tenant=\"small\",limit=\"open_streams\"}"
        ) >= 1.0
    );
    assert!(metric(&m, "streamhouse_tenant_produce_bytes_total{tenant=\"big\"}") >= 2000.0);
    assert!(metric(&m, "streamhouse_tenant_requests_total{tenant=\"big\"}") >= 10.0);
    a.stop().await;
}

#[tokio::test]
async fn a_revocation_reaches_every_agent_and_ends_open_streams() {
    let url = Postgres::shared().database(false);
    let mut flags = JWT_FLAGS.to_vec();
    flags.extend([
        "--metadata-url",
        url.as_str(),
        "--watermark-poll-interval",
        "100ms",
    ]);
    let a = TestAgent::start(&flags).await;
    let b = TestAgent::start(&flags).await;
    let admin_a = Api::with_token(a.url.clone(), &token("acme", &["admin:*"]));
    admin_a.create_topic("feed", 1).await.expect(201);

    let mut c = claims("acme", &["consume:*"], 600);
    c["jti"] = json!("leaked-1");
    let leaked = hs256(&c);
    let on_b = Api::with_token(b.url.clone(), &leaked);
    on_b.read("feed", 0, "offset=0").await.expect(200);
    // An open stream of the token on agent b.
    let r = on_b
        .client
        .get(on_b.url("/v1/topics/feed/stream?from=earliest"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    use eventsource_stream::Eventsource;
    let mut events = r.bytes_stream().eventsource();

    // Another tenant's admin cannot revoke acme's token.
    let other = Api::with_token(a.url.clone(), &token("globex", &["admin:*"]));
    other
        .post(
            "/v1/admin/tokens/revoke",
            &json!({"jti": "leaked-1", "expires_at": c["exp"]}),
        )
        .await
        .expect(204);
    tokio::time::sleep(Duration::from_millis(500)).await;
    on_b.read("feed", 0, "offset=0").await.expect(200);

    let bad = admin_a
        .post(
            "/v1/admin/tokens/revoke",
            &json!({"jti": "", "expires_at": 1}),
        )
        .await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (400, Some("jti")));
    let revoked_at = Instant::now();
    admin_a
        .post(
            "/v1/admin/tokens/revoke",
            &json!({"jti": "leaked-1", "expires_at": c["exp"]}),
        )
        .await
        .expect(204);
    // The revoking agent refuses it at once.
    let r = Api::with_token(a.url.clone(), &leaked)
        .read("feed", 0, "offset=0")
        .await;
    assert_eq!((r.status, r.problem()), (401, Some("unauthorized")));
    // The other agent within a poll or so.
    let propagation = loop {
        let r = on_b.read("feed", 0, "offset=0").await;
        if r.status == 401 {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "never revoked on b"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("revocation reached the second agent after {propagation:?}");
    // And its open stream ends with an error event.
    let e = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap();
    assert_eq!(e.event, "error", "{e:?}");
    assert!(e.data.contains("revoked"), "{}", e.data);
    // Other tokens of the tenant are unaffected.
    Api::with_token(b.url.clone(), &token("acme", &["consume:*"]))
        .read("feed", 0, "offset=0")
        .await
        .expect(200);
    a.stop().await;
    b.stop().await;
}
