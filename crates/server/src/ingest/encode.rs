//! A flush's first step: encode every buffered request into one object,
//! a chunk per topic-partition, and remember where each record went.

use std::collections::BTreeMap;

use bytes::Bytes;
use uuid::Uuid;

use super::batcher::Pending;
use crate::format::ObjectBuilder;
use crate::metadata::ChunkCommit;

/// Where each record of each request sits: (chunk index, position in the
/// chunk), request by request, record by record.
pub(super) type Placement = Vec<Vec<(u32, u32)>>;

/// One flush, encoded.
#[derive(Debug)]
pub(super) struct Encoded {
    pub(super) object: Bytes,
    /// One per chunk, in the object's order.
    pub(super) chunks: Vec<ChunkCommit>,
    pub(super) placement: Placement,
    pub(super) records: u64,
}

/// Groups the records of `batch` by topic-partition, keeping each
/// request's order, and encodes them as one object.
pub(super) fn encode(batch: &[Pending]) -> Encoded {
    let mut groups: BTreeMap<(Uuid, i32), Vec<(usize, usize)>> = BTreeMap::new();
    let mut total_bytes = 0;
    for (i, p) in batch.iter().enumerate() {
        total_bytes += p.bytes;
        for (j, (partition, _)) in p.req.records.iter().enumerate() {
            groups
                .entry((p.req.topic.id, *partition))
                .or_default()
                .push((i, j));
        }
    }
    let mut placement: Placement = batch
        .iter()
        .map(|p| vec![(0, 0); p.req.records.len()])
        .collect();
    let mut builder = ObjectBuilder::with_capacity(total_bytes);
    let mut chunks = Vec::with_capacity(groups.len());
    let mut records = 0u64;
    for (g, ((topic_id, partition), members)) in groups.iter().enumerate() {
        let compression = batch[members[0].0].req.topic.compression;
        let chunk_records = members.iter().map(|&(i, j)| &batch[i].req.records[j].1);
        let entry = builder.add_chunk(*topic_id, *partition, chunk_records, compression);
        for (k, &(i, j)) in members.iter().enumerate() {
            placement[i][j] = (g as u32, k as u32);
        }
        records += u64::from(entry.record_count);
        chunks.push(ChunkCommit {
            topic_id: *topic_id,
            partition: *partition,
            byte_offset: entry.byte_offset,
            byte_len: entry.byte_len,
            record_count: entry.record_count,
            max_timestamp: entry.max_timestamp,
        });
    }
    let (object, _) = builder.finish();
    Encoded {
        object,
        chunks,
        placement,
        records,
    }
}
