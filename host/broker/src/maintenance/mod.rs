//! Maintenance: retention passes, compaction passes, and the thread that runs both on an
//! interval.
//!
//! Each policy decides without IO and a pass carries the decision out: [`retention`] turns
//! segment descriptors into the segments to delete, which storage deletes crash-safely;
//! [`compaction`] decides whether a partition is worth cleaning and adapts the key extractor
//! and codecs to storage's cleaner, which rewrites the segments.
//!
//! Invariant: passes are synchronous and bounded: retention is a plugin call and a few
//! renames per partition; a compaction pass reads at most
//! [`BrokerConfig::cleaner_max_dirty_bytes`] of dirty segments per partition. Neither takes a
//! broker lock, so produce and fetch go on; storage keeps deleted or replaced segments
//! readable by fetches that already hold them. A plugin error changes nothing on disk.
//!
//! [`BrokerConfig::cleaner_max_dirty_bytes`]: crate::BrokerConfig::cleaner_max_dirty_bytes

pub(crate) mod compaction;
pub(crate) mod retention;

use crate::BrokerError;
use crate::topics::topic::Topic;
use compaction::PluginCodecs;
use distlog_plugin_host::PluginHost;
use parking_lot::{Condvar, Mutex};
use retention::DecideError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What one retention pass over every topic did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionSummary {
    /// Partitions whose policy ran.
    pub partitions: usize,
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of the deleted segments.
    pub bytes_deleted: u64,
    /// Decisions rejected as invalid (nothing deleted for those partitions).
    pub rejected: usize,
    /// Policy or deletion failures.
    pub errors: usize,
}

/// What one compaction pass over every `compact` topic did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanerSummary {
    /// Partitions cleaned.
    pub partitions_cleaned: usize,
    /// Partitions skipped (below the dirty ratio or within the compaction lag).
    pub partitions_skipped: usize,
    /// Bytes of source segments read.
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records dropped (superseded by a later record with the same key, or expired tombstones).
    pub records_dropped: u64,
    /// Passes that failed (a plugin error, IO); nothing of the failed group changed on disk.
    pub errors: usize,
}

