//! The storage threads belong to a `LogThreads` handle: one sealer and one flusher per handle
//! whatever the number of logs on it, two handles share nothing, and logs on a stopped handle
//! seal and sync inline. Guards against a thread per log and against a process-wide thread
//! that one shutdown takes away from every log.

use super::common::{batch, mem, small_config};
use distlog_storage::{Log, LogThreads, SyncPolicy, SystemClock};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many threads of this process carry `name` (as the kernel shows it: 15 bytes at most).
fn threads_named(name: &str) -> usize {
    let shown = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == shown)
        .count()
}

/// Waits (bounded, not a timing assertion) until `done` holds.
fn await_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until both threads of `threads` have named themselves (a new thread sets its name
/// once it runs).
fn await_started(threads: &LogThreads) {
    let id = threads.id();
    await_until("the threads starting", || {
        threads_named(&format!("dl-seal-{id}")) == 1
            && threads_named(&format!("dl-flush-{id}")) == 1
    });
}

fn open_on(threads: &Arc<LogThreads>, sync: SyncPolicy) -> Arc<Log> {
    let (_m, s) = mem();
    let mut cfg = small_config();
    cfg.sync = sync;
    Log::open_in(threads, s, cfg, Arc::new(SystemClock)).expect("open log")
}

#[test]
fn interval_logs_on_one_handle_share_one_flusher_thread() {
    let threads = LogThreads::start().unwrap();
    await_started(&threads);
    let flush = format!("dl-flush-{}", threads.id());
    let seal = format!("dl-seal-{}", threads.id());
    let logs: Vec<_> = (0..16)
        .map(|_| open_on(&threads, SyncPolicy::IntervalMs(1)))
        .collect();
    for (i, log) in logs.iter().enumerate() {
        for j in 0..3 {
            log.append(&mut batch(1, j, 10, i as u64)).unwrap();
        }
    }
    for log in &logs {
        let end = log.log_end_offset();
        await_until("the interval sync", || log.synced_offset() >= end);
    }
    assert_eq!(threads_named(&flush), 1, "one flusher for 16 interval logs");
    assert_eq!(threads_named(&seal), 1, "one sealer for 16 logs");
    threads.shutdown();
    assert_eq!(threads_named(&flush), 0);
    assert_eq!(threads_named(&seal), 0);
    // Still appendable, and synced inline now that no flusher runs.
    let log = &logs[0];
    let info = log.append(&mut batch(1, 9, 10, 0)).unwrap();
    assert!(log.synced_offset() > info.last_offset);
}

#[test]
fn shutting_down_one_handle_leaves_the_other_alone() {
    let a = LogThreads::start().unwrap();
    let b = LogThreads::start().unwrap();
    assert_ne!(a.id(), b.id());
    await_started(&a);
    await_started(&b);
    let on_a = open_on(&a, SyncPolicy::IntervalMs(1));
    let sealed_on_a = open_on(&a, SyncPolicy::Os);
    let on_b = open_on(&b, SyncPolicy::IntervalMs(1));
    let sealed_on_b = open_on(&b, SyncPolicy::Os);
    b.shutdown();
    assert_eq!(threads_named(&format!("dl-seal-{}", b.id())), 0);
    assert_eq!(threads_named(&format!("dl-seal-{}", a.id())), 1);
    assert_eq!(threads_named(&format!("dl-flush-{}", a.id())), 1);

    // On the stopped handle: the interval sync and the sealer's job run inline.
    let info = on_b.append(&mut batch(2, 0, 10, 1)).unwrap();
    assert_eq!(on_b.synced_offset(), info.last_offset + 1);
    sealed_on_b.append(&mut batch(2, 0, 10, 2)).unwrap();
    assert!(sealed_on_b.roll().unwrap());
    assert_eq!(sealed_on_b.synced_offset(), 2, "sealed inline by the roll");

    // On the running handle: the threads still do the work.
    let info = on_a.append(&mut batch(2, 0, 10, 3)).unwrap();
    await_until("the interval sync on the live handle", || {
        on_a.synced_offset() > info.last_offset
    });
    sealed_on_a.append(&mut batch(2, 0, 10, 4)).unwrap();
    assert!(sealed_on_a.roll().unwrap());
    await_until("the background seal on the live handle", || {
        sealed_on_a.synced_offset() == 2
    });
    for log in [on_a, sealed_on_a, on_b, sealed_on_b] {
        log.close().unwrap();
    }
}

#[test]
fn dropping_the_last_reference_stops_the_threads() {
    let threads = LogThreads::start().unwrap();
    await_started(&threads);
    let name = format!("dl-flush-{}", threads.id());
    let log = open_on(&threads, SyncPolicy::IntervalMs(1));
    log.append(&mut batch(1, 0, 10, 0)).unwrap();
    drop(threads);
    assert_eq!(threads_named(&name), 1, "the log keeps its handle alive");
    drop(log);
    assert_eq!(threads_named(&name), 0);
}

#[test]
fn a_log_opened_alone_has_threads_of_its_own() {
    let (_m, s) = mem();
    let mut cfg = small_config();
    cfg.sync = SyncPolicy::IntervalMs(1);
    let log = Log::open(s, cfg).unwrap();
    let info = log.append(&mut batch(1, 0, 10, 0)).unwrap();
    await_until("the private flusher's sync", || {
        log.synced_offset() > info.last_offset
    });
    log.close().unwrap();
}
