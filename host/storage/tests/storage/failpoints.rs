//! Failpoints where an IO wrapper cannot reach: a failed segment roll fails only that append
//! (the next one rolls), a failed checkpoint rename leaves the previous checkpoint usable, a
//! failed index growth costs only an index entry. Run with `--features failpoints`.

use super::common::*;
use distlog_storage::failpoint;
use distlog_storage::{AppendError, FlushError};

#[test]
fn failed_roll_fails_one_append_and_the_next_rolls() {
    failpoint::clear();
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let mut acked = Vec::new();
    let mut failed = false;
    for i in 0..60u64 {
        if i == 20 {
            failpoint::set("segment::roll", 0);
        }
        let mut b = batch(1, i as i64, 200, i);
        match log.append(&mut b) {
            Ok(info) => acked.push((info.base_offset, info.last_offset, b)),
            Err(AppendError::Io(_)) => {
                failed = true;
                failpoint::clear();
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(failed, "a roll was attempted while armed");
    assert_eq!(read_all(&log), acked);
    drop(log);
    assert_eq!(read_all(&open(&s, &small_config())), acked);
}

#[test]
fn failed_checkpoint_rename_keeps_the_log_recoverable() {
    failpoint::clear();
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let mut acked = Vec::new();
    for i in 0..40u64 {
        let mut b = batch(1, i as i64, 100, i);
        let info = log.append(&mut b).unwrap();
        acked.push((info.base_offset, info.last_offset, b));
    }
    failpoint::set("checkpoint::rename", 0);
    assert!(matches!(log.flush(), Err(FlushError::Io(_))));
    failpoint::clear();
    drop(log);
    assert_eq!(read_all(&open(&s, &small_config())), acked);
}

#[test]
fn failed_index_growth_only_costs_index_entries() {
    failpoint::clear();
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    failpoint::set("index::grow", 2);
    let mut acked = Vec::new();
    for i in 0..40u64 {
        let mut b = batch(1, i as i64, 100, i);
        let info = log.append(&mut b).unwrap();
        acked.push((info.base_offset, info.last_offset, b));
    }
    failpoint::clear();
    assert_eq!(read_all(&log), acked);
    for (base, last, bytes) in &acked {
        let f = log.read(*last, 1).unwrap();
        assert_eq!(batches(&f)[0], (*base, *last, bytes.clone()));
    }
}
