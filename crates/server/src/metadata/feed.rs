//! Push between agents: after a commit, the committing agent announces
//! which partitions advanced, and every other agent hears it at once
//! instead of at its next watermark poll. After a compaction's swap, the
//! compacting agent announces the rewritten partition, so the others
//! forget its cached index rows. PostgreSQL carries it as
//! `NOTIFY` (sent after the commit, never inside it: a NOTIFY in a
//! transaction serializes commits on a global lock). CockroachDB and
//! SQLite have no feed; the poll is their only path, and it stays the
//! fallback everywhere: a lost announcement only delays a wake-up.

use std::fmt::{Debug, Write};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::{BatchRow, MetadataError};
use crate::model::PartitionKey;

/// One partition's advance, with the index row of the chunk that made it
/// when the announcer knows it: a listener that caches the row can serve
/// its woken readers without asking the metadata store where the records
/// are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    pub key: PartitionKey,
    pub high_watermark: i64,
    pub row: Option<BatchRow>,
}

/// What one commit announces, stamped with the announcer's clock (the
/// metadata store's time as the agent tracks it), so a listener can tell
/// how old the rows are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announcement {
    pub at_ms: Option<i64>,
    pub advances: Vec<Advance>,
    /// Partitions whose index rows a compaction replaced: listeners forget
    /// the rows they cached, rather than serve them until they expire.
    pub rewritten: Vec<PartitionKey>,
    /// The base URL the announcer serves the objects it wrote at, signed,
    /// when it serves them to its peers (see [`crate::peer`]); opaque here.
    pub origin: Option<std::sync::Arc<str>>,
}

impl Announcement {
    pub fn is_empty(&self) -> bool {
        self.advances.is_empty() && self.rewritten.is_empty()
    }
}

/// See the module header.
#[async_trait]
pub trait WatermarkFeed: Send + Sync + Debug {
    /// Tells every agent listening that these partitions advanced. Best
    /// effort: a failure is only logged.
    async fn announce(&self, announcement: &Announcement);

    /// Other agents' announcements, until the connection drops (the
    /// stream ends; listen again).
    async fn listen(&self) -> Result<BoxStream<'static, Announcement>, MetadataError>;
}

