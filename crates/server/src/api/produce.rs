//! Produce routes: JSON/NDJSON records, and raw-event publish. Thin
//! adapters: each parses its body into records and hands them to
//! [`Ingest::append`](crate::ingest::Ingest::append), then renders the
//! answer.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::auth::{over_quota, require};
use super::body::read_body;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiQuery, TopicPath, is_json_media_type, media_type};
use super::records_in::{parse_json, parse_ndjson};
use super::{AppState, paths};
use crate::auth::Action;
use crate::ingest::{Append, NewRecord, Produced, RequestKey};
use crate::model::{Header, Record};

/// Where one record landed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct RecordOffsetOut {
    pub partition: i32,
    pub offset: i64,
}

/// One offset per record, in request order.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct ProduceResponse {
    pub offsets: Vec<RecordOffsetOut>,
}

impl From<&Produced> for ProduceResponse {
    fn from(p: &Produced) -> Self {
        ProduceResponse {
            offsets: p
                .offsets
                .iter()
                .map(|o| RecordOffsetOut {
                    partition: o.partition,
                    offset: o.offset,
                })
                .collect(),
        }
    }
}

/// Longest idempotency key.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An idempotency key is 1 to 255 visible ASCII characters.
pub(super) fn check_idempotency_key(key: &str, field: &str) -> Result<(), ApiError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(ApiError::field(
            field,
            format!("{field} must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
        .with_limit(MAX_IDEMPOTENCY_KEY as u64));
    }
    Ok(())
}

/// The `Idempotency-Key` header, checked: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, Default)]
pub(super) struct IdempotencyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyHeader(None));
        };
        let key = v.to_str().unwrap_or("");
        check_idempotency_key(key, "Idempotency-Key")?;
        Ok(IdempotencyHeader(Some(key.to_string())))
    }
}

/// SHA-256 over everything that shapes the records, so the same key with
/// another request can be told apart.
pub(super) fn fingerprint(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of a [`ProduceResponse`], written by hand: a batch answers one
/// object per record, and this is most of a produce's serializing.
fn response_body(produced: &Produced) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36 * produced.offsets.len());
    out.extend_from_slice(b"{\"offsets\":[");
    let mut n = itoa::Buffer::new();
    for (i, o) in produced.offsets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"partition\":");
        out.extend_from_slice(n.format(o.partition).as_bytes());
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(n.format(o.offset).as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// Renders an answer; a replayed one is marked `Idempotency-Replayed: true`.
fn respond(produced: &Produced) -> Response {
    let mut resp = (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        response_body(produced),
    )
        .into_response();
    if produced.replayed {
        resp.headers_mut().insert(
            "idempotency-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    resp
}

/// How a records body is written, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordsFormat {
    Json,
    Ndjson,
}

impl<S: Send + Sync> FromRequestParts<S> for RecordsFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match media_type(&parts.headers).as_deref() {
            Some("application/json") => Ok(RecordsFormat::Json),
            Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
                Ok(RecordsFormat::Ndjson)
            }
            other => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted here; send application/json or application/x-ndjson, \
                     or POST any body to {}",
                    other.unwrap_or("none"),
                    parts.uri.path().replace("/records", "/publish")
                ),
            )
            .with_field("content-type")),
        }
    }
}

/// Produce records (JSON or NDJSON). Answers once they are durable.
///
/// With an `Idempotency-Key` header (1 to 255 visible ASCII characters), a
/// retry of the same request within the idempotency window returns the
/// first answer and appends nothing (marked `Idempotency-Replayed: true`);
/// a retry while the first is in flight waits for its answer; the same key
/// with a different body gets 422.
#[utoipa::path(post, path = paths::RECORDS, tag = "records", params(("topic" = String, Path), ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters; a retry with the same key returns the first answer")),
    request_body(content(
        (super::records_in::ProduceBody = "application/json"),
        (super::records_in::InRecord = "application/x-ndjson")
    )),
    responses((status = 200, description = "Stored; one offset per record", body = ProduceResponse),
              (status = 400, description = "Invalid records", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Unsupported content type", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "Idempotency-Key already used with a different request", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Agent buffer or request-body budget full; see Retry-After", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not stored; retry", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn produce(
    State(state): State<AppState>,
    IdempotencyHeader(key): IdempotencyHeader,
    format: RecordsFormat,
    TopicPath {
        caller,
        tenant,
        topic,
    }: TopicPath,
    body: Body,
) -> Result<Response, ApiError> {
    require(&caller, Action::Produce, &topic.name)?;
    let (body, _permit) = read_body(body, state.limits.max_body_bytes, &state.bodies).await?;
    state
        .quotas
        .produce(tenant.as_str(), body.len())
        .map_err(|e| over_quota(&state, tenant.as_str(), e))?;
    let now = state.clock.now_ms();
    let (records, kind): (_, &[u8]) = match format {
        RecordsFormat::Json => (parse_json(&body, &state.limits, now)?, b"records:json"),
        RecordsFormat::Ndjson => (parse_ndjson(&body, &state.limits, now)?, b"records:ndjson"),
    };
    let idempotency = key.map(|key| RequestKey {
        fingerprint: fingerprint(&[kind, &body]),
        key,
    });
    let produced = state
        .ingest
        .append(Append {
            tenant,
            topic: topic.into(),
            records,
            idempotency,
            // JSON values are slices of the body: it lives while they do.
            held_bytes: body.len(),
        })
        .await?;
    Ok(respond(&produced))
}

/// `publish` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PublishQuery {
    /// Record key (text, at most `max-key-bytes`, 16 KiB, of UTF-8).
    pub key: Option<String>,
    /// Explicit partition; else by key, else round-robin.
    #[param(minimum = 0)]
    pub partition: Option<i64>,
}

