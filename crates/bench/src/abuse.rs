//! `bench abuse`: what hostile-but-ordinary clients cost an agent.
//!
//! Three measurements against one running agent, reported together:
//!
//! - `bodies`: `--bodies` parallel produce requests, each `--body-mib` of
//!   `{"records":[{},{},…]}` (the body limit's worth of empty records). The
//!   agent's resident memory is sampled from `/metrics` every 20 ms while
//!   they run, and its high-water mark read after; peak minus idle is what
//!   request bodies cost, to compare with `--max-inflight-body-bytes`.
//! - `slowloris`: `--slowloris` connections that send a request line and
//!   then one header line a second, never finishing. Reported: how many the
//!   agent accepted or refused, how long each lived before the agent closed
//!   it, and `/healthz` latency measured while they are all open (and
//!   before, for comparison).
//! - `read`: `--chunk-records` tiny records produced at once (start the
//!   agent with `--linger 2s` so they land in one chunk), then `limit=1`
//!   reads at the start, middle and end of the chunk: the cost of paging
//!   through a large chunk.
//!
//! The agent's outcome is measured, never judged: the regression tests
//! assert the behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scrape::scrape;
use super::stats::{percentiles, r2};
use super::{HumanDuration, client, ensure_topic};

/// `bench abuse` options.
#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Which measurements to run, comma-separated: bodies, slowloris, read.
    #[arg(long, value_delimiter = ',', default_value = "bodies,slowloris,read")]
    pub only: Vec<String>,
    /// Parallel maximum-size bodies of empty records.
    #[arg(long, default_value_t = 16)]
    pub bodies: usize,
    /// Size of each body in MiB (the agent's `--max-body-bytes`, 16 MiB by default).
    #[arg(long, default_value_t = 16)]
    pub body_mib: usize,
    /// Slow connections to open.
    #[arg(long, default_value_t = 5000)]
    pub slowloris: usize,
    /// Longest to keep the slow connections trying (past the agent's header-read timeout).
    #[arg(long, default_value = "20s")]
    pub hold: HumanDuration,
    /// Records in the chunk the reads page through.
    #[arg(long, default_value_t = 300_000)]
    pub chunk_records: usize,
    /// Compression of the topic the reads page through: none, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub read_compression: String,
}

pub(crate) async fn run(a: &AbuseArgs) -> anyhow::Result<String> {
    let mut out = serde_json::Map::new();
    out.insert("bench".into(), json!("abuse"));
    for what in &a.only {
        let figures = match what.as_str() {
            "bodies" => bodies(a).await?,
            "slowloris" => slowloris(a).await?,
            "read" => read(a).await?,
            other => {
                anyhow::bail!("--only: unknown measurement {other:?} (bodies, slowloris, read)")
            }
        };
        out.insert(what.clone(), figures);
    }
    Ok(Value::Object(out).to_string())
}

const MIB: f64 = 1024.0 * 1024.0;

async fn rss(http: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
    scrape(http, url)
        .await?
        .get("process_resident_memory_bytes")
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the agent does not report process_resident_memory_bytes"))
}

