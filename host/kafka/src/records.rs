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

#[cfg(test)]
mod tests {
    //! A Kafka client's batch, stored through the broker and fetched back, decodes (CRC
    //! included) to the same records under kafka-protocol's own decoder.
    use super::*;
    use distlog_broker::{Broker, BrokerConfig};
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use proptest::prelude::*;

    type Case = Vec<(Option<Vec<u8>>, Option<Vec<u8>>, Vec<Vec<u8>>, i64)>;

    fn kafka_batch(case: &Case, producer_id: i64, base_sequence: i32) -> Bytes {
        let records: Vec<Record> = case
            .iter()
            .enumerate()
            .map(|(i, (key, value, headers, ts))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: if producer_id < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if producer_id < 0 {
                    -1
                } else {
                    base_sequence + i as i32
                },
                timestamp: *ts,
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: headers
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        (
                            StrBytes::from_string(format!("h{j}")),
                            Some(Bytes::from(v.clone())),
                        )
                    })
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    fn broker() -> (tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        config.plugins.enabled = false;
        let broker = Broker::open(config).unwrap();
        broker.create_topic("t", 1, Default::default()).unwrap();
        (dir, broker)
    }

    fn fetch_all(broker: &Broker, from: u64) -> Vec<Record> {
        let fetched = broker.fetch_plain("t", 0, from, 1 << 20).unwrap();
        let mut chunks = Vec::new();
        from_stored(&fetched.batches, &mut chunks);
        let mut wire = BytesMut::new();
        for c in chunks {
            wire.extend_from_slice(&c);
        }
        let mut wire = wire.freeze();
        RecordBatchDecoder::decode_all(&mut wire)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect()
    }

    fn case() -> impl Strategy<Value = Case> {
        proptest::collection::vec(
            (
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..10), 0..3),
                0i64..4_000_000_000_000,
            ),
            1..20,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn kafka_batches_come_back_as_sent(case in case()) {
            let (_dir, broker) = broker();
            let batch = kafka_batch(&case, -1, -1);
            let encoded = to_encoded(&batch, 1 << 20).unwrap();
            let (appended, pending) = broker.produce_batches("t", 0, encoded).unwrap();
            pending.wait().unwrap();
            prop_assert_eq!(appended.base_offset, 0);
            let back = fetch_all(&broker, 0);
            prop_assert_eq!(back.len(), case.len());
            for (i, (r, (key, value, headers, ts))) in back.iter().zip(&case).enumerate() {
                prop_assert_eq!(r.offset, i as i64);
                prop_assert_eq!(r.timestamp, *ts);
                prop_assert_eq!(r.key.as_deref(), key.as_deref());
                prop_assert_eq!(r.value.as_deref(), value.as_deref());
                let got: Vec<Vec<u8>> =
                    r.headers.values().map(|v| v.clone().unwrap().to_vec()).collect();
                prop_assert_eq!(&got, headers);
            }
        }
    }

    #[test]
    fn an_idempotent_retry_is_answered_with_the_original_offsets() {
        let (_dir, broker) = broker();
        let one: Case = vec![(None, Some(b"a".to_vec()), vec![], 1)];
        let first = kafka_batch(&one, 7, 0);
        let produce = |b: &Bytes| {
            broker
                .produce_batches("t", 0, to_encoded(b, 1 << 20).unwrap())
                .map(|(a, p)| {
                    p.wait().unwrap();
                    a.base_offset
                })
        };
        assert_eq!(produce(&first).unwrap(), 0);
        assert_eq!(produce(&kafka_batch(&one, 7, 1)).unwrap(), 1);
        // The retry of the first batch is not stored again.
        assert_eq!(produce(&first).unwrap(), 0);
        assert_eq!(fetch_all(&broker, 0).len(), 2);
        // A gap in the sequence is refused.
        let gap = produce(&kafka_batch(&one, 7, 5)).unwrap_err();
        assert_eq!(
            crate::error::code(&gap),
            kafka_protocol::ResponseError::OutOfOrderSequenceNumber
        );
    }

    #[test]
    fn damaged_batches_are_refused_with_precise_codes() {
        let one: Case = vec![(None, Some(b"abc".to_vec()), vec![], 1)];
        let good = kafka_batch(&one, -1, -1);
        let mut crc = good.to_vec();
        let last = crc.len() - 1;
        crc[last] ^= 1;
        let err = to_encoded(&Bytes::from(crc), 1 << 20).unwrap_err();
        assert_eq!(err.code(), kafka_protocol::ResponseError::CorruptMessage);
        let mut magic = good.to_vec();
        magic[16] = 1;
        let err = to_encoded(&Bytes::from(magic), 1 << 20).unwrap_err();
        assert_eq!(
            err.code(),
            kafka_protocol::ResponseError::UnsupportedForMessageFormat
        );
        let err = to_encoded(&good.slice(..good.len() - 1), 1 << 20).unwrap_err();
        assert_eq!(err.code(), kafka_protocol::ResponseError::CorruptMessage);
        assert!(to_encoded(&Bytes::new(), 1 << 20).is_err());
    }
}
