//! A full disk fails the append that hits it with `AppendError::NoSpace`, leaves the log
//! consistent (nothing of the failed batch is visible, before or after reopening), and appends
//! work again once space returns — including when the disk fills during a segment roll.

use super::common::*;
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{AppendError, SyncPolicy};
use std::sync::Arc;

#[test]
fn full_disk_fails_the_append_and_recovers_when_space_returns() {
    for quota in [6_000u64, 9_000, 13_000, 20_000] {
        let m = MemStorage::new();
        let s: Arc<dyn Storage> = Arc::new(m.clone());
        let mut cfg = small_config();
        cfg.index_max_bytes = 256;
        cfg.sync = SyncPolicy::EveryBatch;
        let log = open(&s, &cfg);
        m.set_quota(quota);
        let mut acked = Vec::new();
        let mut failures = 0;
        for i in 0..200u64 {
            let mut b = batch(2, i as i64, 150, i);
            match log.append(&mut b) {
                Ok(info) => acked.push((info.base_offset, info.last_offset, b)),
                Err(AppendError::NoSpace(_)) => {
                    failures += 1;
                    assert_eq!(read_all(&log), acked, "quota {quota}: log stays consistent");
                    if failures == 3 {
                        break;
                    }
                }
                Err(e) => panic!("quota {quota}: unexpected error {e}"),
            }
        }
        assert_eq!(failures, 3, "quota {quota} must be hit");
        m.set_quota(u64::MAX);
        for i in 0..20u64 {
            let mut b = batch(1, 0, 150, 1000 + i);
            let info = log.append(&mut b).expect("append after space returns");
            assert_eq!(info.base_offset, acked.last().map_or(0, |a| a.1 + 1));
            acked.push((info.base_offset, info.last_offset, b));
        }
        assert_eq!(read_all(&log), acked);
        drop(log);
        let log = open(&s, &cfg);
        assert_eq!(
            read_all(&log),
            acked,
            "quota {quota}: reopen sees exactly the acked batches"
        );
    }
}
