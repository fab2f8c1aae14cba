//! One loaded plugin version: its pre-instantiated component, its pool of
//! initialised instances, its limits and its counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::{Engine, Store, Trap};

use crate::bindings::codec::{CodecPlugin, CodecPluginPre};
use crate::bindings::compaction::{CompactionPlugin, CompactionPluginPre};
use crate::bindings::retention::{RetentionPlugin, RetentionPluginPre};
use crate::budget::{Budget, Permit};
use crate::config::{EffectiveLimits, PluginSpec};
use crate::state::{Label, StoreState};
use crate::{
    Deletion, LogRecord, PartitionInfo, PluginDigest, PluginError, PluginKind, SegmentInfo,
};

/// A component compiled and linked for one world.
pub(crate) enum Pre {
    Codec(CodecPluginPre<StoreState>),
    Retention(RetentionPluginPre<StoreState>),
    Compaction(CompactionPluginPre<StoreState>),
}

enum Bindings {
    Codec(CodecPlugin),
    Retention(RetentionPlugin),
    Compaction(CompactionPlugin),
}

/// An initialised instance. Field order matters: the store (and its pool
/// slot) is released before the permit.
struct Instance {
    store: Store<StoreState>,
    bindings: Bindings,
    _permit: Permit,
}

/// Counters of one plugin version, updated with relaxed atomics on every
/// call.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    guest_errors: AtomicU64,
    timeouts: AtomicU64,
    traps: AtomicU64,
    memory_exhausted: AtomicU64,
    fuel_exhausted: AtomicU64,
    invalid_outputs: AtomicU64,
    instantiations: AtomicU64,
    total_latency_ns: AtomicU64,
    last_latency_ns: AtomicU64,
    max_latency_ns: AtomicU64,
}

/// A snapshot of one plugin version's counters (for metrics export).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginStats {
    /// Calls made (successful or not), excluding self-test calls.
    pub calls: u64,
    /// Calls that returned any error (the sum of the categories below).
    pub errors: u64,
    /// Calls where the plugin returned its own `err`.
    pub guest_errors: u64,
    pub timeouts: u64,
    pub traps: u64,
    pub memory_exhausted: u64,
    pub fuel_exhausted: u64,
    pub invalid_outputs: u64,
    /// Instances created (each runs `init` once).
    pub instantiations: u64,
    /// Sum of call latencies, including waiting for and creating instances.
    pub total_latency: Duration,
    pub last_latency: Duration,
    pub max_latency: Duration,
}

impl Stats {
    fn record<T>(&self, latency: Duration, result: &Result<T, PluginError>) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_latency_ns.fetch_add(ns, Ordering::Relaxed);
        self.last_latency_ns.store(ns, Ordering::Relaxed);
        self.max_latency_ns.fetch_max(ns, Ordering::Relaxed);
        if let Err(error) = result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let counter = match error {
                PluginError::Guest { .. } => &self.guest_errors,
                PluginError::Timeout { .. } | PluginError::InitTimeout { .. } => &self.timeouts,
                PluginError::Trap { .. } | PluginError::InitTrap { .. } => &self.traps,
                PluginError::MemoryExhausted { .. } => &self.memory_exhausted,
                PluginError::FuelExhausted { .. } => &self.fuel_exhausted,
                PluginError::InvalidOutput { .. } => &self.invalid_outputs,
                _ => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> PluginStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PluginStats {
            calls: get(&self.calls),
            errors: get(&self.errors),
            guest_errors: get(&self.guest_errors),
            timeouts: get(&self.timeouts),
            traps: get(&self.traps),
            memory_exhausted: get(&self.memory_exhausted),
            fuel_exhausted: get(&self.fuel_exhausted),
            invalid_outputs: get(&self.invalid_outputs),
            instantiations: get(&self.instantiations),
            total_latency: Duration::from_nanos(get(&self.total_latency_ns)),
            last_latency: Duration::from_nanos(get(&self.last_latency_ns)),
            max_latency: Duration::from_nanos(get(&self.max_latency_ns)),
        }
    }
}

/// Whether a call is counted in the stats (self-test and conformance calls
/// are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    Yes,
    No,
}

