//! The log's leader epochs ([`crate::epochs`]): which leader epoch starts at which offset.
//!
//! Invariant: the leader-epoch file is written (synced, renamed, directory synced) *before*
//! any batch of a new epoch, so every stored batch's epoch is in the file and readers and
//! recovery can reject a `leader_epoch` newer than the file's latest as damage (the field is
//! outside the CRC). The file may lead the log (a batch whose write failed, a torn tail after a
//! crash); every open and truncation cuts it back to the log end, and retention to the log
//! start. Epochs are changed under the writer lock.

use super::append::write_error;
use super::{AppendError, Log, OpenError, ReadError};
use crate::batch::BatchHeader;
use crate::epochs::{EpochEntry, LeaderEpochs};
use std::sync::atomic::Ordering;

impl Log {
    /// OffsetsForLeaderEpoch, with Kafka's semantics ([`LeaderEpochs::end_offset_for`]): the
    /// largest epoch of this log at or below `epoch`, and where `epoch` ends here (the start of
    /// the next epoch, or the log end offset for the latest). `None` when `epoch` is newer than
    /// every epoch of the log, or the log has none. A follower truncates to the returned offset
    /// (see [`truncate_to`](Self::truncate_to)) before it fetches. Cost: a binary search.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let end = self.log_end_offset();
        self.epochs.lock().end_offset_for(epoch, end)
    }

    /// The log's leader epochs, oldest first: each epoch and its first offset.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// The latest leader epoch (0 for a log that never had another): what
    /// [`append`](Self::append) stamps into every batch.
    pub fn leader_epoch(&self) -> u32 {
        self.max_epoch.load(Ordering::Acquire)
    }

    /// Starts leader epoch `epoch` at the log end offset: a replica that becomes leader calls
    /// it before its first append, and every later [`append`](Self::append) stamps `epoch`
    /// into its batches. The epoch file is synced before this returns (two fsyncs); calling it
    /// again with the latest epoch does nothing. An epoch older than the latest one is
    /// [`AppendError::LeaderEpoch`].
    pub fn start_leader_epoch(&self, epoch: u32) -> Result<(), AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        self.check_failed()?;
        let w = self.writer.lock();
        self.assign_epochs(&[(epoch, w.stats.next_offset)], true)
    }

    /// Records the `(epoch, base offset)` of batches about to be written, in offset order,
    /// writing the epoch file if that starts a new epoch. Called under the writer lock, before
    /// the batches are written. On an error nothing changes: a batch whose epoch is older than
    /// the one before it (its index in `items`) is [`AppendError::LeaderEpoch`]. Cost: a
    /// comparison per batch; two fsyncs when an epoch starts.
    ///
    /// A log without epochs is all in epoch 0, implicitly: batches in epoch 0 record nothing
    /// (no file, no fsync for a single node) unless `explicit` (a leader starting epoch 0).
    /// The first epoch recorded in a log that already has records is preceded by
    /// `(0, log start)`, as a rebuild from the batch headers would find.
    pub(super) fn assign_epochs(
        &self,
        items: &[(u32, u64)],
        explicit: bool,
    ) -> Result<(), AppendError> {
        let mut epochs = self.epochs.lock();
        match epochs.latest() {
            Some(latest)
                if items
                    .iter()
                    .all(|&(e, s)| e == latest.epoch && s >= latest.start_offset) =>
            {
                return Ok(());
            }
            None if !explicit && items.iter().all(|&(e, _)| e == 0) => return Ok(()),
            _ => {}
        }
        let mut next = epochs.clone();
        if next.is_empty() {
            let (start, end) = (self.log_start_offset(), self.log_end_offset());
            if end > start {
                let _ = next.assign(0, start);
            }
        }
        let mut changed = false;
        for (index, &(epoch, start)) in items.iter().enumerate() {
            let min = next.latest_epoch().unwrap_or(0);
            match next.assign(epoch, start) {
                Ok(c) => changed |= c,
                Err(_) => {
                    return Err(AppendError::LeaderEpoch {
                        index,
                        epoch,
                        min,
                        max: u32::MAX,
                    });
                }
            }
        }
        if changed {
            next.write(self.storage.as_ref()).map_err(write_error)?;
            self.max_epoch
                .store(next.latest_epoch().unwrap_or(0), Ordering::Release);
            *epochs = next;
        }
        Ok(())
    }

    /// After a truncation to `new_end`: forgets the epochs that start at or after it. Called
    /// under the writer lock.
    pub(super) fn truncate_epochs(&self, new_end: u64) -> std::io::Result<()> {
        let mut epochs = self.epochs.lock();
        if epochs.truncate_from_end(new_end) {
            epochs.write(self.storage.as_ref())?;
        }
        self.max_epoch
            .store(epochs.latest_epoch().unwrap_or(0), Ordering::Release);
        Ok(())
    }

    /// After retention moved the log start to `log_start`. Best effort: the next open repeats
    /// it.
    pub(super) fn retain_epochs_from(&self, log_start: u64) {
        let mut epochs = self.epochs.lock();
        if epochs.truncate_from_start(log_start)
            && let Err(e) = epochs.write(self.storage.as_ref())
        {
            tracing::warn!(error = %e, "the leader-epoch file was not rewritten after retention");
        }
    }

    /// At open, after recovery: the epochs follow the recovered log (rebuilt from every batch
    /// header when the file was corrupt; cut to the log end, keeping an epoch that starts
    /// exactly there, and to the log start). Writing the file is best
    /// effort (a log must open on a full disk): the next open repeats this.
    pub(super) fn reconcile_epochs(&self, rebuild: bool) -> Result<(), OpenError> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        let mut changed = false;
        let mut epochs = if rebuild {
            changed = true;
            let mut rebuilt = LeaderEpochs::new();
            self.for_each_header(start, end, |h| {
                if let Err(e) = rebuilt.assign(h.leader_epoch(), h.base_offset()) {
                    tracing::warn!(error = %e, offset = h.base_offset(), "a batch's leader epoch is older than the one before it");
                }
            })
            .map_err(OpenError::Rebuild)?;
            rebuilt
        } else {
            self.epochs.lock().clone()
        };
        // An epoch that starts right at the log end is kept: a leader started it and has
        // appended nothing yet (or its first batch was lost; the epoch is still the latest
        // this replica knew).
        changed |= epochs.truncate_from_end(end.saturating_add(1));
        changed |= epochs.truncate_from_start(start);
        if changed && let Err(e) = epochs.write(self.storage.as_ref()) {
            tracing::warn!(error = %e, "the leader-epoch file was not rewritten; the next open repeats this");
        }
        self.max_epoch
            .store(epochs.latest_epoch().unwrap_or(0), Ordering::Release);
        *self.epochs.lock() = epochs;
        Ok(())
    }

    /// Calls `f` with the header of every batch with offsets in `[from, to)`, in offset order,
    /// reading the log (CRC-checked); damaged stretches are stepped over. Cost: a read of that
    /// part of the log.
    pub(super) fn for_each_header(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), ReadError> {
        let snapshot = self.snapshot();
        let mut at = from;
        while at < to {
            match snapshot.read_for_follower(at, 1 << 20) {
                Ok(fetched) => {
                    if fetched.batch_count == 0 {
                        break;
                    }
                    for view in fetched.batches() {
                        if view.base_offset() < to {
                            f(view.header());
                        }
                    }
                    at = fetched.next_offset;
                }
                Err(ReadError::DataLoss { next_offset, .. }) if next_offset > at => {
                    at = next_offset;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
