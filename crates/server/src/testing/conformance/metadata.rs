//! The behaviour every metadata store must show, one case per function,
//! each run on a fresh, empty store: SQLite, PostgreSQL at READ COMMITTED
//! and SERIALIZABLE, and the cache and fault layers over a store. The
//! [`metadata_conformance!`](crate::metadata_conformance) macro makes each
//! case its own test.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::metadata::{
    ChunkCommit, ChunkOutcome, FlushCommit, GroupOffsetCommit, KeyCommit, Metadata, MetadataError,
};
use crate::model::{Compression, NewTopic, TopicMeta, TopicSettings};

/// Defines one `#[tokio::test]` per conformance case, each on a fresh
/// store from `$open` (an async fn returning a guard that derefs to
/// [`Metadata`], keeping whatever the store needs alive).
#[macro_export]
macro_rules! metadata_conformance {
    ($open:path) => {
        $crate::metadata_conformance!(@cases $open; lifecycle;
            trim_raises_the_log_start_and_releases_whole_rows,
            an_object_is_released_when_its_last_row_goes,
            retention_points_by_time_and_by_bytes,
            jobs_are_leased_once_and_taken_over_after_the_lease,
            jobs_are_planned_for_what_needs_doing,
            a_swap_replaces_rows_only_if_all_still_exist,
            a_sweep_swaps_the_partitions_whose_rows_are_all_there,
            a_deleted_topics_rows_are_released_in_batches,
            the_storage_report_counts_topics_and_the_backlog,
            an_object_of_deleted_topics_only_is_garbage_at_once,
        );
        $crate::metadata_conformance!(@cases $open; groups;
            a_group_document_is_swapped_only_at_its_version,
            concurrent_swaps_let_exactly_one_win,
            subscriptions_are_kept_per_tenant,
        );
        $crate::metadata_conformance!(@cases $open; metadata;
            topics_are_found_by_tenant_and_name,
            topics_list_in_name_order_a_page_at_a_time,
            partitions_start_empty_and_list_from_a_number,
            commits_assign_gapless_offsets_per_partition,
            a_rerun_commit_returns_its_first_answer_and_writes_nothing,
            partition_states_report_watermarks_and_bytes,
            the_index_finds_the_chunks_from_an_offset,
            seek_by_time_uses_the_running_maximum,
            seek_by_time_searches_a_long_partition_from_its_log_start,
            concurrent_wide_commits_get_unique_gapless_offsets,
            a_deleted_topic_frees_its_name_and_hides_its_records,
            a_commit_into_a_deleted_topic_drops_only_its_chunks,
            an_object_all_of_whose_topics_are_gone_is_garbage_at_once,
            the_topic_epoch_moves_on_deletion,
            group_offsets_upsert_per_partition_and_tenant,
            a_deleted_topic_takes_its_group_offsets,
            keys_are_recorded_with_their_commit,
            a_commit_with_a_live_key_applies_nothing,
            expired_keys_are_free_again_and_cleaned_up,
            the_store_clock_is_sane,
            known_objects_are_the_committed_ones,
            objects_older_than_allowed_are_refused,
            revocations_are_kept_until_their_tokens_expire,
            groups_list_by_tenant_in_name_order,
            topic_settings_change_in_place,
        );
    };
    (@cases $open:path; $module:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $open().await;
                $crate::testing::conformance::$module::$case(&store).await;
            }
        )*
    };
}

pub(super) fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        tenant: "t1".into(),
        name: name.into(),
        partition_count: partitions,
        settings: TopicSettings {
            compression: Compression::Lz4,
            ..TopicSettings::default()
        },
    }
}

pub(super) async fn create(m: &Metadata, name: &str, partitions: i32) -> TopicMeta {
    m.topics
        .create_topic(&new_topic(name, partitions), 1)
        .await
        .expect("create")
}

pub(super) fn chunk(topic_id: Uuid, partition: i32, count: u32, max_ts: i64) -> ChunkCommit {
    ChunkCommit {
        topic_id,
        partition,
        byte_offset: 8,
        byte_len: 100,
        record_count: count,
        max_timestamp: max_ts,
    }
}

