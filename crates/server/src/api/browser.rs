//! Browser safety, with or without authentication: the `Host` allowlist
//! that closes DNS rebinding (421), CORS for configured origins, the
//! `Origin` check on WebSocket upgrades (403), the content-type rule that
//! keeps cross-site form posts from changing state (415), and security
//! headers on pages a browser renders.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::{ApiError, ErrorCode};
use super::extract::is_json_media_type;
use crate::auth::AuthArgs;

/// What the browser-safety rules are configured with.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `Host` names (without port) the agent answers; `None`: any.
    pub hosts: Option<Vec<String>>,
    /// Origins allowed cross-origin requests and WebSocket upgrades.
    pub origins: Vec<String>,
    /// `*` among the origins (only with authentication).
    pub any_origin: bool,
}

impl Access {
    pub fn from_args(args: &AuthArgs) -> Access {
        Access {
            hosts: args.host_allowlist(),
            origins: args
                .cors_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any_origin: args.cors_origins.iter().any(|o| o == "*"),
        }
    }

    /// Also answers for `url`'s host: the name this agent advertises to its
    /// peers is one it is reached at.
    pub fn answering(mut self, url: Option<&str>) -> Access {
        let host = url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(host_name));
        if let (Some(hosts), Some(host)) = (&mut self.hosts, host)
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
        self
    }

    /// The CORS layer, when any origin is configured.
    pub fn cors(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() && !self.any_origin {
            return None;
        }
        let allow = if self.any_origin {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("idempotency-key"),
                    HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    header::WWW_AUTHENTICATE,
                    HeaderName::from_static("idempotency-replayed"),
                    super::batches::NEXT_OFFSET,
                    super::batches::HIGH_WATERMARK,
                    super::batches::LOG_START_OFFSET,
                    super::batches::RECORD_COUNT,
                ])
                .max_age(std::time::Duration::from_secs(600)),
        )
    }
}

/// The host name of a `Host` value, lower-cased, without its port.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        // [::1]:8080
        return match host.find(']') {
            Some(end) => host[..=end].to_string(),
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

/// Refuses requests whose `Host` the agent does not answer (421), so a
/// web page on a rebound DNS name cannot reach an agent on loopback.
pub(super) fn host_refusal(access: &Access, req: &Request) -> Option<Response> {
    let allowed = access.hosts.as_ref()?;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))?;
    let name = host_name(&host);
    if allowed.contains(&name) {
        return None;
    }
    let refusal = ApiError::new(
        ErrorCode::HostNotAllowed,
        format!(
            "this agent does not answer for host {name:?}; allowed: {} (allowed-hosts)",
            allowed.join(", ")
        ),
    )
    .with_field("Host");
    Some(refusal.into_response())
}

/// The media types browsers send cross-site without a preflight.
fn is_simple_form_type(media: Option<&str>) -> bool {
    matches!(
        media,
        None | Some("application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain")
    )
}

fn is_records_type(media: &str) -> bool {
    is_json_media_type(media)
        || matches!(
            media,
            "application/x-ndjson" | "application/ndjson" | "application/jsonl"
        )
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// State-changing requests with a body must say it is JSON (or NDJSON);
/// `/publish` takes any type but the three a cross-site form can send
/// without a preflight, unless the request carries a bearer token. So a
/// form on another site cannot create topics or produce (415).
pub(super) fn content_type_refusal(req: &Request) -> Option<Response> {
    let changes_state = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if changes_state && has_body(req.headers()) {
        let media = super::extract::media_type(req.headers());
        let publish = req.uri().path().ends_with("/publish");
        let refused = if publish {
            is_simple_form_type(media.as_deref())
                && !req.headers().contains_key(header::AUTHORIZATION)
        } else {
            !media.as_deref().is_some_and(is_records_type)
        };
        if refused {
            let shown = media.as_deref().unwrap_or("none");
            let detail = if publish {
                format!(
                    "content type {shown} is one a cross-site form can send; publish with another type \
                     (application/json, application/octet-stream, …) or with an Authorization header"
                )
            } else {
                format!(
                    "content type {shown} is not accepted; send Content-Type: application/json \
                     (or application/x-ndjson for records)"
                )
            };
            let refusal =
                ApiError::new(ErrorCode::UnsupportedMediaType, detail).with_field("content-type");
            return Some(refusal.into_response());
        }
    }
    None
}

/// A WebSocket upgrade from a browser page must come from the agent's own
/// origin or a configured one (403 otherwise); clients that send no
/// `Origin` (not browsers) pass.
pub(super) fn check_ws_origin(access: &Access, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
    if access.any_origin || access.origins.contains(&origin) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let same = origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host);
    if same {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!("WebSocket connections from origin {origin:?} are not allowed (cors-origins)"),
    )
    .with_field("Origin"))
}

/// Headers for pages a browser renders (`/docs`): no framing, no sniffing,
/// scripts and styles only from the agent.
pub(super) async fn page_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_host_is_answered_too() {
        let access = Access {
            hosts: Some(vec!["localhost".into()]),
            ..Access::default()
        };
        let hosts = access.answering(Some("http://Agent-2.internal:8080")).hosts;
        assert_eq!(
            hosts,
            Some(vec![
                "localhost".to_string(),
                "agent-2.internal".to_string()
            ])
        );
        let any = Access::default().answering(Some("http://a:1"));
        assert_eq!(any.hosts, None, "any host stays any host");
    }

    #[test]
    fn host_names_lose_their_ports() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("evil.example"), "evil.example");
    }
}
