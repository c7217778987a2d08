//! The object layout: one flush of one agent, readable without metadata.
//!
//! ```text
//! header  : magic "SHOB" | version u8 = 1 | 3 reserved bytes
//! chunks  : one Kafka RecordBatch per topic-partition, back to back
//! footer  : entry count u32, then per chunk
//!           topic id [16] | partition i32 | byte offset u64 | byte length u32
//!           | record count u32 | min timestamp i64 | max timestamp i64
//! trailer : footer length u32 | CRC-32C(header ++ footer) u32 | magic "SHOF"
//! ```
//!
//! All integers are big-endian, like Kafka's. Chunks carry their own CRC,
//! so the footer checksum covers only what the chunks do not: the header
//! and the directory.

use bytes::Bytes;
use uuid::Uuid;

use super::FormatError;
use super::batch::{ChunkStats, encode_batch, encode_batch_at};
use crate::model::{Compression, Record};

const HEADER_MAGIC: &[u8; 4] = b"SHOB";
const TRAILER_MAGIC: &[u8; 4] = b"SHOF";
const VERSION: u8 = 1;
/// Bytes before the first chunk.
pub const OBJECT_HEADER_LEN: usize = 8;
const TRAILER_LEN: usize = 12;
const ENTRY_LEN: usize = 52;

/// Where one chunk lives in its object, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    pub topic_id: Uuid,
    pub partition: i32,
    pub byte_offset: u64,
    pub byte_len: u32,
    pub record_count: u32,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

/// Builds one object chunk by chunk.
#[derive(Debug)]
pub struct ObjectBuilder {
    buf: Vec<u8>,
    entries: Vec<ChunkEntry>,
}

impl Default for ObjectBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl ObjectBuilder {
    /// Starts an object, reserving room for about `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 1024);
        buf.extend_from_slice(HEADER_MAGIC);
        buf.extend_from_slice(&[VERSION, 0, 0, 0]);
        ObjectBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    /// Appends the chunk of one topic-partition. `records` must not be empty.
    pub fn add_chunk<'a, I>(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        records: I,
        compression: Compression,
    ) -> ChunkEntry
    where
        I: IntoIterator<Item = &'a Record>,
        I::IntoIter: Clone,
    {
        self.push(topic_id, partition, |buf| {
            encode_batch(buf, records, compression)
        })
    }

    /// Appends a chunk whose records carry their offset deltas from the
    /// chunk's base (see [`encode_batch_at`]). `records` must not be empty.
    pub fn add_chunk_at<'a, I>(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        records: I,
        compression: Compression,
    ) -> ChunkEntry
    where
        I: IntoIterator<Item = (&'a Record, i64)>,
    {
        self.push(topic_id, partition, |buf| {
            encode_batch_at(buf, records, compression)
        })
    }

    fn push(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        encode: impl FnOnce(&mut Vec<u8>) -> ChunkStats,
    ) -> ChunkEntry {
        let start = self.buf.len();
        let ChunkStats {
            record_count,
            min_timestamp,
            max_timestamp,
        } = encode(&mut self.buf);
        let entry = ChunkEntry {
            topic_id,
            partition,
            byte_offset: start as u64,
            byte_len: (self.buf.len() - start) as u32,
            record_count,
            min_timestamp,
            max_timestamp,
        };
        self.entries.push(entry);
        entry
    }

    /// Writes the footer and returns the object bytes and its directory.
    pub fn finish(mut self) -> (Bytes, Vec<ChunkEntry>) {
        let footer_start = self.buf.len();
        self.buf
            .extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            self.buf.extend_from_slice(e.topic_id.as_bytes());
            self.buf.extend_from_slice(&e.partition.to_be_bytes());
            self.buf.extend_from_slice(&e.byte_offset.to_be_bytes());
            self.buf.extend_from_slice(&e.byte_len.to_be_bytes());
            self.buf.extend_from_slice(&e.record_count.to_be_bytes());
            self.buf.extend_from_slice(&e.min_timestamp.to_be_bytes());
            self.buf.extend_from_slice(&e.max_timestamp.to_be_bytes());
        }
        let footer_len = (self.buf.len() - footer_start) as u32;
        let mut crc = crc32c::crc32c(&self.buf[..OBJECT_HEADER_LEN]);
        crc = crc32c::crc32c_append(crc, &self.buf[footer_start..]);
        self.buf.extend_from_slice(&footer_len.to_be_bytes());
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        (Bytes::from(self.buf), self.entries)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True before the first chunk.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn take<const N: usize>(b: &[u8], at: &mut usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[*at..*at + N]);
    *at += N;
    a
}

