//! High watermarks that readers can wait on.
//!
//! Each agent keeps a `watch` per partition it has seen: a local commit
//! advances it at once, waking every long-poll waiting on that partition.
//! Commits made by other agents are announced by them through the
//! metadata store's feed where it has one ([`notify`]: PostgreSQL NOTIFY)
//! and found by [`poller`] everywhere: one batched query per interval
//! covering every partition someone here is waiting on (less often while
//! the feed is up). The
//! map only grows with partitions actually produced to or read from on this
//! agent, and entries nobody watches are dropped when it gets large.
//!
//! Log starts ride along: whoever reads a partition's state from the store
//! records its log start with the time it was seen, and readers trust it
//! only while it is fresh (retention moves it on other agents).

pub mod notify;
pub mod poller;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::model::PartitionKey;

/// Entries kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 200_000;

/// Per-partition high watermarks; see the module header.
#[derive(Debug, Default)]
pub struct Watermarks {
    map: Mutex<HashMap<PartitionKey, watch::Sender<i64>>>,
    /// The highest log start seen per partition, and when it was seen.
    starts: Mutex<HashMap<PartitionKey, (i64, Instant)>>,
}

impl Watermarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionKey, watch::Sender<i64>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises a partition's watermark to `hw` (never lowers it).
    pub fn advance(&self, key: PartitionKey, hw: i64) {
        let mut map = self.lock();
        match map.get(&key) {
            Some(tx) => {
                tx.send_if_modified(|v| {
                    if hw > *v {
                        *v = hw;
                        true
                    } else {
                        false
                    }
                });
            }
            None => {
                if map.len() >= PRUNE_ABOVE {
                    map.retain(|_, tx| tx.receiver_count() > 0);
                }
                map.insert(key, watch::Sender::new(hw));
            }
        }
    }

    /// Records a partition's log start as just seen (never lowered).
    pub fn raise_log_start(&self, key: PartitionKey, start: i64) {
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        if starts.len() >= PRUNE_ABOVE {
            let now = Instant::now();
            starts.retain(|_, (_, seen)| now.duration_since(*seen) < Duration::from_secs(10));
        }
        let entry = starts.entry(key).or_insert((start, Instant::now()));
        *entry = (entry.0.max(start), Instant::now());
    }

    /// A partition's log start, if it was seen within `fresh`.
    pub fn log_start(&self, key: PartitionKey, fresh: Duration) -> Option<i64> {
        let starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        starts
            .get(&key)
            .filter(|(_, seen)| seen.elapsed() <= fresh)
            .map(|(start, _)| *start)
    }

    /// Raises the watermark of a partition this agent already tracks;
    /// others are left alone (announcements name every partition a commit
    /// touched, most of which nobody here reads).
    pub fn advance_known(&self, key: PartitionKey, hw: i64) {
        if let Some(tx) = self.lock().get(&key) {
            tx.send_if_modified(|v| {
                if hw > *v {
                    *v = hw;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// The last watermark this agent saw, if any.
    pub fn get(&self, key: PartitionKey) -> Option<i64> {
        self.lock().get(&key).map(|tx| *tx.borrow())
    }

    /// A receiver of a partition's watermark, seeding it with `known` (the
    /// watermark never moves backwards). While the receiver lives, the
    /// poller keeps the partition current.
    pub fn subscribe(&self, key: PartitionKey, known: i64) -> watch::Receiver<i64> {
        let mut map = self.lock();
        let tx = map.entry(key).or_insert_with(|| watch::Sender::new(known));
        tx.send_if_modified(|v| {
            if known > *v {
                *v = known;
                true
            } else {
                false
            }
        });
        tx.subscribe()
    }

    /// Partitions someone on this agent is waiting on.
    pub fn watched(&self) -> Vec<PartitionKey> {
        self.lock()
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Forgets one partition; its waiters wake and find it gone.
    pub fn forget(&self, key: PartitionKey) {
        self.lock().remove(&key);
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Forgets every partition of a topic (it was deleted).
    pub fn forget_topic(&self, topic_id: uuid::Uuid) {
        self.lock().retain(|(t, _), _| *t != topic_id);
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(t, _), _| *t != topic_id);
    }

    /// Waits until the watermark passes `offset` or `timeout` elapses, and
    /// returns the watermark then. `known` seeds a partition not seen yet.
    pub async fn wait_beyond(
        &self,
        key: PartitionKey,
        offset: i64,
        known: i64,
        timeout: Duration,
    ) -> i64 {
        let mut rx = self.subscribe(key, known);
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|hw| *hw > offset).await.map(|hw| *hw)
        })
        .await;
        match waited {
            Ok(Ok(hw)) => hw,
            _ => *rx.borrow(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_on_advance_and_time_out_otherwise() {
        let w = Arc::new(Watermarks::default());
        let key = (uuid::Uuid::now_v7(), 0);
        let w2 = w.clone();
        let waiter =
            tokio::spawn(async move { w2.wait_beyond(key, 5, 5, Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.advance(key, 7);
        assert_eq!(waiter.await.unwrap(), 7);
        let start = tokio::time::Instant::now();
        assert_eq!(w.wait_beyond(key, 7, 0, Duration::from_secs(3)).await, 7);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        w.advance(key, 6);
        assert_eq!(w.get(key), Some(7), "never lowered");
    }
}
