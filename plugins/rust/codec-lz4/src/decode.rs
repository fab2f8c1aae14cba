//! An LZ4 block decoder for wasm32, bounds-checked on every sequence.
//!
//! Like the reference decoder it copies in 16-byte (or, for matches 8 to 15
//! bytes back, 8-byte) steps into an output buffer with 32 bytes of slack
//! past `size`, instead of calling `memcpy` (wasm's `memory.copy`, a call
//! into the runtime) or copying byte by byte: lz4_flex copies matches that
//! overlap their source within 15 bytes byte by byte, which is every match
//! of log lines shorter than their length plus 15.
//!
//! Every length and offset is checked against the input, the output
//! written so far and `size` before anything is copied, so a corrupt or
//! hostile block is an error, never a read or write outside the two
//! buffers; only the steps' overshoot (at most 15 bytes) goes past a
//! sequence's end, into the slack, and is overwritten or never exposed.

/// Spare bytes after `size` in the output buffer for the copies' overshoot.
const SLACK: usize = 32;
const MIN_MATCH: usize = 4;

/// Why a block did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The block ends inside a sequence.
    Truncated,
    /// A literal run or a match would pass the declared size.
    TooLong,
    /// A match points before the start of the output (or offset 0).
    BadOffset { offset: usize, position: usize },
    /// The block decodes to fewer bytes than declared.
    TooShort { decoded: usize },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated => f.write_str("the block ends inside a sequence"),
            Error::TooLong => f.write_str("the block decodes to more than the declared size"),
            Error::BadOffset { offset, position } => write!(
                f,
                "match offset {offset} at output position {position} points outside the output"
            ),
            Error::TooShort { decoded } => write!(f, "the block decodes to only {decoded} bytes"),
        }
    }
}

/// Reads a length extension (bytes added while they are 255) onto `n`,
/// refusing any total over `max`.
#[inline(always)]
fn extend_length(block: &[u8], ip: &mut usize, mut n: usize, max: usize) -> Result<usize, Error> {
    loop {
        let b = *block.get(*ip).ok_or(Error::Truncated)?;
        *ip += 1;
        n += usize::from(b);
        if n > max {
            return Err(Error::TooLong);
        }
        if b != 255 {
            return Ok(n);
        }
    }
}

