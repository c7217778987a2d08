//! The sweep: compaction across partitions, for small chunks.
//!
//! A partition that gets a record now and then leaves a chunk of a few
//! dozen bytes in each flush object. Compacting it alone costs a ranged GET
//! per chunk and a transaction per partition, and with thousands of such
//! partitions that is more work than the flushes themselves. So chunks
//! under [`SMALL_CHUNK_BYTES`](crate::metadata::lifecycle::SMALL_CHUNK_BYTES) (of topics with the `delete` policy) are
//! left to one job for the whole store, which in each round:
//!
//! - takes whole objects, oldest first, up to `--compaction-target-bytes`
//!   of such chunks: first earlier sweeps' objects under half the target
//!   (so a partition's swept rows merge again until the object is large),
//!   then flush objects older than `--compaction-min-age`;
//! - reads each object once (one GET over the range its chunks span);
//! - re-encodes each partition's runs of consecutive rows as one batch
//!   (8 MiB at most), every partition into one shared object;
//! - uploads it, and swaps the rows a group of partitions at a time; a
//!   partition whose rows changed meanwhile keeps them (see
//!   `metadata::sql::sweep`).
//!
//! Offsets, timestamps, keys, values and headers are kept exactly. Larger
//! chunks stay with each partition's own compaction job (`compaction`).
//!
//! The uploaded object is never deleted by the sweep itself. A group
//! records its row together with the first rows that name it, and fails
//! if it was released meanwhile (rows naming an object on its way to the
//! collector would lose records). An object no group recorded (the agent
//! died, or every partition changed) is an orphan, which the bucket
//! listing deletes; one whose rows all go later is released by whoever
//! removes the last.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::jobs::{JobError, Maintainer};
use crate::format::{ObjectBuilder, decode_batch};
use crate::metadata::BatchRow;
use crate::metadata::lifecycle::{Job, SweepInput, SweepOutcome, SweepSwap, SweptPartition};
use crate::model::{Compression, Record, object_key};

/// Rounds one job runs at most (the rest waits for the next tick).
const ROUNDS: usize = 16;
/// Objects of each kind looked at per round.
const OBJECTS: u32 = 500;
/// Partitions swapped per transaction: each holds its partitions' rows
/// locked against flush commits while it runs.
const GROUP: usize = 64;
/// Ranges fetched at once.
const FETCHES: usize = 8;
/// Chunks of one object less than this apart are fetched in one range.
const GAP: u64 = 64 << 10;
/// Largest batch a sweep writes, in record bytes.
const BATCH_BYTES: usize = 8 << 20;
/// Largest offset delta a batch may hold.
const MAX_DELTA: i64 = i32::MAX as i64;

/// Runs sweep rounds until there is nothing worth sweeping.
pub(super) async fn sweep(m: &Maintainer, job: &Job) -> Result<(), JobError> {
    let target = m.config.target_bytes as i64;
    for _ in 0..ROUNDS {
        let now = m.metadata.log.now_ms().await?;
        let cutoff = now - m.config.min_age.as_millis() as i64;
        let found = m
            .metadata
            .lifecycle
            .sweep_candidates(cutoff, target / 2, OBJECTS)
            .await?;
        let codecs = codecs(m, &found).await?;
        let found = found
            .into_iter()
            .filter(|c| codecs.contains_key(&c.topic_id))
            .collect();
        let Some(round) = pick(found, target as u64) else {
            return Ok(());
        };
        let swapped = run(m, job, &round, &codecs).await?;
        m.renew(job).await;
        if swapped == 0 {
            // Everything changed under it: look again next tick.
            return Ok(());
        }
    }
    Ok(())
}

/// The compression of each live topic with the `delete` policy among the
/// rows found: the topics whose small chunks the sweep merges. A deleted
/// topic's rows are released, and a key-compacted topic's rewritten, by
/// their own jobs.
async fn codecs(m: &Maintainer, found: &[SweepInput]) -> Result<Codecs, JobError> {
    let mut seen: HashMap<Uuid, Option<Compression>> = HashMap::new();
    for c in found {
        if let Entry::Vacant(e) = seen.entry(c.topic_id) {
            let meta = m.metadata.lifecycle.live_topic(c.topic_id).await?;
            e.insert(
                meta.filter(|t| !t.cleanup_policy.compacts())
                    .map(|t| t.compression),
            );
        }
    }
    Ok(seen
        .into_iter()
        .filter_map(|(t, c)| Some((t, c?)))
        .collect())
}

