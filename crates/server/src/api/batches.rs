//! The record-batches answer to a partition read (`Accept:
//! application/vnd.streamhouse.record-batches`; see `read::batches`): the
//! stored Kafka v2 RecordBatches back to back, with an exact
//! `Content-Length`, and the read's offsets in headers instead of a JSON
//! envelope. Large batches go out as the slices of the chunks they are;
//! small ones are gathered into one piece, so a page of many one-record
//! batches is not written a few bytes at a time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::read::BatchesResult;

/// The media type a client asks for batches with.
pub(super) const MEDIA_TYPE: &str = "application/vnd.streamhouse.record-batches";

/// The offset to read from next: one past the last batch.
pub(super) const NEXT_OFFSET: HeaderName = HeaderName::from_static("streamhouse-next-offset");
/// The offset the next produced record will get.
pub(super) const HIGH_WATERMARK: HeaderName = HeaderName::from_static("streamhouse-high-watermark");
/// The partition's first offset still stored.
pub(super) const LOG_START_OFFSET: HeaderName =
    HeaderName::from_static("streamhouse-log-start-offset");
/// Records in the batches, those before the offset asked for included.
pub(super) const RECORD_COUNT: HeaderName = HeaderName::from_static("streamhouse-record-count");

/// The OpenAPI shape of a record-batches body: bytes.
pub(super) struct RecordBatches;

impl utoipa::PartialSchema for RecordBatches {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(
                "Kafka v2 RecordBatches back to back, each with its real base offset; \
                 the first may hold records before the offset asked for",
            ))
            .into()
    }
}

impl utoipa::ToSchema for RecordBatches {}

/// Pieces shorter than this are copied together into one.
const SMALL_PIECE: usize = 32 * 1024;

/// Whether the request's `Accept` asks for record batches (names the
/// type, not with `q=0`).
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            let mut parts = m.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case(MEDIA_TYPE))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
}

/// The response to a batch read.
pub(super) fn respond(result: BatchesResult) -> Response {
    let numbers = [
        (NEXT_OFFSET, result.next_offset),
        (HIGH_WATERMARK, result.high_watermark),
        (LOG_START_OFFSET, result.log_start_offset),
        (RECORD_COUNT, result.records as i64),
    ];
    let mut response = Body::new(Pieces::gathered(result.pieces)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    for (name, n) in numbers {
        headers.insert(name, HeaderValue::from(n));
    }
    response
}

/// A body of byte pieces of known total length.
struct Pieces {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl Pieces {
    /// `pieces`, runs of small ones copied together.
    fn gathered(pieces: Vec<Bytes>) -> Self {
        let mut out = VecDeque::with_capacity(pieces.len());
        let mut small = BytesMut::new();
        for p in pieces {
            if p.len() < SMALL_PIECE {
                small.extend_from_slice(&p);
                if small.len() >= SMALL_PIECE {
                    out.push_back(small.split().freeze());
                }
            } else {
                if !small.is_empty() {
                    out.push_back(small.split().freeze());
                }
                out.push_back(p);
            }
        }
        if !small.is_empty() {
            out.push_back(small.freeze());
        }
        let remaining = out.iter().map(|p| p.len() as u64).sum();
        Pieces {
            pieces: out,
            remaining,
        }
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(this.pieces.pop_front().map(|p| {
            this.remaining -= p.len() as u64;
            Ok(Frame::data(p))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_are_gathered_and_large_ones_kept_in_order() {
        let big = Bytes::from(vec![7u8; SMALL_PIECE]);
        let pieces = vec![
            Bytes::from_static(b"12345678"),
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"87654321"),
            big.clone(),
            Bytes::from_static(b"xy"),
        ];
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let body = Pieces::gathered(pieces);
        assert_eq!(body.remaining, whole.len() as u64);
        let out: Vec<Bytes> = body.pieces.into_iter().collect();
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0][..], b"12345678abc87654321");
        assert_eq!(out[1], big);
        assert_eq!(out.concat(), whole);
    }

    #[test]
    fn only_an_accept_naming_the_type_asks_for_batches() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wanted(&h)
        };
        assert!(with(MEDIA_TYPE));
        assert!(with(
            "application/json;q=0.5, Application/Vnd.StreamHouse.Record-Batches"
        ));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!with("application/vnd.streamhouse.record-batches-v2"));
        assert!(!with("application/vnd.streamhouse.record-batches; q=0"));
        assert!(with("application/vnd.streamhouse.record-batches;q=0.5"));
        assert!(!wanted(&HeaderMap::new()));
    }
}
