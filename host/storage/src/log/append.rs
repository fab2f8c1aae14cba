//! The write path: appending a batch under the writer lock (offsets assigned by the log),
//! rolling the active segment, and handing the sealed one to the sealer.

use super::threads;
use super::{AppendError, CrcCheck, Log, Writer};
use crate::batch::{set_base_offset, set_leader_epoch, set_log_append_time};
use crate::io::is_no_space;
use crate::producers::Check;
use crate::segment::frame::{Frame, FrameError, LOG_APPEND_TIME};
use crate::segment::{IndexCursor, Segment, Stats};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// The log's clock when it appended the batch (ms); written into the batch's timestamps
    /// when the batch asks for log-append time.
    pub log_append_time_ms: i64,
}

/// What [`Log::append_idempotent`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    /// The batch was appended at these offsets.
    Appended(AppendInfo),
    /// The batch is a retry of one already in the log, which holds it at these offsets
    /// (`log_append_time_ms` is the original's `max_timestamp`); nothing was appended.
    Duplicate(AppendInfo),
}

impl Log {
    /// Appends one batch (bytes as built by the batch module, any base offset).
    ///
    /// Validates header and CRC, assigns offsets by patching `base_offset` in `batch` (and
    /// `max_timestamp` plus the CRC when the batch asks for log-append time), stamps the log's
    /// [`leader_epoch`](Self::leader_epoch), writes it, applies it to the producer state, and returns
    /// once the durability policy is satisfied. On return `batch` holds the bytes as stored.
    /// Cost: one positional write, plus (EveryBatch) waiting for a shared fsync. An append that
    /// rolls the segment does not wait for the sealed segment's sync: the background sealer
    /// syncs it and advances the checkpoint (inline when `seal_in_background` is off).
    pub fn append(&self, batch: &mut [u8]) -> Result<AppendInfo, AppendError> {
        let info = self.append_deferred(batch, CrcCheck::Verify)?;
        self.make_durable(&info)?;
        Ok(info)
    }

    /// [`append`](Self::append) without waiting for the sync policy: the batch is written and
    /// visible to readers on return, but not yet known to be durable. Call
    /// [`make_durable`](Self::make_durable) with the returned info before acknowledging it to
    /// anyone who asked for the policy's durability. Lets one caller write its next batch while
    /// the previous one's fsync runs (pipelined producers); group commit shares the fsyncs.
    /// `crc` says whether to re-verify the batch's CRC (see [`CrcCheck`]).
    pub fn append_deferred(
        &self,
        batch: &mut [u8],
        crc: CrcCheck,
    ) -> Result<AppendInfo, AppendError> {
        match self.append_checked(batch, crc, false)? {
            Idempotent::Appended(info) => Ok(info),
            // Unreachable: without the producer check nothing is a duplicate.
            Idempotent::Duplicate(info) => Ok(info),
        }
    }

    /// [`append`](Self::append) for an idempotent producer: under the writer lock, the batch's
    /// producer id, epoch and sequences are checked against the log's producer state
    /// ([`ProducerState::check`](crate::producers::ProducerState::check)), so that two
    /// concurrent retries cannot both be appended.
    ///
    /// - A batch without a producer id, or the next batch of its producer, is appended
    ///   ([`Idempotent::Appended`]).
    /// - A retry of one of the producer's last 5 batches is not appended; the answer names the
    ///   original batch's offsets ([`Idempotent::Duplicate`]) once the original is as durable
    ///   as the sync policy promises.
    /// - An out-of-order sequence, a fenced epoch, an unknown producer that does not start at
    ///   sequence 0, or invalid producer fields are refused with
    ///   [`AppendError::Producer`]; nothing is written.
    ///
    /// Cost: that of [`append`](Self::append) plus a map lookup under the writer lock.
    pub fn append_idempotent(&self, batch: &mut [u8]) -> Result<Idempotent, AppendError> {
        let outcome = self.append_checked(batch, CrcCheck::Verify, true)?;
        match &outcome {
            Idempotent::Appended(info) | Idempotent::Duplicate(info) => self.make_durable(info)?,
        }
        Ok(outcome)
    }

