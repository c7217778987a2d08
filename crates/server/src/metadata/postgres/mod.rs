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
//! ambiguous so the caller re-runs the keyed commit (see `commit`). With
//! idempotency keys the commit also records them, and abandons itself when
//! one is already recorded. The SQL stays within
//! what CockroachDB also accepts (no temp tables, no PL/pgSQL, no advisory
//! locks in the commit path, no LISTEN/NOTIFY).

mod commit;

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
use crate::model::{Compression, NewTopic, PartitionKey, PartitionState, TopicMeta};

/// Transaction attempts before a serialization failure is given up on.
const MAX_ATTEMPTS: u32 = 30;

/// Metadata in a PostgreSQL or CockroachDB database.
#[derive(Debug, Clone)]
pub struct PostgresMetadata {
    pool: PgPool,
    metrics: Arc<Metrics>,
}

/// How one attempt failed.
pub(super) enum Failure {
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
        let arrays = commit::ChunkArrays::of(commit);
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
        Ok(row.map(|(fingerprint, response)| {
            super::RecordedKey::from_row(topic_id, key, fingerprint, response.as_deref())
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
