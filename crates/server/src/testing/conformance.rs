//! The behaviour every `MetadataStore` implementation must show.
//!
//! Each backend's tests call [`run`] on a fresh, empty store.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::metadata::{
    ChunkCommit, ChunkOutcome, FlushCommit, GroupOffsetCommit, KeyCommit, MetadataError,
    MetadataStore,
};
use crate::model::{Compression, NewTopic};

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        tenant: "t1".into(),
        name: name.into(),
        partition_count: partitions,
        retention_ms: None,
        compression: Compression::Lz4,
    }
}

fn chunk(topic_id: Uuid, partition: i32, count: u32, max_ts: i64) -> ChunkCommit {
    ChunkCommit {
        topic_id,
        partition,
        byte_offset: 8,
        byte_len: 100,
        record_count: count,
        max_timestamp: max_ts,
    }
}

fn flush(chunks: Vec<ChunkCommit>) -> FlushCommit {
    FlushCommit {
        object_id: Uuid::now_v7(),
        object_size: 1000,
        writer: "test".into(),
        created_at_ms: 1,
        chunks,
        keys: Vec::new(),
        max_object_age_ms: None,
    }
}

fn base(o: &ChunkOutcome) -> i64 {
    match o {
        ChunkOutcome::Committed { base_offset } => *base_offset,
        ChunkOutcome::TopicGone => panic!("chunk unexpectedly dropped"),
    }
}

/// Runs every check on an empty store.
pub async fn run<S: MetadataStore + ?Sized>(store: &S) {
    topics(store).await;
    commits(store).await;
    deletion(store).await;
    groups(store).await;
    keys(store).await;
    clock_and_objects(store).await;
}

async fn topics<S: MetadataStore + ?Sized>(s: &S) {
    let a = s
        .create_topic(&new_topic("alpha", 3), 10)
        .await
        .expect("create");
    assert_eq!(a.partition_count, 3);
    assert_eq!(a.compression, Compression::Lz4);
    assert!(matches!(
        s.create_topic(&new_topic("alpha", 1), 11).await,
        Err(MetadataError::AlreadyExists(_))
    ));
    // The same name in another tenant is another topic.
    let mut other = new_topic("alpha", 1);
    other.tenant = "t2".into();
    s.create_topic(&other, 12).await.expect("other tenant");
    for name in ["beta", "gamma", "delta"] {
        s.create_topic(&new_topic(name, 1), 13)
            .await
            .expect("create");
    }
    assert_eq!(
        s.get_topic("t1", "alpha").await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(s.get_topic("t1", "nope").await.expect("get"), None);
    let page = s.list_topics("t1", None, 2).await.expect("list");
    let names: Vec<_> = page.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let page = s.list_topics("t1", Some("beta"), 10).await.expect("list");
    let names: Vec<_> = page.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["delta", "gamma"]);
    let parts = s.partitions(a.id, 1, 10).await.expect("partitions");
    assert_eq!(
        parts.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(
        parts
            .iter()
            .all(|p| p.next_offset == 0 && p.log_start_offset == 0)
    );
}

async fn commits<S: MetadataStore + ?Sized>(s: &S) {
    let t = s
        .create_topic(&new_topic("commits", 4), 1)
        .await
        .expect("create");
    let first = flush(vec![chunk(t.id, 0, 3, 100), chunk(t.id, 2, 5, 50)]);
    let out = s.commit_flush(&first).await.expect("commit");
    assert_eq!(out.iter().map(base).collect::<Vec<_>>(), [0, 0]);
    let second = flush(vec![chunk(t.id, 2, 1, 40), chunk(t.id, 0, 2, 300)]);
    let out = s.commit_flush(&second).await.expect("commit");
    assert_eq!(out.iter().map(base).collect::<Vec<_>>(), [5, 3]);

    // Re-running a commit returns the first answer and writes nothing.
    let again = s.commit_flush(&first).await.expect("re-run");
    assert_eq!(again.iter().map(base).collect::<Vec<_>>(), [0, 0]);
    let states = s
        .partition_states(&[(t.id, 0), (t.id, 2), (t.id, 3), (Uuid::now_v7(), 0)])
        .await
        .expect("states");
    let mut hw: Vec<_> = states
        .iter()
        .map(|p| (p.partition, p.next_offset))
        .collect();
    hw.sort();
    assert_eq!(hw, [(0, 5), (2, 6), (3, 0)]);
    assert!(states.iter().any(|p| p.partition == 2 && p.bytes == 200));

    let rows = s.find_batches(t.id, 0, 0, 10).await.expect("find");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].base_offset, rows[0].last_offset), (0, 2));
    assert_eq!((rows[1].base_offset, rows[1].last_offset), (3, 4));
    assert_eq!(rows[0].object_id, first.object_id);
    let rows = s.find_batches(t.id, 0, 3, 10).await.expect("find");
    assert_eq!(rows.len(), 1);
    assert!(
        s.find_batches(t.id, 0, 5, 10)
            .await
            .expect("find")
            .is_empty()
    );

    // Seek by time uses the running maximum: partition 2 saw 50 then 40.
    let rows = s.find_batches(t.id, 2, 0, 10).await.expect("find");
    assert_eq!(rows[1].max_timestamp, 50);
    let hit = s.find_batch_by_time(t.id, 2, 45).await.expect("by time");
    assert_eq!(hit.map(|r| r.base_offset), Some(0));
    let hit = s.find_batch_by_time(t.id, 0, 101).await.expect("by time");
    assert_eq!(hit.map(|r| r.base_offset), Some(3));
    assert_eq!(
        s.find_batch_by_time(t.id, 0, 301).await.expect("by time"),
        None
    );

    // A flush touching many partitions, committed concurrently with others,
    // gets unique, gapless offsets everywhere.
    let wide = s
        .create_topic(&new_topic("wide", 50), 1)
        .await
        .expect("create");
    let futures = (0..8).map(|_| {
        let chunks = (0..50).map(|p| chunk(wide.id, p, 2, 1)).collect();
        let f = flush(chunks);
        async move { s.commit_flush(&f).await.expect("commit") }
    });
    let results = futures_util::future::join_all(futures).await;
    for p in 0..50usize {
        let bases: BTreeSet<i64> = results.iter().map(|r| base(&r[p])).collect();
        assert_eq!(bases, (0..8).map(|i| i * 2).collect::<BTreeSet<_>>());
    }
}

