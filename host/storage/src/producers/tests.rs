use super::snapshot::{decode, encode};
use super::*;
use crate::io::sim::{Crash, CrashStorage};
use crate::io::{MemStorage, Storage};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn batch(pid: i64, epoch: i16, seq: i32, offset: u64, records: u32, ts: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        base_offset: offset,
        last_offset_delta: records - 1,
        max_timestamp: ts,
        is_control: false,
    }
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(increment_sequence(0, 0), 0);
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(increment_sequence(i32::MAX, u32::MAX), i32::MAX - 1);
    assert_eq!(batch(1, 0, i32::MAX - 1, 0, 4, 0).last_sequence(), 1);
}

#[test]
fn a_new_producer_starts_at_sequence_zero() {
    let s = ProducerState::new();
    assert_eq!(s.check(7, 0, 0, 4), Check::New);
    assert_eq!(s.check(7, 0, 5, 9), Check::UnknownProducer);
    assert_eq!(s.check(-1, -1, -1, -1), Check::New);
    assert_eq!(s.check(7, -1, 0, 0), Check::InvalidProducerFields);
    assert_eq!(s.check(7, 0, -1, -1), Check::InvalidProducerFields);
}

#[test]
fn in_sequence_duplicate_and_out_of_order() {
    let mut s = ProducerState::new();
    s.apply(&batch(7, 0, 0, 100, 5, 1));
    s.apply(&batch(7, 0, 5, 105, 3, 2));
    assert_eq!(s.check(7, 0, 8, 9), Check::New);
    assert_eq!(
        s.check(7, 0, 0, 4),
        Check::Duplicate {
            first_offset: 100,
            last_offset: 104,
            max_timestamp: 1
        }
    );
    assert_eq!(
        s.check(7, 0, 5, 7),
        Check::Duplicate {
            first_offset: 105,
            last_offset: 107,
            max_timestamp: 2
        }
    );
    // Same start, different length: not the same batch.
    assert_eq!(s.check(7, 0, 5, 6), Check::OutOfOrder { expected: 8 });
    assert_eq!(s.check(7, 0, 9, 9), Check::OutOfOrder { expected: 8 });
    assert_eq!(s.check(7, 0, 0, 0), Check::OutOfOrder { expected: 8 });
    let e = s.get(7).unwrap();
    assert_eq!((e.epoch(), e.last_sequence(), e.next_sequence()), (0, 7, 8));
    assert_eq!((e.last_offset(), e.last_timestamp()), (107, 2));
}

#[test]
fn epochs_fence_and_reset() {
    let mut s = ProducerState::new();
    s.apply(&batch(7, 3, 0, 0, 2, 0));
    assert_eq!(s.check(7, 2, 2, 2), Check::Fenced { current: 3 });
    assert_eq!(s.check(7, 4, 2, 2), Check::OutOfOrder { expected: 0 });
    assert_eq!(s.check(7, 4, 0, 0), Check::New);
    s.apply(&batch(7, 4, 0, 2, 1, 0));
    let e = s.get(7).unwrap();
    assert_eq!(e.epoch(), 4);
    assert_eq!(e.batches().len(), 1, "a new epoch forgets the old batches");
    assert!(matches!(s.check(7, 4, 0, 0), Check::Duplicate { .. }));
    assert_eq!(s.check(7, 3, 0, 1), Check::Fenced { current: 4 });
    // The log is the truth: a lower epoch in the log (a follower copying its leader) is taken.
    s.apply(&batch(7, 1, 0, 3, 1, 0));
    assert_eq!(s.get(7).unwrap().epoch(), 1);
}

