//! Broker configuration and per-topic configuration.
//!
//! A topic's configuration is a string map with Kafka-like keys (the form it is stored in,
//! `topic.json`, and sent in); the effective configuration is the built-in defaults overlaid
//! with the broker's defaults and the topic's own entries, parsed once, at create, alter and
//! open, into a [`TopicConfig`] with typed values. [`TOPIC_CONFIG_KEYS`] is the one list of
//! known keys: each key's default, description and parsing rule are together there, and
//! everything else reads the typed values. Keys under `retention.policy.params.` are
//! free-form parameters handed to the topic's plugins.
//!
//! Three keys name plugins ([`PLUGIN_KEYS`]): `compression` a codec, `retention.policy` a
//! retention policy, `compaction.key` a key extractor. Each also takes values that name no
//! plugin (`none`, `default`, `key`), and `compression` takes Kafka's codec names as aliases
//! of the bundled codecs ([`CODEC_ALIASES`]). [`TopicConfig::check_plugins`] is the one place
//! that decides whether such a value is usable; creating a topic and altering its
//! configuration both go through it, opening an existing topic does not (a plugin that failed
//! to load must not keep the broker from starting).

use crate::BrokerError;
pub use crate::names::{
    CODEC_ALIASES, PLUGIN_KEYS, UNBUNDLED_CODECS, is_reserved_plugin_name, plugin_named_by,
};
use crate::names::{DEFAULT_RETENTION_POLICY, RECORD_KEY};
use distlog_plugin_host::{PluginHost, PluginKind};
pub use distlog_storage::batch::TimestampType;
use distlog_storage::{LogConfig, SyncPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Broker settings (the `[broker]` table of the server's configuration file).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// Root of all data: topics, consumer-group offsets. Created if missing.
    pub data_dir: PathBuf,
    /// Partition count of a topic created without one.
    pub default_partitions: u32,
    /// Largest partition count a topic may have.
    pub max_partitions: u32,
    /// Broker-wide overrides of the built-in topic defaults (same keys as a topic's
    /// configuration); validated at open.
    pub topic_defaults: BTreeMap<String, String>,
    /// Write a partition's recovery checkpoint at least this often while appending.
    pub checkpoint_interval_ms: u64,
    /// Bytes between two offset-index entries.
    pub index_interval_bytes: u32,
    /// The plugin runtime.
    pub plugins: crate::plugins::PluginsConfig,
    /// Interval of the maintenance thread, which runs every partition's retention policy and
    /// the cleaner of `compact` topics (`retention.check.interval.ms`); 0 disables the thread
    /// (passes then run only through `Broker::run_retention_once` / `run_compaction_once`).
    pub retention_check_interval_ms: u64,
    /// Bytes of dirty segments one compaction pass reads per partition: bounds the cleaner's
    /// work and memory per pass so it does not starve produce and fetch.
    pub cleaner_max_dirty_bytes: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            default_partitions: 1,
            max_partitions: 1024,
            topic_defaults: BTreeMap::new(),
            checkpoint_interval_ms: 1_000,
            index_interval_bytes: 4096,
            plugins: crate::plugins::PluginsConfig::default(),
            retention_check_interval_ms: 30_000,
            cleaner_max_dirty_bytes: 128 << 20,
        }
    }
}

impl BrokerConfig {
    /// A default configuration rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

/// Largest batch the storage layer accepts; `max.message.bytes` is enforced by the broker
/// below this, so it can change without reopening logs.
pub(crate) const STORAGE_MAX_BATCH_BYTES: u32 = 256 << 20;

/// Prefixes of free-form plugin parameters passed per topic
/// (`retention.policy.params.max.segments=5`: the retention policy sees the topic's
/// configuration on every call).
pub const PARAM_PREFIXES: &[&str] = &["retention.policy.params."];

/// Prefixes that look like per-topic parameters but are not: codecs and key extractors
/// take their parameters once, when they are loaded (`LoadPlugin.params`).
const LOAD_TIME_PARAM_PREFIXES: &[&str] = &["compression.params.", "compaction.key.params."];

/// Largest value of a free-form plugin parameter.
const MAX_PARAM_BYTES: usize = 4096;

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupPolicy {
    /// Retention deletes old segments (`delete`).
    pub delete: bool,
    /// The cleaner keeps the latest record per key (`compact`).
    pub compact: bool,
}

/// `flush.policy`: when appends are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushPolicy {
    /// Before the produce is acknowledged (`batch`).
    Batch,
    /// Every `flush.ms` in the background (`interval`).
    Interval,
    /// Every `flush.messages` records (`messages`).
    Messages,
    /// When the operating system writes back (`os`).
    Os,
}

