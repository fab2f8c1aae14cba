//! The storage threads of a process: one sealer and one flusher per [`LogThreads`] handle,
//! serving every log opened on it.
//!
//! **Sealer.** A roll seals the active segment; under [`SyncPolicy::Os`](super::SyncPolicy) or
//! an interval policy it may hold up to `segment_bytes` of unsynced data (a 1 GiB fsync takes
//! about a second on an ordinary disk). Syncing it inline would stall the append that triggered
//! the roll and every append queued behind it, so, as Kafka schedules `flush-log` after a roll,
//! the log queues itself here and the sealer thread syncs it and writes the checkpoint that
//! advances the recovery point past it. Nothing is promised about the sealed segment until that
//! sync completes, exactly as for unsynced appends: the checkpoint only ever names synced data.
//! The same thread writes the periodic recovery checkpoints (every `checkpoint_interval_ms`
//! while appends are synced), so an append never waits for the checkpoint's fsyncs.
//!
//! **Flusher.** Logs with [`SyncPolicy::IntervalMs`](super::SyncPolicy::IntervalMs) are synced
//! by one timer thread that keeps a schedule of (next due time, log) ordered by due time; it
//! sleeps until the earliest, syncs that log, and schedules it again one interval later. A log
//! that was dropped or closed leaves the schedule when its turn comes.
//!
//! Two threads per handle whatever the number of logs: rolls are rare (one per
//! `segment_bytes` or `segment.ms`), a log is queued at most once per job kind at a time, and a
//! thread per log would not scale to thousands of partitions. Handles share nothing: a process
//! (a broker) creates one with [`LogThreads::start`] and stops it with
//! [`LogThreads::shutdown`]; logs opened with [`Log::open`](super::Log::open) and its siblings
//! get a private handle of their own.

use super::Log;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the sealer does for a log.
#[derive(Debug, Clone, Copy)]
pub(super) enum Job {
    /// Sync everything written (a roll sealed a segment), then write the checkpoint.
    Seal,
    /// Write the checkpoint from the last completed sync.
    Checkpoint,
}

#[derive(Debug)]
struct Timer {
    log: Weak<Log>,
    interval: Duration,
}

#[derive(Debug, Default)]
struct State {
    stopped: bool,
    /// Whether the sealer thread runs (jobs queued here are done by it).
    sealer: bool,
    /// Whether the flusher thread runs.
    flusher: bool,
    jobs: VecDeque<(Weak<Log>, Job)>,
    /// The flusher's schedule: (due, sequence number) -> log. The sequence number keeps
    /// entries with the same due time apart.
    timers: BTreeMap<(Instant, u64), Timer>,
    next_timer: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the sealer: a job was queued, or the handle stops.
    jobs_cv: Condvar,
    /// Wakes the flusher: an earlier timer was scheduled, or the handle stops.
    timers_cv: Condvar,
    /// `State::flusher`, readable without the lock on the append path.
    flusher_live: AtomicBool,
}

/// The background threads logs use (see the module docs): one sealer and one flusher,
/// shared by every log opened on this handle with [`Log::open_in`](super::Log::open_in) or
/// [`Log::open_dir_in`](super::Log::open_dir_in).
///
/// [`shutdown`](Self::shutdown) (or dropping the last `Arc`) stops and joins both threads; logs
/// opened on the handle keep working: they then seal and checkpoint inline, in the append that
/// rolls, and logs with an interval policy are synced by the append that finds the interval
/// elapsed (and by flush and close).
#[derive(Debug)]
pub struct LogThreads {
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl LogThreads {
    /// Starts the sealer and flusher threads, named `dl-seal-{id}` and `dl-flush-{id}` (see
    /// [`id`](Self::id)). Fails when the OS refuses a thread; nothing is left running then.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let threads = Self::stopped();
        let sealer = {
            let shared = threads.shared.clone();
            std::thread::Builder::new()
                .name(format!("dl-seal-{}", threads.id))
                .spawn(move || run_sealer(&shared))?
        };
        threads.shared.state.lock().sealer = true;
        threads.handles.lock().push(sealer);
        let flusher = {
            let shared = threads.shared.clone();
            std::thread::Builder::new()
                .name(format!("dl-flush-{}", threads.id))
                .spawn(move || run_flusher(&shared))
        };
        match flusher {
            Ok(h) => {
                threads.shared.state.lock().flusher = true;
                threads.shared.flusher_live.store(true, Ordering::Release);
                threads.handles.lock().push(h);
            }
            Err(e) => {
                threads.shutdown();
                return Err(e);
            }
        }
        Ok(Arc::new(threads))
    }

