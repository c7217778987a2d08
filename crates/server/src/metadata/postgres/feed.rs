//! The PostgreSQL watermark feed: `pg_notify` after each commit on one
//! channel, and a dedicated `LISTEN` connection per agent.

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgListener, PgPool};

use crate::metadata::MetadataError;
use crate::metadata::feed::{Announcement, WatermarkFeed, parse, payloads};

/// The channel every agent listens on.
const CHANNEL: &str = "streamhouse_watermarks";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// See the module header.
#[derive(Debug)]
pub(crate) struct PgFeed {
    pub(crate) pool: PgPool,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
}

#[async_trait]
impl WatermarkFeed for PgFeed {
    async fn announce(&self, announcement: &Announcement) {
        if announcement.is_empty() {
            return;
        }
        let chunks = payloads(announcement, MAX_PAYLOAD);
        self.metrics.metadata_statements.inc();
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(&chunks)
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "announcing advanced partitions failed; the poll will find them");
        }
    }

    async fn listen(&self) -> Result<BoxStream<'static, Announcement>, MetadataError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| MetadataError::Unavailable(e.to_string().into()))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|e| MetadataError::Unavailable(e.to_string().into()))?;
        // Deliveries lost while disconnected are not replayed: the poll
        // covers them, and the stream ends so the caller listens again.
        let stream = listener
            .into_stream()
            .take_while(|n| std::future::ready(n.is_ok()))
            .filter_map(|n| std::future::ready(n.ok().map(|n| parse(n.payload()))));
        Ok(stream.boxed())
    }
}
