//! Truncating the log's tail (a follower dropping a divergent suffix), crash-safely.
//!
//! The protocol, under the maintenance and writer locks (no compaction, deletion or append
//! runs meanwhile):
//!
//! 1. Everything written is synced, and no other sync starts until the truncation is done
//!    (the recovery point never names a segment that is being cut or deleted).
//! 2. The cut point is found: the start of the batch holding the requested offset.
//! 3. **Commit:** the truncation marker [`TRUNCATION_NAME`] (the new log end offset) is
//!    written with [`crate::io::replace`]. From here a crash reopens to the truncated log,
//!    since opening a log completes the truncation its marker names; before it, to the old
//!    log. Any error from here on fails the log (see [`Log::failure`]) so that nothing is
//!    appended over a half-done truncation; reopening completes it.
//! 4. Readers stop at the new end (the cut segment's published end, a segment list without
//!    the newer segments).
//! 5. Newer segments go through the `.deleted` protocol of
//!    [`delete_segments`](Log::delete_segments): renamed, directory synced, removed.
//! 6. The segment holding the new end is cut (`set_len`), its offset and time indexes cut to
//!    match, and synced; it becomes the active segment.
//! 7. The leader epochs starting at or after the new end are dropped (file rewritten), the
//!    producer state is cut (snapshots above the new end removed), the recovery checkpoint is
//!    rewritten; the marker is removed and the directory synced, still under the writer lock,
//!    so no append can land while a marker could cut it. (A crash before the epoch file is
//!    rewritten is repaired by the next open, which cuts the epochs to the log end.)
//!
//! Marker layout (little-endian): magic `DLTR`, version u16 = 1, new log end offset u64,
//! CRC32C of the preceding 14 bytes, u32.

use super::{Log, LogFailure, TruncateError, Writer};
use crate::compaction::files::{remove_if_exists, rename_to_deleted};
use crate::io::{OpenMode, Storage};
use crate::recovery::checkpoint;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// File name of the truncation marker (see the module docs).
pub const TRUNCATION_NAME: &str = "truncation.checkpoint";
const MAGIC: &[u8; 4] = b"DLTR";
const VERSION: u16 = 1;
const LEN: usize = 4 + 2 + 8 + 4;

