//! The read path: finding a batch by offset or timestamp and returning whole, verified batches.
//!
//! Readers work on a [`LogSnapshot`] and never take the writer lock. Every batch they return
//! passed three checks: its header parses, its CRC matches, and its offsets continue the batch
//! before it (exactly above the cleaner checkpoint, with gaps below it). The last check is what
//! vouches for `base_offset`, which the CRC does not cover: a batch whose offsets do not fit is
//! treated as damage, never served under the offsets it claims.
//!
//! A walk starts at an offset-index entry, whose batch must start exactly at the offset the
//! entry names (otherwise the index or the header is wrong and the walk restarts at the segment
//! start). Damage found on the way (by recovery or by an earlier read) is stepped over by
//! position; new damage is located by resynchronising on the next valid batch, recorded on the
//! segment, and reported to a reader that asks for one of its offsets as
//! [`ReadError::DataLoss`], naming the lost offsets and where the log continues.

use super::{Log, LogSnapshot, ReadError};
use crate::batch::BatchView;
use crate::segment::SegmentInfo;
use crate::segment::frame::{Frame, HEADER_LEN};
use crate::segment::{ChunkReader, Damage, HeaderLimits, Segment, header_fits, misfit, resync};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Whole batches returned by a read, each CRC-checked once by the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Concatenated batches, each starting with its 67-byte header; empty at the log end.
    /// Private so that [`batches`](Self::batches) can vouch for them.
    bytes: Bytes,
    /// Number of batches in `bytes`.
    pub batch_count: usize,
    /// Offset to read next (last offset of the last batch + 1, or the requested offset when
    /// nothing was returned).
    pub next_offset: u64,
    /// High watermark when the read started (see [`Log::high_watermark`](super::Log::high_watermark)).
    pub high_watermark: u64,
}

impl Fetched {
    /// The batches, concatenated: one buffer that keys and values can be sliced out of
    /// without copying ([`Bytes::slice_ref`]).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batches, in offset order, as views into [`bytes`](Self::bytes). Each was
    /// CRC-checked by the read that returned it, so this does not compute the CRC again
    /// (a second pass was 6 % of a loaded broker's CPU when fetching 1 KiB records).
    /// Cost: a header parse per batch.
    pub fn batches(&self) -> impl Iterator<Item = BatchView<'_>> {
        let mut rest: &[u8] = &self.bytes;
        std::iter::from_fn(move || {
            // Every batch here was framed and checked by `read_segment`; a parse cannot
            // fail, and would end the iteration if it did.
            let view = BatchView::verified(rest).ok()?;
            rest = &rest[view.total_len()..];
            Some(view)
        })
    }
}

