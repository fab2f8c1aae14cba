//! Per-instance store data: memory accounting, the `host.log` import and
//! the (capability-free) WASI context.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::PluginDigest;
use crate::bindings::{wit_host, wit_types};

/// Longest log line a plugin may write; longer lines are cut.
const LOG_LINE_MAX: usize = 1024;
/// Lines per plugin version per second; the rest are dropped and counted.
const LOG_LINES_PER_SECOND: u64 = 100;

/// Identity of a plugin version, shared by all of its instances.
#[derive(Debug)]
pub(crate) struct Label {
    pub name: String,
    pub digest: PluginDigest,
    log: LogLimiter,
}

impl Label {
    pub(crate) fn new(name: String, digest: PluginDigest) -> Self {
        Self {
            name,
            digest,
            log: LogLimiter::new(),
        }
    }
}

/// A one-second window counter: cheap, lock-free, good enough to keep a
/// chatty plugin from flooding the broker's log.
#[derive(Debug)]
struct LogLimiter {
    origin: Instant,
    window: AtomicU64,
    count: AtomicU64,
    dropped: AtomicU64,
}

impl LogLimiter {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; returns the number of lines
    /// dropped in earlier windows when a new window opens.
    fn admit(&self) -> (bool, u64) {
        let now = self.origin.elapsed().as_secs();
        let mut dropped_before = 0;
        let window = self.window.load(Ordering::Relaxed);
        if now != window
            && self
                .window
                .compare_exchange(window, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(0, Ordering::Relaxed);
            dropped_before = self.dropped.swap(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < LOG_LINES_PER_SECOND {
            (true, dropped_before)
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            (false, dropped_before)
        }
    }
}

/// Linear memory accounting for one store: the total of all its memories
/// is capped, and hitting the cap is remembered so that the trap that
/// usually follows is reported as memory exhaustion.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub limit: usize,
    pub used: usize,
    pub exhausted: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        match self.used.checked_add(growth) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(true)
            }
            _ => {
                self.exhausted = true;
                Ok(false)
            }
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pooling allocator caps table sizes.
        Ok(true)
    }
}

/// The data of one plugin instance's `Store`.
pub(crate) struct StoreState {
    pub label: Arc<Label>,
    pub memory: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState")
            .field("label", &self.label)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl StoreState {
    /// Store data for one instance. The WASI context grants nothing: no
    /// preopened directories, no network, no environment, no arguments, no
    /// stdio (reads see end-of-file, writes are discarded), and clocks
    /// frozen at zero (the only time a plugin sees is what its world passes).
    pub(crate) fn new(label: Arc<Label>, memory_limit: usize) -> Self {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        Self {
            label,
            memory: MemoryLimiter {
                limit: memory_limit,
                used: 0,
                exhausted: false,
            },
            wasi,
            table: ResourceTable::new(),
        }
    }
}

/// A clock that always reads zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_types::Host for StoreState {}

impl wit_host::Host for StoreState {
    fn log(&mut self, level: wit_types::Level, message: String) {
        let label = &self.label;
        let (admitted, dropped) = label.log.admit();
        if dropped > 0 {
            tracing::warn!(
                plugin = %label.name,
                version = %label.digest.short(),
                dropped,
                "plugin log lines dropped by the rate limit"
            );
        }
        if !admitted {
            return;
        }
        let mut message = message;
        if message.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (name, version) = (&label.name, label.digest.short());
        match level {
            wit_types::Level::Trace => {
                tracing::trace!(plugin = %name, version = %version, "{message}")
            }
            wit_types::Level::Debug => {
                tracing::debug!(plugin = %name, version = %version, "{message}")
            }
            wit_types::Level::Info => {
                tracing::info!(plugin = %name, version = %version, "{message}")
            }
            wit_types::Level::Warn => {
                tracing::warn!(plugin = %name, version = %version, "{message}")
            }
            wit_types::Level::Error => {
                tracing::error!(plugin = %name, version = %version, "{message}")
            }
        }
    }
}
