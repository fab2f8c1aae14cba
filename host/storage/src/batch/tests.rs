//! Unit tests of the batch format: round trips, and one test per error.

use super::*;

fn sample_records() -> Vec<Record> {
    vec![
        Record::new(1_700_000_000_000, "v0").with_key("k0"),
        Record {
            timestamp: 1_699_999_999_000,
            key: Some(b"k1".to_vec()),
            value: None,
            headers: vec![],
        },
        Record::new(1_700_000_000_500, vec![7u8; 300])
            .with_header("trace", "abc")
            .with_header("", ""),
        Record {
            timestamp: 0,
            key: None,
            value: Some(vec![]),
            headers: vec![],
        },
    ]
}

fn build(records: &[Record]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for r in records {
        b.push(r).expect("push");
    }
    b.finish().expect("finish")
}

#[test]
fn builder_round_trips_records_and_header() {
    let records = sample_records();
    let mut bytes = build(&records);
    set_base_offset(&mut bytes, 1000).expect("set base offset");
    let view = BatchView::parse(&bytes).expect("parse");
    let h = view.header();
    assert_eq!(h.base_offset(), 1000);
    assert_eq!(h.last_offset(), 1003);
    assert_eq!(h.record_count(), 4);
    assert_eq!(h.first_timestamp(), 1_700_000_000_000);
    assert_eq!(h.max_timestamp(), 1_700_000_000_500);
    assert_eq!(h.producer_id(), -1);
    assert_eq!(h.compression(), Compression::None);
    assert_eq!(h.total_len(), bytes.len());
    assert_eq!(view.decode_records().expect("decode"), records);
    let offsets: Vec<u64> = view
        .records()
        .expect("records")
        .map(|r| r.expect("record").offset())
        .collect();
    assert_eq!(offsets, [1000, 1001, 1002, 1003]);
}

#[test]
fn builder_records_producer_flags_and_timestamp_type() {
    let mut b = BatchBuilder::new()
        .base_offset(5)
        .leader_epoch(3)
        .producer(42, 7, 100)
        .timestamp_type(TimestampType::LogAppendTime)
        .flags(true, true);
    b.push(&Record::new(10, "a")).expect("push");
    let bytes = b.finish().expect("finish");
    let h = parse_header(&bytes).expect("header");
    assert_eq!(
        (h.base_offset(), h.leader_epoch(), h.producer_id()),
        (5, 3, 42)
    );
    assert_eq!((h.producer_epoch(), h.base_sequence()), (7, 100));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert!(h.is_transactional() && h.is_control());
    assert_eq!(h.attributes().bits(), 0b11_1000);
    assert_eq!(h.magic(), MAGIC);
    assert_eq!(h.crc(), compute_crc(&bytes).expect("crc"));
}

#[test]
fn encode_records_and_encode_batch_match_the_builder() {
    let records = sample_records();
    let built = build(&records);
    let payload = encode_records(&records).expect("encode");
    let mut b = BatchBuilder::new();
    for r in &records {
        b.push(r).expect("push");
    }
    let (meta, builder_payload) = b.payload().expect("payload");
    assert_eq!(builder_payload, payload.as_slice());
    let wrapped = encode_batch(&meta, Compression::None, &payload).expect("encode batch");
    assert_eq!(wrapped, built);
}

/// A stand-in codec: reverses the payload. The batch must carry it untouched and the header
/// must describe the uncompressed records.
#[test]
fn compressed_payload_round_trips_through_a_codec() {
    let records = sample_records();
    let mut b = BatchBuilder::new();
    for r in &records {
        b.push(r).expect("push");
    }
    let (meta, payload) = b.payload().expect("payload");
    let compressed: Vec<u8> = payload.iter().rev().copied().collect();
    let bytes = encode_batch(&meta, Compression::Codec(CodecRef(9)), &compressed).expect("encode");
    let view = BatchView::parse(&bytes).expect("parse");
    let h = *view.header();
    assert_eq!(h.compression(), Compression::Codec(CodecRef(9)));
    assert_eq!(h.codec_ref(), 9);
    assert_eq!(h.payload_size() as usize, payload.len());
    assert_eq!(view.payload(), compressed.as_slice());
    assert_eq!(
        view.records().err(),
        Some(BatchError::Compressed { codec_ref: 9 })
    );
    assert_eq!(
        view.decode_records().err(),
        Some(BatchError::Compressed { codec_ref: 9 })
    );
    let decompressed: Vec<u8> = view.payload().iter().rev().copied().collect();
    assert_eq!(decode_records(&decompressed, &h).expect("decode"), records);
    assert_eq!(
        decode_records(&decompressed[1..], &h).err(),
        Some(BatchError::PayloadSizeMismatch {
            declared: h.payload_size(),
            actual: decompressed.len() - 1
        })
    );
}

