//! Choosing a record's partition exactly as Kafka's default partitioner
//! does for keyed records, so keyed data lands where Kafka clients expect.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Spreads unkeyed records over partitions in turn.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicU32);

impl RoundRobin {
    /// The next partition of `partitions`.
    pub fn next(&self, partitions: i32) -> i32 {
        (self.0.fetch_add(1, Ordering::Relaxed) % partitions.max(1) as u32) as i32
    }

    /// A record's partition among `partitions`: the one it names, else its
    /// key's (as Kafka), else the next in turn. `None` when it names one
    /// that does not exist.
    pub fn choose(
        &self,
        partitions: i32,
        explicit: Option<i64>,
        key: Option<&[u8]>,
    ) -> Option<i32> {
        match (explicit, key) {
            (Some(p), _) => (0..i64::from(partitions)).contains(&p).then_some(p as i32),
            (None, Some(k)) => Some(partition_for_key(k, partitions)),
            (None, None) => Some(self.next(partitions)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_published_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), *want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn keyed_partition_is_stable_and_in_range() {
        for n in 1..50 {
            let p = partition_for_key(b"user-42", n);
            assert!((0..n).contains(&p));
            assert_eq!(p, partition_for_key(b"user-42", n));
        }
        let rr = RoundRobin::default();
        let picks: Vec<_> = (0..6).map(|_| rr.next(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(
            rr.choose(3, Some(2), Some(b"user-42")),
            Some(2),
            "explicit wins"
        );
        assert_eq!(rr.choose(3, Some(3), None), None);
        assert_eq!(rr.choose(3, Some(-1), None), None);
        assert_eq!(
            rr.choose(3, None, Some(b"user-42")),
            Some(partition_for_key(b"user-42", 3))
        );
    }
}
