//! Webhook subscription routes: create, list, describe, pause, resume,
//! delete. Every call needs `admin` on the subscription's topic; delivery
//! itself is `webhooks`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::read_body;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, ApiQuery, page_limit};
use super::{AppState, paths};
use crate::auth::{Action, Caller};
use crate::metadata::{MetadataError, SubscriptionRow, subscription_group};

const MAX_NAME: usize = 200;
const MAX_URL: usize = 2048;
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;

fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ApiError::field(
            "name",
            format!("a subscription name is 1 to {MAX_NAME} characters of A-Z a-z 0-9 . _ -"),
        )
        .with_limit(MAX_NAME as u64));
    }
    Ok(())
}

/// Where delivery starts in a partition the subscription has no offset for.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Start {
    Earliest,
    #[default]
    Latest,
}

/// Body of a subscription.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateSubscription {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,200}$", min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$", min_length = 1, max_length = 249)]
    pub topic: String,
    /// `http://` or `https://`; its host must be allowed by the agents'
    /// `--webhook-allow` (private addresses only when listed).
    #[schema(max_length = 2048)]
    pub url: String,
    /// The HMAC-SHA256 key of `StreamHouse-Signature` (16 to 256
    /// characters); generated and returned once when absent.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
    /// Records per delivery, at most (1 to 1000, default 100).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_batch_records: Option<i32>,
    /// After a delivery smaller than max_batch_records, how long records
    /// gather before the next (0 to 60000 ms, default 1000).
    #[schema(minimum = 0, maximum = 60000)]
    pub max_batch_wait_ms: Option<i64>,
    /// Attempts before a batch goes to the dead-letter topic
    /// `<name>.dlq` (1 to 100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    /// Where delivery starts (default latest).
    pub start: Option<Start>,
}

/// A subscription as described.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct SubscriptionOut {
    pub name: String,
    pub topic: String,
    pub url: String,
    pub max_batch_records: i32,
    pub max_batch_wait_ms: i64,
    pub max_attempts: i32,
    pub start: String,
    pub paused: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Records delivered (acknowledged with a 2xx).
    pub delivered: i64,
    /// Failed delivery attempts.
    pub attempts_failed: i64,
    /// Records sent to `<name>.dlq`.
    pub dead_lettered: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Records not yet delivered (null before the first delivery).
    pub lag: Option<i64>,
    /// The generated secret: returned once, by the create that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn out(s: SubscriptionRow, lag: Option<i64>, secret: Option<String>) -> SubscriptionOut {
    SubscriptionOut {
        name: s.name,
        topic: s.topic,
        url: s.url,
        max_batch_records: s.max_batch_records,
        max_batch_wait_ms: s.max_batch_wait_ms,
        max_attempts: s.max_attempts,
        start: s.start_at,
        paused: s.paused,
        created_at: s.created_at_ms,
        delivered: s.delivered,
        attempts_failed: s.failures,
        dead_lettered: s.dead_lettered,
        last_error: s.last_error,
        last_error_at: s.last_error_at_ms,
        lag,
        secret,
    }
}

fn bounded<T: PartialOrd + Copy + std::fmt::Display + Into<i64>>(
    field: &str,
    v: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ApiError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(
            ApiError::field(field, format!("{field} must be {min} to {max}"))
                .with_limit(max.into() as u64),
        );
    }
    Ok(v)
}

/// Create a webhook subscription: agents POST the topic's records to `url`.
#[utoipa::path(post, path = paths::SUBSCRIPTIONS, tag = "subscriptions",
    request_body = CreateSubscription,
    responses((status = 201, description = "Created (with the secret when it was generated)", body = SubscriptionOut),
              (status = 400, description = "Invalid request, or a url --webhook-allow refuses", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "A subscription by that name exists", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    let req: CreateSubscription = super::json::from_object(&body).map_err(|e| {
        ApiError::new(ErrorCode::InvalidJson, format!("invalid subscription: {e}"))
            .with_field("body")
    })?;
    validate_name(&req.name)?;
    super::auth::require(&caller, Action::Admin, &req.topic)?;
    // Exhausted batches are appended to `<name>.dlq`: the caller must be
    // allowed to produce there.
    super::auth::require(&caller, Action::Produce, &format!("{}.dlq", req.name))
        .map_err(|e| e.with_field("name"))?;
    if req.url.len() > MAX_URL {
        return Err(
            ApiError::field("url", format!("url is longer than {MAX_URL} bytes"))
                .with_limit(MAX_URL as u64),
        );
    }
    state
        .webhook_guard
        .check_url(&req.url)
        .map_err(|e| ApiError::field("url", e))?;
    let generated = req.secret.is_none();
    let secret = match req.secret {
        Some(s) if (MIN_SECRET..=MAX_SECRET).contains(&s.chars().count()) => s,
        Some(_) => {
            return Err(ApiError::field(
                "secret",
                format!("secret must be {MIN_SECRET} to {MAX_SECRET} characters"),
            )
            .with_limit(MAX_SECRET as u64));
        }
        None => (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect(),
    };
    let max_batch_records = bounded("max_batch_records", req.max_batch_records, 100, 1, 1000)?;
    let max_batch_wait_ms = bounded("max_batch_wait_ms", req.max_batch_wait_ms, 1000, 0, 60_000)?;
    let max_attempts = bounded("max_attempts", req.max_attempts, 10, 1, 100)?;
    let tenant = caller.tenant.as_str();
    if state
        .metadata
        .topics
        .get_topic(tenant, &req.topic)
        .await?
        .is_none()
    {
        return Err(ApiError::topic_not_found(&req.topic).with_field("topic"));
    }
    let row = SubscriptionRow {
        tenant: tenant.to_string(),
        name: req.name.clone(),
        topic: req.topic,
        url: req.url,
        secret: secret.clone(),
        max_batch_records,
        max_batch_wait_ms,
        max_attempts,
        start_at: match req.start.unwrap_or_default() {
            Start::Earliest => "earliest".into(),
            Start::Latest => "latest".into(),
        },
        paused: false,
        created_at_ms: state.clock.now_ms(),
        delivered: 0,
        failures: 0,
        dead_lettered: 0,
        last_error: None,
        last_error_at_ms: None,
    };
    match state.metadata.subscriptions.create_subscription(&row).await {
        Ok(()) => {}
        Err(MetadataError::AlreadyExists(_)) => {
            return Err(ApiError::new(
                ErrorCode::SubscriptionExists,
                format!("subscription {:?} already exists", req.name),
            )
            .with_field("name"));
        }
        Err(e) => return Err(e.into()),
    }
    let body = out(row, None, generated.then_some(secret));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `{name}` in the path: the caller's subscription, with `admin` on its topic.
async fn owned(state: &AppState, caller: &Caller, name: &str) -> Result<SubscriptionRow, ApiError> {
    validate_name(name)?;
    let s = state
        .metadata
        .subscriptions
        .get_subscription(caller.tenant.as_str(), name)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::SubscriptionNotFound,
                format!("subscription {name:?} does not exist"),
            )
            .with_field("name")
        })?;
    super::auth::require(caller, Action::Admin, &s.topic)?;
    Ok(s)
}