fn encode(offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<u64> {
    if b.len() != LEN || &b[..4] != MAGIC || b[4..6] != VERSION.to_le_bytes() {
        return None;
    }
    let crc = u32::from_le_bytes(b[14..18].try_into().ok()?);
    let offset = u64::from_le_bytes(b[6..14].try_into().ok()?);
    (crc32c::crc32c(&b[..14]) == crc).then_some(offset)
}

/// The new log end a pending truncation names, if a marker exists. An unreadable marker
/// cannot come from [`crate::io::replace`]; it is ignored (the log stays as it is) and removed.
pub(super) fn read_marker(storage: &dyn Storage) -> io::Result<Option<u64>> {
    let Some(buf) = crate::io::read_whole(storage, TRUNCATION_NAME)? else {
        return Ok(None);
    };
    match decode(&buf) {
        Some(offset) => Ok(Some(offset)),
        None => {
            tracing::warn!(
                file = TRUNCATION_NAME,
                "ignoring an unreadable truncation marker"
            );
            remove_marker(storage)?;
            Ok(None)
        }
    }
}

fn remove_marker(storage: &dyn Storage) -> io::Result<()> {
    if remove_if_exists(storage, TRUNCATION_NAME)? {
        storage.sync_dir()?;
    }
    Ok(())
}

impl Log {
    /// Drops every record at or after `offset`, so that the next append gets the returned
    /// offset: a follower dropping the suffix in which it diverged from its leader (found with
    /// OffsetsForLeaderEpoch). Returns the new log end offset.
    ///
    /// `offset` is rounded **down** to a batch boundary, as Kafka truncates: the batch holding
    /// `offset` is dropped whole, so the new end is that batch's base offset (below `offset`
    /// when `offset` is inside a batch). A truncation into a damaged stretch drops the stretch
    /// too. `offset` at or after the log end changes nothing; below the log start it is
    /// [`TruncateError::BelowLogStart`]. The high watermark comes down to the new end if it
    /// was above it.
    ///
    /// Crash-safe (see the module docs of `log/truncate.rs`): a crash at any point reopens to
    /// either the old or the truncated log, with indexes that match. Readers that start after
    /// it returns never see the dropped records; a [`LogSnapshot`](super::LogSnapshot) taken
    /// before keeps its view. An error before the commit point leaves the log unchanged; after
    /// it the log has failed and reopening it completes the truncation.
    ///
    /// Waits for a running compaction pass; appends wait for it. Cost: an fsync of what is not
    /// yet synced, a walk of the headers of the segment holding `offset`, the removal of every
    /// newer segment, about ten fsyncs.
    pub fn truncate_to(&self, offset: u64) -> Result<u64, TruncateError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TruncateError::Closed);
        }
        let _pass = self.maintenance.lock();
        self.complete_pending_swaps().map_err(TruncateError::Io)?;
        let mut w = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(TruncateError::Closed);
        }
        if let Some(f) = self.failure() {
            return Err(TruncateError::Failed(f));
        }
        let log_start = self.log_start_offset();
        if offset < log_start {
            return Err(TruncateError::BelowLogStart { offset, log_start });
        }
        if offset >= w.stats.next_offset {
            return Ok(w.stats.next_offset);
        }
        self.truncate_locked(&mut w, offset)
    }

    /// Completes the truncation a marker names (a crash interrupted it), then removes the
    /// marker. Called by open before the log is handed out.
    pub(super) fn complete_truncation(&self, offset: u64) -> Result<(), TruncateError> {
        {
            let _pass = self.maintenance.lock();
            let mut w = self.writer.lock();
            if offset < w.stats.next_offset {
                tracing::warn!(
                    offset,
                    end = w.stats.next_offset,
                    "completing an interrupted truncation"
                );
                self.truncate_locked(&mut w, offset.max(self.log_start_offset()))?;
            }
        }
        remove_marker(self.storage.as_ref()).map_err(TruncateError::Io)
    }

    /// The truncation protocol (module docs) under the maintenance and writer locks.
    fn truncate_locked(&self, w: &mut Writer, offset: u64) -> Result<u64, TruncateError> {
        self.sync_to(w.stats.next_offset)
            .map_err(TruncateError::Failed)?;
        {
            let mut st = self.sync.lock();
            while st.syncing {
                self.sync_done.wait(&mut st);
            }
            if let Some(f) = &st.failed {
                return Err(TruncateError::Failed(f.clone()));
            }
            st.syncing = true;
        }
        let checkpoint_guard = self.checkpoint_lock.lock();
        let mut committed = false;
        let result = self.truncate_files(w, offset, &mut committed, &checkpoint_guard);
        drop(checkpoint_guard);
        let mut st = self.sync.lock();
        st.syncing = false;
        st.generation += 1;
        if let Err(e) = &result
            && committed
        {
            let new_end = self.end_offset.load(Ordering::Acquire);
            let failure = LogFailure {
                kind: e.kind(),
                message: format!("truncation failed part-way ({e}); reopen the log to complete it"),
                synced_offset: new_end,
            };
            tracing::error!(error = %e, new_end, "truncation failed part-way: the log refuses appends until it is reopened");
            st.failed = Some(failure);
            self.readable_end.store(new_end, Ordering::Release);
            self.failed_flag.store(true, Ordering::Release);
        }
        self.sync_done.notify_all();
        result.map_err(TruncateError::Io)
    }

    /// Steps 2 to 7 of the protocol; sets `committed` once the marker may be durable.
    fn truncate_files(
        &self,
        w: &mut Writer,
        offset: u64,
        committed: &mut bool,
        checkpoint_guard: &parking_lot::MutexGuard<'_, ()>,
    ) -> io::Result<u64> {
        let storage = self.storage.as_ref();
        let segs = self.snapshot_segments();
        let last = segs.len() - 1;
        let k = segs
            .iter()
            .rposition(|s| s.base_offset <= offset)
            .unwrap_or(0);
        let target = segs[k].clone();
        let (pos, stats) = target.prefix_before(
            offset,
            self.config.max_batch_bytes,
            self.gaps_below.load(Ordering::Acquire),
        )?;
        let new_end = stats.next_offset;
        if k == last && pos == target.committed() {
            return Ok(w.stats.next_offset);
        }

        *committed = true;
        let marker = crate::io::replace(storage, TRUNCATION_NAME, &encode(new_end));
        if marker.is_err()
            && matches!(storage.open(TRUNCATION_NAME, OpenMode::Existing), Err(ref n) if n.kind() == io::ErrorKind::NotFound)
        {
            // No marker at all: nothing was committed and the log is unchanged.
            *committed = false;
            return marker.map(|()| new_end);
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        // Committed (or possibly, when the marker's directory sync failed): readers stop at the
        // new end before any file changes.
        target.publish(stats);
        *self.segments.write() = Arc::new(segs[..=k].to_vec());
        self.end_offset.store(new_end, Ordering::Release);
        self.cleaner_offset.fetch_min(new_end, Ordering::AcqRel);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        marker?;
        crate::failpoint::hit("truncate::commit")?;

        let newer = &segs[k + 1..];
        if !newer.is_empty() {
            let mut names = Vec::new();
            for s in newer {
                names.extend(rename_to_deleted(storage, s.base_offset)?);
            }
            crate::failpoint::hit("delete::sync")?;
            storage.sync_dir()?;
            for name in &names {
                if let Err(e) = remove_if_exists(storage, name) {
                    // The next open removes it.
                    tracing::warn!(file = %name, error = %e, "removing truncated segment file failed");
                }
            }
        }
        crate::failpoint::hit("truncate::cut")?;
        target.cut(pos, stats)?;
        if k != last {
            if let Err(e) = target.reactivate(self.config.index_max_bytes) {
                // Indexes are caches: a full one only makes the segment roll sooner.
                tracing::warn!(segment = target.base_offset, error = %e, "cannot let the indexes grow again");
            }
            w.active = target.clone();
            w.created_ms = self.clock.now_ms();
        }
        w.stats = stats;
        w.cursor = target.cursor_at_end();
        w.needs_truncate = false;
        {
            let mut st = self.sync.lock();
            st.synced_offset = new_end;
            st.point = Some(checkpoint::Entry {
                base_offset: target.base_offset,
                stats,
            });
            st.sealed.retain(|s| s.base_offset < target.base_offset);
            st.dir_dirty = false;
        }
        self.truncate_epochs(new_end)?;
        self.truncate_producers(new_end)?;
        self.write_checkpoint_locked(checkpoint_guard)?;
        crate::failpoint::hit("truncate::done")?;
        remove_marker(storage)?;
        Ok(new_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_damage() {
        let b = encode(1234);
        assert_eq!(decode(&b), Some(1234));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert_eq!(decode(&d), None);
            assert_eq!(decode(&b[..i]), None);
        }
    }
}
