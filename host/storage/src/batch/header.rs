//! The fixed 67-byte batch header: parsing, validation and in-place patching.
//!
//! Field offsets are the contract with the segment and recovery code and with docs/FORMAT.md;
//! they never change within a magic version.

use super::BatchError;

/// The only format version this code reads and writes.
pub const MAGIC: u8 = 1;
/// Size of the fixed header; the records payload starts here.
pub const HEADER_LEN: usize = 67;
/// Bytes before the part counted by `batch_length` (base offset and the length itself).
pub const LENGTH_PREFIX: usize = 12;
/// Smallest valid `batch_length`: the header fields after the length field.
pub const MIN_BATCH_LENGTH: u32 = (HEADER_LEN - LENGTH_PREFIX) as u32;
/// Default upper bound on `batch_length` (16 MiB).
pub const DEFAULT_MAX_BATCH_LENGTH: u32 = 16 << 20;
/// Default upper bound on the declared uncompressed payload size (64 MiB).
pub const DEFAULT_MAX_PAYLOAD_SIZE: u32 = 64 << 20;
/// The smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
pub const MIN_RECORD_LEN: u32 = 7;

pub(crate) const OFF_BASE_OFFSET: usize = 0;
pub(crate) const OFF_BATCH_LENGTH: usize = 8;
pub(crate) const OFF_LEADER_EPOCH: usize = 12;
pub(crate) const OFF_MAGIC: usize = 16;
pub(crate) const OFF_CRC: usize = 17;
/// First byte covered by the CRC.
pub(crate) const OFF_ATTRIBUTES: usize = 21;
pub(crate) const OFF_CODEC_REF: usize = 23;
pub(crate) const OFF_LAST_OFFSET_DELTA: usize = 25;
pub(crate) const OFF_FIRST_TIMESTAMP: usize = 29;
pub(crate) const OFF_MAX_TIMESTAMP: usize = 37;
pub(crate) const OFF_PRODUCER_ID: usize = 45;
pub(crate) const OFF_PRODUCER_EPOCH: usize = 53;
pub(crate) const OFF_BASE_SEQUENCE: usize = 55;
pub(crate) const OFF_RECORD_COUNT: usize = 59;
pub(crate) const OFF_PAYLOAD_SIZE: usize = 63;

const COMPRESSION_MASK: u16 = 0b11;
const TIMESTAMP_TYPE_BIT: u16 = 1 << 3;
const TRANSACTIONAL_BIT: u16 = 1 << 4;
const CONTROL_BIT: u16 = 1 << 5;
const KNOWN_BITS: u16 = COMPRESSION_MASK | TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT;

/// Size limits applied when parsing. Both are checked before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Largest accepted `batch_length` (the batch is `12 + batch_length` bytes).
    pub max_batch_length: u32,
    /// Largest accepted `payload_size`: the bound on a decompressed payload.
    pub max_payload_size: u32,
}

impl BatchLimits {
    /// No limit beyond what the field widths allow; for tools that inspect foreign batches.
    pub const UNLIMITED: Self = Self {
        max_batch_length: u32::MAX - LENGTH_PREFIX as u32,
        max_payload_size: u32::MAX,
    };
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_batch_length: DEFAULT_MAX_BATCH_LENGTH,
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
        }
    }
}

/// A reference into the partition's codec table (codec plugin name + sha256 of its version).
///
/// The batch stores only this index, so a batch keeps decoding after its codec plugin is
/// hot-reloaded: the table entry still names the exact version that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodecRef(pub u16);

/// How the records payload is stored (attribute bits 0-1 plus `codec_ref`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// The payload is the records as encoded by [`encode_records`](super::encode_records).
    None,
    /// The payload is the records compressed as a whole by the codec plugin named by the
    /// partition's codec table entry.
    Codec(CodecRef),
}

impl Compression {
    const fn bits(self) -> u16 {
        match self {
            Self::None => 0,
            Self::Codec(_) => 1,
        }
    }