#[test]
fn the_sequence_after_i32_max_is_zero() {
    let mut s = ProducerState::new();
    s.apply(&batch(7, 0, i32::MAX - 2, 0, 3, 0));
    assert_eq!(s.get(7).unwrap().last_sequence(), i32::MAX);
    assert_eq!(s.check(7, 0, 0, 4), Check::New);
    assert_eq!(
        s.check(7, 0, i32::MAX, i32::MAX),
        Check::OutOfOrder { expected: 0 }
    );
    s.apply(&batch(7, 0, i32::MAX - 1, 3, 4, 0));
    assert_eq!(s.check(7, 0, 2, 2), Check::New);
    assert!(matches!(
        s.check(7, 0, i32::MAX - 1, 1),
        Check::Duplicate {
            first_offset: 3,
            ..
        }
    ));
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut s = ProducerState::new();
    for i in 0..7 {
        s.apply(&batch(7, 0, i, u64::from(i as u32) * 10, 1, 0));
    }
    let e = s.get(7).unwrap();
    assert_eq!(e.batches().len(), MAX_BATCHES_PER_PRODUCER);
    assert_eq!(e.batches()[0].first_sequence, 2);
    assert_eq!(s.check(7, 0, 1, 1), Check::OutOfOrder { expected: 7 });
    assert!(matches!(s.check(7, 0, 2, 2), Check::Duplicate { .. }));
}

#[test]
fn untracked_batches_are_ignored() {
    let mut s = ProducerState::new();
    s.apply(&batch(-1, -1, -1, 0, 1, 0));
    s.apply(&batch(3, 0, -1, 1, 1, 0));
    s.apply(&ProducerBatch {
        is_control: true,
        ..batch(4, 0, 0, 2, 1, 0)
    });
    assert!(s.is_empty());
    assert_eq!(
        s.check_batch(&ProducerBatch {
            is_control: true,
            ..batch(4, 0, 9, 2, 1, 0)
        }),
        Check::New
    );
    assert_eq!(
        s.check_batch(&batch(4, 0, 9, 2, 1, 0)),
        Check::UnknownProducer
    );
    assert_eq!(
        s.check_batch(&batch(4, 0, -1, 2, 1, 0)),
        Check::InvalidProducerFields
    );
}

#[test]
fn from_header_reads_the_producer_fields() {
    use crate::batch::{BatchBuilder, Record, parse_header};
    let mut builder = BatchBuilder::new().base_offset(900).producer(42, 3, 17);
    for ts in [5, 9, 7] {
        builder.push(&Record::new(ts, b"v".to_vec())).unwrap();
    }
    let bytes = builder.finish().unwrap();
    let b = ProducerBatch::from_header(&parse_header(&bytes).unwrap());
    assert_eq!(b, batch(42, 3, 17, 900, 3, 9));
    assert_eq!((b.last_sequence(), b.last_offset()), (19, 902));
}

#[test]
fn expiry_forgets_idle_producers() {
    let mut s = ProducerState::new();
    s.apply(&batch(1, 0, 0, 0, 1, 1_000));
    s.apply(&batch(2, 0, 0, 1, 1, 5_000));
    assert_eq!(s.expire(5_999, 5_000), 0);
    assert_eq!(s.expire(6_000, 5_000), 1);
    assert!(s.get(1).is_none() && s.get(2).is_some());
    assert_eq!(s.check(1, 0, 1, 1), Check::UnknownProducer);
    assert_eq!(s.expire(i64::MAX, i64::MAX), 0);
    assert_eq!(s.expire(5_000, 0), 1, "idle 0 expires everything");
}

#[test]
fn truncation_drops_batches_and_asks_for_a_rebuild_when_a_producer_loses_all() {
    let mut s = ProducerState::rebuild([
        batch(1, 0, 0, 0, 2, 10),
        batch(2, 0, 0, 2, 1, 20),
        batch(1, 0, 2, 3, 2, 30),
        batch(1, 0, 4, 5, 1, 40),
    ]);
    assert_eq!(s.truncate_from(6), Truncation::Exact);
    assert_eq!(s.truncate_from(5), Truncation::Exact);
    let e = s.get(1).unwrap();
    assert_eq!(
        (e.last_sequence(), e.last_offset(), e.last_timestamp()),
        (3, 4, 30)
    );
    assert_eq!(s.check(1, 0, 4, 4), Check::New);
    assert_eq!(s.truncate_from(2), Truncation::Rebuild);
    assert!(s.get(2).is_none());
    assert_eq!(s.get(1).unwrap().last_offset(), 1);
    assert_eq!(s.truncate_from(0), Truncation::Rebuild);
    assert!(s.is_empty());
}

