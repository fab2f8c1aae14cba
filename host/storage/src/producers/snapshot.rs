//! Producer-state snapshots: `{offset:020}.snapshot` files in the log directory, each holding
//! the [`ProducerState`] of every batch below `offset` (docs/FORMAT.md, "Producer-state
//! snapshot"). Written atomically ([`crate::io::replace`]); the newest [`SNAPSHOTS_KEPT`] are
//! kept. A snapshot that fails its checks is skipped with a warning and removed, and the next
//! older one is used: a snapshot only saves replaying batch headers, it is never the only copy
//! of anything.

use super::{BatchMetadata, MAX_BATCHES_PER_PRODUCER, ProducerEntry, ProducerState};
use crate::io::Storage;
use std::io;
use thiserror::Error;

/// How many snapshots [`ProducerState::write_snapshot`] keeps (the one it wrote and the one
/// before, as Kafka keeps more than one so a corrupt newest snapshot still leaves an older one).
pub const SNAPSHOTS_KEPT: usize = 2;

const EXTENSION: &str = "snapshot";
const MAGIC: &[u8; 4] = b"DLPS";
const VERSION: u16 = 1;
/// magic, version, offset, producer count.
const HEADER: usize = 4 + 2 + 8 + 4;
/// producer id, epoch, batch count, last timestamp.
const PRODUCER: usize = 8 + 2 + 2 + 8;
/// first and last sequence, first and last offset, max timestamp.
const BATCH: usize = 4 + 4 + 8 + 8 + 8;
const CRC: usize = 4;

/// `{offset:020}.snapshot`.
pub fn snapshot_name(offset: u64) -> String {
    format!("{offset:020}.{EXTENSION}")
}

fn parse_snapshot_name(name: &str) -> Option<u64> {
    match crate::segment::parse_name(name)? {
        (offset, EXTENSION) => Some(offset),
        _ => None,
    }
}

/// Writing a snapshot failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// An IO operation failed. If it was the removal of an older snapshot, the new one is in
    /// place; the next write removes what is left.
    #[error("write producer snapshot: {0}")]
    Io(#[from] io::Error),
    /// The state holds a batch at or after the snapshot's offset: it is not the state at that
    /// offset (a caller bug; nothing was written).
    #[error(
        "producer {producer_id} has a batch ending at offset {last_offset}, not below the \
         snapshot offset {at_offset}"
    )]
    NotAtOffset {
        /// The producer.
        producer_id: i64,
        /// Its last offset.
        last_offset: u64,
        /// The requested snapshot offset.
        at_offset: u64,
    },
}

/// Why a snapshot file is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SnapshotCorruption {
    /// Shorter than an empty snapshot.
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
    /// Not a snapshot file.
    #[error("bad magic")]
    BadMagic,
    /// A version this code does not read.
    #[error("unknown version {0}")]
    UnknownVersion(u16),
    /// The offset inside differs from the one in the file name.
    #[error("holds offset {inside}, named {named}")]
    OffsetMismatch {
        /// Offset in the file.
        inside: u64,
        /// Offset in the name.
        named: u64,
    },
    /// The contents do not match the counts they declare.
    #[error("length does not match the declared producers and batches")]
    LengthMismatch,
    /// Producer `index` (0-based) is invalid: id not above the previous one, negative id or
    /// epoch, batch count not in 1..=5, offsets not increasing or not below the snapshot
    /// offset, or a negative sequence.
    #[error("producer entry {index} is invalid")]
    BadProducer {
        /// Position of the producer in the file.
        index: usize,
    },
}

pub(super) fn encode(state: &ProducerState, at_offset: u64) -> Vec<u8> {
    let batches: usize = state.producers.values().map(|e| e.batches.len()).sum();
    let mut b = Vec::with_capacity(HEADER + state.len() * PRODUCER + batches * BATCH + CRC);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&at_offset.to_le_bytes());
    let count = u32::try_from(state.len()).expect("fewer than 2^32 producers");
    b.extend_from_slice(&count.to_le_bytes());
    for (&id, e) in &state.producers {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&e.epoch.to_le_bytes());
        b.extend_from_slice(&(e.batches.len() as u16).to_le_bytes());
        b.extend_from_slice(&e.last_timestamp.to_le_bytes());
        for m in &e.batches {
            b.extend_from_slice(&m.first_sequence.to_le_bytes());
            b.extend_from_slice(&m.last_sequence.to_le_bytes());
            b.extend_from_slice(&m.first_offset.to_le_bytes());
            b.extend_from_slice(&m.last_offset.to_le_bytes());
            b.extend_from_slice(&m.max_timestamp.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Reads little-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
}

/// Decodes the snapshot named `named_offset`.
pub(super) fn decode(b: &[u8], named_offset: u64) -> Result<ProducerState, SnapshotCorruption> {
    use SnapshotCorruption as C;
    if b.len() < HEADER + CRC {
        return Err(C::TooShort {
            len: b.len() as u64,
        });
    }
    let (body, crc) = b.split_at(b.len() - CRC);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(C::CrcMismatch { stored, computed });
    }
    let mut r = Reader(body);
    if r.take::<4>().as_ref() != Some(MAGIC) {
        return Err(C::BadMagic);
    }
    let version = r.u16().ok_or(C::LengthMismatch)?;
    if version != VERSION {
        return Err(C::UnknownVersion(version));
    }
    let at_offset = r.u64().ok_or(C::LengthMismatch)?;
    if at_offset != named_offset {
        return Err(C::OffsetMismatch {
            inside: at_offset,
            named: named_offset,
        });
    }
    let count = r.u32().ok_or(C::LengthMismatch)?;
    let mut state = ProducerState::new();
    let mut previous: Option<i64> = None;
    for index in 0..count as usize {
        let bad = C::BadProducer { index };
        let id = r.i64().ok_or(C::LengthMismatch)?;
        let epoch = r.i16().ok_or(C::LengthMismatch)?;
        let n = usize::from(r.u16().ok_or(C::LengthMismatch)?);
        let last_timestamp = r.i64().ok_or(C::LengthMismatch)?;
        if id < 0 || previous.is_some_and(|p| id <= p) || n > MAX_BATCHES_PER_PRODUCER {
            return Err(bad);
        }
        let mut batches = Vec::with_capacity(n);
        for _ in 0..n {
            let m = BatchMetadata {
                first_sequence: r.i32().ok_or(C::LengthMismatch)?,
                last_sequence: r.i32().ok_or(C::LengthMismatch)?,
                first_offset: r.u64().ok_or(C::LengthMismatch)?,
                last_offset: r.u64().ok_or(C::LengthMismatch)?,
                max_timestamp: r.i64().ok_or(C::LengthMismatch)?,
            };
            if m.first_sequence < 0 || m.last_sequence < 0 || m.last_offset >= at_offset {
                return Err(bad);
            }
            batches.push(m);
        }
        let entry = ProducerEntry::new(epoch, batches, last_timestamp).ok_or(bad)?;
        state.insert(id, entry);
        previous = Some(id);
    }
    if !r.0.is_empty() {
        return Err(C::LengthMismatch);
    }
    Ok(state)
}

