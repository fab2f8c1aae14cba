//! The leader-epoch file: which leader epoch starts at which offset, Kafka's
//! `leader-epoch-checkpoint` (`LeaderEpochFileCache`).
//!
//! A [`LeaderEpochs`] is an ordered list of [`EpochEntry`] `(epoch, start_offset)`: epoch `e`
//! covers the offsets from its `start_offset` up to the next entry's `start_offset` (or the log
//! end, for the latest). Both columns strictly increase from entry to entry. Replication uses it
//! to answer OffsetsForLeaderEpoch ([`LeaderEpochs::end_offset_for`]), which tells a follower
//! where its log diverges from the leader's.
//!
//! The type is sans-IO: every mutation works on memory and returns whether anything changed;
//! [`LeaderEpochs::write`] persists it (file layout in docs/FORMAT.md, "Leader-epoch file") and
//! [`LeaderEpochs::load`] reads it back.
//!
//! # Contract for the log
//!
//! - **Append.** Before appending a batch whose header carries leader epoch `e` at base offset
//!   `o`, call [`assign(e, o)`](LeaderEpochs::assign). It is a no-op when `e` is the latest
//!   epoch, so it can be called for every batch. An error means the batch's epoch is older than
//!   the latest one (or starts below it): refuse the batch. When `assign` returns `true`,
//!   [`write`](LeaderEpochs::write) the file *before* appending the batch (two fsyncs; epochs
//!   change once per leader election, not per batch), so that the file never lags behind what
//!   the recovery checkpoint covers; if the write fails, refuse the batch. A leader that takes
//!   over calls `assign(new_epoch, log_end)` and writes before its first append, as Kafka does.
//! - **Follower truncation** to `new_end` (the divergence point): truncate the log, then
//!   [`truncate_from_end(new_end)`](LeaderEpochs::truncate_from_end) and `write` if it returned
//!   `true`.
//! - **Retention** raising the log start offset to `log_start`: after deleting the segments,
//!   [`truncate_from_start(log_start)`](LeaderEpochs::truncate_from_start) and `write` if it
//!   returned `true`.
//! - **Open.** [`load`](LeaderEpochs::load) the file. A crash can leave it ahead of the log (a
//!   torn tail cut by recovery, a crash between the steps above) and, for a log written without
//!   this contract, behind it. So after recovery call `assign(leader_epoch, base_offset)` for
//!   every batch recovery scanned beyond its checkpoint, in offset order, then
//!   `truncate_from_end(log_end)` and `truncate_from_start(log_start)`, and `write` if any of
//!   them returned `true`.
//!   - [`LoadError::Corrupt`]: rebuild with [`LeaderEpochs::from_batches`] over every batch
//!     header of the log (one pass over the headers), and write the result.
//!   - A missing file is an empty cache: right for an empty log. For a non-empty log it means
//!     the log was written before the file existed: as long as every batch is stored in epoch
//!     0 (the log enforces that until replication assigns epochs), `assign(0, log_start)` is
//!     exact and costs nothing; otherwise rebuild with `from_batches` as for a corrupt file.
//!
//! Nothing here is synchronised: the log owns one `LeaderEpochs` under its writer lock.

mod file;

pub use file::{Corruption, LEADER_EPOCHS_NAME, LEADER_EPOCHS_TMP_NAME};

use std::io;
use thiserror::Error;

/// One epoch and the first offset written (or to be written) in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochEntry {
    /// The leader epoch, as in the batch header's `leader_epoch` field.
    pub epoch: u32,
    /// The first offset of the epoch.
    pub start_offset: u64,
}

/// [`LeaderEpochs::assign`] refused an entry: it would make the list non-monotonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AssignError {
    /// The epoch is older than the latest one: a batch from a deposed leader.
    #[error("leader epoch {epoch} is older than the latest epoch {latest}")]
    EpochBelowLatest {
        /// The epoch that was assigned.
        epoch: u32,
        /// The latest known epoch.
        latest: u32,
    },
    /// The start offset is below the latest epoch's start: offsets would go backwards (a
    /// follower must truncate first).
    #[error(
        "leader epoch {epoch} cannot start at offset {start_offset}: the latest epoch {latest} \
         starts at {latest_start}"
    )]
    StartBelowLatest {
        /// The epoch that was assigned.
        epoch: u32,
        /// Its requested start offset.
        start_offset: u64,
        /// The latest known epoch.
        latest: u32,
        /// Where the latest epoch starts.
        latest_start: u64,
    },
}

