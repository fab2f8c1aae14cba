//! Damage at random positions: a flipped byte or a truncation anywhere in a `.log`, `.index` or
//! `.timeindex` file never makes the log serve a batch that differs from what was appended or
//! under other offsets, never panics, and leaves the log appendable. Index damage is repaired
//! (indexes are caches). Log damage costs only the damaged batch: recovery (or the read that
//! finds it) resynchronises on the next valid batch, the lost offsets are reported as
//! `ReadError::DataLoss` naming them, and every intact batch after them is still served; only a
//! torn tail of the newest segment is truncated. Flips include the base offset and the leader
//! epoch, which the CRC does not cover but the header chain does (see docs/FORMAT.md).

use super::common::*;
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{Log, LogConfig, ReadError};
use std::collections::HashMap;
use std::sync::Arc;

fn build(clean_close: bool) -> (MemStorage, LogConfig, Vec<Stored>) {
    let m = MemStorage::new();
    let s: Arc<dyn Storage> = Arc::new(m.clone());
    let mut cfg = small_config();
    cfg.index_interval_bytes = 200;
    let log = open(&s, &cfg);
    let mut expected = Vec::new();
    for i in 0..80u64 {
        let mut b = batch(1 + (i % 3) as u32, i as i64 * 3, 60 + (i % 50) as usize, i);
        let info = log.append(&mut b).unwrap();
        expected.push((info.base_offset, info.last_offset, b));
    }
    if clean_close {
        log.close().unwrap();
    }
    (m, cfg, expected)
}

fn copy(m: &MemStorage) -> MemStorage {
    let names = m.list().unwrap();
    MemStorage::from_files(names.into_iter().map(|n| {
        let data = m.read_file(&n).unwrap();
        (n, data)
    }))
}

/// What a full read of a damaged log served.
struct Served {
    /// Batches served (each checked against what was appended).
    ok: usize,
    /// Offset ranges `[first, next)` reported lost with `ReadError::DataLoss`.
    lost: Vec<(u64, u64)>,
}

/// Reads every offset one by one; each answer must be a batch that was appended with exactly
/// those offsets, or `DataLoss` naming whole appended batches, after which reading goes on at
/// the offset it names.
fn check_served(log: &Log, expected: &[(u64, u64, Vec<u8>)]) -> Served {
    let by_base: HashMap<u64, &(u64, u64, Vec<u8>)> = expected.iter().map(|b| (b.0, b)).collect();
    let mut served = Served {
        ok: 0,
        lost: Vec::new(),
    };
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        match log.read(offset, 1) {
            Ok(f) if f.batch_count == 0 => break,
            Ok(f) => {
                for (base, last, bytes) in batches(&f) {
                    let e = by_base.get(&base).expect("served batch was appended");
                    assert_eq!((e.1, body(&e.2)), (last, body(&bytes)));
                    assert!(base <= offset.max(base) && last >= offset);
                    served.ok += 1;
                }
                offset = f.next_offset;
            }
            Err(ReadError::DataLoss {
                first_offset,
                next_offset,
                ..
            }) => {
                assert!(first_offset <= offset && offset < next_offset);
                assert!(
                    by_base.contains_key(&first_offset),
                    "loss starts at a batch boundary: {first_offset}"
                );
                assert!(
                    next_offset == end || by_base.contains_key(&next_offset),
                    "loss ends at a batch boundary: {next_offset}"
                );
                served.lost.push((first_offset, next_offset));
                offset = next_offset;
            }
            Err(e) => panic!("unexpected read error {e}"),
        }
    }
    served
}

/// Batches of `expected` inside the reported losses.
fn lost_batches(served: &Served, expected: &[(u64, u64, Vec<u8>)]) -> usize {
    expected
        .iter()
        .filter(|e| served.lost.iter().any(|(a, b)| e.0 >= *a && e.1 < *b))
        .count()
}

