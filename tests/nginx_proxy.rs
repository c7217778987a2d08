//! The load balancer configuration shipped in `docker/nginx.conf`, run for
//! real (nginx, on 127.0.0.1 with random ports) in front of an agent:
//! REST requests and WebSocket upgrades both pass through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, TestAgent, free_port};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// nginx running `docker/nginx.conf` with its upstreams pointed at `agent`.
struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("nginx not found: install it (`apt-get install nginx-light`; scripts/test does this)");
}

async fn nginx_in_front_of(agent: &str) -> Nginx {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/nginx.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = agent.trim_start_matches("http://");
    let mut conf = String::new();
    conf.push_str(&format!(
        "pid {0}/nginx.pid;\nerror_log {0}/error.log;\n",
        dir.path().display()
    ));
    for line in shipped.lines() {
        let t = line.trim();
        if t.starts_with("server agent") {
            if t.starts_with("server agent1") {
                conf.push_str(&format!("        server {upstream};\n"));
            }
            continue;
        }
        if t.starts_with("access_log ") {
            continue;
        }
        if t == "listen 8080;" {
            conf.push_str(&format!("        listen 127.0.0.1:{port};\n"));
            continue;
        }
        conf.push_str(line);
        conf.push('\n');
        if t == "http {" {
            for (k, sub) in [
                ("client_body_temp_path", "body"),
                ("proxy_temp_path", "proxy"),
            ] {
                conf.push_str(&format!("    {k} {}/{sub};\n", dir.path().display()));
            }
            conf.push_str("    access_log off;\n");
        }
    }
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let api = Api::new(url.clone());
    while api.try_send(|c, u| c.get(u), "/healthz").await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Nginx {
        child,
        url,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_shipped_load_balancer_forwards_rest_and_websocket() {
    let a = TestAgent::start(&["--linger", "5ms"]).await;
    let lb = nginx_in_front_of(&a.url).await;
    let api = Api::new(lb.url.clone());
    api.create_topic("via-lb", 1).await.expect(201);

    let ws_url = lb.url.replace("http://", "ws://") + "/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("the WebSocket upgrade passes through the load balancer");
    ws.send(Message::text(
        json!({"type": "subscribe", "id": "s", "topic": "via-lb", "from": "earliest"}).to_string(),
    ))
    .await
    .unwrap();
    api.produce("via-lb", json!([{"value": "through nginx"}]))
        .await
        .expect(200);
    let mut got = Vec::new();
    while got.is_empty() {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "records" {
                got = v["records"].as_array().unwrap().clone();
            }
        }
    }
    assert_eq!(got[0]["value"], "through nginx");
}
