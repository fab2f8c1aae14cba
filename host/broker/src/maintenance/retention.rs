//! Retention decisions: which closed segments of a partition to delete.
//!
//! Sans-IO: these functions turn segment descriptors and a topic's configuration into a list
//! of base offsets; `Broker::run_retention_once` carries the list out with storage's
//! crash-safe deletion. A topic names its policy with `retention.policy`: `default` applies
//! Kafka's `retention.ms` and `retention.bytes` (the built-in `retention-time` and
//! `retention-size` plugins, or the same rules natively when plugins are disabled); any other
//! value is a loaded retention plugin.
//!
//! Every decision is validated here whatever the policy: it may only name existing closed
//! segments, each once, and only a prefix of the log (the log start offset moves forward, as
//! in Kafka). An invalid decision is rejected whole; nothing is deleted.

use crate::SegmentInfo;
use crate::config::TopicConfig;
use distlog_plugin_host::{PartitionInfo, PluginHost};

const PARAMS_PREFIX: &str = "retention.policy.params.";

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecideError {
    /// The policy plugin failed (missing, trap, timeout, its own error).
    Plugin(String),
    /// The decision breaks the rules; nothing is deleted.
    Invalid(String),
}

impl std::fmt::Display for DecideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plugin(m) => write!(f, "retention policy failed: {m}"),
            Self::Invalid(m) => write!(f, "retention decision rejected: {m}"),
        }
    }
}

/// What a policy sees as the topic configuration: every effective entry, then each
/// `retention.policy.params.<k>` again as `<k>` (policies take the last occurrence of a key).
pub(crate) fn policy_config(config: &TopicConfig) -> Vec<(String, String)> {
    let entries = config.entries();
    let mut out: Vec<(String, String)> = entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(entries.iter().filter_map(|(k, v)| {
        k.strip_prefix(PARAMS_PREFIX)
            .map(|k| (k.to_owned(), v.clone()))
    }));
    out
}

/// The one mapping of storage's segment descriptor to the plugin contract's.
fn plugin_segment(s: &SegmentInfo) -> distlog_plugin_host::SegmentInfo {
    distlog_plugin_host::SegmentInfo {
        base_offset: s.base_offset,
        last_offset: s.last_offset,
        size_bytes: s.size_bytes,
        first_timestamp: s.first_timestamp,
        max_timestamp: s.max_timestamp,
        record_count: s.record_count,
        active: s.active,
    }
}

/// Decides which segments of one partition to delete (base offsets, oldest first).
/// Cost: one or two plugin calls (about a microsecond each plus the policy's work), or none
/// for the native default.
pub(crate) fn decide(
    host: Option<&PluginHost>,
    config: &TopicConfig,
    topic: &str,
    partition: u32,
    segments: &[SegmentInfo],
    now_ms: i64,
) -> Result<Vec<u64>, DecideError> {
    let info = PartitionInfo {
        topic: topic.to_owned(),
        partition,
        config: policy_config(config),
    };
    let policy = config.retention_plugin();
    let plugins: &[&str] = match &policy {
        None => &["retention-time", "retention-size"],
        Some(name) => std::slice::from_ref(name),
    };
    let decided = match host {
        Some(host) if policy.is_some() || plugins.iter().all(|p| host.info(p).is_some()) => {
            let descriptors: Vec<_> = segments.iter().map(plugin_segment).collect();
            let mut all = Vec::new();
            for name in plugins {
                let d = host
                    .select_deletions(name, &info, &descriptors, now_ms)
                    .map_err(|e| DecideError::Plugin(e.to_string()))?;
                for del in d {
                    tracing::debug!(topic, partition, policy = name, segment = del.base_offset, reason = %del.reason, "retention selects segment");
                    all.push(del.base_offset);
                }
            }
            // The default is the union of two prefixes: the longer one.
            all.sort_unstable();
            all.dedup();
            all
        }
        _ => match policy {
            None => native_default(config, segments, now_ms),
            Some(policy) => {
                return Err(DecideError::Plugin(format!(
                    "retention policy {policy:?} needs the plugin host, which is disabled"
                )));
            }
        },
    };
    validate(&decided, segments)?;
    Ok(decided)
}

