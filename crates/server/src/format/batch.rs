//! Kafka v2 RecordBatch encoding and decoding: one chunk of an object.
//!
//! A chunk is written exactly as a Kafka producer would write it, with base
//! offset 0; the real base offset is known only once the metadata store has
//! sequenced the chunk, and it is supplied on read (or patched into the
//! first 8 bytes, which the CRC does not cover). Layout (big-endian):
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 = 2
//! crc u32 (CRC-32C of everything after it) | attributes i16
//! lastOffsetDelta i32 | firstTimestamp i64 | maxTimestamp i64
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32
//! records (possibly compressed)
//! ```
//!
//! Each record is `length varint | attributes i8 | timestampDelta varlong |
//! offsetDelta varint | key | value | headers`, byte strings prefixed by a
//! varint length (-1 for null). The decoder never trusts a length: every
//! read is bounds-checked and malformed input returns [`FormatError`].

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use super::FormatError;
use super::compression::{attribute_code, compress, decompress};
use super::varint::{get_varint, get_varlong, put_varlong, varlong_len};
use crate::model::{Compression, Header, Record, StoredRecord};

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 61;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
const CONTROL_MASK: i16 = 0x20;

/// Summary of an encoded chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStats {
    pub record_count: u32,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varlong(out, -1),
    }
}

fn opt_len(b: Option<&[u8]>) -> usize {
    match b {
        Some(b) => varlong_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

fn put_record(out: &mut Vec<u8>, r: &Record, offset_delta: i64, first_ts: i64) {
    let ts_delta = r.timestamp.wrapping_sub(first_ts);
    let mut body = 1 + varlong_len(ts_delta) + varlong_len(offset_delta);
    body += opt_len(r.key.as_deref()) + opt_len(r.value.as_deref());
    body += varlong_len(r.headers.len() as i64);
    for h in &r.headers {
        body += opt_len(Some(h.key.as_bytes())) + opt_len(h.value.as_deref());
    }
    put_varlong(out, body as i64);
    let start = out.len();
    out.push(0); // record attributes: unused
    put_varlong(out, ts_delta);
    put_varlong(out, offset_delta);
    put_bytes(out, r.key.as_deref());
    put_bytes(out, r.value.as_deref());
    put_varlong(out, r.headers.len() as i64);
    for h in &r.headers {
        put_bytes(out, Some(h.key.as_bytes()));
        put_bytes(out, h.value.as_deref());
    }
    debug_assert_eq!(out.len() - start, body);
}

/// Appends one RecordBatch holding `records` (at least one) to `out`, with
/// base offset 0, and returns its statistics.
pub fn encode_batch<'a, I>(out: &mut Vec<u8>, records: I, compression: Compression) -> ChunkStats
where
    I: IntoIterator<Item = &'a Record>,
    I::IntoIter: Clone,
{
    encode_batch_at(out, records.into_iter().zip(0..), compression)
}

/// Like [`encode_batch`], with each record's offset delta from the batch's
/// base given (rising; gaps allowed): how compaction rewrites records
/// whose neighbours it dropped, keeping their offsets.
pub fn encode_batch_at<'a, I>(out: &mut Vec<u8>, records: I, compression: Compression) -> ChunkStats
where
    I: IntoIterator<Item = (&'a Record, i64)>,
{
    let start = out.len();
    out.resize(start + BATCH_HEADER_LEN, 0);

    let mut count: u32 = 0;
    let mut first_ts = 0;
    let mut min_ts = i64::MAX;
    let mut max_ts = i64::MIN;
    let mut last_delta = 0i64;
    let body_start = out.len();
    for (i, (r, delta)) in records.into_iter().enumerate() {
        if i == 0 {
            first_ts = r.timestamp;
        }
        min_ts = min_ts.min(r.timestamp);
        max_ts = max_ts.max(r.timestamp);
        put_record(out, r, delta, first_ts);
        last_delta = delta;
        count += 1;
    }
    assert!(count > 0, "a batch holds at least one record");

    let mut attributes: i16 = 0;
    if let Some(compressed) = compress(compression, &out[body_start..]) {
        out.truncate(body_start);
        out.extend_from_slice(&compressed);
        attributes |= attribute_code(compression);
    }

    let batch_len = (out.len() - start - 12) as i32;
    let h = &mut out[start..start + BATCH_HEADER_LEN];
    h[0..8].copy_from_slice(&0i64.to_be_bytes());
    h[8..12].copy_from_slice(&batch_len.to_be_bytes());
    // Leader epoch 0: this store is the only "leader" a chunk ever has.
    h[12..16].copy_from_slice(&0i32.to_be_bytes());
    h[16] = 2;
    h[21..23].copy_from_slice(&attributes.to_be_bytes());
    h[23..27].copy_from_slice(&(last_delta as i32).to_be_bytes());
    h[27..35].copy_from_slice(&first_ts.to_be_bytes());
    h[35..43].copy_from_slice(&max_ts.to_be_bytes());
    h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
    h[57..61].copy_from_slice(&(count as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES_OFFSET..]);
    out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());

    ChunkStats {
        record_count: count,
        min_timestamp: min_ts,
        max_timestamp: max_ts,
    }
}

/// Writes `base_offset` into an encoded batch, as a broker does on append.
/// The CRC does not cover these bytes, so the batch stays valid.
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), FormatError> {
    let head = batch
        .get_mut(0..8)
        .ok_or(FormatError::Truncated("batch header"))?;
    head.copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The fixed fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub batch_length: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
}

/// Parses and checks the header of the batch at the start of `bytes`,
/// including its CRC. Returns the header and the batch's total length.
pub fn read_header(bytes: &[u8]) -> Result<(BatchHeader, usize), FormatError> {
    parse_header(bytes, true)
}

/// [`read_header`], with the CRC checked only when `check_crc` is set.
fn parse_header(bytes: &[u8], check_crc: bool) -> Result<(BatchHeader, usize), FormatError> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(FormatError::Truncated("batch header"));
    }
    let batch_length = be_i32(bytes, 8);
    let total = usize::try_from(batch_length)
        .ok()
        .and_then(|l| l.checked_add(12))
        .filter(|&t| t >= BATCH_HEADER_LEN)
        .ok_or(FormatError::Corrupt("batch length"))?;
    if bytes.len() < total {
        return Err(FormatError::Truncated("batch body"));
    }
    if bytes[16] != 2 {
        return Err(FormatError::Unsupported("record batch magic other than 2"));
    }
    let stored_crc = be_i32(bytes, CRC_OFFSET) as u32;
    if check_crc && crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..total]) != stored_crc {
        return Err(FormatError::Corrupt("batch CRC mismatch"));
    }
    let header = BatchHeader {
        batch_length,
        attributes: be_i16(bytes, 21),
        last_offset_delta: be_i32(bytes, 23),
        first_timestamp: be_i64(bytes, 27),
        max_timestamp: be_i64(bytes, 35),
        record_count: be_i32(bytes, 57),
    };
    if header.record_count < 0 || header.last_offset_delta < -1 {
        return Err(FormatError::Corrupt("negative record count"));
    }
    Ok((header, total))
}

