//! Plugin administration: the broker's view of its [`PluginHost`], and the glue between
//! plugins and topics.
//!
//! Invariant: a plugin a topic's configuration names, or a codec version stored batches
//! reference, cannot be unloaded: the first is checked under the topic admin lock
//! ([`unload_unused`]), the second by the pins the codec tables hold ([`pin_stored_codecs`],
//! [`unpin_codecs`]).
//!
//! The built-in plugins are loaded at open (unless disabled). Plugins loaded through the
//! API are persisted under `<data_dir>/plugins/` (`<name>.wasm`, `<name>.kind` and, when
//! it was loaded with parameters, `<name>.params` (a JSON object), and when it was loaded with
//! its own limits, `<name>.limits` (a JSON object), each replaced atomically with storage's
//! `replace_file`) and loaded again at the next open, so topics that name them keep working
//! across restarts. A rejected load is logged (name, digest, reason) and leaves nothing
//! behind: no persisted file and no compiled artifact.

use crate::BrokerError;
use crate::topics::Topics;
use crate::topics::topic::{Topic, sync_dir};
use distlog_plugin_host::{
    DefaultLimits, DirWatcher, HostConfig, LoadError, PluginDigest, PluginHost, PluginKind,
    PluginLimits, PluginSpec, PluginStats, RegistryError,
};
use distlog_storage::io::replace_file;
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Subdirectory of `<data_dir>/plugins/` keeping every codec version ever loaded.
const VERSIONS_DIR: &str = "versions";

/// Plugin runtime settings (the `[broker.plugins]` table).
///
/// The `*_timeout_ms`, `memory_bytes` and `fuel` settings are the defaults of every plugin;
/// a load may override them per plugin ([`PluginLimits`], kept with the plugin across
/// reloads and restarts like its parameters).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PluginsConfig {
    /// Run a plugin host at all. Off: plugin calls fail with FAILED_PRECONDITION and topics
    /// cannot name plugins.
    pub enabled: bool,
    /// Load the built-in plugins (codecs, retention policies, key extractors) at open.
    pub builtins: bool,
    /// Compiled-artifact cache; default `<data_dir>/plugin-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Maximum live plugin instances across all plugins.
    pub max_instances: u32,
    /// Largest linear memory of one instance, in bytes: the cap no per-plugin limit exceeds.
    pub max_memory_bytes: u64,
    /// Deadline of one codec `compress` call, in ms (a `decompress` gets one per 128 KiB of
    /// output, up to 64).
    pub codec_timeout_ms: u64,
    /// Deadline of one retention decision, in ms.
    pub retention_timeout_ms: u64,
    /// Deadline of one key-extraction call (a batch), in ms.
    pub compaction_timeout_ms: u64,
    /// Deadline of instantiation plus `init` of one instance, in ms.
    pub init_timeout_ms: u64,
    /// Linear memory cap of one instance, in bytes (at most `max_memory_bytes`).
    pub memory_bytes: u64,
    /// Meter fuel engine-wide (slows wasm code by ~10-30%); each call then gets `fuel` units.
    pub fuel_metering: bool,
    /// Fuel per call when `fuel_metering` is on.
    pub fuel: u64,
    /// A directory watched for plugin files: every `<name>.wasm` in it is loaded under
    /// `<name>` at open and reloaded when the file changes. `None`: no watched directory.
    pub watch_dir: Option<PathBuf>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        let limits = DefaultLimits::default();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            enabled: true,
            builtins: true,
            cache_dir: None,
            max_instances: 64,
            max_memory_bytes: 512 << 20,
            codec_timeout_ms: ms(limits.codec_timeout),
            retention_timeout_ms: ms(limits.retention_timeout),
            compaction_timeout_ms: ms(limits.compaction_timeout),
            init_timeout_ms: ms(limits.init_timeout),
            memory_bytes: limits.memory_bytes,
            fuel_metering: false,
            fuel: limits.fuel,
            watch_dir: None,
        }
    }
}

