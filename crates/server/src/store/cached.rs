//! A read cache in front of any store, shared by every reader in the agent.
//!
//! Objects are immutable, so cached bytes never go stale. A successful put
//! keeps the whole object (fresh data is read from memory, as the design
//! asks); a ranged read keeps the range it fetched. Eviction is least
//! recently used, so a fresh flush always gets in. Concurrent misses on
//! the same range are coalesced into one GET, so a thousand readers of one
//! chunk cost the store one request. The cache is weighed in bytes. A
//! fetched range a reader has checked answers `Origin::Checked` while it
//! stays cached, so a chunk paged through twice is checked once per fetch;
//! one a reader found damaged is dropped, so it is fetched again.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moka::future::Cache;

use super::{DeleteOutcome, ListPage, ObjectStore, Origin, SharedStore, StoreError};
use crate::metrics::Metrics;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key: Arc<str>,
    /// `None` for a whole object kept from its put; a fetched range never
    /// shares a key with one, whatever its bounds.
    range: Option<(u64, u64)>,
}

const WHOLE: Option<(u64, u64)> = None;

/// Cached bytes, and whether a reader has checked them (fetched ranges
/// only: a whole object kept from its put was checked as it was written).
#[derive(Debug, Clone)]
struct Kept {
    bytes: Bytes,
    checked: Arc<AtomicBool>,
}