    /// [`append_idempotent`](Self::append_idempotent) without waiting for the sync policy, as
    /// [`append_deferred`](Self::append_deferred) is to [`append`](Self::append): call
    /// [`make_durable`](Self::make_durable) with the returned info (for a duplicate, the
    /// original's) before acknowledging it.
    pub fn append_idempotent_deferred(
        &self,
        batch: &mut [u8],
        crc: CrcCheck,
    ) -> Result<Idempotent, AppendError> {
        self.append_checked(batch, crc, true)
    }

    fn append_checked(
        &self,
        batch: &mut [u8],
        crc: CrcCheck,
        check_producer: bool,
    ) -> Result<Idempotent, AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        self.check_failed()?;
        let mut frame = Frame::parse(batch, self.config.max_batch_bytes)?;
        if frame.total_len() != batch.len() as u64 {
            return Err(FrameError::LengthMismatch {
                announced: frame.total_len(),
                actual: batch.len() as u64,
            }
            .into());
        }
        if crc == CrcCheck::Verify {
            frame.verify_crc(batch)?;
        }
        if frame.is_compressed() && !self.codecs.contains(frame.codec_ref) {
            return Err(AppendError::UnknownCodec(frame.codec_ref));
        }
        let now = self.clock.now_ms();
        if frame.attributes & LOG_APPEND_TIME != 0 {
            // Re-sealing the CRC costs two passes over the batch: do it outside the lock.
            set_log_append_time(batch, now).map_err(FrameError::from)?;
            frame.first_timestamp = now;
            frame.max_timestamp = now;
        }

        let mut w = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        self.check_failed()?;
        if check_producer {
            // Under the writer lock, so the state checked is the state the batch will follow.
            match self.producers.lock().check_batch(&frame.producer_batch()) {
                Check::New => {}
                Check::Duplicate {
                    first_offset,
                    last_offset,
                    max_timestamp,
                } => {
                    return Ok(Idempotent::Duplicate(AppendInfo {
                        base_offset: first_offset,
                        last_offset,
                        log_append_time_ms: max_timestamp,
                    }));
                }
                refused => return Err(AppendError::Producer(refused)),
            }
        }
        let rolled = self.maybe_roll(&mut w, Some(&frame), now)?;
        let base = w.stats.next_offset;
        set_base_offset(batch, base).map_err(FrameError::from)?;
        frame.base_offset = base;
        // Outside the CRC, so free to write: every batch is stored in the log's latest epoch
        // (the leader's, see `start_leader_epoch`), recorded before the batch is written.
        let epoch = self.max_epoch.load(Ordering::Acquire);
        if frame.leader_epoch != epoch {
            set_leader_epoch(batch, epoch).map_err(FrameError::from)?;
            frame.leader_epoch = epoch;
        }
        self.assign_epochs(&[(epoch, base)], false)?;
        self.write_batch(&mut w, batch, &frame)?;
        self.apply_to_producers(&frame);
        drop(w);