/// The maintenance thread: wakes every interval (or when stopped) and runs a pass. The pass
/// closure returns `false` to end the thread (the broker is gone or closed).
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Maintenance {
    /// Starts the thread; an interval of zero starts nothing (passes run only when called).
    pub(crate) fn start(&self, interval: Duration, pass: impl Fn() -> bool + Send + 'static) {
        if interval.is_zero() {
            return;
        }
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("distlog-maintenance".into())
            .spawn(move || {
                loop {
                    {
                        let mut stopped = stop.0.lock();
                        if !*stopped {
                            stop.1.wait_for(&mut stopped, interval);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    if !pass() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(h) => *self.thread.lock() = Some(h),
            Err(e) => tracing::error!(error = %e, "could not start the maintenance thread"),
        }
    }

    /// Stops the thread and waits for a pass in progress to finish.
    pub(crate) fn stop(&self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.thread.lock().take()
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }

    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.thread.lock().is_some()
    }
}

/// One retention pass over `topics` (see `Broker::run_retention_once`).
pub(crate) fn run_retention(host: Option<&PluginHost>, topics: &[Arc<Topic>]) -> RetentionSummary {
    let mut sum = RetentionSummary::default();
    for t in topics {
        let config = t.config();
        if !config.cleanup_policy().delete {
            continue;
        }
        for p in &t.partitions {
            let Ok(log) = p.log() else { continue };
            sum.partitions += 1;
            let segments = log.segments();
            let decided =
                retention::decide(host, &config, &t.name, p.index, &segments, crate::now_ms());
            let chosen = match decided {
                Ok(c) if c.is_empty() => continue,
                Ok(c) => c,
                Err(e) => {
                    let kind = match e {
                        DecideError::Invalid(_) => {
                            sum.rejected += 1;
                            "rejected"
                        }
                        DecideError::Plugin(_) => {
                            sum.errors += 1;
                            "error"
                        }
                    };
                    metrics::counter!("distlog_retention_failures_total",
                        "topic" => t.name.clone(), "kind" => kind)
                    .increment(1);
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention pass skipped");
                    continue;
                }
            };
            match log.delete_segments(&chosen) {
                Ok(deleted) => {
                    let bytes: u64 = segments
                        .iter()
                        .filter(|s| deleted.contains(&s.base_offset))
                        .map(|s| s.size_bytes)
                        .sum();
                    sum.segments_deleted += deleted.len();
                    sum.bytes_deleted += bytes;
                    metrics::counter!("distlog_retention_segments_deleted_total", "topic" => t.name.clone())
                        .increment(deleted.len() as u64);
                    metrics::counter!("distlog_retention_deleted_bytes_total", "topic" => t.name.clone())
                        .increment(bytes);
                    tracing::info!(topic = %t.name, partition = p.index, segments = deleted.len(), bytes,
                        log_start_offset = log.log_start_offset(), "retention deleted segments");
                }
                Err(e) => {
                    sum.errors += 1;
                    metrics::counter!("distlog_retention_failures_total",
                        "topic" => t.name.clone(), "kind" => "delete")
                    .increment(1);
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention deletion failed");
                }
            }
        }
    }
    sum
}

/// One compaction pass over the `compact` topics of `topics` (see
/// `Broker::run_compaction_once`); stops early once `closed` holds.
pub(crate) fn run_compaction(
    host: Option<&PluginHost>,
    topics: &[Arc<Topic>],
    max_dirty_bytes: u64,
    closed: impl Fn() -> bool,
) -> CleanerSummary {
    let mut sum = CleanerSummary::default();
    for t in topics {
        if !t.config().cleanup_policy().compact {
            continue;
        }
        for p in &t.partitions {
            if closed() {
                return sum;
            }
            match clean_partition(host, t, p.index, max_dirty_bytes, false) {
                Ok(None) => sum.partitions_skipped += 1,
                Ok(Some(r)) => {
                    sum.partitions_cleaned += 1;
                    sum.bytes_read += r.bytes_read;
                    sum.bytes_written += r.bytes_written;
                    sum.records_dropped += r.records_superseded + r.tombstones_dropped;
                }
                Err(_) => sum.errors += 1,
            }
        }
    }
    sum
}

/// Cleans one partition now, whatever its dirty ratio (see `Broker::compact_partition`).
pub(crate) fn compact_partition(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    max_dirty_bytes: u64,
) -> Result<Option<distlog_storage::compaction::CompactReport>, BrokerError> {
    t.partition(partition)?;
    if !t.config().cleanup_policy().compact {
        return Ok(None);
    }
    clean_partition(host, t, partition, max_dirty_bytes, true)
}

fn clean_partition(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    max_dirty_bytes: u64,
    force: bool,
) -> Result<Option<distlog_storage::compaction::CompactReport>, BrokerError> {
    let p = t.partition(partition)?;
    let log = p.log()?;
    let config = t.config();
    if !force {
        let segments = log.segments();
        let newest_inactive = segments
            .iter()
            .rev()
            .find(|s| !s.active)
            .map(|s| s.max_timestamp);
        if !compaction::worth_cleaning(
            &config,
            &log.cleanable_stats(),
            newest_inactive,
            crate::now_ms(),
        ) {
            return Ok(None);
        }
    }
    let fail = |message: String| {
        metrics::counter!("distlog_cleaner_errors_total", "topic" => t.name.clone()).increment(1);
        tracing::warn!(topic = %t.name, partition, error = %message, "compaction pass failed; nothing changed");
        BrokerError::FailedPrecondition(format!(
            "compaction of {}/{partition} failed: {message}",
            t.name
        ))
    };
    let mut keys = compaction::key_extractor(host, &config).map_err(fail)?;
    let options = compaction::options(&config, max_dirty_bytes);
    let report = log
        .compact(&options, keys.as_mut(), &mut PluginCodecs(host))
        .map_err(|e| fail(e.to_string()))?;
    metrics::counter!("distlog_cleaner_passes_total", "topic" => t.name.clone()).increment(1);
    metrics::counter!("distlog_cleaner_read_bytes_total", "topic" => t.name.clone())
        .increment(report.bytes_read);
    metrics::counter!("distlog_cleaner_written_bytes_total", "topic" => t.name.clone())
        .increment(report.bytes_written);
    tracing::info!(topic = %t.name, partition, segments = report.segments_cleaned,
        bytes_read = report.bytes_read, bytes_written = report.bytes_written,
        dropped = report.records_superseded + report.tombstones_dropped, "compaction pass done");
    Ok(Some(report))
}

/// Rolls a partition's active segment now if it holds data (see `Broker::roll_partition`).
pub(crate) fn roll_partition(t: &Topic, partition: u32) -> Result<bool, BrokerError> {
    let log = t.partition(partition)?.log()?;
    log.roll().map_err(|e| BrokerError::Storage {
        topic: t.name.clone(),
        partition,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    //! The passes without plugins (native time/size retention, native record keys) and the
    //! maintenance thread. The plugin paths are covered end to end in `tests/all/policies.rs`.
    use crate::now_ms;
    use crate::{Broker, BrokerConfig, BrokerError, ProduceRecord};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn open(dir: &std::path::Path, interval_ms: u64) -> Broker {
        let mut c = BrokerConfig::new(dir);
        c.plugins.enabled = false;
        c.retention_check_interval_ms = interval_ms;
        Broker::open(c).expect("open")
    }

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn rec(key: &str, value: Option<&str>, ts: i64) -> ProduceRecord {
        ProduceRecord {
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            timestamp_ms: Some(ts),
            ..ProduceRecord::default()
        }
    }

    /// Produces one record per segment: `n` closed segments and an empty active one.
    fn segments(b: &Broker, topic: &str, n: usize, ts: impl Fn(usize) -> i64) {
        for i in 0..n {
            b.produce(topic, Some(0), vec![rec("k", Some("v"), ts(i))])
                .expect("produce");
            assert!(b.roll_partition(topic, 0).expect("roll"));
        }
    }

    #[test]
    fn native_retention_deletes_the_expired_prefix_and_never_the_active_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = open(dir.path(), 0);
        b.create_topic("t", 1, config(&[("retention.ms", "3600000")]))
            .expect("create");
        let now = now_ms();
        // Three old segments, then two recent ones.
        segments(&b, "t", 5, |i| if i < 3 { 1_000 } else { now });
        let s = b.run_retention_once();
        assert_eq!((s.segments_deleted, s.rejected, s.errors), (3, 0, 0));
        let p = &b.describe_topic("t").expect("describe").partitions[0];
        assert_eq!(p.log_start_offset, 3);
        assert_eq!(p.segments.len(), 3);
        // Everything expired: the closed segments go, the active one stays.
        b.alter_topic_config("t", config(&[("retention.ms", "0")]), vec![], false)
            .expect("alter");
        assert_eq!(b.run_retention_once().segments_deleted, 2);
        let p = &b.describe_topic("t").expect("describe").partitions[0];
        assert_eq!((p.log_start_offset, p.segments.len()), (5, 1));
        assert!(p.segments[0].active);
        b.close().expect("close");
    }

    #[test]
    fn compact_topics_are_cleaned_and_delete_only_topics_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = open(dir.path(), 0);
        b.create_topic(
            "c",
            1,
            config(&[("cleanup.policy", "compact"), ("retention.ms", "0")]),
        )
        .expect("create");
        b.create_topic("d", 1, config(&[("retention.ms", "-1")]))
            .expect("create");
        for t in ["c", "d"] {
            segments(&b, t, 3, |i| 1_000 + i as i64);
        }
        // A compact-only topic ignores retention.ms=0.
        assert_eq!(b.run_retention_once().segments_deleted, 0);
        let s = b.run_compaction_once();
        assert_eq!((s.partitions_cleaned, s.errors), (1, 0), "{s:?}");
        let r = b.fetch("c", 0, 0, 1 << 20).expect("fetch");
        let offsets: Vec<u64> = r.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2], "only the latest record of key k stays");
        let d = &b.describe_topic("d").expect("describe").partitions[0];
        assert_eq!((d.log_start_offset, d.segments.len()), (0, 4));
        assert!(b.compact_partition("d", 0).expect("not compact").is_none());
        b.close().expect("close");
    }

    #[test]
    fn a_codec_without_plugins_stores_uncompressed_and_fetches_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = open(dir.path(), 0);
        // Without plugins, a topic cannot be created naming a codec...
        let refused = b.create_topic("z", 1, config(&[("compression", "codec-lz4")]));
        assert!(
            matches!(refused, Err(BrokerError::UnusablePlugin(_))),
            "{refused:?}"
        );
        // ...but one created by a broker that had them (here: its topic.json edited) opens,
        // and its produces store uncompressed.
        b.create_topic("z", 1, BTreeMap::new()).expect("create");
        b.close().expect("close");
        drop(b);
        let meta = dir.path().join("topics/z/topic.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta).expect("read")).expect("json");
        json["config"]["compression"] = "codec-lz4".into();
        std::fs::write(&meta, serde_json::to_vec(&json).expect("json")).expect("write");
        let b = open(dir.path(), 0);
        b.produce("z", Some(0), vec![rec("k", Some(&"x".repeat(1000)), 1)])
            .expect("produce never fails because of a codec");
        let raw = b.fetch_raw("z", 0, 0, 1 << 20).expect("raw");
        assert_eq!(raw.batches.len(), 1);
        assert_eq!(raw.batches[0].codec, None);
        let r = b.fetch("z", 0, 0, 1 << 20).expect("fetch");
        assert_eq!(
            r.records[0].value.as_deref(),
            Some("x".repeat(1000).as_bytes())
        );
        b.close().expect("close");
    }

    #[test]
    fn the_maintenance_thread_applies_retention_and_stops_at_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = open(dir.path(), 5);
        b.create_topic("t", 1, config(&[("retention.ms", "0")]))
            .expect("create");
        segments(&b, "t", 2, |_| 1_000);
        // Wait (bounded) for a pass of the thread to advance the log start.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while b.describe_topic("t").expect("describe").partitions[0].log_start_offset < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no retention pass ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        b.close().expect("close");
        assert!(!b.maintenance_running(), "joined at close");
    }
}
