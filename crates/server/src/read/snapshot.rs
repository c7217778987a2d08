//! Snapshots of a topic's state: the latest record of every key, as of a
//! consistent cut per partition (its high watermark when the snapshot
//! began), with the offset to resume following from. A dashboard loads
//! the snapshot, then follows from the resume offsets and misses nothing:
//! every record after the cut comes live, none before it twice.
//!
//! Tombstones (a key with a null value) remove their key; records without
//! a key are not state and are left out. The topic need not be compacted
//! (key compaction only makes the snapshot cheaper to take).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{ReadError, ReadRequest, Reader};
use crate::model::{StoredRecord, TopicMeta};

/// Records read per page while building a snapshot.
const PAGE_RECORDS: usize = 10_000;
const PAGE_BYTES: usize = 16 << 20;

/// One partition's state at its cut.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub partition: i32,
    /// The latest record of each live key, in offset order.
    pub records: Vec<StoredRecord>,
    /// The partition's high watermark at the cut: follow from here.
    pub resume_offset: i64,
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The live state is larger than the caller may hold.
    #[error("the snapshot holds more than {limit} bytes of keys and values")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl Reader {
    /// The state of one partition; `budget` is what its live keys and
    /// values may add up to, and is reduced by what they take.
    pub async fn snapshot_partition(
        &self,
        topic: &Arc<TopicMeta>,
        partition: i32,
        budget: &mut usize,
    ) -> Result<PartitionSnapshot, SnapshotError> {
        let (start, cut) = self.refresh((topic.id, partition)).await?;
        let mut latest: HashMap<Bytes, StoredRecord> = HashMap::new();
        let mut held = 0usize;
        let size = |r: &StoredRecord| {
            r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len)
        };
        let mut offset = start;
        while offset < cut {
            let read = self
                .read(&ReadRequest {
                    topic: topic.clone(),
                    partition,
                    offset: Some(offset),
                    max_records: PAGE_RECORDS,
                    max_bytes: PAGE_BYTES,
                    wait: Duration::ZERO,
                })
                .await;
            let page = match read {
                // Retention moved the log start past this page meanwhile:
                // what it removed is not state any more.
                Err(ReadError::OutOfRange {
                    log_start_offset, ..
                }) if log_start_offset > offset => {
                    offset = log_start_offset;
                    continue;
                }
                other => other?,
            };
            if page.next_offset <= offset {
                break;
            }
            offset = page.next_offset;
            for r in page.records.into_iter().filter(|r| r.offset < cut) {
                let Some(key) = r.key.clone() else { continue };
                if let Some(old) = latest.remove(&key) {
                    held -= size(&old);
                }
                if r.value.is_some() {
                    held += size(&r);
                    if held > *budget {
                        return Err(SnapshotError::TooLarge { limit: *budget });
                    }
                    // Copies, so a kept record does not hold its whole chunk.
                    let copy = |b: &Option<Bytes>| b.as_deref().map(Bytes::copy_from_slice);
                    let kept = StoredRecord {
                        key: copy(&r.key),
                        value: copy(&r.value),
                        ..r
                    };
                    latest.insert(Bytes::copy_from_slice(&key), kept);
                }
            }
        }
        *budget -= held;
        let mut records: Vec<StoredRecord> = latest.into_values().collect();
        records.sort_by_key(|r| r.offset);
        Ok(PartitionSnapshot {
            partition,
            records,
            resume_offset: cut,
        })
    }
}
