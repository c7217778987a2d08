//! An in-process cache in front of any store's topics and log, which keeps
//! itself current.
//!
//! Topics are looked up by name on every produce and read, so they are
//! cached for a short TTL. The cache forgets a topic at once when it is
//! deleted here, when a commit here finds it gone, and — through
//! [`MetadataCache::keep_current`], which polls the store's topic epoch —
//! when another agent deleted it. Only live topics are cached: a topic
//! created elsewhere is seen on the next lookup. Offset-index rows are
//! cached too (see `index`): local commits insert theirs, reads insert
//! what they fetch; lifecycle work done here (trim, compaction swaps,
//! releases) forgets the rows it replaced, while other agents' caches
//! keep theirs until their TTL, well within the objects' grace. Group
//! offsets, idempotency keys and partition states are never cached; those
//! concerns pass through untouched.

mod index;
mod lifecycle;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    BatchRow, ChunkOutcome, FlushCommit, Lifecycle, Log, Metadata, MetadataError, Topics,
    WatermarkFeed,
};
use crate::metrics::Metrics;
use crate::model::{NewTopic, PartitionKey, PartitionState, TopicMeta, TopicSettings};
use index::IndexCache;

/// Sizes and lifetimes of the metadata caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub topic_ttl: Duration,
    pub index_rows: u64,
    /// At most half the object GC grace period.
    pub index_ttl: Duration,
}

/// The caching layer; see the module header.
#[derive(Debug)]
pub struct MetadataCache {
    inner_topics: Arc<dyn Topics>,
    inner_log: Arc<dyn Log>,
    inner_lifecycle: Arc<dyn Lifecycle>,
    topics: Cache<(String, String), Arc<TopicMeta>>,
    index: IndexCache,
    /// Coalesces concurrent index misses for the same rows: a thousand
    /// followers woken by one commit cost one query. Never holds empty
    /// answers; entries live briefly (rows are immutable, so never wrong).
    lookups: Cache<(Uuid, i32, i64, u32), Arc<Vec<BatchRow>>>,
    /// Where a compaction's swap is announced, so other agents forget the
    /// partition's cached rows too.
    feed: Option<Arc<dyn WatermarkFeed>>,
    metrics: Arc<Metrics>,
}

impl MetadataCache {
    /// Puts the cache in front of `inner`'s topics and log. Returns the
    /// layered metadata and the cache, whose [`keep_current`] the agent
    /// runs in the background.
    ///
    /// [`keep_current`]: MetadataCache::keep_current
    pub fn wrap(
        inner: Metadata,
        config: CacheConfig,
        metrics: Arc<Metrics>,
    ) -> (Metadata, Arc<MetadataCache>) {
        let cache = Arc::new(MetadataCache {
            inner_topics: inner.topics,
            inner_log: inner.log,
            inner_lifecycle: inner.lifecycle,
            topics: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.topic_ttl)
                .build(),
            index: IndexCache::new(config.index_rows, config.index_ttl),
            lookups: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(2))
                .support_invalidation_closures()
                .build(),
            feed: inner.feed.clone(),
            metrics,
        });
        let layered = Metadata {
            topics: cache.clone(),
            log: cache.clone(),
            groups: inner.groups,
            members: inner.members,
            subscriptions: inner.subscriptions,
            keys: inner.keys,
            revocations: inner.revocations,
            lifecycle: cache.clone(),
            feed: inner.feed,
        };
        (layered, cache)
    }

    /// Caches an index row another agent announced with its commit, if
    /// the partition is read here: someone waits on it (`watched`) or read
    /// it within the index cache's lifetime.
    pub fn learn_row(&self, topic_id: Uuid, partition: i32, row: BatchRow, watched: bool) {
        self.index.learn(topic_id, partition, row, watched);
    }

    /// Polls the topic epoch every `interval` until `cancel` fires; when it
    /// moved (a topic was deleted somewhere), forgets every cached topic
    /// that is no longer live.
    pub async fn keep_current(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        let epoch = std::sync::Mutex::new(self.inner_topics.topic_epoch().await.ok());
        crate::background::every(interval, 0.0, cancel, || async {
            match self.inner_topics.topic_epoch().await {
                Ok(now) if Some(now) != *epoch.lock().unwrap_or_else(|e| e.into_inner()) => {
                    if self.forget_dead_topics().await {
                        *epoch.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "topic epoch poll failed"),
            }
        })
        .await;
    }

    /// Returns false when the check could not be made (retry next tick).
    async fn forget_dead_topics(&self) -> bool {
        let ids: Vec<Uuid> = self.topics.iter().map(|(_, t)| t.id).collect();
        match self.inner_topics.live_topics(&ids).await {
            Ok(live) => {
                let live: HashSet<_> = live.into_iter().collect();
                for id in ids.into_iter().filter(|id| !live.contains(id)) {
                    self.forget_topic_id(id).await;
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "live topic check failed");
                false
            }
        }
    }

    /// Forgets a topic by id: its name lookups and its index rows.
    async fn forget_topic_id(&self, id: Uuid) {
        self.forget_index(id);
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

    /// Forgets the cached index rows of one partition.
    pub(crate) fn forget_partition_index(&self, id: Uuid, partition: i32) {
        self.index.forget_partition(id, partition);
        let _ = self
            .lookups
            .invalidate_entries_if(move |(t, p, _, _), _| *t == id && *p == partition);
    }

    fn forget_index(&self, id: Uuid) {
        self.index.forget_topic(id);
        // Only fails when closures are unsupported, which the builder enables.
        let _ = self
            .lookups
            .invalidate_entries_if(move |(t, _, _, _), _| *t == id);
    }

    async fn forget_topic(&self, tenant: &str, name: &str) {
        self.topics
            .invalidate(&(tenant.to_string(), name.to_string()))
            .await;
    }
}

#[async_trait]
impl Topics for MetadataCache {
    async fn create_topic(
        &self,
        topic: &NewTopic,
        now_ms: i64,
    ) -> Result<TopicMeta, MetadataError> {
        let t = self.inner_topics.create_topic(topic, now_ms).await?;
        self.topics
            .insert((t.tenant.clone(), t.name.clone()), Arc::new(t.clone()))
            .await;
        Ok(t)
    }

    async fn get_topic(
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
        let Some(t) = self.inner_topics.get_topic(tenant, name).await? else {
            return Ok(None);
        };
        self.topics.insert(key, t.clone()).await;
        Ok(Some(t))
    }

    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        self.inner_topics.list_topics(tenant, after, limit).await
    }

    async fn configure_topic(
        &self,
        tenant: &str,
        name: &str,
        settings: &TopicSettings,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.forget_topic(tenant, name).await;
        let changed = self
            .inner_topics
            .configure_topic(tenant, name, settings)
            .await;
        self.forget_topic(tenant, name).await;
        changed
    }

    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.forget_topic(tenant, name).await;
        let deleted = self.inner_topics.delete_topic(tenant, name, now_ms).await;
        self.forget_topic(tenant, name).await;
        if let Ok(Some(t)) = &deleted {
            self.forget_index(t.id);
        }
        deleted
    }

    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.inner_topics.topic_epoch().await
    }

    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner_topics.live_topics(ids).await
    }
}