/// Renders an announcement as payloads of at most `max` bytes each: `t=<ms>`
/// and `p=<signed origin>` (each when known) then one entry per partition,
/// joined by commas. An entry is
/// `<topic id, 32 hex>:<partition>:<high watermark>`, followed, when the
/// row is known, by `:<object id, 32 hex>:<byte offset>:<byte length>:<record
/// count>:<max timestamp>` (the row's offsets follow from the watermark
/// and the count). A rewritten partition is `r=<topic id>:<partition>`. A
/// listener that reads only the first three fields of each entry, and
/// skips what it cannot parse, still understands it.
pub(crate) fn payloads(a: &Announcement, max: usize) -> Vec<String> {
    let stamp = match (a.at_ms, &a.origin) {
        (Some(ms), Some(url)) => Some(format!("t={ms},p={url}")),
        (Some(ms), None) => Some(format!("t={ms}")),
        (None, Some(url)) => Some(format!("p={url}")),
        (None, None) => None,
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let rewritten = a
        .rewritten
        .iter()
        .map(|(topic, partition)| format!("r={}:{partition}", topic.simple()));
    let advances = a.advances.iter().map(|adv| {
        let (topic, partition) = adv.key;
        let mut entry = format!("{}:{partition}:{}", topic.simple(), adv.high_watermark);
        if let Some(r) = &adv.row {
            let _ = write!(
                entry,
                ":{}:{}:{}:{}:{}",
                r.object_id.simple(),
                r.byte_offset,
                r.byte_len,
                r.record_count,
                r.max_timestamp
            );
        }
        entry
    });
    for entry in rewritten.chain(advances) {
        if cur.len() + 1 + entry.len() > max && cur.len() > stamp.as_ref().map_or(0, String::len) {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty()
            && let Some(t) = &stamp
        {
            cur.push_str(t);
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

/// Parses a payload; malformed entries are skipped, and so is a row that
/// does not add up.
pub(crate) fn parse(payload: &str) -> Announcement {
    let mut out = Announcement::default();
    for e in payload.split(',') {
        if let Some(ms) = e.strip_prefix("t=") {
            out.at_ms = ms.parse().ok();
            continue;
        }
        if let Some(url) = e.strip_prefix("p=") {
            out.origin = Some(url.into());
            continue;
        }
        if let Some(key) = e.strip_prefix("r=") {
            let mut parts = key.split(':');
            let topic = parts.next().and_then(|t| Uuid::parse_str(t).ok());
            let partition = parts.next().and_then(|p| p.parse::<i32>().ok());
            if let (Some(topic), Some(partition)) = (topic, partition) {
                out.rewritten.push((topic, partition));
            }
            continue;
        }
        let parts: Vec<&str> = e.split(':').collect();
        let Some(((topic, partition), hw)) = (|| {
            let topic = Uuid::parse_str(parts.first()?).ok()?;
            Some((
                (topic, parts.get(1)?.parse::<i32>().ok()?),
                parts.get(2)?.parse::<i64>().ok()?,
            ))
        })() else {
            continue;
        };
        let row = (parts.len() == 8)
            .then(|| {
                let record_count: u32 = parts[6].parse().ok()?;
                (record_count > 0 && i64::from(record_count) <= hw).then_some(())?;
                Some(BatchRow {
                    base_offset: hw - i64::from(record_count),
                    last_offset: hw - 1,
                    object_id: Uuid::parse_str(parts[3]).ok()?,
                    byte_offset: parts[4].parse().ok()?,
                    byte_len: parts[5].parse().ok()?,
                    record_count,
                    max_timestamp: parts[7].parse().ok()?,
                })
            })
            .flatten();
        out.advances.push(Advance {
            key: (topic, partition),
            high_watermark: hw,
            row,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hw: i64, count: u32) -> BatchRow {
        BatchRow {
            base_offset: hw - i64::from(count),
            last_offset: hw - 1,
            object_id: Uuid::now_v7(),
            byte_offset: 8 + hw as u64,
            byte_len: 100,
            record_count: count,
            max_timestamp: 1_700_000_000_000 + hw,
        }
    }

    #[test]
    fn payloads_round_trip_and_respect_the_size() {
        let t = Uuid::now_v7();
        let a = Announcement {
            at_ms: Some(1_764_000_000_123),
            advances: (0..500)
                .map(|p| Advance {
                    key: (t, p),
                    high_watermark: i64::from(p) * 1000 + 7,
                    row: (p % 3 != 0).then(|| row(i64::from(p) * 1000 + 7, 1 + p as u32)),
                })
                .collect(),
            rewritten: vec![],
            origin: Some("http://10.1.2.3:8080".into()),
        };
        let chunks = payloads(&a, 1000);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= 1000));
        let mut back = Announcement::default();
        for c in &chunks {
            let part = parse(c);
            assert_eq!(part.at_ms, a.at_ms, "every payload carries the stamp");
            assert_eq!(part.origin, a.origin, "and the origin");
            back.advances.extend(part.advances);
        }
        back.at_ms = a.at_ms;
        back.origin = a.origin.clone();
        assert_eq!(back, a);

        let r = Announcement {
            at_ms: None,
            advances: vec![],
            rewritten: vec![(t, 3), (t, 12)],
            origin: None,
        };
        let chunks = payloads(&r, 1000);
        assert_eq!(chunks.len(), 1);
        assert_eq!(parse(&chunks[0]), r);
        assert!(parse("garbage,also:bad").advances.is_empty());
    }

    #[test]
    fn rows_that_do_not_add_up_are_dropped_but_the_advance_kept() {
        let t = Uuid::now_v7().simple();
        let o = Uuid::now_v7().simple();
        // More records than the watermark allows, and a row cut short.
        let a = parse(&format!("{t}:0:5:{o}:8:10:6:1,{t}:1:5:{o}:8"));
        assert_eq!(a.advances.len(), 2);
        assert!(
            a.advances
                .iter()
                .all(|x| x.row.is_none() && x.high_watermark == 5)
        );
        assert_eq!(a.at_ms, None);
    }
}
