//! `bench consume`: catch-up read of a whole topic from offset 0.
//!
//! Fills the topic first (batched produce) when it holds fewer than
//! `--records` records, then reads every partition from the start with
//! `--concurrency` readers and reports records/s and MB/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::produce::body;
use super::stats::{percentiles, r2};
use super::{client, ensure_topic};

/// `bench consume` options.
#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    /// Agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Topic to read (filled if it holds fewer than `--records`).
    #[arg(long, default_value = "bench-consume")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Records the topic must hold before reading.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Bytes of each record's value when filling.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Readers at once (each reads whole partitions).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Records per read request.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    /// What the reads ask for: records as JSON, or the stored record
    /// batches as they are.
    #[arg(long, value_enum, default_value_t = ReadFormat::Json)]
    pub format: ReadFormat,
}

/// The answer a catch-up read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadFormat {
    Json,
    Batches,
}

#[derive(Deserialize)]
struct Partition {
    partition: i32,
    high_watermark: i64,
}

#[derive(Deserialize)]
struct Detail {
    partition_details: Vec<Partition>,
}

async fn describe(
    client: &reqwest::Client,
    url: &str,
    topic: &str,
) -> anyhow::Result<Vec<Partition>> {
    let d: Detail = client
        .get(format!("{url}/v1/topics/{topic}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(d.partition_details)
}

async fn fill(client: &reqwest::Client, a: &ConsumeArgs, missing: usize) -> anyhow::Result<()> {
    let per_request = 1000;
    let requests = missing.div_ceil(per_request);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/v1/topics/{}/records", a.url, a.topic);
    let workers = (0..16).map(|w| {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        let payload = bytes::Bytes::from(body(per_request, a.record_size, w));
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                loop {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(payload.clone())
                        .send()
                        .await?;
                    if r.status().is_success() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            anyhow::Ok(())
        })
    });
    for w in futures_util::future::join_all(workers).await {
        w??;
    }
    Ok(())
}

pub(crate) async fn run(a: &ConsumeArgs) -> anyhow::Result<String> {
    let client = client(a.concurrency.max(16))?;
    ensure_topic(&client, &a.url, &a.topic, a.partitions).await?;
    let have: i64 = describe(&client, &a.url, &a.topic)
        .await?
        .iter()
        .map(|p| p.high_watermark)
        .sum();
    if (have as usize) < a.records {
        fill(&client, a, a.records - have as usize).await?;
    }
    let parts = Arc::new(describe(&client, &a.url, &a.topic).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..a.concurrency).map(|_| {
        let (client, parts, next) = (client.clone(), parts.clone(), next.clone());
        let (url, topic, limit, format) = (a.url.clone(), a.topic.clone(), a.limit, a.format);
        tokio::spawn(async move {
            let (mut records, mut bytes, mut lat, mut buf) = (0u64, 0usize, Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = parts.get(i) else { break };
                let mut offset = 0;
                while offset < p.high_watermark {
                    let t = Instant::now();
                    let page_url = format!("{url}/v1/topics/{topic}/partitions/{}/records?offset={offset}&limit={limit}&max_bytes=67108864", p.partition);
                    let page = match format {
                        ReadFormat::Json => super::page::fetch(&client, &page_url, &mut buf).await?,
                        ReadFormat::Batches => {
                            super::batches::fetch(&client, &page_url, offset, &mut buf).await?
                        }
                    };
                    lat.push(t.elapsed().as_micros() as u64);
                    bytes += page.body_bytes as usize;
                    records += page.records;
                    offset = page.next_offset;
                }
            }
            anyhow::Ok((records, bytes, lat))
        })
    });
    let (mut records, mut bytes, mut lat) = (0, 0, Vec::new());
    for w in futures_util::future::join_all(workers).await {
        let (r, b, l) = w??;
        records += r;
        bytes += b;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "consume",
        "url": a.url,
        "topic": a.topic,
        "partitions": parts.len(),
        "concurrency": a.concurrency,
        "format": format!("{:?}", a.format).to_lowercase(),
        "records": records,
        "duration_s": r2(secs),
        "records_per_s": r2(records as f64 / secs),
        "response_mb_per_s": r2(bytes as f64 / secs / 1e6),
        "request_latency_ms": percentiles(lat),
    })
    .to_string())
}
