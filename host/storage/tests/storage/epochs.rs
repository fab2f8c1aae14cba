//! Leader epochs in the log: a leader's appends carry the epoch it started, a follower's
//! appends record the leader's epochs, `end_offset_for_epoch` answers OffsetsForLeaderEpoch,
//! truncation and retention keep the epoch file consistent, and recovery accepts exactly the
//! epochs of the file (written before any batch of a new epoch: a crash at any step never
//! leaves a batch whose epoch the file does not know), rebuilding a corrupt file from the
//! batch headers.

use super::common::*;
use distlog_storage::batch::parse_header;
use distlog_storage::epochs::{EpochEntry, LEADER_EPOCHS_NAME};
use distlog_storage::io::MemStorage;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::{Log, LogConfig, SyncPolicy};
use std::sync::Arc;

fn config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1200;
    c.sync = SyncPolicy::EveryBatch;
    c.seal_in_background = false;
    c
}

fn open(m: &MemStorage) -> Arc<Log> {
    Log::open(Arc::new(m.clone()), config()).unwrap()
}

fn entry(epoch: u32, start_offset: u64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

/// A leader that appends 6 one-record batches in each of epochs 1, 2 and 4.
fn leader() -> (MemStorage, Arc<Log>) {
    let m = MemStorage::new();
    let log = open(&m);
    for epoch in [1, 2, 4] {
        log.start_leader_epoch(epoch).unwrap();
        for i in 0..6 {
            log.append(&mut batch(1, i, 40, u64::from(epoch) * 10 + i as u64))
                .unwrap();
        }
    }
    (m, log)
}

fn epochs_of_batches(log: &Log) -> Vec<u32> {
    read_all(log)
        .iter()
        .map(|b| parse_header(&b.2).unwrap().leader_epoch())
        .collect()
}

#[test]
fn a_leader_stamps_its_epoch_and_answers_offsets_for_leader_epoch() {
    let (m, log) = leader();
    assert_eq!(log.leader_epoch(), 4);
    let expected = vec![entry(1, 0), entry(2, 6), entry(4, 12)];
    assert_eq!(log.leader_epochs(), expected);
    assert_eq!(epochs_of_batches(&log), [[1; 6], [2; 6], [4; 6]].concat());
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(3), Some((2, 12)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 18)));
    assert_eq!(log.end_offset_for_epoch(5), None);
    // An older epoch cannot start again.
    assert!(log.start_leader_epoch(3).is_err());
    drop(log);
    // Reopened (and fully verified): the epochs are accepted, not taken for damage.
    let log = open(&m);
    assert_eq!(log.leader_epochs(), expected);
    assert_eq!(read_all(&log).len(), 18);
    let mut strict = config();
    strict.verify_on_open = true;
    drop(log);
    let log = Log::open(Arc::new(m.clone()), strict).unwrap();
    assert_eq!(read_all(&log).len(), 18);
    assert_eq!(log.leader_epoch(), 4);
}

#[test]
fn a_single_node_log_writes_no_epoch_file() {
    let m = MemStorage::new();
    let log = open(&m);
    for i in 0..5 {
        log.append(&mut batch(1, i, 10, 0)).unwrap();
    }
    assert!(m.read_file(LEADER_EPOCHS_NAME).is_none());
    assert!(log.leader_epochs().is_empty());
    // Becoming a leader records the implicit epoch 0 first.
    log.start_leader_epoch(3).unwrap();
    assert_eq!(log.leader_epochs(), vec![entry(0, 0), entry(3, 5)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 5)));
}

#[test]
fn a_follower_records_the_leaders_epochs() {
    let (_lm, leader) = leader();
    let follower = open(&MemStorage::new());
    let mut at = 0;
    while at < leader.log_end_offset() {
        let f = leader.read_for_follower(at, 300).unwrap();
        follower.append_as_follower(f.bytes()).unwrap();
        at = f.next_offset;
    }
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    for epoch in 0..6 {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch)
        );
    }
    assert_eq!(read_all(&follower), read_all(&leader));
}

