//! Metrics of the data lifecycle: compaction, retention, garbage
//! collection, the jobs agents lease, and what each topic stores.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metadata::lifecycle::{JobKind, StorageReport};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    tenant: String,
    topic: String,
}

/// See the module header.
#[derive(Debug, Default)]
pub struct LifecycleMetrics {
    pub compaction_bytes_in: Counter,
    pub compaction_bytes_out: Counter,
    pub compaction_records_dropped: Counter,
    pub compaction_objects: Counter,
    pub sweep_rows_replaced: Counter,
    pub sweep_rows_written: Counter,
    pub retention_rows_released: Counter,
    pub gc_objects_deleted: Counter,
    pub gc_bytes_deleted: Counter,
    compaction_lag_seconds: Gauge<f64, AtomicU64>,
    gc_backlog_objects: Gauge,
    gc_backlog_bytes: Gauge,
    jobs_claimed: Family<KindLabel, Counter>,
    jobs_failed: Family<KindLabel, Counter>,
    topic_bytes: Family<TopicLabel, Gauge>,
    topic_objects: Family<TopicLabel, Gauge>,
}

impl LifecycleMetrics {
    /// Registers every metric in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = LifecycleMetrics::default();
        let counters = [
            (
                "streamhouse_compaction_bytes_in",
                "Chunk bytes compaction read and replaced.",
                &m.compaction_bytes_in,
            ),
            (
                "streamhouse_compaction_bytes_out",
                "Chunk bytes compaction wrote.",
                &m.compaction_bytes_out,
            ),
            (
                "streamhouse_compaction_records_dropped",
                "Records key compaction removed (superseded or expired tombstones).",
                &m.compaction_records_dropped,
            ),
            (
                "streamhouse_compaction_objects",
                "Objects compaction wrote (its PUTs).",
                &m.compaction_objects,
            ),
            (
                "streamhouse_sweep_rows_replaced",
                "Index rows of small chunks the sweep merged away.",
                &m.sweep_rows_replaced,
            ),
            (
                "streamhouse_sweep_rows_written",
                "Index rows the sweep wrote in their place.",
                &m.sweep_rows_written,
            ),
            (
                "streamhouse_retention_rows_released",
                "Index rows released by retention and trim.",
                &m.retention_rows_released,
            ),
            (
                "streamhouse_gc_objects_deleted",
                "Objects the collector deleted after their grace.",
                &m.gc_objects_deleted,
            ),
            (
                "streamhouse_gc_bytes_deleted",
                "Bytes of objects the collector deleted.",
                &m.gc_bytes_deleted,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "streamhouse_compaction_lag_seconds",
            "Age of the oldest flush object not yet compacted.",
            m.compaction_lag_seconds.clone(),
        );
        registry.register(
            "streamhouse_gc_backlog_objects",
            "Objects waiting for the collector (released, grace not over or delete pending).",
            m.gc_backlog_objects.clone(),
        );
        registry.register(
            "streamhouse_gc_backlog_bytes",
            "Bytes of objects waiting for the collector.",
            m.gc_backlog_bytes.clone(),
        );
        registry.register(
            "streamhouse_jobs_claimed",
            "Lifecycle jobs this agent leased, by kind.",
            m.jobs_claimed.clone(),
        );
        registry.register(
            "streamhouse_jobs_failed",
            "Lifecycle jobs that failed here (retried later), by kind.",
            m.jobs_failed.clone(),
        );
        registry.register(
            "streamhouse_topic_bytes",
            "Live chunk bytes per topic.",
            m.topic_bytes.clone(),
        );
        registry.register(
            "streamhouse_topic_objects",
            "Objects holding each topic's live chunks.",
            m.topic_objects.clone(),
        );
        m
    }

    pub fn job_claimed(&self, kind: JobKind) {
        self.jobs_claimed
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    pub fn job_failed(&self, kind: JobKind) {
        self.jobs_failed
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Replaces the storage gauges with a fresh report (the per-topic
    /// ones only when it has them).
    pub fn report(&self, r: &StorageReport) {
        self.compaction_lag_seconds
            .set(r.compaction_lag_ms.max(0) as f64 / 1000.0);
        self.gc_backlog_objects.set(r.gc_objects);
        self.gc_backlog_bytes.set(r.gc_bytes);
        let Some(topics) = &r.topics else {
            return;
        };
        self.topic_bytes.clear();
        self.topic_objects.clear();
        for t in topics {
            let label = TopicLabel {
                tenant: t.tenant.clone(),
                topic: t.topic.clone(),
            };
            self.topic_bytes.get_or_create(&label).set(t.bytes);
            self.topic_objects.get_or_create(&label).set(t.objects);
        }
    }
}
