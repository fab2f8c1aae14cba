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

/// A damaged stretch of a segment: bytes between two valid batches (or between a valid batch
/// and the end of a sealed segment) that hold no batch whose header, CRC and offsets check out.
/// The offsets `[first_offset, next_offset)` it held are lost; the batches around it are kept.
/// Found by recovery's scan or by a read; kept in memory only (a damaged segment is left out
/// of recovery checkpoints, so every open scans it and finds the damage again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte position of the first damaged byte.
    pub(crate) position: u64,
    /// Damaged bytes; the next valid batch (or the segment end) is at `position + len`.
    pub(crate) len: u64,
    /// First lost offset: the previous valid batch's last offset + 1 (or the segment base).
    pub(crate) first_offset: u64,
    /// First offset after the damage: the next valid batch's base offset (or the next
    /// segment's).
    pub(crate) next_offset: u64,
    /// What was wrong with the bytes at `position`.
    pub(crate) reason: String,
}

impl Damage {
    /// Logs the damage at error level: an operator must hear of lost records.
    pub(crate) fn report(&self, segment: u64, found_by: &str) {
        tracing::error!(
            segment,
            position = self.position,
            bytes = self.len,
            lost_from = self.first_offset,
            lost_to = self.next_offset,
            reason = %self.reason,
            found_by,
            "damaged batch: its offsets are lost; the batches after it are kept and served"
        );
    }
}

/// Whether a batch's header fields outside the CRC fit the log: its offsets continue the
/// batches before it exactly (`dense`, every offset of the log is present, as everywhere the
/// cleaner has not been) or with gaps allowed (the cleaner removed batches), and its leader
/// epoch is one the log has had (at most `max_epoch`, the latest epoch of the leader-epoch
/// file, which is written before any batch of a new epoch). The CRC does not cover
/// `base_offset` or `leader_epoch`; this chain is what vouches for them.
pub(crate) fn header_fits(
    frame: &Frame,
    expected: u64,
    dense: bool,
    segment_base: u64,
    max_epoch: u32,
) -> bool {
    let base_ok = if dense {
        frame.base_offset == expected
    } else {
        frame.base_offset >= expected
    };
    base_ok
        && frame.last_offset() - segment_base <= u64::from(u32::MAX)
        && frame.leader_epoch <= max_epoch
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
    /// Known damaged stretches, by position.
    damage: RwLock<Vec<Damage>>,
}

impl Segment {
    /// Creates a new, empty active segment with preallocated indexes.
    pub(crate) fn create(
        storage: &dyn Storage,
        base: u64,
        index_capacity: u64,
    ) -> io::Result<Self> {
        crate::failpoint::hit("segment::create")?;
        let created = (|| {
            let log = storage.open(&log_name(base), OpenMode::Create)?;
            log.set_len(0)?;
            // The indexes' space is allocated for real (`IndexFile::create`): a full disk fails
            // here with ENOSPC, not later as SIGBUS on a write to a mapped sparse page.
            let idx_file = storage.open(&index_name(base), OpenMode::Create)?;
            let index = OffsetIndex(IndexFile::create(idx_file, OFFSET_ENTRY, index_capacity)?);
            let time_file = storage.open(&time_index_name(base), OpenMode::Create)?;
            let time_index = TimeIndex(IndexFile::create(time_file, TIME_ENTRY, index_capacity)?);
            io::Result::Ok((log, index, time_index))
        })();
        let (log, index, time_index) = match created {
            Ok(parts) => parts,
            Err(e) => {
                // Leave no half-made segment behind (its files hold nothing yet): the next roll
                // starts over, and a restart finds no empty newest segment to preallocate.
                for name in [log_name(base), index_name(base), time_index_name(base)] {
                    let _ = storage.remove(&name);
                }
                return Err(e);
            }
        };
        Ok(Self::assemble(
            log,
            index,
            time_index,
            Stats::empty(base),
            base,
            Vec::new(),
        ))
    }

