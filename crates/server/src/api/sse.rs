//! Server-Sent Events: follow one partition, a whole topic, or several
//! topics over one connection.
//!
//! Each event carries every record that is ready (up to a limit) for one
//! partition, in the same JSON shape as a REST read, and an `id` from which
//! the stream resumes exactly: for one partition it is simply the next
//! offset; for several it lists the next offset of every followed
//! partition (`orders=5,7,0~audit=12`). A reconnect sends it back as
//! `Last-Event-ID`, which takes precedence over `from`. Comments keep idle
//! connections alive. Events are produced only when the connection asks for
//! the next one, so a slow reader slows its stream, never the server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::records_out::render_read;
use crate::auth::{Caller, SessionEnd, StreamSlot};
use crate::model::TopicMeta;
use crate::read::follow::{Batch, Follower, StartAt};

/// The OpenAPI shape of one event: `records` (data: a read response, `id`:
/// where to resume) or `error` (data: a problem document; the stream then
/// ends).
pub(super) struct SseEvent;

impl utoipa::PartialSchema for SseEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("event", text().enum_values(Some(["records", "error"])))
            .property(
                "id",
                text().description(Some("Resume from here with Last-Event-ID")),
            )
            .property(
                "data",
                text().description(Some(
                    "JSON: a ReadResponse for `records`, a Problem for `error`",
                )),
            )
            .required("event")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for SseEvent {}

/// Most partitions one stream may follow.
pub(super) const MAX_STREAM_PARTITIONS: usize = 10_000;

/// Stream parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// Where to start: `earliest`, `latest` (default), an offset, or `ts:<millis>`.
    /// A `Last-Event-ID` header takes precedence.
    #[param(pattern = r"^(earliest|latest|[0-9]{1,18}|ts:[0-9]{1,18})$")]
    pub from: Option<String>,
    /// Most records in one event (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// Most key and value bytes in one event (default 1 MiB, at most 64 MiB).
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

/// Parameters of a stream over several topics (`/v1/stream`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct MultiStreamQuery {
    /// Topics to follow, comma-separated; a topic named twice is followed once.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,249}(,[A-Za-z0-9._-]{1,249})*$")]
    pub topics: String,
    /// Where to start: `earliest`, `latest` (default), an offset, or `ts:<millis>`.
    /// A `Last-Event-ID` header takes precedence.
    #[param(pattern = r"^(earliest|latest|[0-9]{1,18}|ts:[0-9]{1,18})$")]
    pub from: Option<String>,
    /// Most records in one event (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// Most key and value bytes in one event (default 1 MiB, at most 64 MiB).
    #[param(minimum = 1, maximum = 67108864)]
    pub max_bytes: Option<usize>,
    /// The bearer token, for browsers' EventSource, which cannot set headers.
    #[serde(default)]
    pub access_token: Option<String>,
}

impl MultiStreamQuery {
    /// The topics, and the parameters every stream shares.
    pub(super) fn split(self) -> (String, StreamQuery) {
        let stream = StreamQuery {
            from: self.from,
            limit: self.limit,
            max_bytes: self.max_bytes,
            access_token: self.access_token,
        };
        (self.topics, stream)
    }
}

/// True when the client asked for an event stream.
pub(super) fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

fn parse_from(from: Option<&str>) -> Result<StartAt, ApiError> {
    match from {
        None => Ok(StartAt::Latest),
        Some(s) => StartAt::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("from={s:?} must be earliest, latest, an offset, or ts:<millis>"),
            )
            .with_field("from")
        }),
    }
}

pub(super) fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Renders a resume token: the next offset of every followed partition.
pub(super) fn resume_token(follower: &Follower, single: bool) -> String {
    if single {
        return follower
            .positions()
            .next()
            .map(|(_, _, o)| o.to_string())
            .unwrap_or_default();
    }
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for (topic, _, next) in follower.positions() {
        if current != Some(topic) {
            if current.is_some() {
                out.push('~');
            }
            out.push_str(topic);
            out.push('=');
            current = Some(topic);
        } else {
            out.push(',');
        }
        out.push_str(&next.to_string());
    }
    out
}

