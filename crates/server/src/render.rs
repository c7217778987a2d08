//! Rendering records as JSON, written straight into a buffer: for reads,
//! streams and webhook deliveries.
//!
//! A value stored with a JSON `content-type` header is spliced in as the
//! exact bytes the producer sent; any other value is base64. Produce and
//! publish only label a value JSON after checking that it is, so splicing
//! never breaks the document. The `Out*` types describe the same shape for
//! the OpenAPI description and for clients that deserialize it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::model::StoredRecord;

/// True for `application/json` and `*/*+json` media types.
pub(crate) fn is_json_media_type(media: &str) -> bool {
    let m = media.split(';').next().unwrap_or("").trim().as_bytes();
    let ends_json = m.len() >= 5 && m[m.len() - 5..].eq_ignore_ascii_case(b"+json");
    m.eq_ignore_ascii_case(b"application/json") || (ends_json && m.contains(&b'/'))
}

/// A header as returned by reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutHeader {
    pub key: String,
    /// The value as text, when it is UTF-8 (null for a null header value).
    #[serde(default)]
    pub value: Option<String>,
    /// The value in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
}

/// How `value` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueEncoding {
    /// `value` is the JSON the producer sent, byte for byte.
    Json,
    /// `value` is a base64 string of the stored bytes.
    Base64,
    /// The record has no value (a Kafka null, or tombstone); `value` is null.
    Tombstone,
}

/// A record as returned by reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutRecord {
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key as text when it is UTF-8; null when there is no key.
    #[serde(default)]
    pub key: Option<String>,
    /// The key in base64 when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    /// See `value_encoding`.
    #[schema(value_type = Value)]
    pub value: serde_json::Value,
    pub value_encoding: ValueEncoding,
    pub headers: Vec<OutHeader>,
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadResponse {
    pub topic: String,
    pub partition: i32,
    pub records: Vec<OutRecord>,
    /// Read from here next.
    pub next_offset: i64,
    /// The offset the next produced record will get.
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Appends `s` as a JSON string. Text with nothing to escape (no control
/// character, quote or backslash: the usual case) is copied as it is,
/// which is what the escaping writer would produce, only faster.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // A fold without early exit, so the compiler can check many bytes at once.
    let escape = b
        .iter()
        .fold(false, |e, &c| e | (c < 0x20) | (c == b'"') | (c == b'\\'));
    if escape {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    }
}

/// Appends `bytes` as a JSON string of their base64, encoded in place.
fn push_b64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len() + 1;
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len + 1, b'"');
    let n = B64
        .encode_slice(bytes, &mut out[start..start + len])
        .unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The media type the agent labels JSON values with.
const JSON_MEDIA_TYPE: &[u8] = b"application/json";