pub(super) fn flush(chunks: Vec<ChunkCommit>) -> FlushCommit {
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
        ChunkOutcome::Committed { base_offset, .. } => *base_offset,
        ChunkOutcome::TopicGone => panic!("chunk unexpectedly dropped"),
    }
}

pub(super) async fn commit(m: &Metadata, f: &FlushCommit) -> Vec<i64> {
    let out = m.log.commit_flush(f).await.expect("commit");
    out.iter().map(base).collect()
}

pub async fn topics_are_found_by_tenant_and_name(m: &Metadata) {
    let a = m
        .topics
        .create_topic(&new_topic("alpha", 3), 10)
        .await
        .expect("create");
    assert_eq!(a.partition_count, 3);
    assert_eq!(a.compression, Compression::Lz4);
    assert!(matches!(
        m.topics.create_topic(&new_topic("alpha", 1), 11).await,
        Err(MetadataError::AlreadyExists(_))
    ));
    // The same name in another tenant is another topic.
    let mut other = new_topic("alpha", 1);
    other.tenant = "t2".into();
    let b = m
        .topics
        .create_topic(&other, 12)
        .await
        .expect("other tenant");
    assert_ne!(a.id, b.id);
    let found = m.topics.get_topic("t1", "alpha").await.expect("get");
    assert_eq!(found.as_deref(), Some(&a));
    assert_eq!(m.topics.get_topic("t1", "nope").await.expect("get"), None);
}

pub async fn topics_list_in_name_order_a_page_at_a_time(m: &Metadata) {
    for name in ["alpha", "beta", "gamma", "delta"] {
        create(m, name, 1).await;
    }
    let names = |page: Vec<TopicMeta>| page.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let page = m.topics.list_topics("t1", None, 2).await.expect("list");
    assert_eq!(names(page), ["alpha", "beta"]);
    let page = m
        .topics
        .list_topics("t1", Some("beta"), 10)
        .await
        .expect("list");
    assert_eq!(names(page), ["delta", "gamma"]);
    assert!(
        m.topics
            .list_topics("t2", None, 10)
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn partitions_start_empty_and_list_from_a_number(m: &Metadata) {
    let a = create(m, "alpha", 3).await;
    let parts = m.log.partitions(a.id, 1, 10).await.expect("partitions");
    assert_eq!(
        parts.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(
        parts
            .iter()
            .all(|p| p.next_offset == 0 && p.log_start_offset == 0 && p.bytes == 0)
    );
    assert_eq!(
        m.log
            .partitions(a.id, 0, 1)
            .await
            .expect("partitions")
            .len(),
        1
    );
}

pub async fn commits_assign_gapless_offsets_per_partition(m: &Metadata) {
    let t = create(m, "commits", 4).await;
    let first = flush(vec![chunk(t.id, 0, 3, 100), chunk(t.id, 2, 5, 50)]);
    assert_eq!(commit(m, &first).await, [0, 0]);
    let second = flush(vec![chunk(t.id, 2, 1, 40), chunk(t.id, 0, 2, 300)]);
    assert_eq!(commit(m, &second).await, [5, 3]);
}

pub async fn a_rerun_commit_returns_its_first_answer_and_writes_nothing(m: &Metadata) {
    let t = create(m, "commits", 2).await;
    let first = flush(vec![chunk(t.id, 0, 3, 100), chunk(t.id, 1, 5, 50)]);
    assert_eq!(commit(m, &first).await, [0, 0]);
    assert_eq!(commit(m, &first).await, [0, 0], "the first answer");
    let states = m.log.partitions(t.id, 0, 10).await.expect("partitions");
    assert_eq!(
        states.iter().map(|p| p.next_offset).collect::<Vec<_>>(),
        [3, 5],
        "nothing written twice"
    );
}

pub async fn partition_states_report_watermarks_and_bytes(m: &Metadata) {
    let t = create(m, "states", 4).await;
    commit(m, &flush(vec![chunk(t.id, 0, 3, 1), chunk(t.id, 2, 5, 1)])).await;
    commit(m, &flush(vec![chunk(t.id, 2, 1, 1), chunk(t.id, 0, 2, 1)])).await;
    let states = m
        .log
        .partition_states(&[(t.id, 0), (t.id, 2), (t.id, 3), (Uuid::now_v7(), 0)])
        .await
        .expect("states");
    let mut hw: Vec<_> = states
        .iter()
        .map(|p| (p.partition, p.next_offset))
        .collect();
    hw.sort();
    assert_eq!(
        hw,
        [(0, 5), (2, 6), (3, 0)],
        "unknown partitions are left out"
    );
    assert!(states.iter().any(|p| p.partition == 2 && p.bytes == 200));
    assert!(
        m.log
            .partition_states(&[])
            .await
            .expect("states")
            .is_empty()
    );
}

pub async fn the_index_finds_the_chunks_from_an_offset(m: &Metadata) {
    let t = create(m, "index", 1).await;
    let first = flush(vec![chunk(t.id, 0, 3, 100)]);
    commit(m, &first).await;
    commit(m, &flush(vec![chunk(t.id, 0, 2, 300)])).await;
    let rows = m.log.find_batches(t.id, 0, 0, 10).await.expect("find");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].base_offset, rows[0].last_offset), (0, 2));
    assert_eq!((rows[1].base_offset, rows[1].last_offset), (3, 4));
    assert_eq!(rows[0].object_id, first.object_id);
    assert_eq!(
        (rows[0].byte_offset, rows[0].byte_len, rows[0].record_count),
        (8, 100, 3)
    );
    let rows = m.log.find_batches(t.id, 0, 3, 10).await.expect("find");
    assert_eq!(rows.len(), 1, "the chunk holding offset 3 on");
    assert_eq!(
        m.log.find_batches(t.id, 0, 0, 1).await.expect("find").len(),
        1
    );
    assert!(
        m.log
            .find_batches(t.id, 0, 5, 10)
            .await
            .expect("find")
            .is_empty()
    );
}

