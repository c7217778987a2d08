//! The sweep's calls (see `maintenance::sweep`) over the SQL skeleton:
//! finding the small chunks to merge, and swapping a group of partitions'
//! rows for rows of one shared object.
//!
//! A group's transaction locks its partition rows in key order (as a flush
//! commit does, so the two cannot deadlock), reads which replaced rows are
//! still there, and swaps only the partitions that have all of theirs: a
//! partition another compaction or retention changed meanwhile keeps its
//! rows, and the sweep's copy of it is dead bytes in the new object. A
//! group with something to swap records the new object's row if no group
//! did yet, so no object row exists without rows naming it. Last, it locks
//! the objects whose rows it deleted together with the new one (id order),
//! fails if the new one was released meanwhile (its earlier rows may all
//! have gone since), and, as every call that deletes rows, marks the
//! objects no row names any more, in the same transaction.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::lifecycle::{insert_rewritten, rewritten_object};
use super::statements::ColType::{BigInt, Int, Uuid as UuidCol};
use super::{Arg, ColType, Column, Dialect, Failure, On, RowSet, SqlRow, SqlStore, rows};
use crate::metadata::MetadataError;
use crate::metadata::lifecycle::{
    SMALL_CHUNK_BYTES, SweepInput, SweepOutcome, SweepSwap, SweptPartition,
};
use crate::model::object_key;

/// Byte lengths of the replaced rows found, by (topic, partition,
/// last offset, object).
type Sizes = HashMap<(Uuid, i32, i64, Uuid), i64>;

const KEY_COLS: &[(&str, ColType)] = &[("t", UuidCol), ("n", Int)];
const ROW_KEY_COLS: &[(&str, ColType)] = &[("t", UuidCol), ("n", Int), ("lo", BigInt)];
const BYTES_COLS: &[(&str, ColType)] = &[("t", UuidCol), ("n", Int), ("d", BigInt)];
const NEW_ROW_COLS: &[(&str, ColType)] = &[
    ("t", UuidCol),
    ("n", Int),
    ("lo", BigInt),
    ("bo", BigInt),
    ("off", BigInt),
    ("len", BigInt),
    ("cnt", BigInt),
    ("mts", BigInt),
];

/// The statements, with the dialect's pieces filled in.
#[derive(Debug)]
pub(super) struct SweepSql {
    flush_rows: String,
    swept_rows: String,
    lock_partitions: Option<String>,
    insert_object: String,
    object_exists: String,
    object_live: String,
    existing: String,
    delete: String,
    insert_rows: String,
    add_bytes: String,
}

impl SweepSql {
    pub(super) fn new<D: Dialect>() -> Self {
        let rows = D::rows_from;
        let now = D::NOW_MS;
        let cols = "b.topic_id, b.partition, b.base_offset, b.last_offset, b.object_id, \
                    b.byte_offset, b.byte_len, b.record_count, b.max_timestamp, o.created_at";
        // No join with topics and no ORDER BY: either turns the plan into
        // a scan of the whole index. The caller filters and sorts.
        SweepSql {
            flush_rows: format!(
                "SELECT {cols} FROM (SELECT id, created_at FROM objects \
                 WHERE state = 'live' AND delete_after IS NULL AND created_at < $1 \
                 AND EXISTS (SELECT 1 FROM batches x \
                 WHERE x.object_id = objects.id AND x.byte_len < {SMALL_CHUNK_BYTES}) \
                 ORDER BY created_at LIMIT $2) o \
                 JOIN batches b ON b.object_id = o.id WHERE b.byte_len < {SMALL_CHUNK_BYTES}"
            ),
            swept_rows: format!(
                "SELECT {cols} FROM (SELECT id, created_at FROM objects \
                 WHERE state = 'swept' AND delete_after IS NULL AND size < $1 \
                 ORDER BY created_at LIMIT $2) o JOIN batches b ON b.object_id = o.id"
            ),
            lock_partitions: D::lock_partitions(&rows(1, "k", KEY_COLS)),
            insert_object: insert_rewritten("swept", now),
            object_exists: "SELECT id FROM objects WHERE id = $1".into(),
            object_live: "SELECT id FROM objects WHERE id = $1 AND delete_after IS NULL".into(),
            existing: format!(
                "SELECT b.topic_id, b.partition, b.last_offset, b.object_id, b.byte_len FROM {} \
                 JOIN batches b ON b.topic_id = k.t AND b.partition = k.n AND b.last_offset = k.lo",
                rows(1, "k", ROW_KEY_COLS)
            ),
            delete: format!(
                "DELETE FROM batches WHERE (topic_id, partition, last_offset) IN \
                 (SELECT k.t, k.n, k.lo FROM {}) RETURNING object_id",
                rows(1, "k", ROW_KEY_COLS)
            ),
            insert_rows: format!(
                "INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
                 byte_offset, byte_len, record_count, max_timestamp) \
                 SELECT k.t, k.n, k.lo, k.bo, $1, k.off, k.len, k.cnt, k.mts FROM {} WHERE true",
                rows(2, "k", NEW_ROW_COLS)
            ),
            add_bytes: format!(
                "UPDATE partitions SET bytes = bytes + k.d FROM {} \
                 WHERE partitions.topic_id = k.t AND partitions.partition = k.n",
                rows(1, "k", BYTES_COLS)
            ),
        }
    }
}

