//! `bench e2e`: produce through one agent, follow through another, and
//! measure how long records take to arrive; then read everything back.
//!
//! Producers send at a fixed rate (`--target-mibps` of `--record-size`
//! records, batched into requests of about `--batch-bytes`), open-loop.
//! Every record's value carries its send time, so each subscriber (SSE or
//! WebSocket, `--subscribers` of them) measures produce-to-delivery
//! latency. After the run the topic is read from the start over REST to
//! measure catch-up throughput. Output follows the shape of `s2 bench`
//! (write MiB/s and records/s, ack and end-to-end latency percentiles,
//! catch-up read MiB/s) so the two can be compared on the same storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use eventsource_stream::Eventsource;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::scrape::{Scrape, delta, scrape};
use super::stats::r2;
use super::{client, ensure_topic};
use crate::HumanDuration;

/// How subscribers follow the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Sse,
    Ws,
}

/// `bench e2e` options.
#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    /// Agent the producers write to.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub producer_url: String,
    /// Agent the subscribers read from (may be the same).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub consumer_url: String,
    /// Topic (created if missing).
    #[arg(long, default_value = "bench-e2e")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Write rate.
    #[arg(long, default_value_t = 1.0)]
    pub target_mibps: f64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// About this many value bytes per produce request.
    #[arg(long, default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// Subscribers following the topic.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// How subscribers follow it.
    #[arg(long, value_enum, default_value = "ws")]
    pub protocol: Protocol,
    /// How long to produce.
    #[arg(long, default_value = "10s")]
    pub duration: HumanDuration,
    /// Skip the catch-up read at the end.
    #[arg(long)]
    pub no_catchup: bool,
    /// Parallel readers for the catch-up read (ranges of the partitions).
    #[arg(long, default_value_t = 4)]
    pub catchup_readers: usize,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A JSON string value of `size` bytes (quotes included) starting with the send time.
fn stamped_value(size: usize, micros: u64) -> String {
    let mut v = format!("\"{micros}:");
    let fill = size.saturating_sub(v.len() + 1);
    v.extend(std::iter::repeat_n('x', fill));
    v.push('"');
    v
}

/// The send time stamped at the start of a value (raw JSON string).
fn sent_at(raw: &str) -> Option<u64> {
    raw.strip_prefix('"')?.split(':').next()?.parse().ok()
}

/// The parts of a records message or event the bench looks at, borrowed.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a str>,
    #[serde(default, borrow)]
    records: Vec<IncomingRecord<'a>>,
}

#[derive(serde::Deserialize)]
struct IncomingRecord<'a> {
    #[serde(borrow)]
    value: Option<&'a serde_json::value::RawValue>,
}

