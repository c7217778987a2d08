//! The collector: deletes objects whose grace is over from the object
//! store, then forgets the rows of those the store confirmed. A failed
//! delete keeps its row, so the next pass tries again; running on several
//! agents at once only repeats deletes, which the store takes as done.

use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::store::SharedStore;

use super::jobs::JobError;

/// Objects deleted per round.
const BATCH: u32 = 1000;

/// Deletes every object whose grace is over; returns how many went.
pub(super) async fn collect(
    metadata: &Metadata,
    store: &SharedStore,
    metrics: &Metrics,
) -> Result<u64, JobError> {
    let mut total = 0;
    loop {
        let expired = metadata.lifecycle.expired_objects(BATCH).await?;
        if expired.is_empty() {
            return Ok(total);
        }
        let keys: Vec<String> = expired.iter().map(|o| o.key.clone()).collect();
        let outcome = store.delete_many(&keys).await;
        for (key, e) in &outcome.failed {
            tracing::warn!(%key, error = %e, "deleting a released object failed; will retry");
        }
        let gone: std::collections::HashSet<&String> = outcome.deleted.iter().collect();
        let confirmed: Vec<_> = expired.iter().filter(|o| gone.contains(&o.key)).collect();
        let ids: Vec<_> = confirmed.iter().map(|o| o.id).collect();
        metadata.lifecycle.forget_objects(&ids).await?;
        let bytes: i64 = confirmed.iter().map(|o| o.size).sum();
        metrics
            .lifecycle
            .gc_objects_deleted
            .inc_by(ids.len() as u64);
        metrics
            .lifecycle
            .gc_bytes_deleted
            .inc_by(bytes.max(0) as u64);
        total += ids.len() as u64;
        if ids.len() < expired.len() {
            // Some deletes failed: leave them for the next pass.
            return Ok(total);
        }
    }
}
