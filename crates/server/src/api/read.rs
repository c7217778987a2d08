//! Read routes: records by offset (with long-poll) and seek by time.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::require;
use super::batches;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiQuery, PartitionPath, TopicPath, query_of, resolve_topic};
use super::records_out::read_body;
use super::sse::{self, MultiStreamQuery, StreamQuery, wants_event_stream};
use super::{AppState, paths};
use crate::auth::{Action, Caller};
use crate::config::{Limits, MAX_READ_BYTES, MAX_READ_RECORDS};
use crate::read::ReadRequest;

/// Read parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReadQuery {
    /// First offset to return; default: the log start.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// At most this many records (1 to 10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// Stop adding records past this many key and value bytes (default 1 MiB, at most 64 MiB);
    /// at least one record is returned.
    #[param(minimum = 1, maximum = 67108864)]
    pub max_bytes: Option<usize>,
    /// When reading at the high watermark, wait up to this long for records
    /// (at most `max-wait`, 60 s by default).
    #[param(minimum = 0, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// What a GET of a partition's records asks for, from its `Accept` header:
/// records as JSON, the stored record batches as they are, or the
/// partition followed live (Server-Sent Events). The query is parsed and
/// checked here, before the path is resolved.
pub(super) enum ReadMode {
    Records(ReadQuery),
    Batches(ReadQuery),
    Stream(StreamQuery),
}

impl FromRequestParts<AppState> for ReadMode {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if wants_event_stream(&parts.headers) {
            let q: StreamQuery = query_of(&parts.uri)?;
            sse::limits(&q)?;
            return Ok(ReadMode::Stream(q));
        }
        let q: ReadQuery = query_of(&parts.uri)?;
        q.check(&state.limits)?;
        if batches::wanted(&parts.headers) {
            return Ok(ReadMode::Batches(q));
        }
        Ok(ReadMode::Records(q))
    }
}

impl ReadQuery {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes.unwrap_or(1 << 20)
    }

    fn wait(&self) -> Duration {
        Duration::from_millis(self.wait_ms.unwrap_or(0))
    }

    fn check(&self, limits: &Limits) -> Result<(), ApiError> {
        if !(1..=MAX_READ_RECORDS).contains(&self.limit()) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("limit must be between 1 and {MAX_READ_RECORDS}"),
            )
            .with_field("limit")
            .with_limit(MAX_READ_RECORDS as u64));
        }
        if !(1..=MAX_READ_BYTES).contains(&self.max_bytes()) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("max_bytes must be between 1 and {MAX_READ_BYTES}"),
            )
            .with_field("max_bytes")
            .with_limit(MAX_READ_BYTES as u64));
        }
        if self.wait() > limits.max_wait {
            let max = limits.max_wait.as_millis() as u64;
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("wait_ms must be at most {max} (max-wait)"),
            )
            .with_field("wait_ms")
            .with_limit(max));
        }
        if self.offset.is_some_and(|o| o < 0) {
            return Err(
                ApiError::new(ErrorCode::InvalidQuery, "offset must not be negative")
                    .with_field("offset"),
            );
        }
        Ok(())
    }
}