/// The typed values of every known key (the effective string entries are kept beside them
/// for descriptions and for the policy plugins, which see the configuration as strings).
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    cleanup: CleanupPolicy,
    /// The codec plugin (aliases resolved); `None`: uncompressed.
    codec: Option<String>,
    /// `None`: unlimited (-1).
    retention_ms: Option<i64>,
    /// `None`: unlimited (-1).
    retention_bytes: Option<i64>,
    /// `None`: the default time and size rules.
    retention_plugin: Option<String>,
    segment_bytes: u64,
    segment_ms: u64,
    max_message_bytes: u32,
    flush: FlushPolicy,
    flush_ms: u64,
    flush_messages: u64,
    timestamp_type: TimestampType,
    /// `None`: the record key.
    compaction_plugin: Option<String>,
    delete_retention_ms: u64,
    min_compaction_lag_ms: u64,
    min_cleanable_dirty_ratio: f64,
}

/// Parses one value into `Settings`; the error is the reason shown to the client.
type Apply = fn(&mut Settings, &str) -> Result<(), &'static str>;

/// A known topic configuration key: its name, built-in default and meaning (docs/CONFIG.md
/// lists the same), and how its value is checked and read.
#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    /// The key.
    pub name: &'static str,
    /// The built-in default.
    pub default: &'static str,
    /// One line about what it does.
    pub doc: &'static str,
    /// Whether the partition logs are opened with it (a change reopens them).
    pub storage: bool,
    apply: Apply,
}

fn parse_in<T: std::str::FromStr + PartialOrd>(
    v: &str,
    range: std::ops::RangeInclusive<T>,
    reason: &'static str,
) -> Result<T, &'static str> {
    v.parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or(reason)
}

/// `-1` for unlimited, else a non-negative integer.
fn limit(v: &str) -> Result<Option<i64>, &'static str> {
    match parse_in(v, -1..=i64::MAX, "must be an integer >= -1 (-1: unlimited)")? {
        -1 => Ok(None),
        v => Ok(Some(v)),
    }
}

/// A value that names a plugin (or one of the key's built-in behaviours): the plugin it names.
fn plugin(key: &str, v: &str) -> Result<Option<String>, &'static str> {
    if crate::names::validate_plugin_name(v).is_err() {
        return Err("must be a plugin name ([a-zA-Z0-9._-], 1 to 249 characters)");
    }
    Ok(plugin_named_by(key, v).map(|(_, name)| name.to_owned()))
}

