//! Tokens: `GET /v1/whoami` (what the caller's token allows, so a console
//! can explain a disabled button) and `POST /v1/admin/tokens/revoke`, for
//! holders of `admin:*`. The revocation is recorded in metadata (so every agent
//! refuses the token within a watermark poll) and takes effect here at
//! once; open streams of the token end.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::body::small_json;
use super::error::{ApiError, ErrorCode};
use super::{AppState, paths};
use crate::auth::Caller;
use crate::metadata::RevokedToken;

/// Longest `jti`.
const MAX_JTI: usize = 255;

/// Who the caller is and what its token allows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WhoAmI {
    /// `none` (no authentication: every right) or `jwt`.
    #[schema(pattern = "^(none|jwt)$")]
    pub auth: &'static str,
    pub tenant: String,
    /// The token's `sub`; `anonymous` without authentication.
    pub subject: String,
    /// The token's scopes (`"<action>:<glob>"`); absent without authentication (everything is allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The token's `exp` (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The caller's tenant, subject and scopes.
#[utoipa::path(get, path = paths::WHOAMI, tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = WhoAmI),
              (status = 401, description = "No valid token", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        auth: if caller.is_authenticated() {
            "jwt"
        } else {
            "none"
        },
        tenant: caller.tenant.as_str().to_string(),
        subject: caller.subject.to_string(),
        scopes: caller.scopes.as_ref().map(|s| {
            s.iter()
                .map(|s| format!("{}:{}", s.action, s.glob))
                .collect()
        }),
        expires_at: caller.expires_at,
    })
}

/// A token to revoke.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeRequest {
    /// The token's `jti`.
    #[schema(min_length = 1, max_length = 255)]
    pub jti: String,
    /// The token's `exp` (seconds since the epoch): the revocation is kept until then.
    #[schema(minimum = 0)]
    pub expires_at: i64,
}

/// Revoke a token of the caller's tenant by its `jti` (needs `admin:*`).
#[utoipa::path(post, path = paths::REVOKE_TOKEN, tag = "admin", request_body = RevokeRequest,
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked: refused by every agent from the next watermark poll on"),
              (status = 400, description = "Invalid request", body = super::Problem, content_type = "application/problem+json"),
              (status = 401, description = "No valid token", body = super::Problem, content_type = "application/problem+json"),
              (status = 403, description = "The token lacks admin:*", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body larger than 64 KiB", body = super::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Not JSON", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<StatusCode, ApiError> {
    if !caller.is_tenant_admin() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "revoking tokens needs the scope admin:*",
        ));
    }
    let req: RevokeRequest = small_json(body, &state.bodies, "revocation").await?;
    if req.jti.is_empty() || req.jti.len() > MAX_JTI {
        return Err(
            ApiError::field("jti", format!("jti must be 1 to {MAX_JTI} bytes"))
                .with_limit(MAX_JTI as u64),
        );
    }
    if req.expires_at < 0 {
        return Err(ApiError::field(
            "expires_at",
            "expires_at must not be negative",
        ));
    }
    let tenant = caller.tenant.as_str();
    let token = RevokedToken {
        tenant: tenant.to_string(),
        jti: req.jti,
        // Kept past expiry by the leeway a token is still accepted with.
        expires_at_ms: req
            .expires_at
            .saturating_add(crate::auth::LEEWAY_SECS as i64)
            .saturating_mul(1000),
    };
    state.metadata.revocations.revoke_token(&token).await?;
    state.auth.revoked.add(tenant, &token.jti);
    tracing::info!(tenant, jti = %token.jti, by = %caller.subject, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
