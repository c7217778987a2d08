//! Compaction: rewriting a partition's chunks into per-partition objects.
//!
//! **Object compaction** (every topic). Flushes write one object per
//! flush, holding a chunk of every partition it touched, so a partition's
//! history is spread over many small objects. A run of a partition's
//! consecutive index rows — chunks in flush objects older than
//! `--compaction-min-age`, and chunks of small compacted objects — is read,
//! re-encoded into batches of up to 8 MiB (a catch-up read then gets that
//! much per ranged GET) in one object of about `--compaction-target-bytes`,
//! uploaded, and swapped in for the old rows in one transaction that
//! checks they all still exist. Offsets, timestamps, keys, values and
//! headers are kept exactly; only where the bytes live changes.
//!
//! **Key compaction** (`cleanup_policy` `compact` or `compact,delete`). A
//! first pass over the partition finds each key's latest offset; the
//! rewrite then keeps a record only if it is its key's latest (records
//! without a key always stay), and drops a latest record that is a
//! tombstone (null value) older than the topic's `delete_retention_ms`.
//! Kept records keep their offsets; the removed ones leave gaps that reads
//! pass over.
//!
//! A rewrite that loses its swap (retention or another agent got there
//! first) deletes the object it uploaded; one whose agent dies leaves an
//! object no row names, which the orphan collector deletes.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use uuid::Uuid;

use super::jobs::{JobError, Maintainer};
use crate::format::{ObjectBuilder, decode_batch};
use crate::metadata::BatchRow;
use crate::metadata::lifecycle::{IndexedChunk, Job, Swap, SwapOutcome};
use crate::model::{Record, StoredRecord, TopicMeta, object_key};

/// Index rows read per query.
const PAGE: u32 = 1000;
/// Largest batch compaction writes, in record bytes.
const BATCH_BYTES: usize = 8 << 20;
/// Rewrites one job does at most (the rest waits for the next tick).
const MAX_RUNS: usize = 16;
/// Objects a run may span before it merges whole, size tiers or not.
const MAX_RUN_OBJECTS: usize = 4;
/// Chunks fetched at once.
const FETCHES: usize = 8;
/// Largest offset delta a batch may hold (Kafka's are 32-bit).
const MAX_DELTA: i64 = i32::MAX as i64;

/// Runs compaction of one partition.
pub(super) async fn compact(m: &Maintainer, job: &Job) -> Result<(), JobError> {
    let (topic_id, partition) = (job.topic_id, job.partition);
    let Some(topic) = m.metadata.lifecycle.live_topic(topic_id).await? else {
        return Ok(());
    };
    let Some(state) = m
        .metadata
        .log
        .partition_states(&[(topic_id, partition)])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let now = m.metadata.log.now_ms().await?;
    let cutoff = now - m.config.min_age.as_millis() as i64;
    let work = Compaction {
        m,
        job,
        topic: &topic,
        partition,
        cutoff,
    };
    if topic.cleanup_policy.compacts() {
        work.by_key(state.log_start_offset, now).await
    } else {
        work.objects(state.log_start_offset).await
    }
}

struct Compaction<'a> {
    m: &'a Maintainer,
    /// The job, whose lease each rewrite renews.
    job: &'a Job,
    topic: &'a TopicMeta,
    partition: i32,
    /// Flush objects written after this (ms) are left alone.
    cutoff: i64,
}

