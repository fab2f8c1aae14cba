//! Broker configuration and per-topic configuration.
//!
//! A topic's configuration is a string map with Kafka-like keys, validated entry by entry
//! ([`TopicConfig::validate_entry`]); the effective configuration is the broker's defaults
//! overlaid with the topic's own entries. Keys under `retention.policy.params.` are free-form
//! parameters handed to the topic's plugins.
//!
//! Three keys name plugins ([`PLUGIN_KEYS`]): `compression` a codec, `retention.policy` a
//! retention policy, `compaction.key` a key extractor. Each also takes values that name no
//! plugin (`none`, `default`, `key`), and `compression` takes Kafka's codec names as aliases
//! of the bundled codecs ([`CODEC_ALIASES`]). [`TopicConfig::check_plugins`] is the one place
//! that decides whether such a value is usable; creating a topic and altering its
//! configuration both go through it, opening an existing topic does not (a plugin that failed
//! to load must not keep the broker from starting).

use crate::BrokerError;
use distlog_plugin_host::{PluginHost, PluginKind};
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

/// Every known key with its built-in default and a one-line description (docs/CONFIG.md
/// lists the same).
pub const TOPIC_CONFIG_KEYS: &[(&str, &str, &str)] = &[
    (
        "cleanup.policy",
        "delete",
        "delete, compact, or delete,compact",
    ),
    (
        "compression",
        "none",
        "codec plugin for new batches, or none",
    ),
    (
        "retention.ms",
        "604800000",
        "delete segments older than this; -1 keeps forever",
    ),
    (
        "retention.bytes",
        "-1",
        "delete old segments beyond this size per partition; -1 unlimited",
    ),
    (
        "retention.policy",
        "default",
        "retention policy plugin (default: time and size)",
    ),
    (
        "segment.bytes",
        "1073741824",
        "roll a segment at this size (1 MiB..=2 GiB)",
    ),
    ("segment.ms", "604800000", "roll a segment at this age"),
    (
        "max.message.bytes",
        "1048588",
        "largest record batch accepted per partition per produce",
    ),
    (
        "flush.policy",
        "batch",
        "batch (fsync before ack), interval, messages or os",
    ),
    (
        "flush.ms",
        "1000",
        "fsync interval for flush.policy=interval",
    ),
    (
        "flush.messages",
        "10000",
        "fsync every this many records for flush.policy=messages",
    ),
    (
        "message.timestamp.type",
        "CreateTime",
        "CreateTime (producer's) or LogAppendTime (broker's)",
    ),
    (
        "compaction.key",
        "key",
        "compaction key extractor plugin (key: the record key)",
    ),
    (
        "delete.retention.ms",
        "86400000",
        "keep tombstones this long after cleaning",
    ),
    (
        "min.compaction.lag.ms",
        "0",
        "never compact records younger than this",
    ),
    (
        "min.cleanable.dirty.ratio",
        "0.5",
        "clean when this share of the log is dirty",
    ),
];

/// Prefixes of free-form plugin parameters passed per topic
/// (`retention.policy.params.max.segments=5`: the retention policy sees the topic's
/// configuration on every call).
pub const PARAM_PREFIXES: &[&str] = &["retention.policy.params."];

/// Prefixes that look like per-topic parameters but are not: codecs and key extractors
/// take their parameters once, when they are loaded (`LoadPlugin.params`).
const LOAD_TIME_PARAM_PREFIXES: &[&str] = &["compression.params.", "compaction.key.params."];

/// The keys whose value names a plugin, the kind of plugin each needs, and the values that
/// name no plugin (the key's built-in behaviour).
pub const PLUGIN_KEYS: &[(&str, PluginKind, &[&str])] = &[
    ("compression", PluginKind::Codec, &["none", "uncompressed"]),
    ("retention.policy", PluginKind::Retention, &["default"]),
    ("compaction.key", PluginKind::Compaction, &["key"]),
];

/// Kafka's `compression.type` names that the bundled codec plugins implement: `compression=lz4`
/// compresses with `codec-lz4`. The alias names the algorithm, not Kafka's framing: batches
/// keep this broker's format (docs/FORMAT.md), whichever codec wrote them.
pub const CODEC_ALIASES: &[(&str, &str)] = &[("lz4", "codec-lz4"), ("zstd", "codec-zstd")];

