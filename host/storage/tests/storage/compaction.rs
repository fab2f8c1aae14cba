//! Compaction and crash-safe deletion: after a pass, reading from the log start returns exactly
//! the latest record per key, every record without a key, and tombstones only while they are
//! within the delete retention; offsets never change and reads at removed offsets return the
//! next batch. Readers running during a pass only ever see original records, in offset order.
//! A power loss at every IO step of a pass (or of a retention deletion) leaves a log that opens,
//! loses no record the pass keeps, serves no record twice, and keeps every offset; a deleted
//! segment never comes back. A property test mixes appends, rolls, partial passes, retention
//! deletions and reopens and checks those invariants after every step.

use super::common::*;
use distlog_storage::batch::{BatchBuilder, BatchMeta, BatchView, Compression, Record, RecordIter};
use distlog_storage::compaction::{
    CallerError, CompactOptions, KeyExtractor, NoCodecs, PayloadCodec, RecordKeys,
};
use distlog_storage::io::Storage;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::{Clock, CodecEntry, Log, LogConfig};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

#[derive(Debug, Default)]
struct ManualClock(AtomicI64);
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One record as the tests see it: key, value (`None` = tombstone).
type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

/// (offset, key, value) of every record of the log, from its start.
fn records(log: &Log, codec: &mut dyn PayloadCodec) -> Vec<(u64, Rec)> {
    let mut out = Vec::new();
    for (_, _, bytes) in read_all(log) {
        let view = BatchView::parse(&bytes).expect("stored batch parses");
        let h = *view.header();
        let payload = match h.compression() {
            Compression::None => view.payload().to_vec(),
            Compression::Codec(r) => {
                let entry = log.codec(r.0).expect("codec registered");
                codec
                    .decompress(&entry, view.payload(), h.payload_size())
                    .expect("decompresses")
            }
        };
        for r in RecordIter::new(&payload, &h).expect("records") {
            let r = r.expect("record decodes");
            out.push((
                r.offset(),
                (r.key().map(<[u8]>::to_vec), r.value().map(<[u8]>::to_vec)),
            ));
        }
    }
    out
}

fn keyed_batch(recs: &[Rec], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (k, v) in recs {
        let mut r = Record::new(ts, v.clone().unwrap_or_default());
        r.key = k.clone();
        r.value = v.clone();
        b.push(&r).expect("record fits");
    }
    b.finish().expect("batch")
}

fn config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1024;
    c.index_interval_bytes = 128;
    c
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Appends `batches` random batches (keys k0..k7, some unkeyed, some tombstones), timestamps
/// `ts`, and returns every record appended by offset.
fn fill(log: &Log, rng: &mut Rng, batches: usize, ts: i64) -> BTreeMap<u64, Rec> {
    let mut all = BTreeMap::new();
    for i in 0..batches {
        let n = 1 + rng.below(4) as usize;
        let recs: Vec<Rec> = (0..n)
            .map(|j| {
                let key = (rng.below(10) < 8).then(|| format!("k{}", rng.below(8)).into_bytes());
                let value = (key.is_none() || rng.below(6) != 0).then(|| {
                    format!("v{i}.{j}-{}", "x".repeat(rng.below(40) as usize)).into_bytes()
                });
                (key, value)
            })
            .collect();
        let mut b = keyed_batch(&recs, ts);
        let info = log.append(&mut b).expect("append");
        for (o, r) in (info.base_offset..).zip(recs) {
            all.insert(o, r);
        }
    }
    all
}

/// What a full compaction of everything below `end` keeps: the latest record per key, records
/// without key, tombstones only if `tombstones_live`, and the record at `end - 1`.
fn model(all: &BTreeMap<u64, Rec>, end: u64, tombstones_live: bool) -> Vec<(u64, Rec)> {
    let mut latest = HashMap::new();
    for (o, (k, _)) in all.range(..end) {
        if let Some(k) = k {
            latest.insert(k.clone(), *o);
        }
    }
    all.iter()
        .filter(|(o, (k, v))| {
            **o >= end
                || **o + 1 == end
                || match k {
                    None => true,
                    Some(k) => latest[k] == **o && (v.is_some() || tombstones_live),
                }
        })
        .map(|(o, r)| (*o, r.clone()))
        .collect()
}