#[test]
fn push_at_keeps_gaps_and_rejects_out_of_order_deltas() {
    let mut b = BatchBuilder::new();
    b.push_at(2, &Record::new(1, "a")).expect("push");
    b.push_at(7, &Record::new(2, "b")).expect("push");
    assert!(matches!(
        b.push_at(7, &Record::new(3, "c")),
        Err(BatchError::BadOffsetDelta { delta: 7, .. })
    ));
    b.push(&Record::new(3, "c")).expect("push next");
    let bytes = b.finish().expect("finish");
    let view = BatchView::parse(&bytes).expect("parse");
    assert_eq!(view.header().last_offset_delta(), 8);
    let deltas: Vec<u32> = view
        .records()
        .expect("records")
        .map(|r| r.expect("record").offset_delta())
        .collect();
    assert_eq!(deltas, [2, 7, 8]);
}

#[test]
fn push_ref_at_copies_a_decoded_record() {
    let records = sample_records();
    let bytes = build(&records);
    let view = BatchView::parse(&bytes).expect("parse");
    let mut b = BatchBuilder::new();
    for r in view.records().expect("records") {
        let r = r.expect("record");
        if r.offset_delta() % 2 == 0 {
            b.push_ref_at(r.offset_delta(), &r).expect("push ref");
        }
    }
    let compacted = b.finish().expect("finish");
    let view = BatchView::parse(&compacted).expect("parse compacted");
    assert_eq!(
        view.decode_records().expect("decode"),
        [records[0].clone(), records[2].clone()]
    );
}

#[test]
fn extreme_timestamps_round_trip() {
    let records = [
        Record::new(i64::MAX, "a"),
        Record::new(i64::MIN, "b"),
        Record::new(0, "c"),
    ];
    let bytes = build(&records);
    let view = BatchView::parse(&bytes).expect("parse");
    assert_eq!(view.header().max_timestamp(), i64::MAX);
    assert_eq!(view.decode_records().expect("decode"), records);
}

#[test]
fn builder_is_reusable_after_clear() {
    let mut b = BatchBuilder::with_capacity(4096);
    b.push(&Record::new(1, "first")).expect("push");
    let first = b.build().expect("build").to_vec();
    b.clear();
    assert!(b.is_empty());
    assert_eq!(b.build().err(), Some(BatchError::EmptyBatch));
    b.push(&Record::new(2, "second")).expect("push");
    let second = b.build().expect("build").to_vec();
    assert_ne!(first, second);
    assert_eq!(
        BatchView::parse(&second)
            .expect("parse")
            .decode_records()
            .expect("decode"),
        [Record::new(2, "second")]
    );
}

#[test]
fn builder_refuses_to_exceed_its_limit_and_stays_usable() {
    let limits = BatchLimits {
        max_batch_length: 200,
        ..BatchLimits::default()
    };
    let mut b = BatchBuilder::new().limits(limits);
    b.push(&Record::new(1, vec![0u8; 50])).expect("push");
    let before = b.encoded_len();
    assert!(matches!(
        b.push(&Record::new(1, vec![0u8; 200])),
        Err(BatchError::TooLarge {
            what: "batch length",
            ..
        })
    ));
    assert_eq!(b.encoded_len(), before);
    assert_eq!(b.finish().map(|v| v.len()), Ok(before));
}

