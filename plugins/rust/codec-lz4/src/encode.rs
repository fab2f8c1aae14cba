//! An LZ4 block encoder for wasm32: the reference "fast" algorithm
//! (`LZ4_compress_default`: one 4096-entry hash table of positions, the
//! skip-ahead search, backward extension of each match), with the match
//! counter reading 8 bytes at a time. lz4_flex's encoder reads `usize`, 4
//! bytes on wasm32, which halves its speed on the long matches of log data;
//! wasm has 64-bit loads, so reading `u64` costs the same as `u32`.
//!
//! Output: one LZ4 block as the reference format defines it (the last 5
//! bytes are literals, the last match starts at least 12 bytes before the
//! end, offsets in 1..=65535), readable by any LZ4 block decoder; the tests
//! decode it with lz4_flex's.

/// Bytes at the end of a block that must be literals.
const LAST_LITERALS: usize = 5;
/// A match may not start in the last `MFLIMIT` bytes.
const MFLIMIT: usize = 12;
const MIN_MATCH: usize = 4;
const MAX_DISTANCE: usize = 65_535;
const HASH_LOG: u32 = 12;
/// After `1 << SKIP_TRIGGER` failed probes the search step grows by one.
const SKIP_TRIGGER: u32 = 6;

/// Largest block [`compress_into`] writes for `len` bytes of input (the
/// reference `LZ4_COMPRESSBOUND`).
pub const fn max_block_len(len: usize) -> usize {
    len + len / 255 + 16
}

#[inline(always)]
fn read_u32(input: &[u8], at: usize) -> u32 {
    debug_assert!(at + 4 <= input.len());
    // SAFETY: every caller passes `at + 4 <= input.len()` (see the loop
    // invariants in `compress_into`).
    unsafe { input.as_ptr().add(at).cast::<u32>().read_unaligned() }
}

#[inline(always)]
fn read_u64(input: &[u8], at: usize) -> u64 {
    debug_assert!(at + 8 <= input.len());
    // SAFETY: as for `read_u32`, with 8 bytes.
    unsafe { input.as_ptr().add(at).cast::<u64>().read_unaligned() }
}

/// The hash of the 5 bytes at the low end of `sequence` (little-endian), as
/// the reference's `LZ4_hash5`.
#[inline(always)]
fn hash(sequence: u64) -> usize {
    const PRIME: u64 = 889_523_592_379;
    ((u64::from_le(sequence) << 24).wrapping_mul(PRIME) >> (64 - HASH_LOG)) as usize
}

/// Number of equal bytes at `a` and `b` (`a > b`), not reading at or past
/// `limit`.
#[inline(always)]
fn count_equal(input: &[u8], mut a: usize, mut b: usize, limit: usize) -> usize {
    let start = a;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    while a + 16 <= limit {
        use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, v128, v128_load};
        // SAFETY: `b < a` and `a + 16 <= limit <= input.len()`.
        let equal = unsafe {
            let x = v128_load(input.as_ptr().add(a).cast::<v128>());
            let y = v128_load(input.as_ptr().add(b).cast::<v128>());
            u8x16_bitmask(u8x16_eq(x, y))
        };
        if equal != 0xffff {
            return a - start + equal.trailing_ones() as usize;
        }
        a += 16;
        b += 16;
    }
    while a + 8 <= limit {
        let diff = read_u64(input, a) ^ read_u64(input, b);
        if diff != 0 {
            return a - start + (u64::from_le(diff).trailing_zeros() / 8) as usize;
        }
        a += 8;
        b += 8;
    }
    while a < limit && input[a] == input[b] {
        a += 1;
        b += 1;
    }
    a - start
}

/// Room past the bound that [`compress_into`] reserves: literal copies
/// move 16 bytes at a time and may write up to 15 bytes past their end.
const WILD_COPY: usize = 16;

/// Writes the block into spare capacity reserved up front: no capacity
/// check per byte, and literals copied in 16-byte steps (wasm's
/// `memory.copy`, which a variable-length `copy_from_slice` becomes, is a
/// call into the runtime: dearer than the copy for a few bytes).
struct Writer {
    base: *mut u8,
    pos: usize,
    /// Bytes the writer may touch (`pos` never passes `cap - WILD_COPY`).
    cap: usize,
}

impl Writer {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        debug_assert!(self.pos < self.cap);
        // SAFETY: `pos` stays within the reserved capacity: the block bound
        // holds for every sequence this encoder emits (each literal run of
        // n bytes takes at most n + n/255 + 1 bytes besides the token, each
        // match at most as many bytes as it covers), plus `WILD_COPY`.
        unsafe { self.base.add(self.pos).write(b) };
        self.pos += 1;
    }

    /// Appends the LZ4 length extension of `n` (after a 15 in the token).
    #[inline(always)]
    fn length(&mut self, mut n: usize) {
        while n >= 255 {
            self.byte(255);
            n -= 255;
        }
        self.byte(n as u8);
    }

    /// Copies `input[from..to]`: in 16-byte steps when `input` has 16 bytes
    /// past `to` (the last step reads and writes up to 15 bytes more; the
    /// next write or the end of the block covers them), exactly otherwise.
    #[inline(always)]
    fn literals(&mut self, input: &[u8], from: usize, to: usize) {
        let n = to - from;
        debug_assert!(self.pos + n + WILD_COPY <= self.cap);
        // SAFETY: source within `input` (checked below for the wild copy),
        // destination within the reserved capacity (see `byte`).
        unsafe {
            let src = input.as_ptr().add(from);
            let dst = self.base.add(self.pos);
            if to + WILD_COPY <= input.len() {
                let mut done = 0;
                while done < n {
                    std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), 16);
                    done += 16;
                }
            } else {
                std::ptr::copy_nonoverlapping(src, dst, n);
            }
        }
        self.pos += n;
    }

    /// Appends one sequence: the literals `input[from..to]`, then (unless
    /// `offset` is 0, the last sequence) a match of `match_len` bytes
    /// `offset` bytes back.
    #[inline(always)]
    fn sequence(&mut self, input: &[u8], from: usize, to: usize, offset: usize, match_len: usize) {
        let lit = to - from;
        let token_at = self.pos;
        self.byte(0);
        let mut token = if lit >= 15 {
            self.length(lit - 15);
            15 << 4
        } else {
            (lit as u8) << 4
        };
        self.literals(input, from, to);
        if offset != 0 {
            let [lo, hi] = (offset as u16).to_le_bytes();
            self.byte(lo);
            self.byte(hi);
            let extra = match_len - MIN_MATCH;
            if extra >= 15 {
                token |= 15;
                self.length(extra - 15);
            } else {
                token |= extra as u8;
            }
        }
        // SAFETY: `token_at` was written above.
        unsafe { self.base.add(token_at).write(token) };
    }
}

