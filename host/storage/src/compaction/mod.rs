//! Log compaction (Kafka's cleaner) and the crash-safe replacement and deletion of segments.
//!
//! The storage crate knows neither plugins nor codecs: the caller supplies the compaction key
//! of each record ([`KeyExtractor`], one call per batch) and the decompression of compressed
//! batches ([`PayloadCodec`]). [`Log::compact`](crate::Log::compact) runs one bounded pass:
//!
//! 1. [`plan::plan`] picks the dirty segments (after the cleaner checkpoint, up to
//!    [`CompactOptions::max_dirty_bytes`]) and the groups of segments to rewrite (every inactive
//!    segment from the log start to the end of that dirty range; never the active one).
//! 2. Pass one reads the dirty segments and builds the [`plan::OffsetMap`] (latest offset per
//!    key).
//! 3. Pass two rewrites each group into `{base}.log.cleaned` (+ indexes), keeping what
//!    [`plan::decide`] keeps. A batch whose records are all kept is copied byte for byte (a
//!    compressed one stays compressed); a batch whose records are all dropped disappears; any
//!    other batch is rewritten **uncompressed** (codec_ref 0) with the kept records at their
//!    original offsets, and keeps its original last offset.
//! 4. Each group is swapped in crash-safely (see `compaction/files.rs` and docs/FORMAT.md,
//!    "Compaction and deletion"); readers holding the old segments keep reading them.
//! 5. The cleaner checkpoint advances to the end of the dirty range.
//!
//! No lock is held while reading and writing; each group's final swap takes the segment-list
//! lock for a moment (no IO under it). Appends and reads continue throughout. One pass runs at
//! a time per log, and retention deletion waits for a running pass.

pub(crate) mod files;
pub mod plan;

use crate::batch::RecordRef;
use crate::log::CodecEntry;
use std::io;
use thiserror::Error;

