//! Process-wide metrics, exported in the Prometheus (OpenMetrics) text
//! format through the `prometheus-client` crate.
//!
//! Every metric is a typed field of [`Metrics`], registered once when the
//! struct is built: the hot path increments an atomic, never looks a name
//! up. Names and labels are part of the interface (dashboards and `bench`
//! scrape them): a counter registered as `x` is exported as `x_total`.
//! Every layer receives the same `Arc<Metrics>`.

mod groups;
mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 0.5 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Count buckets (records, partitions) from 1 to 100,000.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 100000.0,
];

/// Observing a [`Duration`] in seconds.
pub trait ObserveDuration {
    fn observe_duration(&self, d: Duration);
}

impl ObserveDuration for Histogram {
    fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }
}

/// Hit and miss counts of one cache (`streamhouse_cache_{hits,misses}_total{cache=…}`).
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub hits: Counter,
    pub misses: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabel {
    tenant: String,
    limit: &'static str,
}

/// Counters by tenant (quotas, usage) and by reason (refused tokens).
#[derive(Debug, Default)]
pub struct TenantMetrics {
    produced_bytes: Family<TenantLabel, Counter>,
    requests: Family<TenantLabel, Counter>,
    open_streams: Family<TenantLabel, Gauge>,
    throttled: Family<ThrottleLabel, Counter>,
}

pub use groups::GroupMetrics;
pub use lifecycle::LifecycleMetrics;

/// Every metric the process exports, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    /// Compaction, retention, garbage collection and storage.
    pub lifecycle: LifecycleMetrics,
    pub groups: GroupMetrics,
    pub produce_requests: Counter,
    pub produce_records: Counter,
    pub produce_bytes: Counter,
    pub produce_rejected_overload: Counter,
    pub idempotent_replays: Counter,
    pub idempotency_conflicts: Counter,
    pub keys_expired: Counter,
    pub orphans_deleted: Counter,
    pub produce_ack_seconds: Histogram,
    pub buffered_bytes: Gauge,
    pub inflight_body_bytes: Gauge,
    pub body_rejected_overload: Counter,
    pub open_streams: Gauge,
    pub open_connections: Gauge,
    /// 1 while this agent listens to the other agents' announcements.
    pub watermark_feed_up: Gauge,
    pub connections_refused: Counter,
    pub flushes: Counter,
    pub flush_failures: Counter,
    pub partitions_per_flush: Histogram,
    pub records_per_flush: Histogram,
    pub upload_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub commit_lock_seconds: Histogram,
    pub object_puts: Counter,
    pub object_put_bytes: Counter,
    pub object_gets: Counter,
    pub object_get_bytes: Counter,
    pub object_deletes: Counter,
    pub object_lists: Counter,
    pub chunks_decompressed: Counter,
    pub chunks_read_ahead: Counter,
    pub chunks_refetched: Counter,
    pub index_rows_announced: Counter,
    pub index_rewrites_heard: Counter,
    pub peer_fetches: Counter,
    pub peer_fetch_bytes: Counter,
    pub peer_fetch_fallbacks: Counter,
    pub peer_serves: Counter,
    pub peer_serve_misses: Counter,
    pub object_errors: Counter,
    pub metadata_commits: Counter,
    pub metadata_statements: Counter,
    pub commit_statements: Counter,
    pub metadata_errors: Counter,
    pub metadata_retries: Counter,
    pub watermark_polls: Counter,
    pub read_requests: Counter,
    pub read_records: Counter,
    pub read_bytes: Counter,
    pub chunk_cache: CacheStats,
    pub topic_cache: CacheStats,
    pub watermark_cache: CacheStats,
    pub index_cache: CacheStats,
    pub auth_refused: Counter,
    tenants: TenantMetrics,
    registry: Registry,
}

fn seconds() -> Histogram {
    Histogram::new(SECONDS_BUCKETS.iter().copied())
}