fn files_with(m: &MemStorage, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = m
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn flipped_bytes_are_never_served() {
    for clean in [true, false] {
        let (m, cfg, expected) = build(clean);
        let mut rng = 0x1234_5678u64;
        for ext in [".log", ".index", ".timeindex"] {
            for round in 0..40 {
                let image = copy(&m);
                let files = files_with(&image, ext);
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let name = &files[(rng >> 33) as usize % files.len()];
                let mut data = image.read_file(name).unwrap();
                if data.is_empty() {
                    continue;
                }
                let at = (rng >> 17) as usize % data.len();
                data[at] ^= 1 << (round % 8);
                image.write_file(name, data);
                for verify in [false, true] {
                    let mut cfg = cfg.clone();
                    cfg.verify_on_open = verify;
                    let s: Arc<dyn Storage> = Arc::new(copy(&image));
                    let log = Log::open(s, cfg).expect("open damaged log");
                    let served = check_served(&log, &expected);
                    if ext != ".log" {
                        assert!(
                            served.lost.is_empty(),
                            "index damage is repaired, not reported"
                        );
                        assert_eq!(served.ok, expected.len(), "{name}@{at}: all batches served");
                    } else {
                        // One flipped bit costs at most the batch it is in: reported as lost, or
                        // (a torn-looking tail of the newest segment) truncated on open.
                        let lost = lost_batches(&served, &expected);
                        assert!(lost <= 1, "{name}@{at}: {lost} batches lost");
                        assert!(
                            served.ok + 1 >= expected.len(),
                            "{name}@{at}: only {} of {} intact batches served",
                            served.ok,
                            expected.len()
                        );
                        assert!(served.ok + lost <= expected.len());
                    }
                    let end = log.log_end_offset();
                    let info = log.append(&mut batch(1, 0, 5, 0)).unwrap();
                    assert_eq!(info.base_offset, end);
                }
            }
        }
    }
}

#[test]
fn truncation_at_random_positions_keeps_the_valid_prefix() {
    for clean in [true, false] {
        let (m, cfg, expected) = build(clean);
        let mut rng = 0xdead_beefu64;
        for ext in [".log", ".index", ".timeindex"] {
            for _ in 0..30 {
                let image = copy(&m);
                let files = files_with(&image, ext);
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let name = &files[(rng >> 33) as usize % files.len()];
                let mut data = image.read_file(name).unwrap();
                let cut = if data.is_empty() {
                    0
                } else {
                    (rng >> 17) as usize % data.len()
                };
                data.truncate(cut);
                image.write_file(name, data);
                let s: Arc<dyn Storage> = Arc::new(image);
                let log = Log::open(s, cfg.clone()).expect("open truncated log");
                let served = check_served(&log, &expected);
                if ext != ".log" {
                    assert!(served.lost.is_empty());
                    assert_eq!(served.ok, expected.len());
                } else {
                    // What the cut removed from an older segment is reported lost; from the
                    // newest it is a torn tail, truncated. Nothing else is missing.
                    let end = log.log_end_offset();
                    let lost = lost_batches(&served, &expected);
                    let past_end = expected.iter().filter(|e| e.0 >= end).count();
                    assert_eq!(
                        served.ok + lost + past_end,
                        expected.len(),
                        "{name} cut at {cut}"
                    );
                }
                log.append(&mut batch(1, 0, 5, 0)).unwrap();
            }
        }
    }
}

#[test]
fn deleted_indexes_are_rebuilt_identical() {
    for clean in [true, false] {
        let (m, cfg, expected) = build(clean);
        let image = copy(&m);
        let mut originals = Vec::new();
        for ext in [".index", ".timeindex"] {
            for name in files_with(&image, ext) {
                originals.push((name.clone(), image.read_file(&name).unwrap()));
                image.remove(&name).unwrap();
            }
        }
        let s: Arc<dyn Storage> = Arc::new(image.clone());
        let log = Log::open(s, cfg.clone()).unwrap();
        assert_eq!(read_all(&log), expected);
        for (name, data) in originals {
            let rebuilt = image.read_file(&name).unwrap();
            // Sealed indexes were trimmed on roll; compare entries, ignoring preallocated zeros.
            let trim = |d: &[u8]| {
                let mut d = d.to_vec();
                while d.last() == Some(&0) {
                    d.pop();
                }
                d
            };
            assert_eq!(trim(&rebuilt), trim(&data), "{name} (clean close: {clean})");
        }
    }
}