#[test]
fn truncation_from_the_start_forgets_producers_wholly_below() {
    let mut s = ProducerState::rebuild([batch(1, 0, 0, 0, 2, 0), batch(2, 0, 0, 2, 3, 0)]);
    assert_eq!(s.truncate_from_start(2), 1);
    assert_eq!(s.truncate_from_start(4), 0);
    assert_eq!(s.get(2).unwrap().batches().len(), 1);
    assert_eq!(s.truncate_from_start(5), 1);
    assert!(s.is_empty());
}

fn sample_state() -> ProducerState {
    let mut s = ProducerState::new();
    for i in 0..7u32 {
        s.apply(&batch(
            9,
            2,
            (i * 3) as i32,
            u64::from(i) * 4,
            3,
            i64::from(i),
        ));
    }
    s.apply(&batch(0, 0, i32::MAX, 40, 2, -5));
    s.apply(&batch(i64::MAX, i16::MAX, 0, 50, 1, i64::MIN));
    s
}

#[test]
fn the_snapshot_layout_is_the_documented_one() {
    let s = ProducerState::rebuild([batch(5, 1, 10, 0x10, 2, 0x77)]);
    let bytes = encode(&s, 0x20);
    let mut expected = Vec::new();
    expected.extend_from_slice(b"DLPS");
    expected.extend_from_slice(&1u16.to_le_bytes());
    expected.extend_from_slice(&0x20u64.to_le_bytes());
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&5i64.to_le_bytes());
    expected.extend_from_slice(&1i16.to_le_bytes());
    expected.extend_from_slice(&1u16.to_le_bytes());
    expected.extend_from_slice(&0x77i64.to_le_bytes());
    expected.extend_from_slice(&10i32.to_le_bytes());
    expected.extend_from_slice(&11i32.to_le_bytes());
    expected.extend_from_slice(&0x10u64.to_le_bytes());
    expected.extend_from_slice(&0x11u64.to_le_bytes());
    expected.extend_from_slice(&0x77i64.to_le_bytes());
    let crc = crc32c::crc32c(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), 18 + 20 + 32 + 4);
}

#[test]
fn snapshots_round_trip_and_only_the_newest_two_are_kept() {
    let storage = MemStorage::new();
    assert!(load_latest_snapshot(&storage).unwrap().is_none());
    let s = sample_state();
    for at in [60, 70, 80] {
        s.write_snapshot(&storage, at).unwrap();
    }
    assert_eq!(snapshot_offsets(&storage).unwrap(), vec![70, 80]);
    assert_eq!(
        load_latest_snapshot(&storage).unwrap(),
        Some((80, s.clone()))
    );
    assert_eq!(snapshot_name(80), "00000000000000000080.snapshot");
    assert!(
        storage
            .read_file(&crate::io::temp_name(&snapshot_name(80)))
            .is_none()
    );

    // Writing below existing snapshots (after a truncation) removes the stale ones above.
    s.write_snapshot(&storage, 75).unwrap();
    assert_eq!(snapshot_offsets(&storage).unwrap(), vec![70, 75]);
    ProducerState::new().write_snapshot(&storage, 0).unwrap();
    assert_eq!(snapshot_offsets(&storage).unwrap(), vec![0]);
    assert_eq!(
        load_latest_snapshot(&storage).unwrap(),
        Some((0, ProducerState::new()))
    );
}

#[test]
fn a_snapshot_must_be_at_or_above_the_state() {
    let storage = MemStorage::new();
    let s = sample_state();
    assert!(matches!(
        s.write_snapshot(&storage, 50),
        Err(SnapshotError::NotAtOffset {
            producer_id: i64::MAX,
            last_offset: 50,
            at_offset: 50
        })
    ));
    assert!(storage.list().unwrap().is_empty());
}

