//! Producer state: per producer id, its epoch and the sequence and offset ranges of its last
//! batches, what Kafka's `ProducerStateManager` keeps so that an idempotent producer's retried
//! batch is recognised ("duplicate, here are the original offsets"), a gap is refused ("out of
//! order sequence") and a zombie producer is fenced ("epoch is old").
//!
//! - [`ProducerState`] is the sans-IO map: [`apply`](ProducerState::apply) every appended batch,
//!   [`check`](ProducerState::check) a batch before appending it.
//! - [`snapshot`] persists it beside the segments as `{offset:020}.snapshot` files (layout in
//!   docs/FORMAT.md, "Producer-state snapshot").
//!
//! Only batches with a producer id (`producer_id >= 0`) that are not control batches take part;
//! every other batch is ignored by `apply` and accepted by `check`.
//!
//! # Contract for the log
//!
//! The log owns one `ProducerState` under its writer lock.
//!
//! - **Append (leader).** For a batch with a producer id, [`check`](ProducerState::check) it
//!   first and act on the [`Check`]: append only on [`Check::New`]; answer the original offsets
//!   on [`Check::Duplicate`] without appending; refuse it otherwise. After appending, call
//!   [`apply`](ProducerState::apply) with the offsets the log assigned, before checking the next
//!   batch (several batches of one request are checked and applied one after the other).
//! - **Append (follower) and recovery.** `apply` every batch in offset order, unchecked: the
//!   leader already decided, and the state follows the log.
//! - **Snapshots.** When a segment rolls (at the new segment's base offset) and on close (at the
//!   log end), [`write_snapshot`](ProducerState::write_snapshot) at that offset: the state must
//!   hold exactly the batches below it. It keeps the two newest snapshots and removes the rest.
//! - **Open.** After recovery:
//!   [`delete_snapshots_after(log_end)`](snapshot::delete_snapshots_after), then
//!   [`load_latest_snapshot`] (corrupt snapshots are skipped with a warning and removed, so an
//!   older one, or none, is used). From the snapshot at offset `s` (or an empty state and
//!   `s = log_start` when there is none),
//!   [`truncate_from_start(log_start)`](ProducerState::truncate_from_start) and then
//!   [`replay`](ProducerState::replay) the headers of every batch from `max(s, log_start)` to
//!   the log end ([`ProducerBatch::from_header`]). Without a snapshot that is one pass over
//!   every header of the log; a log written before snapshots existed pays it once, on its
//!   first open (then write a snapshot at the log end).
//! - **Follower truncation** to `new_end`: `delete_snapshots_after(new_end)`, then
//!   [`truncate_from(new_end)`](ProducerState::truncate_from). On [`Truncation::Rebuild`],
//!   rebuild as on open, with `new_end` as the log end. (Kafka always reloads the last snapshot
//!   below the truncation point and replays; this drops the truncated batches in memory and
//!   replays only when a producer lost every batch it had kept, since only then is its state
//!   below `new_end` unknown.)
//! - **Retention** raising the log start: `truncate_from_start(log_start)`.
//! - **Expiry**: [`expire(now_ms, idle_ms)`](ProducerState::expire) now and then (Kafka's
//!   `producer.id.expiration.ms`, default 1 day). An expired producer's next batch must start at
//!   sequence 0, or it is told [`Check::UnknownProducer`].
//!
//! # Sequences
//!
//! Sequence numbers are non-negative `i32`s that wrap from `i32::MAX` to 0 (Kafka's
//! `DefaultRecordBatch.incrementSequence`): a batch of `n` records starting at `s` ends at
//! `s + n - 1` (wrapped), and the next batch must start at its successor.

pub mod snapshot;

pub use snapshot::{
    SNAPSHOTS_KEPT, SnapshotCorruption, SnapshotError, delete_snapshots_after,
    load_latest_snapshot, snapshot_name, snapshot_offsets,
};

use crate::batch::BatchHeader;
use std::collections::BTreeMap;

/// How many batches are remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, which matches the 5 in-flight requests an idempotent producer may
/// have).
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;

