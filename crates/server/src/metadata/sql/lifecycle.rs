//! The lifecycle calls (see `metadata::lifecycle`) over the SQL skeleton:
//! their statements, written once for both backends, and their control
//! flow. Every call that deletes index rows locks what it changes in a
//! fixed order — the partition row, then the objects by id — and then
//! marks the objects no row names any more, so two transactions releasing
//! the last rows of one object cannot both miss it (the second waits for
//! the first and then sees its deletions).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::statements::ColType::{BigInt, Uuid as UuidCol};
use super::statements::TOPIC_COLS;
use super::{Arg, Column, Dialect, Failure, On, RowSet, SqlRow, SqlStore, rows};
use crate::metadata::lifecycle::{
    ExpiredObject, IndexedChunk, Job, JobKind, Lifecycle, PartitionObjects, Released,
    SMALL_CHUNK_BYTES, StorageReport, Swap, SwapOutcome, SweepInput, SweepOutcome, SweepSwap,
    TopicStorage, TrimOutcome,
};
use crate::metadata::{BatchRow, MetadataError};
use crate::model::{TopicMeta, object_key, uuid_v7_ms};

/// Flush objects looked at per planning pass.
const PLAN_OBJECTS: u32 = 1000;
/// Topics reported in the storage figures (largest first).
const REPORT_TOPICS: u32 = 1000;

/// The statements, with the dialect's pieces filled in.
#[derive(Debug)]
pub(super) struct LifecycleSql {
    live_topic: String,
    plan: [String; 5],
    claim: String,
    job_done: String,
    job_retry: String,
    retention_by_time: String,
    retention_by_bytes: String,
    raise_log_start: String,
    partition_bounds: String,
    delete_below: String,
    add_bytes: String,
    lock_partition: String,
    lock_objects: Option<String>,
    mark_released: String,
    indexed_chunks: String,
    insert_compacted: String,
    swapped_before: String,
    delete_replaced: String,
    insert_rows: String,
    release_topic_rows: String,
    expired_objects: String,
    forget_objects: String,
    partition_objects: String,
    gc_backlog: String,
    compaction_lag: String,
    claim_topic_storage: String,
    clear_topic_storage: String,
    measure_topic_storage: String,
    topic_storage: String,
}

const ID_COLS: &[(&str, super::ColType)] = &[("id", UuidCol)];
const OFFSET_COLS: &[(&str, super::ColType)] = &[("lo", BigInt)];
const ROW_COLS: &[(&str, super::ColType)] = &[
    ("lo", BigInt),
    ("bo", BigInt),
    ("off", BigInt),
    ("len", BigInt),
    ("cnt", BigInt),
    ("mts", BigInt),
];