pub(crate) struct PluginVersion {
    pub label: Arc<Label>,
    pub kind: PluginKind,
    pub spec: PluginSpec,
    pub limits: EffectiveLimits,
    pub uses_wasi: bool,
    pub stats: Stats,
    engine: Engine,
    pre: Pre,
    call_ticks: u64,
    init_ticks: u64,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
    budget: Arc<Budget>,
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.label.name)
            .field("digest", &self.label.digest)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Epoch ticks for a deadline of at least `timeout` (and at most one tick
/// more).
fn ticks(timeout: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    u64::try_from(timeout.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

pub(crate) struct VersionParts {
    pub engine: Engine,
    pub pre: Pre,
    pub spec: PluginSpec,
    pub digest: PluginDigest,
    pub limits: EffectiveLimits,
    pub uses_wasi: bool,
    pub tick: Duration,
    pub max_idle: usize,
    pub budget: Arc<Budget>,
}

impl PluginVersion {
    pub(crate) fn new(parts: VersionParts) -> Arc<Self> {
        let kind = match parts.pre {
            Pre::Codec(_) => PluginKind::Codec,
            Pre::Retention(_) => PluginKind::Retention,
            Pre::Compaction(_) => PluginKind::Compaction,
        };
        let version = Arc::new(Self {
            label: Arc::new(Label::new(parts.spec.name.clone(), parts.digest)),
            kind,
            call_ticks: ticks(parts.limits.timeout, parts.tick),
            init_ticks: ticks(parts.limits.init_timeout, parts.tick),
            spec: parts.spec,
            limits: parts.limits,
            uses_wasi: parts.uses_wasi,
            stats: Stats::default(),
            engine: parts.engine,
            pre: parts.pre,
            idle: Mutex::new(Vec::new()),
            max_idle: parts.max_idle,
            budget: Arc::clone(&parts.budget),
        });
        parts.budget.register(&version);
        version
    }

    pub(crate) fn name(&self) -> &str {
        &self.label.name
    }

    pub(crate) fn digest(&self) -> PluginDigest {
        self.label.digest
    }

    /// Drop one idle instance, if any; true if one was dropped.
    pub(crate) fn evict_idle(&self) -> bool {
        let instance = self.idle.lock().pop();
        instance.is_some()
    }

    /// Drop every idle instance (a retired version keeps none warm).
    pub(crate) fn drain_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        drop(idle);
    }

    pub(crate) fn idle_instances(&self) -> usize {
        self.idle.lock().len()
    }

    /// Map a wasmtime error from a call on `store` to a typed error.
    fn classify(&self, error: wasmtime::Error, store: &Store<StoreState>) -> PluginError {
        let name = self.label.name.clone();
        if store.data().memory.exhausted {
            return PluginError::MemoryExhausted {
                name,
                limit_bytes: self.limits.memory_bytes,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout {
                name,
                timeout_ms: u64::try_from(self.limits.timeout.as_millis()).unwrap_or(u64::MAX),
            },
            Some(Trap::OutOfFuel) => PluginError::FuelExhausted { name },
            Some(trap) => {
                tracing::debug!(plugin = %name, error = %format!("{error:?}"), "plugin trapped");
                PluginError::Trap {
                    name,
                    message: trap.to_string(),
                }
            }
            // Not a trap: the guest's return value could not be lifted
            // (string not UTF-8, list out of bounds, bad discriminant, …).
            None => PluginError::InvalidOutput {
                name,
                reason: format!("{error:#}"),
            },
        }
    }

    /// Create and initialise a fresh instance: instantiation plus `init`,
    /// 50–250 µs for small native-language plugins, milliseconds for
    /// interpreters.
    fn instantiate(&self) -> Result<Instance, PluginError> {
        let permit = self.budget.acquire();
        let memory_limit = usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX);
        let mut store = Store::new(
            &self.engine,
            StoreState::new(Arc::clone(&self.label), memory_limit),
        );
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.init_ticks);
        if let Some(fuel) = self.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| self.instantiate_error(format!("{e:#}")))?;
        }
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        let bindings = match &self.pre {
            Pre::Codec(pre) => pre.instantiate(&mut store).map(Bindings::Codec),
            Pre::Retention(pre) => pre.instantiate(&mut store).map(Bindings::Retention),
            Pre::Compaction(pre) => pre.instantiate(&mut store).map(Bindings::Compaction),
        };
        let bindings = match bindings {
            Ok(b) => b,
            Err(error) => return Err(self.classify_init(error, &store)),
        };
        let params = &self.spec.params;
        let init = match &bindings {
            Bindings::Codec(b) => b.distlog_plugin_codec().call_init(&mut store, params),
            Bindings::Retention(b) => b.distlog_plugin_retention().call_init(&mut store, params),
            Bindings::Compaction(b) => b.distlog_plugin_compaction().call_init(&mut store, params),
        };
        match init {
            Ok(Ok(())) => Ok(Instance {
                store,
                bindings,
                _permit: permit,
            }),
            Ok(Err(message)) => Err(self.instantiate_error(format!("init rejected: {message}"))),
            Err(error) => Err(self.classify_init(error, &store)),
        }
    }

    /// Map a failure of instantiation or `init` to a typed error that says `init`: its
    /// deadline is the init deadline, and no call has run yet.
    fn classify_init(&self, error: wasmtime::Error, store: &Store<StoreState>) -> PluginError {
        let name = self.label.name.clone();
        match self.classify(error, store) {
            PluginError::Timeout { .. } => PluginError::InitTimeout {
                name,
                timeout_ms: u64::try_from(self.limits.init_timeout.as_millis()).unwrap_or(u64::MAX),
            },
            PluginError::Trap { message, .. } => PluginError::InitTrap { name, message },
            PluginError::FuelExhausted { .. } => PluginError::InitTrap {
                name,
                message: "ran out of fuel".to_owned(),
            },
            PluginError::InvalidOutput { reason, .. } => self.instantiate_error(reason),
            other => other,
        }
    }

    /// Create and initialise one instance and keep it idle: a load checks `init` this way
    /// before its self-test calls, so an `init` failure is reported as one.
    pub(crate) fn warm_up(&self) -> Result<(), PluginError> {
        let instance = self.instantiate()?;
        self.release(instance);
        Ok(())
    }

    fn instantiate_error(&self, message: String) -> PluginError {
        PluginError::Instantiate {
            name: self.label.name.clone(),
            message,
        }
    }

    /// Run `f` on an idle instance (or a fresh one). An instance that traps,
    /// times out or exhausts memory is discarded; any other outcome returns
    /// it to the pool.
    fn with_instance<R>(
        &self,
        counted: Counted,
        f: impl FnOnce(&mut Store<StoreState>, &Bindings) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginError> {
        self.with_instance_for(counted, self.call_ticks, f)
    }

    /// [`with_instance`](Self::with_instance) under a deadline of `ticks` epoch ticks.
    fn with_instance_for<R>(
        &self,
        counted: Counted,
        ticks: u64,
        f: impl FnOnce(&mut Store<StoreState>, &Bindings) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginError> {
        let start = Instant::now();
        let result = self.with_instance_inner(ticks, f);
        if counted == Counted::Yes {
            self.stats.record(start.elapsed(), &result);
        }
        result
    }

    fn with_instance_inner<R>(
        &self,
        ticks: u64,
        f: impl FnOnce(&mut Store<StoreState>, &Bindings) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginError> {
        let idle = self.idle.lock().pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        instance.store.set_epoch_deadline(ticks);
        if let Some(fuel) = self.limits.fuel
            && let Err(e) = instance.store.set_fuel(fuel)
        {
            return Err(self.instantiate_error(format!("{e:#}")));
        }
        match f(&mut instance.store, &instance.bindings) {
            Ok(result) => {
                self.release(instance);
                result.map_err(|message| PluginError::Guest {
                    name: self.label.name.clone(),
                    message,
                })
            }
            Err(error) => Err(self.classify(error, &instance.store)),
        }
    }

    fn release(&self, instance: Instance) {
        if self.budget.has_waiters() {
            // Someone waits for an instance slot: free this one.
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            name: self.label.name.clone(),
            expected,
            actual: self.kind,
        }
    }

    fn invalid(&self, reason: String) -> PluginError {
        PluginError::InvalidOutput {
            name: self.label.name.clone(),
            reason,
        }
    }

    /// Largest compressed output accepted for `input_len` bytes of input:
    /// twice the input plus 1 KiB (generous for any real codec).
    pub(crate) fn max_compressed_len(input_len: usize) -> usize {
        input_len.saturating_mul(2).saturating_add(1024)
    }

    pub(crate) fn compress(&self, input: &[u8], counted: Counted) -> Result<Vec<u8>, PluginError> {
        if self.kind != PluginKind::Codec {
            return Err(self.wrong_kind(PluginKind::Codec));
        }
        let output = self.with_instance(counted, |store, bindings| match bindings {
            Bindings::Codec(b) => b.distlog_plugin_codec().call_compress(store, input),
            _ => Ok(Err(String::new())),
        })?;
        let max = Self::max_compressed_len(input.len());
        if output.len() > max {
            let error = self.invalid(format!(
                "compressed {} bytes into {} bytes (more than the {max}-byte bound)",
                input.len(),
                output.len()
            ));
            if counted == Counted::Yes {
                self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            return Err(error);
        }
        Ok(output)
    }

    pub(crate) fn decompress(
        &self,
        input: &[u8],
        expected_size: u32,
        counted: Counted,
    ) -> Result<Vec<u8>, PluginError> {
        if self.kind != PluginKind::Codec {
            return Err(self.wrong_kind(PluginKind::Codec));
        }
        // Stored data must stay readable: a compress that misses its deadline only stores
        // the batch uncompressed, but a decompress has no fallback, so its deadline grows with
        // the payload (one call deadline per 128 KiB, up to 64), still bounding a plugin that
        // loops.
        let ticks = self
            .call_ticks
            .saturating_mul(decompress_deadline_factor(expected_size));
        let output = self.with_instance_for(counted, ticks, |store, bindings| match bindings {
            Bindings::Codec(b) => {
                b.distlog_plugin_codec()
                    .call_decompress(store, input, expected_size)
            }
            _ => Ok(Err(String::new())),
        })?;
        if u32::try_from(output.len()).ok() != Some(expected_size) {
            if counted == Counted::Yes {
                self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            return Err(self.invalid(format!(
                "decompressed {} bytes, expected {expected_size}",
                output.len()
            )));
        }
        Ok(output)
    }

    pub(crate) fn select_deletions(
        &self,
        partition: &PartitionInfo,
        segments: &[SegmentInfo],
        now_ms: i64,
        counted: Counted,
    ) -> Result<Vec<Deletion>, PluginError> {
        if self.kind != PluginKind::Retention {
            return Err(self.wrong_kind(PluginKind::Retention));
        }
        let deletions = self.with_instance(counted, |store, bindings| match bindings {
            Bindings::Retention(b) => b
                .distlog_plugin_retention()
                .call_select_deletions(store, partition, segments, now_ms),
            _ => Ok(Err(String::new())),
        })?;
        if let Err(reason) = check_deletions(segments, &deletions) {
            if counted == Counted::Yes {
                self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            return Err(self.invalid(reason));
        }
        Ok(deletions)
    }

    pub(crate) fn extract_keys(
        &self,
        records: &[LogRecord],
        counted: Counted,
    ) -> Result<Vec<Option<Vec<u8>>>, PluginError> {
        if self.kind != PluginKind::Compaction {
            return Err(self.wrong_kind(PluginKind::Compaction));
        }
        let keys = self.with_instance(counted, |store, bindings| match bindings {
            Bindings::Compaction(b) => b
                .distlog_plugin_compaction()
                .call_extract_keys(store, records),
            _ => Ok(Err(String::new())),
        })?;
        if keys.len() != records.len() {
            if counted == Counted::Yes {
                self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            return Err(self.invalid(format!(
                "returned {} keys for {} records",
                keys.len(),
                records.len()
            )));
        }
        Ok(keys)
    }
}

/// A retention decision may name only closed segments that exist, each at
/// most once.
pub(crate) fn check_deletions(
    segments: &[SegmentInfo],
    deletions: &[Deletion],
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for deletion in deletions {
        let base = deletion.base_offset;
        match segments.iter().find(|s| s.base_offset == base) {
            None => return Err(format!("named segment {base}, which does not exist")),
            Some(segment) if segment.active => {
                return Err(format!("named the active segment {base}"));
            }
            Some(_) => {}
        }
        if !seen.insert(base) {
            return Err(format!("named segment {base} twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(base: u64, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            last_offset: base + 9,
            size_bytes: 1,
            first_timestamp: 0,
            max_timestamp: 0,
            record_count: 10,
            active,
        }
    }

    fn deletion(base: u64) -> Deletion {
        Deletion {
            base_offset: base,
            reason: String::new(),
        }
    }

    #[test]
    fn deletions_must_name_closed_existing_segments_once() {
        let segments = [segment(0, false), segment(10, false), segment(20, true)];
        assert!(check_deletions(&segments, &[]).is_ok());
        assert!(check_deletions(&segments, &[deletion(0), deletion(10)]).is_ok());
        let active = check_deletions(&segments, &[deletion(20)]).unwrap_err();
        assert!(active.contains("active"), "{active}");
        let missing = check_deletions(&segments, &[deletion(5)]).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        let twice = check_deletions(&segments, &[deletion(0), deletion(0)]).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        let tick = Duration::from_millis(10);
        assert_eq!(ticks(Duration::from_millis(100), tick), 11);
        assert_eq!(ticks(Duration::from_millis(101), tick), 12);
        assert_eq!(ticks(Duration::ZERO, tick), 1);
        assert_eq!(ticks(Duration::MAX, tick), u64::MAX);
    }
}

/// How many call deadlines a decompress of `expected_size` bytes may take: one per 128 KiB of
/// output, at least 1 and at most 64 (a 1 MiB payload: 9; 8 MiB and more: 64).
pub(crate) fn decompress_deadline_factor(expected_size: u32) -> u64 {
    (1 + u64::from(expected_size) / (128 << 10)).min(64)
}

#[cfg(test)]
mod deadline_tests {
    use super::decompress_deadline_factor;

    #[test]
    fn a_decompress_deadline_grows_with_the_payload_within_a_bound() {
        assert_eq!(decompress_deadline_factor(0), 1);
        assert_eq!(decompress_deadline_factor(100_000), 1);
        assert_eq!(decompress_deadline_factor(1 << 20), 9);
        assert_eq!(decompress_deadline_factor(u32::MAX), 64);
    }
}
