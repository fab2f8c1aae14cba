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
//! - Offsets are assigned by the log, consecutively, in append order; a batch's offsets are
//!   visible to readers only after the whole batch is written.
//! - Readers never take the writer lock; they take short read locks on the segment list and on
//!   an index while binary-searching it, never across IO.
//! - An append error leaves nothing of the batch visible and the log appendable, except
//!   [`AppendError::Sync`]: the batch is written and visible but not known to be durable.
//! - Dropping a log without [`Log::close`] loses nothing that was synced; whatever follows the
//!   last checkpoint is validated on the next open.
//! - With [`SyncPolicy::EveryBatch`] an append returns only once an fsync covers it.

mod clean;
pub(crate) mod codecs;
mod error;
mod read;
mod threads;

pub use codecs::{CODEC_TABLE_NAME, CodecEntry};
pub use error::{
    AppendError, CodecError, DeleteError, FlushError, LogFailure, OpenError, ReadError,
};
pub use threads::LogThreads;

use crate::batch::{BatchView, set_base_offset, set_leader_epoch, set_log_append_time};
use crate::io::{Storage, is_no_space};
use crate::recovery::{self, checkpoint};
use crate::segment::frame::{Frame, FrameError, LOG_APPEND_TIME};
use crate::segment::{IndexCursor, Segment, SegmentInfo, Stats};
use bytes::Bytes;
use codecs::CodecTable;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every append returns only after an fsync covers it. Concurrent appends share fsyncs
    /// (group commit), so throughput grows with the number of concurrent appenders.
    EveryBatch,
    /// A background thread syncs every this many milliseconds; appends do not wait.
    IntervalMs(u64),
    /// The append that brings the unsynced record count to this number syncs (group commit);
    /// others do not wait.
    EveryRecords(u64),
    /// Never sync on append; the OS writes back. Segments are still synced after a roll (in the
    /// background, see [`LogConfig::seal_in_background`]), on flush and on close.
    Os,
}

/// Whether an append re-verifies the batch's CRC32C before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcCheck {
    /// Verify it: the batch came from outside the process (a client, a file, a peer).
    Verify,
    /// Skip the pass: the caller sealed the batch itself in this process (with
    /// [`BatchBuilder`](crate::batch::BatchBuilder) or
    /// [`encode_batch_into`](crate::batch::encode_batch_into)) and it has not left its memory
    /// since. The header is still parsed and checked, and readers verify the CRC.
    Trusted,
}

/// Tunables of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Roll when the active segment would exceed this size. Default 1 GiB; at most 2 GiB.
    pub segment_bytes: u64,
    /// Roll when the active segment is older than this (wall clock since it became active).
    pub segment_ms: Option<u64>,
    /// One offset index entry per this many bytes of batches. Default 4096.
    pub index_interval_bytes: u32,
    /// Preallocated size of each index file of the active segment. Default 10 MiB.
    pub index_max_bytes: u64,
    /// Largest accepted `batch_length`. Default 16 MiB.
    pub max_batch_bytes: u32,
    /// Durability policy.
    pub sync: SyncPolicy,
    /// Write the recovery checkpoint at least this often while appends are being synced, on
    /// the background sealer thread (never on the append path). Bounds what an open after a
    /// crash must scan to what was appended in about this long. Default 1 s.
    pub checkpoint_interval_ms: u64,
    /// Validate every batch of every segment on open (ignore the checkpoint). Default false.
    pub verify_on_open: bool,
    /// Sync a segment sealed by an append's roll on a background thread (default) rather than
    /// in the append that rolled it. See [`Log::append`]; tests that count IO steps turn it off
    /// to keep every write and sync on the calling thread.
    pub seal_in_background: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: None,
            index_interval_bytes: 4096,
            index_max_bytes: 10 << 20,
            max_batch_bytes: 16 << 20,
            sync: SyncPolicy::EveryBatch,
            checkpoint_interval_ms: 1_000,
            verify_on_open: false,
            seal_in_background: true,
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), OpenError> {
        let bad = |m: &str| Err(OpenError::Config(m.to_owned()));
        if self.segment_bytes == 0 || self.segment_bytes > 1 << 31 {
            return bad("segment_bytes must be in 1..=2 GiB");
        }
        if self.max_batch_bytes < crate::segment::frame::MIN_BATCH_LENGTH
            || self.max_batch_bytes > 1 << 30
        {
            return bad("max_batch_bytes must be in 55..=1 GiB");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive");
        }
        if self.index_max_bytes < 24 {
            return bad("index_max_bytes must hold at least two entries");
        }
        if matches!(
            self.sync,
            SyncPolicy::IntervalMs(0) | SyncPolicy::EveryRecords(0)
        ) {
            return bad("sync interval must be positive");
        }
        Ok(())
    }
}

