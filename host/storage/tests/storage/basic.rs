//! Append, read, roll, timestamps, segments and the codec table on a healthy log.

use super::common::*;
use distlog_storage::io::FsStorage;
use distlog_storage::io::Storage;
use distlog_storage::{AppendError, LogConfig, ReadError, SyncPolicy};
use std::sync::Arc;

#[test]
fn append_assigns_consecutive_offsets_and_reads_back() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let mut expected = Vec::new();
    for i in 0..50u32 {
        let mut b = batch(1 + i % 4, 1000 + i64::from(i), 40, u64::from(i));
        let info = log.append(&mut b).unwrap();
        assert_eq!(
            info.base_offset,
            expected
                .last()
                .map_or(0, |(_, l, _): &(u64, u64, Vec<u8>)| l + 1)
        );
        assert_eq!(info.last_offset, info.base_offset + u64::from(i % 4));
        expected.push((info.base_offset, info.last_offset, b));
    }
    assert!(log.segments().len() > 1, "4 KiB segments must have rolled");
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
    assert_eq!(read_all(&log), expected);
    // Reading from an offset inside a batch returns that whole batch first.
    let (base, last, bytes) = &expected[10];
    assert!(last > base);
    let f = log.read(base + 1, 1).unwrap();
    assert_eq!(
        f.batch_count, 1,
        "at least one whole batch even beyond max_bytes"
    );
    assert_eq!(f.bytes().as_ref(), bytes);
    assert_eq!(f.next_offset, last + 1);
}

#[test]
fn read_out_of_range_names_the_valid_range() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    log.append(&mut batch(3, 1, 10, 0)).unwrap();
    match log.read(4, 100) {
        Err(ReadError::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => {
            assert_eq!((requested, start, end), (4, 0, 3));
        }
        other => panic!("expected out of range, got {other:?}"),
    }
    let at_end = log.read(3, 100).unwrap();
    assert_eq!((at_end.batch_count, at_end.next_offset), (0, 3));
}

#[test]
fn reopen_on_real_files_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::create(dir.path()).unwrap());
    let mut config = small_config();
    config.sync = SyncPolicy::EveryBatch;
    let log = open(&s, &config);
    let mut expected = Vec::new();
    for i in 0..40u32 {
        let mut b = batch(2, i64::from(i) * 10, 100, u64::from(i));
        let info = log.append(&mut b).unwrap();
        expected.push((info.base_offset, info.last_offset, b));
    }
    log.close().unwrap();
    assert!(matches!(
        log.append(&mut batch(1, 0, 1, 0)),
        Err(AppendError::Closed)
    ));
    drop(log);
    let log = open(&s, &config);
    assert_eq!(read_all(&log), expected);
    let info = log.append(&mut batch(1, 5000, 10, 9)).unwrap();
    assert_eq!(info.base_offset, 80);
    // Names are 20-digit base offsets.
    let names = s.list().unwrap();
    assert!(names.iter().any(|n| n == "00000000000000000000.log"));
    assert!(names.iter().any(|n| n == "00000000000000000000.timeindex"));
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let mut bases = Vec::new();
    for i in 0..100i64 {
        let info = log.append(&mut batch(2, i * 100, 30, 0)).unwrap();
        bases.push(info.base_offset);
    }
    assert_eq!(log.offset_for_timestamp(-5).unwrap(), Some(0));
    // Batch i has timestamps i*100 and i*100+1.
    assert_eq!(log.offset_for_timestamp(4201).unwrap(), Some(bases[42]));
    assert_eq!(log.offset_for_timestamp(4202).unwrap(), Some(bases[43]));
    assert_eq!(log.offset_for_timestamp(99 * 100 + 2).unwrap(), None);
}

