//! Feeds arbitrary bytes to the batch decoder. Decoding is total: any input must give a batch or
//! a `BatchError`, never a panic, an abort or an allocation larger than the input justifies.
//!
//! Each input is used twice:
//! - as a whole batch, through the reader's path (`BatchView::parse`: header, CRC, records) and
//!   through the header + payload path that skips the CRC gate;
//! - as `record_count, extra_delta, flags, payload...`: the payload is wrapped in a valid header
//!   with a valid CRC, so random bytes reach the record decoder without forging a CRC.
//!
//! Whatever decodes must re-encode to a batch that decodes to the same records.
#![no_main]

use distlog_storage::batch::{
    BatchBuilder, BatchHeader, BatchMeta, BatchView, Compression, HEADER_LEN, RecordIter,
    TimestampType, decode_records, encode_batch, parse_header,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_bytes(data);
    if let [count, extra, flags, payload @ ..] = data {
        let record_count = u32::from(count % 32) + 1;
        let meta = BatchMeta {
            record_count,
            last_offset_delta: record_count - 1 + u32::from(extra % 4),
            timestamp_type: if flags & 1 == 0 {
                TimestampType::CreateTime
            } else {
                TimestampType::LogAppendTime
            },
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000,
            payload_size: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            ..BatchMeta::default()
        };
        if let Ok(bytes) = encode_batch(&meta, Compression::None, payload) {
            check_bytes(&bytes);
        }
    }
});

fn check_bytes(data: &[u8]) {
    if let Ok(header) = parse_header(data)
        && let Some(payload) = data.get(HEADER_LEN..header.total_len())
    {
        check_payload(payload, &header);
    }
    if let Ok(view) = BatchView::parse(data) {
        let _ = view.validate_records();
        if let Ok(records) = view.records() {
            for record in records.flatten() {
                let _ = record.headers().count();
            }
        }
    }
}

fn check_payload(payload: &[u8], header: &BatchHeader) {
    let Ok(records) = decode_records(payload, header) else {
        return;
    };
    assert_eq!(records.len(), header.record_count() as usize);
    let mut builder = BatchBuilder::new();
    let iter = RecordIter::new(payload, header).expect("decoded once, iterates again");
    for record in iter {
        let record = record.expect("decoded once, decodes again");
        builder
            .push_ref_at(record.offset_delta(), &record)
            .expect("a decoded record re-encodes");
    }
    let bytes = builder.finish().expect("a non-empty batch builds");
    let again = BatchView::parse(&bytes).and_then(|view| view.decode_records());
    assert_eq!(again.as_ref(), Ok(&records));
}
