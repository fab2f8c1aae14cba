//! Follower append (`Log::append_as_follower`): a follower that appends the raw bytes a leader's
//! log returns ends up byte-identical to the leader, offsets, epochs and log-append times
//! included; and every batch that does not fit (bad CRC, cut short, a gap or an overlap in
//! offsets, an unknown codec, an epoch the log does not accept) is refused with a precise error
//! and nothing written.

use super::common::*;
use distlog_storage::batch::{
    BatchMeta, CodecRef, Compression, Record, encode_batch, encode_records, set_base_offset,
    set_leader_epoch, set_log_append_time,
};
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{AppendError, Clock, Log, LogConfig, SyncPolicy};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

fn config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1500;
    c.index_interval_bytes = 100;
    c.sync = SyncPolicy::EveryBatch;
    c
}

fn open_at(m: &MemStorage, clock_ms: i64) -> Arc<Log> {
    let s: Arc<dyn Storage> = Arc::new(m.clone());
    Log::open_with_clock(s, config(), Arc::new(FixedClock(clock_ms))).unwrap()
}

/// Every `.log` file of the directory, by name.
fn log_files(m: &MemStorage) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = m
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let data = m.read_file(&n).unwrap();
            (n, data)
        })
        .collect()
}

/// Copies everything the leader has past the follower's end, `max_bytes` per fetch.
fn replicate(leader: &Log, follower: &Log, max_bytes: usize) {
    loop {
        let f = leader
            .read_for_follower(follower.log_end_offset(), max_bytes)
            .unwrap();
        if f.batch_count == 0 {
            return;
        }
        let info = follower.append_as_follower(f.bytes()).unwrap();
        assert_eq!(info.last_offset + 1, f.next_offset);
    }
}

/// The leader's batches from offset `at` (up to 1 MiB), concatenated.
fn leader_bytes(leader: &Log, at: u64) -> Vec<u8> {
    leader.read(at, 1 << 20).unwrap().bytes().to_vec()
}

fn leader_with(batches: u32) -> (MemStorage, Arc<Log>) {
    let m = MemStorage::new();
    let leader = open_at(&m, 1_000);
    for i in 0..batches {
        let mut b = batch(1 + i % 3, i64::from(i), 40, u64::from(i));
        leader.append(&mut b).unwrap();
    }
    (m, leader)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_follower_of_the_leaders_bytes_is_byte_identical(
        appends in proptest::collection::vec((1u32..6, 0usize..400, any::<bool>()), 1..40),
        fetches in proptest::collection::vec(1usize..3000, 1..8),
    ) {
        let lm = MemStorage::new();
        let leader = open_at(&lm, 7_000);
        let fm = MemStorage::new();
        let follower = open_at(&fm, 9_000);
        for (i, (records, value_len, append_time)) in appends.iter().enumerate() {
            let mut b = batch(*records, i as i64 * 10, *value_len, i as u64);
            if *append_time {
                set_log_append_time(&mut b, 0).unwrap();
            }
            leader.append(&mut b).unwrap();
            // The follower catches up now and then, in fetches of varying size.
            if i % 3 == 0 {
                replicate(&leader, &follower, fetches[i % fetches.len()]);
            }
        }
        replicate(&leader, &follower, fetches[0]);
        prop_assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        prop_assert_eq!(follower.synced_offset(), follower.log_end_offset());
        prop_assert_eq!(read_all(&follower), read_all(&leader));
        prop_assert_eq!(log_files(&fm), log_files(&lm));
        // And after a reopen (recovery validates what follows the checkpoint).
        drop(follower);
        let follower = open_at(&fm, 9_000);
        prop_assert_eq!(read_all(&follower), read_all(&leader));
    }
}

#[test]
fn the_first_batch_must_start_at_the_log_end() {
    let (_lm, leader) = leader_with(6);
    let all = batches(&leader.read(0, 1 << 20).unwrap());
    let fm = MemStorage::new();
    let follower = open_at(&fm, 0);
    follower.append_as_follower(&all[0].2).unwrap();
    let end = follower.log_end_offset();
    assert_eq!(end, all[1].0);
    let before = log_files(&fm);
    // The batch before the end (an overlap) and the one after the next (a gap).
    for (base, _, bytes) in [&all[0], &all[2]] {
        let err = follower.append_as_follower(bytes).unwrap_err();
        assert!(
            matches!(err, AppendError::OffsetMismatch { index: 0, base_offset, expected }
                if base_offset == *base && expected == end),
            "{err}"
        );
    }
    assert_eq!(follower.log_end_offset(), end);
    assert_eq!(log_files(&fm), before);
}