impl Kept {
    fn new(bytes: Bytes) -> Self {
        Kept {
            bytes,
            checked: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Byte cache layer; see the module header.
#[derive(Debug)]
pub struct CachedStore {
    inner: SharedStore,
    cache: Cache<CacheKey, Kept>,
    metrics: Arc<Metrics>,
}

impl CachedStore {
    /// Wraps `inner` with a cache of at most `capacity_bytes`.
    pub fn new(inner: SharedStore, capacity_bytes: u64, metrics: Arc<Metrics>) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &CacheKey, v: &Kept| {
                (v.bytes.len() + k.key.len() + 64)
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .time_to_idle(Duration::from_secs(600))
            // Least recently used, not TinyLFU: TinyLFU refuses a new
            // object while the cache is full of re-read ones, so a fresh
            // flush (which followers read next) would be fetched again.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .build();
        CachedStore {
            inner,
            cache,
            metrics,
        }
    }

    /// The cached fetched range of `key`, when it holds these very bytes:
    /// the same memory (both are alive, so equal addresses are one buffer).
    async fn holding(
        &self,
        key: &str,
        range: Range<u64>,
        bytes: &Bytes,
    ) -> Option<(CacheKey, Kept)> {
        let k = CacheKey {
            key: key.into(),
            range: Some((range.start, range.end)),
        };
        let kept = self.cache.get(&k).await?;
        (kept.bytes.as_ptr() == bytes.as_ptr() && kept.bytes.len() == bytes.len())
            .then_some((k, kept))
    }

    /// Bytes `range` of an object kept whole since this agent put it, with
    /// the object's size; `None` when it is not kept (never put here, or
    /// evicted). What this agent serves its peers: nothing is fetched.
    pub async fn kept(&self, key: &str, range: Range<u64>) -> Option<(Bytes, u64)> {
        let whole = CacheKey {
            key: key.into(),
            range: WHOLE,
        };
        let object = self.cache.get(&whole).await?.bytes;
        let size = object.len() as u64;
        // As the stores answer: a range starting at or past the end of a
        // non-empty object is not there.
        if (range.start >= size && size > 0) || range.start > range.end {
            return None;
        }
        let end = range.end.min(size);
        Some((object.slice(range.start as usize..end as usize), size))
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, body.clone()).await?;
        let k = CacheKey {
            key: key.into(),
            range: WHOLE,
        };
        self.cache.insert(k, Kept::new(body)).await;
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.get_range_with_origin(key, range).await.map(|(b, _)| b)
    }

    /// Bytes cut from a whole object kept since its put are `Written`;
    /// anything fetched (now or earlier) is `Stored`.
    async fn get_range_with_origin(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<(Bytes, Origin), StoreError> {
        let key: Arc<str> = key.into();
        let whole = CacheKey {
            key: key.clone(),
            range: WHOLE,
        };
        if let Some(Kept { bytes: object, .. }) = self.cache.get(&whole).await
            && (range.start < object.len() as u64 || object.is_empty())
        {
            self.metrics.chunk_cache.hits.inc();
            let end = range.end.min(object.len() as u64);
            return Ok((
                object.slice(range.start as usize..end as usize),
                Origin::Written,
            ));
        }
        let k = CacheKey {
            key: key.clone(),
            range: Some((range.start, range.end)),
        };
        let missed = AtomicBool::new(false);
        let inner = &self.inner;
        let r = self
            .cache
            .try_get_with(k, async {
                missed.store(true, Ordering::Relaxed);
                inner.get_range(&key, range).await.map(Kept::new)
            })
            .await;
        if missed.load(Ordering::Relaxed) {
            self.metrics.chunk_cache.misses.inc();
        } else {
            self.metrics.chunk_cache.hits.inc();
        }
        let kept = r.map_err(|e| (*e).clone())?;
        let origin = match kept.checked.load(Ordering::Acquire) {
            true => Origin::Checked,
            false => Origin::Stored,
        };
        Ok((kept.bytes, origin))
    }

    /// Marks the cached range checked when it still holds these very bytes,
    /// not a copy fetched again after an eviction.
    async fn mark_checked(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        if let Some((_, kept)) = self.holding(key, range, bytes).await {
            kept.checked.store(true, Ordering::Release);
        }
    }

    /// Drops the fetched range when it still holds these very bytes (not a
    /// good copy another reader fetched since; a whole object kept since
    /// its put was checked as it was written), and passes the word on.
    async fn discard(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        if let Some((k, _)) = self.holding(key, range.clone(), bytes).await {
            self.cache.invalidate(&k).await;
        }
        self.inner.discard(key, range, bytes).await;
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        for k in keys {
            self.cache
                .invalidate(&CacheKey {
                    key: k.as_str().into(),
                    range: WHOLE,
                })
                .await;
        }
        self.inner.delete_many(keys).await
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InstrumentedStore, MemoryStore};

    #[tokio::test]
    async fn concurrent_misses_cost_one_get() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        mem.put("o", Bytes::from(vec![7u8; 1000])).await.unwrap();
        let counted: SharedStore = Arc::new(InstrumentedStore::new(mem, metrics.clone()));
        let cached = Arc::new(CachedStore::new(counted, 1 << 20, metrics.clone()));
        let reads = (0..200).map(|_| {
            let c = cached.clone();
            async move { c.get_range("o", 10..20).await.unwrap() }
        });
        let out = futures_util::future::join_all(reads).await;
        assert!(out.iter().all(|b| b.len() == 10));
        assert_eq!(metrics.object_gets.get(), 1);
        assert_eq!(metrics.chunk_cache.misses.get(), 1);
        assert_eq!(metrics.chunk_cache.hits.get(), 199);
    }

    #[tokio::test]
    async fn a_fresh_flush_is_kept_when_the_cache_is_full_of_re_read_objects() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        let counted: SharedStore = Arc::new(InstrumentedStore::new(mem, metrics.clone()));
        let cached = CachedStore::new(counted, 1 << 20, metrics.clone());
        for i in 0..10 {
            let key = format!("old{i}");
            cached
                .put(&key, Bytes::from(vec![1u8; 100_000]))
                .await
                .unwrap();
            for _ in 0..5 {
                cached.get_range(&key, 0..10).await.unwrap();
            }
        }
        cached.cache.run_pending_tasks().await;
        cached
            .put("fresh", Bytes::from(vec![2u8; 100_000]))
            .await
            .unwrap();
        cached.cache.run_pending_tasks().await;
        let gets = metrics.object_gets.get();
        assert_eq!(&cached.get_range("fresh", 0..2).await.unwrap()[..], &[2, 2]);
        assert_eq!(metrics.object_gets.get(), gets, "served from memory");
    }

    #[tokio::test]
    async fn a_fetched_range_is_checked_once_per_fetch() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        mem.put("o", Bytes::from(vec![7u8; 1000])).await.unwrap();
        let cached = CachedStore::new(mem, 1 << 20, metrics);
        let (bytes, origin) = cached.get_range_with_origin("o", 0..100).await.unwrap();
        assert_eq!(origin, Origin::Stored);
        // A copy is not the cached memory: marking it changes nothing.
        let copy = Bytes::copy_from_slice(&bytes);
        cached.mark_checked("o", 0..100, &copy).await;
        assert_eq!(
            cached.get_range_with_origin("o", 0..100).await.unwrap().1,
            Origin::Stored
        );
        cached.mark_checked("o", 0..100, &bytes).await;
        assert_eq!(
            cached.get_range_with_origin("o", 0..100).await.unwrap().1,
            Origin::Checked
        );
        // Another range of the same object was not checked.
        assert_eq!(
            cached.get_range_with_origin("o", 0..99).await.unwrap().1,
            Origin::Stored
        );
        // Fetched again after an eviction, the bytes are unchecked again.
        cached.cache.invalidate_all();
        cached.cache.run_pending_tasks().await;
        assert_eq!(
            cached.get_range_with_origin("o", 0..100).await.unwrap().1,
            Origin::Stored
        );
    }

