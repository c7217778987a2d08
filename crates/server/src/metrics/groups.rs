//! Metrics of consumer groups and webhook delivery.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// See the module header.
#[derive(Debug)]
pub struct GroupMetrics {
    swaps: Family<Outcome, Counter>,
    /// Generations this agent's writes started (assignment changes).
    pub rebalances: Counter,
    deliveries: Family<Outcome, Counter>,
    records: Family<Outcome, Counter>,
    /// Time a receiver took to answer a delivery.
    pub delivery_seconds: Histogram,
    /// Subscriptions this agent runs a delivery worker for.
    pub webhook_workers: Gauge,
}

impl GroupMetrics {
    /// Registers every metric in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = GroupMetrics {
            swaps: Family::default(),
            rebalances: Counter::default(),
            deliveries: Family::default(),
            records: Family::default(),
            delivery_seconds: super::seconds(),
            webhook_workers: Gauge::default(),
        };
        registry.register(
            "streamhouse_group_swaps",
            "Writes of group documents, by result (won, or lost to another writer and retried).",
            m.swaps.clone(),
        );
        registry.register(
            "streamhouse_group_rebalances",
            "Group generations this agent's writes started.",
            m.rebalances.clone(),
        );
        registry.register(
            "streamhouse_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, failed, dead_lettered).",
            m.deliveries.clone(),
        );
        registry.register(
            "streamhouse_webhook_records",
            "Records delivered to webhooks or sent to dead-letter topics, by outcome.",
            m.records.clone(),
        );
        registry.register(
            "streamhouse_webhook_delivery_seconds",
            "Time a webhook receiver took to answer.",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "streamhouse_webhook_workers",
            "Subscriptions this agent delivers.",
            m.webhook_workers.clone(),
        );
        m
    }

    pub fn swap(&self, won: bool) {
        let outcome = if won { "won" } else { "lost" };
        self.swaps.get_or_create(&Outcome { outcome }).inc();
    }

    /// One delivery attempt of `records` records.
    pub fn delivery(&self, outcome: &'static str, records: u64) {
        self.deliveries.get_or_create(&Outcome { outcome }).inc();
        if outcome != "failed" {
            self.records
                .get_or_create(&Outcome { outcome })
                .inc_by(records);
        }
    }
}
