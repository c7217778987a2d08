//! Revoked tokens.

use async_trait::async_trait;

use super::{Arg, Dialect, On, SqlRow, SqlStore};
use crate::metadata::{MetadataError, Revocations, RevokedToken};

#[async_trait]
impl<D: Dialect> Revocations for SqlStore<D> {
    async fn revoke_token(&self, token: &RevokedToken) -> Result<(), MetadataError> {
        let args = [
            Arg::Text(&token.tenant),
            Arg::Text(&token.jti),
            Arg::BigInt(token.expires_at_ms),
        ];
        self.retrying(|| async {
            self.execute(On::Write, &self.sql.revoke_token, &args)
                .await?;
            Ok(())
        })
        .await
    }

    async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>, MetadataError> {
        self.read(async {
            let args = [Arg::BigInt(now_ms)];
            let found = self
                .fetch(On::Read, &self.sql.revoked_tokens, &args)
                .await?;
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                out.push(RevokedToken {
                    tenant: r.text("tenant")?,
                    jti: r.text("jti")?,
                    expires_at_ms: r.big("expires_at")?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn expire_revocations(&self, now_ms: i64) -> Result<u64, MetadataError> {
        let args = [Arg::BigInt(now_ms)];
        self.retrying(|| self.execute(On::Write, &self.sql.expire_revocations, &args))
            .await
    }
}