    const fn codec_ref(self) -> u16 {
        match self {
            Self::None => 0,
            Self::Codec(CodecRef(r)) => r,
        }
    }
}

/// What record timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker on append.
    LogAppendTime,
}

/// The 16-bit attributes field, validated: only the bits listed in docs/FORMAT.md may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(u16);

impl Attributes {
    /// Validates raw attribute bits: reserved bits must be zero and the compression value must
    /// be 0 (none) or 1 (codec plugin).
    pub const fn from_bits(bits: u16) -> Result<Self, BatchError> {
        if bits & !KNOWN_BITS != 0 || bits & COMPRESSION_MASK > 1 {
            return Err(BatchError::BadAttributes(bits));
        }
        Ok(Self(bits))
    }

    /// Attributes for a new batch.
    pub const fn new(
        compression: Compression,
        timestamp_type: TimestampType,
        transactional: bool,
        control: bool,
    ) -> Self {
        let mut bits = compression.bits();
        if matches!(timestamp_type, TimestampType::LogAppendTime) {
            bits |= TIMESTAMP_TYPE_BIT;
        }
        if transactional {
            bits |= TRANSACTIONAL_BIT;
        }
        if control {
            bits |= CONTROL_BIT;
        }
        Self(bits)
    }

    /// The raw bits as stored.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether the payload is compressed by a codec plugin.
    pub const fn is_compressed(self) -> bool {
        self.0 & COMPRESSION_MASK != 0
    }

    /// The timestamp type.
    pub const fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction (reserved for later use).
    pub const fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch (reserved for later use).
    pub const fn is_control(self) -> bool {
        self.0 & CONTROL_BIT != 0
    }
}

/// A parsed, validated batch header. Only [`parse_header`] makes one, so its invariants hold:
/// magic is [`MAGIC`], lengths are within limits, attributes are valid, `record_count >= 1`,
/// `record_count - 1 <= last_offset_delta <= i32::MAX`, `base_offset + last_offset_delta` does
/// not overflow, `payload_size` can hold `record_count` records, and for an uncompressed batch
/// `payload_size == batch_length - 55`.
///
/// It does not vouch for the CRC: use [`verify_crc`] or [`BatchView::parse`](super::BatchView::parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    base_offset: u64,
    batch_length: u32,
    leader_epoch: u32,
    crc: u32,
    attributes: Attributes,
    codec_ref: u16,
    last_offset_delta: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: u32,
    payload_size: u32,
}

#[inline]
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Parses and validates the first [`HEADER_LEN`] bytes of `bytes` with the default
/// [`BatchLimits`]. Cost: constant, no allocation; does not read the payload or check the CRC.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    parse_header_with_limits(bytes, &BatchLimits::default())
}