/// Kafka's codec names that have no bundled implementation: refused by name, so that nobody
/// believes their data is compressed when it is not.
pub const UNBUNDLED_CODECS: &[&str] = &["gzip", "snappy", "producer"];

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

/// The plugin a configuration value names, after aliases; `None` when the key names no plugin
/// or the value is one of the key's built-in behaviours.
pub fn plugin_named_by<'a>(key: &str, value: &'a str) -> Option<(PluginKind, &'a str)> {
    let (_, kind, builtin) = PLUGIN_KEYS.iter().find(|(k, _, _)| *k == key)?;
    if builtin.contains(&value) {
        return None;
    }
    let name = match kind {
        PluginKind::Codec => CODEC_ALIASES
            .iter()
            .find(|(alias, _)| *alias == value)
            .map_or(value, |(_, plugin)| plugin),
        _ => value,
    };
    Some((*kind, name))
}

/// Whether `name` is reserved by [`PLUGIN_KEYS`] or [`CODEC_ALIASES`], so that no plugin may be
/// loaded under it (a topic naming it would not reach the plugin).
pub fn is_reserved_plugin_name(name: &str) -> bool {
    PLUGIN_KEYS.iter().any(|(_, _, b)| b.contains(&name))
        || CODEC_ALIASES.iter().any(|(a, _)| *a == name)
        || UNBUNDLED_CODECS.contains(&name)
}

/// A topic's effective configuration: every known key, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    entries: BTreeMap<String, String>,
}