#[test]
fn encode_batch_rejects_empty_and_inconsistent_meta() {
    let payload = encode_records(&sample_records()).expect("encode");
    let meta = BatchMeta {
        record_count: 4,
        last_offset_delta: 3,
        payload_size: payload.len() as u32,
        ..BatchMeta::default()
    };
    assert!(encode_batch(&meta, Compression::None, &payload).is_ok());
    let empty = BatchMeta {
        record_count: 0,
        ..meta
    };
    assert_eq!(
        encode_batch(&empty, Compression::None, &payload).err(),
        Some(BatchError::EmptyBatch)
    );
    let wrong_size = BatchMeta {
        payload_size: 1,
        ..meta
    };
    assert!(matches!(
        encode_batch(&wrong_size, Compression::None, &payload),
        Err(BatchError::PayloadSizeMismatch { .. })
    ));
    let mut out = vec![1, 2, 3];
    let bad_delta = BatchMeta {
        last_offset_delta: 1,
        ..meta
    };
    assert!(matches!(
        encode_batch_into(&mut out, &bad_delta, Compression::None, &payload),
        Err(BatchError::BadLastOffsetDelta { .. })
    ));
    assert_eq!(
        out,
        [1, 2, 3],
        "a failed encode leaves the buffer as it was"
    );
}

#[test]
fn set_base_offset_patches_in_place_without_breaking_the_crc() {
    let mut bytes = build(&sample_records());
    let crc = parse_header(&bytes).expect("header").crc();
    set_base_offset(&mut bytes, u64::MAX - 3).expect("patch");
    set_leader_epoch(&mut bytes, 77).expect("patch epoch");
    let view = BatchView::parse(&bytes).expect("parse");
    assert_eq!(view.header().crc(), crc);
    assert_eq!(view.last_offset(), u64::MAX);
    assert_eq!(view.header().leader_epoch(), 77);
    assert_eq!(
        set_base_offset(&mut [0u8; 7], 1),
        Err(BatchError::Truncated { needed: 8, have: 7 })
    );
}

#[test]
fn parse_ignores_bytes_after_the_batch() {
    let first = build(&sample_records());
    let second = build(&[Record::new(1, "x")]);
    let log = [first.as_slice(), second.as_slice()].concat();
    let a = BatchView::parse(&log).expect("first");
    assert_eq!(a.as_bytes(), first.as_slice());
    let b = BatchView::parse(&log[a.total_len()..]).expect("second");
    assert_eq!(b.as_bytes(), second.as_slice());
}