async fn deletion<S: MetadataStore + ?Sized>(s: &S) {
    let t = s
        .create_topic(&new_topic("doomed", 2), 1)
        .await
        .expect("create");
    s.commit_flush(&flush(vec![chunk(t.id, 0, 1, 1)]))
        .await
        .expect("commit");
    let deleted = s.delete_topic("t1", "doomed", 2).await.expect("delete");
    assert_eq!(deleted.map(|d| d.id), Some(t.id));
    assert_eq!(
        s.delete_topic("t1", "doomed", 3).await.expect("delete"),
        None
    );
    assert_eq!(s.get_topic("t1", "doomed").await.expect("get"), None);
    // A flush in flight when the topic was deleted commits nothing of it,
    // while its other chunks commit normally.
    let live = s
        .create_topic(&new_topic("survivor", 1), 1)
        .await
        .expect("create");
    let out = s
        .commit_flush(&flush(vec![chunk(t.id, 0, 1, 1), chunk(live.id, 0, 1, 1)]))
        .await
        .expect("commit");
    assert_eq!(out[0], ChunkOutcome::TopicGone);
    assert_eq!(out[1], ChunkOutcome::Committed { base_offset: 0 });
    assert!(
        s.find_batches(t.id, 0, 0, 10)
            .await
            .expect("find")
            .is_empty()
    );
    // The name is free at once, and the new topic starts empty.
    let again = s
        .create_topic(&new_topic("doomed", 1), 4)
        .await
        .expect("re-create");
    assert_ne!(again.id, t.id);
    let out = s
        .commit_flush(&flush(vec![chunk(again.id, 0, 1, 1)]))
        .await
        .expect("commit");
    assert_eq!(out, [ChunkOutcome::Committed { base_offset: 0 }]);
}

async fn groups<S: MetadataStore + ?Sized>(s: &S) {
    let t = s
        .create_topic(&new_topic("grouped", 2), 1)
        .await
        .expect("create");
    let commit = |p, o, m: Option<&str>| GroupOffsetCommit {
        topic_id: t.id,
        partition: p,
        offset: o,
        metadata: m.map(str::to_string),
    };
    s.commit_group_offsets(
        "t1",
        "g",
        &[commit(0, 5, Some("m")), commit(1, 7, None)],
        10,
    )
    .await
    .expect("commit");
    s.commit_group_offsets("t1", "g", &[commit(0, 6, None)], 11)
        .await
        .expect("commit");
    let rows = s.group_offsets("t1", "g").await.expect("fetch");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].partition,
            rows[0].offset,
            rows[0].metadata.as_deref()
        ),
        (0, 6, None)
    );
    assert_eq!((rows[1].partition, rows[1].offset), (1, 7));
    assert_eq!(rows[0].topic, "grouped");
    assert!(s.group_offsets("t2", "g").await.expect("fetch").is_empty());
    s.delete_topic("t1", "grouped", 12).await.expect("delete");
    assert!(s.group_offsets("t1", "g").await.expect("fetch").is_empty());
}

