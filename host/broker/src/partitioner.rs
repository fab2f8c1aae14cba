//! Key partitioning: Kafka's default partitioner, so a key lands on the same partition here
//! as it would in Kafka with the same partition count.

/// Kafka's `Utils.murmur2` (MurmurHash2, seed `0x9747b28c`), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka hashes with Java ints; the length is the byte count truncated to 32 bits.
    #[allow(clippy::cast_possible_truncation)]
    let len = data.len() as u32;
    let mut h: u32 = SEED ^ len;
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
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&b) = rest.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    // Reinterpret the bits as Java's signed int.
    i32::from_le_bytes(h.to_le_bytes())
}

/// The partition of a keyed record: `toPositive(murmur2(key)) % partitions`, as Kafka.
/// `partitions` must be positive.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let positive = u32::from_le_bytes(murmur2(key).to_le_bytes()) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn to_positive_masks_the_sign_bit() {
        // murmur2("21") = -973932308; Kafka: (-973932308 & 0x7fffffff) % 10 = 4.
        assert_eq!(partition_for_key(b"21", 10), 1_173_551_340 % 10);
    }

    #[test]
    fn partition_in_range() {
        for i in 0..1000u32 {
            assert!(partition_for_key(&i.to_le_bytes(), 7) < 7);
        }
    }
}
