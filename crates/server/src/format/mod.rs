//! Object and chunk encoding: what bytes StreamHouse puts in object storage.
//!
//! An object is one flush: a header, one Kafka v2 RecordBatch ("chunk") per
//! topic-partition, and a footer listing the chunks with a checksum. The
//! chunks are byte-compatible with what a Kafka producer writes, so a
//! future Kafka-protocol listener can serve them as they are. Nothing here
//! does I/O, and the records it encodes are the plain types of
//! [`crate::model`]; every decoder bounds-checks and returns [`FormatError`] on bad
//! input rather than panicking.

mod batch;
mod compression;
mod object;
mod varint;

pub use batch::{
    BATCH_HEADER_LEN, BatchHeader, ChunkStats, OpenBatch, RecordWindow, checked_batch,
    decode_batch, decode_open, decode_window, encode_batch, encode_batch_at, open_batch,
    open_written_batch, patch_base_offset, read_header,
};
pub use compression::MAX_DECOMPRESSED_BYTES;
pub use object::{ChunkEntry, OBJECT_HEADER_LEN, ObjectBuilder, read_directory};
pub use varint::{get_varint, get_varlong, put_varlong, varlong_len};

/// Why bytes could not be decoded. Never caused by a bug in the caller:
/// always by what is (or is not) in the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("corrupt {0}")]
    Corrupt(&'static str),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}
