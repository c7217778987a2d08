//! `bench compaction`: what compaction does for one partition written as
//! many small flushes.
//!
//! Writes `--flushes` requests one after another to a one-partition topic
//! (with the agent's `--linger` short, each is its own flush and object),
//! then measures a catch-up read of the partition (MiB/s, object GETs and
//! bytes per GET, from the agent's `/metrics`), waits while compaction
//! rewrites it (its MiB/s, and the ack latency of a steady probe producer
//! meanwhile against the same probe before), and reads it again. Run the
//! agent with a chunk cache smaller than the partition (so reads go to the
//! object store) and a `--compaction-min-age` longer than the fill and the
//! first read take. Prints objects, index rows, GETs and an S3 cost
//! estimate per GiB written, before and after.

use std::time::{Duration, Instant};

use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use super::produce::body;
use super::scrape::{Scrape, delta, scrape};
use super::stats::{percentiles, r2};
use super::{HumanDuration, client, ensure_topic};

/// S3 Standard list prices (us-east-1) used for the cost estimate.
const USD_PER_1K_PUTS: f64 = 0.005;
const USD_PER_1K_GETS: f64 = 0.0004;
const USD_PER_GB_MONTH: f64 = 0.023;

/// `bench compaction` options.
#[derive(Debug, Clone, Args)]
pub struct CompactionArgs {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Topic to write (one partition; filled only when empty).
    #[arg(long, default_value = "bench-compaction")]
    pub topic: String,
    /// Produce requests (flushes) to write.
    #[arg(long, default_value_t = 10_000)]
    pub flushes: usize,
    /// Bytes of record values per request.
    #[arg(long, default_value_t = 16_384)]
    pub flush_bytes: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Probe produce requests per second (single records, another topic).
    #[arg(long, default_value_t = 50)]
    pub probe_rate: u32,
    /// Longest wait for compaction to finish.
    #[arg(long, default_value = "15m")]
    pub settle: HumanDuration,
    /// Readers of a second catch-up read, each over its own range of
    /// offsets (the first read is one reader, front to back).
    #[arg(long, default_value_t = 1)]
    pub readers: usize,
    /// Every agent's base URL, comma-separated, whose `/metrics` are added
    /// up (any agent may run compaction); default `--url`.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct Partition {
    high_watermark: i64,
    log_start_offset: i64,
    bytes: i64,
    objects: i64,
    index_rows: i64,
}

#[derive(Deserialize)]
struct Detail {
    partition_details: Vec<Partition>,
}

async fn partition(c: &reqwest::Client, a: &CompactionArgs) -> anyhow::Result<Partition> {
    let d: Detail = c
        .get(format!("{}/v1/topics/{}", a.url, a.topic))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    d.partition_details
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("topic {} has no partition", a.topic))
}

/// Reads the partition from its log start to its end, `--readers` ranges
/// at once: (MiB/s, response bytes, seconds).
async fn catch_up(
    c: &reqwest::Client,
    a: &CompactionArgs,
    p: Partition,
    readers: usize,
) -> anyhow::Result<(f64, u64, f64)> {
    let started = Instant::now();
    let n = readers.max(1) as i64;
    let span = ((p.high_watermark - p.log_start_offset + n - 1) / n).max(1);
    let readers = (0..n).map(|i| {
        let from = p.log_start_offset + i * span;
        let to = (from + span).min(p.high_watermark);
        let (c, url) = (
            c.clone(),
            format!("{}/v1/topics/{}/partitions/0/records", a.url, a.topic),
        );
        async move {
            let (mut offset, mut bytes, mut buf) = (from, 0u64, Vec::new());
            while offset < to {
                let limit = (to - offset).min(10_000);
                let page_url = format!("{url}?offset={offset}&limit={limit}&max_bytes=67108864");
                offset = super::page::fetch(&c, &page_url, &mut buf)
                    .await?
                    .next_offset;
                bytes += buf.len() as u64;
            }
            anyhow::Ok(bytes)
        }
    });
    let mut bytes = 0;
    for r in futures_util::future::join_all(readers).await {
        bytes += r?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((bytes as f64 / secs / (1 << 20) as f64, bytes, secs))
}

/// Every agent's metrics.
async fn scrape_all(c: &reqwest::Client, a: &CompactionArgs) -> anyhow::Result<Vec<Scrape>> {
    let mut out = Vec::new();
    for url in agents(a) {
        out.push(scrape(c, &url).await?);
    }
    Ok(out)
}

fn agents(a: &CompactionArgs) -> Vec<String> {
    if a.agents.is_empty() {
        vec![a.url.clone()]
    } else {
        a.agents.clone()
    }
}

/// Single-record produce at `rate` per second until `stop` is set; ack
/// latencies in microseconds.
async fn probe(
    c: reqwest::Client,
    url: String,
    rate: u32,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<u64> {
    let mut lat = Vec::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tick.tick().await;
        let t = Instant::now();
        let ok = c
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"records":[{"value":"probe"}]}"#)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            lat.push(t.elapsed().as_micros() as u64);
        }
    }
    lat
}

