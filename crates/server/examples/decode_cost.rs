//! What a `limit=1` read costs the decoder in a chunk of many records:
//! time and bytes allocated, for the whole-chunk decode reads once did
//! (`decode_batch`) and for the windowed decode they do now
//! (`decode_window`), uncompressed and compressed, and for a compressed
//! batch already opened (kept decompressed by the reader).
//!
//! `cargo run --release -p streamhouse-server --example decode_cost [records]`

use std::alloc::System;
use std::time::Instant;

use bytes::Bytes;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use streamhouse_server::format::{
    RecordWindow, decode_batch, decode_open, decode_window, encode_batch, open_batch,
};
use streamhouse_server::model::{Compression, Record};

/// The system allocator, counting what it hands out.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Median time (ms) and bytes allocated by one call of `f`, over `runs`.
fn measure(runs: usize, mut f: impl FnMut() -> usize) -> (f64, u64) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let region = Region::new(GLOBAL);
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let stats = region.change();
        bytes = (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as u64;
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], bytes)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from_static(b"1")),
            headers: Default::default(),
        })
        .collect();
    println!("records={n}");
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mut out = Vec::new();
        encode_batch(&mut out, &records, compression);
        let chunk = Bytes::from(out);
        let (ms, bytes) = measure(11, || decode_batch(&chunk, 0).map_or(0, |r| r.len()));
        println!(
            "{compression:?} chunk_bytes={} whole_decode ms={ms:.3} allocated={bytes}",
            chunk.len()
        );
        for (at, from) in [
            ("start", 0),
            ("middle", n as i64 / 2),
            ("end", n as i64 - 1),
        ] {
            let window = RecordWindow {
                from,
                max_records: 1,
            };
            let (ms, bytes) = measure(11, || {
                decode_window(&chunk, 0, window).map_or(0, |(r, _)| r.len())
            });
            println!("{compression:?} window_decode at={at} ms={ms:.3} allocated={bytes}");
            if compression != Compression::None {
                // What a read costs once the decompressed batch is cached.
                let open = open_batch(&chunk).expect("batch");
                let (ms, bytes) = measure(11, || {
                    decode_open(&open, 0, window).map_or(0, |(r, _)| r.len())
                });
                println!("{compression:?} opened_decode at={at} ms={ms:.3} allocated={bytes}");
            }
        }
    }
}
