//! Crash consistency: after a simulated power loss at many points (unsynced writes dropped, or
//! a random prefix of them kept with the last write torn in half, or everything kept), every
//! acknowledged-and-synced batch is present and intact, nothing corrupt is served, offsets are
//! contiguous up to the first gap a torn tail can leave, and appends continue.
//!
//! The log runs on `CrashStorage`, which keeps durable and live images; `fail_after` stops all
//! IO after a random number of operations so the crash lands inside rolls, group commits,
//! checkpoint writes and index growth, not only between appends.

use super::common::*;
use distlog_storage::io::Storage;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::{Log, LogConfig, SyncPolicy};
use std::collections::HashMap;
use std::sync::Arc;

fn config(sync: SyncPolicy) -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 2048;
    c.index_interval_bytes = 128;
    c.sync = sync;
    // Every IO on the test's thread, so `fail_after` counts the same operations each run.
    c.seal_in_background = false;
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

/// Runs one crash scenario; returns how many batches were acknowledged.
fn scenario(seed: u64, sync: SyncPolicy, crash: Crash) -> usize {
    let mut rng = Rng(seed);
    let sim = CrashStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let cfg = config(sync);
    let log = Log::open(storage, cfg.clone()).expect("open fresh log");
    // Acknowledged batches that must survive: (base, last, body).
    let mut durable: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    // Every batch the log accepted or may have written, by base offset candidates.
    let mut attempted: Vec<Vec<u8>> = Vec::new();
    let before_crash = rng.below(40);
    let mut acked = 0;
    for i in 0..200u64 {
        if i == before_crash {
            sim.fail_after(Some(rng.below(30)));
        }
        let records = 1 + rng.below(3) as u32;
        let mut b = batch(records, i as i64 * 5, rng.below(120) as usize, seed ^ i);
        attempted.push(body(&b).to_vec());
        match log.append(&mut b) {
            Ok(info) => {
                acked += 1;
                if matches!(sync, SyncPolicy::EveryBatch) {
                    durable.push((info.base_offset, info.last_offset, b));
                }
            }
            Err(_) => break,
        }
        if !matches!(sync, SyncPolicy::EveryBatch) && rng.below(8) == 0 && log.flush().is_ok() {
            // Everything appended so far is durable now.
            let end = log.log_end_offset();
            let all = read_all(&log);
            durable = all.into_iter().filter(|(_, last, _)| *last < end).collect();
        }
    }
    drop(log);

    let image: Arc<dyn Storage> = Arc::new(sim.crash_image(crash));
    let log = Log::open(image, cfg).expect("recovery opens the crashed log");
    let got = read_all(&log);
    let by_base: HashMap<u64, &(u64, u64, Vec<u8>)> = got.iter().map(|b| (b.0, b)).collect();
    for (base, last, bytes) in &durable {
        let found = by_base
            .get(base)
            .unwrap_or_else(|| panic!("seed {seed}: synced batch {base} lost ({crash:?})"));
        assert_eq!(
            (found.1, body(&found.2)),
            (*last, body(bytes)),
            "seed {seed}: batch {base} changed"
        );
    }
    // Nothing that was never appended appears; offsets increase.
    let mut prev_end = 0;
    for (base, last, bytes) in &got {
        assert!(*base >= prev_end, "seed {seed}: offsets go backwards");
        assert!(
            attempted.iter().any(|a| a == body(bytes)),
            "seed {seed}: unknown batch at {base}"
        );
        prev_end = last + 1;
    }
    // Appends continue after recovery.
    let end = log.log_end_offset();
    let info = log
        .append(&mut batch(1, 0, 10, 1))
        .expect("append after recovery");
    assert_eq!(info.base_offset, end);
    assert_eq!(log.read(end, 100).unwrap().batch_count, 1);
    acked
}