async fn lag(state: &AppState, s: &SubscriptionRow) -> Result<Option<i64>, ApiError> {
    let rows = state
        .groups
        .lag(&s.tenant, &subscription_group(&s.name, s.created_at_ms))
        .await?;
    Ok((!rows.is_empty()).then(|| rows.iter().map(|r| r.lag).sum()))
}

/// Describe a subscription: its settings, counters, last error and lag.
#[utoipa::path(get, path = paths::SUBSCRIPTION, tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 200, description = "The subscription", body = SubscriptionOut),
              (status = 404, description = "No such subscription", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    let s = owned(&state, &caller, &name).await?;
    let lag = lag(&state, &s).await?;
    Ok(Json(out(s, lag, None)))
}

/// `GET /v1/subscriptions` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Subscriptions whose names sort after this one.
    #[param(max_length = 200)]
    pub after: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of subscriptions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionOut>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// List subscriptions in name order (those on topics the token administers).
#[utoipa::path(get, path = paths::SUBSCRIPTIONS, tag = "subscriptions", params(ListQuery),
    responses((status = 200, description = "A page of subscriptions", body = SubscriptionList)))]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    let limit = page_limit(q.limit)?;
    if q.after.as_ref().is_some_and(|a| a.len() > MAX_NAME) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("after must be at most {MAX_NAME} bytes (a subscription name)"),
        )
        .with_field("after")
        .with_limit(MAX_NAME as u64));
    }
    let rows = state
        .metadata
        .subscriptions
        .list_subscriptions(
            Some(caller.tenant.as_str()),
            q.after.as_deref().map(|a| (caller.tenant.as_str(), a)),
            limit,
        )
        .await?;
    let next_after = (rows.len() == limit as usize).then(|| rows[rows.len() - 1].name.clone());
    Ok(Json(SubscriptionList {
        subscriptions: rows
            .into_iter()
            .filter(|s| caller.may(Action::Admin, &s.topic))
            .map(|s| out(s, None, None))
            .collect(),
        next_after,
    }))
}

async fn set_paused(
    state: AppState,
    caller: Caller,
    name: String,
    paused: bool,
) -> Result<Json<SubscriptionOut>, ApiError> {
    owned(&state, &caller, &name).await?;
    state
        .metadata
        .subscriptions
        .set_subscription_paused(caller.tenant.as_str(), &name, paused)
        .await?;
    let s = owned(&state, &caller, &name).await?;
    let lag = lag(&state, &s).await?;
    Ok(Json(out(s, lag, None)))
}

/// Pause delivery (agents stop within --webhook-poll-interval).
#[utoipa::path(post, path = paths::SUBSCRIPTION_PAUSE, tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 200, description = "Paused", body = SubscriptionOut),
              (status = 404, description = "No such subscription", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    set_paused(state, caller, name, true).await
}

/// Resume delivery from where it stopped.
#[utoipa::path(post, path = paths::SUBSCRIPTION_RESUME, tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 200, description = "Resumed", body = SubscriptionOut),
              (status = 404, description = "No such subscription", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    set_paused(state, caller, name, false).await
}

/// Delete a subscription and its progress (its dead-letter topic stays).
#[utoipa::path(delete, path = paths::SUBSCRIPTION, tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such subscription", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    owned(&state, &caller, &name).await?;
    state
        .metadata
        .subscriptions
        .delete_subscription(caller.tenant.as_str(), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
