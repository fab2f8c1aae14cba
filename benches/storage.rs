//! Storage benchmarks (`harness = false`): each figure is reported next to a baseline measured in
//! the same run on the same file system, with the ratio.
//!
//! - Append throughput for 100 B and 1 KiB records in 16 KiB, 256 KiB and 1 MiB batches, with
//!   sync off (vs raw sequential `write` of the same bytes) and sync per batch (vs raw `write` +
//!   `fsync` per batch).
//! - Group commit: 8 threads appending 1 KiB batches with sync per batch (vs one thread doing
//!   raw write + fsync per batch).
//! - Random-offset read latency (p50/p99) and sequential scan MB/s (vs raw sequential `read`).
//! - Open/recovery time of a 1 GiB log: clean checkpoint, torn tail after the checkpoint, and no
//!   checkpoint at all (full validation).
//! - Open after a crash mid-stream (`kill -9` equivalent: the log is dropped while appends with
//!   sync per batch run, the 1 s background checkpoint trailing), with and without one damaged
//!   batch in the unchecked tail, vs a clean open of the same log.
//! - Cleaner throughput: MB/s of segments compacted (keyed 100 B records, 10 000 keys) vs a raw
//!   copy of the same segment files (read, write, fsync).
//! - Retention pass: deleting 1 000 small segments in one `delete_segments` call vs plain
//!   `remove_file` of the same number of files.
//!
//! `cargo bench -p distlog-benches --bench storage` (full, about 2 minutes);
//! `DISTLOG_BENCH_QUICK=1 cargo bench -p distlog-benches --bench storage` (quick, seconds).
//! Set `DISTLOG_BENCH_DIR` to benchmark another file system (default: the system temp dir).

use distlog_storage::batch::{BatchBuilder, Record};
use distlog_storage::io::{FsStorage, Storage};
use distlog_storage::{Log, LogConfig, SyncPolicy};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Scale {
    unsynced_bytes: u64,
    synced_batches: u64,
    group_secs: f64,
    recovery_bytes: u64,
    reads: usize,
    cleaner_bytes: u64,
    retention_segments: u64,
}

fn scale() -> Scale {
    let quick = std::env::var_os("DISTLOG_BENCH_QUICK").is_some()
        || std::env::args().any(|a| a == "--quick");
    if quick {
        Scale {
            unsynced_bytes: 16 << 20,
            synced_batches: 20,
            group_secs: 0.5,
            recovery_bytes: 64 << 20,
            reads: 2_000,
            cleaner_bytes: 32 << 20,
            retention_segments: 200,
        }
    } else {
        Scale {
            unsynced_bytes: 128 << 20,
            synced_batches: 100,
            group_secs: 3.0,
            recovery_bytes: 1 << 30,
            reads: 20_000,
            cleaner_bytes: 256 << 20,
            retention_segments: 1_000,
        }
    }
}

