//! Process-wide counters and histograms, rendered in Prometheus text format.
//!
//! A fixed set of named metrics as plain struct fields: cheap atomics on the
//! hot path, no registry lookups, and `/metrics` renders them in one pass.
//! Every layer receives the same `Arc<Metrics>`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency buckets in seconds: 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Count buckets (records, partitions) from 1 to 100,000.
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 100000.0,
];

/// A cumulative histogram with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    /// Sum of observations in millionths, to stay in integer atomics.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all observations.
    pub fn sum(&self) -> f64 {
        self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, c) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum());
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Hit and miss counts of one cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: Counter,
    pub misses: Counter,
}

/// Every metric the process exports.
#[derive(Debug)]
pub struct Metrics {
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
    pub open_streams: Gauge,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            produce_requests: Counter::default(),
            produce_records: Counter::default(),
            produce_bytes: Counter::default(),
            produce_rejected_overload: Counter::default(),
            idempotent_replays: Counter::default(),
            idempotency_conflicts: Counter::default(),
            keys_expired: Counter::default(),
            orphans_deleted: Counter::default(),
            produce_ack_seconds: Histogram::new(SECONDS_BUCKETS),
            buffered_bytes: Gauge::default(),
            open_streams: Gauge::default(),
            flushes: Counter::default(),
            flush_failures: Counter::default(),
            partitions_per_flush: Histogram::new(COUNT_BUCKETS),
            records_per_flush: Histogram::new(COUNT_BUCKETS),
            upload_seconds: Histogram::new(SECONDS_BUCKETS),
            commit_seconds: Histogram::new(SECONDS_BUCKETS),
            commit_lock_seconds: Histogram::new(SECONDS_BUCKETS),
            object_puts: Counter::default(),
            object_put_bytes: Counter::default(),
            object_gets: Counter::default(),
            object_get_bytes: Counter::default(),
            object_deletes: Counter::default(),
            object_lists: Counter::default(),
            object_errors: Counter::default(),
            metadata_commits: Counter::default(),
            metadata_statements: Counter::default(),
            commit_statements: Counter::default(),
            metadata_errors: Counter::default(),
            metadata_retries: Counter::default(),
            watermark_polls: Counter::default(),
            read_requests: Counter::default(),
            read_records: Counter::default(),
            read_bytes: Counter::default(),
            chunk_cache: CacheStats::default(),
            topic_cache: CacheStats::default(),
            watermark_cache: CacheStats::default(),
            index_cache: CacheStats::default(),
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, c: &Counter) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        c.get()
    );
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    h.render(out, name, "");
}

/// Counts an open stream in `open_streams` until dropped.
#[derive(Debug)]
pub struct OpenStream(Arc<Metrics>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.add(-1);
    }
}

