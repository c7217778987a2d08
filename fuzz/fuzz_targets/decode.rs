//! Fuzzes the chunk and object decoders: any bytes must decode or fail
//! with an error, never panic. Inputs long enough to hold a batch header
//! get a valid length and CRC, so the fuzzer reaches the record parser
//! instead of stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhouse_server::format::{BATCH_HEADER_LEN, decode_batch, read_directory};

fuzz_target!(|data: &[u8]| {
    let _ = read_directory(data);
    let _ = decode_batch(&bytes::Bytes::copy_from_slice(data), 0);
    if data.len() >= BATCH_HEADER_LEN {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - 12) as i32;
        fixed[8..12].copy_from_slice(&len.to_be_bytes());
        fixed[16] = 2;
        let crc = crc32c::crc32c(&fixed[21..]);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        let _ = decode_batch(&bytes::Bytes::from(fixed), 0);
    }
});
