//! PostgreSQL (and CockroachDB) metadata store: the cluster's sequencer.
//!
//! A flush commit is one transaction of five round trips whatever the number
//! of partitions in it, every per-chunk value travelling as an array
//! (`unnest`): insert the object row keyed on its id (`ON CONFLICT DO
//! NOTHING`, which waits for any still-running transaction of the same
//! object), lock the touched partition rows in a fixed order, then advance
//! their offsets and insert the index rows in one statement. If the object row
//! already exists the commit happened before: its offsets are read back
//! instead of writing twice. SQLSTATE 40001 and 40P01 are retried with
//! jittered backoff; an error while COMMIT is in flight is reported as
//! ambiguous so the caller re-runs the keyed commit. The SQL stays within
//! what CockroachDB also accepts (no temp tables, no PL/pgSQL, no advisory
//! locks in the commit path, no LISTEN/NOTIFY).

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    BatchRow, ChunkOutcome, FlushCommit, GroupOffsetCommit, GroupOffsetRow, MetadataError,
    MetadataStore,
};
use crate::metrics::Metrics;
use crate::model::{Compression, NewTopic, PartitionKey, PartitionState, TopicMeta, object_key};

/// Transaction attempts before a serialization failure is given up on.
const MAX_ATTEMPTS: u32 = 30;

/// Metadata in a PostgreSQL or CockroachDB database.
#[derive(Debug, Clone)]
pub struct PostgresMetadata {
    pool: PgPool,
    metrics: Arc<Metrics>,
}

/// How one attempt failed.
enum Failure {
    /// Serialization failure or deadlock: run the transaction again.
    Retry(String),
    /// Certainly not applied.
    Definite(MetadataError),
    /// COMMIT was sent and no answer came back.
    Ambiguous(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        classify(e, false)
    }
}

fn classify(e: sqlx::Error, at_commit: bool) -> Failure {
    if let sqlx::Error::Database(db) = &e {
        return match db.code().as_deref() {
            Some("40001" | "40P01") => Failure::Retry(db.message().to_string()),
            Some("23505") => {
                Failure::Definite(MetadataError::AlreadyExists(db.message().to_string()))
            }
            _ => Failure::Definite(MetadataError::Unavailable(e.to_string().into())),
        };
    }
    if at_commit {
        Failure::Ambiguous(e.to_string())
    } else {
        Failure::Definite(MetadataError::Unavailable(e.to_string().into()))
    }
}

fn map_err(e: sqlx::Error) -> MetadataError {
    match classify(e, false) {
        Failure::Definite(m) => m,
        Failure::Retry(m) | Failure::Ambiguous(m) => MetadataError::Unavailable(m.into()),
    }
}

const TOPIC_COLS: &str = "id, tenant, name, partition_count, retention_ms, compression, created_at";

fn topic_from(row: &PgRow) -> Result<TopicMeta, sqlx::Error> {
    let compression: String = row.try_get("compression")?;
    Ok(TopicMeta {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        partition_count: row.try_get("partition_count")?,
        retention_ms: row.try_get("retention_ms")?,
        compression: Compression::parse(&compression).unwrap_or_default(),
        created_at_ms: row.try_get("created_at")?,
    })
}

const BATCH_COLS: &str =
    "base_offset, last_offset, object_id, byte_offset, byte_len, record_count, max_timestamp";

fn batch_from(row: &PgRow) -> Result<BatchRow, sqlx::Error> {
    Ok(BatchRow {
        base_offset: row.try_get("base_offset")?,
        last_offset: row.try_get("last_offset")?,
        object_id: row.try_get("object_id")?,
        byte_offset: row.try_get::<i64, _>("byte_offset")? as u64,
        byte_len: row.try_get::<i64, _>("byte_len")? as u32,
        record_count: row.try_get::<i64, _>("record_count")? as u32,
        max_timestamp: row.try_get("max_timestamp")?,
    })
}

fn partition_from(row: &PgRow) -> Result<PartitionState, sqlx::Error> {
    Ok(PartitionState {
        topic_id: row.try_get("topic_id")?,
        partition: row.try_get("partition")?,
        log_start_offset: row.try_get("log_start_offset")?,
        next_offset: row.try_get("next_offset")?,
        bytes: row.try_get("bytes")?,
    })
}

