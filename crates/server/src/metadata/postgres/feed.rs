//! The PostgreSQL watermark feed: `pg_notify` after each commit on one
//! channel, and a dedicated `LISTEN` connection per agent, whose loss tells
//! the pool (`pool::Losses`) that the store went away.

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
    /// Told when the listening connection is lost: the store went away.
    pub(super) losses: std::sync::Arc<super::pool::Losses>,
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
        // A loss is reported at once rather than after a reconnect attempt.
        listener.eager_reconnect(false);
        listener
            .listen(CHANNEL)
            .await
            .map_err(|e| MetadataError::Unavailable(e.to_string().into()))?;
        // Deliveries lost while disconnected are not replayed: the poll
        // covers them, and the stream ends so the caller listens again.
        let state = Some((listener, self.losses.clone()));
        let stream = futures_util::stream::unfold(state, |state| async move {
            let (mut listener, losses) = state?;
            match listener.try_recv().await {
                Ok(Some(n)) => Some((parse(n.payload()), Some((listener, losses)))),
                Ok(None) => {
                    // The connection was lost (sqlx has let it go already).
                    losses.seen();
                    None
                }
                Err(_) => None,
            }
        });
        Ok(stream.boxed())
    }
}
