//! Asking an object's writer before the store (see [`crate::peer`]): a
//! read of an object another agent announced recently goes to that agent
//! first, with a short timeout; anything but exactly the bytes asked for
//! (an error, a timeout, a refusal, an evicted object, a wrong length)
//! forgets the hint and reads from the store instead, and a writer that
//! did not answer or refused is not asked again for a few seconds. Every
//! other call passes through.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::{DeleteOutcome, ListPage, ObjectStore, SharedStore, StoreError};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::peer::{HEADER, PeerConfig, PeerHints, SIZE_HEADER, TOKEN_LIFETIME};

/// How long a peer may take to answer before the store is asked instead.
const PEER_TIMEOUT: Duration = Duration::from_millis(250);

/// See the module header.
#[derive(Debug)]
pub struct PeerStore {
    inner: SharedStore,
    config: PeerConfig,
    hints: Arc<PeerHints>,
    client: reqwest::Client,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

impl PeerStore {
    pub fn new(
        inner: SharedStore,
        config: PeerConfig,
        hints: Arc<PeerHints>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(PEER_TIMEOUT)
            .timeout(PEER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("peer client: {e}"))?;
        Ok(PeerStore {
            inner,
            config,
            hints,
            client,
            clock,
            metrics,
        })
    }

    /// The range from the writer at `url`, exactly as the store would
    /// answer it. `Err(true)` when the writer did not answer (down, slow,
    /// failing) or refused (another secret, another host name), `Err(false)`
    /// when it answered without the bytes (evicted).
    async fn ask_writer(&self, url: &str, object: Uuid, range: &Range<u64>) -> Result<Bytes, bool> {
        let expires = self.clock.now_ms() + TOKEN_LIFETIME.as_millis() as i64;
        let answer = self
            .client
            .get(format!(
                "{url}/internal/v1/objects/{}?start={}&end={}",
                object.simple(),
                range.start,
                range.end
            ))
            .header(HEADER, self.config.token(object, range, expires))
            .send()
            .await
            .map_err(|_| true)?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(true);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::MISDIRECTED_REQUEST
        {
            // Every later request would be refused the same way.
            tracing::warn!(%url, %status, "a peer refused a read: check that every agent has the same peer-secret and answers its advertise-url host");
            return Err(true);
        }
        if !status.is_success() {
            return Err(false);
        }
        let size: u64 = answer
            .headers()
            .get(SIZE_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or(false)?;
        let want = range.end.min(size).checked_sub(range.start).ok_or(false)?;
        // A body of exactly the announced length, or nothing is read.
        if answer.content_length() != Some(want) {
            return Err(false);
        }
        let body = answer.bytes().await.map_err(|_| true)?;
        if body.len() as u64 != want {
            return Err(false);
        }
        Ok(body)
    }
}

#[async_trait]
impl ObjectStore for PeerStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, body).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if let Some(url) = self.hints.writer_of(key)
            && let Some(object) = key
                .strip_prefix("objects/")
                .and_then(|id| Uuid::parse_str(id).ok())
        {
            match self.ask_writer(&url, object, &range).await {
                Ok(bytes) => {
                    self.metrics.peer_fetches.inc();
                    self.metrics.peer_fetch_bytes.inc_by(bytes.len() as u64);
                    return Ok(bytes);
                }
                Err(unanswered) => {
                    self.metrics.peer_fetch_fallbacks.inc();
                    self.hints.forget(key);
                    if unanswered {
                        self.hints.rest(url);
                    }
                }
            }
        }
        self.inner.get_range(key, range).await
    }

    /// Damaged bytes are fetched again from the store, not the writer.
    async fn discard(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.hints.forget(key);
        self.inner.discard(key, range, bytes).await;
    }

    async fn mark_checked(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.inner.mark_checked(key, range, bytes).await;
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        self.inner.delete_many(keys).await
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, after).await
    }
}
