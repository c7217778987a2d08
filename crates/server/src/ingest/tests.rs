//! Flush failure rules, with the fault layers around real stores.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::clock::SystemClock;
use crate::metadata::{Metadata, open_sqlite};
use crate::model::Record;
use crate::model::{Compression, NewTopic, TopicMeta};
use crate::store::{MemoryStore, SharedStore};
use crate::testing::faults::{Fault, FaultPlan, FaultyMetadata, FaultyStore, Op};

struct Rig {
    ingest: Ingest,
    objects: Arc<MemoryStore>,
    metadata: Metadata,
    plan: Arc<FaultPlan>,
    topic: Arc<TopicMeta>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let plan = Arc::new(FaultPlan::default());
    let sqlite = open_sqlite(&dir.path().join("m.db"), metrics.clone())
        .await
        .unwrap();
    let metadata = FaultyMetadata::wrap(sqlite, plan.clone());
    let topic = metadata
        .topics
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
    let objects = Arc::new(MemoryStore::default());
    let store: SharedStore = Arc::new(FaultyStore::new(objects.clone(), plan.clone()));
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
            store,
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
        objects,
        metadata,
        plan,
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
    let states = r.metadata.log.partitions(r.topic.id, 0, 10).await.unwrap();
    states.iter().map(|s| s.next_offset).collect()
}

fn offsets(p: &Produced) -> Vec<i64> {
    p.offsets.iter().map(|o| o.offset).collect()
}

#[tokio::test]
async fn a_failed_upload_answers_503_deletes_the_object_and_exposes_nothing() {
    let r = rig().await;
    // Every attempt of the first flush's upload loses its response: the
    // bytes may be stored, so they must be deleted.
    for n in 1..=3 {
        r.plan.nth(Op::Put, n, Fault::LoseResponse);
    }
    let err = r.ingest.produce(request(&r.topic, 4)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert!(r.objects.is_empty(), "a failed put's object is deleted");
    assert_eq!(high_watermarks(&r).await, [0, 0]);
    let ok = r.ingest.produce(request(&r.topic, 4)).await.unwrap();
    assert_eq!(offsets(&ok), [0, 0, 1, 1]);
}

#[tokio::test]
async fn a_refused_commit_answers_503_and_deletes_the_object() {
    let r = rig().await;
    r.plan.nth(Op::Commit, 1, Fault::Fail);
    let err = r.ingest.produce(request(&r.topic, 2)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert!(r.objects.is_empty());
    assert_eq!(high_watermarks(&r).await, [0, 0]);
}

#[tokio::test]
async fn an_ambiguous_commit_is_resolved_by_rerunning_it_without_duplicates() {
    let r = rig().await;
    r.plan.nth(Op::Commit, 1, Fault::LoseResponse);
    let first = r.ingest.produce(request(&r.topic, 4)).await.unwrap();
    assert_eq!(offsets(&first), [0, 0, 1, 1]);
    assert_eq!(
        high_watermarks(&r).await,
        [2, 2],
        "committed once, not twice"
    );
    assert_eq!(
        r.objects.len(),
        1,
        "a possibly committed object is never deleted"
    );
    let next = r.ingest.produce(request(&r.topic, 2)).await.unwrap();
    assert_eq!(offsets(&next), [2, 2]);
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
