//! Partition-key hashing: Kinesis MD5 hash keys, Kafka's murmur2, and uniform hash-key ranges.
//! Owns the arithmetic only; which function a stream uses is the catalog's `KeyHash` choice.

use md5::{Digest, Md5};

/// The largest Kinesis hash key, 2^128 − 1.
pub const MAX_HASH_KEY: u128 = u128::MAX;

/// Kinesis's hash key for a partition key: MD5 of its UTF-8 bytes, read as an unsigned
/// big-endian 128-bit integer (kinesalite `partitionKeyToHashKey`, KCL `effectiveHashKey`).
pub fn md5_hash_key(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key).into())
}

/// Kafka's `Utils.murmur2`, as the Java client's default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a default Java producer picks for a key: `toPositive(murmur2(key)) % n`.
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// Splits `[start, end]` into `n` contiguous ranges of equal width, the last one taking the
/// remainder, as CreateStream does for `[0, 2^128 − 1]`.
pub fn uniform_ranges(start: u128, end: u128, n: u32) -> Vec<(u128, u128)> {
    assert!(n > 0 && start <= end);
    if n == 1 {
        return vec![(start, end)];
    }
    let width = end - start;
    // (width + 1) / n without overflowing when the range is the whole u128 space.
    let step = width / n as u128 + u128::from(width % n as u128 == n as u128 - 1);
    (0..n)
        .map(|i| {
            let s = start + step * i as u128;
            let e = if i == n - 1 { end } else { s + step - 1 };
            (s, e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_utils_vectors() {
        // Kafka's UtilsTest.testMurmur2 and check_mapping.py.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn md5_hash_key_is_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(md5_hash_key(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn uniform_split_matches_kinesis() {
        let r = uniform_ranges(0, MAX_HASH_KEY, 4);
        let step = 1u128 << 126;
        assert_eq!(r[0], (0, step - 1));
        assert_eq!(r[1], (step, 2 * step - 1));
        assert_eq!(r[3], (3 * step, MAX_HASH_KEY));
        // A 3-way split: floor(2^128 / 3) as kinesalite computes it.
        let r = uniform_ranges(0, MAX_HASH_KEY, 3);
        assert_eq!(r[0].1 + 1, r[1].0);
        assert_eq!(r[1].0, 113427455640312821154458202477256070485);
        assert_eq!(r[2].1, MAX_HASH_KEY);
        let one = uniform_ranges(0, MAX_HASH_KEY, 1);
        assert_eq!(one, vec![(0, MAX_HASH_KEY)]);
    }

    #[test]
    fn uniform_split_of_sub_range_tiles_it() {
        let r = uniform_ranges(100, 199, 3);
        assert_eq!(r.first().unwrap().0, 100);
        assert_eq!(r.last().unwrap().1, 199);
        for w in r.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
    }
}