#[test]
fn every_batch_sync_survives_power_loss_at_many_points() {
    let mut acked = 0;
    for seed in 0..60 {
        acked += scenario(seed, SyncPolicy::EveryBatch, Crash::DropUnsynced);
        acked += scenario(
            seed,
            SyncPolicy::EveryBatch,
            Crash::Torn { seed: seed * 7 + 1 },
        );
        acked += scenario(seed, SyncPolicy::EveryBatch, Crash::KeepAll);
    }
    assert!(
        acked > 500,
        "scenarios must append something before crashing"
    );
}

#[test]
fn flushed_data_survives_power_loss_with_os_policy() {
    for seed in 100..160 {
        scenario(seed, SyncPolicy::Os, Crash::DropUnsynced);
        scenario(seed, SyncPolicy::Os, Crash::Torn { seed });
        scenario(
            seed,
            SyncPolicy::EveryRecords(5),
            Crash::Torn { seed: seed + 3 },
        );
    }
}

#[test]
fn crash_after_clean_close_loses_nothing_and_reopens_without_scanning() {
    let sim = CrashStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let cfg = config(SyncPolicy::Os);
    let log = Log::open(storage, cfg.clone()).unwrap();
    for i in 0..100u64 {
        log.append(&mut batch(2, i as i64, 40, i)).unwrap();
    }
    let expected = read_all(&log);
    log.close().unwrap();
    drop(log);
    let image: Arc<dyn Storage> = Arc::new(sim.crash_image(Crash::DropUnsynced));
    let log = Log::open(image, cfg).unwrap();
    assert_eq!(read_all(&log), expected);
}

#[test]
fn concurrent_group_commits_survive_power_loss() {
    for round in 0..20u64 {
        let sim = CrashStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        let cfg = config(SyncPolicy::EveryBatch);
        let log = Log::open(storage, cfg.clone()).unwrap();
        let acked = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let log = log.clone();
                let acked = acked.clone();
                std::thread::spawn(move || {
                    for i in 0..60u64 {
                        let mut b = batch(1, i as i64, 80, t * 1000 + i);
                        match log.append(&mut b) {
                            Ok(info) => acked.lock().push((info.base_offset, info.last_offset, b)),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Cut the power after a while, whatever the threads are doing.
        while log.log_end_offset() < 20 + round * 3 {
            std::thread::yield_now();
        }
        sim.fail_after(Some(round % 7));
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        let image: Arc<dyn Storage> = Arc::new(sim.crash_image(Crash::DropUnsynced));
        let log = Log::open(image, cfg).unwrap();
        let got: HashMap<u64, (u64, Vec<u8>)> = read_all(&log)
            .into_iter()
            .map(|(b, l, bytes)| (b, (l, bytes)))
            .collect();
        for (base, last, bytes) in acked.lock().iter() {
            let (l, g) = got
                .get(base)
                .unwrap_or_else(|| panic!("round {round}: acked batch {base} lost"));
            assert_eq!((l, body(g)), (last, body(bytes)));
        }
    }
}

#[test]
fn a_segment_sealed_by_a_roll_is_synced_in_the_background() {
    let sim = CrashStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut cfg = small_config();
    cfg.segment_bytes = 2048;
    assert!(cfg.seal_in_background, "the default");
    let log = Log::open(storage, cfg.clone()).unwrap();
    let mut sealed = Vec::new();
    while log.segments().len() < 2 {
        let mut b = batch(2, 7, 100, log.log_end_offset());
        let info = log.append(&mut b).unwrap();
        sealed.push((info.base_offset, info.last_offset, b));
    }
    // The batch that rolled went to the new segment; everything before it was sealed.
    sealed.pop();
    // No sync was asked for (SyncPolicy::Os): only the sealer makes the sealed segment durable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let image: Arc<dyn Storage> = Arc::new(sim.crash_image(Crash::DropUnsynced));
        let recovered = Log::open(image, cfg.clone()).unwrap();
        let got = read_all(&recovered);
        if got.len() >= sealed.len() {
            assert_eq!(got[..sealed.len()], sealed[..]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sealed segment was not synced in the background"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    log.close().unwrap();
}
