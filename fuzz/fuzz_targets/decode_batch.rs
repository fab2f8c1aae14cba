//! Feeds arbitrary bytes to the batch decoder. Decoding is total: any input must give a batch or
//! a `BatchError`, never a panic, an abort or an allocation larger than the input justifies.
//!
//! Two paths are exercised: the reader's path (`BatchView::parse`, which stops at the CRC) and,
//! so that random inputs reach the record decoder without forging a CRC, the header followed by
//! the payload decoded directly. Whatever decodes must re-encode to a batch that decodes to the
//! same records.
#![no_main]

use distlog_storage::batch::{
    BatchBuilder, BatchView, HEADER_LEN, RecordIter, decode_records, parse_header,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse_header(data)
        && let Some(payload) = data.get(HEADER_LEN..header.total_len())
        && let Ok(records) = decode_records(payload, &header)
    {
        assert_eq!(records.len(), header.record_count() as usize);
        let mut builder = BatchBuilder::new();
        let iter = RecordIter::new(payload, &header).expect("decoded once, iterates again");
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
    if let Ok(view) = BatchView::parse(data)
        && let Ok(records) = view.records()
    {
        for record in records.flatten() {
            let _ = record.headers().count();
        }
    }
});