    /// A handle without threads: every job is done inline.
    pub(super) fn stopped() -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            handles: Mutex::new(Vec::new()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This handle's number, distinct among the handles of the process; it names the threads
    /// (`dl-seal-{id}`, `dl-flush-{id}`, as `top -H` and `/proc/<pid>/task/*/comm` show them).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Stops both threads and waits for them; idempotent. The sealer first finishes the jobs
    /// already queued. Logs opened on this handle do their seals, checkpoints and interval
    /// syncs inline from then on. Called from one of the handle's own threads (a log dropped
    /// there), it stops the threads without waiting for that one.
    pub fn shutdown(&self) {
        {
            let mut st = self.shared.state.lock();
            st.stopped = true;
            st.timers.clear();
        }
        self.shared.jobs_cv.notify_all();
        self.shared.timers_cv.notify_all();
        let handles = std::mem::take(&mut *self.handles.lock());
        let me = std::thread::current().id();
        for h in handles {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
        let mut st = self.shared.state.lock();
        st.sealer = false;
        st.flusher = false;
        self.shared.flusher_live.store(false, Ordering::Release);
    }

    /// Whether the flusher thread runs (interval syncs happen on it rather than inline).
    pub(super) fn flusher_running(&self) -> bool {
        self.shared.flusher_live.load(Ordering::Acquire)
    }

    /// Queues `job` for `log` on the sealer. Returns `false` when the sealer does not run (the
    /// caller then does the job inline).
    pub(super) fn queue(&self, log: Weak<Log>, job: Job) -> bool {
        let mut st = self.shared.state.lock();
        if st.stopped || !st.sealer {
            return false;
        }
        st.jobs.push_back((log, job));
        drop(st);
        self.shared.jobs_cv.notify_one();
        true
    }

    /// Puts `log` on the flusher's schedule, first due one `interval` from now. Returns
    /// `false` when the flusher does not run.
    pub(super) fn schedule_flush(&self, log: Weak<Log>, interval: Duration) -> bool {
        let mut st = self.shared.state.lock();
        if st.stopped || !st.flusher {
            return false;
        }
        let seq = st.next_timer;
        st.next_timer += 1;
        let due = Instant::now() + interval;
        let earliest = st.timers.keys().next().is_none_or(|(d, _)| due < *d);
        st.timers.insert((due, seq), Timer { log, interval });
        drop(st);
        if earliest {
            self.shared.timers_cv.notify_one();
        }
        true
    }
}

impl Drop for LogThreads {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_sealer(shared: &Shared) {
    loop {
        let (log, job) = {
            let mut st = shared.state.lock();
            loop {
                if let Some(next) = st.jobs.pop_front() {
                    break next;
                }
                if st.stopped {
                    return;
                }
                shared.jobs_cv.wait(&mut st);
            }
        };
        // A log dropped since it queued the job needs nothing: its next open validates
        // whatever follows the checkpoint.
        if let Some(log) = log.upgrade() {
            match job {
                Job::Seal => log.seal_now(),
                Job::Checkpoint => log.checkpoint_now(),
            }
        }
    }
}

fn run_flusher(shared: &Shared) {
    let mut st = shared.state.lock();
    loop {
        if st.stopped {
            return;
        }
        let Some((&(due, seq), _)) = st.timers.iter().next() else {
            shared.timers_cv.wait(&mut st);
            continue;
        };
        if Instant::now() < due {
            shared.timers_cv.wait_until(&mut st, due);
            continue;
        }
        let Some(timer) = st.timers.remove(&(due, seq)) else {
            continue;
        };
        drop(st);
        let keep = timer.log.upgrade().is_some_and(|log| log.interval_flush());
        st = shared.state.lock();
        if keep && !st.stopped {
            let now = Instant::now();
            let next = (due + timer.interval).max(now);
            let seq = st.next_timer;
            st.next_timer += 1;
            st.timers.insert((next, seq), timer);
        }
    }
}
