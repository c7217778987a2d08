//! Following partitions live: the engine behind SSE and WebSocket streams.
//!
//! A [`Follower`] holds a position in each partition it follows and a watch
//! on each partition's high watermark. [`Follower::next`] returns the next
//! batch from whichever partition has records past its position (taking
//! partitions in turn so none starves), or waits until a watermark moves.
//! It reads only when asked, so a stream that is not drained does no work
//! and holds no records: backpressure is the caller not calling `next`.
//! Waiting costs no metadata queries: local commits advance the watches at
//! once and the poller advances them for other agents' commits with one
//! query per interval for all partitions, however many followers wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;

use super::{ReadError, ReadRequest, Reader};
use crate::model::StoredRecord;
use crate::model::{PartitionKey, TopicMeta};
use crate::tail::Watermarks;

/// Where a follower starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first readable offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// This offset (must be within [log start, high watermark]).
    Offset(i64),
    /// The first offset whose timestamp is at or after this (ms).
    Timestamp(i64),
}

impl StartAt {
    /// Parses `earliest`, `latest`, an offset, or `ts:<millis>`.
    /// Numbers are 1 to 18 decimal digits, nothing else.
    pub fn parse(s: &str) -> Option<StartAt> {
        fn number(s: &str) -> Option<i64> {
            let digits = !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| s.parse().ok()).flatten()
        }
        match s {
            "earliest" => Some(StartAt::Earliest),
            "latest" => Some(StartAt::Latest),
            _ => match s.strip_prefix("ts:") {
                Some(ts) => number(ts).map(StartAt::Timestamp),
                None => number(s).map(StartAt::Offset),
            },
        }
    }
}

/// Records of one partition, as returned by [`Follower::next`].
#[derive(Debug, Clone)]
pub struct Batch {
    pub topic: Arc<TopicMeta>,
    pub partition: i32,
    pub records: Vec<StoredRecord>,
    pub next_offset: i64,
    pub high_watermark: i64,
}

#[derive(Debug)]
struct Followed {
    topic: Arc<TopicMeta>,
    partition: i32,
    next: i64,
    watermark: watch::Receiver<i64>,
}

/// Follows a set of partitions; see the module header.
#[derive(Debug)]
pub struct Follower {
    reader: Reader,
    parts: Vec<Followed>,
    max_records: usize,
    max_bytes: usize,
    turn: usize,
}

impl Follower {
    /// Resolves each partition's start and subscribes to its watermark:
    /// one metadata query for every partition's bounds, and one more per
    /// distinct start time, whatever the number of partitions.
    pub async fn new(
        reader: Reader,
        watermarks: &Watermarks,
        starts: Vec<(Arc<TopicMeta>, i32, StartAt)>,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Follower, ReadError> {
        let keys: Vec<_> = starts.iter().map(|(t, p, _)| (t.id, *p)).collect();
        let bounds = reader.bounds_of(&keys).await?;
        let mut by_time: HashMap<i64, Vec<PartitionKey>> = HashMap::new();
        for (t, p, at) in &starts {
            if let StartAt::Timestamp(ts) = at {
                by_time.entry(*ts).or_default().push((t.id, *p));
            }
        }
        let mut at_time = HashMap::new();
        for (ts, keys) in by_time {
            for (key, (offset, _)) in reader.offsets_for_time(&keys, ts).await? {
                at_time.insert((key, ts), offset);
            }
        }
        let mut parts = Vec::with_capacity(starts.len());
        for (topic, partition, at) in starts {
            let key = (topic.id, partition);
            let (log_start, hw) = bounds.get(&key).copied().ok_or(ReadError::TopicGone)?;
            let next = match at {
                StartAt::Earliest => log_start,
                StartAt::Latest => hw,
                StartAt::Offset(o) if o < log_start || o > hw => {
                    return Err(ReadError::OutOfRange {
                        offset: o,
                        log_start_offset: log_start,
                        high_watermark: hw,
                    });
                }
                StartAt::Offset(o) => o,
                StartAt::Timestamp(ts) => at_time
                    .get(&(key, ts))
                    .copied()
                    .unwrap_or(hw)
                    .max(log_start),
            };
            parts.push(Followed {
                watermark: watermarks.subscribe(key, hw),
                topic,
                partition,
                next,
            });
        }
        Ok(Follower {
            reader,
            parts,
            max_records,
            max_bytes,
            turn: 0,
        })
    }

    /// The next offset to deliver in each followed partition.
    pub fn positions(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.parts
            .iter()
            .map(|p| (p.topic.name.as_str(), p.partition, p.next))
    }

    /// The next batch of records, waiting for them when caught up.
    pub async fn next(&mut self) -> Result<Batch, ReadError> {
        loop {
            if let Some(batch) = self.read_ready().await? {
                return Ok(batch);
            }
            self.wait().await?;
        }
    }

    /// Like [`Follower::next`], but gives up waiting after `idle`.
    pub async fn next_within(&mut self, idle: Duration) -> Result<Option<Batch>, ReadError> {
        match tokio::time::timeout(idle, self.next()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn read_ready(&mut self) -> Result<Option<Batch>, ReadError> {
        let n = self.parts.len();
        for i in 0..n {
            let idx = (self.turn + i) % n;
            let p = &self.parts[idx];
            if p.next >= *p.watermark.borrow() {
                continue;
            }
            let req = ReadRequest {
                topic: p.topic.clone(),
                partition: p.partition,
                offset: Some(p.next),
                max_records: self.max_records,
                max_bytes: self.max_bytes,
                wait: Duration::ZERO,
            };
            let r = self.reader.read(&req).await?;
            let p = &mut self.parts[idx];
            if r.records.is_empty() {
                // Key compaction removed the offsets up to here: pass over
                // them, or the follower would ask again and again.
                p.next = p.next.max(r.next_offset);
                continue;
            }
            p.next = r.next_offset;
            self.turn = (idx + 1) % n;
            return Ok(Some(Batch {
                topic: p.topic.clone(),
                partition: p.partition,
                records: r.records,
                next_offset: r.next_offset,
                high_watermark: r.high_watermark,
            }));
        }
        Ok(None)
    }

    /// Waits until some followed watermark moves past its position.
    async fn wait(&mut self) -> Result<(), ReadError> {
        let mut changes: FuturesUnordered<_> = self
            .parts
            .iter_mut()
            .map(|p| {
                let next = p.next;
                async move { p.watermark.wait_for(|hw| *hw > next).await.map(|_| ()) }
            })
            .collect();
        match changes.next().await {
            Some(Ok(())) => Ok(()),
            // A dropped watch means the poller found the partition gone.
            Some(Err(_)) => Err(ReadError::TopicGone),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_positions() {
        assert_eq!(StartAt::parse("earliest"), Some(StartAt::Earliest));
        assert_eq!(StartAt::parse("latest"), Some(StartAt::Latest));
        assert_eq!(StartAt::parse("42"), Some(StartAt::Offset(42)));
        assert_eq!(
            StartAt::parse("ts:1700000000000"),
            Some(StartAt::Timestamp(1_700_000_000_000))
        );
        for bad in [
            "-1",
            "ts:",
            "ts:-5",
            "soon",
            "",
            "+5",
            "ts:+5",
            "1234567890123456789",
        ] {
            assert_eq!(StartAt::parse(bad), None, "{bad}");
        }
    }
}
