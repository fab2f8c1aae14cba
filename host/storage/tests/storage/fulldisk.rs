//! A full disk is an error, never a signal, and a broken index file never panics a read.
//!
//! Index files are memory-mapped. A page of a sparse file that the file system cannot place when
//! it is first touched raises SIGBUS, which kills the process; on tmpfs this happens for a read
//! as much as for a write. These tests run the log on a real, small tmpfs (mounted by the test,
//! which needs root, as CI has; without it they fail and say so), fill it, and check that
//! appends and rolls fail with `AppendError::NoSpace`, that a log reopens on the full disk with
//! the index files an older version left sparse, and that everything works again once space
//! returns. The last tests inject `set_len` failures into index files (trim on roll, growth
//! on recovery) and check that every offset still reads.

use super::common::*;
use distlog_fixtures::{Tmpfs, fill_disk};
use distlog_storage::io::{FsStorage, OpenMode, Storage, StorageFile};
use distlog_storage::{AppendError, Log, LogConfig, SyncPolicy};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn tmpfs_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 64 << 10;
    // An entry for every batch after the first, so each append touches the index.
    c.index_interval_bytes = 64;
    c.index_max_bytes = 256 << 10;
    c.sync = SyncPolicy::EveryBatch;
    c.seal_in_background = false;
    c
}

fn fs_open(dir: &Path, config: &LogConfig) -> Arc<Log> {
    Log::open(
        Arc::new(FsStorage::create(dir).expect("storage")),
        config.clone(),
    )
    .expect("open log")
}

fn append_ok(log: &Log, acked: &mut Vec<Stored>, seed: u64, value_len: usize) {
    let mut b = batch(1, seed as i64, value_len, seed);
    let info = log.append(&mut b).expect("append");
    acked.push((info.base_offset, info.last_offset, b));
}

/// Every acked batch reads back, from the start and each from its own offset (an index lookup).
fn check_reads(log: &Log, acked: &[Stored]) {
    assert_eq!(read_all(log), acked);
    for (base, last, bytes) in acked {
        let f = log.read(*base, 1).expect("read at offset");
        let got = batches(&f);
        assert_eq!(got.first().map(|b| (b.0, b.1)), Some((*base, *last)));
        assert_eq!(body(&got[0].2), body(bytes));
    }
}

#[test]
fn appends_and_rolls_on_a_full_tmpfs_fail_with_no_space() {
    let fs = Tmpfs::mount("16m");
    let dir = fs.path().join("log");
    let cfg = tmpfs_config();
    let log = fs_open(&dir, &cfg);
    let mut acked = Vec::new();
    for i in 0..20 {
        append_ok(&log, &mut acked, i, 300);
    }
    assert!(log.roll().expect("roll"));
    // One small batch in the new segment, so its log file has a partly used page left.
    append_ok(&log, &mut acked, 100, 100);
    let filler = fill_disk(fs.path(), "filler").expect("fill the tmpfs");

    // The next batches fit in that page; each one gets index entries (in pages the new segment
    // never touched yet, which a sparse index would fault on). Then the log file needs a new
    // page and the append fails.
    let mut no_space = 0;
    for i in 0..200u64 {
        let mut b = batch(1, 200 + i as i64, 100, 200 + i);
        match log.append(&mut b) {
            Ok(info) => {
                assert_eq!(no_space, 0, "an append succeeded after the disk was full");
                acked.push((info.base_offset, info.last_offset, b));
            }
            Err(AppendError::NoSpace(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                no_space += 1;
                if no_space == 3 {
                    break;
                }
            }
            Err(e) => panic!("appending to a full disk: unexpected error {e}"),
        }
    }
    assert_eq!(no_space, 3, "the disk filled up");
    // A roll needs a new segment and its preallocated indexes: no space either.
    match log.roll() {
        Err(AppendError::NoSpace(_)) => {}
        other => panic!("rolling on a full disk: {other:?}"),
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".log")).count(),
        2,
        "a failed roll leaves no segment behind: {names:?}"
    );
    check_reads(&log, &acked);

    std::fs::remove_file(&filler).expect("free space");
    for i in 0..40 {
        append_ok(&log, &mut acked, 1000 + i, 300);
    }
    check_reads(&log, &acked);
    log.close().expect("close");
    drop(log);
    check_reads(&fs_open(&dir, &cfg), &acked);
}

