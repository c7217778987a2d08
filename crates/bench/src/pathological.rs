//! `bench pathological`: very many tiny produce requests spread evenly over
//! very many partitions across several agents, at a fixed rate.
//!
//! This is the workload a per-partition design fails at: every flush of
//! every agent touches many partitions with one record each. The bench
//! sends single-record requests open-loop at `--rate` (latency counts from
//! when a request was due, so a slow server is not hidden), then reads the
//! agents' `/metrics` to report object PUTs, commits, commit latency, round
//! trips per commit and cache hit rates. A probe measures how long a record
//! produced through the first agent takes to reach a long-poll on the second.
//! A warm-up at the same rate comes first (`--warmup`): requests due in it
//! are not counted, and the metrics are read at its end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::raw::{Pool, Target};
use super::scrape::{Scrape, delta, histogram_quantile, scrape};
use super::stats::{percentiles, r2};
use super::{client, ensure_topic};
use crate::HumanDuration;

/// `bench pathological` options.
#[derive(Debug, Clone, Args)]
pub struct PathologicalArgs {
    /// Agent base URLs, comma-separated; requests go to them in turn.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    pub urls: Vec<String>,
    /// Partitions to spread requests over (topics of up to 1,000 partitions).
    #[arg(long, default_value_t = 1000)]
    pub partitions: u32,
    /// Produce requests per second, in total.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 10)]
    pub record_size: usize,
    /// How long to measure.
    #[arg(long, default_value = "30s")]
    pub duration: HumanDuration,
    /// How long to send at the same rate before measuring: connections
    /// open and caches fill then, and nothing of it is counted (`0s` counts
    /// from the first request).
    #[arg(long, default_value = "5s")]
    pub warmup: HumanDuration,
    /// Requests in flight at most; beyond it requests are counted as dropped.
    #[arg(long, default_value_t = 16_384)]
    pub max_inflight: usize,
    /// Topic name prefix.
    #[arg(long, default_value = "patho")]
    pub topic_prefix: String,
    /// Which agent a request goes to: `spread` (to each in turn, so every
    /// agent's flushes touch every partition) or `partition` (a partition
    /// always to the same agent, as a partition-aware client would send it,
    /// so concurrent flushes touch disjoint partitions).
    #[arg(long, value_enum, default_value_t = Route::Spread)]
    pub route: Route,
}

/// How requests are spread over the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Spread,
    Partition,
}

const PER_TOPIC: u32 = 1000;

fn topic_name(prefix: &str, partitions: u32, i: u32) -> String {
    format!("{prefix}-{partitions}-{i}")
}

async fn setup(client: &reqwest::Client, a: &PathologicalArgs) -> anyhow::Result<()> {
    let topics = a.partitions.div_ceil(PER_TOPIC);
    let url = &a.urls[0];
    let creates = (0..topics).map(|i| {
        let n = PER_TOPIC.min(a.partitions - i * PER_TOPIC);
        let name = topic_name(&a.topic_prefix, a.partitions, i);
        async move { ensure_topic(client, url, &name, n).await }
    });
    for r in futures_util::future::join_all(creates).await {
        r?;
    }
    ensure_topic(client, url, &format!("{}-probe", a.topic_prefix), 1).await
}