fn open_clocked(storage: &Arc<dyn Storage>, clock: &Arc<ManualClock>) -> Arc<Log> {
    Log::open_with_clock(storage.clone(), config(), clock.clone()).expect("open")
}

fn options(delete_retention_ms: u64) -> CompactOptions {
    let mut o = CompactOptions::default();
    o.delete_retention_ms = delete_retention_ms;
    o
}

/// Compacts until the cleaner has nothing left to do.
fn compact_all(log: &Log, o: &CompactOptions) {
    let mut passes = 0;
    while log.cleanable_stats().dirty_bytes > 0 {
        log.compact(o, &mut RecordKeys, &mut NoCodecs)
            .expect("compact");
        passes += 1;
        assert!(passes < 100, "compaction makes progress");
    }
}

#[test]
fn keeps_the_latest_record_per_key_and_drops_expired_tombstones() {
    let (_m, s) = mem();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000)));
    let log = open_clocked(&s, &clock);
    let mut rng = Rng(7);
    let mut all = fill(&log, &mut rng, 120, 1_000);
    log.roll().expect("roll");
    let end = log.log_end_offset();
    assert!(log.segments().len() > 5, "several segments to clean");
    let before = log.cleanable_stats();
    assert_eq!((before.clean_bytes, before.dirty_ratio), (0, 1.0));
    assert!(
        all.values().any(|(k, v)| k.is_some() && v.is_none()),
        "tombstones written"
    );

    // Within the delete retention: tombstones stay.
    let o = options(10_000);
    compact_all(&log, &o);
    let first = records(&log, &mut NoCodecs);
    assert_eq!(first, model(&all, end, true));
    assert!(first.len() < all.len() / 2, "compaction removed records");
    let after = log.cleanable_stats();
    assert_eq!((after.dirty_bytes, after.dirty_ratio), (0, 0.0));
    assert_eq!(after.cleaned_up_to, end);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);

    // New data makes the log dirty again; once the retention has passed, tombstones go.
    let mut b = keyed_batch(&[(Some(b"fresh".to_vec()), Some(b"v".to_vec()))], 11_000);
    let info = log.append(&mut b).expect("append");
    all.insert(
        info.base_offset,
        (Some(b"fresh".to_vec()), Some(b"v".to_vec())),
    );
    log.roll().expect("roll");
    let end = log.log_end_offset();
    let stats = log.cleanable_stats();
    assert!(
        stats.dirty_ratio > 0.0 && stats.dirty_ratio < 1.0,
        "{stats:?}"
    );
    clock.0.store(11_000, Ordering::SeqCst);
    compact_all(&log, &o);
    let got = records(&log, &mut NoCodecs);
    assert_eq!(got, model(&all, end, false));
    assert!(
        got.iter().all(|(_, (_, v))| v.is_some()),
        "no tombstone left"
    );

    // The cleaned log survives a reopen unchanged, clean.
    drop(log);
    let log = open_clocked(&s, &clock);
    assert_eq!(records(&log, &mut NoCodecs), got);
    assert_eq!(log.cleanable_stats().dirty_bytes, 0);
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn offsets_are_kept_and_reads_at_removed_offsets_return_the_next_batch() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    // Key "a" rewritten 100 times, one record per batch, then one "b".
    for i in 0..100u32 {
        let mut b = keyed_batch(
            &[(Some(b"a".to_vec()), Some(format!("{i}").into_bytes()))],
            1,
        );
        log.append(&mut b).expect("append");
    }
    let mut b = keyed_batch(&[(Some(b"b".to_vec()), Some(b"last".to_vec()))], 1);
    log.append(&mut b).expect("append");
    log.roll().expect("roll");
    compact_all(&log, &options(u64::MAX));
    let got = records(&log, &mut NoCodecs);
    assert_eq!(
        got,
        vec![
            (99, (Some(b"a".to_vec()), Some(b"99".to_vec()))),
            (100, (Some(b"b".to_vec()), Some(b"last".to_vec()))),
        ]
    );
    for removed in [0, 1, 50, 98] {
        let f = log.read(removed, 1).expect("read in a hole");
        assert_eq!(
            batches(&f)[0].0,
            99,
            "a read at {removed} returns the next batch"
        );
    }
    assert_eq!(batches(&log.read(100, 1).expect("read")).len(), 1);
    assert_eq!(log.log_start_offset(), 0);
    // Appends continue at the same end offset.
    let mut b = keyed_batch(&[(Some(b"c".to_vec()), Some(b"new".to_vec()))], 1);
    assert_eq!(log.append(&mut b).expect("append").base_offset, 101);
}

