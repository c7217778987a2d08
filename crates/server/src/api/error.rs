//! HTTP errors as RFC 9457 `application/problem+json`.
//!
//! Every failure a handler can return is an [`ApiError`]: an [`ErrorCode`]
//! (which alone chooses the status and the stable `type` URI), a message
//! for humans that names the field and the limit, and optional members.
//! 5xx bodies never carry internals: the cause is logged once, here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::groups::GroupError;
use crate::ingest::ProduceError;
use crate::metadata::MetadataError;
use crate::read::ReadError;

/// Every kind of error the API reports. The `type` of a problem is
/// `urn:streamhouse:problem:<code>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidField,
    InvalidQuery,
    MalformedRequest,
    UriTooLong,
    HeadTooLarge,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    TokenExpired,
    Forbidden,
    OriginNotAllowed,
    HostNotAllowed,
    QuotaExceeded,
    TopicNotFound,
    PartitionNotFound,
    TopicExists,
    OffsetOutOfRange,
    IdempotencyKeyReused,
    MemberNotFound,
    StaleGeneration,
    NotPartitionOwner,
    GroupHasMembers,
    GroupFull,
    MemberTakenOver,
    SubscriptionNotFound,
    SubscriptionExists,
    ObjectNotKept,
    RouteNotFound,
    MethodNotAllowed,
    UpgradeRequired,
    Overloaded,
    TooManyConnections,
    RequestTimeout,
    ShuttingDown,
    Unavailable,
    CommitOutcomeUnknown,
    Internal,
}