/// Produces through the first agent and long-polls through the second,
/// once every 200 ms, returning delivery delays in microseconds.
async fn probe(client: reqwest::Client, a: PathologicalArgs, until: Instant) -> Vec<u64> {
    let (from, to) = (a.urls[0].clone(), a.urls[a.urls.len().min(2) - 1].clone());
    let topic = format!("{}-probe", a.topic_prefix);
    let mut delays = Vec::new();
    while Instant::now() < until {
        let hw = async {
            let v: Value = client
                .get(format!("{to}/v1/topics/{topic}/partitions/0/offsets"))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(v["high_watermark"].as_i64().unwrap_or(0))
        };
        let Ok(hw) = hw.await else { break };
        let url = format!("{to}/v1/topics/{topic}/partitions/0/records?offset={hw}&wait_ms=10000");
        let c = client.clone();
        let waiter =
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().is_success()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        let produced = client
            .post(format!("{from}/v1/topics/{topic}/records"))
            .json(&json!({"records": [{"value": "probe"}]}))
            .send()
            .await;
        if produced.is_ok() && matches!(waiter.await, Ok(Ok(true))) {
            delays.push(sent.elapsed().as_micros() as u64);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    delays
}

pub(crate) async fn run(a: &PathologicalArgs) -> anyhow::Result<String> {
    anyhow::ensure!(!a.urls.is_empty(), "give at least one --urls");
    anyhow::ensure!(
        a.rate > 0 && a.partitions > 0,
        "--rate and --partitions must be positive"
    );
    let client = client(a.max_inflight)?;
    setup(&client, a).await?;

    let mut pools = Vec::with_capacity(a.urls.len());
    for u in &a.urls {
        pools.push(Arc::new(Pool::new(Target::new(u).await?)));
    }
    let value = "v".repeat(a.record_size.saturating_sub(2).max(1));
    let rate = f64::from(a.rate);
    let warm = (a.warmup.0.as_secs_f64() * rate) as u64;
    let total = warm + u64::from(a.rate) * a.duration.0.as_secs().max(1);
    let inflight = Arc::new(Semaphore::new(a.max_inflight));
    let started = Instant::now();
    let measured_from = started + a.warmup.0;
    // The metrics are read when the warm-up ends, while the load goes on.
    let before = tokio::spawn({
        let (client, urls) = (client.clone(), a.urls.clone());
        async move {
            tokio::time::sleep_until(measured_from.into()).await;
            futures_util::future::try_join_all(urls.iter().map(|u| scrape(&client, u))).await
        }
    });
    let probe = tokio::spawn({
        let (client, a) = (client.clone(), a.clone());
        async move {
            tokio::time::sleep_until(measured_from.into()).await;
            probe(client, a.clone(), measured_from + a.duration.0).await
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<u64, ()>>();
    let (mut sent, mut dropped) = (0u64, 0u64);
    while sent < total {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due.min(total) {
            let k = sent;
            sent += 1;
            let counted = k >= warm;
            let Ok(permit) = inflight.clone().try_acquire_owned() else {
                dropped += u64::from(counted);
                continue;
            };
            let idx = (k % u64::from(a.partitions)) as u32;
            let path = format!(
                "/v1/topics/{}/records",
                topic_name(&a.topic_prefix, a.partitions, idx / PER_TOPIC)
            );
            let body = format!(
                "{{\"records\":[{{\"value\":\"{value}\",\"partition\":{}}}]}}",
                idx % PER_TOPIC
            );
            let due_at = started + Duration::from_secs_f64(k as f64 / rate);
            // Spread: each pass over the partitions moves every partition
            // on to the next agent, whatever the two counts.
            let agent = match a.route {
                Route::Spread => u64::from(idx) + k / u64::from(a.partitions),
                Route::Partition => u64::from(idx),
            } % a.urls.len() as u64;
            let pool = pools[agent as usize].clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let request = pool
                    .target
                    .request("POST", &path, "", Some(body.as_bytes()));
                let mut conn = pool.take();
                let r = conn.send(&request).await;
                pool.give(conn);
                let ok = matches!(r, Ok(s) if (200..300).contains(&s));
                if counted {
                    let _ = tx.send(if ok {
                        Ok(due_at.elapsed().as_micros() as u64)
                    } else {
                        Err(())
                    });
                }
                drop(permit);
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(tx);
    let (mut lat, mut errors) = (Vec::new(), 0u64);
    while let Some(r) = rx.recv().await {
        match r {
            Ok(us) => lat.push(us),
            Err(()) => errors += 1,
        }
    }
    let secs = measured_from.elapsed().as_secs_f64();
    let delays = probe.await.unwrap_or_default();
    let before: Vec<Scrape> = before.await??;
    // Every request is answered: close the connections they opened (as
    // many as were in flight at once) so the last scrape can open its own.
    drop(pools);
    let after: Vec<Scrape> =
        futures_util::future::try_join_all(a.urls.iter().map(|u| scrape(&client, u))).await?;

    let d = |k: &str| delta(&before, &after, k);
    let commits = d("streamhouse_metadata_commits_total");
    let caches = ["chunks", "index", "topics", "watermarks"];
    let mut per_cache = serde_json::Map::new();
    let (mut hits, mut lookups) = (0.0, 0.0);
    for c in caches {
        let h = d(&format!("streamhouse_cache_hits_total{{cache=\"{c}\"}}"));
        let m = d(&format!("streamhouse_cache_misses_total{{cache=\"{c}\"}}"));
        hits += h;
        lookups += h + m;
        per_cache.insert(c.into(), json!({"hits": h, "misses": m}));
    }
    let ms = |q| {
        histogram_quantile(&before, &after, "streamhouse_commit_seconds", q).map(|s| r2(s * 1000.0))
    };
    let acked = lat.len();
    Ok(json!({
        "bench": "pathological",
        "agents": a.urls.len(),
        "partitions": a.partitions,
        "route": a.route,
        "target_rate": a.rate,
        "record_size": a.record_size,
        "warmup_s": r2(a.warmup.0.as_secs_f64()),
        "duration_s": r2(secs),
        "acked": acked,
        "errors": errors,
        "dropped_over_max_inflight": dropped,
        "achieved_rate": r2(acked as f64 / secs),
        "produce_ack_ms": percentiles(lat),
        "objects_put_per_s": r2(d("streamhouse_object_puts_total") / secs),
        "metadata_commits_per_s": r2(commits / secs),
        "commit_ms": {"p50": ms(0.5), "p99": ms(0.99)},
        "commit_lock_wait_ms": {
            "p50": histogram_quantile(&before, &after, "streamhouse_commit_lock_seconds", 0.5).map(|s| r2(s * 1000.0)),
            "p99": histogram_quantile(&before, &after, "streamhouse_commit_lock_seconds", 0.99).map(|s| r2(s * 1000.0)),
        },
        "commit_time_in_lock_wait_pct": r2(100.0 * d("streamhouse_commit_lock_seconds_sum") / d("streamhouse_commit_seconds_sum").max(1e-9)),
        "round_trips_per_commit": r2(d("streamhouse_metadata_commit_statements_total") / commits.max(1.0)),
        "commit_retries": d("streamhouse_metadata_retries_total"),
        "partitions_per_flush": r2(d("streamhouse_flush_partitions_sum") / d("streamhouse_flush_partitions_count").max(1.0)),
        "cache_hit_rate": r2(hits / lookups.max(1.0) * 100.0),
        "caches": per_cache,
        "cross_agent_delivery_ms": percentiles(delays),
    })
    .to_string())
}
