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
//! bound holds); reads insert what they fetch.

use std::time::Duration;

use moka::sync::Cache;
use uuid::Uuid;

use crate::metadata::BatchRow;

/// Cached index rows; see the module header.
#[derive(Debug, Clone)]
pub(crate) struct IndexCache {
    rows: Cache<(Uuid, i32, i64), BatchRow>,
}

impl IndexCache {
    pub(crate) fn new(max_rows: u64, ttl: Duration) -> Self {
        IndexCache {
            rows: Cache::builder()
                .max_capacity(max_rows)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
        }
    }

    pub(crate) fn insert(&self, topic_id: Uuid, partition: i32, row: BatchRow) {
        self.rows
            .insert((topic_id, partition, row.base_offset), row);
    }

    /// Forgets every row of a topic (it was deleted).
    pub(crate) fn forget_topic(&self, topic_id: Uuid) {
        // Only fails when closures are unsupported, which the builder enables.
        let _ = self
            .rows
            .invalidate_entries_if(move |(t, _, _), _| *t == topic_id);
    }

    /// Forgets every row of one partition (lifecycle work replaced them).
    pub(crate) fn forget_partition(&self, topic_id: Uuid, partition: i32) {
        let _ = self
            .rows
            .invalidate_entries_if(move |(t, p, _), _| *t == topic_id && *p == partition);
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
        let mut out = Vec::new();
        let mut next = offset;
        while out.len() < limit {
            match self.rows.get(&(topic_id, partition, next)) {
                Some(row) => {
                    next = row.last_offset + 1;
                    out.push(row);
                }
                None => break,
            }
        }
        out
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
            byte_offset: 8,
            byte_len: 10,
            record_count: (last - base + 1) as u32,
            max_timestamp: 0,
        }
    }

    #[test]
    fn walks_contiguous_rows_from_an_exact_base_offset() {
        let c = IndexCache::new(100, Duration::from_secs(60));
        let t = Uuid::now_v7();
        for (b, l) in [(0, 4), (5, 5), (6, 9), (20, 21)] {
            c.insert(t, 0, row(b, l));
        }
        let run: Vec<i64> = c
            .run_from(t, 0, 0, 10)
            .iter()
            .map(|r| r.base_offset)
            .collect();
        assert_eq!(run, [0, 5, 6]);
        assert_eq!(c.run_from(t, 0, 5, 1).len(), 1);
        assert!(
            c.run_from(t, 0, 3, 10).is_empty(),
            "mid-chunk offsets go to the store"
        );
        assert!(c.run_from(t, 1, 0, 10).is_empty());
    }
}
