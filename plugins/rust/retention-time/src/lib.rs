//! Time-based retention, as Kafka's `retention.ms`: delete the oldest closed
//! segments whose newest record is older than `now - retention.ms`.
//!
//! - Setting: `retention.ms` from the topic configuration, else the plugin's
//!   init parameter `retention.ms`, else 604800000 (7 days, Kafka's default).
//!   `-1` means unlimited: nothing is deleted.
//! - Only a prefix of the log is deleted (oldest first, stopping at the first
//!   segment that must stay), because the log start offset only moves
//!   forward; a segment with a future timestamp therefore protects the ones
//!   after it, as in Kafka.
//! - A closed segment without records (max timestamp -1) holds nothing to
//!   retain and is deleted when it lies in that prefix.
//! - The active segment is never named, whatever its timestamps.
//!
//! Cost: one pass over the segment descriptors.

use distlog_plugin_sdk::retention::{Deletion, SegmentInfo};
use distlog_plugin_sdk::{Params, effective_limit};

/// The configuration key, shared by the topic config and the init params.
pub const KEY: &str = "retention.ms";
/// Kafka's default `retention.ms`: 7 days.
pub const DEFAULT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Validates init params: only `retention.ms`, a non-negative integer or -1.
pub fn parse_params(pairs: &[(String, String)]) -> Result<Params, String> {
    let params = Params::parse(pairs, &[KEY])?;
    effective_limit(&[], &params, KEY, Some(DEFAULT_MS))?;
    Ok(params)
}

/// Decides which segments to delete at `now_ms` under `config` (the topic's
/// configuration) with `params` as defaults.
pub fn select(
    config: &[(String, String)],
    params: &Params,
    segments: &[SegmentInfo],
    now_ms: i64,
) -> Result<Vec<Deletion>, String> {
    let Some(retention_ms) = effective_limit(config, params, KEY, Some(DEFAULT_MS))? else {
        return Ok(Vec::new());
    };
    let cutoff = now_ms.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
    let mut deletions = Vec::new();
    for segment in segments {
        if segment.active {
            break;
        }
        let reason = if segment.record_count == 0 || segment.max_timestamp < 0 {
            format!(
                "empty closed segment before the retention cutoff (retention.ms={retention_ms})"
            )
        } else if segment.max_timestamp < cutoff {
            format!(
                "newest record at {} ms is older than retention.ms={retention_ms} (cutoff {cutoff} ms)",
                segment.max_timestamp
            )
        } else {
            break;
        };
        deletions.push(Deletion {
            base_offset: segment.base_offset,
            reason,
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

    struct RetentionTime;

    impl Retention for RetentionTime {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            let params = super::parse_params(&params)?;
            log(
                Level::Debug,
                &format!(
                    "retention-time ready: default retention.ms={}",
                    params.get(super::KEY).unwrap_or("604800000")
                ),
            );
            *PARAMS.lock().map_err(|_| "poisoned state".to_string())? = Some(params);
            Ok(())
        }

        fn select_deletions(
            partition: PartitionInfo,
            segments: Vec<SegmentInfo>,
            now_ms: i64,
        ) -> Result<Vec<Deletion>, String> {
            let params = PARAMS
                .lock()
                .map_err(|_| "poisoned state".to_string())?
                .clone()
                .unwrap_or_default();
            super::select(&partition.config, &params, &segments, now_ms)
        }
    }

    export_retention!(RetentionTime);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, max_ts: i64, count: u64, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            last_offset: base + count.max(1) - 1,
            size_bytes: 100,
            first_timestamp: max_ts,
            max_timestamp: max_ts,
            record_count: count,
            active,
        }
    }

    fn cfg(ms: &str) -> Vec<(String, String)> {
        vec![(KEY.to_string(), ms.to_string())]
    }

    #[test]
    fn deletes_expired_prefix_only() {
        let segments = [
            seg(0, 100, 10, false),
            seg(10, 200, 10, false),
            seg(20, 900, 10, false),
            seg(30, 150, 10, false),
            seg(40, 10, 10, true),
        ];
        let params = parse_params(&[]).unwrap();
        let chosen = select(&cfg("500"), &params, &segments, 1000).unwrap();
        let bases: Vec<u64> = chosen.iter().map(|d| d.base_offset).collect();
        assert_eq!(bases, [0, 10]);
    }

    #[test]
    fn never_names_the_active_segment() {
        let segments = [seg(0, 1, 10, true)];
        let params = parse_params(&[]).unwrap();
        assert!(
            select(&cfg("0"), &params, &segments, i64::MAX)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unlimited_and_defaults() {
        let segments = [seg(0, 0, 1, false), seg(1, 0, 0, true)];
        let params = parse_params(&cfg("-1")).unwrap();
        assert!(
            select(&[], &params, &segments, i64::MAX)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            select(&cfg("10"), &params, &segments, 100).unwrap().len(),
            1
        );
        let default = parse_params(&[]).unwrap();
        let week = i64::try_from(DEFAULT_MS).unwrap();
        assert!(select(&[], &default, &segments, week).unwrap().is_empty());
        assert_eq!(select(&[], &default, &segments, week + 1).unwrap().len(), 1);
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(parse_params(&cfg("soon")).is_err());
        assert!(parse_params(&[("retention.bytes".into(), "1".into())]).is_err());
        let params = parse_params(&[]).unwrap();
        assert!(select(&cfg("-5"), &params, &[], 0).is_err());
    }
}