/// Starts a probe; the returned sender stops it.
fn start_probe(
    c: &reqwest::Client,
    a: &CompactionArgs,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Vec<u64>>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let url = format!("{}/v1/topics/{}-probe/records", a.url, a.topic);
    (tx, tokio::spawn(probe(c.clone(), url, a.probe_rate, rx)))
}

/// How much `key` grew over every agent from one scrape to the next.
fn grew(before: &[Scrape], after: &[Scrape], key: &str) -> f64 {
    delta(before, after, key)
}

/// Dollars per GiB written and kept a day: its PUTs, its GETs (one
/// catch-up read, plus compaction's), and a day of storage.
fn cost(puts: f64, gets: f64, stored_gib: f64) -> f64 {
    puts / 1000.0 * USD_PER_1K_PUTS
        + gets / 1000.0 * USD_PER_1K_GETS
        + stored_gib * 1.073_741_824 * USD_PER_GB_MONTH / 30.0
}

pub(crate) async fn run(a: &CompactionArgs) -> anyhow::Result<String> {
    let c = client(4)?;
    ensure_topic(&c, &a.url, &a.topic, 1).await?;
    ensure_topic(&c, &a.url, &format!("{}-probe", a.topic), 1).await?;
    let s0 = scrape_all(&c, a).await?;
    let fill_started = Instant::now();
    if partition(&c, a).await?.high_watermark == 0 {
        let per = (a.flush_bytes / a.record_size.max(1)).max(1);
        let url = format!("{}/v1/topics/{}/records", a.url, a.topic);
        for i in 0..a.flushes {
            let payload = body(per, a.record_size, i);
            c.post(&url)
                .header("content-type", "application/json")
                .body(payload)
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let fill_secs = fill_started.elapsed().as_secs_f64();
    let s1 = scrape_all(&c, a).await?;
    let before = partition(&c, a).await?;
    let gib = before.bytes as f64 / (1u64 << 30) as f64;

    // The probe alone, then the catch-up read before compaction.
    let (stop, idle) = start_probe(&c, a);
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.send(true)?;
    let idle = percentiles(idle.await?);
    let (mibps_before, read_bytes, read_before_s) = catch_up(&c, a, before, 1).await?;
    let (mibps_before_n, _, _) = catch_up(&c, a, before, a.readers).await?;
    let s2 = scrape_all(&c, a).await?;
    let gets_before = grew(&s1, &s2, "streamhouse_object_gets_total");
    let got_before = grew(&s1, &s2, "streamhouse_object_get_bytes_total");

    // Compaction, with the probe running.
    let (stop, busy) = start_probe(&c, a);
    let waited = Instant::now();
    let mut first_progress: Option<Instant> = None;
    let mut last_change = Instant::now();
    let mut last_rows = before.index_rows;
    let compacted = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = scrape_all(&c, a).await?;
        if first_progress.is_none()
            && grew(&s2, &now, "streamhouse_compaction_bytes_in_total") > 0.0
        {
            first_progress = Some(Instant::now());
        }
        let p = partition(&c, a).await?;
        if p.index_rows != last_rows {
            (last_rows, last_change) = (p.index_rows, Instant::now());
        }
        let settled = p.objects * 20 <= before.objects.max(1)
            && last_change.elapsed() > Duration::from_secs(3);
        if settled || waited.elapsed() > a.settle.0 {
            break (p, Instant::now(), now);
        }
    };
    let (after, done_at, s3) = compacted;
    stop.send(true)?;
    let busy = percentiles(busy.await?);
    let compaction_in = grew(&s2, &s3, "streamhouse_compaction_bytes_in_total");
    let compaction_out = grew(&s2, &s3, "streamhouse_compaction_bytes_out_total");
    let compaction_secs = first_progress
        .map(|t| done_at.duration_since(t).as_secs_f64())
        .unwrap_or(0.0)
        .max(0.001);
    let compaction_puts = grew(&s2, &s3, "streamhouse_compaction_objects_total");
    let compaction_gets = grew(&s2, &s3, "streamhouse_object_gets_total");

    let (mibps_after, _, read_after_s) = catch_up(&c, a, after, 1).await?;
    let (mibps_after_n, _, _) = catch_up(&c, a, after, a.readers).await?;
    let s4 = scrape_all(&c, a).await?;
    let gets_after = grew(&s3, &s4, "streamhouse_object_gets_total");
    let got_after = grew(&s3, &s4, "streamhouse_object_get_bytes_total");
    let fill_puts = grew(&s0, &s1, "streamhouse_object_puts_total");

    // Per GiB written: PUTs, GETs (one catch-up read; after, compaction's
    // too) and GiB stored, and what a day of it costs on S3.
    let per = |x: f64| x / gib.max(1e-9);
    let (puts_before, gets_before_gib) = (per(fill_puts), per(gets_before));
    let (puts_after, gets_after_gib) = (
        per(fill_puts + compaction_puts),
        per(compaction_gets + gets_after),
    );
    let stored_after = per(after.bytes as f64 / (1u64 << 30) as f64);
    let usd = |puts, gets, stored| (cost(puts, gets, stored) * 1e5).round() / 1e5;
    let line: Value = json!({
        "bench": "compaction",
        "url": a.url,
        "topic": a.topic,
        "written_mib": r2(before.bytes as f64 / (1 << 20) as f64),
        "fill_s": r2(fill_secs),
        "readers": a.readers,
        "before": {
            "objects": before.objects,
            "index_rows": before.index_rows,
            "catch_up_mib_per_s": r2(mibps_before),
            "catch_up_mib_per_s_ranges": r2(mibps_before_n),
            "catch_up_s": r2(read_before_s),
            "object_gets": gets_before,
            "mib_per_get": r2(got_before / gets_before.max(1.0) / (1 << 20) as f64),
        },
        "compaction": {
            "mib_in": r2(compaction_in / (1 << 20) as f64),
            "mib_out": r2(compaction_out / (1 << 20) as f64),
            "mib_per_s": r2(compaction_in / (1 << 20) as f64 / compaction_secs),
            "seconds": r2(compaction_secs),
            "puts": compaction_puts,
            "gets": compaction_gets,
            "probe_ack_ms_idle": idle,
            "probe_ack_ms_during": busy,
        },
        "after": {
            "objects": after.objects,
            "index_rows": after.index_rows,
            "catch_up_mib_per_s": r2(mibps_after),
            "catch_up_mib_per_s_ranges": r2(mibps_after_n),
            "catch_up_s": r2(read_after_s),
            "object_gets": gets_after,
            "mib_per_get": r2(got_after / gets_after.max(1.0) / (1 << 20) as f64),
        },
        "per_gib_written": {
            "before": {
                "puts": r2(puts_before),
                "gets": r2(gets_before_gib),
                "stored_gib": 1.0,
                "usd_per_day": usd(puts_before, gets_before_gib, 1.0),
            },
            "after": {
                "puts": r2(puts_after),
                "gets": r2(gets_after_gib),
                "stored_gib": r2(stored_after),
                "usd_per_day": usd(puts_after, gets_after_gib, stored_after),
            },
        },
        "read_response_mib": r2(read_bytes as f64 / (1 << 20) as f64),
    });
    Ok(line.to_string())
}