fn counts() -> Histogram {
    Histogram::new(COUNT_BUCKETS.iter().copied())
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let produce_requests = counter(
            "streamhouse_produce_requests",
            "Produce requests accepted into the buffer.",
        );
        let produce_records = counter(
            "streamhouse_produce_records",
            "Records acknowledged to producers.",
        );
        let produce_bytes = counter(
            "streamhouse_produce_bytes",
            "Record bytes acknowledged to producers.",
        );
        let produce_rejected_overload = counter(
            "streamhouse_produce_rejected_overload",
            "Produce requests refused with 429 because the buffer was full.",
        );
        let idempotent_replays = counter(
            "streamhouse_idempotent_replays",
            "Produce requests answered from an earlier request with the same Idempotency-Key.",
        );
        let idempotency_conflicts = counter(
            "streamhouse_idempotency_conflicts",
            "Flush commits abandoned because another agent recorded one of their keys first.",
        );
        let keys_expired = counter(
            "streamhouse_keys_expired",
            "Expired idempotency keys deleted.",
        );
        let orphans_deleted = counter(
            "streamhouse_orphans_deleted",
            "Objects no commit names, deleted after the orphan grace.",
        );
        let flushes = counter(
            "streamhouse_flushes",
            "Flushes committed (one object each).",
        );
        let flush_failures = counter(
            "streamhouse_flush_failures",
            "Flushes whose upload or commit failed.",
        );
        let object_puts = counter(
            "streamhouse_object_puts",
            "Objects written to the object store.",
        );
        let object_put_bytes = counter(
            "streamhouse_object_put_bytes",
            "Bytes written to the object store.",
        );
        let object_gets = counter(
            "streamhouse_object_gets",
            "Ranged reads from the object store.",
        );
        let object_get_bytes = counter(
            "streamhouse_object_get_bytes",
            "Bytes read from the object store.",
        );
        let object_deletes = counter(
            "streamhouse_object_deletes",
            "Objects deleted from the object store.",
        );
        let object_lists = counter("streamhouse_object_lists", "Object store list calls.");
        let chunks_decompressed = counter(
            "streamhouse_chunks_decompressed",
            "Compressed chunks decompressed for reads (misses of the decompressed cache).",
        );
        let chunks_read_ahead = counter(
            "streamhouse_chunks_read_ahead",
            "Chunks asked for ahead of a reader's next page (fetched into the cache unless there already).",
        );
        let chunks_refetched = counter(
            "streamhouse_chunks_refetched",
            "Fetched chunks that failed their check (damaged on the way or where kept), dropped and fetched once more.",
        );
        let index_rows_announced = counter(
            "streamhouse_index_rows_announced",
            "Index rows cached from other agents' announcements, so their readers need no lookup.",
        );
        let index_rewrites_heard = counter(
            "streamhouse_index_rewrites_heard",
            "Announced compactions of a partition, on hearing which this agent forgot the partition's cached index rows.",
        );
        let peer_fetches = counter(
            "streamhouse_peer_fetches",
            "Ranges read from the agent that wrote the object instead of from the object store.",
        );
        let peer_fetch_bytes = counter(
            "streamhouse_peer_fetch_bytes",
            "Bytes read from the agents that wrote them instead of from the object store.",
        );
        let peer_fetch_fallbacks = counter(
            "streamhouse_peer_fetch_fallbacks",
            "Reads the object's writer did not answer (evicted, refused, timed out), read from the object store instead.",
        );
        let peer_serves = counter(
            "streamhouse_peer_serves",
            "Ranges of objects this agent wrote, served to another agent from memory.",
        );
        let peer_serve_misses = counter(
            "streamhouse_peer_serve_misses",
            "Peer requests for objects this agent no longer keeps (answered 404; the peer reads the store).",
        );
        let object_errors = counter("streamhouse_object_errors", "Failed object store calls.");
        let metadata_commits = counter(
            "streamhouse_metadata_commits",
            "Flush commits applied by the metadata store.",
        );
        let metadata_statements = counter(
            "streamhouse_metadata_statements",
            "SQL statements sent to the metadata store.",
        );
        let metadata_errors = counter(
            "streamhouse_metadata_errors",
            "Failed metadata store calls.",
        );
        let metadata_retries = counter(
            "streamhouse_metadata_retries",
            "Metadata transactions re-run after a serialization conflict or deadlock.",
        );
        let commit_statements = counter(
            "streamhouse_metadata_commit_statements",
            "Round trips sent by flush commits (retries included); divide by commits for the cost of one.",
        );
        let watermark_polls = counter(
            "streamhouse_watermark_polls",
            "Batched high-watermark polls of the metadata store (one per interval with watchers).",
        );
        let read_requests = counter("streamhouse_read_requests", "Record read requests served.");
        let read_records = counter(
            "streamhouse_read_records",
            "Records returned to readers (for record-batch reads, every record of the batches sent).",
        );
        let read_bytes = counter(
            "streamhouse_read_bytes",
            "Record bytes returned to readers: keys and values, or the stored batches for record-batch reads.",
        );
        let connections_refused = counter(
            "streamhouse_connections_refused",
            "Connections closed at once because max-connections were open.",
        );
        let auth_refused = counter(
            "streamhouse_auth_refused",
            "Requests refused with 401: no token, or one expired, revoked or invalid.",
        );
        let body_rejected_overload = counter(
            "streamhouse_body_rejected_overload",
            "Requests refused with 429 because request bodies in flight held the whole budget.",
        );

        let mut histogram = |name: &str, help: &str, h: Histogram| {
            registry.register(name, help, h.clone());
            h
        };
        let produce_ack_seconds = histogram(
            "streamhouse_produce_ack_seconds",
            "Time from buffering a request to acknowledging it.",
            seconds(),
        );
        let partitions_per_flush = histogram(
            "streamhouse_flush_partitions",
            "Topic-partitions (chunks) per flush.",
            counts(),
        );
        let records_per_flush =
            histogram("streamhouse_flush_records", "Records per flush.", counts());
        let upload_seconds = histogram(
            "streamhouse_upload_seconds",
            "Object upload latency.",
            seconds(),
        );
        let commit_seconds = histogram(
            "streamhouse_commit_seconds",
            "Metadata flush-commit latency.",
            seconds(),
        );
        let commit_lock_seconds = histogram(
            "streamhouse_commit_lock_seconds",
            "Time a flush commit with idempotency keys spends locking its partition rows (waiting for other commits of them). A commit without keys on PostgreSQL or CockroachDB locks inside its one statement: streamhouse_commit_seconds counts it.",
            seconds(),
        );

        let buffered_bytes = Gauge::default();
        registry.register(
            "streamhouse_buffered_bytes",
            "Bytes buffered or in flight, not yet acknowledged.",
            buffered_bytes.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "streamhouse_open_connections",
            "Open client connections.",
            open_connections.clone(),
        );
        let watermark_feed_up = Gauge::default();
        registry.register(
            "streamhouse_watermark_feed_up",
            "1 while this agent listens to the other agents' commit announcements (PostgreSQL NOTIFY); 0 while it polls at the full rate (the feed is down, or the metadata store has none).",
            watermark_feed_up.clone(),
        );
        let inflight_body_bytes = Gauge::default();
        registry.register(
            "streamhouse_inflight_body_bytes",
            "Bytes of request bodies being read or used by their requests.",
            inflight_body_bytes.clone(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "streamhouse_open_streams",
            "Open SSE streams and WebSocket connections.",
            open_streams.clone(),
        );

        let hits = Family::<CacheLabel, Counter>::default();
        let misses = Family::<CacheLabel, Counter>::default();
        registry.register(
            "streamhouse_cache_hits",
            "Cache lookups answered from memory.",
            hits.clone(),
        );
        registry.register(
            "streamhouse_cache_misses",
            "Cache lookups that went to the store.",
            misses.clone(),
        );
        let cache = |name: &'static str| {
            let label = CacheLabel { cache: name };
            CacheStats {
                hits: hits.get_or_create(&label).clone(),
                misses: misses.get_or_create(&label).clone(),
            }
        };
        let (chunk_cache, index_cache, topic_cache, watermark_cache) = (
            cache("chunks"),
            cache("index"),
            cache("topics"),
            cache("watermarks"),
        );
        registry.register_collector(Box::new(ResidentMemory));
        let lifecycle = LifecycleMetrics::register(&mut registry);
        let groups = GroupMetrics::register(&mut registry);
        let tenants = TenantMetrics::default();
        registry.register(
            "streamhouse_tenant_produce_bytes",
            "Request bytes produced, by tenant.",
            tenants.produced_bytes.clone(),
        );
        registry.register(
            "streamhouse_tenant_requests",
            "Requests, by tenant.",
            tenants.requests.clone(),
        );
        registry.register(
            "streamhouse_tenant_open_streams",
            "Open SSE streams and WebSocket connections, by tenant.",
            tenants.open_streams.clone(),
        );
        registry.register(
            "streamhouse_tenant_throttled",
            "Requests refused with 429 by a tenant quota, by tenant and limit.",
            tenants.throttled.clone(),
        );

        Metrics {
            lifecycle,
            groups,
            auth_refused,
            tenants,
            produce_requests,
            produce_records,
            produce_bytes,
            produce_rejected_overload,
            idempotent_replays,
            idempotency_conflicts,
            keys_expired,
            orphans_deleted,
            produce_ack_seconds,
            buffered_bytes,
            inflight_body_bytes,
            body_rejected_overload,
            open_streams,
            open_connections,
            watermark_feed_up,
            connections_refused,
            flushes,
            flush_failures,
            partitions_per_flush,
            records_per_flush,
            upload_seconds,
            commit_seconds,
            commit_lock_seconds,
            object_puts,
            object_put_bytes,
            object_gets,
            object_get_bytes,
            object_deletes,
            object_lists,
            chunks_decompressed,
            chunks_read_ahead,
            chunks_refetched,
            index_rows_announced,
            index_rewrites_heard,
            peer_fetches,
            peer_fetch_bytes,
            peer_fetch_fallbacks,
            peer_serves,
            peer_serve_misses,
            object_errors,
            metadata_commits,
            metadata_statements,
            commit_statements,
            metadata_errors,
            metadata_retries,
            watermark_polls,
            read_requests,
            read_records,
            read_bytes,
            chunk_cache,
            topic_cache,
            watermark_cache,
            index_cache,
            registry,
        }
    }
}

