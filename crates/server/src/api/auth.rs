//! The caller of a request: its bearer token found where clients put it,
//! verified by [`Auth`](crate::auth::Auth), and the checks handlers make
//! against its scopes. `Authorization: Bearer …` everywhere; for browsers,
//! streams (SSE, WebSocket) also take `?access_token=…`, and WebSocket the
//! subprotocol `bearer.<token>`. Tokens are never logged.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::auth::{Action, AuthError, Caller, OverQuota};
use crate::model::Tenant;

/// The WebSocket subprotocol prefix that carries a token.
pub(super) const BEARER_PROTOCOL: &str = "bearer.";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(ErrorCode::Unauthorized, e.0)
    }
}

/// A tenant quota's refusal: 429 naming the limit, with Retry-After.
pub(super) fn over_quota(state: &AppState, tenant: &str, e: OverQuota) -> ApiError {
    state.metrics.throttled(tenant, e.kind.as_str());
    let mut err = ApiError::new(
        ErrorCode::QuotaExceeded,
        format!(
            "tenant {tenant:?} is over its {} quota ({}); retry after {} ms",
            e.kind.as_str(),
            e.limit,
            e.retry_after.as_millis()
        ),
    )
    .with_field(e.kind.as_str())
    .with_limit(e.limit);
    err.retry_after = Some(e.retry_after);
    err
}

/// Whether a path serves a stream (SSE or WebSocket), where browsers may
/// pass the token in the query.
fn is_stream_path(path: &str) -> bool {
    path == super::paths::WS || path == super::paths::STREAM || path.ends_with("/stream")
}

/// The bearer token of a request, if it carries one.
pub(super) fn bearer_token(parts: &Parts) -> Result<Option<String>, ApiError> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("");
        return match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(token.trim().to_string()))
            }
            _ => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the Authorization header must be \"Bearer <token>\"",
            )
            .with_field("Authorization")),
        };
    }
    let wants_events = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !is_stream_path(parts.uri.path()) && !wants_events {
        return Ok(None);
    }
    if let Some(t) = websocket_protocol_token(parts) {
        return Ok(Some(t));
    }
    Ok(access_token_param(parts.uri.query().unwrap_or("")))
}

/// `bearer.<token>` among the offered WebSocket subprotocols.
pub(super) fn websocket_protocol_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL).map(str::to_string))
}

/// `access_token=…` in a query string.
fn access_token_param(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let authenticated =
            bearer_token(parts).and_then(|token| Ok(state.auth.authenticate(token.as_deref())?));
        let caller = match authenticated {
            Ok(c) => c,
            Err(e) => {
                state.metrics.auth_refused.inc();
                return Err(e);
            }
        };
        let tenant = caller.tenant.as_str();
        state
            .quotas
            .request(tenant)
            .map_err(|e| over_quota(state, tenant, e))?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// Whose names this request sees: the caller's tenant.
impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Caller::from_request_parts(parts, state).await?.tenant)
    }
}

/// A 403 naming the action and the resource the token lacks.
pub(super) fn forbidden(action: Action, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "the token's scopes do not allow {action} on {} {name:?} (needs scope \"{action}:<glob>\" matching it)",
            action.resource_kind()
        ),
    )
}

/// Checks that `caller` may do `action` to `name`: a 403 naming both otherwise.
pub(super) fn require(caller: &Caller, action: Action, name: &str) -> Result<(), ApiError> {
    if caller.may(action, name) {
        Ok(())
    } else {
        Err(forbidden(action, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_are_found_in_queries_and_decoded() {
        assert_eq!(
            access_token_param("from=latest&access_token=a.b%2Ec&x=1").as_deref(),
            Some("a.b.c")
        );
        assert_eq!(access_token_param("from=latest"), None);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