/// Every known key: the one list of keys, their defaults and their rules.
pub const TOPIC_CONFIG_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        default: "delete",
        doc: "delete, compact, or delete,compact",
        storage: false,
        apply: |s, v| {
            s.cleanup = match v {
                "delete" => CleanupPolicy {
                    delete: true,
                    compact: false,
                },
                "compact" => CleanupPolicy {
                    delete: false,
                    compact: true,
                },
                "delete,compact" | "compact,delete" => CleanupPolicy {
                    delete: true,
                    compact: true,
                },
                _ => return Err("must be delete, compact or delete,compact"),
            };
            Ok(())
        },
    },
    TopicKey {
        name: "compression",
        default: "none",
        doc: "codec plugin for new batches, or none",
        storage: false,
        apply: |s, v| {
            s.codec = plugin("compression", v)?;
            Ok(())
        },
    },
    TopicKey {
        name: "retention.ms",
        default: "604800000",
        doc: "delete segments older than this; -1 keeps forever",
        storage: false,
        apply: |s, v| {
            s.retention_ms = limit(v)?;
            Ok(())
        },
    },
    TopicKey {
        name: "retention.bytes",
        default: "-1",
        doc: "delete old segments beyond this size per partition; -1 unlimited",
        storage: false,
        apply: |s, v| {
            s.retention_bytes = limit(v)?;
            Ok(())
        },
    },
    TopicKey {
        name: "retention.policy",
        default: DEFAULT_RETENTION_POLICY,
        doc: "retention policy plugin (default: time and size)",
        storage: false,
        apply: |s, v| {
            s.retention_plugin = plugin("retention.policy", v)?;
            Ok(())
        },
    },
    TopicKey {
        name: "segment.bytes",
        default: "1073741824",
        doc: "roll a segment at this size (1 MiB..=2 GiB)",
        storage: true,
        apply: |s, v| {
            s.segment_bytes = parse_in(
                v,
                1 << 20..=1 << 31,
                "must be an integer between 1048576 and 2147483648",
            )?;
            Ok(())
        },
    },
    TopicKey {
        name: "segment.ms",
        default: "604800000",
        doc: "roll a segment at this age",
        storage: true,
        apply: |s, v| {
            s.segment_ms = parse_in(v, 1..=u64::MAX, "must be a positive integer")?;
            Ok(())
        },
    },
    TopicKey {
        name: "max.message.bytes",
        default: "1048588",
        doc: "largest record batch accepted per partition per produce",
        storage: false,
        apply: |s, v| {
            s.max_message_bytes = parse_in(
                v,
                128..=STORAGE_MAX_BATCH_BYTES,
                "must be an integer between 128 and 268435456",
            )?;
            Ok(())
        },
    },
    TopicKey {
        name: "flush.policy",
        default: "batch",
        doc: "batch (fsync before ack), interval, messages or os",
        storage: true,
        apply: |s, v| {
            s.flush = match v {
                "batch" => FlushPolicy::Batch,
                "interval" => FlushPolicy::Interval,
                "messages" => FlushPolicy::Messages,
                "os" => FlushPolicy::Os,
                _ => return Err("must be batch, interval, messages or os"),
            };
            Ok(())
        },
    },
    TopicKey {
        name: "flush.ms",
        default: "1000",
        doc: "fsync interval for flush.policy=interval",
        storage: true,
        apply: |s, v| {
            s.flush_ms = parse_in(v, 1..=u64::MAX, "must be a positive integer")?;
            Ok(())
        },
    },
    TopicKey {
        name: "flush.messages",
        default: "10000",
        doc: "fsync every this many records for flush.policy=messages",
        storage: true,
        apply: |s, v| {
            s.flush_messages = parse_in(v, 1..=u64::MAX, "must be a positive integer")?;
            Ok(())
        },
    },
    TopicKey {
        name: "message.timestamp.type",
        default: "CreateTime",
        doc: "CreateTime (producer's) or LogAppendTime (broker's)",
        storage: false,
        apply: |s, v| {
            s.timestamp_type = match v {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err("must be CreateTime or LogAppendTime"),
            };
            Ok(())
        },
    },
    TopicKey {
        name: "compaction.key",
        default: RECORD_KEY,
        doc: "compaction key extractor plugin (key: the record key)",
        storage: false,
        apply: |s, v| {
            s.compaction_plugin = plugin("compaction.key", v)?;
            Ok(())
        },
    },
    TopicKey {
        name: "delete.retention.ms",
        default: "86400000",
        doc: "keep tombstones this long after cleaning",
        storage: false,
        apply: |s, v| {
            s.delete_retention_ms = parse_in(v, 0..=u64::MAX, "must be a non-negative integer")?;
            Ok(())
        },
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        default: "0",
        doc: "never compact records younger than this",
        storage: false,
        apply: |s, v| {
            s.min_compaction_lag_ms = parse_in(v, 0..=u64::MAX, "must be a non-negative integer")?;
            Ok(())
        },
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        doc: "clean when this share of the log is dirty",
        storage: false,
        apply: |s, v| {
            s.min_cleanable_dirty_ratio =
                parse_in(v, 0.0..=1.0, "must be a number between 0 and 1")?;
            Ok(())
        },
    },
];

/// The known key `key`, if it is one.
fn known_key(key: &str) -> Option<&'static TopicKey> {
    TOPIC_CONFIG_KEYS.iter().find(|k| k.name == key)
}

