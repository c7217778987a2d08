//! Consumer-group routes: list, commit, fetch, lag.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::body::read_body;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, ApiQuery, page_limit};
use super::{AppState, paths};
use crate::auth::{Action, Caller};
use crate::groups::{Committer, OffsetEntry};
use crate::model::Tenant;

const MAX_GROUP_NAME: usize = 255;
const MAX_OFFSETS_PER_COMMIT: usize = 10_000;
const MAX_OFFSET_METADATA: usize = 4096;

pub(super) fn validate_group(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ApiError::field(
            "group",
            format!(
                "group name {name:?} must be 1 to {MAX_GROUP_NAME} characters of A-Z a-z 0-9 . _ -"
            ),
        )
        .with_limit(MAX_GROUP_NAME as u64));
    }
    Ok(())
}

/// `{group}` in the path, checked, with the caller's tenant; every group
/// route needs `commit` on the group.
#[derive(Debug, Clone)]
pub(super) struct GroupPath {
    pub tenant: Tenant,
    pub group: String,
}

impl FromRequestParts<AppState> for GroupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let ApiPath(group) = ApiPath::<String>::from_request_parts(parts, state).await?;
        validate_group(&group)?;
        super::auth::require(&caller, Action::Commit, &group)?;
        Ok(GroupPath {
            tenant: caller.tenant,
            group,
        })
    }
}

/// Checks the offsets of a commit (REST or WebSocket) against the limits:
/// one to 10,000 entries, offsets not negative, metadata at most 4 KiB.
pub(super) fn offset_entries(offsets: Vec<OffsetIn>) -> Result<Vec<OffsetEntry>, ApiError> {
    if offsets.is_empty() {
        return Err(ApiError::field(
            "offsets",
            "offsets must hold at least one entry",
        ));
    }
    if offsets.len() > MAX_OFFSETS_PER_COMMIT {
        return Err(ApiError::too_large(
            "offsets",
            MAX_OFFSETS_PER_COMMIT,
            format!("a commit may hold at most {MAX_OFFSETS_PER_COMMIT} offsets"),
        ));
    }
    let mut entries = Vec::with_capacity(offsets.len());
    for (i, o) in offsets.into_iter().enumerate() {
        if o.offset < 0 {
            return Err(ApiError::field(
                format!("offsets[{i}].offset"),
                "offset must not be negative",
            ));
        }
        if o.metadata
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_OFFSET_METADATA)
        {
            return Err(ApiError::too_large(
                format!("offsets[{i}].metadata"),
                MAX_OFFSET_METADATA,
                format!("offsets[{i}].metadata is longer than {MAX_OFFSET_METADATA} characters"),
            ));
        }
        entries.push(OffsetEntry {
            topic: o.topic,
            partition: o.partition,
            offset: o.offset,
            metadata: o.metadata,
        });
    }
    Ok(entries)
}

/// One committed position.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OffsetIn {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$", min_length = 1, max_length = 249)]
    pub topic: String,
    #[schema(minimum = 0)]
    pub partition: i32,
    /// The next offset the group will read.
    #[schema(minimum = 0)]
    pub offset: i64,
    /// Free text kept with the offset (at most 4096 characters).
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub metadata: Option<String>,
}

/// Body of an offset commit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommitBody {
    /// 1 to 10000 offsets, stored all or none.
    #[serde(deserialize_with = "super::json::objects")]
    #[schema(min_items = 1, max_items = 10000)]
    pub offsets: Vec<OffsetIn>,
    /// The committing member, for a group with members (fenced: it must
    /// own every partition it commits).
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9-]{1,64}$")]
    pub member_id: Option<String>,
    /// The generation the member was told; required with `member_id`.
    #[schema(minimum = 0)]
    pub generation: Option<i64>,
}

/// Result of an offset commit.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct CommitResponse {
    pub group: String,
    /// Offsets stored.
    pub committed: usize,
}