impl ErrorCode {
    /// The one place statuses are chosen.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidField
            | ErrorCode::InvalidQuery
            | ErrorCode::MalformedRequest => StatusCode::BAD_REQUEST,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::HostNotAllowed => StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TopicNotFound | ErrorCode::PartitionNotFound | ErrorCode::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::TopicExists
            | ErrorCode::StaleGeneration
            | ErrorCode::NotPartitionOwner
            | ErrorCode::GroupHasMembers
            | ErrorCode::GroupFull
            | ErrorCode::MemberTakenOver
            | ErrorCode::SubscriptionExists => StatusCode::CONFLICT,
            ErrorCode::MemberNotFound
            | ErrorCode::SubscriptionNotFound
            | ErrorCode::ObjectNotKept => StatusCode::NOT_FOUND,
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ErrorCode::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::TooManyConnections
            | ErrorCode::ShuttingDown
            | ErrorCode::Unavailable
            | ErrorCode::CommitOutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the problem `type`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid-json",
            ErrorCode::InvalidField => "invalid-field",
            ErrorCode::InvalidQuery => "invalid-query",
            ErrorCode::MalformedRequest => "malformed-request",
            ErrorCode::UriTooLong => "uri-too-long",
            ErrorCode::HeadTooLarge => "head-too-large",
            ErrorCode::UnsupportedMediaType => "unsupported-media-type",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token-expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::OriginNotAllowed => "origin-not-allowed",
            ErrorCode::HostNotAllowed => "host-not-allowed",
            ErrorCode::QuotaExceeded => "quota-exceeded",
            ErrorCode::TopicNotFound => "topic-not-found",
            ErrorCode::PartitionNotFound => "partition-not-found",
            ErrorCode::TopicExists => "topic-exists",
            ErrorCode::OffsetOutOfRange => "offset-out-of-range",
            ErrorCode::IdempotencyKeyReused => "idempotency-key-reused",
            ErrorCode::MemberNotFound => "member-not-found",
            ErrorCode::StaleGeneration => "stale-generation",
            ErrorCode::NotPartitionOwner => "not-partition-owner",
            ErrorCode::GroupHasMembers => "group-has-members",
            ErrorCode::GroupFull => "group-full",
            ErrorCode::MemberTakenOver => "member-taken-over",
            ErrorCode::SubscriptionNotFound => "subscription-not-found",
            ErrorCode::SubscriptionExists => "subscription-exists",
            ErrorCode::ObjectNotKept => "object-not-kept",
            ErrorCode::RouteNotFound => "route-not-found",
            ErrorCode::MethodNotAllowed => "method-not-allowed",
            ErrorCode::UpgradeRequired => "upgrade-required",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::TooManyConnections => "too-many-connections",
            ErrorCode::RequestTimeout => "request-timeout",
            ErrorCode::ShuttingDown => "shutting-down",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::CommitOutcomeUnknown => "commit-outcome-unknown",
            ErrorCode::Internal => "internal",
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "Malformed JSON",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidQuery => "Invalid query parameter",
            ErrorCode::MalformedRequest => "Malformed request",
            ErrorCode::UriTooLong => "Request target too long",
            ErrorCode::HeadTooLarge => "Request head too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::Unauthorized => "Authentication required",
            ErrorCode::TokenExpired => "Token expired",
            ErrorCode::Forbidden => "Not allowed by the token's scopes",
            ErrorCode::OriginNotAllowed => "Origin not allowed",
            ErrorCode::HostNotAllowed => "Host not allowed",
            ErrorCode::QuotaExceeded => "Tenant quota exceeded",
            ErrorCode::TopicNotFound => "Topic not found",
            ErrorCode::PartitionNotFound => "Partition not found",
            ErrorCode::TopicExists => "Topic already exists",
            ErrorCode::OffsetOutOfRange => "Offset out of range",
            ErrorCode::IdempotencyKeyReused => "Idempotency key reused",
            ErrorCode::MemberNotFound => "Group member not found",
            ErrorCode::StaleGeneration => "Stale group generation",
            ErrorCode::NotPartitionOwner => "Partition owned by another member",
            ErrorCode::GroupHasMembers => "Group has live members",
            ErrorCode::GroupFull => "Group full",
            ErrorCode::MemberTakenOver => "Member taken over by another connection",
            ErrorCode::SubscriptionNotFound => "Subscription not found",
            ErrorCode::SubscriptionExists => "Subscription already exists",
            ErrorCode::ObjectNotKept => "Object not kept in memory",
            ErrorCode::RouteNotFound => "No such route",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::UpgradeRequired => "WebSocket upgrade required",
            ErrorCode::Overloaded => "Agent overloaded",
            ErrorCode::TooManyConnections => "Too many connections",
            ErrorCode::RequestTimeout => "Request body too slow",
            ErrorCode::ShuttingDown => "Shutting down",
            ErrorCode::Unavailable => "Temporarily unavailable",
            ErrorCode::CommitOutcomeUnknown => "Commit outcome unknown",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// The problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:streamhouse:problem:<code>`, stable per kind of error.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, naming the field and the limit.
    pub detail: String,
    /// The request field or parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The limit that was exceeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// For offset-out-of-range: the first readable offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<i64>,
    /// For offset-out-of-range: the high watermark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub field: Option<String>,
    pub limit: Option<u64>,
    pub range: Option<(i64, i64)>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            field: None,
            limit: None,
            range: None,
            retry_after: None,
        }
    }

    /// A 400 naming `field`.
    /// Names the partition's valid offsets (`log_start_offset`, `high_watermark`).
    pub fn with_range(mut self, log_start_offset: i64, high_watermark: i64) -> Self {
        self.range = Some((log_start_offset, high_watermark));
        self
    }

    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(ErrorCode::InvalidField, detail);
        e.field = Some(field.into());
        e
    }

    /// A 413 naming `field` and `limit`.
    pub fn too_large(field: impl Into<String>, limit: usize, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(ErrorCode::PayloadTooLarge, detail);
        e.field = Some(field.into());
        e.limit = Some(limit as u64);
        e
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn topic_not_found(topic: &str) -> Self {
        ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic {topic:?} does not exist"),
        )
    }

    pub fn partition_not_found(topic: &str, partition: i64, count: i32) -> Self {
        ApiError::new(
            ErrorCode::PartitionNotFound,
            format!(
                "topic {topic:?} has partitions 0 to {}; partition {partition} does not exist",
                count - 1
            ),
        )
        .with_field("partition")
    }

    /// A 503 whose cause is logged, not shown.
    pub fn unavailable(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "{context}");
        ApiError::new(ErrorCode::Unavailable, format!("{context}; retry shortly"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() && self.code != ErrorCode::ShuttingDown {
            tracing::debug!(code = self.code.code(), detail = %self.detail, "server error answered");
        }
        let problem = Problem {
            type_: format!("urn:streamhouse:problem:{}", self.code.code()),
            title: self.code.title().to_string(),
            status: status.as_u16(),
            detail: self.detail,
            field: self.field,
            limit: self.limit,
            log_start_offset: self.range.map(|r| r.0),
            high_watermark: self.range.map(|r| r.1),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self.code, ErrorCode::Unauthorized | ErrorCode::TokenExpired) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"streamhouse\""),
            );
        }
        if self.code == ErrorCode::UpgradeRequired {
            resp.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::AlreadyExists(what) => {
                ApiError::new(ErrorCode::TopicExists, format!("{what} already exists"))
            }
            MetadataError::Invalid(msg) => ApiError::new(ErrorCode::InvalidField, msg),
            MetadataError::Unavailable(_)
            | MetadataError::Ambiguous(_)
            | MetadataError::KeysExist(_) => {
                ApiError::unavailable("the metadata store is unavailable", e)
            }
        }
    }
}