fn is_param(key: &str) -> bool {
    PARAM_PREFIXES
        .iter()
        .any(|p| key.len() > p.len() && key.starts_with(p))
}

impl Settings {
    /// Placeholder values, every one overwritten by [`Settings::builtin`].
    fn zero() -> Self {
        Self {
            cleanup: CleanupPolicy {
                delete: true,
                compact: false,
            },
            codec: None,
            retention_ms: None,
            retention_bytes: None,
            retention_plugin: None,
            segment_bytes: 1 << 30,
            segment_ms: 1,
            max_message_bytes: 128,
            flush: FlushPolicy::Batch,
            flush_ms: 1,
            flush_messages: 1,
            timestamp_type: TimestampType::CreateTime,
            compaction_plugin: None,
            delete_retention_ms: 0,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
        }
    }

    /// The built-in defaults of [`TOPIC_CONFIG_KEYS`], parsed by the same rules as any value
    /// (a test checks each parses).
    fn builtin() -> Self {
        let mut s = Self::zero();
        for k in TOPIC_CONFIG_KEYS {
            // Checked by `builtin_defaults_are_valid`.
            let _ = (k.apply)(&mut s, k.default);
        }
        s
    }

    /// Applies one entry, or says precisely why it is refused.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let bad = |reason: &str| BrokerError::InvalidConfig {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if LOAD_TIME_PARAM_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return Err(bad(
                "codec and key extractor parameters are set when the plugin is loaded: \
                 load it under its own name with `distlog plugin load --param KEY=VALUE` \
                 and name that plugin in `compression` or `compaction.key`",
            ));
        }
        if is_param(key) {
            if value.len() > MAX_PARAM_BYTES {
                return Err(bad("plugin parameters are limited to 4096 bytes"));
            }
            return Ok(());
        }
        let k = known_key(key).ok_or_else(|| bad("unknown configuration key"))?;
        (k.apply)(self, value).map_err(bad)
    }
}

/// A topic's effective configuration: the built-in defaults overlaid with the broker's
/// defaults and the topic's own entries, parsed once into typed values.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    entries: BTreeMap<String, String>,
    settings: Settings,
}

/// Two configurations are equal when their entries are (the typed values follow from them).
impl PartialEq for TopicConfig {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for TopicConfig {}

impl TopicConfig {
    /// The built-in defaults overlaid with `broker_defaults` then `overrides`, each entry
    /// validated and parsed. Cost: proportional to the number of entries.
    pub fn resolve(
        broker_defaults: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, BrokerError> {
        let mut entries: BTreeMap<String, String> = TOPIC_CONFIG_KEYS
            .iter()
            .map(|k| (k.name.to_owned(), k.default.to_owned()))
            .collect();
        let mut settings = Settings::builtin();
        for (k, v) in broker_defaults.iter().chain(overrides) {
            settings.apply(k, v)?;
            entries.insert(k.clone(), v.clone());
        }
        Ok(Self { entries, settings })
    }

    /// Checks one entry. Unknown keys (outside the plugin parameter prefixes) are rejected.
    pub fn validate_entry(key: &str, value: &str) -> Result<(), BrokerError> {
        Settings::builtin().apply(key, value)
    }

    /// Checks that `key` may be reset to its default: a known key or a plugin parameter.
    pub(crate) fn check_resettable(key: &str) -> Result<(), BrokerError> {
        if known_key(key).is_some() || PARAM_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return Ok(());
        }
        Err(BrokerError::InvalidConfig {
            key: key.to_owned(),
            reason: "unknown configuration key".into(),
        })
    }

    /// Every plugin this configuration names: key, kind and plugin name (aliases resolved).
    pub fn plugins(&self) -> impl Iterator<Item = (&'static str, PluginKind, &str)> {
        PLUGIN_KEYS.iter().filter_map(|(key, _, _)| {
            let (kind, name) = plugin_named_by(key, self.get(key)?)?;
            Some((*key, kind, name))
        })
    }