/// An error returned by a caller-supplied [`KeyExtractor`] or [`PayloadCodec`].
pub type CallerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Supplies compaction keys (the compaction key extractor plugin, or the records' own keys).
///
/// Contract: `keys` returns exactly one entry per record, in order; `None` means "no key" and
/// such records are always kept. It is called once per batch (twice per batch of the dirty
/// range: once to build the offset map, once to rewrite), so a plugin call's fixed cost is paid
/// per batch, not per record. It must be deterministic: the same record must get the same key in
/// both passes. An error stops the pass; nothing of an unfinished group is swapped in.
pub trait KeyExtractor {
    /// The keys of `records` (one batch).
    fn keys(&mut self, records: &[RecordRef<'_>]) -> Result<Vec<Option<Vec<u8>>>, CallerError>;
}

impl<F> KeyExtractor for F
where
    F: FnMut(&[RecordRef<'_>]) -> Result<Vec<Option<Vec<u8>>>, CallerError>,
{
    fn keys(&mut self, records: &[RecordRef<'_>]) -> Result<Vec<Option<Vec<u8>>>, CallerError> {
        self(records)
    }
}

/// The records' own keys (Kafka's compaction). Cost: one copy of each key.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordKeys;

impl KeyExtractor for RecordKeys {
    fn keys(&mut self, records: &[RecordRef<'_>]) -> Result<Vec<Option<Vec<u8>>>, CallerError> {
        Ok(records
            .iter()
            .map(|r| r.key().map(<[u8]>::to_vec))
            .collect())
    }
}

/// Decompresses the payload of compressed batches (attribute compression = 1) for the cleaner.
///
/// Contract: returns exactly the records payload the batch was built from
/// (`uncompressed_size` bytes); the cleaner checks the size and every record before using it.
pub trait PayloadCodec {
    /// Decompresses `payload`, written by the codec `codec` (this log's codec table entry).
    fn decompress(
        &mut self,
        codec: &CodecEntry,
        payload: &[u8],
        uncompressed_size: u32,
    ) -> Result<Vec<u8>, CallerError>;
}

/// A [`PayloadCodec`] for logs without compressed batches: fails on any compressed batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCodecs;

impl PayloadCodec for NoCodecs {
    fn decompress(
        &mut self,
        codec: &CodecEntry,
        _payload: &[u8],
        _uncompressed_size: u32,
    ) -> Result<Vec<u8>, CallerError> {
        Err(format!(
            "no codec available to decompress a batch of codec {:?}",
            codec.name
        )
        .into())
    }
}

/// Tunables of one compaction pass.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactOptions {
    /// How long tombstones stay after the max timestamp of the segment holding them (Kafka's
    /// `delete.retention.ms`). Default 24 h.
    pub delete_retention_ms: u64,
    /// Bytes of dirty segments one pass reads to build its offset map (at least one segment).
    /// Bounds the pass's memory and work. Default 128 MiB.
    pub max_dirty_bytes: u64,
    /// Largest total size of source segments rewritten into one segment. Default: the log's
    /// `segment_bytes`.
    pub max_group_bytes: Option<u64>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            delete_retention_ms: 24 * 60 * 60 * 1000,
            max_dirty_bytes: 128 << 20,
            max_group_bytes: None,
        }
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Source segments replaced.
    pub segments_cleaned: usize,
    /// Segments written (one per group; fewer when a group became empty).
    pub segments_written: usize,
    /// Bytes of source segments read in the rewrite pass.
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Records dropped because a later record has the same key.
    pub records_superseded: u64,
    /// Tombstones dropped because they were older than the delete retention.
    pub tombstones_dropped: u64,
    /// Distinct keys in the offset map.
    pub keys: usize,
    /// The cleaner checkpoint after the pass (the log is clean below it).
    pub cleaned_up_to: u64,
}

/// How much of a log is clean, for deciding whether a pass is worth it (Kafka's
/// `min.cleanable.dirty.ratio`). Only inactive segments count.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CleanableStats {
    /// Bytes of inactive segments entirely below the cleaner checkpoint.
    pub clean_bytes: u64,
    /// Bytes of the other inactive segments.
    pub dirty_bytes: u64,
    /// `dirty_bytes / (clean_bytes + dirty_bytes)`; 0 when both are 0.
    pub dirty_ratio: f64,
    /// The cleaner checkpoint: the offset below which the log was cleaned.
    pub cleaned_up_to: u64,
}

/// A compaction pass failed. Groups swapped in before the failure stay (they are complete);
/// nothing of the failed group is visible; the cleaner checkpoint does not advance.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The key extractor failed.
    #[error("key extractor failed on the batch at offset {base_offset}: {source}")]
    Keys {
        /// Base offset of the batch.
        base_offset: u64,
        /// The extractor's error.
        #[source]
        source: CallerError,
    },
    /// The key extractor returned a different number of keys than records.
    #[error("key extractor returned {returned} keys for {records} records at offset {base_offset}")]
    KeyCount {
        /// Base offset of the batch.
        base_offset: u64,
        /// Records in the batch.
        records: usize,
        /// Keys returned.
        returned: usize,
    },
    /// A batch names a codec the codec table does not have.
    #[error("batch at offset {base_offset} references unknown codec {codec_ref}")]
    UnknownCodec {
        /// Base offset of the batch.
        base_offset: u64,
        /// The codec reference.
        codec_ref: u16,
    },
    /// The payload codec failed.
    #[error("decompressing the batch at offset {base_offset} failed: {source}")]
    Codec {
        /// Base offset of the batch.
        base_offset: u64,
        /// The codec's error.
        #[source]
        source: CallerError,
    },
    /// A stored batch (or its decompressed records) is invalid.
    #[error("invalid batch in segment {segment} at position {position}: {reason}")]
    Corrupt {
        /// Base offset of the segment.
        segment: u64,
        /// Byte position in the segment.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// An IO operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
    /// Retention or a truncation changed the segments this pass was cleaning while it read
    /// them (the pass holds no lock while it calls the key extractor and the codec): the pass
    /// stopped before swapping them, nothing of the group is visible. Groups swapped in before
    /// stay. Run another pass.
    #[error("the segments being cleaned changed during the pass; run another pass")]
    SegmentsChanged,
}
