//! What a log is opened with: its tunables ([`LogConfig`], [`SyncPolicy`], [`CrcCheck`]) and
//! its clock ([`Clock`]).

use super::OpenError;
use std::fmt::Debug;

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
    /// in the append that rolled it. See [`Log::append`](super::Log::append); tests that count IO steps turn it off
    /// to keep every write and sync on the calling thread.
    pub seal_in_background: bool,
    /// The log is a replica of a partition: its high watermark (what consumers may read, see
    /// [`Log::high_watermark`](super::Log::high_watermark)) moves only by
    /// [`Log::set_high_watermark`](super::Log::set_high_watermark). When false (the default,
    /// a single node) the high watermark is the log end offset.
    pub replicated: bool,
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
            replicated: false,
        }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), OpenError> {
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
