//! The leader-epoch file's bytes (docs/FORMAT.md, "Leader-epoch file") and its atomic write.

use super::EpochEntry;
use crate::io::Storage;
use std::io;
use thiserror::Error;

/// File name of the leader-epoch file in the log directory.
pub const LEADER_EPOCHS_NAME: &str = "leader-epochs.checkpoint";
/// The file being written ([`crate::io::temp_name`] of [`LEADER_EPOCHS_NAME`]); a log open
/// deletes it with every other `*.tmp`.
pub const LEADER_EPOCHS_TMP_NAME: &str = "leader-epochs.checkpoint.tmp";

const MAGIC: &[u8; 4] = b"DLLE";
const VERSION: u16 = 1;
/// magic, version, count.
const HEADER: usize = 4 + 2 + 4;
/// epoch u32, start offset u64.
const ENTRY: usize = 12;
const CRC: usize = 4;

/// Why a leader-epoch file is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    /// Shorter than an empty file.
    #[error("{len} bytes is too short")]
    TooShort {
        /// File length.
        len: u64,
    },
    /// The CRC does not match the contents.
    #[error("CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Not a leader-epoch file.
    #[error("bad magic")]
    BadMagic,
    /// A version this code does not read.
    #[error("unknown version {0}")]
    UnknownVersion(u16),
    /// The length does not match the entry count.
    #[error("length {len} does not match {count} entries")]
    LengthMismatch {
        /// File length.
        len: u64,
        /// Declared entry count.
        count: u32,
    },
    /// Entry `index` does not have both a larger epoch and a larger start offset than the
    /// entry before it.
    #[error("entry {index} does not follow its predecessor (epochs and offsets must increase)")]
    NotIncreasing {
        /// Position of the offending entry.
        index: usize,
    },
}

pub(super) fn check_monotonic(entries: &[EpochEntry]) -> Result<(), Corruption> {
    for (i, w) in entries.windows(2).enumerate() {
        if w[1].epoch <= w[0].epoch || w[1].start_offset <= w[0].start_offset {
            return Err(Corruption::NotIncreasing { index: i + 1 });
        }
    }
    Ok(())
}

pub(super) fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + entries.len() * ENTRY + CRC);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    let count = u32::try_from(entries.len()).expect("fewer than 2^32 leader epochs");
    b.extend_from_slice(&count.to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.epoch.to_le_bytes());
        b.extend_from_slice(&e.start_offset.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut x = [0u8; N];
    x.copy_from_slice(&b[at..at + N]);
    x
}

pub(super) fn decode(b: &[u8]) -> Result<Vec<EpochEntry>, Corruption> {
    let len = b.len() as u64;
    if b.len() < HEADER + CRC {
        return Err(Corruption::TooShort { len });
    }
    let (body, crc) = b.split_at(b.len() - CRC);
    let stored = u32::from_le_bytes(le(crc, 0));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(Corruption::CrcMismatch { stored, computed });
    }
    if &body[..4] != MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = u16::from_le_bytes(le(body, 4));
    if version != VERSION {
        return Err(Corruption::UnknownVersion(version));
    }
    let count = u32::from_le_bytes(le(body, 6));
    if (body.len() - HEADER) as u64 != u64::from(count) * ENTRY as u64 {
        return Err(Corruption::LengthMismatch { len, count });
    }
    let entries: Vec<EpochEntry> = body[HEADER..]
        .chunks_exact(ENTRY)
        .map(|c| EpochEntry {
            epoch: u32::from_le_bytes(le(c, 0)),
            start_offset: u64::from_le_bytes(le(c, 4)),
        })
        .collect();
    check_monotonic(&entries)?;
    Ok(entries)
}

/// `Ok(None)` when there is no file.
pub(super) fn read(storage: &dyn Storage) -> Result<Option<super::LeaderEpochs>, super::LoadError> {
    let Some(buf) = crate::io::read_whole(storage, LEADER_EPOCHS_NAME)? else {
        return Ok(None);
    };
    Ok(Some(super::LeaderEpochs {
        entries: decode(&buf)?,
    }))
}

pub(super) fn write(storage: &dyn Storage, entries: &[EpochEntry]) -> io::Result<()> {
    crate::io::replace(storage, LEADER_EPOCHS_NAME, &encode(entries))
}