#[test]
fn a_batch_losing_some_records_keeps_its_offset_range() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    let recs: Vec<Rec> = ["a", "b", "a", "c", "b"]
        .iter()
        .map(|k| (Some(k.as_bytes().to_vec()), Some(b"v".to_vec())))
        .collect();
    let mut b = keyed_batch(&recs, 5);
    log.append(&mut b).expect("append");
    let mut b = keyed_batch(&[(None, Some(b"tail".to_vec()))], 6);
    log.append(&mut b).expect("append");
    log.roll().expect("roll");
    compact_all(&log, &options(u64::MAX));
    let kept: Vec<u64> = records(&log, &mut NoCodecs)
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(kept, vec![2, 3, 4, 5]);
    let first = &batches(&log.read(0, 1).expect("read"))[0];
    assert_eq!(
        (first.0, first.1),
        (2, 4),
        "rewritten batch starts at its first kept record"
    );
}

#[test]
fn a_rewritten_producer_batch_keeps_every_kept_records_sequence() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    // Producer 7, sequences 0..=4 at offsets 0..=4; offsets 0 and 1 are superseded.
    let mut b = BatchBuilder::new().producer(7, 0, 0);
    for k in ["a", "b", "a", "c", "b"] {
        let mut r = Record::new(5, b"v".to_vec());
        r.key = Some(k.as_bytes().to_vec());
        b.push(&r).expect("record fits");
    }
    let mut b = b.finish().expect("batch");
    log.append(&mut b).expect("append");
    let before = log
        .producer_state()
        .get(7)
        .expect("producer")
        .last_sequence();
    log.roll().expect("roll");
    compact_all(&log, &options(u64::MAX));
    let stored = &batches(&log.read(0, 1 << 20).expect("read"))[0];
    let h = distlog_storage::batch::parse_header(&stored.2).expect("header");
    assert_eq!(
        h.base_offset(),
        2,
        "the batch starts at its first kept record"
    );
    assert_eq!(
        h.base_sequence(),
        2,
        "the base sequence moved with the base offset"
    );
    assert_eq!(h.last_offset(), 4);
    // Producer state rebuilt from the cleaned batch (no snapshot) is the state before.
    log.close().expect("close");
    drop(log);
    for name in s.list().expect("list") {
        if name.ends_with(".snapshot") || name == "recovery-point.checkpoint" {
            s.remove(&name).expect("remove");
        }
    }
    let log = open(&s, &config());
    let entry = log.producer_state();
    let entry = entry.get(7).expect("producer rebuilt");
    assert_eq!(entry.last_sequence(), before);
    assert_eq!(entry.last_sequence(), 4);
}

/// A toy codec: the payload reversed. Tests only.
#[derive(Debug)]
struct Reverse;
impl PayloadCodec for Reverse {
    fn decompress(
        &mut self,
        _codec: &CodecEntry,
        payload: &[u8],
        _uncompressed_size: u32,
    ) -> Result<Vec<u8>, CallerError> {
        Ok(payload.iter().rev().copied().collect())
    }
}