impl PluginsConfig {
    /// The plugin host's configuration: these settings, the artifact cache in `cache_dir`
    /// (default `<data_dir>/plugin-cache`).
    pub fn host_config(&self, data_dir: &Path) -> Result<HostConfig, BrokerError> {
        for (key, value) in [
            ("codec_timeout_ms", self.codec_timeout_ms),
            ("retention_timeout_ms", self.retention_timeout_ms),
            ("compaction_timeout_ms", self.compaction_timeout_ms),
            ("init_timeout_ms", self.init_timeout_ms),
            ("memory_bytes", self.memory_bytes),
            ("fuel", self.fuel),
        ] {
            if value == 0 {
                return Err(BrokerError::PluginHost(format!(
                    "broker.plugins.{key} must be greater than 0"
                )));
            }
        }
        if self.memory_bytes > self.max_memory_bytes {
            return Err(BrokerError::PluginHost(format!(
                "broker.plugins.memory_bytes ({}) is more than broker.plugins.max_memory_bytes ({})",
                self.memory_bytes, self.max_memory_bytes
            )));
        }
        let mut host = HostConfig::with_cache_dir(
            self.cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("plugin-cache")),
        );
        host.max_instances = self.max_instances;
        host.max_memory_bytes = self.max_memory_bytes;
        host.fuel_metering = self.fuel_metering;
        let d = &mut host.default_limits;
        d.codec_timeout = std::time::Duration::from_millis(self.codec_timeout_ms);
        d.retention_timeout = std::time::Duration::from_millis(self.retention_timeout_ms);
        d.compaction_timeout = std::time::Duration::from_millis(self.compaction_timeout_ms);
        d.init_timeout = std::time::Duration::from_millis(self.init_timeout_ms);
        d.memory_bytes = self.memory_bytes;
        d.fuel = self.fuel;
        Ok(host)
    }
}

/// Per-plugin limits as persisted in `<name>.limits` (JSON; absent fields keep the
/// broker's defaults).
#[derive(Debug, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fuel: Option<u64>,
}

impl LimitsFile {
    fn of(limits: &PluginLimits) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            timeout_ms: limits.timeout.map(ms),
            init_timeout_ms: limits.init_timeout.map(ms),
            memory_bytes: limits.memory_bytes,
            fuel: limits.fuel,
        }
    }

    fn limits(&self) -> PluginLimits {
        let mut limits = PluginLimits::default();
        limits.timeout = self.timeout_ms.map(std::time::Duration::from_millis);
        limits.init_timeout = self.init_timeout_ms.map(std::time::Duration::from_millis);
        limits.memory_bytes = self.memory_bytes;
        limits.fuel = self.fuel;
        limits
    }

    fn is_empty(&self) -> bool {
        self.timeout_ms.is_none()
            && self.init_timeout_ms.is_none()
            && self.memory_bytes.is_none()
            && self.fuel.is_none()
    }
}

/// One version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    /// sha256 of the component.
    pub digest: PluginDigest,
    /// Whether it serves the name (replaced codec versions stay to decode old data).
    pub current: bool,
    /// Component size in bytes, when known (0 otherwise).
    pub size_bytes: u64,
    /// Load time (ms since the Unix epoch), when known (0 otherwise).
    pub loaded_at_ms: i64,
    /// Call counters.
    pub stats: PluginStats,
}

/// A loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDescription {
    /// Name.
    pub name: String,
    /// World.
    pub kind: PluginKind,
    /// Whether it is bundled with the broker.
    pub builtin: bool,
    /// Versions, current first.
    pub versions: Vec<PluginVersion>,
}

#[derive(Debug, Clone, Copy)]
struct Loaded {
    size_bytes: u64,
    loaded_at_ms: i64,
}