#[test]
fn log_append_time_is_stamped_and_resealed() {
    let mut bytes = build(&sample_records());
    set_log_append_time(&mut bytes, 1_800_000_000_000).expect("stamp");
    let view = BatchView::parse(&bytes).expect("parse");
    assert_eq!(view.header().timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(view.header().max_timestamp(), 1_800_000_000_000);
    let stamped: Vec<Record> = sample_records()
        .into_iter()
        .map(|r| Record {
            timestamp: 1_800_000_000_000,
            ..r
        })
        .collect();
    assert_eq!(view.decode_records().expect("decode"), stamped);
    // A corrupt batch is not re-sealed as valid.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(
        set_log_append_time(&mut bytes, 1),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn validate_records_walks_uncompressed_records_only() {
    let bytes = build(&sample_records());
    assert_eq!(
        BatchView::parse(&bytes).expect("parse").validate_records(),
        Ok(())
    );
    let bad = batch_with_payload(&record(&body(4, 0)), 1, 0);
    assert!(matches!(
        BatchView::parse(&bad).expect("parse").validate_records(),
        Err(BatchError::BadRecordAttributes { .. })
    ));
    let meta = BatchMeta {
        record_count: 1,
        payload_size: 100,
        ..BatchMeta::default()
    };
    let compressed =
        encode_batch(&meta, Compression::Codec(CodecRef(0)), b"opaque").expect("encode");
    assert_eq!(
        BatchView::parse(&compressed)
            .expect("parse")
            .validate_records(),
        Ok(())
    );
}

/// Compaction: rebuild a batch like another, dropping its last record, keeping its offsets,
/// producer identity and flags.
#[test]
fn a_batch_rebuilt_from_its_meta_keeps_its_offset_range() {
    let mut original = BatchBuilder::new()
        .producer(9, 2, 40)
        .timestamp_type(TimestampType::LogAppendTime);
    for r in sample_records() {
        original.push(&r).expect("push");
    }
    let mut bytes = original.finish().expect("finish");
    set_base_offset(&mut bytes, 500).expect("patch");
    let view = BatchView::parse(&bytes).expect("parse");
    let h = view.header();

    let mut b = BatchBuilder::new().meta(&h.meta());
    for r in view.records().expect("records") {
        let r = r.expect("record");
        if r.offset_delta() != 3 {
            b.push_ref_at(r.offset_delta(), &r).expect("push");
        }
    }
    assert!(matches!(
        b.set_last_offset_delta(1),
        Err(BatchError::BadLastOffsetDelta { .. })
    ));
    b.set_last_offset_delta(h.last_offset_delta())
        .expect("keep range");
    let rebuilt = b.finish().expect("finish");
    let rv = BatchView::parse(&rebuilt).expect("parse rebuilt");
    let rh = rv.header();
    assert_eq!((rh.base_offset(), rh.last_offset()), (500, 503));
    assert_eq!(rh.record_count(), 3);
    assert_eq!(
        (rh.producer_id(), rh.producer_epoch(), rh.base_sequence()),
        (9, 2, 40)
    );
    assert_eq!(rh.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(rh.max_timestamp(), h.max_timestamp());
    let kept: Vec<Record> = sample_records()[..3]
        .iter()
        .map(|r| Record {
            timestamp: h.max_timestamp(),
            ..r.clone()
        })
        .collect();
    assert_eq!(rv.decode_records().expect("decode"), kept);
}

#[test]
fn reset_keeps_the_producer_and_clear_forgets_it() {
    let mut b = BatchBuilder::new().producer(1, 1, 1).base_offset(10);
    b.push(&Record::new(1, "a")).expect("push");
    b.reset();
    b.push(&Record::new(2, "b")).expect("push");
    let h = parse_header(b.build().expect("build")).expect("header");
    assert_eq!(
        (h.producer_id(), h.base_offset(), h.record_count()),
        (1, 10, 1)
    );
    b.clear();
    assert_eq!(b.set_last_offset_delta(3), Err(BatchError::EmptyBatch));
    b.push(&Record::new(3, "c")).expect("push");
    let h = parse_header(b.build().expect("build")).expect("header");
    assert_eq!((h.producer_id(), h.base_offset()), (-1, 0));
}

// ---- Header errors -------------------------------------------------------------------------

/// A valid single-record batch to corrupt.
fn valid() -> Vec<u8> {
    build(&[Record::new(1_000, "value").with_key("key")])
}

/// Overwrites header bytes `at..` and re-seals the CRC, so only the intended error can fire.
fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = valid();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    reseal(&mut b);
    b
}

fn reseal(b: &mut [u8]) {
    let crc = compute_crc(b).expect("crc");
    b[17..21].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn short_input_is_truncated() {
    let b = valid();
    assert_eq!(
        parse_header(&b[..66]),
        Err(BatchError::Truncated {
            needed: 67,
            have: 66
        })
    );
    assert_eq!(
        parse_header(&[]),
        Err(BatchError::Truncated {
            needed: 67,
            have: 0
        })
    );
    assert_eq!(
        BatchView::parse(&b[..b.len() - 1]).err(),
        Some(BatchError::Truncated {
            needed: b.len(),
            have: b.len() - 1
        })
    );
}

#[test]
fn wrong_magic_is_reported_even_on_a_short_buffer() {
    let b = patched(16, &[2]);
    assert_eq!(parse_header(&b), Err(BatchError::BadMagic(2)));
    assert_eq!(parse_header(&b[..20]), Err(BatchError::BadMagic(2)));
}

#[test]
fn bad_batch_lengths_are_rejected() {
    let mut b = valid();
    b[8..12].copy_from_slice(&54u32.to_le_bytes());
    assert_eq!(
        parse_header(&b),
        Err(BatchError::BatchLengthTooSmall { batch_length: 54 })
    );
    let mut b = valid();
    b[8..12].copy_from_slice(&(DEFAULT_MAX_BATCH_LENGTH + 1).to_le_bytes());
    assert!(matches!(
        parse_header(&b),
        Err(BatchError::TooLarge {
            what: "batch length",
            ..
        })
    ));
    assert!(matches!(
        parse_header_with_limits(
            &valid(),
            &BatchLimits {
                max_batch_length: 60,
                ..BatchLimits::default()
            }
        ),
        Err(BatchError::TooLarge { max: 60, .. })
    ));
}

#[test]
fn crc_mismatch_is_reported_with_both_values() {
    let mut b = valid();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    let stored = parse_header(&b).expect("header").crc();
    let computed = compute_crc(&b).expect("crc");
    assert_eq!(
        BatchView::parse(&b).err(),
        Some(BatchError::CrcMismatch { stored, computed })
    );
    assert_eq!(
        verify_crc(&b),
        Err(BatchError::CrcMismatch { stored, computed })
    );
}

#[test]
fn reserved_attribute_bits_and_compression_values_are_rejected() {
    for bits in [0b100u16, 0b10, 0b11, 1 << 6, 1 << 15] {
        let b = patched(21, &bits.to_le_bytes());
        assert_eq!(parse_header(&b), Err(BatchError::BadAttributes(bits)));
    }
    assert_eq!(
        Attributes::from_bits(0b11_1001).map(|a| a.bits()),
        Ok(0b11_1001)
    );
}

#[test]
fn uncompressed_batch_with_a_codec_ref_is_rejected() {
    let b = patched(23, &5u16.to_le_bytes());
    assert_eq!(parse_header(&b), Err(BatchError::UnexpectedCodecRef(5)));
}

#[test]
fn record_count_and_last_offset_delta_are_checked() {
    assert_eq!(
        parse_header(&patched(59, &0u32.to_le_bytes())),
        Err(BatchError::NoRecords)
    );
    // Two records need a last offset delta of at least one.
    let b = patched(59, &2u32.to_le_bytes());
    assert_eq!(
        parse_header(&b),
        Err(BatchError::BadLastOffsetDelta {
            last_offset_delta: 0,
            record_count: 2
        })
    );
    let b = patched(25, &(i32::MAX as u32 + 1).to_le_bytes());
    assert!(matches!(
        parse_header(&b),
        Err(BatchError::BadLastOffsetDelta { .. })
    ));
    // More records than the payload can hold.
    let mut b = patched(25, &1000u32.to_le_bytes());
    b[59..63].copy_from_slice(&1000u32.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        parse_header(&b),
        Err(BatchError::TooManyRecords {
            record_count: 1000,
            ..
        })
    ));
}

#[test]
fn offset_overflow_is_rejected() {
    let mut b = build(&[Record::new(1, "a"), Record::new(2, "b")]);
    set_base_offset(&mut b, u64::MAX).expect("patch");
    assert_eq!(
        parse_header(&b),
        Err(BatchError::OffsetOverflow {
            base_offset: u64::MAX,
            last_offset_delta: 1
        })
    );
}

#[test]
fn payload_size_must_match_an_uncompressed_payload() {
    let b = valid();
    let size = parse_header(&b).expect("header").payload_size();
    let b = patched(63, &(size + 1).to_le_bytes());
    assert_eq!(
        parse_header(&b),
        Err(BatchError::PayloadSizeMismatch {
            declared: size + 1,
            actual: size as usize
        })
    );
    let mut b = patched(21, &1u16.to_le_bytes());
    b[63..67].copy_from_slice(&(DEFAULT_MAX_PAYLOAD_SIZE + 1).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        parse_header(&b),
        Err(BatchError::TooLarge {
            what: "payload size",
            ..
        })
    ));
}

// ---- Record errors ------------------------------------------------------------------------

/// Builds a batch around a hand-written payload with a matching, valid header.
fn batch_with_payload(payload: &[u8], record_count: u32, last_offset_delta: u32) -> Vec<u8> {
    let meta = BatchMeta {
        record_count,
        last_offset_delta,
        payload_size: payload.len() as u32,
        ..BatchMeta::default()
    };
    encode_batch(&meta, Compression::None, payload).expect("encode")
}

fn decode(bytes: &[u8]) -> Result<Vec<Record>, BatchError> {
    BatchView::parse(bytes)?.decode_records()
}

/// Record body fields (after the length), for a record with a 1-byte key and value.
fn body(attributes: u8, offset_delta: i8) -> Vec<u8> {
    let zigzag = ((offset_delta << 1) ^ (offset_delta >> 7)) as u8;
    // attributes, ts delta 0, offset delta, key len 1 "k", value len 1 "v", 0 headers
    vec![attributes, 0, zigzag, 2, b'k', 2, b'v', 0]
}

fn record(body: &[u8]) -> Vec<u8> {
    let mut r = vec![(body.len() as u8) << 1];
    r.extend_from_slice(body);
    r
}

#[test]
fn hand_written_payload_decodes() {
    let bytes = batch_with_payload(&record(&body(0, 0)), 1, 0);
    assert_eq!(
        decode(&bytes),
        Ok(vec![Record {
            timestamp: 0,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![]
        }])
    );
}

#[test]
fn fewer_records_than_declared_is_a_count_mismatch() {
    let mut payload = record(&body(0, 0));
    // A long second record, so the payload is large enough for three records.
    let mut long = body(0, 1);
    long.truncate(5);
    long.extend_from_slice(&[
        40, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 0,
    ]);
    payload.extend_from_slice(&record(&long));
    let bytes = batch_with_payload(&payload, 3, 2);
    assert_eq!(
        decode(&bytes),
        Err(BatchError::RecordCountMismatch {
            declared: 3,
            found: 2
        })
    );
}

#[test]
fn bytes_after_the_last_record_are_trailing() {
    let mut payload = record(&body(0, 0));
    payload.extend_from_slice(&[0; 7]);
    let bytes = batch_with_payload(&payload, 1, 0);
    assert_eq!(decode(&bytes), Err(BatchError::TrailingBytes { count: 7 }));
}

#[test]
fn offset_deltas_must_increase_and_stay_within_the_last_delta() {
    let payload = [record(&body(0, 1)), record(&body(0, 1))].concat();
    assert!(matches!(
        decode(&batch_with_payload(&payload, 2, 1)),
        Err(BatchError::BadOffsetDelta {
            delta: 1,
            previous: Some(1),
            ..
        })
    ));
    let payload = [record(&body(0, 2)), vec![0; 7]].concat(); // 2 > last offset delta 1
    assert!(matches!(
        decode(&batch_with_payload(&payload, 1, 1)),
        Err(BatchError::BadOffsetDelta { delta: 2, .. })
    ));
    let payload = record(&body(0, -1));
    assert!(matches!(
        decode(&batch_with_payload(&payload, 1, 0)),
        Err(BatchError::BadOffsetDelta { delta: -1, .. })
    ));
}

#[test]
fn record_attributes_must_be_zero() {
    let bytes = batch_with_payload(&record(&body(4, 0)), 1, 0);
    assert_eq!(
        decode(&bytes),
        Err(BatchError::BadRecordAttributes {
            attributes: 4,
            at: 1
        })
    );
}

#[test]
fn overlong_varint_is_an_overflow() {
    // Record length varint with six continuation bytes.
    let payload = [0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0];
    let bytes = batch_with_payload(&payload, 1, 0);
    assert_eq!(decode(&bytes), Err(BatchError::VarintOverflow { at: 0 }));
}

#[test]
fn lengths_beyond_the_bytes_left_are_invalid_not_allocated() {
    // Key length i32::MAX in a 10-byte record.
    let mut b = vec![0u8, 0, 0];
    b.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]); // zigzag(i32::MAX)
    b.extend_from_slice(&[0, 0]);
    let bytes = batch_with_payload(&record(&b), 1, 0);
    assert!(matches!(
        decode(&bytes),
        Err(BatchError::InvalidLength {
            field: "key",
            len: 2_147_483_647,
            ..
        })
    ));
    // Key length -2.
    let bytes = batch_with_payload(&record(&[0, 0, 0, 3, 0, 0, 0]), 1, 0);
    assert!(matches!(
        decode(&bytes),
        Err(BatchError::InvalidLength {
            field: "key",
            len: -2,
            ..
        })
    ));
    // Record length larger than the payload.
    let bytes = batch_with_payload(&[100, 0, 0, 0, 0, 0, 0], 1, 0);
    assert!(matches!(
        decode(&bytes),
        Err(BatchError::InvalidLength {
            field: "record",
            len: 50,
            ..
        })
    ));
    // Header count larger than the bytes could hold.
    let bytes = batch_with_payload(&record(&[0, 0, 0, 1, 1, 0x7e, 0]), 1, 0);
    assert!(matches!(
        decode(&bytes),
        Err(BatchError::InvalidLength {
            field: "header count",
            len: 63,
            ..
        })
    ));
}