pub async fn seek_by_time_uses_the_running_maximum(m: &Metadata) {
    let t = create(m, "times", 2).await;
    commit(
        m,
        &flush(vec![chunk(t.id, 0, 3, 100), chunk(t.id, 1, 5, 50)]),
    )
    .await;
    commit(
        m,
        &flush(vec![chunk(t.id, 1, 1, 40), chunk(t.id, 0, 2, 300)]),
    )
    .await;
    // Partition 1 saw 50 then 40: the second chunk's running maximum is 50.
    let rows = m.log.find_batches(t.id, 1, 0, 10).await.expect("find");
    assert_eq!(rows[1].max_timestamp, 50);
    let at = |keys: Vec<(Uuid, i32)>, ts: i64| {
        let log = m.log.clone();
        async move {
            let mut found: Vec<_> = log
                .find_batches_by_time(&keys, ts)
                .await
                .expect("by time")
                .into_iter()
                .map(|((_, p), row)| (p, row.base_offset))
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(at(vec![(t.id, 1)], 45).await, [(1, 0)]);
    assert_eq!(at(vec![(t.id, 0)], 101).await, [(0, 3)]);
    assert_eq!(at(vec![(t.id, 0)], 301).await, [], "nothing that recent");
    // Many partitions in one query; a partition with nothing left out.
    assert_eq!(
        at(vec![(t.id, 0), (t.id, 1), (Uuid::now_v7(), 0)], 45).await,
        [(0, 0), (1, 0)]
    );
    assert_eq!(at(vec![], 0).await, []);
}

pub async fn seek_by_time_searches_a_long_partition_from_its_log_start(m: &Metadata) {
    let t = create(m, "long", 1).await;
    // 45 rows of 2 records; row i's running maximum is 10 * i, except that
    // rows 20..25 carry older records and so keep row 19's maximum.
    for i in 0..45i64 {
        let ts = if (20..25).contains(&i) { 5 } else { 10 * i };
        commit(m, &flush(vec![chunk(t.id, 0, 2, ts)])).await;
    }
    let seek = |ts: i64| {
        let log = m.log.clone();
        async move {
            let found = log
                .find_batches_by_time(&[(t.id, 0)], ts)
                .await
                .expect("by time");
            assert!(found.len() <= 1, "one row per partition");
            found.first().map(|(_, row)| row.base_offset)
        }
    };
    for i in 0..45i64 {
        // The first row at or after 10 * i: row i (rows 20..25 still 190).
        let row = if (20..25).contains(&i) { 25 } else { i };
        assert_eq!(seek(10 * i).await, Some(2 * row), "at {}", 10 * i);
        assert_eq!(seek(10 * i - 5).await, Some(2 * row), "at {}", 10 * i - 5);
    }
    assert_eq!(seek(191).await, Some(50));
    assert_eq!(seek(441).await, None, "nothing that recent");
    // Rows below the log start are not found: the search starts there.
    m.lifecycle
        .advance_log_start(t.id, 0, 61, 0)
        .await
        .expect("trim");
    assert_eq!(seek(0).await, Some(60), "the row holding the log start");
    assert_eq!(seek(305).await, Some(62));
    let life = &m.lifecycle;
    assert_eq!(
        life.retention_point(t.id, 0, Some(305), None)
            .await
            .expect("point"),
        Some(62),
        "retention by time stops at the first newer row"
    );
    assert_eq!(
        life.retention_point(t.id, 0, Some(i64::MAX), None)
            .await
            .expect("point"),
        Some(90),
        "every row older"
    );
}

pub async fn concurrent_wide_commits_get_unique_gapless_offsets(m: &Metadata) {
    let wide = create(m, "wide", 50).await;
    let commits = (0..8).map(|_| {
        let f = flush((0..50).map(|p| chunk(wide.id, p, 2, 1)).collect());
        async move { commit(m, &f).await }
    });
    let results = futures_util::future::join_all(commits).await;
    for p in 0..50usize {
        let bases: BTreeSet<i64> = results.iter().map(|r| r[p]).collect();
        assert_eq!(bases, (0..8).map(|i| i * 2).collect::<BTreeSet<_>>());
    }
}

pub async fn a_deleted_topic_frees_its_name_and_hides_its_records(m: &Metadata) {
    let t = create(m, "doomed", 2).await;
    commit(m, &flush(vec![chunk(t.id, 0, 1, 1)])).await;
    let deleted = m
        .topics
        .delete_topic("t1", "doomed", 2)
        .await
        .expect("delete");
    assert_eq!(deleted.map(|d| d.id), Some(t.id));
    assert_eq!(
        m.topics
            .delete_topic("t1", "doomed", 3)
            .await
            .expect("delete"),
        None
    );
    assert_eq!(m.topics.get_topic("t1", "doomed").await.expect("get"), None);
    // Its index rows stay until a release job takes them (see the
    // lifecycle cases); without partitions nothing can read or extend them.
    assert!(
        m.log
            .partition_states(&[(t.id, 0)])
            .await
            .expect("states")
            .is_empty()
    );
    // The name is free at once, and the new topic starts empty.
    let again = create(m, "doomed", 1).await;
    assert_ne!(again.id, t.id);
    assert_eq!(commit(m, &flush(vec![chunk(again.id, 0, 1, 1)])).await, [0]);
}

pub async fn a_commit_into_a_deleted_topic_drops_only_its_chunks(m: &Metadata) {
    let t = create(m, "doomed", 1).await;
    let live = create(m, "survivor", 1).await;
    m.topics
        .delete_topic("t1", "doomed", 2)
        .await
        .expect("delete");
    // A flush in flight when the topic was deleted commits nothing of it,
    // while its other chunks commit normally.
    let out = m
        .log
        .commit_flush(&flush(vec![chunk(t.id, 0, 1, 1), chunk(live.id, 0, 1, 1)]))
        .await
        .expect("commit");
    assert_eq!(out[0], ChunkOutcome::TopicGone);
    assert_eq!(base(&out[1]), 0);
    assert!(
        m.log
            .find_batches(t.id, 0, 0, 10)
            .await
            .expect("find")
            .is_empty()
    );
}

/// A flush whose every topic was deleted meanwhile commits no chunk, and
/// its object is due for deletion at once; a rerun answers the same.
pub async fn an_object_all_of_whose_topics_are_gone_is_garbage_at_once(m: &Metadata) {
    let t = create(m, "gone", 2).await;
    m.topics
        .delete_topic("t1", "gone", 2)
        .await
        .expect("delete");
    let f = flush(vec![chunk(t.id, 0, 1, 1), chunk(t.id, 1, 2, 2)]);
    let out = m.log.commit_flush(&f).await.expect("commit");
    assert_eq!(out, [ChunkOutcome::TopicGone, ChunkOutcome::TopicGone]);
    assert_eq!(m.log.commit_flush(&f).await.expect("rerun"), out);
    let expired = m.lifecycle.expired_objects(100).await.expect("expired");
    assert!(
        expired.iter().any(|o| o.id == f.object_id),
        "the object is handed to the collector"
    );
}

pub async fn the_topic_epoch_moves_on_deletion(m: &Metadata) {
    let a = create(m, "a", 1).await;
    let b = create(m, "b", 1).await;
    let before = m.topics.topic_epoch().await.expect("epoch");
    assert_eq!(
        m.topics.topic_epoch().await.expect("epoch"),
        before,
        "steady"
    );
    m.topics.delete_topic("t1", "a", 2).await.expect("delete");
    assert_ne!(m.topics.topic_epoch().await.expect("epoch"), before);
    let live = m
        .topics
        .live_topics(&[a.id, b.id, Uuid::now_v7()])
        .await
        .expect("live");
    assert_eq!(live, [b.id]);
    assert!(m.topics.live_topics(&[]).await.expect("live").is_empty());
}

fn offset(t: Uuid, partition: i32, offset: i64, metadata: Option<&str>) -> GroupOffsetCommit {
    GroupOffsetCommit {
        topic_id: t,
        partition,
        offset,
        metadata: metadata.map(str::to_string),
    }
}

pub async fn group_offsets_upsert_per_partition_and_tenant(m: &Metadata) {
    let t = create(m, "grouped", 2).await;
    let g = &m.groups;
    g.commit_group_offsets(
        "t1",
        "g",
        &[offset(t.id, 0, 5, Some("m")), offset(t.id, 1, 7, None)],
        10,
    )
    .await
    .expect("commit");
    g.commit_group_offsets("t1", "g", &[offset(t.id, 0, 6, None)], 11)
        .await
        .expect("commit");
    let rows = g.group_offsets("t1", "g").await.expect("fetch");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].partition,
            rows[0].offset,
            rows[0].metadata.as_deref(),
            rows[0].updated_at_ms
        ),
        (0, 6, None, 11)
    );
    assert_eq!(
        (
            rows[1].partition,
            rows[1].offset,
            rows[1].metadata.as_deref()
        ),
        (1, 7, None)
    );
    assert_eq!(
        (rows[0].topic.as_str(), rows[0].topic_id),
        ("grouped", t.id)
    );
    assert!(g.group_offsets("t2", "g").await.expect("fetch").is_empty());
    assert!(
        g.group_offsets("t1", "other")
            .await
            .expect("fetch")
            .is_empty()
    );
}

