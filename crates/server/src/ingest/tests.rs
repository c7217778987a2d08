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
use crate::model::{Compression, NewTopic, Tenant, TopicMeta, TopicSettings};
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
                settings: TopicSettings {
                    compression: Compression::None,
                    ..TopicSettings::default()
                },
            },
            0,
        )
        .await
        .unwrap();
    let objects = Arc::new(MemoryStore::default());
    let store: SharedStore = Arc::new(FaultyStore::new(objects.clone(), plan.clone()));
    let ingest = start(
        IngestConfig {
            peer_origin: None,
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

/// `n` records for topic `x` of tenant `t`, alternating over its two
/// partitions.
fn request(n: usize) -> Append {
    Append {
        tenant: Tenant::new("t"),
        topic: "x".to_string().into(),
        idempotency: None,
        held_bytes: 0,
        records: (0..n)
            .map(|i| NewRecord {
                partition: Some((i % 2) as i64),
                record: Record {
                    timestamp: 1,
                    key: None,
                    value: Some(Bytes::from(format!("v{i}"))),
                    headers: Default::default(),
                },
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
    let err = r.ingest.append(request(4)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert!(r.objects.is_empty(), "a failed put's object is deleted");
    assert_eq!(high_watermarks(&r).await, [0, 0]);
    let ok = r.ingest.append(request(4)).await.unwrap();
    assert_eq!(offsets(&ok), [0, 0, 1, 1]);
}

#[tokio::test]
async fn a_refused_commit_answers_503_and_deletes_the_object() {
    let r = rig().await;
    r.plan.nth(Op::Commit, 1, Fault::Fail);
    let err = r.ingest.append(request(2)).await.unwrap_err();
    assert!(matches!(err, ProduceError::Unavailable(_)), "{err:?}");
    assert!(r.objects.is_empty());
    assert_eq!(high_watermarks(&r).await, [0, 0]);
}

#[tokio::test]
async fn an_ambiguous_commit_is_resolved_by_rerunning_it_without_duplicates() {
    let r = rig().await;
    r.plan.nth(Op::Commit, 1, Fault::LoseResponse);
    let first = r.ingest.append(request(4)).await.unwrap();
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
    let next = r.ingest.append(request(2)).await.unwrap();
    assert_eq!(offsets(&next), [2, 2]);
}

#[tokio::test]
async fn a_request_larger_than_a_flush_is_refused_whole() {
    let r = rig().await;
    let mut req = request(1);
    req.records[0].record.value = Some(Bytes::from(vec![0u8; 2 << 20]));
    assert!(matches!(
        r.ingest.append(req).await,
        Err(ProduceError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn append_resolves_the_topic_and_checks_every_record_s_partition() {
    let r = rig().await;
    let mut unknown = request(1);
    unknown.topic = "nope".to_string().into();
    assert_eq!(
        r.ingest.append(unknown).await,
        Err(ProduceError::TopicNotFound("nope".into()))
    );
    let mut other_tenant = request(1);
    other_tenant.tenant = Tenant::new("u");
    assert!(matches!(
        r.ingest.append(other_tenant).await,
        Err(ProduceError::TopicNotFound(_))
    ));
    assert_eq!(
        r.ingest.append(request(0)).await,
        Err(ProduceError::NoRecords)
    );
    let mut bad = request(3);
    bad.records[2].partition = Some(2);
    assert_eq!(
        r.ingest.append(bad).await,
        Err(ProduceError::PartitionNotFound {
            topic: "x".into(),
            index: 2,
            partition: 2,
            count: 2
        })
    );
    assert_eq!(
        high_watermarks(&r).await,
        [0, 0],
        "nothing of a refused request"
    );
}

#[tokio::test]
async fn append_places_keyed_records_as_kafka_and_spreads_the_rest() {
    let r = rig().await;
    let mut keyed = request(4);
    for rec in &mut keyed.records {
        rec.partition = None;
        rec.record.key = Some(Bytes::from_static(b"user-42"));
    }
    let p = super::partitioner::partition_for_key(b"user-42", 2);
    let got = r.ingest.append(keyed).await.unwrap();
    assert!(got.offsets.iter().all(|o| o.partition == p));
    assert_eq!(offsets(&got), [0, 1, 2, 3]);
    let mut spread = request(4);
    for rec in &mut spread.records {
        rec.partition = None;
    }
    let got = r.ingest.append(spread).await.unwrap();
    let mut partitions: Vec<i32> = got.offsets.iter().map(|o| o.partition).collect();
    partitions.sort();
    assert_eq!(partitions, [0, 0, 1, 1], "round-robin over both partitions");
}

/// An ingest over `r`'s stores whose idempotency windows run on `clock`.
fn ingest_on(r: &Rig, clock: crate::clock::SharedClock) -> Ingest {
    start(
        IngestConfig {
            peer_origin: None,
            linger: Duration::from_millis(1),
            max_flush_bytes: 1 << 20,
            max_inflight_flushes: 2,
            max_buffered_bytes: 4 << 20,
            writer_id: "other".into(),
            commit_resolve_timeout: Duration::from_secs(5),
            idempotency_window: Duration::from_secs(3600),
            max_object_age: None,
        },
        IngestDeps {
            store: r.objects.clone(),
            metadata: r.metadata.clone(),
            watermarks: Arc::new(Watermarks::default()),
            metrics: Arc::new(Metrics::default()),
            clock,
        },
        CancellationToken::new(),
        &TaskTracker::new(),
    )
}

#[tokio::test]
async fn agents_with_skewed_clocks_agree_on_idempotency_windows() {
    use crate::clock::{Clock, ManualClock, SystemClock};
    use crate::metadata::StoreClock;
    let r = rig().await;
    // This agent's clock runs two hours behind: by its own clock, the key
    // it records would have expired an hour ago for everyone else.
    let behind = Arc::new(ManualClock::new(SystemClock.now_ms() - 2 * 3_600_000));
    let slow_clock = Arc::new(StoreClock::new(behind));
    slow_clock.sync(r.metadata.log.as_ref()).await.unwrap();
    let slow = ingest_on(&r, slow_clock);
    let mut keyed = request(1);
    keyed.idempotency = Some(RequestKey {
        key: "k".into(),
        fingerprint: "f".into(),
    });
    let first = slow.append(keyed.clone()).await.unwrap();
    let right_clock = Arc::new(StoreClock::new(Arc::new(SystemClock)));
    right_clock.sync(r.metadata.log.as_ref()).await.unwrap();
    let right = ingest_on(&r, right_clock);
    let again = right.append(keyed).await.unwrap();
    assert!(again.replayed, "the key is live by the store's clock");
    assert_eq!(again.offsets, first.offsets);
    assert_eq!(high_watermarks(&r).await, [1, 0], "one copy");
}
