//! Building batches: from records ([`BatchBuilder`]) or from an already-compressed payload
//! ([`encode_batch`]).

use super::header::{seal_crc, write_header};
use super::record::{RecordParts, encode_record_into, parts_of};
use super::{
    BatchError, BatchLimits, BatchMeta, Compression, HEADER_LEN, LENGTH_PREFIX, Record, RecordIter,
    RecordRef, TimestampType, parse_header_with_limits,
};

/// Builds an uncompressed batch by encoding records straight into the batch buffer.
///
/// The buffer starts with room for the 67-byte header; each [`push`](Self::push) appends one
/// encoded record; [`build`](Self::build) writes the header and CRC in place. One buffer, no
/// per-record allocation; [`clear`](Self::clear) keeps the buffer for the next batch.
///
/// ```
/// use distlog_storage::batch::{BatchBuilder, BatchView, Record};
///
/// let mut b = BatchBuilder::new();
/// b.push(&Record::new(1_700_000_000_000, "hello").with_key("k"))?;
/// let bytes = b.finish()?;
/// let view = BatchView::parse(&bytes)?;
/// assert_eq!(view.header().record_count(), 1);
/// # Ok::<(), distlog_storage::batch::BatchError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    meta: BatchMeta,
    next_delta: u32,
    limits: BatchLimits,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder with default metadata (base offset 0, no producer, create time).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer has room for `bytes` bytes of records.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN.saturating_add(bytes));
        buf.resize(HEADER_LEN, 0);
        Self {
            buf,
            meta: BatchMeta::default(),
            next_delta: 0,
            limits: BatchLimits::default(),
        }
    }

    /// A builder holding `records`, an uncompressed records section encoded elsewhere in this
    /// format (a Kafka producer's batch has the same record encoding), with the writer-chosen
    /// fields of `meta` and its `record_count`, `last_offset_delta` and `first_timestamp`.
    /// Every record is checked as a read checks it (lengths, varints, attributes, strictly
    /// increasing offset deltas up to `last_offset_delta`, the count), under `limits`;
    /// `max_timestamp` is recomputed from the records, not trusted. Push more records or
    /// [`build`](Self::build) as for any builder.
    /// Cost: one copy of `records` into the builder's buffer and one validating pass.
    pub fn from_records(
        meta: &BatchMeta,
        records: &[u8],
        limits: BatchLimits,
    ) -> Result<Self, BatchError> {
        if meta.record_count == 0 {
            return Err(BatchError::EmptyBatch);
        }
        let mut b = Self::with_capacity(records.len()).limits(limits).meta(meta);
        b.buf.extend_from_slice(records);
        let batch_length = u64::try_from(b.buf.len() - LENGTH_PREFIX).unwrap_or(u64::MAX);
        if batch_length > u64::from(b.limits.max_batch_length) {
            return Err(BatchError::TooLarge {
                what: "batch length",
                len: batch_length,
                max: u64::from(b.limits.max_batch_length),
            });
        }
        b.meta.record_count = meta.record_count;
        b.meta.last_offset_delta = meta.last_offset_delta;
        b.meta.first_timestamp = meta.first_timestamp;
        b.meta.max_timestamp = meta.first_timestamp;
        b.meta.payload_size = u32::try_from(records.len()).map_err(|_| too_large(records.len()))?;
        // Parse a header for these fields, then walk the records under it; the header is
        // rewritten by `build`.
        write_header(
            &mut b.buf,
            &BatchMeta {
                timestamp_type: TimestampType::CreateTime,
                ..b.meta
            },
            Compression::None,
            batch_length as u32,
        );
        let header = parse_header_with_limits(&b.buf, &b.limits)?;
        let mut max_timestamp = i64::MIN;
        let mut last_delta = 0;
        for r in RecordIter::new(&b.buf[HEADER_LEN..], &header)? {
            let r = r?;
            max_timestamp = max_timestamp.max(r.timestamp());
            last_delta = r.offset_delta();
        }
        b.meta.max_timestamp = max_timestamp;
        b.next_delta = last_delta.saturating_add(1);
        Ok(b)
    }

    /// Limits the built batch is checked against (default: [`BatchLimits::default`]).
    #[must_use]
    pub fn limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Takes the writer-chosen fields of `meta` (base offset, leader epoch, timestamp type,
    /// flags, producer identity); the record-derived fields (counts, timestamps, sizes) come
    /// from the records pushed. With [`BatchHeader::meta`](super::BatchHeader::meta) this
    /// rebuilds a batch like another one, as compaction does.
    #[must_use]
    pub fn meta(mut self, meta: &BatchMeta) -> Self {
        self.meta = BatchMeta {
            record_count: self.meta.record_count,
            last_offset_delta: self.meta.last_offset_delta,
            first_timestamp: self.meta.first_timestamp,
            max_timestamp: self.meta.max_timestamp,
            payload_size: self.meta.payload_size,
            ..*meta
        };
        self
    }

    /// Sets the base offset written in the header (the log usually patches it on append).
    #[must_use]
    pub fn base_offset(mut self, base_offset: u64) -> Self {
        self.meta.base_offset = base_offset;
        self
    }

    /// Sets the leader epoch.
    #[must_use]
    pub fn leader_epoch(mut self, leader_epoch: u32) -> Self {
        self.meta.leader_epoch = leader_epoch;
        self
    }

    /// Sets the timestamp type.
    #[must_use]
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.meta.timestamp_type = timestamp_type;
        self
    }

    /// Sets the producer identity (id, epoch, sequence of the first record).
    #[must_use]
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.meta.producer_id = id;
        self.meta.producer_epoch = epoch;
        self.meta.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional and control flags (reserved for later use).
    #[must_use]
    pub fn flags(mut self, transactional: bool, control: bool) -> Self {
        self.meta.transactional = transactional;
        self.meta.control = control;
        self
    }

    /// Number of records pushed.
    pub const fn record_count(&self) -> u32 {
        self.meta.record_count
    }

    /// Whether no record has been pushed.
    pub const fn is_empty(&self) -> bool {
        self.meta.record_count == 0
    }

    /// Size in bytes the batch would have if built now.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Raises the batch's `last_offset_delta` beyond the last record pushed, so a batch
    /// rewritten by compaction keeps its offset range after its last record was dropped.
    /// Fails if `delta` is below the last pushed record's delta or above `i32::MAX`, or if no
    /// record has been pushed.
    pub fn set_last_offset_delta(&mut self, delta: u32) -> Result<(), BatchError> {
        if self.is_empty() {
            return Err(BatchError::EmptyBatch);
        }
        if delta < self.next_delta - 1 || delta > i32::MAX as u32 {
            return Err(BatchError::BadLastOffsetDelta {
                last_offset_delta: delta,
                record_count: self.meta.record_count,
            });
        }
        self.meta.last_offset_delta = delta;
        Ok(())
    }

    /// Appends a record at the next offset delta (0, 1, 2, ...).
    pub fn push(&mut self, record: &Record) -> Result<(), BatchError> {
        self.push_at(self.next_delta, record)
    }

    /// Appends a record at `offset_delta`, which must be greater than that of the previous
    /// record (batches have gaps only after compaction).
    pub fn push_at(&mut self, offset_delta: u32, record: &Record) -> Result<(), BatchError> {
        self.push_parts(offset_delta, parts_of(record))
    }

    /// Appends a borrowed record (for instance one read from another batch) at `offset_delta`.
    /// Cost: copies its bytes; no allocation beyond the buffer's growth.
    pub fn push_ref_at(
        &mut self,
        offset_delta: u32,
        record: &RecordRef<'_>,
    ) -> Result<(), BatchError> {
        let headers = record.headers();
        self.push_parts(
            offset_delta,
            RecordParts {
                timestamp: record.timestamp(),
                key: record.key(),
                value: record.value(),
                headers: headers.map(|h| (h.key, h.value)),
            },
        )
    }

    fn push_parts<'r, H>(
        &mut self,
        offset_delta: u32,
        parts: RecordParts<'r, H>,
    ) -> Result<(), BatchError>
    where
        H: Iterator<Item = (&'r str, &'r [u8])> + Clone,
    {
        if offset_delta < self.next_delta || offset_delta > i32::MAX as u32 {
            return Err(BatchError::BadOffsetDelta {
                delta: i64::from(offset_delta),
                previous: self.next_delta.checked_sub(1).filter(|_| !self.is_empty()),
                last_offset_delta: i32::MAX as u32,
                at: self.buf.len() - HEADER_LEN,
            });
        }
        let first = if self.is_empty() {
            parts.timestamp
        } else {
            self.meta.first_timestamp
        };
        let timestamp = parts.timestamp;
        let before = self.buf.len();
        encode_record_into(
            &mut self.buf,
            offset_delta,
            timestamp.wrapping_sub(first),
            parts,
        )?;
        let batch_length = (self.buf.len() - LENGTH_PREFIX) as u64;
        if batch_length > u64::from(self.limits.max_batch_length) {
            self.buf.truncate(before);
            return Err(BatchError::TooLarge {
                what: "batch length",
                len: batch_length,
                max: u64::from(self.limits.max_batch_length),
            });
        }
        if self.is_empty() {
            self.meta.first_timestamp = timestamp;
            self.meta.max_timestamp = timestamp;
        } else {
            self.meta.max_timestamp = self.meta.max_timestamp.max(timestamp);
        }
        self.meta.record_count += 1;
        self.meta.last_offset_delta = self.meta.last_offset_delta.max(offset_delta);
        self.next_delta = offset_delta.saturating_add(1);
        Ok(())
    }

    /// Writes the header and CRC and returns the complete batch, borrowed from the builder.
    /// Pushing more records afterwards is allowed; build again to seal them.
    /// Cost: one CRC pass over the batch.
    pub fn build(&mut self) -> Result<&[u8], BatchError> {
        if self.is_empty() {
            return Err(BatchError::EmptyBatch);
        }
        let payload_size = self.buf.len() - HEADER_LEN;
        // `push` kept the batch within `limits.max_batch_length <= u32::MAX - 12`.
        self.meta.payload_size =
            u32::try_from(payload_size).map_err(|_| too_large(payload_size))?;
        let batch_length =
            u32::try_from(self.buf.len() - LENGTH_PREFIX).map_err(|_| too_large(self.buf.len()))?;
        write_header(&mut self.buf, &self.meta, Compression::None, batch_length);
        seal_crc(&mut self.buf);
        parse_header_with_limits(&self.buf, &self.limits)?;
        Ok(&self.buf)
    }

    /// Builds and returns the batch buffer. Cost: one CRC pass; no copy.
    pub fn finish(mut self) -> Result<Vec<u8>, BatchError> {
        self.build()?;
        Ok(self.buf)
    }

    /// The metadata and the uncompressed records payload, for a codec to compress and
    /// [`encode_batch`] to wrap. Cost: none; the payload is borrowed.
    pub fn payload(&mut self) -> Result<(BatchMeta, &[u8]), BatchError> {
        if self.is_empty() {
            return Err(BatchError::EmptyBatch);
        }
        let payload_size = self.buf.len() - HEADER_LEN;
        self.meta.payload_size =
            u32::try_from(payload_size).map_err(|_| too_large(payload_size))?;
        Ok((self.meta, &self.buf[HEADER_LEN..]))
    }

    /// Forgets the records and metadata, keeping the buffer's capacity and the limits.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_LEN);
        self.meta = BatchMeta::default();
        self.next_delta = 0;
    }

    /// Like [`clear`](Self::clear), but keeps the writer-chosen fields (base offset, leader
    /// epoch, timestamp type, flags, producer identity) for the next batch.
    pub fn reset(&mut self) {
        self.buf.truncate(HEADER_LEN);
        self.meta = BatchMeta {
            record_count: 0,
            last_offset_delta: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            payload_size: 0,
            ..self.meta
        };
        self.next_delta = 0;
    }
}

