//! Webhook subscriptions (see `metadata::subscriptions`).

use async_trait::async_trait;

use super::{Arg, Dialect, Failure, On, SqlRow, SqlStore};
use crate::metadata::MetadataError;
use crate::metadata::subscriptions::{
    DeliveryNote, SubscriptionRow, Subscriptions, subscription_group,
};

const COLS: &str = "tenant, name, topic, url, secret, max_batch_records, max_batch_wait_ms, \
     max_attempts, start_at, paused, created_at, delivered, failures, dead_lettered, last_error, \
     last_error_at";

fn row(r: &impl SqlRow) -> Result<SubscriptionRow, sqlx::Error> {
    Ok(SubscriptionRow {
        tenant: r.text("tenant")?,
        name: r.text("name")?,
        topic: r.text("topic")?,
        url: r.text("url")?,
        secret: r.text("secret")?,
        max_batch_records: r.int("max_batch_records")?,
        max_batch_wait_ms: r.big("max_batch_wait_ms")?,
        max_attempts: r.int("max_attempts")?,
        start_at: r.text("start_at")?,
        paused: r.int("paused")? != 0,
        created_at_ms: r.big("created_at")?,
        delivered: r.big("delivered")?,
        failures: r.big("failures")?,
        dead_lettered: r.big("dead_lettered")?,
        last_error: r.opt_text("last_error")?,
        last_error_at_ms: r.opt_big("last_error_at")?,
    })
}

#[async_trait]
impl<D: Dialect> Subscriptions for SqlStore<D> {
    async fn create_subscription(&self, s: &SubscriptionRow) -> Result<(), MetadataError> {
        let sql = format!(
            "INSERT INTO subscriptions ({COLS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0, NULL, NULL)"
        );
        let args = [
            Arg::Text(&s.tenant),
            Arg::Text(&s.name),
            Arg::Text(&s.topic),
            Arg::Text(&s.url),
            Arg::Text(&s.secret),
            Arg::Int(s.max_batch_records),
            Arg::BigInt(s.max_batch_wait_ms),
            Arg::Int(s.max_attempts),
            Arg::Text(&s.start_at),
            Arg::Int(i32::from(s.paused)),
            Arg::BigInt(s.created_at_ms),
        ];
        self.retrying(|| async {
            self.execute(On::Write, &sql, &args).await?;
            Ok(())
        })
        .await
    }

    async fn get_subscription(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<SubscriptionRow>, MetadataError> {
        let sql = format!("SELECT {COLS} FROM subscriptions WHERE tenant = $1 AND name = $2");
        self.read(async {
            let args = [Arg::Text(tenant), Arg::Text(name)];
            let found = self.fetch_optional(On::Read, &sql, &args).await?;
            Ok(found.as_ref().map(row).transpose()?)
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        tenant: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SubscriptionRow>, MetadataError> {
        let sql = format!(
            "SELECT {COLS} FROM subscriptions WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1) \
             AND (tenant > $2 OR (tenant = $2 AND name > $3)) ORDER BY tenant, name LIMIT $4"
        );
        self.read(async {
            let (from_tenant, from_name) = after.unwrap_or((tenant.unwrap_or(""), ""));
            let args = [
                tenant.map_or(Arg::OptText(None), |t| Arg::OptText(Some(t))),
                Arg::Text(from_tenant),
                Arg::Text(from_name),
                Arg::BigInt(i64::from(limit)),
            ];
            let found = self.fetch(On::Read, &sql, &args).await?;
            Ok(found.iter().map(row).collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_subscription_paused(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
    ) -> Result<bool, MetadataError> {
        let sql = "UPDATE subscriptions SET paused = $3 WHERE tenant = $1 AND name = $2";
        let args = [
            Arg::Text(tenant),
            Arg::Text(name),
            Arg::Int(i32::from(paused)),
        ];
        self.retrying(|| async { Ok(self.execute(On::Write, sql, &args).await? == 1) })
            .await
    }

    async fn delete_subscription(&self, tenant: &str, name: &str) -> Result<bool, MetadataError> {
        self.retrying(|| async {
            let mut tx = self.begin().await?;
            let args = [Arg::Text(tenant), Arg::Text(name)];
            let gone = self
                .fetch(
                    On::Tx(&mut tx),
                    "DELETE FROM subscriptions WHERE tenant = $1 AND name = $2 RETURNING created_at",
                    &args,
                )
                .await?;
            let Some(created) = gone.first().map(|r| r.big("created_at")).transpose()? else {
                return Ok::<_, Failure>(false);
            };
            let group = subscription_group(name, created);
            let args = [Arg::Text(tenant), Arg::Text(&group)];
            for table in ["group_state", "group_offsets"] {
                let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND group_id = $2");
                self.execute(On::Tx(&mut tx), &sql, &args).await?;
            }
            self.commit(tx).await?;
            Ok(true)
        })
        .await
    }

    async fn note_delivery(
        &self,
        tenant: &str,
        name: &str,
        note: &DeliveryNote,
    ) -> Result<(), MetadataError> {
        let sql = "UPDATE subscriptions SET delivered = delivered + $3, \
             failures = failures + $4, dead_lettered = dead_lettered + $5, \
             last_error = COALESCE($6, last_error), last_error_at = COALESCE($7, last_error_at) \
             WHERE tenant = $1 AND name = $2";
        let (error, at) = match &note.error {
            Some((e, at)) => (Some(e.as_str()), Some(*at)),
            None => (None, None),
        };
        let args = [
            Arg::Text(tenant),
            Arg::Text(name),
            Arg::BigInt(note.delivered),
            Arg::BigInt(note.failures),
            Arg::BigInt(note.dead_lettered),
            Arg::OptText(error),
            Arg::OptBigInt(at),
        ];
        self.retrying(|| async {
            self.execute(On::Write, sql, &args).await?;
            Ok(())
        })
        .await
    }
}
