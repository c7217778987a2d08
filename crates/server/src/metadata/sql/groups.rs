//! Consumer-group offsets.

use async_trait::async_trait;

use super::{Arg, Column, Dialect, On, RowSet, SqlRow, SqlStore, rows};
use crate::metadata::{GroupOffsetCommit, GroupOffsetRow, GroupOffsets, MetadataError};

#[async_trait]
impl<D: Dialect> GroupOffsets for SqlStore<D> {
    async fn commit_group_offsets(
        &self,
        tenant: &str,
        group: &str,
        offsets: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        let set = RowSet {
            columns: vec![
                Column::Uuid(offsets.iter().map(|o| o.topic_id).collect()),
                Column::Int(offsets.iter().map(|o| o.partition).collect()),
                Column::BigInt(offsets.iter().map(|o| o.offset).collect()),
                Column::OptText(offsets.iter().map(|o| o.metadata.clone()).collect()),
            ],
        };
        let args = [
            Arg::Text(tenant),
            Arg::Text(group),
            Arg::BigInt(now_ms),
            Arg::Rows(&set),
        ];
        self.retrying(|| async {
            self.execute(On::Write, &self.sql.upsert_group_offsets, &args)
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
        self.read(async {
            let args = [Arg::Text(tenant), Arg::Text(group)];
            let found = self.fetch(On::Read, &self.sql.group_offsets, &args).await?;
            Ok(rows::all(&found, rows::group_offset)?)
        })
        .await
    }

    async fn list_groups(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Text(tenant),
                Arg::Text(after.unwrap_or("")),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self.fetch(On::Read, &self.sql.list_groups, &args).await?;
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                out.push(r.text("group_id")?);
            }
            Ok(out)
        })
        .await
    }
}