/// The broker's plugin registry.
#[derive(Debug)]
pub(crate) struct Plugins {
    host: PluginHost,
    dir: PathBuf,
    builtin: Vec<String>,
    loaded: std::sync::Arc<Mutex<BTreeMap<PluginDigest, Loaded>>>,
    /// Serializes load, reload and unload with the persisted files.
    admin: Mutex<()>,
    /// The watcher of `broker.plugins.watch_dir`, while it runs.
    watcher: Mutex<Option<DirWatcher>>,
}

fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Codec => "codec",
        PluginKind::Retention => "retention",
        _ => "compaction",
    }
}

fn parse_kind(s: &str) -> Option<PluginKind> {
    match s.trim() {
        "codec" => Some(PluginKind::Codec),
        "retention" => Some(PluginKind::Retention),
        "compaction" => Some(PluginKind::Compaction),
        _ => None,
    }
}

fn load_error(e: LoadError) -> BrokerError {
    match e {
        LoadError::NotFound(name) => BrokerError::PluginNotFound(name),
        LoadError::Superseded { name } => BrokerError::FailedPrecondition(format!(
            "the reload of plugin {name:?} was superseded by a newer one"
        )),
        e => BrokerError::InvalidPlugin(e.to_string()),
    }
}

fn registry_error(e: RegistryError) -> BrokerError {
    match e {
        RegistryError::NotFound(name) => BrokerError::PluginNotFound(name),
        RegistryError::CodecInUse { name, digests } => BrokerError::PluginInUse {
            name,
            reason: format!("stored batches reference codec versions {digests:?}"),
        },
        e => BrokerError::FailedPrecondition(e.to_string()),
    }
}