impl From<ProduceError> for ApiError {
    fn from(e: ProduceError) -> Self {
        match e {
            ProduceError::TopicNotFound(ref topic) => ApiError::topic_not_found(topic),
            ProduceError::PartitionNotFound {
                ref topic,
                index,
                partition,
                count,
            } => ApiError::partition_not_found(topic, partition, count)
                .with_field(format!("records[{index}].partition")),
            ProduceError::NoRecords => ApiError::field("records", e.to_string()),
            ProduceError::TooLarge { limit, .. } => {
                ApiError::too_large("records", limit, e.to_string())
            }
            ProduceError::Overloaded { limit, retry_after } => {
                let mut err =
                    ApiError::new(ErrorCode::Overloaded, e.to_string()).with_limit(limit as u64);
                err.retry_after = Some(retry_after);
                err
            }
            ProduceError::ShuttingDown => ApiError::new(ErrorCode::ShuttingDown, e.to_string()),
            ProduceError::TopicGone => ApiError::new(ErrorCode::TopicNotFound, e.to_string()),
            ProduceError::Unavailable(ref cause) => {
                tracing::warn!(%cause, "produce failed");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the records were not stored (object store or metadata store failed); nothing was appended, retry",
                )
            }
            ProduceError::KeyReused(ref key) => ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                format!("Idempotency-Key {key:?} was already used with a different request; use a new key"),
            )
            .with_field("Idempotency-Key"),
            ProduceError::Unknown(ref cause) => {
                tracing::warn!(%cause, "produce outcome unknown");
                ApiError::new(
                    ErrorCode::CommitOutcomeUnknown,
                    "the metadata store did not confirm the commit; the records may or may not have been appended",
                )
            }
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::OutOfRange {
                log_start_offset,
                high_watermark,
                ..
            } => ApiError::new(ErrorCode::OffsetOutOfRange, e.to_string())
                .with_field("offset")
                .with_range(log_start_offset, high_watermark),
            ReadError::TopicGone => ApiError::new(ErrorCode::TopicNotFound, "topic was deleted"),
            ReadError::Unavailable(cause) => {
                ApiError::unavailable("the read could not be served", cause)
            }
            ReadError::Corrupt(cause) => {
                tracing::error!(%cause, "stored data failed to decode");
                ApiError::new(ErrorCode::Internal, "stored data could not be decoded")
            }
        }
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::TopicNotFound(t) => {
                ApiError::topic_not_found(&t).with_field("offsets.topic")
            }
            GroupError::PartitionNotFound {
                topic,
                partition,
                count,
            } => ApiError::partition_not_found(&topic, i64::from(partition), count)
                .with_field("offsets.partition"),
            GroupError::MemberNotFound(_) => {
                ApiError::new(ErrorCode::MemberNotFound, e.to_string()).with_field("member_id")
            }
            GroupError::StaleGeneration { .. } => {
                ApiError::new(ErrorCode::StaleGeneration, e.to_string()).with_field("generation")
            }
            GroupError::NotOwner { .. } => {
                ApiError::new(ErrorCode::NotPartitionOwner, e.to_string()).with_field("offsets")
            }
            GroupError::HasMembers(_) => {
                ApiError::new(ErrorCode::GroupHasMembers, e.to_string()).with_field("member_id")
            }
            GroupError::GroupFull(n) => ApiError::new(ErrorCode::GroupFull, e.to_string())
                .with_field("group")
                .with_limit(n as u64),
            GroupError::Busy => {
                let mut a = ApiError::new(ErrorCode::Unavailable, e.to_string());
                a.retry_after = Some(Duration::from_secs(1));
                a
            }
            GroupError::TakenOver(_) => {
                ApiError::new(ErrorCode::MemberTakenOver, e.to_string()).with_field("member_id")
            }
            GroupError::Forbidden(_) => {
                ApiError::new(ErrorCode::Forbidden, e.to_string()).with_field("topics")
            }
            GroupError::Read(r) => r.into(),
            GroupError::Metadata(m) => m.into(),
        }
    }
}
