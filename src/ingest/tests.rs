//! Flush failure rules, with small fault wrappers around real stores.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::*;
use crate::clock::SystemClock;
use crate::format::Record;
use crate::metadata::{
    BatchRow, ChunkOutcome, FlushCommit, GroupOffsetCommit, GroupOffsetRow, MetadataError,
    MetadataStore, SqliteMetadata,
};
use crate::model::{Compression, NewTopic, PartitionKey, PartitionState, TopicMeta};
use crate::store::{DeleteOutcome, ListPage, MemoryStore, ObjectStore, StoreError};

#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_puts: AtomicBool,
    deleted: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected put failure".into()));
        }
        self.inner.put(key, body).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, range).await
    }
    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        self.deleted.lock().unwrap().extend(keys.iter().cloned());
        self.inner.delete_many(keys).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, after).await
    }
}

/// Commit faults: `Lost` applies the commit and then reports it ambiguous
/// (connection lost after COMMIT); `Refused` fails before applying.
#[derive(Debug)]
struct FaultyMetadata {
    inner: SqliteMetadata,
    lost: AtomicU32,
    refused: AtomicU32,
}

#[async_trait]
impl MetadataStore for FaultyMetadata {
    async fn create_topic(&self, t: &NewTopic, now: i64) -> Result<TopicMeta, MetadataError> {
        self.inner.create_topic(t, now).await
    }
    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.inner.get_topic(tenant, name).await
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
        now: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.inner.delete_topic(tenant, name, now).await
    }
    async fn partitions(
        &self,
        id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner.partitions(id, from, limit).await
    }
    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.inner.partition_states(keys).await
    }
    async fn commit_flush(&self, c: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        if self.refused.load(Ordering::SeqCst) > 0 {
            self.refused.fetch_sub(1, Ordering::SeqCst);
            return Err(MetadataError::Unavailable(
                "injected: connection refused".into(),
            ));
        }
        if self.lost.load(Ordering::SeqCst) > 0 {
            self.lost.fetch_sub(1, Ordering::SeqCst);
            self.inner.commit_flush(c).await?;
            return Err(MetadataError::Ambiguous(
                "injected: connection lost after COMMIT".into(),
            ));
        }
        self.inner.commit_flush(c).await
    }
    async fn find_batches(
        &self,
        id: Uuid,
        p: i32,
        o: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError> {
        self.inner.find_batches(id, p, o, limit).await
    }
    async fn find_batch_by_time(
        &self,
        id: Uuid,
        p: i32,
        ts: i64,
    ) -> Result<Option<BatchRow>, MetadataError> {
        self.inner.find_batch_by_time(id, p, ts).await
    }
    async fn commit_group_offsets(
        &self,
        t: &str,
        g: &str,
        o: &[GroupOffsetCommit],
        now: i64,
    ) -> Result<(), MetadataError> {
        self.inner.commit_group_offsets(t, g, o, now).await
    }
    async fn group_offsets(&self, t: &str, g: &str) -> Result<Vec<GroupOffsetRow>, MetadataError> {
        self.inner.group_offsets(t, g).await
    }
    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.inner.topic_epoch().await
    }
    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner.live_topics(ids).await
    }
    async fn lookup_key(
        &self,
        t: &str,
        id: Uuid,
        k: &str,
        now: i64,
    ) -> Result<Option<crate::metadata::RecordedKey>, MetadataError> {
        self.inner.lookup_key(t, id, k, now).await
    }
    async fn expire_keys(&self, now: i64, limit: u32) -> Result<u64, MetadataError> {
        self.inner.expire_keys(now, limit).await
    }
    async fn now_ms(&self) -> Result<i64, MetadataError> {
        self.inner.now_ms().await
    }
    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.inner.known_objects(ids).await
    }
}

