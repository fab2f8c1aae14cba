//! Compaction on the data path: the topic's key extractor plugin and the plugin host's codecs,
//! adapted to storage's [`KeyExtractor`] and [`PayloadCodec`], and the thresholds that decide
//! when a partition is worth cleaning.
//!
//! `compaction.key = key` (the default) uses the records' own keys natively (Kafka's rule,
//! no plugin call); any other value names a loaded compaction plugin, called once per batch.

use crate::config::TopicConfig;
use distlog_plugin_host::{Header, LogRecord, PluginDigest, PluginHost};
use distlog_storage::batch::RecordRef;
use distlog_storage::compaction::{
    CallerError, CleanableStats, CompactOptions, KeyExtractor, PayloadCodec, RecordKeys,
};
use distlog_storage::log::CodecEntry;

/// Keys from a compaction plugin: one call per batch.
pub(crate) struct PluginKeys<'a> {
    host: &'a PluginHost,
    name: &'a str,
}

impl KeyExtractor for PluginKeys<'_> {
    fn keys(&mut self, records: &[RecordRef<'_>]) -> Result<Vec<Option<Vec<u8>>>, CallerError> {
        let records: Vec<LogRecord> = records
            .iter()
            .map(|r| LogRecord {
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.to_vec(),
                    })
                    .collect(),
                timestamp: r.timestamp(),
            })
            .collect();
        Ok(self.host.extract_keys(self.name, &records)?)
    }
}

/// The key extractor a topic's `compaction.key` names. `Err` when it needs plugins and they
/// are disabled.
pub(crate) fn key_extractor<'a>(
    host: Option<&'a PluginHost>,
    config: &'a TopicConfig,
) -> Result<Box<dyn KeyExtractor + 'a>, String> {
    match config.compaction_plugin() {
        None => Ok(Box::new(RecordKeys)),
        Some(name) => match host {
            Some(host) => Ok(Box::new(PluginKeys { host, name })),
            None => Err(format!(
                "compaction.key {name:?} needs the plugin host, which is disabled"
            )),
        },
    }
}

/// Decompression for the cleaner by the exact codec version a batch names.
pub(crate) struct PluginCodecs<'a>(pub(crate) Option<&'a PluginHost>);

impl PayloadCodec for PluginCodecs<'_> {
    fn decompress(
        &mut self,
        codec: &CodecEntry,
        payload: &[u8],
        uncompressed_size: u32,
    ) -> Result<Vec<u8>, CallerError> {
        let host = self
            .0
            .ok_or("a compressed batch needs the plugin host, which is disabled")?;
        Ok(host.decompress(&PluginDigest(codec.digest), payload, uncompressed_size)?)
    }
}

/// The options of one pass for this topic: `delete.retention.ms`, and the bound on the work.
pub(crate) fn options(config: &TopicConfig, max_dirty_bytes: u64) -> CompactOptions {
    let mut o = CompactOptions::default();
    o.delete_retention_ms = config.delete_retention_ms();
    o.max_dirty_bytes = max_dirty_bytes.max(1);
    o
}

/// Whether a partition is worth cleaning: some inactive bytes are dirty, their share is at
/// least `min.cleanable.dirty.ratio`, and the newest inactive segment is older than
/// `min.compaction.lag.ms` (the lag is checked per partition, not per record: a pass never
/// starts while its last closed segment is younger than the lag).
pub(crate) fn worth_cleaning(
    config: &TopicConfig,
    stats: &CleanableStats,
    newest_inactive_max_ts: Option<i64>,
    now_ms: i64,
) -> bool {
    let ratio = config.min_cleanable_dirty_ratio();
    let lag = i64::try_from(config.min_compaction_lag_ms()).unwrap_or(i64::MAX);
    let old_enough = newest_inactive_max_ts.is_none_or(|ts| ts <= now_ms.saturating_sub(lag));
    stats.dirty_bytes > 0 && stats.dirty_ratio >= ratio && old_enough
}
