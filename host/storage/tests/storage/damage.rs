//! Targeted damage and IO-failure cases (each one failed on the log before it resynchronised
//! after damage, checked offsets, and latched a failed fsync):
//!
//! - a flipped bit in a batch's `base_offset` (outside the CRC) never serves records under
//!   wrong offsets, and the next append never reuses an offset already served;
//! - one damaged batch in the middle of a log costs only that batch, whether recovery finds it
//!   (no checkpoint, or `verify_on_open`) or a read does (inside a checkpointed prefix); the
//!   read that reaches it gets `DataLoss` naming exactly its offsets;
//! - a failed fsync is never retried into "durable": the log refuses appends from then on, the
//!   checkpoint never covers the failed range, and after a power loss that drops the writes the
//!   failed fsync should have made durable, every acknowledged record is there and no hole is
//!   served.

use super::common::*;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{AppendError, Log, LogConfig, ReadError, SyncPolicy};
use std::sync::Arc;

/// `base_offset` is the header's first field, `leader_epoch` its third (docs/FORMAT.md); the CRC
/// covers neither.
const OFF_BASE: usize = 0;
const OFF_EPOCH: usize = 12;

/// Appends `n` batches of `records` records each; returns what was stored.
fn fill(log: &Log, n: u64, records: u32) -> Vec<Stored> {
    (0..n)
        .map(|i| {
            let mut b = batch(records, i as i64 * 10, 40, i);
            let info = log.append(&mut b).expect("append");
            (info.base_offset, info.last_offset, b)
        })
        .collect()
}

/// Byte position of the batch with base offset `base` in segment file `name`.
fn position_of(m: &MemStorage, name: &str, base: u64) -> usize {
    let data = m.read_file(name).unwrap();
    let mut at = 0;
    while at < data.len() {
        let b = u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
        if b == base {
            return at;
        }
        at += 12 + u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    panic!("no batch {base} in {name}")
}

fn flip(m: &MemStorage, name: &str, at: usize, mask: u8) {
    let mut data = m.read_file(name).unwrap();
    data[at] ^= mask;
    m.write_file(name, data);
}

fn big_segments() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1 << 20;
    c
}

#[test]
fn a_flipped_base_offset_or_epoch_is_never_served() {
    for (clean_close, field) in [
        (true, OFF_BASE + 1),
        (false, OFF_BASE + 1),
        (true, OFF_EPOCH),
        (false, OFF_EPOCH + 3),
    ] {
        let (m, s) = mem();
        let cfg = big_segments();
        let log = open(&s, &cfg);
        let stored = fill(&log, 3, 10);
        if clean_close {
            log.close().unwrap();
        }
        drop(log);
        let seg = "00000000000000000000.log";
        // Base offset 10 -> 2058, as in the report; or the epoch 0 -> 8 (or 2^27).
        let at = position_of(&m, seg, 10) + field;
        flip(&m, seg, at, 0x08);
        let log = open(&s, &cfg);
        let first = log.read(0, 1 << 20).expect("read at 0");
        let got: Vec<(u64, u64)> = batches(&first).iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(got, vec![(0, 9)], "clean close {clean_close}");
        assert_eq!(first.next_offset, 10);
        match log.read(10, 1 << 20) {
            Err(ReadError::DataLoss {
                first_offset: 10,
                next_offset: 20,
                ..
            }) => {}
            other => panic!("clean close {clean_close}: expected DataLoss 10..20, got {other:?}"),
        }
        let third = log.read(20, 1 << 20).expect("read after the damage");
        assert_eq!(batches(&third), vec![stored[2].clone()]);
        assert_eq!(log.log_end_offset(), 30);
        let info = log.append(&mut batch(1, 0, 5, 9)).unwrap();
        assert_eq!(info.base_offset, 30, "no offset is reused");
    }
}

