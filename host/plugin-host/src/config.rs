//! Host-wide configuration and per-plugin limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::PluginKind;

/// Configuration of one [`PluginHost`](crate::PluginHost) (one engine per
/// broker).
///
/// The pooling allocator reserves address space for `max_instances`
/// instances up front (each linear memory slot reserves about 4 GiB of
/// virtual space, committed only as used), so keep the caps close to what the
/// broker needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostConfig {
    /// Directory for precompiled artifacts; `None` disables the cache (every
    /// load compiles). Artifacts are keyed by the component's sha256 and the
    /// engine's compatibility hash, so one directory may be shared by hosts
    /// of different versions.
    pub cache_dir: Option<PathBuf>,
    /// Maximum live instances (busy and idle) across all plugins. Also the
    /// pooling allocator's component-instance cap. A call that needs a new
    /// instance when all are busy waits for one to be released.
    pub max_instances: u32,
    /// Idle instances kept per plugin version for reuse.
    pub max_idle_per_version: usize,
    /// Largest linear memory the pooling allocator supports; a plugin's
    /// memory cap is clamped to it.
    pub max_memory_bytes: u64,
    /// Largest table the pooling allocator supports (large interpreters such
    /// as Python's need tens of thousands of entries).
    pub max_table_elements: usize,
    /// Interval of the epoch ticker; timeouts are enforced with this
    /// granularity.
    pub epoch_tick: Duration,
    /// Enable fuel metering engine-wide (slows wasm code by ~10–30%); each
    /// plugin then gets [`PluginLimits::fuel`] per call.
    pub fuel_metering: bool,
    /// Limits for plugins that do not override them.
    pub default_limits: DefaultLimits,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 64,
            max_idle_per_version: 4,
            max_memory_bytes: 512 << 20,
            max_table_elements: 100_000,
            epoch_tick: Duration::from_millis(10),
            fuel_metering: false,
            default_limits: DefaultLimits::default(),
        }
    }
}

impl HostConfig {
    /// The default configuration with an artifact cache in `dir`.
    pub fn with_cache_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            ..Self::default()
        }
    }
}

/// Default per-call limits by plugin kind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DefaultLimits {
    /// Deadline of a codec or key-extraction call (default 100 ms).
    pub codec_timeout: Duration,
    /// Deadline of a retention decision (default 1 s).
    pub retention_timeout: Duration,
    /// Deadline of a key-extraction call (default 100 ms).
    pub compaction_timeout: Duration,
    /// Deadline of instantiation plus `init` (default 5 s: interpreters such
    /// as Python start slowly).
    pub init_timeout: Duration,
    /// Linear memory cap per instance (default 128 MiB; the Python runtime
    /// alone takes ~30 MiB).
    pub memory_bytes: u64,
    /// Fuel per call when metering is enabled (default 10 billion units,
    /// roughly seconds of work: the deadline is the usual limit).
    pub fuel: u64,
}

impl Default for DefaultLimits {
    fn default() -> Self {
        Self {
            codec_timeout: Duration::from_millis(100),
            retention_timeout: Duration::from_secs(1),
            compaction_timeout: Duration::from_millis(100),
            init_timeout: Duration::from_secs(5),
            memory_bytes: 128 << 20,
            fuel: 10_000_000_000,
        }
    }
}

/// Per-plugin overrides of the host's [`DefaultLimits`]; `None` keeps the
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginLimits {
    /// Deadline of one call (for a codec's `decompress`, the base that grows with the
    /// payload).
    pub timeout: Option<Duration>,
    /// Deadline of instantiation plus `init`.
    pub init_timeout: Option<Duration>,
    /// Linear memory cap per instance, clamped to [`HostConfig::max_memory_bytes`].
    pub memory_bytes: Option<u64>,
    /// Fuel per call; only used when [`HostConfig::fuel_metering`] is on.
    pub fuel: Option<u64>,
}

impl PluginLimits {
    /// Override the per-call deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Override the deadline of instantiation plus `init`.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = Some(timeout);
        self
    }

    /// Override the linear memory cap.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Override the per-call fuel (only used when metering is enabled).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }
}

/// Limits in force for one plugin version, after defaults and clamping.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EffectiveLimits {
    pub timeout: Duration,
    pub init_timeout: Duration,
    pub memory_bytes: u64,
    pub fuel: Option<u64>,
}

impl EffectiveLimits {
    pub(crate) fn resolve(config: &HostConfig, kind: PluginKind, limits: &PluginLimits) -> Self {
        let d = &config.default_limits;
        let default_timeout = match kind {
            PluginKind::Codec => d.codec_timeout,
            PluginKind::Retention => d.retention_timeout,
            PluginKind::Compaction => d.compaction_timeout,
        };
        Self {
            timeout: limits.timeout.unwrap_or(default_timeout),
            init_timeout: limits.init_timeout.unwrap_or(d.init_timeout),
            memory_bytes: limits
                .memory_bytes
                .unwrap_or(d.memory_bytes)
                .min(config.max_memory_bytes),
            fuel: config.fuel_metering.then(|| limits.fuel.unwrap_or(d.fuel)),
        }
    }
}

/// What to load: a name, its configuration and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginSpec {
    /// The name calls use (`compress("lz4", …)`). ASCII letters, digits,
    /// `-`, `_`, `.`; at most 128 bytes.
    pub name: String,
    /// Handed to the plugin's `init` once per instance.
    pub params: Vec<(String, String)>,
    /// Per-plugin limit overrides.
    pub limits: PluginLimits,
    /// The expected kind; `None` detects it from the component's exports.
    pub kind: Option<PluginKind>,
    /// Run the self-test before serving (default). Turn it off only in
    /// tests and tooling that exercise misbehaving plugins: every call is
    /// still bounded and its output checked, but a version that skipped its
    /// self-test may, for example, return data that does not round-trip.
    pub self_test: bool,
}

impl PluginSpec {
    /// A spec with no parameters, default limits and a detected kind.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
            limits: PluginLimits::default(),
            kind: None,
            self_test: true,
        }
    }

    /// Skip the self-test (see [`PluginSpec::self_test`]).
    pub fn without_self_test(mut self) -> Self {
        self.self_test = false;
        self
    }

    /// Add one `init` parameter.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Set the limit overrides.
    pub fn limits(mut self, limits: PluginLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Require a kind: a component of another world is rejected.
    pub fn kind(mut self, kind: PluginKind) -> Self {
        self.kind = Some(kind);
        self
    }
}