/// Latency percentiles in ms: p50, p90, p99, max.
fn pct(mut micros: Vec<u64>) -> Value {
    if micros.is_empty() {
        return json!(null);
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let i = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
        r2(micros[i] as f64 / 1000.0)
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": r2(micros[micros.len() - 1] as f64 / 1000.0)})
}

struct Delivered {
    count: AtomicU64,
    latencies: std::sync::Mutex<Vec<u64>>,
}

fn record_batch(d: &Delivered, records: &[IncomingRecord<'_>]) {
    let now = now_micros();
    let lat: Vec<u64> = records
        .iter()
        .filter_map(|r| sent_at(r.value?.get()))
        .map(|t| now.saturating_sub(t))
        .collect();
    d.count.fetch_add(lat.len() as u64, Ordering::Relaxed);
    if let Ok(mut l) = d.latencies.lock() {
        l.extend(lat);
    }
}

async fn subscriber_ws(
    url: String,
    topic: String,
    d: Arc<Delivered>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let ws_url = url.replacen("http", "ws", 1) + "/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    ws.send(Message::text(json!({"type": "subscribe", "topic": topic, "partitions": "all", "from": "latest", "limit": 10000}).to_string()))
        .await?;
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m? else { continue };
        let v: Incoming<'_> = serde_json::from_str(&t)?;
        match v.kind {
            Some("subscribed") => {
                let _ = ready.send(()).await;
            }
            Some("records") => record_batch(&d, &v.records),
            Some("error") => anyhow::bail!("subscription failed: {t}"),
            _ => {}
        }
    }
    Ok(())
}

async fn subscriber_sse(
    client: reqwest::Client,
    url: String,
    topic: String,
    d: Arc<Delivered>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let r = client
        .get(format!(
            "{url}/v1/topics/{topic}/stream?from=latest&limit=10000"
        ))
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    // Headers arrive once the stream is set up at the latest offsets.
    let _ = ready.send(()).await;
    let mut events = r.bytes_stream().eventsource();
    while let Some(e) = events.next().await {
        let e = e?;
        if e.event == "records" {
            let v: Incoming<'_> = serde_json::from_str(&e.data)?;
            record_batch(&d, &v.records);
        }
    }
    Ok(())
}

pub(crate) async fn run(a: &E2eArgs) -> anyhow::Result<String> {
    anyhow::ensure!(
        a.target_mibps > 0.0 && a.record_size >= 24,
        "need a positive rate and records of at least 24 bytes"
    );
    let http = client(1024)?;
    ensure_topic(&http, &a.producer_url, &a.topic, a.partitions).await?;
    let delivered = Arc::new(Delivered {
        count: AtomicU64::new(0),
        latencies: std::sync::Mutex::new(Vec::new()),
    });
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(a.subscribers.max(1));
    let mut subs = Vec::new();
    for _ in 0..a.subscribers {
        let (d, tx, url, topic) = (
            delivered.clone(),
            ready_tx.clone(),
            a.consumer_url.clone(),
            a.topic.clone(),
        );
        subs.push(match a.protocol {
            Protocol::Ws => tokio::spawn(subscriber_ws(url, topic, d, tx)),
            Protocol::Sse => tokio::spawn(subscriber_sse(client(4)?, url, topic, d, tx)),
        });
    }
    drop(ready_tx);
    for _ in 0..a.subscribers {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("subscribers did not start"))?;
    }

    // Where the consumer's agent got the chunks it delivered: the object
    // store, or the agent that wrote them (peer reads).
    let consumer_before = scrape(&http, &a.consumer_url).await.ok();
    let per_request = (a.batch_bytes / a.record_size).max(1);
    let bytes_per_s = a.target_mibps * 1024.0 * 1024.0;
    let requests_per_s = bytes_per_s / (per_request * a.record_size) as f64;
    let total_requests = (requests_per_s * a.duration.0.as_secs_f64()).ceil() as u64;
    let url = format!("{}/v1/topics/{}/records", a.producer_url, a.topic);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<u64>>();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total_requests {
        let due = (started.elapsed().as_secs_f64() * requests_per_s) as u64;
        while sent < due.min(total_requests) {
            let partition = (sent % u64::from(a.partitions)) as u32;
            sent += 1;
            let now = now_micros();
            let mut body = String::with_capacity(per_request * (a.record_size + 32) + 32);
            body.push_str("{\"records\":[");
            for i in 0..per_request {
                if i > 0 {
                    body.push(',');
                }
                body.push_str("{\"partition\":");
                body.push_str(&partition.to_string());
                body.push_str(",\"value\":");
                body.push_str(&stamped_value(a.record_size, now));
                body.push('}');
            }
            body.push_str("]}");
            let (http, url, tx) = (http.clone(), url.clone(), tx.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = matches!(&r, Ok(r) if r.status().is_success());
                let _ = tx.send(ok.then(|| t.elapsed().as_micros() as u64));
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(tx);
    let (mut acks, mut failed) = (Vec::new(), 0u64);
    while let Some(r) = rx.recv().await {
        match r {
            Some(us) => acks.push(us),
            None => failed += 1,
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    let written = acks.len() as u64 * per_request as u64;
    // Let subscribers catch up with what was acknowledged.
    let expect = written * a.subscribers as u64;
    let wait_until = Instant::now() + Duration::from_secs(30);
    while delivered.count.load(Ordering::Relaxed) < expect && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery_secs = started.elapsed().as_secs_f64();
    let consumer_after = scrape(&http, &a.consumer_url).await.ok();
    for s in &subs {
        s.abort();
    }
    let e2e = std::mem::take(
        &mut *delivered
            .latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    let delivered_count = delivered.count.load(Ordering::Relaxed);

    let catchup = if a.no_catchup {
        json!(null)
    } else {
        catchup(&http, a).await?
    };
    let mib = (written as f64 * a.record_size as f64) / (1024.0 * 1024.0);
    Ok(json!({
        "bench": "e2e",
        "protocol": format!("{:?}", a.protocol).to_lowercase(),
        "producer_url": a.producer_url,
        "consumer_url": a.consumer_url,
        "subscribers": a.subscribers,
        "partitions": a.partitions,
        "record_size": a.record_size,
        "records_per_request": per_request,
        "target_mibps": a.target_mibps,
        "duration_s": r2(write_secs),
        "write_mibps": r2(mib / write_secs),
        "write_records_per_s": r2(written as f64 / write_secs),
        "produce_errors": failed,
        "ack_latency_ms": pct(acks),
        "delivered_records": delivered_count,
        "expected_deliveries": expect,
        "delivered_records_per_s": r2(delivered_count as f64 / delivery_secs),
        "e2e_latency_ms": pct(e2e),
        "consumer_agent": chunk_sources(consumer_before, consumer_after),
        "catchup": catchup,
    })
    .to_string())
}

/// What the consumer's agent fetched while the subscribers were delivered
/// to: GETs from the object store, and ranges read from the agents that
/// wrote them (or that fell back to the store). `null` when its metrics
/// could not be read (say, they need a token).
fn chunk_sources(before: Option<Scrape>, after: Option<Scrape>) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return json!(null);
    };
    if !after.contains_key("streamhouse_object_gets_total") {
        return json!(null);
    }
    let (b, a) = (std::slice::from_ref(&before), std::slice::from_ref(&after));
    json!({
        "object_gets": delta(b, a, "streamhouse_object_gets_total"),
        "peer_fetches": delta(b, a, "streamhouse_peer_fetches_total"),
        "peer_fetch_fallbacks": delta(b, a, "streamhouse_peer_fetch_fallbacks_total"),
    })
}

/// Reads one range of a partition over REST; returns records and value bytes.
async fn read_range(
    http: reqwest::Client,
    base: String,
    topic: String,
    p: u32,
    from: i64,
    to: i64,
) -> anyhow::Result<(u64, u64)> {
    let (mut n, mut bytes, mut offset, mut buf) = (0u64, 0u64, from, Vec::new());
    while offset < to {
        let limit = (to - offset).min(10_000);
        let url = format!(
            "{base}/v1/topics/{topic}/partitions/{p}/records?offset={offset}&limit={limit}&max_bytes=67108864"
        );
        let page = super::page::fetch(&http, &url, &mut buf).await?;
        if page.records == 0 {
            break;
        }
        n += page.records;
        bytes += page.value_bytes;
        offset = page.next_offset;
    }
    Ok((n, bytes))
}

/// Reads every partition from its start over REST, each split into ranges
/// read in parallel.
async fn catchup(http: &reqwest::Client, a: &E2eArgs) -> anyhow::Result<Value> {
    let mut ranges = Vec::new();
    for p in 0..a.partitions {
        let v: Value = http
            .get(format!(
                "{}/v1/topics/{}/partitions/{p}/offsets",
                a.consumer_url, a.topic
            ))
            .send()
            .await?
            .json()
            .await?;
        let (start, hw) = (
            v["log_start_offset"].as_i64().unwrap_or(0),
            v["high_watermark"].as_i64().unwrap_or(0),
        );
        let per = a.partitions as i64;
        let segments = (a.catchup_readers as i64 / per).max(1);
        let step = ((hw - start) / segments).max(1);
        let mut from = start;
        while from < hw {
            let to = if hw - from < 2 * step {
                hw
            } else {
                from + step
            };
            ranges.push((p, from, to));
            from = to;
        }
    }
    let started = Instant::now();
    let reads = ranges.into_iter().map(|(p, from, to)| {
        read_range(
            http.clone(),
            a.consumer_url.clone(),
            a.topic.clone(),
            p,
            from,
            to,
        )
    });
    let (mut records, mut value_bytes) = (0u64, 0u64);
    for r in futures_util::future::join_all(reads).await {
        let (n, b) = r?;
        records += n;
        value_bytes += b;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "records": records,
        "readers": a.catchup_readers,
        "seconds": r2(secs),
        "read_mibps": r2(value_bytes as f64 / (1024.0 * 1024.0) / secs),
        "records_per_s": r2(records as f64 / secs),
    }))
}
