//! Group member routes: join, heartbeat, leave, fetch records; and the
//! group-wide describe, reset and delete.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::read_body;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, ApiQuery};
use super::groups::{GroupPath, validate_group};
use super::{AppState, paths};
use crate::auth::{Action, Caller};
use crate::groups::assign::Reset;
use crate::groups::members::{Assigned, FetchLimits, Fetcher, JoinSpec, MemberView};
use crate::model::Tenant;
use crate::read::follow::StartAt;

const MAX_TOPICS_PER_MEMBER: usize = 100;
const MIN_SESSION_MS: i64 = 1_000;
const MAX_SESSION_MS: i64 = 300_000;
const DEFAULT_SESSION_MS: i64 = 30_000;
const MAX_MEMBER_ID: usize = 64;
const MAX_WAIT_MS: u64 = 30_000;
const MAX_RECORDS: usize = 10_000;
const DEFAULT_RECORDS: usize = 500;

#[derive(Deserialize)]
struct MemberParams {
    group: String,
    member: String,
}

/// `{group}/members/{member}` in the path, checked; needs `commit` on the group.
#[derive(Debug, Clone)]
pub(super) struct MemberPath {
    pub tenant: Tenant,
    pub group: String,
    pub member: String,
}

impl FromRequestParts<AppState> for MemberPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let ApiPath(MemberParams { group, member }) =
            ApiPath::from_request_parts(parts, state).await?;
        validate_group(&group)?;
        super::auth::require(&caller, Action::Commit, &group)?;
        let ok = !member.is_empty()
            && member.len() <= MAX_MEMBER_ID
            && member
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(ApiError::field(
                "member",
                format!("a member id is 1 to {MAX_MEMBER_ID} characters of A-Z a-z 0-9 -"),
            )
            .with_limit(MAX_MEMBER_ID as u64));
        }
        Ok(MemberPath {
            tenant: caller.tenant,
            group,
            member,
        })
    }
}

/// Where a new member starts in a partition the group has no offset for.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum AutoOffsetReset {
    #[default]
    Earliest,
    Latest,
}

/// Body of a join.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    /// 1 to 100 topic names the member consumes.
    #[schema(min_items = 1, max_items = 100)]
    pub topics: Vec<String>,
    /// The lease: without a call for this long the member is gone and its
    /// partitions move (1000 to 300000, default 30000). Calls renew it once
    /// a third has passed, so call at least every third of it.
    #[schema(minimum = 1000, maximum = 300000)]
    pub session_timeout_ms: Option<i64>,
    /// Where to start in a partition the group has no offset for (default earliest).
    pub auto_offset_reset: Option<AutoOffsetReset>,
}

/// A partition in a member's answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct AssignedOut {
    pub topic: String,
    pub partition: i32,
    /// The next offset the member will be given (null until its first fetch).
    pub offset: Option<i64>,
}

/// What a member is told on every call.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct MemberOut {
    pub group: String,
    pub member_id: String,
    /// Commits must name this generation.
    pub generation: i64,
    pub session_timeout_ms: i64,
    /// The assignment changed since the member's previous answer.
    pub assignment_changed: bool,
    /// Partitions the member owns and gets records from.
    pub assignment: Vec<AssignedOut>,
    /// Partitions leaving the member: commit what was processed; the next
    /// call acknowledges and they move.
    pub revoking: Vec<AssignedOut>,
}

fn out_list(list: Vec<Assigned>) -> Vec<AssignedOut> {
    list.into_iter()
        .map(|a| AssignedOut {
            topic: a.topic,
            partition: a.partition,
            offset: a.offset,
        })
        .collect()
}

fn member_out(group: String, v: MemberView) -> MemberOut {
    MemberOut {
        group,
        member_id: v.member_id,
        generation: v.generation,
        session_timeout_ms: v.session_timeout_ms,
        assignment_changed: v.assignment_changed,
        assignment: out_list(v.assignment),
        revoking: out_list(v.revoking),
    }
}