pub async fn a_deleted_topic_takes_its_group_offsets(m: &Metadata) {
    let t = create(m, "grouped", 1).await;
    m.groups
        .commit_group_offsets("t1", "g", &[offset(t.id, 0, 5, None)], 10)
        .await
        .expect("commit");
    m.topics
        .delete_topic("t1", "grouped", 12)
        .await
        .expect("delete");
    assert!(
        m.groups
            .group_offsets("t1", "g")
            .await
            .expect("fetch")
            .is_empty()
    );
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

/// A topic with keys k1 (three records) and k2 (one) recorded at time 100.
async fn keyed(m: &Metadata) -> TopicMeta {
    let t = create(m, "keyed", 2).await;
    let mut f = flush(vec![chunk(t.id, 0, 3, 1), chunk(t.id, 1, 1, 1)]);
    f.keys = vec![
        key(t.id, "k1", "p1", 100, vec![(0, 0), (0, 1), (1, 0)]),
        key(t.id, "k2", "p2", 100, vec![(0, 2)]),
    ];
    commit(m, &f).await;
    t
}

pub async fn keys_are_recorded_with_their_commit(m: &Metadata) {
    let t = keyed(m).await;
    let k1 = m
        .keys
        .lookup_key("t1", t.id, "k1", 200)
        .await
        .expect("lookup");
    let k1 = k1.expect("recorded");
    assert_eq!(
        (k1.fingerprint.as_str(), k1.offsets.clone()),
        ("p1", vec![(0, 0), (0, 1), (1, 0)])
    );
    let k2 = m
        .keys
        .lookup_key("t1", t.id, "k2", 200)
        .await
        .expect("lookup");
    assert_eq!(k2.expect("recorded").offsets, vec![(0, 2)]);
    assert_eq!(
        m.keys
            .lookup_key("t2", t.id, "k1", 200)
            .await
            .expect("lookup"),
        None,
        "keys are per tenant"
    );
}

pub async fn a_commit_with_a_live_key_applies_nothing(m: &Metadata) {
    let t = keyed(m).await;
    let mut again = flush(vec![chunk(t.id, 0, 1, 1)]);
    again.keys = vec![key(t.id, "k1", "p1", 300, vec![(0, 0)])];
    match m.log.commit_flush(&again).await {
        Err(MetadataError::KeysExist(found)) => {
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].offsets, vec![(0, 0), (0, 1), (1, 0)]);
        }
        other => panic!("expected KeysExist, got {other:?}"),
    }
    let states = m.log.partitions(t.id, 0, 10).await.expect("partitions");
    assert_eq!(
        states[0].next_offset, 3,
        "the abandoned commit appended nothing"
    );
    assert!(
        m.log
            .known_objects(&[again.object_id])
            .await
            .expect("known")
            .is_empty()
    );
}

