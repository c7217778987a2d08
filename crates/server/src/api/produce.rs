//! Produce routes: JSON/NDJSON records, and raw-event publish.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, ApiQuery, is_json_media_type, media_type, read_body};
use super::records_in::{ParsedRecord, parse_json, parse_ndjson};
use crate::ingest::partitioner::partition_for_key;
use crate::ingest::{IdempotencyKey, ProduceRequest};
use crate::model::{DEFAULT_TENANT, TopicMeta};
use crate::model::{Header, Record};

/// A record to produce (documentation of the body shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct ProduceRecord {
    /// Key as text (its UTF-8 bytes); absent or null means no key.
    key: Option<String>,
    /// Key as base64 bytes, instead of `key`.
    key_b64: Option<String>,
    /// Any JSON value, stored byte-exact. Absent (with no `value_b64`) is a
    /// Kafka null value (tombstone); `null` is the JSON value null.
    #[schema(value_type = Object)]
    value: Option<serde_json::Value>,
    /// Value as base64 bytes, instead of `value`.
    value_b64: Option<String>,
    /// An object of string values, or a list of `{"key", "value"}` when a key repeats.
    #[schema(value_type = Object)]
    headers: Option<serde_json::Value>,
    /// Explicit partition; else murmur2 of the key (as Kafka), else round-robin.
    partition: Option<i32>,
    /// Milliseconds since the Unix epoch; default: now.
    timestamp: Option<i64>,
}

/// Body of a JSON produce request. NDJSON bodies hold one record per line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct ProduceBody {
    records: Vec<ProduceRecord>,
}

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

async fn live_topic(state: &AppState, name: &str) -> Result<std::sync::Arc<TopicMeta>, ApiError> {
    state
        .metadata
        .topics
        .get_topic(DEFAULT_TENANT, name)
        .await?
        .ok_or_else(|| ApiError::topic_not_found(name))
}

/// Assigns every parsed record its partition.
pub(super) fn assign_partitions(
    state: &AppState,
    topic: &TopicMeta,
    parsed: Vec<ParsedRecord>,
) -> Result<Vec<(i32, Record)>, ApiError> {
    if parsed.is_empty() {
        return Err(ApiError::field(
            "records",
            "records must hold at least one record",
        ));
    }
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, ParsedRecord { partition, record })| {
            let field = format!("records[{i}].partition");
            let p = pick_partition(state, topic, partition, record.key.as_deref(), &field)?;
            Ok((p, record))
        })
        .collect()
}

fn pick_partition(
    state: &AppState,
    topic: &TopicMeta,
    explicit: Option<i64>,
    key: Option<&[u8]>,
    field: &str,
) -> Result<i32, ApiError> {
    match (explicit, key) {
        (Some(p), _) => {
            if p < 0 || p >= i64::from(topic.partition_count) {
                return Err(
                    ApiError::partition_not_found(&topic.name, p, topic.partition_count)
                        .with_field(field),
                );
            }
            Ok(p as i32)
        }
        (None, Some(k)) => Ok(partition_for_key(k, topic.partition_count)),
        (None, None) => Ok(state.round_robin.next(topic.partition_count)),
    }
}

/// Longest idempotency key.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The `Idempotency-Key` header, checked: 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or("");
    check_idempotency_key(key, "Idempotency-Key")?;
    Ok(Some(key.to_string()))
}

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

