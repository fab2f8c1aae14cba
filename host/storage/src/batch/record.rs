//! Records: the owned [`Record`], its Kafka-style encoding, and a zero-copy validating decoder.
//!
//! Encoding of one record (all varints zigzag, see docs/FORMAT.md):
//! `length varint | attributes i8 | timestamp delta varlong | offset delta varint |
//!  key length varint (-1 = null) | key | value length varint (-1 = null) | value |
//!  header count varint | (header key length varint | utf-8 key | header value length varint | value)*`

use super::varint::{Reader, put_varlong, varlong_len};
use super::{BatchError, BatchHeader, MIN_RECORD_LEN, TimestampType};

/// One record as a producer sends it and a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Optional key (compaction keeps the latest record per key).
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Application headers, in order; keys need not be unique.
    pub headers: Vec<Header>,
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// UTF-8 key.
    pub key: String,
    /// Opaque value.
    pub value: Vec<u8>,
}

impl Record {
    /// A record with a value and no key or headers.
    pub fn new(timestamp: i64, value: impl Into<Vec<u8>>) -> Self {
        Self {
            timestamp,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.into(),
        });
        self
    }
}

/// The borrowed parts of a record, as the encoder needs them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordParts<'r, H> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'r [u8]>,
    pub(crate) value: Option<&'r [u8]>,
    pub(crate) headers: H,
}

/// The parts of an owned record.
pub(crate) fn parts_of(r: &Record) -> RecordParts<'_, impl Iterator<Item = (&str, &[u8])> + Clone> {
    RecordParts {
        timestamp: r.timestamp,
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_slice())),
    }
}

fn len_i32(what: &'static str, len: usize) -> Result<i32, BatchError> {
    i32::try_from(len).map_err(|_| BatchError::TooLarge {
        what,
        len: len as u64,
        max: i32::MAX as u64,
    })
}

fn nullable_len(what: &'static str, b: Option<&[u8]>) -> Result<i32, BatchError> {
    match b {
        None => Ok(-1),
        Some(b) => len_i32(what, b.len()),
    }
}

/// Appends one encoded record to `buf`. Cost: sizes the record once, then writes it; no
/// allocation beyond `buf`'s growth. On error `buf` is unchanged.
pub(crate) fn encode_record_into<'r, H>(
    buf: &mut Vec<u8>,
    offset_delta: u32,
    timestamp_delta: i64,
    parts: RecordParts<'r, H>,
) -> Result<(), BatchError>
where
    H: Iterator<Item = (&'r str, &'r [u8])> + Clone,
{
    let key_len = nullable_len("record key", parts.key)?;
    let value_len = nullable_len("record value", parts.value)?;
    let offset_delta = i64::from(offset_delta);

    // Size the headers (and count them: the count is written before them).
    let mut headers_len: u64 = 0;
    let mut header_count: usize = 0;
    for (k, v) in parts.headers.clone() {
        let kl = len_i32("header key", k.len())?;
        let vl = len_i32("header value", v.len())?;
        headers_len +=
            (varlong_len(i64::from(kl)) + k.len() + varlong_len(i64::from(vl)) + v.len()) as u64;
        header_count += 1;
    }
    let header_count = len_i32("header count", header_count)?;
    let body: u64 = 1 // attributes
        + varlong_len(timestamp_delta) as u64
        + varlong_len(offset_delta) as u64
        + varlong_len(i64::from(key_len)) as u64
        + u64::from(key_len.max(0) as u32)
        + varlong_len(i64::from(value_len)) as u64
        + u64::from(value_len.max(0) as u32)
        + varlong_len(i64::from(header_count)) as u64
        + headers_len;
    let body = i32::try_from(body).map_err(|_| BatchError::TooLarge {
        what: "record",
        len: body,
        max: i32::MAX as u64,
    })?;

    buf.reserve(varlong_len(i64::from(body)) + body as usize);
    put_varlong(buf, i64::from(body));
    buf.push(0); // attributes
    put_varlong(buf, timestamp_delta);
    put_varlong(buf, offset_delta);
    put_varlong(buf, i64::from(key_len));
    if let Some(k) = parts.key {
        buf.extend_from_slice(k);
    }
    put_varlong(buf, i64::from(value_len));
    if let Some(v) = parts.value {
        buf.extend_from_slice(v);
    }
    put_varlong(buf, i64::from(header_count));
    for (k, v) in parts.headers {
        put_varlong(buf, k.len() as i64);
        buf.extend_from_slice(k.as_bytes());
        put_varlong(buf, v.len() as i64);
        buf.extend_from_slice(v);
    }
    Ok(())
}

