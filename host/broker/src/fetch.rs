//! Fetch and offsets: reading a partition (decoded records or stored batches), resolving
//! offsets (earliest, latest, by timestamp), and the end-offset notifications long polls wait
//! on.
//!
//! Invariant: a read never takes a broker lock beyond the topic registry's read lock; it works
//! on one storage snapshot, so what it returns is consistent with the start and end offsets it
//! reports. A batch that does not decode is an error naming the partition, never skipped.

use crate::BrokerError;
use crate::codec::{self, CodecIdentity};
use crate::error::{corrupt, in_partition, read_error};
use crate::topics::topic::Topic;
use bytes::Bytes;
use distlog_plugin_host::PluginHost;
use distlog_storage::batch::{BatchHeader, HEADER_LEN, Header, RecordIter, payload_crc};
use std::borrow::Cow;
use tokio::sync::watch;

/// A record read back, with its offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset in the partition.
    pub offset: u64,
    /// Timestamp (create time or log-append time, per the topic).
    pub timestamp_ms: i64,
    /// Record key (a slice of the fetched buffer, not a copy).
    pub key: Option<Bytes>,
    /// Record value (a slice of the fetched buffer, not a copy).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// Records read by a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResult {
    /// Records at or after the requested offset, in offset order.
    pub records: Vec<StoredRecord>,
    /// Log start offset at the time of the read.
    pub log_start_offset: u64,
    /// Log end offset at the time of the read.
    pub log_end_offset: u64,
    /// Offset to fetch next.
    pub next_offset: u64,
    /// Stored bytes read (whole batches).
    pub bytes: usize,
}

/// One stored batch as it is on disk, with its codec identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// The whole batch (docs/FORMAT.md), compressed payload included: a slice of the
    /// read's buffer, not a copy.
    pub bytes: bytes::Bytes,
    /// The codec version that wrote the payload; `None` when uncompressed.
    pub codec: Option<CodecIdentity>,
}

/// Stored batches read by `Broker::fetch_raw`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFetchResult {
    /// Batches holding offsets at or after the requested one, in offset order.
    pub batches: Vec<RawBatch>,
    /// Log start offset at the time of the read.
    pub log_start_offset: u64,
    /// Log end offset at the time of the read.
    pub log_end_offset: u64,
    /// Offset to fetch next.
    pub next_offset: u64,
}

/// One stored batch with its records section uncompressed (see `Broker::fetch_plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainBatch {
    /// The stored header (offsets, timestamps, producer fields, attributes).
    pub header: BatchHeader,
    /// The records section, uncompressed: for a batch stored uncompressed a slice of the
    /// read's buffer (no copy); for one stored by a codec plugin, the decoded payload.
    pub records: Bytes,
    /// CRC32C of `records`: derived from the stored CRC for an uncompressed batch (the
    /// payload is not read again), computed over the decoded payload otherwise.
    pub records_crc: u32,
}

/// Batches read by `Broker::fetch_plain`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainFetchResult {
    /// Batches holding offsets at or after the requested one, in offset order.
    pub batches: Vec<PlainBatch>,
    /// Log start offset at the time of the read.
    pub log_start_offset: u64,
    /// Log end offset (the high watermark) at the time of the read.
    pub log_end_offset: u64,
    /// Offset to fetch next.
    pub next_offset: u64,
}

/// Which offset `Broker::list_offset` resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetQuery {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first record with a timestamp at or after this (ms).
    Timestamp(i64),
}

/// Decoded records of `t`/`partition` from `offset` on (see `Broker::fetch`).
pub(crate) fn fetch(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    offset: u64,
    max_bytes: usize,
) -> Result<FetchResult, BrokerError> {
    let p = t.partition(partition)?;
    let log = p.log()?;
    let snapshot = log.snapshot();
    let start = snapshot.log_start_offset();
    let end = snapshot.log_end_offset();
    let fetched = snapshot
        .read(offset, max_bytes)
        .map_err(|e| read_error(&t.name, partition, e))?;
    let mut records = Vec::new();
    // Read once; keys and values below are zero-copy slices of it (or of a batch's
    // decompressed payload). The read CRC-checked every batch.
    let buf = fetched.bytes();
    for view in fetched.batches() {
        let payload = match codec::payload(host, &log, &view)
            .map_err(|e| in_partition(e, &t.name, partition))?
        {
            Cow::Borrowed(stored) => buf.slice_ref(stored),
            Cow::Owned(decoded) => Bytes::from(decoded),
        };
        let iter = RecordIter::new(&payload, view.header())
            .map_err(|e| corrupt(&t.name, partition, &e))?;
        for r in iter {
            let r = r.map_err(|e| corrupt(&t.name, partition, &e))?;
            if r.offset() < offset {
                continue;
            }
            records.push(StoredRecord {
                offset: r.offset(),
                timestamp_ms: r.timestamp(),
                key: r.key().map(|k| payload.slice_ref(k)),
                value: r.value().map(|v| payload.slice_ref(v)),
                headers: r
                    .headers()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.to_vec(),
                    })
                    .collect(),
            });
        }
    }
    Ok(FetchResult {
        records,
        log_start_offset: start,
        log_end_offset: end.max(fetched.high_watermark),
        next_offset: if fetched.batch_count == 0 {
            offset
        } else {
            fetched.next_offset
        },
        bytes: buf.len(),
    })
}

