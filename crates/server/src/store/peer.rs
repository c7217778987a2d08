//! Asking an object's writer before the store (see [`crate::peer`]): a
//! read of an object another agent announced recently goes to that agent
//! first, with a short timeout; anything but exactly the bytes asked for
//! (an error, a timeout, a refusal, an evicted object, a wrong length)
//! forgets the hint and reads from the store instead. Every other call
//! passes through.

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
    /// answer it, or `None`.
    async fn ask_writer(&self, url: &str, object: Uuid, range: &Range<u64>) -> Option<Bytes> {
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
            .ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let size: u64 = answer
            .headers()
            .get(SIZE_HEADER)?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        let want = range.end.min(size).checked_sub(range.start)?;
        if answer.content_length().is_some_and(|n| n != want) {
            return None;
        }
        let body = answer.bytes().await.ok()?;
        (body.len() as u64 == want).then_some(body)
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
                Some(bytes) => {
                    self.metrics.peer_fetches.inc();
                    self.metrics.peer_fetch_bytes.inc_by(bytes.len() as u64);
                    return Ok(bytes);
                }
                None => {
                    self.metrics.peer_fetch_fallbacks.inc();
                    self.hints.forget(key);
                }
            }
        }
        self.inner.get_range(key, range).await
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        self.inner.delete_many(keys).await
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, after).await
    }
}
