//! Object storage: the `ObjectStore` trait and its implementations.
//!
//! Objects are immutable and written once under a key StreamHouse mints
//! (a UUIDv7), so the trait is four batch-shaped calls: put (never
//! overwrite), ranged get, delete many, list. Behaviour that is not storage
//! itself (metrics, caching, asking an object's writer first) is a layer
//! that wraps any `Arc<dyn ObjectStore>`.

mod cached;
mod instrumented;
mod local;
mod memory;
mod peer;
mod s3;

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use cached::CachedStore;
pub use instrumented::InstrumentedStore;
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use peer::PeerStore;
pub use s3::{S3Config, S3Store};

/// Why a store call failed. Cloneable so one failure can answer many
/// waiting producers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No object has this key.
    #[error("object {0} not found")]
    NotFound(String),
    /// `put` found an object already stored under this key.
    #[error("object {0} already exists")]
    AlreadyExists(String),
    /// The requested range starts past the end of the object.
    #[error("range {0} is outside object")]
    InvalidRange(String),
    /// The key is not one this store accepts.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// The store could not be reached or failed; retrying may succeed.
    #[error("object store unavailable: {0}")]
    Unavailable(Arc<str>),
}

impl StoreError {
    pub(crate) fn unavailable(e: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(e.to_string().into())
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass as `after` to get the next page; `None` at the end.
    pub next_after: Option<String>,
}

/// What a bulk delete did, key by key. A key is `deleted` only when the
/// store confirmed it (a key that did not exist counts as deleted).
#[derive(Debug, Clone, Default)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    pub failed: Vec<(String, StoreError)>,
}

/// Where the bytes of a read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Kept in memory since this process put them: written and checked here.
    Written,
    /// Read from storage (or from a cache of what was read), not yet
    /// checked.
    Stored,
    /// Read from storage and kept in memory since, where a reader already
    /// checked these very bytes (see [`ObjectStore::mark_checked`]).
    Checked,
}

/// Immutable, write-once object storage.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    /// Stores `body` under `key`, durably, failing with `AlreadyExists`
    /// rather than overwriting.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError>;

    /// Reads bytes `range` of the object; a range running past the end is
    /// cut at the end.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;

    /// [`get_range`](Self::get_range), saying where the bytes came from, so
    /// a reader can skip checks of bytes this process wrote itself.
    async fn get_range_with_origin(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<(Bytes, Origin), StoreError> {
        Ok((self.get_range(key, range).await?, Origin::Stored))
    }

    /// Records that a reader checked `bytes`, as returned for `range` of
    /// `key`, so that later reads of the same bytes in memory answer
    /// [`Origin::Checked`]. Stores that keep nothing ignore it.
    async fn mark_checked(&self, _key: &str, _range: Range<u64>, _bytes: &Bytes) {}

    /// Forgets `bytes`, as returned for `range` of `key`, wherever this
    /// store (or a layer of it) keeps them, because a reader found them
    /// damaged: the next read fetches them again from storage. Stores that
    /// keep nothing ignore it; layers pass it on.
    async fn discard(&self, _key: &str, _range: Range<u64>, _bytes: &Bytes) {}

    /// Deletes every key it can and reports each one.
    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome;

    /// Lists up to about 1,000 objects under `prefix` with keys after `after`.
    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError>;
}

/// Shared handle to any object store.
pub type SharedStore = Arc<dyn ObjectStore>;