#[test]
fn one_damaged_batch_costs_only_itself_wherever_it_is_found() {
    // (clean close: the damage sits in a checkpointed prefix and a read finds it) x
    // (verify_on_open: recovery finds it) x (sealed or active segment).
    for clean_close in [true, false] {
        for verify in [false, true] {
            for victim in [40u64, 190] {
                let (m, s) = mem();
                let mut cfg = small_config();
                cfg.verify_on_open = verify;
                let log = open(&s, &cfg);
                let stored = fill(&log, 200, 3);
                if clean_close {
                    log.close().unwrap();
                }
                drop(log);
                let base = victim * 3;
                let seg = m
                    .list()
                    .unwrap()
                    .into_iter()
                    .filter(|n| n.ends_with(".log"))
                    .filter(|n| n[..20].parse::<u64>().unwrap() <= base)
                    .max()
                    .unwrap();
                // A payload byte: the CRC catches it.
                let at = position_of(&m, &seg, base) + 80;
                flip(&m, &seg, at, 0x01);
                let log = open(&s, &cfg);
                let mut served = Vec::new();
                let mut lost = Vec::new();
                let mut offset = 0;
                while offset < log.log_end_offset() {
                    match log.read(offset, 1 << 20) {
                        Ok(f) => {
                            served.extend(batches(&f));
                            offset = f.next_offset;
                        }
                        Err(ReadError::DataLoss {
                            first_offset,
                            next_offset,
                            ..
                        }) => {
                            lost.push((first_offset, next_offset));
                            offset = next_offset;
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                let case = format!("clean {clean_close} verify {verify} victim {victim}");
                let mut intact = stored.clone();
                intact.remove(victim as usize);
                assert_eq!(served, intact, "{case}: every intact batch is served");
                assert_eq!(lost, vec![(base, base + 3)], "{case}: the loss is named");
                assert_eq!(log.log_end_offset(), 600, "{case}");
                // The damage is found again after a restart (the segment stays unchecked).
                log.close().unwrap();
                drop(log);
                let log = open(&s, &cfg);
                assert!(
                    matches!(log.read(base, 1), Err(ReadError::DataLoss { .. })),
                    "{case}: still reported after reopening"
                );
            }
        }
    }
}

#[test]
fn a_failed_fsync_is_never_retried_into_durable() {
    let sim = CrashStorage::new();
    let s: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    cfg.sync = SyncPolicy::EveryBatch;
    cfg.seal_in_background = false;
    let log = open(&s, &cfg);
    let acked = fill(&log, 5, 2);
    log.flush().unwrap();
    sim.fail_next_sync(1);
    let mut b = batch(2, 0, 40, 99);
    match log.append(&mut b) {
        Err(AppendError::Sync { base_offset, .. }) => assert_eq!(base_offset, 10),
        other => panic!("expected the sync failure, got {other:?}"),
    }
    let failure = log.failure().expect("the log has latched the failure");
    assert_eq!(failure.synced_offset, 10);
    // Later syncs would succeed; the log must not try them and call the range durable.
    for i in 0..3 {
        let mut b = batch(2, 0, 40, 100 + i);
        assert!(
            matches!(log.append(&mut b), Err(AppendError::Failed(_))),
            "appends are refused after a failed fsync"
        );
    }
    assert!(
        log.flush().is_err(),
        "a flush cannot succeed over the failed range"
    );
    assert_eq!(
        log.log_end_offset(),
        10,
        "readers stop at the synced offset"
    );
    assert_eq!(read_all(&log), acked);
    drop(log);

    for crash in [Crash::DropUnsynced, Crash::KeepAll, Crash::Torn { seed: 7 }] {
        let image = sim.crash_image(crash);
        let s: Arc<dyn Storage> = Arc::new(CrashStorage::from_image(&image));
        let log = Log::open(s, cfg.clone()).expect("reopen after the failure");
        let all = read_all(&log);
        assert_eq!(
            &all[..acked.len()],
            &acked[..],
            "{crash:?}: every acked batch"
        );
        assert!(all.len() <= acked.len() + 1, "{crash:?}: nothing invented");
        // Appends work again after the reopen revalidated the tail.
        let end = log.log_end_offset();
        let info = log.append(&mut batch(1, 0, 5, 1)).unwrap();
        assert_eq!(info.base_offset, end);
    }
}

#[test]
fn concurrent_appenders_all_see_the_failed_fsync() {
    let sim = CrashStorage::new();
    let s: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    cfg.sync = SyncPolicy::EveryBatch;
    let log = open(&s, &cfg);
    fill(&log, 3, 1);
    sim.fail_next_sync(1);
    let acked: Vec<Vec<Stored>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let log = log.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..20 {
                        let mut b = batch(1, 0, 20, t * 100 + i);
                        match log.append(&mut b) {
                            Ok(info) => mine.push((info.base_offset, info.last_offset, b)),
                            Err(AppendError::Sync { .. } | AppendError::Failed(_)) => break,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let synced = log.failure().expect("latched").synced_offset;
    for b in acked.iter().flatten() {
        assert!(
            b.1 < synced,
            "an acknowledged batch is below the synced offset"
        );
    }
    drop(log);
    let image = sim.crash_image(Crash::DropUnsynced);
    let s: Arc<dyn Storage> = Arc::new(CrashStorage::from_image(&image));
    let log = Log::open(s, cfg).unwrap();
    let all = read_all(&log);
    for b in acked.iter().flatten() {
        assert!(all.contains(b), "acknowledged batch {} survives", b.0);
    }
}

#[test]
fn a_torn_tail_before_an_empty_newest_segment_is_truncated_not_reported() {
    // A crash right after a roll: the sealed segment's last batch is torn and the new active
    // segment is still empty. Nothing valid follows the tear anywhere, so it is a torn tail
    // (truncated, the offsets reused), not damage reported as lost.
    let (m, s) = mem();
    let cfg = big_segments();
    let log = open(&s, &cfg);
    let stored = fill(&log, 5, 2);
    assert!(log.roll().unwrap());
    drop(log);
    let seg = "00000000000000000000.log";
    let mut data = m.read_file(seg).unwrap();
    let cut = position_of(&m, seg, 8) + 30;
    data.truncate(cut);
    m.write_file(seg, data);
    let log = open(&s, &cfg);
    assert_eq!(read_all(&log), stored[..4].to_vec());
    assert_eq!(log.log_end_offset(), 8);
    assert!(
        !m.list()
            .unwrap()
            .iter()
            .any(|n| n.starts_with("00000000000000000010")),
        "the empty segment after the tear is gone"
    );
    let info = log.append(&mut batch(1, 0, 5, 3)).unwrap();
    assert_eq!(info.base_offset, 8);
    drop(log);
    let log = open(&s, &cfg);
    assert_eq!(log.log_end_offset(), 9, "the truncation is durable");
}