/// The agent's resident-memory high-water mark, when it reports one.
async fn peak_rss(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<f64>> {
    Ok(scrape(http, url)
        .await?
        .get("streamhouse_resident_memory_peak_bytes")
        .copied())
}

/// Samples the agent's RSS until `stop`, returning the highest seen.
fn sample_peak(
    http: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(r) = rss(&http, &url).await {
                peak = peak.max(r);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

async fn bodies(a: &AbuseArgs) -> anyhow::Result<Value> {
    let topic = "bench-abuse-bodies";
    let http = client(a.bodies + 2)?;
    ensure_topic(&http, &a.url, topic, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss(&http, &a.url).await?;

    let size = a.body_mib << 20;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"records\":[{}");
    while body.len() + 3 + 2 <= size {
        body.extend_from_slice(b",{}");
    }
    body.extend_from_slice(b"]}");
    let body = bytes::Bytes::from(body);

    let peak_before = peak_rss(&http, &a.url).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak(client(1)?, a.url.clone(), stop.clone());
    let started = Instant::now();
    let sends = (0..a.bodies).map(|_| {
        let (http, body) = (http.clone(), body.clone());
        let url = format!("{}/v1/topics/{topic}/records", a.url);
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "connection error".to_string(),
            }
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.await?.max(idle);
    // The agent's own high-water mark catches peaks between samples, unless
    // an earlier peak (before this bench) was higher.
    let hwm = peak_rss(&http, &a.url).await?;
    let peak = match (hwm, peak_before) {
        (Some(after), Some(before)) if after > before => after,
        _ => sampled,
    };
    let mut statuses = BTreeMap::<String, usize>::new();
    for s in answers {
        *statuses.entry(s).or_default() += 1;
    }
    Ok(json!({
        "bodies": a.bodies,
        "body_mib": a.body_mib,
        "statuses": statuses,
        "seconds": r2(elapsed.as_secs_f64()),
        "idle_rss_mib": r2(idle / MIB),
        "peak_rss_mib": r2(peak / MIB),
        "peak_over_idle_mib": r2((peak - idle) / MIB),
    }))
}

/// One slow connection: a request line, then a header line a second.
/// Returns (accepted, lifetime): accepted is false when the agent refused
/// the connection (503) or the connect failed.
async fn slow_client(addr: String, hold: Duration) -> (bool, Duration) {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect(&addr).await else {
        return (false, started.elapsed());
    };
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .is_err()
    {
        return (false, started.elapsed());
    }
    let mut buf = [0u8; 512];
    let mut refused = false;
    while started.elapsed() < hold {
        tokio::select! {
            n = s.read(&mut buf) => match n {
                // The agent closed it.
                Ok(0) | Err(_) => break,
                // Only a refusal is answered: the request never ends.
                Ok(n) => refused |= buf[..n].starts_with(b"HTTP/1.1 503"),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    (!refused, started.elapsed())
}

async fn healthz_latency(url: &str, requests: usize) -> anyhow::Result<Value> {
    let http = client(4)?;
    let mut micros = Vec::with_capacity(requests);
    let mut failed = 0;
    for _ in 0..requests {
        let t = Instant::now();
        match http.get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status().is_success() => micros.push(t.elapsed().as_micros() as u64),
            _ => failed += 1,
        }
    }
    Ok(json!({"requests": requests, "failed": failed, "latency_ms": percentiles(micros)}))
}

async fn slowloris(a: &AbuseArgs) -> anyhow::Result<Value> {
    let addr = a
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let before = healthz_latency(&a.url, 2000).await?;
    let open = Arc::new(AtomicU64::new(0));
    let hold = a.hold.0;
    let mut tasks = Vec::with_capacity(a.slowloris);
    let opening = Instant::now();
    for _ in 0..a.slowloris {
        let (addr, open) = (addr.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            open.fetch_add(1, Ordering::Relaxed);
            let r = slow_client(addr, hold).await;
            open.fetch_sub(1, Ordering::Relaxed);
            r
        }));
    }
    // Let every connection get its request line in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opened_in = opening.elapsed();
    let open_while_measuring = open.load(Ordering::Relaxed);
    let during = healthz_latency(&a.url, 2000).await?;
    let mut accepted = 0;
    let mut lifetimes = Vec::new();
    for t in tasks {
        let (ok, lived) = t.await?;
        if ok {
            accepted += 1;
            lifetimes.push(lived.as_micros() as u64);
        }
    }
    let held_to_end = lifetimes
        .iter()
        .filter(|&&l| l >= hold.as_micros() as u64)
        .count();
    Ok(json!({
        "connections": a.slowloris,
        "accepted": accepted,
        "refused": a.slowloris - accepted,
        "open_while_measuring": open_while_measuring,
        "opened_in_s": r2(opened_in.as_secs_f64()),
        "lifetime_ms": percentiles(lifetimes),
        "still_open_after_hold": held_to_end,
        "hold_s": hold.as_secs(),
        "healthz_before": before,
        "healthz_during": during,
    }))
}

async fn read(a: &AbuseArgs) -> anyhow::Result<Value> {
    let http = client(32)?;
    let topic = format!("bench-abuse-read-{}", std::process::id());
    let created = http
        .post(format!("{}/v1/topics", a.url))
        .json(&json!({"name": topic, "partitions": 1, "compression": a.read_compression}))
        .send()
        .await?;
    anyhow::ensure!(
        created.status().is_success(),
        "creating {topic}: {}",
        created.status()
    );
    let per_request = 10_000;
    let requests = a.chunk_records.div_ceil(per_request);
    let flushes_before = scrape(&http, &a.url)
        .await?
        .get("streamhouse_flushes_total")
        .copied()
        .unwrap_or(0.0);
    let produce = (0..requests).map(|i| {
        let n = per_request.min(a.chunk_records - i * per_request);
        let records: Vec<Value> = (0..n)
            .map(|_| json!({"value": 1, "partition": 0}))
            .collect();
        let (http, url) = (http.clone(), format!("{}/v1/topics/{topic}/records", a.url));
        async move {
            let r = http
                .post(url)
                .json(&json!({ "records": records }))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "produce: {}", r.status());
            anyhow::Ok(())
        }
    });
    for r in futures_util::future::join_all(produce).await {
        r?;
    }
    let flushes = scrape(&http, &a.url)
        .await?
        .get("streamhouse_flushes_total")
        .copied()
        .unwrap_or(0.0)
        - flushes_before;

    let n = a.chunk_records as i64;
    let mut positions = serde_json::Map::new();
    for (name, offset) in [("start", 0), ("middle", n / 2), ("end", n - 1)] {
        let url = format!(
            "{}/v1/topics/{topic}/partitions/0/records?offset={offset}&limit=1",
            a.url
        );
        let mut micros = Vec::new();
        let mut first = 0.0;
        for i in 0..21 {
            let t = Instant::now();
            let r = http.get(&url).send().await?;
            anyhow::ensure!(r.status().is_success(), "read: {}", r.status());
            r.bytes().await?;
            let took = t.elapsed();
            if i == 0 {
                first = took.as_secs_f64() * 1000.0;
            } else {
                micros.push(took.as_micros() as u64);
            }
        }
        positions.insert(
            name.into(),
            json!({"offset": offset, "first_ms": r2(first), "cached_ms": percentiles(micros)}),
        );
    }
    Ok(json!({
        "chunk_records": a.chunk_records,
        "compression": a.read_compression,
        "flushes": flushes,
        "limit_1_reads": positions,
    }))
}
