//! Readers running during appends never block the writer and never see a half-written batch;
//! group commit makes concurrent EveryBatch appenders share fsyncs; a reader holding a snapshot
//! keeps reading segments that retention deleted.

use super::common::*;
use distlog_storage::io::{FsStorage, MemStorage, OpenMode, Storage, StorageFile};
use distlog_storage::{Log, LogConfig, ReadError, SyncPolicy};
use parking_lot::{Condvar, Mutex};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[test]
fn readers_see_only_whole_batches_while_appending() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let done = Arc::new(AtomicBool::new(false));
    let total = 400u64;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let log = log.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let mut offset = 0;
                    loop {
                        let f = log.read(offset, 1500).expect("read during appends");
                        if f.batch_count == 0 {
                            break;
                        }
                        for (base, last, bytes) in batches(&f) {
                            assert_eq!(base, offset, "batches are contiguous");
                            // Batch i carries records with timestamps i*10.., seed i.
                            assert_eq!(
                                body(&bytes),
                                body(&batch(2, base as i64 / 2 * 10, 50, base / 2))
                            );
                            offset = last + 1;
                        }
                        reads += 1;
                    }
                    if finished {
                        assert_eq!(offset, total * 2);
                        return reads;
                    }
                }
            })
        })
        .collect();
    for i in 0..total {
        log.append(&mut batch(2, i as i64 * 10, 50, i)).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// A storage whose `sync` counts calls and blocks while a gate is closed.
#[derive(Debug)]
struct GatedStorage {
    inner: MemStorage,
    syncs: Arc<AtomicU64>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn StorageFile>,
    syncs: Arc<AtomicU64>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl StorageFile for GatedFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let mut open = self.gate.0.lock();
        while !*open {
            self.gate.1.wait(&mut open);
        }
        self.inner.sync()
    }
}

impl Storage for GatedStorage {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(name, mode)?;
        Ok(Arc::new(GatedFile {
            inner,
            syncs: self.syncs.clone(),
            gate: self.gate.clone(),
        }))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
}

#[test]
fn group_commit_covers_concurrent_appenders_with_one_more_sync() {
    let syncs = Arc::new(AtomicU64::new(0));
    let gate = Arc::new((Mutex::new(true), Condvar::new()));
    let storage: Arc<dyn Storage> = Arc::new(GatedStorage {
        inner: MemStorage::new(),
        syncs: syncs.clone(),
        gate: gate.clone(),
    });
    let mut config = LogConfig::default();
    config.sync = SyncPolicy::EveryBatch;
    let log = Log::open(storage, config).unwrap();
    // Close the gate: the first sync blocks until every appender has written its batch.
    *gate.0.lock() = false;
    let before = syncs.load(Ordering::SeqCst);
    let appenders: Vec<_> = (0..8u64)
        .map(|i| {
            let log = log.clone();
            std::thread::spawn(move || {
                let info = log.append(&mut batch(1, 0, 100, i)).unwrap();
                assert!(
                    log.synced_offset() > info.last_offset,
                    "acked only once synced"
                );
                info
            })
        })
        .collect();
    // Wait (by condition) until all 8 batches are written and one sync is in flight.
    while log.log_end_offset() < 8 || syncs.load(Ordering::SeqCst) == before {
        std::thread::yield_now();
    }
    *gate.0.lock() = true;
    gate.1.notify_all();
    for a in appenders {
        a.join().unwrap();
    }
    let used = syncs.load(Ordering::SeqCst) - before;
    assert!(
        used <= 2,
        "8 appenders used {used} syncs; group commit shares them"
    );
    assert_eq!(log.synced_offset(), 8);
}

#[test]
fn snapshot_keeps_reading_deleted_segments_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::create(dir.path()).unwrap());
    let log = open(&s, &small_config());
    let mut expected = Vec::new();
    for i in 0..60u64 {
        let mut b = batch(1, i as i64, 100, i);
        let info = log.append(&mut b).unwrap();
        expected.push((info.base_offset, info.last_offset, b));
    }
    let snapshot = log.snapshot();
    let segs = log.segments();
    let old: Vec<u64> = segs[..segs.len() - 1]
        .iter()
        .map(|s| s.base_offset)
        .collect();
    assert_eq!(log.delete_segments(&old).unwrap(), old);
    assert!(
        !s.list()
            .unwrap()
            .iter()
            .any(|n| n == "00000000000000000000.log")
    );
    assert!(matches!(
        log.read(0, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    // The snapshot still reads every batch of the deleted segments.
    let mut offset = 0;
    let mut got = Vec::new();
    while offset < snapshot.log_end_offset() {
        let f = snapshot.read(offset, 1000).unwrap();
        offset = f.next_offset;
        got.extend(batches(&f));
    }
    assert_eq!(got, expected);
}