impl Plugins {
    /// Starts the host, loads the built-ins and the persisted user plugins.
    /// Cost: one compile per plugin on an artifact-cache miss (milliseconds on a hit).
    pub(crate) fn open(config: &PluginsConfig, data_dir: &Path) -> Result<Self, BrokerError> {
        let host_config = config.host_config(data_dir)?;
        let host =
            PluginHost::new(host_config).map_err(|e| BrokerError::PluginHost(e.to_string()))?;
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io("create", &dir, e))?;
        let plugins = Self {
            host,
            dir,
            builtin: Vec::new(),
            loaded: Default::default(),
            admin: Mutex::new(()),
            watcher: Mutex::new(None),
        };
        let mut builtin = Vec::new();
        if config.builtins {
            for b in distlog_plugin_host::builtins() {
                // With the parameters their `init` needs (key-json-field's `field`, `id` by
                // default: load it again under another name for another field).
                // Once more after a failure: the load runs the plugin's self-test under the call
                // deadline, which a machine starved of CPU at start-up can miss once.
                let loaded = plugins.load_builtin(&b).or_else(|e| {
                    tracing::warn!(plugin = b.name, reason = %e, "built-in plugin failed to load; retrying once");
                    plugins.load_builtin(&b)
                });
                match loaded {
                    Ok(digest) => {
                        builtin.push(b.name.to_owned());
                        if b.kind == PluginKind::Codec {
                            plugins.keep_version(&digest, b.bytes);
                        }
                    }
                    Err(e) => {
                        tracing::info!(plugin = b.name, reason = %e, "built-in plugin not preloaded");
                    }
                }
            }
        }
        let entries = std::fs::read_dir(&plugins.dir)
            .map_err(|e| BrokerError::io("list", &plugins.dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".wasm"))
            else {
                continue;
            };
            let kind = std::fs::read_to_string(plugins.dir.join(format!("{name}.kind")))
                .ok()
                .and_then(|k| parse_kind(&k));
            let bytes = std::fs::read(&path).map_err(|e| BrokerError::io("read", &path, e))?;
            let params = match plugins.read_params(name) {
                Ok(params) => params,
                Err(e) => {
                    tracing::error!(plugin = name, error = %e, "persisted plugin parameters unreadable");
                    continue;
                }
            };
            let limits = match plugins.read_limits(name) {
                Ok(limits) => limits,
                Err(e) => {
                    tracing::error!(plugin = name, error = %e, "persisted plugin limits unreadable");
                    continue;
                }
            };
            // A persisted replacement of a built-in is a reload of the built-in's name.
            let reload = plugins.host.info(name).is_some();
            if let Err(e) = plugins.load_into_host(name, kind, params, limits, bytes, reload) {
                tracing::error!(plugin = name, error = %e, "persisted plugin failed to load");
            }
        }
        let plugins = Self { builtin, ..plugins };
        if let Some(dir) = &config.watch_dir {
            plugins.start_watching(dir)?;
        }
        Ok(plugins)
    }

    /// Starts watching `broker.plugins.watch_dir`, if set: loads every `<name>.wasm` in it
    /// now (on the watcher's thread), then reloads a name whenever its file changes. Every
    /// codec version it loads is kept under `plugins/versions/` like an API-loaded one, so
    /// batches it writes still decode after a replacement and a restart.
    fn start_watching(&self, dir: &Path) -> Result<(), BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::io("create", dir, e))?;
        let loaded = std::sync::Arc::clone(&self.loaded);
        let versions = self.versions_dir();
        let watcher = self
            .host
            .watch_dir_with(dir, move |event| match &event.result {
                Ok(report) => {
                    let bytes = std::fs::read(&event.path).unwrap_or_default();
                    if PluginDigest::of(&bytes) != report.digest {
                        // Replaced again since; the next event handles the new file.
                        return;
                    }
                    loaded.lock().entry(report.digest).or_insert(Loaded {
                        size_bytes: bytes.len() as u64,
                        loaded_at_ms: crate::now_ms(),
                    });
                    if report.kind == PluginKind::Codec {
                        keep_version_in(&versions, &report.digest, &bytes);
                    }
                }
                Err(e) => tracing::warn!(
                    plugin = %event.name,
                    file = %event.path.display(),
                    reason = %e,
                    "plugin file in the watched directory rejected; the version serving keeps serving"
                ),
            })
            .map_err(|e| BrokerError::PluginHost(e.to_string()))?;
        *self.watcher.lock() = Some(watcher);
        Ok(())
    }

    pub(crate) fn host(&self) -> &PluginHost {
        &self.host
    }

    fn load_builtin(&self, b: &distlog_plugin_host::Builtin) -> Result<PluginDigest, BrokerError> {
        let report = self
            .host
            .load(b.spec(), b.bytes.to_vec())
            .map_err(load_error)?;
        self.loaded.lock().entry(report.digest).or_insert(Loaded {
            size_bytes: b.bytes.len() as u64,
            loaded_at_ms: crate::now_ms(),
        });
        Ok(report.digest)
    }

    fn load_into_host(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        params: Vec<(String, String)>,
        limits: PluginLimits,
        bytes: Vec<u8>,
        reload: bool,
    ) -> Result<PluginDigest, BrokerError> {
        let size = bytes.len() as u64;
        let digest = PluginDigest::of(&bytes);
        let report = if reload {
            self.host.reload(name, bytes)
        } else {
            let mut spec = PluginSpec::new(name).limits(limits);
            spec.params = params;
            if let Some(k) = kind {
                spec = spec.kind(k);
            }
            self.host.load(spec, bytes)
        }
        .map_err(|e| {
            // The plugin host left nothing behind (no compiled artifact, nothing persisted):
            // the log line is the only trace of the attempt.
            tracing::warn!(
                plugin = name,
                digest = %digest.short(),
                reason = %e,
                "plugin version rejected; whatever served before keeps serving"
            );
            load_error(e)
        })?;
        self.loaded.lock().entry(report.digest).or_insert(Loaded {
            size_bytes: size,
            loaded_at_ms: crate::now_ms(),
        });
        tracing::info!(plugin = name, digest = %report.digest.short(), kind = %report.kind, "plugin loaded");
        Ok(report.digest)
    }

    /// Loads a new plugin with the parameters its `init` receives; `PluginExists` if the
    /// name is taken.
    pub(crate) fn load(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        params: Vec<(String, String)>,
        limits: PluginLimits,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, BrokerError> {
        crate::names::validate_plugin_name(name).map_err(|_| {
            BrokerError::InvalidPlugin(format!(
                "invalid plugin name {name:?}: use {}",
                crate::names::PLUGIN_NAME_RULE
            ))
        })?;
        if crate::names::is_reserved_plugin_name(name) {
            return Err(BrokerError::InvalidPlugin(format!(
                "plugin name {name:?} is reserved: topic configurations use it for a built-in \
                 behaviour or a bundled codec"
            )));
        }
        let _admin = self.admin.lock();
        if self.host.info(name).is_some() {
            return Err(BrokerError::PluginExists(name.to_owned()));
        }
        if let Some(memory) = limits.memory_bytes
            && memory > self.host.config().max_memory_bytes
        {
            return Err(BrokerError::InvalidPlugin(format!(
                "memory limit {memory} bytes is more than broker.plugins.max_memory_bytes ({})",
                self.host.config().max_memory_bytes
            )));
        }
        let wasm = bytes.clone();
        self.load_into_host(name, kind, params.clone(), limits.clone(), bytes, false)?;
        let actual = self
            .host
            .info(name)
            .map(|i| i.kind)
            .ok_or_else(|| BrokerError::PluginNotFound(name.to_owned()))?;
        self.write_params(name, &params)?;
        self.write_limits(name, &limits)?;
        self.persist(name, actual, &wasm)?;
        self.describe(name)
    }

    /// Replaces a plugin's version (built-ins included; a replaced built-in is persisted
    /// like a user plugin).
    pub(crate) fn reload(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, BrokerError> {
        let _admin = self.admin.lock();
        let kind = self
            .host
            .info(name)
            .map(|i| i.kind)
            .ok_or_else(|| BrokerError::PluginNotFound(name.to_owned()))?;
        let wasm = bytes.clone();
        self.load_into_host(
            name,
            Some(kind),
            Vec::new(),
            PluginLimits::default(),
            bytes,
            true,
        )?;
        self.persist(name, kind, &wasm)?;
        self.describe(name)
    }

    /// Unloads a plugin. The caller has checked that no topic names it.
    pub(crate) fn unload(&self, name: &str) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        self.host.unload(name).map_err(registry_error)?;
        for file in [
            format!("{name}.wasm"),
            format!("{name}.kind"),
            format!("{name}.params"),
            format!("{name}.limits"),
        ] {
            let path = self.dir.join(file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BrokerError::io("remove", &path, e)),
            }
        }
        sync_dir(&self.dir).map_err(|e| BrokerError::io("sync", &self.dir, e))
    }

    /// Records the load-time parameters of `name` (none: no file). Written before the
    /// component itself, so a persisted component never comes back without them.
    fn write_params(&self, name: &str, params: &[(String, String)]) -> Result<(), BrokerError> {
        let file = format!("{name}.params");
        let result = if params.is_empty() {
            match std::fs::remove_file(self.dir.join(&file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let map: BTreeMap<&str, &str> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let json = serde_json::to_vec(&map).map_err(std::io::Error::other);
            json.and_then(|json| replace_file(&self.dir.join(&file), &json))
        };
        result.map_err(|e| BrokerError::io("write", self.dir.join(&file), e))
    }

    /// Records the per-plugin limits of `name` (none overridden: no file). Written before
    /// the component, like the parameters.
    fn write_limits(&self, name: &str, limits: &PluginLimits) -> Result<(), BrokerError> {
        let file = format!("{name}.limits");
        let persisted = LimitsFile::of(limits);
        let result = if persisted.is_empty() {
            match std::fs::remove_file(self.dir.join(&file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            serde_json::to_vec(&persisted)
                .map_err(std::io::Error::other)
                .and_then(|json| replace_file(&self.dir.join(&file), &json))
        };
        result.map_err(|e| BrokerError::io("write", self.dir.join(&file), e))
    }

    /// The per-plugin limits persisted for `name` (the defaults when it has none).
    fn read_limits(&self, name: &str) -> Result<PluginLimits, BrokerError> {
        let path = self.dir.join(format!("{name}.limits"));
        match std::fs::read(&path) {
            Ok(json) => serde_json::from_slice::<LimitsFile>(&json)
                .map(|l| l.limits())
                .map_err(|e| BrokerError::io("parse", &path, std::io::Error::other(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PluginLimits::default()),
            Err(e) => Err(BrokerError::io("read", &path, e)),
        }
    }

    /// The load-time parameters persisted for `name` (empty when it has none).
    fn read_params(&self, name: &str) -> Result<Vec<(String, String)>, BrokerError> {
        let path = self.dir.join(format!("{name}.params"));
        match std::fs::read(&path) {
            Ok(json) => {
                let map: BTreeMap<String, String> = serde_json::from_slice(&json)
                    .map_err(|e| BrokerError::io("parse", &path, std::io::Error::other(e)))?;
                Ok(map.into_iter().collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(BrokerError::io("read", &path, e)),
        }
    }

    fn persist(&self, name: &str, kind: PluginKind, bytes: &[u8]) -> Result<(), BrokerError> {
        let write = || -> std::io::Result<()> {
            replace_file(&self.dir.join(format!("{name}.wasm")), bytes)?;
            replace_file(
                &self.dir.join(format!("{name}.kind")),
                kind_name(kind).as_bytes(),
            )
        };
        write().map_err(|e| BrokerError::io("write", self.dir.join(name), e))?;
        if kind == PluginKind::Codec {
            self.keep_version(&PluginDigest::of(bytes), bytes);
        }
        Ok(())
    }

    fn versions_dir(&self) -> PathBuf {
        self.dir.join(VERSIONS_DIR)
    }

    /// Keeps a copy of a codec version's component in `plugins/versions/<sha256>.wasm`, so
    /// that batches it wrote still decode after it is replaced and the broker restarts.
    /// Best effort (logged): the current version is persisted separately.
    /// Cost: one write and fsync the first time a version is seen; a `stat` after.
    fn keep_version(&self, digest: &PluginDigest, bytes: &[u8]) {
        keep_version_in(&self.versions_dir(), digest, bytes);
    }

    /// Loads codec version `digest` (kept by [`keep_version`](Self::keep_version)) as a
    /// replaced version of `name`, so stored batches it wrote decode again; the version
    /// serving `name` stays as it was. `Ok(false)` when no copy was kept.
    /// Cost: up to two reloads (compile or cache hit, self-test); for broker open.
    pub(crate) fn restore_codec(
        &self,
        name: &str,
        digest: &PluginDigest,
    ) -> Result<bool, BrokerError> {
        let path = self
            .versions_dir()
            .join(format!("{}.wasm", digest.to_hex()));
        let Ok(old) = std::fs::read(&path) else {
            return Ok(false);
        };
        if PluginDigest::of(&old) != *digest {
            tracing::warn!(file = %path.display(), "kept codec version does not match its digest; ignored");
            return Ok(false);
        }
        let _admin = self.admin.lock();
        let Some(current) = self.host.info(name) else {
            let params = self.read_params(name)?;
            let limits = self.read_limits(name)?;
            self.load_into_host(name, Some(PluginKind::Codec), params, limits, old, false)?;
            return Ok(true);
        };
        if current.kind != PluginKind::Codec {
            return Ok(false);
        }
        let current_path = self
            .versions_dir()
            .join(format!("{}.wasm", current.digest.to_hex()));
        let current_bytes =
            std::fs::read(&current_path).map_err(|e| BrokerError::io("read", &current_path, e))?;
        let keep = PluginLimits::default;
        self.load_into_host(name, None, Vec::new(), keep(), old, true)?;
        self.load_into_host(name, None, Vec::new(), keep(), current_bytes, true)?;
        Ok(true)
    }

    pub(crate) fn describe(&self, name: &str) -> Result<PluginDescription, BrokerError> {
        let info = self
            .host
            .info(name)
            .ok_or_else(|| BrokerError::PluginNotFound(name.to_owned()))?;
        let loaded = self.loaded.lock().clone();
        let mut versions: Vec<PluginVersion> = self
            .host
            .stats()
            .into_iter()
            .filter(|s| s.name == name)
            .map(|s| {
                let l = loaded.get(&s.digest);
                PluginVersion {
                    digest: s.digest,
                    current: s.current,
                    size_bytes: l.map_or(0, |l| l.size_bytes),
                    loaded_at_ms: l.map_or(0, |l| l.loaded_at_ms),
                    stats: s.stats,
                }
            })
            .collect();
        versions.sort_by_key(|v| (!v.current, -v.loaded_at_ms));
        Ok(PluginDescription {
            name: info.name,
            kind: info.kind,
            builtin: self.builtin.iter().any(|b| b == name),
            versions,
        })
    }

    pub(crate) fn list(&self) -> Vec<PluginDescription> {
        self.host
            .plugins()
            .into_iter()
            .filter_map(|i| self.describe(&i.name).ok())
            .collect()
    }
}

/// Unloads `name` unless a topic's configuration names it (`PluginInUse`, listing the topics);
/// serialized with topic creation and configuration changes, which check that the plugins
/// they name are loaded.
pub(crate) fn unload_unused(
    plugins: &Plugins,
    topics: &Topics,
    name: &str,
) -> Result<(), BrokerError> {
    let _admin = topics.admin();
    let users: Vec<String> = topics
        .snapshot()
        .iter()
        .filter(|t| t.config().plugins().any(|(_, _, n)| n == name))
        .map(|t| t.name.clone())
        .collect();
    if !users.is_empty() {
        return Err(BrokerError::PluginInUse {
            name: name.to_owned(),
            reason: format!("named by the configuration of topics {users:?}"),
        });
    }
    plugins.unload(name)
}

/// Pins every codec version referenced by stored batches (see [`crate::codec`]), first
/// loading replaced versions from the copies kept under `plugins/versions/`.
pub(crate) fn pin_stored_codecs(plugins: &Plugins, topics: &[std::sync::Arc<Topic>]) {
    let host = plugins.host();
    for t in topics {
        for p in &t.partitions {
            let Ok(log) = p.log() else { continue };
            for entry in log.codecs() {
                let digest = PluginDigest(entry.digest);
                let loaded = host.stats().iter().any(|v| v.digest == digest);
                if !loaded {
                    match plugins.restore_codec(&entry.name, &digest) {
                        Ok(true) => {
                            tracing::info!(codec = %entry.name, digest = %digest.short(), "restored a replaced codec version for stored batches")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(codec = %entry.name, digest = %digest.short(), error = %e, "restoring a codec version failed")
                        }
                    }
                }
            }
            crate::codec::pin_table(host, &log, &t.name, p.index);
        }
    }
}

/// Drops the pins a deleted topic's codec tables held (one per table entry, as taken by
/// [`crate::codec::pin_table`] and at first registration).
pub(crate) fn unpin_codecs(host: &PluginHost, topic: &Topic) {
    for p in &topic.partitions {
        let Some(log) = p.log.read().clone() else {
            continue;
        };
        for entry in log.codecs() {
            host.unpin(&PluginDigest(entry.digest));
        }
    }
}

/// [`Plugins::keep_version`] into the directory `dir`.
fn keep_version_in(dir: &Path, digest: &PluginDigest, bytes: &[u8]) {
    let file = format!("{}.wasm", digest.to_hex());
    if dir.join(&file).exists() {
        return;
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        replace_file(&dir.join(&file), bytes)
    };
    if let Err(e) = write() {
        tracing::warn!(digest = %digest.short(), error = %e, "could not keep a copy of a codec version");
    }
}