/// Parses a multi-partition token into next offsets per topic.
pub(super) fn parse_token(token: &str) -> Result<HashMap<String, Vec<i64>>, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidField,
            format!("Last-Event-ID {token:?} is not a resume id this server issued"),
        )
        .with_field("Last-Event-ID")
    };
    let mut out = HashMap::new();
    for part in token.split('~') {
        let (topic, offsets) = part.split_once('=').ok_or_else(bad)?;
        let offsets: Result<Vec<i64>, _> = offsets.split(',').map(str::parse).collect();
        let offsets = offsets.map_err(|_| bad())?;
        if offsets.iter().any(|o| *o < 0) {
            return Err(bad());
        }
        out.insert(topic.to_string(), offsets);
    }
    Ok(out)
}

pub(super) fn limits(q: &StreamQuery) -> Result<(usize, usize), ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=crate::config::MAX_READ_RECORDS).contains(&limit) {
        return Err(
            ApiError::new(ErrorCode::InvalidQuery, "limit must be between 1 and 10000")
                .with_field("limit")
                .with_limit(crate::config::MAX_READ_RECORDS as u64),
        );
    }
    let max_bytes = q.max_bytes.unwrap_or(1 << 20);
    if !(1..=crate::config::MAX_READ_BYTES).contains(&max_bytes) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "max_bytes must be between 1 and 67108864",
        )
        .with_field("max_bytes")
        .with_limit(crate::config::MAX_READ_BYTES as u64));
    }
    Ok((limit, max_bytes))
}

/// SSE on one partition (from the records route, with `Accept: text/event-stream`).
pub(super) async fn partition(
    state: AppState,
    caller: Caller,
    topic: Arc<TopicMeta>,
    partition: i32,
    q: StreamQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (limit, max_bytes) = limits(&q)?;
    let slot = open_slot(&state, &caller)?;
    let start = match last_event_id(headers) {
        Some(id) => StartAt::Offset(id.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("Last-Event-ID {id:?} must be an offset"),
            )
            .with_field("Last-Event-ID")
        })?),
        None => parse_from(q.from.as_deref())?,
    };
    follow(
        state,
        caller,
        slot,
        vec![(topic, partition, start)],
        (limit, max_bytes),
        true,
        Vec::new(),
    )
    .await
}

/// SSE on every partition of several topics.
pub(super) async fn topics(
    state: AppState,
    caller: Caller,
    topics: Vec<Arc<TopicMeta>>,
    q: StreamQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (limit, max_bytes) = limits(&q)?;
    let slot = open_slot(&state, &caller)?;
    let from = parse_from(q.from.as_deref())?;
    let resume = last_event_id(headers)
        .map(|t| parse_token(&t))
        .transpose()?;
    let mut starts = Vec::new();
    for t in topics {
        let offsets = resume.as_ref().and_then(|r| r.get(&t.name));
        for p in 0..t.partition_count {
            let at = match offsets.and_then(|o| o.get(p as usize)) {
                Some(&o) => StartAt::Offset(o),
                None => from,
            };
            starts.push((t.clone(), p, at));
        }
        if starts.len() > MAX_STREAM_PARTITIONS {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("a stream may follow at most {MAX_STREAM_PARTITIONS} partitions"),
            )
            .with_field("topics")
            .with_limit(MAX_STREAM_PARTITIONS as u64));
        }
    }
    follow(
        state,
        caller,
        slot,
        starts,
        (limit, max_bytes),
        false,
        Vec::new(),
    )
    .await
}

/// Sends `prelude` (a snapshot's events), then follows every partition of
/// `topic` from `offsets` (one per partition), with multi-partition
/// resume tokens.
pub(super) async fn prelude_then_follow(
    state: AppState,
    caller: Caller,
    topic: Arc<TopicMeta>,
    offsets: &[i64],
    q: &StreamQuery,
    prelude: Vec<Event>,
) -> Result<Response, ApiError> {
    let (limit, max_bytes) = limits(q)?;
    let slot = open_slot(&state, &caller)?;
    let starts = offsets
        .iter()
        .enumerate()
        .map(|(p, o)| (topic.clone(), p as i32, StartAt::Offset(*o)))
        .collect();
    follow(
        state,
        caller,
        slot,
        starts,
        (limit, max_bytes),
        false,
        prelude,
    )
    .await
}