#[test]
fn a_log_reopens_on_a_full_tmpfs_with_sparse_index_files() {
    let fs = Tmpfs::mount("16m");
    let dir = fs.path().join("log");
    let cfg = tmpfs_config();
    let mut acked = Vec::new();
    {
        let log = fs_open(&dir, &cfg);
        for i in 0..30 {
            append_ok(&log, &mut acked, i, 300);
        }
        assert!(log.roll().expect("roll"));
        // The first batch of a segment gets no index entry: the active indexes stay empty.
        append_ok(&log, &mut acked, 50, 300);
        log.close().expect("close");
    }
    // Make the active segment's index files sparse, as versions before preallocation left
    // them: same length and contents (zeros), no allocated page.
    let active = acked.last().expect("acked").0;
    for ext in ["index", "timeindex"] {
        let path = dir.join(format!("{active:020}.{ext}"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("index file");
        let len = f.metadata().expect("stat").len();
        assert!(len > 4096, "the active index is preallocated ({len} bytes)");
        f.set_len(0).expect("truncate");
        f.set_len(len).expect("extend sparse");
    }
    let filler = fill_disk(fs.path(), "filler").expect("fill the tmpfs");

    let log = fs_open(&dir, &cfg);
    check_reads(&log, &acked);
    let mut b = batch(1, 0, 300, 99);
    match log.append(&mut b) {
        Err(AppendError::NoSpace(_)) => {}
        other => panic!("appending on a full disk: {other:?}"),
    }
    check_reads(&log, &acked);

    std::fs::remove_file(&filler).expect("free space");
    for i in 0..30 {
        append_ok(&log, &mut acked, 100 + i, 300);
    }
    check_reads(&log, &acked);
    log.close().expect("close");
    drop(log);
    check_reads(&fs_open(&dir, &cfg), &acked);
}

/// Which index file resizes [`FailingIndexes`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    /// Shrinking `set_len` (a trim on seal).
    Shrink,
    /// Growing `set_len` and `allocate` (preallocation, growth for a rebuild).
    Grow,
}

/// A directory whose index files fail one kind of resize with `kind` while armed.
#[derive(Debug)]
struct FailingIndexes {
    inner: Arc<dyn Storage>,
    armed: Arc<AtomicBool>,
    resize: Resize,
    kind: std::io::ErrorKind,
}

#[derive(Debug)]
struct FailingIndexFile {
    inner: Arc<dyn StorageFile>,
    armed: Arc<AtomicBool>,
    resize: Resize,
    kind: std::io::ErrorKind,
}

impl FailingIndexFile {
    fn check(&self, len: u64) -> std::io::Result<()> {
        let now = self.inner.len()?;
        let hit = match self.resize {
            Resize::Shrink => len < now,
            Resize::Grow => len > now,
        };
        if hit && self.armed.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                self.kind,
                "injected index resize failure",
            ));
        }
        Ok(())
    }
}

