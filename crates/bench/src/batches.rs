//! Reading pages as record batches (`Accept:
//! application/vnd.streamhouse.record-batches`) for `bench consume
//! --format batches`, as a Kafka consumer reads a fetch: each batch's CRC
//! is checked, its records are walked by their length prefixes, and those
//! before the offset asked for are skipped. Compressed batches are counted
//! by their headers, not decompressed. The answer is walked as its pieces
//! arrive ([`Walker`]), without gathering it into one buffer first: only a
//! batch header or a record cut between two pieces is copied.

use anyhow::{Context, bail};

use super::page::Page;

/// The media type of the answer.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.streamhouse.record-batches";

const HEADER_LEN: usize = 61;

/// Fetches `url` (a read from `offset`) and walks its batches as they
/// arrive; `buf` holds a header or record cut between two pieces of the
/// answer (its capacity is kept from page to page).
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    offset: i64,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Page> {
    let mut response = client
        .get(url)
        .header("accept", MEDIA_TYPE)
        .send()
        .await?
        .error_for_status()?;
    let next_offset = response
        .headers()
        .get("streamhouse-next-offset")
        .context("no streamhouse-next-offset header")?
        .to_str()?
        .parse::<i64>()?;
    buf.clear();
    let mut walker = Walker::new(offset, std::mem::take(buf));
    let mut body_bytes = 0;
    let walked = async {
        while let Some(piece) = response.chunk().await? {
            body_bytes += piece.len() as u64;
            walker.feed(&piece)?;
        }
        walker.end()
    }
    .await;
    let (records, value_bytes) = walked.with_context(|| format!("batches from {url}"))?;
    *buf = walker.carry;
    Ok(Page {
        records,
        value_bytes,
        next_offset,
        body_bytes,
    })
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A zigzag varint at `*pos` of `b`.
fn varint(b: &[u8], pos: &mut usize) -> anyhow::Result<i64> {
    let mut raw = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = b.get(*pos) else {
            bail!("varint runs past its record");
        };
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    bail!("varint longer than 10 bytes")
}

/// The length of the record starting `b` (its length prefix included),
/// when the prefix is all there.
fn record_size(b: &[u8]) -> anyhow::Result<Option<usize>> {
    let mut pos = 0;
    match varint(b, &mut pos) {
        Ok(len) => Ok(Some(pos + usize::try_from(len).context("record length")?)),
        Err(_) if b.len() < 10 => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value bytes of one record (`rec`, its length prefix included), or
/// `None` when it is before `offset`.
fn record(rec: &[u8], base: i64, offset: i64) -> anyhow::Result<Option<u64>> {
    let mut pos = 0;
    varint(rec, &mut pos)?; // length
    pos += 1; // attributes
    varint(rec, &mut pos)?; // timestamp delta
    let delta = varint(rec, &mut pos)?;
    if base + delta < offset {
        return Ok(None);
    }
    let key = varint(rec, &mut pos)?;
    pos += usize::try_from(key.max(0))?;
    let value = varint(rec, &mut pos)?;
    Ok(Some(value.max(0) as u64))
}

/// Where a [`Walker`] is in the answer.
enum At {
    /// Between batches, or inside a header (its bytes so far in `carry`).
    Header,
    /// Inside a batch's records.
    Body {
        base: i64,
        /// Record bytes of the batch still to come.
        left: usize,
        crc: u32,
        want_crc: u32,
        compressed: bool,
        /// Records of the batch not walked yet.
        records_left: usize,
    },
}

/// Walks batches from pieces of any size; see the module header.
pub(crate) struct Walker {
    offset: i64,
    at: At,
    /// A header or record cut between pieces.
    carry: Vec<u8>,
    records: u64,
    value_bytes: u64,
}

impl Walker {
    pub(crate) fn new(offset: i64, carry: Vec<u8>) -> Self {
        Walker {
            offset,
            at: At::Header,
            carry,
            records: 0,
            value_bytes: 0,
        }
    }

    pub(crate) fn feed(&mut self, mut piece: &[u8]) -> anyhow::Result<()> {
        while !piece.is_empty() {
            match self.at {
                At::Header => {
                    let take = (HEADER_LEN - self.carry.len()).min(piece.len());
                    self.carry.extend_from_slice(&piece[..take]);
                    piece = &piece[take..];
                    if self.carry.len() == HEADER_LEN {
                        self.start_batch()?;
                    }
                }
                At::Body { left, .. } => {
                    let take = left.min(piece.len());
                    self.body(&piece[..take])?;
                    piece = &piece[take..];
                }
            }
        }
        Ok(())
    }

    /// The records at or after the offset and their value bytes, once the
    /// answer has ended: it must end between batches.
    pub(crate) fn end(&mut self) -> anyhow::Result<(u64, u64)> {
        if !matches!(self.at, At::Header) || !self.carry.is_empty() {
            bail!("the answer ends inside a batch");
        }
        Ok((self.records, self.value_bytes))
    }

    fn start_batch(&mut self) -> anyhow::Result<()> {
        let h = &self.carry;
        let base = i64::from_be_bytes(h[..8].try_into()?);
        let total = usize::try_from(be_i32(h, 8))?
            .checked_add(12)
            .filter(|&t| t >= HEADER_LEN)
            .context("batch length")?;
        if h[16] != 2 {
            bail!("batch magic {}", h[16]);
        }
        self.at = At::Body {
            base,
            left: total - HEADER_LEN,
            crc: crc32c::crc32c(&h[21..]),
            want_crc: be_i32(h, 17) as u32,
            compressed: i16::from_be_bytes([h[21], h[22]]) & 0x07 != 0,
            records_left: usize::try_from(be_i32(h, 57))?,
        };
        self.carry.clear();
        self.body(&[])
    }

    /// Walks one record (its length prefix included).
    fn count(&mut self, rec: &[u8], base: i64) -> anyhow::Result<()> {
        if let Some(v) = record(rec, base, self.offset)? {
            self.records += 1;
            self.value_bytes += v;
        }
        Ok(())
    }

    /// Record bytes of the current batch (no more than are left of it).
    fn body(&mut self, mut data: &[u8]) -> anyhow::Result<()> {
        let At::Body {
            base,
            mut left,
            mut crc,
            want_crc,
            compressed,
            mut records_left,
        } = self.at
        else {
            bail!("record bytes outside a batch");
        };
        crc = crc32c::crc32c_append(crc, data);
        left -= data.len();
        if compressed {
            if left == 0 {
                self.records += records_left as u64;
                records_left = 0;
            }
        } else {
            if !self.carry.is_empty() {
                // Complete the record cut at the end of the last piece:
                // its length prefix first, then the rest of it.
                let mut size = record_size(&self.carry)?;
                while size.is_none() && !data.is_empty() {
                    self.carry.push(data[0]);
                    data = &data[1..];
                    size = record_size(&self.carry)?;
                }
                if let Some(size) = size {
                    let take = size.saturating_sub(self.carry.len()).min(data.len());
                    self.carry.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.carry.len() >= size {
                        let rec = std::mem::take(&mut self.carry);
                        self.count(rec.get(..size).context("record length")?, base)?;
                        self.carry = rec;
                        self.carry.clear();
                        records_left = records_left
                            .checked_sub(1)
                            .context("more records than the batch counts")?;
                    }
                }
            }
            while self.carry.is_empty() && !data.is_empty() {
                match record_size(data)? {
                    Some(size) if size <= data.len() => {
                        self.count(&data[..size], base)?;
                        records_left = records_left
                            .checked_sub(1)
                            .context("more records than the batch counts")?;
                        data = &data[size..];
                    }
                    _ => {
                        self.carry.extend_from_slice(data);
                        data = &[];
                    }
                }
            }
        }
        if left == 0 {
            if crc != want_crc {
                bail!("batch CRC mismatch");
            }
            if !self.carry.is_empty() || records_left != 0 {
                bail!("a batch's records do not fill it");
            }
            self.at = At::Header;
        } else {
            self.at = At::Body {
                base,
                left,
                crc,
                want_crc,
                compressed,
                records_left,
            };
        }
        Ok(())
    }
}

/// Records at or after `offset` in the batches of `body`, and the bytes of
/// their values: the whole answer at once.
#[cfg(test)]
fn walk(body: &[u8], offset: i64) -> anyhow::Result<(u64, u64)> {
    let (mut records, mut value_bytes, mut at) = (0u64, 0u64, 0usize);
    while at < body.len() {
        let b = &body[at..];
        if b.len() < HEADER_LEN {
            bail!("truncated batch header at byte {at}");
        }
        let base = i64::from_be_bytes(b[..8].try_into()?);
        let total = usize::try_from(be_i32(b, 8))?
            .checked_add(12)
            .filter(|&t| t >= HEADER_LEN && t <= b.len())
            .context("batch length")?;
        if b[16] != 2 {
            bail!("batch magic {} at byte {at}", b[16]);
        }
        if crc32c::crc32c(&b[21..total]) != be_i32(b, 17) as u32 {
            bail!("batch CRC mismatch at byte {at}");
        }
        let count = usize::try_from(be_i32(b, 57))?;
        let compressed = i16::from_be_bytes([b[21], b[22]]) & 0x07 != 0;
        if compressed {
            // The header's count; the records before `offset` cannot be
            // told apart without decompressing.
            records += count as u64;
        } else {
            let batch = &b[HEADER_LEN..total];
            let mut pos = 0;
            for _ in 0..count {
                let len = usize::try_from(varint(batch, &mut pos)?)?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= batch.len())
                    .context("record length")?;
                let rec = &batch[..end];
                pos += 1; // attributes
                varint(rec, &mut pos)?; // timestamp delta
                let delta = varint(rec, &mut pos)?;
                if base + delta >= offset {
                    let key = varint(rec, &mut pos)?;
                    pos += usize::try_from(key.max(0))?;
                    let value = varint(rec, &mut pos)?;
                    records += 1;
                    value_bytes += value.max(0) as u64;
                }
                pos = end;
            }
        }
        at += total;
    }
    Ok((records, value_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A batch at `base` of records keyed "k" with values of these sizes.
    fn batch(base: i64, values: &[usize]) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, &n) in values.iter().enumerate() {
            let mut r = vec![0u8];
            put_varint(&mut r, 0);
            put_varint(&mut r, i as i64);
            put_varint(&mut r, 1);
            r.push(b'k');
            put_varint(&mut r, n as i64);
            r.extend(std::iter::repeat_n(b'v', n));
            put_varint(&mut r, 0);
            put_varint(&mut records, r.len() as i64);
            records.extend(r);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&((HEADER_LEN - 12 + records.len()) as i32).to_be_bytes());
        b[16] = 2;
        b[57..61].copy_from_slice(&(values.len() as i32).to_be_bytes());
        b.extend(records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn pieces_of_any_size_walk_as_the_whole_answer_does() {
        let mut body = batch(10, &[5, 300, 0, 1000]);
        body.extend(batch(14, &[70; 40]));
        body.extend(batch(54, &[2000]));
        assert_eq!(
            walk(&body, 12).unwrap(),
            (2 + 40 + 1, 1000 + 40 * 70 + 2000)
        );
        for offset in [0, 12, 30, 54, 60] {
            let whole = walk(&body, offset).unwrap();
            for size in [1, 2, 3, 7, 61, 62, 100, 1024, 5000, body.len()] {
                let mut w = Walker::new(offset, Vec::new());
                for piece in body.chunks(size) {
                    w.feed(piece).unwrap();
                }
                assert_eq!(w.end().unwrap(), whole, "offset {offset}, pieces of {size}");
            }
        }
        let mut w = Walker::new(0, Vec::new());
        w.feed(&body[..body.len() - 1]).unwrap();
        assert!(w.end().is_err(), "cut short");
        let mut bad = body.clone();
        bad[100] ^= 1;
        let mut w = Walker::new(0, Vec::new());
        assert!(w.feed(&bad).is_err(), "damaged");
    }

    #[test]
    fn refuses_what_is_not_whole_batches() {
        assert!(walk(&[0u8; 10], 0).is_err());
        let mut batch = vec![0u8; HEADER_LEN];
        batch[8..12].copy_from_slice(&((HEADER_LEN - 12) as i32).to_be_bytes());
        batch[16] = 2;
        assert!(walk(&batch, 0).is_err(), "wrong CRC");
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(walk(&batch, 0).unwrap(), (0, 0), "an empty batch");
        batch.pop();
        assert!(walk(&batch, 0).is_err(), "truncated");
    }
}