    #[tokio::test]
    async fn only_objects_kept_since_their_put_are_offered_to_peers() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        mem.put("fetched", Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        let cached = CachedStore::new(mem, 1 << 20, metrics);
        cached
            .put("mine", Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        cached.get_range("fetched", 0..6).await.unwrap();
        let (b, size) = cached.kept("mine", 2..4).await.unwrap();
        assert_eq!((&b[..], size), (&b"cd"[..], 6));
        let (b, _) = cached.kept("mine", 4..100).await.unwrap();
        assert_eq!(&b[..], b"ef", "cut at the end");
        assert!(cached.kept("mine", 7..9).await.is_none(), "past the end");
        assert!(cached.kept("mine", 6..9).await.is_none(), "at the end");
        assert!(
            cached.kept("fetched", 0..6).await.is_none(),
            "fetched, not put"
        );
        assert!(cached.kept("other", 0..1).await.is_none());
    }

    /// Answers every read in a buffer of its own, as a remote store does.
    #[derive(Debug)]
    struct Copies(SharedStore);

    #[async_trait]
    impl ObjectStore for Copies {
        async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
            self.0.put(key, body).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
            let bytes = self.0.get_range(key, range).await?;
            Ok(Bytes::copy_from_slice(&bytes))
        }
        async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
            self.0.delete_many(keys).await
        }
        async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
            self.0.list(prefix, after).await
        }
    }

    #[tokio::test]
    async fn a_discarded_range_is_fetched_again() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        mem.put("o", Bytes::from(vec![7u8; 1000])).await.unwrap();
        let remote: SharedStore = Arc::new(Copies(mem));
        let counted: SharedStore = Arc::new(InstrumentedStore::new(remote, metrics.clone()));
        let cached = CachedStore::new(counted, 1 << 20, metrics.clone());
        let damaged = cached.get_range("o", 0..100).await.unwrap();
        cached.get_range("o", 0..100).await.unwrap();
        assert_eq!(metrics.object_gets.get(), 1);
        // A copy is not what the cache holds: nothing is dropped.
        cached
            .discard("o", 0..100, &Bytes::copy_from_slice(&damaged))
            .await;
        cached.get_range("o", 0..100).await.unwrap();
        assert_eq!(metrics.object_gets.get(), 1);
        cached.discard("o", 0..100, &damaged).await;
        let fresh = cached.get_range("o", 0..100).await.unwrap();
        assert_eq!(metrics.object_gets.get(), 2, "fetched again");
        // A late reader of the damaged bytes leaves the good copy alone.
        cached.discard("o", 0..100, &damaged).await;
        assert_eq!(cached.get_range("o", 0..100).await.unwrap(), fresh);
        assert_eq!(metrics.object_gets.get(), 2);
    }

    #[tokio::test]
    async fn put_objects_are_served_from_memory() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        let counted: SharedStore = Arc::new(InstrumentedStore::new(mem, metrics.clone()));
        let cached = CachedStore::new(counted, 1 << 20, metrics.clone());
        cached
            .put("o", Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        assert_eq!(&cached.get_range("o", 2..4).await.unwrap()[..], b"cd");
        assert_eq!(metrics.object_gets.get(), 0);
        let (_, origin) = cached.get_range_with_origin("o", 2..4).await.unwrap();
        assert_eq!(origin, Origin::Written, "kept since its put");
    }

    #[tokio::test]
    async fn fetched_ranges_are_stored_bytes_even_when_cached() {
        let metrics = Arc::new(Metrics::default());
        let mem: SharedStore = Arc::new(MemoryStore::default());
        mem.put("o", Bytes::from_static(b"abcdef")).await.unwrap();
        let cached = CachedStore::new(mem, 1 << 20, metrics);
        for _ in 0..2 {
            let (b, origin) = cached.get_range_with_origin("o", 1..3).await.unwrap();
            assert_eq!((&b[..], origin), (&b"bc"[..], Origin::Stored));
        }
    }
}