/// Publish any body as one record (webhooks, serverless functions). The
/// body is the value, stored verbatim; its Content-Type is kept in the
/// record's `content-type` header. `Idempotency-Key` works as for records.
#[utoipa::path(post, path = paths::PUBLISH, tag = "records", params(("topic" = String, Path), PublishQuery, ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters; a retry with the same key returns the first answer")),
    request_body(content = Option<Value>, description = "Any bytes (may be empty), stored verbatim", content_type = "*/*"),
    responses((status = 200, description = "Stored", body = ProduceResponse),
              (status = 400, description = "Body labelled JSON is not JSON", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 408, description = "The body did not arrive within body-read-timeout", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "Idempotency-Key already used with a different request", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Agent buffer or request-body budget full; see Retry-After", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not stored; retry", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PublishQuery>,
    IdempotencyHeader(idem): IdempotencyHeader,
    TopicPath {
        caller,
        tenant,
        topic,
    }: TopicPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(&caller, Action::Produce, &topic.name)?;
    let limit = state.limits.max_value_bytes;
    let (value, _permit) = read_body(body, limit, &state.bodies)
        .await
        .map_err(|mut e| {
            if e.code == ErrorCode::PayloadTooLarge {
                e.detail = format!("the event is larger than {limit} bytes (max-value-bytes)");
            }
            e
        })?;
    state
        .quotas
        .produce(tenant.as_str(), value.len())
        .map_err(|e| over_quota(&state, tenant.as_str(), e))?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if content_type.as_deref().is_some_and(is_json_media_type)
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&value)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "the body is labelled {} but is not valid JSON: {e}",
                content_type.unwrap_or_default()
            ),
        )
        .with_field("body"));
    }
    let max_key = state.limits.max_key_bytes;
    if let Some(k) = &q.key
        && k.len() > max_key
    {
        return Err(ApiError::too_large(
            "key",
            max_key,
            format!(
                "key is {} bytes; the limit is {max_key} (max-key-bytes)",
                k.len()
            ),
        ));
    }
    let idempotency = idem.map(|key| RequestKey {
        fingerprint: fingerprint(&[
            b"publish",
            content_type.as_deref().unwrap_or_default().as_bytes(),
            format!("{:?}/{:?}", q.key, q.partition).as_bytes(),
            &value,
        ]),
        key,
    });
    let record = Record {
        timestamp: state.clock.now_ms(),
        key: q.key.map(Bytes::from),
        value: Some(value),
        headers: content_type
            .map(|ct| {
                smallvec::smallvec![Header {
                    key: "content-type".into(),
                    value: Some(Bytes::from(ct)),
                }]
            })
            .unwrap_or_default(),
    };
    let produced = state
        .ingest
        .append(Append {
            tenant,
            topic: topic.into(),
            records: vec![NewRecord {
                partition: q.partition,
                record,
            }],
            idempotency,
            held_bytes: 0,
        })
        .await
        .map_err(|e| {
            // The one record's partition came from the query.
            let mut api = ApiError::from(e);
            if api.code == ErrorCode::PartitionNotFound {
                api.field = Some("partition".into());
            }
            api
        })?;
    Ok(respond(&produced))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::RecordOffset;

    #[test]
    fn the_hand_written_answer_is_the_documented_one() {
        for offsets in [
            vec![],
            vec![
                RecordOffset {
                    partition: 0,
                    offset: 0,
                },
                RecordOffset {
                    partition: 12,
                    offset: i64::MAX,
                },
            ],
        ] {
            let p = Produced {
                offsets,
                replayed: false,
            };
            let documented = serde_json::to_vec(&ProduceResponse::from(&p)).unwrap();
            assert_eq!(response_body(&p), documented);
        }
    }
}
