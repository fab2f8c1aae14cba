//! Durable commit-log storage: record batches, segments, indexes, recovery. No async, no gRPC, no wasm.
//!
//! - [`io`]: the positional IO traits and their file, in-memory and crash-simulating
//!   implementations; every byte goes through them.
//! - [`segment`]: segment files, the batch framing the log relies on, segment descriptors.
//! - [`index`]: the sparse offset and time indexes (memory-mapped caches).
//! - [`log`]: the partition log (append, follower append, truncation, read below the high
//!   watermark, retention, durability, codec table) and its storage threads ([`LogThreads`]).
//! - [`epochs`]: the leader-epoch file; [`producers`]: producer state and its snapshots.
//! - [`compaction`]: the cleaner (keep the latest record per key, drop expired tombstones) and
//!   the crash-safe replacement and deletion of segments.
//! - [`recovery`]: the checkpoint and what opening a log trusts, scans and repairs.
//! - [`readonly`]: a partition directory read without opening its log (offline tools such as
//!   `distlog plugin replay`): files opened read-only with `std::fs`, outside the [`io`]
//!   traits, since nothing is written, locked or recovered.

pub mod batch;
pub mod compaction;
pub mod epochs;
pub mod failpoint;
pub mod index;
pub mod io;
pub mod log;
pub mod producers;
pub mod readonly;
pub mod recovery;
pub mod segment;

pub use log::{
    AppendError, AppendInfo, Clock, CodecEntry, CrcCheck, DeleteError, Fetched, FlushError,
    Idempotent, Log, LogConfig, LogSnapshot, LogThreads, OpenError, ReadError, SyncPolicy,
    SystemClock, TruncateError,
};
pub use segment::SegmentInfo;
