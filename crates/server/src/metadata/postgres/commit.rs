//! The flush commit on PostgreSQL: one transaction, five round trips
//! (seven with idempotency keys) whatever the number of partitions.

use std::collections::HashMap;

use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{Failure, PostgresMetadata};
use crate::metadata::keys::outcomes_from;
use crate::metadata::{ChunkOutcome, FlushCommit, MetadataError, RecordedKey};
use crate::metrics::ObserveDuration;
use crate::model::object_key;

/// The chunks of a commit as parallel arrays.
pub(super) struct ChunkArrays {
    topic: Vec<Uuid>,
    partition: Vec<i32>,
    count: Vec<i64>,
    max_ts: Vec<i64>,
    offset: Vec<i64>,
    len: Vec<i64>,
}

impl ChunkArrays {
    pub(super) fn of(commit: &FlushCommit) -> Self {
        // Locking and updating in (topic, partition) order keeps concurrent
        // commits from deadlocking.
        let mut chunks = commit.chunks.clone();
        chunks.sort_by_key(|c| (c.topic_id, c.partition));
        ChunkArrays {
            topic: chunks.iter().map(|c| c.topic_id).collect(),
            partition: chunks.iter().map(|c| c.partition).collect(),
            count: chunks.iter().map(|c| i64::from(c.record_count)).collect(),
            max_ts: chunks.iter().map(|c| c.max_timestamp).collect(),
            offset: chunks.iter().map(|c| c.byte_offset as i64).collect(),
            len: chunks.iter().map(|c| i64::from(c.byte_len)).collect(),
        }
    }
}

impl PostgresMetadata {
    pub(super) async fn commit_once(
        &self,
        commit: &FlushCommit,
        a: &ChunkArrays,
    ) -> Result<Vec<ChunkOutcome>, Failure> {
        let mut tx = self.begin().await?;
        self.stmt(1);
        // The row goes in only while the object is young enough by the
        // store's clock (the orphan collector judges age by the same clock).
        let born = crate::metadata::uuid_v7_ms(commit.object_id).unwrap_or(i64::MAX);
        let inserted = sqlx::query(
            "INSERT INTO objects (id, object_key, size, state, writer, created_at) \
             SELECT $1, $2, $3, 'live', $4, $5 \
             WHERE $6::bigint IS NULL OR $7::bigint >= \
             (extract(epoch from clock_timestamp()) * 1000)::bigint - $6::bigint \
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(commit.object_id)
        .bind(object_key(commit.object_id))
        .bind(commit.object_size as i64)
        .bind(&commit.writer)
        .bind(commit.created_at_ms)
        .bind(commit.max_object_age_ms)
        .bind(born)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Committed before (the insert waited for that transaction):
            // answer with the offsets it assigned.
            self.stmt(1);
            let rows = sqlx::query(
                "SELECT topic_id, partition, base_offset FROM batches WHERE object_id = $1",
            )
            .bind(commit.object_id)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                self.stmt(1);
                let exists = sqlx::query("SELECT 1 FROM objects WHERE id = $1")
                    .bind(commit.object_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(Failure::Definite(MetadataError::Unavailable(
                        "the flush took too long to commit (older than half the orphan grace); retry".into(),
                    )));
                }
            }
            self.commit(tx).await?;
            let mut found = HashMap::new();
            for r in &rows {
                found.insert(
                    (
                        r.try_get::<Uuid, _>("topic_id")?,
                        r.try_get::<i32, _>("partition")?,
                    ),
                    r.try_get::<i64, _>("base_offset")?,
                );
            }
            return Ok(outcomes_from(&commit.chunks, &found));
        }

        if !commit.keys.is_empty()
            && let Some(existing) = self.record_keys(&mut tx, commit).await?
        {
            // Dropping the transaction rolls it back: nothing applied.
            return Err(Failure::Definite(MetadataError::KeysExist(existing)));
        }

