//! SQLite metadata store: the embedded mode's sequencer.
//!
//! SQLite allows one writer, so every write goes through a pool of exactly
//! one connection and opens its transaction with `BEGIN IMMEDIATE`: writers
//! queue in the pool instead of failing with a busy snapshot. Reads use a
//! separate pool; WAL lets them run beside the writer. `synchronous=FULL`
//! makes a returned COMMIT durable. Batch-shaped calls pass their rows as
//! one JSON array (`json_each`), so a flush commit is six statements
//! whatever the number of partitions in it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{
    BatchRow, ChunkOutcome, FlushCommit, GroupOffsetCommit, GroupOffsetRow, MetadataError,
    MetadataStore,
};
use crate::metrics::Metrics;
use crate::model::{Compression, NewTopic, PartitionKey, PartitionState, TopicMeta, object_key};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Metadata in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteMetadata {
    writer: SqlitePool,
    reader: SqlitePool,
    metrics: Arc<Metrics>,
}

fn map_err(e: sqlx::Error) -> MetadataError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return MetadataError::AlreadyExists(db.message().to_string());
    }
    MetadataError::Unavailable(e.to_string().into())
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid, MetadataError> {
    let s: String = row.try_get(col).map_err(map_err)?;
    Uuid::parse_str(&s)
        .map_err(|e| MetadataError::Unavailable(format!("bad uuid in {col}: {e}").into()))
}

const TOPIC_COLS: &str = "id, tenant, name, partition_count, retention_ms, compression, created_at";

fn topic_from(row: &SqliteRow) -> Result<TopicMeta, MetadataError> {
    let compression: String = row.try_get("compression").map_err(map_err)?;
    Ok(TopicMeta {
        id: uuid_col(row, "id")?,
        tenant: row.try_get("tenant").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        partition_count: row.try_get("partition_count").map_err(map_err)?,
        retention_ms: row.try_get("retention_ms").map_err(map_err)?,
        compression: Compression::parse(&compression).unwrap_or_default(),
        created_at_ms: row.try_get("created_at").map_err(map_err)?,
    })
}

const BATCH_COLS: &str =
    "base_offset, last_offset, object_id, byte_offset, byte_len, record_count, max_timestamp";

fn batch_from(row: &SqliteRow) -> Result<BatchRow, MetadataError> {
    Ok(BatchRow {
        base_offset: row.try_get("base_offset").map_err(map_err)?,
        last_offset: row.try_get("last_offset").map_err(map_err)?,
        object_id: uuid_col(row, "object_id")?,
        byte_offset: row.try_get::<i64, _>("byte_offset").map_err(map_err)? as u64,
        byte_len: row.try_get::<i64, _>("byte_len").map_err(map_err)? as u32,
        record_count: row.try_get::<i64, _>("record_count").map_err(map_err)? as u32,
        max_timestamp: row.try_get("max_timestamp").map_err(map_err)?,
    })
}

fn partition_from(row: &SqliteRow) -> Result<PartitionState, MetadataError> {
    Ok(PartitionState {
        topic_id: uuid_col(row, "topic_id")?,
        partition: row.try_get("partition").map_err(map_err)?,
        log_start_offset: row.try_get("log_start_offset").map_err(map_err)?,
        next_offset: row.try_get("next_offset").map_err(map_err)?,
        bytes: row.try_get("bytes").map_err(map_err)?,
    })
}

/// The chunk rows of a commit as a JSON array for `json_each`:
/// `[topic_id, partition, record_count, max_timestamp, byte_offset, byte_len]`.
const CHUNKS_CTE: &str = "SELECT value->>0 AS t, value->>1 AS p, value->>2 AS cnt, \
     value->>3 AS mts, value->>4 AS off, value->>5 AS len FROM json_each(?1)";

