//! The cleaner's IO: carries out a [`plan`](crate::compaction::plan) on a log, and the
//! crash-safe swap of its output. See [`crate::compaction`] for the contract and
//! docs/FORMAT.md ("Compaction and deletion") for the file protocol.

use super::Log;
use crate::batch::{
    BatchBuilder, BatchError, BatchHeader, BatchLimits, BatchMeta, BatchView, RecordIter, RecordRef,
};
use crate::compaction::files::{self, CLEANED, PendingSwap, SWAP, manifest_name};
use crate::compaction::plan::{self, Horizon, OffsetMap, RecordFacts, Verdict};
use crate::compaction::{
    CleanableStats, CompactError, CompactOptions, CompactReport, KeyExtractor, PayloadCodec,
};
use crate::index::{IndexFile, OFFSET_ENTRY, OffsetIndex, TIME_ENTRY, TimeIndex};
use crate::io::{OpenMode, Storage, StorageFile};
use crate::segment::frame::{Frame, HEADER_LEN};
use crate::segment::{
    ChunkReader, IndexCursor, Segment, SegmentInfo, Stats, index_name, log_name, time_index_name,
};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> CompactError {
    move |source| CompactError::Io { op, source }
}

/// Called per batch with its header, its stored bytes and its (decompressed) records.
type BatchVisitor<'f> =
    dyn FnMut(&BatchHeader, &[u8], &[RecordRef<'_>]) -> Result<(), CompactError> + 'f;

/// Bytes buffered before a positional write of the cleaned segment.
const WRITE_CHUNK: usize = 1 << 20;

/// A cleaned segment being written (`{base}.*.cleaned`).
struct Output {
    base: u64,
    log: Arc<dyn StorageFile>,
    index: OffsetIndex,
    time_index: TimeIndex,
    stats: Stats,
    cursor: IndexCursor,
    interval: u64,
    max_batch: u32,
    buf: Vec<u8>,
    flushed: u64,
}

impl Output {
    fn create(
        storage: &dyn Storage,
        base: u64,
        source_bytes: u64,
        interval: u32,
        max_index_bytes: u64,
        max_batch: u32,
    ) -> io::Result<Self> {
        let open = |name: String| -> io::Result<Arc<dyn StorageFile>> {
            let f = storage.open(&format!("{name}{CLEANED}"), OpenMode::Create)?;
            f.set_len(0)?;
            Ok(f)
        };
        let log = open(log_name(base))?;
        // Room for an entry per interval of the sources (the output is rarely larger), at most
        // what an active segment's index gets; a full index only makes lookups scan further.
        // Trimmed when finished.
        let entries = source_bytes / u64::from(interval.max(1)) + 2;
        let cap = entries
            .saturating_mul(TIME_ENTRY as u64)
            .min(max_index_bytes.max(2 * TIME_ENTRY as u64));
        let index = OffsetIndex(IndexFile::open(
            open(index_name(base))?,
            OFFSET_ENTRY,
            Some(cap),
        )?);
        let time_index = TimeIndex(IndexFile::open(
            open(time_index_name(base))?,
            TIME_ENTRY,
            Some(cap),
        )?);
        Ok(Self {
            base,
            log,
            index,
            time_index,
            stats: Stats::empty(base),
            cursor: IndexCursor::fresh(),
            interval: u64::from(interval),
            max_batch,
            buf: Vec::with_capacity(WRITE_CHUNK),
            flushed: 0,
        })
    }

    /// Appends one whole, CRC-valid batch.
    fn push(&mut self, batch: &[u8]) -> Result<(), CompactError> {
        let frame = Frame::parse(batch, self.max_batch).map_err(|e| CompactError::Corrupt {
            segment: self.base,
            position: self.stats.size,
            reason: format!("cleaned batch: {e}"),
        })?;
        let pos = self.stats.size;
        // `Ok(false)`: the index is full; it stays sparse from here on.
        self.cursor
            .observe(
                self.base,
                &mut self.index,
                &mut self.time_index,
                pos,
                &frame,
                self.interval,
            )
            .map_err(io_err("write cleaned index"))?;
        self.stats.add(&frame, frame.total_len());
        self.buf.extend_from_slice(batch);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CompactError> {
        self.log
            .write_at(&self.buf, self.flushed)
            .map_err(io_err("write cleaned segment"))?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered, trims and syncs the three files, and returns the segment.
    /// Cost: three fsyncs.
    fn finish(mut self) -> Result<Segment, CompactError> {
        self.flush()?;
        let r: io::Result<()> = (|| {
            self.log.sync()?;
            self.index.0.trim()?;
            self.time_index.0.trim()?;
            self.index.0.sync()?;
            self.time_index.0.sync()
        })();
        r.map_err(io_err("sync cleaned segment"))?;
        Ok(Segment::assemble(
            self.log,
            self.index,
            self.time_index,
            self.stats,
            self.base,
            Vec::new(),
        ))
    }
}

/// How far a group's swap got when it failed.
enum GroupFailure {
    /// Nothing committed: the sources are untouched.
    BeforeCommit(CompactError),
    /// The swap committed; the files may be half swapped until the next open completes them.
    AfterCommit(CompactError),
}

impl Log {
    /// Runs one compaction pass (see [`crate::compaction`]): cleans inactive segments from the
    /// log start to the end of a dirty range bounded by `options.max_dirty_bytes`, keeping the
    /// latest record per key as `keys` extracts them, records without a key, and tombstones
    /// younger than `options.delete_retention_ms`. Offsets of kept records never change.
    ///
    /// Compressed batches are decompressed with `codec`; batches rewritten because some of their
    /// records were dropped are written uncompressed; batches kept whole are copied as they are.
    ///
    /// Cost: reads the dirty range twice and the rest of the cleaned range once, calls `keys`
    /// once per batch read, writes the kept bytes once, plus about eight fsyncs per group and two
    /// checkpoint writes. Holds no lock while reading or writing, nor while it calls `keys` or
    /// `codec` (plugins): appends, reads, retention and truncation go on. It takes the
    /// maintenance lock (shared with retention and truncation) only to swap each cleaned group
    /// in, after checking that the group's segments are still the ones it read; if retention
    /// or a truncation changed them meanwhile the pass stops with
    /// [`CompactError::SegmentsChanged`]. One pass at a time per log: a pass that finds another
    /// running returns at once with an empty report.
    pub fn compact(
        &self,
        options: &CompactOptions,
        keys: &mut dyn KeyExtractor,
        codec: &mut dyn PayloadCodec,
    ) -> Result<CompactReport, CompactError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CompactError::Closed);
        }
        // One pass at a time, claimed without a lock (the pass calls plugins): a pass that
        // finds another one running returns at once with nothing done.
        if self.compacting.swap(true, Ordering::AcqRel) {
            return Ok(CompactReport {
                cleaned_up_to: self.cleaner_offset.load(Ordering::Acquire),
                ..CompactReport::default()
            });
        }
        let _claim = Claim(&self.compacting);
        {
            let _files = self.maintenance.lock();
            self.complete_pending_swaps()
                .map_err(io_err("complete an interrupted swap"))?;
        }
        let truncations = self.truncations.load(Ordering::Acquire);
        let snapshot = self.snapshot();
        let segs = snapshot.segments.clone();
        let last = segs.len().saturating_sub(1);
        let infos: Vec<SegmentInfo> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| s.info(i == last))
            .collect();
        let cleaned_up_to = self.cleaner_offset.load(Ordering::Acquire);
        let mut report = CompactReport {
            cleaned_up_to,
            ..CompactReport::default()
        };
        let group_bytes = options
            .max_group_bytes
            .unwrap_or(self.config.segment_bytes)
            .min(1 << 31);
        let Some(plan) = plan::plan(&infos, cleaned_up_to, options.max_dirty_bytes, group_bytes)
        else {
            return Ok(report);
        };
        let horizon = Horizon {
            log_end_offset: snapshot.end_offset,
            now_ms: self.clock.now_ms(),
            delete_retention_ms: options.delete_retention_ms,
        };

        let mut map = OffsetMap::new();
        for seg in &segs[plan.map_segments.clone()] {
            self.each_batch(seg, codec, &mut |header, _bytes, records| {
                let found = call_keys(keys, header, records)?;
                for (r, k) in records.iter().zip(&found) {
                    if let Some(k) = k {
                        map.insert(k, r.offset());
                    }
                }
                Ok(())
            })?;
        }
        report.keys = map.len();

        // While their files change, the sources are left out of recovery checkpoints: an entry
        // describing a segment's old contents must never be trusted for its new contents.
        let cleaned_end = plan.groups.last().map_or(0, |g| g.end);
        let all_sources: Vec<u64> = segs[..cleaned_end].iter().map(|s| s.base_offset).collect();
        self.unchecked.lock().extend(all_sources.iter().copied());
        let release = |bases: &[u64]| {
            let mut u = self.unchecked.lock();
            for b in bases {
                u.remove(b);
            }
        };
        if let Err(e) = self.write_checkpoint() {
            release(&all_sources);
            return Err(io_err("write checkpoint")(e));
        }
        // Readers and recovery check that offsets continue exactly above `gaps_below`: raise it
        // over the range this pass may leave gaps in before any swap, durably.
        let gaps_below = self.gaps_below.load(Ordering::Acquire);
        if plan.cleaned_up_to > gaps_below {
            let c = files::CleanerCheckpoint {
                cleaned_up_to,
                gaps_below: plan.cleaned_up_to,
            };
            if let Err(e) = files::write_cleaner_offset(self.storage.as_ref(), c) {
                release(&all_sources);
                return Err(io_err("write cleaner checkpoint")(e));
            }
            self.gaps_below.store(plan.cleaned_up_to, Ordering::Release);
        }
        for (i, group) in plan.groups.iter().enumerate() {
            let sources = &segs[group.clone()];
            let bases: Vec<u64> = sources.iter().map(|s| s.base_offset).collect();
            match self.clean_group(
                sources,
                group.start == 0,
                &map,
                &horizon,
                (keys, codec),
                truncations,
            ) {
                Ok(done) => {
                    release(&bases);
                    report.segments_cleaned += sources.len();
                    report.segments_written += usize::from(done.written);
                    report.bytes_read += done.bytes_read;
                    report.bytes_written += done.bytes_written;
                    report.records_kept += done.kept;
                    report.records_superseded += done.superseded;
                    report.tombstones_dropped += done.tombstones;
                }
                Err(failure) => {
                    let rest: Vec<u64> = segs[group.end..cleaned_end]
                        .iter()
                        .map(|s| s.base_offset)
                        .collect();
                    release(&rest);
                    let e = match failure {
                        GroupFailure::BeforeCommit(e) => {
                            // Free the space of the unfinished output now (a full disk is a
                            // likely cause); whatever stays is removed by the next open.
                            files::discard_uncommitted(self.storage.as_ref(), bases[0]);
                            release(&bases);
                            e
                        }
                        // Stays out of checkpoints until the next open completes the swap.
                        GroupFailure::AfterCommit(e) => e,
                    };
                    tracing::warn!(group = i, error = %e, "compaction pass stopped");
                    if let Err(e) = self.write_checkpoint() {
                        tracing::warn!(error = %e, "checkpoint after failed compaction failed");
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.write_checkpoint() {
            tracing::warn!(error = %e, "checkpoint after compaction failed");
        }
        let _files = self.maintenance.lock();
        if self.truncations.load(Ordering::Acquire) != truncations {
            // A truncation after the last swap may have cut into the cleaned range: the
            // cleaner checkpoint stays where it was.
            return Err(CompactError::SegmentsChanged);
        }
        let c = files::CleanerCheckpoint {
            cleaned_up_to: plan.cleaned_up_to,
            gaps_below: self.gaps_below.load(Ordering::Acquire),
        };
        files::write_cleaner_offset(self.storage.as_ref(), c)
            .map_err(io_err("write cleaner checkpoint"))?;
        self.cleaner_offset
            .store(plan.cleaned_up_to, Ordering::Release);
        report.cleaned_up_to = plan.cleaned_up_to;
        Ok(report)
    }

    /// How much of the log is clean (see [`CleanableStats`]). Cost: a pass over the segment
    /// summaries; no IO.
    pub fn cleanable_stats(&self) -> CleanableStats {
        let segs = self.snapshot_segments();
        let cleaned_up_to = self.cleaner_offset.load(Ordering::Acquire);
        let (mut clean, mut dirty) = (0u64, 0u64);
        for s in &segs[..segs.len().saturating_sub(1)] {
            let st = s.stats();
            if st.next_offset <= cleaned_up_to {
                clean += st.size;
            } else {
                dirty += st.size;
            }
        }
        let total = clean + dirty;
        CleanableStats {
            clean_bytes: clean,
            dirty_bytes: dirty,
            dirty_ratio: if total == 0 {
                0.0
            } else {
                dirty as f64 / total as f64
            },
            cleaned_up_to,
        }
    }

    /// Calls `f(header, bytes, records)` for each batch of `seg` below its committed size,
    /// decompressing compressed batches with `codec`. Every batch passes its CRC check.
    fn each_batch(
        &self,
        seg: &Segment,
        codec: &mut dyn PayloadCodec,
        f: &mut BatchVisitor<'_>,
    ) -> Result<(), CompactError> {
        let limit = seg.committed();
        let mut reader = ChunkReader::new(seg.log.as_ref(), limit, WRITE_CHUNK);
        let mut pos = 0u64;
        while pos < limit {
            let corrupt = |reason: String| CompactError::Corrupt {
                segment: seg.base_offset,
                position: pos,
                reason,
            };
            let head = reader
                .get(pos, HEADER_LEN)
                .map_err(io_err("read segment"))?;
            let frame = Frame::parse(head, self.config.max_batch_bytes)
                .map_err(|e| corrupt(e.to_string()))?;
            let len = frame.total_len();
            let bytes = reader
                .get(pos, usize::try_from(len).unwrap_or(usize::MAX))
                .map_err(io_err("read segment"))?;
            if bytes.len() as u64 != len {
                return Err(corrupt("batch extends past the segment end".into()));
            }
            let view = BatchView::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
            let header = *view.header();
            let decompressed;
            let payload = if header.attributes().is_compressed() {
                let codec_ref = header.codec_ref();
                let entry = self
                    .codecs
                    .get(codec_ref)
                    .ok_or(CompactError::UnknownCodec {
                        base_offset: header.base_offset(),
                        codec_ref,
                    })?;
                decompressed = codec
                    .decompress(&entry, view.payload(), header.payload_size())
                    .map_err(|source| CompactError::Codec {
                        base_offset: header.base_offset(),
                        source,
                    })?;
                &decompressed[..]
            } else {
                view.payload()
            };
            let records: Vec<RecordRef<'_>> = RecordIter::new(payload, &header)
                .and_then(|it| it.collect())
                .map_err(|e| corrupt(e.to_string()))?;
            f(&header, bytes, &records)?;
            pos += len;
        }
        Ok(())
    }

    /// Rewrites `sources` (consecutive inactive segments) into one segment and swaps it in.
    fn clean_group(
        &self,
        sources: &[Arc<Segment>],
        first_of_log: bool,
        map: &OffsetMap,
        horizon: &Horizon,
        (keys, codec): (&mut dyn KeyExtractor, &mut dyn PayloadCodec),
        truncations: u64,
    ) -> Result<GroupDone, GroupFailure> {
        let storage = self.storage.as_ref();
        let base = sources.first().map_or(0, |s| s.base_offset);
        let sizes: Vec<u64> = sources.iter().map(|s| s.committed()).collect();
        let source_bytes: u64 = sizes.iter().sum();
        let mut done = GroupDone {
            bytes_read: source_bytes,
            ..GroupDone::default()
        };
        let before = GroupFailure::BeforeCommit;
        let mut out = Output::create(
            storage,
            base,
            source_bytes,
            self.config.index_interval_bytes,
            self.config.index_max_bytes,
            self.config.max_batch_bytes,
        )
        .map_err(|e| before(io_err("create cleaned segment")(e)))?;
        let limits = BatchLimits {
            max_batch_length: self.config.max_batch_bytes,
            ..BatchLimits::default()
        };
        for src in sources {
            let max_ts = src.stats().max_timestamp;
            self.each_batch(src, codec, &mut |header, bytes, records| {
                let found = call_keys(keys, header, records)?;
                let verdicts: Vec<Verdict> = records
                    .iter()
                    .zip(&found)
                    .map(|(r, k)| {
                        let facts = RecordFacts {
                            offset: r.offset(),
                            key: k.as_deref(),
                            tombstone: r.value().is_none(),
                        };
                        plan::decide(&facts, max_ts, map, horizon)
                    })
                    .collect();
                let kept = verdicts.iter().filter(|v| v.keeps()).count();
                done.kept += kept as u64;
                for v in &verdicts {
                    match v {
                        Verdict::Keep => {}
                        Verdict::Superseded => done.superseded += 1,
                        Verdict::ExpiredTombstone => done.tombstones += 1,
                    }
                }
                if kept == records.len() {
                    return out.push(bytes);
                }
                if kept == 0 {
                    return Ok(());
                }
                match rebuild(limits, header, records, &verdicts) {
                    Ok(b) => out.push(&b),
                    Err(e) => keep_whole(&mut out, bytes, header, &e, &mut done, &verdicts),
                }
            })
            .map_err(before)?;
        }
        let empty = out.stats.size == 0;
        let seg = Arc::new(out.finish().map_err(before)?);
        done.bytes_written = seg.committed();
        // An empty first segment is kept, so the log start offset does not move; an empty
        // group elsewhere leaves a gap.
        let keep = !empty || first_of_log;
        done.written = keep;

        let bases: Vec<u64> = sources.iter().map(|s| s.base_offset).collect();
        // The file steps under the maintenance lock, once the sources are known to be what was
        // read: still in the list, consecutive, sealed (a segment follows them), not cut.
        let _files = self.maintenance.lock();
        let unchanged = self.truncations.load(Ordering::Acquire) == truncations
            && sources.iter().zip(&sizes).all(|(s, &n)| s.committed() == n)
            && {
                let list = self.segments.read();
                list.iter()
                    .position(|s| Arc::ptr_eq(s, &sources[0]))
                    .is_some_and(|i| {
                        i + sources.len() < list.len()
                            && list[i..i + sources.len()]
                                .iter()
                                .zip(sources)
                                .all(|(a, b)| Arc::ptr_eq(a, b))
                    })
            };
        if !unchanged {
            drop(seg);
            return Err(before(CompactError::SegmentsChanged));
        }
        let r: io::Result<()> = (|| {
            files::write_new(
                storage,
                &format!("{}{CLEANED}", manifest_name(base)),
                &files::encode_manifest(&bases),
            )?;
            crate::failpoint::hit("compaction::before_swap")?;
            for name in [manifest_name(base), index_name(base), time_index_name(base)] {
                storage.rename(&format!("{name}{CLEANED}"), &format!("{name}{SWAP}"))?;
            }
            storage.sync_dir()?;
            crate::failpoint::hit("compaction::commit")?;
            // Once this rename is done the swap may become durable at any moment: from here on
            // it is treated as committed (the directory sync that makes it certain is the first
            // step of `complete_swap`).
            storage.rename(
                &format!("{}{CLEANED}", log_name(base)),
                &format!("{}{SWAP}", log_name(base)),
            )
        })();
        r.map_err(|e| before(io_err("commit cleaned segment")(e)))?;

        // Committed. The in-memory swap first (one step under the list lock, no IO), then the
        // files; a failure from here on is completed by the next open.
        {
            let mut list = self.segments.write();
            let start = list.iter().position(|s| Arc::ptr_eq(s, &sources[0]));
            let Some(start) = start.filter(|&i| {
                list.get(i..i + sources.len())
                    .is_some_and(|w| w.iter().zip(sources).all(|(a, b)| Arc::ptr_eq(a, b)))
            }) else {
                return Err(GroupFailure::AfterCommit(CompactError::Io {
                    op: "swap cleaned segment",
                    source: io::Error::other("the segments being cleaned changed"),
                }));
            };
            let mut next = Vec::with_capacity(list.len());
            next.extend(list[..start].iter().cloned());
            if keep {
                next.push(seg.clone());
            }
            next.extend(list[start + sources.len()..].iter().cloned());
            *list = Arc::new(next);
        }
        let pending = PendingSwap {
            base,
            sources: bases,
            keep,
        };
        if let Err(e) = files::complete_swap(storage, &pending) {
            self.pending.lock().push(pending);
            return Err(GroupFailure::AfterCommit(io_err("swap cleaned segment")(e)));
        }
        Ok(done)
    }

    /// Completes swaps whose files a failed pass left half done (they are committed), before
    /// anything else touches segment files. Called under `maintenance`.
    pub(super) fn complete_pending_swaps(&self) -> io::Result<()> {
        let mut pending = self.pending.lock();
        while let Some(p) = pending.first() {
            files::complete_swap(self.storage.as_ref(), p)?;
            let mut unchecked = self.unchecked.lock();
            for b in &p.sources {
                unchecked.remove(b);
            }
            drop(unchecked);
            pending.remove(0);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct GroupDone {
    written: bool,
    bytes_read: u64,
    bytes_written: u64,
    kept: u64,
    superseded: u64,
    tombstones: u64,
}

fn call_keys(
    keys: &mut dyn KeyExtractor,
    header: &BatchHeader,
    records: &[RecordRef<'_>],
) -> Result<Vec<Option<Vec<u8>>>, CompactError> {
    let found = keys.keys(records).map_err(|source| CompactError::Keys {
        base_offset: header.base_offset(),
        source,
    })?;
    if found.len() != records.len() {
        return Err(CompactError::KeyCount {
            base_offset: header.base_offset(),
            records: records.len(),
            returned: found.len(),
        });
    }
    Ok(found)
}

/// The kept records of a batch as a new uncompressed batch, at their original offsets, with
/// the batch's writer-chosen header fields and its last offset. Cost: one copy of the kept
/// records, one CRC pass.
fn rebuild(
    limits: BatchLimits,
    header: &BatchHeader,
    records: &[RecordRef<'_>],
    verdicts: &[Verdict],
) -> Result<Vec<u8>, BatchError> {
    let mut kept = records
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.keeps())
        .map(|(r, _)| r);
    let Some(first) = kept.next() else {
        return Err(BatchError::EmptyBatch);
    };
    let new_base = first.offset();
    let mut meta = BatchMeta {
        base_offset: new_base,
        ..header.meta()
    };
    // A record's sequence is the batch's base sequence plus its offset delta: moving the base
    // offset up moves the base sequence with it, so every kept record keeps its sequence and
    // producer state rebuilt from the cleaned batch equals the state before.
    if meta.producer_id >= 0 && meta.base_sequence >= 0 {
        let shift = u32::try_from(new_base - header.base_offset()).unwrap_or(u32::MAX);
        meta.base_sequence = crate::producers::increment_sequence(meta.base_sequence, shift);
    }
    let mut builder = BatchBuilder::with_capacity(header.payload_size() as usize)
        .limits(limits)
        .meta(&meta);
    let delta = |o: u64| u32::try_from(o - new_base).unwrap_or(u32::MAX);
    builder.push_ref_at(0, first)?;
    for r in kept {
        builder.push_ref_at(delta(r.offset()), r)?;
    }
    builder.set_last_offset_delta(delta(header.last_offset()))?;
    builder.finish()
}

/// A batch that could not be rewritten smaller is kept whole (keeping more is always safe).
fn keep_whole(
    out: &mut Output,
    bytes: &[u8],
    header: &BatchHeader,
    e: &BatchError,
    done: &mut GroupDone,
    verdicts: &[Verdict],
) -> Result<(), CompactError> {
    tracing::warn!(
        base_offset = header.base_offset(),
        error = %e,
        "batch not rewritten; kept whole"
    );
    let dropped = verdicts.iter().filter(|v| !v.keeps()).count() as u64;
    done.kept += dropped;
    for v in verdicts {
        match v {
            Verdict::Keep => {}
            Verdict::Superseded => done.superseded -= 1,
            Verdict::ExpiredTombstone => done.tombstones -= 1,
        }
    }
    out.push(bytes)
}

/// Clears the log's `compacting` flag when the pass ends, however it ends.
struct Claim<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