#[async_trait]
impl Log for MetadataCache {
    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        let outcomes = self.inner_log.commit_flush(commit).await?;
        let mut gone = HashSet::new();
        for (c, o) in commit.chunks.iter().zip(&outcomes) {
            match o {
                ChunkOutcome::Committed {
                    base_offset,
                    max_timestamp,
                } => self.index.insert(
                    c.topic_id,
                    c.partition,
                    BatchRow {
                        base_offset: *base_offset,
                        last_offset: base_offset + i64::from(c.record_count) - 1,
                        object_id: commit.object_id,
                        byte_offset: c.byte_offset,
                        byte_len: c.byte_len,
                        record_count: c.record_count,
                        max_timestamp: *max_timestamp,
                    },
                ),
                // A stale cached topic sent records here: the next lookup
                // must see the truth.
                ChunkOutcome::TopicGone => {
                    gone.insert(c.topic_id);
                }
            }
        }
        for id in gone {
            self.forget_topic_id(id).await;
        }
        Ok(outcomes)
    }

    async fn partitions(
        &self,
        topic_id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner_log.partitions(topic_id, from, limit).await
    }

    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner_log.partition_states(keys).await
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
                    .inner_log
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

    async fn find_batches_by_time(
        &self,
        keys: &[PartitionKey],
        timestamp_ms: i64,
    ) -> Result<Vec<(PartitionKey, BatchRow)>, MetadataError> {
        self.inner_log
            .find_batches_by_time(keys, timestamp_ms)
            .await
    }

    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner_log.known_objects(ids).await
    }

    async fn now_ms(&self) -> Result<i64, MetadataError> {
        self.inner_log.now_ms().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{CacheConfig, MetadataCache};
    use crate::metrics::Metrics;
    use crate::testing::TempSqlite;

    /// The cache over SQLite, with entries that live for the whole test.
    async fn cached() -> TempSqlite {
        let config = CacheConfig {
            topic_ttl: Duration::from_secs(600),
            index_rows: 10_000,
            index_ttl: Duration::from_secs(600),
        };
        TempSqlite::open()
            .await
            .layered(|m| MetadataCache::wrap(m, config, Arc::new(Metrics::default())).0)
    }

    crate::metadata_conformance!(cached);
}
