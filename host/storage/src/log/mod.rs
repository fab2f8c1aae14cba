//! The partition log: one writer, many readers, group commit, checkpoints.
//!
//! ```text
//!  append ──► writer Mutex ──► write_at(active .log) ──► index entries ──► publish end
//!                 (no fsync under the lock)                                     │
//!  EveryBatch: ───────────────────────────────► sync_to(end): one leader fsyncs,
//!                                                 later arrivals share the next fsync
//!  read ──► snapshot of the segment list (Arc) ──► read_at below the published position
//! ```
//!
//! Contract:
//! - Offsets are assigned by the log, consecutively, in append order ([`Log::append`]), or by
//!   a leader and checked to continue the log exactly ([`Log::append_as_follower`]); a batch's
//!   offsets are visible to readers only after the whole batch is written.
//! - Only [`Log::truncate_to`] removes offsets from the end; it is atomic across a crash (the
//!   old or the truncated log, never a mix).
//! - Consumers read below the high watermark ([`Log::read`]), followers up to the log end
//!   ([`Log::read_for_follower`]); without replication the two are the same.
//! - Readers never take the writer lock; they take short read locks on the segment list and on
//!   an index while binary-searching it, never across IO.
//! - An append error leaves nothing of the batch visible and the log appendable, except
//!   [`AppendError::Sync`]: the batch is written and visible but not known to be durable.
//! - Dropping a log without [`Log::close`] loses nothing that was synced; whatever follows the
//!   last checkpoint is validated on the next open.
//! - With [`SyncPolicy::EveryBatch`] an append returns only once an fsync covers it.
//!
//! One concern per file: `config.rs` (what a log is opened with), `open.rs` (directory lock,
//! recovery glue), `append.rs` (the write path and rolls), `follower.rs` (appending a
//! leader's batches), `truncate.rs` (crash-safe truncation), `sync.rs` (group commit, the
//! failure latch, checkpoints, flush and close), `read.rs` (the read path and the high
//! watermark), `delete.rs` (retention's segment deletion), `clean.rs` (compaction),
//! `leader_epochs.rs` and `producer_state.rs` (the log's use of [`crate::epochs`] and
//! [`crate::producers`]), `codecs.rs` (the codec table), `threads.rs` (the sealer and flusher
//! threads), `error.rs`.

mod append;
mod clean;
pub(crate) mod codecs;
mod config;
mod delete;
mod error;
mod follower;
mod leader_epochs;
mod open;
mod producer_state;
mod read;
mod sync;
mod threads;
mod truncate;

pub use append::{AppendInfo, Idempotent};
pub use codecs::{CODEC_TABLE_NAME, CodecEntry};
pub use config::{Clock, CrcCheck, LogConfig, SyncPolicy, SystemClock};
pub use error::{
    AppendError, CodecError, DeleteError, FlushError, LogFailure, OpenError, ReadError,
    TruncateError,
};
pub use read::Fetched;
pub use threads::LogThreads;
pub use truncate::TRUNCATION_NAME;

use crate::io::Storage;
use crate::recovery::checkpoint;
use crate::segment::{IndexCursor, Segment, Stats};
use codecs::CodecTable;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64};
use std::sync::{Arc, Weak};

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    stats: Stats,
    cursor: IndexCursor,
    created_ms: i64,
    /// A failed write may have left bytes after `stats.size`; truncate before the next write.
    needs_truncate: bool,
}

#[derive(Debug, Default)]
struct SyncState {
    synced_offset: u64,
    syncing: bool,
    generation: u64,
    /// The latch: set by the first failed sync, never cleared (see [`Log::failure`]).
    failed: Option<LogFailure>,
    sealed: Vec<Arc<Segment>>,
    dir_dirty: bool,
    point: Option<checkpoint::Entry>,
    last_checkpoint_ms: i64,
}

