//! Extractors whose rejections are problem+json like every other error:
//! a topic (and partition, and group) named in the
//! path and resolved for that tenant, query parameters, bodies.
//!
//! Handlers list query extractors before path extractors, so a request
//! with a bad parameter hears about the parameter first, as it always did.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::auth::{Action, Caller};
use crate::model::{Tenant, TopicMeta};

/// The live topic `name` of `tenant`, or a 404 naming it.
pub(super) async fn resolve_topic(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
) -> Result<Arc<TopicMeta>, ApiError> {
    state
        .metadata
        .topics
        .get_topic(tenant.as_str(), name)
        .await?
        .ok_or_else(|| ApiError::topic_not_found(name))
}

/// Checks a partition number against a topic: a 404 naming it otherwise.
pub(super) fn partition_of(topic: &TopicMeta, partition: i64) -> Result<i32, ApiError> {
    if partition < 0 || partition >= i64::from(topic.partition_count) {
        return Err(ApiError::partition_not_found(
            &topic.name,
            partition,
            topic.partition_count,
        ));
    }
    Ok(partition as i32)
}

#[derive(Deserialize)]
struct TopicParam {
    topic: String,
}

#[derive(Deserialize)]
struct PartitionParams {
    topic: String,
    partition: i64,
}

/// `{topic}` in the path, resolved for the caller's tenant (404 when the
/// tenant has no such live topic). Handlers check the caller's scope.
#[derive(Debug, Clone)]
pub(super) struct TopicPath {
    pub caller: Caller,
    pub tenant: Tenant,
    pub topic: Arc<TopicMeta>,
}

impl FromRequestParts<AppState> for TopicPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let ApiPath(TopicParam { topic }) = ApiPath::from_request_parts(parts, state).await?;
        let topic = resolve_topic(state, &caller.tenant, &topic).await?;
        Ok(TopicPath {
            tenant: caller.tenant.clone(),
            caller,
            topic,
        })
    }
}

/// `{topic}/partitions/{partition}` in the path, resolved: 400 for a
/// partition that is not a number, 404 for a missing topic or partition.
/// Resolved for the caller's tenant, and read only with `consume` on the topic.
#[derive(Debug, Clone)]
pub(super) struct PartitionPath {
    pub caller: Caller,
    pub topic: Arc<TopicMeta>,
    pub partition: i32,
}

impl PartitionPath {
    /// Resolves the path for a caller who must be allowed `action`.
    async fn resolve(
        parts: &mut Parts,
        state: &AppState,
        action: Action,
    ) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let ApiPath(PartitionParams { topic, partition }) =
            ApiPath::from_request_parts(parts, state).await?;
        let topic = resolve_topic(state, &caller.tenant, &topic).await?;
        super::auth::require(&caller, action, &topic.name)?;
        let partition = partition_of(&topic, partition)?;
        Ok(PartitionPath {
            caller,
            topic,
            partition,
        })
    }
}

impl FromRequestParts<AppState> for PartitionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        PartitionPath::resolve(parts, state, Action::Consume).await
    }
}

/// A [`PartitionPath`] for changing the partition: needs `admin` on the topic.
#[derive(Debug, Clone)]
pub(super) struct AdminPartitionPath(pub PartitionPath);

impl FromRequestParts<AppState> for AdminPartitionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        PartitionPath::resolve(parts, state, Action::Admin)
            .await
            .map(AdminPartitionPath)
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_problem(e.body_text())),
        }
    }
}

/// Parses a request's query string, for handlers that choose the shape late.
pub(super) fn query_of<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(v)| v)
        .map_err(|e| query_problem(e.body_text()))
}

/// A 400 for a query string that does not parse, naming the parameter when
/// the parser's message does: `…: <name>: <what is wrong>` for a bad
/// value, ``unknown field `<name>` `` for one not taken.
fn query_problem(text: String) -> ApiError {
    let is_name =
        |n: &&str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    let field = rest
        .split_once("unknown field `")
        .and_then(|(_, r)| r.split_once('`'))
        .map(|(n, _)| n)
        .filter(is_name)
        .or_else(|| rest.split_once(": ").map(|(n, _)| n).filter(is_name))
        .map(str::to_string);
    let e = ApiError::new(ErrorCode::InvalidQuery, text);
    match field {
        Some(f) => e.with_field(f),
        None => e,
    }
}

/// Path parameters; a bad one is a 400 (or 404 for partitions) naming it.
#[derive(Debug, Clone)]
pub(super) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::new(ErrorCode::InvalidField, e.body_text())),
        }
    }
}

/// The media type of a `Content-Type` header, lower-cased, without parameters.
pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    let m = v.split(';').next()?.trim().to_ascii_lowercase();
    (!m.is_empty()).then_some(m)
}

pub(super) use crate::render::is_json_media_type;

/// The `limit` of a listing: 1 to 1000, default 100; a 400 naming it otherwise.
pub(super) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::new(ErrorCode::InvalidQuery, "limit must be between 1 and 1000")
                .with_field("limit")
                .with_limit(1000),
        );
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_problem_names_the_parameter_the_parser_names() {
        let bad_value = query_problem(
            "Failed to deserialize query string: from: unknown variant `x`, expected `position` or `committed`".into(),
        );
        assert_eq!(bad_value.field.as_deref(), Some("from"));
        let unknown = query_problem(
            "Failed to deserialize query string: unknown field `offest`, expected one of `offset`, `limit`".into(),
        );
        assert_eq!(unknown.field.as_deref(), Some("offest"));
        let vague = query_problem("Failed to deserialize query string: expected a map".into());
        assert_eq!(vague.field, None);
    }
}
