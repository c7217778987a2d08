//! Reads that hand stored batches on as they are (`Accept:
//! application/vnd.streamhouse.record-batches`): no record is decoded or
//! rendered, which is what a consumer catching up on a whole partition
//! wants. Each batch is the Kafka v2 RecordBatch the agent stored, with
//! its real base offset written into its first 8 bytes (which its CRC does
//! not cover), still compressed if the topic compresses; its CRC is checked
//! as for any read.
//!
//! Whole batches only, as a Kafka fetch answers: the first may hold records
//! before the offset asked for (the consumer skips them), the limits are
//! met at batch boundaries (at least one batch, possibly more records or
//! bytes than asked), and the next read starts where the last batch ended.

use bytes::Bytes;
use futures_util::StreamExt;

use super::{FETCH_CONCURRENCY, ReadError, ReadRequest, Reader};
use crate::format::checked_batch;
use crate::metadata::BatchRow;

/// What a batch read returns.
#[derive(Debug, Clone, Default)]
pub struct BatchesResult {
    /// The batches, each as two pieces: its base offset (8 bytes,
    /// big-endian) and the rest of it as stored.
    pub pieces: Vec<Bytes>,
    /// Records in the batches, those before the offset asked for included.
    pub records: u64,
    /// Offset to read from next: one past the last batch.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Reader {
    /// Reads whole stored batches; see the module header. `max_records`
    /// and `max_bytes` stop the read at the first batch boundary at or
    /// past them.
    pub async fn read_batches(&self, req: &ReadRequest) -> Result<BatchesResult, ReadError> {
        let key = (req.topic.id, req.partition);
        let (offset, log_start, hw) = self.position(req).await?;
        let mut out = BatchesResult {
            next_offset: offset,
            high_watermark: hw,
            log_start_offset: log_start,
            ..BatchesResult::default()
        };
        let (max_records, mut bytes) = (req.max_records as u64, 0usize);
        let mut ahead: Option<BatchRow> = None;
        while out.next_offset < hw && out.records < max_records && bytes < req.max_bytes {
            let want = (max_records - out.records).clamp(1, 1000);
            let rows = self
                .log
                .find_batches(req.topic.id, req.partition, out.next_offset, want as u32)
                .await?;
            if rows.is_empty() {
                // Key compaction removed the rest up to the watermark.
                out.next_offset = hw;
                break;
            }
            let (mut held_records, mut held_bytes) = (out.records, bytes);
            let wanted = rows
                .iter()
                .take_while(|r| {
                    let take = held_records < max_records && held_bytes < req.max_bytes;
                    held_records += u64::from(r.record_count);
                    held_bytes += r.byte_len as usize;
                    take
                })
                .count();
            ahead = rows.get(wanted).copied();
            let fetching = rows[..wanted].to_vec();
            let mut chunks =
                futures_util::stream::iter(fetching.into_iter().map(|row| async move {
                    let batch = self.get_checked(&row, checked_batch).await?;
                    Ok::<_, ReadError>((row, batch))
                }))
                .buffered(FETCH_CONCURRENCY);
            while let Some(chunk) = chunks.next().await {
                let (row, batch) = chunk?;
                if out.pieces.is_empty() && row.base_offset > out.next_offset {
                    self.still_stored(key, offset).await?;
                }
                out.pieces
                    .push(Bytes::copy_from_slice(&row.base_offset.to_be_bytes()));
                out.pieces.push(batch.slice(8..));
                out.records += u64::from(row.record_count);
                bytes += batch.len();
                out.next_offset = row.last_offset + 1;
            }
        }
        out.high_watermark = out.high_watermark.max(out.next_offset);
        if let Some(row) = ahead
            && u64::from(row.byte_len) <= self.read_ahead_max_bytes
            && out.next_offset < out.high_watermark
        {
            self.read_ahead(row);
        }
        self.metrics.read_requests.inc();
        self.metrics.read_records.inc_by(out.records);
        self.metrics.read_bytes.inc_by(bytes as u64);
        Ok(out)
    }
}