    /// Checks that every plugin-naming entry for which `check_key` holds names a loaded plugin
    /// of the right kind (`host`: `None` when plugins are disabled). The error names the
    /// entry, what is wrong and the loaded plugins of that kind.
    /// Cost: a registry lookup per entry; on an error, a listing of the loaded plugins.
    pub(crate) fn check_plugins(
        &self,
        host: Option<&PluginHost>,
        check_key: impl Fn(&str) -> bool,
    ) -> Result<(), BrokerError> {
        for (key, kind, builtin) in PLUGIN_KEYS {
            let Some(value) = self.get(key).filter(|_| check_key(key)) else {
                continue;
            };
            let Some((_, name)) = plugin_named_by(key, value) else {
                continue;
            };
            let problem = match host.map(|h| h.info(name)) {
                None => PluginProblem::PluginsDisabled(value.to_owned()),
                Some(Some(info)) if info.kind == *kind => continue,
                Some(Some(info)) => PluginProblem::WrongKind {
                    name: name.to_owned(),
                    actual: info.kind,
                },
                Some(None) if *kind == PluginKind::Codec && UNBUNDLED_CODECS.contains(&name) => {
                    PluginProblem::NotBundled(value.to_owned())
                }
                Some(None) if name != value => PluginProblem::AliasNotLoaded {
                    alias: value.to_owned(),
                    plugin: name.to_owned(),
                },
                Some(None) => PluginProblem::NotLoaded(name.to_owned()),
            };
            let loaded = host.map_or_else(Vec::new, |h| {
                h.plugins()
                    .into_iter()
                    .filter(|i| i.kind == *kind)
                    .map(|i| i.name)
                    .collect()
            });
            let mut accepted: Vec<String> = builtin.iter().map(|b| (*b).to_owned()).collect();
            if *kind == PluginKind::Codec {
                accepted.extend(
                    CODEC_ALIASES
                        .iter()
                        .filter(|(_, plugin)| loaded.iter().any(|l| l == plugin))
                        .map(|(alias, _)| (*alias).to_owned()),
                );
            }
            return Err(BrokerError::UnusablePlugin(Box::new(UnusablePlugin {
                key: (*key).to_owned(),
                kind: *kind,
                problem,
                loaded,
                accepted,
            })));
        }
        Ok(())
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// `cleanup.policy`.
    pub fn cleanup_policy(&self) -> CleanupPolicy {
        self.settings.cleanup
    }

    /// The codec plugin new batches are compressed with (`compression`, aliases resolved);
    /// `None` stores them uncompressed.
    pub fn codec(&self) -> Option<&str> {
        self.settings.codec.as_deref()
    }

    /// `retention.ms`; `None` keeps forever.
    pub fn retention_ms(&self) -> Option<i64> {
        self.settings.retention_ms
    }

    /// `retention.bytes`; `None` is unlimited.
    pub fn retention_bytes(&self) -> Option<i64> {
        self.settings.retention_bytes
    }

    /// The retention plugin `retention.policy` names; `None` for the default time and size
    /// rules.
    pub fn retention_plugin(&self) -> Option<&str> {
        self.settings.retention_plugin.as_deref()
    }

    /// The key extractor plugin `compaction.key` names; `None` for the record key.
    pub fn compaction_plugin(&self) -> Option<&str> {
        self.settings.compaction_plugin.as_deref()
    }

    /// `delete.retention.ms`.
    pub fn delete_retention_ms(&self) -> u64 {
        self.settings.delete_retention_ms
    }

    /// `min.compaction.lag.ms`.
    pub fn min_compaction_lag_ms(&self) -> u64 {
        self.settings.min_compaction_lag_ms
    }

    /// `min.cleanable.dirty.ratio`, in `0..=1`.
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.settings.min_cleanable_dirty_ratio
    }

    /// `max.message.bytes`.
    pub fn max_message_bytes(&self) -> usize {
        usize::try_from(self.settings.max_message_bytes).unwrap_or(usize::MAX)
    }

    /// `flush.policy`.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.settings.flush
    }

    /// `message.timestamp.type`.
    pub fn timestamp_type(&self) -> TimestampType {
        self.settings.timestamp_type
    }

    /// Whether a produce to this topic may wait on something slow: an fsync
    /// (`flush.policy` `batch` or `messages`) or a compression plugin. When `false`, a produce
    /// only encodes the batch and copies it into the page cache.
    pub fn produce_may_block(&self) -> bool {
        let syncs = !matches!(self.settings.flush, FlushPolicy::Os | FlushPolicy::Interval);
        syncs || self.codec().is_some()
    }

