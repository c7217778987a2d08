//! `bench http`: the HTTP stack's ceiling, measured on `/healthz`.

use std::time::Instant;

use serde_json::json;

use super::Common;
use super::raw::{Conn, Target};
use super::stats::{percentiles, r2};

pub(crate) async fn run(c: &Common) -> anyhow::Result<String> {
    let target = Target::new(&c.url).await?;
    let request = target.request("GET", "/healthz", "", None);
    let deadline = Instant::now() + c.duration.0;
    let started = Instant::now();
    let workers = (0..c.concurrency).map(|_| {
        let (mut conn, request) = (Conn::new(target.clone()), request.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match conn.send(&request).await {
                    Ok(s) if (200..300).contains(&s) => lat.push(t.elapsed().as_micros() as u64),
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