/// Appends one LZ4 block holding `input` to `out` (reserving
/// [`max_block_len`] plus 16 bytes of spare capacity). `input` must be
/// shorter than 4 GiB (positions are kept as `u32`).
pub fn compress_into(input: &[u8], out: &mut Vec<u8>) {
    let len = input.len();
    assert!(u32::try_from(len).is_ok(), "LZ4 input of 4 GiB or more");
    out.reserve(max_block_len(len) + WILD_COPY);
    let start = out.len();
    let mut w = Writer {
        // SAFETY: `start` is within the allocation (it is its length).
        base: unsafe { out.as_mut_ptr().add(start) },
        pos: 0,
        cap: out.capacity() - start,
    };
    encode(input, &mut w);
    debug_assert!(w.pos <= max_block_len(len));
    // SAFETY: `w` initialised exactly `w.pos` bytes after `start`.
    unsafe { out.set_len(start + w.pos) };
}

fn encode(input: &[u8], w: &mut Writer) {
    let len = input.len();
    if len < MFLIMIT + 1 {
        w.sequence(input, 0, len, 0, 0);
        return;
    }
    // Matches are searched at positions <= `search_end` (so 8 bytes can be
    // read there) and end before `match_end`.
    let search_end = len - MFLIMIT;
    let match_end = len - LAST_LITERALS;
    let mut table = [0u32; 1 << HASH_LOG];
    let mut anchor = 0;
    table[hash(read_u64(input, 0))] = 0;
    let mut ip = 1;
    'sequences: loop {
        // Find a match: probe the hash table, stepping faster over data
        // that does not match.
        let mut probes = 1u32 << SKIP_TRIGGER;
        let mut candidate;
        loop {
            if ip > search_end {
                break 'sequences;
            }
            let sequence = read_u64(input, ip);
            let h = hash(sequence);
            candidate = table[h] as usize;
            table[h] = ip as u32;
            if ip - candidate <= MAX_DISTANCE && read_u32(input, candidate) == sequence as u32 {
                break;
            }
            ip += (probes >> SKIP_TRIGGER) as usize;
            probes += 1;
        }
        // Extend it backwards over pending literals.
        while ip > anchor && candidate > 0 && input[ip - 1] == input[candidate - 1] {
            ip -= 1;
            candidate -= 1;
        }
        let match_len =
            MIN_MATCH + count_equal(input, ip + MIN_MATCH, candidate + MIN_MATCH, match_end);
        w.sequence(input, anchor, ip, ip - candidate, match_len);
        ip += match_len;
        anchor = ip;
        if ip > search_end {
            break;
        }
        // Index a position inside the match, as the reference does.
        table[hash(read_u64(input, ip - 2))] = (ip - 2) as u32;
    }
    w.sequence(input, anchor, len, 0, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) -> usize {
        let mut block = Vec::new();
        compress_into(input, &mut block);
        assert!(block.len() <= max_block_len(input.len()));
        let decoded = lz4_flex::block::decompress(&block, input.len()).unwrap();
        assert_eq!(decoded, input, "{} bytes", input.len());
        block.len()
    }

    /// A small deterministic generator (xorshift), so the tests need no
    /// dependency.
    fn noise(seed: u64, len: usize, alphabet: u8) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % u64::from(alphabet)) as u8
            })
            .collect()
    }

    #[test]
    fn every_short_length_round_trips() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabc0123456789012345678901234567890";
        for len in 0..text.len() {
            round_trip(&text[..len]);
            round_trip(&vec![b'x'; len]);
        }
    }

    #[test]
    fn varied_inputs_round_trip() {
        for (seed, alphabet) in [(1, 2), (2, 4), (3, 16), (4, 255)] {
            for len in [13, 100, 4096, 70_000, 300_000] {
                round_trip(&noise(seed, len, alphabet));
            }
        }
        // Long runs need length extensions in both literals and matches.
        let mut mixed = noise(9, 1000, 255);
        mixed.extend(std::iter::repeat_n(7u8, 100_000));
        mixed.extend(noise(10, 1000, 255));
        mixed.extend(mixed.clone());
        round_trip(&mixed);
        // Matches farther than 64 KiB back cannot be used.
        let far = noise(11, 70_000, 255);
        round_trip(&[far.clone(), far].concat());
    }

    #[test]
    fn ratio_is_that_of_lz4() {
        let line = b"{\"ts\":1700000000000,\"level\":\"info\",\"user\":\"user-1\"}\n";
        let input = line.repeat(10_000);
        let ours = round_trip(&input);
        let reference = lz4_flex::block::compress(&input).len();
        assert!(ours <= reference + reference / 10, "{ours} vs {reference}");
    }
}
