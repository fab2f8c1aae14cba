//! Durability: group commit (`Log::sync_to`), the fsync failure latch, the sync policy's
//! waits, the background and periodic checkpoints, flush and close.

use super::threads;
use super::{AppendError, AppendInfo, FlushError, Log, LogFailure, SyncPolicy};
use crate::io::is_no_space;
use crate::recovery::checkpoint;
use std::sync::atomic::Ordering;

impl Log {
    /// Why the log refuses appends, once a sync has failed; `None` while it is healthy.
    ///
    /// A failed fsync may have dropped the dirty pages it was writing, and a later fsync can
    /// succeed over the hole (Linux reports a writeback error once). So the log never retries
    /// into "durable": the first failure latches, every later append fails with
    /// [`AppendError::Failed`], the synced offset and the recovery checkpoint stay where the
    /// last good sync left them, and readers stop there. Reopening the log (restarting the
    /// broker) revalidates everything after the checkpoint and goes on from what is really on
    /// disk.
    pub fn failure(&self) -> Option<LogFailure> {
        if !self.failed_flag.load(Ordering::Acquire) {
            return None;
        }
        self.sync.lock().failed.clone()
    }

    pub(super) fn check_failed(&self) -> Result<(), AppendError> {
        match self.failure() {
            Some(f) => Err(AppendError::Failed(f)),
            None => Ok(()),
        }
    }

    /// Whether [`make_durable`](Self::make_durable) may wait for an fsync under this log's
    /// policy (`EveryBatch`, `EveryRecords`); `false` means it returns at once.
    pub fn syncs_on_append(&self) -> bool {
        matches!(
            self.config.sync,
            SyncPolicy::EveryBatch | SyncPolicy::EveryRecords(_)
        )
    }