/// Like [`parse_header`] with explicit limits.
pub fn parse_header_with_limits(
    bytes: &[u8],
    limits: &BatchLimits,
) -> Result<BatchHeader, BatchError> {
    // Check the length and magic first so a short read of a valid batch reports `Truncated` and a
    // foreign file reports `BadMagic` as early as possible.
    if bytes.len() < HEADER_LEN {
        // The magic is decisive even on a short buffer, if it is there.
        if let Some(&m) = bytes.get(OFF_MAGIC)
            && m != MAGIC
        {
            return Err(BatchError::BadMagic(m));
        }
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            have: bytes.len(),
        });
    }
    let b = &bytes[..HEADER_LEN];
    let magic = b[OFF_MAGIC];
    if magic != MAGIC {
        return Err(BatchError::BadMagic(magic));
    }
    let h = BatchHeader {
        base_offset: u64::from_le_bytes(array(b, OFF_BASE_OFFSET)),
        batch_length: u32::from_le_bytes(array(b, OFF_BATCH_LENGTH)),
        leader_epoch: u32::from_le_bytes(array(b, OFF_LEADER_EPOCH)),
        crc: u32::from_le_bytes(array(b, OFF_CRC)),
        attributes: Attributes::from_bits(u16::from_le_bytes(array(b, OFF_ATTRIBUTES)))?,
        codec_ref: u16::from_le_bytes(array(b, OFF_CODEC_REF)),
        last_offset_delta: u32::from_le_bytes(array(b, OFF_LAST_OFFSET_DELTA)),
        first_timestamp: i64::from_le_bytes(array(b, OFF_FIRST_TIMESTAMP)),
        max_timestamp: i64::from_le_bytes(array(b, OFF_MAX_TIMESTAMP)),
        producer_id: i64::from_le_bytes(array(b, OFF_PRODUCER_ID)),
        producer_epoch: i16::from_le_bytes(array(b, OFF_PRODUCER_EPOCH)),
        base_sequence: i32::from_le_bytes(array(b, OFF_BASE_SEQUENCE)),
        record_count: u32::from_le_bytes(array(b, OFF_RECORD_COUNT)),
        payload_size: u32::from_le_bytes(array(b, OFF_PAYLOAD_SIZE)),
    };
    h.validate(limits)?;
    Ok(h)
}

