//! The broker: a registry of topics, each a set of partition logs, plus group offsets.

pub(crate) mod maintenance;

use crate::config::{BrokerConfig, TopicConfig};
use crate::groups::{CommittedOffset, GroupStore};
use crate::names::{validate_group_name, validate_topic_name};
use crate::partitioner::partition_for_key;
use crate::plugins::{PluginDescription, Plugins};
use crate::topic::{META_FILE, Partition, Topic, TopicMeta, open_log, sync_dir};
use crate::{BrokerError, SegmentInfo};
use bytes::Bytes;
use distlog_plugin_host::{PluginHost, PluginKind};
use distlog_storage::batch::{BatchBuilder, Header, Record, RecordIter, TimestampType};
use distlog_storage::{AppendError, AppendInfo, CrcCheck, Log, ReadError};
use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::watch;

/// Largest client metadata stored with a committed offset.
pub const MAX_COMMIT_METADATA: usize = 4096;

/// A record to append. `None` key or value is null (distinct from empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Create time (ms since the Unix epoch); `None` takes the broker's clock.
    pub timestamp_ms: Option<i64>,
}

impl ProduceRecord {
    /// Key, value and header bytes (what `max.message.bytes` and request limits count).
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len())
                .sum::<usize>()
    }
}

/// A record read back, with its offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset in the partition.
    pub offset: u64,
    /// Timestamp (create time or log-append time, per the topic).
    pub timestamp_ms: i64,
    /// Record key (a slice of the fetched buffer, not a copy).
    pub key: Option<Bytes>,
    /// Record value (a slice of the fetched buffer, not a copy).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// One batch appended by a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAppend {
    /// Partition index.
    pub partition: u32,
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Records in the batch.
    pub record_count: u32,
}

/// What a produce assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceResult {
    /// One entry per partition written, in partition order.
    pub partitions: Vec<PartitionAppend>,
    /// Per record, in request order: its offset.
    pub offsets: Vec<u64>,
    /// Per record, in request order: its partition.
    pub record_partitions: Vec<u32>,
    /// Encoded bytes appended (batch headers included).
    pub bytes: usize,
}

/// Records read by a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResult {
    /// Records at or after the requested offset, in offset order.
    pub records: Vec<StoredRecord>,
    /// Log start offset at the time of the read.
    pub log_start_offset: u64,
    /// Log end offset at the time of the read.
    pub log_end_offset: u64,
    /// Offset to fetch next.
    pub next_offset: u64,
    /// Stored bytes read (whole batches).
    pub bytes: usize,
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// A partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition index.
    pub partition: u32,
    /// First readable offset.
    pub log_start_offset: u64,
    /// Next offset to be assigned.
    pub log_end_offset: u64,
    /// Bytes in every segment's record file.
    pub size_bytes: u64,
    /// Segments, oldest first; the last is active.
    pub segments: Vec<SegmentInfo>,
}

/// A topic's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Effective configuration.
    pub config: BTreeMap<String, String>,
    /// Partitions, by index.
    pub partitions: Vec<PartitionDescription>,
}

/// A position to commit for a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Offset of the next record to consume.
    pub offset: u64,
    /// Client metadata, at most [`MAX_COMMIT_METADATA`] bytes.
    pub metadata: String,
}

/// Which offset [`Broker::list_offset`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetQuery {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first record with a timestamp at or after this (ms).
    Timestamp(i64),
}

