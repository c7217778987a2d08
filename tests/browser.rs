//! Browser safety, with and without authentication: Host allowlist (DNS
//! rebinding), WebSocket Origin checks, CORS, the content-type rule that
//! stops cross-site form posts, security headers, and the refusal to
//! serve beyond loopback without authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestAgent;
use common::tokens::{JWT_FLAGS, token};
use streamhouse_server::config::ServeArgs;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn ws_status(url: &str, origin: Option<&str>, host: Option<&str>) -> u16 {
    let mut req = (url.replace("http://", "ws://") + "/v1/ws")
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    if let Some(h) = host {
        req.headers_mut().insert("host", h.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_loopback_agent_without_auth_answers_only_its_own_names_and_pages() {
    let a = TestAgent::start(&["--cors-origins", "https://dash.example"]).await;
    let host = a.url.trim_start_matches("http://").to_string();
    let port = host.rsplit(':').next().unwrap().to_string();

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1.
    let r = a
        .api
        .send(|c, u| c.get(u).header("host", "evil.example"), "/v1/topics")
        .await;
    assert_eq!(
        (r.status, r.problem()),
        (421, Some("host-not-allowed")),
        "{}",
        r.text
    );
    let r = a
        .api
        .send(
            |c, u| {
                c.post(u)
                    .header("host", "evil.example")
                    .header("content-type", "text/plain")
                    .body(r#"{"name":"csrf","partitions":1}"#)
            },
            "/v1/topics",
        )
        .await;
    assert_eq!(r.status, 421);
    for ok in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".into(),
    ] {
        let r = a
            .api
            .send(|c, u| c.get(u).header("host", ok.as_str()), "/healthz")
            .await;
        assert_eq!(r.status, 200, "{ok}");
    }

    // A cross-site form post (text/plain, no preflight) creates nothing.
    let r = a
        .api
        .post_raw(
            "/v1/topics",
            "text/plain",
            r#"{"name":"csrf","partitions":1}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.problem()),
        (415, Some("unsupported-media-type"))
    );
    let r = a
        .api
        .send(
            |c, u| c.post(u).body(r#"{"name":"csrf","partitions":1}"#),
            "/v1/topics",
        )
        .await;
    assert_eq!(r.status, 415, "no content type at all");
    assert_eq!(a.api.describe("csrf").await.status, 404);
    a.create_topic("t", 1).await;
    let r = a
        .api
        .post_raw(
            "/v1/topics/t/publish",
            "application/x-www-form-urlencoded",
            "a=1",
        )
        .await;
    assert_eq!(r.status, 415, "publish refuses form types without a token");
    let r = a
        .api
        .send(
            |c, u| {
                c.post(u)
                    .header("content-type", "text/plain")
                    .header("authorization", "Bearer anything")
                    .body("hello")
            },
            "/v1/topics/t/publish",
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a request with a bearer header is not a form post: {}",
        r.text
    );

    // WebSocket upgrades check Origin: own origin and configured ones pass.
    assert_eq!(
        ws_status(&a.url, None, None).await,
        101,
        "no Origin: not a browser"
    );
    assert_eq!(
        ws_status(&a.url, Some("https://evil.example"), None).await,
        403
    );
    assert_eq!(
        ws_status(&a.url, Some("https://dash.example"), None).await,
        101
    );
    assert_eq!(
        ws_status(&a.url, Some(&format!("http://{host}")), None).await,
        101
    );
    assert_eq!(
        ws_status(&a.url, Some("http://localhost:1"), None).await,
        403,
        "another port is another origin"
    );

    // CORS: preflight and answers name the configured origin only.
    let pre = a
        .client
        .request(reqwest::Method::OPTIONS, a.u("/v1/topics/t/records"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("idempotency-key"),
        "{allowed}"
    );
    let r = a
        .client
        .get(a.u("/v1/topics"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Pages a browser renders carry security headers; every answer nosniff.
    let docs = a.client.get(a.u("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
    let r = a.api.get("/v1/topics").await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    a.stop().await;
}

#[tokio::test]
async fn with_jwt_any_host_is_answered_and_configured_hosts_narrow_it() {
    let a = TestAgent::start(JWT_FLAGS).await;
    let t = token("default", &["consume:*"]);
    let r = a
        .api
        .send(
            |c, u| {
                c.get(u)
                    .header("host", "streams.example.com")
                    .bearer_auth(&t)
            },
            "/v1/topics",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    a.stop().await;

    let mut flags = JWT_FLAGS.to_vec();
    flags.extend(["--allowed-hosts", "streams.example.com"]);
    let a = TestAgent::start(&flags).await;
    let r = a
        .api
        .send(
            |c, u| c.get(u).header("host", "other.example.com:443"),
            "/healthz",
        )
        .await;
    assert_eq!(r.status, 421);
    let r = a
        .api
        .send(
            |c, u| c.get(u).header("host", "Streams.Example.com:8443"),
            "/healthz",
        )
        .await;
    assert_eq!(r.status, 200);
    a.stop().await;
}

#[test]
fn without_auth_the_agent_refuses_to_listen_beyond_loopback() {
    let args = ServeArgs::parse_flags(["--listen", "0.0.0.0:8080"]).unwrap();
    let e = args.validate().unwrap_err();
    assert!(
        e.contains("--auth jwt") && e.contains("--allow-unauthenticated"),
        "{e}"
    );
    let args = ServeArgs::parse_flags(["--listen", "[::]:8080"]).unwrap();
    assert!(args.validate().is_err());
    let args =
        ServeArgs::parse_flags(["--listen", "0.0.0.0:8080", "--allow-unauthenticated"]).unwrap();
    assert!(args.validate().is_ok());
    let secret = common::tokens::SECRET;
    let args = ServeArgs::parse_flags([
        "--listen",
        "0.0.0.0:8080",
        "--auth",
        "jwt",
        "--jwt-secret",
        secret,
    ])
    .unwrap();
    assert!(args.validate().is_ok());
    let short = ServeArgs::parse_flags(["--auth", "jwt"]).unwrap();
    assert!(short.validate().unwrap_err().contains("--jwt-secret"));
    let star = ServeArgs::parse_flags(["--cors-origins", "*"]).unwrap();
    assert!(star.validate().is_err(), "any origin needs authentication");

    // The binary says why and exits.
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env(
            "STREAMHOUSE_DATA_DIR",
            std::env::temp_dir().join("sh-refuse"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
}