/// Read records of one partition from an offset.
#[utoipa::path(get, path = paths::PARTITION_RECORDS, tag = "records",
    params(("topic" = String, Path), ("partition" = i32, Path), ReadQuery),
    responses((status = 200, description = "Records from the offset on. With `Accept: text/event-stream` \
the partition is followed live instead (Server-Sent Events: `event: records`, `id` = the next offset; \
query `from` = earliest|latest|<offset>|ts:<ms>, default latest; `Last-Event-ID` resumes). \
With `Accept: application/vnd.streamhouse.record-batches` the stored batches are sent as they are \
(whole batches: the first may start before `offset`; `limit` and `max_bytes` end the page at the first \
batch boundary past them), and the offsets come in headers", headers(
                ("StreamHouse-Next-Offset" = i64, description = "Record batches: the offset to read from next"),
                ("StreamHouse-High-Watermark" = i64, description = "Record batches: the offset the next produced record will get"),
                ("StreamHouse-Log-Start-Offset" = i64, description = "Record batches: the first offset still stored"),
                ("StreamHouse-Record-Count" = i64, description = "Record batches: records in the batches sent")),
              content(
                (super::ReadResponse = "application/json"),
                (super::batches::RecordBatches = "application/vnd.streamhouse.record-batches"),
                (super::sse::SseEvent = "text/event-stream"))),
              (status = 400, description = "Invalid parameter", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 416, description = "Offset outside [log start, high watermark]", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "SSE: the tenant's open_streams quota is used up; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn read(
    State(state): State<AppState>,
    mode: ReadMode,
    PartitionPath {
        caller,
        topic,
        partition,
    }: PartitionPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (q, as_batches) = match mode {
        ReadMode::Stream(q) => {
            return sse::partition(state, caller, topic, partition, q, &headers).await;
        }
        ReadMode::Records(q) => (q, false),
        ReadMode::Batches(q) => (q, true),
    };
    let req = ReadRequest {
        topic: topic.clone(),
        partition,
        offset: q.offset,
        max_records: q.limit(),
        max_bytes: q.max_bytes(),
        wait: q.wait(),
    };
    // Shutdown ends a long-poll early with whatever it has.
    if as_batches {
        let result = tokio::select! {
            r = state.reader.read_batches(&req) => r?,
            _ = state.draining.cancelled() => {
                return Err(ApiError::new(ErrorCode::ShuttingDown, "the agent is shutting down"));
            }
        };
        return Ok(batches::respond(result));
    }
    let result = tokio::select! {
        r = state.reader.read(&req) => r?,
        _ = state.draining.cancelled() => {
            return Err(ApiError::new(ErrorCode::ShuttingDown, "the agent is shutting down"));
        }
    };
    let body = read_body(
        &topic.name,
        partition,
        result.records,
        result.next_offset,
        result.high_watermark,
        result.log_start_offset,
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Seek parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct OffsetsQuery {
    /// Milliseconds since the Unix epoch; absent: only the bounds are returned.
    #[param(minimum = 0)]
    pub timestamp: Option<i64>,
}

/// A partition's bounds, and the offset for a timestamp.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct OffsetsResponse {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The first offset whose timestamp is at or after `timestamp`; the high
    /// watermark when no record is that recent. Absent without `timestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// That record's timestamp, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// Partition bounds, and seek by timestamp.
#[utoipa::path(get, path = paths::PARTITION_OFFSETS, tag = "records",
    params(("topic" = String, Path), ("partition" = i32, Path), OffsetsQuery),
    responses((status = 200, description = "Offsets", body = OffsetsResponse),
              (status = 400, description = "Invalid parameter", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn offsets(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OffsetsQuery>,
    PartitionPath {
        topic, partition, ..
    }: PartitionPath,
) -> Result<Json<OffsetsResponse>, ApiError> {
    if q.timestamp.is_some_and(|ts| ts < 0) {
        return Err(
            ApiError::new(ErrorCode::InvalidQuery, "timestamp must not be negative")
                .with_field("timestamp"),
        );
    }
    let (log_start_offset, high_watermark) = state.reader.refresh((topic.id, partition)).await?;
    let (offset, timestamp) = match q.timestamp {
        Some(ts) => {
            let key = (topic.id, partition);
            let found = state.reader.offsets_for_time(&[key], ts).await?;
            let (o, t) = found.get(&key).copied().unwrap_or((high_watermark, None));
            (Some(o.max(log_start_offset)), t)
        }
        None => (None, None),
    };
    Ok(Json(OffsetsResponse {
        log_start_offset,
        high_watermark,
        offset,
        timestamp,
    }))
}

/// Follow every partition of a topic live (Server-Sent Events).
#[utoipa::path(get, path = paths::TOPIC_STREAM, tag = "live",
    params(("topic" = String, Path), StreamQuery),
    responses((status = 200, description = "Server-Sent Events: `event: records` per partition batch, \
`id` = next offsets of all partitions (`topic=o0,o1,...`), resumed with `Last-Event-ID`; \
`event: error` then end when the topic is deleted", content_type = "text/event-stream", body = super::sse::SseEvent),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 416, description = "A start offset outside [log start, high watermark]", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "The tenant's open_streams quota is used up; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn topic_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
    TopicPath { caller, topic, .. }: TopicPath,
) -> Result<Response, ApiError> {
    require(&caller, Action::Consume, &topic.name)?;
    sse::limits(&q)?;
    sse::topics(state, caller, vec![topic], q, &headers).await
}

/// Follow several topics over one connection (Server-Sent Events).
#[utoipa::path(get, path = paths::STREAM, tag = "live",
    params(MultiStreamQuery),
    responses((status = 200, description = "Server-Sent Events for every partition of `topics`; \
`id` covers every partition (`a=o0,o1~b=o0`)", content_type = "text/event-stream", body = super::sse::SseEvent),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 416, description = "A start offset outside [log start, high watermark]", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "The tenant's open_streams quota is used up; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn multi_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<MultiStreamQuery>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (topics, q) = q.split();
    sse::limits(&q)?;
    let names: Vec<String> = topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "name at least one topic: topics=a,b",
        )
        .with_field("topics"));
    }
    let mut topics = Vec::with_capacity(names.len());
    let mut seen = std::collections::HashSet::new();
    // A topic named twice is followed once.
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        require(&caller, Action::Consume, name)?;
        topics.push(resolve_topic(&state, &caller.tenant, name).await?);
    }
    sse::topics(state, caller, topics, q, &headers).await
}