/// Compression by topic.
type Codecs = HashMap<Uuid, Compression>;

/// The whole objects a round takes, in order, up to `budget` bytes to
/// fetch; `None` unless that merges something (a flush object, or two
/// swept objects).
fn pick(found: Vec<SweepInput>, budget: u64) -> Option<Vec<SweepInput>> {
    let mut taken = Vec::new();
    let (mut bytes, mut flush, mut swept) = (0u64, 0usize, 0usize);
    for object in found.chunk_by(|a, b| a.row.object_id == b.row.object_id) {
        if bytes >= budget {
            break;
        }
        bytes += ranges(object.iter().map(|c| &c.row))
            .iter()
            .map(|(start, end)| end - start)
            .sum::<u64>();
        if object[0].in_flush_object {
            flush += 1;
        } else {
            swept += 1;
        }
        taken.extend_from_slice(object);
    }
    (flush > 0 || swept > 1).then_some(taken)
}

/// The byte ranges to fetch for some chunks of one object: their spans,
/// joined where less than [`GAP`] lies between them.
fn ranges<'a>(rows: impl Iterator<Item = &'a BatchRow>) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = rows
        .map(|r| (r.byte_offset, r.byte_offset + u64::from(r.byte_len)))
        .collect();
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 + GAP => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// A partition's rows in a round, in offset order.
type Runs = BTreeMap<(Uuid, i32), Vec<BatchRow>>;

/// Reads, merges, uploads and swaps one round; returns the partitions
/// swapped.
async fn run(
    m: &Maintainer,
    job: &Job,
    round: &[SweepInput],
    codecs: &Codecs,
) -> Result<usize, JobError> {
    let fetched = fetch(m, round).await?;
    let mut parts: Runs = BTreeMap::new();
    for c in round {
        parts
            .entry((c.topic_id, c.partition))
            .or_default()
            .push(c.row);
    }
    let object_id = Uuid::now_v7();
    let bytes_in: usize = round.iter().map(|c| c.row.byte_len as usize).sum();
    let mut builder = ObjectBuilder::with_capacity(bytes_in);
    let mut swaps = Vec::new();
    for ((topic, partition), mut rows) in parts {
        let Some(codec) = codecs.get(&topic) else {
            continue;
        };
        rows.sort_by_key(|r| r.last_offset);
        let mut out = Out {
            builder: &mut builder,
            topic,
            partition,
            codec: *codec,
            object_id,
            rows: Vec::new(),
        };
        for run in runs(&rows) {
            out.merge(run, &fetched)?;
        }
        swaps.push(SweptPartition {
            topic_id: topic,
            partition,
            replaced: rows.iter().map(|r| (r.last_offset, r.object_id)).collect(),
            rows: out.rows,
        });
    }
    if swaps.is_empty() {
        return Ok(0);
    }
    let (object, _) = builder.finish();
    m.store.put(&object_key(object_id), object.clone()).await?;
    // Reading and uploading may have taken a while (paced GETs): keep the
    // job this agent's while it swaps.
    m.renew(job).await;
    let mut done = SweepOutcome::default();
    for group in swaps.chunks(GROUP) {
        let swap = SweepSwap {
            object_id,
            object_size: object.len() as u64,
            writer: m.config.owner.clone(),
            created_at_ms: crate::model::uuid_v7_ms(object_id).unwrap_or(0),
            max_object_age_ms: m.config.max_object_age.as_millis() as i64,
            partitions: group.to_vec(),
            grace_ms: m.grace_ms(),
        };
        let o = m.metadata.lifecycle.swap_swept(&swap).await?;
        done.swapped.extend(o.swapped);
        done.changed += o.changed;
        done.objects_released += o.objects_released;
    }
    tracing::debug!(
        swapped = done.swapped.len(),
        changed = done.changed,
        objects_released = done.objects_released,
        "sweep round"
    );
    count(m, round, &swaps, &done);
    Ok(done.swapped.len())
}