/// The broker. Cheap to clone (an `Arc`); `Send + Sync`.
///
/// Every method is blocking (file IO, fsync): call it from a blocking context
/// (`tokio::task::spawn_blocking`), never on an async reactor thread. The exceptions are
/// [`watch_end`](Self::watch_end) and the listing methods, which only take locks.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation, deletion and configuration changes.
    admin: Mutex<()>,
    groups: GroupStore,
    closed: AtomicBool,
    /// Unique suffix for directories moved to trash.
    trash_seq: AtomicU64,
    /// `None` when plugins are disabled.
    plugins: Option<Plugins>,
    /// Background retention and compaction.
    maintenance: maintenance::Maintenance,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Broker {
    /// Opens the broker in `config.data_dir`: recovers every topic's partition logs and the
    /// group offsets, and finishes interrupted topic creations and deletions.
    /// Cost: one log open (checkpoint read, tail validation) per partition.
    pub fn open(config: BrokerConfig) -> Result<Self, BrokerError> {
        if config.default_partitions == 0 || config.default_partitions > config.max_partitions {
            return Err(BrokerError::InvalidPartitionCount {
                count: config.default_partitions,
                max: config.max_partitions,
            });
        }
        // Validate broker-wide defaults once.
        TopicConfig::resolve(&config.topic_defaults, &BTreeMap::new())?;
        let root = &config.data_dir;
        for sub in ["topics", "staging", "trash"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| BrokerError::io("create", &d, e))?;
        }
        // Half-created topics never became visible; half-deleted ones were already gone.
        for sub in ["staging", "trash"] {
            clear_dir(&root.join(sub))?;
        }
        let groups = GroupStore::open(&root.join("groups"))?;
        let plugins = if config.plugins.enabled {
            Some(Plugins::open(&config.plugins, root)?)
        } else {
            None
        };
        let mut topics = BTreeMap::new();
        let topics_dir = root.join("topics");
        let entries =
            std::fs::read_dir(&topics_dir).map_err(|e| BrokerError::io("list", &topics_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BrokerError::io("list", &topics_dir, e))?;
            let dir = entry.path();
            if !dir.join(META_FILE).exists() {
                tracing::warn!(dir = %dir.display(), "ignoring topic directory without topic.json");
                continue;
            }
            let meta = TopicMeta::read(&dir)?;
            let topic = Topic::open(dir, meta, &config.topic_defaults, &config)?;
            tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "opened topic");
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        let broker = Self {
            inner: Arc::new(Inner {
                config,
                topics: RwLock::new(topics),
                admin: Mutex::new(()),
                groups,
                closed: AtomicBool::new(false),
                trash_seq: AtomicU64::new(0),
                plugins,
                maintenance: maintenance::Maintenance::default(),
            }),
        };
        broker.pin_stored_codecs();
        broker.start_maintenance();
        Ok(broker)
    }

    /// The configuration the broker was opened with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    fn check_open(&self) -> Result<(), BrokerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(BrokerError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.check_open()?;
        validate_topic_name(name)?;
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))
    }

    /// Creates a topic with `partitions` partitions (0: the broker's default) and the given
    /// configuration entries. The topic is built in a staging directory and renamed into
    /// place, so a crash never leaves a half-created topic. Cost: one log creation per
    /// partition and a few fsyncs.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: BTreeMap<String, String>,
    ) -> Result<TopicDescription, BrokerError> {
        self.check_open()?;
        validate_topic_name(name)?;
        let cfg = &self.inner.config;
        let partitions = if partitions == 0 {
            cfg.default_partitions
        } else {
            partitions
        };
        if partitions > cfg.max_partitions {
            return Err(BrokerError::InvalidPartitionCount {
                count: partitions,
                max: cfg.max_partitions,
            });
        }
        let resolved = TopicConfig::resolve(&cfg.topic_defaults, &config)?;
        // Under the admin lock, which unloading a plugin takes too: what is checked here stays
        // loaded until the topic exists (and then the topic keeps it loaded).
        let _admin = self.inner.admin.lock();
        resolved.check_plugins(self.plugin_host(), |_| true)?;
        if self.inner.topics.read().contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_owned()));
        }
        let staging = cfg.data_dir.join("staging").join(name);
        let target = cfg.data_dir.join("topics").join(name);
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| BrokerError::io("create", &staging, e))?;
        // The partition directories stay empty: an empty directory is an empty partition,
        // whose log the open below creates in place. So each log is created once, and the
        // only fsyncs here are topic.json's two (the second, of the staging directory, also
        // makes the partition directories durable) and one of `topics/` after the rename.
        for p in 0..partitions {
            let d = staging.join(p.to_string());
            std::fs::create_dir(&d).map_err(|e| BrokerError::io("create", &d, e))?;
        }
        let meta = TopicMeta::new(name, partitions, now_ms(), config);
        meta.write(&staging)?;
        std::fs::rename(&staging, &target).map_err(|e| BrokerError::io("rename", &target, e))?;
        let topics_dir = cfg.data_dir.join("topics");
        sync_dir(&topics_dir).map_err(|e| BrokerError::io("sync", &topics_dir, e))?;
        let topic = match Topic::open(target.clone(), meta, &cfg.topic_defaults, cfg) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                // Nothing was visible yet: take the directory back out (a crash here leaves
                // a topic of empty partitions, which the next open completes).
                self.discard_dir(&target);
                return Err(e);
            }
        };
        self.inner
            .topics
            .write()
            .insert(name.to_owned(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(describe(&topic))
    }

    /// A fresh name in the trash directory for something called `label`.
    fn trash_path(&self, label: &str) -> std::path::PathBuf {
        let seq = self.inner.trash_seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .config
            .data_dir
            .join("trash")
            .join(format!("{label}.{}.{seq}", now_ms()))
    }

    /// Moves `dir` to the trash and removes it, logging failures (it is removed at the next
    /// open otherwise).
    fn discard_dir(&self, dir: &std::path::Path) {
        let trash = self.trash_path("discarded");
        let moved = std::fs::rename(dir, &trash).and_then(|()| {
            sync_dir(dir.parent().unwrap_or(dir))?;
            std::fs::remove_dir_all(&trash)
        });
        if let Err(e) = moved {
            tracing::warn!(dir = %dir.display(), error = %e, "discarding a half-created topic failed");
        }
    }

    /// Deletes a topic and its data. The topic disappears atomically (its directory is renamed
    /// into the trash, then removed); subscribers and long polls on it are woken and get
    /// `TopicNotFound`.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        self.check_open()?;
        validate_topic_name(name)?;
        let _admin = self.inner.admin.lock();
        let topic = self
            .inner
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        if let Err(e) = topic.close() {
            tracing::warn!(topic = name, error = %e, "closing deleted topic's logs failed");
        }
        let trash = self.trash_path(name);
        std::fs::rename(&topic.dir, &trash).map_err(|e| BrokerError::io("rename", &trash, e))?;
        // Its batches are gone: the codec versions they pinned may be unloaded again.
        self.unpin_codecs(&topic);
        // And the positions groups committed in it mean nothing for a later topic of that name.
        if let Err(e) = self.inner.groups.forget_topic(name) {
            tracing::warn!(topic = name, error = %e, "forgetting deleted topic's group offsets failed");
        }
        let topics_dir = self.inner.config.data_dir.join("topics");
        sync_dir(&topics_dir).map_err(|e| BrokerError::io("sync", &topics_dir, e))?;
        for p in &topic.partitions {
            // Wake waiters: their next read finds the topic gone.
            p.end.send_modify(|_| {});
        }
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(dir = %trash.display(), error = %e, "removing deleted topic's files failed; retried at next start");
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Every topic, sorted by name. Cost: a read lock, no IO.
    pub fn list_topics(&self) -> Vec<TopicSummary> {
        self.inner
            .topics
            .read()
            .values()
            .map(|t| TopicSummary {
                name: t.name.clone(),
                partitions: t.partition_count(),
            })
            .collect()
    }

    /// Describes a topic: configuration, and per partition offsets and segments.
    /// Cost: no IO (segment descriptors are in memory).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription, BrokerError> {
        Ok(describe(&*self.topic(name)?))
    }

    /// The number of partitions of a topic. Cost: a read lock.
    pub fn partition_count(&self, name: &str) -> Result<u32, BrokerError> {
        Ok(self.topic(name)?.partition_count())
    }

    /// The effective configuration of a topic.
    pub fn topic_config(&self, name: &str) -> Result<Arc<TopicConfig>, BrokerError> {
        Ok(self.topic(name)?.config())
    }

    /// Changes a topic's configuration: sets `set`, resets `reset` to the defaults. Every entry
    /// is validated first; nothing changes unless all are valid. With `validate_only`, returns
    /// what the configuration would be. Storage settings (`segment.*`, `flush.*`) take effect
    /// by reopening the partition logs (appends in flight may get `ShuttingDown` and retry).
    pub fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        reset: Vec<String>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, BrokerError> {
        let topic = self.topic(name)?;
        let cfg = &self.inner.config;
        for key in &reset {
            if !crate::config::TOPIC_CONFIG_KEYS
                .iter()
                .any(|(k, _, _)| k == key)
                && !crate::config::PARAM_PREFIXES
                    .iter()
                    .any(|p| key.starts_with(p))
            {
                return Err(BrokerError::InvalidConfig {
                    key: key.clone(),
                    reason: "unknown configuration key".into(),
                });
            }
        }
        let _admin = self.inner.admin.lock();
        let mut overrides = topic.overrides.read().clone();
        for key in &reset {
            overrides.remove(key);
        }
        let named: Vec<String> = set.keys().cloned().collect();
        overrides.extend(set);
        let new_config = TopicConfig::resolve(&cfg.topic_defaults, &overrides)?;
        let old = topic.config();
        // Only the plugin entries this call sets or changes: a topic whose codec failed to
        // load at start can still have its other settings altered.
        new_config.check_plugins(self.plugin_host(), |k| {
            named.iter().any(|n| n == k) || old.get(k) != new_config.get(k)
        })?;
        if validate_only {
            return Ok(new_config.entries().clone());
        }
        let meta = TopicMeta::new(
            &topic.name,
            topic.partition_count(),
            topic.created_at_ms,
            overrides.clone(),
        );
        meta.write(&topic.dir)?;
        if old.storage_differs(&new_config) {
            let log_config = new_config.log_config(cfg);
            for p in &topic.partitions {
                reopen(&topic.name, p, log_config.clone())?;
            }
        }
        *topic.overrides.write() = overrides;
        let entries = new_config.entries().clone();
        *topic.config.write() = Arc::new(new_config);
        tracing::info!(topic = name, "altered topic configuration");
        Ok(entries)
    }

    /// Appends `records` to `topic`: all to `partition` when given, otherwise each keyed record
    /// to `murmur2(key) % partitions` and the unkeyed ones to one partition chosen round-robin.
    /// Records for one partition become one batch. Every batch is built and checked against
    /// the topic's `max.message.bytes` before any is appended. Returns once each batch is
    /// durable per the topic's `flush.policy`.
    /// Cost: one batch encoding (a copy of the records) and one append per partition touched.
    pub fn produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<ProduceRecord>,
    ) -> Result<ProduceResult, BrokerError> {
        let (result, pending) = self.produce_deferred(topic, partition, records)?;
        pending.wait()?;
        Ok(result)
    }

    /// [`produce`](Self::produce) without waiting for the topic's `flush.policy`: the records
    /// are written and readable on return; [`PendingSync::wait`] returns once they are as
    /// durable as the policy promises. Lets a pipelined producer write its next request while
    /// the previous one's fsync runs (the fsyncs are shared by group commit). Do not
    /// acknowledge the records before `wait` succeeds.
    pub fn produce_deferred(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<ProduceRecord>,
    ) -> Result<(ProduceResult, PendingSync), BrokerError> {
        let t = self.topic(topic)?;
        if records.is_empty() {
            return Err(BrokerError::Empty("the produce request's record list"));
        }
        let config = t.config();
        let max = config.max_message_bytes();
        let count = t.partition_count();
        if let Some(p) = partition {
            t.partition(p)?;
        }
        let unkeyed = t.next_unkeyed.fetch_add(1, Ordering::Relaxed) % count.max(1);
        let record_partitions: Vec<u32> = records
            .iter()
            .map(|r| match (partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, count),
                (None, None) => unkeyed,
            })
            .collect();
        let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, p) in record_partitions.iter().enumerate() {
            by_partition.entry(*p).or_default().push(i);
        }
        let now = now_ms();
        let ts_type = if config.log_append_time() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        let mut records: Vec<Option<ProduceRecord>> = records.into_iter().map(Some).collect();
        let mut batches = Vec::with_capacity(by_partition.len());
        for (&p, indices) in &by_partition {
            // Room for every record plus per-record framing: one allocation per batch.
            let estimate: usize = indices
                .iter()
                .filter_map(|&i| records.get(i).and_then(Option::as_ref))
                .map(|r| 32 + r.size() + 8 * r.headers.len())
                .sum();
            let mut builder =
                BatchBuilder::with_capacity(estimate.min(max + 1024)).timestamp_type(ts_type);
            for &i in indices {
                let Some(r) = records.get_mut(i).and_then(Option::take) else {
                    continue;
                };
                let size = r.size();
                if size > max {
                    return Err(BrokerError::RecordTooLarge {
                        index: i,
                        size,
                        max,
                    });
                }
                let record = Record {
                    timestamp: r.timestamp_ms.unwrap_or(now),
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                };
                builder
                    .push(&record)
                    .map_err(|e| BrokerError::InvalidArgument(format!("record {i}: {e}")))?;
                if builder.encoded_len() > max {
                    return Err(BrokerError::BatchTooLarge {
                        partition: p,
                        size: builder.encoded_len(),
                        max,
                    });
                }
            }
            let log = t.partition(p)?.log()?;
            let batch = crate::codec::encode(
                self.plugin_host(),
                &log,
                config.codec(),
                builder,
                &t.name,
                p,
            )?;
            batches.push((p, batch));
        }
        let mut result = ProduceResult {
            partitions: Vec::with_capacity(batches.len()),
            offsets: vec![0; record_partitions.len()],
            record_partitions,
            bytes: 0,
        };
        let mut pending = PendingSync {
            topic: t.name.clone(),
            appends: Vec::new(),
        };
        for (p, mut batch) in batches {
            let partition = t.partition(p)?;
            let log = partition.log()?;
            let info = log
                .append_deferred(&mut batch, CrcCheck::Trusted)
                .map_err(|e| append_error(&t.name, p, e))?;
            if log.syncs_on_append() {
                pending.appends.push((p, log.clone(), info));
            }
            partition.publish_end(info.last_offset.saturating_add(1));
            result.bytes += batch.len();
            let indices = by_partition.get(&p).map_or(&[][..], Vec::as_slice);
            for (delta, &i) in indices.iter().enumerate() {
                if let Some(slot) = result.offsets.get_mut(i) {
                    *slot = info.base_offset + delta as u64;
                }
            }
            result.partitions.push(PartitionAppend {
                partition: p,
                base_offset: info.base_offset,
                record_count: u32::try_from(indices.len()).unwrap_or(u32::MAX),
            });
        }
        Ok((result, pending))
    }

    /// Reads records from `offset` on: whole batches up to about `max_bytes` (at least one
    /// batch when one is available), decoded, with records before `offset` skipped.
    /// `OffsetOutOfRange` outside `[log_start_offset, log_end_offset]`; at the end, an empty
    /// result. Cost: an index search, one or two positional reads, one decode pass.
    pub fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchResult, BrokerError> {
        let t = self.topic(topic)?;
        let p = t.partition(partition)?;
        let log = p.log()?;
        let snapshot = log.snapshot();
        let start = snapshot.log_start_offset();
        let end = snapshot.log_end_offset();
        let fetched = snapshot
            .read(offset, max_bytes)
            .map_err(|e| read_error(&t.name, partition, e))?;
        let mut records = Vec::new();
        // Read once; keys and values below are zero-copy slices of it (or of a batch's
        // decompressed payload). The read CRC-checked every batch.
        let buf = fetched.bytes();
        for view in fetched.batches() {
            let payload = match crate::codec::payload(self.plugin_host(), &log, &view)
                .map_err(|e| in_partition(e, &t.name, partition))?
            {
                Cow::Borrowed(stored) => buf.slice_ref(stored),
                Cow::Owned(decoded) => Bytes::from(decoded),
            };
            let iter = RecordIter::new(&payload, view.header())
                .map_err(|e| corrupt(&t.name, partition, &e))?;
            for r in iter {
                let r = r.map_err(|e| corrupt(&t.name, partition, &e))?;
                if r.offset() < offset {
                    continue;
                }
                records.push(StoredRecord {
                    offset: r.offset(),
                    timestamp_ms: r.timestamp(),
                    key: r.key().map(|k| payload.slice_ref(k)),
                    value: r.value().map(|v| payload.slice_ref(v)),
                    headers: r
                        .headers()
                        .map(|h| Header {
                            key: h.key.to_owned(),
                            value: h.value.to_vec(),
                        })
                        .collect(),
                });
            }
        }
        Ok(FetchResult {
            records,
            log_start_offset: start,
            log_end_offset: end.max(fetched.high_watermark),
            next_offset: if fetched.batch_count == 0 {
                offset
            } else {
                fetched.next_offset
            },
            bytes: buf.len(),
        })
    }

    /// A receiver of the partition's log end offset, updated after every append becomes
    /// visible (and touched when the topic is deleted). Long polls and subscriptions wait on
    /// it. Cost: a read lock.
    pub fn watch_end(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<watch::Receiver<u64>, BrokerError> {
        let t = self.topic(topic)?;
        Ok(t.partition(partition)?.end.subscribe())
    }

    /// Resolves an offset of one partition; for a timestamp, also the found record's
    /// timestamp (`None` when no record is at or after it: the offset is then the log end).
    pub fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        query: OffsetQuery,
    ) -> Result<(u64, Option<i64>), BrokerError> {
        let t = self.topic(topic)?;
        let p = t.partition(partition)?;
        let log = p.log()?;
        match query {
            OffsetQuery::Earliest => Ok((log.log_start_offset(), None)),
            OffsetQuery::Latest => Ok((log.log_end_offset(), None)),
            OffsetQuery::Timestamp(ts) => {
                let snapshot = log.snapshot();
                let Some(base) = snapshot
                    .offset_for_timestamp(ts)
                    .map_err(|e| read_error(&t.name, partition, e))?
                else {
                    return Ok((snapshot.log_end_offset(), None));
                };
                // The batch's max timestamp is >= ts: find the first such record in it. A
                // batch that does not decode is an error, as it is for a fetch.
                let fetched = snapshot
                    .read(base, 1)
                    .map_err(|e| read_error(&t.name, partition, e))?;
                if let Some(view) = fetched.batches().next() {
                    let payload = crate::codec::payload(self.plugin_host(), &log, &view)
                        .map_err(|e| in_partition(e, &t.name, partition))?;
                    let iter = RecordIter::new(&payload, view.header())
                        .map_err(|e| corrupt(&t.name, partition, &e))?;
                    for r in iter {
                        let r = r.map_err(|e| corrupt(&t.name, partition, &e))?;
                        if r.offset() >= base && r.timestamp() >= ts {
                            return Ok((r.offset(), Some(r.timestamp())));
                        }
                    }
                }
                Ok((base, None))
            }
        }
    }

    /// Durably stores a consumer group's positions (one fsync). Every topic and partition must
    /// exist.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        validate_group_name(group)?;
        if offsets.is_empty() {
            return Err(BrokerError::Empty("the offset commit"));
        }
        let now = now_ms();
        let mut entries = Vec::with_capacity(offsets.len());
        for o in offsets {
            self.topic(&o.topic)?.partition(o.partition)?;
            if o.metadata.len() > MAX_COMMIT_METADATA {
                return Err(BrokerError::InvalidArgument(format!(
                    "commit metadata is {} bytes, over the limit of {MAX_COMMIT_METADATA}",
                    o.metadata.len()
                )));
            }
            entries.push(CommittedOffset {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                metadata: o.metadata,
                committed_at_ms: now,
            });
        }
        self.inner.groups.commit(group, entries)
    }

    /// A group's committed offsets, sorted by topic and partition (only `topic`'s when given).
    pub fn fetch_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.check_open()?;
        validate_group_name(group)?;
        self.inner.groups.fetch(group, topic)
    }

    /// Every consumer group with committed offsets, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        self.inner.groups.groups()
    }

    /// Stops accepting operations, then syncs and checkpoints every log. Idempotent; later
    /// calls of any method fail with `ShuttingDown`. Cost: a few fsyncs per partition.
    pub fn close(&self) -> Result<(), BrokerError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.maintenance.stop();
        let _admin = self.inner.admin.lock();
        let mut first = None;
        for topic in self.inner.topics.read().values() {
            if let Err(e) = topic.close() {
                first.get_or_insert(e);
            }
            for p in &topic.partitions {
                p.end.send_modify(|_| {});
            }
        }
        if let Err(e) = self.inner.groups.sync() {
            first.get_or_insert(e);
        }
        tracing::info!("broker closed");
        first.map_or(Ok(()), Err)
    }

    fn plugins(&self) -> Result<&Plugins, BrokerError> {
        self.check_open()?;
        self.inner
            .plugins
            .as_ref()
            .ok_or(BrokerError::PluginsDisabled)
    }

    /// The plugin runtime, when plugins are enabled (for the data path and metrics).
    pub fn plugin_host(&self) -> Option<&PluginHost> {
        self.inner.plugins.as_ref().map(Plugins::host)
    }

    /// Every loaded plugin, sorted by name. Cost: in-memory only.
    pub fn list_plugins(&self) -> Result<Vec<PluginDescription>, BrokerError> {
        Ok(self.plugins()?.list())
    }

    /// One plugin; `PluginNotFound` if none has this name.
    pub fn describe_plugin(&self, name: &str) -> Result<PluginDescription, BrokerError> {
        self.plugins()?.describe(name)
    }

    /// Loads a new plugin from a component's bytes (`kind`: required world, or detected;
    /// `params`: handed to its `init`, kept across reloads and restarts) and
    /// persists it so it is loaded again at the next open. `PluginExists` if the name is
    /// taken; `InvalidPlugin` if the component is rejected.
    /// Cost: a compile and a self-test (milliseconds to seconds); blocking.
    pub fn load_plugin(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        params: Vec<(String, String)>,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, BrokerError> {
        self.plugins()?.load(name, kind, params, bytes)
    }

    /// Replaces a plugin's version atomically; calls in flight finish on the old one.
    pub fn reload_plugin(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, BrokerError> {
        self.plugins()?.reload(name, bytes)
    }

    /// Unloads a plugin. `PluginInUse` while a topic's configuration names it
    /// (`compression`, `retention.policy`, `compaction.key`, aliases such as `lz4` included)
    /// or stored data pins it: as a Kafka broker refuses to drop what a topic depends on, the
    /// topic must first be altered to another plugin (or deleted).
    pub fn unload_plugin(&self, name: &str) -> Result<(), BrokerError> {
        let plugins = self.plugins()?;
        // Serialized with topic creation and configuration changes, which check that the
        // plugins they name are loaded.
        let _admin = self.inner.admin.lock();
        let users: Vec<String> = self
            .inner
            .topics
            .read()
            .values()
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

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.config.data_dir.clone()
    }
}

fn describe(t: &Topic) -> TopicDescription {
    TopicDescription {
        name: t.name.clone(),
        created_at_ms: t.created_at_ms,
        config: t.config().entries().clone(),
        partitions: t
            .partitions
            .iter()
            .map(|p| {
                let log = p.log().ok();
                let segments = p.segments();
                PartitionDescription {
                    partition: p.index,
                    log_start_offset: log.as_ref().map_or(0, |l| l.log_start_offset()),
                    log_end_offset: log.as_ref().map_or(0, |l| l.log_end_offset()),
                    size_bytes: segments.iter().map(|s| s.size_bytes).sum(),
                    segments,
                }
            })
            .collect(),
    }
}

fn reopen(
    topic: &str,
    p: &Partition,
    config: distlog_storage::LogConfig,
) -> Result<(), BrokerError> {
    let mut slot = p.log.write();
    let Some(old) = slot.take() else {
        *slot = Some(open_with_retry(p, config)?);
        return Ok(());
    };
    let old_config = old.config().clone();
    let closed = old.close();
    drop(old);
    if let Err(e) = closed {
        tracing::warn!(topic, partition = p.index, error = %e, "closing log before reopen failed");
    }
    match open_with_retry(p, config) {
        Ok(log) => {
            *slot = Some(log);
            Ok(())
        }
        Err(e) => {
            // Keep the partition serving with its previous settings.
            *slot = open_with_retry(p, old_config).ok();
            Err(e)
        }
    }
}

/// Opens a partition's log, waiting briefly for calls that still hold the previous (closed)
/// log, which keeps the directory lock until its last reference drops.
fn open_with_retry(
    p: &Partition,
    config: distlog_storage::LogConfig,
) -> Result<Arc<distlog_storage::Log>, BrokerError> {
    let mut attempt = 0;
    loop {
        match open_log(&p.dir, config.clone()) {
            Ok(log) => return Ok(log),
            Err(e) if attempt >= 200 => return Err(e),
            Err(_) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn clear_dir(dir: &std::path::Path) -> Result<(), BrokerError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BrokerError::io("list", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        tracing::info!(dir = %path.display(), "removing leftover of an interrupted topic operation");
        std::fs::remove_dir_all(&path).map_err(|e| BrokerError::io("remove", &path, e))?;
    }
    Ok(())
}

/// Appends of one [`Broker::produce_deferred`] call that still owe the topic's
/// `flush.policy` an fsync.
#[derive(Debug)]
#[must_use = "the records are not durable until `wait` returns"]
pub struct PendingSync {
    topic: String,
    appends: Vec<(u32, Arc<Log>, AppendInfo)>,
}

impl PendingSync {
    /// Whether [`wait`](Self::wait) may block (the topic's policy syncs on append); when
    /// `false` it returns at once.
    pub fn may_block(&self) -> bool {
        !self.appends.is_empty()
    }

    /// Returns once every append is as durable as the topic's `flush.policy` promises; the
    /// first failed fsync is the error (the records stay readable but are not known durable).
    pub fn wait(self) -> Result<(), BrokerError> {
        for (p, log, info) in &self.appends {
            log.make_durable(info)
                .map_err(|e| append_error(&self.topic, *p, e))?;
        }
        Ok(())
    }
}

fn append_error(topic: &str, partition: u32, e: AppendError) -> BrokerError {
    match e {
        AppendError::NoSpace(e) => BrokerError::NoSpace(e.to_string()),
        AppendError::Closed => BrokerError::ShuttingDown,
        // A sync that failed for lack of space is a full disk, whatever else it latched.
        AppendError::Sync { failure, .. } | AppendError::Failed(failure)
            if failure.is_no_space() =>
        {
            BrokerError::NoSpace(failure.to_string())
        }
        AppendError::Sync { failure, .. } | AppendError::Failed(failure) => {
            BrokerError::LogFailed {
                topic: topic.to_owned(),
                partition,
                synced_offset: failure.synced_offset,
                message: failure.to_string(),
            }
        }
        // Other IO errors keep their kind.
        AppendError::Io(source) => BrokerError::io(
            "append",
            PathBuf::from(format!("{topic}/{partition}")),
            source,
        ),
        e => BrokerError::Storage {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
    }
}

fn read_error(topic: &str, partition: u32, e: ReadError) -> BrokerError {
    match e {
        ReadError::OffsetOutOfRange {
            requested,
            start,
            end,
        } => BrokerError::OffsetOutOfRange {
            requested,
            start,
            end,
        },
        ReadError::Closed => BrokerError::ShuttingDown,
        ReadError::DataLoss {
            first_offset,
            next_offset,
            ..
        } => BrokerError::DataLoss {
            topic: topic.to_owned(),
            partition,
            first_offset,
            next_offset,
            message: e.to_string(),
        },
        ReadError::Corrupt { .. } => BrokerError::Corrupt {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
        ReadError::Io(source) => BrokerError::io(
            "read",
            PathBuf::from(format!("{topic}/{partition}")),
            source,
        ),
        e => BrokerError::Storage {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
    }
}

fn corrupt(topic: &str, partition: u32, e: &distlog_storage::batch::BatchError) -> BrokerError {
    BrokerError::Corrupt {
        topic: topic.to_owned(),
        partition,
        message: format!("corrupt batch: {e}"),
    }
}

/// Names the partition in a codec error, which does not know it (see `codec::payload`).
fn in_partition(e: BrokerError, topic: &str, partition: u32) -> BrokerError {
    match e {
        BrokerError::Corrupt { message, .. } => BrokerError::Corrupt {
            topic: topic.to_owned(),
            partition,
            message,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> BrokerConfig {
        let mut c = BrokerConfig::new(dir);
        c.plugins.enabled = false;
        c
    }

    fn rec(key: Option<&[u8]>, value: &[u8]) -> ProduceRecord {
        ProduceRecord {
            key: key.map(<[u8]>::to_vec),
            value: Some(value.to_vec()),
            ..ProduceRecord::default()
        }
    }

    #[test]
    fn interrupted_create_and_delete_leave_nothing_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let b = Broker::open(config(dir.path())).expect("open");
            b.create_topic("kept", 2, BTreeMap::new()).expect("create");
            b.produce("kept", Some(1), vec![rec(None, b"v")])
                .expect("produce");
            b.close().expect("close");
        }
        // A crash mid-create leaves a staging directory; mid-delete, a trash directory.
        std::fs::create_dir_all(dir.path().join("staging/half/0")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("trash/gone.1.0/0")).expect("mkdir");
        let b = Broker::open(config(dir.path())).expect("reopen");
        let names: Vec<_> = b.list_topics().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["kept".to_owned()]);
        assert!(!dir.path().join("staging/half").exists());
        assert!(!dir.path().join("trash/gone.1.0").exists());
        let r = b.fetch("kept", 1, 0, 1 << 20).expect("fetch");
        assert_eq!(r.records.len(), 1);
        // The name is free again after a delete, and the new topic starts empty.
        b.delete_topic("kept").expect("delete");
        b.create_topic("kept", 1, BTreeMap::new())
            .expect("recreate");
        assert_eq!(
            b.fetch("kept", 0, 0, 1 << 20).expect("fetch").records.len(),
            0
        );
    }

    #[test]
    fn corrupt_topic_metadata_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let b = Broker::open(config(dir.path())).expect("open");
            b.create_topic("t", 1, BTreeMap::new()).expect("create");
            b.close().expect("close");
        }
        std::fs::write(dir.path().join("topics/t/topic.json"), b"{not json").expect("write");
        assert!(matches!(
            Broker::open(config(dir.path())),
            Err(BrokerError::CorruptMetadata { .. })
        ));
    }

    /// Guards `list_offset`: a batch that passes its CRC but does not decode is an error
    /// (as for a fetch), never a silent "no record at or after this time".
    #[test]
    fn an_undecodable_batch_is_corrupt_for_list_offset_and_fetch() {
        use distlog_storage::batch::{Compression, encode_batch};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Broker::open(config(dir.path())).expect("open");
        b.create_topic("t", 1, BTreeMap::new()).expect("create");
        let mut good = rec(Some(b"k"), b"v");
        good.timestamp_ms = Some(1_000);
        b.produce("t", Some(0), vec![good]).expect("produce");
        let mut builder = BatchBuilder::with_capacity(128);
        builder
            .push(&Record {
                timestamp: 5_000,
                key: Some(b"key".to_vec()),
                value: Some(b"a value to damage".to_vec()),
                headers: Vec::new(),
            })
            .expect("push");
        let (meta, payload) = builder.payload().expect("payload");
        let mut batch =
            encode_batch(&meta, Compression::None, &vec![0xff; payload.len()]).expect("encode");
        let log = b
            .topic("t")
            .and_then(|t| t.partition(0)?.log())
            .expect("log");
        log.append(&mut batch).expect("append");
        let listed = b.list_offset("t", 0, OffsetQuery::Timestamp(4_000));
        assert!(
            matches!(listed, Err(BrokerError::Corrupt { partition: 0, .. })),
            "{listed:?}"
        );
        let fetched = b.fetch("t", 0, 1, 1 << 20);
        assert!(
            matches!(fetched, Err(BrokerError::Corrupt { .. })),
            "{fetched:?}"
        );
        // The intact batch before it still resolves.
        assert_eq!(
            b.list_offset("t", 0, OffsetQuery::Timestamp(500))
                .expect("list"),
            (0, Some(1_000))
        );
    }

    /// Guards the mapping of storage errors: an IO error keeps its kind, a full disk met by a
    /// write or by the fsync a produce waits for is `NoSpace`.
    #[test]
    fn storage_errors_keep_their_io_kind() {
        use std::io::{Error, ErrorKind};
        let e = append_error(
            "t",
            3,
            AppendError::Io(Error::from(ErrorKind::PermissionDenied)),
        );
        assert!(
            matches!(&e, BrokerError::Io { source, .. } if source.kind() == ErrorKind::PermissionDenied),
            "{e:?}"
        );
        let e = read_error("t", 3, ReadError::Io(Error::from(ErrorKind::UnexpectedEof)));
        assert!(
            matches!(&e, BrokerError::Io { source, .. } if source.kind() == ErrorKind::UnexpectedEof),
            "{e:?}"
        );
        let e = append_error(
            "t",
            3,
            AppendError::NoSpace(Error::from(ErrorKind::StorageFull)),
        );
        assert!(matches!(e, BrokerError::NoSpace(_)), "{e:?}");
        let failure = distlog_storage::log::LogFailure {
            kind: ErrorKind::StorageFull,
            message: "No space left on device (os error 28)".into(),
            synced_offset: 7,
        };
        let e = append_error(
            "t",
            3,
            AppendError::Sync {
                base_offset: 7,
                failure,
            },
        );
        assert!(matches!(e, BrokerError::NoSpace(_)), "{e:?}");
    }

    #[test]
    fn closed_broker_refuses_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Broker::open(config(dir.path())).expect("open");
        b.create_topic("t", 1, BTreeMap::new()).expect("create");
        b.close().expect("close");
        assert!(matches!(
            b.produce("t", None, vec![rec(Some(b"k"), b"v")]),
            Err(BrokerError::ShuttingDown)
        ));
        assert!(b.close().is_ok(), "close is idempotent");
    }
}