impl LifecycleSql {
    pub(super) fn new<D: Dialect>() -> Self {
        let rows = D::rows_from;
        let now = D::NOW_MS;
        let lock = D::LOCK_ROWS;
        let conflict = "ON CONFLICT (kind, topic_id, partition) DO NOTHING";
        LifecycleSql {
            live_topic: format!(
                "SELECT {TOPIC_COLS} FROM topics WHERE id = $1 AND deleted_at IS NULL"
            ),
            plan: [
                // Partitions with flush chunks old enough to compact and
                // too large for the sweep.
                format!(
                    "INSERT INTO jobs (kind, topic_id, partition) \
                     SELECT DISTINCT 'compact', b.topic_id, b.partition FROM batches b \
                     JOIN (SELECT id FROM objects WHERE state = 'live' AND delete_after IS NULL \
                     AND created_at < $1 \
                     AND EXISTS (SELECT 1 FROM batches x WHERE x.object_id = objects.id \
                     AND x.byte_len >= {SMALL_CHUNK_BYTES}) \
                     ORDER BY created_at LIMIT {PLAN_OBJECTS}) o \
                     ON o.id = b.object_id WHERE b.byte_len >= {SMALL_CHUNK_BYTES} {conflict}"
                ),
                // Every partition of a key-compacted topic.
                format!(
                    "INSERT INTO jobs (kind, topic_id, partition) \
                     SELECT 'compact', p.topic_id, p.partition FROM partitions p \
                     JOIN topics t ON t.id = p.topic_id WHERE t.deleted_at IS NULL \
                     AND t.cleanup_policy <> 'delete' AND p.next_offset > p.log_start_offset {conflict}"
                ),
                format!(
                    "INSERT INTO jobs (kind, topic_id, partition) \
                     SELECT 'retain', p.topic_id, p.partition FROM partitions p \
                     JOIN topics t ON t.id = p.topic_id WHERE t.deleted_at IS NULL \
                     AND t.cleanup_policy <> 'compact' \
                     AND (t.retention_ms IS NOT NULL OR t.retention_bytes IS NOT NULL) \
                     AND p.next_offset > p.log_start_offset {conflict}"
                ),
                format!(
                    "INSERT INTO jobs (kind, topic_id, partition) \
                     SELECT 'release', t.id, -1 FROM topics t WHERE t.deleted_at IS NOT NULL \
                     AND EXISTS (SELECT 1 FROM batches b WHERE b.topic_id = t.id) {conflict}"
                ),
                // One sweep for the store while any flush object is old
                // enough (it finds out whether there is work).
                format!(
                    "INSERT INTO jobs (kind, topic_id, partition) SELECT 'sweep', $2, 0 \
                     WHERE EXISTS (SELECT 1 FROM objects WHERE state = 'live' \
                     AND delete_after IS NULL AND created_at < $1) {conflict}"
                ),
            ],
            claim: format!(
                "UPDATE jobs SET owner = $1, lease_until = {now} + $2, attempts = attempts + 1 \
                 WHERE (kind, topic_id, partition) IN (SELECT kind, topic_id, partition FROM jobs \
                 WHERE lease_until < {now} ORDER BY lease_until LIMIT $3{}) \
                 RETURNING kind, topic_id, partition, attempts",
                D::SKIP_LOCKED
            ),
            job_done: "DELETE FROM jobs WHERE kind = $1 AND topic_id = $2 AND partition = $3 \
                 AND owner = $4"
                .into(),
            job_retry: format!(
                "UPDATE jobs SET lease_until = {now} + $5 WHERE kind = $1 AND topic_id = $2 \
                 AND partition = $3 AND owner = $4"
            ),
            // The running maximum grows with the offset, so the rows older
            // than the time are a prefix: read from the partition's first row
            // up to the first newer one (only rows about to expire), then
            // take the last before it, all along the primary key.
            retention_by_time: "SELECT MAX(last_offset) AS lo FROM batches \
                 WHERE topic_id = $1 AND partition = $2 AND max_timestamp < $3 \
                 AND last_offset < COALESCE((SELECT x.last_offset FROM batches x \
                 WHERE x.topic_id = $1 AND x.partition = $2 AND x.max_timestamp >= $3 \
                 ORDER BY x.last_offset LIMIT 1), 9223372036854775807)"
                .into(),
            // The newest rows whose bytes add up to at most the limit stay.
            retention_by_bytes: "SELECT last_offset AS lo FROM (SELECT last_offset, \
                 SUM(byte_len) OVER (ORDER BY last_offset DESC) AS tail FROM batches \
                 WHERE topic_id = $1 AND partition = $2) x WHERE tail > $3 \
                 ORDER BY last_offset DESC LIMIT 1"
                .into(),
            raise_log_start: "UPDATE partitions SET log_start_offset = $3 \
                 WHERE topic_id = $1 AND partition = $2 AND log_start_offset < $3 \
                 AND $3 <= next_offset RETURNING log_start_offset, next_offset"
                .into(),
            partition_bounds: "SELECT log_start_offset, next_offset FROM partitions \
                 WHERE topic_id = $1 AND partition = $2"
                .into(),
            delete_below: "DELETE FROM batches WHERE topic_id = $1 AND partition = $2 \
                 AND last_offset < $3 RETURNING object_id, byte_len"
                .into(),
            add_bytes: "UPDATE partitions SET bytes = bytes + $3 \
                 WHERE topic_id = $1 AND partition = $2"
                .into(),
            lock_partition: format!(
                "SELECT next_offset FROM partitions WHERE topic_id = $1 AND partition = $2{lock}"
            ),
            lock_objects: (!lock.is_empty()).then(|| {
                format!(
                    "SELECT id FROM objects WHERE id IN (SELECT k.id FROM {}) ORDER BY id{lock}",
                    rows(1, "k", ID_COLS)
                )
            }),
            mark_released: format!(
                "UPDATE objects SET delete_after = {now} + $1 \
                 WHERE id IN (SELECT k.id FROM {}) AND delete_after IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.object_id = objects.id) \
                 RETURNING id",
                rows(2, "k", ID_COLS)
            ),
            indexed_chunks: "SELECT b.base_offset, b.last_offset, b.object_id, b.byte_offset, \
                 b.byte_len, b.record_count, b.max_timestamp, o.state, o.created_at, o.size \
                 FROM batches b JOIN objects o ON o.id = b.object_id \
                 WHERE b.topic_id = $1 AND b.partition = $2 AND b.last_offset >= $3 \
                 ORDER BY b.last_offset LIMIT $4"
                .into(),
            insert_compacted: insert_rewritten("compacted", now),
            swapped_before: "SELECT COUNT(*) AS n FROM batches WHERE object_id = $1".into(),
            delete_replaced: format!(
                "DELETE FROM batches WHERE topic_id = $1 AND partition = $2 \
                 AND last_offset IN (SELECT k.lo FROM {}) RETURNING last_offset, object_id, byte_len",
                rows(3, "k", OFFSET_COLS)
            ),
            insert_rows: format!(
                "INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
                 byte_offset, byte_len, record_count, max_timestamp) \
                 SELECT $1, $2, k.lo, k.bo, $3, k.off, k.len, k.cnt, k.mts FROM {} WHERE true",
                rows(4, "k", ROW_COLS)
            ),
            release_topic_rows: "DELETE FROM batches WHERE topic_id = $1 \
                 AND (partition, last_offset) IN (SELECT partition, last_offset FROM batches \
                 WHERE topic_id = $1 LIMIT $2) \
                 AND EXISTS (SELECT 1 FROM topics t WHERE t.id = $1 AND t.deleted_at IS NOT NULL) \
                 RETURNING object_id"
                .into(),
            expired_objects: format!(
                "SELECT id, object_key, size FROM objects WHERE delete_after IS NOT NULL \
                 AND delete_after <= {now} ORDER BY delete_after LIMIT $1"
            ),
            forget_objects: format!(
                "DELETE FROM objects WHERE id IN (SELECT k.id FROM {}) AND delete_after IS NOT NULL",
                rows(1, "k", ID_COLS)
            ),
            partition_objects: "SELECT partition, COUNT(DISTINCT object_id) AS objects, \
                 COUNT(*) AS index_rows \
                 FROM batches WHERE topic_id = $1 AND partition >= $2 AND partition < $3 \
                 GROUP BY partition"
                .into(),
            gc_backlog: "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
                 FROM objects WHERE delete_after IS NOT NULL"
                .into(),
            compaction_lag: format!(
                "SELECT CAST(COALESCE({now} - MIN(created_at), 0) AS BIGINT) AS lag \
                 FROM objects WHERE state = 'live' AND delete_after IS NULL"
            ),
            claim_topic_storage: format!(
                "UPDATE epochs SET value = {now} WHERE name = 'storage_report' \
                 AND value <= {now} - $1 RETURNING value"
            ),
            clear_topic_storage: "DELETE FROM topic_storage".into(),
            measure_topic_storage: format!(
                "INSERT INTO topic_storage (topic_id, bytes, objects) \
                 SELECT t.id, CAST(COALESCE(SUM(p.bytes), 0) AS BIGINT), \
                 CAST((SELECT COUNT(DISTINCT b.object_id) FROM batches b WHERE b.topic_id = t.id) \
                 AS BIGINT) FROM topics t JOIN partitions p ON p.topic_id = t.id \
                 WHERE t.deleted_at IS NULL GROUP BY t.id \
                 ORDER BY 2 DESC LIMIT {REPORT_TOPICS}"
            ),
            topic_storage: format!(
                "SELECT t.tenant, t.name, s.bytes, s.objects FROM topic_storage s \
                 JOIN topics t ON t.id = s.topic_id WHERE t.deleted_at IS NULL \
                 ORDER BY s.bytes DESC LIMIT {REPORT_TOPICS}"
            ),
        }
    }
}