#[test]
fn record_length_must_match_its_fields() {
    let mut b = body(0, 0);
    b.push(0); // one unused byte inside the record
    let bytes = batch_with_payload(&record(&b), 1, 0);
    assert_eq!(
        decode(&bytes),
        Err(BatchError::RecordLengthMismatch {
            at: 0,
            declared: 9,
            used: 8
        })
    );
}

#[test]
fn header_keys_must_be_utf8() {
    // One header: key [0xff], value [].
    let b = [0, 0, 0, 1, 1, 2, 2, 0xff, 0];
    let bytes = batch_with_payload(&record(&b), 1, 0);
    assert_eq!(decode(&bytes), Err(BatchError::InvalidUtf8Header { at: 7 }));
}

#[test]
fn record_iterator_stops_after_the_first_error() {
    let bytes = batch_with_payload(&record(&body(4, 0)), 1, 0);
    let view = BatchView::parse(&bytes).expect("parse");
    let mut it = view.records().expect("records");
    assert!(matches!(it.next(), Some(Err(_))));
    assert!(it.next().is_none());
}

#[test]
fn errors_display_a_message() {
    let e = BatchError::CrcMismatch {
        stored: 1,
        computed: 2,
    };
    assert_eq!(
        e.to_string(),
        "crc mismatch: stored 0x00000001, computed 0x00000002"
    );
    assert_eq!(
        BatchError::BadMagic(9).to_string(),
        "bad magic byte 9 (expected 1)"
    );
}

