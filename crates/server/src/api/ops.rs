//! Operations endpoints: liveness, readiness, metrics, and the fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::error::{ApiError, ErrorCode};
use super::{AppState, paths};
use crate::auth::Caller;
use crate::model::Tenant;

/// A probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Status {
    pub status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = paths::HEALTHZ, tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
pub(super) async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: 503 until the agent has reached its metadata store and its
/// object store once (`unavailable`, naming which), and once shutdown has
/// begun (`shutting-down`).
#[utoipa::path(get, path = paths::READYZ, tag = "operations",
    responses((status = 200, description = "Ready", body = Status),
              (status = 503, description = "Not ready: a store not reached since start, or shutting down", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if state.draining.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "the agent is shutting down",
        ));
    }
    if let Some(missing) = state.stores.missing() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("the agent has not reached {missing} since it started"),
        ));
    }
    Ok(Json(Status { status: "ready" }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = paths::METRICS, tag = "operations",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    // With authentication, the operator's tenant (default) admin reads
    // every tenant's figures; nobody else does.
    if caller.is_authenticated()
        && (caller.tenant != Tenant::default() || !caller.is_tenant_admin())
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "metrics need a token of the default tenant with admin:*",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    ))
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route for {}; see /docs", uri.path()),
    )
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}; see /docs", uri.path()),
    )
}