#[test]
fn compressed_batches_are_decompressed_and_rewritten_uncompressed() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    let id = log.register_codec("reverse", [7; 32]).expect("register");
    let mut all = BTreeMap::new();
    for i in 0..30u64 {
        let recs: Vec<Rec> = (0..3)
            .map(|j| {
                (
                    Some(format!("k{}", (i + j) % 5).into_bytes()),
                    Some(format!("value {i}.{j}").into_bytes()),
                )
            })
            .collect();
        let mut builder = BatchBuilder::new();
        for (k, v) in &recs {
            let mut r = Record::new(1, v.clone().unwrap_or_default());
            r.key = k.clone();
            builder.push(&r).expect("push");
        }
        let (meta, payload): (BatchMeta, &[u8]) = builder.payload().expect("payload");
        let reversed: Vec<u8> = payload.iter().rev().copied().collect();
        let mut b = distlog_storage::batch::encode_batch(
            &meta,
            Compression::Codec(distlog_storage::batch::CodecRef(id)),
            &reversed,
        )
        .expect("encode");
        let info = log.append(&mut b).expect("append");
        for (o, r) in (info.base_offset..).zip(recs) {
            all.insert(o, r);
        }
    }
    log.roll().expect("roll");
    let end = log.log_end_offset();
    assert!(matches!(
        log.compact(&options(u64::MAX), &mut RecordKeys, &mut NoCodecs),
        Err(distlog_storage::compaction::CompactError::Codec { .. })
    ));
    assert_eq!(
        log.cleanable_stats().dirty_ratio,
        1.0,
        "a failed pass changes nothing"
    );
    let mut passes = 0;
    while log.cleanable_stats().dirty_bytes > 0 && passes < 50 {
        log.compact(&options(u64::MAX), &mut RecordKeys, &mut Reverse)
            .expect("compact");
        passes += 1;
    }
    assert_eq!(records(&log, &mut Reverse), model(&all, end, true));
}

#[test]
fn a_key_extractor_decides_the_keys() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    // Values "user=N;..." keyed by the user field; the record keys are all distinct.
    let mut all = BTreeMap::new();
    for i in 0..60u32 {
        let rec = (
            Some(format!("id{i}").into_bytes()),
            Some(format!("user={};seq={i}", i % 4).into_bytes()),
        );
        let mut b = keyed_batch(std::slice::from_ref(&rec), 1);
        let info = log.append(&mut b).expect("append");
        all.insert(info.base_offset, rec);
    }
    log.roll().expect("roll");
    let calls = std::cell::Cell::new(0);
    let mut by_user = |recs: &[distlog_storage::batch::RecordRef<'_>]| -> Result<Vec<Option<Vec<u8>>>, CallerError> {
        calls.set(calls.get() + 1);
        Ok(recs
            .iter()
            .map(|r| {
                r.value()
                    .and_then(|v| v.split(|b| *b == b';').next())
                    .map(<[u8]>::to_vec)
            })
            .collect())
    };
    while log.cleanable_stats().dirty_bytes > 0 {
        log.compact(&options(u64::MAX), &mut by_user, &mut NoCodecs)
            .expect("compact");
    }
    let got: Vec<u64> = records(&log, &mut NoCodecs)
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(got, vec![56, 57, 58, 59]);
    assert!(calls.get() >= 60, "one call per batch");

    // An extractor that returns the wrong number of keys stops the pass; nothing changes.
    let mut b = keyed_batch(&[(Some(b"x".to_vec()), Some(b"user=9".to_vec()))], 1);
    log.append(&mut b).expect("append");
    log.roll().expect("roll");
    let before = records(&log, &mut NoCodecs);
    let mut wrong =
        |_: &[distlog_storage::batch::RecordRef<'_>]| -> Result<Vec<Option<Vec<u8>>>, CallerError> {
            Ok(Vec::new())
        };
    assert!(
        log.compact(&options(u64::MAX), &mut wrong, &mut NoCodecs)
            .is_err()
    );
    assert_eq!(records(&log, &mut NoCodecs), before);
    let _: &dyn KeyExtractor = &RecordKeys;
}

