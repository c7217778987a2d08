//! Authentication against real agents: token verification (expiry, keys,
//! algorithms, claims), scopes on every route and transport, tokens on
//! long-lived streams (refresh, expiry), and `streamhouse token`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::tokens::{self, JWT_FLAGS, claims, hs256, token};
use common::{Api, TestAgent};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn jwt_agent(extra: &[&str]) -> TestAgent {
    let mut flags = JWT_FLAGS.to_vec();
    flags.extend_from_slice(extra);
    TestAgent::start(&flags).await
}

/// The status and problem code of a GET /v1/topics with `token`.
async fn list_with(a: &TestAgent, token: &str) -> (u16, Option<String>) {
    let r = Api::with_token(a.url.clone(), token)
        .get("/v1/topics")
        .await;
    (r.status, r.problem().map(str::to_string))
}

#[tokio::test]
async fn tokens_are_verified_strictly() {
    let a = jwt_agent(&[]).await;
    let ok = token("default", &["consume:*"]);
    assert_eq!(list_with(&a, &ok).await.0, 200);

    // No token, or a header that is not Bearer: 401 with a challenge.
    let r = a.api.get("/v1/topics").await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.problem(), Some("unauthorized"));
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = a
        .api
        .send(
            |c, u| c.get(u).header("authorization", "Basic dXNlcjpwYXNz"),
            "/v1/topics",
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (401, Some("Authorization"))
    );

    let mut refused = vec![
        ("garbage", "not.a.jwt".to_string()),
        ("expired", hs256(&claims("default", &["consume:*"], -120))),
        (
            "wrong secret",
            tokens::hs256_with(
                b"another-secret-of-at-least-32-bytes!!",
                None,
                &claims("default", &["consume:*"], 60),
            ),
        ),
        (
            "alg none",
            tokens::alg_none(&claims("default", &["consume:*"], 60)),
        ),
        ("bad scope", token("default", &["read:*"])),
        ("bad tenant", token("no/slashes", &["consume:*"])),
    ];
    let mut future = claims("default", &["consume:*"], 3600);
    future["nbf"] = json!(tokens::now() + 600);
    refused.push(("not yet valid", hs256(&future)));
    let mut no_sub = claims("default", &["consume:*"], 60);
    no_sub.as_object_mut().unwrap().remove("sub");
    refused.push(("no sub", hs256(&no_sub)));
    let mut no_exp = claims("default", &["consume:*"], 60);
    no_exp.as_object_mut().unwrap().remove("exp");
    refused.push(("no exp", hs256(&no_exp)));
    // RS256 against an agent with only a secret: no key for it.
    refused.push((
        "rs256",
        tokens::signed(Algorithm::RS256, "rsa-a", None, &claims("default", &[], 60)),
    ));
    for (what, t) in refused {
        assert_eq!(
            list_with(&a, &t).await,
            (401, Some("unauthorized".into())),
            "{what}"
        );
    }
    // Within the 30 s leeway an expired token still passes.
    let t = hs256(&claims("default", &["consume:*"], -10));
    assert_eq!(list_with(&a, &t).await.0, 200, "leeway");
    a.stop().await;

    // Issuer and audience, when configured.
    let a = jwt_agent(&[
        "--jwt-issuer",
        "https://issuer.example",
        "--jwt-audience",
        "streamhouse",
    ])
    .await;
    let mut c = claims("default", &["consume:*"], 60);
    assert_eq!(
        list_with(&a, &hs256(&c)).await.0,
        401,
        "iss and aud required"
    );
    c["iss"] = json!("https://issuer.example");
    c["aud"] = json!("streamhouse");
    assert_eq!(list_with(&a, &hs256(&c)).await.0, 200);
    c["aud"] = json!("someone-else");
    assert_eq!(list_with(&a, &hs256(&c)).await.0, 401, "wrong aud");
    c["aud"] = json!("streamhouse");
    c["iss"] = json!("https://evil.example");
    assert_eq!(list_with(&a, &hs256(&c)).await.0, 401, "wrong iss");
    a.stop().await;
}