/// `sequence + increment`, wrapping from `i32::MAX` to 0 (Kafka's `incrementSequence`).
/// `sequence` must be non-negative.
pub const fn increment_sequence(sequence: i32, increment: u32) -> i32 {
    const SPAN: i64 = i32::MAX as i64 + 1;
    ((sequence as i64 + increment as i64) % SPAN) as i32
}

/// The producer fields of one appended batch, with the offsets the log gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerBatch {
    /// Producer id; -1 when the batch has none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record.
    pub base_sequence: i32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Last offset minus the base offset.
    pub last_offset_delta: u32,
    /// Largest record timestamp (ms), or the log-append time.
    pub max_timestamp: i64,
    /// A control batch (a transaction marker); ignored here.
    pub is_control: bool,
}

impl ProducerBatch {
    /// The fields of a stored batch's header.
    pub const fn from_header(header: &BatchHeader) -> Self {
        Self {
            producer_id: header.producer_id(),
            producer_epoch: header.producer_epoch(),
            base_sequence: header.base_sequence(),
            base_offset: header.base_offset(),
            last_offset_delta: header.last_offset_delta(),
            max_timestamp: header.max_timestamp(),
            is_control: header.is_control(),
        }
    }

    /// The sequence number of the last record: `base_sequence + last_offset_delta`, wrapped.
    pub const fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// The offset of the last record.
    pub const fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as u64)
    }

    /// Whether [`ProducerState::apply`] records this batch: it has a producer id, a valid epoch
    /// and sequence, and is not a control batch.
    pub const fn is_tracked(&self) -> bool {
        self.producer_id >= 0
            && self.producer_epoch >= 0
            && self.base_sequence >= 0
            && !self.is_control
    }
}

/// What is remembered of one batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchMetadata {
    /// Sequence of the first record.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub first_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// The batch's `max_timestamp`.
    pub max_timestamp: i64,
}

/// One producer's state: its epoch and its last (1 to [`MAX_BATCHES_PER_PRODUCER`]) batches in
/// that epoch, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    epoch: i16,
    /// 1..=MAX_BATCHES_PER_PRODUCER, offsets increasing.
    batches: Vec<BatchMetadata>,
    last_timestamp: i64,
}

impl ProducerEntry {
    /// Builds an entry; `None` unless `batches` has 1 to [`MAX_BATCHES_PER_PRODUCER`] batches
    /// with offsets increasing.
    pub(crate) fn new(
        epoch: i16,
        batches: Vec<BatchMetadata>,
        last_timestamp: i64,
    ) -> Option<Self> {
        let ordered = batches.iter().all(|b| b.first_offset <= b.last_offset)
            && batches
                .windows(2)
                .all(|w| w[0].last_offset < w[1].first_offset);
        let valid = epoch >= 0 && (1..=MAX_BATCHES_PER_PRODUCER).contains(&batches.len());
        (valid && ordered).then_some(Self {
            epoch,
            batches,
            last_timestamp,
        })
    }

    /// The producer's current epoch.
    pub const fn epoch(&self) -> i16 {
        self.epoch
    }

    /// Its remembered batches, oldest first (never empty).
    pub fn batches(&self) -> &[BatchMetadata] {
        &self.batches
    }

    fn last(&self) -> &BatchMetadata {
        self.batches.last().expect("an entry has a batch")
    }

    /// The last sequence number written by the producer in its epoch.
    pub fn last_sequence(&self) -> i32 {
        self.last().last_sequence
    }

    /// The last offset written by the producer.
    pub fn last_offset(&self) -> u64 {
        self.last().last_offset
    }

    /// The `max_timestamp` of its last batch: what expiry measures idleness from.
    pub const fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// The sequence number the producer's next batch in this epoch must start with.
    pub fn next_sequence(&self) -> i32 {
        increment_sequence(self.last_sequence(), 1)
    }
}

