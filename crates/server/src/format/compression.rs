//! Chunk compression codecs: none, lz4 (frame format) and zstd.
//!
//! The attribute codes are Kafka's (0 none, 3 lz4, 4 zstd), so a stored
//! chunk is a valid Kafka batch. gzip (1) and snappy (2) are recognised but
//! not produced; decoding them is refused with a clear error. Decompression
//! is bounded so a hostile chunk cannot expand without limit.

use std::io::Read;

use super::FormatError;
use crate::model::Compression;

/// Largest decompressed batch body accepted, whatever the codec.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// The codec's code in the RecordBatch attributes (bits 0..=2).
pub(crate) fn attribute_code(c: Compression) -> i16 {
    match c {
        Compression::None => 0,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Compresses `data` with `codec`; `None` means "store uncompressed" (codec
/// none, or compression would not make it smaller, as Kafka clients also
/// decide).
pub(crate) fn compress(codec: Compression, data: &[u8]) -> Option<Vec<u8>> {
    let out = match codec {
        Compression::None => return None,
        Compression::Lz4 => {
            use std::io::Write;
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2 + 64),
            );
            // Writing to a Vec cannot fail.
            enc.write_all(data).ok()?;
            enc.finish().ok()?
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).ok()?,
    };
    (out.len() < data.len()).then_some(out)
}

/// Decompresses a batch body written with attribute code `code`.
pub(crate) fn decompress(code: i16, data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let limit = MAX_DECOMPRESSED_BYTES as u64 + 1;
    let mut out = Vec::with_capacity(data.len() * 3);
    match code {
        3 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| FormatError::Corrupt("lz4 frame"))?;
        }
        4 => {
            zstd::stream::read::Decoder::new(data)
                .map_err(|_| FormatError::Corrupt("zstd frame"))?
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| FormatError::Corrupt("zstd frame"))?;
        }
        1 => return Err(FormatError::Unsupported("gzip compression")),
        2 => return Err(FormatError::Unsupported("snappy compression")),
        _ => return Err(FormatError::Corrupt("unknown compression code")),
    }
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(FormatError::Corrupt("decompressed batch too large"));
    }
    Ok(out)
}
