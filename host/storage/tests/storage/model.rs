//! Property test: random sequences of append / read / roll / close+reopen / drop+reopen /
//! delete-oldest / timestamp lookup / truncation agree with an in-memory model (a vector of batches and a
//! start offset). Bounded to 64 cases.

use super::common::*;
use distlog_storage::io::{MemStorage, Storage};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: u32,
        value_len: usize,
    },
    Read {
        pick: usize,
        max_bytes: usize,
    },
    Roll,
    Reopen,
    /// Drop without close: recovery scans everything after the last checkpoint.
    ReopenUnclean,
    DeleteOldest,
    Timestamp {
        pick: usize,
    },
    /// Truncate to an offset picked in the log (a follower dropping a divergent tail).
    Truncate {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u32..5, 0usize..300).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        4 => (any::<usize>(), 1usize..3000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::ReopenUnclean),
        1 => Just(Op::DeleteOldest),
        1 => any::<usize>().prop_map(|pick| Op::Timestamp { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Truncate { pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..80)) {
        let m = MemStorage::new();
        let s: Arc<dyn Storage> = Arc::new(m);
        let mut cfg = small_config();
        cfg.segment_bytes = 1500;
        cfg.index_interval_bytes = 100;
        let mut log = open(&s, &cfg);
        // (base, last, bytes, max timestamp)
        let mut model: Vec<(u64, u64, Vec<u8>, i64)> = Vec::new();
        let mut next = 0u64;
        let mut start = 0u64;
        let mut ts = 0i64;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { records, value_len } => {
                    ts += 3;
                    let mut b = batch(records, ts, value_len, i as u64);
                    let info = log.append(&mut b).unwrap();
                    prop_assert_eq!(info.base_offset, next);
                    prop_assert_eq!(info.last_offset, next + u64::from(records) - 1);
                    next = info.last_offset + 1;
                    model.push((info.base_offset, info.last_offset, b, ts + i64::from(records) - 1));
                }
                Op::Read { pick, max_bytes } => {
                    let span = next - start + 1;
                    let offset = start + (pick as u64 % span);
                    let f = log.read(offset, max_bytes).unwrap();
                    let got = batches(&f);
                    let from = model.iter().position(|b| b.1 >= offset);
                    match from {
                        None => prop_assert!(got.is_empty()),
                        Some(from) => {
                            prop_assert!(!got.is_empty());
                            let total: usize = got.iter().map(|g| g.2.len()).sum();
                            prop_assert!(got.len() == 1 || total <= max_bytes);
                            for (g, e) in got.iter().zip(&model[from..]) {
                                prop_assert_eq!((g.0, g.1, &g.2), (e.0, e.1, &e.2));
                            }
                            prop_assert_eq!(f.next_offset, got.last().unwrap().1 + 1);
                        }
                    }
                }
                Op::Roll => {
                    log.roll().unwrap();
                }
                Op::Reopen => {
                    log.close().unwrap();
                    drop(log);
                    log = open(&s, &cfg);
                    prop_assert_eq!(log.log_end_offset(), next);
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::ReopenUnclean => {
                    drop(log);
                    log = open(&s, &cfg);
                    prop_assert_eq!(log.log_end_offset(), next);
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::DeleteOldest => {
                    let segs = log.segments();
                    if segs.len() > 1 {
                        let oldest = segs[0];
                        log.delete_segments(&[oldest.base_offset]).unwrap();
                        start = segs[1].base_offset;
                        model.retain(|b| b.0 >= start);
                    }
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::Truncate { pick } => {
                    let span = next - start + 1;
                    let offset = start + (pick as u64 % span);
                    // Rounded down to the start of the batch holding `offset`.
                    let cut = model.iter().find(|b| b.1 >= offset).map_or(next, |b| b.0);
                    prop_assert_eq!(log.truncate_to(offset).unwrap(), cut);
                    model.retain(|b| b.0 < cut);
                    next = cut;
                    prop_assert_eq!(log.log_end_offset(), next);
                }
                Op::Timestamp { pick } => {
                    let target = (pick % (ts as usize + 5)) as i64;
                    let expected = model.iter().find(|b| b.3 >= target).map(|b| b.0);
                    prop_assert_eq!(log.offset_for_timestamp(target).unwrap(), expected);
                }
            }
            let segs = log.segments();
            prop_assert_eq!(segs.iter().map(|s| s.record_count).sum::<u64>(),
                model.iter().map(|b| b.1 - b.0 + 1).sum::<u64>());
        }
        prop_assert_eq!(read_all(&log).into_iter().map(|b| b.2).collect::<Vec<_>>(),
            model.into_iter().map(|b| b.2).collect::<Vec<_>>());
    }
}