/// Adds a round's work to the compaction metrics.
fn count(m: &Maintainer, round: &[SweepInput], swaps: &[SweptPartition], done: &SweepOutcome) {
    let swapped: HashSet<&(Uuid, i32)> = done.swapped.iter().collect();
    let bytes_in: u64 = round
        .iter()
        .filter(|c| swapped.contains(&(c.topic_id, c.partition)))
        .map(|c| u64::from(c.row.byte_len))
        .sum();
    let (mut rows_in, mut rows_out, mut bytes_out) = (0u64, 0u64, 0u64);
    for s in swaps
        .iter()
        .filter(|s| swapped.contains(&(s.topic_id, s.partition)))
    {
        rows_in += s.replaced.len() as u64;
        rows_out += s.rows.len() as u64;
        bytes_out += s.rows.iter().map(|r| u64::from(r.byte_len)).sum::<u64>();
    }
    let life = &m.metrics.lifecycle;
    life.compaction_bytes_in.inc_by(bytes_in);
    life.compaction_bytes_out.inc_by(bytes_out);
    life.sweep_rows_replaced.inc_by(rows_in);
    life.sweep_rows_written.inc_by(rows_out);
    life.compaction_objects
        .inc_by(u64::from(!done.swapped.is_empty()));
}

/// The ranges fetched of each object, by start.
type Fetched = HashMap<Uuid, Vec<(u64, Bytes)>>;

/// Reads the ranges the round's chunks need, a few at a time.
async fn fetch(m: &Maintainer, round: &[SweepInput]) -> Result<Fetched, JobError> {
    let mut rows: HashMap<Uuid, Vec<&BatchRow>> = HashMap::new();
    for c in round {
        rows.entry(c.row.object_id).or_default().push(&c.row);
    }
    let gets: Vec<(Uuid, u64, u64)> = rows
        .into_iter()
        .flat_map(|(id, rows)| {
            ranges(rows.into_iter())
                .into_iter()
                .map(move |(start, end)| (id, start, end))
        })
        .collect();
    let got: Vec<(Uuid, u64, Bytes)> = futures_util::stream::iter(gets)
        .map(|(id, start, end)| fetch_range(m, id, start, end))
        .buffer_unordered(FETCHES)
        .try_collect()
        .await?;
    let mut fetched: Fetched = HashMap::new();
    for (id, start, bytes) in got {
        fetched.entry(id).or_default().push((start, bytes));
    }
    for ranges in fetched.values_mut() {
        ranges.sort_unstable_by_key(|(start, _)| *start);
    }
    Ok(fetched)
}

/// Reads one range of an object, at the compaction pace.
async fn fetch_range(
    m: &Maintainer,
    id: Uuid,
    start: u64,
    end: u64,
) -> Result<(Uuid, u64, Bytes), JobError> {
    m.pace.take(end - start).await;
    let bytes = m.store.get_range(&object_key(id), start..end).await?;
    Ok((id, start, bytes))
}

/// A fetched chunk's bytes.
fn chunk(fetched: &Fetched, row: &BatchRow) -> Bytes {
    let ranges = &fetched[&row.object_id];
    let i = ranges.partition_point(|(start, _)| *start <= row.byte_offset) - 1;
    let (start, bytes) = &ranges[i];
    let at = (row.byte_offset - start) as usize;
    bytes.slice(at..at + row.byte_len as usize)
}

/// Splits a partition's rows (in offset order) into runs of consecutive
/// rows.
fn runs(rows: &[BatchRow]) -> impl Iterator<Item = &[BatchRow]> {
    rows.chunk_by(|a, b| b.base_offset == a.last_offset + 1)
}

/// One partition's new chunks in the round's object.
struct Out<'a> {
    builder: &'a mut ObjectBuilder,
    topic: Uuid,
    partition: i32,
    codec: Compression,
    object_id: Uuid,
    rows: Vec<BatchRow>,
}