/// The answer of [`ProducerState::check`] for a batch about to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The next batch of its producer, or a batch without a producer id: append it, then
    /// [`apply`](ProducerState::apply) it.
    New,
    /// A retry of a batch already in the log: do not append it; answer these offsets.
    Duplicate {
        /// Offset of the original batch's first record.
        first_offset: u64,
        /// Offset of the original batch's last record.
        last_offset: u64,
        /// The original batch's `max_timestamp` (its log-append time, when the log set one).
        max_timestamp: i64,
    },
    /// Its first sequence is not the one expected (a gap, or a retry of a batch older than the
    /// remembered ones). Kafka: `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    OutOfOrder {
        /// The sequence the batch had to start with (0 for a new epoch).
        expected: i32,
    },
    /// The producer epoch is older than the producer's current one: a zombie instance. Kafka:
    /// `INVALID_PRODUCER_EPOCH` (or `PRODUCER_FENCED`).
    Fenced {
        /// The producer's current epoch.
        current: i16,
    },
    /// No state for this producer id and the batch does not start at sequence 0: the producer
    /// may have expired, or its batches were removed by retention or truncation. Older Kafka
    /// brokers answer `UNKNOWN_PRODUCER_ID` here, and the producer resets its sequence (or
    /// bumps its epoch) and retries; brokers since KIP-360 append such a batch instead, since
    /// they cannot tell an expired producer from a gap. A caller that wants the newer
    /// behaviour treats this answer as [`Check::New`].
    UnknownProducer,
    /// A producer id with a negative epoch or base sequence. Kafka: `INVALID_RECORD`.
    InvalidProducerFields,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::New => f.write_str("the next batch of its producer"),
            Check::Duplicate {
                first_offset,
                last_offset,
                ..
            } => write!(
                f,
                "a retry of the batch already at offsets {first_offset}..={last_offset}"
            ),
            Check::OutOfOrder { expected } => {
                write!(f, "out of order: the producer's next sequence is {expected}")
            }
            Check::Fenced { current } => write!(
                f,
                "fenced: the producer's current epoch is {current}, this batch's is older"
            ),
            Check::UnknownProducer => f.write_str(
                "unknown producer: no state for this producer id and the batch does not start at sequence 0",
            ),
            Check::InvalidProducerFields => {
                f.write_str("invalid producer fields: a negative epoch or base sequence")
            }
        }
    }
}

/// What [`ProducerState::truncate_from`] could do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Truncation {
    /// The state is that of the truncated log (with, per producer, only the remembered batches
    /// that survived: fewer duplicates recognised, never a wrong answer).
    Exact,
    /// At least one producer lost every batch it had remembered, so its state below the
    /// truncation point is unknown: rebuild from a snapshot at or below it and the batch
    /// headers after that (see the module docs). The state is left with the producers it
    /// could keep.
    Rebuild,
}