#[test]
fn readers_during_compaction_see_original_records_in_order() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    let mut rng = Rng(11);
    let all = Arc::new(fill(&log, &mut rng, 300, 1));
    // Records appended while the readers run are checked for order only.
    let end = log.log_end_offset();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, all, stop) = (log.clone(), all.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rounds = 0u32;
                while !stop.load(Ordering::SeqCst) || rounds == 0 {
                    let got = records(&log, &mut NoCodecs);
                    let mut previous = None;
                    for (o, r) in &got {
                        if *o < end {
                            assert_eq!(all.get(o), Some(r), "record at {o} is an original");
                        }
                        assert!(previous < Some(*o), "offsets increase: no duplicate");
                        previous = Some(*o);
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    for _ in 0..10 {
        log.compact(&options(u64::MAX), &mut RecordKeys, &mut NoCodecs)
            .expect("compact");
        fill(&log, &mut Rng(rng.next()), 3, 1);
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
}

/// Appends keyed data into several segments of a `CrashStorage` log and syncs it.
fn crash_fixture(seed: u64) -> (CrashStorage, BTreeMap<u64, Rec>, u64) {
    let sim = CrashStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let log = Log::open(storage, config()).expect("open");
    let all = fill(&log, &mut Rng(seed), 60, 1);
    log.roll().expect("roll");
    let end = log.log_end_offset();
    log.close().expect("close");
    (sim, all, end)
}

/// A recovered log serves only original records, once each, in offset order, including every
/// record a full compaction keeps; its indexes find every served offset.
fn check_recovered(log: &Log, all: &BTreeMap<u64, Rec>, end: u64, what: &str) {
    let got = records(log, &mut NoCodecs);
    let mut previous = None;
    for (o, r) in &got {
        assert_eq!(all.get(o), Some(r), "{what}: record at {o} is an original");
        assert!(previous < Some(*o), "{what}: offsets increase");
        previous = Some(*o);
    }
    let got: BTreeMap<u64, Rec> = got.into_iter().collect();
    for (o, r) in model(all, end, true) {
        assert_eq!(got.get(&o), Some(&r), "{what}: kept record {o} is present");
    }
    for o in got.keys() {
        let f = log.read(*o, 1).expect("read by offset");
        let (base, last, _) = &batches(&f)[0];
        assert!(base <= o && o <= last, "{what}: the index finds offset {o}");
    }
    assert_eq!(log.log_end_offset(), end, "{what}: end offset");
    assert_eq!(log.log_start_offset(), 0, "{what}: start offset");
}

#[test]
fn a_crash_at_every_step_of_a_pass_loses_nothing_and_serves_nothing_twice() {
    let (sim, all, end) = crash_fixture(3);
    let mut o = options(u64::MAX);
    o.max_group_bytes = Some(3000);
    let mut step = 0u64;
    loop {
        // Each attempt starts from the same durable state.
        let base = CrashStorage::from_image(&sim.crash_image(Crash::DropUnsynced));
        let storage: Arc<dyn Storage> = Arc::new(base.clone());
        let log = Log::open(storage, config()).expect("open");
        base.fail_after(Some(step));
        let result = log.compact(&o, &mut RecordKeys, &mut NoCodecs);
        drop(log);
        for crash in [
            Crash::DropUnsynced,
            Crash::KeepAll,
            Crash::Torn { seed: step },
        ] {
            let image: Arc<dyn Storage> = Arc::new(base.crash_image(crash));
            let log = Log::open(image.clone(), config()).expect("recovery opens");
            let what = format!("step {step}, {crash:?}");
            check_recovered(&log, &all, end, &what);
            let names = image.list().expect("list");
            assert!(
                names.iter().all(|n| !n.ends_with(".cleaned")
                    && !n.ends_with(".swap")
                    && !n.ends_with(".deleted")),
                "{what}: leftovers removed: {names:?}"
            );
            // Compaction finishes on the recovered log.
            compact_all(&log, &o);
            assert_eq!(
                records(&log, &mut NoCodecs),
                model(&all, end, true),
                "{what}"
            );
        }
        if result.is_ok() {
            break;
        }
        step += 1;
        assert!(step < 10_000, "the pass finishes with enough power");
    }
    assert!(step > 20, "the crash landed in many places ({step})");
}

#[test]
fn a_crash_during_deletion_leaves_a_suffix_and_never_resurrects() {
    let (sim, all, end) = crash_fixture(5);
    let mut step = 0u64;
    loop {
        let base = CrashStorage::from_image(&sim.crash_image(Crash::DropUnsynced));
        let storage: Arc<dyn Storage> = Arc::new(base.clone());
        let log = Log::open(storage, config()).expect("open");
        let segs = log.segments();
        let doomed: Vec<u64> = segs[..4].iter().map(|s| s.base_offset).collect();
        let new_start = segs[4].base_offset;
        base.fail_after(Some(step));
        let result = log.delete_segments(&doomed);
        drop(log);
        for crash in [Crash::DropUnsynced, Crash::KeepAll] {
            let image: Arc<dyn Storage> = Arc::new(base.crash_image(crash));
            let log = Log::open(image.clone(), config()).expect("recovery opens");
            let what = format!("step {step}, {crash:?}");
            let start = log.log_start_offset();
            assert!(
                start == 0 || doomed.contains(&start) || start == new_start,
                "{what}: start {start} is a segment boundary"
            );
            if result.is_ok() {
                assert_eq!(start, new_start, "{what}: a completed deletion is durable");
            }
            let got = records(&log, &mut NoCodecs);
            let want: Vec<(u64, Rec)> = all.range(start..).map(|(o, r)| (*o, r.clone())).collect();
            assert_eq!(
                got, want,
                "{what}: every record from the start on, unchanged"
            );
            assert_eq!(log.log_end_offset(), end);
            let names = image.list().expect("list");
            assert!(
                names.iter().all(|n| !n.ends_with(".deleted")),
                "{what}: {names:?}"
            );
        }
        if result.is_ok() {
            break;
        }
        step += 1;
        assert!(step < 1000, "deletion finishes with enough power");
    }
    assert!(step > 4, "the crash landed in several places ({step})");
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(Option<u8>, bool)>),
    Roll,
    Compact { max_dirty_bytes: u64 },
    DeleteOldest,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((prop::option::of(0u8..5), prop::bool::weighted(0.15)), 1..5)
            .prop_map(Op::Append),
        2 => Just(Op::Roll),
        2 => (1u64..3000).prop_map(|max_dirty_bytes| Op::Compact { max_dirty_bytes }),
        1 => Just(Op::DeleteOldest),
        1 => Just(Op::Reopen),
    ]
}

/// The invariants any mix of appends, rolls, partial compaction passes, retention deletions and
/// reopens keeps: only original records are served, each once, in offset order; the latest
/// record of every key and every record without a key (from the log start on) is never
/// removed; the end offset is the model's.
fn check_invariants(log: &Log, all: &BTreeMap<u64, Rec>, what: &str) {
    let start = log.log_start_offset();
    let got = records(log, &mut NoCodecs);
    let mut previous = None;
    for (o, r) in &got {
        assert_eq!(all.get(o), Some(r), "{what}: record at {o} is an original");
        assert!(previous < Some(*o), "{what}: offsets increase");
        previous = Some(*o);
    }
    let got: BTreeMap<u64, Rec> = got.into_iter().collect();
    let mut latest = HashMap::new();
    for (o, (k, _)) in all.range(start..) {
        if let Some(k) = k {
            latest.insert(k.clone(), *o);
        }
    }
    for (o, r) in all.range(start..) {
        if r.0.as_ref().is_none_or(|k| latest[k] == *o) {
            assert_eq!(got.get(o), Some(r), "{what}: record {o} must stay");
        }
    }
    assert_eq!(
        log.log_end_offset(),
        all.keys().next_back().map_or(0, |o| o + 1),
        "{what}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn compaction_with_appends_retention_and_reopens_keeps_the_invariants(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let (_m, s) = mem();
        let mut cfg = config();
        cfg.segment_bytes = 400;
        let mut log = Log::open(s.clone(), cfg.clone()).expect("open");
        let mut all = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Append(recs) => {
                    let recs: Vec<Rec> = recs
                        .iter()
                        .map(|(k, tomb)| {
                            let key = k.map(|k| vec![b'k', k]);
                            let value = (key.is_none() || !tomb).then(|| format!("v{i}").into_bytes());
                            (key, value)
                        })
                        .collect();
                    let mut b = keyed_batch(&recs, 1);
                    let info = log.append(&mut b).expect("append");
                    for (o, r) in (info.base_offset..).zip(recs) {
                        all.insert(o, r);
                    }
                }
                Op::Roll => {
                    log.roll().expect("roll");
                }
                Op::Compact { max_dirty_bytes } => {
                    let mut o = options(u64::MAX);
                    o.max_dirty_bytes = *max_dirty_bytes;
                    o.max_group_bytes = Some(900);
                    log.compact(&o, &mut RecordKeys, &mut NoCodecs).expect("compact");
                }
                Op::DeleteOldest => {
                    let segs = log.segments();
                    if segs.len() > 1 {
                        log.delete_segments(&[segs[0].base_offset]).expect("delete");
                    }
                }
                Op::Reopen => {
                    drop(log);
                    log = Log::open(s.clone(), cfg.clone()).expect("reopen");
                }
            }
            check_invariants(&log, &all, &format!("after op {i} {op:?}"));
        }
        // A roll and full compaction leave exactly the model from the log start on.
        log.roll().expect("roll");
        compact_all(&log, &options(u64::MAX));
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        let rest: BTreeMap<u64, Rec> = all.range(start..).map(|(o, r)| (*o, r.clone())).collect();
        prop_assert_eq!(records(&log, &mut NoCodecs), model(&rest, end, true));
    }
}

