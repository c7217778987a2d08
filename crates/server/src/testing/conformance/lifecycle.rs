//! Conformance cases of the data lifecycle's metadata calls (listed in
//! [`metadata_conformance!`](crate::metadata_conformance)).

use std::time::Duration;

use uuid::Uuid;

use super::metadata::{chunk, commit, create, flush};
use crate::metadata::lifecycle::{
    JobKind, SMALL_CHUNK_BYTES, Swap, SwapOutcome, SweepSwap, SweptPartition, TrimOutcome,
};
use crate::metadata::{BatchRow, ChunkCommit, Metadata};
use crate::model::TopicSettings;

/// Three flushes of one partition, 3 records each: rows [0,2], [3,5], [6,8].
async fn three_rows(m: &Metadata, name: &str) -> (Uuid, Vec<Uuid>) {
    let t = create(m, name, 2).await;
    let mut objects = Vec::new();
    for ts in [100, 200, 300] {
        let f = flush(vec![chunk(t.id, 0, 3, ts)]);
        objects.push(f.object_id);
        commit(m, &f).await;
    }
    (t.id, objects)
}

async fn bounds(m: &Metadata, t: Uuid, p: i32) -> (i64, i64, i64) {
    let s = m.log.partition_states(&[(t, p)]).await.expect("states")[0];
    (s.log_start_offset, s.next_offset, s.bytes)
}

pub async fn trim_raises_the_log_start_and_releases_whole_rows(m: &Metadata) {
    let (t, objects) = three_rows(m, "trim").await;
    let life = &m.lifecycle;
    let out = life.advance_log_start(t, 0, 4, 0).await.expect("trim");
    assert_eq!(
        out,
        TrimOutcome::Trimmed {
            log_start_offset: 4,
            high_watermark: 9,
            rows_released: 1,
            objects_released: 1
        }
    );
    assert_eq!(bounds(m, t, 0).await, (4, 9, 200), "bytes of the rows left");
    let rows = m.log.find_batches(t, 0, 0, 10).await.expect("index");
    assert_eq!(
        rows.first().map(|r| r.base_offset),
        Some(3),
        "the cut row stays"
    );
    // Never lowered; never past the high watermark.
    assert!(matches!(
        life.advance_log_start(t, 0, 2, 0).await.expect("trim"),
        TrimOutcome::Trimmed {
            log_start_offset: 4,
            rows_released: 0,
            ..
        }
    ));
    assert_eq!(
        life.advance_log_start(t, 0, 10, 0).await.expect("trim"),
        TrimOutcome::BeyondEnd { high_watermark: 9 }
    );
    assert_eq!(
        life.advance_log_start(Uuid::now_v7(), 0, 1, 0)
            .await
            .expect("trim"),
        TrimOutcome::Gone
    );
    // With no grace the released object is due at once; forgotten, it is gone.
    let due = life.expired_objects(10).await.expect("expired");
    assert_eq!(due.iter().map(|o| o.id).collect::<Vec<_>>(), [objects[0]]);
    assert_eq!(life.forget_objects(&[objects[0]]).await.expect("forget"), 1);
    assert_eq!(m.log.known_objects(&objects).await.expect("known").len(), 2);
    assert!(life.expired_objects(10).await.expect("expired").is_empty());
}

pub async fn an_object_is_released_when_its_last_row_goes(m: &Metadata) {
    let t = create(m, "shared", 2).await;
    let f = flush(vec![chunk(t.id, 0, 2, 10), chunk(t.id, 1, 2, 10)]);
    commit(m, &f).await;
    let life = &m.lifecycle;
    let hour = 3_600_000;
    let first = life
        .advance_log_start(t.id, 0, 2, hour)
        .await
        .expect("trim");
    assert!(matches!(
        first,
        TrimOutcome::Trimmed {
            rows_released: 1,
            objects_released: 0,
            ..
        }
    ));
    let second = life
        .advance_log_start(t.id, 1, 2, hour)
        .await
        .expect("trim");
    assert!(matches!(
        second,
        TrimOutcome::Trimmed {
            objects_released: 1,
            ..
        }
    ));
    // Released with an hour's grace: not due yet, but in the backlog.
    assert!(life.expired_objects(10).await.expect("expired").is_empty());
    let report = life.storage_report(None).await.expect("report");
    assert_eq!((report.gc_objects, report.gc_bytes), (1, 1000));
    assert!(report.topics.is_none(), "per-topic figures only when asked");
}

