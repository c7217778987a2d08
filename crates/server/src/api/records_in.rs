//! Parsing produce bodies (JSON or NDJSON) into records, byte-exact.
//!
//! A JSON `value` is kept as the exact bytes the client sent (borrowed from
//! the request body, not re-serialized), so big numbers, key order and
//! whitespace survive. Absent `value` is a Kafka null (tombstone); `"value":
//! null` is the JSON value null. Every limit is checked here and reported
//! with the record index and the field. The types that parse a body are
//! the ones the OpenAPI description documents (`ProduceRecord`,
//! `ProduceBody`), so the two cannot drift apart.
//!
//! Limits are enforced while parsing, not after: each record is converted
//! as soon as it is read, and the count of records (and of each record's
//! headers) is checked as they arrive, so a hostile body cannot make the
//! parser hold millions of records before the answer is 413. The limits
//! reach the `Deserialize` impls through a per-thread parse context (a
//! parse never yields, so it runs on one thread from start to end).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::{ApiError, ErrorCode};
use super::extract::is_json_media_type;
use super::json::Object;
use crate::config::Limits;
use crate::ingest::NewRecord;
use crate::model::{Header, Headers, Record};

/// A record to produce.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProduceRecord)]
pub(super) struct InRecord<'a> {
    /// Key as text (its UTF-8 bytes); absent or null means no key.
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>)]
    key: Option<Cow<'a, str>>,
    /// Key as base64 bytes, instead of `key`.
    #[serde(default)]
    key_b64: Option<String>,
    /// Any JSON value, stored byte-exact. Absent (with no `value_b64`) is a
    /// Kafka null value (tombstone); `null` is the JSON value null.
    #[serde(default, borrow, deserialize_with = "present")]
    #[schema(value_type = Option<serde_json::Value>)]
    value: Option<&'a RawValue>,
    /// Value as base64 bytes, instead of `value`.
    #[serde(default)]
    value_b64: Option<String>,
    /// An object of string values, or a list of `{"key", "value"}` when a key repeats.
    #[serde(default)]
    #[schema(schema_with = headers_schema)]
    headers: Option<InHeaders>,
    /// Explicit partition; else murmur2 of the key (as Kafka), else round-robin.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 0)]
    partition: Option<i64>,
    /// Milliseconds since the Unix epoch; default: now. At most
    /// `max-timestamp-skew` (1 h) ahead of the agent's clock.
    #[serde(default)]
    #[schema(minimum = 0)]
    timestamp: Option<i64>,
}

/// Headers: `{"name": "value", ...}`, or `[{"key": "name", "value": "v"}, ...]`
/// when a name repeats; a value may be null.
fn headers_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
    };
    let text_or_null = || {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .build()
    };
    let map = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(text_or_null().into())));
    let pair = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("key", ObjectBuilder::new().schema_type(Type::String))
        .property("value", text_or_null())
        .required("key")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    OneOfBuilder::new()
        .item(map)
        .item(ArrayBuilder::new().items(pair))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "An object of string values, or a list of `{\"key\", \"value\"}` when a name repeats",
        ))
        .into()
}

/// `"value": null` must arrive as `Some("null")`, not `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Body of a JSON produce request. NDJSON bodies hold one record per line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProduceBody)]
pub(super) struct ProduceBody {
    /// The records, in order: at least one, at most `max-records-per-request`
    /// (default 10000).
    #[schema(value_type = Vec<InRecord>, min_items = 1, max_items = 10000)]
    records: Records,
}

/// What a parse needs from its caller, and what went wrong: set around
/// each parse by [`parsing`].
struct Context {
    body: Bytes,
    limits: Limits,
    now_ms: i64,
    /// Records converted so far: the index of the record being read.
    converted: usize,
    /// A limit broken while parsing, reported instead of serde's error.
    broken: Option<ApiError>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Runs `parse` with `body`, `limits` and `now_ms` as the parse context;
/// a limit broken while parsing wins over the error serde reports.
fn parsing<T>(
    body: &Bytes,
    limits: &Limits,
    now_ms: i64,
    parse: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    CONTEXT.with(|c| {
        *c.borrow_mut() = Some(Context {
            body: body.clone(),
            limits: limits.clone(),
            now_ms,
            converted: 0,
            broken: None,
        })
    });
    let out = parse();
    let ctx = CONTEXT.with(|c| c.borrow_mut().take());
    match ctx.and_then(|c| c.broken) {
        Some(broken) => Err(broken),
        None => out,
    }
}

/// Converts a record just read, counting it against the limit; on a
/// broken limit, records it in the context and returns the message for
/// serde's error.
fn convert_in_context(r: InRecord<'_>) -> Result<NewRecord, String> {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        let Some(ctx) = c.as_mut() else {
            return Err("no parse context".to_string());
        };
        let index = ctx.converted;
        let converted = check_count(index + 1, &ctx.limits)
            .and_then(|()| convert(&ctx.body, r, index, &ctx.limits, ctx.now_ms));
        match converted {
            Ok(rec) => {
                ctx.converted += 1;
                Ok(rec)
            }
            Err(e) => {
                let msg = e.detail.clone();
                ctx.broken = Some(e);
                Err(msg)
            }
        }
    })
}