impl Log {
    pub(super) fn snapshot_segments(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    /// A read view of the current segments. Cheap: clones an `Arc`.
    pub fn snapshot(&self) -> LogSnapshot {
        // End first: every batch below it is in a segment of the list read after it.
        let end_offset = self.log_end_offset();
        LogSnapshot {
            segments: self.snapshot_segments(),
            end_offset,
            high_watermark: self.high_watermark().min(end_offset),
            max_batch: self.config.max_batch_bytes,
            dense_from: self.gaps_below.load(Ordering::Acquire),
            max_epoch: self.max_epoch.load(Ordering::Acquire),
        }
    }

    /// Whole batches starting with the one that contains `offset`, up to `max_bytes` (but always
    /// at least one whole batch, however large), for consumers: only batches wholly below the
    /// [`high_watermark`](Self::high_watermark). Reading at or after the high watermark (up to
    /// the log end) returns nothing; past the log end is [`ReadError::OffsetOutOfRange`].
    /// Every returned batch passed its CRC check. Cost: an index binary search and one or two
    /// positional reads.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Fetched, ReadError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ReadError::Closed);
        }
        self.snapshot().read(offset, max_bytes)
    }

    /// [`read`](Self::read) up to the log end instead of the high watermark: what a follower
    /// fetches to replicate (the records it gets are not committed yet). Identical to `read`
    /// unless [`LogConfig::replicated`](super::LogConfig::replicated).
    pub fn read_for_follower(&self, offset: u64, max_bytes: usize) -> Result<Fetched, ReadError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ReadError::Closed);
        }
        self.snapshot().read_for_follower(offset, max_bytes)
    }

    /// Base offset of the first batch whose max timestamp is >= `timestamp_ms`, or `None` when
    /// there is none. Cost: a pass over segment summaries, a time index search, a short scan.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, ReadError> {
        self.snapshot().offset_for_timestamp(timestamp_ms)
    }

    /// First offset that can be read.
    pub fn log_start_offset(&self) -> u64 {
        self.snapshot_segments()
            .first()
            .map_or(0, |s| s.base_offset)
    }

    /// The next offset to be assigned. Once the log has failed (see
    /// [`failure`](Self::failure)), the synced offset: nothing after it is known to be on disk.
    pub fn log_end_offset(&self) -> u64 {
        self.end_offset
            .load(Ordering::Acquire)
            .min(self.readable_end.load(Ordering::Acquire))
    }

    /// Offsets below this are committed and visible to consumers ([`read`](Self::read)).
    ///
    /// Without replication ([`LogConfig::replicated`](super::LogConfig::replicated) false, the
    /// default) it is the log end offset. With it, it is the last value given to
    /// [`set_high_watermark`](Self::set_high_watermark), never above the log end offset: a
    /// truncation below it lowers it to the new end (a follower's high watermark exceeds its
    /// log end only transiently, between a leader's report and its own fetch, and this getter
    /// then returns the log end). It is persisted in the recovery checkpoint, so an open after a
    /// crash starts from the last checkpointed value (at most the true one; replication raises
    /// it again), clamped to the recovered log end.
    pub fn high_watermark(&self) -> u64 {
        let end = self.log_end_offset();
        if self.config.replicated {
            self.high_watermark.load(Ordering::Acquire).min(end)
        } else {
            end
        }
    }

    /// Raises the high watermark to `offset` (the leader computed it from its in-sync replicas,
    /// or a follower learned it from its leader) and returns the high watermark now in force.
    /// Monotonic: a lower `offset` changes nothing (only [`truncate_to`](Self::truncate_to)
    /// lowers it). Clamped to the log end offset. Persisted with the next recovery checkpoint
    /// (see [`high_watermark`](Self::high_watermark)), not synced here: cheap, call it on every
    /// fetch. Without [`LogConfig::replicated`](super::LogConfig::replicated) it does nothing
    /// and returns the log end offset.
    pub fn set_high_watermark(&self, offset: u64) -> u64 {
        let end = self.log_end_offset();
        if !self.config.replicated {
            return end;
        }
        let target = offset.min(end);
        let before = self.high_watermark.fetch_max(target, Ordering::AcqRel);
        before.max(target).min(end)
    }

    /// Offsets below this are known to be synced.
    pub fn synced_offset(&self) -> u64 {
        self.sync.lock().synced_offset
    }

    /// Descriptions of all segments, oldest first; the last one is active.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.snapshot_segments();
        let last = segs.len().saturating_sub(1);
        segs.iter()
            .enumerate()
            .map(|(i, s)| s.info(i == last))
            .collect()
    }
}

/// Where a header walk starts: a batch boundary and the offset its batch must start at (exactly
/// when `exact`, as at an offset-index entry, or where the log is dense).
#[derive(Clone, Copy)]
struct Start {
    pos: u64,
    expected: u64,
    exact: bool,
}

impl Start {
    /// The segment's first byte: its first batch starts at the segment's base offset, or later
    /// where compaction removed records.
    fn segment(seg: &Segment) -> Self {
        Self {
            pos: 0,
            expected: seg.base_offset,
            exact: false,
        }
    }

    /// The offset-index entry at or before `offset`.
    fn anchor(seg: &Segment, offset: u64) -> Self {
        let (expected, pos) = seg.anchor_for(offset);
        Self {
            pos,
            expected,
            exact: true,
        }
    }
}

/// Where a header walk stopped.
enum Walk {
    /// The first batch the walk was looking for: position, frame, and the offset its
    /// predecessor said it must start at.
    Found(u64, Frame, u64),
    /// The segment holds no such batch.
    End,
    /// The batch at the starting index entry does not start at the entry's offset.
    BadAnchor,
}

/// Damage found by one read; a read records at most this many before giving up (each one is
/// a separate damaged stretch, so this only bounds a pathological segment).
const MAX_NEW_DAMAGE_PER_READ: usize = 64;

fn data_loss(seg: &Segment, d: &Damage) -> ReadError {
    ReadError::DataLoss {
        segment: seg.base_offset,
        position: d.position,
        first_offset: d.first_offset,
        next_offset: d.next_offset,
        reason: d.reason.clone(),
    }
}

impl LogSnapshot {
    /// Log end offset when the snapshot was taken.
    pub fn log_end_offset(&self) -> u64 {
        self.end_offset
    }

