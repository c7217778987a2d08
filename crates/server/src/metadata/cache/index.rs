//! The offset index, cached row by row.
//!
//! Index rows are immutable, so a cached row is never wrong; it only has to
//! expire well within the object GC grace period (half of it at most) so a
//! reader never follows a cached pointer to a deleted object. Rows are
//! keyed by their base offset: a reader that consumed a chunk asks next for
//! the offset right after it, which is the next chunk's base offset, so a
//! sequential reader walks the cache without touching the metadata store.
//! Local commits insert their rows at once, other agents' commits when
//! their announcements arrive (no older than half the lifetime, so the
//! bound holds) for the partitions someone here waits on or read within the
//! lifetime (an agent hears of every commit in the cluster, and most of
//! those rows would only take room); reads insert what they fetch.
//!
//! Rows are grouped by partition, so forgetting a partition's rows (a
//! compaction rewrote them: every agent hears of each swap) is one removal,
//! not a scan of every cached row. Rows leave in the order they came: the
//! lifetime is the same for all, so the oldest row is always the first to
//! expire, and the row bound drops the oldest too. The partitions are
//! spread over shards with a lock each.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::metadata::BatchRow;

/// Locks the partitions are spread over.
const SHARDS: usize = 16;

type Partition = (Uuid, i32);

/// Cached index rows; see the module header.
#[derive(Debug)]
pub(crate) struct IndexCache {
    shards: Box<[Mutex<Shard>]>,
    /// Rows one shard keeps at most.
    shard_rows: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Shard {
    partitions: HashMap<Partition, BTreeMap<i64, Cached>>,
    /// Insertions, oldest first. An entry whose row was since forgotten or
    /// inserted again (a later entry then stands for it) is skipped when
    /// it reaches the front.
    order: VecDeque<Inserted>,
    rows: usize,
    /// Tells a row's own entry in `order` from stale ones.
    next_stamp: u64,
    /// When each partition was last read here.
    read_at: HashMap<Partition, Instant>,
}

#[derive(Debug)]
struct Cached {
    row: BatchRow,
    stamp: u64,
    at: Instant,
}

#[derive(Debug)]
struct Inserted {
    partition: Partition,
    base_offset: i64,
    stamp: u64,
    at: Instant,
}

impl IndexCache {
    pub(crate) fn new(max_rows: u64, ttl: Duration) -> Self {
        let max_rows = usize::try_from(max_rows).unwrap_or(usize::MAX);
        IndexCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_rows: max_rows.div_ceil(SHARDS).max(1),
            ttl,
        }
    }

