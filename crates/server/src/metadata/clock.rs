//! The metadata store's clock, as seen from this agent.
//!
//! Idempotency windows (and object ages) must be judged by one clock that
//! every agent shares, or an agent whose clock runs behind records keys
//! that others already consider expired. That clock is the metadata
//! store's; asking it on every request would cost a round trip, so the
//! offset between it and this agent's clock is measured now and then
//! (one query) and applied to local readings.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Log, MetadataError};
use crate::clock::{Clock, SharedClock};

/// The store's time from local readings; see the module header.
#[derive(Debug)]
pub struct StoreClock {
    local: SharedClock,
    offset_ms: AtomicI64,
}

impl StoreClock {
    /// Until the first [`sync`](StoreClock::sync), the local clock as it is.
    pub fn new(local: SharedClock) -> Self {
        StoreClock {
            local,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Measures the offset to the store's clock (half the round trip is
    /// the uncertainty).
    pub async fn sync(&self, log: &dyn Log) -> Result<(), MetadataError> {
        let before = self.local.now_ms();
        let store = log.now_ms().await?;
        let after = self.local.now_ms();
        let local = before + (after - before) / 2;
        self.offset_ms.store(store - local, Ordering::Relaxed);
        Ok(())
    }

    /// Measures the offset every `interval` until `cancel` fires.
    pub async fn keep_synced(
        self: Arc<Self>,
        log: Arc<dyn Log>,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        crate::background::every(interval, 0.1, cancel, || async {
            if let Err(e) = self.sync(log.as_ref()).await {
                tracing::debug!(error = %e, "could not read the metadata store's clock");
            }
        })
        .await;
    }
}

impl Clock for StoreClock {
    fn now_ms(&self) -> i64 {
        self.local.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testing::TempSqlite;

    #[tokio::test]
    async fn reads_the_store_s_time_from_a_skewed_local_clock() {
        let store = TempSqlite::open().await;
        let skewed = Arc::new(ManualClock::new(1_000));
        let clock = StoreClock::new(skewed.clone());
        assert_eq!(clock.now_ms(), 1_000, "the local clock until synced");
        clock.sync(store.log.as_ref()).await.unwrap();
        let real = store.log.now_ms().await.unwrap();
        assert!(
            (clock.now_ms() - real).abs() < 1_000,
            "{} vs {real}",
            clock.now_ms()
        );
        skewed.advance(5_000);
        assert!(
            (clock.now_ms() - real - 5_000).abs() < 1_000,
            "follows the local clock"
        );
    }
}
