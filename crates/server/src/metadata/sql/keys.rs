//! Idempotency keys outside the flush commit: lookup and expiry. Keys
//! are recorded by the commit itself (see `commit`).

use async_trait::async_trait;
use uuid::Uuid;

use super::{Arg, Dialect, On, SqlRow, SqlStore};
use crate::metadata::{IdempotencyKeys, MetadataError, RecordedKey};

#[async_trait]
impl<D: Dialect> IdempotencyKeys for SqlStore<D> {
    async fn lookup_key(
        &self,
        tenant: &str,
        topic_id: Uuid,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<RecordedKey>, MetadataError> {
        self.read(async {
            let args = [
                Arg::Text(tenant),
                Arg::Uuid(topic_id),
                Arg::Text(key),
                Arg::BigInt(now_ms),
            ];
            let Some(row) = self
                .fetch_optional(On::Read, &self.sql.lookup_key, &args)
                .await?
            else {
                return Ok(None);
            };
            let response = row.opt_text("response")?;
            Ok(Some(RecordedKey::from_row(
                topic_id,
                key,
                row.text("fingerprint")?,
                response.as_deref(),
            )))
        })
        .await
    }

    async fn expire_keys(&self, now_ms: i64, limit: u32) -> Result<u64, MetadataError> {
        let args = [Arg::BigInt(now_ms), Arg::BigInt(i64::from(limit))];
        self.retrying(|| self.execute(On::Write, &self.sql.expire_keys, &args))
            .await
    }
}