impl BatchHeader {
    /// Checks every header invariant except the CRC.
    fn validate(&self, limits: &BatchLimits) -> Result<(), BatchError> {
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BatchLengthTooSmall {
                batch_length: self.batch_length,
            });
        }
        if self.batch_length > limits.max_batch_length {
            return Err(BatchError::TooLarge {
                what: "batch length",
                len: u64::from(self.batch_length),
                max: u64::from(limits.max_batch_length),
            });
        }
        if self.payload_size > limits.max_payload_size {
            return Err(BatchError::TooLarge {
                what: "payload size",
                len: u64::from(self.payload_size),
                max: u64::from(limits.max_payload_size),
            });
        }
        if !self.attributes.is_compressed() {
            if self.codec_ref != 0 {
                return Err(BatchError::UnexpectedCodecRef(self.codec_ref));
            }
            let stored = self.batch_length - MIN_BATCH_LENGTH;
            if self.payload_size != stored {
                return Err(BatchError::PayloadSizeMismatch {
                    declared: self.payload_size,
                    actual: stored as usize,
                });
            }
        }
        if self.record_count == 0 {
            return Err(BatchError::NoRecords);
        }
        if self.last_offset_delta < self.record_count - 1
            || self.last_offset_delta > i32::MAX as u32
        {
            return Err(BatchError::BadLastOffsetDelta {
                last_offset_delta: self.last_offset_delta,
                record_count: self.record_count,
            });
        }
        if self
            .base_offset
            .checked_add(u64::from(self.last_offset_delta))
            .is_none()
        {
            return Err(BatchError::OffsetOverflow {
                base_offset: self.base_offset,
                last_offset_delta: self.last_offset_delta,
            });
        }
        if u64::from(self.record_count) * u64::from(MIN_RECORD_LEN) > u64::from(self.payload_size) {
            return Err(BatchError::TooManyRecords {
                record_count: self.record_count,
                payload_size: self.payload_size,
            });
        }
        Ok(())
    }

    /// First offset of the batch (assigned by the log on append).
    pub const fn base_offset(&self) -> u64 {
        self.base_offset
    }
    /// Bytes after the `batch_length` field.
    pub const fn batch_length(&self) -> u32 {
        self.batch_length
    }
    /// Total size of the batch in bytes: `12 + batch_length`.
    pub const fn total_len(&self) -> usize {
        LENGTH_PREFIX + self.batch_length as usize
    }
    /// Leader epoch (0 until replication exists).
    pub const fn leader_epoch(&self) -> u32 {
        self.leader_epoch
    }
    /// Format version, always [`MAGIC`].
    pub const fn magic(&self) -> u8 {
        MAGIC
    }
    /// The stored CRC32C.
    pub const fn crc(&self) -> u32 {
        self.crc
    }
    /// The attribute bits.
    pub const fn attributes(&self) -> Attributes {
        self.attributes
    }
    /// How the payload is stored.
    pub const fn compression(&self) -> Compression {
        if self.attributes.is_compressed() {
            Compression::Codec(CodecRef(self.codec_ref))
        } else {
            Compression::None
        }
    }
    /// Raw `codec_ref` (0 when uncompressed).
    pub const fn codec_ref(&self) -> u16 {
        self.codec_ref
    }
    /// The timestamp type (attribute bit 3).
    pub const fn timestamp_type(&self) -> TimestampType {
        self.attributes.timestamp_type()
    }
    /// Transactional flag (attribute bit 4).
    pub const fn is_transactional(&self) -> bool {
        self.attributes.is_transactional()
    }
    /// Control flag (attribute bit 5).
    pub const fn is_control(&self) -> bool {
        self.attributes.is_control()
    }
    /// Offset of the last record relative to the base offset.
    pub const fn last_offset_delta(&self) -> u32 {
        self.last_offset_delta
    }
    /// Offset of the last record: `base_offset + last_offset_delta` (cannot overflow; checked on
    /// parse).
    pub const fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as u64)
    }
    /// The offset after this batch: `last_offset + 1`, saturating at `u64::MAX`.
    pub const fn next_offset(&self) -> u64 {
        self.last_offset().saturating_add(1)
    }
    /// Timestamp of the first record (ms since the Unix epoch); record timestamps are stored as
    /// deltas from it.
    pub const fn first_timestamp(&self) -> i64 {
        self.first_timestamp
    }
    /// Largest record timestamp; for [`TimestampType::LogAppendTime`] the append time, which is
    /// then every record's timestamp.
    pub const fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Producer id, -1 when none.
    pub const fn producer_id(&self) -> i64 {
        self.producer_id
    }
    /// Producer epoch, -1 when none.
    pub const fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }
    /// Sequence number of the first record, -1 when none.
    pub const fn base_sequence(&self) -> i32 {
        self.base_sequence
    }
    /// Number of records in the batch (>= 1).
    pub const fn record_count(&self) -> u32 {
        self.record_count
    }
    /// Size of the records payload when uncompressed; the bound for decompression.
    pub const fn payload_size(&self) -> u32 {
        self.payload_size
    }
    /// Size of the payload as stored (compressed or not): `batch_length - 55`.
    pub const fn stored_payload_len(&self) -> usize {
        (self.batch_length - MIN_BATCH_LENGTH) as usize
    }

    /// The writer-chosen fields, for re-encoding this batch (after compaction, or around a
    /// compressed payload).
    pub const fn meta(&self) -> BatchMeta {
        BatchMeta {
            base_offset: self.base_offset,
            leader_epoch: self.leader_epoch,
            timestamp_type: self.attributes.timestamp_type(),
            transactional: self.attributes.is_transactional(),
            control: self.attributes.is_control(),
            last_offset_delta: self.last_offset_delta,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count,
            payload_size: self.payload_size,
        }
    }
}

/// Computes the CRC32C that a batch stores: over bytes `[21, 12 + batch_length)`.
///
/// `batch` must hold the whole batch; extra bytes after it are ignored. Cost: one pass over the
/// batch (hardware CRC where available).
pub fn compute_crc(batch: &[u8]) -> Result<u32, BatchError> {
    let batch_length = read_batch_length(batch)?;
    let end = LENGTH_PREFIX + batch_length as usize;
    if batch.len() < end {
        return Err(BatchError::Truncated {
            needed: end,
            have: batch.len(),
        });
    }
    Ok(crc32c::crc32c(&batch[OFF_ATTRIBUTES..end]))
}

