//! Retention and trim: moving a partition's log start forward.
//!
//! Retention (a job per partition of a topic with `retention_ms` or
//! `retention_bytes` and a `delete` policy) moves the log start just past
//! the newest index row that is entirely too old, or past the oldest rows
//! beyond the byte limit, whichever is later: whole rows go, so the log
//! start lands on a row boundary. An explicit trim moves it to exactly the
//! offset asked for; rows wholly below it go, and a row it cuts through
//! stays (reads never return its records below the log start).

use uuid::Uuid;

use super::jobs::{JobError, Maintainer};
use crate::metadata::lifecycle::TrimOutcome;
use crate::metadata::{Metadata, MetadataError};
use crate::metrics::Metrics;
use crate::tail::Watermarks;

/// Why a trim was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    #[error("offset {before} is beyond the high watermark {high_watermark}")]
    BeyondEnd { before: i64, high_watermark: i64 },
    /// The partition is gone (its topic was deleted meanwhile).
    #[error("the partition no longer exists")]
    Gone,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Raises a partition's log start to `before`; returns the log start and
/// high watermark after it.
pub async fn trim(
    metadata: &Metadata,
    watermarks: &Watermarks,
    metrics: &Metrics,
    (topic_id, partition): (Uuid, i32),
    before: i64,
    grace_ms: i64,
) -> Result<(i64, i64), TrimError> {
    let outcome = metadata
        .lifecycle
        .advance_log_start(topic_id, partition, before, grace_ms)
        .await?;
    match outcome {
        TrimOutcome::Trimmed {
            log_start_offset,
            high_watermark,
            rows_released,
            ..
        } => {
            metrics
                .lifecycle
                .retention_rows_released
                .inc_by(rows_released);
            watermarks.observe((topic_id, partition), log_start_offset, high_watermark);
            Ok((log_start_offset, high_watermark))
        }
        TrimOutcome::BeyondEnd { high_watermark } => Err(TrimError::BeyondEnd {
            before,
            high_watermark,
        }),
        TrimOutcome::Gone => Err(TrimError::Gone),
    }
}

/// Applies a topic's retention to one partition.
pub(super) async fn retain(m: &Maintainer, topic_id: Uuid, partition: i32) -> Result<(), JobError> {
    let lifecycle = &m.metadata.lifecycle;
    let Some(topic) = lifecycle.live_topic(topic_id).await? else {
        return Ok(());
    };
    if !topic.cleanup_policy.deletes() {
        return Ok(());
    }
    let now = m.metadata.log.now_ms().await?;
    let older_than = topic.retention_ms.map(|r| now.saturating_sub(r));
    let Some(point) = lifecycle
        .retention_point(topic_id, partition, older_than, topic.retention_bytes)
        .await?
    else {
        return Ok(());
    };
    match trim(
        &m.metadata,
        &m.watermarks,
        &m.metrics,
        (topic_id, partition),
        point,
        m.grace_ms(),
    )
    .await
    {
        Ok(_) | Err(TrimError::Gone) => Ok(()),
        // The point is a row's end, never past the high watermark.
        Err(TrimError::BeyondEnd { .. }) => Ok(()),
        Err(TrimError::Metadata(e)) => Err(e.into()),
    }
}