/// The chunks of a commit as parallel arrays.
struct ChunkArrays {
    topic: Vec<Uuid>,
    partition: Vec<i32>,
    count: Vec<i64>,
    max_ts: Vec<i64>,
    offset: Vec<i64>,
    len: Vec<i64>,
}

impl ChunkArrays {
    fn of(commit: &FlushCommit) -> Self {
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
    /// Connects to `url`, applying migrations unless `migrate` is false.
    pub async fn connect(
        url: &str,
        migrate: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MetadataError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(map_err)?
            .options([("statement_timeout", "15000")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        let store = PostgresMetadata { pool, metrics };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies migrations. On PostgreSQL concurrent agents serialize on an
    /// advisory lock; CockroachDB has none, so there `streamhouse migrate`
    /// must run once before agents start.
    pub async fn migrate(&self) -> Result<(), MetadataError> {
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let mut migrator = sqlx::migrate!("migrations/postgres");
        if version.contains("CockroachDB") {
            migrator.set_locking(false);
        }
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| MetadataError::Unavailable(format!("migration failed: {e}").into()))
    }

    /// Runs a one-column id query over an array of ids.
    async fn ids_among(&self, sql: &'static str, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.stmt(1);
        sqlx::query_scalar(sql)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    fn stmt(&self, n: u64) {
        super::count_statements(&self.metrics, n);
    }

    /// Runs `attempt` until it succeeds or fails for a reason other than a
    /// serialization conflict, backing off with jitter between tries.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, MetadataError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Duration::from_millis(2);
        for n in 1..=MAX_ATTEMPTS {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(Failure::Definite(e)) => {
                    self.metrics.metadata_errors.inc();
                    return Err(e);
                }
                Err(Failure::Ambiguous(m)) => {
                    self.metrics.metadata_errors.inc();
                    return Err(MetadataError::Ambiguous(m.into()));
                }
                Err(Failure::Retry(m)) => {
                    self.metrics.metadata_retries.inc();
                    if n == MAX_ATTEMPTS {
                        return Err(MetadataError::Unavailable(
                            format!("gave up after {MAX_ATTEMPTS} serialization conflicts: {m}")
                                .into(),
                        ));
                    }
                    let jitter = rand::random::<u64>() % (backoff.as_micros() as u64 + 1);
                    tokio::time::sleep(backoff / 2 + Duration::from_micros(jitter)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
            }
        }
        Err(MetadataError::Unavailable("retries exhausted".into()))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, Failure> {
        self.stmt(1);
        Ok(self.pool.begin().await?)
    }

    async fn commit(&self, tx: Transaction<'static, Postgres>) -> Result<(), Failure> {
        self.stmt(1);
        tx.commit().await.map_err(|e| classify(e, true))
    }

    async fn commit_once(
        &self,
        commit: &FlushCommit,
        a: &ChunkArrays,
    ) -> Result<Vec<ChunkOutcome>, Failure> {
        let mut tx = self.begin().await?;
        self.stmt(1);
        // The row goes in only while the object is young enough by the
        // store's clock (the orphan collector judges age by the same clock).
        let born = super::uuid_v7_ms(commit.object_id).unwrap_or(i64::MAX);
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
            return Ok(outcomes(commit, &found));
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
        let outcomes = outcomes(commit, &based);
        if !commit.keys.is_empty() {
            let (mut tenants, mut topics, mut keys, mut answers) = (vec![], vec![], vec![], vec![]);
            for k in &commit.keys {
                if let Some(r) = super::key_response(k, &commit.chunks, &outcomes) {
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
    ) -> Result<Option<Vec<super::RecordedKey>>, Failure> {
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
        let fresh: std::collections::HashSet<_> = inserted.into_iter().collect();
        let mut existing = Vec::new();
        for k in &commit.keys {
            if fresh.contains(&(k.tenant.clone(), k.topic_id, k.key.clone())) {
                continue;
            }
            self.stmt(1);
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT fingerprint, response FROM idempotency_keys WHERE tenant = $1 AND topic_id = $2 AND idem_key = $3",
            )
            .bind(&k.tenant)
            .bind(k.topic_id)
            .bind(&k.key)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((fingerprint, response)) = row {
                existing.push(super::RecordedKey {
                    topic_id: k.topic_id,
                    key: k.key.clone(),
                    fingerprint,
                    offsets: super::parse_response(response.as_deref().unwrap_or("[]")),
                });
            }
        }
        Ok(Some(existing))
    }
}

fn outcomes(commit: &FlushCommit, base: &HashMap<(Uuid, i32), i64>) -> Vec<ChunkOutcome> {
    commit
        .chunks
        .iter()
        .map(|c| match base.get(&(c.topic_id, c.partition)) {
            Some(&base_offset) => ChunkOutcome::Committed { base_offset },
            None => ChunkOutcome::TopicGone,
        })
        .collect()
}

#[async_trait]
impl MetadataStore for PostgresMetadata {
    async fn create_topic(&self, t: &NewTopic, now_ms: i64) -> Result<TopicMeta, MetadataError> {
        let meta = TopicMeta {
            id: Uuid::now_v7(),
            tenant: t.tenant.clone(),
            name: t.name.clone(),
            partition_count: t.partition_count,
            retention_ms: t.retention_ms,
            compression: t.compression,
            created_at_ms: now_ms,
        };
        self.retrying(|| async {
            let mut tx = self.begin().await?;
            self.stmt(2);
            sqlx::query(
                "INSERT INTO topics (id, tenant, name, partition_count, retention_ms, compression, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(meta.id)
            .bind(&meta.tenant)
            .bind(&meta.name)
            .bind(meta.partition_count)
            .bind(meta.retention_ms)
            .bind(meta.compression.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| match classify(e, false) {
                Failure::Definite(MetadataError::AlreadyExists(_)) => {
                    Failure::Definite(MetadataError::AlreadyExists(format!("topic {}", t.name)))
                }
                other => other,
            })?;
            sqlx::query(
                "INSERT INTO partitions (topic_id, partition) \
                 SELECT $1, p FROM generate_series(0, $2 - 1) AS s(p)",
            )
            .bind(meta.id)
            .bind(meta.partition_count)
            .execute(&mut *tx)
            .await?;
            self.commit(tx).await
        })
        .await?;
        Ok(meta)
    }

    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.stmt(1);
        let row = sqlx::query(&format!(
            "SELECT {TOPIC_COLS} FROM topics WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(topic_from).transpose().map_err(map_err)
    }

    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(&format!(
            "SELECT {TOPIC_COLS} FROM topics WHERE tenant = $1 AND deleted_at IS NULL AND name > $2 \
             ORDER BY name LIMIT $3"
        ))
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(topic_from)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.retrying(|| async {
            let mut tx = self.begin().await?;
            self.stmt(1);
            let row = sqlx::query(&format!(
                "UPDATE topics SET deleted_at = $3 WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL \
                 RETURNING {TOPIC_COLS}"
            ))
            .bind(tenant)
            .bind(name)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let topic = topic_from(&row)?;
            // With its partitions gone, no in-flight flush can commit into it.
            for table in ["partitions", "batches", "group_offsets"] {
                self.stmt(1);
                sqlx::query(&format!("DELETE FROM {table} WHERE topic_id = $1"))
                    .bind(topic.id)
                    .execute(&mut *tx)
                    .await?;
            }
            self.stmt(1);
            sqlx::query("UPDATE epochs SET value = value + 1 WHERE name = 'topics'")
                .execute(&mut *tx)
                .await?;
            self.commit(tx).await?;
            Ok(Some(topic))
        })
        .await
    }

    async fn partitions(
        &self,
        topic_id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(
            "SELECT topic_id, partition, log_start_offset, next_offset, bytes FROM partitions \
             WHERE topic_id = $1 AND partition >= $2 ORDER BY partition LIMIT $3",
        )
        .bind(topic_id)
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(partition_from)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let topics: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let parts: Vec<i32> = keys.iter().map(|k| k.1).collect();
        self.stmt(1);
        let rows = sqlx::query(
            "SELECT p.topic_id, p.partition, p.log_start_offset, p.next_offset, p.bytes \
             FROM partitions p JOIN unnest($1::uuid[], $2::int[]) AS k(t, n) \
             ON p.topic_id = k.t AND p.partition = k.n",
        )
        .bind(&topics)
        .bind(&parts)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(partition_from)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        let arrays = ChunkArrays::of(commit);
        super::counting_commit(
            &self.metrics,
            self.retrying(|| self.commit_once(commit, &arrays)),
        )
        .await
    }

    async fn find_batches(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLS} FROM batches WHERE topic_id = $1 AND partition = $2 \
             AND last_offset >= $3 ORDER BY last_offset LIMIT $4"
        ))
        .bind(topic_id)
        .bind(partition)
        .bind(offset)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(batch_from)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn find_batch_by_time(
        &self,
        topic_id: Uuid,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<BatchRow>, MetadataError> {
        self.stmt(1);
        let row = sqlx::query(&format!(
            "SELECT {BATCH_COLS} FROM batches WHERE topic_id = $1 AND partition = $2 \
             AND max_timestamp >= $3 ORDER BY max_timestamp, last_offset LIMIT 1"
        ))
        .bind(topic_id)
        .bind(partition)
        .bind(timestamp_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(batch_from).transpose().map_err(map_err)
    }

    async fn commit_group_offsets(
        &self,
        tenant: &str,
        group: &str,
        offsets: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        let topics: Vec<Uuid> = offsets.iter().map(|o| o.topic_id).collect();
        let parts: Vec<i32> = offsets.iter().map(|o| o.partition).collect();
        let offs: Vec<i64> = offsets.iter().map(|o| o.offset).collect();
        let metas: Vec<Option<String>> = offsets.iter().map(|o| o.metadata.clone()).collect();
        self.retrying(|| async {
            self.stmt(1);
            sqlx::query(
                "INSERT INTO group_offsets (tenant, group_id, topic_id, partition, committed_offset, metadata, updated_at) \
                 SELECT $1, $2, t, n, o, m, $7 FROM unnest($3::uuid[], $4::int[], $5::bigint[], $6::text[]) AS x(t, n, o, m) \
                 ON CONFLICT (tenant, group_id, topic_id, partition) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(group)
            .bind(&topics)
            .bind(&parts)
            .bind(&offs)
            .bind(&metas)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn group_offsets(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<Vec<GroupOffsetRow>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(
            "SELECT t.name, g.topic_id, g.partition, g.committed_offset, g.metadata, g.updated_at \
             FROM group_offsets g JOIN topics t ON t.id = g.topic_id AND t.deleted_at IS NULL \
             WHERE g.tenant = $1 AND g.group_id = $2 ORDER BY t.name, g.partition",
        )
        .bind(tenant)
        .bind(group)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(GroupOffsetRow {
                    topic: row.try_get("name")?,
                    topic_id: row.try_get("topic_id")?,
                    partition: row.try_get("partition")?,
                    offset: row.try_get("committed_offset")?,
                    metadata: row.try_get("metadata")?,
                    updated_at_ms: row.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }

    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.stmt(1);
        sqlx::query_scalar("SELECT value FROM epochs WHERE name = 'topics'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among(
            "SELECT id FROM topics WHERE id = ANY($1) AND deleted_at IS NULL",
            ids,
        )
        .await
    }

    async fn lookup_key(
        &self,
        tenant: &str,
        topic_id: Uuid,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<super::RecordedKey>, MetadataError> {
        self.stmt(1);
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT fingerprint, response FROM idempotency_keys \
             WHERE tenant = $1 AND topic_id = $2 AND idem_key = $3 AND expires_at > $4",
        )
        .bind(tenant)
        .bind(topic_id)
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(fingerprint, response)| super::RecordedKey {
            topic_id,
            key: key.to_string(),
            fingerprint,
            offsets: super::parse_response(response.as_deref().unwrap_or("[]")),
        }))
    }

    async fn expire_keys(&self, now_ms: i64, limit: u32) -> Result<u64, MetadataError> {
        self.retrying(|| async {
            self.stmt(1);
            let done = sqlx::query(
                "DELETE FROM idempotency_keys WHERE (tenant, topic_id, idem_key) IN \
                 (SELECT tenant, topic_id, idem_key FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(now_ms)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(done)
        })
        .await
    }

    async fn now_ms(&self) -> Result<i64, MetadataError> {
        self.stmt(1);
        sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among("SELECT id FROM objects WHERE id = ANY($1)", ids)
            .await
    }
}
