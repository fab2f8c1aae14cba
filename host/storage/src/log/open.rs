//! Opening a log: the directory lock, recovery, the checkpoint a recovery that changed
//! something writes, and the log's place on its [`LogThreads`].

use super::codecs::CodecTable;
use super::{
    Clock, Log, LogConfig, LogThreads, OpenError, SyncPolicy, SyncState, SystemClock, Writer,
};
use crate::epochs::{LeaderEpochs, LoadError};
use crate::io::{Storage, is_no_space};
use crate::producers::ProducerState;
use crate::recovery::{self, checkpoint};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64};
use std::time::Duration;

impl Log {
    /// Opens (recovering if needed) the log in `storage`, creating it if empty, with
    /// background threads of its own (see [`open_in`](Self::open_in) to share them).
    /// Cost: lists the directory, reads the checkpoint, validates only what follows it; starts
    /// two threads.
    pub fn open(storage: Arc<dyn Storage>, config: LogConfig) -> Result<Arc<Self>, OpenError> {
        Self::open_with_clock(storage, config, Arc::new(SystemClock))
    }

    /// Opens the log in the directory `dir` on the real file system, creating the directory if
    /// missing, with background threads of its own. See [`open`](Self::open).
    pub fn open_dir(
        dir: impl Into<std::path::PathBuf>,
        config: LogConfig,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_dir_in(&private_threads(), dir, config)
    }

    /// [`open`](Self::open) with an explicit clock.
    pub fn open_with_clock(
        storage: Arc<dyn Storage>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_in(&private_threads(), storage, config, clock)
    }

    /// [`open_in`](Self::open_in) on the directory `dir` on the real file system (created if
    /// missing), with the system clock.
    pub fn open_dir_in(
        threads: &Arc<LogThreads>,
        dir: impl Into<std::path::PathBuf>,
        config: LogConfig,
    ) -> Result<Arc<Self>, OpenError> {
        let dir = dir.into();
        let storage = crate::io::FsStorage::create(&dir).map_err(|source| OpenError::Io {
            op: "create",
            name: dir.display().to_string(),
            source,
        })?;
        Self::open_in(threads, Arc::new(storage), config, Arc::new(SystemClock))
    }

