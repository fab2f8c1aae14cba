//! The log's producer state ([`crate::producers`]): per producer id, its epoch and last
//! batches, applied from every appended batch's header under the writer lock.
//!
//! Snapshots (`{offset:020}.snapshot`) are written when a roll's seal completes and on close,
//! off the append path, when there are producers; an open loads the newest one at or below the log end and replays the
//! batch headers after it (all of them when there is none: once, for a log written before
//! producer state existed). A truncation cuts the state and removes the snapshots above the
//! new end; retention forgets producers whose batches are all gone.

use super::{Log, OpenError, ReadError};
use crate::producers::{
    ProducerBatch, ProducerState, Truncation, delete_snapshots_after, load_latest_snapshot,
};
use crate::recovery::ProducerTail;
use crate::segment::frame::Frame;
use std::io;
use std::sync::atomic::Ordering;

impl Log {
    /// A copy of the producer state: for the idempotence checks of a leader's produce path
    /// ([`ProducerState::check`]) and for tests. Cost: a copy of every producer's entry.
    pub fn producer_state(&self) -> ProducerState {
        self.producers.lock().clone()
    }

    /// Applies the batch `frame` describes (as stored, offsets assigned) to the producer state.
    /// Called under the writer lock right after the batch is written. Cost: none for a batch
    /// without a producer id; otherwise a map update.
    pub(super) fn apply_to_producers(&self, frame: &Frame) {
        let batch = frame.producer_batch();
        if batch.is_tracked() {
            self.producers.lock().apply(&batch);
        }
    }

    /// At open, after recovery: snapshots above the log end go, the newest remaining one is
    /// loaded (or an empty state at the log start), and the batches after it are applied:
    /// those recovery validated come from `tail` without reading the log again, and of the
    /// rest only what the checkpoint does not vouch for is read (nothing, after a clean close
    /// or when no batch before the checkpoint's end has a producer id).
    pub(super) fn recover_producers(&self, tail: ProducerTail) -> Result<(), OpenError> {
        let storage = self.storage.as_ref();
        let end = self.log_end_offset();
        let start = self.log_start_offset();
        let io_err = |source| OpenError::Io {
            op: "load the producer snapshots of",
            name: format!("{:?}", self.storage),
            source,
        };
        delete_snapshots_after(storage, end).map_err(io_err)?;
        let (at, mut state) = load_latest_snapshot(storage)
            .map_err(io_err)?
            .unwrap_or((start, ProducerState::new()));
        state.truncate_from_start(start);
        let from = at.max(start);
        // `[from, checkpoint_end)` holds no batch with a producer id when the checkpoint says
        // every such batch ended at or before `from`.
        let read_from = match tail.producers_end {
            Some(p) if from >= p => from.max(tail.checkpoint_end),
            _ => from,
        };
        if read_from < tail.scanned_from {
            self.for_each_header(read_from, tail.scanned_from, |h| {
                state.apply(&ProducerBatch::from_header(h));
            })
            .map_err(OpenError::Rebuild)?;
        }
        let replay_from = from.max(tail.scanned_from);
        state.replay(
            tail.batches
                .into_iter()
                .filter(|b| b.base_offset >= replay_from),
        );
        self.producer_snapshot_at
            .store(if at == end { at } else { u64::MAX }, Ordering::Release);
        *self.producers.lock() = state;
        Ok(())
    }

    /// The producer state of the batches below `end`, from the newest snapshot at or below it
    /// and the headers after that.
    fn rebuild_producers(&self, end: u64) -> Result<ProducerState, RebuildError> {
        let storage = self.storage.as_ref();
        delete_snapshots_after(storage, end).map_err(RebuildError::Io)?;
        let start = self.log_start_offset();
        let (at, mut state) = load_latest_snapshot(storage)
            .map_err(RebuildError::Io)?
            .unwrap_or((start, ProducerState::new()));
        state.truncate_from_start(start);
        self.for_each_header(at.max(start), end, |h| {
            state.apply(&ProducerBatch::from_header(h));
        })
        .map_err(RebuildError::Read)?;
        self.producer_snapshot_at
            .store(if at == end { at } else { u64::MAX }, Ordering::Release);
        Ok(state)
    }

    /// After a truncation to `new_end` (under the writer lock): the snapshots above it go and
    /// the state drops the truncated batches, or is rebuilt when a producer lost every batch
    /// it remembered.
    pub(super) fn truncate_producers(&self, new_end: u64) -> io::Result<()> {
        delete_snapshots_after(self.storage.as_ref(), new_end)?;
        let outcome = self.producers.lock().truncate_from(new_end);
        if outcome == Truncation::Rebuild {
            let state = self.rebuild_producers(new_end).map_err(|e| match e {
                RebuildError::Io(e) => e,
                RebuildError::Read(e) => io::Error::other(e),
            })?;
            *self.producers.lock() = state;
        }
        self.producer_snapshot_at.store(u64::MAX, Ordering::Release);
        Ok(())
    }

    /// After retention moved the log start to `log_start`.
    pub(super) fn retain_producers_from(&self, log_start: u64) {
        self.producers.lock().truncate_from_start(log_start);
    }

    /// Writes a producer snapshot at the log end, unless the last one is already there or there
    /// are no producers. Takes
    /// the writer lock only to copy the state; the two fsyncs run outside it. Best effort (a
    /// snapshot only saves replaying headers at the next open).
    pub(super) fn snapshot_producers(&self) {
        let (state, at) = {
            let w = self.writer.lock();
            let producers = self.producers.lock();
            // Without producers the checkpoint's producer-state end already spares an open
            // the replay; a snapshot would add two fsyncs to every roll of every log.
            if producers.is_empty()
                || self.producer_snapshot_at.load(Ordering::Acquire) == w.stats.next_offset
            {
                return;
            }
            (producers.clone(), w.stats.next_offset)
        };
        match state.write_snapshot(self.storage.as_ref(), at) {
            Ok(()) => self.producer_snapshot_at.store(at, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "producer snapshot not written"),
        }
    }
}

/// Why the producer state could not be rebuilt.
enum RebuildError {
    Io(io::Error),
    Read(ReadError),
}