    /// Returns once the batch `info` describes is as durable as the sync policy promises an
    /// append: with `EveryBatch` an fsync covers it (shared with concurrent callers); with
    /// `EveryRecords(n)` an fsync runs if `n` or more records are unsynced; otherwise at once.
    /// [`AppendError::Sync`] when the fsync fails: the batch stays visible but is not known to
    /// be durable.
    pub fn make_durable(&self, info: &AppendInfo) -> Result<(), AppendError> {
        let base = info.base_offset;
        let target = info.last_offset.saturating_add(1);
        let sync_err = |failure: LogFailure| AppendError::Sync {
            base_offset: base,
            failure,
        };
        match self.config.sync {
            SyncPolicy::EveryBatch => {
                self.sync_to(target).map_err(sync_err)?;
                self.maybe_checkpoint();
            }
            SyncPolicy::EveryRecords(n) => {
                let synced = self.sync.lock().synced_offset;
                if target.saturating_sub(synced) >= n {
                    self.sync_to(target).map_err(sync_err)?;
                    self.maybe_checkpoint();
                }
            }
            SyncPolicy::IntervalMs(ms) if !self.threads.flusher_running() => {
                // No flusher: the append that finds the interval elapsed syncs.
                let now = self.clock.now_ms();
                let due = self.next_interval_sync_ms.load(Ordering::Acquire);
                let next = now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
                if now >= due
                    && self
                        .next_interval_sync_ms
                        .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.sync_to(target).map_err(sync_err)?;
                    self.maybe_checkpoint();
                }
            }
            SyncPolicy::IntervalMs(_) | SyncPolicy::Os => {}
        }
        Ok(())
    }

    /// The flusher's tick for an interval policy: syncs everything written, then checkpoints
    /// when one is due. Returns `false` once the log is closed (it leaves the schedule).
    pub(super) fn interval_flush(&self) -> bool {
        // Taken like the sealer: no tick runs on a closed log.
        let _seal = self.seal_lock.lock();
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        if let Err(e) = self.sync_to(self.log_end_offset()) {
            tracing::warn!(error = %e, "interval sync failed");
        } else {
            self.maybe_checkpoint();
        }
        true
    }

    /// The background sealer's work: one sync of everything written so far, then the
    /// checkpoint. Skipped once the log is closed ([`close`](Self::close) syncs itself).
    pub(super) fn seal_now(&self) {
        let _seal = self.seal_lock.lock();
        // Cleared first: a roll during this sync queues the log again.
        self.seal_queued.store(false, Ordering::Release);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.sync_and_checkpoint_after_roll();
    }

    pub(super) fn sync_and_checkpoint_after_roll(&self) {
        let end = self.log_end_offset();
        if let Err(e) = self.sync_to(end) {
            tracing::warn!(error = %e, "sync after segment roll failed");
            return;
        }
        if let Err(e) = self.write_checkpoint() {
            tracing::warn!(error = %e, "checkpoint after segment roll failed");
        }
        self.snapshot_producers();
    }

    /// Blocks until an fsync covers every offset below `target` (group commit): if a sync is
    /// running, waits for it and, if it did not cover `target`, takes part in the next one;
    /// otherwise leads a sync of everything written so far. Never holds the writer lock.
    ///
    /// The first failed sync latches the log (see [`failure`](Self::failure)): it and every
    /// later call that is not already covered fail with that failure; nothing is retried.
    pub(super) fn sync_to(&self, target: u64) -> Result<(), LogFailure> {
        let mut st = self.sync.lock();
        loop {
            // Clamped to the log end: a truncation may have removed offsets up to `target`,
            // and no sync can ever cover those.
            if st.synced_offset >= target.min(self.end_offset.load(Ordering::Acquire)) {
                return Ok(());
            }
            if let Some(f) = &st.failed {
                return Err(f.clone());
            }
            if st.syncing {
                let generation = st.generation;
                while st.syncing && st.generation == generation {
                    self.sync_done.wait(&mut st);
                }
                continue;
            }
            st.syncing = true;
            drop(st);
            // Snapshot the active segment first, then take the sealed list: a roll in between
            // puts the snapshotted segment on the list, never loses one.
            let active = self.snapshot_segments().last().cloned();
            let stats = active.as_ref().map(|s| s.stats());
            let (sealed, dir_dirty) = {
                let mut st = self.sync.lock();
                (
                    std::mem::take(&mut st.sealed),
                    std::mem::take(&mut st.dir_dirty),
                )
            };
            let result = (|| -> std::io::Result<()> {
                for s in &sealed {
                    s.sync_all()?;
                }
                if let Some(a) = &active {
                    a.log.sync()?;
                }
                if dir_dirty {
                    self.storage.sync_dir()?;
                }
                Ok(())
            })();
            st = self.sync.lock();
            st.syncing = false;
            st.generation += 1;
            let (Some(active), Some(stats)) = (active, stats) else {
                self.sync_done.notify_all();
                return Ok(());
            };
            match result {
                Ok(()) => {
                    st.synced_offset = st.synced_offset.max(stats.next_offset);
                    st.point = Some(checkpoint::Entry {
                        base_offset: active.base_offset,
                        stats,
                    });
                    self.sync_done.notify_all();
                }
                Err(e) => {
                    // Latch: the pages this sync was writing may be gone; a retry that
                    // succeeded would vouch for a hole.
                    let failure = LogFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                        synced_offset: st.synced_offset,
                    };
                    tracing::error!(
                        synced_offset = failure.synced_offset,
                        error = %e,
                        "fsync failed: the log refuses appends until it is reopened"
                    );
                    st.failed = Some(failure.clone());
                    self.readable_end
                        .store(failure.synced_offset, Ordering::Release);
                    self.failed_flag.store(true, Ordering::Release);
                    self.sync_done.notify_all();
                    return Err(failure);
                }
            }
        }
    }

    /// Queues a checkpoint on the background sealer when one is due (written inline when the
    /// sealer cannot run or `seal_in_background` is off).
    pub(super) fn maybe_checkpoint(&self) {
        let due = {
            let mut st = self.sync.lock();
            let now = self.clock.now_ms();
            let due = now.saturating_sub(st.last_checkpoint_ms)
                >= i64::try_from(self.config.checkpoint_interval_ms).unwrap_or(i64::MAX);
            if due {
                // Claim it, so that concurrent appenders do not all write one.
                st.last_checkpoint_ms = now;
            }
            due
        };
        if !due {
            return;
        }
        if self.config.seal_in_background {
            if self.checkpoint_queued.swap(true, Ordering::AcqRel) {
                return;
            }
            if self
                .threads
                .queue(self.me.clone(), threads::Job::Checkpoint)
            {
                return;
            }
            self.checkpoint_queued.store(false, Ordering::Release);
        }
        self.checkpoint_now();
    }

    /// The background sealer's checkpoint job (and the inline fallback).
    pub(super) fn checkpoint_now(&self) {
        self.checkpoint_queued.store(false, Ordering::Release);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.write_checkpoint() {
            tracing::warn!(error = %e, "periodic checkpoint failed");
        }
    }

    /// Writes the recovery checkpoint from the last completed sync. Three fsyncs.
    pub(super) fn write_checkpoint(&self) -> std::io::Result<()> {
        let guard = self.checkpoint_lock.lock();
        self.write_checkpoint_locked(&guard)
    }

    /// [`write_checkpoint`](Self::write_checkpoint) under a held `checkpoint_lock`.
    pub(super) fn write_checkpoint_locked(
        &self,
        _checkpoint_lock: &parking_lot::MutexGuard<'_, ()>,
    ) -> std::io::Result<()> {
        let Some(point) = self.sync.lock().point else {
            return Ok(());
        };
        let segs = self.snapshot_segments();
        let unchecked = self.unchecked.lock().clone();
        let mut entries = Vec::with_capacity(segs.len());
        for s in segs.iter() {
            // A damaged segment stays unchecked, so that every open scans it again.
            if unchecked.contains(&s.base_offset) || s.is_damaged() {
                continue;
            }
            if s.base_offset < point.base_offset {
                entries.push(checkpoint::Entry {
                    base_offset: s.base_offset,
                    stats: s.stats(),
                });
            } else if s.base_offset == point.base_offset {
                entries.push(point);
            }
        }
        let marks = checkpoint::Marks {
            high_watermark: self.high_watermark(),
            producers_end: self.producers.lock().last_offset().map_or(0, |o| o + 1),
        };
        checkpoint::write(self.storage.as_ref(), &entries, marks)?;
        self.sync.lock().last_checkpoint_ms = self.clock.now_ms();
        Ok(())
    }

    /// Syncs everything appended so far and writes the checkpoint. Cost: a few fsyncs.
    pub fn flush(&self) -> Result<(), FlushError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FlushError::Closed);
        }
        self.flush_inner()
    }

    pub(super) fn flush_inner(&self) -> Result<(), FlushError> {
        self.sync_to(self.end_offset.load(Ordering::Acquire))
            .map_err(|f| FlushError::Io(f.to_io_error()))?;
        self.write_checkpoint().map_err(FlushError::Io)
    }

    /// Flushes, leaves the background flusher's schedule and refuses further operations.
    /// Idempotent.
    pub fn close(&self) -> Result<(), FlushError> {
        {
            // Waits for a running background seal; none starts once `closed` is set.
            let _seal = self.seal_lock.lock();
            let _w = self.writer.lock();
            if self.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        self.sync_to(self.end_offset.load(Ordering::Acquire))
            .map_err(|f| FlushError::Io(f.to_io_error()))?;
        self.snapshot_producers();
        match self.write_checkpoint() {
            // Everything is synced; only the next open's shortcut is missing.
            Err(e) if is_no_space(&e) => {
                tracing::warn!(
                    log = ?self.storage,
                    error = %e,
                    "disk full: closed without writing the recovery checkpoint; the next open validates the tail"
                );
                Ok(())
            }
            r => r.map_err(FlushError::Io),
        }
    }
}
