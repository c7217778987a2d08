//! `GET /v1/groups/{group}/stream`: a group member for the life of an SSE
//! connection. The agent joins on connect and fetches for the member
//! (renewing its session as it goes), sending `assignment` events when the
//! member's partitions change and `records` events (a read response plus
//! `member_id` and `generation`, for fenced commits over REST). Every
//! event's id is the member id: a reconnect with `Last-Event-ID` within the
//! session takes the same member back, partitions and all, from the
//! group's committed offsets (at least once). A member whose connection
//! is gone for a whole session leaves the group by expiry.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::Event;
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use super::extract::ApiQuery;
use super::groups::GroupPath;
use super::members::{AutoOffsetReset, join_spec};
use super::sse::{error_event, last_event_id, open_slot, session_error, sse_response};
use super::{AppState, paths};
use crate::auth::{Action, Caller};
use crate::groups::GroupError;
use crate::groups::members::{FetchLimits, Fetcher, MemberView};

const DEFAULT_SESSION_MS: i64 = 10_000;

/// The OpenAPI shape of one group stream event: `assignment`, `records`,
/// or `error` (the stream then ends).
pub(super) struct GroupSseEvent;

impl utoipa::PartialSchema for GroupSseEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "event",
                text().enum_values(Some(["assignment", "records", "error"])),
            )
            .property(
                "id",
                text().description(Some("The member id: reconnect with it as Last-Event-ID")),
            )
            .property(
                "data",
                text().description(Some(
                    "JSON: the member's assignment, a read response with member_id and generation, or a Problem",
                )),
            )
            .required("event")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for GroupSseEvent {}

/// Group stream parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GroupStreamQuery {
    /// Comma-separated topic names (1 to 100).
    #[param(min_length = 1, max_length = 25000)]
    pub topics: String,
    /// The member's session: how long after the connection drops its
    /// partitions stay reserved for a reconnect (1000 to 300000, default 10000).
    #[param(minimum = 1000, maximum = 300000)]
    pub session_timeout_ms: Option<i64>,
    /// Where to start in a partition the group has no offset for.
    pub auto_offset_reset: Option<AutoOffsetReset>,
    /// Most records in one event (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

fn assignment_event(group: &str, v: &MemberView) -> Event {
    let list = |l: &[crate::groups::members::Assigned]| {
        l.iter()
            .map(|a| serde_json::json!({"topic": a.topic, "partition": a.partition, "offset": a.offset}))
            .collect::<Vec<_>>()
    };
    let data = serde_json::json!({
        "group": group,
        "member_id": v.member_id,
        "generation": v.generation,
        "assignment": list(&v.assignment),
        "revoking": list(&v.revoking),
    });
    Event::default()
        .event("assignment")
        .id(v.member_id.clone())
        .data(data.to_string())
}

struct Stream {
    state: AppState,
    tenant: String,
    group: String,
    member: String,
    /// The connection's hold on the member (see `Groups::resume`).
    epoch: i64,
    caller: Caller,
    limits: FetchLimits,
    sent_generation: i64,
    pending: VecDeque<Event>,
    done: bool,
    session: std::pin::Pin<Box<dyn std::future::Future<Output = crate::auth::SessionEnd> + Send>>,
    _slot: crate::auth::StreamSlot,
    _open: crate::metrics::OpenStream,
}

/// Join a group for the life of this connection and receive its
/// partitions' records over Server-Sent Events.
#[utoipa::path(get, path = paths::GROUP_STREAM, tag = "live",
    params(("group" = String, Path), GroupStreamQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "A member id from an earlier event: take that member back")),
    responses((status = 200, description = "`assignment` and `records` events; `error` ends the stream", content_type = "text/event-stream", body = GroupSseEvent),
              (status = 400, description = "Invalid parameter", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "The group has 1000 members", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "The tenant's open_streams quota is in use", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn stream(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<GroupStreamQuery>,
    caller: Caller,
    GroupPath { tenant, group }: GroupPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let topics: Vec<String> = q
        .topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let spec = join_spec(
        &caller,
        topics,
        q.session_timeout_ms.unwrap_or(DEFAULT_SESSION_MS),
        q.auto_offset_reset,
        ErrorCode::InvalidQuery,
    )?;
    let session = spec.session_timeout_ms;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(
            ApiError::new(ErrorCode::InvalidQuery, "limit must be 1 to 10000")
                .with_field("limit")
                .with_limit(10_000),
        );
    }
    let slot = open_slot(&state, &caller)?;

    let resumed = match last_event_id(&headers)
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        Some(id) => match state
            .groups
            .resume(
                tenant.as_str(),
                &group,
                &id,
                Fetcher {
                    may_consume: &|t| caller.may(Action::Consume, t),
                    generation: Some(0),
                    epoch: None,
                    rewind: false,
                },
            )
            .await
        {
            Ok(v) => Some(v),
            Err(GroupError::MemberNotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let view = match resumed {
        Some(v) => v,
        None => state.groups.join(tenant.as_str(), &group, &spec).await?,
    };
    let heartbeat = state.limits.sse_heartbeat;
    let auth = state.auth.clone();
    let session_caller = caller.clone();
    let s = Stream {
        epoch: view.epoch,
        _open: state.metrics.stream_opened(),
        _slot: slot,
        limits: FetchLimits {
            max_records: limit,
            max_bytes: 1 << 20,
            wait: Duration::from_millis((session / 3).min(5_000) as u64),
        },
        state,
        tenant: tenant.as_str().to_string(),
        pending: VecDeque::from([assignment_event(&group, &view)]),
        sent_generation: view.generation,
        member: view.member_id,
        group,
        done: false,
        session: Box::pin(async move { auth.session_end(&session_caller).await }),
        caller,
    };
    let events = futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), s));
            }
            if s.done {
                return None;
            }
            let draining = s.state.draining.clone();
            let caller = s.caller.clone();
            let may_consume = move |t: &str| caller.may(Action::Consume, t);
            let fetched = tokio::select! {
                r = s.state.groups.fetch_records(&s.tenant, &s.group, &s.member, Fetcher {
                    may_consume: &may_consume,
                    // Revocations complete by the client's commits (or
                    // after the session), not by the stream reading on.
                    generation: Some(0),
                    epoch: Some(s.epoch),
                    rewind: false,
                }, s.limits) => r.map_err(ApiError::from),
                _ = draining.cancelled() => Err(ApiError::new(
                    ErrorCode::ShuttingDown,
                    "the agent is shutting down; reconnect with Last-Event-ID to resume",
                )),
                end = &mut s.session => Err(session_error(end)),
            };
            match fetched {
                Ok(f) => {
                    if f.view.generation != s.sent_generation {
                        s.sent_generation = f.view.generation;
                        s.pending.push_back(assignment_event(&s.group, &f.view));
                    }
                    for b in &f.batches {
                        let data = b.render(&[
                            ("member_id", s.member.as_str().into()),
                            ("generation", f.view.generation.into()),
                        ]);
                        s.pending.push_back(
                            Event::default()
                                .event("records")
                                .id(s.member.clone())
                                .data(String::from_utf8_lossy(&data)),
                        );
                    }
                }
                Err(e) => {
                    s.done = true;
                    s.pending.push_back(error_event(e));
                }
            }
        }
    });
    Ok(sse_response(events, heartbeat))
}
