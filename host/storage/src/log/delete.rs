//! Deleting whole segments (retention), crash-safely through `.deleted` renames.

use super::{DeleteError, Log};
use crate::segment::Segment;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Log {
    /// Deletes the given segments (by base offset; unknown ones are ignored) and returns the
    /// base offsets actually deleted, oldest first. The active segment is never deleted. The
    /// log start offset advances to the first remaining segment. Readers holding a
    /// [`LogSnapshot`](super::LogSnapshot) that includes a deleted segment keep reading it; its space is freed when
    /// they drop it.
    ///
    /// Crash-safe: each segment's files are renamed to `.deleted` (oldest segment first, its
    /// `.log` first), the directory is synced, then the files are removed; opening a log removes
    /// leftover `.deleted` files and never brings them back. A segment is deleted once its
    /// `.log` is renamed: on an error, the segments renamed so far are deleted (and returned in
    /// the error's place by a retry), the others are untouched. Waits for a running compaction
    /// pass. Cost: two renames per file, one directory sync, a checkpoint.
    pub fn delete_segments(&self, base_offsets: &[u64]) -> Result<Vec<u64>, DeleteError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DeleteError::Closed);
        }
        let _pass = self.maintenance.lock();
        self.complete_pending_swaps()?;
        {
            let w = self.writer.lock();
            if base_offsets.contains(&w.active.base_offset) {
                return Err(DeleteError::ActiveSegment(w.active.base_offset));
            }
        }
        // Only this method and compaction (both under `maintenance`) remove segments, and the
        // active segment only moves forward: these stay inactive and present.
        let targets: Vec<Arc<Segment>> = self
            .snapshot_segments()
            .iter()
            .filter(|s| base_offsets.contains(&s.base_offset))
            .cloned()
            .collect();
        let storage = self.storage.as_ref();
        let mut renamed = Vec::with_capacity(targets.len());
        let mut failure = None;
        for s in &targets {
            match crate::compaction::files::rename_to_deleted(storage, s.base_offset) {
                Ok(names) => renamed.push((s.base_offset, names)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !renamed.is_empty() {
            let mut segs = self.segments.write();
            let kept: Vec<_> = segs
                .iter()
                .filter(|s| !renamed.iter().any(|(b, _)| *b == s.base_offset))
                .cloned()
                .collect();
            *segs = Arc::new(kept);
        }
        if failure.is_none()
            && let Err(e) = crate::failpoint::hit("delete::sync").and_then(|()| storage.sync_dir())
        {
            failure = Some(e);
        }
        if failure.is_none() {
            for name in renamed.iter().flat_map(|(_, names)| names) {
                if let Err(e) = crate::failpoint::hit("delete::remove")
                    .and_then(|()| crate::compaction::files::remove_if_exists(storage, name))
                {
                    // The next open removes it.
                    tracing::warn!(file = %name, error = %e, "removing deleted segment file failed");
                }
            }
        }
        if !renamed.is_empty() {
            let start = self.log_start_offset();
            self.retain_epochs_from(start);
            self.retain_producers_from(start);
        }
        if !renamed.is_empty()
            && let Err(e) = self.write_checkpoint()
        {
            tracing::warn!(error = %e, "checkpoint after segment deletion failed");
        }
        match failure {
            Some(e) => Err(DeleteError::Io(e)),
            None => Ok(renamed.into_iter().map(|(b, _)| b).collect()),
        }
    }
}