// ---- Properties ---------------------------------------------------------------------------

/// Bounded property tests: random records round-trip exactly; arbitrary bytes, single-byte
/// flips and truncations never panic and never pass for a valid batch (except flips in the two
/// fields outside the CRC). The cargo-fuzz target in fuzz/ runs the same decoder unbounded.
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        let timestamp = prop_oneof![1_600_000_000_000i64..1_800_000_000_000, any::<i64>(),];
        let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
        let header = ("\\PC{0,8}", bytes(16)).prop_map(|(key, value)| Header { key, value });
        (
            timestamp,
            proptest::option::of(bytes(32)),
            proptest::option::of(bytes(200)),
            proptest::collection::vec(header, 0..3),
        )
            .prop_map(|(timestamp, key, value, headers)| Record {
                timestamp,
                key,
                value,
                headers,
            })
    }

    fn records() -> impl Strategy<Value = Vec<Record>> {
        proptest::collection::vec(record(), 1..16)
    }

    /// Decodes `bytes` the way a reader would, and also (skipping the CRC gate) the payload
    /// behind any header that parses, so corrupt payloads reach the record decoder.
    fn decode_everything(bytes: &[u8]) -> Result<Vec<Record>, BatchError> {
        if let Ok(h) = parse_header(bytes)
            && let Some(payload) = bytes.get(HEADER_LEN..h.total_len())
        {
            let _ = decode_records(payload, &h);
            if let Ok(iter) = RecordIter::new(payload, &h) {
                for r in iter.flatten() {
                    let _ = r.headers().count();
                }
            }
        }
        BatchView::parse(bytes)?.decode_records()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn records_round_trip_exactly(records in records(), base in 0u64..1 << 60) {
            let mut b = BatchBuilder::new();
            for r in &records {
                b.push(r)?;
            }
            let mut bytes = b.finish()?;
            set_base_offset(&mut bytes, base)?;
            let view = BatchView::parse(&bytes)?;
            prop_assert_eq!(view.total_len(), bytes.len());
            prop_assert_eq!(view.header().record_count() as usize, records.len());
            prop_assert_eq!(view.last_offset(), base + records.len() as u64 - 1);
            let max = records.iter().map(|r| r.timestamp).max();
            prop_assert_eq!(Some(view.header().max_timestamp()), max);
            prop_assert_eq!(&view.decode_records()?, &records);
            // The two-step path (for codecs) gives the same bytes.
            let payload = encode_records(&records)?;
            prop_assert_eq!(view.payload(), payload.as_slice());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_everything(&bytes);
        }

        #[test]
        fn arbitrary_bytes_behind_a_plausible_header_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 7..300),
            record_count in 1u32..8,
            extra_delta in 0u32..4,
        ) {
            // A valid header over random records bytes: exercises the record decoder.
            let meta = BatchMeta {
                record_count,
                last_offset_delta: record_count - 1 + extra_delta,
                payload_size: payload.len() as u32,
                ..BatchMeta::default()
            };
            if let Ok(bytes) = encode_batch(&meta, Compression::None, &payload) {
                let _ = decode_everything(&bytes);
            }
        }

        #[test]
        fn single_byte_flips_are_caught(
            records in records(),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..,
        ) {
            let mut bytes = build(&records);
            let at = pos.index(bytes.len());
            bytes[at] ^= mask;
            let outside_crc = (0..8).contains(&at) || (12..16).contains(&at);
            match decode_everything(&bytes) {
                Ok(decoded) => {
                    prop_assert!(outside_crc, "flip at {} went unnoticed", at);
                    prop_assert_eq!(decoded, records);
                }
                Err(e) => prop_assert!(
                    !outside_crc || matches!(e, BatchError::OffsetOverflow { .. }),
                    "flip at {} outside the CRC failed with {}", at, e
                ),
            }
        }

        #[test]
        fn resealed_flips_never_panic(
            records in records(),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..,
        ) {
            // Corrupt the payload and fix the CRC, as a buggy writer would: the record decoder
            // must still fail cleanly or return records.
            let mut bytes = build(&records);
            let at = HEADER_LEN + pos.index(bytes.len() - HEADER_LEN);
            bytes[at] ^= mask;
            reseal(&mut bytes);
            let _ = decode_everything(&bytes);
        }

        #[test]
        fn truncations_are_errors(records in records(), pos in any::<prop::sample::Index>()) {
            let bytes = build(&records);
            let cut = pos.index(bytes.len());
            let result = decode_everything(&bytes[..cut]);
            prop_assert!(
                matches!(result, Err(BatchError::Truncated { .. })),
                "cut at {}: {:?}", cut, result
            );
        }
    }
}

