//! One segment: a `.log` file of whole batches plus its two sparse indexes.
//!
//! A segment is appended to by the log's single writer while it is active and is immutable once
//! sealed. Readers share it through `Arc<Segment>` and only read below its committed position
//! (published after each write), so they never see a half-written batch. Removing
//! a segment's files (retention) does not disturb readers that still hold it: the open handles
//! keep the data readable until the last `Arc` drops.

pub mod frame;

use crate::index::{IndexFile, OFFSET_ENTRY, OffsetIndex, TIME_ENTRY, TimeIndex};
use crate::io::{OpenMode, Storage, StorageFile};
use frame::{Frame, FrameError, HEADER_LEN};
use parking_lot::{Mutex, RwLock};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `{base_offset:020}.log`
pub fn log_name(base: u64) -> String {
    format!("{base:020}.log")
}
/// `{base_offset:020}.index`
pub fn index_name(base: u64) -> String {
    format!("{base:020}.index")
}
/// `{base_offset:020}.timeindex`
pub fn time_index_name(base: u64) -> String {
    format!("{base:020}.timeindex")
}

/// Parses a `{20 digits}.{ext}` file name into (base offset, extension).
pub fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// Description of one segment, oldest first in [`Log::segments`](crate::log::Log::segments);
/// the input of retention policies (mirrors `segment-info` in wit/plugin.wit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of the first batch (also the file name).
    pub base_offset: u64,
    /// Offset of the last record; `base_offset - 1` (wrapping) when empty.
    pub last_offset: u64,
    /// Bytes in the `.log` file.
    pub size_bytes: u64,
    /// First timestamp of the first batch, ms; -1 when empty.
    pub first_timestamp: i64,
    /// Largest timestamp of any batch, ms; -1 when empty.
    pub max_timestamp: i64,
    /// Records in the segment.
    pub record_count: u64,
    /// True for the segment being written; it is never deleted.
    pub active: bool,
}

/// Summary of a segment's valid prefix. Published together with the committed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) size: u64,
    pub(crate) next_offset: u64,
    pub(crate) first_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) record_count: u64,
}

impl Stats {
    pub(crate) fn empty(base: u64) -> Self {
        Self {
            size: 0,
            next_offset: base,
            first_timestamp: -1,
            max_timestamp: -1,
            record_count: 0,
        }
    }

    /// Accounts for one more batch of `len` bytes.
    pub(crate) fn add(&mut self, f: &Frame, len: u64) {
        if self.record_count == 0 {
            self.first_timestamp = f.first_timestamp;
            self.max_timestamp = f.max_timestamp;
        } else {
            self.max_timestamp = self.max_timestamp.max(f.max_timestamp);
        }
        self.size += len;
        self.next_offset = f.last_offset() + 1;
        self.record_count += u64::from(f.record_count);
    }
}

/// A segment shared by the writer and readers.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) log: Arc<dyn StorageFile>,
    committed: AtomicU64,
    stats: Mutex<Stats>,
    pub(crate) index: RwLock<OffsetIndex>,
    pub(crate) time_index: RwLock<TimeIndex>,
}

impl Segment {
    /// Creates a new, empty active segment with preallocated indexes.
    pub(crate) fn create(
        storage: &dyn Storage,
        base: u64,
        index_capacity: u64,
    ) -> io::Result<Self> {
        crate::failpoint::hit("segment::create")?;
        let log = storage.open(&log_name(base), OpenMode::Create)?;
        log.set_len(0)?;
        let idx_file = storage.open(&index_name(base), OpenMode::Create)?;
        idx_file.set_len(0)?;
        let time_file = storage.open(&time_index_name(base), OpenMode::Create)?;
        time_file.set_len(0)?;
        let index = OffsetIndex(IndexFile::open(
            idx_file,
            OFFSET_ENTRY,
            Some(index_capacity),
        )?);
        let time_index = TimeIndex(IndexFile::open(
            time_file,
            TIME_ENTRY,
            Some(index_capacity),
        )?);
        Ok(Self::assemble(
            log,
            index,
            time_index,
            Stats::empty(base),
            base,
        ))
    }

    pub(crate) fn assemble(
        log: Arc<dyn StorageFile>,
        index: OffsetIndex,
        time_index: TimeIndex,
        stats: Stats,
        base: u64,
    ) -> Self {
        Self {
            base_offset: base,
            log,
            committed: AtomicU64::new(stats.size),
            stats: Mutex::new(stats),
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
        }
    }

    /// Bytes readers may read. Acquire: pairs with [`publish`](Self::publish).
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> Stats {
        *self.stats.lock()
    }

    /// Makes a written batch visible: stats first, then the position (Release).
    pub(crate) fn publish(&self, stats: Stats) {
        *self.stats.lock() = stats;
        self.committed.store(stats.size, Ordering::Release);
    }

    pub(crate) fn info(&self, active: bool) -> SegmentInfo {
        let s = self.stats();
        SegmentInfo {
            base_offset: self.base_offset,
            last_offset: s.next_offset.wrapping_sub(1),
            size_bytes: s.size,
            first_timestamp: s.first_timestamp,
            max_timestamp: s.max_timestamp,
            record_count: s.record_count,
            active,
        }
    }

    /// Trims both indexes to their entries (on seal). Cheap: two `ftruncate`s.
    pub(crate) fn trim_indexes(&self) -> io::Result<()> {
        self.index.write().0.trim()?;
        self.time_index.write().0.trim()
    }