#[tokio::test]
async fn public_keys_pin_their_algorithm_select_by_kid_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(tokens::key_path("rsa-a.pem"), keys.join("a.pem")).unwrap();
    std::fs::copy(tokens::key_path("ec-a.pem"), keys.join("e.pem")).unwrap();
    let a = TestAgent::start(&["--auth", "jwt", "--jwt-public-keys", keys.to_str().unwrap()]).await;
    let c = claims("default", &["consume:*"], 600);
    let rs_a = tokens::signed(Algorithm::RS256, "rsa-a", Some("a"), &c);
    let es_e = tokens::signed(Algorithm::ES256, "ec-a", Some("e"), &c);
    assert_eq!(list_with(&a, &rs_a).await.0, 200, "RS256 by kid");
    assert_eq!(list_with(&a, &es_e).await.0, 200, "ES256 by kid");
    // Another key under kid a, a kid nobody has, and HS256 signed with the
    // public key's bytes (the key-confusion attack) are refused.
    let rs_b_as_a = tokens::signed(Algorithm::RS256, "rsa-b", Some("a"), &c);
    assert_eq!(list_with(&a, &rs_b_as_a).await.0, 401);
    let unknown = tokens::signed(Algorithm::RS256, "rsa-a", Some("zz"), &c);
    assert_eq!(list_with(&a, &unknown).await.0, 401);
    let public = std::fs::read(tokens::key_path("rsa-a.pem")).unwrap();
    let confused = tokens::hs256_with(&public, Some("a"), &c);
    assert_eq!(
        list_with(&a, &confused).await,
        (401, Some("unauthorized".into()))
    );

    // Rotation: kid a now holds key b; the file is re-read without a restart.
    std::fs::copy(tokens::key_path("rsa-b.pem"), keys.join("a.pem")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while list_with(&a, &rs_b_as_a).await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "rotated key not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(list_with(&a, &rs_a).await.0, 401, "the old key is gone");
    a.stop().await;

    // A JWKS file: keys by kid, each pinned to its alg.
    let jwks_path = dir.path().join("jwks.json");
    let pem = std::fs::read(tokens::key_path("rsa-a.key")).unwrap();
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    std::fs::write(&jwks_path, json!({"keys": [jwk]}).to_string()).unwrap();
    let a = TestAgent::start(&[
        "--auth",
        "jwt",
        "--jwt-public-keys",
        jwks_path.to_str().unwrap(),
    ])
    .await;
    let k1 = tokens::signed(Algorithm::RS256, "rsa-a", Some("k1"), &c);
    assert_eq!(list_with(&a, &k1).await.0, 200);
    let mut ps = jsonwebtoken::Header::new(Algorithm::PS256);
    ps.kid = Some("k1".into());
    let ps256 = jsonwebtoken::encode(&ps, &c, &enc).unwrap();
    assert_eq!(
        list_with(&a, &ps256).await.0,
        401,
        "PS256 with a key pinned to RS256"
    );
    a.stop().await;
}