/// Commit a group's offsets (all or none).
#[utoipa::path(post, path = paths::GROUP_OFFSETS, tag = "groups", params(("group" = String, Path)),
    request_body = CommitBody,
    responses((status = 200, description = "Committed", body = CommitResponse),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition, or the member left or expired", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "Fenced: a stale generation, a partition the member does not own, or a plain commit to a group with live members", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Request bodies in flight hold the agent's budget; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn commit(
    State(state): State<AppState>,
    GroupPath { tenant, group }: GroupPath,
    body: Body,
) -> Result<Json<CommitResponse>, ApiError> {
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    let req: CommitBody = super::json::from_object(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("invalid offset commit: {e}"),
        )
        .with_field("body")
    })?;
    let entries = offset_entries(req.offsets)?;
    let by = match (&req.member_id, req.generation) {
        (None, None) => Committer::Plain,
        (Some(id), Some(generation)) => Committer::Member { id, generation },
        (Some(_), None) => {
            return Err(ApiError::field(
                "generation",
                "a commit naming member_id must name its generation",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::field(
                "member_id",
                "a commit naming a generation must name member_id",
            ));
        }
    };
    state
        .groups
        .commit(tenant.as_str(), &group, &entries, by)
        .await?;
    Ok(Json(CommitResponse {
        group,
        committed: entries.len(),
    }))
}

/// A stored offset.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct OffsetOut {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A group's committed offsets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct OffsetsOut {
    pub group: String,
    pub offsets: Vec<OffsetOut>,
}

/// `GET /v1/groups` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GroupListQuery {
    /// Return groups whose names sort after this one (the previous page's `next_after`).
    #[param(max_length = 255)]
    pub after: Option<String>,
    /// At most this many groups (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of group names.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct GroupList {
    pub groups: Vec<String>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// List the groups that have committed offsets, in name order, a page at a time.
#[utoipa::path(get, path = paths::GROUPS, tag = "groups", params(GroupListQuery),
    responses((status = 200, description = "A page of group names (a token sees the groups its commit scopes name)", body = GroupList)))]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<GroupListQuery>,
    caller: Caller,
) -> Result<Json<GroupList>, ApiError> {
    let limit = page_limit(q.limit)?;
    if q.after.as_ref().is_some_and(|a| a.len() > MAX_GROUP_NAME) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("after must be at most {MAX_GROUP_NAME} bytes (a group name)"),
        )
        .with_field("after")
        .with_limit(MAX_GROUP_NAME as u64));
    }
    let names = state
        .metadata
        .groups
        .list_groups(caller.tenant.as_str(), q.after.as_deref(), limit)
        .await?;
    let next_after = (names.len() == limit as usize).then(|| names[names.len() - 1].clone());
    Ok(Json(GroupList {
        groups: names
            .into_iter()
            .filter(|g| caller.may(Action::Commit, g))
            .collect(),
        next_after,
    }))
}

/// Fetch a group's committed offsets.
#[utoipa::path(get, path = paths::GROUP_OFFSETS, tag = "groups", params(("group" = String, Path)),
    responses((status = 200, description = "Committed offsets (empty for an unknown group)", body = OffsetsOut)))]
pub(super) async fn fetch(
    State(state): State<AppState>,
    GroupPath { tenant, group }: GroupPath,
) -> Result<Json<OffsetsOut>, ApiError> {
    let rows = state.groups.fetch(tenant.as_str(), &group).await?;
    Ok(Json(OffsetsOut {
        group,
        offsets: rows
            .into_iter()
            .map(|r| OffsetOut {
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                metadata: r.metadata,
                updated_at: r.updated_at_ms,
            })
            .collect(),
    }))
}

/// A group's lag in one partition.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct LagOut {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub high_watermark: i64,
    /// Records produced but not yet consumed: high watermark minus committed offset.
    pub lag: i64,
}

/// A group's lag.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct GroupLag {
    pub group: String,
    pub total_lag: i64,
    pub partitions: Vec<LagOut>,
}

/// How far a group is behind, per partition it has committed.
#[utoipa::path(get, path = paths::GROUP_LAG, tag = "groups", params(("group" = String, Path)),
    responses((status = 200, description = "Lag per partition", body = GroupLag)))]
pub(super) async fn lag(
    State(state): State<AppState>,
    GroupPath { tenant, group }: GroupPath,
) -> Result<Json<GroupLag>, ApiError> {
    let rows = state.groups.lag(tenant.as_str(), &group).await?;
    Ok(Json(GroupLag {
        total_lag: rows.iter().map(|r| r.lag).sum(),
        partitions: rows
            .into_iter()
            .map(|r| LagOut {
                topic: r.topic,
                partition: r.partition,
                committed_offset: r.committed_offset,
                high_watermark: r.high_watermark,
                lag: r.lag,
            })
            .collect(),
        group,
    }))
}
