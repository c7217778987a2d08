//! Explicit trim: `POST /v1/topics/{topic}/partitions/{partition}/trim`
//! (`admin`) moves a partition's log start forward to an offset. Records
//! below it are never returned again; rows and objects wholly below it are
//! released for the collector.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::body::small_json;
use super::error::{ApiError, ErrorCode};
use super::extract::{AdminPartitionPath, PartitionPath};
use super::{AppState, paths};
use crate::maintenance::{TrimError, trim as trim_log};

/// Body of a trim.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TrimRequest {
    /// The new log start: records at lower offsets go. At most the high
    /// watermark; at or below the current log start changes nothing.
    #[schema(minimum = 0)]
    pub before: i64,
}

/// A partition's bounds after a trim.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub(super) struct TrimResponse {
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// Move a partition's log start forward (`admin`).
#[utoipa::path(post, path = paths::TRIM, tag = "topics",
    params(("topic" = String, Path), ("partition" = i32, Path)),
    request_body = TrimRequest,
    responses((status = 200, description = "The partition's bounds after the trim", body = TrimResponse),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body larger than 64 KiB", body = super::Problem, content_type = "application/problem+json"),
              (status = 416, description = "`before` is beyond the high watermark", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Request bodies in flight hold the agent's budget; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn trim(
    State(state): State<AppState>,
    AdminPartitionPath(PartitionPath {
        topic, partition, ..
    }): AdminPartitionPath,
    body: Body,
) -> Result<Json<TrimResponse>, ApiError> {
    let req: TrimRequest = small_json(body, &state.bodies, "trim").await?;
    if req.before < 0 {
        return Err(ApiError::field("before", "before must not be negative"));
    }
    let done = trim_log(
        &state.metadata,
        &state.watermarks,
        &state.metrics,
        (topic.id, partition),
        req.before,
        state.gc_grace.as_millis() as i64,
    )
    .await;
    match done {
        Ok((log_start_offset, high_watermark)) => Ok(Json(TrimResponse {
            partition,
            log_start_offset,
            high_watermark,
        })),
        Err(e @ TrimError::BeyondEnd { high_watermark, .. }) => {
            let start = state
                .reader
                .refresh((topic.id, partition))
                .await
                .map(|(s, _)| s)
                .unwrap_or(0);
            Err(ApiError::new(ErrorCode::OffsetOutOfRange, e.to_string())
                .with_field("before")
                .with_range(start, high_watermark))
        }
        Err(TrimError::Gone) => Err(ApiError::topic_not_found(&topic.name)),
        Err(TrimError::Metadata(e)) => Err(e.into()),
    }
}
