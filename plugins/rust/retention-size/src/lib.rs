//! Size-based retention, as Kafka's `retention.bytes`: delete the oldest
//! closed segments while the partition would still hold at least
//! `retention.bytes` without them.
//!
//! - Setting: `retention.bytes` from the topic configuration, else the
//!   plugin's init parameter `retention.bytes`, else -1. `-1` means
//!   unlimited: nothing is deleted.
//! - The size counted is every segment's `size-bytes`, the active one
//!   included. A segment is deleted only if the total minus that segment is
//!   still >= `retention.bytes` (Kafka's rule): the partition never drops
//!   below the limit, so it may stay above it by less than one segment.
//! - Only a prefix of the log is deleted (oldest first); the active segment
//!   is never named.
//!
//! Cost: two passes over the segment descriptors.

use distlog_plugin_sdk::retention::{Deletion, SegmentInfo};
use distlog_plugin_sdk::{Params, effective_limit};

/// The configuration key, shared by the topic config and the init params.
pub const KEY: &str = "retention.bytes";

/// Validates init params: only `retention.bytes`, a non-negative integer or -1.
pub fn parse_params(pairs: &[(String, String)]) -> Result<Params, String> {
    let params = Params::parse(pairs, &[KEY])?;
    effective_limit(&[], &params, KEY, None)?;
    Ok(params)
}

/// Decides which segments to delete under `config` (the topic's
/// configuration) with `params` as defaults.
pub fn select(
    config: &[(String, String)],
    params: &Params,
    segments: &[SegmentInfo],
) -> Result<Vec<Deletion>, String> {
    let Some(limit) = effective_limit(config, params, KEY, None)? else {
        return Ok(Vec::new());
    };
    let total = segments
        .iter()
        .fold(0u64, |sum, s| sum.saturating_add(s.size_bytes));
    let mut remaining = total;
    let mut deletions = Vec::new();
    for segment in segments {
        if segment.active || remaining.saturating_sub(segment.size_bytes) < limit {
            break;
        }
        remaining -= segment.size_bytes.min(remaining);
        deletions.push(Deletion {
            base_offset: segment.base_offset,
            reason: format!(
                "partition holds {total} bytes, over retention.bytes={limit}; \
                 {remaining} bytes remain without this segment"
            ),
        });
    }
    Ok(deletions)
}

/// The component: init params kept per instance, decisions by [`select`].
#[cfg(target_arch = "wasm32")]
mod component {
    use std::sync::Mutex;

    use distlog_plugin_sdk::retention::{Deletion, PartitionInfo, Retention, SegmentInfo};
    use distlog_plugin_sdk::{Level, export_retention, log};

    static PARAMS: Mutex<Option<super::Params>> = Mutex::new(None);

    struct RetentionSize;

    impl Retention for RetentionSize {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            let params = super::parse_params(&params)?;
            log(
                Level::Debug,
                &format!(
                    "retention-size ready: default retention.bytes={}",
                    params.get(super::KEY).unwrap_or("-1")
                ),
            );
            *PARAMS.lock().map_err(|_| "poisoned state".to_string())? = Some(params);
            Ok(())
        }

        fn select_deletions(
            partition: PartitionInfo,
            segments: Vec<SegmentInfo>,
            _now_ms: i64,
        ) -> Result<Vec<Deletion>, String> {
            let params = PARAMS
                .lock()
                .map_err(|_| "poisoned state".to_string())?
                .clone()
                .unwrap_or_default();
            super::select(&partition.config, &params, &segments)
        }
    }

    export_retention!(RetentionSize);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, size: u64, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            last_offset: base + 9,
            size_bytes: size,
            first_timestamp: 0,
            max_timestamp: 0,
            record_count: 10,
            active,
        }
    }

    fn cfg(bytes: &str) -> Vec<(String, String)> {
        vec![(KEY.to_string(), bytes.to_string())]
    }

    #[test]
    fn keeps_at_least_the_limit() {
        let segments = [
            seg(0, 100, false),
            seg(10, 100, false),
            seg(20, 100, false),
            seg(30, 50, true),
        ];
        let params = parse_params(&[]).unwrap();
        let bases = |limit: &str| -> Vec<u64> {
            select(&cfg(limit), &params, &segments)
                .unwrap()
                .iter()
                .map(|d| d.base_offset)
                .collect()
        };
        assert_eq!(bases("350"), Vec::<u64>::new());
        assert_eq!(bases("250"), [0]);
        assert_eq!(bases("200"), [0]);
        assert_eq!(bases("150"), [0, 10]);
        assert_eq!(bases("0"), [0, 10, 20]);
        assert_eq!(bases("-1"), Vec::<u64>::new());
    }

    #[test]
    fn never_names_the_active_segment() {
        let segments = [seg(0, 1 << 40, true)];
        let params = parse_params(&cfg("0")).unwrap();
        assert!(select(&[], &params, &segments).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(parse_params(&cfg("big")).is_err());
        assert!(parse_params(&[("retention.ms".into(), "1".into())]).is_err());
        let params = parse_params(&[]).unwrap();
        assert!(select(&cfg("-3"), &params, &[]).is_err());
    }
}