/// Resident set size of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl Metrics {
    /// Marks a stream (SSE or WebSocket) open until the guard drops.
    pub fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open_streams.add(1);
        OpenStream(self.clone())
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(8 * 1024);
        let out = &mut o;
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP streamhouse_open_streams Open SSE streams and WebSocket connections.\n# TYPE streamhouse_open_streams gauge\nstreamhouse_open_streams {}",
            self.open_streams.get()
        );
        counter(
            out,
            "streamhouse_produce_requests_total",
            "Produce requests accepted into the buffer.",
            &self.produce_requests,
        );
        counter(
            out,
            "streamhouse_produce_records_total",
            "Records acknowledged to producers.",
            &self.produce_records,
        );
        counter(
            out,
            "streamhouse_produce_bytes_total",
            "Record bytes acknowledged to producers.",
            &self.produce_bytes,
        );
        counter(
            out,
            "streamhouse_produce_rejected_overload_total",
            "Produce requests refused with 429 because the buffer was full.",
            &self.produce_rejected_overload,
        );
        counter(
            out,
            "streamhouse_idempotent_replays_total",
            "Produce requests answered from an earlier request with the same Idempotency-Key.",
            &self.idempotent_replays,
        );
        counter(
            out,
            "streamhouse_idempotency_conflicts_total",
            "Flush commits abandoned because another agent recorded one of their keys first.",
            &self.idempotency_conflicts,
        );
        counter(
            out,
            "streamhouse_keys_expired_total",
            "Expired idempotency keys deleted.",
            &self.keys_expired,
        );
        counter(
            out,
            "streamhouse_orphans_deleted_total",
            "Objects no commit names, deleted after the orphan grace.",
            &self.orphans_deleted,
        );
        histogram(
            out,
            "streamhouse_produce_ack_seconds",
            "Time from buffering a request to acknowledging it.",
            &self.produce_ack_seconds,
        );
        let _ = writeln!(
            out,
            "# HELP streamhouse_buffered_bytes Bytes buffered or in flight, not yet acknowledged.\n# TYPE streamhouse_buffered_bytes gauge\nstreamhouse_buffered_bytes {}",
            self.buffered_bytes.get()
        );
        counter(
            out,
            "streamhouse_flushes_total",
            "Flushes committed (one object each).",
            &self.flushes,
        );
        counter(
            out,
            "streamhouse_flush_failures_total",
            "Flushes whose upload or commit failed.",
            &self.flush_failures,
        );
        histogram(
            out,
            "streamhouse_flush_partitions",
            "Topic-partitions (chunks) per flush.",
            &self.partitions_per_flush,
        );
        histogram(
            out,
            "streamhouse_flush_records",
            "Records per flush.",
            &self.records_per_flush,
        );
        histogram(
            out,
            "streamhouse_upload_seconds",
            "Object upload latency.",
            &self.upload_seconds,
        );
        histogram(
            out,
            "streamhouse_commit_seconds",
            "Metadata flush-commit latency.",
            &self.commit_seconds,
        );
        histogram(
            out,
            "streamhouse_commit_lock_seconds",
            "Time a flush commit spends locking its partition rows (waiting for other commits of them).",
            &self.commit_lock_seconds,
        );
        counter(
            out,
            "streamhouse_object_puts_total",
            "Objects written to the object store.",
            &self.object_puts,
        );
        counter(
            out,
            "streamhouse_object_put_bytes_total",
            "Bytes written to the object store.",
            &self.object_put_bytes,
        );
        counter(
            out,
            "streamhouse_object_gets_total",
            "Ranged reads from the object store.",
            &self.object_gets,
        );
        counter(
            out,
            "streamhouse_object_get_bytes_total",
            "Bytes read from the object store.",
            &self.object_get_bytes,
        );
        counter(
            out,
            "streamhouse_object_deletes_total",
            "Objects deleted from the object store.",
            &self.object_deletes,
        );
        counter(
            out,
            "streamhouse_object_lists_total",
            "Object store list calls.",
            &self.object_lists,
        );
        counter(
            out,
            "streamhouse_object_errors_total",
            "Failed object store calls.",
            &self.object_errors,
        );
        counter(
            out,
            "streamhouse_metadata_commits_total",
            "Flush commits applied by the metadata store.",
            &self.metadata_commits,
        );
        counter(
            out,
            "streamhouse_metadata_statements_total",
            "SQL statements sent to the metadata store.",
            &self.metadata_statements,
        );
        counter(
            out,
            "streamhouse_metadata_errors_total",
            "Failed metadata store calls.",
            &self.metadata_errors,
        );
        counter(
            out,
            "streamhouse_metadata_retries_total",
            "Metadata transactions re-run after a serialization conflict or deadlock.",
            &self.metadata_retries,
        );
        counter(
            out,
            "streamhouse_metadata_commit_statements_total",
            "Round trips sent by flush commits (retries included); divide by commits for the cost of one.",
            &self.commit_statements,
        );
        counter(
            out,
            "streamhouse_watermark_polls_total",
            "Batched high-watermark polls of the metadata store (one per interval with watchers).",
            &self.watermark_polls,
        );
        counter(
            out,
            "streamhouse_read_requests_total",
            "Record read requests served.",
            &self.read_requests,
        );
        counter(
            out,
            "streamhouse_read_records_total",
            "Records returned to readers.",
            &self.read_records,
        );
        counter(
            out,
            "streamhouse_read_bytes_total",
            "Record bytes returned to readers.",
            &self.read_bytes,
        );
        let _ = writeln!(
            out,
            "# HELP streamhouse_cache_hits_total Cache lookups answered from memory.\n# TYPE streamhouse_cache_hits_total counter"
        );
        for (name, c) in self.caches() {
            let _ = writeln!(
                out,
                "streamhouse_cache_hits_total{{cache=\"{name}\"}} {}",
                c.hits.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP streamhouse_cache_misses_total Cache lookups that went to the store.\n# TYPE streamhouse_cache_misses_total counter"
        );
        for (name, c) in self.caches() {
            let _ = writeln!(
                out,
                "streamhouse_cache_misses_total{{cache=\"{name}\"}} {}",
                c.misses.get()
            );
        }
        o
    }

    fn caches(&self) -> [(&'static str, &CacheStats); 4] {
        [
            ("chunks", &self.chunk_cache),
            ("index", &self.index_cache),
            ("topics", &self.topic_cache),
            ("watermarks", &self.watermark_cache),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram_cumulatively() {
        let m = Metrics::default();
        m.commit_seconds.observe(0.0007);
        m.commit_seconds.observe(3.0);
        m.object_puts.inc();
        let text = m.render();
        assert!(text.contains("streamhouse_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("streamhouse_commit_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("streamhouse_commit_seconds_count 2"));
        assert!(text.contains("streamhouse_object_puts_total 1"));
        assert!(text.contains("streamhouse_cache_hits_total{cache=\"chunks\"} 0"));
    }
}
