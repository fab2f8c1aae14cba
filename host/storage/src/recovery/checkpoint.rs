//! The recovery-point checkpoint: which prefix of which segments is known to be synced, with each
//! prefix's summary, so that opening the log scans nothing before it. Byte layout in
//! docs/FORMAT.md ("Checkpoint file").

use crate::io::Storage;
use crate::segment::Stats;
use std::io;

/// File name of the checkpoint.
pub const CHECKPOINT_NAME: &str = "recovery-point.checkpoint";
const MAGIC: &[u8; 4] = b"DLCP";
/// Version 2 adds the high watermark and the producer-state end after the entry count; version
/// 1 still reads (both are then unknown).
const VERSION: u16 = 2;
const HEADER_V1: usize = 4 + 2 + 4;
const HEADER: usize = HEADER_V1 + 8 + 8;
const ENTRY: usize = 48;

/// One segment's synced prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) base_offset: u64,
    pub(crate) stats: Stats,
}

/// A decoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) entries: Vec<Entry>,
    /// The log's high watermark when the checkpoint was written; `None` in a version 1 file.
    pub(crate) high_watermark: Option<u64>,
    /// Every batch with a producer id that the log held when the checkpoint was written ends
    /// below this (0: none); `None` in a version 1 file.
    pub(crate) producers_end: Option<u64>,
}

/// What a checkpoint records besides its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) high_watermark: u64,
    pub(crate) producers_end: u64,
}

pub(crate) fn encode(entries: &[Entry], marks: Marks) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + entries.len() * ENTRY + 4);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&marks.high_watermark.to_le_bytes());
    b.extend_from_slice(&marks.producers_end.to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.base_offset.to_le_bytes());
        b.extend_from_slice(&e.stats.size.to_le_bytes());
        b.extend_from_slice(&e.stats.next_offset.to_le_bytes());
        b.extend_from_slice(&e.stats.first_timestamp.to_le_bytes());
        b.extend_from_slice(&e.stats.max_timestamp.to_le_bytes());
        b.extend_from_slice(&e.stats.record_count.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Decodes a checkpoint (version 1 or 2); `Err` with a reason when it is not one.
pub(crate) fn decode(b: &[u8]) -> Result<Checkpoint, String> {
    if b.len() < HEADER_V1 + 4 {
        return Err(format!("{} bytes is too short", b.len()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err("CRC mismatch".into());
    }
    if &body[..4] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    let header = match version {
        1 => HEADER_V1,
        VERSION => HEADER,
        _ => return Err(format!("unknown version {version}")),
    };
    if body.len() < header {
        return Err(format!("{} bytes is too short", b.len()));
    }
    let count = u32::from_le_bytes([body[6], body[7], body[8], body[9]]) as usize;
    if body.len() != header + count.saturating_mul(ENTRY) {
        return Err(format!("length {} does not match {count} entries", b.len()));
    }
    let high_watermark = (version == VERSION).then(|| u64_at(body, HEADER_V1));
    let producers_end = (version == VERSION).then(|| u64_at(body, HEADER_V1 + 8));
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = header + i * ENTRY;
        let base_offset = u64_at(body, at);
        let stats = Stats {
            size: u64_at(body, at + 8),
            next_offset: u64_at(body, at + 16),
            first_timestamp: u64_at(body, at + 24) as i64,
            max_timestamp: u64_at(body, at + 32) as i64,
            record_count: u64_at(body, at + 40),
        };
        if stats.next_offset < base_offset {
            return Err(format!("entry {i}: next offset below base offset"));
        }
        entries.push(Entry { base_offset, stats });
    }
    Ok(Checkpoint {
        entries,
        high_watermark,
        producers_end,
    })
}

/// Reads the checkpoint; `Ok(None)` when there is none, `Err(reason)` in the inner result when
/// it exists but is unusable.
pub(crate) fn read(storage: &dyn Storage) -> io::Result<Option<Result<Checkpoint, String>>> {
    Ok(crate::io::read_whole(storage, CHECKPOINT_NAME)?.map(|buf| decode(&buf)))
}

/// Writes the checkpoint atomically ([`crate::io::replace`]: temp file, fsync, rename, directory
/// fsync; failpoint `checkpoint::rename` before the rename).
/// Expensive (two fsyncs): done on roll, flush, close and every `checkpoint_interval_ms`.
pub(crate) fn write(storage: &dyn Storage, entries: &[Entry], marks: Marks) -> io::Result<()> {
    crate::io::replace_with_failpoint(
        storage,
        CHECKPOINT_NAME,
        &encode(entries, marks),
        "checkpoint::rename",
    )
}

/// Whether `name` is a leftover temporary file to delete on open.
pub(crate) fn is_temp(name: &str) -> bool {
    name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKS: Marks = Marks {
        high_watermark: 5,
        producers_end: 3,
    };

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                base_offset: 0,
                stats: Stats {
                    size: 100,
                    next_offset: 7,
                    first_timestamp: 1,
                    max_timestamp: 9,
                    record_count: 7,
                },
            },
            Entry {
                base_offset: 7,
                stats: Stats::empty(7),
            },
        ]
    }

    #[test]
    fn round_trips_with_the_high_watermark_and_rejects_damage() {
        let b = encode(&entries(), MARKS);
        assert_eq!(
            decode(&b),
            Ok(Checkpoint {
                entries: entries(),
                high_watermark: Some(5),
                producers_end: Some(3),
            })
        );
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(decode(&d).is_err(), "flipped byte {i}");
            assert!(decode(&b[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn version_1_still_reads_without_a_high_watermark() {
        // Version 1: no high watermark between the count and the entries.
        let v2 = encode(&entries(), MARKS);
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&v2[6..HEADER_V1]);
        v1.extend_from_slice(&v2[HEADER..v2.len() - 4]);
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&v1),
            Ok(Checkpoint {
                entries: entries(),
                high_watermark: None,
                producers_end: None,
            })
        );
    }
}
