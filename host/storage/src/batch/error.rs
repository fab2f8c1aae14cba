//! The one error type of the batch format: every way a byte string can fail to be a batch,
//! and every way a set of records can fail to be encoded as one.

/// Why bytes are not a valid record batch, or why records cannot be encoded as one.
///
/// Positions (`at`) are byte offsets into the records payload (for record-level errors) or into
/// the batch (for header-level errors), so a corrupt batch can be located precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The input ends before the structure being read does.
    #[error("truncated batch: needed {needed} bytes, have {have}")]
    Truncated {
        /// Bytes required to continue (counted from the start of the buffer being read).
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The magic byte names a format version this code does not read.
    #[error("bad magic byte {0} (expected {expected})", expected = super::MAGIC)]
    BadMagic(u8),
    /// `batch_length` is below the size of the fixed header fields after it.
    #[error("batch length {batch_length} is smaller than the minimum {min}", min = super::MIN_BATCH_LENGTH)]
    BatchLengthTooSmall {
        /// The declared batch length.
        batch_length: u32,
    },
    /// The batch (or its declared uncompressed payload) exceeds the configured maximum.
    #[error("{what} of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Which size was too large: "batch length", "payload size", "key", ...
        what: &'static str,
        /// The size found or requested.
        len: u64,
        /// The maximum allowed.
        max: u64,
    },
    /// The stored CRC32C does not match the bytes it covers.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over bytes `[21, 12 + batch_length)`.
        computed: u32,
    },
    /// The attribute bits set a reserved bit or a reserved compression value.
    #[error("bad batch attributes {0:#06x}")]
    BadAttributes(u16),
    /// An uncompressed batch names a codec.
    #[error("uncompressed batch carries codec_ref {0} (must be 0)")]
    UnexpectedCodecRef(u16),
    /// `record_count` is zero: a batch holds at least one record.
    #[error("batch has no records")]
    NoRecords,
    /// `last_offset_delta` is smaller than `record_count - 1` or larger than `i32::MAX`.
    #[error("last offset delta {last_offset_delta} is invalid for {record_count} records")]
    BadLastOffsetDelta {
        /// The declared last offset delta.
        last_offset_delta: u32,
        /// The declared record count.
        record_count: u32,
    },
    /// `base_offset + last_offset_delta` does not fit in a u64.
    #[error("offset overflow: base offset {base_offset} + last offset delta {last_offset_delta}")]
    OffsetOverflow {
        /// The base offset.
        base_offset: u64,
        /// The last offset delta.
        last_offset_delta: u32,
    },
    /// The declared payload size cannot hold `record_count` records (each takes at least
    /// [`MIN_RECORD_LEN`](super::MIN_RECORD_LEN) bytes).
    #[error("{record_count} records cannot fit in a payload of {payload_size} bytes")]
    TooManyRecords {
        /// The declared record count.
        record_count: u32,
        /// The declared uncompressed payload size.
        payload_size: u32,
    },
    /// The records payload is not the size the header declares.
    #[error("payload size mismatch: header declares {declared} bytes, payload has {actual}")]
    PayloadSizeMismatch {
        /// `payload_size` from the header.
        declared: u32,
        /// Bytes actually present.
        actual: usize,
    },
    /// The payload holds a different number of records than the header declares.
    #[error("record count mismatch: header declares {declared}, payload holds {found}")]
    RecordCountMismatch {
        /// `record_count` from the header.
        declared: u32,
        /// Records found before the payload ended.
        found: u32,
    },
    /// Bytes remain in the payload after the last declared record.
    #[error("{count} trailing bytes after the last record")]
    TrailingBytes {
        /// Number of unread bytes.
        count: usize,
    },
    /// A varint is longer than its type allows or its value does not fit.
    #[error("varint overflow at byte {at}")]
    VarintOverflow {
        /// Position of the varint's first byte.
        at: usize,
    },
    /// A length field is negative (other than -1 where null is allowed) or exceeds the bytes left.
    #[error("invalid {field} length {len} at byte {at} ({remaining} bytes remain)")]
    InvalidLength {
        /// Which length: "record", "key", "value", "header key", "header value", "header count".
        field: &'static str,
        /// The decoded length.
        len: i64,
        /// Position of the length field.
        at: usize,
        /// Bytes remaining in the enclosing record or payload.
        remaining: usize,
    },
    /// A record's declared length disagrees with the bytes its fields use.
    #[error("record at byte {at} declares {declared} bytes but its fields use {used}")]
    RecordLengthMismatch {
        /// Position of the record's length field.
        at: usize,
        /// The declared length.
        declared: usize,
        /// Bytes the fields used.
        used: usize,
    },
    /// A record's attribute byte is non-zero (no record attributes are defined).
    #[error("bad record attributes {attributes:#04x} at byte {at}")]
    BadRecordAttributes {
        /// The attribute byte.
        attributes: u8,
        /// Its position.
        at: usize,
    },
    /// Offset deltas are not strictly increasing, or one exceeds `last_offset_delta`.
    #[error(
        "offset delta {delta} at byte {at} is out of order (previous {previous:?}, last {last_offset_delta})"
    )]
    BadOffsetDelta {
        /// The decoded offset delta.
        delta: i64,
        /// The previous record's delta, if any.
        previous: Option<u32>,
        /// The header's last offset delta.
        last_offset_delta: u32,
        /// Position of the delta field.
        at: usize,
    },
    /// A header key is not valid UTF-8.
    #[error("record header key at byte {at} is not valid UTF-8")]
    InvalidUtf8Header {
        /// Position of the record header (its key length field).
        at: usize,
    },
    /// The batch is compressed; decompress its payload and call
    /// [`decode_records`](super::decode_records) / [`RecordIter::new`](super::RecordIter::new).
    #[error("batch is compressed with codec_ref {codec_ref}; decompress its payload first")]
    Compressed {
        /// The codec reference of the batch.
        codec_ref: u16,
    },
    /// An encoder was asked to produce a batch without records.
    #[error("cannot encode an empty batch")]
    EmptyBatch,
}