/// Appends one record object.
pub(crate) fn write_record(out: &mut Vec<u8>, r: &StoredRecord) {
    out.extend_from_slice(b"{\"offset\":");
    push_int(out, r.offset);
    out.extend_from_slice(b",\"timestamp\":");
    push_int(out, r.timestamp);
    match &r.key {
        None => out.extend_from_slice(b",\"key\":null"),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => {
                out.extend_from_slice(b",\"key\":");
                push_str(out, s);
            }
            Err(_) => {
                out.extend_from_slice(b",\"key\":null,\"key_b64\":");
                push_b64(out, k);
            }
        },
    }
    let json = r.headers.iter().any(|h| {
        h.key.eq_ignore_ascii_case("content-type")
            && h.value.as_deref().is_some_and(|v| {
                v == JSON_MEDIA_TYPE || std::str::from_utf8(v).is_ok_and(is_json_media_type)
            })
    });
    match &r.value {
        None => out.extend_from_slice(b",\"value\":null,\"value_encoding\":\"tombstone\""),
        Some(v) if json => {
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(v);
            out.extend_from_slice(b",\"value_encoding\":\"json\"");
        }
        Some(v) => {
            out.extend_from_slice(b",\"value\":");
            push_b64(out, v);
            out.extend_from_slice(b",\"value_encoding\":\"base64\"");
        }
    }
    out.extend_from_slice(b",\"headers\":[");
    for (i, h) in r.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The header the agent writes on every JSON value, as it renders.
        if h.key == "content-type" && h.value.as_deref() == Some(JSON_MEDIA_TYPE) {
            out.extend_from_slice(br#"{"key":"content-type","value":"application/json"}"#);
            continue;
        }
        out.extend_from_slice(b"{\"key\":");
        push_str(out, &h.key);
        match h.value.as_deref() {
            None => out.extend_from_slice(b",\"value\":null"),
            Some(v) => match std::str::from_utf8(v) {
                Ok(s) => {
                    out.extend_from_slice(b",\"value\":");
                    push_str(out, s);
                }
                Err(_) => {
                    out.extend_from_slice(b",\"value\":null,\"value_b64\":");
                    push_b64(out, v);
                }
            },
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

/// Rendered responses larger than this are sent as a stream of frames of
/// about this size, rendered as the client takes them, so a slow reader
/// holds the records (slices of cached chunks) and one frame, not a whole
/// rendered response.
const FRAME: usize = 64 * 1024;

fn estimated_size(records: &[StoredRecord]) -> usize {
    records
        .iter()
        .map(|r| 128 + r.value.as_ref().map_or(0, |v| v.len() * 4 / 3))
        .sum()
}

/// A read response as an HTTP body: rendered at once when small, streamed
/// in frames when large.
pub(crate) fn read_body(
    topic: &str,
    partition: i32,
    records: Vec<StoredRecord>,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
) -> axum::body::Body {
    if estimated_size(&records) <= FRAME {
        return axum::body::Body::from(render_read(
            topic,
            partition,
            &records,
            next_offset,
            high_watermark,
            log_start_offset,
        ));
    }
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"topic\":");
    push_str(&mut head, topic);
    head.extend_from_slice(b",\"partition\":");
    push_int(&mut head, i64::from(partition));
    head.extend_from_slice(b",\"records\":[");
    let mut tail = Vec::with_capacity(128);
    tail.extend_from_slice(b"],\"next_offset\":");
    push_int(&mut tail, next_offset);
    tail.extend_from_slice(b",\"high_watermark\":");
    push_int(&mut tail, high_watermark);
    tail.extend_from_slice(b",\"log_start_offset\":");
    push_int(&mut tail, log_start_offset);
    tail.push(b'}');
    let frames = futures_util::stream::unfold(
        (Some(head), records.into_iter().enumerate(), Some(tail)),
        |(mut head, mut records, mut tail)| async move {
            let mut frame = head
                .take()
                .unwrap_or_else(|| Vec::with_capacity(FRAME + 1024));
            for (i, r) in records.by_ref() {
                if i > 0 {
                    frame.push(b',');
                }
                write_record(&mut frame, &r);
                if frame.len() >= FRAME {
                    return Some((
                        Ok::<_, std::convert::Infallible>(frame),
                        (None, records, tail),
                    ));
                }
            }
            let end = tail.take()?;
            frame.extend_from_slice(&end);
            Some((Ok(frame), (None, records, None)))
        },
    );
    axum::body::Body::from_stream(frames)
}

/// A read response with `fields` written first
/// (`{"type":"records","subscription":"s1",…,"topic":…}`): streams and
/// deliveries tag the records they send.
pub(crate) fn render_tagged(
    fields: &[(&str, serde_json::Value)],
    topic: &str,
    partition: i32,
    records: &[StoredRecord],
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
) -> Vec<u8> {
    let body = render_read(
        topic,
        partition,
        records,
        next_offset,
        high_watermark,
        log_start_offset,
    );
    let mut out = Vec::with_capacity(body.len() + 48 * fields.len());
    out.push(b'{');
    for (k, v) in fields {
        push_str(&mut out, k);
        out.push(b':');
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, v);
        out.push(b',');
    }
    out.extend_from_slice(&body[1..]);
    out
}