async fn append(
    state: &AppState,
    topic: std::sync::Arc<TopicMeta>,
    records: Vec<(i32, Record)>,
    key: Option<(String, String)>,
) -> Result<Response, ApiError> {
    let idempotency = key.map(|(key, fingerprint)| IdempotencyKey {
        tenant: DEFAULT_TENANT.to_string(),
        key,
        fingerprint,
    });
    let produced = state
        .ingest
        .produce(ProduceRequest {
            topic: topic.clone(),
            records,
            idempotency,
        })
        .await?;
    let body = Json(ProduceResponse {
        offsets: produced
            .offsets
            .into_iter()
            .map(|o| RecordOffsetOut {
                partition: o.partition,
                offset: o.offset,
            })
            .collect(),
    });
    let mut resp = body.into_response();
    if produced.replayed {
        resp.headers_mut().insert(
            "idempotency-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// Produce records (JSON or NDJSON). Answers once they are durable.
///
/// With an `Idempotency-Key` header (1 to 255 visible ASCII characters), a
/// retry of the same request within the idempotency window returns the
/// first answer and appends nothing (marked `Idempotency-Replayed: true`);
/// a retry while the first is in flight waits for its answer; the same key
/// with a different body gets 422.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "records", params(("topic" = String, Path)),
    request_body(content(
        (ProduceBody = "application/json"),
        (ProduceRecord = "application/x-ndjson")
    )),
    responses((status = 200, description = "Stored; one offset per record", body = ProduceResponse),
              (status = 400, description = "Invalid records", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Unsupported content type", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "Idempotency-Key already used with a different request", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Agent buffer full; see Retry-After", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not stored; retry", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn produce(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let ndjson = match media_type(&headers).as_deref() {
        None | Some("application/json") => false,
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => true,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {other:?} is not accepted here; send application/json or application/x-ndjson, \
                     or POST any body to /v1/topics/{name}/publish"
                ),
            )
            .with_field("content-type"));
        }
    };
    let topic = live_topic(&state, &name).await?;
    let body = read_body(body, state.limits.max_body_bytes).await?;
    let now = state.clock.now_ms();
    let parsed = if ndjson {
        parse_ndjson(&body, &state.limits, now)?
    } else {
        parse_json(&body, &state.limits, now)?
    };
    let records = assign_partitions(&state, &topic, parsed)?;
    let kind: &[u8] = if ndjson {
        b"records:ndjson"
    } else {
        b"records:json"
    };
    let key = key.map(|k| (k, fingerprint(&[kind, &body])));
    append(&state, topic, records, key).await
}

/// `publish` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishQuery {
    /// Record key (text).
    pub key: Option<String>,
    /// Explicit partition; else by key, else round-robin.
    pub partition: Option<i64>,
}

/// Publish any body as one record (webhooks, serverless functions). The
/// body is the value, stored verbatim; its Content-Type is kept in the
/// record's `content-type` header. `Idempotency-Key` works as for records.
#[utoipa::path(post, path = "/v1/topics/{topic}/publish", tag = "records", params(("topic" = String, Path), PublishQuery),
    request_body(content = String, description = "Any bytes", content_type = "*/*"),
    responses((status = 200, description = "Stored", body = ProduceResponse),
              (status = 400, description = "Body labelled JSON is not JSON", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Too large", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PublishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idem = idempotency_key(&headers)?;
    let topic = live_topic(&state, &name).await?;
    let limit = state.limits.max_value_bytes;
    let value: Bytes = read_body(body, limit).await.map_err(|mut e| {
        if e.code == ErrorCode::PayloadTooLarge {
            e.detail = format!("the event is larger than {limit} bytes (max-value-bytes)");
        }
        e
    })?;
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
    let (q_key, q_partition) = (q.key.clone(), q.partition);
    let key = q.key.map(Bytes::from);
    if let Some(k) = &key
        && k.len() > state.limits.max_key_bytes
    {
        return Err(ApiError::too_large(
            "key",
            state.limits.max_key_bytes,
            format!(
                "key is {} bytes; the limit is {} (max-key-bytes)",
                k.len(),
                state.limits.max_key_bytes
            ),
        ));
    }
    let partition = pick_partition(&state, &topic, q.partition, key.as_deref(), "partition")?;
    let headers = content_type
        .map(|ct| {
            vec![Header {
                key: "content-type".into(),
                value: Some(Bytes::from(ct)),
            }]
        })
        .unwrap_or_default();
    let record = Record {
        timestamp: state.clock.now_ms(),
        key,
        value: Some(value),
        headers,
    };
    let key = idem.map(|k| {
        let ct = record
            .headers
            .first()
            .and_then(|h| h.value.clone())
            .unwrap_or_default();
        let query = format!("{:?}/{:?}", q_key, q_partition);
        let print = fingerprint(&[
            b"publish",
            &ct,
            query.as_bytes(),
            record.value.as_deref().unwrap_or_default(),
        ]);
        (k, print)
    });
    append(&state, topic, vec![(partition, record)], key).await
}
