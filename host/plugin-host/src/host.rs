//! The plugin host: one engine, the registry of plugins by name and by
//! version, loads, reloads and calls.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::codec::{CodecPlugin, CodecPluginPre};
use crate::bindings::compaction::CompactionPluginPre;
use crate::bindings::retention::RetentionPluginPre;
use crate::budget::Budget;
use crate::cache::{ArtifactCache, CacheOutcome, DiscardUnlessKept};
use crate::config::{EffectiveLimits, HostConfig, PluginSpec};
use crate::state::StoreState;
use crate::version::{Counted, PluginVersion, Pre, VersionParts};
use crate::{
    Deletion, HostError, LoadError, LogRecord, PartitionInfo, PluginDigest, PluginError,
    PluginKind, PluginStats, RegistryError, SegmentInfo, selftest,
};

/// Longest plugin name accepted.
const NAME_MAX: usize = 128;

/// The output of [`PluginHost::compress`]: the payload and the codec
/// version that produced it (store it with the data: decoding needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    pub codec: PluginDigest,
    pub data: Vec<u8>,
}

/// What a successful load or reload did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadReport {
    pub name: String,
    pub digest: PluginDigest,
    pub kind: PluginKind,
    /// Whether the compiled artifact came from the on-disk cache.
    pub cache: CacheOutcome,
    /// Compile (or artifact load) time.
    pub compile_time: Duration,
    /// Self-test time (includes creating the first instance).
    pub self_test_time: Duration,
    /// Time of the swap itself (an atomic pointer swap for a reload; a
    /// copy-on-write map insert for a new name).
    pub swap_latency: Duration,
    /// The version that served before, if any.
    pub replaced: Option<PluginDigest>,
    /// The same bytes and spec were already serving; nothing changed.
    pub unchanged: bool,
}

/// A loaded plugin name and its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginInfo {
    pub name: String,
    pub kind: PluginKind,
    pub digest: PluginDigest,
    pub params: Vec<(String, String)>,
    /// Whether the component imports WASI (and so runs with the empty WASI
    /// context).
    pub uses_wasi: bool,
}

/// Counters of one loaded version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginVersionStats {
    pub name: String,
    pub kind: PluginKind,
    pub digest: PluginDigest,
    /// Whether this version currently serves its name (false for replaced
    /// codec versions kept to decode old data).
    pub current: bool,
    /// Idle instances kept warm.
    pub idle_instances: usize,
    pub stats: PluginStats,
}

/// The plugin runtime of one broker. Cheap to clone (an `Arc`); `Send` and
/// `Sync`: calls from many threads run in parallel on separate instances.
///
/// Calls are synchronous and run wasm on the calling thread: call them from
/// blocking threads (e.g. `tokio::task::spawn_blocking`), not from an async
/// executor's worker threads.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .field(
                "plugins",
                &self.inner.names.load().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

type Names = HashMap<String, Arc<ArcSwap<PluginVersion>>>;

struct Inner {
    engine: Engine,
    linker: Linker<StoreState>,
    config: HostConfig,
    cache: Option<ArtifactCache>,
    budget: Arc<Budget>,
    /// The version serving each name. Copy-on-write: calls read it without
    /// a lock; writers (new names, unloads) hold `registry`.
    names: ArcSwap<Names>,
    /// Every loaded codec version, current or replaced, by digest.
    /// Copy-on-write like `names`.
    codecs: ArcSwap<HashMap<PluginDigest, Arc<PluginVersion>>>,
    /// Serialises every change to `names`, `codecs` and `pins`.
    registry: Mutex<()>,
    /// Codec versions that stored data references, with reference counts.
    pins: Mutex<HashMap<PluginDigest, u64>>,
    /// Per-name reload queues (merging).
    reloads: Mutex<HashMap<String, Arc<ReloadQueue>>>,
}

/// Merges concurrent loads of one name: at most one runs and at most one
/// waits; a newer request replaces the waiting one, which returns
/// [`LoadError::Superseded`].
#[derive(Default)]
struct ReloadQueue {
    state: Mutex<ReloadState>,
    done: Condvar,
}

#[derive(Default)]
struct ReloadState {
    running: bool,
    next_ticket: u64,
    pending: Option<(u64, Request)>,
    results: HashMap<u64, Result<LoadReport, LoadError>>,
}

struct Request {
    /// `None`: keep the spec of the version being replaced.
    spec: Option<PluginSpec>,
    name: String,
    bytes: Vec<u8>,
}

