//! Topic routes: create, list, describe, configure, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::require;
use super::body::small_json;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiQuery, TopicPath, page_limit};
use super::paths;
use crate::auth::{Action, Caller};
use crate::config::DEFAULT_COMPRESSION;
use crate::model::{
    CleanupPolicy, Compression, DEFAULT_DELETE_RETENTION_MS, NewTopic, TopicMeta, TopicSettings,
};

/// Longest topic name (Kafka's limit).
pub(super) const MAX_TOPIC_NAME: usize = 249;

/// Checks a topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(super) fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > MAX_TOPIC_NAME || !ok_chars || name == "." || name == ".." {
        return Err(ApiError::field(
            "name",
            format!(
                "topic name {name:?} must be 1 to {MAX_TOPIC_NAME} characters of A-Z a-z 0-9 . _ - (and not . or ..)"
            ),
        )
        .with_limit(MAX_TOPIC_NAME as u64));
    }
    Ok(())
}

/// Body of `POST /v1/topics`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateTopic {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$", min_length = 1, max_length = 249)]
    pub name: String,
    /// Number of partitions, at least 1 and at most `max-partitions-per-topic`
    /// (default 10000; a larger count gets 400).
    #[schema(minimum = 1, maximum = 100000)]
    pub partitions: i64,
    /// Records older than this are deleted (with `cleanup_policy` `delete`);
    /// absent keeps them forever.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub retention_ms: Option<i64>,
    /// Each partition keeps at most this many bytes of chunks, deleting its
    /// oldest (with `cleanup_policy` `delete`); absent keeps any amount.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub retention_bytes: Option<i64>,
    /// `delete` (default), `compact` (the latest record per key stays), or
    /// `compact,delete`.
    #[serde(default)]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// How long a tombstone (a record with a key and a null value) survives
    /// key compaction; default one day.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub delete_retention_ms: Option<i64>,
    /// Chunk compression; default `none`.
    #[serde(default)]
    pub compression: Option<Compression>,
}

/// Checks settings against their bounds; the error names the field.
fn check_settings(s: &TopicSettings) -> Result<(), ApiError> {
    if s.retention_ms.is_some_and(|r| r <= 0) {
        return Err(ApiError::field(
            "retention_ms",
            "retention_ms must be positive, or absent (null) to keep records forever",
        ));
    }
    if s.retention_bytes.is_some_and(|r| r <= 0) {
        return Err(ApiError::field(
            "retention_bytes",
            "retention_bytes must be positive, or absent (null) to keep any amount",
        ));
    }
    if s.delete_retention_ms < 0 {
        return Err(ApiError::field(
            "delete_retention_ms",
            "delete_retention_ms must not be negative",
        ));
    }
    Ok(())
}

/// A topic.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub cleanup_policy: CleanupPolicy,
    pub delete_retention_ms: i64,
    pub compression: Compression,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<&TopicMeta> for TopicInfo {
    fn from(t: &TopicMeta) -> Self {
        TopicInfo {
            name: t.name.clone(),
            partitions: t.partition_count,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
            cleanup_policy: t.cleanup_policy,
            delete_retention_ms: t.delete_retention_ms,
            compression: t.compression,
            created_at: t.created_at_ms,
        }
    }
}

