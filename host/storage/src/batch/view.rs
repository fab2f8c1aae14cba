//! [`BatchView`]: a validated, zero-copy view of one batch in a byte buffer.

use super::{
    BatchError, BatchHeader, BatchLimits, Compression, HEADER_LEN, Record, RecordIter,
    decode_records, parse_header_with_limits, verify_crc,
};

/// One batch whose header is valid and whose CRC matches, borrowed from a buffer.
///
/// This is what a reader serves: a batch that fails the CRC never becomes a `BatchView`.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Parses the batch at the start of `buf` with default limits, verifying the header and the
    /// CRC. Bytes after the batch are ignored (see [`total_len`](Self::total_len) to step to the
    /// next one). Cost: constant for the header, one CRC pass over the batch; no allocation.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        Self::parse_with_limits(buf, &BatchLimits::default())
    }

    /// Like [`parse`](Self::parse) with explicit limits.
    pub fn parse_with_limits(buf: &'a [u8], limits: &BatchLimits) -> Result<Self, BatchError> {
        let view = Self::framed(buf, limits)?;
        verify_crc(view.bytes)?;
        Ok(view)
    }

    /// A view of a batch this crate has already CRC-checked (what [`crate::Fetched::batches`]
    /// yields): the header is parsed, the CRC is not computed again. Cost: a few loads.
    pub(crate) fn verified(buf: &'a [u8]) -> Result<Self, BatchError> {
        Self::framed(buf, &BatchLimits::UNLIMITED)
    }

    /// The header parsed and the batch's bytes delimited; the CRC is the caller's.
    fn framed(buf: &'a [u8], limits: &BatchLimits) -> Result<Self, BatchError> {
        let header = parse_header_with_limits(buf, limits)?;
        let total = header.total_len();
        let bytes = buf.get(..total).ok_or(BatchError::Truncated {
            needed: total,
            have: buf.len(),
        })?;
        Ok(Self { header, bytes })
    }

    /// The validated header.
    pub const fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, exactly [`total_len`](Self::total_len) bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes (`12 + batch_length`).
    pub const fn total_len(&self) -> usize {
        self.header.total_len()
    }

    /// First offset.
    pub const fn base_offset(&self) -> u64 {
        self.header.base_offset()
    }

    /// Last offset.
    pub const fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// The payload as stored: records, or the codec's output when compressed.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Iterates over the records of an uncompressed batch without copying.
    /// Fails with [`BatchError::Compressed`] for a compressed batch.
    pub fn records(&self) -> Result<RecordIter<'a>, BatchError> {
        match self.header.compression() {
            Compression::None => RecordIter::new(self.payload(), &self.header),
            Compression::Codec(r) => Err(BatchError::Compressed { codec_ref: r.0 }),
        }
    }

    /// Checks every record of an uncompressed batch (what a broker does before accepting a
    /// produced batch). Compressed batches are accepted on their header and CRC alone: their
    /// records are checked where they are decompressed. Cost: one pass over the payload, no
    /// allocation.
    pub fn validate_records(&self) -> Result<(), BatchError> {
        match self.header.compression() {
            Compression::None => self.records()?.try_for_each(|r| r.map(drop)),
            Compression::Codec(_) => Ok(()),
        }
    }

    /// Decodes and copies out every record of an uncompressed batch.
    pub fn decode_records(&self) -> Result<Vec<Record>, BatchError> {
        match self.header.compression() {
            Compression::None => decode_records(self.payload(), &self.header),
            Compression::Codec(r) => Err(BatchError::Compressed { codec_ref: r.0 }),
        }
    }
}