#[tokio::test]
async fn scopes_allow_and_refuse_each_action_on_every_route() {
    let a = jwt_agent(&[]).await;
    let admin = Api::with_token(a.url.clone(), &token("default", &["admin:*"]));
    let app = Api::with_token(
        a.url.clone(),
        &token(
            "default",
            &["produce:orders.*", "consume:orders.*", "commit:billing"],
        ),
    );
    // Creating topics is admin; the app may not.
    assert_eq!(app.create_topic("orders.eu", 2).await.status, 403);
    admin.create_topic("orders.eu", 2).await.expect(201);
    admin.create_topic("payments", 1).await.expect(201);

    // produce / publish.
    app.produce("orders.eu", json!([{"value": 1}]))
        .await
        .expect(200);
    let r = app.produce("payments", json!([{"value": 1}])).await;
    assert_eq!(
        (r.status, r.problem()),
        (403, Some("forbidden")),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("produce") && r.text.contains("payments"),
        "names action and resource: {}",
        r.text
    );
    let r = app
        .post_raw(
            "/v1/topics/payments/publish",
            "application/octet-stream",
            "x",
        )
        .await;
    assert_eq!(r.status, 403);
    app.post_raw(
        "/v1/topics/orders.eu/publish",
        "application/octet-stream",
        "x",
    )
    .await
    .expect(200);
    assert_eq!(
        admin
            .produce("orders.eu", json!([{"value": 1}]))
            .await
            .status,
        403,
        "admin is not produce"
    );

    // consume: reads, offsets, streams.
    app.read("orders.eu", 0, "offset=0").await.expect(200);
    assert_eq!(app.read("payments", 0, "offset=0").await.status, 403);
    assert_eq!(
        app.get("/v1/topics/payments/partitions/0/offsets")
            .await
            .status,
        403
    );
    let r = app
        .send(
            |c, u| c.get(u).header("accept", "text/event-stream"),
            "/v1/stream?topics=orders.eu,payments",
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .send(
            |c, u| c.get(u).header("accept", "text/event-stream"),
            "/v1/topics/payments/stream",
        )
        .await;
    assert_eq!(r.status, 403);

    // Listing shows only what the token names; describe likewise.
    let listed = app.get("/v1/topics").await.expect(200);
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders.eu"]);
    assert_eq!(app.describe("payments").await.status, 403);
    app.describe("orders.eu").await.expect(200);

    // commit: groups by name, on every group route.
    app.commit(
        "billing",
        json!([{"topic": "orders.eu", "partition": 0, "offset": 1}]),
    )
    .await
    .expect(200);
    assert_eq!(
        app.commit(
            "other",
            json!([{"topic": "orders.eu", "partition": 0, "offset": 1}])
        )
        .await
        .status,
        403
    );
    assert_eq!(app.lag("other").await.status, 403);
    assert_eq!(app.group_offsets("other").await.status, 403);
    app.lag("billing").await.expect(200);

    // admin: delete; revocation needs admin:*.
    assert_eq!(app.delete("/v1/topics/orders.eu").await.status, 403);
    let r = app
        .post(
            "/v1/admin/tokens/revoke",
            &json!({"jti": "x", "expires_at": tokens::now() + 60}),
        )
        .await;
    assert_eq!(r.status, 403);
    let narrow = Api::with_token(a.url.clone(), &token("default", &["admin:pay*"]));
    assert_eq!(
        narrow
            .post(
                "/v1/admin/tokens/revoke",
                &json!({"jti": "x", "expires_at": 1})
            )
            .await
            .status,
        403
    );
    narrow.delete("/v1/topics/payments").await.expect(204);
    // Metrics: the operator (default tenant, admin:*) only.
    assert_eq!(app.get("/metrics").await.status, 403);
    admin.get("/metrics").await.expect(200);
    // Probes stay open.
    a.api.get("/healthz").await.expect(200);

    // WebSocket: subscribe, produce and commit are checked per message.
    let mut ws = ws_connect(
        &a.url,
        &token(
            "default",
            &["produce:orders.*", "consume:orders.*", "commit:billing"],
        ),
        Auth::Header,
    )
    .await;
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "s", "topic": "payments"}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_u64()),
        (Some("error"), Some(403)),
        "{e}"
    );
    send(&mut ws, json!({"type": "produce", "request_id": "p", "topic": "payments", "records": [{"value": 1}]})).await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["request_id"].as_str(), e["status"].as_u64()),
        (Some("p"), Some(403)),
        "{e}"
    );
    send(&mut ws, json!({"type": "commit", "request_id": "c", "group": "other", "offsets": [{"topic": "orders.eu", "partition": 0, "offset": 1}]})).await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["request_id"].as_str(), e["status"].as_u64()),
        (Some("c"), Some(403)),
        "{e}"
    );
    send(&mut ws, json!({"type": "produce", "request_id": "q", "topic": "orders.eu", "records": [{"value": 2}]})).await;
    assert_eq!(recv(&mut ws).await["type"], "produced");
    a.stop().await;
}

/// How a WebSocket client presents its token.
#[derive(Clone, Copy)]
enum Auth {
    Header,
    Query,
    Subprotocol,
}

async fn ws_connect(url: &str, token: &str, how: Auth) -> Ws {
    let (ws, _) = try_ws(url, token, how).await.expect("websocket connects");
    ws
}