/// Checks a decision: existing closed segments, each once, forming a prefix of the log.
pub(crate) fn validate(decision: &[u64], segments: &[SegmentInfo]) -> Result<(), DecideError> {
    let mut sorted = decision.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(DecideError::Invalid("a segment is named twice".into()));
    }
    for (i, base) in sorted.iter().enumerate() {
        let Some(seg) = segments.get(i) else {
            return Err(DecideError::Invalid(format!(
                "segment {base} does not exist"
            )));
        };
        if seg.base_offset != *base {
            return Err(DecideError::Invalid(format!(
                "segment {base} is not part of the log's oldest segments (expected {})",
                seg.base_offset
            )));
        }
        if seg.active {
            return Err(DecideError::Invalid(format!(
                "segment {base} is the active segment"
            )));
        }
    }
    Ok(())
}

/// Kafka's rules without plugins: the prefix of closed segments whose max timestamp is older
/// than `retention.ms`, extended while the partition keeps at least `retention.bytes` without
/// the next one.
pub(crate) fn native_default(
    config: &TopicConfig,
    segments: &[SegmentInfo],
    now_ms: i64,
) -> Vec<u64> {
    let (ms, bytes) = (config.retention_ms(), config.retention_bytes());
    let mut total: i64 = segments
        .iter()
        .map(|s| i64::try_from(s.size_bytes).unwrap_or(i64::MAX))
        .sum();
    let mut out = Vec::new();
    for s in segments.iter().take_while(|s| !s.active) {
        let expired = ms.is_some_and(|ms| s.max_timestamp < now_ms.saturating_sub(ms));
        let size = i64::try_from(s.size_bytes).unwrap_or(i64::MAX);
        let oversize = bytes.is_some_and(|bytes| total - size >= bytes);
        if !(expired || oversize) {
            break;
        }
        total -= size;
        out.push(s.base_offset);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn seg(base: u64, size: u64, max_ts: i64, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            last_offset: base + 9,
            size_bytes: size,
            first_timestamp: max_ts,
            max_timestamp: max_ts,
            record_count: 10,
            active,
        }
    }

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TopicConfig::resolve(&BTreeMap::new(), &map).expect("valid config")
    }

    #[test]
    fn validation_rejects_active_unknown_twice_and_holes() {
        let segs = [
            seg(0, 10, 1, false),
            seg(10, 10, 2, false),
            seg(20, 10, 3, true),
        ];
        assert!(validate(&[0, 10], &segs).is_ok());
        assert!(validate(&[], &segs).is_ok());
        for bad in [&[0, 10, 20][..], &[5], &[0, 0], &[10], &[0, 10, 30]] {
            assert!(validate(bad, &segs).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn native_default_applies_time_then_size() {
        let segs = [
            seg(0, 100, 10, false),
            seg(10, 100, 50, false),
            seg(20, 100, 90, true),
        ];
        let c = config(&[("retention.ms", "30")]);
        assert_eq!(native_default(&c, &segs, 60), vec![0]);
        let c = config(&[("retention.ms", "-1"), ("retention.bytes", "100")]);
        assert_eq!(native_default(&c, &segs, 60), vec![0, 10]);
        let c = config(&[("retention.ms", "-1"), ("retention.bytes", "-1")]);
        assert!(native_default(&c, &segs, 60).is_empty());
    }

    #[test]
    fn params_are_repeated_without_their_prefix() {
        let c = config(&[("retention.policy.params.max.segments", "2")]);
        let pairs = policy_config(&c);
        assert_eq!(
            pairs.last(),
            Some(&("max.segments".to_owned(), "2".to_owned()))
        );
    }
}
