//! `bench http`: the HTTP stack's ceiling, measured on `/healthz`.

use std::time::Instant;

use serde_json::json;

use super::stats::{percentiles, r2};
use super::{Common, client};

pub(crate) async fn run(c: &Common) -> anyhow::Result<String> {
    let client = client(c.concurrency)?;
    let url = format!("{}/healthz", c.url);
    let deadline = Instant::now() + c.duration.0;
    let started = Instant::now();
    let workers = (0..c.concurrency).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        })
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for w in futures_util::future::join_all(workers).await {
        let (lat, e) = w?;
        all.extend(lat);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = all.len();
    Ok(json!({
        "bench": "http",
        "url": c.url,
        "concurrency": c.concurrency,
        "duration_s": r2(secs),
        "requests": n,
        "requests_per_s": r2(n as f64 / secs),
        "errors": errors,
        "latency_ms": percentiles(all),
    })
    .to_string())
}
