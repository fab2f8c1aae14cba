//! The fixed 67-byte batch header as the log sees it: enough to frame, validate and index a
//! batch without decoding its records. Parsing and CRC checks are the batch module's
//! ([`crate::batch`]); this is the log's compact copy of the fields it uses.

use crate::batch::{BatchError, BatchLimits, parse_header_with_limits, verify_crc};
use thiserror::Error;

pub use crate::batch::{HEADER_LEN, LENGTH_PREFIX as LOG_OVERHEAD, MIN_BATCH_LENGTH};
/// Attribute bit: the log sets the timestamps at append time.
pub const LOG_APPEND_TIME: u16 = 1 << 3;

/// Why bytes are not a well-formed batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header (or CRC) is invalid, per the batch format.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The buffer holds more or fewer bytes than `batch_length` announces.
    #[error("batch_length announces {announced} bytes in total, buffer has {actual}")]
    LengthMismatch {
        /// `12 + batch_length`.
        announced: u64,
        /// Buffer length.
        actual: u64,
    },
}

/// The header fields the log needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// First offset of the batch.
    pub base_offset: u64,
    /// Bytes after the length field.
    pub batch_length: u32,
    /// Leader epoch the batch was written in (outside the CRC).
    pub leader_epoch: u32,
    /// CRC32C stored in the header.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: u16,
    /// Codec table reference (0 when uncompressed).
    pub codec_ref: u16,
    /// `last offset - base offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record, ms (`max_timestamp` for log-append time).
    pub first_timestamp: i64,
    /// Largest record timestamp, ms.
    pub max_timestamp: i64,
    /// Number of records.
    pub record_count: u32,
    /// Producer id; -1 when the batch has none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record.
    pub base_sequence: i32,
    /// A control batch (a transaction marker).
    pub is_control: bool,
}

impl Frame {
    /// Parses and checks the header at the start of `buf` (at least [`HEADER_LEN`] bytes) with
    /// the batch module's validation. Does not check the CRC. Cost: a few loads.
    pub fn parse(buf: &[u8], max_batch_length: u32) -> Result<Self, FrameError> {
        let limits = BatchLimits {
            max_batch_length,
            ..BatchLimits::default()
        };
        let h = parse_header_with_limits(buf, &limits)?;
        let attributes = h.attributes().bits();
        // In a log-append-time batch every record's timestamp is `max_timestamp`.
        let first_timestamp = if attributes & LOG_APPEND_TIME != 0 {
            h.max_timestamp()
        } else {
            h.first_timestamp()
        };
        Ok(Self {
            base_offset: h.base_offset(),
            batch_length: h.batch_length(),
            leader_epoch: h.leader_epoch(),
            crc: h.crc(),
            attributes,
            codec_ref: h.codec_ref(),
            last_offset_delta: h.last_offset_delta(),
            first_timestamp,
            max_timestamp: h.max_timestamp(),
            record_count: h.record_count(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            is_control: h.is_control(),
        })
    }

    /// The batch's producer fields, for the producer state.
    pub fn producer_batch(&self) -> crate::producers::ProducerBatch {
        crate::producers::ProducerBatch {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            base_offset: self.base_offset,
            last_offset_delta: self.last_offset_delta,
            max_timestamp: self.max_timestamp,
            is_control: self.is_control,
        }
    }

    /// Total bytes of the batch on disk, header included.
    pub fn total_len(&self) -> u64 {
        LOG_OVERHEAD as u64 + u64::from(self.batch_length)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.last_offset_delta))
    }

    /// Whether the batch is compressed with a codec from the codec table.
    pub fn is_compressed(&self) -> bool {
        self.attributes & 0b11 == 1
    }

    /// Checks the CRC of the whole batch `bytes` (exactly [`total_len`](Self::total_len) long).
    /// Cost: one CRC32C pass (hardware accelerated, several GB/s).
    pub fn verify_crc(&self, bytes: &[u8]) -> Result<(), FrameError> {
        Ok(verify_crc(bytes)?)
    }
}