/// A join as every front end asks for it (REST, SSE, WebSocket): 1 to 100
/// topics the caller may consume (sorted, each once) and a session of 1 s
/// to 5 min. A bad field answers with `code` (a body field or a query
/// parameter) naming it.
pub(super) fn join_spec(
    caller: &Caller,
    mut topics: Vec<String>,
    session_timeout_ms: i64,
    reset: Option<AutoOffsetReset>,
    code: ErrorCode,
) -> Result<JoinSpec, ApiError> {
    if topics.is_empty() || topics.len() > MAX_TOPICS_PER_MEMBER {
        return Err(ApiError::new(
            code,
            format!("topics must name 1 to {MAX_TOPICS_PER_MEMBER} topics"),
        )
        .with_field("topics")
        .with_limit(MAX_TOPICS_PER_MEMBER as u64));
    }
    topics.sort();
    topics.dedup();
    for t in &topics {
        super::auth::require(caller, Action::Consume, t)?;
    }
    if !(MIN_SESSION_MS..=MAX_SESSION_MS).contains(&session_timeout_ms) {
        return Err(ApiError::new(
            code,
            format!("session_timeout_ms must be {MIN_SESSION_MS} to {MAX_SESSION_MS}"),
        )
        .with_field("session_timeout_ms")
        .with_limit(MAX_SESSION_MS as u64));
    }
    Ok(JoinSpec {
        topics,
        session_timeout_ms,
        reset: match reset.unwrap_or_default() {
            AutoOffsetReset::Earliest => Reset::Earliest,
            AutoOffsetReset::Latest => Reset::Latest,
        },
    })
}

/// Join a group: the member gets an id, a generation and its partitions.
#[utoipa::path(post, path = paths::GROUP_MEMBERS, tag = "groups", params(("group" = String, Path)),
    request_body = JoinBody,
    responses((status = 201, description = "Joined", body = MemberOut),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 403, description = "The token may not consume a topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "The group has 1000 members", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn join(
    State(state): State<AppState>,
    caller: Caller,
    GroupPath { tenant, group }: GroupPath,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    let req: JoinBody = super::json::from_object(&body).map_err(|e| {
        ApiError::new(ErrorCode::InvalidJson, format!("invalid join: {e}")).with_field("body")
    })?;
    let spec = join_spec(
        &caller,
        req.topics,
        req.session_timeout_ms.unwrap_or(DEFAULT_SESSION_MS),
        req.auto_offset_reset,
        ErrorCode::InvalidField,
    )?;
    let v = state.groups.join(tenant.as_str(), &group, &spec).await?;
    Ok((StatusCode::CREATED, Json(member_out(group, v))).into_response())
}

/// Body of a heartbeat (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HeartbeatBody {
    /// The generation the member has acted on; acknowledges revocations
    /// (default: the last one it was told).
    #[schema(minimum = 0)]
    pub generation: Option<i64>,
}

/// Renew a member's session and hear its assignment.
#[utoipa::path(post, path = paths::GROUP_MEMBER_HEARTBEAT, tag = "groups",
    params(("group" = String, Path), ("member" = String, Path)),
    request_body(content = Option<HeartbeatBody>, description = "Optional"),
    responses((status = 200, description = "Renewed", body = MemberOut),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "The member left or its session expired: join again", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    MemberPath {
        tenant,
        group,
        member,
    }: MemberPath,
    body: Body,
) -> Result<Json<MemberOut>, ApiError> {
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    let req: HeartbeatBody = if body.iter().all(u8::is_ascii_whitespace) {
        HeartbeatBody::default()
    } else {
        super::json::from_object(&body).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("invalid heartbeat: {e}"))
                .with_field("body")
        })?
    };
    let v = state
        .groups
        .heartbeat(tenant.as_str(), &group, &member, req.generation)
        .await?;
    Ok(Json(member_out(group, v)))
}