    pub(crate) fn assemble(
        log: Arc<dyn StorageFile>,
        index: OffsetIndex,
        time_index: TimeIndex,
        stats: Stats,
        base: u64,
        damage: Vec<Damage>,
    ) -> Self {
        Self {
            base_offset: base,
            log,
            committed: AtomicU64::new(stats.size),
            stats: Mutex::new(stats),
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            damage: RwLock::new(damage),
        }
    }

    /// Whether any damage is known in this segment (it is then left out of checkpoints).
    pub(crate) fn is_damaged(&self) -> bool {
        !self.damage.read().is_empty()
    }

    /// The known damage that lost `offset`, if any.
    pub(crate) fn damage_covering(&self, offset: u64) -> Option<Damage> {
        self.damage
            .read()
            .iter()
            .find(|d| d.first_offset <= offset && offset < d.next_offset)
            .cloned()
    }

    /// The known damage, by position (empty, without allocating, for a healthy segment).
    pub(crate) fn damage(&self) -> Vec<Damage> {
        self.damage.read().clone()
    }

    /// Records damage a reader found (once).
    pub(crate) fn add_damage(&self, d: Damage) {
        let mut list = self.damage.write();
        if !list.iter().any(|k| k.position == d.position) {
            d.report(self.base_offset, "a read");
            list.push(d);
            list.sort_by_key(|k| k.position);
        }
    }