pub async fn expired_keys_are_free_again_and_cleaned_up(m: &Metadata) {
    let t = keyed(m).await;
    // Both keys expire at 1100.
    assert_eq!(
        m.keys
            .lookup_key("t1", t.id, "k1", 1100)
            .await
            .expect("lookup"),
        None
    );
    let mut reuse = flush(vec![chunk(t.id, 0, 1, 1)]);
    reuse.keys = vec![key(t.id, "k1", "p9", 1200, vec![(0, 0)])];
    m.log
        .commit_flush(&reuse)
        .await
        .expect("an expired key is free");
    let k1 = m
        .keys
        .lookup_key("t1", t.id, "k1", 1300)
        .await
        .expect("lookup");
    let k1 = k1.expect("recorded anew");
    assert_eq!(
        (k1.fingerprint.as_str(), k1.offsets.clone()),
        ("p9", vec![(0, 3)])
    );
    assert_eq!(
        m.keys.expire_keys(1150, 100).await.expect("expire"),
        1,
        "k2 expired at 1100"
    );
    assert!(
        m.keys
            .lookup_key("t1", t.id, "k1", 1300)
            .await
            .expect("lookup")
            .is_some()
    );
}

pub async fn the_store_clock_is_sane(m: &Metadata) {
    let now = m.log.now_ms().await.expect("clock");
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    assert!(
        (now - local).abs() < 60_000,
        "the store's clock is sane: {now} vs {local}"
    );
}