    /// First offset of the snapshot's first segment.
    pub fn log_start_offset(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base_offset)
    }

    /// High watermark when the snapshot was taken (see [`Log::high_watermark`]).
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// See [`Log::read`](super::Log::read): batches below the snapshot's high watermark. Reads
    /// only segments of this snapshot.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Fetched, ReadError> {
        self.read_below(offset, max_bytes, self.high_watermark)
    }

    /// See [`Log::read_for_follower`](super::Log::read_for_follower): batches below the
    /// snapshot's log end.
    pub fn read_for_follower(&self, offset: u64, max_bytes: usize) -> Result<Fetched, ReadError> {
        self.read_below(offset, max_bytes, self.end_offset)
    }

    /// Batches wholly below `bound` (at most the log end) from the one holding `offset`.
    fn read_below(&self, offset: u64, max_bytes: usize, bound: u64) -> Result<Fetched, ReadError> {
        let (start, end) = (self.log_start_offset(), self.end_offset);
        let empty = Fetched {
            bytes: Bytes::new(),
            batch_count: 0,
            next_offset: offset,
            high_watermark: self.high_watermark,
        };
        if offset < start || offset > end {
            return Err(ReadError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset >= bound {
            return Ok(empty);
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in &self.segments[first..] {
            if let Some(f) = self.read_segment(seg, offset, max_bytes, bound)? {
                return Ok(f);
            }
        }
        Ok(empty)
    }

    fn dense(&self, expected: u64) -> bool {
        expected >= self.dense_from
    }

    /// Locates the damaged stretch starting at `pos` (where a batch continuing the log at
    /// `expected` should be), records it on the segment and returns it.
    fn discover(
        &self,
        seg: &Segment,
        pos: u64,
        expected: u64,
        limit: u64,
        reason: String,
    ) -> Result<Damage, ReadError> {
        let mut head = [0u8; HEADER_LEN];
        let hint = (pos + HEADER_LEN as u64 <= limit)
            .then(|| seg.log.read_at(&mut head, pos).ok())
            .flatten()
            .and_then(|()| Frame::parse(&head, self.max_batch).ok())
            .map(|f| pos + f.total_len());
        let found = resync(
            seg.log.as_ref(),
            pos,
            limit,
            expected,
            seg.base_offset,
            HeaderLimits {
                max_batch_length: self.max_batch,
                max_epoch: self.max_epoch,
            },
            hint,
        )?;
        let d = match found {
            Some((at, frame)) => Damage {
                position: pos,
                len: at - pos,
                first_offset: expected,
                next_offset: frame.base_offset,
                reason,
            },
            None => Damage {
                position: pos,
                len: limit - pos,
                first_offset: expected,
                next_offset: seg.stats().next_offset.max(expected),
                reason,
            },
        };
        seg.add_damage(d.clone());
        Ok(d)
    }

    /// Walks batch headers from `from` until `wanted(frame)`. Known damage is stepped over; new
    /// damage is located, recorded and stepped over; `on_damage` decides whether the walk ends
    /// there with an error.
    fn walk(
        &self,
        seg: &Segment,
        from: Start,
        limit: u64,
        mut wanted: impl FnMut(&Frame) -> bool,
        mut on_damage: impl FnMut(&Damage) -> Option<ReadError>,
    ) -> Result<Walk, ReadError> {
        let Start {
            mut pos,
            mut expected,
            exact,
        } = from;
        let mut reader = ChunkReader::new(seg.log.as_ref(), limit, 16 * 1024);
        let start = pos;
        let mut found_damage = 0;
        // One look at the segment's damage list per walk, not one per batch.
        let known = seg.damage();
        while pos < limit {
            if let Some(d) = known.iter().find(|d| d.position == pos) {
                if let Some(e) = on_damage(d) {
                    return Err(e);
                }
                pos += d.len;
                expected = expected.max(d.next_offset);
                continue;
            }
            let head = reader.get(pos, HEADER_LEN)?;
            let checked = Frame::parse(head, self.max_batch)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    let dense = self.dense(expected) || (exact && pos == start && pos > 0);
                    if header_fits(&f, expected, dense, seg.base_offset, self.max_epoch) {
                        Ok(f)
                    } else {
                        Err(misfit(&f, expected, self.max_epoch))
                    }
                })
                .and_then(|f| {
                    if pos + f.total_len() > limit {
                        Err("batch extends past the segment end".into())
                    } else {
                        Ok(f)
                    }
                });
            match checked {
                Ok(f) => {
                    if wanted(&f) {
                        return Ok(Walk::Found(pos, f, expected));
                    }
                    expected = f.last_offset() + 1;
                    pos += f.total_len();
                }
                Err(_) if exact && pos == start && pos > 0 => return Ok(Walk::BadAnchor),
                Err(reason) => {
                    found_damage += 1;
                    if found_damage > MAX_NEW_DAMAGE_PER_READ {
                        return Err(ReadError::Corrupt {
                            segment: seg.base_offset,
                            position: pos,
                            reason: "too many damaged batches".into(),
                        });
                    }
                    let d = self.discover(seg, pos, expected, limit, reason)?;
                    if let Some(e) = on_damage(&d) {
                        return Err(e);
                    }
                    pos += d.len;
                    expected = d.next_offset;
                }
            }
        }
        Ok(Walk::End)
    }

    /// Position, frame and expected base of the first batch in `seg` whose last offset is at
    /// least `offset`, starting at the offset index entry for it (from the segment start if
    /// that entry turns out to be wrong).
    fn find_batch(
        &self,
        seg: &Segment,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(u64, Frame, u64)>, ReadError> {
        let lost = |d: &Damage| (offset < d.next_offset).then(|| data_loss(seg, d));
        let mut walk = self.walk(
            seg,
            Start::anchor(seg, offset),
            limit,
            |f| f.last_offset() >= offset,
            lost,
        )?;
        if matches!(walk, Walk::BadAnchor) {
            tracing::warn!(
                segment = seg.base_offset,
                "offset index entry is wrong; scanning"
            );
            walk = self.walk(
                seg,
                Start::segment(seg),
                limit,
                |f| f.last_offset() >= offset,
                lost,
            )?;
        }
        Ok(match walk {
            Walk::Found(pos, f, expected) => Some((pos, f, expected)),
            Walk::End | Walk::BadAnchor => None,
        })
    }

    fn read_segment(
        &self,
        seg: &Segment,
        offset: u64,
        max_bytes: usize,
        end: u64,
    ) -> Result<Option<Fetched>, ReadError> {
        let limit = seg.committed();
        for _ in 0..MAX_NEW_DAMAGE_PER_READ {
            if let Some(d) = seg.damage_covering(offset) {
                return Err(data_loss(seg, &d));
            }
            let Some((pos, first, expected)) = self.find_batch(seg, offset, limit)? else {
                return Ok(None);
            };
            let want = (limit - pos).min(max_bytes as u64).max(first.total_len());
            let mut bytes = vec![
                0u8;
                usize::try_from(want).map_err(|_| std::io::Error::from(
                    std::io::ErrorKind::OutOfMemory
                ))?
            ];
            seg.log.read_at(&mut bytes, pos)?;
            let mut at = 0usize;
            let mut count = 0usize;
            let mut next_offset = offset;
            let mut next_expected = expected;
            let mut first_bad = None;
            let known = seg.damage();
            while at + HEADER_LEN <= bytes.len() {
                let here = pos + at as u64;
                if count > 0 && known.iter().any(|d| d.position == here) {
                    break;
                }
                let frame = match Frame::parse(&bytes[at..], self.max_batch) {
                    Ok(f) => f,
                    Err(e) => {
                        first_bad = (count == 0).then(|| e.to_string());
                        break;
                    }
                };
                let len = frame.total_len() as usize;
                // Nothing at or past the snapshot's end: a failed log stops readers at its
                // synced offset, and the high watermark bounds consumers the same way.
                if at + len > bytes.len() || frame.last_offset() >= end {
                    break;
                }
                if count > 0
                    && !header_fits(
                        &frame,
                        next_expected,
                        self.dense(next_expected),
                        seg.base_offset,
                        self.max_epoch,
                    )
                {
                    // The next read starts here and finds out which batch is damaged.
                    break;
                }
                if let Err(e) = frame.verify_crc(&bytes[at..at + len]) {
                    first_bad = (count == 0).then(|| e.to_string());
                    break;
                }
                next_offset = frame.last_offset() + 1;
                next_expected = next_offset;
                at += len;
                count += 1;
            }
            if let Some(reason) = first_bad {
                let d = self.discover(seg, pos, expected, limit, reason)?;
                if offset < d.next_offset {
                    return Err(data_loss(seg, &d));
                }
                // The requested offset lies after the damage: look again.
                continue;
            }
            bytes.truncate(at);
            return Ok(Some(Fetched {
                bytes: Bytes::from(bytes),
                batch_count: count,
                next_offset,
                high_watermark: self.high_watermark,
            }));
        }
        Err(ReadError::Corrupt {
            segment: seg.base_offset,
            position: 0,
            reason: "too many damaged batches".into(),
        })
    }

    /// See [`Log::offset_for_timestamp`](super::Log::offset_for_timestamp).
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, ReadError> {
        for seg in self.segments.iter() {
            let stats = seg.stats();
            if stats.record_count == 0 || stats.max_timestamp < timestamp_ms {
                continue;
            }
            let limit = seg.committed();
            let rel = seg.rel_for_timestamp(timestamp_ms);
            let anchor = Start::anchor(seg, seg.base_offset + u64::from(rel));
            let wanted = |f: &Frame| f.max_timestamp >= timestamp_ms;
            // Damage is stepped over: the next intact batch answers.
            let mut walk = self.walk(seg, anchor, limit, wanted, |_| None)?;
            if matches!(walk, Walk::BadAnchor) {
                tracing::warn!(segment = seg.base_offset, "index entry is wrong; scanning");
                walk = self.walk(seg, Start::segment(seg), limit, wanted, |_| None)?;
            }
            if let Walk::Found(_, f, _) = walk {
                return Ok(Some(f.base_offset));
            }
        }
        Ok(None)
    }
}