pub async fn retention_points_by_time_and_by_bytes(m: &Metadata) {
    let (t, _) = three_rows(m, "retain").await;
    let life = &m.lifecycle;
    let point = |older, keep| life.retention_point(t, 0, older, keep);
    assert_eq!(point(None, None).await.expect("point"), None);
    assert_eq!(point(Some(250), None).await.expect("point"), Some(6));
    assert_eq!(point(Some(50), None).await.expect("point"), None);
    // Rows of 100 bytes: 150 keeps the newest row only.
    assert_eq!(point(None, Some(150)).await.expect("point"), Some(6));
    assert_eq!(point(None, Some(200)).await.expect("point"), Some(3));
    assert_eq!(point(None, Some(300)).await.expect("point"), None);
    assert_eq!(point(Some(150), Some(250)).await.expect("point"), Some(3));
}

pub async fn jobs_are_leased_once_and_taken_over_after_the_lease(m: &Metadata) {
    let (t, _) = three_rows(m, "leased").await;
    let life = &m.lifecycle;
    life.plan_jobs(i64::MAX).await.expect("plan");
    let a = life.claim_jobs("a", 60_000, 10).await.expect("claim");
    assert_eq!(
        a.iter()
            .map(|j| (j.kind, j.topic_id, j.partition, j.attempts))
            .collect::<Vec<_>>(),
        [(JobKind::Sweep, Uuid::nil(), 0, 1)]
    );
    let _ = t;
    assert!(
        life.claim_jobs("b", 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // Planning again does not duplicate a job.
    life.plan_jobs(i64::MAX).await.expect("plan");
    assert!(
        life.claim_jobs("b", 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // A lease that runs out lets another agent take the job.
    life.finish_job(&a[0], "a", Some(-1)).await.expect("retry");
    let b = life.claim_jobs("b", 60_000, 10).await.expect("claim");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attempts, 2);
    // Only the holder ends it.
    life.finish_job(&b[0], "a", None).await.expect("not mine");
    life.finish_job(&b[0], "b", Some(-1)).await.expect("retry");
    let again = life.claim_jobs("c", 60_000, 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    life.finish_job(&again[0], "c", None).await.expect("done");
    life.finish_job(&again[0], "c", Some(-1))
        .await
        .expect("gone");
    assert!(
        life.claim_jobs("d", 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

pub async fn jobs_are_planned_for_what_needs_doing(m: &Metadata) {
    let life = &m.lifecycle;
    let (young, _) = three_rows(m, "young").await;
    // Flush objects written at 1: none is older than 0.
    life.plan_jobs(0).await.expect("plan");
    assert!(
        life.claim_jobs("a", 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let kept = create(m, "kept", 1).await;
    let settings = TopicSettings {
        retention_ms: Some(1000),
        ..TopicSettings::default()
    };
    m.topics
        .configure_topic("t1", "kept", &settings)
        .await
        .expect("configure");
    commit(m, &flush(vec![chunk(kept.id, 0, 1, 5)])).await;
    let gone = create(m, "gone", 1).await;
    commit(m, &flush(vec![chunk(gone.id, 0, 1, 5)])).await;
    m.topics
        .delete_topic("t1", "gone", 2)
        .await
        .expect("delete");
    life.plan_jobs(0).await.expect("plan");
    let mut jobs: Vec<_> = life
        .claim_jobs("a", 60_000, 10)
        .await
        .expect("claim")
        .into_iter()
        .map(|j| (j.kind.as_str(), j.topic_id, j.partition))
        .collect();
    jobs.sort();
    assert_eq!(jobs, [("release", gone.id, -1), ("retain", kept.id, 0)]);
    // Small chunks are the sweep's; a partition with a large one gets its
    // own compaction job.
    let big = create(m, "big", 1).await;
    let large = ChunkCommit {
        byte_len: SMALL_CHUNK_BYTES as u32,
        ..chunk(big.id, 0, 1, 5)
    };
    commit(m, &flush(vec![large])).await;
    life.plan_jobs(i64::MAX).await.expect("plan");
    let compact: Vec<_> = life
        .claim_jobs("a", 60_000, 10)
        .await
        .expect("claim")
        .into_iter()
        .map(|j| (j.kind, j.topic_id))
        .collect();
    assert!(compact.contains(&(JobKind::Compact, big.id)));
    assert!(compact.contains(&(JobKind::Sweep, Uuid::nil())));
    assert!(!compact.contains(&(JobKind::Compact, young)));
    assert!(!compact.contains(&(JobKind::Compact, kept.id)));
}

fn sweep_swap(object_id: Uuid, partitions: Vec<SweptPartition>) -> SweepSwap {
    SweepSwap {
        object_id,
        object_size: 500,
        writer: "sweeper".into(),
        created_at_ms: 5,
        max_object_age_ms: 3_600_000,
        partitions,
        grace_ms: 0,
    }
}

pub async fn a_sweep_swaps_the_partitions_whose_rows_are_all_there(m: &Metadata) {
    let t = create(m, "swept", 3).await.id;
    let mut objects = Vec::new();
    for ts in [100, 200, 300] {
        let f = flush((0..3).map(|p| chunk(t, p, 2, ts)).collect());
        objects.push(f.object_id);
        commit(m, &f).await;
    }
    let life = &m.lifecycle;
    let found = life
        .sweep_candidates(i64::MAX, 1 << 20, 100)
        .await
        .expect("candidates");
    assert_eq!(found.len(), 9);
    assert!(found.iter().all(|c| c.in_flush_object && c.topic_id == t));
    assert_eq!(
        found
            .iter()
            .map(|c| (c.row.object_id, c.partition, c.row.last_offset))
            .collect::<Vec<_>>()[..4],
        [
            (objects[0], 0, 1),
            (objects[0], 1, 1),
            (objects[0], 2, 1),
            (objects[1], 0, 3)
        ]
    );
    assert!(
        life.sweep_candidates(1, 1 << 20, 100)
            .await
            .expect("candidates")
            .is_empty(),
        "flush objects written at 1 are not older than 1"
    );
    // Retention takes partition 2's first row meanwhile.
    life.advance_log_start(t, 2, 2, 0).await.expect("trim");
    let new = Uuid::now_v7();
    let part = |p: i32| SweptPartition {
        topic_id: t,
        partition: p,
        replaced: objects
            .iter()
            .enumerate()
            .map(|(i, o)| (2 * i as i64 + 1, *o))
            .collect(),
        rows: vec![BatchRow {
            base_offset: 0,
            last_offset: 5,
            object_id: new,
            byte_offset: 120 * p as u64,
            byte_len: 120,
            record_count: 6,
            max_timestamp: 300,
        }],
    };
    let swap = sweep_swap(new, (0..3).map(part).collect());
    let out = life.swap_swept(&swap).await.expect("sweep");
    assert_eq!(out.swapped, [(t, 0), (t, 1)]);
    assert_eq!(out.changed, 1, "partition 2 keeps its rows");
    assert_eq!(
        out.objects_released, 1,
        "the first flush object is empty now"
    );
    for p in 0..2 {
        let rows = m.log.find_batches(t, p, 0, 10).await.expect("index");
        assert_eq!(
            rows.iter()
                .map(|r| (r.base_offset, r.last_offset, r.object_id))
                .collect::<Vec<_>>(),
            [(0, 5, new)]
        );
        assert_eq!(bounds(m, t, p).await, (0, 6, 120));
    }
    assert_eq!(bounds(m, t, 2).await, (2, 6, 200));
    let found = life
        .sweep_candidates(i64::MAX, 1 << 20, 100)
        .await
        .expect("candidates");
    assert_eq!(
        found
            .iter()
            .map(|c| (c.in_flush_object, c.partition, c.row.object_id))
            .collect::<Vec<_>>(),
        [
            (false, 0, new),
            (false, 1, new),
            (true, 2, objects[1]),
            (true, 2, objects[2])
        ],
        "the swept object first, then what is left in flush objects"
    );
    assert!(
        life.sweep_candidates(i64::MAX, 500, 100)
            .await
            .expect("candidates")
            .iter()
            .all(|c| c.in_flush_object),
        "a swept object at the size limit is left alone"
    );
    // The same swap again (a lost commit's re-run) changes nothing.
    let again = life.swap_swept(&swap).await.expect("sweep");
    assert!(again.swapped.is_empty());
    assert_eq!(again.changed, 3);
    // A group in which no partition is intact records no object.
    let unused = Uuid::now_v7();
    let out = life
        .swap_swept(&sweep_swap(unused, vec![part(0)]))
        .await
        .expect("sweep");
    assert_eq!((out.swapped.len(), out.changed), (0, 1));
    assert!(
        m.log
            .known_objects(&[unused])
            .await
            .expect("known")
            .is_empty()
    );
    // Retention takes every row the sweep's object holds, which releases
    // it: a later group of that sweep must fail, not name it again.
    life.advance_log_start(t, 0, 6, 0).await.expect("trim");
    life.advance_log_start(t, 1, 6, 0).await.expect("trim");
    let late = |object_id: Uuid| SweptPartition {
        topic_id: t,
        partition: 2,
        replaced: vec![(3, objects[1]), (5, objects[2])],
        rows: vec![BatchRow {
            base_offset: 2,
            last_offset: 5,
            object_id,
            byte_offset: 400,
            byte_len: 80,
            record_count: 4,
            max_timestamp: 300,
        }],
    };
    let refused = life.swap_swept(&sweep_swap(new, vec![late(new)])).await;
    assert!(refused.is_err(), "{refused:?}");
    let rows = m.log.find_batches(t, 2, 2, 10).await.expect("index");
    assert_eq!(
        rows.iter()
            .map(|r| (r.last_offset, r.object_id))
            .collect::<Vec<_>>(),
        [(3, objects[1]), (5, objects[2])],
        "nothing changed"
    );
    // Into a new object it swaps, and the flush objects it empties go.
    let fresh = Uuid::now_v7();
    let out = life
        .swap_swept(&sweep_swap(fresh, vec![late(fresh)]))
        .await
        .expect("sweep");
    assert_eq!((out.swapped, out.objects_released), (vec![(t, 2)], 2));
    let due: Vec<Uuid> = life
        .expired_objects(10)
        .await
        .expect("expired")
        .into_iter()
        .map(|o| o.id)
        .collect();
    for o in [objects[0], objects[1], objects[2], new] {
        assert!(due.contains(&o), "{o} is due");
    }
    assert!(!due.contains(&fresh));
}

fn swap(t: Uuid, replaced: Vec<(i64, Uuid)>, rows: Vec<BatchRow>, object_id: Uuid) -> Swap {
    Swap {
        topic_id: t,
        partition: 0,
        object_id,
        object_size: 500,
        writer: "compactor".into(),
        created_at_ms: 5,
        max_object_age_ms: 3_600_000,
        replaced,
        rows,
        grace_ms: 0,
    }
}

pub async fn a_swap_replaces_rows_only_if_all_still_exist(m: &Metadata) {
    let (t, objects) = three_rows(m, "swap").await;
    let life = &m.lifecycle;
    let chunks = life.indexed_chunks(t, 0, 0, 10).await.expect("chunks");
    assert_eq!(chunks.len(), 3);
    assert!(
        chunks
            .iter()
            .all(|c| c.in_flush_object && c.object_size == 1000)
    );
    let new = Uuid::now_v7();
    let row = BatchRow {
        base_offset: 0,
        last_offset: 5,
        object_id: new,
        byte_offset: 8,
        byte_len: 150,
        record_count: 6,
        max_timestamp: 200,
    };
    let replaced = vec![(2, objects[0]), (5, objects[1])];
    let out = life
        .swap_chunks(&swap(t, replaced.clone(), vec![row], new))
        .await
        .expect("swap");
    assert_eq!(
        out,
        SwapOutcome::Swapped {
            objects_released: 2
        }
    );
    let rows = m.log.find_batches(t, 0, 0, 10).await.expect("index");
    assert_eq!(
        rows.iter()
            .map(|r| (r.base_offset, r.last_offset, r.object_id))
            .collect::<Vec<_>>(),
        [(0, 5, new), (6, 8, objects[2])]
    );
    assert_eq!(bounds(m, t, 0).await, (0, 9, 250));
    let chunks = life.indexed_chunks(t, 0, 0, 10).await.expect("chunks");
    assert!(!chunks[0].in_flush_object);
    // The same swap again finds its rows gone and changes nothing.
    let again = Uuid::now_v7();
    let out = life
        .swap_chunks(&swap(
            t,
            replaced,
            vec![BatchRow {
                object_id: again,
                ..row
            }],
            again,
        ))
        .await
        .expect("swap");
    assert_eq!(out, SwapOutcome::Changed);
    assert!(
        m.log
            .known_objects(&[again])
            .await
            .expect("known")
            .is_empty()
    );
    // A swap that keeps no record removes the rows and writes no object.
    let out = life
        .swap_chunks(&swap(t, vec![(8, objects[2])], vec![], Uuid::now_v7()))
        .await
        .expect("swap");
    assert_eq!(
        out,
        SwapOutcome::Swapped {
            objects_released: 1
        }
    );
    assert_eq!(bounds(m, t, 0).await, (0, 9, 150));
    let due = life.expired_objects(10).await.expect("expired");
    assert_eq!(due.len(), 3, "every replaced object is due (no grace)");
}

pub async fn a_deleted_topics_rows_are_released_in_batches(m: &Metadata) {
    let (t, objects) = three_rows(m, "doomed").await;
    let life = &m.lifecycle;
    let live = life.release_topic_rows(t, 10, 0).await.expect("release");
    assert_eq!(live.rows, 0, "a live topic's rows are never released");
    m.topics
        .delete_topic("t1", "doomed", 2)
        .await
        .expect("delete");
    let first = life.release_topic_rows(t, 2, 0).await.expect("release");
    assert_eq!(first.rows, 2);
    let second = life.release_topic_rows(t, 2, 0).await.expect("release");
    assert_eq!(second.rows, 1);
    assert_eq!(first.objects + second.objects, 3);
    assert_eq!(
        life.release_topic_rows(t, 2, 0)
            .await
            .expect("release")
            .rows,
        0
    );
    let mut due: Vec<Uuid> = life
        .expired_objects(10)
        .await
        .expect("expired")
        .into_iter()
        .map(|o| o.id)
        .collect();
    due.sort();
    let mut want = objects.clone();
    want.sort();
    assert_eq!(due, want);
    // The name is free and a new topic of that name is a new topic.
    let again = create(m, "doomed", 1).await;
    assert_ne!(again.id, t);
    assert_eq!(life.live_topic(t).await.expect("topic"), None);
    assert_eq!(
        life.live_topic(again.id)
            .await
            .expect("topic")
            .map(|x| x.id),
        Some(again.id)
    );
}

/// The figures of topic `name` in a storage report measured again when
/// the last measurement is `every` old.
async fn stored(m: &Metadata, name: &str, every: Duration) -> (String, i64, i64) {
    let report = m
        .lifecycle
        .storage_report(Some(every))
        .await
        .expect("report");
    let topic = report
        .topics
        .expect("asked for")
        .into_iter()
        .find(|x| x.topic == name)
        .expect("listed");
    (topic.tenant, topic.bytes, topic.objects)
}

pub async fn the_storage_report_counts_topics_and_the_backlog(m: &Metadata) {
    let (t, _) = three_rows(m, "stored").await;
    let now = Duration::ZERO;
    assert_eq!(stored(m, "stored", now).await, ("t1".into(), 300, 3));
    let report = m.lifecycle.storage_report(None).await.expect("report");
    assert_eq!(report.topics, None, "not asked for");

    // Measured once per interval, by whichever agent asks first: within
    // it every agent reads the last measurement.
    commit(m, &flush(vec![chunk(t, 1, 1, 400)])).await;
    let hour = Duration::from_secs(3600);
    assert_eq!(stored(m, "stored", hour).await, ("t1".into(), 300, 3));
    assert_eq!(stored(m, "stored", now).await, ("t1".into(), 400, 4));
    let report = m.lifecycle.storage_report(Some(now)).await.expect("report");
    assert_eq!((report.gc_objects, report.gc_bytes), (0, 0));
    assert!(
        report.compaction_lag_ms > 0,
        "flush objects await compaction"
    );
    let counts = m
        .lifecycle
        .partition_objects(t, 0, 1)
        .await
        .expect("objects");
    assert_eq!(
        counts,
        [crate::metadata::lifecycle::PartitionObjects {
            partition: 0,
            objects: 3,
            rows: 3
        }]
    );
}

pub async fn an_object_of_deleted_topics_only_is_garbage_at_once(m: &Metadata) {
    let t = create(m, "late", 1).await;
    m.topics
        .delete_topic("t1", "late", 2)
        .await
        .expect("delete");
    let f = flush(vec![chunk(t.id, 0, 1, 1)]);
    m.log.commit_flush(&f).await.expect("commit");
    let due = m.lifecycle.expired_objects(10).await.expect("expired");
    assert_eq!(due.iter().map(|o| o.id).collect::<Vec<_>>(), [f.object_id]);
}
