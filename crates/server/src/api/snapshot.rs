//! `GET /v1/topics/{topic}/snapshot`: the latest record of every key
//! (`consume`), and per partition the offset to follow from.
//!
//! - `Accept: application/json` (default): one document, partition by
//!   partition.
//! - `Accept: application/x-ndjson`: one record per line (with its
//!   partition), then a last line `{"resume": [...]}`.
//! - `Accept: text/event-stream` with `then=stream`: the snapshot as
//!   `snapshot` events, a `snapshot-end` event whose `id` is the resume
//!   token, then the topic live from exactly there as `records` events. A
//!   reconnect with `Last-Event-ID` skips the snapshot and resumes live
//!   with no gap and no repeat.
//!
//! A snapshot holds at most 64 MiB of keys and values (a larger state is
//! read by offset instead).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::require;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiQuery, TopicPath};
use super::records_out::{render_read, write_record};
use super::sse::{self, StreamQuery};
use super::{AppState, paths};
use crate::auth::Action;
use crate::model::TopicMeta;
use crate::read::snapshot::{PartitionSnapshot, SnapshotError};

/// Keys and values one snapshot may hold.
const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Snapshot parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SnapshotQuery {
    /// `stream`: with `Accept: text/event-stream`, follow the topic live after the snapshot.
    #[param(pattern = "^stream$")]
    pub then: Option<String>,
    /// Most records in one event (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// Most key and value bytes in one live event (default 1 MiB, at most 64 MiB).
    #[param(minimum = 1, maximum = 67108864)]
    pub max_bytes: Option<usize>,
    /// The bearer token, for browsers' EventSource, which cannot set headers.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "the caller extractor reads it from the raw query; declared so the query is valid"
    )]
    pub access_token: Option<String>,
}

/// Where to follow a partition from after its snapshot.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct ResumeAt {
    pub partition: i32,
    pub offset: i64,
}

/// One partition of a snapshot.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct PartitionState {
    pub partition: i32,
    /// The partition's high watermark when the snapshot was taken: follow from here.
    pub resume_offset: i64,
    /// The latest record of each live key, in offset order.
    pub records: Vec<super::OutRecord>,
}

/// A topic's state.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct Snapshot {
    pub topic: String,
    pub partitions: Vec<PartitionState>,
}

/// The latest record of every key, and where to follow from.
#[utoipa::path(get, path = paths::SNAPSHOT, tag = "records",
    params(("topic" = String, Path), SnapshotQuery),
    responses((status = 200, description = "The latest record per key (tombstoned and keyless records are left out) \
and each partition's resume offset. `application/x-ndjson`: a record per line with its `partition`, then \
`{\"resume\": [{\"partition\", \"offset\"}]}`. `text/event-stream` with `then=stream`: `snapshot` events \
(a read response per partition), `snapshot-end` (data `{\"resume\": [...]}`, `id` the resume token), then \
`records` events live; `Last-Event-ID` resumes live without the snapshot", content(
                (Snapshot = "application/json"),
                (String = "application/x-ndjson"),
                (super::sse::SseEvent = "text/event-stream"))),
              (status = 400, description = "Invalid parameter, or a state over 64 MiB", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "SSE: the tenant's open_streams quota is used up; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn snapshot(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
    TopicPath { caller, topic, .. }: TopicPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&caller, Action::Consume, &topic.name)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let events = sse::wants_event_stream(&headers);
    if events != q.then.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "then=stream goes with Accept: text/event-stream, and a snapshot over SSE needs then=stream",
        )
        .with_field("then"));
    }
    let live = StreamQuery {
        from: None,
        limit: q.limit,
        max_bytes: q.max_bytes,
        access_token: None,
    };
    sse::limits(&live)?;
    if events {
        // A reconnect resumes live: the client has the state already.
        if let Some(token) = sse::last_event_id(&headers) {
            let offsets = sse::parse_token(&token)?
                .remove(&topic.name)
                .filter(|o| o.len() == topic.partition_count as usize)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidField,
                        "Last-Event-ID does not name this topic's partitions",
                    )
                    .with_field("Last-Event-ID")
                })?;
            return sse::prelude_then_follow(state, caller, topic, &offsets, &live, Vec::new())
                .await;
        }
    }
    let parts = take(&state, &topic).await?;
    if events {
        let limit = q.limit.unwrap_or(1000).max(1);
        let offsets: Vec<i64> = parts.iter().map(|p| p.resume_offset).collect();
        let mut prelude = Vec::new();
        for p in &parts {
            for chunk in p.records.chunks(limit) {
                let body = render_read(
                    &topic.name,
                    p.partition,
                    chunk,
                    p.resume_offset,
                    p.resume_offset,
                    0,
                );
                prelude.push(
                    Event::default()
                        .event("snapshot")
                        .data(String::from_utf8_lossy(&body)),
                );
            }
        }
        let token = format!(
            "{}={}",
            topic.name,
            offsets
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        prelude.push(
            Event::default()
                .event("snapshot-end")
                .id(token)
                .data(resume_json(&parts).to_string()),
        );
        return sse::prelude_then_follow(state, caller, topic, &offsets, &live, prelude).await;
    }
    if accept.contains("application/x-ndjson") {
        return Ok(ndjson(&parts));
    }
    Ok(json(&topic, &parts))
}