/// Follows `starts` and answers with the stream of their events, after
/// `prelude`.
async fn follow(
    state: AppState,
    caller: Caller,
    slot: StreamSlot,
    starts: Vec<(Arc<TopicMeta>, i32, StartAt)>,
    (limit, max_bytes): (usize, usize),
    single: bool,
    prelude: Vec<Event>,
) -> Result<Response, ApiError> {
    let follower = Follower::new(
        state.reader.clone(),
        &state.watermarks,
        starts,
        limit,
        max_bytes,
    )
    .await?;
    Ok(respond(state, caller, slot, follower, single, prelude))
}

fn event_of(batch: &Batch, token: String) -> Event {
    let body = render_read(
        &batch.topic.name,
        batch.partition,
        &batch.records,
        batch.next_offset,
        batch.high_watermark,
        0,
    );
    Event::default()
        .event("records")
        .id(token)
        .data(String::from_utf8_lossy(&body))
}

/// The error that ends a stream whose token expired or was revoked: the
/// client reconnects with a fresh token and its `Last-Event-ID`.
pub(super) fn session_error(end: SessionEnd) -> ApiError {
    match end {
        SessionEnd::Expired => ApiError::new(
            ErrorCode::TokenExpired,
            "the token expired; reconnect with a fresh token and Last-Event-ID to resume",
        ),
        SessionEnd::Revoked => ApiError::new(ErrorCode::Unauthorized, "the token has been revoked"),
    }
}

pub(super) fn error_event(e: ApiError) -> Event {
    let mut problem = serde_json::json!({
        "type": format!("urn:streamhouse:problem:{}", e.code.code()),
        "status": e.code.status().as_u16(),
        "detail": e.detail,
    });
    // A stream that fell below the log start (retention, trim) names it,
    // so the client can resume there.
    if let Some((start, hw)) = e.range {
        problem["log_start_offset"] = start.into();
        problem["high_watermark"] = hw.into();
    }
    Event::default().event("error").data(problem.to_string())
}

/// A stream counted against its tenant's `open_streams` quota (429 beyond it).
pub(super) fn open_slot(state: &AppState, caller: &Caller) -> Result<StreamSlot, ApiError> {
    let tenant = caller.tenant.as_str();
    state
        .quotas
        .open_stream(tenant)
        .map_err(|e| super::auth::over_quota(state, tenant, e))
}

struct StreamState {
    _open: crate::metrics::OpenStream,
    _slot: StreamSlot,
    state: AppState,
    follower: Follower,
    single: bool,
    done: bool,
    /// Resolves when the caller's token expires or is revoked.
    session: Pin<Box<dyn Future<Output = SessionEnd> + Send>>,
}

fn respond(
    state: AppState,
    caller: Caller,
    slot: StreamSlot,
    follower: Follower,
    single: bool,
    prelude: Vec<Event>,
) -> Response {
    let heartbeat = state.limits.sse_heartbeat;
    let auth = state.auth.clone();
    let s = StreamState {
        _open: state.metrics.stream_opened(),
        _slot: slot,
        state,
        follower,
        single,
        done: false,
        session: Box::pin(async move { auth.session_end(&caller).await }),
    };
    let stream = futures_util::stream::unfold(s, |mut s| async move {
        if s.done {
            return None;
        }
        let draining = s.state.draining.clone();
        let next = tokio::select! {
            r = s.follower.next() => r.map_err(ApiError::from),
            _ = draining.cancelled() => Err(ApiError::new(
                ErrorCode::ShuttingDown,
                "the agent is shutting down; reconnect to resume",
            )),
            end = &mut s.session => Err(session_error(end)),
        };
        let event = match next {
            Ok(batch) => event_of(&batch, resume_token(&s.follower, s.single)),
            // Errors read as they do over REST: internal causes are
            // logged, not sent.
            Err(e) => {
                s.done = true;
                error_event(e)
            }
        };
        Some((Ok::<_, Infallible>(event), s))
    });
    let prelude = futures_util::stream::iter(prelude.into_iter().map(Ok::<_, Infallible>));
    sse_response(futures_util::StreamExt::chain(prelude, stream), heartbeat)
}

pub(super) fn sse_response<S>(stream: S, heartbeat: Duration) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("keep-alive"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let parsed = parse_token("orders=5,7,0~audit.log=12").unwrap();
        assert_eq!(parsed["orders"], vec![5, 7, 0]);
        assert_eq!(parsed["audit.log"], vec![12]);
        for bad in ["orders", "orders=x", "orders=-1", "=5"] {
            let r = parse_token(bad);
            assert!(r.is_err() || bad == "=5", "{bad}");
        }
    }
}