pub async fn known_objects_are_the_committed_ones(m: &Metadata) {
    let t = create(m, "objects", 1).await;
    let f = flush(vec![chunk(t.id, 0, 1, 1)]);
    commit(m, &f).await;
    let unknown = Uuid::now_v7();
    assert_eq!(
        m.log
            .known_objects(&[f.object_id, unknown])
            .await
            .expect("known"),
        vec![f.object_id]
    );
    assert!(m.log.known_objects(&[]).await.expect("known").is_empty());
}

pub async fn objects_older_than_allowed_are_refused(m: &Metadata) {
    let t = create(m, "aged", 1).await;
    commit(m, &flush(vec![chunk(t.id, 0, 1, 1)])).await;
    // An object minted too long ago is refused, and nothing is applied.
    let mut old = flush(vec![chunk(t.id, 0, 1, 1)]);
    old.object_id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_000_000, 0));
    old.max_object_age_ms = Some(60_000);
    assert!(matches!(
        m.log.commit_flush(&old).await,
        Err(MetadataError::Unavailable(_))
    ));
    assert_eq!(
        m.log.partitions(t.id, 0, 1).await.expect("partitions")[0].next_offset,
        1
    );
    let mut young = flush(vec![chunk(t.id, 0, 1, 1)]);
    young.max_object_age_ms = Some(60_000);
    assert_eq!(commit(m, &young).await, [1], "a young object commits");
}