struct Rig {
    ingest: Ingest,
    store: Arc<FlakyStore>,
    metadata: Arc<FaultyMetadata>,
    topic: Arc<TopicMeta>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let inner = SqliteMetadata::open(&dir.path().join("m.db"), metrics.clone())
        .await
        .unwrap();
    let metadata = Arc::new(FaultyMetadata {
        inner,
        lost: AtomicU32::new(0),
        refused: AtomicU32::new(0),
    });
    let topic = metadata
        .create_topic(
            &NewTopic {
                tenant: "t".into(),
                name: "x".into(),
                partition_count: 2,
                retention_ms: None,
                compression: Compression::None,
            },
            0,
        )
        .await
        .unwrap();
    let store = Arc::new(FlakyStore::default());
    let ingest = start(
        IngestConfig {
            linger: Duration::from_millis(1),
            max_flush_bytes: 1 << 20,
            max_inflight_flushes: 2,
            max_buffered_bytes: 4 << 20,
            writer_id: "test".into(),
            commit_resolve_timeout: Duration::from_secs(5),
            idempotency_window: Duration::from_secs(3600),
            max_object_age: None,
        },
        IngestDeps {
            store: store.clone(),
            metadata: metadata.clone(),
            watermarks: Arc::new(Watermarks::default()),
            metrics,
            clock: Arc::new(SystemClock),
        },
        CancellationToken::new(),
        &TaskTracker::new(),
    );
    Rig {
        ingest,
        store,
        metadata,
        topic: Arc::new(topic),
        _dir: dir,
    }
}

fn request(topic: &Arc<TopicMeta>, n: usize) -> ProduceRequest {
    ProduceRequest {
        idempotency: None,
        topic: topic.clone(),
        records: (0..n)
            .map(|i| {
                (
                    (i % 2) as i32,
                    Record {
                        timestamp: 1,
                        key: None,
                        value: Some(Bytes::from(format!("v{i}"))),
                        headers: vec![],
                    },
                )
            })
            .collect(),
    }
}

async fn high_watermarks(r: &Rig) -> Vec<i64> {
    let states = r.metadata.partitions(r.topic.id, 0, 10).await.unwrap();
    states.iter().map(|s| s.next_offset).collect()
}

#[tokio::test]
async fn a_failed_upload_answers_503_deletes_the_object_and_exposes_nothing() {
    let r = rig().await;
    r.store.fail_puts.store(true, Ordering::SeqCst);
    let err = r.ingest.produce(request(&r.topic, 4)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert_eq!(
        r.store.deleted.lock().unwrap().len(),
        1,
        "a failed put's key is deleted"
    );
    assert_eq!(high_watermarks(&r).await, [0, 0]);
    r.store.fail_puts.store(false, Ordering::SeqCst);
    let ok = r.ingest.produce(request(&r.topic, 4)).await.unwrap();
    assert_eq!(
        ok.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
}

#[tokio::test]
async fn a_refused_commit_answers_503_and_deletes_the_object() {
    let r = rig().await;
    r.metadata.refused.store(1, Ordering::SeqCst);
    let err = r.ingest.produce(request(&r.topic, 2)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert_eq!(r.store.deleted.lock().unwrap().len(), 1);
    assert!(r.store.inner.is_empty());
    assert_eq!(high_watermarks(&r).await, [0, 0]);
}

#[tokio::test]
async fn an_ambiguous_commit_is_resolved_by_rerunning_it_without_duplicates() {
    let r = rig().await;
    r.metadata.lost.store(1, Ordering::SeqCst);
    let offsets = r.ingest.produce(request(&r.topic, 4)).await.unwrap();
    assert_eq!(
        offsets.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    assert_eq!(
        high_watermarks(&r).await,
        [2, 2],
        "committed once, not twice"
    );
    assert!(
        r.store.deleted.lock().unwrap().is_empty(),
        "a possibly committed object is never deleted"
    );
    assert_eq!(r.store.inner.len(), 1);
    let next = r.ingest.produce(request(&r.topic, 2)).await.unwrap();
    assert_eq!(
        next.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(),
        [2, 2]
    );
}

#[tokio::test]
async fn a_request_larger_than_a_flush_is_refused_whole() {
    let r = rig().await;
    let mut req = request(&r.topic, 1);
    req.records[0].1.value = Some(Bytes::from(vec![0u8; 2 << 20]));
    assert!(matches!(
        r.ingest.produce(req).await,
        Err(ProduceError::TooLarge { .. })
    ));
}