/// Encodes `records` as an uncompressed records payload: offset deltas `0..n`, timestamp deltas
/// relative to the first record's timestamp. This is what a codec compresses; pair it with
/// [`encode_batch`](super::encode_batch). [`BatchBuilder`](super::BatchBuilder) does the same
/// without an intermediate payload buffer.
///
/// Cost: one allocation, sized exactly.
pub fn encode_records(records: &[Record]) -> Result<Vec<u8>, BatchError> {
    let first = records.first().map_or(0, |r| r.timestamp);
    let mut buf = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let delta = u32::try_from(i).map_err(|_| BatchError::TooLarge {
            what: "record count",
            len: i as u64,
            max: u64::from(u32::MAX),
        })?;
        encode_record_into(
            &mut buf,
            delta,
            r.timestamp.wrapping_sub(first),
            parts_of(r),
        )?;
    }
    Ok(buf)
}

/// A record borrowed from a decoded payload, with absolute offset and timestamp. Its headers
/// were validated when it was decoded, so iterating them cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    offset: u64,
    offset_delta: u32,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Absolute offset: base offset + offset delta.
    pub const fn offset(&self) -> u64 {
        self.offset
    }
    /// Offset relative to the batch's base offset.
    pub const fn offset_delta(&self) -> u32 {
        self.offset_delta
    }
    /// Timestamp in ms since the Unix epoch: the batch's first timestamp + this record's delta
    /// (wrapping), or for a log-append-time batch the batch's `max_timestamp` (the append time),
    /// as in Kafka.
    pub const fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, if any.
    pub const fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value; `None` is a tombstone.
    pub const fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// Number of headers.
    pub const fn header_count(&self) -> u32 {
        self.header_count
    }
    /// The headers, in order. Cost: re-reads the (already validated) header bytes.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            reader: Reader::new(self.headers),
            remaining: self.header_count,
        }
    }
    /// Copies the record out. Cost: one allocation for the key, the value and each header.
    pub fn to_record(&self) -> Record {
        Record {
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.to_vec(),
                })
                .collect(),
        }
    }
}

/// A borrowed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// UTF-8 key.
    pub key: &'a str,
    /// Value bytes.
    pub value: &'a [u8],
}

/// Iterator over the headers of a [`RecordRef`].
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    reader: Reader<'a>,
    remaining: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The bytes were validated by `RecordIter`; any failure here would mean they were not,
        // and ends the iteration rather than panicking.
        match read_header(&mut self.reader) {
            Ok(h) => Some(h),
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

fn read_len(
    r: &mut Reader<'_>,
    field: &'static str,
    nullable: bool,
) -> Result<Option<usize>, BatchError> {
    let at = r.position();
    let len = r.read_varint()?;
    if len == -1 && nullable {
        return Ok(None);
    }
    match usize::try_from(len) {
        Ok(n) if n <= r.remaining() => Ok(Some(n)),
        _ => Err(BatchError::InvalidLength {
            field,
            len: i64::from(len),
            at,
            remaining: r.remaining(),
        }),
    }
}

fn read_nullable<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<Option<&'a [u8]>, BatchError> {
    match read_len(r, field, true)? {
        None => Ok(None),
        Some(n) => r.read_bytes(n).map(Some),
    }
}

fn read_required<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a [u8], BatchError> {
    // Not nullable, so `read_len` returns `Some`.
    let n = read_len(r, field, false)?.unwrap_or(0);
    r.read_bytes(n)
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<HeaderRef<'a>, BatchError> {
    let at = r.position();
    let key = read_required(r, "header key")?;
    let key = std::str::from_utf8(key).map_err(|_| BatchError::InvalidUtf8Header { at })?;
    let value = read_required(r, "header value")?;
    Ok(HeaderRef { key, value })
}

/// A validating, zero-copy iterator over the records of an uncompressed payload.
///
/// Yields exactly `record_count` records or an error: the count must match, offset deltas must
/// be strictly increasing and `<= last_offset_delta`, every length must fit in the bytes left,
/// and no bytes may follow the last record. After the first error it yields `None`.
/// Cost: no allocation.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    reader: Reader<'a>,
    base_offset: u64,
    first_timestamp: i64,
    /// `Some(max_timestamp)` for a log-append-time batch: every record's timestamp.
    append_time: Option<i64>,
    last_offset_delta: u32,
    record_count: u32,
    found: u32,
    previous_delta: Option<u32>,
    done: bool,
}

