//! `Log::truncate_to`: the tail from the batch holding the offset on is dropped (rounded down
//! to a batch boundary), across segment boundaries; the next append gets the new end; readers
//! never see the dropped records; and a crash at any IO step of the truncation (every
//! `fail_after` budget, every failpoint, every crash image) reopens to either the old log or
//! the truncated one, with indexes that find every batch.

use super::common::*;
use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{Log, LogConfig, ReadError, SyncPolicy, TruncateError};
use std::sync::Arc;

fn config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1200;
    c.index_interval_bytes = 100;
    c.sync = SyncPolicy::EveryBatch;
    // Every IO on the test's thread, so `fail_after` counts the same operations each run.
    c.seal_in_background = false;
    c
}

/// A closed log of `n` batches (1 to 3 records each) over several segments.
fn filled(n: u64) -> MemStorage {
    let m = MemStorage::new();
    let log = Log::open(Arc::new(m.clone()), config()).unwrap();
    for i in 0..n {
        log.append(&mut batch(1 + (i % 3) as u32, i as i64 * 10, 60, i))
            .unwrap();
    }
    log.close().unwrap();
    m
}

fn copy(m: &MemStorage) -> MemStorage {
    MemStorage::from_files(m.list().unwrap().into_iter().map(|n| {
        let data = m.read_file(&n).unwrap();
        (n, data)
    }))
}

fn open(m: &MemStorage) -> Arc<Log> {
    Log::open(Arc::new(m.clone()), config()).unwrap()
}

/// The batches of `all` that end before `offset`, and the new end a truncation to `offset`
/// leaves.
fn kept(all: &[Stored], offset: u64) -> (Vec<Stored>, u64) {
    let keep: Vec<Stored> = all.iter().filter(|b| b.1 < offset).cloned().collect();
    let end = all
        .iter()
        .find(|b| b.1 >= offset)
        .map_or_else(|| all.last().map_or(0, |b| b.1 + 1), |b| b.0);
    (keep, end)
}

/// Every offset finds its batch through the indexes, and timestamps find theirs.
fn check_lookups(log: &Log, expected: &[Stored]) {
    for b in expected {
        for o in b.0..=b.1 {
            let f = log.read(o, 1).unwrap();
            assert_eq!(batches(&f)[0], *b, "read at {o}");
        }
        let ts = distlog_storage::batch::parse_header(&b.2)
            .unwrap()
            .max_timestamp();
        let found = log.offset_for_timestamp(ts).unwrap().unwrap();
        assert!(
            found <= b.0,
            "timestamp {ts} found {found}, batch at {}",
            b.0
        );
    }
    let end = expected.last().map_or(log.log_start_offset(), |b| b.1 + 1);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.read(end, 1 << 20).unwrap().batch_count, 0);
}

#[test]
fn truncation_drops_the_tail_from_the_batch_holding_the_offset() {
    let base = filled(40);
    let all = read_all(&open(&copy(&base)));
    let end = all.last().unwrap().1 + 1;
    assert!(open(&copy(&base)).segments().len() > 3);
    for offset in 0..end {
        let m = copy(&base);
        let log = open(&m);
        let (keep, new_end) = kept(&all, offset);
        assert_eq!(log.truncate_to(offset).unwrap(), new_end, "offset {offset}");
        assert_eq!(read_all(&log), keep);
        check_lookups(&log, &keep);
        // The next append gets the new end, and the log stays consistent across a reopen.
        let info = log.append(&mut batch(2, 1_000, 30, 99)).unwrap();
        assert_eq!(info.base_offset, new_end);
        let mut expected = keep.clone();
        expected.extend(batches(&log.read(new_end, 1 << 20).unwrap()));
        drop(log);
        let log = open(&m);
        assert_eq!(read_all(&log), expected);
        check_lookups(&log, &expected);
        assert!(m.read_file(distlog_storage::log::TRUNCATION_NAME).is_none());
    }
}

#[test]
fn truncation_at_or_after_the_end_changes_nothing_and_below_the_start_is_refused() {
    let m = copy(&filled(30));
    let log = open(&m);
    let all = read_all(&log);
    let end = log.log_end_offset();
    assert_eq!(log.truncate_to(end).unwrap(), end);
    assert_eq!(log.truncate_to(end + 100).unwrap(), end);
    assert_eq!(read_all(&log), all);
    let oldest = log.segments()[0].base_offset;
    let second = log.segments()[1].base_offset;
    log.delete_segments(&[oldest]).unwrap();
    assert!(matches!(
        log.truncate_to(second - 1),
        Err(TruncateError::BelowLogStart { offset, log_start }) if offset == second - 1 && log_start == second
    ));
    // Truncating to the log start empties the log but keeps its start.
    assert_eq!(log.truncate_to(second).unwrap(), second);
    assert!(read_all(&log).is_empty());
    assert_eq!(log.log_start_offset(), second);
    assert_eq!(
        log.append(&mut batch(1, 0, 10, 0)).unwrap().base_offset,
        second
    );
    drop(log);
    let log = open(&m);
    assert_eq!(log.log_start_offset(), second);
    assert_eq!(log.log_end_offset(), second + 1);
}