/// Takes every partition's snapshot, within the size limit.
async fn take(
    state: &AppState,
    topic: &Arc<TopicMeta>,
) -> Result<Vec<PartitionSnapshot>, ApiError> {
    let mut budget = MAX_SNAPSHOT_BYTES;
    let mut parts = Vec::with_capacity(topic.partition_count as usize);
    for p in 0..topic.partition_count {
        match state.reader.snapshot_partition(topic, p, &mut budget).await {
            Ok(s) => parts.push(s),
            Err(SnapshotError::TooLarge { .. }) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!(
                        "topic {:?} holds more than {MAX_SNAPSHOT_BYTES} bytes of live keys and values; read it by offset",
                        topic.name
                    ),
                )
                .with_field("topic")
                .with_limit(MAX_SNAPSHOT_BYTES as u64));
            }
            Err(SnapshotError::Read(e)) => return Err(e.into()),
        }
    }
    Ok(parts)
}

fn resume_json(parts: &[PartitionSnapshot]) -> serde_json::Value {
    let resume: Vec<ResumeAt> = parts
        .iter()
        .map(|p| ResumeAt {
            partition: p.partition,
            offset: p.resume_offset,
        })
        .collect();
    serde_json::json!({ "resume": resume })
}

fn json(topic: &TopicMeta, parts: &[PartitionSnapshot]) -> Response {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"topic\":");
    out.extend_from_slice(
        serde_json::to_string(&topic.name)
            .unwrap_or_default()
            .as_bytes(),
    );
    out.extend_from_slice(b",\"partitions\":[");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                "{{\"partition\":{},\"resume_offset\":{},\"records\":[",
                p.partition, p.resume_offset
            )
            .as_bytes(),
        );
        for (j, r) in p.records.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_record(&mut out, r);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    with_type(Body::from(out), "application/json")
}

fn ndjson(parts: &[PartitionSnapshot]) -> Response {
    let mut out = Vec::with_capacity(1024);
    let mut line = Vec::with_capacity(256);
    for p in parts {
        for r in &p.records {
            line.clear();
            write_record(&mut line, r);
            // The record's object, with its partition first.
            out.extend_from_slice(format!("{{\"partition\":{},", p.partition).as_bytes());
            out.extend_from_slice(line.get(1..).unwrap_or_default());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(resume_json(parts).to_string().as_bytes());
    out.push(b'\n');
    with_type(Body::from(out), "application/x-ndjson")
}

fn with_type(body: Body, media: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    resp
}