        self.stmt(2);
        let locking = std::time::Instant::now();
        sqlx::query(
            "SELECT topic_id, partition FROM partitions \
             WHERE (topic_id, partition) IN (SELECT t, n FROM unnest($1::uuid[], $2::int[]) AS k(t, n)) \
             ORDER BY topic_id, partition FOR UPDATE",
        )
        .bind(&a.topic)
        .bind(&a.partition)
        .fetch_all(&mut *tx)
        .await?;
        self.metrics
            .commit_lock_seconds
            .observe_duration(locking.elapsed());
        // Advance the offsets and write the index rows in one statement;
        // chunks whose partitions are gone (topic deleted) match nothing.
        let rows = sqlx::query(
            "WITH c AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::bigint[]) AS x(t, n, cnt, mts, off, len)), \
             u AS (UPDATE partitions AS p SET next_offset = p.next_offset + c.cnt, \
             max_timestamp = GREATEST(p.max_timestamp, c.mts), bytes = p.bytes + c.len \
             FROM c WHERE p.topic_id = c.t AND p.partition = c.n \
             RETURNING p.topic_id, p.partition, p.next_offset, p.max_timestamp, c.cnt, c.off, c.len) \
             INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
             byte_offset, byte_len, record_count, max_timestamp) \
             SELECT topic_id, partition, next_offset - 1, next_offset - cnt, $7, off, len, cnt, max_timestamp FROM u \
             RETURNING topic_id, partition, base_offset",
        )
        .bind(&a.topic)
        .bind(&a.partition)
        .bind(&a.count)
        .bind(&a.max_ts)
        .bind(&a.offset)
        .bind(&a.len)
        .bind(commit.object_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut based = HashMap::with_capacity(rows.len());
        for r in &rows {
            based.insert(
                (
                    r.try_get::<Uuid, _>("topic_id")?,
                    r.try_get::<i32, _>("partition")?,
                ),
                r.try_get::<i64, _>("base_offset")?,
            );
        }
        let outcomes = outcomes_from(&commit.chunks, &based);
        if !commit.keys.is_empty() {
            let (mut tenants, mut topics, mut keys, mut answers) = (vec![], vec![], vec![], vec![]);
            for k in &commit.keys {
                if let Some(r) = crate::metadata::key_response(k, &commit.chunks, &outcomes) {
                    tenants.push(k.tenant.clone());
                    topics.push(k.topic_id);
                    keys.push(k.key.clone());
                    answers.push(r);
                }
            }
            self.stmt(1);
            sqlx::query(
                "UPDATE idempotency_keys AS k SET response = x.r \
                 FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) AS x(tn, t, key, r) \
                 WHERE k.tenant = x.tn AND k.topic_id = x.t AND k.idem_key = x.key",
            )
            .bind(&tenants)
            .bind(&topics)
            .bind(&keys)
            .bind(&answers)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        self.metrics.metadata_commits.inc();
        Ok(outcomes)
    }

    /// Records the commit's keys; returns the ones already live instead
    /// (the caller then abandons the transaction). A key being recorded by
    /// a transaction still running elsewhere makes this wait for it.
    async fn record_keys(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        commit: &FlushCommit,
    ) -> Result<Option<Vec<RecordedKey>>, Failure> {
        let tenants: Vec<String> = commit.keys.iter().map(|k| k.tenant.clone()).collect();
        let topics: Vec<Uuid> = commit.keys.iter().map(|k| k.topic_id).collect();
        let keys: Vec<String> = commit.keys.iter().map(|k| k.key.clone()).collect();
        let prints: Vec<String> = commit.keys.iter().map(|k| k.fingerprint.clone()).collect();
        let created: Vec<i64> = commit.keys.iter().map(|k| k.created_at_ms).collect();
        let expires: Vec<i64> = commit.keys.iter().map(|k| k.expires_at_ms).collect();
        self.stmt(1);
        let inserted: Vec<(String, Uuid, String)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (tenant, topic_id, idem_key, fingerprint, created_at, expires_at) \
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
             ON CONFLICT (tenant, topic_id, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             response = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= excluded.created_at \
             RETURNING tenant, topic_id, idem_key",
        )
        .bind(&tenants)
        .bind(&topics)
        .bind(&keys)
        .bind(&prints)
        .bind(&created)
        .bind(&expires)
        .fetch_all(&mut **tx)
        .await?;
        if inserted.len() == commit.keys.len() {
            return Ok(None);
        }
        // The keys that were not fresh are live records: read them back in
        // one statement.
        let fresh: std::collections::HashSet<_> = inserted.into_iter().collect();
        self.stmt(1);
        let rows: Vec<(Uuid, String, String, Option<String>)> = sqlx::query_as(
            "SELECT k.topic_id, k.idem_key, k.fingerprint, k.response FROM idempotency_keys k \
             JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS x(tn, t, key) \
             ON k.tenant = x.tn AND k.topic_id = x.t AND k.idem_key = x.key",
        )
        .bind(&tenants)
        .bind(&topics)
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?;
        let existing = commit
            .keys
            .iter()
            .filter(|k| !fresh.contains(&(k.tenant.clone(), k.topic_id, k.key.clone())))
            .filter_map(|k| {
                let (_, _, print, response) =
                    rows.iter().find(|r| r.0 == k.topic_id && r.1 == k.key)?;
                Some(RecordedKey::from_row(
                    k.topic_id,
                    &k.key,
                    print.clone(),
                    response.as_deref(),
                ))
            })
            .collect();
        Ok(Some(existing))
    }
}