impl TopicConfig {
    /// The built-in defaults overlaid with `broker_defaults` then `overrides`, each entry
    /// validated. Cost: proportional to the number of entries.
    pub fn resolve(
        broker_defaults: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, BrokerError> {
        let mut entries: BTreeMap<String, String> = TOPIC_CONFIG_KEYS
            .iter()
            .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in broker_defaults.iter().chain(overrides) {
            Self::validate_entry(k, v)?;
            entries.insert(k.clone(), v.clone());
        }
        let config = Self { entries };
        config.validate_whole()?;
        Ok(config)
    }

    /// Checks one entry. Unknown keys (outside the plugin parameter prefixes) are rejected.
    pub fn validate_entry(key: &str, value: &str) -> Result<(), BrokerError> {
        let bad = |reason: &str| {
            Err(BrokerError::InvalidConfig {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if LOAD_TIME_PARAM_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return bad(
                "codec and key extractor parameters are set when the plugin is loaded: \
                 load it under its own name with `distlog plugin load --param KEY=VALUE` \
                 and name that plugin in `compression` or `compaction.key`",
            );
        }
        if PARAM_PREFIXES
            .iter()
            .any(|p| key.len() > p.len() && key.starts_with(p))
        {
            if value.len() > 4096 {
                return bad("plugin parameters are limited to 4096 bytes");
            }
            return Ok(());
        }
        match key {
            "cleanup.policy" => match value {
                "delete" | "compact" | "delete,compact" | "compact,delete" => Ok(()),
                _ => bad("must be delete, compact or delete,compact"),
            },
            "compression" | "retention.policy" | "compaction.key" => {
                if crate::names::validate_topic_name(value).is_err() {
                    bad("must be a plugin name ([a-zA-Z0-9._-], 1 to 249 characters)")
                } else {
                    Ok(())
                }
            }
            "retention.ms" | "retention.bytes" => match value.parse::<i64>() {
                Ok(v) if v >= -1 => Ok(()),
                _ => bad("must be an integer >= -1 (-1: unlimited)"),
            },
            "segment.bytes" => match value.parse::<u64>() {
                Ok(v) if (1 << 20..=1 << 31).contains(&v) => Ok(()),
                _ => bad("must be an integer between 1048576 and 2147483648"),
            },
            "segment.ms" | "flush.ms" | "flush.messages" => match value.parse::<u64>() {
                Ok(v) if v >= 1 => Ok(()),
                _ => bad("must be a positive integer"),
            },
            "max.message.bytes" => match value.parse::<u32>() {
                Ok(v) if (128..=STORAGE_MAX_BATCH_BYTES).contains(&v) => Ok(()),
                _ => bad("must be an integer between 128 and 268435456"),
            },
            "flush.policy" => match value {
                "batch" | "interval" | "messages" | "os" => Ok(()),
                _ => bad("must be batch, interval, messages or os"),
            },
            "message.timestamp.type" => match value {
                "CreateTime" | "LogAppendTime" => Ok(()),
                _ => bad("must be CreateTime or LogAppendTime"),
            },
            "delete.retention.ms" | "min.compaction.lag.ms" => match value.parse::<u64>() {
                Ok(_) => Ok(()),
                _ => bad("must be a non-negative integer"),
            },
            "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
                _ => bad("must be a number between 0 and 1"),
            },
            _ => bad("unknown configuration key"),
        }
    }

    /// Checks that `key` may be reset to its default: a known key or a plugin parameter.
    pub(crate) fn check_resettable(key: &str) -> Result<(), BrokerError> {
        if TOPIC_CONFIG_KEYS.iter().any(|(k, _, _)| *k == key)
            || PARAM_PREFIXES.iter().any(|p| key.starts_with(p))
        {
            return Ok(());
        }
        Err(BrokerError::InvalidConfig {
            key: key.to_owned(),
            reason: "unknown configuration key".into(),
        })
    }

    fn validate_whole(&self) -> Result<(), BrokerError> {
        Ok(())
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

    /// The codec plugin new batches are compressed with (aliases resolved); `None` stores
    /// them uncompressed.
    pub fn codec(&self) -> Option<&str> {
        plugin_named_by("compression", self.get("compression")?).map(|(_, name)| name)
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    fn get_u64(&self, key: &str, default: u64) -> u64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `max.message.bytes`.
    pub fn max_message_bytes(&self) -> usize {
        usize::try_from(self.get_u64("max.message.bytes", 1_048_588)).unwrap_or(usize::MAX)
    }

    /// Whether a produce to this topic may wait on something slow: an fsync
    /// (`flush.policy` `batch` or `messages`) or a compression plugin. When `false`, a produce
    /// only encodes the batch and copies it into the page cache.
    pub fn produce_may_block(&self) -> bool {
        let syncs = !matches!(self.get("flush.policy"), Some("os" | "interval"));
        syncs || self.codec().is_some()
    }

    /// Whether the broker stamps record timestamps at append (`LogAppendTime`).
    pub fn log_append_time(&self) -> bool {
        self.get("message.timestamp.type") == Some("LogAppendTime")
    }

    /// The storage configuration this topic's partition logs are opened with.
    pub(crate) fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        let mut c = LogConfig::default();
        c.segment_bytes = self.get_u64("segment.bytes", 1 << 30);
        c.segment_ms = Some(self.get_u64("segment.ms", 604_800_000));
        c.max_batch_bytes = STORAGE_MAX_BATCH_BYTES;
        c.checkpoint_interval_ms = broker.checkpoint_interval_ms.max(1);
        c.index_interval_bytes = broker.index_interval_bytes.max(1);
        // The most the active segment's index files grow to (storage allocates them for real,
        // 64 KiB at first and doubling as they fill): the entries a full segment can take, one
        // per `index_interval_bytes` of batches, 12 bytes each at most (a time index entry),
        // plus slack; 3 MiB at the defaults. A full index only rolls the segment early.
        let entries = c.segment_bytes / u64::from(c.index_interval_bytes) + 16;
        c.index_max_bytes = (entries * 12).clamp(4 << 10, 10 << 20);
        c.sync = match self.get("flush.policy") {
            Some("interval") => SyncPolicy::IntervalMs(self.get_u64("flush.ms", 1000).max(1)),
            Some("messages") => {
                SyncPolicy::EveryRecords(self.get_u64("flush.messages", 10_000).max(1))
            }
            Some("os") => SyncPolicy::Os,
            _ => SyncPolicy::EveryBatch,
        };
        c
    }

    /// Whether changing from `self` to `other` needs the partition logs reopened (storage
    /// settings are fixed while a log is open).
    pub(crate) fn storage_differs(&self, other: &Self) -> bool {
        [
            "segment.bytes",
            "segment.ms",
            "flush.policy",
            "flush.ms",
            "flush.messages",
        ]
        .iter()
        .any(|k| self.get(k) != other.get(k))
    }
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
}
