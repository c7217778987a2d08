//! `streamhouse bench`: measures running agents from outside, over HTTP,
//! Server-Sent Events and WebSocket, as their clients would.
//!
//! Each bench prints one JSON line: what it ran, throughput, and latency
//! percentiles. Benches measure; they never pass or fail on a number. This
//! crate talks to agents only through the public API (and `/metrics`), so it
//! shares no code with the server.

mod abuse;
mod batches;
mod compaction;
mod connections;
mod consume;
mod e2e;
mod groups;
mod http;
mod page;
mod pathological;
mod produce;
mod raw;
mod scrape;
mod stats;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand};

/// A duration written with a unit: `500ms`, `10s`, `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("{s:?} is not a duration (try 500ms, 10s, 2m): {e}"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// `streamhouse bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// Options every bench shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run.
    #[arg(long, default_value = "10s")]
    pub duration: HumanDuration,
}

/// Which measurement to run.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// GET /healthz as fast as possible: the HTTP stack's ceiling.
    Http(Common),
    /// Produce records and measure acknowledged throughput and latency.
    Produce(produce::ProduceArgs),
    /// Read a topic from the start (catch-up) and measure throughput.
    Consume(consume::ConsumeArgs),
    /// Single-record requests spread over many partitions and agents at a fixed rate.
    Pathological(pathological::PathologicalArgs),
    /// Produce on one agent, follow on another (SSE or WebSocket): delivery latency, then catch-up.
    E2e(e2e::E2eArgs),
    /// Idle WebSocket subscriptions: the agent's memory per connection.
    Connections(connections::ConnectionsArgs),
    /// Hostile-client shapes: huge bodies of empty records, slowloris, paging a big chunk.
    Abuse(abuse::AbuseArgs),
    /// One partition as many small flushes: catch-up reads, objects and
    /// GETs before and after compaction, and what compaction costs.
    Compaction(compaction::CompactionArgs),
    /// Consumer groups and webhooks: rebalance time after a member dies,
    /// group fetch against plain reads, webhook latency and throughput.
    Groups(groups::GroupsArgs),
}

/// Runs a bench and prints one JSON line.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let line = match args.kind {
        BenchKind::Http(c) => http::run(&c).await?,
        BenchKind::Produce(p) => produce::run(&p).await?,
        BenchKind::Consume(c) => consume::run(&c).await?,
        BenchKind::Pathological(p) => pathological::run(&p).await?,
        BenchKind::E2e(e) => e2e::run(&e).await?,
        BenchKind::Connections(c) => connections::run(&c).await?,
        BenchKind::Abuse(a) => abuse::run(&a).await?,
        BenchKind::Compaction(c) => compaction::run(&c).await?,
        BenchKind::Groups(g) => groups::run(&g).await?,
    };
    println!("{line}");
    Ok(())
}

/// An HTTP client tuned for load: one pooled connection per worker. With
/// `STREAMHOUSE_TOKEN` set (an agent run with `--auth jwt`), every request
/// carries it as a bearer token.
pub(crate) fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("STREAMHOUSE_TOKEN") {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse()?,
        );
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .http1_only()
        .build()?)
}

/// Creates `topic` with `partitions` unless it exists.
pub(crate) async fn ensure_topic(
    client: &reqwest::Client,
    url: &str,
    topic: &str,
    partitions: u32,
) -> anyhow::Result<()> {
    let resp = client
        .post(format!("{url}/v1/topics"))
        .json(&serde_json::json!({"name": topic, "partitions": partitions}))
        .send()
        .await?;
    let status = resp.status();
    if !(status.is_success() || status.as_u16() == 409) {
        anyhow::bail!(
            "creating topic {topic}: {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}