    /// Whether the broker stamps record timestamps at append (`LogAppendTime`).
    pub fn log_append_time(&self) -> bool {
        self.settings.timestamp_type == TimestampType::LogAppendTime
    }

    /// The storage sync policy of `flush.*`.
    fn sync_policy(&self) -> SyncPolicy {
        let s = &self.settings;
        match s.flush {
            FlushPolicy::Batch => SyncPolicy::EveryBatch,
            FlushPolicy::Interval => SyncPolicy::IntervalMs(s.flush_ms),
            FlushPolicy::Messages => SyncPolicy::EveryRecords(s.flush_messages),
            FlushPolicy::Os => SyncPolicy::Os,
        }
    }

    /// The storage configuration this topic's partition logs are opened with.
    pub(crate) fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        let mut c = LogConfig::default();
        c.segment_bytes = self.settings.segment_bytes;
        c.segment_ms = Some(self.settings.segment_ms);
        c.max_batch_bytes = STORAGE_MAX_BATCH_BYTES;
        c.checkpoint_interval_ms = broker.checkpoint_interval_ms.max(1);
        c.index_interval_bytes = broker.index_interval_bytes.max(1);
        // The most the active segment's index files grow to (storage allocates them for real,
        // 64 KiB at first and doubling as they fill): the entries a full segment can take, one
        // per `index_interval_bytes` of batches, 12 bytes each at most (a time index entry),
        // plus slack; 3 MiB at the defaults. A full index only rolls the segment early.
        let entries = c.segment_bytes / u64::from(c.index_interval_bytes) + 16;
        c.index_max_bytes = (entries * 12).clamp(4 << 10, 10 << 20);
        c.sync = self.sync_policy();
        c
    }

    /// Whether changing from `self` to `other` needs the partition logs reopened (storage
    /// settings are fixed while a log is open): a [`TopicKey::storage`] key changed.
    pub(crate) fn storage_differs(&self, other: &Self) -> bool {
        TOPIC_CONFIG_KEYS
            .iter()
            .filter(|k| k.storage)
            .any(|k| self.get(k.name) != other.get(k.name))
    }
}

/// Why a configuration value that names a plugin cannot be used (see
/// [`BrokerError::UnusablePlugin`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginProblem {
    /// No plugin has this name.
    #[error("no plugin {0:?} is loaded")]
    NotLoaded(String),
    /// The plugin is of another kind.
    #[error("{name:?} is a {actual} plugin")]
    WrongKind {
        /// Plugin name.
        name: String,
        /// Its kind.
        actual: PluginKind,
    },
    /// A Kafka codec name whose bundled plugin is not loaded.
    #[error("{alias:?} stands for the bundled codec plugin {plugin:?}, which is not loaded")]
    AliasNotLoaded {
        /// The Kafka name.
        alias: String,
        /// The plugin it stands for.
        plugin: String,
    },
    /// A Kafka codec name without a bundled implementation.
    #[error("Kafka's {0:?} codec has no bundled implementation (lz4 and zstd do)")]
    NotBundled(String),
    /// The broker runs without a plugin host.
    #[error("{0:?} names a plugin and plugins are disabled on this broker")]
    PluginsDisabled(String),
}