/// Revocations: listed while their tokens live, per tenant, the later
/// expiry kept when revoked twice, removed once expired.
pub async fn revocations_are_kept_until_their_tokens_expire(m: &Metadata) {
    use crate::metadata::RevokedToken;
    let r = |tenant: &str, jti: &str, expires_at_ms| RevokedToken {
        tenant: tenant.into(),
        jti: jti.into(),
        expires_at_ms,
    };
    let store = &m.revocations;
    store
        .revoke_token(&r("t1", "a", 1000))
        .await
        .expect("revoke");
    store
        .revoke_token(&r("t2", "a", 2000))
        .await
        .expect("revoke");
    store
        .revoke_token(&r("t1", "b", 500))
        .await
        .expect("revoke");
    store
        .revoke_token(&r("t1", "a", 900))
        .await
        .expect("again, earlier: kept later");
    let mut live = store.revoked_tokens(600).await.expect("list");
    live.sort_by(|x, y| (&x.tenant, &x.jti).cmp(&(&y.tenant, &y.jti)));
    assert_eq!(live, vec![r("t1", "a", 1000), r("t2", "a", 2000)]);
    assert_eq!(store.expire_revocations(1500).await.expect("expire"), 2);
    assert_eq!(
        store.revoked_tokens(0).await.expect("list"),
        vec![r("t2", "a", 2000)]
    );
}

/// Groups with offsets list per tenant, in name order, a page at a time.
pub async fn groups_list_by_tenant_in_name_order(m: &Metadata) {
    let t = m
        .topics
        .create_topic(&new_topic("gl", 1), 1)
        .await
        .expect("create");
    let at = |o| GroupOffsetCommit {
        topic_id: t.id,
        partition: 0,
        offset: o,
        metadata: None,
    };
    for g in ["b", "a", "c"] {
        m.groups
            .commit_group_offsets("t1", g, &[at(1)], 1)
            .await
            .expect("commit");
    }
    m.groups
        .commit_group_offsets("t2", "z", &[at(1)], 1)
        .await
        .expect("commit");
    let all = m.groups.list_groups("t1", None, 10).await.expect("list");
    assert_eq!(all, ["a", "b", "c"]);
    let page = m
        .groups
        .list_groups("t1", Some("a"), 1)
        .await
        .expect("list");
    assert_eq!(page, ["b"]);
    assert_eq!(
        m.groups.list_groups("t2", None, 10).await.expect("list"),
        ["z"]
    );
}

/// Configuring a topic changes its settings, nothing else; a missing or
/// deleted topic is `None`.
pub async fn topic_settings_change_in_place(m: &Metadata) {
    let t = m
        .topics
        .create_topic(&new_topic("cfg", 2), 1)
        .await
        .expect("create");
    let settings = TopicSettings {
        retention_ms: Some(5000),
        retention_bytes: Some(1 << 20),
        cleanup_policy: crate::model::CleanupPolicy::CompactDelete,
        delete_retention_ms: 1000,
        compression: Compression::Zstd,
    };
    let changed = m
        .topics
        .configure_topic("t1", "cfg", &settings)
        .await
        .expect("configure")
        .expect("live");
    assert_eq!((changed.id, changed.partition_count), (t.id, 2));
    assert_eq!(changed.settings(), settings);
    let got = m
        .topics
        .get_topic("t1", "cfg")
        .await
        .expect("get")
        .expect("live");
    assert_eq!(got.settings(), settings);
    assert!(
        m.topics
            .configure_topic("t2", "cfg", &settings)
            .await
            .expect("configure")
            .is_none(),
        "another tenant's name"
    );
    m.topics.delete_topic("t1", "cfg", 2).await.expect("delete");
    assert!(
        m.topics
            .configure_topic("t1", "cfg", &settings)
            .await
            .expect("configure")
            .is_none()
    );
}
