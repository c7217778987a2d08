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

/// One partition's watch, and its log start as last seen.
#[derive(Debug)]
struct Entry {
    tx: watch::Sender<i64>,
    start: Option<(i64, Instant)>,
}

impl Entry {
    fn new(hw: i64) -> Self {
        Entry {
            tx: watch::Sender::new(hw),
            start: None,
        }
    }

    /// Raises the watermark to `hw` (never lowers it), waking waiters.
    fn raise(&self, hw: i64) {
        self.tx.send_if_modified(|v| {
            let higher = hw > *v;
            if higher {
                *v = hw;
            }
            higher
        });
    }
}

/// Per-partition high watermarks; see the module header.
#[derive(Debug, Default)]
pub struct Watermarks {
    map: Mutex<HashMap<PartitionKey, Entry>>,
}

impl Watermarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionKey, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `key`, made with watermark `hw` if there is none.
    fn entry(map: &mut HashMap<PartitionKey, Entry>, key: PartitionKey, hw: i64) -> &mut Entry {
        if !map.contains_key(&key) && map.len() >= PRUNE_ABOVE {
            map.retain(|_, e| e.tx.receiver_count() > 0);
        }
        map.entry(key).or_insert_with(|| Entry::new(hw))
    }

    /// Raises a partition's watermark to `hw` (never lowers it).
    pub fn advance(&self, key: PartitionKey, hw: i64) {
        Self::entry(&mut self.lock(), key, hw).raise(hw);
    }

    /// Records a partition's state as just read from the store: its high
    /// watermark (never lowered) and its log start (never lowered).
    pub fn observe(&self, key: PartitionKey, start: i64, hw: i64) {
        let mut map = self.lock();
        let e = Self::entry(&mut map, key, hw);
        e.raise(hw);
        let start = e.start.map_or(start, |(s, _)| s.max(start));
        e.start = Some((start, Instant::now()));
    }

    /// Log start and high watermark, if this agent has both and the log
    /// start was seen within `fresh`.
    pub fn bounds(&self, key: PartitionKey, fresh: Duration) -> Option<(i64, i64)> {
        let map = self.lock();
        let e = map.get(&key)?;
        let (start, seen) = e.start?;
        (seen.elapsed() <= fresh).then(|| (start, *e.tx.borrow()))
    }

    /// For each of `keys`, whether someone on this agent is waiting on it;
    /// one lock for all (an announcement names hundreds of partitions).
    pub fn watched_of(&self, keys: impl IntoIterator<Item = PartitionKey>) -> Vec<bool> {
        let map = self.lock();
        keys.into_iter()
            .map(|k| map.get(&k).is_some_and(|e| e.tx.receiver_count() > 0))
            .collect()
    }

    /// Raises the watermarks of the partitions this agent already tracks;
    /// others are left alone (announcements name every partition a commit
    /// touched, most of which nobody here reads). One lock for all.
    pub fn advance_all_known(&self, advances: impl IntoIterator<Item = (PartitionKey, i64)>) {
        let map = self.lock();
        for (key, hw) in advances {
            if let Some(e) = map.get(&key) {
                e.raise(hw);
            }
        }
    }

    /// The last watermark this agent saw, if any.
    pub fn get(&self, key: PartitionKey) -> Option<i64> {
        self.lock().get(&key).map(|e| *e.tx.borrow())
    }

    /// A receiver of a partition's watermark, seeding it with `known` (the
    /// watermark never moves backwards). While the receiver lives, the
    /// poller keeps the partition current.
    pub fn subscribe(&self, key: PartitionKey, known: i64) -> watch::Receiver<i64> {
        let mut map = self.lock();
        let e = Self::entry(&mut map, key, known);
        e.raise(known);
        e.tx.subscribe()
    }

    /// Partitions someone on this agent is waiting on.
    pub fn watched(&self) -> Vec<PartitionKey> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.tx.receiver_count() > 0)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Forgets one partition; its waiters wake and find it gone.
    pub fn forget(&self, key: PartitionKey) {
        self.lock().remove(&key);
    }

    /// Forgets every partition of a topic (it was deleted).
    pub fn forget_topic(&self, topic_id: uuid::Uuid) {
        self.lock().retain(|(t, _), _| *t != topic_id);
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
