//! Request bodies: read whole, up to a per-request limit (413 beyond it),
//! within an agent-wide budget of bytes that bodies in flight may hold
//! (`--max-inflight-body-bytes`, 429 beyond it). Parallel large bodies can
//! therefore never take more memory than the budget: a body is refused at
//! once when the budget cannot hold it, rather than queued, since a client
//! that is refused can retry and one that waits holds a connection.
//!
//! A body with a `Content-Length` reserves its length before a byte is
//! read; a chunked body reserves as its chunks arrive. The reservation is
//! held by the returned [`BodyPermit`] until the handler is done with the
//! body (and with whatever it parsed from it). A body must arrive whole
//! within `--body-read-timeout` (408 beyond it), so a slow upload cannot
//! hold its reservation for long. [`small_json`] reads the small JSON
//! objects of the admin routes (64 KiB at most) straight into their type.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;

/// The agent-wide budget for request bodies in flight.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    max: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Bytes of the budget held by one request's body.
#[derive(Debug)]
pub(super) struct BodyPermit {
    _held: Option<OwnedSemaphorePermit>,
    bytes: usize,
    metrics: Arc<Metrics>,
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.metrics.inflight_body_bytes.dec_by(self.bytes as i64);
    }
}

impl BodyBudget {
    /// A budget of `max` bytes; each body must arrive within `timeout`.
    pub fn new(max: usize, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(max)),
            max,
            timeout,
            metrics,
        }
    }

    fn overloaded(&self) -> ApiError {
        self.metrics.body_rejected_overload.inc();
        let mut e = ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "the agent is reading {} bytes of request bodies already (max-inflight-body-bytes); retry shortly",
                self.max
            ),
        )
        .with_limit(self.max as u64);
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// Reserves `n` more bytes for `permit`, or refuses with 429.
    fn reserve(&self, permit: &mut BodyPermit, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Ok(());
        }
        let n32 = u32::try_from(n).map_err(|_| self.overloaded())?;
        let more = self
            .bytes
            .clone()
            .try_acquire_many_owned(n32)
            .map_err(|_| self.overloaded())?;
        match permit._held.as_mut() {
            Some(held) => held.merge(more),
            None => permit._held = Some(more),
        }
        permit.bytes += n;
        self.metrics.inflight_body_bytes.inc_by(n as i64);
        Ok(())
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        "body",
        limit,
        format!("the request body is larger than {limit} bytes (max-body-bytes)"),
    )
}

/// Reads a whole request body of at most `limit` bytes within `budget`.
pub(super) async fn read_body(
    body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyPermit), ApiError> {
    let mut permit = BodyPermit {
        _held: None,
        bytes: 0,
        metrics: budget.metrics.clone(),
    };
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    if let Some(len) = declared {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > limit {
            return Err(too_large(limit));
        }
        budget.reserve(&mut permit, len)?;
    }
    let mut body = body;
    let mut buf = BytesMut::with_capacity(permit.bytes);
    let deadline = tokio::time::Instant::now() + budget.timeout;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await else {
            let secs = budget.timeout.as_secs_f64();
            return Err(ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the request body did not arrive within {secs}s (body-read-timeout)"),
            )
            .with_field("body"));
        };
        let Some(frame) = next else {
            break;
        };
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("the request body could not be read: {e}"),
            )
            .with_field("body")
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            return Err(too_large(limit));
        }
        let beyond = (buf.len() + data.len()).saturating_sub(permit.bytes);
        budget.reserve(&mut permit, beyond)?;
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), permit))
}

/// Largest body of a small JSON request (create or configure a topic,
/// revoke a token).
pub(super) const SMALL_BODY: usize = 64 * 1024;

/// Reads a small JSON object body (at most 64 KiB) into `T`; a body that
/// is not one is a 400 naming `what`.
pub(super) async fn small_json<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    bodies: &BodyBudget,
    what: &str,
) -> Result<T, ApiError> {
    let (bytes, _permit) = read_body(body, SMALL_BODY, bodies).await?;
    super::json::from_object(&bytes).map_err(|e| {
        ApiError::new(
            super::error::ErrorCode::InvalidJson,
            format!("invalid {what}: {e}"),
        )
        .with_field("body")
    })
}