/// Stored batches of `t`/`partition` from `offset` on (see `Broker::fetch_raw`).
pub(crate) fn fetch_raw(
    t: &Topic,
    partition: u32,
    offset: u64,
    max_bytes: usize,
) -> Result<RawFetchResult, BrokerError> {
    let log = t.partition(partition)?.log()?;
    let snapshot = log.snapshot();
    let fetched = snapshot
        .read(offset, max_bytes)
        .map_err(|e| read_error(&t.name, partition, e))?;
    let mut batches = Vec::with_capacity(fetched.batch_count);
    for view in fetched.batches() {
        batches.push(RawBatch {
            base_offset: view.base_offset(),
            last_offset: view.last_offset(),
            bytes: fetched.bytes().slice_ref(view.as_bytes()),
            codec: codec::identity(&log, view.header())
                .map_err(|e| in_partition(e, &t.name, partition))?,
        });
    }
    Ok(RawFetchResult {
        batches,
        log_start_offset: snapshot.log_start_offset(),
        log_end_offset: snapshot.log_end_offset().max(fetched.high_watermark),
        next_offset: if fetched.batch_count == 0 {
            offset
        } else {
            fetched.next_offset
        },
    })
}

/// Stored batches of `t`/`partition` from `offset` on, payloads decoded (see
/// `Broker::fetch_plain`).
pub(crate) fn fetch_plain(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    offset: u64,
    max_bytes: usize,
) -> Result<PlainFetchResult, BrokerError> {
    let log = t.partition(partition)?.log()?;
    let snapshot = log.snapshot();
    let fetched = snapshot
        .read(offset, max_bytes)
        .map_err(|e| read_error(&t.name, partition, e))?;
    let buf = fetched.bytes();
    let mut batches = Vec::with_capacity(fetched.batch_count);
    for view in fetched.batches() {
        let header = *view.header();
        let (records, records_crc) = match codec::payload(host, &log, &view)
            .map_err(|e| in_partition(e, &t.name, partition))?
        {
            Cow::Borrowed(stored) => {
                let crc = payload_crc(&view.as_bytes()[..HEADER_LEN], &header)
                    .map_err(|e| corrupt(&t.name, partition, &e))?;
                (buf.slice_ref(stored), crc)
            }
            Cow::Owned(decoded) => {
                let crc = crc32c::crc32c(&decoded);
                (Bytes::from(decoded), crc)
            }
        };
        batches.push(PlainBatch {
            header,
            records,
            records_crc,
        });
    }
    Ok(PlainFetchResult {
        batches,
        log_start_offset: snapshot.log_start_offset(),
        log_end_offset: snapshot.log_end_offset().max(fetched.high_watermark),
        next_offset: if fetched.batch_count == 0 {
            offset
        } else {
            fetched.next_offset
        },
    })
}

/// A receiver of the partition's log end offset (see `Broker::watch_end`).
pub(crate) fn watch_end(t: &Topic, partition: u32) -> Result<watch::Receiver<u64>, BrokerError> {
    Ok(t.partition(partition)?.end.subscribe())
}

/// Resolves an offset of one partition (see `Broker::list_offset`).
pub(crate) fn list_offset(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    query: OffsetQuery,
) -> Result<(u64, Option<i64>), BrokerError> {
    let p = t.partition(partition)?;
    let log = p.log()?;
    match query {
        OffsetQuery::Earliest => Ok((log.log_start_offset(), None)),
        OffsetQuery::Latest => Ok((log.log_end_offset(), None)),
        OffsetQuery::Timestamp(ts) => {
            let snapshot = log.snapshot();
            let Some(base) = snapshot
                .offset_for_timestamp(ts)
                .map_err(|e| read_error(&t.name, partition, e))?
            else {
                return Ok((snapshot.log_end_offset(), None));
            };
            // The batch's max timestamp is >= ts: find the first such record in it. A
            // batch that does not decode is an error, as it is for a fetch.
            let fetched = snapshot
                .read(base, 1)
                .map_err(|e| read_error(&t.name, partition, e))?;
            if let Some(view) = fetched.batches().next() {
                let payload = codec::payload(host, &log, &view)
                    .map_err(|e| in_partition(e, &t.name, partition))?;
                let iter = RecordIter::new(&payload, view.header())
                    .map_err(|e| corrupt(&t.name, partition, &e))?;
                for r in iter {
                    let r = r.map_err(|e| corrupt(&t.name, partition, &e))?;
                    if r.offset() >= base && r.timestamp() >= ts {
                        return Ok((r.offset(), Some(r.timestamp())));
                    }
                }
            }
            Ok((base, None))
        }
    }
}
