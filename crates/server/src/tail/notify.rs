//! Listening to other agents' announcements (the metadata store's
//! watermark feed): each one advances the watches of the partitions this
//! agent tracks, waking their readers at once. While the listener is
//! connected the poller runs at a tenth of its rate; when it drops, the
//! poller is back to full rate until the listener reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Watermarks;
use crate::metadata::WatermarkFeed;

/// Runs the listener until `cancel` fires, reconnecting with backoff.
pub async fn run(
    feed: Arc<dyn WatermarkFeed>,
    watermarks: Arc<Watermarks>,
    listening: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match feed.listen().await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(100);
                listening.store(true, Ordering::Relaxed);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        next = stream.next() => match next {
                            Some(advanced) => {
                                for (key, hw) in advanced {
                                    watermarks.advance_known(key, hw);
                                }
                            }
                            None => break,
                        },
                    }
                }
                listening.store(false, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "watermark feed unavailable; polling meanwhile"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