/// Decodes one LZ4 block that must produce exactly `size` bytes.
pub fn decompress(block: &[u8], size: usize) -> Result<Vec<u8>, Error> {
    let mut out: Vec<u8> = Vec::with_capacity(size.checked_add(SLACK).ok_or(Error::TooLong)?);
    let base = out.as_mut_ptr();
    let end = block.len();
    let (mut ip, mut op) = (0usize, 0usize);
    loop {
        let token = *block.get(ip).ok_or(Error::Truncated)?;
        ip += 1;

        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit = extend_length(block, &mut ip, lit, size)?;
        }
        if lit > end - ip {
            return Err(Error::Truncated);
        }
        if lit > size - op {
            return Err(Error::TooLong);
        }
        // SAFETY: `block[ip..ip + lit]` is in bounds (checked above), and so
        // are the 16-byte steps' reads when `ip + lit + 16 <= end`; the
        // writes end before `op + lit + 16 <= size + SLACK`, the capacity.
        unsafe {
            let src = block.as_ptr().add(ip);
            let dst = base.add(op);
            if ip + lit + 16 <= end {
                let mut done = 0;
                while done < lit {
                    std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), 16);
                    done += 16;
                }
            } else {
                std::ptr::copy_nonoverlapping(src, dst, lit);
            }
        }
        ip += lit;
        op += lit;
        if ip == end {
            // The last sequence: literals only.
            break;
        }

        if end - ip < 2 {
            return Err(Error::Truncated);
        }
        let offset = usize::from(u16::from_le_bytes([block[ip], block[ip + 1]]));
        ip += 2;
        if offset == 0 || offset > op {
            return Err(Error::BadOffset {
                offset,
                position: op,
            });
        }
        let mut len = MIN_MATCH + usize::from(token & 15);
        if len == MIN_MATCH + 15 {
            len = extend_length(block, &mut ip, len, size)?;
        }
        if len > size - op {
            return Err(Error::TooLong);
        }
        // SAFETY: the source starts `offset <= op` bytes back, inside what
        // was written; steps of `step <= offset` bytes never read what the
        // same step writes, and read only bytes written before (the match's
        // own earlier steps included, as LZ4 overlapping matches require).
        // Writes end before `op + len + 16 <= size + SLACK`.
        unsafe {
            let dst = base.add(op);
            let src = dst.sub(offset);
            if offset >= 16 {
                let mut done = 0;
                while done < len {
                    std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), 16);
                    done += 16;
                }
            } else if offset >= 8 {
                let mut done = 0;
                while done < len {
                    std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), 8);
                    done += 8;
                }
            } else {
                for i in 0..len {
                    dst.add(i).write(src.add(i).read());
                }
            }
        }
        op += len;
    }
    if op != size {
        return Err(Error::TooShort { decoded: op });
    }
    // SAFETY: exactly `size` bytes were written from the start (each
    // sequence writes its bytes in order; overshoot is only past `op`).
    unsafe { out.set_len(size) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Blocks of the reference format from another encoder (lz4_flex's)
    /// decode to their input, for every kind of match overlap.
    #[test]
    fn decodes_lz4_flex_blocks() {
        let mut inputs = vec![Vec::new(), b"a".to_vec(), vec![0u8; 100_000]];
        for period in 1..40 {
            let unit = noise(period as u64, period, 255);
            inputs.push(unit.repeat(5000 / period + 1));
        }
        for (seed, alphabet) in [(1, 2), (2, 4), (3, 16), (4, 255)] {
            inputs.push(noise(seed, 200_000, alphabet));
        }
        for input in inputs {
            let block = lz4_flex::block::compress(&input);
            assert_eq!(decompress(&block, input.len()).unwrap(), input);
            assert_eq!(
                decompress(&block, input.len() + 1),
                Err(Error::TooShort {
                    decoded: input.len()
                })
            );
            if !input.is_empty() {
                assert!(decompress(&block, input.len() - 1).is_err());
            }
        }
    }

    /// Against lz4_flex's decoder on damaged blocks: whenever ours accepts
    /// one, lz4_flex decodes it to the same bytes (ours may refuse more:
    /// it also requires the exact size).
    #[test]
    fn damaged_blocks_agree_with_lz4_flex() {
        let input = b"{\"ts\":1700000000000,\"user\":\"user-7\",\"msg\":\"ok\"}\n".repeat(300);
        let block = lz4_flex::block::compress(&input);
        for at in 0..block.len() {
            for flip in [0x01, 0x10, 0x80, 0xff] {
                let mut damaged = block.clone();
                damaged[at] ^= flip;
                if let Ok(ours) = decompress(&damaged, input.len()) {
                    let theirs = lz4_flex::block::decompress(&damaged, input.len()).unwrap();
                    assert_eq!(ours, theirs, "byte {at} ^ {flip:#x}");
                }
            }
        }
        for cut in 0..block.len() {
            assert!(
                decompress(&block[..cut], input.len()).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn hostile_lengths_and_offsets_are_errors() {
        // Offset 0, and an offset before the start.
        assert!(matches!(
            decompress(&[0x10, b'a', 0, 0], 5),
            Err(Error::BadOffset { .. })
        ));
        assert!(matches!(
            decompress(&[0x10, b'a', 2, 0], 5),
            Err(Error::BadOffset { .. })
        ));
        // A literal length extension that never ends, or runs past the size.
        assert_eq!(decompress(&[0xf0, 255, 255], 1000), Err(Error::Truncated));
        assert_eq!(decompress(&[0xf0; 64], 20), Err(Error::TooLong));
        // A match longer than the declared size.
        assert_eq!(
            decompress(&[0x1f, b'a', 1, 0, 200, 0x00], 50),
            Err(Error::TooLong)
        );
        // A block ending after a match (no last literals).
        assert_eq!(decompress(&[0x10, b'a', 1, 0], 5), Err(Error::Truncated));
        // Empty input is not a block.
        assert_eq!(decompress(&[], 0), Err(Error::Truncated));
    }
}
