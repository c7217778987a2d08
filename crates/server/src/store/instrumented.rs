//! A layer that counts every call, byte and error of the store it wraps.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{DeleteOutcome, ListPage, ObjectStore, SharedStore, StoreError};
use crate::metrics::Metrics;

/// Exports object-store traffic to [`Metrics`].
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: SharedStore,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: SharedStore, metrics: Arc<Metrics>) -> Self {
        InstrumentedStore { inner, metrics }
    }

    fn count<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_err() {
            self.metrics.object_errors.inc();
        }
        r
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let len = body.len() as u64;
        let r = self.inner.put(key, body).await;
        if r.is_ok() {
            self.metrics.object_puts.inc();
            self.metrics.object_put_bytes.inc_by(len);
        }
        self.count(r)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let r = self.inner.get_range(key, range).await;
        if let Ok(b) = &r {
            self.metrics.object_gets.inc();
            self.metrics.object_get_bytes.inc_by(b.len() as u64);
        }
        self.count(r)
    }

    async fn mark_checked(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.inner.mark_checked(key, range, bytes).await;
    }

    async fn discard(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.inner.discard(key, range, bytes).await;
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        let outcome = self.inner.delete_many(keys).await;
        self.metrics
            .object_deletes
            .inc_by(outcome.deleted.len() as u64);
        self.metrics
            .object_errors
            .inc_by(outcome.failed.len() as u64);
        outcome
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        self.metrics.object_lists.inc();
        let r = self.inner.list(prefix, after).await;
        self.count(r)
    }
}