    /// Opens (recovering if needed) the log in `storage`, creating it if empty, served by the
    /// sealer and flusher of `threads` (see [`LogThreads`]): a process with many logs opens
    /// them all on one handle. The log keeps the handle alive. Cost: lists the directory,
    /// reads the checkpoint, validates only what follows it.
    pub fn open_in(
        threads: &Arc<LogThreads>,
        storage: Arc<dyn Storage>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        config.validate()?;
        let dir_lock = match lock_dir(storage.as_ref()) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(OpenError::Locked {
                    dir: format!("{storage:?}"),
                    reason: e.to_string(),
                });
            }
            Err(source) => {
                return Err(OpenError::Io {
                    op: "lock",
                    name: crate::io::LOCK_NAME.into(),
                    source,
                });
            }
        };
        // The leader-epoch file bounds the epochs recovery accepts; a corrupt one is rebuilt
        // from the batch headers after recovery, which then accepts any epoch.
        let (epochs, rebuild_epochs) = match LeaderEpochs::load(storage.as_ref()) {
            Ok(e) => (e, false),
            Err(LoadError::Corrupt(reason)) => {
                tracing::warn!(%reason, "the leader-epoch file is corrupt; rebuilding it from the batch headers");
                (LeaderEpochs::new(), true)
            }
            Err(LoadError::Io(source)) => {
                return Err(OpenError::Io {
                    op: "read",
                    name: crate::epochs::LEADER_EPOCHS_NAME.into(),
                    source,
                });
            }
        };
        let max_epoch = if rebuild_epochs {
            u32::MAX
        } else {
            epochs.latest_epoch().unwrap_or(0)
        };
        let recovered = recovery::recover(storage.as_ref(), &config, max_epoch)?;
        let codecs = CodecTable::open(storage.clone())?;
        let cleaner = recovered.cleaner;
        let segments = recovered.segments;
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| OpenError::Config("recovery produced no segment".into()))?;
        let stats = active.stats();
        let now = clock.now_ms();
        // A checkpoint's high watermark may lag the one replication last set (it is written
        // now and then), and lead the log end after a crash lost an unsynced tail.
        let high_watermark = if config.replicated {
            recovered
                .high_watermark
                .unwrap_or(stats.next_offset)
                .min(stats.next_offset)
        } else {
            stats.next_offset
        };
        let log = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            seal_queued: AtomicBool::new(false),
            checkpoint_queued: AtomicBool::new(false),
            seal_lock: Mutex::new(()),
            storage,
            clock,
            writer: Mutex::new(Writer {
                active: active.clone(),
                stats,
                cursor: recovered.cursor,
                created_ms: now,
                needs_truncate: false,
            }),
            segments: RwLock::new(Arc::new(segments)),
            end_offset: AtomicU64::new(stats.next_offset),
            sync: Mutex::new(SyncState {
                synced_offset: stats.next_offset,
                point: Some(checkpoint::Entry {
                    base_offset: active.base_offset,
                    stats,
                }),
                last_checkpoint_ms: now,
                ..SyncState::default()
            }),
            sync_done: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
            codecs,
            closed: AtomicBool::new(false),
            threads: threads.clone(),
            next_interval_sync_ms: AtomicI64::new(now),
            maintenance: Mutex::new(()),
            compacting: AtomicBool::new(false),
            truncations: AtomicU64::new(0),
            unchecked: Mutex::new(BTreeSet::new()),
            pending: Mutex::new(Vec::new()),
            failed_flag: AtomicBool::new(false),
            readable_end: AtomicU64::new(u64::MAX),
            _dir_lock: dir_lock,
            cleaner_offset: AtomicU64::new(cleaner.cleaned_up_to.min(stats.next_offset)),
            gaps_below: AtomicU64::new(cleaner.gaps_below),
            high_watermark: AtomicU64::new(high_watermark),
            max_epoch: AtomicU32::new(max_epoch),
            epochs: Mutex::new(epochs),
            producers: Mutex::new(ProducerState::new()),
            producer_snapshot_at: AtomicU64::new(u64::MAX),
            config,
        });
        // The leader-epoch file and the producer state follow the recovered log.
        log.reconcile_epochs(rebuild_epochs)?;
        log.recover_producers(recovered.producers)?;
        if recovered.changed {
            match log.write_checkpoint() {
                Ok(()) => {}
                // The checkpoint only saves the next open some reading: going on without it
                // leaves the state of a crash just before it, which recovery handles. A broker
                // must start on a full disk (serving reads, refusing writes).
                Err(e) if is_no_space(&e) => tracing::warn!(
                    log = ?log.storage,
                    error = %e,
                    "disk full: the recovery checkpoint was not written; the next open repeats this recovery"
                ),
                Err(source) => {
                    return Err(OpenError::Io {
                        op: "write",
                        name: checkpoint::CHECKPOINT_NAME.into(),
                        source,
                    });
                }
            }
        }
        // A truncation that a crash interrupted after its commit point is completed before
        // anyone reads.
        let pending =
            super::truncate::read_marker(log.storage.as_ref()).map_err(|source| OpenError::Io {
                op: "read",
                name: super::TRUNCATION_NAME.into(),
                source,
            })?;
        if let Some(offset) = pending {
            log.complete_truncation(offset).map_err(|e| OpenError::Io {
                op: "complete the truncation in",
                name: super::TRUNCATION_NAME.into(),
                source: e.into_io(),
            })?;
        }
        if let SyncPolicy::IntervalMs(ms) = log.config.sync {
            log.threads
                .schedule_flush(Arc::downgrade(&log), Duration::from_millis(ms));
        }
        Ok(log)
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
}

/// Takes the directory lock. A lock held by this very process is usually a log of the
/// directory being dropped on another thread (the background sealer's last reference going
/// away after its job): wait for it a little instead of failing at once. Another process's lock
/// fails at once.
fn lock_dir(storage: &dyn Storage) -> std::io::Result<Option<crate::io::DirLock>> {
    let own = format!("locked by process {}", std::process::id());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match storage.lock() {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && e.to_string() == own
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// The background threads of a log opened without a handle: its own, or none (every job
/// inline) when the OS refuses them.
fn private_threads() -> Arc<LogThreads> {
    LogThreads::start().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot start the storage threads; sealing and interval syncs run inline");
        Arc::new(LogThreads::stopped())
    })
}