#[test]
fn truncation_and_retention_keep_the_epochs_consistent() {
    let (m, log) = leader();
    // Into epoch 2: epoch 4 goes, the latest is 2 again.
    assert_eq!(log.truncate_to(9).unwrap(), 9);
    assert_eq!(log.leader_epochs(), vec![entry(1, 0), entry(2, 6)]);
    assert_eq!(log.leader_epoch(), 2);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 9)));
    // A follower goes on with the leader's epoch 5 at the new end.
    let mut b = batch(1, 0, 10, 99);
    distlog_storage::batch::set_base_offset(&mut b, 9).unwrap();
    distlog_storage::batch::set_leader_epoch(&mut b, 5).unwrap();
    log.append_as_follower(&b).unwrap();
    assert_eq!(
        log.leader_epochs(),
        vec![entry(1, 0), entry(2, 6), entry(5, 9)]
    );
    // Retention of everything before offset 10: epoch 5 alone is left, starting at 10.
    assert!(log.roll().unwrap());
    let old: Vec<u64> = log.segments()[..log.segments().len() - 1]
        .iter()
        .map(|s| s.base_offset)
        .collect();
    log.delete_segments(&old).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.leader_epochs(), vec![entry(5, 10)]);
    let after = log.leader_epochs();
    drop(log);
    assert_eq!(open(&m).leader_epochs(), after);
}

#[test]
fn a_corrupt_epoch_file_is_rebuilt_from_the_batch_headers() {
    let (m, log) = leader();
    let expected = log.leader_epochs();
    drop(log);
    let mut bytes = m.read_file(LEADER_EPOCHS_NAME).unwrap();
    bytes[12] ^= 0xff;
    m.write_file(LEADER_EPOCHS_NAME, bytes);
    let log = open(&m);
    assert_eq!(log.leader_epochs(), expected);
    assert_eq!(read_all(&log).len(), 18);
    drop(log);
    assert_eq!(open(&m).leader_epochs(), expected);
}

#[test]
fn a_crash_while_a_follower_starts_an_epoch_never_strands_a_batch() {
    let (_lm, leader) = leader();
    let all = leader.read_for_follower(0, 1 << 20).unwrap();
    let first: Vec<u8> = batches(&all)
        .iter()
        .filter(|b| b.1 < 6)
        .flat_map(|b| b.2.clone())
        .collect();
    let rest = leader.read_for_follower(6, 1 << 20).unwrap();
    let base = MemStorage::new();
    {
        let f = open(&base);
        f.append_as_follower(&first).unwrap();
        f.close().unwrap();
    }
    for budget in 0..40 {
        let sim = CrashStorage::from_image(&base);
        let f = Log::open(Arc::new(sim.clone()), config()).unwrap();
        sim.fail_after(Some(budget));
        let done = f.append_as_follower(rest.bytes()).is_ok();
        drop(f);
        sim.fail_after(None);
        for crash in [
            Crash::DropUnsynced,
            Crash::KeepAll,
            Crash::Torn { seed: budget },
        ] {
            let image = sim.crash_image(crash);
            let f = open(&image);
            let got = read_all(&f);
            // Nothing damaged: every batch on disk is in an epoch the file knows.
            let epochs = epochs_of_batches(&f);
            assert!(got.len() >= 6, "budget {budget} {crash:?}");
            assert_eq!(
                got[..],
                batches(&all)[..got.len()],
                "budget {budget} {crash:?}"
            );
            let latest = f.leader_epoch();
            assert!(
                epochs.iter().all(|&e| e <= latest),
                "budget {budget} {crash:?}"
            );
            assert!(
                f.leader_epochs()
                    .last()
                    .is_some_and(|e| e.start_offset <= f.log_end_offset()),
                "budget {budget} {crash:?}"
            );
        }
        if done {
            return;
        }
    }
    panic!("the follower append never completed");
}
