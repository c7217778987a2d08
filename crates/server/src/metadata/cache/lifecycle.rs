//! Lifecycle calls through the cache: each passes to the store, and a
//! change to a partition's index rows forgets the rows cached for it.

use async_trait::async_trait;
use uuid::Uuid;

use super::MetadataCache;
use crate::metadata::lifecycle::{
    ExpiredObject, IndexedChunk, Job, Lifecycle, PartitionObjects, Released, StorageReport, Swap,
    SwapOutcome, SweepInput, SweepOutcome, SweepSwap, TrimOutcome,
};
use crate::metadata::{Announcement, MetadataError};
use crate::model::TopicMeta;

#[async_trait]
impl Lifecycle for MetadataCache {
    async fn live_topic(&self, id: Uuid) -> Result<Option<TopicMeta>, MetadataError> {
        self.inner_lifecycle.live_topic(id).await
    }

    async fn plan_jobs(&self, uncompacted_before_ms: i64) -> Result<(), MetadataError> {
        self.inner_lifecycle.plan_jobs(uncompacted_before_ms).await
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, MetadataError> {
        self.inner_lifecycle
            .claim_jobs(owner, lease_ms, limit)
            .await
    }

    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        retry_in_ms: Option<i64>,
    ) -> Result<(), MetadataError> {
        self.inner_lifecycle
            .finish_job(job, owner, retry_in_ms)
            .await
    }

    async fn retention_point(
        &self,
        topic_id: Uuid,
        partition: i32,
        older_than_ms: Option<i64>,
        keep_bytes: Option<i64>,
    ) -> Result<Option<i64>, MetadataError> {
        self.inner_lifecycle
            .retention_point(topic_id, partition, older_than_ms, keep_bytes)
            .await
    }

    async fn advance_log_start(
        &self,
        topic_id: Uuid,
        partition: i32,
        to: i64,
        grace_ms: i64,
    ) -> Result<TrimOutcome, MetadataError> {
        let out = self
            .inner_lifecycle
            .advance_log_start(topic_id, partition, to, grace_ms)
            .await;
        self.forget_partition_index(topic_id, partition);
        out
    }

    async fn indexed_chunks(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexedChunk>, MetadataError> {
        self.inner_lifecycle
            .indexed_chunks(topic_id, partition, offset, limit)
            .await
    }

    async fn swap_chunks(&self, swap: &Swap) -> Result<SwapOutcome, MetadataError> {
        let out = self.inner_lifecycle.swap_chunks(swap).await;
        self.forget_partition_index(swap.topic_id, swap.partition);
        // Other agents forget theirs when they hear of it, not when their
        // cached rows expire; a lost announcement leaves only the expiry.
        if let (Ok(SwapOutcome::Swapped { .. }), Some(feed)) = (&out, &self.feed) {
            let announcement = Announcement {
                at_ms: None,
                advances: Vec::new(),
                rewritten: vec![(swap.topic_id, swap.partition)],
                origin: None,
            };
            feed.announce(&announcement).await;
        }
        out
    }

    async fn sweep_candidates(
        &self,
        flush_before_ms: i64,
        small_object: i64,
        limit: u32,
    ) -> Result<Vec<SweepInput>, MetadataError> {
        self.inner_lifecycle
            .sweep_candidates(flush_before_ms, small_object, limit)
            .await
    }

    async fn swap_swept(&self, swap: &SweepSwap) -> Result<SweepOutcome, MetadataError> {
        let out = self.inner_lifecycle.swap_swept(swap).await;
        for p in &swap.partitions {
            self.forget_partition_index(p.topic_id, p.partition);
        }
        if let (Ok(done), Some(feed)) = (&out, &self.feed)
            && !done.swapped.is_empty()
        {
            let announcement = Announcement {
                at_ms: None,
                advances: Vec::new(),
                rewritten: done.swapped.clone(),
                origin: None,
            };
            feed.announce(&announcement).await;
        }
        out
    }

    async fn release_topic_rows(
        &self,
        topic_id: Uuid,
        limit: u32,
        grace_ms: i64,
    ) -> Result<Released, MetadataError> {
        self.inner_lifecycle
            .release_topic_rows(topic_id, limit, grace_ms)
            .await
    }

    async fn expired_objects(&self, limit: u32) -> Result<Vec<ExpiredObject>, MetadataError> {
        self.inner_lifecycle.expired_objects(limit).await
    }

    async fn forget_objects(&self, ids: &[Uuid]) -> Result<u64, MetadataError> {
        self.inner_lifecycle.forget_objects(ids).await
    }

    async fn partition_objects(
        &self,
        topic_id: Uuid,
        from: i32,
        to: i32,
    ) -> Result<Vec<PartitionObjects>, MetadataError> {
        self.inner_lifecycle
            .partition_objects(topic_id, from, to)
            .await
    }

    async fn storage_report(
        &self,
        topics_every: Option<std::time::Duration>,
    ) -> Result<StorageReport, MetadataError> {
        self.inner_lifecycle.storage_report(topics_every).await
    }
}