/// Leave a group: the member's partitions move at once.
#[utoipa::path(delete, path = paths::GROUP_MEMBER, tag = "groups",
    params(("group" = String, Path), ("member" = String, Path)),
    responses((status = 204, description = "Left"),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such member", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn leave(
    State(state): State<AppState>,
    MemberPath {
        tenant,
        group,
        member,
    }: MemberPath,
) -> Result<StatusCode, ApiError> {
    state.groups.leave(tenant.as_str(), &group, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/members/{member}/records` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FetchQuery {
    /// Wait up to this long for records when there are none (0 to 30000;
    /// at most half the session timeout is used).
    #[param(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
    /// At most this many records (1 to 10000, default 500).
    #[param(minimum = 1, maximum = 10000)]
    pub max_records: Option<usize>,
    /// The generation the member has acted on (acknowledges revocations).
    #[param(minimum = 0)]
    pub generation: Option<i64>,
    /// Where to read from: the member's positions (`position`, the
    /// default: each fetch moves them on), or the group's committed
    /// offsets (`committed`: a client whose last answer was lost, or that
    /// restarted, gets again what it fetched and did not commit).
    #[param(inline)]
    pub from: Option<FetchFrom>,
}

/// Where a member's fetch reads from.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum FetchFrom {
    #[default]
    Position,
    Committed,
}

/// A member's records, one batch per partition.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct MemberRecords {
    #[serde(flatten)]
    pub member: MemberOut,
    /// Records by partition, each shaped like a read response.
    pub batches: Vec<super::ReadResponse>,
}

/// Fetch records from the member's partitions, from its positions; renews
/// its session and reports assignment changes.
#[utoipa::path(get, path = paths::GROUP_MEMBER_RECORDS, tag = "groups",
    params(("group" = String, Path), ("member" = String, Path), FetchQuery),
    responses((status = 200, description = "Records (possibly none)", body = MemberRecords),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 403, description = "The token may not consume a topic the member reads", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "The member left or its session expired: join again", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn fetch(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FetchQuery>,
    caller: Caller,
    MemberPath {
        tenant,
        group,
        member,
    }: MemberPath,
) -> Result<Response, ApiError> {
    let wait = q.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        )
        .with_field("wait_ms")
        .with_limit(MAX_WAIT_MS));
    }
    let max_records = q.max_records.unwrap_or(DEFAULT_RECORDS);
    if !(1..=MAX_RECORDS).contains(&max_records) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("max_records must be 1 to {MAX_RECORDS}"),
        )
        .with_field("max_records")
        .with_limit(MAX_RECORDS as u64));
    }
    let limits = FetchLimits {
        max_records,
        max_bytes: 8 << 20,
        wait: Duration::from_millis(wait).min(state.limits.max_wait),
    };
    let f = state
        .groups
        .fetch_records(
            tenant.as_str(),
            &group,
            &member,
            Fetcher {
                may_consume: &|t| caller.may(Action::Consume, t),
                generation: q.generation,
                epoch: None,
                rewind: matches!(q.from, Some(FetchFrom::Committed)),
            },
            limits,
        )
        .await?;
    let head = serde_json::to_vec(&member_out(group, f.view))
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut out = Vec::with_capacity(head.len() + 1024);
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"batches\":[");
    for (i, b) in f.batches.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&b.render(&[]));
    }
    out.extend_from_slice(b"]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// A member in a group description.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct MemberDescribed {
    pub member_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: i64,
    /// Time left on its session.
    pub expires_in_ms: i64,
    pub assignment: Vec<AssignedOut>,
    pub revoking: Vec<AssignedOut>,
}

/// A partition in a group description.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct PartitionDescribed {
    pub topic: String,
    pub partition: i32,
    /// The member that owns it, if any.
    pub owner: Option<String>,
    pub committed_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
}

/// A group: members, assignment and lag.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct GroupDescribed {
    pub group: String,
    pub generation: i64,
    /// `empty`, `stable`, or `rebalancing` (a partition is changing hands).
    pub state: String,
    pub members: Vec<MemberDescribed>,
    pub partitions: Vec<PartitionDescribed>,
    pub total_lag: i64,
}

/// Describe a group: members, their partitions, and lag per partition.
#[utoipa::path(get, path = paths::GROUP, tag = "groups", params(("group" = String, Path)),
    responses((status = 200, description = "The group (empty for an unknown group)", body = GroupDescribed),
              (status = 400, description = "Invalid group name", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn describe(
    State(state): State<AppState>,
    GroupPath { tenant, group }: GroupPath,
) -> Result<Json<GroupDescribed>, ApiError> {
    let info = state
        .groups
        .describe_members(tenant.as_str(), &group)
        .await?;
    let lag = state.groups.lag(tenant.as_str(), &group).await?;
    let mut partitions: std::collections::BTreeMap<(String, i32), PartitionDescribed> = info
        .owners
        .iter()
        .map(|(t, p, m)| {
            (
                (t.clone(), *p),
                PartitionDescribed {
                    topic: t.clone(),
                    partition: *p,
                    owner: Some(m.clone()),
                    committed_offset: None,
                    high_watermark: None,
                    lag: None,
                },
            )
        })
        .collect();
    for r in &lag {
        let e = partitions
            .entry((r.topic.clone(), r.partition))
            .or_insert_with(|| PartitionDescribed {
                topic: r.topic.clone(),
                partition: r.partition,
                owner: None,
                committed_offset: None,
                high_watermark: None,
                lag: None,
            });
        e.committed_offset = Some(r.committed_offset);
        e.high_watermark = Some(r.high_watermark);
        e.lag = Some(r.lag);
    }
    Ok(Json(GroupDescribed {
        group,
        generation: info.generation,
        state: info.state.to_string(),
        members: info
            .members
            .into_iter()
            .map(|m| MemberDescribed {
                member_id: m.member_id,
                topics: m.topics,
                session_timeout_ms: m.session_timeout_ms,
                expires_in_ms: m.expires_in_ms,
                assignment: out_list(m.assignment),
                revoking: out_list(m.revoking),
            })
            .collect(),
        total_lag: lag.iter().map(|r| r.lag).sum(),
        partitions: partitions.into_values().collect(),
    }))
}

/// Delete a group and its offsets (only while it has no live members).
#[utoipa::path(delete, path = paths::GROUP, tag = "groups", params(("group" = String, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 400, description = "Invalid group name", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "The group has live members", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    GroupPath { tenant, group }: GroupPath,
) -> Result<StatusCode, ApiError> {
    state.groups.delete_group(tenant.as_str(), &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of an offset reset.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetBody {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$", min_length = 1, max_length = 249)]
    pub topic: String,
    /// `earliest`, `latest`, an offset, or `ts:<millis>` (the first record
    /// at or after that time).
    #[schema(pattern = r"^(earliest|latest|[0-9]{1,18}|ts:[0-9]{1,18})$")]
    pub to: String,
    /// Partitions to reset (default: all of the topic's).
    #[schema(max_items = 10000)]
    pub partitions: Option<Vec<i32>>,
}

/// Offsets as reset.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct ResetOut {
    pub group: String,
    pub topic: String,
    pub offsets: Vec<ResetOffset>,
}

/// One partition's new offset.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct ResetOffset {
    pub partition: i32,
    pub offset: i64,
}

/// Reset a group's offsets in a topic (only while it has no live members).
#[utoipa::path(post, path = paths::GROUP_RESET, tag = "groups", params(("group" = String, Path)),
    request_body = ResetBody,
    responses((status = 200, description = "Reset", body = ResetOut),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "The group has live members", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    GroupPath { tenant, group }: GroupPath,
    body: Body,
) -> Result<Json<ResetOut>, ApiError> {
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    let req: ResetBody = super::json::from_object(&body).map_err(|e| {
        ApiError::new(ErrorCode::InvalidJson, format!("invalid reset: {e}")).with_field("body")
    })?;
    super::auth::require(&caller, Action::Consume, &req.topic)?;
    let to = StartAt::parse(&req.to).ok_or_else(|| {
        ApiError::field(
            "to",
            "to must be earliest, latest, an offset, or ts:<milliseconds>",
        )
    })?;
    if req.partitions.as_ref().is_some_and(|p| p.len() > 10_000) {
        return Err(ApiError::too_large(
            "partitions",
            10_000,
            "partitions may list at most 10000",
        ));
    }
    let set = state
        .groups
        .reset(
            tenant.as_str(),
            &group,
            &req.topic,
            req.partitions.as_deref(),
            to,
        )
        .await?;
    Ok(Json(ResetOut {
        group,
        topic: req.topic,
        offsets: set
            .into_iter()
            .map(|(partition, offset)| ResetOffset { partition, offset })
            .collect(),
    }))
}
