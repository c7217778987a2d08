//! The watermark poller: how an agent learns of other agents' commits.
//!
//! Every interval it asks the metadata store, in one query, for the high
//! watermark of every partition someone on this agent is waiting on, and
//! advances the watches (waking long-polls). The cost is one query per
//! interval whatever the number of waiters. It also polls the topic epoch
//! (one row): when another agent deleted a topic, cached topics are checked
//! and dead ones are forgotten, so their records are never served and
//! their waiters are woken to find them gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Watermarks;
use crate::metadata::{CachedMetadata, MetadataStore};
use crate::metrics::Metrics;

/// Partitions asked for in one query.
const KEYS_PER_QUERY: usize = 10_000;

/// Runs the poller until `cancel` fires.
pub async fn run(
    watermarks: Arc<Watermarks>,
    metadata: Arc<CachedMetadata>,
    metrics: Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut epoch = metadata.topic_epoch().await.ok();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        poll_watermarks(&watermarks, &metadata, &metrics).await;
        match metadata.topic_epoch().await {
            Ok(now) if Some(now) != epoch => {
                if forget_dead_topics(&watermarks, &metadata).await {
                    epoch = Some(now);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "topic epoch poll failed"),
        }
    }
}

async fn poll_watermarks(watermarks: &Watermarks, metadata: &CachedMetadata, metrics: &Metrics) {
    let keys = watermarks.watched();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        metrics.watermark_polls.inc();
        match metadata.partition_states(chunk).await {
            Ok(states) => {
                let mut seen = HashSet::with_capacity(states.len());
                for s in &states {
                    seen.insert((s.topic_id, s.partition));
                    watermarks.advance((s.topic_id, s.partition), s.next_offset);
                }
                for key in chunk.iter().filter(|k| !seen.contains(k)) {
                    watermarks.forget(*key);
                }
            }
            Err(e) => tracing::debug!(error = %e, "watermark poll failed"),
        }
    }
}

/// Returns false when the check could not be made (retry next tick).
async fn forget_dead_topics(watermarks: &Watermarks, metadata: &CachedMetadata) -> bool {
    let ids: Vec<_> = metadata.cached_topic_ids();
    match metadata.live_topics(&ids).await {
        Ok(live) => {
            let live: HashSet<_> = live.into_iter().collect();
            for id in ids.into_iter().filter(|id| !live.contains(id)) {
                metadata.forget_topic_id(id).await;
                watermarks.forget_topic(id);
            }
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "live topic check failed");
            false
        }
    }
}