/// Create a topic.
#[utoipa::path(post, path = paths::TOPICS, tag = "topics", request_body = CreateTopic,
    responses((status = 201, description = "Created", body = TopicInfo),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "A topic with this name exists", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body larger than 64 KiB", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Request bodies in flight hold the agent's budget; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = &caller.tenant;
    let req: CreateTopic = small_json(body, &state.bodies, "topic").await?;
    validate_topic_name(&req.name)?;
    require(&caller, Action::Admin, &req.name)?;
    let max = state.limits.max_partitions_per_topic;
    if req.partitions < 1 || req.partitions > i64::from(max) {
        return Err(ApiError::field(
            "partitions",
            format!(
                "partitions must be between 1 and {max} (max-partitions-per-topic), not {}",
                req.partitions
            ),
        )
        .with_limit(max as u64));
    }
    let settings = TopicSettings {
        retention_ms: req.retention_ms,
        retention_bytes: req.retention_bytes,
        cleanup_policy: req.cleanup_policy.unwrap_or_default(),
        delete_retention_ms: req
            .delete_retention_ms
            .unwrap_or(DEFAULT_DELETE_RETENTION_MS),
        compression: req.compression.unwrap_or(DEFAULT_COMPRESSION),
    };
    check_settings(&settings)?;
    let topic = NewTopic {
        tenant: tenant.as_str().to_string(),
        name: req.name,
        partition_count: req.partitions as i32,
        settings,
    };
    let created = state
        .metadata
        .topics
        .create_topic(&topic, state.clock.now_ms())
        .await
        .map_err(|e| match e {
            crate::metadata::MetadataError::AlreadyExists(_) => ApiError::new(
                ErrorCode::TopicExists,
                format!("topic {:?} already exists", topic.name),
            )
            .with_field("name"),
            other => other.into(),
        })?;
    let location = format!("/v1/topics/{}", created.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(TopicInfo::from(&created)),
    )
        .into_response())
}

/// `GET /v1/topics` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Return topics whose names sort after this one (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many topics (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of topics.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct TopicList {
    pub topics: Vec<TopicInfo>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// List topics, in name order, a page at a time.
#[utoipa::path(get, path = paths::TOPICS, tag = "topics", params(ListQuery),
    responses((status = 200, description = "A page of topics", body = TopicList)))]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
    caller: Caller,
) -> Result<Json<TopicList>, ApiError> {
    let tenant = &caller.tenant;
    let limit = page_limit(q.limit)?;
    let topics = state
        .metadata
        .topics
        .list_topics(tenant.as_str(), q.after.as_deref(), limit)
        .await?;
    let next_after =
        (topics.len() == limit as usize).then(|| topics[topics.len() - 1].name.clone());
    // A token sees the topics its scopes name (a page may hold fewer).
    Ok(Json(TopicList {
        topics: topics
            .iter()
            .filter(|t| caller.may_see(&t.name))
            .map(TopicInfo::from)
            .collect(),
        next_after,
    }))
}

/// `GET /v1/topics/{topic}` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DescribeQuery {
    /// First partition to describe (default 0).
    #[param(minimum = 0)]
    pub partition_from: Option<i32>,
    /// At most this many partitions (1 to 1000, default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub partition_limit: Option<u32>,
}

/// One partition's offsets and size.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct PartitionInfo {
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Bytes of stored chunks.
    pub bytes: i64,
    /// Objects holding the partition's chunks.
    pub objects: i64,
    /// Offset-index rows (one per stored chunk) in the metadata store.
    pub index_rows: i64,
}

/// A topic and (a page of) its partitions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct TopicDetail {
    #[serde(flatten)]
    pub topic: TopicInfo,
    pub partition_details: Vec<PartitionInfo>,
    /// Pass as `partition_from` for the next page; null on the last page.
    pub next_partition: Option<i32>,
}