impl Compaction<'_> {
    fn target(&self) -> i64 {
        self.m.config.target_bytes as i64
    }

    /// Whether a chunk may join a rewrite: in a flush object old enough,
    /// or in a compacted object under half the target (merging those
    /// brings a partition's objects towards the target size).
    fn eligible(&self, c: &IndexedChunk) -> bool {
        if c.in_flush_object {
            c.object_created_at_ms < self.cutoff
        } else {
            c.object_size < self.target() / 2
        }
    }

    /// Object compaction: rewrites eligible runs from `from` on.
    async fn objects(&self, mut from: i64) -> Result<(), JobError> {
        for _ in 0..MAX_RUNS {
            let Some((run, next)) = self.next_run(from).await? else {
                return Ok(());
            };
            if !self.rewrite(&run, &|_| true).await? {
                // Someone else changed the rows: look again next tick.
                return Ok(());
            }
            from = next;
        }
        Ok(())
    }

    /// The next run worth rewriting at or after `from`, and where to look
    /// after it: consecutive eligible rows up to the target size, holding
    /// a flush chunk or spanning more than one object.
    async fn next_run(&self, mut from: i64) -> Result<Option<(Vec<IndexedChunk>, i64)>, JobError> {
        let mut run: Vec<IndexedChunk> = Vec::new();
        let mut bytes = 0i64;
        loop {
            let page = self
                .m
                .metadata
                .lifecycle
                .indexed_chunks(self.topic.id, self.partition, from, PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            for c in page {
                from = c.row.last_offset + 1;
                if self.eligible(&c) {
                    bytes += i64::from(c.row.byte_len);
                    run.push(c);
                    if bytes < self.target() {
                        continue;
                    }
                }
                tiered(&mut run);
                if worth_rewriting(&run) {
                    return Ok(Some((run, from)));
                }
                run.clear();
                bytes = 0;
            }
            if !full {
                tiered(&mut run);
                return Ok(worth_rewriting(&run).then_some((run, from)));
            }
        }
    }

    /// Key compaction: finds each key's latest offset over the chunks old
    /// enough, then rewrites them run by run keeping what must stay.
    async fn by_key(&self, from: i64, now: i64) -> Result<(), JobError> {
        let mut chunks = Vec::new();
        let mut at = from;
        'scan: loop {
            let page = self
                .m
                .metadata
                .lifecycle
                .indexed_chunks(self.topic.id, self.partition, at, PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            for c in page {
                if c.in_flush_object && c.object_created_at_ms >= self.cutoff {
                    break 'scan;
                }
                at = c.row.last_offset + 1;
                chunks.push(c);
            }
            if !full {
                break;
            }
        }
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        let mut fetched = self.fetch(&chunks);
        while let Some(done) = fetched.next().await {
            for r in done? {
                if let Some(k) = r.key {
                    // A copy, so the map does not keep whole chunks alive.
                    latest.insert(Bytes::copy_from_slice(&k), r.offset);
                }
            }
        }
        drop(fetched);
        self.m.renew(self.job).await;
        let tombstones_before = now.saturating_sub(self.topic.delete_retention_ms);
        let keep = |r: &StoredRecord| match &r.key {
            None => true,
            Some(k) => {
                latest.get(k) == Some(&r.offset)
                    && !(r.value.is_none() && r.timestamp < tombstones_before)
            }
        };
        let mut run = Vec::new();
        let mut bytes = 0i64;
        let mut runs = 0;
        for c in chunks {
            bytes += i64::from(c.row.byte_len);
            run.push(c);
            if bytes >= self.target() {
                // A run that lost its swap kept records a later run's
                // tombstone may shadow: end the pass (and keep those
                // tombstones) until the next tick sees the rows as they are.
                if !self.rewrite(&run, &keep).await? {
                    return Ok(());
                }
                (run, bytes) = (Vec::new(), 0);
                runs += 1;
                if runs >= MAX_RUNS {
                    return Ok(());
                }
            }
        }
        if !run.is_empty() {
            self.rewrite(&run, &keep).await?;
        }
        Ok(())
    }

    /// Fetches and decodes chunks, in order, a few at a time.
    fn fetch<'s>(
        &'s self,
        chunks: &'s [IndexedChunk],
    ) -> impl futures_util::Stream<Item = Result<Vec<StoredRecord>, JobError>> + 's {
        let store = &self.m.store;
        futures_util::stream::iter(chunks.iter().map(move |c| async move {
            let row = c.row;
            self.m.pace.take(u64::from(row.byte_len)).await;
            let bytes = store
                .get_range(
                    &object_key(row.object_id),
                    row.byte_offset..row.byte_offset + u64::from(row.byte_len),
                )
                .await?;
            Ok(decode_batch(&bytes, row.base_offset)?)
        }))
        .buffered(FETCHES)
    }

    /// Rewrites `run` keeping the records `keep` says, and swaps it in;
    /// `false` when the swap lost (the rows changed meanwhile). Does
    /// nothing when the result would be what is there.
    async fn rewrite(
        &self,
        run: &[IndexedChunk],
        keep: &(dyn Fn(&StoredRecord) -> bool + Sync),
    ) -> Result<bool, JobError> {
        let object_id = Uuid::now_v7();
        let mut builder = ObjectBuilder::with_capacity(
            run.iter().map(|c| c.row.byte_len as usize).sum::<usize>(),
        );
        let mut rows: Vec<BatchRow> = Vec::new();
        let mut out = Output {
            builder: &mut builder,
            rows: &mut rows,
            batch: Vec::new(),
            topic: self.topic,
            partition: self.partition,
            object_id,
        };
        let (mut batch_bytes, mut base, mut dropped) = (0usize, run[0].row.base_offset, 0u64);
        // The running maximum timestamp through the last row taken whole.
        let mut row_max = i64::MIN;
        let mut fetched = self.fetch(run);
        let mut i = 0;
        while let Some(done) = fetched.next().await {
            let row = run[i].row;
            i += 1;
            for r in done? {
                if !keep(&r) {
                    dropped += 1;
                    continue;
                }
                // Offset deltas are 32-bit: a record too far past the base
                // starts a new batch (the offsets between are gaps).
                if r.offset - base > MAX_DELTA {
                    if !out.batch.is_empty() {
                        let max_ts = out
                            .batch
                            .iter()
                            .map(|(r, _)| r.timestamp)
                            .fold(row_max, i64::max);
                        out.close(base, r.offset - 1, max_ts);
                        batch_bytes = 0;
                    }
                    base = r.offset;
                }
                batch_bytes += r.value.as_ref().map_or(0, Bytes::len)
                    + r.key.as_ref().map_or(0, Bytes::len)
                    + 24;
                let offset = r.offset;
                out.batch.push((
                    Record {
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.into(),
                    },
                    offset,
                ));
            }
            row_max = row_max.max(row.max_timestamp);
            // A batch ends on a row's end, so its last offset and running
            // maximum timestamp are that row's.
            if batch_bytes >= BATCH_BYTES || i == run.len() {
                out.close(base, row.last_offset, row.max_timestamp);
                batch_bytes = 0;
                base = row.last_offset + 1;
            }
        }
        drop(fetched);
        let objects = run
            .iter()
            .map(|c| c.row.object_id)
            .collect::<std::collections::HashSet<_>>();
        if dropped == 0 && objects.len() == 1 && !run.iter().any(|c| c.in_flush_object) {
            // Already one compacted object with nothing to remove.
            return Ok(true);
        }
        let bytes_in: u64 = run.iter().map(|c| u64::from(c.row.byte_len)).sum();
        let (object, _) = builder.finish();
        let key = object_key(object_id);
        let uploaded = !rows.is_empty();
        if uploaded {
            self.m.store.put(&key, object.clone()).await?;
        }
        let swap = Swap {
            topic_id: self.topic.id,
            partition: self.partition,
            object_id,
            object_size: object.len() as u64,
            writer: self.m.config.owner.clone(),
            created_at_ms: crate::model::uuid_v7_ms(object_id).unwrap_or(0),
            max_object_age_ms: self.m.config.max_object_age.as_millis() as i64,
            replaced: run
                .iter()
                .map(|c| (c.row.last_offset, c.row.object_id))
                .collect(),
            rows,
            grace_ms: self.m.grace_ms(),
        };
        let bytes_out: u64 = swap.rows.iter().map(|r| u64::from(r.byte_len)).sum();
        let swapped = self.m.metadata.lifecycle.swap_chunks(&swap).await;
        self.m.renew(self.job).await;
        match swapped {
            Ok(SwapOutcome::Swapped { .. }) => {
                let life = &self.m.metrics.lifecycle;
                life.compaction_bytes_in.inc_by(bytes_in);
                life.compaction_bytes_out.inc_by(bytes_out);
                life.compaction_records_dropped.inc_by(dropped);
                life.compaction_objects.inc_by(u64::from(uploaded));
                Ok(true)
            }
            Ok(SwapOutcome::Changed) => {
                if uploaded {
                    // Nothing names it: delete it now rather than leave an orphan.
                    let _ = self.m.store.delete_many(&[key]).await;
                }
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Drops compacted objects from the front of a run while one is larger
/// than everything after it, so an object merges only with about as much
/// new data as it holds: each byte is rewritten a few times (about log2 of
/// target / run size), not once per tick. A run spread over more than
/// [`MAX_RUN_OBJECTS`] objects merges whole instead, so a partition that
/// fills slowly still ends in a few objects.
fn tiered(run: &mut Vec<IndexedChunk>) {
    loop {
        if objects_in(run) > MAX_RUN_OBJECTS {
            return;
        }
        let Some(first) = run.first() else { return };
        if first.in_flush_object {
            return;
        }
        let object = first.row.object_id;
        let head = run.iter().take_while(|c| c.row.object_id == object).count();
        let head_bytes: i64 = run[..head].iter().map(|c| i64::from(c.row.byte_len)).sum();
        let rest: i64 = run[head..].iter().map(|c| i64::from(c.row.byte_len)).sum();
        if head_bytes <= rest {
            return;
        }
        run.drain(..head);
    }
}

/// How many objects a run's chunks are in (rows of one object are
/// consecutive in a run).
fn objects_in(run: &[IndexedChunk]) -> usize {
    run.len()
        - run
            .windows(2)
            .filter(|w| w[0].row.object_id == w[1].row.object_id)
            .count()
}

/// The object a rewrite builds, batch by batch.
struct Output<'a> {
    builder: &'a mut ObjectBuilder,
    rows: &'a mut Vec<BatchRow>,
    /// Kept records of the batch being built, with their offsets.
    batch: Vec<(Record, i64)>,
    topic: &'a TopicMeta,
    partition: i32,
    object_id: Uuid,
}

impl Output<'_> {
    /// Ends the batch as a chunk covering `base..=last_offset` (nothing
    /// when it kept no record: those offsets become a gap).
    fn close(&mut self, base: i64, last_offset: i64, max_timestamp: i64) {
        if !self.batch.is_empty() {
            let entry = self.builder.add_chunk_at(
                self.topic.id,
                self.partition,
                self.batch.iter().map(|(r, o)| (r, o - base)),
                self.topic.compression,
            );
            self.rows.push(BatchRow {
                base_offset: base,
                last_offset,
                object_id: self.object_id,
                byte_offset: entry.byte_offset,
                byte_len: entry.byte_len,
                record_count: entry.record_count,
                max_timestamp,
            });
        }
        self.batch.clear();
    }
}

/// A run is worth rewriting when it holds a flush chunk or its chunks are
/// in more than one object.
fn worth_rewriting(run: &[IndexedChunk]) -> bool {
    run.iter().any(|c| c.in_flush_object)
        || run
            .windows(2)
            .any(|w| w[0].row.object_id != w[1].row.object_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of one chunk per object, compacted objects of `sizes` (bytes)
    /// followed by `flushes` flush chunks of 10 bytes.
    fn run(sizes: &[u32], flushes: usize) -> Vec<IndexedChunk> {
        let compacted = sizes.iter().map(|&n| (n, false));
        let flush = std::iter::repeat_n((10, true), flushes);
        compacted
            .chain(flush)
            .enumerate()
            .map(|(i, (len, in_flush_object))| IndexedChunk {
                row: BatchRow {
                    base_offset: i as i64,
                    last_offset: i as i64,
                    object_id: Uuid::now_v7(),
                    byte_offset: 0,
                    byte_len: len,
                    record_count: 1,
                    max_timestamp: 0,
                },
                in_flush_object,
                object_created_at_ms: 0,
                object_size: i64::from(len),
            })
            .collect()
    }

    #[test]
    fn tiers_keep_large_objects_out_of_small_merges() {
        let mut r = run(&[400, 100], 2);
        tiered(&mut r);
        // 400 is more than the 120 after it and leaves; so does 100 (> 20).
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|c| c.in_flush_object));
        let mut r = run(&[30], 3);
        tiered(&mut r);
        assert_eq!(r.len(), 4, "an object no larger than the rest merges");
    }

    #[test]
    fn a_run_over_too_many_objects_merges_whole() {
        let mut r = run(&[800, 400, 200, 100], 1);
        assert_eq!(objects_in(&r), 5);
        tiered(&mut r);
        assert_eq!(r.len(), 5, "five objects merge into one");
        let mut r = run(&[800, 400, 200], 1);
        tiered(&mut r);
        assert_eq!(r.len(), 1);
    }
}