/// The CRC32C of a batch's stored payload (bytes `[HEADER_LEN, total_len)`), derived from
/// the CRC its header stores without reading the payload: CRC32C is linear, so with `H` the
/// 46 covered header bytes and `P` the payload, `crc(P) = crc(H ‖ P) ⊕ shift(crc(H), |P|)`.
///
/// `header_bytes` must be the batch's first [`HEADER_LEN`] bytes and `header` their parse.
/// The result is only as good as the stored CRC: use it on batches a read already verified.
/// Cost: a CRC over 46 bytes and one `O(log |P|)` combine, whatever the payload's size.
pub fn payload_crc(header_bytes: &[u8], header: &BatchHeader) -> Result<u32, BatchError> {
    if header_bytes.len() < HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            have: header_bytes.len(),
        });
    }
    let covered_header = crc32c::crc32c(&header_bytes[OFF_ATTRIBUTES..HEADER_LEN]);
    let len = header.stored_payload_len();
    Ok(header.crc() ^ crc32c::crc32c_combine(covered_header, 0, len))
}

/// Checks the stored CRC of the batch at the start of `batch` against its bytes.
///
/// Needs only the length and CRC fields to be readable; validate the rest with [`parse_header`].
/// Cost: one pass over the batch.
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    let computed = compute_crc(batch)?;
    let stored = u32::from_le_bytes(array(batch, OFF_CRC));
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(())
}

fn read_batch_length(batch: &[u8]) -> Result<u32, BatchError> {
    if batch.len() < HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            have: batch.len(),
        });
    }
    let batch_length = u32::from_le_bytes(array(batch, OFF_BATCH_LENGTH));
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::BatchLengthTooSmall { batch_length });
    }
    Ok(batch_length)
}

/// Writes `base_offset` into the batch at the start of `batch`, in place.
///
/// The base offset is not covered by the CRC, so the CRC stays valid. Cost: 8 bytes written.
/// Fails only if `batch` is shorter than the field. Callers should make sure
/// `base_offset + last_offset_delta` does not overflow (a later [`parse_header`] rejects it).
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) -> Result<(), BatchError> {
    patch(batch, OFF_BASE_OFFSET, &base_offset.to_le_bytes())
}

/// Writes `leader_epoch` into the batch at the start of `batch`, in place (not covered by the
/// CRC). Cost: 4 bytes written.
pub fn set_leader_epoch(batch: &mut [u8], leader_epoch: u32) -> Result<(), BatchError> {
    patch(batch, OFF_LEADER_EPOCH, &leader_epoch.to_le_bytes())
}

/// Stamps the batch at the start of `batch` with the broker's append time: sets the timestamp
/// type to [`TimestampType::LogAppendTime`] and `max_timestamp` to `append_time`, then re-seals
/// the CRC (both fields are covered by it). Decoders then report `append_time` as every record's
/// timestamp; the stored deltas are left alone.
///
/// The CRC is verified before it is replaced, so a corrupt batch is never re-sealed as valid.
/// Cost: two CRC passes over the batch; no allocation.
pub fn set_log_append_time(batch: &mut [u8], append_time: i64) -> Result<(), BatchError> {
    parse_header_with_limits(batch, &BatchLimits::UNLIMITED)?;
    verify_crc(batch)?;
    let attributes = u16::from_le_bytes(array(batch, OFF_ATTRIBUTES)) | TIMESTAMP_TYPE_BIT;
    patch(batch, OFF_ATTRIBUTES, &attributes.to_le_bytes())?;
    patch(batch, OFF_MAX_TIMESTAMP, &append_time.to_le_bytes())?;
    let end = LENGTH_PREFIX + read_batch_length(batch)? as usize;
    let have = batch.len();
    let sealed = batch
        .get_mut(..end)
        .ok_or(BatchError::Truncated { needed: end, have })?;
    seal_crc(sealed);
    Ok(())
}

