//! The one route agents call on each other: a range of an object this
//! agent wrote, from memory (see [`crate::peer`]). Only objects kept whole
//! since their put are served; anything else is a 404 and the caller reads
//! the object store, so this route never costs the store a request.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, ApiQuery};
use super::{AppState, paths};
use crate::clock::SharedClock;
use crate::model::object_key;
use crate::peer::{HEADER, MAX_RANGE_BYTES, PeerConfig, SIZE_HEADER};
use crate::store::CachedStore;

/// What serving peers needs: the shared secret, the objects kept in
/// memory, and the metadata store's clock (what tokens expire by).
#[derive(Debug, Clone)]
pub struct PeerServing {
    pub config: PeerConfig,
    pub kept: Arc<CachedStore>,
    pub clock: SharedClock,
}

/// The object, as its id.
#[derive(Debug, Deserialize)]
pub(super) struct ObjectPath {
    object: Uuid,
}

/// The byte range asked for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RangeQuery {
    /// First byte.
    #[param(minimum = 0)]
    start: u64,
    /// One past the last byte; at most 64 MiB after `start`. A range
    /// running past the object's end is cut there.
    #[param(minimum = 0)]
    end: u64,
}

/// A range of an object this agent wrote, for another agent of the
/// cluster. Off unless `--advertise-url` and `--peer-secret` are set.
#[utoipa::path(get, path = paths::PEER_OBJECT, tag = "operations", operation_id = "peer_object",
    params(("object" = Uuid, Path, description = "The object's id"), RangeQuery,
           ("x-streamhouse-peer" = String, Header, description = "`<expiry ms>.<hex HMAC-SHA256>` of the object, the range and the expiry, keyed by the peer secret")),
    responses((status = 200, description = "The bytes; `x-streamhouse-object-size` gives the object's size", body = String, content_type = "application/octet-stream"),
              (status = 400, description = "Invalid object id or range (`end` before `start`, or more than 64 MiB)", body = super::Problem, content_type = "application/problem+json"),
              (status = 401, description = "No peer token, or one that is invalid or expired", body = super::Problem, content_type = "application/problem+json"),
              (status = 404, description = "Peer reads are off, or the object is not kept in memory here (read it from the object store)", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn object(
    State(state): State<AppState>,
    ApiPath(ObjectPath { object }): ApiPath<ObjectPath>,
    ApiQuery(RangeQuery { start, end }): ApiQuery<RangeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(peer) = &state.peer else {
        return Err(ApiError::new(
            ErrorCode::RouteNotFound,
            "peer reads are off on this agent (advertise-url and peer-secret are not set)",
        ));
    };
    if end < start || end - start > MAX_RANGE_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("end must be at least start and at most {MAX_RANGE_BYTES} bytes after it"),
        ));
    }
    let range = start..end;
    let token = headers.get(HEADER).and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| peer.config.verify(t, object, &range, peer.clock.now_ms())) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("{HEADER} is missing, invalid or expired"),
        ));
    }
    let Some((bytes, size)) = peer.kept.kept(&object_key(object), range).await else {
        state.metrics.peer_serve_misses.inc();
        return Err(ApiError::new(
            ErrorCode::ObjectNotKept,
            "this agent does not keep that object in memory; read it from the object store",
        ));
    };
    state.metrics.peer_serves.inc();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::HeaderName::from_static(SIZE_HEADER), size.into()),
        ],
        bytes,
    )
        .into_response())
}
