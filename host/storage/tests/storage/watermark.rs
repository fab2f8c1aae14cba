//! The high watermark: the log end on a single node (unchanged behaviour); on a replicated log
//! a separate, monotonic value that bounds consumers' reads but not followers', survives a
//! reopen through the recovery checkpoint (a version 1 checkpoint still opens, with the high
//! watermark at the recovered log end), and comes down with a truncation below it.

use super::common::*;
use distlog_storage::io::MemStorage;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::recovery::checkpoint::CHECKPOINT_NAME;
use distlog_storage::{Log, LogConfig, ReadError, SyncPolicy};
use std::sync::Arc;

fn config(replicated: bool) -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1200;
    c.sync = SyncPolicy::EveryBatch;
    c.replicated = replicated;
    c
}

fn open(m: &MemStorage, replicated: bool) -> Arc<Log> {
    Log::open(Arc::new(m.clone()), config(replicated)).unwrap()
}

/// Appends `n` two-record batches; returns their (base, last).
fn fill(log: &Log, n: u64) -> Vec<(u64, u64)> {
    (0..n)
        .map(|i| {
            let info = log.append(&mut batch(2, i as i64, 40, i)).unwrap();
            (info.base_offset, info.last_offset)
        })
        .collect()
}

/// (base, last) of every batch `read` returns from the log start on.
fn consumer_view(log: &Log) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    loop {
        let f = log.read(at, 1 << 20).unwrap();
        if f.batch_count == 0 {
            return out;
        }
        assert_eq!(f.high_watermark, log.high_watermark());
        out.extend(batches(&f).into_iter().map(|b| (b.0, b.1)));
        at = f.next_offset;
    }
}

#[test]
fn a_single_node_log_has_its_end_as_high_watermark() {
    let m = MemStorage::new();
    let log = open(&m, false);
    let all = fill(&log, 10);
    assert_eq!(log.high_watermark(), log.log_end_offset());
    assert_eq!(log.set_high_watermark(3), log.log_end_offset());
    assert_eq!(consumer_view(&log), all);
    assert_eq!(log.snapshot().high_watermark(), 20);
}

#[test]
fn a_replicated_log_serves_consumers_below_the_high_watermark_only() {
    let m = MemStorage::new();
    let log = open(&m, true);
    let all = fill(&log, 10);
    assert_eq!(log.high_watermark(), 0);
    assert!(consumer_view(&log).is_empty());
    // A follower reads to the log end.
    let f = log.read_for_follower(0, 1 << 20).unwrap();
    assert_eq!(f.high_watermark, 0);
    assert!(f.batch_count > 0);
    // Whole batches below the high watermark, even when it falls inside a batch.
    assert_eq!(log.set_high_watermark(7), 7);
    assert_eq!(consumer_view(&log), all[..3]);
    assert_eq!(log.read(7, 1 << 20).unwrap().batch_count, 0);
    assert_eq!(
        log.read(12, 1 << 20).unwrap().batch_count,
        0,
        "between HW and LEO"
    );
    assert!(matches!(
        log.read(21, 1),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    // Monotonic and clamped to the log end.
    assert_eq!(log.set_high_watermark(2), 7);
    assert_eq!(log.set_high_watermark(1_000), 20);
    assert_eq!(log.high_watermark(), 20);
    assert_eq!(consumer_view(&log), all);
}

#[test]
fn the_high_watermark_survives_a_reopen_and_a_crash() {
    let m = MemStorage::new();
    let log = open(&m, true);
    fill(&log, 10);
    log.set_high_watermark(12);
    log.close().unwrap();
    drop(log);
    let log = open(&m, true);
    assert_eq!(log.high_watermark(), 12);
    // A power loss: the high watermark is the last checkpointed one, at most the log end.
    let sim = CrashStorage::from_image(&m);
    drop(log);
    let log = Log::open(Arc::new(sim.clone()), config(true)).unwrap();
    fill(&log, 5);
    log.set_high_watermark(24);
    log.flush().unwrap();
    log.set_high_watermark(30);
    drop(log);
    for crash in [Crash::DropUnsynced, Crash::KeepAll] {
        let log = open(&sim.crash_image(crash), true);
        let hw = log.high_watermark();
        assert!((24..=30).contains(&hw), "{crash:?}: {hw}");
        assert!(hw <= log.log_end_offset());
    }
}

#[test]
fn a_version_1_checkpoint_opens_with_the_high_watermark_at_the_log_end() {
    let m = MemStorage::new();
    let log = open(&m, true);
    let all = fill(&log, 10);
    log.set_high_watermark(4);
    log.close().unwrap();
    drop(log);
    // Rewrite the checkpoint as version 1: no high watermark after the entry count.
    let v2 = m.read_file(CHECKPOINT_NAME).unwrap();
    assert_eq!(u16::from_le_bytes([v2[4], v2[5]]), 2);
    let mut v1 = Vec::new();
    v1.extend_from_slice(&v2[..4]);
    v1.extend_from_slice(&1u16.to_le_bytes());
    v1.extend_from_slice(&v2[6..10]);
    v1.extend_from_slice(&v2[18..v2.len() - 4]);
    let crc = crc32c_of(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    m.write_file(CHECKPOINT_NAME, v1);
    let log = open(&m, true);
    assert_eq!(log.high_watermark(), 20);
    assert_eq!(consumer_view(&log), all);
}

#[test]
fn a_truncation_below_the_high_watermark_lowers_it() {
    let m = MemStorage::new();
    let log = open(&m, true);
    let all = fill(&log, 10);
    log.set_high_watermark(16);
    assert_eq!(log.truncate_to(9).unwrap(), 8);
    assert_eq!(log.high_watermark(), 8);
    assert_eq!(consumer_view(&log), all[..4]);
    // New appends stay above it until replication raises it.
    fill(&log, 2);
    assert_eq!(log.high_watermark(), 8);
    assert_eq!(log.set_high_watermark(10), 10);
    log.close().unwrap();
    drop(log);
    assert_eq!(open(&m, true).high_watermark(), 10);
    // A truncation above it leaves it alone.
    let log = open(&m, true);
    assert_eq!(log.truncate_to(11).unwrap(), 10);
    assert_eq!(log.high_watermark(), 10);
}

/// CRC32C (Castagnoli), bitwise: the test does not depend on the crate's CRC dependency.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