#[test]
fn a_gap_between_batches_is_refused_and_nothing_is_written() {
    let (_lm, leader) = leader_with(4);
    let all = batches(&leader.read(0, 1 << 20).unwrap());
    let mut bytes = all[0].2.clone();
    bytes.extend_from_slice(&all[2].2);
    let follower = open_at(&MemStorage::new(), 0);
    let err = follower.append_as_follower(&bytes).unwrap_err();
    assert!(
        matches!(err, AppendError::OffsetMismatch { index: 1, base_offset, expected }
            if base_offset == all[2].0 && expected == all[0].1 + 1),
        "{err}"
    );
    assert_eq!(follower.log_end_offset(), 0);
    assert!(read_all(&follower).is_empty());
}

#[test]
fn a_damaged_or_cut_batch_is_refused_and_nothing_is_written() {
    let (_lm, leader) = leader_with(3);
    let good = leader_bytes(&leader, 0);
    let all = batches(&leader.read(0, 1 << 20).unwrap());
    let second = all[0].2.len();
    let follower = open_at(&MemStorage::new(), 0);

    // A flipped bit in the second batch's records: its CRC fails.
    let mut damaged = good.clone();
    *damaged.last_mut().unwrap() ^= 1;
    let at_last = second + all[1].2.len();
    let err = follower.append_as_follower(&damaged).unwrap_err();
    assert!(
        matches!(err, AppendError::InvalidReplicaBatch { index: 2, position, .. } if position == at_last),
        "{err}"
    );
    // The input ends inside a batch.
    let err = follower
        .append_as_follower(&good[..good.len() - 1])
        .unwrap_err();
    assert!(
        matches!(err, AppendError::InvalidReplicaBatch { index: 2, .. }),
        "{err}"
    );
    // Trailing bytes that are no batch header.
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 10]);
    let err = follower.append_as_follower(&trailing).unwrap_err();
    assert!(
        matches!(err, AppendError::InvalidReplicaBatch { index: 3, .. }),
        "{err}"
    );
    assert!(matches!(
        follower.append_as_follower(&[]),
        Err(AppendError::NoBatches)
    ));
    assert_eq!(follower.log_end_offset(), 0);
    assert!(read_all(&follower).is_empty());
    // The good bytes go in afterwards.
    follower.append_as_follower(&good).unwrap();
    assert_eq!(read_all(&follower), read_all(&leader));
}

#[test]
fn a_batch_the_log_cannot_decode_or_date_is_refused() {
    let follower = open_at(&MemStorage::new(), 0);
    // A compressed batch naming a codec this log does not have.
    let payload = encode_records(&[Record::new(1, "x")]).unwrap();
    let meta = BatchMeta {
        record_count: 1,
        payload_size: payload.len() as u32,
        ..BatchMeta::default()
    };
    let compressed = encode_batch(&meta, Compression::Codec(CodecRef(1)), &payload).unwrap();
    assert!(matches!(
        follower.append_as_follower(&compressed),
        Err(AppendError::UnknownCodec(1))
    ));
    // A leader epoch older than the log's latest, or than the batch before it.
    let in_epoch = |epoch: u32, base: u64| {
        let mut b = batch(1, 0, 10, base);
        set_base_offset(&mut b, base).unwrap();
        set_leader_epoch(&mut b, epoch).unwrap();
        b
    };
    follower.append_as_follower(&in_epoch(5, 0)).unwrap();
    assert!(matches!(
        follower.append_as_follower(&in_epoch(3, 1)),
        Err(AppendError::LeaderEpoch {
            index: 0,
            epoch: 3,
            min: 5,
            ..
        })
    ));
    let mut two = in_epoch(6, 1);
    two.extend_from_slice(&in_epoch(4, 2));
    assert!(matches!(
        follower.append_as_follower(&two),
        Err(AppendError::LeaderEpoch {
            index: 1,
            epoch: 4,
            min: 6,
            ..
        })
    ));
    assert_eq!(follower.log_end_offset(), 1);
    assert_eq!(follower.leader_epoch(), 5);
}

#[test]
fn follower_appends_roll_segments_like_the_leader() {
    let (lm, leader) = leader_with(60);
    assert!(leader.segments().len() > 3);
    let fm = MemStorage::new();
    let follower = open_at(&fm, 0);
    // Everything in one call: the follower rolls where the leader did.
    let mut at = 0;
    let mut all = Vec::new();
    loop {
        let f = leader.read(at, 1 << 20).unwrap();
        if f.batch_count == 0 {
            break;
        }
        at = f.next_offset;
        all.extend_from_slice(f.bytes());
    }
    follower.append_as_follower(&all).unwrap();
    assert_eq!(follower.segments().len(), leader.segments().len());
    assert_eq!(log_files(&fm), log_files(&lm));
}