/// Reads and checks the chunk directory of a whole object.
pub fn read_directory(object: &[u8]) -> Result<Vec<ChunkEntry>, FormatError> {
    if object.len() < OBJECT_HEADER_LEN + TRAILER_LEN + 4 {
        return Err(FormatError::Truncated("object"));
    }
    if &object[..4] != HEADER_MAGIC {
        return Err(FormatError::Corrupt("object header magic"));
    }
    if object[4] != VERSION {
        return Err(FormatError::Unsupported("object version"));
    }
    let trailer = &object[object.len() - TRAILER_LEN..];
    if &trailer[8..] != TRAILER_MAGIC {
        return Err(FormatError::Corrupt("object trailer magic"));
    }
    let footer_len = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    let stored_crc = u32::from_be_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let footer_end = object.len() - TRAILER_LEN;
    let footer_start = footer_end
        .checked_sub(footer_len)
        .filter(|&s| s >= OBJECT_HEADER_LEN)
        .ok_or(FormatError::Corrupt("footer length"))?;
    let footer = &object[footer_start..footer_end];
    let mut crc = crc32c::crc32c(&object[..OBJECT_HEADER_LEN]);
    crc = crc32c::crc32c_append(crc, footer);
    if crc != stored_crc {
        return Err(FormatError::Corrupt("object footer CRC mismatch"));
    }
    if footer.len() < 4 {
        return Err(FormatError::Corrupt("footer length"));
    }
    let count = u32::from_be_bytes([footer[0], footer[1], footer[2], footer[3]]) as usize;
    if footer.len() != 4 + count.saturating_mul(ENTRY_LEN) {
        return Err(FormatError::Corrupt("footer entry count"));
    }
    let mut at = 4;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let e = ChunkEntry {
            topic_id: Uuid::from_bytes(take::<16>(footer, &mut at)),
            partition: i32::from_be_bytes(take(footer, &mut at)),
            byte_offset: u64::from_be_bytes(take(footer, &mut at)),
            byte_len: u32::from_be_bytes(take(footer, &mut at)),
            record_count: u32::from_be_bytes(take(footer, &mut at)),
            min_timestamp: i64::from_be_bytes(take(footer, &mut at)),
            max_timestamp: i64::from_be_bytes(take(footer, &mut at)),
        };
        let end = e.byte_offset.checked_add(u64::from(e.byte_len));
        if e.byte_offset < OBJECT_HEADER_LEN as u64
            || end.is_none_or(|end| end > footer_start as u64)
        {
            return Err(FormatError::Corrupt("chunk range outside object"));
        }
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::decode_batch;

    #[test]
    fn builds_and_reads_back_an_object() {
        let t = Uuid::now_v7();
        let r = Record {
            timestamp: 7,
            key: None,
            value: Some(Bytes::from_static(b"hello")),
            headers: Default::default(),
        };
        let mut b = ObjectBuilder::default();
        b.add_chunk(t, 0, [&r, &r], Compression::None);
        b.add_chunk(t, 3, [&r], Compression::Zstd);
        let (bytes, entries) = b.finish();
        assert_eq!(read_directory(&bytes).unwrap(), entries);
        let e = entries[1];
        let chunk =
            bytes.slice(e.byte_offset as usize..(e.byte_offset + u64::from(e.byte_len)) as usize);
        let recs = decode_batch(&chunk, 10).unwrap();
        assert_eq!(recs[0].offset, 10);
        assert_eq!(recs[0].value.as_deref(), Some(&b"hello"[..]));
        for cut in 0..bytes.len() {
            assert!(read_directory(&bytes[..cut]).is_err());
        }
    }
}