/// Renders a whole read response.
pub(crate) fn render_read(
    topic: &str,
    partition: i32,
    records: &[StoredRecord],
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(estimated_size(records) + 256);
    out.extend_from_slice(b"{\"topic\":");
    push_str(&mut out, topic);
    out.extend_from_slice(b",\"partition\":");
    push_int(&mut out, i64::from(partition));
    out.extend_from_slice(b",\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_record(&mut out, r);
    }
    out.extend_from_slice(b"],\"next_offset\":");
    push_int(&mut out, next_offset);
    out.extend_from_slice(b",\"high_watermark\":");
    push_int(&mut out, high_watermark);
    out.extend_from_slice(b",\"log_start_offset\":");
    push_int(&mut out, log_start_offset);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Header;
    use bytes::Bytes;

    #[test]
    fn hand_written_json_matches_the_documented_shape() {
        let recs = vec![
            StoredRecord {
                offset: 3,
                timestamp: 9,
                key: Some(Bytes::from_static(b"k\"1")),
                value: Some(Bytes::from_static(
                    b"{\"big\": 123456789012345678901234567890}",
                )),
                headers: vec![Header {
                    key: "content-type".into(),
                    value: Some(Bytes::from_static(b"application/json")),
                }],
            },
            StoredRecord {
                offset: 4,
                timestamp: 10,
                key: Some(Bytes::from_static(&[0xff, 0])),
                value: Some(Bytes::from_static(&[1, 2, 3])),
                headers: vec![Header {
                    key: "bin".into(),
                    value: Some(Bytes::from_static(&[0xfe])),
                }],
            },
            StoredRecord {
                offset: 5,
                timestamp: 11,
                key: None,
                value: None,
                headers: Default::default(),
            },
            StoredRecord {
                offset: 6,
                timestamp: 12,
                key: None,
                value: Some(Bytes::from_static(b"[1]")),
                headers: vec![Header {
                    key: "Content-Type".into(),
                    value: Some(Bytes::from_static(b"Application/vnd.x+JSON; v=1")),
                }],
            },
        ];
        let body = render_read("t", 2, &recs, 7, 7, 0);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("123456789012345678901234567890"),
            "big numbers are spliced verbatim"
        );
        let parsed: ReadResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.records.len(), 4);
        assert_eq!(parsed.records[0].key.as_deref(), Some("k\"1"));
        assert_eq!(parsed.records[0].value_encoding, ValueEncoding::Json);
        let h = &parsed.records[0].headers[0];
        assert_eq!(
            (h.key.as_str(), h.value.as_deref()),
            ("content-type", Some("application/json"))
        );
        assert_eq!(parsed.records[3].value_encoding, ValueEncoding::Json);
        assert_eq!(parsed.records[3].value, serde_json::json!([1]));
        assert_eq!(parsed.records[1].key_b64.as_deref(), Some("/wA="));
        assert_eq!(parsed.records[1].value, serde_json::json!("AQID"));
        assert_eq!(
            parsed.records[1].headers[0].value_b64.as_deref(),
            Some("/g==")
        );
        assert_eq!(parsed.records[2].value_encoding, ValueEncoding::Tombstone);
        assert_eq!(parsed.next_offset, 7);
    }

    #[test]
    fn strings_and_base64_match_the_escaping_writer() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "ünï €",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for n in 0..8usize {
            let bytes: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(97)).collect();
            let mut out = b"x".to_vec();
            push_b64(&mut out, &bytes);
            assert_eq!(
                out[1..],
                serde_json::to_vec(&B64.encode(&bytes)).unwrap()[..]
            );
        }
    }

    #[tokio::test]
    async fn a_large_read_streams_the_same_document_in_frames() {
        let recs: Vec<StoredRecord> = (0..3000)
            .map(|i| StoredRecord {
                offset: i,
                timestamp: 1,
                key: None,
                value: Some(Bytes::from(vec![b'x'; 100])),
                headers: Default::default(),
            })
            .collect();
        let whole = render_read("t", 0, &recs, 3000, 3000, 0);
        let mut body = read_body("t", 0, recs, 3000, 3000, 0).into_data_stream();
        let (mut streamed, mut frames) = (Vec::new(), 0);
        while let Some(frame) = futures_util::StreamExt::next(&mut body).await {
            streamed.extend_from_slice(&frame.unwrap());
            frames += 1;
        }
        assert_eq!(streamed, whole);
        assert!(frames > 3, "{frames} frames");
    }
}