#[test]
fn payload_crc_is_derived_from_the_stored_crc() {
    for n in [1usize, 2, 17, 300] {
        let records: Vec<Record> = (0..n)
            .map(|i| Record::new(i as i64, vec![i as u8; i * 7 % 50]).with_key(vec![1, 2, 3]))
            .collect();
        let mut builder = BatchBuilder::new();
        for r in &records {
            builder.push(r).unwrap();
        }
        let batch = builder.finish().unwrap();
        let header = parse_header(&batch).unwrap();
        let derived = payload_crc(&batch[..HEADER_LEN], &header).unwrap();
        assert_eq!(derived, crc32c::crc32c(&batch[HEADER_LEN..]), "{n} records");
    }
}

#[test]
fn a_records_section_encoded_elsewhere_rebuilds_the_same_batch() {
    let mut builder = BatchBuilder::new().producer(7, 1, 40);
    for i in 0..5i64 {
        builder
            .push(&Record::new(1_000 + (i * 37) % 100, vec![i as u8; 10]).with_header("h", "v"))
            .unwrap();
    }
    let original = builder.finish().unwrap();
    let header = parse_header(&original).unwrap();
    let rebuilt = BatchBuilder::from_records(
        &header.meta(),
        &original[HEADER_LEN..],
        BatchLimits::default(),
    )
    .unwrap()
    .finish()
    .unwrap();
    assert_eq!(rebuilt, original);
    // A section whose count disagrees, or that is cut short, is refused.
    let mut wrong = header.meta();
    wrong.record_count = 6;
    assert!(
        BatchBuilder::from_records(&wrong, &original[HEADER_LEN..], BatchLimits::default())
            .is_err()
    );
    assert!(
        BatchBuilder::from_records(
            &header.meta(),
            &original[HEADER_LEN..original.len() - 1],
            BatchLimits::default()
        )
        .is_err()
    );
}