fn bench_dir() -> Result<tempfile::TempDir> {
    Ok(match std::env::var_os("DISTLOG_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    })
}

/// A batch of `record_len`-byte records, about `batch_len` bytes in total.
fn make_batch(record_len: usize, batch_len: usize) -> Result<(Vec<u8>, u64)> {
    let mut b = BatchBuilder::with_capacity(batch_len);
    let value: Vec<u8> = (0..record_len).map(|i| (i * 31 % 251) as u8).collect();
    let mut n = 0u64;
    while n == 0 || b.encoded_len() + record_len + 16 <= batch_len {
        b.push(&Record::new(1_700_000_000_000 + n as i64, value.clone()))?;
        n += 1;
    }
    Ok((b.finish()?, n))
}

fn open_log(dir: &Path, sync: SyncPolicy, segment_bytes: u64) -> Result<Arc<Log>> {
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::create(dir)?);
    let mut cfg = LogConfig::default();
    cfg.sync = sync;
    cfg.segment_bytes = segment_bytes;
    Ok(Log::open(storage, cfg)?)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Raw baseline: write `count` copies of `batch` sequentially, fsync after each if `sync`.
fn raw_write(dir: &Path, batch: &[u8], count: u64, sync: bool) -> Result<Duration> {
    let mut f = File::create(dir.join("raw.bin"))?;
    let start = Instant::now();
    for _ in 0..count {
        f.write_all(batch)?;
        if sync {
            f.sync_data()?;
        }
    }
    let d = start.elapsed();
    drop(f);
    std::fs::remove_file(dir.join("raw.bin"))?;
    Ok(d)
}

fn log_append(dir: &Path, batch: &[u8], count: u64, sync: bool) -> Result<Duration> {
    let log_dir = dir.join("log");
    let policy = if sync {
        SyncPolicy::EveryBatch
    } else {
        SyncPolicy::Os
    };
    let log = open_log(&log_dir, policy, 1 << 30)?;
    let mut buf = batch.to_vec();
    let start = Instant::now();
    for _ in 0..count {
        log.append(&mut buf)?;
    }
    let d = start.elapsed();
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;
    Ok(d)
}

fn append_throughput(s: &Scale, dir: &Path) -> Result<()> {
    println!("## Append throughput (log vs raw file, same bytes, same run)\n");
    println!("| record | batch | sync | log MB/s | log records/s | raw MB/s | ratio |");
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for record_len in [100usize, 1024] {
        for batch_len in [16usize << 10, 256 << 10, 1 << 20] {
            let (batch, records) = make_batch(record_len, batch_len)?;
            for sync in [false, true] {
                let count = if sync {
                    s.synced_batches
                } else {
                    (s.unsynced_bytes / batch.len() as u64).max(1)
                };
                let bytes = count * batch.len() as u64;
                // Alternate baseline and log three times and keep the best of each, to damp
                // noise from writeback of the previous run and from other processes.
                let mut raw = Duration::MAX;
                let mut log = Duration::MAX;
                for _ in 0..3 {
                    raw = raw.min(raw_write(dir, &batch, count, sync)?);
                    log = log.min(log_append(dir, &batch, count, sync)?);
                }
                println!(
                    "| {record_len} B | {} KiB | {} | {:.0} | {:.0} | {:.0} | {:.2} |",
                    batch_len >> 10,
                    if sync { "per batch" } else { "off" },
                    mbps(bytes, log),
                    (count * records) as f64 / log.as_secs_f64(),
                    mbps(bytes, raw),
                    raw.as_secs_f64() / log.as_secs_f64(),
                );
            }
        }
    }
    println!();
    Ok(())
}

fn group_commit(s: &Scale, dir: &Path) -> Result<()> {
    let (batch, _) = make_batch(1024, 1100)?;
    let deadline = Duration::from_secs_f64(s.group_secs);
    // Baseline: one thread, raw write + fsync per batch, for the same time.
    let mut f = File::create(dir.join("raw.bin"))?;
    let start = Instant::now();
    let mut raw_count = 0u64;
    while start.elapsed() < deadline {
        f.write_all(&batch)?;
        f.sync_data()?;
        raw_count += 1;
    }
    let raw_rate = raw_count as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(dir.join("raw.bin"))?;

    let log_dir = dir.join("group");
    let log = open_log(&log_dir, SyncPolicy::EveryBatch, 1 << 30)?;
    let threads = 8;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let log = log.clone();
            let mut buf = batch.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < deadline {
                    if log.append(&mut buf).is_err() {
                        break;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0u64;
    for h in handles {
        total += h.join().map_err(|_| "appender panicked")?;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;
    println!("## Group commit (sync per batch, 1 KiB batches)\n");
    println!("| appenders | log appends/s | raw write+fsync/s (1 thread) | ratio |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {threads} | {rate:.0} | {raw_rate:.0} | {:.2} |\n",
        rate / raw_rate
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn reads_and_recovery(s: &Scale, dir: &Path) -> Result<()> {
    let log_dir = dir.join("big");
    let segment_bytes = (s.recovery_bytes / 8).max(16 << 20);
    let (batch, _) = make_batch(1024, 16 << 10)?;
    let count = s.recovery_bytes / batch.len() as u64;
    let log = open_log(&log_dir, SyncPolicy::Os, segment_bytes)?;
    let mut buf = batch.clone();
    let build = Instant::now();
    for _ in 0..count {
        log.append(&mut buf)?;
    }
    log.close()?;
    let build = build.elapsed();
    let end = log.log_end_offset();
    drop(log);
    let total_bytes = count * batch.len() as u64;
    println!(
        "## Reads and recovery ({} MiB log, {} segments of {} MiB, 16 KiB batches of 1 KiB records; built in {:.1} s)\n",
        total_bytes >> 20,
        total_bytes.div_ceil(segment_bytes),
        segment_bytes >> 20,
        build.as_secs_f64()
    );

    // Open with a clean checkpoint.
    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::Os, segment_bytes)?;
    let clean_open = t.elapsed();

    // Random-offset reads (page cache warm: just written; best of two passes).
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut lat = Vec::with_capacity(s.reads * 2);
    for _ in 0..s.reads * 2 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let offset = rng % end;
        let t = Instant::now();
        let f = log.read(offset, 16 << 10)?;
        lat.push(t.elapsed());
        if f.batch_count == 0 {
            return Err("empty read".into());
        }
    }
    // The first pass warms the page cache and the indexes; report the second.
    let mut lat = lat.split_off(s.reads);
    lat.sort();

    // Sequential scan vs raw sequential read of the segment files: alternate, keep the best of
    // each, so background writeback of the build affects both alike.
    let mut names: Vec<_> = std::fs::read_dir(&log_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    let mut chunk = vec![0u8; 1 << 20];
    let (mut scan, mut raw_scan) = (Duration::MAX, Duration::MAX);
    let (mut scanned, mut raw_read) = (0u64, 0u64);
    for _ in 0..3 {
        let t = Instant::now();
        raw_read = 0;
        for p in &names {
            let mut f = File::open(p)?;
            loop {
                let n = f.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                raw_read += n as u64;
            }
        }
        raw_scan = raw_scan.min(t.elapsed());
        let t = Instant::now();
        let mut offset = log.log_start_offset();
        scanned = 0;
        while offset < end {
            let f = log.read(offset, 1 << 20)?;
            scanned += f.bytes().len() as u64;
            offset = f.next_offset;
        }
        scan = scan.min(t.elapsed());
    }

    // Append a tail without checkpointing it, then tear the last batch in half.
    let mut buf = batch.clone();
    for _ in 0..64 {
        log.append(&mut buf)?;
    }
    drop(log); // no close: the checkpoint still names the old end
    let last = names.last().ok_or("no segments")?.clone();
    let len = std::fs::metadata(&last)?.len();
    File::options()
        .write(true)
        .open(&last)?
        .set_len(len - batch.len() as u64 / 2)?;
    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::Os, segment_bytes)?;
    let torn_open = t.elapsed();
    let torn_end = log.log_end_offset();
    log.close()?;
    drop(log);

    // No checkpoint at all: every segment is validated.
    std::fs::remove_file(log_dir.join("recovery-point.checkpoint"))?;
    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::Os, segment_bytes)?;
    let full_open = t.elapsed();
    if log.log_end_offset() != torn_end {
        return Err("full recovery disagrees with checkpointed recovery".into());
    }
    drop(log);

    println!("| measure | value | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| random read p50 / p99 (16 KiB fetch) | {:.1} µs / {:.1} µs | | |",
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "| sequential scan (CRC verified) | {:.0} MB/s | raw read {:.0} MB/s | {:.2} |",
        mbps(scanned, scan),
        mbps(raw_read, raw_scan),
        raw_scan.as_secs_f64() / scan.as_secs_f64()
    );
    println!(
        "| open, clean checkpoint | {:.1} ms | | |",
        clean_open.as_secs_f64() * 1e3
    );
    println!(
        "| open, torn tail after checkpoint | {:.1} ms | | |",
        torn_open.as_secs_f64() * 1e3
    );
    println!(
        "| open, no checkpoint (validate all) | {:.1} ms | {:.0} MB/s | |",
        full_open.as_secs_f64() * 1e3,
        mbps(total_bytes, full_open)
    );
    println!();
    std::fs::remove_dir_all(&log_dir)?;
    Ok(())
}

fn fsync_cost(dir: &Path) -> Result<Duration> {
    let mut f = File::create(dir.join("fsync.bin"))?;
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&[0u8; 512])?;
        f.sync_data()?;
    }
    let d = start.elapsed() / n;
    std::fs::remove_file(dir.join("fsync.bin"))?;
    Ok(d)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let s = scale();
    let dir = bench_dir()?;
    println!(
        "# distlog storage benchmarks ({}; dir {}; fsync of 512 B ≈ {:.2} ms)\n",
        if s.reads < 10_000 { "quick" } else { "full" },
        dir.path().display(),
        fsync_cost(dir.path())?.as_secs_f64() * 1e3
    );
    append_throughput(&s, dir.path())?;
    group_commit(&s, dir.path())?;
    reads_and_recovery(&s, dir.path())?;
    crash_recovery(&s, dir.path())?;
    cleaner(&s, dir.path())?;
    retention_pass(&s, dir.path())?;
    Ok(())
}

/// Open time after a crash in the middle of synced appends (the checkpoint trails by up to
/// `checkpoint_interval_ms`), and after the same crash with one batch of the unchecked tail
/// damaged (recovery resynchronises and keeps every later batch). Baseline: a clean open of the
/// same log.
fn crash_recovery(s: &Scale, dir: &Path) -> Result<()> {
    println!(
        "## Open after a crash mid-stream ({} MiB log, 1 MiB batches, sync per batch)\n",
        s.recovery_bytes >> 20
    );
    let log_dir = dir.join("crash");
    // One segment, so the tail damaged below is at the end of a known file.
    let segment_bytes = 1 << 31;
    let (batch, records) = make_batch(1024, 1 << 20)?;
    let log = open_log(&log_dir, SyncPolicy::EveryBatch, segment_bytes)?;
    let count = s.recovery_bytes / batch.len() as u64;
    let mut buf = batch.clone();
    for _ in 0..count {
        log.append(&mut buf)?;
    }
    let end = log.log_end_offset();
    drop(log); // no close: as after kill -9, the checkpoint is whatever the sealer last wrote

    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::EveryBatch, segment_bytes)?;
    let crash_open = t.elapsed();
    if log.log_end_offset() != end {
        return Err("crash recovery lost synced batches".into());
    }
    log.close()?;
    drop(log);
    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::EveryBatch, segment_bytes)?;
    let clean_open = t.elapsed();
    let newest = log
        .segments()
        .last()
        .map(|seg| seg.base_offset)
        .ok_or("no segment")?;
    // Crash again after a tail, then damage the first batch of that tail.
    let tail_from = log.log_end_offset();
    let mut buf = batch.clone();
    for _ in 0..32 {
        log.append(&mut buf)?;
    }
    let tail_end = log.log_end_offset();
    drop(log);
    let path = log_dir.join(format!("{newest:020}.log"));
    // A payload byte of the tail's first batch.
    let len = std::fs::metadata(&path)?.len();
    let at = len - 32 * batch.len() as u64 + 100;
    let mut f = File::options().read(true).write(true).open(&path)?;
    let mut byte = [0u8; 1];
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(&mut byte)?;
    byte[0] ^= 0x40;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(&byte)?;
    drop(f);
    std::fs::remove_file(log_dir.join("recovery-point.checkpoint"))?;
    let t = Instant::now();
    let log = open_log(&log_dir, SyncPolicy::EveryBatch, segment_bytes)?;
    let damaged_open = t.elapsed();
    if log.log_end_offset() != tail_end {
        return Err("recovery after one damaged batch did not keep the batches after it".into());
    }
    let lost = match log.read(tail_from, 1) {
        Err(distlog_storage::ReadError::DataLoss {
            first_offset,
            next_offset,
            ..
        }) => next_offset - first_offset,
        _ => return Err("the damaged batch was not reported".into()),
    };
    if lost != records {
        return Err("recovery lost more than the damaged batch".into());
    }
    drop(log);
    println!("| measure | value | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| open after crash (checkpoint ≤ 1 s behind) | {:.1} ms | clean open {:.1} ms | {:.2} |",
        crash_open.as_secs_f64() * 1e3,
        clean_open.as_secs_f64() * 1e3,
        crash_open.as_secs_f64() / clean_open.as_secs_f64()
    );
    println!(
        "| open, no checkpoint, one damaged batch ({} records lost, {} kept after it) | {:.1} ms | clean open {:.1} ms | {:.2} |",
        lost,
        tail_end - tail_from - lost,
        damaged_open.as_secs_f64() * 1e3,
        clean_open.as_secs_f64() * 1e3,
        damaged_open.as_secs_f64() / clean_open.as_secs_f64()
    );
    println!();
    std::fs::remove_dir_all(&log_dir)?;
    Ok(())
}