impl StorageFile for FailingIndexFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check(len)?;
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.check(len)?;
        self.inner.allocate(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

impl Storage for FailingIndexes {
    fn open(&self, name: &str, mode: OpenMode) -> std::io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(name, mode)?;
        if name.ends_with("index") {
            return Ok(Arc::new(FailingIndexFile {
                inner,
                armed: self.armed.clone(),
                resize: self.resize,
                kind: self.kind,
            }));
        }
        Ok(inner)
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

#[test]
fn failed_index_trims_on_roll_never_break_reads() {
    for kind in [std::io::ErrorKind::Other, std::io::ErrorKind::StorageFull] {
        let (_m, inner) = mem();
        let armed = Arc::new(AtomicBool::new(false));
        let s: Arc<dyn Storage> = Arc::new(FailingIndexes {
            inner,
            armed: armed.clone(),
            resize: Resize::Shrink,
            kind,
        });
        let mut cfg = small_config();
        cfg.seal_in_background = false;
        let log = open(&s, &cfg);
        let mut acked = Vec::new();
        for i in 0..30 {
            append_ok(&log, &mut acked, i, 200);
        }
        // Every roll from here fails to trim the sealed segment's indexes (the roll goes on).
        armed.store(true, Ordering::SeqCst);
        let before = log.segments().len();
        for i in 0..60 {
            append_ok(&log, &mut acked, 100 + i, 200);
        }
        assert!(
            log.segments().len() > before + 2,
            "{kind:?}: rolls happened"
        );
        check_reads(&log, &acked);
        armed.store(false, Ordering::SeqCst);
        for i in 0..30 {
            append_ok(&log, &mut acked, 200 + i, 200);
        }
        check_reads(&log, &acked);
        // Nothing retries the trims: what is left on disk are untrimmed (still valid) indexes.
        drop(log);
        check_reads(&open(&s, &cfg), &acked);
    }
}

#[test]
fn failed_index_growth_on_recovery_never_breaks_reads() {
    for kind in [std::io::ErrorKind::StorageFull, std::io::ErrorKind::Other] {
        let (m, inner) = mem();
        let armed = Arc::new(AtomicBool::new(false));
        let s: Arc<dyn Storage> = Arc::new(FailingIndexes {
            inner,
            armed: armed.clone(),
            resize: Resize::Grow,
            kind,
        });
        let cfg = small_config();
        let mut acked = Vec::new();
        {
            let log = open(&s, &cfg);
            for i in 0..60 {
                append_ok(&log, &mut acked, i, 200);
            }
            log.close().expect("close");
        }
        // Lose every index file: recovery rebuilds them, growing each first.
        for name in m.list().expect("list") {
            if name.ends_with("index") {
                m.write_file(&name, Vec::new());
            }
        }
        armed.store(true, Ordering::SeqCst);
        let log = Log::open(s.clone(), cfg.clone())
            .expect("an index that cannot grow is no reason to refuse an open");
        check_reads(&log, &acked);
        drop(log);
        armed.store(false, Ordering::SeqCst);
        check_reads(&open(&s, &cfg), &acked);
    }
}

#[test]
fn a_log_closes_and_reopens_on_a_full_tmpfs() {
    let fs = Tmpfs::mount("16m");
    let dir = fs.path().join("log");
    let cfg = tmpfs_config();
    let log = fs_open(&dir, &cfg);
    let mut acked = Vec::new();
    for i in 0..400 {
        append_ok(&log, &mut acked, i, 300);
    }
    let filler = fill_disk(fs.path(), "filler").expect("fill the tmpfs");
    // The appends since the last roll are synced but not checkpointed; the checkpoint the
    // close writes needs a new file, which the full disk refuses. The close is still clean:
    // everything appended is durable.
    log.close().expect("close on a full disk");
    drop(log);
    // Recovery validates the tail past the old checkpoint and cannot write a new one either.
    let log = fs_open(&dir, &cfg);
    check_reads(&log, &acked);
    // Appends go on only while the log file's last page has room.
    let refused = (0..100u64).any(|i| {
        let mut b = batch(1, 0, 300, 9000 + i);
        match log.append(&mut b) {
            Ok(info) => {
                acked.push((info.base_offset, info.last_offset, b));
                false
            }
            Err(AppendError::NoSpace(_)) => true,
            Err(e) => panic!("appending on a full disk: {e}"),
        }
    });
    assert!(refused, "appends on a full disk are refused");
    check_reads(&log, &acked);
    log.close().expect("second close on a full disk");
    drop(log);
    std::fs::remove_file(&filler).expect("free space");
    let log = fs_open(&dir, &cfg);
    check_reads(&log, &acked);
    for i in 0..40 {
        append_ok(&log, &mut acked, 5000 + i, 300);
    }
    log.close().expect("close");
    drop(log);
    check_reads(&fs_open(&dir, &cfg), &acked);
}