impl<'a> RecordIter<'a> {
    /// Iterates over `payload`, the uncompressed records of the batch described by `header`
    /// (for a compressed batch: the codec's output). Fails if `payload` is not
    /// `header.payload_size()` bytes.
    pub fn new(payload: &'a [u8], header: &BatchHeader) -> Result<Self, BatchError> {
        if payload.len() != header.payload_size() as usize {
            return Err(BatchError::PayloadSizeMismatch {
                declared: header.payload_size(),
                actual: payload.len(),
            });
        }
        Ok(Self {
            reader: Reader::new(payload),
            base_offset: header.base_offset(),
            first_timestamp: header.first_timestamp(),
            append_time: match header.timestamp_type() {
                TimestampType::CreateTime => None,
                TimestampType::LogAppendTime => Some(header.max_timestamp()),
            },
            last_offset_delta: header.last_offset_delta(),
            record_count: header.record_count(),
            found: 0,
            previous_delta: None,
            done: false,
        })
    }

    fn read_record(&mut self) -> Result<RecordRef<'a>, BatchError> {
        let r = &mut self.reader;
        let at = r.position();
        let len = read_len(r, "record", false)?.unwrap_or(0);
        if len < MIN_RECORD_LEN as usize - 1 {
            return Err(BatchError::InvalidLength {
                field: "record",
                len: len as i64,
                at,
                remaining: r.remaining(),
            });
        }
        let body_at = r.position();
        let body_bytes = r.read_bytes(len)?;
        let mut body = Reader::with_origin(body_bytes, body_at);

        let attributes = body.read_u8()?;
        if attributes != 0 {
            return Err(BatchError::BadRecordAttributes {
                attributes,
                at: body_at,
            });
        }
        let timestamp_delta = body.read_varlong()?;
        let delta_at = body.position();
        let delta = i64::from(body.read_varint()?);
        let delta = match u32::try_from(delta) {
            Ok(d) if d <= self.last_offset_delta && self.previous_delta.is_none_or(|p| d > p) => d,
            _ => {
                return Err(BatchError::BadOffsetDelta {
                    delta,
                    previous: self.previous_delta,
                    last_offset_delta: self.last_offset_delta,
                    at: delta_at,
                });
            }
        };
        let key = read_nullable(&mut body, "key")?;
        let value = read_nullable(&mut body, "value")?;
        let count_at = body.position();
        let header_count = body.read_varint()?;
        // Each header takes at least two bytes (two one-byte lengths).
        let header_count = match u32::try_from(header_count) {
            Ok(n) if n as usize <= body.remaining() / 2 => n,
            _ => {
                return Err(BatchError::InvalidLength {
                    field: "header count",
                    len: i64::from(header_count),
                    at: count_at,
                    remaining: body.remaining(),
                });
            }
        };
        let headers_start = body.consumed();
        for _ in 0..header_count {
            read_header(&mut body)?;
        }
        if !body.is_empty() {
            return Err(BatchError::RecordLengthMismatch {
                at,
                declared: len,
                used: body.consumed(),
            });
        }
        // In bounds: the headers were just read from there.
        let headers = body_bytes.get(headers_start..).unwrap_or(&[]);

        self.previous_delta = Some(delta);
        Ok(RecordRef {
            // Cannot overflow: the header checked base_offset + last_offset_delta.
            offset: self.base_offset.saturating_add(u64::from(delta)),
            offset_delta: delta,
            timestamp: self
                .append_time
                .unwrap_or(self.first_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            header_count,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.found == self.record_count {
            self.done = true;
            return if self.reader.is_empty() {
                None
            } else {
                Some(Err(BatchError::TrailingBytes {
                    count: self.reader.remaining(),
                }))
            };
        }
        if self.reader.is_empty() {
            self.done = true;
            return Some(Err(BatchError::RecordCountMismatch {
                declared: self.record_count,
                found: self.found,
            }));
        }
        match self.read_record() {
            Ok(r) => {
                self.found += 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            let left = (self.record_count - self.found) as usize;
            (0, Some(left + 1))
        }
    }
}

impl std::iter::FusedIterator for RecordIter<'_> {}

impl std::iter::FusedIterator for HeaderIter<'_> {}

/// Decodes and copies out every record of `payload`, the uncompressed records of the batch
/// described by `header`. All-or-nothing: any invalid byte fails the whole call.
///
/// Cost: one allocation for the vector (bounded by the payload size: every record takes at
/// least [`MIN_RECORD_LEN`] bytes) plus one per key, value and header.
pub fn decode_records(payload: &[u8], header: &BatchHeader) -> Result<Vec<Record>, BatchError> {
    let iter = RecordIter::new(payload, header)?;
    let mut out = Vec::with_capacity(header.record_count() as usize);
    for r in iter {
        out.push(r?.to_record());
    }
    Ok(out)
}