/// Raw baseline of a cleaner pass: copy `files` (read whole, write, fsync) into `dir`.
fn raw_copy(files: &[std::path::PathBuf], dir: &Path) -> Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let start = Instant::now();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path)?;
        let mut f = File::create(dir.join(format!("{i}.copy")))?;
        f.write_all(&bytes)?;
        f.sync_data()?;
    }
    let d = start.elapsed();
    std::fs::remove_dir_all(dir)?;
    Ok(d)
}

fn cleaner(s: &Scale, dir: &Path) -> Result<()> {
    use distlog_storage::compaction::{CompactOptions, NoCodecs, RecordKeys};
    println!("## Cleaner throughput (100 B keyed records, 10 000 keys, 16 KiB batches)\n");
    let log_dir = dir.join("cleaner");
    let segment_bytes = 16 << 20;
    let log = open_log(&log_dir, SyncPolicy::Os, segment_bytes)?;
    let value = vec![b'x'; 80];
    let mut written = 0u64;
    let mut n = 0u64;
    while written < s.cleaner_bytes {
        let mut b = BatchBuilder::with_capacity(16 << 10);
        while b.encoded_len() + 128 <= 16 << 10 {
            let key = format!("key-{:05}", (n * 7_919) % 10_000);
            b.push(&Record::new(1_700_000_000_000, value.clone()).with_key(key))?;
            n += 1;
        }
        let mut batch = b.finish()?;
        written += batch.len() as u64;
        log.append(&mut batch)?;
    }
    log.roll()?;
    log.flush()?;
    let segments: Vec<_> = log
        .segments()
        .iter()
        .filter(|i| !i.active)
        .map(|i| log_dir.join(format!("{:020}.log", i.base_offset)))
        .collect();
    let source: u64 = log
        .segments()
        .iter()
        .filter(|i| !i.active)
        .map(|i| i.size_bytes)
        .sum();
    let raw = raw_copy(&segments, &dir.join("cleaner-copy"))?;
    let mut options = CompactOptions::default();
    options.max_dirty_bytes = u64::MAX;
    let start = Instant::now();
    let report = log.compact(&options, &mut RecordKeys, &mut NoCodecs)?;
    let took = start.elapsed();
    println!("| | MB/s | records kept | bytes written |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw copy of the segments (read + write + fsync) | {:.0} | | {} |",
        mbps(source, raw),
        source
    );
    println!(
        "| `Log::compact`, one pass over {} MB | {:.0} | {} of {n} | {} |",
        source / 1_000_000,
        mbps(source, took),
        report.records_kept,
        report.bytes_written
    );
    println!(
        "\nthroughput ratio (cleaner / raw copy): {:.2}\n",
        raw.as_secs_f64() / took.as_secs_f64()
    );
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;
    Ok(())
}