/// The offsets of the snapshots in the directory, ascending.
pub fn snapshot_offsets(storage: &dyn Storage) -> io::Result<Vec<u64>> {
    let mut offsets: Vec<u64> = storage
        .list()?
        .iter()
        .filter_map(|n| parse_snapshot_name(n))
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

fn remove(storage: &dyn Storage, offset: u64) -> io::Result<()> {
    match storage.remove(&snapshot_name(offset)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read(storage: &dyn Storage, offset: u64) -> io::Result<Option<Vec<u8>>> {
    crate::io::read_whole(storage, &snapshot_name(offset))
}

/// The newest valid snapshot: `(offset, state)`, the state holding every batch below
/// `offset`; `None` when there is none. A snapshot that fails its checks is logged at warn
/// level, removed, and the next older one is tried. Cost: one read per snapshot tried.
pub fn load_latest_snapshot(storage: &dyn Storage) -> io::Result<Option<(u64, ProducerState)>> {
    for offset in snapshot_offsets(storage)?.into_iter().rev() {
        let Some(bytes) = read(storage, offset)? else {
            continue;
        };
        match decode(&bytes, offset) {
            Ok(state) => return Ok(Some((offset, state))),
            Err(reason) => {
                tracing::warn!(
                    file = %snapshot_name(offset),
                    %reason,
                    "ignoring and removing corrupt producer snapshot; the state is rebuilt \
                     from an older snapshot or the batch headers"
                );
                remove(storage, offset)?;
            }
        }
    }
    Ok(None)
}

/// Removes every snapshot at an offset above `offset` (they describe batches the log no
/// longer has: after truncation, or a torn tail cut on open). Returns how many. The removals
/// are not made durable (a resurrected one is removed again by the next call). Cost: a
/// directory listing.
pub fn delete_snapshots_after(storage: &dyn Storage, offset: u64) -> io::Result<usize> {
    let stale: Vec<u64> = snapshot_offsets(storage)?
        .into_iter()
        .filter(|&o| o > offset)
        .collect();
    for &o in &stale {
        remove(storage, o)?;
    }
    Ok(stale.len())
}

impl ProducerState {
    /// Writes the snapshot `{at_offset:020}.snapshot` atomically ([`crate::io::replace`]),
    /// then removes every other snapshot except the newest [`SNAPSHOTS_KEPT`]` - 1` below
    /// `at_offset` (snapshots above it are stale, see [`delete_snapshots_after`]). The state
    /// must hold exactly the batches below `at_offset`; one ending at or after it is
    /// [`SnapshotError::NotAtOffset`] and nothing is written.
    ///
    /// Cost: two fsyncs, a rename and a directory listing; call it on segment roll and close,
    /// not per batch.
    pub fn write_snapshot(
        &self,
        storage: &dyn Storage,
        at_offset: u64,
    ) -> Result<(), SnapshotError> {
        if let Some((&producer_id, e)) = self
            .producers
            .iter()
            .find(|(_, e)| e.last_offset() >= at_offset)
        {
            return Err(SnapshotError::NotAtOffset {
                producer_id,
                last_offset: e.last_offset(),
                at_offset,
            });
        }
        crate::io::replace(storage, &snapshot_name(at_offset), &encode(self, at_offset))?;
        let others: Vec<u64> = snapshot_offsets(storage)?
            .into_iter()
            .filter(|&o| o != at_offset)
            .collect();
        let older = others.iter().filter(|&&o| o < at_offset).count();
        let keep_from = older.saturating_sub(SNAPSHOTS_KEPT - 1);
        for (i, &o) in others.iter().enumerate() {
            if i < keep_from || o > at_offset {
                remove(storage, o)?;
            }
        }
        Ok(())
    }
}
