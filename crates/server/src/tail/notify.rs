//! Listening to other agents' announcements (the metadata store's
//! watermark feed): each one advances the watches of the partitions this
//! agent tracks, waking their readers at once. The index rows an
//! announcement carries are cached first (when it is no older than half
//! the index cache's lifetime), so the woken readers find where the new
//! records are without a metadata lookup; a partition a compaction
//! rewrote has its cached rows forgotten. While the listener is
//! connected the poller runs at a tenth of its rate; when it drops, the
//! poller is back to full rate until the listener reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Watermarks;
use crate::clock::SharedClock;
use crate::metadata::{Announcement, MetadataCache, WatermarkFeed};
use crate::metrics::Metrics;
use crate::model::object_key;
use crate::peer::{PeerConfig, PeerHints};

/// What the listener does with announced index news: caches the rows of
/// new chunks (no older than `max_age`) and forgets partitions a
/// compaction rewrote.
#[derive(Debug, Clone)]
pub struct IndexSeed {
    pub cache: Arc<MetadataCache>,
    /// The metadata store's time as this agent tracks it: what the
    /// announcer stamps with.
    pub clock: SharedClock,
    /// Half the index cache's lifetime: a row cached no later than this
    /// after its commit expires before its object can be collected.
    pub max_age: Duration,
    pub metrics: Arc<Metrics>,
    /// Where announced objects' writers are noted, with this agent's peer
    /// settings: an origin counts only when signed with the cluster's
    /// secret, and never when it is this agent's own URL (a restarted
    /// agent on the same URL may hear its predecessor's announcements).
    pub peers: Option<(Arc<PeerHints>, PeerConfig)>,
}

impl IndexSeed {
    fn learn(&self, a: &Announcement, watermarks: &Watermarks) {
        for &(topic, partition) in &a.rewritten {
            self.cache.forget_partition_index(topic, partition);
            self.metrics.index_rewrites_heard.inc();
        }
        let Some(at) = a.at_ms else { return };
        if self.clock.now_ms() - at > self.max_age.as_millis() as i64 {
            return;
        }
        let writer = match (&self.peers, &a.origin) {
            (Some((hints, own)), Some(origin)) => own
                .origin_url(origin)
                .filter(|url| *url != &*own.url)
                .map(|url| (hints, Arc::<str>::from(url))),
            _ => None,
        };
        // One commit writes one object: note its writer once.
        let mut noted = None;
        let watched = watermarks.watched_of(a.advances.iter().map(|adv| adv.key));
        for (adv, watched) in a.advances.iter().zip(watched) {
            if let Some(row) = adv.row {
                self.cache.learn_row(adv.key.0, adv.key.1, row, watched);
                self.metrics.index_rows_announced.inc();
                if let Some((hints, origin)) = &writer
                    && noted != Some(row.object_id)
                {
                    hints.learn(object_key(row.object_id).into(), origin.clone());
                    noted = Some(row.object_id);
                }
            }
        }
    }
}

/// Runs the listener until `cancel` fires, reconnecting with backoff.
pub async fn run(
    feed: Arc<dyn WatermarkFeed>,
    watermarks: Arc<Watermarks>,
    seed: IndexSeed,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match feed.listen().await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(100);
                seed.metrics.watermark_feed_up.set(1);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        next = stream.next() => match next {
                            Some(announcement) => {
                                seed.learn(&announcement, &watermarks);
                                watermarks.advance_all_known(
                                    announcement.advances.iter().map(|adv| (adv.key, adv.high_watermark)),
                                );
                            }
                            None => break,
                        },
                    }
                }
                seed.metrics.watermark_feed_up.set(0);
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