/// A source of wall-clock milliseconds (log-append time, segment age). Tests inject their own.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

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
    /// High watermark (equal to the log end offset for now) when the read started.
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
    /// Held by a compaction pass and by segment deletion: one at a time.
    maintenance: Mutex<()>,
    /// Segments left out of recovery checkpoints while compaction replaces their files.
    unchecked: Mutex<BTreeSet<u64>>,
    /// The cleaner checkpoint: the log is clean below this offset.
    cleaner_offset: AtomicU64,
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
    max_batch: u32,
    /// Offsets at or after this continue exactly from batch to batch (the cleaner checkpoint).
    dense_from: u64,
}

impl Log {
    /// Opens (recovering if needed) the log in `storage`, creating it if empty, with
    /// background threads of its own (see [`open_in`](Self::open_in) to share them).
    /// Cost: lists the directory, reads the checkpoint, validates only what follows it; starts
    /// two threads.
    pub fn open(storage: Arc<dyn Storage>, config: LogConfig) -> Result<Arc<Self>, OpenError> {
        Self::open_with_clock(storage, config, Arc::new(SystemClock))
    }

    /// Opens the log in the directory `dir` on the real file system, creating the directory if
    /// missing, with background threads of its own. See [`open`](Self::open).
    pub fn open_dir(
        dir: impl Into<std::path::PathBuf>,
        config: LogConfig,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_dir_in(&private_threads(), dir, config)
    }

    /// [`open`](Self::open) with an explicit clock.
    pub fn open_with_clock(
        storage: Arc<dyn Storage>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_in(&private_threads(), storage, config, clock)
    }

    /// [`open_in`](Self::open_in) on the directory `dir` on the real file system (created if
    /// missing), with the system clock.
    pub fn open_dir_in(
        threads: &Arc<LogThreads>,
        dir: impl Into<std::path::PathBuf>,
        config: LogConfig,
    ) -> Result<Arc<Self>, OpenError> {
        let dir = dir.into();
        let storage = crate::io::FsStorage::create(&dir).map_err(|source| OpenError::Io {
            op: "create",
            name: dir.display().to_string(),
            source,
        })?;
        Self::open_in(threads, Arc::new(storage), config, Arc::new(SystemClock))
    }