/// Failpoints at each step of a pass and of a deletion: the call fails, the live log keeps
/// serving the same records, the next call completes the work, and a reopen at any of these
/// points recovers. Run with `--features failpoints`.
#[cfg(feature = "failpoints")]
mod failpoints {
    use super::*;
    use distlog_storage::failpoint;
    use distlog_storage::io::MemStorage;

    const COMPACTION_POINTS: [&str; 6] = [
        "compaction::before_swap",
        "compaction::commit",
        "compaction::swap",
        "compaction::rename_log",
        "compaction::swapped",
        "delete::rename",
    ];

    fn fixture(seed: u64) -> (MemStorage, Arc<Log>, BTreeMap<u64, Rec>, u64) {
        let (m, s) = mem();
        let log = open(&s, &config());
        let all = fill(&log, &mut Rng(seed), 60, 1);
        log.roll().expect("roll");
        let end = log.log_end_offset();
        (m, log, all, end)
    }

    #[test]
    fn a_failed_step_of_a_pass_is_finished_by_the_next_pass_or_the_next_open() {
        for point in COMPACTION_POINTS {
            for skip in [0, 1] {
                failpoint::clear();
                let (m, log, all, end) = fixture(9);
                let mut o = options(u64::MAX);
                o.max_group_bytes = Some(3000);
                failpoint::set(point, skip);
                let failed = log.compact(&o, &mut RecordKeys, &mut NoCodecs);
                failpoint::clear();
                let what = format!("{point} after {skip}");
                assert!(failed.is_err(), "{what}: the pass fails");
                check_recovered(&log, &all, end, &what);

                // A copy of the directory now, as a crash would leave it (process crash).
                let copy: Arc<dyn Storage> = Arc::new(MemStorage::from_files(
                    m.list()
                        .expect("list")
                        .into_iter()
                        .filter_map(|n| m.read_file(&n).map(|d| (n, d))),
                ));
                let reopened = Log::open(copy, config()).expect("reopen");
                check_recovered(&reopened, &all, end, &format!("{what}, reopened"));
                compact_all(&reopened, &o);
                assert_eq!(records(&reopened, &mut NoCodecs), model(&all, end, true));

                // The live log finishes the job itself.
                compact_all(&log, &o);
                assert_eq!(
                    records(&log, &mut NoCodecs),
                    model(&all, end, true),
                    "{what}"
                );
                let doomed = log.segments()[0].base_offset;
                log.delete_segments(&[doomed])
                    .expect("delete after a failed pass");
                drop(log);
                let s: Arc<dyn Storage> = Arc::new(m.clone());
                let log = open(&s, &config());
                let names = m.list().expect("list");
                assert!(
                    names
                        .iter()
                        .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")),
                    "{what}: {names:?}"
                );
                let want: Vec<_> = model(&all, end, true)
                    .into_iter()
                    .filter(|(o, _)| *o >= log.log_start_offset())
                    .collect();
                assert_eq!(records(&log, &mut NoCodecs), want, "{what}");
            }
        }
    }