async fn try_ws(
    url: &str,
    token: &str,
    how: Auth,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let mut target = url.replace("http://", "ws://") + "/v1/ws";
    if let Auth::Query = how {
        target.push_str(&format!("?access_token={token}"));
    }
    let mut req = target.into_client_request().unwrap();
    match how {
        Auth::Header => {
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Auth::Subprotocol => {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                format!("streamhouse.v1, bearer.{token}").parse().unwrap(),
            );
        }
        Auth::Query => {}
    }
    tokio_tungstenite::connect_async(req).await
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits for the close frame; returns its code and reason.
async fn closed(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time");
        match m {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn long_lived_streams_refresh_their_token_or_end_when_it_expires() {
    let a = jwt_agent(&[]).await;
    let admin = Api::with_token(a.url.clone(), &token("default", &["admin:*"]));
    admin.create_topic("feed", 1).await.expect(201);
    let short = |ttl| hs256(&claims("default", &["consume:*", "produce:*"], ttl));

    // Every transport carries the token; the subprotocol is answered.
    for how in [Auth::Header, Auth::Query] {
        let mut ws = ws_connect(&a.url, &short(60), how).await;
        send(&mut ws, json!({"type": "ping", "request_id": "1"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");
    }
    let (mut ws, resp) = try_ws(&a.url, &short(60), Auth::Subprotocol).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "streamhouse.v1");
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    // Without a token, the upgrade is refused with 401.
    let err = tokio_tungstenite::connect_async(a.url.replace("http://", "ws://") + "/v1/ws")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // A connection that refreshes its token outlives the first one.
    let mut kept = ws_connect(&a.url, &short(3), Auth::Header).await;
    let mut lapsed = ws_connect(&a.url, &short(3), Auth::Header).await;
    send(
        &mut kept,
        json!({"type": "subscribe", "id": "s", "topic": "feed", "from": "earliest"}),
    )
    .await;
    assert_eq!(recv(&mut kept).await["type"], "subscribed");
    send(
        &mut kept,
        json!({"type": "auth", "request_id": "r", "token": short(60)}),
    )
    .await;
    let ok = recv(&mut kept).await;
    assert_eq!(ok["type"], "authenticated", "{ok}");
    // A token of another tenant, or one that no longer covers the
    // subscription, is refused and the old one stays.
    send(
        &mut kept,
        json!({"type": "auth", "token": token("acme", &["consume:*"])}),
    )
    .await;
    assert_eq!(recv(&mut kept).await["status"], 403);
    send(
        &mut kept,
        json!({"type": "auth", "token": token("default", &["consume:other"])}),
    )
    .await;
    assert_eq!(recv(&mut kept).await["status"], 403);
    send(&mut kept, json!({"type": "auth", "token": "junk"})).await;
    assert_eq!(recv(&mut kept).await["status"], 401);

    let (code, reason) = closed(&mut lapsed, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    send(&mut kept, json!({"type": "ping", "request_id": "still"})).await;
    assert_eq!(
        recv(&mut kept).await["request_id"],
        "still",
        "the refreshed connection stays open"
    );

    // One partition's SSE (the records route with Accept) takes the query token too.
    let path = "/v1/topics/feed/partitions/0/records?from=earliest";
    assert_eq!(sse_get(&a.url, path, &short(60)).await.status(), 200);
    // SSE: the token in the query; at expiry an error event, then the end.
    let r = sse_get(&a.url, "/v1/topics/feed/stream?from=earliest", &short(2)).await;
    assert_eq!(r.status(), 200);
    use eventsource_stream::Eventsource;
    let mut events = r.bytes_stream().eventsource();
    let e = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert_eq!(e.event, "error");
    let problem: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(problem["type"], "urn:streamhouse:problem:token-expired");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("ends")
            .is_none()
    );
    a.stop().await;
}

/// A GET asking for an event stream, the token in `access_token`.
async fn sse_get(base: &str, path: &str, token: &str) -> reqwest::Response {
    common::client()
        .get(format!("{base}{path}&access_token={token}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_token_command_mints_what_the_agent_accepts() {
    let a = jwt_agent(&[]).await;
    let out = std::process::Command::new(common::binary())
        .args([
            "token",
            "--secret",
            tokens::SECRET,
            "--tenant",
            "acme",
            "--scope",
            "admin:*",
            "--scope",
            "produce:orders.*",
            "--ttl",
            "10m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let api = Api::with_token(a.url.clone(), &t);
    api.create_topic("orders.eu", 1).await.expect(201);
    api.produce("orders.eu", json!([{"value": 1}]))
        .await
        .expect(200);
    assert_eq!(
        api.read("orders.eu", 0, "offset=0").await.status,
        403,
        "no consume scope"
    );
    let bad = std::process::Command::new(common::binary())
        .args(["token", "--secret", tokens::SECRET, "--scope", "write:x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    a.stop().await;
}