/// `process_resident_memory_bytes`, read from `/proc/self/statm` (Linux)
/// at each scrape.
#[derive(Debug)]
struct ResidentMemory;

impl Collector for ResidentMemory {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some((now, peak)) = resident_bytes() else {
            return Ok(());
        };
        for (name, help, bytes) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                now,
            ),
            (
                "streamhouse_resident_memory_peak_bytes",
                "Highest resident memory size since the agent started, in bytes.",
                peak,
            ),
        ] {
            let gauge = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Resident memory now and at its highest (`VmRSS` and `VmHWM`), in bytes.
fn resident_bytes() -> Option<(i64, i64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |field: &str| -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<i64>()
            .ok()
    };
    Some((kib("VmRSS:")? * 1024, kib("VmHWM:")? * 1024))
}

/// Counts an open stream in `open_streams` until dropped.
#[derive(Debug)]
pub struct OpenStream(Arc<Metrics>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.dec();
    }
}

impl Metrics {
    /// Marks a stream (SSE or WebSocket) open until the guard drops.
    pub fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open_streams.inc();
        OpenStream(self.clone())
    }

    /// The produced-bytes and request counters and the open-streams gauge of `tenant`.
    pub fn tenant(&self, tenant: &str) -> (Counter, Counter, Gauge) {
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        (
            self.tenants.produced_bytes.get_or_create(&label).clone(),
            self.tenants.requests.get_or_create(&label).clone(),
            self.tenants.open_streams.get_or_create(&label).clone(),
        )
    }

    /// Counts a request of `tenant` refused by its `limit` quota.
    pub fn throttled(&self, tenant: &str, limit: &'static str) {
        self.tenants
            .throttled
            .get_or_create(&ThrottleLabel {
                tenant: tenant.to_string(),
                limit,
            })
            .inc();
    }

    /// Renders every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not be rendered");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_labels_and_cumulative_buckets() {
        let m = Metrics::default();
        m.commit_seconds.observe(0.0007);
        m.commit_seconds.observe(3.0);
        m.object_puts.inc();
        m.chunk_cache.hits.inc_by(2);
        let text = m.render();
        assert!(
            text.contains("streamhouse_commit_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_commit_seconds_bucket{le=\"5.0\"} 2"),
            "{text}"
        );
        assert!(text.contains("streamhouse_commit_seconds_count 2"));
        assert!(text.contains("streamhouse_object_puts_total 1"));
        assert!(text.contains("streamhouse_cache_hits_total{cache=\"chunks\"} 2"));
        assert!(text.contains("streamhouse_cache_misses_total{cache=\"watermarks\"} 0"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.ends_with("# EOF\n"));
    }
}
