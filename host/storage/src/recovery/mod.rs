//! Opening a log directory: what is trusted, what is scanned, what is repaired.
//!
//! 0. Compaction and deletion leftovers are settled: committed swaps are completed, every other
//!    `.cleaned`, `.swap` and `.deleted` file is removed (see [`crate::compaction`]).
//! 1. Leftover temporary files are removed; index files without a `.log` are removed.
//! 2. The checkpoint (if valid) gives, per segment, a synced prefix and its summary. That prefix
//!    is trusted without reading it: only its indexes get a cheap sanity check (entries
//!    increasing, inside the prefix, last offset-index entry pointing at a batch header with the
//!    right offset). Nothing else of a checkpointed segment is read.
//! 3. Everything after the prefix (or the whole segment, without a checkpoint entry or with
//!    `verify_on_open`) is validated batch by batch: header, length, CRC, and offsets that
//!    continue the previous batch (exactly, above the cleaner checkpoint; with gaps below it,
//!    where compaction removed batches). At an invalid batch the scan *resynchronises*: it looks
//!    for the next whole batch whose header, CRC and offsets check out and goes on from there,
//!    recording the stretch in between as damage (its offsets are lost and reads that reach them
//!    get `ReadError::DataLoss`; nothing after it is dropped). Only a genuinely torn tail, an
//!    invalid stretch with no valid batch after it in the whole log (in the newest segment, or
//!    in an older one when every later segment is empty, as a crash right after a roll leaves
//!    them; those empty segments are removed), is truncated. Damage at the end of an older
//!    segment runs to the next segment's base offset. A damaged segment
//!    is left out of recovery checkpoints, so every open scans it and reports it again. Later
//!    segments are validated on their own (offsets must keep increasing; a segment overlapping
//!    its predecessor is deleted).
//! 4. Index entries beyond the valid data are dropped and the tail re-indexed; an index that
//!    fails the sanity check is rebuilt from its segment's headers.
//! 5. Repaired or scanned data is synced before the log is used, so the new recovery point is
//!    honest.

pub mod checkpoint;

use crate::index::{IndexFile, OFFSET_ENTRY, OffsetIndex, TIME_ENTRY, TimeIndex};
use crate::io::{OpenMode, Storage, StorageFile};
use crate::log::{LogConfig, OpenError};
use crate::producers::ProducerBatch;
use crate::segment::frame::LOG_OVERHEAD;
use crate::segment::{
    Damage, IndexCursor, ScanRules, ScanStop, Segment, Stats, index_name, log_name, parse_name,
    scan, time_index_name,
};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::Arc;

/// The recovered state of a log directory.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Oldest first; the last one is active (indexes preallocated).
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Index cursor of the active segment.
    pub(crate) cursor: IndexCursor,
    /// Whether the directory was repaired or scanned (a new checkpoint is due).
    pub(crate) changed: bool,
    /// The cleaner checkpoint.
    pub(crate) cleaner: crate::compaction::files::CleanerCheckpoint,
    /// The high watermark the checkpoint recorded (`None` without one, or in a version 1
    /// checkpoint); may exceed the recovered log end after a crash.
    pub(crate) high_watermark: Option<u64>,
    /// What recovery learned for the producer state (see [`ProducerTail`]).
    pub(crate) producers: ProducerTail,
}

/// The batches with a producer id that recovery validated, and what the checkpoint says
/// about the rest: together they spare an open from reading the log again to rebuild the
/// producer state.
#[derive(Debug, Default)]
pub(crate) struct ProducerTail {
    /// Every offset from here to the log end was scanned.
    pub(crate) scanned_from: u64,
    /// The tracked batches (see `ProducerBatch::is_tracked`) among them, in offset order.
    pub(crate) batches: Vec<ProducerBatch>,
    /// Every batch below this was covered by the checkpoint that was trusted (0: none).
    pub(crate) checkpoint_end: u64,
    /// The checkpoint's producer-state end: no batch with a producer id ends at or after it
    /// below `checkpoint_end`. `None` without a version 2 checkpoint.
    pub(crate) producers_end: Option<u64>,
}

