//! Zigzag varints (protobuf / Kafka style) and a bounds-checked payload reader.
//!
//! A varint is the zigzag-mapped value written 7 bits at a time, least significant group first,
//! with the high bit of each byte set when another byte follows. A 32-bit varint takes at most 5
//! bytes, a 64-bit varlong at most 10. Every read is checked against the bytes left; nothing here
//! panics on any input.

use super::BatchError;

/// Maps a signed value to an unsigned one so small magnitudes encode short: 0, -1, 1, -2 ... →
/// 0, 1, 2, 3 ...
#[inline]
pub(crate) const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(crate) const fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Encoded size in bytes of `v` as a zigzag varlong (1..=10). An `i32` widened to `i64` has the
/// same encoding as a 32-bit varint, so this also sizes varints.
#[inline]
pub(crate) const fn varlong_len(v: i64) -> usize {
    let u = zigzag(v);
    // Bits needed, at least 1, rounded up to groups of 7.
    let bits = 64 - (u | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `v` as a zigzag varlong. Cost: at most 10 pushes into `buf`.
#[inline]
pub(crate) fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    let mut u = zigzag(v);
    while u >= 0x80 {
        buf.push((u as u8) | 0x80);
        u >>= 7;
    }
    buf.push(u as u8);
}

/// A cursor over a byte slice whose every read is bounds-checked and returns [`BatchError`].
///
/// Positions in errors are `origin + position in the slice`, so errors can name positions in an
/// enclosing buffer.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    origin: usize,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            origin: 0,
        }
    }

    /// A reader over `buf` whose error positions are offset by `origin`.
    pub(crate) const fn with_origin(buf: &'a [u8], origin: usize) -> Self {
        Self {
            buf,
            pos: 0,
            origin,
        }
    }

    /// Absolute position (origin included) of the next byte.
    #[inline]
    pub(crate) const fn position(&self) -> usize {
        self.origin + self.pos
    }

    /// Bytes consumed so far.
    #[inline]
    pub(crate) const fn consumed(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) const fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn truncated(&self, needed: usize) -> BatchError {
        BatchError::Truncated {
            needed: self.position().saturating_add(needed),
            have: self.origin + self.buf.len(),
        }
    }

    #[inline]
    pub(crate) fn read_u8(&mut self) -> Result<u8, BatchError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.truncated(1))?;
        self.pos += 1;
        Ok(b)
    }

    /// Borrows the next `n` bytes.
    #[inline]
    pub(crate) fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.truncated(n))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads an unsigned base-128 integer of at most `max_bytes` bytes whose value fits in
    /// `max_bits` bits.
    #[inline]
    fn read_unsigned(&mut self, max_bytes: usize, max_bits: u32) -> Result<u64, BatchError> {
        let at = self.position();
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.read_u8()?;
            let group = u64::from(b & 0x7f);
            let shift = 7 * i as u32;
            // Reject bits that would be shifted out of (or above) the target width.
            if shift + 7 > max_bits && group >> (max_bits - shift) != 0 {
                return Err(BatchError::VarintOverflow { at });
            }
            value |= group << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BatchError::VarintOverflow { at })
    }

    /// Reads a zigzag varint (32-bit, at most 5 bytes).
    #[inline]
    pub(crate) fn read_varint(&mut self) -> Result<i32, BatchError> {
        let u = self.read_unsigned(5, 32)?;
        // `u` fits in 32 bits, so the zigzag-decoded value fits in an i32.
        Ok(unzigzag(u) as i32)
    }

    /// Reads a zigzag varlong (64-bit, at most 10 bytes).
    #[inline]
    pub(crate) fn read_varlong(&mut self) -> Result<i64, BatchError> {
        Ok(unzigzag(self.read_unsigned(10, 64)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: i64) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varlong(&mut buf, v);
        buf
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_small_values() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn varlong_round_trips_and_sizes_agree() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let buf = encode(v);
            assert_eq!(buf.len(), varlong_len(v), "size of {v}");
            let mut r = Reader::new(&buf);
            assert_eq!(r.read_varlong(), Ok(v));
            assert!(r.is_empty());
        }
        assert_eq!(encode(i64::MIN).len(), 10);
        assert_eq!(encode(i64::from(i32::MIN)).len(), 5);
    }

    #[test]
    fn varint_reads_the_full_i32_range() {
        for v in [0, -1, 1, i32::MAX, i32::MIN] {
            let buf = encode(i64::from(v));
            assert_eq!(Reader::new(&buf).read_varint(), Ok(v));
        }
    }

    #[test]
    fn varint_rejects_values_wider_than_32_bits() {
        let buf = encode(i64::from(i32::MAX) + 1);
        assert_eq!(
            Reader::new(&buf).read_varint(),
            Err(BatchError::VarintOverflow { at: 0 })
        );
        // Six bytes, all with the continuation bit.
        let buf = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Reader::new(&buf).read_varint(),
            Err(BatchError::VarintOverflow { at: 0 })
        );
    }

    #[test]
    fn varlong_rejects_eleven_bytes_and_a_wide_tenth_byte() {
        let mut buf = vec![0xff; 9];
        buf.push(0x02);
        assert_eq!(
            Reader::with_origin(&buf, 7).read_varlong(),
            Err(BatchError::VarintOverflow { at: 7 })
        );
        let buf = [0x80; 11];
        assert_eq!(
            Reader::new(&buf).read_varlong(),
            Err(BatchError::VarintOverflow { at: 0 })
        );
    }

    #[test]
    fn truncated_varint_reports_needed_and_have() {
        let buf = [0x80, 0x80];
        assert_eq!(
            Reader::with_origin(&buf, 10).read_varint(),
            Err(BatchError::Truncated {
                needed: 13,
                have: 12
            })
        );
    }

    #[test]
    fn read_bytes_checks_bounds_without_overflow() {
        let buf = [1, 2, 3];
        let mut r = Reader::new(&buf);
        assert_eq!(r.read_bytes(2), Ok(&buf[..2]));
        assert!(matches!(
            r.read_bytes(usize::MAX),
            Err(BatchError::Truncated { .. })
        ));
        assert_eq!(r.remaining(), 1);
    }
}
