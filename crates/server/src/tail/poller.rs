//! The watermark poller: how an agent learns of other agents' commits.
//!
//! Every interval it asks the metadata store, in one query, for the high
//! watermark of every partition someone on this agent is waiting on, and
//! advances the watches (waking long-polls). The cost is one query per
//! interval whatever the number of waiters. Log starts come with them.
//! Where other agents push their commits (`notify`), the poll is only the
//! fallback and runs every tenth interval. A partition the store no
//! longer has (its topic was deleted) is forgotten, which wakes its
//! waiters to find it gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Watermarks;
use crate::metadata::Log;
use crate::metrics::Metrics;

/// Partitions asked for in one query.
const KEYS_PER_QUERY: usize = 10_000;
/// How much less often the poll runs while the watermark feed is up.
const SLOWDOWN: u32 = 10;

/// Runs the poller until `cancel` fires.
pub async fn run(
    watermarks: Arc<Watermarks>,
    log: Arc<dyn Log>,
    metrics: Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = 0u32;
    crate::background::every(interval, 0.0, cancel, || {
        ticks = ticks.wrapping_add(1);
        // With the feed up, every tenth tick: the fallback for a lost
        // announcement, at a tenth of the statements.
        let due = metrics.watermark_feed_up.get() == 0 || ticks.is_multiple_of(SLOWDOWN);
        let (watermarks, log, metrics) = (&watermarks, log.as_ref(), &metrics);
        async move {
            if due {
                poll_watermarks(watermarks, log, metrics).await;
            }
        }
    })
    .await;
}

async fn poll_watermarks(watermarks: &Watermarks, log: &dyn Log, metrics: &Metrics) {
    let keys = watermarks.watched();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        metrics.watermark_polls.inc();
        match log.partition_states(chunk).await {
            Ok(states) => {
                let mut seen = HashSet::with_capacity(states.len());
                for s in &states {
                    seen.insert((s.topic_id, s.partition));
                    watermarks.observe(
                        (s.topic_id, s.partition),
                        s.log_start_offset,
                        s.next_offset,
                    );
                }
                for key in chunk.iter().filter(|k| !seen.contains(k)) {
                    watermarks.forget(*key);
                }
            }
            Err(e) => tracing::debug!(error = %e, "watermark poll failed"),
        }
    }
}
