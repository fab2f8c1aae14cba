//! The record batch format (magic 1): the unit the log appends, stores, indexes and serves.
//!
//! Modelled on Kafka's RecordBatch v2. A batch is a fixed 67-byte little-endian header followed
//! by a records payload, compressed as a whole when the attributes say so. docs/FORMAT.md has the
//! byte tables; this module is their only implementation.
//!
//! Contract:
//! - Decoding is total: any byte string gives a valid batch or a precise [`BatchError`], never a
//!   panic, and no allocation is sized by a length field before that length is checked against
//!   the bytes present.
//! - The CRC32C covers everything from the attributes to the end, so the log can assign
//!   offsets with [`set_base_offset`] in place without re-computing it.
//! - Compression is an attribute plus a [`CodecRef`] into a per-partition codec table; the
//!   format does not change when codecs arrive.
//!
//! Writing: [`BatchBuilder`] (records → batch, one buffer) or [`encode_records`] +
//! [`encode_batch`] (for a compressed payload). Reading: [`parse_header`] (67 bytes, no CRC),
//! [`BatchView::parse`] (header + CRC), then [`BatchView::records`] or [`decode_records`].

mod builder;
mod error;
mod header;
mod record;
mod varint;
mod view;

pub use builder::{BatchBuilder, encode_batch, encode_batch_into};
pub use error::BatchError;
/// Position of the magic byte in a batch header (resynchronisation after damage looks for it).
pub(crate) use header::OFF_MAGIC;
pub use header::{
    Attributes, BatchHeader, BatchLimits, BatchMeta, CodecRef, Compression,
    DEFAULT_MAX_BATCH_LENGTH, DEFAULT_MAX_PAYLOAD_SIZE, HEADER_LEN, LENGTH_PREFIX, MAGIC,
    MIN_BATCH_LENGTH, MIN_RECORD_LEN, TimestampType, compute_crc, parse_header,
    parse_header_with_limits, payload_crc, set_base_offset, set_leader_epoch, set_log_append_time,
    verify_crc,
};
pub use record::{
    Header, HeaderIter, HeaderRef, Record, RecordIter, RecordRef, decode_records, encode_records,
};
pub use view::BatchView;

#[cfg(test)]
mod tests;