fn key(topic_id: Uuid, name: &str, print: &str, now: i64, records: Vec<(u32, u32)>) -> KeyCommit {
    KeyCommit {
        tenant: "t1".into(),
        topic_id,
        key: name.into(),
        fingerprint: print.into(),
        created_at_ms: now,
        expires_at_ms: now + 1000,
        records,
    }
}

async fn keys<S: MetadataStore + ?Sized>(s: &S) {
    let t = s
        .create_topic(&new_topic("keyed", 2), 1)
        .await
        .expect("create");
    // Two keyed requests in one flush: the answers are recorded with it.
    let mut f = flush(vec![chunk(t.id, 0, 3, 1), chunk(t.id, 1, 1, 1)]);
    f.keys = vec![
        key(t.id, "k1", "p1", 100, vec![(0, 0), (0, 1), (1, 0)]),
        key(t.id, "k2", "p2", 100, vec![(0, 2)]),
    ];
    s.commit_flush(&f).await.expect("commit");
    let k1 = s
        .lookup_key("t1", t.id, "k1", 200)
        .await
        .expect("lookup")
        .expect("recorded");
    assert_eq!(
        (k1.fingerprint.as_str(), k1.offsets.clone()),
        ("p1", vec![(0, 0), (0, 1), (1, 0)])
    );
    let k2 = s
        .lookup_key("t1", t.id, "k2", 200)
        .await
        .expect("lookup")
        .expect("recorded");
    assert_eq!(k2.offsets, vec![(0, 2)]);
    assert_eq!(
        s.lookup_key("t2", t.id, "k1", 200).await.expect("lookup"),
        None,
        "keys are per tenant"
    );

    // A commit carrying a live key applies nothing and reports the record.
    let mut again = flush(vec![chunk(t.id, 0, 1, 1)]);
    again.keys = vec![key(t.id, "k1", "p1", 300, vec![(0, 0)])];
    match s.commit_flush(&again).await {
        Err(MetadataError::KeysExist(found)) => {
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].offsets, vec![(0, 0), (0, 1), (1, 0)]);
        }
        other => panic!("expected KeysExist, got {other:?}"),
    }
    let states = s.partitions(t.id, 0, 10).await.expect("partitions");
    assert_eq!(
        states[0].next_offset, 3,
        "the abandoned commit appended nothing"
    );
    assert!(
        s.known_objects(&[again.object_id])
            .await
            .expect("known")
            .is_empty()
    );

    // Expired keys are ignored, may be used again, and are cleaned up.
    assert_eq!(
        s.lookup_key("t1", t.id, "k1", 1100).await.expect("lookup"),
        None
    );
    let mut reuse = flush(vec![chunk(t.id, 0, 1, 1)]);
    reuse.keys = vec![key(t.id, "k1", "p9", 1200, vec![(0, 0)])];
    s.commit_flush(&reuse)
        .await
        .expect("an expired key is free");
    let k1 = s
        .lookup_key("t1", t.id, "k1", 1300)
        .await
        .expect("lookup")
        .expect("recorded");
    assert_eq!(
        (k1.fingerprint.as_str(), k1.offsets.clone()),
        ("p9", vec![(0, 3)])
    );
    assert_eq!(
        s.expire_keys(1150, 100).await.expect("expire"),
        1,
        "k2 expired at 1100"
    );
    assert!(
        s.lookup_key("t1", t.id, "k1", 1300)
            .await
            .expect("lookup")
            .is_some()
    );
}

async fn clock_and_objects<S: MetadataStore + ?Sized>(s: &S) {
    let now = s.now_ms().await.expect("clock");
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    assert!((now - local).abs() < 60_000, "the store's clock is sane");
    let t = s
        .create_topic(&new_topic("aged", 1), 1)
        .await
        .expect("create");
    let f = flush(vec![chunk(t.id, 0, 1, 1)]);
    s.commit_flush(&f).await.expect("commit");
    let unknown = Uuid::now_v7();
    assert_eq!(
        s.known_objects(&[f.object_id, unknown])
            .await
            .expect("known"),
        vec![f.object_id]
    );
    // An object minted too long ago is refused, and nothing is applied.
    let mut old = flush(vec![chunk(t.id, 0, 1, 1)]);
    old.object_id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_000_000, 0));
    old.max_object_age_ms = Some(60_000);
    assert!(matches!(
        s.commit_flush(&old).await,
        Err(MetadataError::Unavailable(_))
    ));
    assert_eq!(
        s.partitions(t.id, 0, 1).await.expect("partitions")[0].next_offset,
        1
    );
    let mut young = flush(vec![chunk(t.id, 0, 1, 1)]);
    young.max_object_age_ms = Some(60_000);
    s.commit_flush(&young)
        .await
        .expect("a young object commits");
}
