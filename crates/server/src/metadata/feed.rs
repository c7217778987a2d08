//! Push between agents: after a commit, the committing agent announces
//! which partitions advanced, and every other agent hears it at once
//! instead of at its next watermark poll. PostgreSQL carries it as
//! `NOTIFY` (sent after the commit, never inside it: a NOTIFY in a
//! transaction serializes commits on a global lock). CockroachDB and
//! SQLite have no feed; the poll is their only path, and it stays the
//! fallback everywhere: a lost announcement only delays a wake-up.

use std::fmt::Debug;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::MetadataError;
use crate::model::PartitionKey;

/// Partitions and their new high watermarks.
pub type Advanced = Vec<(PartitionKey, i64)>;

/// See the module header.
#[async_trait]
pub trait WatermarkFeed: Send + Sync + Debug {
    /// Tells every agent listening that these partitions advanced. Best
    /// effort: a failure is only logged.
    async fn announce(&self, advanced: &[(PartitionKey, i64)]);

    /// Other agents' announcements, until the connection drops (the
    /// stream ends; listen again).
    async fn listen(&self) -> Result<BoxStream<'static, Advanced>, MetadataError>;
}

/// Renders announcements as payloads of at most `max` bytes each:
/// `<topic id, 32 hex>:<partition>:<high watermark>` joined by commas.
pub(crate) fn payloads(advanced: &[(PartitionKey, i64)], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ((topic, partition), hw) in advanced {
        let entry = format!("{}:{partition}:{hw}", topic.simple());
        if !cur.is_empty() && cur.len() + 1 + entry.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&entry);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses a payload; malformed entries are skipped.
pub(crate) fn parse(payload: &str) -> Advanced {
    payload
        .split(',')
        .filter_map(|e| {
            let mut parts = e.split(':');
            let topic = Uuid::parse_str(parts.next()?).ok()?;
            let partition = parts.next()?.parse().ok()?;
            let hw = parts.next()?.parse().ok()?;
            Some(((topic, partition), hw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_respect_the_size() {
        let t = Uuid::now_v7();
        let advanced: Advanced = (0..500).map(|p| ((t, p), i64::from(p) * 1000)).collect();
        let chunks = payloads(&advanced, 1000);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= 1000));
        let back: Advanced = chunks.iter().flat_map(|c| parse(c)).collect();
        assert_eq!(back, advanced);
        assert!(parse("garbage,also:bad").is_empty());
    }
}