fn io_err(op: &'static str, name: impl Into<String>) -> impl FnOnce(io::Error) -> OpenError {
    let name = name.into();
    move |source| OpenError::Io { op, name, source }
}

fn remove_if_exists(storage: &dyn Storage, name: &str) -> Result<(), OpenError> {
    match storage.remove(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", name)(e)),
    }
}

struct Candidate {
    base: u64,
    log: Arc<dyn StorageFile>,
    /// Trusted (checkpointed) prefix.
    trusted: Stats,
    /// Valid data after scanning.
    stats: Stats,
    /// Whether any batch was found after the trusted prefix.
    has_tail: bool,
    /// Scanned or truncated: must be synced before the new checkpoint names it.
    modified: bool,
    /// Damaged stretches found by the scan.
    damage: Vec<Damage>,
    /// Offsets from here on continue exactly (the cleaner checkpoint).
    dense_from: u64,
}

/// Recovers the directory; see the module docs. `max_epoch` is the newest leader epoch a batch
/// may carry (the latest of the leader-epoch file, `u32::MAX` when that file must be rebuilt).
pub(crate) fn recover(
    storage: &dyn Storage,
    cfg: &LogConfig,
    max_epoch: u32,
) -> Result<Recovered, OpenError> {
    let finished = crate::compaction::files::finish_pending(storage)
        .map_err(io_err("finish compaction and deletion", "."))?;
    let cleaner = crate::compaction::files::read_cleaner_offset(storage).map_err(io_err(
        "read",
        crate::compaction::files::CLEANER_CHECKPOINT_NAME,
    ))?;
    let names = storage.list().map_err(io_err("list", "."))?;
    let mut bases = BTreeSet::new();
    let mut index_files = Vec::new();
    for name in &names {
        if checkpoint::is_temp(name) {
            remove_if_exists(storage, name)?;
            continue;
        }
        match parse_name(name) {
            Some((base, "log")) => {
                bases.insert(base);
            }
            Some((base, "index" | "timeindex")) => index_files.push((base, name.clone())),
            _ => {}
        }
    }
    let mut changed = finished.changed;
    for (base, name) in &index_files {
        if !bases.contains(base) {
            tracing::warn!(file = %name, "removing index without a segment");
            remove_if_exists(storage, name)?;
            changed = true;
        }
    }

    let mut high_watermark = None;
    let mut producers_end = None;
    let trusted: HashMap<u64, Stats> =
        match checkpoint::read(storage).map_err(io_err("read", checkpoint::CHECKPOINT_NAME))? {
            None => {
                changed = true;
                HashMap::new()
            }
            Some(Err(reason)) => {
                tracing::warn!(%reason, "ignoring unusable checkpoint; scanning all segments");
                changed = true;
                HashMap::new()
            }
            // A segment a swap just replaced is not what its entry (if any) describes.
            Some(Ok(cp)) => {
                high_watermark = cp.high_watermark;
                producers_end = cp.producers_end;
                cp.entries
                    .into_iter()
                    .filter(|e| !finished.swapped.contains(&e.base_offset))
                    .map(|e| (e.base_offset, e.stats))
                    .collect()
            }
        };

    let max_batch = cfg.max_batch_bytes;
    let mut kept: Vec<Candidate> = Vec::new();
    let mut tracked_batches: Vec<ProducerBatch> = Vec::new();
    let bases: Vec<u64> = bases.into_iter().collect();
    let rules = ScanRules {
        max_batch_length: max_batch,
        verify_crc: true,
        dense_from: cleaner.gaps_below,
        resync: true,
        skip: &[],
        max_epoch,
    };
    for (i, &base) in bases.iter().enumerate() {
        let name = log_name(base);
        let log = storage
            .open(&name, OpenMode::Existing)
            .map_err(io_err("open", &name))?;
        let len = log.len().map_err(io_err("stat", &name))?;
        let expected = kept.last().map_or(0, |c| c.stats.next_offset);
        if base < expected {
            tracing::warn!(
                segment = base,
                expected,
                "deleting segment that overlaps its predecessor"
            );
            for name in [log_name(base), index_name(base), time_index_name(base)] {
                remove_if_exists(storage, &name)?;
            }
            changed = true;
            continue;
        }
        let trust = trusted
            .get(&base)
            .copied()
            .filter(|t| !cfg.verify_on_open && t.size <= len)
            .unwrap_or_else(|| Stats::empty(base));
        let mut stats = trust;
        let mut has_tail = false;
        let tracked = &mut tracked_batches;
        let scanned = scan(
            log.as_ref(),
            trust.size,
            len,
            base,
            trust.next_offset,
            &rules,
            |_pos, f| {
                stats.add(f, f.total_len());
                has_tail = true;
                let batch = f.producer_batch();
                if batch.is_tracked() {
                    tracked.push(batch);
                }
            },
        )
        .map_err(io_err("scan", &name))?;
        let mut damage = scanned.damage;
        let end = scanned.end;
        let mut next_segment = bases.get(i + 1).copied();
        let mut rest_dropped = false;
        if end < len {
            let reason = match scanned.stopped {
                Some(ScanStop::Invalid { reason }) => reason,
                None => "trailing bytes".into(),
            };
            // Nothing valid after the stop in the whole log (every later segment empty, as a
            // crash right after a roll leaves them) makes it a torn tail too: the later, empty
            // segments go and this one becomes the newest again.
            if next_segment.is_some() && later_segments_empty(storage, &bases[i + 1..])? {
                for &b in &bases[i + 1..] {
                    for name in [log_name(b), index_name(b), time_index_name(b)] {
                        remove_if_exists(storage, &name)?;
                    }
                }
                next_segment = None;
                rest_dropped = true;
                changed = true;
            }
            match next_segment {
                // A torn tail: the newest segment, nothing valid after the stop. Cut it.
                None => {
                    tracing::warn!(
                        segment = base,
                        position = end,
                        dropped_bytes = len - end,
                        %reason,
                        "truncating torn tail"
                    );
                    log.set_len(end).map_err(io_err("truncate", &name))?;
                }
                // In an older segment the rest is damage up to the next segment's base: kept
                // in place and reported, never silently skipped.
                Some(next) => damage.push(Damage {
                    position: end,
                    len: len - end,
                    first_offset: scanned.next_offset,
                    next_offset: next.max(scanned.next_offset),
                    reason,
                }),
            }
        }
        for d in &damage {
            d.report(base, "recovery");
            if d.position + d.len == len {
                stats.size = len;
                stats.next_offset = stats.next_offset.max(d.next_offset);
            } else {
                // `stats.add` for the batch after the damage already counted its bytes; add the
                // damaged bytes themselves.
                stats.size += d.len;
            }
        }
        let modified = end < len || has_tail || !damage.is_empty();
        changed |= modified;
        kept.push(Candidate {
            base,
            log,
            trusted: trust,
            stats,
            has_tail,
            modified,
            damage,
            dense_from: cleaner.gaps_below,
        });
        if rest_dropped {
            break;
        }
    }
    // Empty segments other than the last carry nothing; drop them. An empty first segment
    // (left by compaction when everything in it was removed) is kept: it holds the log start
    // offset.
    let last = kept.len().saturating_sub(1);
    let mut segments_in = Vec::with_capacity(kept.len());
    for (i, c) in kept.into_iter().enumerate() {
        if c.stats.size == 0 && i != last && i != 0 {
            for name in [
                log_name(c.base),
                index_name(c.base),
                time_index_name(c.base),
            ] {
                remove_if_exists(storage, &name)?;
            }
            changed = true;
        } else {
            segments_in.push(c);
        }
    }

    let mut scanned_from = segments_in.first().map_or(0, |c| c.base);
    for c in segments_in.iter().rev() {
        if c.trusted.size > 0 {
            scanned_from = c.trusted.next_offset;
            break;
        }
        scanned_from = c.base;
    }
    let checkpoint_end = segments_in
        .iter()
        .filter(|c| c.trusted.size > 0)
        .map(|c| c.trusted.next_offset)
        .max()
        .unwrap_or(0);
    let producers = ProducerTail {
        scanned_from,
        batches: tracked_batches,
        checkpoint_end,
        producers_end,
    };
    if segments_in.is_empty() {
        let base = trusted.values().map(|s| s.next_offset).max().unwrap_or(0);
        let seg = Segment::create(storage, base, cfg.index_max_bytes)
            .map_err(io_err("create", log_name(base)))?;
        storage.sync_dir().map_err(io_err("sync", "."))?;
        return Ok(Recovered {
            segments: vec![Arc::new(seg)],
            cursor: IndexCursor::fresh(),
            changed: true,
            cleaner,
            high_watermark,
            producers,
        });
    }

    let n = segments_in.len();
    let mut segments = Vec::with_capacity(n);
    let mut cursor = IndexCursor::fresh();
    for (i, c) in segments_in.into_iter().enumerate() {
        let active = i + 1 == n;
        let modified = c.modified;
        let present = [index_name(c.base), time_index_name(c.base)]
            .iter()
            .all(|n| index_files.iter().any(|(_, f)| f == n));
        let (seg, cur, rebuilt) = open_indexes(storage, cfg, c, active, present)?;
        changed |= rebuilt;
        if active {
            cursor = cur;
        }
        let seg = Arc::new(seg);
        // Only what recovery read or changed needs a sync; checkpointed data already had one.
        if modified || rebuilt {
            seg.sync_all()
                .map_err(io_err("sync", log_name(seg.base_offset)))?;
        }
        segments.push(seg);
    }
    if changed {
        storage.sync_dir().map_err(io_err("sync", "."))?;
    }
    Ok(Recovered {
        segments,
        cursor,
        changed,
        cleaner,
        high_watermark,
        producers,
    })
}