        if rolled {
            self.seal_after_roll();
        }
        Ok(Idempotent::Appended(AppendInfo {
            base_offset: base,
            last_offset: frame.last_offset(),
            log_append_time_ms: now,
        }))
    }

    /// Writes one whole batch (`bytes`, described by `frame`, whose offsets continue the log)
    /// at the end of the active segment, adds its index entries if due and publishes it to
    /// readers. Called under the writer lock, after any roll. On an error nothing of the batch
    /// is visible and the next write starts where this one did.
    pub(super) fn write_batch(
        &self,
        w: &mut Writer,
        bytes: &[u8],
        frame: &Frame,
    ) -> Result<(), AppendError> {
        let seg = w.active.clone();
        let pos = w.stats.size;
        if w.needs_truncate {
            match seg.log.set_len(pos) {
                Ok(()) => w.needs_truncate = false,
                Err(e) => return Err(write_error(e)),
            }
        }
        if let Err(e) = seg.log.write_at(bytes, pos) {
            if seg.log.set_len(pos).is_err() {
                w.needs_truncate = true;
            }
            return Err(write_error(e));
        }
        let interval = u64::from(self.config.index_interval_bytes);
        if !w.cursor.entry_due(pos, interval) {
            // No index entry for this batch: no index lock, readers are never in the way.
            w.cursor.advance(frame);
        } else {
            let mut index = seg.index.write();
            let mut time_index = seg.time_index.write();
            if let Err(e) = w.cursor.observe(
                seg.base_offset,
                &mut index,
                &mut time_index,
                pos,
                frame,
                interval,
            ) {
                // Indexes are caches; a missing entry only makes lookups scan a little more.
                tracing::warn!(segment = seg.base_offset, error = %e, "index entry not written");
            }
        }
        w.stats.add(frame, frame.total_len());
        seg.publish(w.stats);
        self.end_offset
            .store(w.stats.next_offset, Ordering::Release);
        Ok(())
    }

    /// Rolls the active segment if the incoming batch calls for it (`None`: roll anyway).
    /// Called under the writer lock; does no fsync (the next sync covers the sealed segment).
    pub(super) fn maybe_roll(
        &self,
        w: &mut Writer,
        incoming: Option<&Frame>,
        now: i64,
    ) -> Result<bool, AppendError> {
        if w.stats.size == 0 {
            return Ok(false);
        }
        if let Some(frame) = incoming
            && !self.roll_due(w, frame, now)
        {
            return Ok(false);
        }
        crate::failpoint::hit("segment::roll").map_err(write_error)?;
        let base = w.stats.next_offset;
        let new = Segment::create(self.storage.as_ref(), base, self.config.index_max_bytes)
            .map_err(write_error)?;
        let new = Arc::new(new);
        let old = std::mem::replace(&mut w.active, new.clone());
        if let Err(e) = old.trim_indexes() {
            tracing::warn!(segment = old.base_offset, error = %e, "trimming indexes failed");
        }
        w.stats = Stats::empty(base);
        w.cursor = IndexCursor::fresh();
        w.created_ms = now;
        w.needs_truncate = false;
        // Queue the sealed segment for the next sync *before* publishing the new active one: a
        // sync leader that sees the new segment as active must also find the old one queued, or
        // its checkpoint would name an unsynced segment.
        {
            let mut st = self.sync.lock();
            st.sealed.push(old);
            st.dir_dirty = true;
        }
        let mut segs = self.segments.write();
        let mut list = Vec::with_capacity(segs.len() + 1);
        list.extend(segs.iter().cloned());
        list.push(new);
        *segs = Arc::new(list);
        Ok(true)
    }

    pub(super) fn roll_due(&self, w: &Writer, frame: &Frame, now: i64) -> bool {
        let too_big = w.stats.size + frame.total_len() > self.config.segment_bytes;
        let too_old = self.config.segment_ms.is_some_and(|ms| {
            now.saturating_sub(w.created_ms) >= i64::try_from(ms).unwrap_or(i64::MAX)
        });
        let rel_end =
            w.stats.next_offset - w.active.base_offset + u64::from(frame.last_offset_delta);
        let offsets_full = rel_end > u64::from(u32::MAX);
        let index_full =
            w.active.index.read().0.is_full() || w.active.time_index.read().0.is_full();
        too_big || too_old || offsets_full || index_full
    }

    /// After an append rolled the active segment: queues the log on the background sealer
    /// (see [`LogConfig::seal_in_background`]) or syncs and checkpoints inline.
    pub(super) fn seal_after_roll(&self) {
        if !self.config.seal_in_background {
            self.sync_and_checkpoint_after_roll();
            return;
        }
        if self.seal_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if !self.threads.queue(self.me.clone(), threads::Job::Seal) {
            self.seal_queued.store(false, Ordering::Release);
            self.sync_and_checkpoint_after_roll();
        }
    }

    /// Rolls the active segment now if it is not empty (operators, tests). Returns whether it
    /// rolled.
    pub fn roll(&self) -> Result<bool, AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        let mut w = self.writer.lock();
        if w.stats.size == 0 {
            return Ok(false);
        }
        let rolled = self.maybe_roll(&mut w, None, self.clock.now_ms());
        drop(w);
        let rolled = rolled?;
        if rolled {
            self.sync_and_checkpoint_after_roll();
        }
        Ok(rolled)
    }
}

pub(super) fn write_error(e: std::io::Error) -> AppendError {
    if is_no_space(&e) {
        AppendError::NoSpace(e)
    } else {
        AppendError::Io(e)
    }
}
