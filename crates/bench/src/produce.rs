//! `bench produce`: acknowledged (durable) produce throughput and latency.

use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::raw::{Conn, Target};
use super::stats::{percentiles, r2};
use super::{Common, client, ensure_topic};

/// `bench produce` options.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic to produce to (created if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Records in each request.
    #[arg(long, default_value_t = 1)]
    pub records_per_request: usize,
    /// Send a unique Idempotency-Key with every request.
    #[arg(long)]
    pub idempotency_keys: bool,
}

/// A JSON produce body of `n` records whose values are JSON strings of
/// exactly `size` bytes (quotes included).
pub(crate) fn body(n: usize, size: usize, salt: usize) -> Vec<u8> {
    let fill = size.saturating_sub(2).max(1);
    let mut out = Vec::with_capacity(n * (size + 16) + 16);
    out.extend_from_slice(b"{\"records\":[");
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":\"");
        for j in 0..fill {
            out.push(b'a' + ((i + j + salt) % 26) as u8);
        }
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

pub(crate) async fn run(a: &ProduceArgs) -> anyhow::Result<String> {
    let c = &a.common;
    let client = client(c.concurrency)?;
    ensure_topic(&client, &c.url, &a.topic, a.partitions).await?;
    let target = Target::new(&c.url).await?;
    let path = format!("/v1/topics/{}/records", a.topic);
    let deadline = Instant::now() + c.duration.0;
    let started = Instant::now();
    let workers = (0..c.concurrency).map(|w| {
        let (target, path) = (target.clone(), path.clone());
        let payload = body(a.records_per_request, a.record_size, w);
        let keyed = a.idempotency_keys;
        let run = uuid::Uuid::now_v7().simple().to_string();
        tokio::spawn(async move {
            let mut conn = Conn::new(target.clone());
            let fixed = target.request("POST", &path, "", Some(&payload));
            let mut lat = Vec::new();
            let (mut errors, mut rejected) = (0u64, 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                n += 1;
                let status = if keyed {
                    let key = format!("Idempotency-Key: {run}-{w}-{n}\r\n");
                    conn.send(&target.request("POST", &path, &key, Some(&payload)))
                        .await
                } else {
                    conn.send(&fixed).await
                };
                match status {
                    Ok(s) if (200..300).contains(&s) => lat.push(t.elapsed().as_micros() as u64),
                    Ok(429) => {
                        rejected += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, rejected)
        })
    });
    let (mut all, mut errors, mut rejected) = (Vec::new(), 0, 0);
    for w in futures_util::future::join_all(workers).await {
        let (lat, e, r) = w?;
        all.extend(lat);
        errors += e;
        rejected += r;
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = all.len();
    let records = requests * a.records_per_request;
    Ok(json!({
        "bench": "produce",
        "url": c.url,
        "topic": a.topic,
        "concurrency": c.concurrency,
        "records_per_request": a.records_per_request,
        "idempotency_keys": a.idempotency_keys,
        "record_size": a.record_size,
        "duration_s": r2(secs),
        "requests": requests,
        "records": records,
        "requests_per_s": r2(requests as f64 / secs),
        "records_per_s": r2(records as f64 / secs),
        "mb_per_s": r2((records * a.record_size) as f64 / secs / 1e6),
        "errors": errors,
        "rejected_429": rejected,
        "latency_ms": percentiles(all),
    })
    .to_string())
}