/// A partition log. `Send + Sync`; share it as `Arc<Log>`. See the module docs.
#[derive(Debug)]
pub struct Log {
    storage: Arc<dyn Storage>,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    writer: Mutex<Writer>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    end_offset: AtomicU64,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    checkpoint_lock: Mutex<()>,
    codecs: CodecTable,
    closed: AtomicBool,
    /// The sealer and flusher threads this log was opened on.
    threads: Arc<LogThreads>,
    /// With an interval policy and no flusher thread: when the next append syncs (ms).
    next_interval_sync_ms: AtomicI64,
    /// This log, for queueing itself on the background sealer.
    me: Weak<Log>,
    /// Set while the log waits on the background sealer: queued once however often it rolls.
    seal_queued: AtomicBool,
    /// Set while a periodic checkpoint waits on the background sealer.
    checkpoint_queued: AtomicBool,
    /// Held by the background sealer while it syncs; [`Log::close`] takes it, so no seal runs
    /// on a closed log.
    seal_lock: Mutex<()>,
    /// Held by segment deletion, truncation and the file steps of a compaction pass (never
    /// while a pass calls its key extractor or codec): one at a time.
    maintenance: Mutex<()>,
    /// Set while a compaction pass runs: one pass at a time, without a lock.
    compacting: AtomicBool,
    /// Counts truncations, so a compaction pass sees that one ran while it read.
    truncations: AtomicU64,
    /// Segments left out of recovery checkpoints while compaction replaces their files.
    unchecked: Mutex<BTreeSet<u64>>,
    /// The cleaner checkpoint: the log is clean below this offset.
    cleaner_offset: AtomicU64,
    /// The leader-epoch cache (see [`crate::epochs`]); changed under the writer lock, its file
    /// written before any batch of a new epoch.
    epochs: Mutex<crate::epochs::LeaderEpochs>,
    /// The latest epoch of `epochs` (0 when empty): what appends stamp and the newest epoch
    /// a stored batch may carry.
    max_epoch: AtomicU32,
    /// Producer state (see [`crate::producers`]), applied under the writer lock.
    producers: Mutex<crate::producers::ProducerState>,
    /// The offset of the newest producer snapshot this log wrote or loaded (`u64::MAX`: none),
    /// so that an unchanged state is not written again.
    producer_snapshot_at: AtomicU64,
    /// The high watermark set by replication ([`Log::set_high_watermark`]); unused unless
    /// [`LogConfig::replicated`].
    high_watermark: AtomicU64,
    /// Offsets may have gaps below this (see `CleanerCheckpoint::gaps_below`); readers check
    /// that offsets continue exactly at and above it.
    gaps_below: AtomicU64,
    /// Committed swaps whose files a failed pass left half done; completed before the next
    /// pass or deletion (or by the next open).
    pending: Mutex<Vec<crate::compaction::files::PendingSwap>>,
    /// Set (with `sync.failed`) by the first failed sync: appends are refused and readers stop
    /// at the synced offset from then on. Checked without the sync lock on the hot paths.
    failed_flag: AtomicBool,
    /// Offsets below this are readable: `u64::MAX` normally, the synced offset once the log
    /// has failed (what follows may not be on disk).
    readable_end: AtomicU64,
    /// Held for the log's lifetime: no second log opens the directory.
    _dir_lock: Option<crate::io::DirLock>,
}

/// A consistent view of the log's segments, for reading. Holding it keeps its segments readable
/// even after retention deletes them.
#[derive(Debug, Clone)]
pub struct LogSnapshot {
    segments: Arc<Vec<Arc<Segment>>>,
    end_offset: u64,
    /// Consumers' reads stop here ([`LogSnapshot::read`]).
    high_watermark: u64,
    max_batch: u32,
    /// Offsets at or after this continue exactly from batch to batch (the cleaner checkpoint).
    dense_from: u64,
    /// The newest leader epoch a batch may carry (the log's latest epoch).
    max_epoch: u32,
}