/// A configuration entry that names a plugin which cannot serve it: what is wrong, and what
/// would be accepted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid topic configuration {key:?}: {problem}; loaded {kind} plugins: [{}]; \
     also accepted: {}",
    .loaded.join(", "),
    .accepted.join(", ")
)]
#[non_exhaustive]
pub struct UnusablePlugin {
    /// The key concerned.
    pub key: String,
    /// The kind of plugin the key needs.
    pub kind: PluginKind,
    /// What is wrong with the value.
    pub problem: PluginProblem,
    /// The loaded plugins of that kind, sorted.
    pub loaded: Vec<String>,
    /// The other values the key accepts (`none`, `default`, `key`, codec aliases).
    pub accepted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = TopicConfig::resolve(
            &map(&[("retention.ms", "1")]),
            &map(&[("retention.ms", "2")]),
        )
        .expect("valid");
        assert_eq!(c.get("retention.ms"), Some("2"));
        assert_eq!(c.get("cleanup.policy"), Some("delete"));
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        for (k, v) in [
            ("retention.mss", "1"),
            ("retention.ms", "-2"),
            ("segment.bytes", "x"),
            ("cleanup.policy", "forever"),
            ("flush.policy", "sometimes"),
            ("compression.params.", "x"),
            ("compression.params.level", "9"),
            ("compaction.key.params.field", "id"),
        ] {
            assert!(
                TopicConfig::resolve(&BTreeMap::new(), &map(&[(k, v)])).is_err(),
                "{k}={v}"
            );
        }
        assert!(TopicConfig::validate_entry("retention.policy.params.max.segments", "9").is_ok());
    }

    #[test]
    fn builtin_defaults_are_valid() {
        for k in TOPIC_CONFIG_KEYS {
            assert!(
                TopicConfig::validate_entry(k.name, k.default).is_ok(),
                "{}={}",
                k.name,
                k.default
            );
        }
        let c = TopicConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).expect("defaults");
        assert_eq!(c.settings, Settings::builtin());
        assert_eq!(c.entries().len(), TOPIC_CONFIG_KEYS.len());
    }

    /// Guards docs/CONFIG.md: its topic table lists every key with the default used here.
    #[test]
    fn the_documented_keys_and_defaults_are_these() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md"),
        )
        .expect("docs/CONFIG.md");
        for k in TOPIC_CONFIG_KEYS {
            let row = format!("| `{}` | `{}` |", k.name, k.default);
            assert!(doc.contains(&row), "docs/CONFIG.md lacks the row {row}");
        }
    }

    #[test]
    fn values_are_parsed_once_into_typed_settings() {
        let c = TopicConfig::resolve(
            &map(&[("flush.policy", "interval")]),
            &map(&[
                ("cleanup.policy", "compact,delete"),
                ("compression", "zstd"),
                ("retention.ms", "-1"),
                ("retention.bytes", "1000"),
                ("retention.policy", "keep-newest"),
                ("compaction.key", "key"),
                ("flush.ms", "250"),
                ("min.cleanable.dirty.ratio", "0.25"),
                ("min.compaction.lag.ms", "60000"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            c.cleanup_policy(),
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(c.codec(), Some("codec-zstd"));
        assert_eq!((c.retention_ms(), c.retention_bytes()), (None, Some(1000)));
        assert_eq!(c.retention_plugin(), Some("keep-newest"));
        assert_eq!(c.compaction_plugin(), None);
        assert_eq!(c.flush_policy(), FlushPolicy::Interval);
        assert!(!c.produce_may_block() || c.codec().is_some());
        assert_eq!(c.min_cleanable_dirty_ratio(), 0.25);
        assert_eq!(c.min_compaction_lag_ms(), 60_000);
        let log = c.log_config(&BrokerConfig::default());
        assert_eq!(log.sync, SyncPolicy::IntervalMs(250));
        // Storage keys are the ones that reopen logs.
        let d =
            TopicConfig::resolve(&BTreeMap::new(), &map(&[("flush.ms", "250")])).expect("valid");
        let e =
            TopicConfig::resolve(&BTreeMap::new(), &map(&[("retention.ms", "5")])).expect("valid");
        let base = TopicConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).expect("valid");
        assert!(base.storage_differs(&d));
        assert!(!base.storage_differs(&e));
    }

    #[test]
    fn errors_name_the_key_and_the_rule() {
        let refused = TopicConfig::validate_entry("segment.bytes", "12");
        assert!(
            matches!(&refused, Err(BrokerError::InvalidConfig { key, reason })
                if key == "segment.bytes" && reason == "must be an integer between 1048576 and 2147483648"),
            "{refused:?}"
        );
        let refused = TopicConfig::validate_entry("compression", "a/b");
        assert!(
            matches!(&refused, Err(BrokerError::InvalidConfig { reason, .. }) if reason.contains("plugin name")),
            "{refused:?}"
        );
        assert!(TopicConfig::check_resettable("retention.ms").is_ok());
        assert!(TopicConfig::check_resettable("retention.policy.params.x").is_ok());
        assert!(TopicConfig::check_resettable("nope").is_err());
    }
}
