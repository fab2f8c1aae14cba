//! Errors of the partition log, one enum per operation family.

use crate::segment::frame::FrameError;
use std::io;
use thiserror::Error;

/// Why a log stopped accepting appends: its first failed sync (see
/// [`Log::failure`](crate::Log::failure)). The IO error's kind is kept, so a full disk on fsync
/// is reported as a full disk.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "fsync failed ({message}); offsets from {synced_offset} are not known to be durable and \
     the log refuses appends until it is reopened"
)]
pub struct LogFailure {
    /// Kind of the IO error the sync returned.
    pub kind: io::ErrorKind,
    /// The IO error, as text.
    pub message: String,
    /// Offsets below this were synced before the failure and are durable.
    pub synced_offset: u64,
}

impl LogFailure {
    /// An `io::Error` of the same kind, for callers that speak IO errors.
    pub fn to_io_error(&self) -> io::Error {
        io::Error::new(self.kind, self.to_string())
    }

    /// Whether the sync failed because the device is full.
    pub fn is_no_space(&self) -> bool {
        self.kind == io::ErrorKind::StorageFull
            || self.kind == io::ErrorKind::QuotaExceeded
            || self.message.contains("No space left")
    }
}

/// Opening (and recovering) a log failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is unusable.
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// An IO operation failed.
    #[error("{op} {name}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        name: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// Another log (in this process or another) has the directory open.
    #[error("log directory {dir} is already open ({reason})")]
    Locked {
        /// The directory.
        dir: String,
        /// Who holds it, as far as known.
        reason: String,
    },
    /// The codec table is unreadable.
    #[error(transparent)]
    Codecs(#[from] CodecError),
    /// Reading the log's batches to rebuild the leader epochs or the producer state failed.
    #[error("reading the log to rebuild its leader epochs or producer state: {0}")]
    Rebuild(#[source] ReadError),
}

/// An append failed; the log is unchanged (nothing of the batch is visible) unless stated.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The bytes are not a well-formed batch.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] FrameError),
    /// The batch names a codec that is not in this log's codec table.
    #[error("batch references codec {0}, which is not in the codec table")]
    UnknownCodec(u16),
    /// The device is full. Nothing was appended; retry once space is freed.
    #[error("no space left on device while appending: {0}")]
    NoSpace(#[source] io::Error),
    /// Writing the batch failed. Nothing was appended.
    #[error("write failed: {0}")]
    Io(#[source] io::Error),
    /// The batch was written, but the sync the durability policy requires failed; it is not
    /// known to be durable, and the log has failed (see [`AppendError::Failed`]).
    #[error("batch at offset {base_offset} written but not made durable: {failure}")]
    Sync {
        /// Base offset assigned to the batch.
        base_offset: u64,
        /// The failure, which the log has latched.
        failure: LogFailure,
    },
    /// An earlier sync failed; the log accepts no appends until it is reopened. Nothing was
    /// written.
    #[error("log failed: {0}")]
    Failed(LogFailure),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
    /// [`Log::append_idempotent`](crate::Log::append_idempotent) refused the batch for its
    /// producer fields: out of order, fenced, an unknown producer or invalid fields (never
    /// [`Check::New`](crate::producers::Check::New) or a duplicate). Nothing was written.
    #[error("batch refused by the producer check: {0}")]
    Producer(crate::producers::Check),
    /// [`Log::append_as_follower`](crate::Log::append_as_follower) was given no bytes.
    #[error("no batches to append")]
    NoBatches,
    /// A follower append's batch `index` (from 0, at byte `position` of the input) is not a
    /// well-formed batch: its header does not parse, it is cut short, or its CRC does not
    /// match. Nothing was appended.
    #[error("replicated batch {index} at byte {position}: {source}")]
    InvalidReplicaBatch {
        /// Which batch of the input.
        index: usize,
        /// Its first byte in the input.
        position: usize,
        /// What is wrong with it.
        #[source]
        source: FrameError,
    },
    /// A follower append's batch `index` does not continue the log: the first batch must start
    /// at the log end offset, each next one right after the previous one. Nothing was appended.
    #[error(
        "replicated batch {index} starts at offset {base_offset}; the log continues at {expected}"
    )]
    OffsetMismatch {
        /// Which batch of the input.
        index: usize,
        /// The batch's base offset.
        base_offset: u64,
        /// The offset it had to start at.
        expected: u64,
    },
    /// A follower append's batch `index` carries a leader epoch the log cannot take: lower
    /// than the epoch of the batch before it, or higher than the log accepts. Nothing was
    /// appended.
    #[error("replicated batch {index} has leader epoch {epoch}, outside {min}..={max}")]
    LeaderEpoch {
        /// Which batch of the input.
        index: usize,
        /// The batch's leader epoch.
        epoch: u32,
        /// The lowest epoch the batch could carry (the previous batch's).
        min: u32,
        /// The highest epoch the batch could carry.
        max: u32,
    },
}

