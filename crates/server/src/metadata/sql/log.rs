//! The log's reads: partition states, the offset index, known objects and
//! the store's clock. The flush commit is in `commit`.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Arg, Column, Dialect, On, RowSet, SqlRow, SqlStore, rows};
use crate::metadata::{BatchRow, ChunkOutcome, FlushCommit, Log, MetadataError};
use crate::model::{PartitionKey, PartitionState};

#[async_trait]
impl<D: Dialect> Log for SqlStore<D> {
    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        self.commit_flush(commit).await
    }

    async fn partitions(
        &self,
        topic_id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Uuid(topic_id),
                Arg::Int(from),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self.fetch(On::Read, &self.sql.partitions, &args).await?;
            Ok(rows::all(&found, rows::partition)?)
        })
        .await
    }

    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let set = RowSet {
            columns: vec![
                Column::Uuid(keys.iter().map(|k| k.0).collect()),
                Column::Int(keys.iter().map(|k| k.1).collect()),
            ],
        };
        self.read(async {
            let found = self
                .fetch(On::Read, &self.sql.partition_states, &[Arg::Rows(&set)])
                .await?;
            Ok(rows::all(&found, rows::partition)?)
        })
        .await
    }

    async fn find_batches(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Uuid(topic_id),
                Arg::Int(partition),
                Arg::BigInt(offset),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self.fetch(On::Read, &self.sql.find_batches, &args).await?;
            Ok(rows::all(&found, rows::batch)?)
        })
        .await
    }

    async fn find_batches_by_time(
        &self,
        keys: &[PartitionKey],
        timestamp_ms: i64,
    ) -> Result<Vec<(PartitionKey, BatchRow)>, MetadataError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let set = RowSet {
            columns: vec![
                Column::Uuid(keys.iter().map(|k| k.0).collect()),
                Column::Int(keys.iter().map(|k| k.1).collect()),
            ],
        };
        self.read(async {
            let args = [Arg::BigInt(timestamp_ms), Arg::Rows(&set)];
            let found = self
                .fetch(On::Read, &self.sql.find_batches_by_time, &args)
                .await?;
            Ok(rows::all(&found, |r| {
                Ok(((r.uuid("topic_id")?, r.int("partition")?), rows::batch(r)?))
            })?)
        })
        .await
    }

    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among(&self.sql.known_objects, ids).await
    }

    async fn now_ms(&self) -> Result<i64, MetadataError> {
        self.read(async {
            let row = self.fetch_optional(On::Read, &self.sql.now_ms, &[]).await?;
            let row = row.ok_or_else(|| {
                MetadataError::Unavailable("the clock query returned nothing".into())
            })?;
            Ok(row.big("now_ms")?)
        })
        .await
    }
}