#[test]
fn segments_describe_the_log_and_delete_advances_start() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    for i in 0..60i64 {
        log.append(&mut batch(1, i, 100, 0)).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 3);
    assert!(segs.last().unwrap().active);
    assert!(segs[..segs.len() - 1].iter().all(|s| !s.active));
    for w in segs.windows(2) {
        assert_eq!(w[0].last_offset + 1, w[1].base_offset);
    }
    assert_eq!(segs.iter().map(|s| s.record_count).sum::<u64>(), 60);
    assert_eq!(segs[0].first_timestamp, 0);
    let active = segs.last().unwrap().base_offset;
    assert!(log.delete_segments(&[active]).is_err());
    let deleted = log
        .delete_segments(&[segs[0].base_offset, segs[1].base_offset])
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(log.log_start_offset(), segs[2].base_offset);
    assert!(matches!(
        log.read(0, 10),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    let f = log.read(segs[2].base_offset, 10).unwrap();
    assert_eq!(f.batch_count, 1);
}

#[test]
fn codec_table_is_idempotent_and_persistent() {
    let (_m, s) = mem();
    let log = open(&s, &LogConfig::default());
    let a = log.register_codec("lz4", [1; 32]).unwrap();
    let b = log.register_codec("zstd", [2; 32]).unwrap();
    assert_eq!((a, b), (1, 2));
    assert_eq!(log.register_codec("lz4", [1; 32]).unwrap(), 1);
    assert_eq!(
        log.register_codec("lz4", [3; 32]).unwrap(),
        3,
        "new version, new id"
    );
    drop(log);
    let log = open(&s, &LogConfig::default());
    assert_eq!(log.codecs().len(), 3);
    assert_eq!(log.codec(2).unwrap().name, "zstd");
    assert!(log.codec(0).is_none());
}

#[derive(Debug)]
struct FixedClock(i64);

impl distlog_storage::Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

#[test]
fn log_append_time_batches_take_the_log_clock() {
    use distlog_storage::batch::{BatchBuilder, Record, TimestampType, parse_header};
    let (_m, s) = mem();
    let log = distlog_storage::Log::open_with_clock(
        s.clone(),
        small_config(),
        Arc::new(FixedClock(1_234_567)),
    )
    .unwrap();
    let mut b = BatchBuilder::new().timestamp_type(TimestampType::LogAppendTime);
    b.push(&Record::new(5, "v")).unwrap();
    let mut bytes = b.finish().unwrap();
    let info = log.append(&mut bytes).unwrap();
    assert_eq!(info.log_append_time_ms, 1_234_567);
    let f = log.read(0, 1000).unwrap();
    let h = parse_header(f.bytes()).unwrap();
    assert_eq!(h.max_timestamp(), 1_234_567);
    assert_eq!(log.segments()[0].max_timestamp, 1_234_567);
    assert_eq!(log.segments()[0].first_timestamp, 1_234_567);
    assert_eq!(log.offset_for_timestamp(1_234_000).unwrap(), Some(0));
}

#[test]
fn segments_roll_by_age() {
    #[derive(Debug)]
    struct StepClock(std::sync::atomic::AtomicI64);
    impl distlog_storage::Clock for StepClock {
        fn now_ms(&self) -> i64 {
            self.0.fetch_add(1000, std::sync::atomic::Ordering::SeqCst)
        }
    }
    let (_m, s) = mem();
    let mut cfg = LogConfig::default();
    cfg.segment_ms = Some(2500);
    cfg.sync = SyncPolicy::Os;
    let log = distlog_storage::Log::open_with_clock(
        s.clone(),
        cfg,
        Arc::new(StepClock(std::sync::atomic::AtomicI64::new(0))),
    )
    .unwrap();
    for i in 0..9 {
        log.append(&mut batch(1, i, 10, 0)).unwrap();
    }
    // The clock advances 1 s per call: a segment lives for about three appends.
    assert!(log.segments().len() >= 3, "{:?}", log.segments());
}

#[test]
fn compressed_batches_must_name_a_registered_codec() {
    use distlog_storage::batch::{
        BatchMeta, CodecRef, Compression, Record, encode_batch, encode_records,
    };
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    // The "compressed" payload is opaque to the log; use the plain records.
    let payload = encode_records(&[Record::new(1, "x")]).unwrap();
    let meta = BatchMeta {
        record_count: 1,
        payload_size: payload.len() as u32,
        ..BatchMeta::default()
    };
    let mut b = encode_batch(&meta, Compression::Codec(CodecRef(1)), &payload).unwrap();
    assert!(matches!(
        log.append(&mut b),
        Err(AppendError::UnknownCodec(1))
    ));
    assert_eq!(log.register_codec("identity", [9; 32]).unwrap(), 1);
    log.append(&mut b).unwrap();
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let (_m, s) = mem();
    let mut cfg = small_config();
    cfg.sync = SyncPolicy::IntervalMs(1);
    let log = open(&s, &cfg);
    for i in 0..20 {
        log.append(&mut batch(1, i, 10, 0)).unwrap();
    }
    let end = log.log_end_offset();
    // Await the flusher thread (a guard, not a timing assertion: it normally takes ~1 ms).
    let guard = std::time::Instant::now();
    while log.synced_offset() < end {
        assert!(guard.elapsed().as_secs() < 60, "flusher never synced");
        std::thread::yield_now();
    }
    log.close().unwrap();
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<distlog_storage::Log>();
    assert_send_sync::<distlog_storage::LogSnapshot>();
}

#[test]
fn open_dir_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let log = distlog_storage::Log::open_dir(&path, small_config()).unwrap();
    log.append(&mut batch(1, 0, 10, 0)).unwrap();
    log.close().unwrap();
    assert!(path.join("00000000000000000000.log").exists());
    assert!(path.join("recovery-point.checkpoint").exists());
}

#[test]
fn opening_reads_nothing_the_checkpoint_covers() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (_m, s) = mem();
    let cfg = small_config();
    let log = open(&s, &cfg);
    for i in 0..200u64 {
        log.append(&mut batch(2, i as i64, 100, i)).unwrap();
    }
    let segments = log.segments().len() as u64;
    let total: u64 = log.segments().iter().map(|s| s.size_bytes).sum();
    log.close().unwrap();
    drop(log);
    let counter = Arc::new(AtomicU64::new(0));
    let counting: Arc<dyn Storage> = Arc::new(CountingStorage {
        inner: s.clone(),
        log_bytes_read: counter.clone(),
    });
    let log = open(&counting, &cfg);
    // One 8-byte base offset per segment (the index sanity check), nothing else.
    let read = counter.load(Ordering::Relaxed);
    assert!(
        read <= segments * 8,
        "open read {read} of {total} log bytes"
    );
    // Appending 20 batches without a checkpoint: the next open reads only those.
    for i in 0..20u64 {
        log.append(&mut batch(2, i as i64, 100, i)).unwrap();
    }
    drop(log);
    counter.store(0, Ordering::Relaxed);
    let log = open(&counting, &cfg);
    let read = counter.load(Ordering::Relaxed);
    assert!(
        read < total / 4,
        "recovery read {read} of {total} log bytes"
    );
    assert_eq!(log.log_end_offset(), 440);
}

#[test]
fn a_directory_is_opened_by_one_log_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = distlog_storage::Log::open_dir(dir.path(), small_config()).expect("open");
    match distlog_storage::Log::open_dir(dir.path(), small_config()) {
        Err(distlog_storage::OpenError::Locked { reason, .. }) => {
            assert!(reason.contains(&std::process::id().to_string()), "{reason}");
        }
        other => panic!("second open: {other:?}"),
    }
    drop(first);
    distlog_storage::Log::open_dir(dir.path(), small_config())
        .expect("open once the first is dropped");
}
