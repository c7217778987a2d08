//! Group documents (see `metadata::membership`): read with the store's
//! clock, replaced by compare and swap on their version, with the offset
//! commits a swap carries in the same transaction.

use async_trait::async_trait;

use super::{Arg, Column, Dialect, Failure, On, RowSet, SqlRow, SqlStore};
use crate::metadata::membership::{GroupDoc, GroupMembership, GroupWrite};
use crate::metadata::{GroupOffsetCommit, MetadataError};

const INSERT: &str = "INSERT INTO group_state (tenant, group_id, version, state, updated_at) \
     VALUES ($1, $2, 1, $3, $4) ON CONFLICT (tenant, group_id) DO NOTHING";
const UPDATE: &str = "UPDATE group_state SET version = version + 1, state = $3, updated_at = $4 \
     WHERE tenant = $1 AND group_id = $2 AND version = $5";
const DELETE: &str = "DELETE FROM group_state WHERE tenant = $1 AND group_id = $2 AND version = $3";
const ABSENT: &str = "SELECT version FROM group_state WHERE tenant = $1 AND group_id = $2";
const DELETE_OFFSETS: &str = "DELETE FROM group_offsets WHERE tenant = $1 AND group_id = $2";

impl<D: Dialect> SqlStore<D> {
    async fn swap_group_once(
        &self,
        tenant: &str,
        group: &str,
        expected: Option<i64>,
        write: GroupWrite<'_>,
        commits: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<bool, Failure> {
        let mut tx = self.begin().await?;
        let won = match (write, expected) {
            (GroupWrite::Put(state), None) => {
                let args = [
                    Arg::Text(tenant),
                    Arg::Text(group),
                    Arg::Text(state),
                    Arg::BigInt(now_ms),
                ];
                self.execute(On::Tx(&mut tx), INSERT, &args).await? == 1
            }
            (GroupWrite::Put(state), Some(v)) => {
                let args = [
                    Arg::Text(tenant),
                    Arg::Text(group),
                    Arg::Text(state),
                    Arg::BigInt(now_ms),
                    Arg::BigInt(v),
                ];
                self.execute(On::Tx(&mut tx), UPDATE, &args).await? == 1
            }
            (GroupWrite::Delete, Some(v)) => {
                let args = [Arg::Text(tenant), Arg::Text(group), Arg::BigInt(v)];
                self.execute(On::Tx(&mut tx), DELETE, &args).await? == 1
            }
            (GroupWrite::Delete, None) => {
                let args = [Arg::Text(tenant), Arg::Text(group)];
                self.fetch(On::Tx(&mut tx), ABSENT, &args).await?.is_empty()
            }
        };
        if !won {
            return Ok(false);
        }
        if matches!(write, GroupWrite::Delete) {
            let args = [Arg::Text(tenant), Arg::Text(group)];
            self.execute(On::Tx(&mut tx), DELETE_OFFSETS, &args).await?;
        }
        if !commits.is_empty() {
            let set = RowSet {
                columns: vec![
                    Column::Uuid(commits.iter().map(|o| o.topic_id).collect()),
                    Column::Int(commits.iter().map(|o| o.partition).collect()),
                    Column::BigInt(commits.iter().map(|o| o.offset).collect()),
                    Column::OptText(commits.iter().map(|o| o.metadata.clone()).collect()),
                ],
            };
            let args = [
                Arg::Text(tenant),
                Arg::Text(group),
                Arg::BigInt(now_ms),
                Arg::Rows(&set),
            ];
            self.execute(On::Tx(&mut tx), &self.sql.upsert_group_offsets, &args)
                .await?;
        }
        self.commit(tx).await?;
        Ok(true)
    }
}

#[async_trait]
impl<D: Dialect> GroupMembership for SqlStore<D> {
    async fn load_group(&self, tenant: &str, group: &str) -> Result<GroupDoc, MetadataError> {
        let sql = format!(
            "SELECT g.version, g.state, {} AS now_ms FROM (SELECT 1 AS one) x \
             LEFT JOIN group_state g ON g.tenant = $1 AND g.group_id = $2",
            D::NOW_MS
        );
        self.read(async {
            let args = [Arg::Text(tenant), Arg::Text(group)];
            let found = self.fetch(On::Read, &sql, &args).await?;
            let r = found.first().ok_or_else(|| {
                Failure::Definite(MetadataError::Unavailable("no clock row".into()))
            })?;
            Ok(GroupDoc {
                version: r.opt_big("version")?,
                state: r.opt_text("state")?,
                now_ms: r.big("now_ms")?,
            })
        })
        .await
    }

    async fn swap_group(
        &self,
        tenant: &str,
        group: &str,
        expected: Option<i64>,
        write: GroupWrite<'_>,
        commits: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetadataError> {
        self.retrying(|| self.swap_group_once(tenant, group, expected, write, commits, now_ms))
            .await
    }
}