    /// The last offset index entry at or before `offset`: `(offset, position)` of a batch
    /// boundary, or the segment start.
    pub(crate) fn anchor_for(&self, offset: u64) -> (u64, u64) {
        let rel = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let index = self.index.read();
        let (mut lo, mut hi) = (0usize, index.0.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if index.get(mid).0 <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            (self.base_offset, 0)
        } else {
            let (r, p) = index.get(lo - 1);
            (self.base_offset + u64::from(r), u64::from(p))
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

    /// Where to cut this segment so that it keeps exactly the batches before the one holding
    /// `offset`: the cut position (a batch boundary) and the summary of what stays. A cut that
    /// would fall inside a known damaged stretch falls at its start (the stretch goes); a batch
    /// the walk cannot frame ends what is kept. Walks every batch header from the segment start
    /// (no CRC): cost one read of the segment, once per truncation.
    pub(crate) fn prefix_before(
        &self,
        offset: u64,
        max_batch_length: u32,
        dense_from: u64,
    ) -> io::Result<(u64, Stats)> {
        let damage = self.damage();
        let end = self.committed();
        let rules = ScanRules {
            max_batch_length,
            verify_crc: false,
            dense_from,
            resync: false,
            skip: &damage,
            // Only the cut point matters here; the reads that served these batches checked
            // their epochs.
            max_epoch: u32::MAX,
        };
        let mut stats = Stats::empty(self.base_offset);
        let mut cut = None;
        let scanned = scan(
            self.log.as_ref(),
            0,
            end,
            self.base_offset,
            self.base_offset,
            &rules,
            |pos, f| {
                if cut.is_some() {
                    return;
                }
                if f.last_offset() >= offset {
                    cut = Some(pos);
                } else {
                    stats.add(f, f.total_len());
                }
            },
        )?;
        let mut cut = cut.unwrap_or(scanned.end);
        for d in &damage {
            if d.position >= cut {
                break;
            }
            if d.next_offset > offset {
                cut = d.position;
                break;
            }
            stats.next_offset = stats.next_offset.max(d.next_offset);
        }
        // Batches after a damaged stretch that stays were counted by the walk; the stretch
        // itself is bytes of the prefix too.
        stats.size = cut;
        Ok((cut, stats))
    }

    /// Cuts the segment at `pos` (from [`prefix_before`](Self::prefix_before), with `stats`
    /// its summary): readers stop at `pos` first, then the file and both indexes are cut and
    /// synced. Called by the log's writer. Cost: an `ftruncate`, index truncation, three
    /// fsyncs.
    pub(crate) fn cut(&self, pos: u64, stats: Stats) -> io::Result<()> {
        self.publish(stats);
        self.damage.write().retain(|d| d.position < pos);
        self.log.set_len(pos)?;
        self.index.write().truncate_to_position(pos)?;
        self.time_index
            .write()
            .truncate_to_rel(stats.next_offset - self.base_offset)?;
        self.sync_all()
    }

    /// The index cursor of a segment that becomes active again at its current end (after a
    /// truncation), as recovery computes it.
    pub(crate) fn cursor_at_end(&self) -> IndexCursor {
        let stats = self.stats();
        let last = self.index.read().last().map_or(0, |(_, p)| u64::from(p));
        IndexCursor {
            bytes_since_entry: stats.size - last,
            max_timestamp: if stats.record_count == 0 {
                i64::MIN
            } else {
                stats.max_timestamp
            },
        }
    }

    /// Lets a sealed segment's indexes grow again (it becomes active after a truncation).
    /// Best effort, like [`IndexFile::allow_growth`].
    pub(crate) fn reactivate(&self, index_max_bytes: u64) -> io::Result<()> {
        self.index.write().0.allow_growth(index_max_bytes)?;
        self.time_index.write().0.allow_growth(index_max_bytes)
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

/// What a [`scan`] checks and how it treats damage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanRules<'a> {
    /// Largest accepted `batch_length`.
    pub(crate) max_batch_length: u32,
    /// Check each batch's CRC (otherwise headers only).
    pub(crate) verify_crc: bool,
    /// Offsets at or after this must continue exactly (see [`header_fits`]): the cleaner
    /// checkpoint, below which compaction may have left gaps.
    pub(crate) dense_from: u64,
    /// At an invalid batch, look for the next valid one and go on from there (recording the
    /// damage) instead of stopping.
    pub(crate) resync: bool,
    /// Damage already known: skipped without looking at it.
    pub(crate) skip: &'a [Damage],
    /// The newest leader epoch a batch may carry (see [`header_fits`]).
    pub(crate) max_epoch: u32,
}

/// What a [`scan`] found.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Position after the last valid batch (or damage) before the point where it stopped.
    pub(crate) end: u64,
    /// Why it stopped before the end of the range, if it did.
    pub(crate) stopped: Option<ScanStop>,
    /// Damage it stepped over (with `resync`).
    pub(crate) damage: Vec<Damage>,
    /// The offset after the last valid batch or damage.
    pub(crate) next_offset: u64,
}

/// Why the batch at `pos` (whose offsets must continue from `expected`) is not valid, or
/// `None` with its frame when it is.
fn check_at(
    reader: &mut ChunkReader<'_>,
    pos: u64,
    end: u64,
    expected: u64,
    segment_base: u64,
    rules: &ScanRules<'_>,
) -> io::Result<Result<Frame, String>> {
    let head = reader.get(pos, HEADER_LEN)?;
    let frame = match Frame::parse(head, rules.max_batch_length) {
        Ok(frame) => frame,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if !header_fits(
        &frame,
        expected,
        expected >= rules.dense_from,
        segment_base,
        rules.max_epoch,
    ) {
        return Ok(Err(misfit(&frame, expected, rules.max_epoch)));
    }
    let total = frame.total_len();
    if pos + total > end {
        let e = FrameError::LengthMismatch {
            announced: total,
            actual: end - pos,
        };
        return Ok(Err(e.to_string()));
    }
    if rules.verify_crc {
        let bytes = reader.get(pos, total as usize)?;
        if let Err(e) = frame.verify_crc(bytes) {
            return Ok(Err(e.to_string()));
        }
    }
    Ok(Ok(frame))
}

/// Why a frame that parsed does not fit the log at `expected` (see [`header_fits`]).
pub(crate) fn misfit(frame: &Frame, expected: u64, max_epoch: u32) -> String {
    if frame.leader_epoch > max_epoch {
        format!(
            "batch leader epoch {} is newer than any epoch of the log ({max_epoch})",
            frame.leader_epoch
        )
    } else {
        format!(
            "batch offsets {}..={} do not continue the log at {expected}",
            frame.base_offset,
            frame.last_offset()
        )
    }
}

/// The header bounds a batch must respect: its `batch_length` and its leader epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderLimits {
    /// Largest accepted `batch_length`.
    pub(crate) max_batch_length: u32,
    /// The newest accepted leader epoch (see [`header_fits`]).
    pub(crate) max_epoch: u32,
}

/// The first position in `(from, end)` holding a whole batch whose header and CRC check out
/// and whose base offset is at least `min_offset`: where reading resumes after damage. Tries
/// `hint` first (where the damaged batch said it ends), then every byte. Cost: on damage only;
/// a header check per byte of the damaged stretch, a CRC pass per candidate.
pub(crate) fn resync(
    file: &dyn StorageFile,
    from: u64,
    end: u64,
    min_offset: u64,
    segment_base: u64,
    limits: HeaderLimits,
    hint: Option<u64>,
) -> io::Result<Option<(u64, Frame)>> {
    let mut reader = ChunkReader::new(file, end, 1 << 20);
    let rules = ScanRules {
        max_batch_length: limits.max_batch_length,
        verify_crc: true,
        dense_from: u64::MAX,
        resync: false,
        skip: &[],
        max_epoch: limits.max_epoch,
    };
    let magic_at = crate::batch::OFF_MAGIC as u64;
    let candidates = hint
        .filter(|&h| h > from && h < end)
        .into_iter()
        .chain(from + 1..end);
    for pos in candidates {
        if pos + HEADER_LEN as u64 > end {
            break;
        }
        // Cheap filter before parsing: the magic byte.
        if reader.get(pos + magic_at, 1)?.first() != Some(&crate::batch::MAGIC) {
            continue;
        }
        if let Ok(frame) = check_at(&mut reader, pos, end, min_offset, segment_base, &rules)? {
            return Ok(Some((pos, frame)));
        }
    }
    Ok(None)
}

/// Walks batches from `pos` to `end`, validating each header (and CRC when `verify_crc`) and
/// that its offsets continue the log from `next_offset` (see [`header_fits`]); calls
/// `f(position, frame)` for each valid batch. Known damage (`skip`) is stepped over; with
/// `resync`, new damage is stepped over too (and returned), so one bad batch costs only its
/// own records. Cost: reads the range once (headers only without `verify_crc`: one chunked
/// pass anyway).
pub(crate) fn scan(
    file: &dyn StorageFile,
    mut pos: u64,
    end: u64,
    segment_base: u64,
    mut next_offset: u64,
    rules: &ScanRules<'_>,
    mut f: impl FnMut(u64, &Frame),
) -> io::Result<Scanned> {
    let mut reader = ChunkReader::new(file, end, 1 << 20);
    let mut damage = Vec::new();
    while pos < end {
        if let Some(d) = rules.skip.iter().find(|d| d.position == pos) {
            pos += d.len;
            next_offset = next_offset.max(d.next_offset);
            continue;
        }
        match check_at(&mut reader, pos, end, next_offset, segment_base, rules)? {
            Ok(frame) => {
                f(pos, &frame);
                next_offset = frame.last_offset() + 1;
                pos += frame.total_len();
            }
            Err(reason) => {
                let found = if rules.resync {
                    let hint = Frame::parse(reader.get(pos, HEADER_LEN)?, rules.max_batch_length)
                        .ok()
                        .map(|fr| pos + fr.total_len());
                    resync(
                        file,
                        pos,
                        end,
                        next_offset,
                        segment_base,
                        HeaderLimits {
                            max_batch_length: rules.max_batch_length,
                            max_epoch: rules.max_epoch,
                        },
                        hint,
                    )?
                } else {
                    None
                };
                let Some((at, frame)) = found else {
                    return Ok(Scanned {
                        end: pos,
                        stopped: Some(ScanStop::Invalid { reason }),
                        damage,
                        next_offset,
                    });
                };
                damage.push(Damage {
                    position: pos,
                    len: at - pos,
                    first_offset: next_offset,
                    next_offset: frame.base_offset,
                    reason,
                });
                next_offset = frame.base_offset;
                pos = at;
            }
        }
    }
    Ok(Scanned {
        end: pos,
        stopped: None,
        damage,
        next_offset,
    })
}