impl PluginHost {
    /// Create a host: one engine with the pooling allocator, an epoch ticker
    /// thread, the linker (the `host` interface and WASI preview 2 with no
    /// capabilities), and the artifact cache if configured.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let engine = build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        CodecPlugin::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Config(format!("{e:#}")))?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Config(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::new(dir.clone(), &engine).map_err(|source| {
                HostError::CacheDir {
                    path: dir.clone(),
                    source,
                }
            })?),
            None => None,
        };
        start_epoch_ticker(&engine, config.epoch_tick)?;
        let budget = Budget::new(usize::try_from(config.max_instances).unwrap_or(usize::MAX));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                cache,
                budget,
                names: ArcSwap::default(),
                codecs: ArcSwap::default(),
                registry: Mutex::new(()),
                pins: Mutex::new(HashMap::new()),
                reloads: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Load (or replace) a plugin from a file. See [`PluginHost::load`].
    pub fn load_file(&self, spec: PluginSpec, path: &Path) -> Result<LoadReport, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load(spec, bytes)
    }

    /// Load a plugin, or replace the version serving `spec.name`.
    ///
    /// Compiles the component (or loads its cached artifact), type-checks it
    /// against its world, runs the self-test, then swaps it in atomically.
    /// Calls in flight finish on the old version. On any failure the new
    /// version is rejected and the old one keeps serving. Concurrent loads of
    /// one name merge: the newest waiting request wins and the ones it
    /// replaced return [`LoadError::Superseded`].
    ///
    /// Cost: a compile (tens of ms for small plugins, ~20 s for Python/JS) on
    /// a cache miss, 1–5 ms on a hit, plus the self-test; run it off the hot
    /// path.
    pub fn load(&self, spec: PluginSpec, bytes: Vec<u8>) -> Result<LoadReport, LoadError> {
        validate_name(&spec.name)?;
        let name = spec.name.clone();
        self.enqueue(Request {
            spec: Some(spec),
            name,
            bytes,
        })
    }

    /// Replace the version serving `name` with `bytes`, keeping its
    /// parameters and limits. Same contract as [`PluginHost::load`].
    pub fn reload(&self, name: &str, bytes: Vec<u8>) -> Result<LoadReport, LoadError> {
        validate_name(name)?;
        self.enqueue(Request {
            spec: None,
            name: name.to_owned(),
            bytes,
        })
    }

    fn enqueue(&self, request: Request) -> Result<LoadReport, LoadError> {
        let queue = Arc::clone(
            self.inner
                .reloads
                .lock()
                .entry(request.name.clone())
                .or_default(),
        );
        let mut state = queue.state.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        if let Some((old, old_request)) = state.pending.replace((ticket, request)) {
            state.results.insert(
                old,
                Err(LoadError::Superseded {
                    name: old_request.name,
                }),
            );
            queue.done.notify_all();
        }
        if !state.running {
            state.running = true;
            while let Some((t, request)) = state.pending.take() {
                drop(state);
                // A panic here would be a bug in the host; contain it so the
                // queue keeps working and the caller gets an error.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.install(request)
                }))
                .unwrap_or_else(|_| {
                    Err(LoadError::Internal(
                        "the plugin load panicked; see the log".into(),
                    ))
                });
                state = queue.state.lock();
                state.results.insert(t, result);
                queue.done.notify_all();
            }
            state.running = false;
        }
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            queue.done.wait(&mut state);
        }
    }

    fn install(&self, request: Request) -> Result<LoadReport, LoadError> {
        let Request { spec, name, bytes } = request;
        let inner = &self.inner;
        let current = inner.names.load().get(&name).map(|slot| slot.load_full());
        let spec = match (spec, &current) {
            (Some(spec), _) => spec,
            (None, Some(current)) => current.spec.clone(),
            (None, None) => return Err(LoadError::NotFound(name)),
        };
        let digest = PluginDigest::of(&bytes);
        if let Some(current) = &current
            && current.digest() == digest
            && current.spec == spec
        {
            return Ok(LoadReport {
                name,
                digest,
                kind: current.kind,
                cache: CacheOutcome::Hit,
                compile_time: Duration::ZERO,
                self_test_time: Duration::ZERO,
                swap_latency: Duration::ZERO,
                replaced: None,
                unchanged: true,
            });
        }

        let started = Instant::now();
        let (component, cache) = self
            .compile(&bytes, &digest)
            .map_err(|e| LoadError::Compile {
                name: name.clone(),
                message: format!("{e:#}"),
            })?;
        let compile_time = started.elapsed();
        // A version rejected from here on leaves no compiled artifact behind.
        let artifact = DiscardUnlessKept::new(inner.cache.as_ref(), cache, digest);

        let (kind, uses_wasi) = self.inspect(&name, &component)?;
        let expected = spec.kind.or(current.as_ref().map(|c| c.kind));
        if let Some(expected) = expected
            && expected != kind
        {
            return Err(LoadError::WrongKind {
                name,
                expected,
                actual: kind,
            });
        }
        let pre = self.pre(&name, kind, &component)?;
        let limits = EffectiveLimits::resolve(&inner.config, kind, &spec.limits);
        let version = PluginVersion::new(VersionParts {
            engine: inner.engine.clone(),
            pre,
            spec,
            digest,
            limits,
            uses_wasi,
            tick: inner.config.epoch_tick,
            max_idle: inner.config.max_idle_per_version,
            budget: Arc::clone(&inner.budget),
        });

        let started = Instant::now();
        if version.spec.self_test {
            version.warm_up().map_err(|source| LoadError::Init {
                name: name.clone(),
                source,
            })?;
            selftest::run(&version).map_err(|reason| LoadError::SelfTest {
                name: name.clone(),
                reason,
            })?;
        }
        let self_test_time = started.elapsed();

        artifact.disarm();
        let registry = inner.registry.lock();
        let started = Instant::now();
        // Whatever the swap replaces is dropped after it (dropping a version
        // frees its instances, which takes tens of microseconds).
        let mut retired_codecs = None;
        let mut retired_names = None;
        let replaced = {
            if kind == PluginKind::Codec {
                let mut codecs = HashMap::clone(&inner.codecs.load());
                codecs.insert(digest, Arc::clone(&version));
                retired_codecs = Some(inner.codecs.swap(Arc::new(codecs)));
            }
            let slot = inner.names.load().get(&name).cloned();
            match slot {
                // The common case, a reload: one atomic pointer swap.
                Some(slot) => Some(slot.swap(Arc::clone(&version))),
                None => {
                    let mut names = HashMap::clone(&inner.names.load());
                    names.insert(name.clone(), Arc::new(ArcSwap::new(Arc::clone(&version))));
                    retired_names = Some(inner.names.swap(Arc::new(names)));
                    None
                }
            }
        };
        let swap_latency = started.elapsed();
        drop(registry);
        drop((retired_codecs, retired_names));
        if let Some(old) = &replaced {
            // A replaced codec stays loaded (by digest) to decode old data,
            // but keeps no instance warm.
            old.drain_idle();
        }
        tracing::info!(
            plugin = %name,
            version = %digest.short(),
            %kind,
            ?cache,
            compile_ms = compile_time.as_millis() as u64,
            self_test_ms = self_test_time.as_millis() as u64,
            "plugin version serving"
        );
        Ok(LoadReport {
            name,
            digest,
            kind,
            cache,
            compile_time,
            self_test_time,
            swap_latency,
            replaced: replaced.map(|old| old.digest()),
            unchanged: false,
        })
    }

    fn compile(
        &self,
        bytes: &[u8],
        digest: &PluginDigest,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        match &self.inner.cache {
            Some(cache) => cache.load_or_compile(&self.inner.engine, bytes, digest),
            None => Ok((
                Component::new(&self.inner.engine, bytes)?,
                CacheOutcome::Uncached,
            )),
        }
    }

    /// The component's kind (from its exports) and whether it imports WASI.
    fn inspect(&self, name: &str, component: &Component) -> Result<(PluginKind, bool), LoadError> {
        let ty = component.component_type();
        let engine = &self.inner.engine;
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        let kinds: Vec<PluginKind> = PluginKind::ALL
            .into_iter()
            .filter(|k| {
                ty.exports(engine).any(|(n, item)| {
                    n == k.interface() && matches!(item.ty, ComponentItem::ComponentInstance(_))
                })
            })
            .collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            _ => {
                return Err(LoadError::UnknownKind {
                    name: name.to_owned(),
                    exports,
                });
            }
        };
        let uses_wasi = ty.imports(engine).any(|(n, _)| n.starts_with("wasi:"));
        Ok((kind, uses_wasi))
    }

    /// Link the component and type-check its exports against its world.
    fn pre(&self, name: &str, kind: PluginKind, component: &Component) -> Result<Pre, LoadError> {
        let instance_pre =
            self.inner
                .linker
                .instantiate_pre(component)
                .map_err(|e| LoadError::Link {
                    name: name.to_owned(),
                    message: format!("{e:#}"),
                })?;
        let type_error = |e: wasmtime::Error| LoadError::TypeCheck {
            name: name.to_owned(),
            kind,
            message: format!("{e:#}"),
        };
        Ok(match kind {
            PluginKind::Codec => Pre::Codec(CodecPluginPre::new(instance_pre).map_err(type_error)?),
            PluginKind::Retention => {
                Pre::Retention(RetentionPluginPre::new(instance_pre).map_err(type_error)?)
            }
            PluginKind::Compaction => {
                Pre::Compaction(CompactionPluginPre::new(instance_pre).map_err(type_error)?)
            }
        })
    }

    fn current(&self, name: &str) -> Result<Arc<PluginVersion>, PluginError> {
        self.inner
            .names
            .load()
            .get(name)
            .map(|slot| slot.load_full())
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))
    }

    pub(crate) fn codec_version(
        &self,
        digest: &PluginDigest,
    ) -> Result<Arc<PluginVersion>, PluginError> {
        self.inner
            .codecs
            .load()
            .get(digest)
            .cloned()
            .ok_or(PluginError::UnknownVersion(*digest))
    }

    pub(crate) fn current_version(&self, name: &str) -> Result<Arc<PluginVersion>, PluginError> {
        self.current(name)
    }

    /// Compress one batch payload with the version currently serving `name`.
    ///
    /// Cost: one wasm call (~2 µs plus the codec's work) on a pooled
    /// instance; the first call on a new instance also pays instantiation.
    /// The returned digest identifies the codec version: keep it with the
    /// data and [`pin`](Self::pin) it before the data becomes durable.
    pub fn compress(&self, name: &str, input: &[u8]) -> Result<Compressed, PluginError> {
        let version = self.current(name)?;
        let data = version.compress(input, Counted::Yes)?;
        Ok(Compressed {
            codec: version.digest(),
            data,
        })
    }

    /// Decompress a payload written by codec version `codec`, current or
    /// replaced. The output must be exactly `expected_size` bytes or the call
    /// fails with [`PluginError::InvalidOutput`].
    pub fn decompress(
        &self,
        codec: &PluginDigest,
        input: &[u8],
        expected_size: u32,
    ) -> Result<Vec<u8>, PluginError> {
        self.codec_version(codec)?
            .decompress(input, expected_size, Counted::Yes)
    }

    /// Ask the retention policy `name` which segments to delete.
    ///
    /// The host rejects (with [`PluginError::InvalidOutput`]) a decision
    /// that names the active segment, a segment not in `segments`, or one
    /// segment twice.
    pub fn select_deletions(
        &self,
        name: &str,
        partition: &PartitionInfo,
        segments: &[SegmentInfo],
        now_ms: i64,
    ) -> Result<Vec<Deletion>, PluginError> {
        self.current(name)?
            .select_deletions(partition, segments, now_ms, Counted::Yes)
    }

    /// Extract the compaction key of every record of a batch with the key
    /// extractor `name`: one call per batch. The result has exactly one
    /// entry per record (anything else is [`PluginError::InvalidOutput`]).
    pub fn extract_keys(
        &self,
        name: &str,
        records: &[LogRecord],
    ) -> Result<Vec<Option<Vec<u8>>>, PluginError> {
        self.current(name)?.extract_keys(records, Counted::Yes)
    }

    /// The plugin serving `name`, if any.
    pub fn info(&self, name: &str) -> Option<PluginInfo> {
        self.current(name).ok().map(|v| info(&v))
    }

    /// Every loaded plugin name, sorted.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let mut all: Vec<_> = self
            .inner
            .names
            .load()
            .values()
            .map(|slot| info(&slot.load()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Counters of every loaded version (current ones, and replaced codec
    /// versions kept for decoding), for metrics export.
    pub fn stats(&self) -> Vec<PluginVersionStats> {
        let current: Vec<Arc<PluginVersion>> = self
            .inner
            .names
            .load()
            .values()
            .map(|slot| slot.load_full())
            .collect();
        let mut out: Vec<PluginVersionStats> =
            current.iter().map(|v| version_stats(v, true)).collect();
        for version in self.inner.codecs.load().values() {
            if !current.iter().any(|c| Arc::ptr_eq(c, version)) {
                out.push(version_stats(version, false));
            }
        }
        out.sort_by(|a, b| (&a.name, a.digest).cmp(&(&b.name, b.digest)));
        out
    }

    /// Declare that stored data references codec version `codec`. Pins are
    /// counted: call [`unpin`](Self::unpin) once per `pin` when the data is
    /// deleted. A pinned version cannot be unloaded.
    pub fn pin(&self, codec: &PluginDigest) -> Result<(), RegistryError> {
        // Under the registry lock, so an unload cannot slip in between.
        let _registry = self.inner.registry.lock();
        if !self.inner.codecs.load().contains_key(codec) {
            return Err(RegistryError::UnknownVersion(*codec));
        }
        *self.inner.pins.lock().entry(*codec).or_insert(0) += 1;
        Ok(())
    }

    /// Drop one reference taken by [`pin`](Self::pin); unknown or unpinned
    /// digests are ignored.
    pub fn unpin(&self, codec: &PluginDigest) {
        let mut pins = self.inner.pins.lock();
        if let Some(count) = pins.get_mut(codec) {
            *count -= 1;
            if *count == 0 {
                pins.remove(codec);
            }
        }
    }

    /// Whether codec version `codec` is pinned by stored data.
    pub fn is_pinned(&self, codec: &PluginDigest) -> bool {
        self.inner.pins.lock().contains_key(codec)
    }

    /// Stop serving `name`. For a codec, refused with
    /// [`RegistryError::CodecInUse`] while any of its versions (current or
    /// replaced) is pinned; otherwise all its versions are dropped. Calls in
    /// flight finish.
    pub fn unload(&self, name: &str) -> Result<(), RegistryError> {
        let inner = &self.inner;
        let _registry = inner.registry.lock();
        let pins = inner.pins.lock();
        let mut codecs = HashMap::clone(&inner.codecs.load());
        let mut names = HashMap::clone(&inner.names.load());
        if !names.contains_key(name) {
            return Err(RegistryError::NotFound(name.to_owned()));
        }
        let mut pinned: Vec<PluginDigest> = codecs
            .values()
            .filter(|v| v.name() == name && pins.contains_key(&v.digest()))
            .map(|v| v.digest())
            .collect();
        if !pinned.is_empty() {
            pinned.sort();
            return Err(RegistryError::CodecInUse {
                name: name.to_owned(),
                digests: pinned,
            });
        }
        codecs.retain(|_, v| v.name() != name);
        names.remove(name);
        inner.codecs.store(Arc::new(codecs));
        inner.names.store(Arc::new(names));
        Ok(())
    }

    /// Drop one replaced codec version. Refused while it is pinned or while
    /// it is the version serving its name.
    pub fn unload_version(&self, codec: &PluginDigest) -> Result<(), RegistryError> {
        let inner = &self.inner;
        let _registry = inner.registry.lock();
        let pins = inner.pins.lock();
        let mut codecs = HashMap::clone(&inner.codecs.load());
        let names = inner.names.load();
        let Some(version) = codecs.get(codec) else {
            return Err(RegistryError::UnknownVersion(*codec));
        };
        if pins.contains_key(codec) {
            return Err(RegistryError::CodecInUse {
                name: version.name().to_owned(),
                digests: vec![*codec],
            });
        }
        if let Some(slot) = names.get(version.name())
            && slot.load().digest() == *codec
        {
            return Err(RegistryError::CurrentVersion {
                name: version.name().to_owned(),
                digest: *codec,
            });
        }
        codecs.remove(codec);
        inner.codecs.store(Arc::new(codecs));
        Ok(())
    }
}

fn info(version: &PluginVersion) -> PluginInfo {
    PluginInfo {
        name: version.name().to_owned(),
        kind: version.kind,
        digest: version.digest(),
        params: version.spec.params.clone(),
        uses_wasi: version.uses_wasi,
    }
}

fn version_stats(version: &PluginVersion, current: bool) -> PluginVersionStats {
    PluginVersionStats {
        name: version.name().to_owned(),
        kind: version.kind,
        digest: version.digest(),
        current,
        idle_instances: version.idle_instances(),
        stats: version.stats.snapshot(),
    }
}

fn validate_name(name: &str) -> Result<(), LoadError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(LoadError::InvalidName(name.to_owned()))
    }
}

fn build_engine(config: &HostConfig) -> Result<Engine, HostError> {
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // Interpreters built with dynamic linking (Python) have a dozen or
        // more core instances, tables and a few memories per component.
        .total_core_instances(instances.saturating_mul(32))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        .table_elements(config.max_table_elements)
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| HostError::Config(format!("{e:#}")))
}

/// Increment the engine's epoch every `tick` until the engine is dropped.
/// The thread holds only a weak reference, so it never keeps the engine
/// alive.
fn start_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), HostError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(HostError::Thread)
}