#[test]
fn snapshots_above_a_truncation_point_are_deleted() {
    let storage = MemStorage::new();
    let s = sample_state();
    s.write_snapshot(&storage, 60).unwrap();
    s.write_snapshot(&storage, 70).unwrap();
    assert_eq!(delete_snapshots_after(&storage, 70).unwrap(), 0);
    assert_eq!(delete_snapshots_after(&storage, 65).unwrap(), 1);
    assert_eq!(load_latest_snapshot(&storage).unwrap().unwrap().0, 60);
    assert_eq!(delete_snapshots_after(&storage, 0).unwrap(), 1);
    assert!(load_latest_snapshot(&storage).unwrap().is_none());
}

#[test]
fn a_corrupt_snapshot_is_skipped_and_removed() {
    let s = sample_state();
    let good = encode(&s, 60);
    let mut bad = encode(&s, 70);
    bad[30] ^= 1;
    let storage = MemStorage::from_files([
        (snapshot_name(60), good.clone()),
        (snapshot_name(70), bad),
        (snapshot_name(80), encode(&s, 81)),
        ("00000000000000000090.log".to_owned(), vec![1, 2, 3]),
    ]);
    assert_eq!(
        load_latest_snapshot(&storage).unwrap(),
        Some((60, s.clone()))
    );
    assert_eq!(snapshot_offsets(&storage).unwrap(), vec![60]);
    assert!(storage.read_file("00000000000000000090.log").is_some());

    let only_bad = MemStorage::from_files([(snapshot_name(5), vec![0; 3])]);
    assert!(load_latest_snapshot(&only_bad).unwrap().is_none());
    assert!(only_bad.list().unwrap().is_empty());
}

