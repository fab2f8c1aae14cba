//! Syncs segments sealed by a roll off the append path.
//!
//! A roll seals the active segment; under [`SyncPolicy::Os`](super::SyncPolicy) or an interval
//! policy it may hold up to `segment_bytes` of unsynced data (a 1 GiB fsync takes about a second
//! on an ordinary disk). Syncing it inline would stall the append that triggered the roll and
//! every append queued behind it, so, as Kafka schedules `flush-log` after a roll, the log
//! queues itself here and one process-wide thread syncs it and writes the checkpoint that
//! advances the recovery point past it. Nothing is promised about the sealed segment until that
//! sync completes, exactly as for unsynced appends: the checkpoint only ever names synced data.
//!
//! The same thread writes the periodic recovery checkpoints (every `checkpoint_interval_ms`
//! while appends are synced), so an append never waits for the checkpoint's three fsyncs.
//!
//! One thread for every log of the process: rolls are rare (one per `segment_bytes` or
//! `segment.ms`), a log is queued at most once at a time, and a thread per log would not scale
//! to thousands of partitions.

use super::Log;
use std::sync::mpsc::{Sender, channel};
use std::sync::{OnceLock, Weak};

/// What the sealer does for a log.
#[derive(Debug, Clone, Copy)]
pub(super) enum Job {
    /// Sync everything written (a roll sealed a segment), then write the checkpoint.
    Seal,
    /// Write the checkpoint from the last completed sync.
    Checkpoint,
}

/// The sealer's queue; `None` when its thread could not start.
type Queue = Option<Sender<(Weak<Log>, Job)>>;

static QUEUE: OnceLock<Queue> = OnceLock::new();

/// Queues `job` for `log` on the background thread. Returns `false` when the sealer thread
/// cannot run (the caller then does the job inline).
pub(super) fn queue(log: Weak<Log>, job: Job) -> bool {
    let sender = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<(Weak<Log>, Job)>();
        std::thread::Builder::new()
            .name("distlog-seal".into())
            .spawn(move || {
                for (log, job) in rx {
                    // A log dropped since its roll needs nothing: its next open validates
                    // whatever follows the checkpoint.
                    if let Some(log) = log.upgrade() {
                        match job {
                            Job::Seal => log.seal_now(),
                            Job::Checkpoint => log.checkpoint_now(),
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    sender
        .as_ref()
        .is_some_and(|tx| tx.send((log, job)).is_ok())
}
