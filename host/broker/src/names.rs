//! Name rules, as Kafka's: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
//! Names become directory names, so these rules are also what keeps a name from escaping the
//! data directory.
//!
//! Plugin names follow the same rules, and this is the one place that knows which
//! configuration values name a plugin: the three plugin keys ([`PLUGIN_KEYS`]), the values
//! that name a built-in behaviour instead (`none`, `default`, `key`), Kafka's codec names that
//! stand for the bundled codecs ([`CODEC_ALIASES`]) or are refused ([`UNBUNDLED_CODECS`]), and
//! so the names no plugin may be loaded under ([`is_reserved_plugin_name`]).

use crate::BrokerError;
use distlog_plugin_host::PluginKind;

/// Longest topic or group name.
pub const MAX_NAME_LEN: usize = 249;

/// Checks a topic name. Cost: one pass over the name.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    validate("topic", name)
}

/// Checks a consumer group name (same rules as topics).
pub fn validate_group_name(name: &str) -> Result<(), BrokerError> {
    validate("group", name)
}

/// The rule a plugin name follows, for messages.
pub const PLUGIN_NAME_RULE: &str = "1 to 249 characters of [a-zA-Z0-9._-]";

/// Checks a plugin name (same rules as topics). Cost: one pass over the name.
pub fn validate_plugin_name(name: &str) -> Result<(), BrokerError> {
    validate("plugin", name)
}

/// The `retention.policy` value for Kafka's time and size rules (no plugin named).
pub const DEFAULT_RETENTION_POLICY: &str = "default";

/// The `compaction.key` value for the record key (no plugin named).
pub const RECORD_KEY: &str = "key";

/// The keys whose value names a plugin, the kind of plugin each needs, and the values that
/// name no plugin (the key's built-in behaviour).
pub const PLUGIN_KEYS: &[(&str, PluginKind, &[&str])] = &[
    ("compression", PluginKind::Codec, &["none", "uncompressed"]),
    (
        "retention.policy",
        PluginKind::Retention,
        &[DEFAULT_RETENTION_POLICY],
    ),
    ("compaction.key", PluginKind::Compaction, &[RECORD_KEY]),
];

/// Kafka's `compression.type` names that the bundled codec plugins implement: `compression=lz4`
/// compresses with `codec-lz4`. The alias names the algorithm, not Kafka's framing: batches
/// keep this broker's format (docs/FORMAT.md), whichever codec wrote them.
pub const CODEC_ALIASES: &[(&str, &str)] = &[("lz4", "codec-lz4"), ("zstd", "codec-zstd")];

/// Kafka's codec names that have no bundled implementation: refused by name, so that nobody
/// believes their data is compressed when it is not.
pub const UNBUNDLED_CODECS: &[&str] = &["gzip", "snappy", "producer"];

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

/// Whether `name` is reserved by [`PLUGIN_KEYS`], [`CODEC_ALIASES`] or [`UNBUNDLED_CODECS`], so
/// that no plugin may be loaded under it (a topic naming it would not reach the plugin).
pub fn is_reserved_plugin_name(name: &str) -> bool {
    PLUGIN_KEYS.iter().any(|(_, _, b)| b.contains(&name))
        || CODEC_ALIASES.iter().any(|(a, _)| *a == name)
        || UNBUNDLED_CODECS.contains(&name)
}

fn validate(what: &'static str, name: &str) -> Result<(), BrokerError> {
    let bad = |reason| {
        Err(BrokerError::InvalidName {
            what,
            name: name.chars().take(MAX_NAME_LEN + 1).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return bad("must not be \".\" or \"..\"");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(250), "../etc"] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plugin_values_resolve_aliases_and_builtins() {
        assert_eq!(
            plugin_named_by("compression", "lz4"),
            Some((PluginKind::Codec, "codec-lz4"))
        );
        assert_eq!(plugin_named_by("compression", "none"), None);
        assert_eq!(plugin_named_by("retention.policy", "default"), None);
        assert_eq!(
            plugin_named_by("compaction.key", "key-json-field"),
            Some((PluginKind::Compaction, "key-json-field"))
        );
        assert_eq!(plugin_named_by("segment.bytes", "x"), None);
        for reserved in [
            "none",
            "uncompressed",
            "default",
            "key",
            "lz4",
            "zstd",
            "gzip",
        ] {
            assert!(is_reserved_plugin_name(reserved), "{reserved}");
        }
        assert!(!is_reserved_plugin_name("codec-lz4"));
    }
}