#[test]
fn readers_never_see_truncated_records() {
    let log = open(&copy(&filled(30)));
    let all = read_all(&log);
    let cut = all[10].0;
    let before = log.snapshot();
    log.truncate_to(cut).unwrap();
    assert!(matches!(
        log.read(all[20].0, 1 << 20),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.read(cut, 1 << 20).unwrap().batch_count, 0);
    assert_eq!(log.high_watermark(), cut);
    // A snapshot taken before keeps its view of the segments that remain, cut included.
    let old = before.read(all[5].0, 1).unwrap();
    assert_eq!(batches(&old)[0], all[5]);
}

/// Opens every crash image of `sim` and checks it holds `old` or `new` (and nothing else),
/// with working indexes.
fn check_images(sim: &CrashStorage, old: &[Stored], new: &[Stored], what: &str) -> bool {
    let mut saw_new = false;
    for crash in [
        Crash::DropUnsynced,
        Crash::KeepAll,
        Crash::Torn { seed: 1 },
        Crash::Torn { seed: 7 },
    ] {
        let image = sim.crash_image(crash);
        let log = open(&image);
        let got = read_all(&log);
        assert!(
            got == old || got == new,
            "{what}, {crash:?}: {} batches, neither the old {} nor the truncated {}",
            got.len(),
            old.len(),
            new.len()
        );
        saw_new |= got == new;
        check_lookups(&log, &got);
        // A second open (no crash) agrees, and verifying everything agrees.
        drop(log);
        assert_eq!(read_all(&open(&image)), got, "{what}, {crash:?}: reopen");
        let mut strict = config();
        strict.verify_on_open = true;
        let log = Log::open(Arc::new(image), strict).unwrap();
        assert_eq!(read_all(&log), got, "{what}, {crash:?}: verify_on_open");
    }
    saw_new
}

#[test]
fn a_crash_at_any_step_of_a_truncation_leaves_the_old_or_the_truncated_log() {
    let base = filled(40);
    let old = read_all(&open(&copy(&base)));
    // Inside the active segment, inside an older one, and at a segment start.
    let segs = open(&copy(&base)).segments();
    let offsets = [old[old.len() - 2].0 + 1, old[8].0, segs[2].base_offset];
    for offset in offsets {
        let (new, _) = kept(&old, offset);
        let mut finished = false;
        // Budgets that stopped the truncation after its commit point.
        let mut stopped_committed = 0;
        for budget in 0..200 {
            let sim = CrashStorage::from_image(&base);
            let log = Log::open(Arc::new(sim.clone()), config()).unwrap();
            sim.fail_after(Some(budget));
            let result = log.truncate_to(offset);
            if result.is_err() && log.failure().is_none() {
                // Refused before the commit point: the live log is unchanged.
                assert_eq!(read_all(&log), old, "offset {offset}, budget {budget}");
            }
            if result.is_err() && log.failure().is_some() {
                stopped_committed += 1;
            }
            drop(log);
            sim.fail_after(None);
            check_images(
                &sim,
                &old,
                &new,
                &format!("offset {offset}, budget {budget}"),
            );
            if result.is_ok() {
                // Completed: a power loss now must keep the truncation.
                let image = sim.crash_image(Crash::DropUnsynced);
                assert_eq!(read_all(&open(&image)), new, "offset {offset}: durable");
                finished = true;
                break;
            }
        }
        assert!(finished, "the truncation to {offset} never completed");
        assert!(
            stopped_committed >= 3,
            "only {stopped_committed} crashes after the commit point"
        );
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_truncation_stopped_after_its_commit_point_is_completed_on_open() {
    use distlog_storage::failpoint;
    let base = filled(40);
    let old = read_all(&open(&copy(&base)));
    let offset = old[8].0;
    let (new, new_end) = kept(&old, offset);
    for point in [
        "truncate::commit",
        "delete::sync",
        "truncate::cut",
        "truncate::done",
    ] {
        failpoint::clear();
        let sim = CrashStorage::from_image(&base);
        let log = Log::open(Arc::new(sim.clone()), config()).unwrap();
        failpoint::set(point, 0);
        assert!(
            matches!(log.truncate_to(offset), Err(TruncateError::Io(_))),
            "{point}"
        );
        failpoint::clear();
        // Failed, so nothing lands over the half-done truncation; readers stop at the new end.
        assert!(log.failure().is_some(), "{point}");
        assert!(log.append(&mut batch(1, 0, 10, 0)).is_err());
        assert!(
            read_all(&log) == new,
            "{point}: the live log still serves dropped records"
        );
        drop(log);
        // Reopening the live files completes it.
        let live = sim.crash_image(Crash::KeepAll);
        let log = open(&live);
        assert!(read_all(&log) == new, "{point}: reopened");
        assert_eq!(log.log_end_offset(), new_end);
        drop(log);
        assert!(
            live.read_file(distlog_storage::log::TRUNCATION_NAME)
                .is_none()
        );
        check_images(&sim, &old, &new, point);
    }
}