    #[test]
    fn a_failed_deletion_deletes_a_prefix_and_a_retry_finishes() {
        for (point, skip) in [
            ("delete::rename", 0),
            ("delete::rename", 2),
            ("delete::sync", 0),
            ("delete::remove", 1),
        ] {
            failpoint::clear();
            let (m, log, all, end) = fixture(13);
            let doomed: Vec<u64> = log.segments()[..4].iter().map(|s| s.base_offset).collect();
            failpoint::set(point, skip);
            let first = log.delete_segments(&doomed);
            failpoint::clear();
            let what = format!("{point} after {skip}");
            let start = log.log_start_offset();
            let want: Vec<_> = all.range(start..).map(|(o, r)| (*o, r.clone())).collect();
            assert_eq!(records(&log, &mut NoCodecs), want, "{what}");
            match point {
                "delete::rename" => {
                    assert!(first.is_err(), "{what}");
                    assert_eq!(start, doomed[skip as usize], "{what}: a prefix is deleted");
                }
                // Removing a renamed file is left to the next open; the deletion stands.
                "delete::remove" => assert_eq!(first.expect("deleted"), doomed),
                _ => assert!(first.is_err(), "{what}"),
            }
            log.delete_segments(&doomed).expect("retry");
            let new_start = log.log_start_offset();
            assert!(!doomed.contains(&new_start), "{what}");
            drop(log);
            let s: Arc<dyn Storage> = Arc::new(m.clone());
            let log = open(&s, &config());
            assert_eq!(
                log.log_start_offset(),
                new_start,
                "{what}: nothing resurrected"
            );
            let want: Vec<_> = all
                .range(new_start..)
                .map(|(o, r)| (*o, r.clone()))
                .collect();
            assert_eq!(records(&log, &mut NoCodecs), want, "{what}");
            assert_eq!(log.log_end_offset(), end);
            let names = m.list().expect("list");
            assert!(
                names.iter().all(|n| !n.ends_with(".deleted")),
                "{what}: {names:?}"
            );
        }
    }
}

