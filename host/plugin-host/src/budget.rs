//! The instance budget: a counting semaphore over live instances (busy and
//! idle) that matches the pooling allocator's component-instance cap, so
//! instantiation never fails for lack of a slot.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::version::PluginVersion;

/// How long a waiting caller sleeps before looking for an idle instance to
/// evict again.
const RETRY: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    state: Mutex<BudgetState>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct BudgetState {
    live: usize,
    /// Callers waiting for a permit.
    waiting: usize,
    /// Every version that may hold idle instances, to evict from when the
    /// budget is spent.
    versions: Vec<Weak<PluginVersion>>,
}

/// One live instance's share of the budget; released on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.budget.state.lock();
        state.live -= 1;
        drop(state);
        self.budget.released.notify_one();
    }
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            state: Mutex::new(BudgetState::default()),
            released: Condvar::new(),
        })
    }

    /// Whether callers wait for a permit: an instance finishing its call
    /// should then be dropped (freeing its permit) rather than pooled.
    pub(crate) fn has_waiters(&self) -> bool {
        self.state.lock().waiting > 0
    }

    pub(crate) fn register(&self, version: &Arc<PluginVersion>) {
        let mut state = self.state.lock();
        state.versions.retain(|v| v.strong_count() > 0);
        state.versions.push(Arc::downgrade(version));
    }

    /// Take a permit for a new instance. When the budget is spent, evicts an
    /// idle instance of any version; when every instance is busy, waits for
    /// one to be released (calls are bounded by their deadlines, so the wait
    /// is too).
    pub(crate) fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let mut state = self.state.lock();
            if state.live < self.max {
                state.live += 1;
                return Permit {
                    budget: Arc::clone(self),
                };
            }
            let versions: Vec<_> = state.versions.iter().filter_map(Weak::upgrade).collect();
            drop(state);
            // Dropping the evicted instance releases its permit (outside
            // our lock: `Permit::drop` takes it).
            let evicted = versions.iter().any(|v| v.evict_idle());
            drop(versions);
            if !evicted {
                let mut state = self.state.lock();
                if state.live >= self.max {
                    // Busy instances are returned to their pools, not
                    // dropped, unless someone waits (see `has_waiters`); the
                    // timeout covers an instance pooled just before we
                    // started waiting: we retry eviction then.
                    state.waiting += 1;
                    self.released.wait_for(&mut state, RETRY);
                    state.waiting -= 1;
                }
            }
        }
    }
}