fn patch(batch: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), BatchError> {
    let end = at + bytes.len();
    let have = batch.len();
    let dst = batch
        .get_mut(at..end)
        .ok_or(BatchError::Truncated { needed: end, have })?;
    dst.copy_from_slice(bytes);
    Ok(())
}

/// The header fields a writer chooses; everything else (length, magic, CRC, attributes bits) is
/// derived when encoding. See [`encode_batch`](super::encode_batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First offset; usually 0 and assigned later with [`set_base_offset`].
    pub base_offset: u64,
    /// Leader epoch (0 until replication exists).
    pub leader_epoch: u32,
    /// Timestamp type.
    pub timestamp_type: TimestampType,
    /// Transactional flag (reserved).
    pub transactional: bool,
    /// Control flag (reserved).
    pub control: bool,
    /// Offset delta of the last record.
    pub last_offset_delta: u32,
    /// Timestamp the record timestamp deltas are relative to.
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Base sequence, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: u32,
    /// Size of the uncompressed records payload.
    pub payload_size: u32,
}

impl Default for BatchMeta {
    fn default() -> Self {
        Self {
            base_offset: 0,
            leader_epoch: 0,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            last_offset_delta: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 0,
            payload_size: 0,
        }
    }
}

/// Writes the 67-byte header for `meta` into `out[..HEADER_LEN]`, with the CRC field zeroed.
pub(crate) fn write_header(
    out: &mut [u8],
    meta: &BatchMeta,
    compression: Compression,
    batch_length: u32,
) {
    let attributes = Attributes::new(
        compression,
        meta.timestamp_type,
        meta.transactional,
        meta.control,
    );
    let h = &mut out[..HEADER_LEN];
    h[OFF_BASE_OFFSET..OFF_BATCH_LENGTH].copy_from_slice(&meta.base_offset.to_le_bytes());
    h[OFF_BATCH_LENGTH..OFF_LEADER_EPOCH].copy_from_slice(&batch_length.to_le_bytes());
    h[OFF_LEADER_EPOCH..OFF_MAGIC].copy_from_slice(&meta.leader_epoch.to_le_bytes());
    h[OFF_MAGIC] = MAGIC;
    h[OFF_CRC..OFF_ATTRIBUTES].copy_from_slice(&0u32.to_le_bytes());
    h[OFF_ATTRIBUTES..OFF_CODEC_REF].copy_from_slice(&attributes.bits().to_le_bytes());
    h[OFF_CODEC_REF..OFF_LAST_OFFSET_DELTA].copy_from_slice(&compression.codec_ref().to_le_bytes());
    h[OFF_LAST_OFFSET_DELTA..OFF_FIRST_TIMESTAMP]
        .copy_from_slice(&meta.last_offset_delta.to_le_bytes());
    h[OFF_FIRST_TIMESTAMP..OFF_MAX_TIMESTAMP].copy_from_slice(&meta.first_timestamp.to_le_bytes());
    h[OFF_MAX_TIMESTAMP..OFF_PRODUCER_ID].copy_from_slice(&meta.max_timestamp.to_le_bytes());
    h[OFF_PRODUCER_ID..OFF_PRODUCER_EPOCH].copy_from_slice(&meta.producer_id.to_le_bytes());
    h[OFF_PRODUCER_EPOCH..OFF_BASE_SEQUENCE].copy_from_slice(&meta.producer_epoch.to_le_bytes());
    h[OFF_BASE_SEQUENCE..OFF_RECORD_COUNT].copy_from_slice(&meta.base_sequence.to_le_bytes());
    h[OFF_RECORD_COUNT..OFF_PAYLOAD_SIZE].copy_from_slice(&meta.record_count.to_le_bytes());
    h[OFF_PAYLOAD_SIZE..HEADER_LEN].copy_from_slice(&meta.payload_size.to_le_bytes());
}

/// Computes and stores the CRC of the complete batch in `batch`.
pub(crate) fn seal_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_ATTRIBUTES].copy_from_slice(&crc.to_le_bytes());
}