impl SqliteMetadata {
    /// Opens (creating) the database at `path` and applies migrations.
    pub async fn open(path: &Path, metrics: Arc<Metrics>) -> Result<Self, MetadataError> {
        let opts = SqliteConnectOptions::new().filename(path);
        Self::open_with(opts, metrics).await
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn open_url(url: &str, metrics: Arc<Metrics>) -> Result<Self, MetadataError> {
        let opts = SqliteConnectOptions::from_str(url).map_err(map_err)?;
        Self::open_with(opts, metrics).await
    }

    async fn open_with(
        opts: SqliteConnectOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MetadataError> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| MetadataError::Unavailable(format!("migration failed: {e}").into()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(SqliteMetadata {
            writer,
            reader,
            metrics,
        })
    }

    /// Runs a one-column id query over a JSON array of ids.
    async fn ids_among(&self, sql: &'static str, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let arr: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.stmt(1);
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .bind(serde_json::to_string(&arr).unwrap_or_default())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(rows
            .iter()
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect())
    }

    fn stmt(&self, n: u64) {
        super::count_statements(&self.metrics, n);
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, MetadataError> {
        self.stmt(1);
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    async fn commit(&self, tx: Transaction<'static, Sqlite>) -> Result<(), MetadataError> {
        self.stmt(1);
        // A failed COMMIT may or may not have reached the disk.
        tx.commit()
            .await
            .map_err(|e| MetadataError::Ambiguous(e.to_string().into()))
    }

    async fn read_back(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        commit: &FlushCommit,
    ) -> Result<Vec<ChunkOutcome>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(
            "SELECT topic_id, partition, base_offset FROM batches WHERE object_id = ?1",
        )
        .bind(commit.object_id.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        let mut found = std::collections::HashMap::new();
        for row in &rows {
            let key = (
                uuid_col(row, "topic_id")?,
                row.try_get::<i32, _>("partition").map_err(map_err)?,
            );
            found.insert(key, row.try_get::<i64, _>("base_offset").map_err(map_err)?);
        }
        Ok(super::keys::outcomes_from(&commit.chunks, &found))
    }

    async fn commit_flush_once(
        &self,
        commit: &FlushCommit,
    ) -> Result<Vec<ChunkOutcome>, MetadataError> {
        let chunks: Vec<_> = commit
            .chunks
            .iter()
            .map(|c| {
                json!([
                    c.topic_id.to_string(),
                    c.partition,
                    c.record_count,
                    c.max_timestamp,
                    c.byte_offset,
                    c.byte_len
                ])
            })
            .collect();
        let chunks = serde_json::Value::Array(chunks).to_string();
        let object_id = commit.object_id.to_string();

        let mut tx = self.begin().await?;
        self.stmt(1);
        let exists = sqlx::query("SELECT 1 FROM objects WHERE id = ?1")
            .bind(&object_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_some() {
            let outcomes = self.read_back(&mut tx, commit).await?;
            self.commit(tx).await?;
            return Ok(outcomes);
        }
        // SQLite's clock is this process's clock.
        if let (Some(max), Some(born)) = (
            commit.max_object_age_ms,
            super::uuid_v7_ms(commit.object_id),
        ) && now_ms() - born > max
        {
            return Err(MetadataError::Unavailable(
                "the flush took too long to commit (older than half the orphan grace); retry"
                    .into(),
            ));
        }

        self.stmt(1);
        sqlx::query(
            "INSERT INTO objects (id, object_key, size, state, writer, created_at) \
             VALUES (?1, ?2, ?3, 'live', ?4, ?5)",
        )
        .bind(&object_id)
        .bind(object_key(commit.object_id))
        .bind(commit.object_size as i64)
        .bind(&commit.writer)
        .bind(commit.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;

        if !commit.keys.is_empty()
            && let Some(existing) = self.record_keys(&mut tx, commit).await?
        {
            // Dropping the transaction rolls it back: nothing applied.
            return Err(MetadataError::KeysExist(existing));
        }

        self.stmt(2);
        let rows = sqlx::query(&format!(
            "UPDATE partitions SET next_offset = next_offset + c.cnt, \
             max_timestamp = max(max_timestamp, c.mts), bytes = bytes + c.len \
             FROM ({CHUNKS_CTE}) AS c \
             WHERE partitions.topic_id = c.t AND partitions.partition = c.p \
             RETURNING topic_id, partition, next_offset"
        ))
        .bind(&chunks)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;

        sqlx::query(&format!(
            "INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
             byte_offset, byte_len, record_count, max_timestamp) \
             SELECT c.t, c.p, p.next_offset - 1, p.next_offset - c.cnt, ?2, c.off, c.len, c.cnt, \
             p.max_timestamp FROM ({CHUNKS_CTE}) AS c \
             JOIN partitions p ON p.topic_id = c.t AND p.partition = c.p"
        ))
        .bind(&chunks)
        .bind(&object_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;

        let mut bases = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let key = (
                uuid_col(row, "topic_id")?,
                row.try_get::<i32, _>("partition").map_err(map_err)?,
            );
            let next: i64 = row.try_get("next_offset").map_err(map_err)?;
            let count = commit
                .chunks
                .iter()
                .find(|c| (c.topic_id, c.partition) == key)
                .map_or(0, |c| i64::from(c.record_count));
            bases.insert(key, next - count);
        }
        let outcomes = super::keys::outcomes_from(&commit.chunks, &bases);
        if !commit.keys.is_empty() {
            let answers: Vec<_> = commit
                .keys
                .iter()
                .filter_map(|k| {
                    let r = super::key_response(k, &commit.chunks, &outcomes)?;
                    Some(json!([k.tenant, k.topic_id.to_string(), k.key, r]))
                })
                .collect();
            self.stmt(1);
            sqlx::query(
                "UPDATE idempotency_keys SET response = j.value->>3 FROM json_each(?1) AS j \
                 WHERE idempotency_keys.tenant = j.value->>0 AND idempotency_keys.topic_id = j.value->>1 \
                 AND idempotency_keys.idem_key = j.value->>2",
            )
            .bind(serde_json::Value::Array(answers).to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        self.commit(tx).await?;
        self.metrics.metadata_commits.inc();
        Ok(outcomes)
    }

    /// Records the commit's keys; returns the ones already live instead
    /// (the caller then abandons the transaction).
    async fn record_keys(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        commit: &FlushCommit,
    ) -> Result<Option<Vec<super::RecordedKey>>, MetadataError> {
        let rows: Vec<_> = commit
            .keys
            .iter()
            .map(|k| {
                json!([
                    k.tenant,
                    k.topic_id.to_string(),
                    k.key,
                    k.fingerprint,
                    k.created_at_ms,
                    k.expires_at_ms
                ])
            })
            .collect();
        self.stmt(1);
        let inserted: Vec<(String, String, String)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (tenant, topic_id, idem_key, fingerprint, created_at, expires_at) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?1) WHERE true \
             ON CONFLICT (tenant, topic_id, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             response = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= excluded.created_at \
             RETURNING tenant, topic_id, idem_key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        if inserted.len() == commit.keys.len() {
            return Ok(None);
        }
        // The keys that were not fresh are live records: read them back in
        // one statement.
        let fresh: std::collections::HashSet<_> = inserted.into_iter().collect();
        let wanted: Vec<_> = commit
            .keys
            .iter()
            .map(|k| json!([k.tenant, k.topic_id.to_string(), k.key]))
            .collect();
        self.stmt(1);
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT k.topic_id, k.idem_key, k.fingerprint, k.response FROM idempotency_keys k \
             JOIN json_each(?1) AS j ON k.tenant = j.value->>0 AND k.topic_id = j.value->>1 \
             AND k.idem_key = j.value->>2",
        )
        .bind(serde_json::Value::Array(wanted).to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        let existing = commit
            .keys
            .iter()
            .filter(|k| !fresh.contains(&(k.tenant.clone(), k.topic_id.to_string(), k.key.clone())))
            .filter_map(|k| {
                let topic = k.topic_id.to_string();
                let (_, _, print, response) = rows.iter().find(|r| r.0 == topic && r.1 == k.key)?;
                Some(super::RecordedKey::from_row(
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

#[async_trait]
impl MetadataStore for SqliteMetadata {
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
        let mut tx = self.begin().await?;
        self.stmt(2);
        sqlx::query(
            "INSERT INTO topics (id, tenant, name, partition_count, retention_ms, compression, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(meta.id.to_string())
        .bind(&meta.tenant)
        .bind(&meta.name)
        .bind(meta.partition_count)
        .bind(meta.retention_ms)
        .bind(meta.compression.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| match map_err(e) {
            MetadataError::AlreadyExists(_) => MetadataError::AlreadyExists(format!("topic {}", t.name)),
            other => other,
        })?;
        sqlx::query(
            "WITH RECURSIVE seq(p) AS (SELECT 0 UNION ALL SELECT p + 1 FROM seq WHERE p + 1 < ?2) \
             INSERT INTO partitions (topic_id, partition) SELECT ?1, p FROM seq",
        )
        .bind(meta.id.to_string())
        .bind(meta.partition_count)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(meta)
    }

    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.stmt(1);
        let row = sqlx::query(&format!(
            "SELECT {TOPIC_COLS} FROM topics WHERE tenant = ?1 AND name = ?2 AND deleted_at IS NULL"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(topic_from).transpose()
    }

    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        self.stmt(1);
        let rows = sqlx::query(&format!(
            "SELECT {TOPIC_COLS} FROM topics WHERE tenant = ?1 AND deleted_at IS NULL AND name > ?2 \
             ORDER BY name LIMIT ?3"
        ))
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(topic_from).collect()
    }

    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        let mut tx = self.begin().await?;
        self.stmt(1);
        let row = sqlx::query(&format!(
            "UPDATE topics SET deleted_at = ?3 WHERE tenant = ?1 AND name = ?2 AND deleted_at IS NULL \
             RETURNING {TOPIC_COLS}"
        ))
        .bind(tenant)
        .bind(name)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let topic = topic_from(&row)?;
        // With its partitions gone, no in-flight flush can commit into it.
        for table in ["partitions", "batches", "group_offsets"] {
            self.stmt(1);
            sqlx::query(&format!("DELETE FROM {table} WHERE topic_id = ?1"))
                .bind(topic.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        self.stmt(1);
        sqlx::query("UPDATE epochs SET value = value + 1 WHERE name = 'topics'")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(Some(topic))
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
             WHERE topic_id = ?1 AND partition >= ?2 ORDER BY partition LIMIT ?3",
        )
        .bind(topic_id.to_string())
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(partition_from).collect()
    }

    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let arr: Vec<_> = keys
            .iter()
            .map(|(t, p)| json!([t.to_string(), p]))
            .collect();
        self.stmt(1);
        let rows = sqlx::query(
            "SELECT p.topic_id, p.partition, p.log_start_offset, p.next_offset, p.bytes \
             FROM (SELECT value->>0 AS t, value->>1 AS n FROM json_each(?1)) AS k \
             JOIN partitions p ON p.topic_id = k.t AND p.partition = k.n",
        )
        .bind(serde_json::Value::Array(arr).to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(partition_from).collect()
    }

    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        super::counting_commit(&self.metrics, self.commit_flush_once(commit)).await
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
            "SELECT {BATCH_COLS} FROM batches WHERE topic_id = ?1 AND partition = ?2 \
             AND last_offset >= ?3 ORDER BY last_offset LIMIT ?4"
        ))
        .bind(topic_id.to_string())
        .bind(partition)
        .bind(offset)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(batch_from).collect()
    }

    async fn find_batch_by_time(
        &self,
        topic_id: Uuid,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<BatchRow>, MetadataError> {
        self.stmt(1);
        let row = sqlx::query(&format!(
            "SELECT {BATCH_COLS} FROM batches WHERE topic_id = ?1 AND partition = ?2 \
             AND max_timestamp >= ?3 ORDER BY max_timestamp, last_offset LIMIT 1"
        ))
        .bind(topic_id.to_string())
        .bind(partition)
        .bind(timestamp_ms)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(batch_from).transpose()
    }

    async fn commit_group_offsets(
        &self,
        tenant: &str,
        group: &str,
        offsets: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        let arr: Vec<_> = offsets
            .iter()
            .map(|o| json!([o.topic_id.to_string(), o.partition, o.offset, o.metadata]))
            .collect();
        let mut tx = self.begin().await?;
        self.stmt(1);
        sqlx::query(
            "INSERT INTO group_offsets (tenant, group_id, topic_id, partition, committed_offset, metadata, updated_at) \
             SELECT ?1, ?2, value->>0, value->>1, value->>2, value->>3, ?4 FROM json_each(?3) WHERE true \
             ON CONFLICT (tenant, group_id, topic_id, partition) DO UPDATE SET \
             committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(group)
        .bind(serde_json::Value::Array(arr).to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await
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
             WHERE g.tenant = ?1 AND g.group_id = ?2 ORDER BY t.name, g.partition",
        )
        .bind(tenant)
        .bind(group)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(GroupOffsetRow {
                    topic: row.try_get("name").map_err(map_err)?,
                    topic_id: uuid_col(row, "topic_id")?,
                    partition: row.try_get("partition").map_err(map_err)?,
                    offset: row.try_get("committed_offset").map_err(map_err)?,
                    metadata: row.try_get("metadata").map_err(map_err)?,
                    updated_at_ms: row.try_get("updated_at").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.stmt(1);
        sqlx::query_scalar("SELECT value FROM epochs WHERE name = 'topics'")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)
    }

    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among(
            "SELECT id FROM topics WHERE deleted_at IS NULL AND id IN (SELECT value FROM json_each(?1))",
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
             WHERE tenant = ?1 AND topic_id = ?2 AND idem_key = ?3 AND expires_at > ?4",
        )
        .bind(tenant)
        .bind(topic_id.to_string())
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(fingerprint, response)| {
            super::RecordedKey::from_row(topic_id, key, fingerprint, response.as_deref())
        }))
    }

    async fn expire_keys(&self, now_ms: i64, limit: u32) -> Result<u64, MetadataError> {
        let mut tx = self.begin().await?;
        self.stmt(1);
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (tenant, topic_id, idem_key) IN \
             (SELECT tenant, topic_id, idem_key FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        self.commit(tx).await?;
        Ok(done)
    }

    async fn now_ms(&self) -> Result<i64, MetadataError> {
        Ok(now_ms())
    }

    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among(
            "SELECT id FROM objects WHERE id IN (SELECT value FROM json_each(?1))",
            ids,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let store = SqliteMetadata::open(&dir.path().join("m.db"), metrics)
            .await
            .unwrap();
        crate::testing::conformance::run(&store).await;
    }
}
