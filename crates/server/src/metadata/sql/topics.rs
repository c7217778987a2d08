//! Topics: create, look up, list, configure, delete, and the deletion epoch.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Arg, Column, Dialect, Failure, On, RowSet, SqlRow, SqlStore, rows};
use crate::metadata::{MetadataError, Topics};
use crate::model::{NewTopic, TopicMeta, TopicSettings};

#[async_trait]
impl<D: Dialect> Topics for SqlStore<D> {
    async fn create_topic(&self, t: &NewTopic, now_ms: i64) -> Result<TopicMeta, MetadataError> {
        let meta = TopicMeta {
            id: Uuid::now_v7(),
            tenant: t.tenant.clone(),
            name: t.name.clone(),
            partition_count: t.partition_count,
            retention_ms: t.settings.retention_ms,
            retention_bytes: t.settings.retention_bytes,
            cleanup_policy: t.settings.cleanup_policy,
            delete_retention_ms: t.settings.delete_retention_ms,
            compression: t.settings.compression,
            created_at_ms: now_ms,
        };
        let numbers = RowSet {
            columns: vec![Column::Int((0..meta.partition_count).collect())],
        };
        self.retrying(|| async {
            let mut tx = self.begin().await?;
            let topic = [
                Arg::Uuid(meta.id),
                Arg::Text(&meta.tenant),
                Arg::Text(&meta.name),
                Arg::Int(meta.partition_count),
                Arg::OptBigInt(meta.retention_ms),
                Arg::Text(meta.compression.as_str()),
                Arg::BigInt(now_ms),
                Arg::OptBigInt(meta.retention_bytes),
                Arg::Text(meta.cleanup_policy.as_str()),
                Arg::BigInt(meta.delete_retention_ms),
            ];
            self.execute(On::Tx(&mut tx), &self.sql.insert_topic, &topic)
                .await
                .map_err(|e| match e {
                    Failure::Definite(MetadataError::AlreadyExists(_)) => {
                        Failure::Definite(MetadataError::AlreadyExists(format!("topic {}", t.name)))
                    }
                    other => other,
                })?;
            let parts = [Arg::Uuid(meta.id), Arg::Rows(&numbers)];
            self.execute(On::Tx(&mut tx), &self.sql.insert_partitions, &parts)
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
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.read(async {
            let args = [Arg::Text(tenant), Arg::Text(name)];
            let row = self
                .fetch_optional(On::Read, &self.sql.get_topic, &args)
                .await?;
            Ok(row.as_ref().map(rows::topic).transpose()?.map(Arc::new))
        })
        .await
    }

    async fn configure_topic(
        &self,
        tenant: &str,
        name: &str,
        settings: &TopicSettings,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        let args = [
            Arg::Text(tenant),
            Arg::Text(name),
            Arg::OptBigInt(settings.retention_ms),
            Arg::Text(settings.compression.as_str()),
            Arg::OptBigInt(settings.retention_bytes),
            Arg::Text(settings.cleanup_policy.as_str()),
            Arg::BigInt(settings.delete_retention_ms),
        ];
        self.retrying(|| async {
            let row = self
                .fetch_optional(On::Write, &self.sql.configure_topic, &args)
                .await?;
            Ok(row.as_ref().map(rows::topic).transpose()?)
        })
        .await
    }

    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Text(tenant),
                Arg::Text(after.unwrap_or("")),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self.fetch(On::Read, &self.sql.list_topics, &args).await?;
            Ok(rows::all(&found, rows::topic)?)
        })
        .await
    }

    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        self.retrying(|| async {
            let mut tx = self.begin().await?;
            let args = [Arg::Text(tenant), Arg::Text(name), Arg::BigInt(now_ms)];
            let row = self
                .fetch_optional(On::Tx(&mut tx), &self.sql.delete_topic, &args)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let topic = rows::topic(&row)?;
            for sql in &self.sql.delete_topic_rows {
                self.execute(On::Tx(&mut tx), sql, &[Arg::Uuid(topic.id)])
                    .await?;
            }
            self.execute(On::Tx(&mut tx), &self.sql.bump_topic_epoch, &[])
                .await?;
            self.commit(tx).await?;
            Ok(Some(topic))
        })
        .await
    }

    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        self.read(async {
            let row = self
                .fetch_optional(On::Read, &self.sql.topic_epoch, &[])
                .await?;
            let row = row.ok_or_else(|| {
                MetadataError::Unavailable("the epochs table has no topics row".into())
            })?;
            Ok(row.big("value")?)
        })
        .await
    }

    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        self.ids_among(&self.sql.live_topics, ids).await
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Runs a one-column id query over a set of ids.
    pub(super) async fn ids_among(
        &self,
        sql: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Uuid>, MetadataError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let set = RowSet {
            columns: vec![Column::Uuid(ids.to_vec())],
        };
        self.read(async {
            let found = self.fetch(On::Read, sql, &[Arg::Rows(&set)]).await?;
            Ok(rows::all(&found, |r| r.uuid("id"))?)
        })
        .await
    }
}
