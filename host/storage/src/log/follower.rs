//! The follower's write path: appending whole batches exactly as a leader wrote them.

use super::{AppendError, AppendInfo, Log};
use crate::segment::frame::{Frame, FrameError};
use std::sync::atomic::Ordering;

impl Log {
    /// Appends one or more whole batches that a leader's log assigned, byte for byte as
    /// received (a follower replicating a fetch of the leader's log). Nothing in them is
    /// rewritten: offsets, leader epoch, timestamps (log-append time included) and producer
    /// fields stay the leader's, so a follower that appends everything the leader returns from
    /// its log end offset on holds a byte-identical log.
    ///
    /// Checked before anything is written, so that a failed check leaves the log unchanged:
    /// every batch parses with the checks a read applies (its length, header fields, the
    /// CRC, a codec known to this log's codec table, offsets that fit a segment), leader epochs
    /// never decrease (from the log's [`leader_epoch`](Self::leader_epoch) on, batch to batch;
    /// [`AppendError::LeaderEpoch`]), the input holds nothing but whole batches, the first batch starts
    /// exactly at [`log_end_offset`](Self::log_end_offset) and each next one right after the
    /// previous one ([`AppendError::OffsetMismatch`]; a follower that diverged truncates
    /// first, see [`truncate_to`](Self::truncate_to)). The leader's codec table entries the
    /// batches reference must have been registered here first (same ids).
    ///
    /// A batch that starts a new epoch records it in the leader-epoch file first (see
    /// [`end_offset_for_epoch`](Self::end_offset_for_epoch)); every batch is applied to the
    /// producer state, unchecked (the leader decided).
    ///
    /// Same durability as [`append`](Self::append): the batches are written under the writer
    /// lock (rolling segments as an append would), then the sync policy is applied once for
    /// all of them (group commit with concurrent appenders). An IO error part-way (a roll, a
    /// write) leaves the batches before it appended, whole and visible, and nothing of the
    /// others: [`log_end_offset`](Self::log_end_offset) says where to fetch from again.
    ///
    /// Returns the first batch's base offset and the last batch's last offset. Cost: a CRC
    /// pass over the input, one positional write per batch, one shared fsync (EveryBatch).
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<AppendInfo, AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        self.check_failed()?;
        let frames = self.frame_replicated(batches)?;
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            return Err(AppendError::NoBatches);
        };
        let info = AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_append_time_ms: self.clock.now_ms(),
        };

        let mut w = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        self.check_failed()?;
        if first.base_offset != w.stats.next_offset {
            return Err(AppendError::OffsetMismatch {
                index: 0,
                base_offset: first.base_offset,
                expected: w.stats.next_offset,
            });
        }
        // A new epoch is in the epoch file before any of its batches is on disk.
        let epochs: Vec<(u32, u64)> = frames
            .iter()
            .map(|f| (f.leader_epoch, f.base_offset))
            .collect();
        self.assign_epochs(&epochs, false)?;
        let mut rolled = false;
        let mut at = 0usize;
        let mut result = Ok(());
        for frame in &frames {
            let total = frame.total_len() as usize;
            let bytes = &batches[at..at + total];
            result = self
                .maybe_roll(&mut w, Some(frame), info.log_append_time_ms)
                .and_then(|r| {
                    rolled |= r;
                    self.write_batch(&mut w, bytes, frame)
                });
            if result.is_ok() {
                self.apply_to_producers(frame);
            }
            if result.is_err() {
                break;
            }
            at += total;
        }
        drop(w);
        if rolled {
            self.seal_after_roll();
        }
        result?;
        self.make_durable(&info)?;
        Ok(info)
    }

    /// Frames and checks every batch of a follower append (see
    /// [`append_as_follower`](Self::append_as_follower)), without the lock.
    fn frame_replicated(&self, batches: &[u8]) -> Result<Vec<Frame>, AppendError> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut position = 0usize;
        while position < batches.len() {
            let index = frames.len();
            let rest = &batches[position..];
            let invalid = |source: FrameError| AppendError::InvalidReplicaBatch {
                index,
                position,
                source,
            };
            let frame = Frame::parse(rest, self.config.max_batch_bytes).map_err(invalid)?;
            let total = frame.total_len();
            if total > rest.len() as u64 {
                return Err(invalid(FrameError::LengthMismatch {
                    announced: total,
                    actual: rest.len() as u64,
                }));
            }
            frame.verify_crc(&rest[..total as usize]).map_err(invalid)?;
            if frame.is_compressed() && !self.codecs.contains(frame.codec_ref) {
                return Err(AppendError::UnknownCodec(frame.codec_ref));
            }
            let min_epoch = frames.last().map_or(0, |f| f.leader_epoch);
            if frame.leader_epoch < min_epoch {
                return Err(AppendError::LeaderEpoch {
                    index,
                    epoch: frame.leader_epoch,
                    min: min_epoch,
                    max: u32::MAX,
                });
            }
            if let Some(prev) = frames.last()
                && frame.base_offset != prev.last_offset().saturating_add(1)
            {
                return Err(AppendError::OffsetMismatch {
                    index,
                    base_offset: frame.base_offset,
                    expected: prev.last_offset().saturating_add(1),
                });
            }
            frames.push(frame);
            position += total as usize;
        }
        Ok(frames)
    }
}