fn too_large(len: usize) -> BatchError {
    BatchError::TooLarge {
        what: "batch length",
        len: len as u64,
        max: u64::from(u32::MAX),
    }
}

/// Encodes a batch around an already-encoded payload: `payload` is the records payload when
/// `compression` is [`Compression::None`], or the codec's output otherwise. `meta` describes the
/// records (`payload_size` is the uncompressed size). Appends the batch to `out`.
///
/// The result is checked with [`BatchLimits::UNLIMITED`]; readers apply their own limits.
/// Cost: one copy of `payload`, one CRC pass.
pub fn encode_batch_into(
    out: &mut Vec<u8>,
    meta: &BatchMeta,
    compression: Compression,
    payload: &[u8],
) -> Result<(), BatchError> {
    if meta.record_count == 0 {
        return Err(BatchError::EmptyBatch);
    }
    let total = HEADER_LEN as u64 + payload.len() as u64;
    let batch_length = u32::try_from(total - LENGTH_PREFIX as u64)
        .ok()
        .filter(|&l| l <= BatchLimits::UNLIMITED.max_batch_length)
        .ok_or(BatchError::TooLarge {
            what: "batch length",
            len: total - LENGTH_PREFIX as u64,
            max: u64::from(BatchLimits::UNLIMITED.max_batch_length),
        })?;
    let start = out.len();
    out.reserve(HEADER_LEN + payload.len());
    out.resize(start + HEADER_LEN, 0);
    out.extend_from_slice(payload);
    let batch = &mut out[start..];
    write_header(batch, meta, compression, batch_length);
    seal_crc(batch);
    if let Err(e) = parse_header_with_limits(batch, &BatchLimits::UNLIMITED) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// Like [`encode_batch_into`], returning a new buffer sized exactly.
pub fn encode_batch(
    meta: &BatchMeta,
    compression: Compression,
    payload: &[u8],
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_batch_into(&mut out, meta, compression, payload)?;
    Ok(out)
}