/// Runs `f` on another thread and waits for it (bounded): a lock held by the caller makes
/// this fail instead of hanging the test.
fn on_another_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the call did not return: the pass holds a lock while it calls the key extractor")
}

#[test]
fn keys_are_extracted_without_a_storage_lock() {
    let (_m, s) = mem();
    let log = open(&s, &config());
    let mut rng = Rng(7);
    let all = fill(&log, &mut rng, 60, 0);
    let end = log.log_end_offset();
    assert!(log.segments().len() > 3);
    let mut calls = 0;
    let mut keys = |records: &[distlog_storage::batch::RecordRef<'_>]| {
        calls += 1;
        if calls == 1 {
            // Retention and truncation take the maintenance lock; both return.
            let l = log.clone();
            assert_eq!(
                on_another_thread(move || l.delete_segments(&[]).unwrap()),
                vec![]
            );
            let l = log.clone();
            assert_eq!(
                on_another_thread(move || l.truncate_to(u64::MAX).unwrap()),
                end
            );
        }
        RecordKeys.keys(records)
    };
    let mut o = CompactOptions::default();
    o.delete_retention_ms = u64::MAX;
    log.compact(&o, &mut keys, &mut NoCodecs).unwrap();
    assert!(calls > 1);
    let cleaned = log.cleanable_stats().cleaned_up_to;
    assert!(cleaned > 0);
    assert_eq!(
        records(&log, &mut NoCodecs)
            .into_iter()
            .filter(|(o, _)| *o < cleaned)
            .collect::<Vec<_>>(),
        model(&all, cleaned, true)
            .into_iter()
            .filter(|(o, _)| *o < cleaned)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_pass_whose_segments_change_meanwhile_stops_before_swapping_them() {
    let (m, s) = mem();
    let log = open(&s, &config());
    let mut rng = Rng(11);
    fill(&log, &mut rng, 60, 0);
    let mut fired = false;
    let mut keys = |records: &[distlog_storage::batch::RecordRef<'_>]| {
        if !fired {
            fired = true;
            // Retention removes the oldest segment while the pass reads it.
            let l = log.clone();
            let oldest = l.segments()[0].base_offset;
            on_another_thread(move || l.delete_segments(&[oldest]).unwrap());
        }
        RecordKeys.keys(records)
    };
    let before = log.cleanable_stats().cleaned_up_to;
    let err = log
        .compact(&CompactOptions::default(), &mut keys, &mut NoCodecs)
        .unwrap_err();
    assert!(
        matches!(
            err,
            distlog_storage::compaction::CompactError::SegmentsChanged
        ),
        "{err}"
    );
    assert_eq!(log.cleanable_stats().cleaned_up_to, before);
    // Nothing of the abandoned group is left, and the log is what retention made it.
    let expected = read_all(&log);
    assert!(
        m.list()
            .unwrap()
            .iter()
            .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap"))
    );
    drop(log);
    let log = open(&s, &config());
    assert_eq!(read_all(&log), expected);
    // The next pass runs.
    log.compact(&CompactOptions::default(), &mut RecordKeys, &mut NoCodecs)
        .unwrap();
}