/// The most headers a record may have, and the record's index, from the
/// parse context; `None` outside a parse.
fn header_limit() -> Option<(usize, usize)> {
    CONTEXT.with(|c| {
        let c = c.borrow();
        let ctx = c.as_ref()?;
        Some((ctx.limits.max_headers_per_record, ctx.converted))
    })
}

/// Reports a record with too many headers through the parse context.
fn too_many_headers(index: usize, max: usize) -> String {
    let e = ApiError::too_large(
        format!("records[{index}].headers"),
        max,
        format!("records[{index}].headers has more than {max} headers (max-headers-per-record)"),
    );
    let msg = e.detail.clone();
    CONTEXT.with(|c| {
        if let Some(ctx) = c.borrow_mut().as_mut() {
            ctx.broken = Some(e);
        }
    });
    msg
}

/// The records of a JSON body, each converted as soon as it is read.
#[derive(Debug, Default)]
struct Records(Vec<NewRecord>);

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Records, A::Error> {
                let mut out = Vec::new();
                while let Some(Object(r)) = s.next_element::<Object<InRecord<'de>>>()? {
                    out.push(convert_in_context(r).map_err(de::Error::custom)?);
                }
                Ok(Records(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Headers as an object of strings or a list of `{key, value}` pairs.
#[derive(Debug, Default)]
pub(super) struct InHeaders(Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for InHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pair {
            key: String,
            value: Option<String>,
        }
        impl<'de> Visitor<'de> for V {
            type Value = InHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values or a list of {\"key\", \"value\"} objects")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<InHeaders, A::Error> {
                let limit = header_limit();
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Option<String>>()? {
                    bounded(&out, limit)?;
                    out.push((k, v));
                }
                Ok(InHeaders(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<InHeaders, A::Error> {
                let limit = header_limit();
                let mut out = Vec::new();
                while let Some(Object(Pair { key, value })) = s.next_element()? {
                    bounded(&out, limit)?;
                    out.push((key, value));
                }
                Ok(InHeaders(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Refuses another header once a record has as many as it may.
fn bounded<E: de::Error>(
    headers: &[(String, Option<String>)],
    limit: Option<(usize, usize)>,
) -> Result<(), E> {
    match limit {
        Some((max, index)) if headers.len() >= max => Err(E::custom(too_many_headers(index, max))),
        _ => Ok(()),
    }
}

fn json_error(e: &serde_json::Error, line_offset: usize) -> ApiError {
    let line = e.line() + line_offset;
    let detail = match e.classify() {
        serde_json::error::Category::Data => format!("{e}"),
        _ => format!("malformed JSON at line {line}, column {}: {e}", e.column()),
    };
    ApiError::new(ErrorCode::InvalidJson, detail).with_field("body")
}

/// Parses an `application/json` body `{"records": [...]}`.
pub(super) fn parse_json(
    body: &Bytes,
    limits: &Limits,
    now_ms: i64,
) -> Result<Vec<NewRecord>, ApiError> {
    parsing(body, limits, now_ms, || {
        // Checked as UTF-8 once here, the body's strings and raw values are
        // not checked again one by one; a body that is not UTF-8 gets the
        // parser's own error, naming where.
        let parsed: Result<Object<ProduceBody>, _> = match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(body),
        };
        let Object(parsed) = parsed.map_err(|e| json_error(&e, 0))?;
        Ok(parsed.records.0)
    })
}

/// Parses an `application/x-ndjson` body: one record object per line.
pub(super) fn parse_ndjson(
    body: &Bytes,
    limits: &Limits,
    now_ms: i64,
) -> Result<Vec<NewRecord>, ApiError> {
    parsing(body, limits, now_ms, || {
        let mut out = Vec::new();
        let mut start = 0;
        // As for JSON bodies: checked as UTF-8 once, not per string.
        let text = std::str::from_utf8(body).ok();
        for (line_no, line) in body.split(|&b| b == b'\n').enumerate() {
            let this = start;
            start += line.len() + 1;
            let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
            if trimmed.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            check_count(out.len() + 1, limits)?;
            let end = this + trimmed.len();
            let r: Result<Object<InRecord<'_>>, _> = match text {
                Some(text) => serde_json::from_str(&text[this..end]),
                None => serde_json::from_slice(&body[this..end]),
            };
            let Object(r) = r.map_err(|e| json_error(&e, line_no))?;
            // A broken limit is in the context, and `parsing` reports it.
            let rec =
                convert_in_context(r).map_err(|msg| ApiError::new(ErrorCode::InvalidField, msg))?;
            out.push(rec);
        }
        if out.is_empty() {
            return Err(ApiError::field("records", "the body holds no records"));
        }
        Ok(out)
    })
}

fn check_count(n: usize, limits: &Limits) -> Result<(), ApiError> {
    if n > limits.max_records_per_request {
        return Err(ApiError::too_large(
            "records",
            limits.max_records_per_request,
            format!(
                "a request may hold at most {} records (max-records-per-request)",
                limits.max_records_per_request
            ),
        ));
    }
    Ok(())
}

fn decode_b64(field: String, s: &str) -> Result<Bytes, ApiError> {
    B64.decode(s)
        .map(Bytes::from)
        .map_err(|e| ApiError::field(field.clone(), format!("{field} is not valid base64: {e}")))
}

fn convert(
    body: &Bytes,
    r: InRecord<'_>,
    i: usize,
    limits: &Limits,
    now_ms: i64,
) -> Result<NewRecord, ApiError> {
    let at = |f: &str| format!("records[{i}].{f}");
    let key = match (r.key, r.key_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                at("key"),
                format!("{} and key_b64 are mutually exclusive", at("key")),
            ));
        }
        // A key with no escapes is borrowed from the body, not copied.
        (Some(Cow::Borrowed(k)), None) => Some(body.slice_ref(k.as_bytes())),
        (Some(Cow::Owned(k)), None) => Some(Bytes::from(k)),
        (None, Some(k)) => Some(decode_b64(at("key_b64"), &k)?),
        (None, None) => None,
    };
    if let Some(k) = &key
        && k.len() > limits.max_key_bytes
    {
        return Err(ApiError::too_large(
            at("key"),
            limits.max_key_bytes,
            format!(
                "{} is {} bytes; the limit is {} (max-key-bytes)",
                at("key"),
                k.len(),
                limits.max_key_bytes
            ),
        ));
    }
    let mut headers = Headers::new();
    let mut header_bytes = 0;
    let mut content_type = None;
    for (k, v) in r.headers.map(|h| h.0).unwrap_or_default() {
        header_bytes += k.len() + v.as_ref().map_or(0, String::len);
        if k.eq_ignore_ascii_case("content-type") {
            content_type = v.clone();
        }
        headers.push(Header {
            key: k.into(),
            value: v.map(Bytes::from),
        });
    }
    if headers.len() > limits.max_headers_per_record {
        return Err(ApiError::too_large(
            at("headers"),
            limits.max_headers_per_record,
            format!(
                "{} has {} headers; the limit is {} (max-headers-per-record)",
                at("headers"),
                headers.len(),
                limits.max_headers_per_record
            ),
        ));
    }
    if header_bytes > limits.max_header_bytes {
        return Err(ApiError::too_large(
            at("headers"),
            limits.max_header_bytes,
            format!(
                "{} are {header_bytes} bytes; the limit is {} (max-header-bytes)",
                at("headers"),
                limits.max_header_bytes
            ),
        ));
    }
    let value = match (r.value, r.value_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                at("value"),
                format!("{} and value_b64 are mutually exclusive", at("value")),
            ));
        }
        (Some(raw), None) => {
            match &content_type {
                Some(ct) if !is_json_media_type(ct) => {
                    return Err(ApiError::field(
                        at("headers"),
                        format!(
                            "{} is JSON but its content-type header says {ct:?}; use value_b64 for other media types",
                            at("value")
                        ),
                    ));
                }
                Some(_) => {}
                None => headers.push(Header {
                    key: "content-type".into(),
                    value: Some(Bytes::from_static(b"application/json")),
                }),
            }
            Some(body.slice_ref(raw.get().as_bytes()))
        }
        (None, Some(v)) => {
            let bytes = decode_b64(at("value_b64"), &v)?;
            if content_type.as_deref().is_some_and(is_json_media_type)
                && serde_json::from_slice::<de::IgnoredAny>(&bytes).is_err()
            {
                return Err(ApiError::field(
                    at("value_b64"),
                    format!(
                        "{} is labelled JSON by its content-type header but is not valid JSON",
                        at("value_b64")
                    ),
                ));
            }
            Some(bytes)
        }
        (None, None) => None,
    };
    if let Some(v) = &value
        && v.len() > limits.max_value_bytes
    {
        return Err(ApiError::too_large(
            at("value"),
            limits.max_value_bytes,
            format!(
                "{} is {} bytes; the limit is {} (max-value-bytes)",
                at("value"),
                v.len(),
                limits.max_value_bytes
            ),
        ));
    }
    if let Some(ts) = r.timestamp
        && ts < 0
    {
        return Err(ApiError::field(
            at("timestamp"),
            format!(
                "{} must be milliseconds since the Unix epoch, not negative",
                at("timestamp")
            ),
        ));
    }
    // A far-future timestamp would raise the partition's running maximum
    // for good and skew every seek by time.
    let latest = now_ms.saturating_add(limits.max_timestamp_skew.as_millis() as i64);
    if let Some(ts) = r.timestamp
        && ts > latest
    {
        return Err(ApiError::field(
            at("timestamp"),
            format!(
                "{} is {ts}, more than {} ahead of the agent's clock (max-timestamp-skew)",
                at("timestamp"),
                humantime::format_duration(limits.max_timestamp_skew)
            ),
        )
        .with_limit(latest as u64));
    }
    Ok(NewRecord {
        partition: r.partition,
        record: Record {
            timestamp: r.timestamp.unwrap_or(now_ms),
            key,
            value,
            headers,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_records_per_request: 3,
            max_key_bytes: 8,
            max_value_bytes: 64,
            max_header_bytes: 64,
            max_headers_per_record: 2,
            max_partitions_per_topic: 10,
            max_wait: std::time::Duration::from_secs(1),
            max_timestamp_skew: std::time::Duration::from_secs(3600),
            max_flush_bytes: 1 << 20,
            sse_heartbeat: std::time::Duration::from_secs(15),
            body_read_timeout: std::time::Duration::from_secs(60),
            ws_max_subscriptions: 10,
            ws_max_inflight_requests: 4,
            ws_max_partitions: 100,
            ws_max_message_bytes: 1 << 20,
            ws_max_buffered_bytes: 1 << 20,
            ws_max_bad_messages: 10,
        }
    }

    #[test]
    fn values_are_byte_exact_and_null_differs_from_absent() {
        let body = Bytes::from_static(
            br#"{"records":[{"value":{"b":1,"a":12345678901234567890.5}},{"value":null},{"key":"k"}]}"#,
        );
        let recs = parse_json(&body, &limits(), 7).unwrap();
        assert_eq!(
            recs[0].record.value.as_deref(),
            Some(&br#"{"b":1,"a":12345678901234567890.5}"#[..])
        );
        assert_eq!(recs[1].record.value.as_deref(), Some(&b"null"[..]));
        assert_eq!(recs[2].record.value, None);
        assert_eq!(recs[2].record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[0].record.timestamp, 7);
        assert_eq!(recs[0].record.headers[0].key, "content-type");
    }

    #[test]
    fn bodies_are_checked_as_utf8_once_and_still_refused_when_not() {
        let l = limits();
        let ok = Bytes::from("{\"records\":[{\"key\":\"clé\",\"value\":\"naïve ✓\"}]}");
        let recs = parse_json(&ok, &l, 0).unwrap();
        assert_eq!(recs[0].record.key.as_deref(), Some("clé".as_bytes()));
        assert_eq!(
            recs[0].record.value.as_deref(),
            Some("\"naïve ✓\"".as_bytes())
        );
        let nd = Bytes::from("{\"value\":\"é\"}\r\n{\"value\":2}\n");
        let recs = parse_ndjson(&nd, &l, 0).unwrap();
        assert_eq!(recs[0].record.value.as_deref(), Some("\"é\"".as_bytes()));
        assert_eq!(recs[1].record.value.as_deref(), Some(&b"2"[..]));
        for bad in [
            &b"{\"records\":[{\"value\":\"\xff\"}]}"[..],
            &b"{\"records\":[{\"key\":\"\xc3\",\"value\":1}]}"[..],
        ] {
            let e = parse_json(&Bytes::copy_from_slice(bad), &l, 0).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidJson, "{}", e.detail);
        }
        let e = parse_ndjson(
            &Bytes::from_static(b"{\"value\":1}\n{\"value\":\"\xff\"}\n"),
            &l,
            0,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson, "{}", e.detail);
        assert!(e.detail.contains("line 2"), "{}", e.detail);
    }

    #[test]
    fn errors_name_the_field_and_limit() {
        let l = limits();
        let e =
            parse_json(&Bytes::from_static(br#"{"records":[{"vlaue":1}]}"#), &l, 0).unwrap_err();
        assert!(e.detail.contains("unknown field `vlaue`"), "{}", e.detail);
        let e = parse_json(
            &Bytes::from_static(br#"{"records":[{"key":"123456789"}]}"#),
            &l,
            0,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        assert_eq!(e.field.as_deref(), Some("records[0].key"));
        assert_eq!(e.limit, Some(8));
        let e = parse_json(
            &Bytes::from_static(b"{\"records\":[{}, {}, {}, {}]}"),
            &l,
            0,
        )
        .unwrap_err();
        assert_eq!(e.limit, Some(3));
        let e = parse_json(
            &Bytes::from_static(b"{\"records\":[\n{\"value\": tru}]}"),
            &l,
            0,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.detail.contains("line 2"), "{}", e.detail);
        let e = parse_ndjson(&Bytes::from_static(b"{\"value\":1}\n{oops}\n"), &l, 0).unwrap_err();
        assert!(e.detail.contains("line 2"), "{}", e.detail);
        let e = parse_json(
            &Bytes::from_static(br#"{"records":[{"value_b64":"!!"}]}"#),
            &l,
            0,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("records[0].value_b64"));
    }

    #[test]
    fn headers_take_both_forms() {
        let body = Bytes::from_static(
            br#"{"records":[{"value_b64":"AAE=","headers":{"a":"1"}},{"headers":[{"key":"a","value":"1"},{"key":"a","value":null}]}]}"#,
        );
        let recs = parse_json(&body, &limits(), 0).unwrap();
        assert_eq!(recs[0].record.headers.len(), 1);
        assert_eq!(recs[1].record.headers.len(), 2);
        assert_eq!(recs[1].record.headers[1].value, None);
        assert_eq!(recs[0].record.value.as_deref(), Some(&[0u8, 1][..]));
    }

    #[test]
    fn limits_hold_while_parsing_not_after() {
        let l = limits();
        // A million empty records stop at the fourth, with the limit named.
        let mut body = String::from("{\"records\":[");
        body.push_str(&"{},".repeat(1_000_000));
        body.push_str("{}]}");
        let e = parse_json(&Bytes::from(body), &l, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        assert_eq!((e.field.as_deref(), e.limit), (Some("records"), Some(3)));
        // Headers are counted as they are read, in both forms.
        for headers in [
            r#"{"a":"1","b":"2","c":"3"}"#,
            r#"[{"key":"a","value":"1"},{"key":"a","value":"2"},{"key":"a","value":"3"}]"#,
        ] {
            let body = format!(r#"{{"records":[{{}},{{"headers":{headers}}}]}}"#);
            let e = parse_json(&Bytes::from(body), &l, 0).unwrap_err();
            assert_eq!(
                e.field.as_deref(),
                Some("records[1].headers"),
                "{}",
                e.detail
            );
            assert_eq!(e.limit, Some(2));
        }
        let nd = Bytes::from_static(b"{}\n{\"headers\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}\n");
        let e = parse_ndjson(&nd, &l, 0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("records[1].headers"));
        // A later parse on the same thread starts from a clean context.
        let ok = parse_json(&Bytes::from_static(br#"{"records":[{"value":1}]}"#), &l, 0).unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn far_future_timestamps_are_refused() {
        let l = limits();
        let now = 1_700_000_000_000;
        let ok = format!(r#"{{"records":[{{"timestamp":{}}}]}}"#, now + 3_600_000);
        assert!(
            parse_json(&Bytes::from(ok), &l, now).is_ok(),
            "up to the skew"
        );
        let late = format!(r#"{{"records":[{{}},{{"timestamp":{}}}]}}"#, i64::MAX);
        let e = parse_json(&Bytes::from(late), &l, now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("records[1].timestamp"));
        assert_eq!(e.limit, Some((now + 3_600_000) as u64));
        assert!(e.detail.contains("max-timestamp-skew"), "{}", e.detail);
    }
}