/// [`LeaderEpochs::load`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Reading the file failed.
    #[error("read {LEADER_EPOCHS_NAME}: {0}")]
    Io(#[from] io::Error),
    /// The file exists but is not a valid leader-epoch file; rebuild it from the batch headers
    /// with [`LeaderEpochs::from_batches`].
    #[error("{LEADER_EPOCHS_NAME} is corrupt ({0}); rebuild it from the batch headers")]
    Corrupt(#[from] Corruption),
}

/// The leader-epoch cache of one partition log; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    /// Both fields strictly increasing.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    /// An empty cache (a new log).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Rebuilds the cache from the `(leader_epoch, base_offset)` of every batch of the log, in
    /// offset order: each one is [`assign`](Self::assign)ed. Fails like `assign` on a batch
    /// whose epoch is older than one before it, which a well-formed log never has. Cost: one
    /// comparison per batch.
    pub fn from_batches(
        batches: impl IntoIterator<Item = (u32, u64)>,
    ) -> Result<Self, AssignError> {
        let mut epochs = Self::new();
        for (epoch, base_offset) in batches {
            epochs.assign(epoch, base_offset)?;
        }
        Ok(epochs)
    }

    /// Builds a cache from entries, checking that both columns strictly increase.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Result<Self, Corruption> {
        file::check_monotonic(&entries)?;
        Ok(Self { entries })
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the cache changed (then
    /// [`write`](Self::write) it).
    ///
    /// - No entries yet, or `epoch` above the latest epoch with `start_offset` above the
    ///   latest start: a new entry.
    /// - `epoch` above the latest with `start_offset` equal to the latest start: the latest
    ///   epoch never got a record, so the new epoch replaces it (Kafka does the same).
    /// - `epoch` equal to the latest and `start_offset` at or above its start: nothing to do
    ///   (every batch of the current epoch lands here).
    /// - `epoch` below the latest: [`AssignError::EpochBelowLatest`].
    /// - `start_offset` below the latest start: [`AssignError::StartBelowLatest`] (Kafka
    ///   silently drops the later entries here; this cache asks for an explicit
    ///   [`truncate_from_end`](Self::truncate_from_end) first).
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> Result<bool, AssignError> {
        let Some(latest) = self.entries.last().copied() else {
            self.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
            return Ok(true);
        };
        if epoch < latest.epoch {
            return Err(AssignError::EpochBelowLatest {
                epoch,
                latest: latest.epoch,
            });
        }
        if start_offset < latest.start_offset {
            return Err(AssignError::StartBelowLatest {
                epoch,
                start_offset,
                latest: latest.epoch,
                latest_start: latest.start_offset,
            });
        }
        if epoch == latest.epoch {
            return Ok(false);
        }
        if start_offset == latest.start_offset {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        Ok(true)
    }

    /// Forgets every entry that starts at or after `end_offset`: the log was truncated to end
    /// there (a follower cutting its divergent suffix, or recovery removing a torn tail).
    /// Returns whether anything was removed. Kafka: `truncateFromEnd`.
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `log_start` (retention deleted what was below): drops every entry
    /// that starts at or below `log_start` except the last of them, whose start moves up to
    /// `log_start` (its epoch still covers the new first offset). Entries above `log_start`
    /// are untouched. Returns whether anything changed. Kafka: `truncateFromStart`.
    pub fn truncate_from_start(&mut self, log_start: u64) -> bool {
        let at_or_below = self
            .entries
            .partition_point(|e| e.start_offset <= log_start);
        let Some(last_below) = at_or_below.checked_sub(1) else {
            return false;
        };
        let changed = last_below > 0 || self.entries[last_below].start_offset != log_start;
        self.entries.drain(..last_below);
        self.entries[0].start_offset = log_start;
        changed
    }

    /// OffsetsForLeaderEpoch, with Kafka's semantics (`LeaderEpochFileCache.endOffsetFor`):
    /// the largest known epoch `<= epoch`, and the end offset of `epoch` as this log knows it,
    /// which is the start offset of the first epoch above `epoch`, or `log_end` when `epoch` is
    /// the latest.
    ///
    /// Edge cases, all as in Kafka:
    /// - `epoch` is the latest epoch: `(epoch, log_end)`.
    /// - `epoch` falls between two known epochs (never led here, or an epoch this log skipped):
    ///   the known epoch below it and the start of the one above it.
    /// - `epoch` is older than the first known epoch (retention removed its entries, or it
    ///   never existed): `(epoch, first entry's start_offset)` — the follower truncates to the
    ///   log start and replicates from there.
    /// - `epoch` is newer than the latest, or the cache is empty: `None`, Kafka's
    ///   `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET`.
    ///
    /// Cost: a binary search.
    pub fn end_offset_for(&self, epoch: u32, log_end: u64) -> Option<(u32, u64)> {
        let latest = self.entries.last()?;
        if epoch == latest.epoch {
            return Some((epoch, log_end));
        }
        if epoch > latest.epoch {
            return None;
        }
        // Entries with an epoch <= the requested one; the next entry is the first above it.
        let floor = self.entries.partition_point(|e| e.epoch <= epoch);
        let higher = self.entries[floor];
        match floor.checked_sub(1) {
            None => Some((epoch, higher.start_offset)),
            Some(i) => Some((self.entries[i].epoch, higher.start_offset)),
        }
    }

    /// The epoch that covers `offset`: the last entry starting at or below it. `None` when
    /// `offset` is below the first entry (or there are none). The caller knows whether `offset`
    /// is below the log end; this does not. Cost: a binary search.
    pub fn epoch_at(&self, offset: u64) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// The latest `(epoch, start_offset)`, if any.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads the file [`LEADER_EPOCHS_NAME`]. A missing file is an empty cache; a file that
    /// fails its checks is [`LoadError::Corrupt`] (rebuild it with
    /// [`from_batches`](Self::from_batches)). Cost: one small read.
    pub fn load(storage: &dyn crate::io::Storage) -> Result<Self, LoadError> {
        Ok(file::read(storage)?.unwrap_or_default())
    }

    /// Writes the file atomically with [`crate::io::replace`]: a temporary file
    /// ([`LEADER_EPOCHS_TMP_NAME`], which a log open deletes like every `*.tmp`), fsync, rename
    /// over [`LEADER_EPOCHS_NAME`], directory fsync. A reader (or a crash) sees the old or the
    /// new file, never a mix. Cost: two fsyncs and a rename; call it when a mutation returned
    /// `true`, not per batch.
    pub fn write(&self, storage: &dyn crate::io::Storage) -> io::Result<()> {
        file::write(storage, &self.entries)
    }
}

#[cfg(test)]
mod tests;
