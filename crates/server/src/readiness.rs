//! Readiness at start: an agent answers `/readyz` with 200 only once it
//! has reached its metadata store and its object store, each at least
//! once, so a load balancer or an orchestrator does not send requests to
//! an agent that cannot serve any yet (a container started before its
//! network can reach the stores, say).
//!
//! Until both answered, a probe asks every quarter second: the metadata
//! store for its clock, unless the start-up sync of that clock answered
//! already (a sync, so an agent whose first one failed does not wait for
//! the minute's resync),
//! and the object store for one byte of an object that does not exist
//! (any answer but "unavailable" shows it is reachable). The probe goes
//! to the raw object store, below the metrics, caches and peer reads.
//!
//! Once both were reached the agent stays ready: a later outage of a
//! store shared by every agent is answered request by request with 503,
//! which clients retry, rather than by taking every agent out of the load
//! balancer at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metadata::{Log, StoreClock};
use crate::model::object_key;
use crate::store::{SharedStore, StoreError};

/// How often the probe asks a store that has not answered yet.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Which stores the agent has reached since it started.
#[derive(Debug, Default)]
pub struct StoresReached {
    metadata: AtomicBool,
    objects: AtomicBool,
}

impl StoresReached {
    /// What the agent has not reached yet, for the 503's detail; `None`
    /// when it is ready.
    pub fn missing(&self) -> Option<&'static str> {
        match (
            self.metadata.load(Ordering::Relaxed),
            self.objects.load(Ordering::Relaxed),
        ) {
            (true, true) => None,
            (false, true) => Some("the metadata store"),
            (true, false) => Some("the object store"),
            (false, false) => Some("the metadata store and the object store"),
        }
    }

    /// Notes that the metadata store answered (the start-up clock sync).
    pub fn reached_metadata(&self) {
        self.metadata.store(true, Ordering::Relaxed);
    }

    /// Asks each store until it has answered once, or until `cancel`.
    pub async fn probe(
        self: Arc<Self>,
        log: Arc<dyn Log>,
        clock: Arc<StoreClock>,
        store: SharedStore,
        cancel: CancellationToken,
    ) {
        // No object is ever stored under the nil id's key.
        let absent = object_key(uuid::Uuid::nil());
        for attempt in 0u64.. {
            if !self.metadata.load(Ordering::Relaxed) {
                match clock.sync(log.as_ref()).await {
                    Ok(()) => self.metadata.store(true, Ordering::Relaxed),
                    Err(e) if attempt == 0 => {
                        tracing::warn!(error = %e, "metadata store not reached yet; not ready");
                    }
                    Err(e) => tracing::debug!(error = %e, "metadata store not reached yet"),
                }
            }
            if !self.objects.load(Ordering::Relaxed) {
                match store.get_range(&absent, 0..1).await {
                    Err(StoreError::Unavailable(e)) if attempt == 0 => {
                        tracing::warn!(error = %e, "object store not reached yet; not ready");
                    }
                    Err(StoreError::Unavailable(e)) => {
                        tracing::debug!(error = %e, "object store not reached yet");
                    }
                    _ => self.objects.store(true, Ordering::Relaxed),
                }
            }
            if self.missing().is_none() {
                tracing::info!("ready: reached the metadata store and the object store");
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing_until_both_were_reached() {
        let r = StoresReached::default();
        assert_eq!(r.missing(), Some("the metadata store and the object store"));
        r.objects.store(true, Ordering::Relaxed);
        assert_eq!(r.missing(), Some("the metadata store"));
        r.metadata.store(true, Ordering::Relaxed);
        assert_eq!(r.missing(), None);
    }
}
