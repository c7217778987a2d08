//! Reading pages as record batches (`Accept:
//! application/vnd.streamhouse.record-batches`) for `bench consume
//! --format batches`, as a Kafka consumer reads a fetch: each batch's CRC
//! is checked, its records are walked by their length prefixes, and those
//! before the offset asked for are skipped. Compressed batches are counted
//! by their headers, not decompressed.

use anyhow::{Context, bail};

use super::page::Page;

/// The media type of the answer.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.streamhouse.record-batches";

const HEADER_LEN: usize = 61;

/// Fetches `url` (a read from `offset`) into `buf` and walks its batches.
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
    while let Some(chunk) = response.chunk().await? {
        buf.extend_from_slice(&chunk);
    }
    let (records, value_bytes) =
        walk(buf, offset).with_context(|| format!("batches from {url}"))?;
    Ok(Page {
        records,
        value_bytes,
        next_offset,
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

/// Records at or after `offset` in the batches of `body`, and the bytes of
/// their values.
pub(crate) fn walk(body: &[u8], offset: i64) -> anyhow::Result<(u64, u64)> {
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
