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
