//! `bench connections`: how much an idle WebSocket subscription costs.
//!
//! Opens `--connections` WebSocket connections to one agent, each with one
//! subscription to a partition at `latest` that receives nothing, and
//! reports the agent's resident memory per connection (from its
//! `/metrics`). Mind the open-files limit on both sides.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::scrape::scrape;
use super::stats::r2;
use super::{client, ensure_topic};

/// `bench connections` options.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Idle WebSocket subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Topic to subscribe to (created if missing).
    #[arg(long, default_value = "bench-idle")]
    pub topic: String,
}

async fn rss(http: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
    scrape(http, url)
        .await?
        .get("process_resident_memory_bytes")
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the agent does not report process_resident_memory_bytes"))
}

pub(crate) async fn run(a: &ConnectionsArgs) -> anyhow::Result<String> {
    let http = client(4)?;
    ensure_topic(&http, &a.url, &a.topic, 8).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(&http, &a.url).await?;
    let ws_url = a.url.replacen("http", "ws", 1) + "/v1/ws";
    let started = Instant::now();
    let mut conns = Vec::with_capacity(a.connections);
    let mut failed = 0usize;
    for chunk in (0..a.connections).collect::<Vec<_>>().chunks(200) {
        let opens = chunk.iter().map(|i| {
            let (url, topic) = (ws_url.clone(), a.topic.clone());
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                ws.send(Message::text(json!({"type": "subscribe", "topic": topic, "partitions": [i % 8], "from": "latest"}).to_string()))
                    .await?;
                // Wait for "subscribed" so the server has done its work.
                while let Some(m) = ws.next().await {
                    if let Message::Text(t) = m? {
                        if t.contains("\"subscribed\"") {
                            break;
                        }
                        anyhow::bail!("subscribe failed: {t}");
                    }
                }
                anyhow::Ok(ws)
            }
        });
        for r in futures_util::future::join_all(opens).await {
            match r {
                Ok(ws) => conns.push(ws),
                Err(_) => failed += 1,
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(&http, &a.url).await?;
    let open = conns.len();
    let per = if open > 0 {
        (after - before) / open as f64
    } else {
        0.0
    };
    drop(conns);
    Ok(json!({
        "bench": "connections",
        "url": a.url,
        "requested": a.connections,
        "open": open,
        "failed": failed,
        "open_seconds": r2(open_secs),
        "rss_before_mib": r2(before / 1048576.0),
        "rss_after_mib": r2(after / 1048576.0),
        "rss_per_connection_kib": r2(per / 1024.0),
    })
    .to_string())
}