impl Out<'_> {
    /// Re-encodes a run of consecutive rows as batches that end on row
    /// ends, each up to [`BATCH_BYTES`] and a 32-bit offset delta.
    fn merge(&mut self, run: &[BatchRow], fetched: &Fetched) -> Result<(), JobError> {
        let mut batch: Vec<(Record, i64)> = Vec::new();
        let (mut base, mut bytes) = (run[0].base_offset, 0usize);
        let mut prev: Option<&BatchRow> = None;
        for row in run {
            if let Some(p) = prev
                && (bytes >= BATCH_BYTES || row.last_offset - base > MAX_DELTA)
            {
                self.close(&mut batch, base, p);
                (base, bytes) = (row.base_offset, 0);
            }
            for r in decode_batch(&chunk(fetched, row), row.base_offset)? {
                bytes += r.value.as_ref().map_or(0, Bytes::len)
                    + r.key.as_ref().map_or(0, Bytes::len)
                    + 24;
                let record = Record {
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers.into(),
                };
                batch.push((record, r.offset - base));
            }
            prev = Some(row);
        }
        if let Some(p) = prev {
            self.close(&mut batch, base, p);
        }
        Ok(())
    }

    /// Ends a batch at `last`'s end: it covers `base..=last.last_offset`,
    /// with `last`'s running maximum timestamp.
    fn close(&mut self, batch: &mut Vec<(Record, i64)>, base: i64, last: &BatchRow) {
        if batch.is_empty() {
            return;
        }
        let entry = self.builder.add_chunk_at(
            self.topic,
            self.partition,
            batch.iter().map(|(r, d)| (r, *d)),
            self.codec,
        );
        self.rows.push(BatchRow {
            base_offset: base,
            last_offset: last.last_offset,
            object_id: self.object_id,
            byte_offset: entry.byte_offset,
            byte_len: entry.byte_len,
            record_count: entry.record_count,
            max_timestamp: last.max_timestamp,
        });
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(base: i64, last: i64) -> BatchRow {
        BatchRow {
            base_offset: base,
            last_offset: last,
            object_id: Uuid::nil(),
            byte_offset: 0,
            byte_len: 10,
            record_count: (last - base + 1) as u32,
            max_timestamp: 0,
        }
    }

    fn input(object: u128, at: u64, len: u32, in_flush_object: bool) -> SweepInput {
        SweepInput {
            topic_id: Uuid::nil(),
            partition: 0,
            row: BatchRow {
                object_id: Uuid::from_u128(object),
                byte_offset: at,
                byte_len: len,
                ..row(0, 0)
            },
            in_flush_object,
            object_created_at_ms: 0,
        }
    }

    #[test]
    fn runs_break_where_a_row_is_missing() {
        let rows = [row(0, 2), row(3, 3), row(7, 9), row(10, 12), row(20, 20)];
        let got: Vec<Vec<i64>> = runs(&rows)
            .map(|r| r.iter().map(|r| r.base_offset).collect())
            .collect();
        assert_eq!(got, [vec![0, 3], vec![7, 10], vec![20]]);
    }

    #[test]
    fn a_round_takes_whole_objects_up_to_the_budget_and_must_merge_something() {
        let found = vec![
            input(1, 0, 30, false),
            input(1, 30, 30, false),
            input(2, 0, 50, true),
            input(3, 0, 10, true),
        ];
        let got = pick(found, 61).expect("a round");
        assert_eq!(
            got.len(),
            3,
            "object 1 whole, then object 2 crosses the budget"
        );
        assert!(
            pick(vec![input(1, 0, 30, false)], 60).is_none(),
            "one swept object alone"
        );
        assert!(pick(vec![input(1, 0, 30, false), input(4, 0, 5, false)], 60).is_some());
        assert!(pick(Vec::new(), 60).is_none());
        // The budget counts the bytes fetched, gaps between chunks included.
        let far = vec![input(5, 0, 10, true), input(5, 100_000, 10, true)];
        let got = pick([far, vec![input(6, 0, 10, true)]].concat(), 500).expect("a round");
        assert_eq!(got.len(), 3, "two small ranges: 20 bytes");
        let near = vec![input(5, 0, 10, true), input(5, 60_000, 10, true)];
        let got = pick([near, vec![input(6, 0, 10, true)]].concat(), 500).expect("a round");
        assert_eq!(got.len(), 2, "one range of 60,010 bytes");
    }

    #[test]
    fn chunks_close_together_are_fetched_in_one_range() {
        let at = |off: u64, len: u32| BatchRow {
            byte_offset: off,
            byte_len: len,
            ..row(0, 0)
        };
        let rows = [at(200_000, 10), at(0, 100), at(100, 50), at(60_000, 10)];
        assert_eq!(
            ranges(rows.iter()),
            [(0, 60_010), (200_000, 200_010)],
            "60,000 is within 64 KiB of 150; 200,000 is not within 64 KiB of 60,010"
        );
    }
}