#[test]
fn decode_rejects_invalid_contents() {
    use SnapshotCorruption as C;
    let reseal = |mut b: Vec<u8>| {
        b.truncate(b.len() - 4);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    let s = ProducerState::rebuild([batch(5, 1, 10, 0, 2, 0), batch(6, 0, 0, 2, 1, 0)]);
    let good = encode(&s, 10);
    assert_eq!(decode(&good, 10), Ok(s.clone()));
    assert_eq!(decode(&good[..5], 10), Err(C::TooShort { len: 5 }));
    assert!(matches!(
        decode(&good[..good.len() - 1], 10),
        Err(C::CrcMismatch { .. })
    ));
    assert_eq!(
        decode(&good, 11),
        Err(C::OffsetMismatch {
            inside: 10,
            named: 11
        })
    );
    let mut magic = good.clone();
    magic[0] = 0;
    assert_eq!(decode(&reseal(magic), 10), Err(C::BadMagic));
    let mut version = good.clone();
    version[4] = 9;
    assert_eq!(decode(&reseal(version), 10), Err(C::UnknownVersion(9)));
    let mut count = good.clone();
    count[14] = 3;
    assert_eq!(decode(&reseal(count), 10), Err(C::LengthMismatch));
    let mut fewer = good.clone();
    fewer[14] = 1;
    assert_eq!(decode(&reseal(fewer), 10), Err(C::LengthMismatch));
    // Producer ids out of order.
    let mut order = good.clone();
    order[18] = 7;
    assert_eq!(decode(&reseal(order), 10), Err(C::BadProducer { index: 1 }));
    // No batches.
    let mut empty = good.clone();
    empty[28] = 0;
    assert!(decode(&reseal(empty), 10).is_err());
    // A batch at the snapshot offset.
    assert_eq!(decode(&encode(&s, 2), 2), Err(C::BadProducer { index: 1 }));
}

/// The truncation recipe of the module docs gives the state a rebuild from the log start gives.
#[test]
fn truncating_through_snapshots_matches_a_rebuild() {
    // Producers 1 and 2 interleave; offsets 0..30, one record per batch.
    let log: Vec<ProducerBatch> = (0..30u32)
        .map(|i| {
            batch(
                i64::from(i % 2) + 1,
                0,
                (i / 2) as i32,
                u64::from(i),
                1,
                i64::from(i),
            )
        })
        .collect();
    let storage = MemStorage::new();
    let mut state = ProducerState::new();
    for b in &log {
        if b.base_offset == 10 || b.base_offset == 20 {
            state.write_snapshot(&storage, b.base_offset).unwrap();
        }
        state.apply(b);
    }
    for new_end in [29, 25, 20, 15, 10, 3, 0] {
        let mut state = state.clone();
        let storage = MemStorage::from_files(
            storage
                .list()
                .unwrap()
                .into_iter()
                .map(|n| (n.clone(), storage.read_file(&n).unwrap())),
        );
        delete_snapshots_after(&storage, new_end).unwrap();
        if state.truncate_from(new_end) == Truncation::Rebuild {
            let (at, mut rebuilt) = load_latest_snapshot(&storage)
                .unwrap()
                .unwrap_or((0, ProducerState::new()));
            rebuilt.replay(log[at as usize..new_end as usize].iter().copied());
            state = rebuilt;
        }
        let expected = ProducerState::rebuild(log[..new_end as usize].iter().copied());
        for pid in [1, 2] {
            assert_eq!(
                state
                    .get(pid)
                    .map(|e| (e.epoch(), e.last_sequence(), e.last_offset())),
                expected
                    .get(pid)
                    .map(|e| (e.epoch(), e.last_sequence(), e.last_offset())),
                "truncated to {new_end}, producer {pid}"
            );
        }
    }
}

/// A crash at any point of a snapshot write leaves the previous snapshot or the new one
/// loadable, never a corrupt one in their place.
#[test]
fn a_crash_during_a_snapshot_write_leaves_a_usable_snapshot() {
    let old = ProducerState::rebuild([batch(1, 0, 0, 0, 1, 0)]);
    let new = sample_state();
    for ops in 0..10 {
        for crash in [
            Crash::DropUnsynced,
            Crash::Torn { seed: ops },
            Crash::KeepAll,
        ] {
            let storage = CrashStorage::new();
            old.write_snapshot(&storage, 10).unwrap();
            storage.fail_after(Some(ops));
            let written = new.write_snapshot(&storage, 60).is_ok();
            let image = storage.crash_image(crash);
            let loaded = load_latest_snapshot(&image).unwrap();
            assert!(
                loaded == Some((10, old.clone())) || loaded == Some((60, new.clone())),
                "ops {ops}, {crash:?}: {loaded:?}"
            );
            if written && crash == Crash::DropUnsynced {
                assert_eq!(
                    loaded,
                    Some((60, new.clone())),
                    "a completed write is durable"
                );
            }
        }
    }
}

/// What a client or the log does to the producer state, for the model test.
#[derive(Debug, Clone)]
enum Op {
    /// A client produces a batch; `seq` picks its first sequence, `epoch` its epoch (both
    /// relative to what the model knows, so that most attempts are plausible).
    Produce {
        pid: i64,
        epoch: i8,
        seq: SeqChoice,
        records: u32,
    },
    /// A follower copies a batch, unchecked, possibly near the sequence wrap.
    Replicate {
        pid: i64,
        epoch: i16,
        near_max: bool,
        records: u32,
    },
    Tick(i64),
    Expire(i64),
    /// Truncate at the base of the n-th last batch.
    Truncate(usize),
}

#[derive(Debug, Clone, Copy)]
enum SeqChoice {
    Expected,
    Zero,
    /// Retry the n-th last batch of the producer.
    Retry(usize),
    Skip(i32),
}

fn op() -> impl Strategy<Value = Op> {
    let seq = prop_oneof![
        4 => Just(SeqChoice::Expected),
        1 => Just(SeqChoice::Zero),
        2 => (0usize..8).prop_map(SeqChoice::Retry),
        1 => (1i32..4).prop_map(SeqChoice::Skip),
    ];
    prop_oneof![
        8 => (0i64..3, -1i8..=1, seq, 1u32..4)
            .prop_map(|(pid, epoch, seq, records)| Op::Produce { pid, epoch, seq, records }),
        1 => (0i64..3, 0i16..3, any::<bool>(), 1u32..4)
            .prop_map(|(pid, epoch, near_max, records)| Op::Replicate { pid, epoch, near_max, records }),
        1 => (0i64..50).prop_map(Op::Tick),
        1 => (0i64..100).prop_map(Op::Expire),
        1 => (0usize..6).prop_map(Op::Truncate),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Hist {
    epoch: i16,
    first_seq: i32,
    last_seq: i32,
    first_offset: u64,
    last_offset: u64,
    ts: i64,
    /// Pushed out of the remembered window by later batches (until a rebuild).
    evicted: bool,
}

/// Every batch each producer wrote, in order, and what it decides from that history.
#[derive(Debug, Default)]
struct Model {
    producers: BTreeMap<i64, Vec<Hist>>,
}

fn wrap(v: i64) -> i32 {
    (v.rem_euclid(i64::from(i32::MAX) + 1)) as i32
}

impl Model {
    /// The run of batches in the producer's current epoch.
    fn current(&self, pid: i64) -> Option<&[Hist]> {
        let h = self.producers.get(&pid)?;
        let epoch = h.last()?.epoch;
        let start = h
            .iter()
            .rposition(|b| b.epoch != epoch)
            .map_or(0, |i| i + 1);
        Some(&h[start..])
    }

    fn check(&self, pid: i64, epoch: i16, seq: i32, last_seq: i32) -> Check {
        if epoch < 0 || seq < 0 {
            return Check::InvalidProducerFields;
        }
        let Some(run) = self.current(pid) else {
            return if seq == 0 {
                Check::New
            } else {
                Check::UnknownProducer
            };
        };
        let current = run[0].epoch;
        if epoch < current {
            return Check::Fenced { current };
        }
        if epoch > current {
            return if seq == 0 {
                Check::New
            } else {
                Check::OutOfOrder { expected: 0 }
            };
        }
        if let Some(b) = run
            .iter()
            .find(|b| !b.evicted && b.first_seq == seq && b.last_seq == last_seq)
        {
            return Check::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
                max_timestamp: b.ts,
            };
        }
        let expected = wrap(i64::from(run.last().unwrap().last_seq) + 1);
        if seq == expected {
            Check::New
        } else {
            Check::OutOfOrder { expected }
        }
    }

    fn apply(&mut self, b: &ProducerBatch) {
        let h = self.producers.entry(b.producer_id).or_default();
        h.push(Hist {
            epoch: b.producer_epoch,
            first_seq: b.base_sequence,
            last_seq: wrap(i64::from(b.base_sequence) + i64::from(b.last_offset_delta)),
            first_offset: b.base_offset,
            last_offset: b.base_offset + u64::from(b.last_offset_delta),
            ts: b.max_timestamp,
            evicted: false,
        });
        Self::evict(h);
    }

    /// Marks all but the last five batches of the current epoch's run as evicted.
    fn evict(h: &mut [Hist]) {
        let epoch = h.last().unwrap().epoch;
        let start = h
            .iter()
            .rposition(|b| b.epoch != epoch)
            .map_or(0, |i| i + 1);
        let run = &mut h[start..];
        let n = run.len();
        for b in run
            .iter_mut()
            .take(n.saturating_sub(MAX_BATCHES_PER_PRODUCER))
        {
            b.evicted = true;
        }
    }

    /// The batches in offset order, as a rebuild from the log's headers reads them.
    fn log(&self) -> Vec<ProducerBatch> {
        let mut all: Vec<ProducerBatch> = self
            .producers
            .iter()
            .flat_map(|(&pid, h)| {
                h.iter().map(move |b| ProducerBatch {
                    producer_id: pid,
                    producer_epoch: b.epoch,
                    base_sequence: b.first_seq,
                    base_offset: b.first_offset,
                    last_offset_delta: (b.last_offset - b.first_offset) as u32,
                    max_timestamp: b.ts,
                    is_control: false,
                })
            })
            .collect();
        all.sort_by_key(|b| b.base_offset);
        all
    }
}

proptest! {
    #[test]
    fn check_and_apply_behave_like_the_model(ops in proptest::collection::vec(op(), 0..60)) {
        let mut model = Model::default();
        let mut state = ProducerState::new();
        let mut next_offset = 0u64;
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Produce { pid, epoch, seq, records } => {
                    let run = model.current(pid);
                    let current = run.map_or(0, |r| r[0].epoch);
                    let epoch = (current + i16::from(epoch)).max(0);
                    let (base, last) = match (seq, run) {
                        (SeqChoice::Retry(n), Some(r)) if n < r.len() => {
                            let b = r[r.len() - 1 - n];
                            (b.first_seq, b.last_seq)
                        }
                        (SeqChoice::Zero, _) | (SeqChoice::Retry(_), _) => (0, wrap(i64::from(records) - 1)),
                        (SeqChoice::Expected, r) => {
                            let s = r.map_or(0, |r| wrap(i64::from(r.last().unwrap().last_seq) + 1));
                            (s, wrap(i64::from(s) + i64::from(records) - 1))
                        }
                        (SeqChoice::Skip(k), r) => {
                            let s = r.map_or(k, |r| wrap(i64::from(r.last().unwrap().last_seq) + 1 + i64::from(k)));
                            (s, wrap(i64::from(s) + i64::from(records) - 1))
                        }
                    };
                    let got = state.check(pid, epoch, base, last);
                    prop_assert_eq!(got, model.check(pid, epoch, base, last));
                    if got == Check::New {
                        let delta = wrap(i64::from(last) - i64::from(base)) as u32;
                        let b = ProducerBatch {
                            producer_id: pid,
                            producer_epoch: epoch,
                            base_sequence: base,
                            base_offset: next_offset,
                            last_offset_delta: delta,
                            max_timestamp: now,
                            is_control: false,
                        };
                        prop_assert_eq!(b.last_sequence(), last);
                        next_offset += u64::from(delta) + 1;
                        state.apply(&b);
                        model.apply(&b);
                    }
                }
                Op::Replicate { pid, epoch, near_max, records } => {
                    let base = if near_max { i32::MAX - 1 } else { 0 };
                    let b = ProducerBatch {
                        producer_id: pid,
                        producer_epoch: epoch,
                        base_sequence: base,
                        base_offset: next_offset,
                        last_offset_delta: records - 1,
                        max_timestamp: now,
                        is_control: false,
                    };
                    next_offset += u64::from(records);
                    state.apply(&b);
                    model.apply(&b);
                }
                Op::Tick(ms) => now += ms,
                Op::Expire(idle) => {
                    let removed = state.expire(now, idle);
                    let before = model.producers.len();
                    model.producers.retain(|_, h| now - h.last().unwrap().ts < idle);
                    prop_assert_eq!(removed, before - model.producers.len());
                }
                Op::Truncate(n) => {
                    let log = model.log();
                    let at = log.len().checked_sub(n + 1).map_or(0, |i| log[i].base_offset);
                    for h in model.producers.values_mut() {
                        h.retain(|b| b.last_offset < at);
                    }
                    model.producers.retain(|_, h| !h.is_empty());
                    next_offset = next_offset.min(at);
                    if state.truncate_from(at) == Truncation::Rebuild {
                        // What the log does: replay the headers (here, of the model's log).
                        state = ProducerState::rebuild(model.log());
                        for h in model.producers.values_mut() {
                            for b in h.iter_mut() {
                                b.evicted = false;
                            }
                            Model::evict(h);
                        }
                    }
                }
            }
            // Every producer answers like the model, for a spread of probes.
            for pid in 0..3 {
                let current = model.current(pid).map_or(0, |r| r[0].epoch);
                let mut seqs = vec![(0, 0), (1, 1), (i32::MAX, i32::MAX)];
                if let Some(h) = model.producers.get(&pid) {
                    seqs.extend(h.iter().map(|b| (b.first_seq, b.last_seq)));
                    let next = wrap(i64::from(h.last().unwrap().last_seq) + 1);
                    seqs.push((next, next));
                }
                for epoch in [current.saturating_sub(1), current, current + 1] {
                    for &(s, l) in &seqs {
                        prop_assert_eq!(
                            state.check(pid, epoch, s, l),
                            model.check(pid, epoch, s, l),
                            "producer {} epoch {} seq {}..{}", pid, epoch, s, l
                        );
                    }
                }
            }
            let at = state.last_offset().map_or(0, |o| o + 1);
            prop_assert_eq!(decode(&encode(&state, at), at), Ok(state.clone()));
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128), at in 0u64..4) {
        let _ = decode(&bytes, at);
    }
}
