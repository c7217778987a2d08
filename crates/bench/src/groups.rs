//! `bench groups`: consumer groups and webhook delivery, from outside.
//!
//! - Rebalance: two members share a topic; one stops calling; how long
//!   until the other owns every partition (the session timeout plus the
//!   time to notice), over `--trials` trials.
//! - Fetch overhead: the same pages read by a group member's fetch and by
//!   plain partition reads, one request at a time.
//! - Webhooks: a receiver in this process; records produced at
//!   `--webhook-rate` (each carrying its send time) and their arrival, then
//!   a burst of `--webhook-burst` records and how fast they all arrive.
//!   Measuring starts 15 s after the first delivery, once every agent has
//!   found the subscription and the assignment has settled.
//!   The agents must allow the receiver: `--webhook-allow 127.0.0.1`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use crate::stats::{percentiles, r2};
use crate::{HumanDuration, client, ensure_topic};

/// `bench groups` arguments.
#[derive(Debug, Clone, Args)]
pub struct GroupsArgs {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Another agent: members alternate between the two (default: --url).
    #[arg(long)]
    pub other: Option<String>,
    /// Rebalance trials.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Members' session timeout in the rebalance trials.
    #[arg(long, default_value = "1s")]
    pub session_timeout: HumanDuration,
    /// Requests of each kind in the fetch-overhead comparison.
    #[arg(long, default_value_t = 500)]
    pub fetches: usize,
    /// Records per second produced for webhook latency.
    #[arg(long, default_value_t = 200)]
    pub webhook_rate: u64,
    /// How long to produce at that rate.
    #[arg(long, default_value = "10s")]
    pub webhook_duration: HumanDuration,
    /// Records in the webhook throughput burst.
    #[arg(long, default_value_t = 20_000)]
    pub webhook_burst: usize,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn ok(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs the three measurements; one JSON line.
pub(crate) async fn run(a: &GroupsArgs) -> anyhow::Result<String> {
    let http = client(4)?;
    let other = a.other.clone().unwrap_or_else(|| a.url.clone());
    let salt = uuid::Uuid::now_v7().simple().to_string();
    let rebalance = rebalance(&http, a, &other, &salt).await?;
    let overhead = fetch_overhead(&http, a, &salt).await?;
    let webhooks = webhooks(&http, a, &salt).await?;
    Ok(json!({
        "bench": "groups",
        "rebalance": rebalance,
        "fetch_overhead": overhead,
        "webhooks": webhooks,
    })
    .to_string())
}

async fn join(
    http: &reqwest::Client,
    url: &str,
    group: &str,
    topic: &str,
    session_ms: u128,
) -> anyhow::Result<String> {
    let v = ok(http
        .post(format!("{url}/v1/groups/{group}/members"))
        .json(&json!({"topics": [topic], "session_timeout_ms": session_ms}))
        .send()
        .await?)
    .await?;
    Ok(v["member_id"].as_str().unwrap_or_default().to_string())
}

async fn heartbeat(
    http: &reqwest::Client,
    url: &str,
    group: &str,
    member: &str,
) -> anyhow::Result<Value> {
    ok(http
        .post(format!(
            "{url}/v1/groups/{group}/members/{member}/heartbeat"
        ))
        .json(&json!({}))
        .send()
        .await?)
    .await
}

fn owned(v: &Value) -> usize {
    v["assignment"].as_array().map_or(0, Vec::len)
}

async fn rebalance(
    http: &reqwest::Client,
    a: &GroupsArgs,
    other: &str,
    salt: &str,
) -> anyhow::Result<Value> {
    let topic = format!("bench-groups-{salt}");
    ensure_topic(http, &a.url, &topic, 4).await?;
    let session = a.session_timeout.0.as_millis();
    let mut micros = Vec::with_capacity(a.trials);
    for trial in 0..a.trials {
        let group = format!("bench-rebalance-{salt}-{trial}");
        let m1 = join(http, &a.url, &group, &topic, session).await?;
        let m2 = join(http, other, &group, &topic, session).await?;
        // Settle: two partitions each.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v1 = heartbeat(http, &a.url, &group, &m1).await?;
            let v2 = heartbeat(http, other, &group, &m2).await?;
            if owned(&v1) == 2 && owned(&v2) == 2 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "members did not settle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // m2 dies; m1 keeps calling every 20 ms.
        let t0 = Instant::now();
        loop {
            let v1 = heartbeat(http, &a.url, &group, &m1).await?;
            if owned(&v1) == 4 {
                break;
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(60), "no rebalance");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        micros.push(t0.elapsed().as_micros() as u64);
        let _ = http
            .delete(format!("{}/v1/groups/{group}/members/{m1}", a.url))
            .send()
            .await;
        let _ = http
            .delete(format!("{}/v1/groups/{group}", a.url))
            .send()
            .await;
    }
    Ok(json!({
        "trials": a.trials,
        "session_timeout_ms": session,
        "ms": percentiles(micros),
    }))
}

async fn fetch_overhead(
    http: &reqwest::Client,
    a: &GroupsArgs,
    salt: &str,
) -> anyhow::Result<Value> {
    let topic = format!("bench-fetch-{salt}");
    ensure_topic(http, &a.url, &topic, 1).await?;
    let pages = a.fetches;
    let total = pages * 100;
    let value = "x".repeat(100);
    for chunk in 0..total.div_ceil(1000) {
        let n = (total - chunk * 1000).min(1000);
        let records: Vec<Value> = (0..n).map(|_| json!({"value": value})).collect();
        ok(http
            .post(format!("{}/v1/topics/{topic}/records", a.url))
            .json(&json!({"records": records}))
            .send()
            .await?)
        .await?;
    }
    let mut plain = Vec::with_capacity(pages);
    let mut offset = 0i64;
    for _ in 0..pages {
        let t = Instant::now();
        let v = ok(http
            .get(format!(
                "{}/v1/topics/{topic}/partitions/0/records?offset={offset}&limit=100",
                a.url
            ))
            .send()
            .await?)
        .await?;
        plain.push(t.elapsed().as_micros() as u64);
        offset = v["next_offset"].as_i64().unwrap_or(offset);
    }
    let group = format!("bench-fetch-{salt}");
    let member = join(http, &a.url, &group, &topic, 30_000).await?;
    let mut grouped = Vec::with_capacity(pages);
    let mut got = 0usize;
    for _ in 0..pages {
        let t = Instant::now();
        let v = ok(http
            .get(format!(
                "{}/v1/groups/{group}/members/{member}/records?max_records=100",
                a.url
            ))
            .send()
            .await?)
        .await?;
        grouped.push(t.elapsed().as_micros() as u64);
        got += v["batches"].as_array().map_or(0, |b| {
            b.iter()
                .map(|b| b["records"].as_array().map_or(0, Vec::len))
                .sum()
        });
    }
    let _ = http
        .delete(format!("{}/v1/groups/{group}/members/{member}", a.url))
        .send()
        .await;
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1000.0;
    Ok(json!({
        "requests": pages,
        "records_per_request": 100,
        "group_records": got,
        "plain_ms": percentiles(plain.clone()),
        "group_ms": percentiles(grouped.clone()),
        "plain_mean_ms": r2(mean(&plain)),
        "group_mean_ms": r2(mean(&grouped)),
    }))
}

/// What the receiver saw: arrival latencies (µs).
#[derive(Default)]
struct Seen {
    latencies: Vec<u64>,
}

/// A minimal HTTP/1.1 receiver: reads each request, answers 204, and
/// records the latency of every record whose value carries `t` (µs).
async fn receiver(seen: Arc<(Mutex<Seen>, AtomicU64)>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let now = now_micros();
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        let recs = v["records"].as_array().cloned().unwrap_or_default();
                        let mut s = seen.0.lock().await;
                        for rec in &recs {
                            if let Some(t) = rec["value"]["t"].as_u64() {
                                s.latencies.push(now.saturating_sub(t));
                            }
                        }
                        seen.1.fetch_add(recs.len() as u64, Ordering::SeqCst);
                    }
                    if w.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

async fn webhooks(http: &reqwest::Client, a: &GroupsArgs, salt: &str) -> anyhow::Result<Value> {
    let topic = format!("bench-hooks-{salt}");
    ensure_topic(http, &a.url, &topic, 4).await?;
    let seen = Arc::new((Mutex::new(Seen::default()), AtomicU64::new(0)));
    let url = receiver(seen.clone()).await?;
    let name = format!("bench-{salt}");
    ok(http
        .post(format!("{}/v1/subscriptions", a.url))
        .json(
            &json!({"name": name, "topic": topic, "url": url, "start": "earliest",
                      "max_batch_records": 1000, "max_batch_wait_ms": 0}),
        )
        .send()
        .await?)
    .await?;
    // Warm up: deliveries flow, and 15 s later every agent has found the
    // subscription and the partitions have settled.
    let warm = Instant::now();
    while seen.1.load(Ordering::SeqCst) == 0 {
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(60),
            "no delivery within 60 s: do the agents allow 127.0.0.1 (--webhook-allow)?"
        );
        ok(http
            .post(format!("{}/v1/topics/{topic}/records", a.url))
            .json(&json!({"records": [{"value": "warm-up"}]}))
            .send()
            .await?)
        .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let warmed = seen.1.load(Ordering::SeqCst);
    seen.0.lock().await.latencies.clear();
    // Latency at a steady rate: one record per request, each stamped.
    let interval = Duration::from_secs_f64(1.0 / a.webhook_rate.max(1) as f64);
    let mut tick = tokio::time::interval(interval);
    let end = Instant::now() + a.webhook_duration.0;
    let mut sent = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let http = http.clone();
        let u = format!("{}/v1/topics/{topic}/records", a.url);
        tokio::spawn(async move {
            let _ = http
                .post(u)
                .json(&json!({"records": [{"value": {"t": now_micros()}}]}))
                .send()
                .await;
        });
        sent += 1;
    }
    let wait_until = Instant::now() + Duration::from_secs(60);
    while seen.1.load(Ordering::SeqCst) < warmed + sent && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latencies = std::mem::take(&mut seen.0.lock().await.latencies);
    // Throughput: a burst produced at once (requests of 1000 records in
    // parallel), timed until the receiver has every record.
    let before = seen.1.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let value = "y".repeat(100);
    let mut sends = Vec::new();
    for chunk in 0..a.webhook_burst.div_ceil(1000) {
        let n = (a.webhook_burst - chunk * 1000).min(1000);
        let records: Vec<Value> = (0..n).map(|_| json!({"value": value})).collect();
        let req = http
            .post(format!("{}/v1/topics/{topic}/records", a.url))
            .json(&json!({"records": records}))
            .send();
        sends.push(tokio::spawn(req));
    }
    for s in sends {
        ok(s.await??).await?;
    }
    let acked_after = t0.elapsed().as_secs_f64();
    let want = before + a.webhook_burst as u64;
    while seen.1.load(Ordering::SeqCst) < want && t0.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let burst_secs = t0.elapsed().as_secs_f64();
    let arrived = seen.1.load(Ordering::SeqCst) - before;
    let _ = http
        .delete(format!("{}/v1/subscriptions/{name}", a.url))
        .send()
        .await;
    Ok(json!({
        "rate_per_s": a.webhook_rate,
        "sent": sent,
        "latency_ms": percentiles(latencies),
        "burst_records": a.webhook_burst,
        "burst_arrived": arrived,
        "burst_records_per_s": r2(arrived as f64 / burst_secs),
        "burst_produce_acked_s": r2(acked_after),
        "burst_delivered_s": r2(burst_secs),
    }))
}