/// A truncation ([`Log::truncate_to`](crate::Log::truncate_to)) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TruncateError {
    /// The offset is below the log start offset: there is nothing there to keep.
    #[error("cannot truncate to offset {offset}: the log starts at {log_start}")]
    BelowLogStart {
        /// The requested offset.
        offset: u64,
        /// The log start offset.
        log_start: u64,
    },
    /// An IO operation failed. Before the truncation was committed the log is unchanged;
    /// after, it has failed (see [`Log::failure`](crate::Log::failure)) and reopening it
    /// completes the truncation.
    #[error("truncation failed: {0}")]
    Io(#[source] io::Error),
    /// An earlier sync failed; the log accepts no changes until it is reopened.
    #[error("log failed: {0}")]
    Failed(LogFailure),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
}

impl TruncateError {
    /// The error as an `io::Error`, keeping the IO error's kind where there is one.
    pub fn into_io(self) -> io::Error {
        match self {
            TruncateError::Io(e) => e,
            TruncateError::Failed(f) => f.to_io_error(),
            e @ TruncateError::BelowLogStart { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
            }
            e @ TruncateError::Closed => io::Error::other(e.to_string()),
        }
    }
}

/// A read failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {requested} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        requested: u64,
        /// Log start offset (first readable).
        start: u64,
        /// Log end offset (next to be assigned; reading it returns nothing).
        end: u64,
    },
    /// A stored batch failed validation (CRC or framing); it is not served.
    #[error("corrupt batch in segment {segment} at position {position}: {reason}")]
    Corrupt {
        /// Base offset of the segment.
        segment: u64,
        /// Byte position in the segment.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The requested offset was in a damaged stretch of the log: those offsets are lost (the
    /// batches around them are intact and served). Read from `next_offset` to go on.
    #[error(
        "offsets {first_offset}..{next_offset} are lost: damaged data in segment {segment} at \
         position {position} ({reason}); the log continues at offset {next_offset}"
    )]
    DataLoss {
        /// Base offset of the segment.
        segment: u64,
        /// Byte position of the damage in the segment.
        position: u64,
        /// First lost offset.
        first_offset: u64,
        /// First offset after the damage.
        next_offset: u64,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// An IO operation failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
}

/// Deleting segments failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// The active segment cannot be deleted.
    #[error("segment {0} is the active segment")]
    ActiveSegment(u64),
    /// Removing files failed; the segments are no longer part of the log anyway.
    #[error("removing segment files failed: {0}")]
    Io(#[from] io::Error),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
}

/// Flushing, checkpointing or closing failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FlushError {
    /// A sync or the checkpoint write failed (the error's kind is kept: a full disk is
    /// `StorageFull`).
    #[error("flush failed: {0}")]
    Io(#[source] io::Error),
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
}

/// The codec table could not be read or extended.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The name is empty or longer than 255 bytes.
    #[error("invalid codec name {0:?}")]
    InvalidName(String),
    /// All 65535 ids are in use.
    #[error("codec table is full")]
    Full,
    /// An IO operation failed.
    #[error("codec table: {0}")]
    Io(#[from] io::Error),
}
