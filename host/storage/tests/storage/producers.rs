//! Producer state in the log: applied from every appended batch's header (leader and
//! follower), snapshotted on close, rebuilt from the batch headers when the snapshot is
//! missing or stale, and cut by truncation.

use super::common::*;
use distlog_storage::batch::{BatchBuilder, Record};
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::producers::{ProducerState, snapshot_offsets};
use distlog_storage::{Log, LogConfig, SyncPolicy};
use std::sync::Arc;

fn config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1500;
    c.sync = SyncPolicy::EveryBatch;
    c.seal_in_background = false;
    c
}

fn open(m: &MemStorage) -> Arc<Log> {
    Log::open(Arc::new(m.clone()), config()).unwrap()
}

/// A batch of `n` records from producer `id` (epoch `epoch`) starting at sequence `seq`.
fn produced(id: i64, epoch: i16, seq: i32, n: u32) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(id, epoch, seq);
    for i in 0..n {
        b.push(&Record::new(i64::from(i), vec![7u8; 30])).unwrap();
    }
    b.finish().unwrap()
}

/// Three producers, 30 batches, interleaved, over several segments.
fn fill(log: &Log) {
    let mut seq = [0i32; 3];
    for i in 0..30usize {
        let p = i % 3;
        let n = 1 + (i % 2) as u32;
        log.append(&mut produced(100 + p as i64, 1, seq[p], n))
            .unwrap();
        seq[p] += n as i32;
        if i % 7 == 0 {
            // A batch without a producer id is not tracked.
            log.append(&mut batch(1, 0, 10, 0)).unwrap();
        }
    }
}

/// The state a rebuild from every batch header gives.
fn rebuilt(log: &Log) -> ProducerState {
    ProducerState::rebuild(read_all(log).iter().map(|b| {
        distlog_storage::producers::ProducerBatch::from_header(
            &distlog_storage::batch::parse_header(&b.2).unwrap(),
        )
    }))
}

#[test]
fn appends_update_the_state_and_close_snapshots_it() {
    let m = MemStorage::new();
    let log = open(&m);
    fill(&log);
    let state = log.producer_state();
    assert_eq!(state.len(), 3);
    assert_eq!(state, rebuilt(&log));
    assert_eq!(state.get(100).unwrap().next_sequence(), 15);
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    assert_eq!(snapshot_offsets(&m).unwrap().last(), Some(&end));
    assert_eq!(open(&m).producer_state(), state);
}

#[test]
fn a_missing_or_stale_snapshot_is_rebuilt_from_the_headers() {
    let m = MemStorage::new();
    let log = open(&m);
    fill(&log);
    let state = log.producer_state();
    log.close().unwrap();
    drop(log);
    // No snapshot at all.
    for o in snapshot_offsets(&m).unwrap() {
        m.remove(&distlog_storage::producers::snapshot_name(o))
            .unwrap();
    }
    let log = open(&m);
    assert_eq!(log.producer_state(), state);
    // A stale one: more appends after the last snapshot, dropped without close.
    log.close().unwrap();
    drop(log);
    let log = open(&m);
    log.append(&mut produced(100, 1, 15, 2)).unwrap();
    log.append(&mut produced(200, 0, 0, 1)).unwrap();
    let state = log.producer_state();
    drop(log);
    assert_eq!(open(&m).producer_state(), state);
}

#[test]
fn truncation_cuts_the_state() {
    let m = MemStorage::new();
    let log = open(&m);
    fill(&log);
    log.close().unwrap();
    drop(log);
    let log = open(&m);
    let all = read_all(&log);
    let cut = all[all.len() / 2].0;
    log.truncate_to(cut).unwrap();
    assert_eq!(log.producer_state(), rebuilt(&log));
    assert!(snapshot_offsets(&m).unwrap().iter().all(|&o| o <= cut));
    // Truncated to the start: no producer is left.
    log.truncate_to(0).unwrap();
    assert!(log.producer_state().is_empty());
    drop(log);
    assert!(open(&m).producer_state().is_empty());
}

#[test]
fn a_follower_has_the_leaders_state() {
    let leader = open(&MemStorage::new());
    fill(&leader);
    let follower = open(&MemStorage::new());
    let mut at = 0;
    while at < leader.log_end_offset() {
        let f = leader.read_for_follower(at, 700).unwrap();
        follower.append_as_follower(f.bytes()).unwrap();
        at = f.next_offset;
    }
    assert_eq!(follower.producer_state(), leader.producer_state());
}