/// The producer state of one partition log; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// No producers.
    pub const fn new() -> Self {
        Self {
            producers: BTreeMap::new(),
        }
    }

    /// Builds the state by [`apply`](Self::apply)ing batches in offset order: for a log without
    /// a usable snapshot, from its start. Cost: a map lookup per batch.
    pub fn rebuild(batches: impl IntoIterator<Item = ProducerBatch>) -> Self {
        let mut state = Self::new();
        state.replay(batches);
        state
    }

    /// [`apply`](Self::apply)s batches in offset order: the batches after a snapshot's offset.
    pub fn replay(&mut self, batches: impl IntoIterator<Item = ProducerBatch>) {
        for batch in batches {
            self.apply(&batch);
        }
    }

    /// Records a batch the log appended (or holds, when rebuilding). Ignores batches that are
    /// not [`tracked`](ProducerBatch::is_tracked). A batch in an epoch other than its
    /// producer's current one starts a new epoch: the remembered batches are forgotten (a
    /// lower epoch can only come from the log itself, e.g. a follower copying its leader, and
    /// the state follows the log, as Kafka's does). Only the last
    /// [`MAX_BATCHES_PER_PRODUCER`] batches are kept. Cost: a map lookup.
    pub fn apply(&mut self, batch: &ProducerBatch) {
        if !batch.is_tracked() {
            return;
        }
        let meta = BatchMetadata {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            first_offset: batch.base_offset,
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp,
        };
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: Vec::with_capacity(MAX_BATCHES_PER_PRODUCER),
                last_timestamp: batch.max_timestamp,
            });
        if entry.epoch != batch.producer_epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_BATCHES_PER_PRODUCER {
            entry.batches.remove(0);
        }
        entry.batches.push(meta);
        entry.last_timestamp = batch.max_timestamp;
    }

    /// Decides what to do with a batch about to be appended, with Kafka's rules, in order:
    ///
    /// 1. no producer id (`producer_id < 0`): [`Check::New`], nothing to check;
    /// 2. a negative epoch or base sequence: [`Check::InvalidProducerFields`];
    /// 3. an unknown producer: [`Check::New`] if `base_sequence` is 0, else
    ///    [`Check::UnknownProducer`];
    /// 4. an epoch below the producer's: [`Check::Fenced`];
    /// 5. an epoch above the producer's (a new epoch): [`Check::New`] if `base_sequence` is 0,
    ///    else [`Check::OutOfOrder`] expecting 0;
    /// 6. the same epoch and the same `(base_sequence, last_sequence)` as a remembered batch:
    ///    [`Check::Duplicate`] with that batch's offsets;
    /// 7. the same epoch: [`Check::New`] if `base_sequence` is the successor of the producer's
    ///    last sequence (wrapping at `i32::MAX`), else [`Check::OutOfOrder`].
    ///
    /// Pure; cost: a map lookup and a scan of at most 5 batches.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        last_sequence: i32,
    ) -> Check {
        if producer_id < 0 {
            return Check::New;
        }
        if epoch < 0 || base_sequence < 0 {
            return Check::InvalidProducerFields;
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return if base_sequence == 0 {
                Check::New
            } else {
                Check::UnknownProducer
            };
        };
        if epoch < entry.epoch {
            return Check::Fenced {
                current: entry.epoch,
            };
        }
        if epoch > entry.epoch {
            return if base_sequence == 0 {
                Check::New
            } else {
                Check::OutOfOrder { expected: 0 }
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == base_sequence && b.last_sequence == last_sequence)
        {
            return Check::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
                max_timestamp: b.max_timestamp,
            };
        }
        let expected = entry.next_sequence();
        if base_sequence == expected {
            Check::New
        } else {
            Check::OutOfOrder { expected }
        }
    }

    /// [`check`](Self::check) for a batch's fields.
    pub fn check_batch(&self, batch: &ProducerBatch) -> Check {
        if batch.is_control {
            return Check::New;
        }
        self.check(
            batch.producer_id,
            batch.producer_epoch,
            batch.base_sequence,
            if batch.base_sequence < 0 {
                batch.base_sequence
            } else {
                batch.last_sequence()
            },
        )
    }

    /// Forgets producers idle for at least `idle_ms`: those whose last batch's `max_timestamp`
    /// is at or before `now_ms - idle_ms` (Kafka's `producer.id.expiration.ms`). Returns how
    /// many were removed. Cost: a pass over all producers.
    pub fn expire(&mut self, now_ms: i64, idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < idle_ms);
        before - self.producers.len()
    }

    /// The log was truncated to end at `offset` (follower truncation): forgets every remembered
    /// batch whose last offset is at or after `offset`, and every producer left with none.
    /// Answers whether the result is exact or must be rebuilt (see [`Truncation`]). Cost: a
    /// pass over all producers.
    pub fn truncate_from(&mut self, offset: u64) -> Truncation {
        let mut outcome = Truncation::Exact;
        self.producers.retain(|_, e| {
            let keep = e.batches.partition_point(|b| b.last_offset < offset);
            if keep == e.batches.len() {
                return true;
            }
            e.batches.truncate(keep);
            match e.batches.last() {
                Some(last) => {
                    e.last_timestamp = last.max_timestamp;
                    true
                }
                None => {
                    outcome = Truncation::Rebuild;
                    false
                }
            }
        });
        outcome
    }

    /// The log now starts at `log_start` (retention): forgets producers whose last batch ends
    /// below it (Kafka's `evictUnretainedProducers`); the others keep all their remembered
    /// batches. Returns how many were removed. Cost: a pass over all producers.
    pub fn truncate_from_start(&mut self, log_start: u64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_offset() >= log_start);
        before - self.producers.len()
    }

    /// The state of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }

    /// Number of producers.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether there are no producers.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The largest last offset of any producer, if any.
    pub fn last_offset(&self) -> Option<u64> {
        self.producers
            .values()
            .map(ProducerEntry::last_offset)
            .max()
    }

    /// Inserts or replaces a producer's entry (loading a snapshot).
    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }
}

#[cfg(test)]
mod tests;