/// The range of the next length-prefixed field of `rec` (a record's bytes),
/// `None` for a null field.
fn get_opt_range(rec: &[u8], pos: &mut usize) -> Result<Option<Range<usize>>, FormatError> {
    let len = get_varint(rec, pos)?;
    if len < 0 {
        if len != -1 {
            return Err(FormatError::Corrupt("negative byte length"));
        }
        return Ok(None);
    }
    let start = *pos;
    let end = start
        .checked_add(len as usize)
        .filter(|&e| e <= rec.len())
        .ok_or(FormatError::Truncated("record field"))?;
    *pos = end;
    Ok(Some(start..end))
}

/// Which records of a batch a read wants: those at or after `from`, at
/// most `max_records` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordWindow {
    pub from: i64,
    pub max_records: usize,
}

impl RecordWindow {
    /// Every record.
    pub const ALL: RecordWindow = RecordWindow {
        from: i64::MIN,
        max_records: usize::MAX,
    };
}

/// Decodes every record of one batch, given the base offset the metadata
/// store assigned it. Every length is checked against the bytes.
pub fn decode_batch(chunk: &Bytes, base_offset: i64) -> Result<Vec<StoredRecord>, FormatError> {
    decode_window(chunk, base_offset, RecordWindow::ALL).map(|(records, _)| records)
}

/// A batch whose CRC was checked and whose records were decompressed:
/// what windows are decoded from. Reads of a compressed chunk keep it so
/// that paging through the chunk decompresses it once, not once per page.
#[derive(Debug, Clone)]
pub struct OpenBatch {
    header: BatchHeader,
    /// The records, uncompressed; empty for a control batch.
    body: Bytes,
    compressed: bool,
}

impl OpenBatch {
    /// Whether the stored batch was compressed (so opening it cost a
    /// decompression worth keeping).
    pub fn was_compressed(&self) -> bool {
        self.compressed
    }