    fn shard(&self, topic_id: Uuid, partition: i32) -> MutexGuard<'_, Shard> {
        let (hi, lo) = topic_id.as_u64_pair();
        let mixed = (hi ^ lo ^ u64::from(partition as u32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let i = (mixed >> 32) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, topic_id: Uuid, partition: i32, row: BatchRow) {
        self.insert_row(topic_id, partition, row, false);
    }

    /// Inserts a row another agent announced, if someone here waits on
    /// the partition (`watched`) or read it within the lifetime.
    pub(crate) fn learn(&self, topic_id: Uuid, partition: i32, row: BatchRow, watched: bool) {
        self.insert_row(topic_id, partition, row, !watched);
    }

    /// Inserts `row`; with `only_if_read`, only if the partition was read
    /// here within the lifetime.
    fn insert_row(&self, topic_id: Uuid, partition: i32, row: BatchRow, only_if_read: bool) {
        let now = Instant::now();
        let mut guard = self.shard(topic_id, partition);
        let s = &mut *guard;
        if only_if_read
            && s.read_at
                .get(&(topic_id, partition))
                .is_none_or(|&at| now.duration_since(at) >= self.ttl)
        {
            return;
        }
        let stamp = s.next_stamp;
        s.next_stamp += 1;
        let key = (topic_id, partition);
        let rows = s.partitions.entry(key).or_default();
        // The same row again, still live, keeps its place (and its age: it
        // expires no later than before, so the lifetime bound holds); an
        // expired one is cached anew.
        let expired_before = now.checked_sub(self.ttl);
        if rows
            .get(&row.base_offset)
            .is_some_and(|c| c.row == row && expired_before.is_none_or(|before| c.at > before))
        {
            return;
        }
        let cached = Cached {
            row,
            stamp,
            at: now,
        };
        if rows.insert(row.base_offset, cached).is_none() {
            s.rows += 1;
        }
        s.order.push_back(Inserted {
            partition: key,
            base_offset: row.base_offset,
            stamp,
            at: now,
        });
        s.trim(self.shard_rows, expired_before);
    }

    /// Forgets every row of a topic (it was deleted).
    pub(crate) fn forget_topic(&self, topic_id: Uuid) {
        for shard in self.shards.iter() {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let mut gone = 0;
            s.partitions.retain(|(t, _), rows| {
                let keep = *t != topic_id;
                if !keep {
                    gone += rows.len();
                }
                keep
            });
            s.rows -= gone;
        }
    }

    /// Forgets every row of one partition (lifecycle work replaced them).
    pub(crate) fn forget_partition(&self, topic_id: Uuid, partition: i32) {
        let mut s = self.shard(topic_id, partition);
        if let Some(rows) = s.partitions.remove(&(topic_id, partition)) {
            s.rows -= rows.len();
        }
    }

    /// The contiguous run of cached rows starting at `offset`, at most
    /// `limit`; empty when no cached row starts exactly there.
    pub(crate) fn run_from(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Vec<BatchRow> {
        let now = Instant::now();
        let expired_before = now.checked_sub(self.ttl);
        let mut s = self.shard(topic_id, partition);
        s.note_read((topic_id, partition), now, self.shard_rows, self.ttl);
        let mut out = Vec::new();
        let Some(rows) = s.partitions.get(&(topic_id, partition)) else {
            return out;
        };
        let mut next = offset;
        for (&base, c) in rows.range(offset..) {
            let live = expired_before.is_none_or(|before| c.at > before);
            if out.len() == limit || base != next || !live {
                break;
            }
            next = c.row.last_offset + 1;
            out.push(c.row);
        }
        out
    }
}

impl Shard {
    /// Notes a read of `partition`; past `max` partitions noted, forgets
    /// those not read within `ttl` (all of them if that is not enough).
    fn note_read(&mut self, partition: Partition, now: Instant, max: usize, ttl: Duration) {
        if self.read_at.insert(partition, now).is_none() && self.read_at.len() > max {
            self.read_at.retain(|_, at| now.duration_since(*at) < ttl);
            if self.read_at.len() > max {
                self.read_at.clear();
                self.read_at.insert(partition, now);
            }
        }
    }

    /// Drops rows from the front while there are more than `max_rows`, or
    /// the front row came before `expired_before`; and stale entries, so
    /// `order` holds at most twice the rows.
    fn trim(&mut self, max_rows: usize, expired_before: Option<Instant>) {
        while let Some(front) = self.order.front() {
            let expired = expired_before.is_some_and(|before| front.at <= before);
            if !(expired || self.rows > max_rows || self.order.len() > 2 * max_rows) {
                break;
            }
            let Some(front) = self.order.pop_front() else {
                break;
            };
            let Some(rows) = self.partitions.get_mut(&front.partition) else {
                continue;
            };
            if rows
                .get(&front.base_offset)
                .is_some_and(|c| c.stamp == front.stamp)
            {
                rows.remove(&front.base_offset);
                self.rows -= 1;
                if rows.is_empty() {
                    self.partitions.remove(&front.partition);
                }
            }
        }
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
            byte_len: 1,
            record_count: (last - base + 1) as u32,
            max_timestamp: 0,
        }
    }

    fn rows_held(c: &IndexCache) -> usize {
        c.shards.iter().map(|s| s.lock().unwrap().rows).sum()
    }

    #[test]
    fn a_run_follows_consecutive_rows_until_a_gap() {
        let c = IndexCache::new(1000, Duration::from_secs(60));
        let t = Uuid::now_v7();
        for (b, l) in [(0, 4), (5, 9), (10, 10), (20, 29)] {
            c.insert(t, 0, row(b, l));
        }
        let run = c.run_from(t, 0, 0, 10);
        assert_eq!(
            run.iter().map(|r| r.base_offset).collect::<Vec<_>>(),
            [0, 5, 10]
        );
        assert_eq!(c.run_from(t, 0, 5, 1).len(), 1, "the limit holds");
        assert!(c.run_from(t, 0, 3, 10).is_empty(), "no row starts at 3");
        assert_eq!(c.run_from(t, 0, 20, 10).len(), 1);
        assert!(c.run_from(t, 1, 0, 10).is_empty(), "another partition");
    }

    #[test]
    fn forgetting_drops_a_partition_or_a_topic() {
        let c = IndexCache::new(1000, Duration::from_secs(60));
        let (t, u) = (Uuid::now_v7(), Uuid::now_v7());
        for p in 0..4 {
            c.insert(t, p, row(0, 0));
            c.insert(u, p, row(0, 0));
        }
        c.forget_partition(t, 2);
        assert!(c.run_from(t, 2, 0, 1).is_empty());
        assert_eq!(c.run_from(t, 1, 0, 1).len(), 1);
        c.forget_topic(u);
        assert!((0..4).all(|p| c.run_from(u, p, 0, 1).is_empty()));
        assert_eq!(rows_held(&c), 3);
        // Inserted again after being forgotten, a row is cached again.
        c.insert(t, 2, row(0, 0));
        assert_eq!(c.run_from(t, 2, 0, 1).len(), 1);
    }

    #[test]
    fn the_row_bound_drops_the_oldest_rows() {
        let c = IndexCache::new(SHARDS as u64 * 4, Duration::from_secs(60));
        let t = Uuid::now_v7();
        for o in 0..100 {
            c.insert(t, 0, row(o, o));
        }
        assert_eq!(rows_held(&c), 4);
        assert!(c.run_from(t, 0, 95, 10).is_empty());
        assert_eq!(c.run_from(t, 0, 96, 10).len(), 4);
        // The same row again is one row and one entry.
        for _ in 0..100 {
            c.insert(t, 0, row(99, 99));
        }
        assert_eq!(rows_held(&c), 4);
        let entries = |c: &IndexCache| -> usize {
            c.shards.iter().map(|s| s.lock().unwrap().order.len()).sum()
        };
        assert_eq!(entries(&c), 4);
        // A row replaced by a different one leaves a stale entry; those
        // stay bounded too (at the cost of the oldest rows).
        for len in 2..100 {
            c.insert(
                t,
                0,
                BatchRow {
                    byte_len: len,
                    ..row(99, 99)
                },
            );
        }
        assert!(entries(&c) <= 8, "order holds {} entries", entries(&c));
        assert_eq!(c.run_from(t, 0, 99, 1)[0].byte_len, 99);
    }

    #[test]
    fn announced_rows_are_kept_only_for_partitions_read_here() {
        let c = IndexCache::new(1000, Duration::from_secs(60));
        let t = Uuid::now_v7();
        c.learn(t, 0, row(0, 0), false);
        assert!(
            c.run_from(t, 0, 0, 1).is_empty(),
            "not read before: not kept"
        );
        // That read (a miss) marks the partition: announcements now stay.
        c.learn(t, 0, row(0, 0), false);
        assert_eq!(c.run_from(t, 0, 0, 1).len(), 1);
        c.learn(t, 1, row(0, 0), false);
        assert_eq!(rows_held(&c), 1, "another partition was not read");
        // A partition someone waits on (a long-poll) is kept unread.
        c.learn(t, 3, row(0, 0), true);
        assert_eq!(rows_held(&c), 2);
        // Local commits and reads insert whatever the partition.
        c.insert(t, 2, row(0, 0));
        assert_eq!(rows_held(&c), 3);
    }

    #[test]
    fn rows_expire_after_their_lifetime() {
        let c = IndexCache::new(1000, Duration::from_millis(50));
        let t = Uuid::now_v7();
        c.insert(t, 0, row(0, 0));
        assert_eq!(c.run_from(t, 0, 0, 1).len(), 1);
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            c.run_from(t, 0, 0, 1).is_empty(),
            "expired rows are not read"
        );
        // The same row read again (a miss) is cached anew.
        c.insert(t, 0, row(0, 0));
        assert_eq!(c.run_from(t, 0, 0, 1).len(), 1);
        std::thread::sleep(Duration::from_millis(80));
        c.insert(t, 0, row(1, 1));
        assert_eq!(rows_held(&c), 1, "the expired row left on the next insert");
    }
}
