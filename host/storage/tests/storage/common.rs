//! Shared test helpers: batch construction, log opening, decoding fetched bytes.

#![allow(dead_code)]

use distlog_storage::batch::{BatchBuilder, Record, parse_header};
use distlog_storage::io::{MemStorage, Storage};
use distlog_storage::{Fetched, Log, LogConfig, SyncPolicy};
use std::sync::Arc;

/// A batch of `records` records with `value_len`-byte values; record i has timestamp `ts + i`
/// and a value derived from `seed` and i.
pub fn batch(records: u32, ts: i64, value_len: usize, seed: u64) -> Vec<u8> {
    let mut b = BatchBuilder::with_capacity(records as usize * (value_len + 16));
    for i in 0..records {
        let v: Vec<u8> = (0..value_len)
            .map(|j| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7 + j as u64) % 251) as u8)
            .collect();
        b.push(&Record::new(ts + i64::from(i), v))
            .expect("record fits");
    }
    b.finish().expect("valid batch")
}

/// A small-segment configuration for tests: 4 KiB segments, 256-byte index interval, small
/// preallocated indexes, no fsync waits.
pub fn small_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 4096;
    c.index_interval_bytes = 256;
    c.index_max_bytes = 4096;
    c.sync = SyncPolicy::Os;
    c
}

pub fn open(storage: &Arc<dyn Storage>, config: &LogConfig) -> Arc<Log> {
    Log::open(storage.clone(), config.clone()).expect("open log")
}

pub fn mem() -> (MemStorage, Arc<dyn Storage>) {
    let m = MemStorage::new();
    let s: Arc<dyn Storage> = Arc::new(m.clone());
    (m, s)
}

/// A stored batch as tests see it: (base offset, last offset, whole batch bytes).
pub type Stored = (u64, u64, Vec<u8>);

/// (base offset, last offset, whole batch bytes) of each batch in a fetch.
pub fn batches(f: &Fetched) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < f.bytes().len() {
        let h = parse_header(&f.bytes()[at..]).expect("fetched batch parses");
        let len = h.total_len();
        out.push((
            h.base_offset(),
            h.last_offset(),
            f.bytes()[at..at + len].to_vec(),
        ));
        at += len;
    }
    out
}

/// Reads the whole log from its start; returns (base, last, bytes) per batch.
pub fn read_all(log: &Log) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let f = log.read(offset, 64 * 1024).expect("read");
        if f.batch_count == 0 {
            break;
        }
        offset = f.next_offset;
        out.extend(batches(&f));
    }
    out
}

/// Bytes after the base offset (which the log patches): what identifies a batch's content.
pub fn body(batch: &[u8]) -> &[u8] {
    &batch[8..]
}

/// A storage that counts bytes read from `.log` files (to check what opening a log reads).
#[derive(Debug)]
pub struct CountingStorage {
    pub inner: Arc<dyn Storage>,
    pub log_bytes_read: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn distlog_storage::io::StorageFile>,
    counter: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl distlog_storage::io::StorageFile for CountingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if let Some(c) = &self.counter {
            c.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

impl Storage for CountingStorage {
    fn open(
        &self,
        name: &str,
        mode: distlog_storage::io::OpenMode,
    ) -> std::io::Result<Arc<dyn distlog_storage::io::StorageFile>> {
        let inner = self.inner.open(name, mode)?;
        let counter = name.ends_with(".log").then(|| self.log_bytes_read.clone());
        Ok(Arc::new(CountingFile { inner, counter }))
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.inner.sync_dir()
    }
}