    /// Syncs the log file and both indexes. Expensive: three fsyncs; once per sealed segment.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        self.log.sync()?;
        self.index.read().0.sync()?;
        self.time_index.read().0.sync()
    }

    /// Position from which to scan for `offset` (a batch boundary at or before it).
    pub(crate) fn position_for(&self, offset: u64) -> u64 {
        let rel = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        u64::from(self.index.read().lookup(rel))
    }

    /// Relative offset from which to scan for timestamp `ts`.
    pub(crate) fn rel_for_timestamp(&self, ts: i64) -> u32 {
        self.time_index.read().lookup(ts)
    }
}

/// Incremental index maintenance: decides, batch by batch, when to add index entries. Used by the
/// writer on append and by recovery when it rebuilds an index tail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexCursor {
    /// Batch bytes since the last offset index entry (or the segment start).
    pub(crate) bytes_since_entry: u64,
    /// Largest max timestamp of the batches before the next one.
    pub(crate) max_timestamp: i64,
}

impl IndexCursor {
    pub(crate) fn fresh() -> Self {
        Self {
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Whether the batch about to be written at `pos` gets index entries.
    pub(crate) fn entry_due(&self, pos: u64, interval: u64) -> bool {
        pos > 0 && self.bytes_since_entry >= interval
    }

    /// Accounts for a batch that gets no index entry (see [`entry_due`](Self::entry_due)).
    pub(crate) fn advance(&mut self, f: &Frame) {
        self.bytes_since_entry += f.total_len();
        self.max_timestamp = self.max_timestamp.max(f.max_timestamp);
    }

    /// Accounts for the batch `f` written at `pos`, adding index entries when `interval` bytes
    /// have passed since the last one. `Ok(false)` when an index is full (the writer rolls).
    pub(crate) fn observe(
        &mut self,
        base: u64,
        index: &mut OffsetIndex,
        time_index: &mut TimeIndex,
        pos: u64,
        f: &Frame,
        interval: u64,
    ) -> io::Result<bool> {
        let due = self.entry_due(pos, interval);
        let max_before = self.max_timestamp;
        // Account for the batch first: even if writing an entry fails, the running maximum must
        // include it, or a later time index entry would understate it.
        self.advance(f);
        if !due {
            return Ok(true);
        }
        self.bytes_since_entry = f.total_len();
        let rel = u32::try_from(f.base_offset - base).unwrap_or(u32::MAX);
        let pos32 = u32::try_from(pos).unwrap_or(u32::MAX);
        crate::failpoint::hit("index::grow")?;
        let mut room = index.push(rel, pos32)?;
        if room && max_before > time_index.last().map_or(i64::MIN, |e| e.0) {
            room &= time_index.push(max_before, rel)?;
        }
        Ok(room)
    }
}

/// Reads a file in large chunks so that walking batch headers costs few syscalls.
#[derive(Debug)]
pub(crate) struct ChunkReader<'a> {
    file: &'a dyn StorageFile,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'a> ChunkReader<'a> {
    /// Reads `file` below `end`, `chunk` bytes at a time.
    pub(crate) fn new(file: &'a dyn StorageFile, end: u64, chunk: usize) -> Self {
        Self {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
            chunk,
        }
    }

    /// Bytes `[pos, pos + len)`, or fewer if the range crosses `end`.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let want_end = (pos + len as u64).min(self.end);
        if pos >= want_end {
            return Ok(&[]);
        }
        let have_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || want_end > have_end {
            let read_end = (pos + (len.max(self.chunk)) as u64).min(self.end);
            self.buf.resize((read_end - pos) as usize, 0);
            self.buf_start = pos;
            self.file.read_at(&mut self.buf, pos)?;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + (want_end - pos) as usize])
    }
}

/// Why a scan stopped before the end.
#[derive(Debug)]
pub(crate) enum ScanStop {
    /// The bytes at the returned position are not a valid batch.
    Invalid { reason: String },
}

/// Walks batches from `pos` to `end`, validating each header (and CRC when `verify_crc`) and
/// offset monotonicity against `next_offset`; calls `f(position, frame)` for each valid batch.
/// Returns the position after the last valid batch and why it stopped early, if it did.
/// Cost: reads the range once (headers only without `verify_crc`: one chunked pass anyway).
pub(crate) fn scan(
    file: &dyn StorageFile,
    mut pos: u64,
    end: u64,
    mut next_offset: u64,
    max_batch_length: u32,
    verify_crc: bool,
    mut f: impl FnMut(u64, &Frame),
) -> io::Result<(u64, Option<ScanStop>)> {
    let mut reader = ChunkReader::new(file, end, 1 << 20);
    while pos < end {
        let head = reader.get(pos, HEADER_LEN)?;
        let frame = match Frame::parse(head, max_batch_length) {
            Ok(frame) => frame,
            Err(e) => {
                return Ok((pos, Some(stop(pos, e.to_string()))));
            }
        };
        if frame.base_offset < next_offset {
            return Ok((
                pos,
                Some(stop(
                    pos,
                    format!(
                        "base offset {} below expected {next_offset}",
                        frame.base_offset
                    ),
                )),
            ));
        }
        let total = frame.total_len();
        if pos + total > end {
            let e = FrameError::LengthMismatch {
                announced: total,
                actual: end - pos,
            };
            return Ok((pos, Some(stop(pos, e.to_string()))));
        }
        if verify_crc {
            let bytes = reader.get(pos, total as usize)?;
            if let Err(e) = frame.verify_crc(bytes) {
                return Ok((pos, Some(stop(pos, e.to_string()))));
            }
        }
        f(pos, &frame);
        next_offset = frame.last_offset() + 1;
        pos += total;
    }
    Ok((pos, None))
}

fn stop(_position: u64, reason: String) -> ScanStop {
    ScanStop::Invalid { reason }
}