    /// Bytes held by the decompressed records.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// The batch at the start of `chunk` as stored (still compressed, if it
/// was), after checking its header, and its CRC when `check_crc` is set:
/// what a read that hands batches on untouched sends.
pub fn checked_batch(chunk: &Bytes, check_crc: bool) -> Result<Bytes, FormatError> {
    let (_, total) = parse_header(chunk, check_crc)?;
    Ok(chunk.slice(..total))
}

/// Checks the batch at the start of `chunk` and decompresses its records.
pub fn open_batch(chunk: &Bytes) -> Result<OpenBatch, FormatError> {
    open_checked(chunk, true)
}

/// [`open_batch`] for bytes this process encoded and kept in memory since:
/// their CRC was computed from these very bytes, so it is not computed
/// again (every length is still checked). Bytes read back from storage go
/// through [`open_batch`].
pub fn open_written_batch(chunk: &Bytes) -> Result<OpenBatch, FormatError> {
    open_checked(chunk, false)
}

fn open_checked(chunk: &Bytes, check_crc: bool) -> Result<OpenBatch, FormatError> {
    let (header, total) = parse_header(chunk, check_crc)?;
    if header.attributes & CONTROL_MASK != 0 {
        // Control batches (transaction markers) carry no user records.
        return Ok(OpenBatch {
            header: BatchHeader {
                record_count: 0,
                ..header
            },
            body: Bytes::new(),
            compressed: false,
        });
    }
    let raw = chunk.slice(BATCH_HEADER_LEN..total);
    let (body, compressed) = match header.attributes & COMPRESSION_MASK {
        0 => (raw, false),
        code => (Bytes::from(decompress(code, &raw)?), true),
    };
    Ok(OpenBatch {
        header,
        body,
        compressed,
    })
}

/// Decodes the records of one batch that `window` wants, and returns them
/// with the batch's record count. Records before the window are skipped
/// without being decoded (their length prefix says where the next one
/// starts), and decoding stops once the window is full, so reading one
/// record of a batch of many costs little. The batch CRC (checked first)
/// covers the records that are never decoded.
pub fn decode_window(
    chunk: &Bytes,
    base_offset: i64,
    window: RecordWindow,
) -> Result<(Vec<StoredRecord>, u32), FormatError> {
    decode_open(&open_batch(chunk)?, base_offset, window)
}

/// [`decode_window`] on a batch already opened.
pub fn decode_open(
    batch: &OpenBatch,
    base_offset: i64,
    window: RecordWindow,
) -> Result<(Vec<StoredRecord>, u32), FormatError> {
    let (header, body) = (&batch.header, &batch.body);
    // Every record takes at least 7 bytes, so a count beyond that is a lie
    // that must not drive an allocation.
    let count = header.record_count as usize;
    if count > body.len() / 7 + 1 {
        return Err(FormatError::Corrupt("record count exceeds batch size"));
    }
    let whole = window == RecordWindow::ALL;
    let mut records = Vec::with_capacity(count.min(window.max_records));
    let mut pos = 0usize;
    for _ in 0..count {
        if records.len() >= window.max_records {
            return Ok((records, header.record_count as u32));
        }
        let len = get_varint(body, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or(FormatError::Truncated("record"))?;
        pos += 1; // attributes
        if pos > end {
            return Err(FormatError::Truncated("record attributes"));
        }
        // Plain slices until the record is wanted: a `Bytes` slice costs
        // two atomic operations, more than skipping a record.
        let ts_delta = get_varlong(&body[..end], &mut pos)?;
        let offset_delta = get_varint(&body[..end], &mut pos)?;
        let offset = base_offset.wrapping_add(i64::from(offset_delta));
        if offset < window.from {
            pos = end;
            continue;
        }
        // Fields are sliced from the batch bounded by the record's end:
        // one reference count per field kept, none for the record itself.
        let rec = &body[..end];
        let key = get_opt_range(rec, &mut pos)?.map(|r| body.slice(r));
        let value = get_opt_range(rec, &mut pos)?.map(|r| body.slice(r));
        let header_count = get_varint(rec, &mut pos)?;
        if header_count < 0 || header_count as usize > end.saturating_sub(pos) {
            return Err(FormatError::Corrupt("header count"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let k = get_opt_range(rec, &mut pos)?.ok_or(FormatError::Corrupt("null header key"))?;
            let key = match &rec[k] {
                b"content-type" => Cow::Borrowed("content-type"),
                other => Cow::Owned(
                    std::str::from_utf8(other)
                        .map_err(|_| FormatError::Corrupt("header key is not UTF-8"))?
                        .to_owned(),
                ),
            };
            // The value the agent writes on every JSON record costs no
            // reference count.
            let value = get_opt_range(rec, &mut pos)?.map(|r| match &rec[r.clone()] {
                b"application/json" => Bytes::from_static(b"application/json"),
                _ => body.slice(r),
            });
            headers.push(Header { key, value });
        }
        if pos != end {
            return Err(FormatError::Corrupt("record length mismatch"));
        }
        records.push(StoredRecord {
            offset,
            timestamp: header.first_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers,
        });
    }
    if whole && pos != body.len() {
        return Err(FormatError::Corrupt("trailing bytes after records"));
    }
    Ok((records, header.record_count as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(ts: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            timestamp: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: smallvec::smallvec![Header {
                key: "content-type".into(),
                value: Some(Bytes::from_static(b"application/json")),
            }],
        }
    }

    #[test]
    fn encodes_and_decodes_all_codecs() {
        let records: Vec<Record> = (0..500)
            .map(|i| rec(1_700_000_000_000 + i, Some("k"), Some("{\"n\":1234567890}")))
            .collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut out = Vec::new();
            let stats = encode_batch(&mut out, &records, c);
            assert_eq!(stats.record_count, 500);
            let (h, total) = read_header(&out).unwrap();
            assert_eq!(total, out.len());
            assert_eq!(h.attributes & COMPRESSION_MASK, attribute_code(c));
            let back = decode_batch(&Bytes::from(out), 100).unwrap();
            assert_eq!(back.len(), 500);
            assert_eq!(back[499].offset, 599);
            assert_eq!(back[3].value, records[3].value);
        }
    }

    #[test]
    fn written_batches_skip_only_the_crc() {
        let mut out = Vec::new();
        let recs = [Record {
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
            timestamp: 1,
        }];
        encode_batch(&mut out, recs.iter(), Compression::None);
        // The value's one byte (before the header count): only the CRC
        // notices the change.
        let v = out.len() - 2;
        out[v] ^= 0x01;
        let flipped = Bytes::from(out.clone());
        assert_eq!(
            open_batch(&flipped).unwrap_err(),
            FormatError::Corrupt("batch CRC mismatch")
        );
        assert!(open_written_batch(&flipped).is_ok());
        let cut = Bytes::from(out[..out.len() - 2].to_vec());
        assert!(
            open_written_batch(&cut).is_err(),
            "lengths are still checked"
        );
    }

    #[test]
    fn patched_base_offset_keeps_crc() {
        let mut out = Vec::new();
        encode_batch(&mut out, &[rec(5, None, None)], Compression::None);
        patch_base_offset(&mut out, 42).unwrap();
        assert!(read_header(&out).is_ok());
    }

    #[test]
    fn a_window_decodes_only_the_records_it_wants() {
        let records: Vec<Record> = (0..1000)
            .map(|i| rec(i, Some("k"), Some(&format!("v{i}"))))
            .collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut out = Vec::new();
            encode_batch(&mut out, &records, c);
            let chunk = Bytes::from(out);
            let window = RecordWindow {
                from: 10_500,
                max_records: 3,
            };
            let (got, count) = decode_window(&chunk, 10_000, window).unwrap();
            assert_eq!(count, 1000);
            let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, [10_500, 10_501, 10_502], "{c:?}");
            assert_eq!(got[0].value.as_deref(), Some(&b"v500"[..]));
            let past = RecordWindow {
                from: 11_000,
                max_records: 10,
            };
            assert!(decode_window(&chunk, 10_000, past).unwrap().0.is_empty());
            assert_eq!(decode_batch(&chunk, 10_000).unwrap().len(), 1000);
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        encode_batch(
            &mut out,
            &[rec(1, Some("a"), Some("b")), rec(2, None, Some("c"))],
            Compression::None,
        );
        for cut in 0..out.len() {
            assert!(decode_batch(&Bytes::copy_from_slice(&out[..cut]), 0).is_err());
        }
        for i in ATTRIBUTES_OFFSET..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(decode_batch(&Bytes::from(bad), 0).is_err(), "flip at {i}");
        }
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let bytes = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        (
            any::<i64>(),
            bytes.clone(),
            bytes.clone(),
            proptest::collection::vec(("[a-z-]{0,12}", bytes), 0..4),
        )
            .prop_map(|(timestamp, key, value, headers)| Record {
                timestamp,
                key: key.map(Bytes::from),
                value: value.map(Bytes::from),
                headers: headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key: key.into(),
                        value: value.map(Bytes::from),
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(records in proptest::collection::vec(arb_record(), 1..20),
                      codec in prop_oneof![Just(Compression::None), Just(Compression::Lz4), Just(Compression::Zstd)],
                      base in 0i64..1 << 40) {
            let mut out = Vec::new();
            encode_batch(&mut out, &records, codec);
            let back = decode_batch(&Bytes::from(out), base).unwrap();
            prop_assert_eq!(back.len(), records.len());
            for (i, (a, b)) in records.iter().zip(&back).enumerate() {
                prop_assert_eq!(b.offset, base + i as i64);
                prop_assert_eq!(a.timestamp, b.timestamp);
                prop_assert_eq!(&a.key, &b.key);
                prop_assert_eq!(&a.value, &b.value);
                prop_assert_eq!(&a.headers[..], &b.headers[..]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_batch(&Bytes::from(data), 0);
        }
    }
}
