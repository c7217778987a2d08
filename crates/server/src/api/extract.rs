//! Extractors whose rejections are problem+json like every other error.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::new(ErrorCode::InvalidQuery, e.body_text())),
        }
    }
}

/// Parses a request's query string, for handlers that choose the shape late.
pub(super) fn query_of<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(v)| v)
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))
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

/// Reads a whole request body, refusing more than `limit` bytes with 413.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(
            "body",
            limit,
            format!("the request body is larger than {limit} bytes (max-body-bytes)"),
        )),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("the request body could not be read: {e}"),
        )
        .with_field("body")),
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

/// True for `application/json` and `*/*+json` media types.
pub(super) fn is_json_media_type(media: &str) -> bool {
    let m = media.split(';').next().unwrap_or("").trim().as_bytes();
    let ends_json = m.len() >= 5 && m[m.len() - 5..].eq_ignore_ascii_case(b"+json");
    m.eq_ignore_ascii_case(b"application/json") || (ends_json && m.contains(&b'/'))
}