fn retention_pass(s: &Scale, dir: &Path) -> Result<()> {
    let count = s.retention_segments;
    println!("## Retention pass: deleting {count} small segments at once\n");
    let log_dir = dir.join("retention");
    let log = open_log(&log_dir, SyncPolicy::Os, 4096)?;
    let (batch, _) = make_batch(100, 3000)?;
    while (log.segments().len() as u64) < count + 1 {
        let mut b = batch.clone();
        log.append(&mut b)?;
    }
    log.flush()?;
    let doomed: Vec<u64> = log
        .segments()
        .iter()
        .filter(|i| !i.active)
        .map(|i| i.base_offset)
        .collect();

    // Baseline: the same files (per segment a synced `.log`-sized file, so its blocks are
    // allocated as a segment's are, and two empty files like its trimmed indexes) removed one
    // by one.
    let raw_dir = dir.join("retention-raw");
    std::fs::create_dir_all(&raw_dir)?;
    for i in 0..doomed.len() * 3 {
        let mut f = File::create(raw_dir.join(format!("{i}")))?;
        if i % 3 == 0 {
            f.write_all(&batch)?;
            f.sync_data()?;
        }
    }
    File::open(&raw_dir)?.sync_all()?;
    let start = Instant::now();
    for i in 0..doomed.len() * 3 {
        std::fs::remove_file(raw_dir.join(format!("{i}")))?;
    }
    let raw = start.elapsed();
    std::fs::remove_dir_all(&raw_dir)?;

    let start = Instant::now();
    let deleted = log.delete_segments(&doomed)?;
    let took = start.elapsed();
    assert_eq!(deleted.len(), doomed.len());
    println!("| | total ms | µs per segment |");
    println!("|---|---:|---:|");
    println!(
        "| `remove_file` × {} (3 per segment) | {:.1} | {:.0} |",
        doomed.len() * 3,
        raw.as_secs_f64() * 1e3,
        raw.as_secs_f64() * 1e6 / doomed.len() as f64
    );
    println!(
        "| `Log::delete_segments` (rename to .deleted, dir fsync, remove, checkpoint) | {:.1} | {:.0} |",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / doomed.len() as f64
    );
    println!(
        "\nratio (delete_segments / raw remove): {:.2}\n",
        took.as_secs_f64() / raw.as_secs_f64()
    );
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;
    Ok(())
}
