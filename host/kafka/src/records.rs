//! Kafka RecordBatch v2 in and out.
//!
//! In: a produce request's records field is one or more Kafka batches. Each is checked
//! (length, magic 2, CRC32C, attributes), its records section decompressed if the producer
//! compressed it, and handed to the broker as an [`EncodedBatch`]: the records section is
//! this format's record encoding byte for byte, so it is stored as sent.
//!
//! Out: a stored batch becomes a Kafka batch by rewriting its header (big-endian, magic 2,
//! no codec reference) in front of the unchanged records section. The new CRC32C covers the
//! new header's last 40 bytes and the records; the records' CRC comes from the stored one
//! (`Broker::fetch_plain`), so the records are not read again.
//!
//! | off | size | Kafka RecordBatch v2 field |
//! |----:|-----:|----------------------------|
//! | 0 | 8 | baseOffset |
//! | 8 | 4 | batchLength (bytes after this field) |
//! | 12 | 4 | partitionLeaderEpoch |
//! | 16 | 1 | magic = 2 |
//! | 17 | 4 | crc (CRC32C of bytes 21..) |
//! | 21 | 2 | attributes (0-2 compression, 3 timestamp type, 4 transactional, 5 control) |
//! | 23 | 4 | lastOffsetDelta |
//! | 27 | 8 | baseTimestamp |
//! | 35 | 8 | maxTimestamp |
//! | 43 | 8 | producerId |
//! | 51 | 2 | producerEpoch |
//! | 53 | 4 | baseSequence |
//! | 57 | 4 | recordsCount |
//! | 61 | … | records |

use crate::compression::{self, DecompressError};
use bytes::{BufMut, Bytes, BytesMut};
use distlog_broker::{EncodedBatch, PlainBatch};

/// Kafka's batch header length.
pub const HEADER_LEN: usize = 61;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
/// Attribute bits shared by both formats at the same positions: timestamp type,
/// transactional, control.
const SHARED_ATTRIBUTE_BITS: u16 = 0b11_1000;
const CONTROL_BIT: i16 = 0b10_0000;
const TRANSACTIONAL_BIT: i16 = 0b1_0000;

/// Why a produced records field was refused; [`code`](Self::code) is the Kafka error.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Bytes missing, or a batch length that does not fit.
    #[error("truncated or mis-sized record batch at byte {at}")]
    Truncated {
        /// Where in the records field.
        at: usize,
    },
    /// Message sets v0/v1 (magic 0 or 1) or an unknown magic.
    #[error("record batch magic {0} is not supported (only magic 2, Kafka 0.11 and later)")]
    Magic(i8),
    /// The CRC32C does not match.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the batch.
        stored: u32,
        /// CRC of its bytes.
        computed: u32,
    },
    /// A header field out of range.
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// A producer may not write control batches.
    #[error("producers may not write control batches")]
    Control,
    /// Decompression failed or would exceed the bound.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The records field holds no batch.
    #[error("the records field holds no record batch")]
    Empty,
}

impl RecordsError {
    /// The Kafka error code for the partition.
    pub fn code(&self) -> kafka_protocol::ResponseError {
        use kafka_protocol::ResponseError as E;
        match self {
            Self::Truncated { .. } | Self::Crc { .. } => E::CorruptMessage,
            Self::Magic(_) => E::UnsupportedForMessageFormat,
            Self::Decompress(DecompressError::TooLarge { .. }) => E::MessageTooLarge,
            Self::Decompress(DecompressError::UnknownCodec(_)) => E::UnsupportedCompressionType,
            Self::Decompress(DecompressError::Invalid { .. }) => E::CorruptMessage,
            Self::Invalid(_) | Self::Control | Self::Empty => E::InvalidRecord,
        }
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The batches of a produce request's records field, checked and decompressed, ready for
/// `Broker::produce_batches`. Records sections of uncompressed batches are slices of
/// `records` (no copy).
pub fn to_encoded(
    records: &Bytes,
    max_decompressed: usize,
) -> Result<Vec<EncodedBatch>, RecordsError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let b = &records[at..];
        if b.len() < HEADER_LEN {
            return Err(RecordsError::Truncated { at });
        }
        let magic = b[16] as i8;
        if magic != 2 {
            return Err(RecordsError::Magic(magic));
        }
        let batch_length = be_i32(b, 8);
        let total = usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|&t| t >= HEADER_LEN && t <= b.len())
            .ok_or(RecordsError::Truncated { at })?;
        let batch = &b[..total];
        let stored = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        let computed = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
        if stored != computed {
            return Err(RecordsError::Crc { stored, computed });
        }
        let attributes = be_i16(batch, OFF_ATTRIBUTES);
        if attributes & CONTROL_BIT != 0 {
            return Err(RecordsError::Control);
        }
        let codec = (attributes & 0b111) as u8;
        let last_offset_delta = u32::try_from(be_i32(batch, 23))
            .map_err(|_| RecordsError::Invalid("negative lastOffsetDelta"))?;
        let record_count = u32::try_from(be_i32(batch, 57))
            .ok()
            .filter(|&n| n >= 1)
            .ok_or(RecordsError::Invalid("recordsCount must be at least 1"))?;
        crate::metrics::produced_batch(compression::name(codec));
        let section = records.slice(at + HEADER_LEN..at + total);
        let section = if codec == 0 {
            section
        } else {
            Bytes::from(compression::decompress(codec, &section, max_decompressed)?)
        };
        out.push(EncodedBatch {
            records: section,
            record_count,
            last_offset_delta,
            first_timestamp: be_i64(batch, 27),
            producer_id: be_i64(batch, 43),
            producer_epoch: be_i16(batch, 51),
            base_sequence: be_i32(batch, 53),
            transactional: attributes & TRANSACTIONAL_BIT != 0,
        });
        at += total;
    }
    if out.is_empty() {
        return Err(RecordsError::Empty);
    }
    Ok(out)
}

/// Appends the Kafka form of `batches` to `out`: per batch, a rewritten header (all headers
/// in one allocation) and the records section as it came from the read.
/// Cost: 61 bytes written and two CRC combines per batch; the records are not touched.
pub fn from_stored(batches: &[PlainBatch], out: &mut Vec<Bytes>) {
    let mut headers = BytesMut::with_capacity(HEADER_LEN * batches.len());
    for b in batches {
        let h = &b.header;
        let records = b.records.len();
        headers.put_i64(h.base_offset() as i64);
        headers.put_i32((HEADER_LEN - 12 + records) as i32);
        headers.put_i32(h.leader_epoch() as i32);
        headers.put_i8(2);
        headers.put_u32(0); // CRC, below
        headers.put_i16((h.attributes().bits() & SHARED_ATTRIBUTE_BITS) as i16);
        headers.put_i32(h.last_offset_delta() as i32);
        headers.put_i64(h.first_timestamp());
        headers.put_i64(h.max_timestamp());
        headers.put_i64(h.producer_id());
        headers.put_i16(h.producer_epoch());
        headers.put_i32(h.base_sequence());
        headers.put_i32(h.record_count() as i32);
        let start = headers.len() - HEADER_LEN;
        let head_crc = crc32c::crc32c(&headers[start + OFF_ATTRIBUTES..]);
        let crc = crc32c::crc32c_combine(head_crc, b.records_crc, records);
        headers[start + OFF_CRC..start + OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    let headers = headers.freeze();
    for (i, b) in batches.iter().enumerate() {
        out.push(headers.slice(i * HEADER_LEN..(i + 1) * HEADER_LEN));
        out.push(b.records.clone());
    }
}