/// Inserts a rewritten object's row in `state` (parameters from
/// [`rewritten_object`]), refused when the object is older than allowed by
/// the store's clock (`now`); returns `id` unless the row was there.
pub(super) fn insert_rewritten(state: &str, now: &str) -> String {
    format!(
        "INSERT INTO objects (id, object_key, size, state, writer, created_at) \
         SELECT $1, $2, $3, '{state}', $4, $5 WHERE $7 >= {now} - $6 \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    )
}

/// The parameters of a rewritten object's row (`$1..$7` of the compacted
/// and swept object inserts): its id, key, size, writer and creation time,
/// the age past which it is refused, and the time its id carries.
pub(super) fn rewritten_object<'a>(
    id: Uuid,
    key: &'a str,
    size: u64,
    writer: &'a str,
    created_at_ms: i64,
    max_age_ms: i64,
) -> [Arg<'a>; 7] {
    [
        Arg::Uuid(id),
        Arg::Text(key),
        Arg::BigInt(size as i64),
        Arg::Text(writer),
        Arg::BigInt(created_at_ms),
        Arg::BigInt(max_age_ms),
        Arg::BigInt(uuid_v7_ms(id).unwrap_or(i64::MAX)),
    ]
}

fn ids(set: impl IntoIterator<Item = Uuid>) -> RowSet {
    RowSet {
        columns: vec![Column::Uuid(set.into_iter().collect())],
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Measures the per-topic storage figures again when the fleet's last
    /// measurement is at least `every` old: the agent whose claim moves the
    /// `storage_report` epoch does it (the scan of the whole offset index
    /// runs once per interval for the fleet, not once per agent). An agent
    /// that claims and then fails leaves the figures a round older.
    async fn measure_topic_storage(&self, every: Duration) -> Result<(), Failure> {
        let every = [Arg::BigInt(every.as_millis() as i64)];
        let claimed = self
            .fetch_optional(On::Write, &self.life.claim_topic_storage, &every)
            .await?;
        if claimed.is_none() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        self.execute(On::Tx(&mut tx), &self.life.clear_topic_storage, &[])
            .await?;
        self.execute(On::Tx(&mut tx), &self.life.measure_topic_storage, &[])
            .await?;
        self.commit(tx).await
    }

    /// Marks the objects among `released` that no index row names any
    /// more; returns how many. Runs inside the transaction that deleted
    /// the rows, after locking the objects in id order.
    pub(super) async fn release_objects(
        &self,
        tx: &mut D::Tx,
        released: HashSet<Uuid>,
        grace_ms: i64,
    ) -> Result<u64, Failure> {
        if released.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<Uuid> = released.into_iter().collect();
        sorted.sort();
        self.lock_objects(tx, &sorted).await?;
        self.mark_released(tx, &sorted, grace_ms).await
    }

    /// Locks object rows in the order given (id order), where the store
    /// needs row locks.
    pub(super) async fn lock_objects(
        &self,
        tx: &mut D::Tx,
        sorted: &[Uuid],
    ) -> Result<(), Failure> {
        if let Some(lock) = &self.life.lock_objects {
            let set = ids(sorted.iter().copied());
            self.fetch(On::Tx(tx), lock, &[Arg::Rows(&set)]).await?;
        }
        Ok(())
    }

    /// Marks the objects among `list` (locked) that no index row names any
    /// more; returns how many.
    pub(super) async fn mark_released(
        &self,
        tx: &mut D::Tx,
        list: &[Uuid],
        grace_ms: i64,
    ) -> Result<u64, Failure> {
        if list.is_empty() {
            return Ok(0);
        }
        let set = ids(list.iter().copied());
        let marked = self
            .fetch(
                On::Tx(tx),
                &self.life.mark_released,
                &[Arg::BigInt(grace_ms), Arg::Rows(&set)],
            )
            .await?;
        Ok(marked.len() as u64)
    }

    async fn advance_once(
        &self,
        topic_id: Uuid,
        partition: i32,
        to: i64,
        grace_ms: i64,
    ) -> Result<TrimOutcome, Failure> {
        let mut tx = self.begin().await?;
        let key = [Arg::Uuid(topic_id), Arg::Int(partition), Arg::BigInt(to)];
        let raised = self
            .fetch_optional(On::Tx(&mut tx), &self.life.raise_log_start, &key)
            .await?;
        let Some(raised) = raised else {
            let row = self
                .fetch_optional(On::Tx(&mut tx), &self.life.partition_bounds, &key[..2])
                .await?;
            self.commit(tx).await?;
            return Ok(match row {
                None => TrimOutcome::Gone,
                Some(r) if to > r.big("next_offset")? => TrimOutcome::BeyondEnd {
                    high_watermark: r.big("next_offset")?,
                },
                Some(r) => TrimOutcome::Trimmed {
                    log_start_offset: r.big("log_start_offset")?,
                    high_watermark: r.big("next_offset")?,
                    rows_released: 0,
                    objects_released: 0,
                },
            });
        };
        let deleted = self
            .fetch(On::Tx(&mut tx), &self.life.delete_below, &key)
            .await?;
        let mut bytes = 0i64;
        let mut objects = HashSet::new();
        for r in &deleted {
            bytes += r.big("byte_len")?;
            objects.insert(r.uuid("object_id")?);
        }
        if bytes != 0 {
            let args = [
                Arg::Uuid(topic_id),
                Arg::Int(partition),
                Arg::BigInt(-bytes),
            ];
            self.execute(On::Tx(&mut tx), &self.life.add_bytes, &args)
                .await?;
        }
        let objects_released = self.release_objects(&mut tx, objects, grace_ms).await?;
        self.commit(tx).await?;
        Ok(TrimOutcome::Trimmed {
            log_start_offset: raised.big("log_start_offset")?,
            high_watermark: raised.big("next_offset")?,
            rows_released: deleted.len() as u64,
            objects_released,
        })
    }

    async fn swap_once(&self, swap: &Swap) -> Result<SwapOutcome, Failure> {
        let mut tx = self.begin().await?;
        let part = [Arg::Uuid(swap.topic_id), Arg::Int(swap.partition)];
        if self
            .fetch_optional(On::Tx(&mut tx), &self.life.lock_partition, &part)
            .await?
            .is_none()
        {
            return Ok(SwapOutcome::Changed);
        }
        // Rows that kept no record (key compaction) need no new object.
        if !swap.rows.is_empty()
            && let Some(done) = self.insert_swapped_object(&mut tx, swap).await?
        {
            self.commit(tx).await?;
            return Ok(done);
        }
        let offsets = RowSet {
            columns: vec![Column::BigInt(
                swap.replaced.iter().map(|(lo, _)| *lo).collect(),
            )],
        };
        let deleted = self
            .fetch(
                On::Tx(&mut tx),
                &self.life.delete_replaced,
                &[part[0], part[1], Arg::Rows(&offsets)],
            )
            .await?;
        let expected: HashSet<(i64, Uuid)> = swap.replaced.iter().copied().collect();
        let mut old_bytes = 0i64;
        let mut objects = HashSet::new();
        for r in &deleted {
            let (lo, id) = (r.big("last_offset")?, r.uuid("object_id")?);
            if !expected.contains(&(lo, id)) {
                return Ok(SwapOutcome::Changed);
            }
            old_bytes += r.big("byte_len")?;
            objects.insert(id);
        }
        if deleted.len() != expected.len() {
            // Dropping the transaction rolls it back.
            return Ok(SwapOutcome::Changed);
        }
        let new_rows = row_set(&swap.rows);
        self.execute(
            On::Tx(&mut tx),
            &self.life.insert_rows,
            &[
                part[0],
                part[1],
                Arg::Uuid(swap.object_id),
                Arg::Rows(&new_rows),
            ],
        )
        .await?;
        let new_bytes: i64 = swap.rows.iter().map(|r| i64::from(r.byte_len)).sum();
        if new_bytes != old_bytes {
            self.execute(
                On::Tx(&mut tx),
                &self.life.add_bytes,
                &[part[0], part[1], Arg::BigInt(new_bytes - old_bytes)],
            )
            .await?;
        }
        let objects_released = self
            .release_objects(&mut tx, objects, swap.grace_ms)
            .await?;
        self.commit(tx).await?;
        Ok(SwapOutcome::Swapped { objects_released })
    }

    /// Inserts the swap's new object row. `Some` when the swap committed
    /// before (a re-run after an ambiguous commit): answer with that.
    async fn insert_swapped_object(
        &self,
        tx: &mut D::Tx,
        swap: &Swap,
    ) -> Result<Option<SwapOutcome>, Failure> {
        let key = object_key(swap.object_id);
        let object = rewritten_object(
            swap.object_id,
            &key,
            swap.object_size,
            &swap.writer,
            swap.created_at_ms,
            swap.max_object_age_ms,
        );
        let inserted = self
            .fetch_optional(On::Tx(&mut *tx), &self.life.insert_compacted, &object)
            .await?;
        if inserted.is_none() {
            // A re-run of a swap that committed finds its rows; otherwise
            // the object is too old to commit.
            let found = self
                .fetch_optional(
                    On::Tx(&mut *tx),
                    &self.life.swapped_before,
                    &[Arg::Uuid(swap.object_id)],
                )
                .await?;
            if found.map(|r| r.big("n")).transpose()?.unwrap_or(0) > 0 {
                return Ok(Some(SwapOutcome::Swapped {
                    objects_released: 0,
                }));
            }
            return Err(Failure::Definite(MetadataError::Unavailable(
                "the compacted object is older than half the orphan grace; compact again".into(),
            )));
        }
        Ok(None)
    }

    async fn release_once(
        &self,
        topic_id: Uuid,
        limit: u32,
        grace_ms: i64,
    ) -> Result<Released, Failure> {
        let mut tx = self.begin().await?;
        let deleted = self
            .fetch(
                On::Tx(&mut tx),
                &self.life.release_topic_rows,
                &[Arg::Uuid(topic_id), Arg::BigInt(i64::from(limit))],
            )
            .await?;
        let objects = rows::all(&deleted, |r| r.uuid("object_id"))?
            .into_iter()
            .collect();
        let released = self.release_objects(&mut tx, objects, grace_ms).await?;
        self.commit(tx).await?;
        Ok(Released {
            rows: deleted.len() as u64,
            objects: released,
        })
    }
}

fn row_set(rows: &[BatchRow]) -> RowSet {
    let col = |f: fn(&BatchRow) -> i64| Column::BigInt(rows.iter().map(f).collect());
    RowSet {
        columns: vec![
            col(|r| r.last_offset),
            col(|r| r.base_offset),
            col(|r| r.byte_offset as i64),
            col(|r| i64::from(r.byte_len)),
            col(|r| i64::from(r.record_count)),
            col(|r| r.max_timestamp),
        ],
    }
}

#[async_trait]
impl<D: Dialect> Lifecycle for SqlStore<D> {
    async fn live_topic(&self, id: Uuid) -> Result<Option<TopicMeta>, MetadataError> {
        self.read(async {
            let row = self
                .fetch_optional(On::Read, &self.life.live_topic, &[Arg::Uuid(id)])
                .await?;
            Ok(row.as_ref().map(rows::topic).transpose()?)
        })
        .await
    }

    async fn plan_jobs(&self, uncompacted_before_ms: i64) -> Result<(), MetadataError> {
        let cutoff = [Arg::BigInt(uncompacted_before_ms), Arg::Uuid(Uuid::nil())];
        for (i, sql) in self.life.plan.iter().enumerate() {
            let args: &[Arg<'_>] = match i {
                0 => &cutoff[..1],
                4 => &cutoff,
                _ => &[],
            };
            self.retrying(|| self.execute(On::Write, sql, args)).await?;
        }
        Ok(())
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, MetadataError> {
        let args = [
            Arg::Text(owner),
            Arg::BigInt(lease_ms),
            Arg::BigInt(i64::from(limit)),
        ];
        self.retrying(|| async {
            let found = self.fetch(On::Write, &self.life.claim, &args).await?;
            let mut jobs = Vec::with_capacity(found.len());
            for r in &found {
                if let Some(kind) = JobKind::parse(&r.text("kind")?) {
                    jobs.push(Job {
                        kind,
                        topic_id: r.uuid("topic_id")?,
                        partition: r.int("partition")?,
                        attempts: r.int("attempts")?,
                    });
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        retry_in_ms: Option<i64>,
    ) -> Result<(), MetadataError> {
        let mut args = vec![
            Arg::Text(job.kind.as_str()),
            Arg::Uuid(job.topic_id),
            Arg::Int(job.partition),
            Arg::Text(owner),
        ];
        let sql = match retry_in_ms {
            None => &self.life.job_done,
            Some(ms) => {
                args.push(Arg::BigInt(ms));
                &self.life.job_retry
            }
        };
        self.retrying(|| self.execute(On::Write, sql, &args))
            .await
            .map(drop)
    }

    async fn retention_point(
        &self,
        topic_id: Uuid,
        partition: i32,
        older_than_ms: Option<i64>,
        keep_bytes: Option<i64>,
    ) -> Result<Option<i64>, MetadataError> {
        self.read(async {
            let mut point: Option<i64> = None;
            let asks = [
                (older_than_ms, &self.life.retention_by_time),
                (keep_bytes, &self.life.retention_by_bytes),
            ];
            for (limit, sql) in asks {
                let Some(limit) = limit else { continue };
                let args = [Arg::Uuid(topic_id), Arg::Int(partition), Arg::BigInt(limit)];
                let row = self.fetch_optional(On::Read, sql, &args).await?;
                if let Some(lo) = row.map(|r| r.opt_big("lo")).transpose()?.flatten() {
                    point = Some(point.unwrap_or(i64::MIN).max(lo + 1));
                }
            }
            Ok(point)
        })
        .await
    }

    async fn advance_log_start(
        &self,
        topic_id: Uuid,
        partition: i32,
        to: i64,
        grace_ms: i64,
    ) -> Result<TrimOutcome, MetadataError> {
        self.retrying(|| self.advance_once(topic_id, partition, to, grace_ms))
            .await
    }

    async fn indexed_chunks(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexedChunk>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Uuid(topic_id),
                Arg::Int(partition),
                Arg::BigInt(offset),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self
                .fetch(On::Read, &self.life.indexed_chunks, &args)
                .await?;
            Ok(rows::all(&found, |r| {
                Ok(IndexedChunk {
                    row: rows::batch(r)?,
                    in_flush_object: r.text("state")? == "live",
                    object_created_at_ms: r.big("created_at")?,
                    object_size: r.big("size")?,
                })
            })?)
        })
        .await
    }

    async fn swap_chunks(&self, swap: &Swap) -> Result<SwapOutcome, MetadataError> {
        self.retrying(|| self.swap_once(swap)).await
    }

    async fn sweep_candidates(
        &self,
        flush_before_ms: i64,
        small_object: i64,
        limit: u32,
    ) -> Result<Vec<SweepInput>, MetadataError> {
        self.sweep_candidates_now(flush_before_ms, small_object, limit)
            .await
    }

    async fn swap_swept(&self, swap: &SweepSwap) -> Result<SweepOutcome, MetadataError> {
        self.retrying(|| self.swap_swept_once(swap)).await
    }

    async fn release_topic_rows(
        &self,
        topic_id: Uuid,
        limit: u32,
        grace_ms: i64,
    ) -> Result<Released, MetadataError> {
        self.retrying(|| self.release_once(topic_id, limit, grace_ms))
            .await
    }

    async fn expired_objects(&self, limit: u32) -> Result<Vec<ExpiredObject>, MetadataError> {
        self.read(async {
            let found = self
                .fetch(
                    On::Read,
                    &self.life.expired_objects,
                    &[Arg::BigInt(i64::from(limit))],
                )
                .await?;
            Ok(rows::all(&found, |r| {
                Ok(ExpiredObject {
                    id: r.uuid("id")?,
                    key: r.text("object_key")?,
                    size: r.big("size")?,
                })
            })?)
        })
        .await
    }

    async fn forget_objects(&self, list: &[Uuid]) -> Result<u64, MetadataError> {
        if list.is_empty() {
            return Ok(0);
        }
        let set = ids(list.iter().copied());
        let args = [Arg::Rows(&set)];
        self.retrying(|| self.execute(On::Write, &self.life.forget_objects, &args))
            .await
    }

    async fn partition_objects(
        &self,
        topic_id: Uuid,
        from: i32,
        to: i32,
    ) -> Result<Vec<PartitionObjects>, MetadataError> {
        self.read(async {
            let args = [Arg::Uuid(topic_id), Arg::Int(from), Arg::Int(to)];
            let found = self
                .fetch(On::Read, &self.life.partition_objects, &args)
                .await?;
            Ok(rows::all(&found, |r| {
                Ok(PartitionObjects {
                    partition: r.int("partition")?,
                    objects: r.big("objects")?,
                    rows: r.big("index_rows")?,
                })
            })?)
        })
        .await
    }

    async fn storage_report(
        &self,
        topics_every: Option<Duration>,
    ) -> Result<StorageReport, MetadataError> {
        self.read(async {
            let gc = self
                .fetch_optional(On::Read, &self.life.gc_backlog, &[])
                .await?;
            let lag = self
                .fetch_optional(On::Read, &self.life.compaction_lag, &[])
                .await?;
            let topics = match topics_every {
                Some(every) => {
                    self.measure_topic_storage(every).await?;
                    Some(self.fetch(On::Read, &self.life.topic_storage, &[]).await?)
                }
                None => None,
            };
            Ok(StorageReport {
                gc_objects: gc.as_ref().map(|r| r.big("n")).transpose()?.unwrap_or(0),
                gc_bytes: gc
                    .as_ref()
                    .map(|r| r.big("bytes"))
                    .transpose()?
                    .unwrap_or(0),
                compaction_lag_ms: lag.map(|r| r.big("lag")).transpose()?.unwrap_or(0),
                topics: topics
                    .map(|rows| {
                        rows::all(&rows, |r| {
                            Ok(TopicStorage {
                                tenant: r.text("tenant")?,
                                topic: r.text("name")?,
                                bytes: r.big("bytes")?,
                                objects: r.big("objects")?,
                            })
                        })
                    })
                    .transpose()?,
            })
        })
        .await
    }
}