fn input(r: &impl SqlRow, in_flush_object: bool) -> Result<SweepInput, sqlx::Error> {
    Ok(SweepInput {
        topic_id: r.uuid("topic_id")?,
        partition: r.int("partition")?,
        row: rows::batch(r)?,
        in_flush_object,
        object_created_at_ms: r.big("created_at")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn sweep_candidates_now(
        &self,
        flush_before_ms: i64,
        small_object: i64,
        limit: u32,
    ) -> Result<Vec<SweepInput>, MetadataError> {
        self.read(async {
            let limit = Arg::BigInt(i64::from(limit));
            let swept = self
                .fetch(
                    On::Read,
                    &self.sweep.swept_rows,
                    &[Arg::BigInt(small_object), limit],
                )
                .await?;
            let flushed = self
                .fetch(
                    On::Read,
                    &self.sweep.flush_rows,
                    &[Arg::BigInt(flush_before_ms), limit],
                )
                .await?;
            let mut all = rows::all(&swept, |r| input(r, false))?;
            all.extend(rows::all(&flushed, |r| input(r, true))?);
            all.sort_unstable_by_key(|c| {
                let r = &c.row;
                let object = (c.in_flush_object, c.object_created_at_ms, r.object_id);
                (object, c.topic_id, c.partition, r.last_offset)
            });
            Ok(all)
        })
        .await
    }

    pub(super) async fn swap_swept_once(&self, swap: &SweepSwap) -> Result<SweepOutcome, Failure> {
        let mut tx = self.begin().await?;
        let parts = &swap.partitions;
        if let Some(lock) = &self.sweep.lock_partitions {
            let keys = RowSet {
                columns: vec![
                    Column::Uuid(parts.iter().map(|p| p.topic_id).collect()),
                    Column::Int(parts.iter().map(|p| p.partition).collect()),
                ],
            };
            self.fetch(On::Tx(&mut tx), lock, &[Arg::Rows(&keys)])
                .await?;
        }
        let found = self
            .fetch(
                On::Tx(&mut tx),
                &self.sweep.existing,
                &[Arg::Rows(&replaced_keys(parts))],
            )
            .await?;
        let mut there: Sizes = HashMap::with_capacity(found.len());
        for r in &found {
            let key = (
                r.uuid("topic_id")?,
                r.int("partition")?,
                r.big("last_offset")?,
                r.uuid("object_id")?,
            );
            there.insert(key, r.big("byte_len")?);
        }
        let (intact, changed): (Vec<_>, Vec<_>) = parts.iter().partition(|p| {
            p.replaced
                .iter()
                .all(|(lo, o)| there.contains_key(&(p.topic_id, p.partition, *lo, *o)))
        });
        let mut outcome = SweepOutcome {
            swapped: intact.iter().map(|p| (p.topic_id, p.partition)).collect(),
            changed: changed.len(),
            objects_released: 0,
        };
        if intact.is_empty() {
            // Nothing to swap: no object row is recorded without rows
            // naming it.
            self.commit(tx).await?;
            return Ok(outcome);
        }
        self.insert_swept_object(&mut tx, swap).await?;
        let deleted = self
            .fetch(
                On::Tx(&mut tx),
                &self.sweep.delete,
                &[Arg::Rows(&replaced_keys(intact.iter().copied()))],
            )
            .await?;
        let mut released = HashSet::new();
        for r in &deleted {
            released.insert(r.uuid("object_id")?);
        }
        self.insert_swept_rows(&mut tx, swap, &intact, &there)
            .await?;
        // The new object is locked with the released ones (id order) and
        // must not have been released meanwhile (an earlier group recorded
        // it, and its rows may all have gone since): rows naming an object
        // on its way to the collector would lose their records.
        released.remove(&swap.object_id);
        let mut lock: Vec<Uuid> = released.iter().copied().collect();
        lock.push(swap.object_id);
        lock.sort();
        self.lock_objects(&mut tx, &lock).await?;
        let live = [Arg::Uuid(swap.object_id)];
        if self
            .fetch_optional(On::Tx(&mut tx), &self.sweep.object_live, &live)
            .await?
            .is_none()
        {
            return Err(Failure::Definite(MetadataError::Unavailable(
                "the swept object was released meanwhile; sweep again".into(),
            )));
        }
        let mut released: Vec<Uuid> = released.into_iter().collect();
        released.sort();
        outcome.objects_released = self
            .mark_released(&mut tx, &released, swap.grace_ms)
            .await?;
        self.commit(tx).await?;
        Ok(outcome)
    }

    /// Records the sweep's object (state `swept`) unless an earlier group
    /// (or an attempt whose commit was lost) did.
    async fn insert_swept_object(&self, tx: &mut D::Tx, swap: &SweepSwap) -> Result<(), Failure> {
        let key = object_key(swap.object_id);
        let object = rewritten_object(
            swap.object_id,
            &key,
            swap.object_size,
            &swap.writer,
            swap.created_at_ms,
            swap.max_object_age_ms,
        );
        let on = On::Tx(&mut *tx);
        if self
            .fetch_optional(on, &self.sweep.insert_object, &object)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let id = [Arg::Uuid(swap.object_id)];
        if self
            .fetch_optional(On::Tx(tx), &self.sweep.object_exists, &id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        Err(Failure::Definite(MetadataError::Unavailable(
            "the swept object is older than half the orphan grace; sweep again".into(),
        )))
    }

    /// Inserts the intact partitions' new rows and moves their byte counts
    /// by the difference (`there` holds the replaced rows' sizes).
    async fn insert_swept_rows(
        &self,
        tx: &mut D::Tx,
        swap: &SweepSwap,
        intact: &[&SweptPartition],
        there: &Sizes,
    ) -> Result<(), Failure> {
        let new = intact
            .iter()
            .flat_map(|p| p.rows.iter().map(|r| (p.topic_id, p.partition, r)));
        let mut cols: [Vec<i64>; 6] = Default::default();
        let (mut ts, mut ns) = (Vec::new(), Vec::new());
        for (t, n, r) in new {
            ts.push(t);
            ns.push(n);
            let vals = [
                r.last_offset,
                r.base_offset,
                r.byte_offset as i64,
                i64::from(r.byte_len),
                i64::from(r.record_count),
                r.max_timestamp,
            ];
            for (c, v) in cols.iter_mut().zip(vals) {
                c.push(v);
            }
        }
        let mut columns = vec![Column::Uuid(ts), Column::Int(ns)];
        columns.extend(cols.into_iter().map(Column::BigInt));
        let set = RowSet { columns };
        self.execute(
            On::Tx(&mut *tx),
            &self.sweep.insert_rows,
            &[Arg::Uuid(swap.object_id), Arg::Rows(&set)],
        )
        .await?;
        let mut delta: HashMap<(Uuid, i32), i64> = HashMap::new();
        for p in intact {
            let old: i64 = p
                .replaced
                .iter()
                .map(|(lo, o)| there[&(p.topic_id, p.partition, *lo, *o)])
                .sum();
            let d = p.rows.iter().map(|r| i64::from(r.byte_len)).sum::<i64>() - old;
            if d != 0 {
                delta.insert((p.topic_id, p.partition), d);
            }
        }
        if delta.is_empty() {
            return Ok(());
        }
        let mut delta: Vec<_> = delta.into_iter().collect();
        delta.sort_unstable();
        let set = RowSet {
            columns: vec![
                Column::Uuid(delta.iter().map(|((t, _), _)| *t).collect()),
                Column::Int(delta.iter().map(|((_, n), _)| *n).collect()),
                Column::BigInt(delta.iter().map(|(_, d)| *d).collect()),
            ],
        };
        self.execute(On::Tx(tx), &self.sweep.add_bytes, &[Arg::Rows(&set)])
            .await?;
        Ok(())
    }
}

/// The keys of the rows `parts` replace: topic, partition, last offset.
fn replaced_keys<'a>(parts: impl IntoIterator<Item = &'a SweptPartition>) -> RowSet {
    let keys: Vec<(Uuid, i32, i64)> = parts
        .into_iter()
        .flat_map(|p| {
            p.replaced
                .iter()
                .map(|(lo, _)| (p.topic_id, p.partition, *lo))
        })
        .collect();
    RowSet {
        columns: vec![
            Column::Uuid(keys.iter().map(|k| k.0).collect()),
            Column::Int(keys.iter().map(|k| k.1).collect()),
            Column::BigInt(keys.iter().map(|k| k.2).collect()),
        ],
    }
}
