//! An in-process cache in front of any metadata store.
//!
//! Topics are looked up by name on every produce and read, so they are
//! cached for a short TTL and invalidated at once by local creates and
//! deletes; deletions made by other agents are found by the tail poller
//! (`topic_epoch`), which calls [`CachedMetadata::forget_topic_id`]. Only
//! live topics are cached: a topic created elsewhere is seen on the next
//! lookup. Offset-index rows are cached too (see `index_cache`): local
//! commits insert theirs, reads insert what they fetch. Group offsets and
//! partition states are never cached here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use uuid::Uuid;

use super::index_cache::IndexCache;
use super::{
    BatchRow, ChunkOutcome, FlushCommit, GroupOffsetCommit, GroupOffsetRow, MetadataError,
    MetadataStore, SharedMetadata,
};
use crate::metrics::Metrics;
use crate::model::{NewTopic, PartitionKey, PartitionState, TopicMeta};

/// Caching layer; see the module header.
#[derive(Debug)]
pub struct CachedMetadata {
    inner: SharedMetadata,
    topics: Cache<(String, String), Arc<TopicMeta>>,
    index: IndexCache,
    /// Coalesces concurrent index misses for the same rows: a thousand
    /// followers woken by one commit cost one query. Never holds empty
    /// answers; entries live briefly (rows are immutable, so never wrong).
    lookups: Cache<(Uuid, i32, i64, u32), Arc<Vec<BatchRow>>>,
    metrics: Arc<Metrics>,
}

/// Sizes and lifetimes of the metadata caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub topic_ttl: Duration,
    pub index_rows: u64,
    /// At most half the object GC grace period.
    pub index_ttl: Duration,
}

impl CachedMetadata {
    pub fn new(inner: SharedMetadata, config: CacheConfig, metrics: Arc<Metrics>) -> Self {
        CachedMetadata {
            inner,
            topics: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.topic_ttl)
                .build(),
            index: IndexCache::new(config.index_rows, config.index_ttl),
            lookups: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
            metrics,
        }
    }

    /// Ids of the topics this agent has cached.
    pub fn cached_topic_ids(&self) -> Vec<Uuid> {
        self.topics.iter().map(|(_, t)| t.id).collect()
    }

    /// Forgets a cached topic by id (it was deleted elsewhere).
    pub async fn forget_topic_id(&self, id: Uuid) {
        let keys: Vec<_> = self
            .topics
            .iter()
            .filter(|(_, t)| t.id == id)
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            self.topics.invalidate(&k).await;
        }
    }

    /// The live topic with this name, shared, from cache when possible.
    pub async fn topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        let key = (tenant.to_string(), name.to_string());
        if let Some(t) = self.topics.get(&key).await {
            self.metrics.topic_cache.hits.inc();
            return Ok(Some(t));
        }
        self.metrics.topic_cache.misses.inc();
        let Some(t) = self.inner.get_topic(tenant, name).await? else {
            return Ok(None);
        };
        let t = Arc::new(t);
        self.topics.insert(key, t.clone()).await;
        Ok(Some(t))
    }

    /// Forgets a cached topic (after a local delete, or a commit that found
    /// the topic gone).
    pub async fn forget_topic(&self, tenant: &str, name: &str) {
        self.topics
            .invalidate(&(tenant.to_string(), name.to_string()))
            .await;
    }
}

#[async_trait]
impl MetadataStore for CachedMetadata {
    async fn create_topic(
        &self,
        topic: &NewTopic,
        now_ms: i64,
    ) -> Result<TopicMeta, MetadataError> {
        let t = self.inner.create_topic(topic, now_ms).await?;
        self.topics
            .insert((t.tenant.clone(), t.name.clone()), Arc::new(t.clone()))
            .await;
        Ok(t)
    }

    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        Ok(self.topic(tenant, name).await?.map(|t| (*t).clone()))
    }

    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        self.inner.list_topics(tenant, after, limit).await
    }

    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.forget_topic(tenant, name).await;
        let r = self.inner.delete_topic(tenant, name, now_ms).await;
        self.forget_topic(tenant, name).await;
        r
    }

    async fn partitions(
        &self,
        topic_id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner.partitions(topic_id, from, limit).await
    }

    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner.partition_states(keys).await
    }

    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        let outcomes = self.inner.commit_flush(commit).await?;
        for (c, o) in commit.chunks.iter().zip(&outcomes) {
            if let ChunkOutcome::Committed { base_offset } = o {
                // The running timestamp maximum is not known here; seek by
                // time always asks the store, never this cache.
                self.index.insert(
                    c.topic_id,
                    c.partition,
                    BatchRow {
                        base_offset: *base_offset,
                        last_offset: base_offset + i64::from(c.record_count) - 1,
                        object_id: commit.object_id,
                        byte_offset: c.byte_offset,
                        byte_len: c.byte_len,
                        record_count: c.record_count,
                        max_timestamp: c.max_timestamp,
                    },
                );
            }
        }
        Ok(outcomes)
    }

    async fn find_batches(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError> {
        let cached = self
            .index
            .run_from(topic_id, partition, offset, limit as usize);
        if !cached.is_empty() {
            self.metrics.index_cache.hits.inc();
            return Ok(cached);
        }
        self.metrics.index_cache.misses.inc();
        let key = (topic_id, partition, offset, limit);
        let fetched = self
            .lookups
            .try_get_with(key, async {
                let rows = self
                    .inner
                    .find_batches(topic_id, partition, offset, limit)
                    .await?;
                for r in &rows {
                    self.index.insert(topic_id, partition, *r);
                }
                if rows.is_empty() {
                    // Not cached: the next caller must look again.
                    return Err(None);
                }
                Ok(Arc::new(rows))
            })
            .await;
        match fetched {
            Ok(rows) => Ok(rows.as_ref().clone()),
            Err(e) => match e.as_ref() {
                None => Ok(Vec::new()),
                Some(err) => Err(err.clone()),
            },
        }
    }

    async fn find_batch_by_time(
        &self,
        topic_id: Uuid,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<BatchRow>, MetadataError> {
        self.inner
            .find_batch_by_time(topic_id, partition, timestamp_ms)
            .await
    }

    async fn commit_group_offsets(
        &self,
        tenant: &str,
        group: &str,
        offsets: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        self.inner
            .commit_group_offsets(tenant, group, offsets, now_ms)
            .await
    }

    async fn group_offsets(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<Vec<GroupOffsetRow>, MetadataError> {
        self.inner.group_offsets(tenant, group).await
    }

    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.inner.topic_epoch().await
    }

    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner.live_topics(ids).await
    }

    async fn lookup_key(
        &self,
        tenant: &str,
        topic_id: Uuid,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<super::RecordedKey>, MetadataError> {
        self.inner.lookup_key(tenant, topic_id, key, now_ms).await
    }

    async fn expire_keys(&self, now_ms: i64, limit: u32) -> Result<u64, MetadataError> {
        self.inner.expire_keys(now_ms, limit).await
    }

    async fn now_ms(&self) -> Result<i64, MetadataError> {
        self.inner.now_ms().await
    }

    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner.known_objects(ids).await
    }
}