/// Describe a topic: per partition, log start, high watermark, bytes and objects.
#[utoipa::path(get, path = paths::TOPIC, tag = "topics", params(("topic" = String, Path), DescribeQuery),
    responses((status = 200, description = "The topic", body = TopicDetail),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn describe(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
    TopicPath { caller, topic, .. }: TopicPath,
) -> Result<Json<TopicDetail>, ApiError> {
    if !caller.may_see(&topic.name) {
        return Err(super::auth::forbidden(Action::Consume, &topic.name));
    }
    let from = q.partition_from.unwrap_or(0);
    if from < 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "partition_from must not be negative",
        )
        .with_field("partition_from"));
    }
    let limit = q.partition_limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "partition_limit must be between 1 and 1000",
        )
        .with_field("partition_limit")
        .with_limit(1000));
    }
    let parts = state.metadata.log.partitions(topic.id, from, limit).await?;
    let to = parts.last().map_or(from, |p| p.partition + 1);
    let objects: std::collections::HashMap<i32, (i64, i64)> = state
        .metadata
        .lifecycle
        .partition_objects(topic.id, from, to)
        .await?
        .into_iter()
        .map(|p| (p.partition, (p.objects, p.rows)))
        .collect();
    let next = parts
        .last()
        .map(|p| p.partition + 1)
        .filter(|&n| n < topic.partition_count);
    Ok(Json(TopicDetail {
        topic: TopicInfo::from(topic.as_ref()),
        partition_details: parts
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.next_offset,
                bytes: p.bytes,
                objects: objects.get(&p.partition).map_or(0, |o| o.0),
                index_rows: objects.get(&p.partition).map_or(0, |o| o.1),
            })
            .collect(),
        next_partition: next,
    }))
}

/// Body of `PATCH /v1/topics/{topic}`: the settings to change; absent ones stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigureTopic {
    /// Records older than this are deleted; `null` keeps them forever.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub retention_ms: Option<Option<i64>>,
    /// Bytes each partition keeps at most; `null` keeps any amount.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub retention_bytes: Option<Option<i64>>,
    /// `delete`, `compact` or `compact,delete`.
    #[serde(default)]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// How long tombstones survive key compaction.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub delete_retention_ms: Option<i64>,
    /// Compression of chunks flushed from now on (stored chunks keep theirs).
    #[serde(default)]
    pub compression: Option<Compression>,
}

/// A field that is present, possibly `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Change a topic's settings (`admin`). The agent that takes the change
/// applies it at once, others within `--topic-cache-ttl`.
#[utoipa::path(patch, path = paths::TOPIC, tag = "topics", params(("topic" = String, Path)),
    request_body = ConfigureTopic,
    responses((status = 200, description = "The topic as changed", body = TopicInfo),
              (status = 400, description = "Invalid setting", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body larger than 64 KiB", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Request bodies in flight hold the agent's budget; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn configure(
    State(state): State<AppState>,
    TopicPath {
        caller,
        tenant,
        topic,
    }: TopicPath,
    body: Body,
) -> Result<Json<TopicInfo>, ApiError> {
    require(&caller, Action::Admin, &topic.name)?;
    let change: ConfigureTopic = small_json(body, &state.bodies, "settings").await?;
    let settings = TopicSettings {
        retention_ms: change.retention_ms.unwrap_or(topic.retention_ms),
        retention_bytes: change.retention_bytes.unwrap_or(topic.retention_bytes),
        cleanup_policy: change.cleanup_policy.unwrap_or(topic.cleanup_policy),
        delete_retention_ms: change
            .delete_retention_ms
            .unwrap_or(topic.delete_retention_ms),
        compression: change.compression.unwrap_or(topic.compression),
    };
    check_settings(&settings)?;
    let changed = state
        .metadata
        .topics
        .configure_topic(tenant.as_str(), &topic.name, &settings)
        .await?
        .ok_or_else(|| ApiError::topic_not_found(&topic.name))?;
    Ok(Json(TopicInfo::from(&changed)))
}

/// Delete a topic; its name is free at once and its records are never returned again.
#[utoipa::path(delete, path = paths::TOPIC, tag = "topics", params(("topic" = String, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    TopicPath {
        caller,
        tenant,
        topic,
    }: TopicPath,
) -> Result<StatusCode, ApiError> {
    require(&caller, Action::Admin, &topic.name)?;
    let deleted = state
        .metadata
        .topics
        .delete_topic(tenant.as_str(), &topic.name, state.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::topic_not_found(&topic.name))?;
    state.watermarks.forget_topic(deleted.id);
    Ok(StatusCode::NO_CONTENT)
}