    /// Opens (recovering if needed) the log in `storage`, creating it if empty, served by the
    /// sealer and flusher of `threads` (see [`LogThreads`]): a process with many logs opens
    /// them all on one handle. The log keeps the handle alive. Cost: lists the directory,
    /// reads the checkpoint, validates only what follows it.
    pub fn open_in(
        threads: &Arc<LogThreads>,
        storage: Arc<dyn Storage>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        config.validate()?;
        let dir_lock = match lock_dir(storage.as_ref()) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(OpenError::Locked {
                    dir: format!("{storage:?}"),
                    reason: e.to_string(),
                });
            }
            Err(source) => {
                return Err(OpenError::Io {
                    op: "lock",
                    name: crate::io::LOCK_NAME.into(),
                    source,
                });
            }
        };
        let recovered = recovery::recover(storage.as_ref(), &config)?;
        let codecs = CodecTable::open(storage.clone())?;
        let cleaner = recovered.cleaner;
        let segments = recovered.segments;
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| OpenError::Config("recovery produced no segment".into()))?;
        let stats = active.stats();
        let now = clock.now_ms();
        if recovered.changed {
            match checkpoint::write(storage.as_ref(), &recovery::entries_for(&segments)) {
                Ok(()) => {}
                // The checkpoint only saves the next open some reading: going on without it
                // leaves the state of a crash just before it, which recovery handles. A broker
                // must start on a full disk (serving reads, refusing writes).
                Err(e) if is_no_space(&e) => tracing::warn!(
                    log = ?storage,
                    error = %e,
                    "disk full: the recovery checkpoint was not written; the next open repeats this recovery"
                ),
                Err(source) => {
                    return Err(OpenError::Io {
                        op: "write",
                        name: checkpoint::CHECKPOINT_NAME.into(),
                        source,
                    });
                }
            }
        }
        let log = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            seal_queued: AtomicBool::new(false),
            checkpoint_queued: AtomicBool::new(false),
            seal_lock: Mutex::new(()),
            storage,
            clock,
            writer: Mutex::new(Writer {
                active: active.clone(),
                stats,
                cursor: recovered.cursor,
                created_ms: now,
                needs_truncate: false,
            }),
            segments: RwLock::new(Arc::new(segments)),
            end_offset: AtomicU64::new(stats.next_offset),
            sync: Mutex::new(SyncState {
                synced_offset: stats.next_offset,
                point: Some(checkpoint::Entry {
                    base_offset: active.base_offset,
                    stats,
                }),
                last_checkpoint_ms: now,
                ..SyncState::default()
            }),
            sync_done: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
            codecs,
            closed: AtomicBool::new(false),
            threads: threads.clone(),
            next_interval_sync_ms: AtomicI64::new(now),
            maintenance: Mutex::new(()),
            unchecked: Mutex::new(BTreeSet::new()),
            pending: Mutex::new(Vec::new()),
            failed_flag: AtomicBool::new(false),
            readable_end: AtomicU64::new(u64::MAX),
            _dir_lock: dir_lock,
            cleaner_offset: AtomicU64::new(cleaner.cleaned_up_to.min(stats.next_offset)),
            gaps_below: AtomicU64::new(cleaner.gaps_below),
            config,
        });
        if let SyncPolicy::IntervalMs(ms) = log.config.sync {
            log.threads
                .schedule_flush(Arc::downgrade(&log), Duration::from_millis(ms));
        }
        Ok(log)
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends one batch (bytes as built by the batch module, any base offset).
    ///
    /// Validates header and CRC, assigns offsets by patching `base_offset` in `batch` (and
    /// `max_timestamp` plus the CRC when the batch asks for log-append time), writes it, and returns
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
        let total = frame.total_len();
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
        let rolled = self.maybe_roll(&mut w, Some(&frame), now)?;
        let base = w.stats.next_offset;
        set_base_offset(batch, base).map_err(FrameError::from)?;
        frame.base_offset = base;
        // Outside the CRC, so free to write: every batch is stored in the log's epoch.
        if frame.leader_epoch != crate::segment::MAX_LEADER_EPOCH {
            set_leader_epoch(batch, crate::segment::MAX_LEADER_EPOCH).map_err(FrameError::from)?;
            frame.leader_epoch = crate::segment::MAX_LEADER_EPOCH;
        }
        let seg = w.active.clone();
        let pos = w.stats.size;
        if w.needs_truncate {
            match seg.log.set_len(pos) {
                Ok(()) => w.needs_truncate = false,
                Err(e) => return Err(write_error(e)),
            }
        }
        if let Err(e) = seg.log.write_at(batch, pos) {
            if seg.log.set_len(pos).is_err() {
                w.needs_truncate = true;
            }
            return Err(write_error(e));
        }
        let interval = u64::from(self.config.index_interval_bytes);
        if !w.cursor.entry_due(pos, interval) {
            // No index entry for this batch: no index lock, readers are never in the way.
            w.cursor.advance(&frame);
        } else {
            let mut index = seg.index.write();
            let mut time_index = seg.time_index.write();
            if let Err(e) = w.cursor.observe(
                seg.base_offset,
                &mut index,
                &mut time_index,
                pos,
                &frame,
                interval,
            ) {
                // Indexes are caches; a missing entry only makes lookups scan a little more.
                tracing::warn!(segment = seg.base_offset, error = %e, "index entry not written");
            }
        }
        w.stats.add(&frame, total);
        seg.publish(w.stats);
        self.end_offset
            .store(w.stats.next_offset, Ordering::Release);
        drop(w);

        if rolled {
            self.seal_after_roll();
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: frame.last_offset(),
            log_append_time_ms: now,
        })
    }

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

    fn check_failed(&self) -> Result<(), AppendError> {
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

    /// Rolls the active segment if the incoming batch calls for it (`None`: roll anyway).
    /// Called under the writer lock; does no fsync (the next sync covers the sealed segment).
    fn maybe_roll(
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

    fn roll_due(&self, w: &Writer, frame: &Frame, now: i64) -> bool {
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
    fn seal_after_roll(&self) {
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

    /// The flusher's tick for an interval policy: syncs everything written, then checkpoints
    /// when one is due. Returns `false` once the log is closed (it leaves the schedule).
    fn interval_flush(&self) -> bool {
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
    fn seal_now(&self) {
        let _seal = self.seal_lock.lock();
        // Cleared first: a roll during this sync queues the log again.
        self.seal_queued.store(false, Ordering::Release);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.sync_and_checkpoint_after_roll();
    }

    fn sync_and_checkpoint_after_roll(&self) {
        let end = self.log_end_offset();
        if let Err(e) = self.sync_to(end) {
            tracing::warn!(error = %e, "sync after segment roll failed");
            return;
        }
        if let Err(e) = self.write_checkpoint() {
            tracing::warn!(error = %e, "checkpoint after segment roll failed");
        }
    }

    /// Blocks until an fsync covers every offset below `target` (group commit): if a sync is
    /// running, waits for it and, if it did not cover `target`, takes part in the next one;
    /// otherwise leads a sync of everything written so far. Never holds the writer lock.
    ///
    /// The first failed sync latches the log (see [`failure`](Self::failure)): it and every
    /// later call that is not already covered fail with that failure; nothing is retried.
    fn sync_to(&self, target: u64) -> Result<(), LogFailure> {
        let mut st = self.sync.lock();
        loop {
            if st.synced_offset >= target {
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
    fn maybe_checkpoint(&self) {
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
    fn checkpoint_now(&self) {
        self.checkpoint_queued.store(false, Ordering::Release);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.write_checkpoint() {
            tracing::warn!(error = %e, "periodic checkpoint failed");
        }
    }

    /// Writes the recovery checkpoint from the last completed sync. Three fsyncs.
    fn write_checkpoint(&self) -> std::io::Result<()> {
        let _guard = self.checkpoint_lock.lock();
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
        checkpoint::write(self.storage.as_ref(), &entries)?;
        self.sync.lock().last_checkpoint_ms = self.clock.now_ms();
        Ok(())
    }

    fn snapshot_segments(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    /// A read view of the current segments. Cheap: clones an `Arc`.
    pub fn snapshot(&self) -> LogSnapshot {
        // End first: every batch below it is in a segment of the list read after it.
        let end_offset = self.log_end_offset();
        LogSnapshot {
            segments: self.snapshot_segments(),
            end_offset,
            max_batch: self.config.max_batch_bytes,
            dense_from: self.gaps_below.load(Ordering::Acquire),
        }
    }

    /// Whole batches starting with the one that contains `offset`, up to `max_bytes` (but always
    /// at least one whole batch, however large). Reading at the log end returns nothing.
    /// Every returned batch passed its CRC check. Cost: an index binary search and one or two
    /// positional reads.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Fetched, ReadError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ReadError::Closed);
        }
        self.snapshot().read(offset, max_bytes)
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

    /// Offsets below this are visible to consumers. Equal to the log end offset until
    /// replication exists.
    pub fn high_watermark(&self) -> u64 {
        self.log_end_offset()
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

    /// Deletes the given segments (by base offset; unknown ones are ignored) and returns the
    /// base offsets actually deleted, oldest first. The active segment is never deleted. The
    /// log start offset advances to the first remaining segment. Readers holding a
    /// [`LogSnapshot`] that includes a deleted segment keep reading it; its space is freed when
    /// they drop it.
    ///
    /// Crash-safe: each segment's files are renamed to `.deleted` (oldest segment first, its
    /// `.log` first), the directory is synced, then the files are removed; opening a log removes
    /// leftover `.deleted` files and never brings them back. A segment is deleted once its
    /// `.log` is renamed: on an error, the segments renamed so far are deleted (and returned in
    /// the error's place by a retry), the others are untouched. Waits for a running compaction
    /// pass. Cost: two renames per file, one directory sync, a checkpoint.
    pub fn delete_segments(&self, base_offsets: &[u64]) -> Result<Vec<u64>, DeleteError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DeleteError::Closed);
        }
        let _pass = self.maintenance.lock();
        self.complete_pending_swaps()?;
        {
            let w = self.writer.lock();
            if base_offsets.contains(&w.active.base_offset) {
                return Err(DeleteError::ActiveSegment(w.active.base_offset));
            }
        }
        // Only this method and compaction (both under `maintenance`) remove segments, and the
        // active segment only moves forward: these stay inactive and present.
        let targets: Vec<Arc<Segment>> = self
            .snapshot_segments()
            .iter()
            .filter(|s| base_offsets.contains(&s.base_offset))
            .cloned()
            .collect();
        let storage = self.storage.as_ref();
        let mut renamed = Vec::with_capacity(targets.len());
        let mut failure = None;
        for s in &targets {
            match crate::compaction::files::rename_to_deleted(storage, s.base_offset) {
                Ok(names) => renamed.push((s.base_offset, names)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !renamed.is_empty() {
            let mut segs = self.segments.write();
            let kept: Vec<_> = segs
                .iter()
                .filter(|s| !renamed.iter().any(|(b, _)| *b == s.base_offset))
                .cloned()
                .collect();
            *segs = Arc::new(kept);
        }
        if failure.is_none()
            && let Err(e) = crate::failpoint::hit("delete::sync").and_then(|()| storage.sync_dir())
        {
            failure = Some(e);
        }
        if failure.is_none() {
            for name in renamed.iter().flat_map(|(_, names)| names) {
                if let Err(e) = crate::failpoint::hit("delete::remove")
                    .and_then(|()| crate::compaction::files::remove_if_exists(storage, name))
                {
                    // The next open removes it.
                    tracing::warn!(file = %name, error = %e, "removing deleted segment file failed");
                }
            }
        }
        if !renamed.is_empty()
            && let Err(e) = self.write_checkpoint()
        {
            tracing::warn!(error = %e, "checkpoint after segment deletion failed");
        }
        match failure {
            Some(e) => Err(DeleteError::Io(e)),
            None => Ok(renamed.into_iter().map(|(b, _)| b).collect()),
        }
    }

    /// Syncs everything appended so far and writes the checkpoint. Cost: a few fsyncs.
    pub fn flush(&self) -> Result<(), FlushError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FlushError::Closed);
        }
        self.flush_inner()
    }

    fn flush_inner(&self) -> Result<(), FlushError> {
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

    /// Registers a codec plugin version in this log's codec table and returns its id (for
    /// `codec_ref`). Idempotent; a new entry is synced before the id is returned.
    pub fn register_codec(&self, name: &str, digest: [u8; 32]) -> Result<u16, CodecError> {
        self.codecs.register(name, digest)
    }

    /// The codec table entry for `id`.
    pub fn codec(&self, id: u16) -> Option<CodecEntry> {
        self.codecs.get(id)
    }

    /// All codec table entries, by id.
    pub fn codecs(&self) -> Vec<CodecEntry> {
        self.codecs.all()
    }
}

/// Takes the directory lock. A lock held by this very process is usually a log of the
/// directory being dropped on another thread (the background sealer's last reference going
/// away after its job): wait for it a little instead of failing at once. Another process's lock
/// fails at once.
fn lock_dir(storage: &dyn Storage) -> std::io::Result<Option<crate::io::DirLock>> {
    let own = format!("locked by process {}", std::process::id());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match storage.lock() {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && e.to_string() == own
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn write_error(e: std::io::Error) -> AppendError {
    if is_no_space(&e) {
        AppendError::NoSpace(e)
    } else {
        AppendError::Io(e)
    }
}

/// The background threads of a log opened without a handle: its own, or none (every job
/// inline) when the OS refuses them.
fn private_threads() -> Arc<LogThreads> {
    LogThreads::start().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot start the storage threads; sealing and interval syncs run inline");
        Arc::new(LogThreads::stopped())
    })
}