/// Whether every segment file of `bases` is empty.
fn later_segments_empty(storage: &dyn Storage, bases: &[u64]) -> Result<bool, OpenError> {
    for &b in bases {
        let name = log_name(b);
        let len = storage
            .open(&name, OpenMode::Existing)
            .and_then(|f| f.len())
            .map_err(io_err("stat", &name))?;
        if len > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the offset index entry `(rel, pos)` points at a batch header with offset base+rel.
fn entry_points_at_batch(log: &dyn StorageFile, base: u64, rel: u32, pos: u32) -> bool {
    let mut head = [0u8; 8];
    log.read_at(&mut head, u64::from(pos)).is_ok()
        && u64::from_le_bytes(head) == base + u64::from(rel)
}

/// Opens (or rebuilds) a recovered segment's indexes and assembles the segment.
fn open_indexes(
    storage: &dyn Storage,
    cfg: &LogConfig,
    c: Candidate,
    active: bool,
    present: bool,
) -> Result<(Segment, IndexCursor, bool), OpenError> {
    let base = c.base;
    let capacity = active.then_some(cfg.index_max_bytes);
    let idx_name = index_name(base);
    let time_name = time_index_name(base);
    let idx_file = storage
        .open(&idx_name, OpenMode::Create)
        .map_err(io_err("open", &idx_name))?;
    let time_file = storage
        .open(&time_name, OpenMode::Create)
        .map_err(io_err("open", &time_name))?;
    let mut index = OffsetIndex(
        IndexFile::open(idx_file, OFFSET_ENTRY, capacity).map_err(io_err("open", &idx_name))?,
    );
    let mut time_index = TimeIndex(
        IndexFile::open(time_file, TIME_ENTRY, capacity).map_err(io_err("open", &time_name))?,
    );
    let trusted = c.trusted;
    let idx_err = io_err("index", &idx_name);

    // Keep the entries that describe the trusted prefix, if they pass the sanity check.
    let r: io::Result<bool> = (|| {
        index.truncate_to_position(trusted.size)?;
        time_index.truncate_to_rel(trusted.next_offset - base)?;
        // Without an entry, the last indexed batch starts at 0. Entries are added every
        // `index_interval_bytes`, so the prefix cannot extend further past the last entry than
        // that plus one batch: if it does, entries are missing (a lost or truncated file).
        let last_pos = index.last().map_or(0, |(_, p)| u64::from(p));
        let max_gap = u64::from(cfg.index_interval_bytes)
            + LOG_OVERHEAD as u64
            + u64::from(cfg.max_batch_bytes);
        let complete = (present || trusted.size == 0) && trusted.size - last_pos <= max_gap;
        let sane = complete
            && index.validate(trusted.size)
            && time_index.validate(trusted.next_offset - base)
            && time_index
                .last()
                .is_none_or(|(ts, _)| ts <= trusted.max_timestamp)
            && index
                .last()
                .is_none_or(|(rel, pos)| entry_points_at_batch(c.log.as_ref(), base, rel, pos));
        Ok(sane)
    })();
    let sane = r.map_err(idx_err)?;
    let mut rebuilt = false;
    let mut cursor = IndexCursor::fresh();
    let r: io::Result<()> = (|| {
        if sane {
            cursor.bytes_since_entry = trusted.size - index.last().map_or(0, |(_, p)| u64::from(p));
            cursor.max_timestamp = if trusted.record_count == 0 {
                i64::MIN
            } else {
                trusted.max_timestamp
            };
            if c.has_tail {
                index.0.allow_growth(cfg.index_max_bytes)?;
                time_index.0.allow_growth(cfg.index_max_bytes)?;
                // Walk the validated tail's headers again (no CRC) rather than keeping every
                // frame of a possibly huge tail in memory.
                index_range(
                    &c,
                    cfg,
                    trusted.size,
                    &mut cursor,
                    &mut index,
                    &mut time_index,
                )?;
            }
        } else {
            tracing::warn!(segment = base, "index failed its sanity check; rebuilding");
            rebuilt = true;
            index.0.truncate(0)?;
            time_index.0.truncate(0)?;
            index.0.allow_growth(cfg.index_max_bytes)?;
            time_index.0.allow_growth(cfg.index_max_bytes)?;
            index_range(&c, cfg, 0, &mut cursor, &mut index, &mut time_index)?;
        }
        if !active {
            index.0.trim()?;
            time_index.0.trim()?;
        }
        Ok(())
    })();
    r.map_err(io_err("index", &idx_name))?;
    let seg = Segment::assemble(c.log, index, time_index, c.stats, base, c.damage);
    Ok((seg, cursor, rebuilt))
}

/// Adds index entries for the batches in `[from, valid end)` of the candidate, walking headers.
fn index_range(
    c: &Candidate,
    cfg: &LogConfig,
    from: u64,
    cursor: &mut IndexCursor,
    index: &mut OffsetIndex,
    time_index: &mut TimeIndex,
) -> io::Result<()> {
    let interval = u64::from(cfg.index_interval_bytes);
    let mut err = None;
    let mut full = false;
    let first_offset = if from == 0 {
        c.base
    } else {
        c.trusted.next_offset
    };
    let rules = ScanRules {
        max_batch_length: cfg.max_batch_bytes,
        verify_crc: false,
        dense_from: c.dense_from,
        resync: false,
        skip: &c.damage,
        // Validated by the first pass.
        max_epoch: u32::MAX,
    };
    scan(
        c.log.as_ref(),
        from,
        c.stats.size,
        c.base,
        first_offset,
        &rules,
        |pos, f| {
            if full || err.is_some() {
                cursor.advance(f);
                return;
            }
            match cursor.observe(c.base, index, time_index, pos, f, interval) {
                Ok(true) => {}
                // A full index stays sparse past this point; lookups scan a little more.
                Ok(false) => full = true,
                Err(e) => err = Some(e),
            }
        },
    )?;
    err.map_or(Ok(()), Err)
}
