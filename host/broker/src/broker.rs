//! The broker: one composition of rooms, each owning its state and logic.
//!
//! | room | owns |
//! |------|------|
//! | [`topics`](crate::topics) | the topic registry, directories, admin lock; create, delete, describe, alter |
//! | [`produce`](crate::produce) | the produce plan (pure) and its execution |
//! | [`fetch`](crate::fetch) | reads, offset lookups, end-offset notifications |
//! | [`groups`](crate::groups) | consumer-group offsets |
//! | [`plugins`](crate::plugins) | the plugin host, persisted plugins, plugin/topic glue |
//! | [`maintenance`](crate::maintenance) | retention and compaction passes and their thread |
//! | [`health`](crate::health) | start time, registered listeners (status is computed from the rooms) |
//!
//! Invariant: [`Broker`] holds no logic of its own beyond the lifecycle (open, close, the
//! closed flag); every method is a call into one room, or a composition of a few when an
//! operation spans rooms (deleting a topic also unpins its codecs and forgets its offsets). A
//! new capability adds a room and a field here, not fields on another room.

use crate::BrokerError;
use crate::config::{BrokerConfig, TopicConfig};
use crate::fetch::{self, FetchResult, OffsetQuery, PlainFetchResult, RawFetchResult};
use crate::groups::reset::{self, Bounds};
use crate::groups::{
    CommittedOffset, GroupStore, Groups, OffsetCommit, PartitionReset, ResetTarget,
};
use crate::health::{BrokerInfo, Health, ListenerInfo, Problem, Status};
use crate::maintenance::{self, CleanerSummary, Maintenance, RetentionSummary};
use crate::plugins::{self, PluginDescription, Plugins};
use crate::produce::{
    self, BatchesAppend, EncodedBatch, PendingSync, ProduceRecord, ProduceResult,
};
use crate::producer_ids::ProducerIds;
use crate::topics::topic::Topic;
use crate::topics::{self, TopicDescription, TopicSummary, Topics};
use distlog_plugin_host::{PluginHost, PluginKind, PluginLimits};
use distlog_storage::LogThreads;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

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
    closed: AtomicBool,
    /// The storage threads (sealer, flusher) every log of this broker is opened on; stopped at
    /// close, so two brokers in one process share none.
    threads: Arc<LogThreads>,
    topics: Topics,
    groups: Groups,
    /// Producer ids for idempotent producers.
    producer_ids: ProducerIds,
    /// `None` when plugins are disabled.
    plugins: Option<Plugins>,
    maintenance: Maintenance,
    health: Health,
}

/// A group's position in one partition against that partition's log (`distlog group
/// describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartitionLag {
    /// The commit.
    pub committed: CommittedOffset,
    /// The partition's log start offset (`None`: the partition's log is not open).
    pub log_start_offset: Option<u64>,
    /// The partition's log end offset (`None`: the partition's log is not open).
    pub log_end_offset: Option<u64>,
    /// Records the group has yet to consume: the log end minus the commit, or minus the log
    /// start when the commit is below it (those records are gone); 0 when unknown.
    pub lag: u64,
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
        std::fs::create_dir_all(root).map_err(|e| BrokerError::io("create", root, e))?;
        let threads =
            LogThreads::start().map_err(|e| BrokerError::io("start", "storage threads", e))?;
        let topics = Topics::open(&config, threads.clone())?;
        let groups = Groups::open(GroupStore::open(&threads, root, &config)?);
        let producer_ids = ProducerIds::open(&threads, root, &config)?;
        let plugins = if config.plugins.enabled {
            Some(Plugins::open(&config.plugins, root)?)
        } else {
            None
        };
        let broker = Self {
            inner: Arc::new(Inner {
                config,
                closed: AtomicBool::new(false),
                threads,
                topics,
                groups,
                producer_ids,
                plugins,
                maintenance: Maintenance::default(),
                health: Health::new(),
            }),
        };
        if let Some(p) = &broker.inner.plugins {
            plugins::pin_stored_codecs(p, &broker.inner.topics.snapshot());
        }
        broker.start_maintenance();
        Ok(broker)
    }

    fn start_maintenance(&self) {
        let interval = Duration::from_millis(self.inner.config.retention_check_interval_ms);
        let inner = Arc::downgrade(&self.inner);
        self.inner.maintenance.start(interval, move || {
            let Some(inner) = inner.upgrade() else {
                return false;
            };
            let broker = Broker { inner };
            if broker.is_closed() {
                return false;
            }
            broker.run_retention_once();
            broker.run_compaction_once();
            true
        });
    }

    #[cfg(test)]
    pub(crate) fn storage_threads_id(&self) -> u64 {
        self.inner.threads.id()
    }

    #[cfg(test)]
    pub(crate) fn maintenance_running(&self) -> bool {
        self.inner.maintenance.is_running()
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

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.check_open()?;
        self.inner.topics.get(name)
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
        self.inner
            .topics
            .create(self.plugin_host(), name, partitions, config)
    }

    /// Deletes a topic and its data. The topic disappears atomically (its directory is renamed
    /// into the trash, then removed); subscribers and long polls on it are woken and get
    /// `TopicNotFound`.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        self.check_open()?;
        self.inner.topics.delete(name, |topic| {
            // Its batches are gone: the codec versions they pinned may be unloaded again.
            if let Some(host) = self.plugin_host() {
                plugins::unpin_codecs(host, topic);
            }
            // And the positions groups committed in it mean nothing for a later topic of
            // that name.
            self.inner.groups.forget_topic(name);
        })
    }

    /// Every topic, sorted by name. Cost: a read lock, no IO.
    pub fn list_topics(&self) -> Vec<TopicSummary> {
        self.inner.topics.list()
    }

    /// Describes a topic: configuration, and per partition offsets and segments.
    /// Cost: no IO (segment descriptors are in memory).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription, BrokerError> {
        Ok(topics::describe(
            &*self.topic(name)?,
            &self.inner.config.topic_defaults,
        ))
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
        self.inner
            .topics
            .alter_config(self.plugin_host(), &topic, set, reset, validate_only)
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
        produce::produce_deferred(self.plugin_host(), &t, partition, records)
    }

    /// Appends batches a producer encoded itself (a Kafka client's record batches, records
    /// section uncompressed) to one partition, in order. Each batch's records are checked as
    /// a read checks them and the batch against `max.message.bytes`, all before any is
    /// appended; each is offered to the topic's codec plugin as a produced batch is. Returns
    /// without waiting for the topic's `flush.policy` (see
    /// [`produce_deferred`](Self::produce_deferred)).
    /// Cost: one copy of the records into the batch buffer, one validating pass, one codec
    /// call and one append per batch.
    pub fn produce_batches(
        &self,
        topic: &str,
        partition: u32,
        batches: Vec<EncodedBatch>,
    ) -> Result<(BatchesAppend, PendingSync), BrokerError> {
        let t = self.topic(topic)?;
        produce::produce_batches(self.plugin_host(), &t, partition, batches)
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
        fetch::fetch(self.plugin_host(), &t, partition, offset, max_bytes)
    }

    /// Reads stored batches from `offset` on, as they are on disk (compressed payloads stay
    /// compressed), each with the codec identity that decodes it: for clients that decode
    /// themselves, replicate or archive. Same range rules as [`fetch`](Self::fetch).
    /// Cost: an index search, one or two positional reads, one CRC pass per batch.
    pub fn fetch_raw(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<RawFetchResult, BrokerError> {
        let t = self.topic(topic)?;
        fetch::fetch_raw(&t, partition, offset, max_bytes)
    }

    /// Reads stored batches from `offset` on with their records sections uncompressed: a
    /// batch stored uncompressed is a slice of the read (no copy, its records CRC derived
    /// from the stored one), one stored by a codec plugin is decoded. For front ends that
    /// re-frame batches for another wire format. Same range rules as [`fetch`](Self::fetch).
    /// Cost: an index search, one or two positional reads, one CRC pass per batch, one codec
    /// call per compressed batch.
    pub fn fetch_plain(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<PlainFetchResult, BrokerError> {
        let t = self.topic(topic)?;
        fetch::fetch_plain(self.plugin_host(), &t, partition, offset, max_bytes)
    }

    /// A receiver of the partition's log end offset, updated after every append becomes
    /// visible (and touched when the topic is deleted). Long polls and subscriptions wait on
    /// it. Cost: a read lock.
    pub fn watch_end(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<watch::Receiver<u64>, BrokerError> {
        fetch::watch_end(&*self.topic(topic)?, partition)
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
        fetch::list_offset(self.plugin_host(), &t, partition, query)
    }

    /// Durably stores a consumer group's positions (one fsync). Every topic and partition must
    /// exist.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        let exists = |topic: &str, p: u32| self.topic(topic)?.partition(p).map(|_| ());
        self.inner
            .groups
            .commit(group, offsets, exists, crate::now_ms())
    }

    /// A group's committed offsets, sorted by topic and partition (only `topic`'s when given).
    pub fn fetch_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.check_open()?;
        self.inner.groups.fetch(group, topic)
    }

    /// Every consumer group with committed offsets, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        self.inner.groups.list()
    }

    /// Runs each partition's retention policy once (topics whose `cleanup.policy` includes
    /// `delete`) and deletes what it selects, crash-safely. The maintenance thread calls this
    /// every `retention_check_interval_ms`; tests and operators may call it directly.
    ///
    /// Cost per partition: one or two plugin calls, then per deleted segment a few renames,
    /// one directory sync and a checkpoint. Fetches reading a deleted segment finish normally.
    pub fn run_retention_once(&self) -> RetentionSummary {
        if self.is_closed() {
            return RetentionSummary::default();
        }
        maintenance::run_retention(self.plugin_host(), &self.inner.topics.snapshot())
    }

    /// Runs one compaction pass on every partition of `compact` topics that is worth it
    /// (`min.cleanable.dirty.ratio`, `min.compaction.lag.ms`), then on the internal offsets
    /// log (not counted in the summary). The maintenance thread calls this every interval;
    /// tests and operators may call it directly.
    ///
    /// Cost: per cleaned partition, storage's bounded pass (at most `cleaner_max_dirty_bytes`
    /// of dirty segments read twice, plus the rewritten clean range) and one key-extractor
    /// call per batch read. A plugin error aborts that partition's pass with nothing changed.
    pub fn run_compaction_once(&self) -> CleanerSummary {
        let max_dirty_bytes = self.inner.config.cleaner_max_dirty_bytes;
        let summary = maintenance::run_compaction(
            self.plugin_host(),
            &self.inner.topics.snapshot(),
            max_dirty_bytes,
            || self.is_closed(),
        );
        if !self.is_closed() {
            self.inner.groups.compact(max_dirty_bytes);
        }
        summary
    }

    /// Cleans one partition now, whatever its dirty ratio (operators, tests). `Ok(None)` when
    /// the topic is not a `compact` topic.
    pub fn compact_partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Option<distlog_storage::compaction::CompactReport>, BrokerError> {
        let t = self.topic(topic)?;
        maintenance::compact_partition(
            self.plugin_host(),
            &t,
            partition,
            self.inner.config.cleaner_max_dirty_bytes,
        )
    }

    /// Rolls a partition's active segment now if it holds data (operators, tests): the
    /// segment becomes eligible for retention and compaction. Returns whether it rolled.
    /// Cost: a segment creation and an fsync.
    pub fn roll_partition(&self, topic: &str, partition: u32) -> Result<bool, BrokerError> {
        maintenance::roll_partition(&*self.topic(topic)?, partition)
    }

    /// Stops accepting operations, then syncs and checkpoints every log. Idempotent; later
    /// calls of any method fail with `ShuttingDown`. Cost: a few fsyncs per partition.
    pub fn close(&self) -> Result<(), BrokerError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.maintenance.stop();
        let mut first = self.inner.topics.close().err();
        if let Err(e) = self.inner.groups.close() {
            first.get_or_insert(e);
        }
        if let Err(e) = self.inner.producer_ids.close() {
            first.get_or_insert(e);
        }
        self.inner.threads.shutdown();
        tracing::info!("broker closed");
        first.map_or(Ok(()), Err)
    }

    /// A producer id never handed out before, for an idempotent producer (Kafka's
    /// InitProducerId without a transactional id); its epoch starts at 0. Ids survive restarts:
    /// a block of them is made durable before any is handed out.
    /// Cost: none, except one fsync per thousand ids.
    pub fn new_producer_id(&self) -> Result<i64, BrokerError> {
        self.check_open()?;
        self.inner.producer_ids.next()
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
        self.load_plugin_with_limits(name, kind, params, PluginLimits::default(), bytes)
    }

    /// [`load_plugin`](Self::load_plugin) with per-plugin limits (deadline, init deadline,
    /// memory, fuel) overriding the `broker.plugins` defaults; kept across reloads and
    /// restarts like the parameters. `InvalidPlugin` if the memory limit is above
    /// `broker.plugins.max_memory_bytes`.
    pub fn load_plugin_with_limits(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        params: Vec<(String, String)>,
        limits: PluginLimits,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, BrokerError> {
        self.plugins()?.load(name, kind, params, limits, bytes)
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
        plugins::unload_unused(self.plugins()?, &self.inner.topics, name)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.config.data_dir.clone()
    }

    /// Grows a topic to `new_count` partitions; with `validate_only`, only checks that it
    /// could. The count only grows (`InvalidArgument` otherwise) and stays within
    /// `max_partitions` (`InvalidPartitionCount`). The new partitions are durable before the
    /// topic's metadata names them, and the metadata is replaced atomically, so a crash leaves
    /// the old count or the new one. Produces and fetches in flight keep working; records
    /// routed by key afterwards use `murmur2(key) % new_count` (as in Kafka, a key's partition
    /// changes). Cost: a few fsyncs and one log creation per new partition.
    pub fn add_partitions(
        &self,
        topic: &str,
        new_count: u32,
        validate_only: bool,
    ) -> Result<TopicSummary, BrokerError> {
        self.check_open()?;
        self.inner
            .topics
            .add_partitions(topic, new_count, validate_only)
    }

    /// A topic's own configuration entries, without the defaults they override (the
    /// effective configuration is [`topic_config`](Self::topic_config)). Cost: a read lock.
    pub fn topic_overrides(&self, topic: &str) -> Result<BTreeMap<String, String>, BrokerError> {
        self.check_open()?;
        self.inner.topics.overrides(topic)
    }

    /// Durably forgets every offset a consumer group committed (one batch of tombstones on
    /// the offsets log, one fsync). Returns how many were removed; `GroupNotFound` when the
    /// group has none.
    pub fn delete_group(&self, group: &str) -> Result<usize, BrokerError> {
        self.check_open()?;
        self.inner.groups.delete_group(group)
    }

    /// Durably forgets a consumer group's offsets for `partitions` (`(topic, partition)`;
    /// ones without a commit are skipped): one batch of tombstones, one fsync. Returns how
    /// many were removed; `GroupNotFound` when the group has no offsets at all.
    pub fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<usize, BrokerError> {
        self.check_open()?;
        self.inner.groups.delete_offsets(group, partitions)
    }

    /// Durably stores a consumer group's positions, as [`commit_offsets`](Self::commit_offsets)
    /// does, after checking that no offset is beyond its partition's log end
    /// (`CommitBeyondLogEnd`; nothing is committed then). The gRPC API commits this way; the
    /// Kafka listener's OffsetCommit does not, since Kafka accepts any offset there. An offset
    /// below the log start is accepted: the group resumes at the log start.
    pub fn commit_offsets_within_log(
        &self,
        group: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), BrokerError> {
        for o in &offsets {
            let end = self
                .topic(&o.topic)?
                .partition(o.partition)?
                .log()?
                .log_end_offset();
            if o.offset > end {
                return Err(BrokerError::CommitBeyondLogEnd {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    offset: o.offset,
                    end,
                });
            }
        }
        self.commit_offsets(group, offsets)
    }

    /// A group's commits (only `topic`'s when given) with each partition's log bounds and
    /// the lag, sorted by topic and partition. A group without commits has none: an empty
    /// list, not `GroupNotFound`. Cost: a read lock per partition, no IO.
    pub fn describe_group(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<GroupPartitionLag>, BrokerError> {
        let commits = match self.fetch_offsets(group, topic) {
            Ok(c) => c,
            Err(BrokerError::GroupNotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(commits
            .into_iter()
            .map(|committed| {
                let log = self
                    .topic(&committed.topic)
                    .and_then(|t| t.partition(committed.partition)?.log())
                    .ok();
                let start = log.as_ref().map(|l| l.log_start_offset());
                let end = log.as_ref().map(|l| l.log_end_offset());
                let lag = match (start, end) {
                    (Some(s), Some(e)) => e.saturating_sub(committed.offset.max(s)),
                    _ => 0,
                };
                GroupPartitionLag {
                    committed,
                    log_start_offset: start,
                    log_end_offset: end,
                    lag,
                }
            })
            .collect())
    }

    /// Moves `group`'s offsets in `topic` (every partition when `partitions` is empty) to
    /// `target`, clamped to each partition's log (see [`ResetTarget`]), and commits them all
    /// in one batch (one fsync) unless `dry_run`. Returns the plan, in partition order.
    /// `TopicNotFound` / `PartitionNotFound` for what does not exist; `FailedPrecondition`
    /// for a shift of a partition without a commit. Cost: per partition a read lock, and for
    /// a time target an index lookup and one batch read.
    pub fn reset_group_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
        target: ResetTarget,
        dry_run: bool,
    ) -> Result<Vec<PartitionReset>, BrokerError> {
        crate::names::validate_group_name(group)?;
        let t = self.topic(topic)?;
        let mut wanted: Vec<u32> = if partitions.is_empty() {
            (0..t.partition_count()).collect()
        } else {
            partitions.to_vec()
        };
        wanted.sort_unstable();
        wanted.dedup();
        let previous: BTreeMap<u32, u64> = match self.fetch_offsets(group, Some(topic)) {
            Ok(c) => c.into_iter().map(|o| (o.partition, o.offset)).collect(),
            Err(BrokerError::GroupNotFound(_)) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let mut plan = Vec::with_capacity(wanted.len());
        for p in wanted {
            let log = t.partition(p)?.log()?;
            let at_time = match target {
                ResetTarget::Timestamp(ts) => {
                    fetch::list_offset(self.plugin_host(), &t, p, OffsetQuery::Timestamp(ts))?.0
                }
                _ => 0,
            };
            let bounds = Bounds {
                start: log.log_start_offset(),
                end: log.log_end_offset(),
                at_time,
            };
            let prev = previous.get(&p).copied();
            plan.push(PartitionReset {
                topic: topic.to_owned(),
                partition: p,
                previous: prev,
                new_offset: reset::target_offset(topic, p, target, prev, bounds)?,
            });
        }
        if !dry_run && !plan.is_empty() {
            let metadata = String::new();
            self.commit_offsets(
                group,
                plan.iter()
                    .map(|r| OffsetCommit {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        offset: r.new_offset,
                        metadata: metadata.clone(),
                    })
                    .collect(),
            )?;
        }
        Ok(plan)
    }

    /// Records a listener the process serves on (the binary registers gRPC, Kafka and
    /// metrics once bound), for [`info`](Self::info). A listener of the same name is replaced.
    pub fn register_listener(&self, listener: ListenerInfo) {
        self.inner.health.register(listener);
    }

    /// Sets the node id [`info`](Self::info) reports (the binary sets Kafka's `node_id`).
    pub fn set_node_id(&self, id: i32) {
        self.inner.health.set_node_id(id);
    }

    /// The broker's start time, uptime, listeners, counts and status: `Stopping` once closed;
    /// `Degraded` when a partition's log latched after a failed fsync or is not open, or the
    /// offsets log latched; `Serving` otherwise. Cost: a read lock per partition, no IO.
    pub fn info(&self) -> BrokerInfo {
        let topics = self.inner.topics.snapshot();
        let mut problems = Vec::new();
        let mut partitions = 0u32;
        for t in &topics {
            for p in &t.partitions {
                partitions = partitions.saturating_add(1);
                let subject = || format!("topic {:?} partition {}", t.name, p.index);
                match p.log.read().as_ref() {
                    None => problems.push(Problem {
                        subject: subject(),
                        reason: "its log is not open (reopening it after a configuration \
                                 change failed; see the broker's log)"
                            .into(),
                    }),
                    Some(log) => {
                        if let Some(f) = log.failure() {
                            problems.push(Problem {
                                subject: subject(),
                                reason: f.to_string(),
                            });
                        }
                    }
                }
            }
        }
        if let Some(reason) = self.inner.groups.failure() {
            problems.push(Problem {
                subject: "the consumer-group offsets log".into(),
                reason,
            });
        }
        let status = if self.is_closed() {
            Status::Stopping
        } else if problems.is_empty() {
            Status::Serving
        } else {
            Status::Degraded(problems)
        };
        BrokerInfo {
            node_id: self.inner.health.node_id(),
            started_at_ms: self.inner.health.started_at_ms(),
            uptime_ms: self.inner.health.uptime_ms(),
            listeners: self.inner.health.listeners(),
            status,
            topics: u32::try_from(topics.len()).unwrap_or(u32::MAX),
            partitions,
            groups: u32::try_from(self.list_groups().len()).unwrap_or(u32::MAX),
        }
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
        use distlog_storage::batch::{BatchBuilder, Compression, Record, encode_batch};
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

    /// The names of this process's threads (Linux: `/proc/self/task/*/comm`).
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|n| n.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Guards the storage threads: each broker opens its logs on threads of its own and stops
    /// them at close, so two brokers in one process share none and one's close leaves the
    /// other serving.
    #[test]
    fn each_broker_has_its_own_storage_threads() {
        let (d1, d2) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let (a, b) = (
            Broker::open(config(d1.path())).expect("open"),
            Broker::open(config(d2.path())).expect("open"),
        );
        assert_ne!(a.storage_threads_id(), b.storage_threads_id());
        let interval = BTreeMap::from([("flush.policy".to_owned(), "interval".to_owned())]);
        for broker in [&a, &b] {
            broker
                .create_topic("t", 2, interval.clone())
                .expect("create");
        }
        let sealer = format!("dl-seal-{}", a.storage_threads_id());
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(thread_names().contains(&sealer), "{sealer} runs");
        }
        a.close().expect("close");
        assert!(
            !thread_names().contains(&sealer),
            "{sealer} stopped at close"
        );
        b.produce("t", Some(1), vec![rec(None, b"v")])
            .expect("the other broker still serves");
        assert_eq!(b.fetch("t", 1, 0, 1 << 20).expect("fetch").records.len(), 1);
        b.close().expect("close");
    }

    /// Guards the offsets log: group commits survive a restart through storage alone, a
    /// deleted topic's offsets stay forgotten, and the internal log is no topic.
    #[test]
    fn group_offsets_live_on_an_internal_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let commit = |topic: &str, offset| OffsetCommit {
            topic: topic.into(),
            partition: 0,
            offset,
            metadata: "m".into(),
        };
        {
            let b = Broker::open(config(dir.path())).expect("open");
            for t in ["kept", "gone"] {
                b.create_topic(t, 1, BTreeMap::new()).expect("create");
            }
            b.commit_offsets("g", vec![commit("kept", 3), commit("gone", 4)])
                .expect("commit");
            b.delete_topic("gone").expect("delete");
            b.close().expect("close");
        }
        assert!(
            !dir.path().join("groups/offsets.log").exists(),
            "no side file"
        );
        let b = Broker::open(config(dir.path())).expect("reopen");
        let got = b.fetch_offsets("g", None).expect("fetch");
        assert_eq!(
            got.iter()
                .map(|o| (o.topic.as_str(), o.offset))
                .collect::<Vec<_>>(),
            vec![("kept", 3)]
        );
        assert_eq!(b.list_groups(), vec!["g".to_owned()]);
        let names: Vec<_> = b.list_topics().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["kept".to_owned()]);
        // A user topic of the internal log's name is just a topic.
        b.create_topic("__consumer_offsets", 1, BTreeMap::new())
            .expect("create");
        assert_eq!(b.fetch_offsets("g", Some("kept")).expect("fetch").len(), 1);
        b.close().expect("close");
    }

    /// Guards the operator view: a partition without an open log degrades the status and
    /// is named; closing turns it to stopping; listeners are kept as registered.
    #[test]
    fn info_reports_listeners_and_degraded_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Broker::open(config(dir.path())).expect("open");
        b.create_topic("t", 2, BTreeMap::new()).expect("create");
        b.register_listener(ListenerInfo {
            name: "grpc".into(),
            address: "127.0.0.1:1".into(),
            advertised: None,
            tls: false,
        });
        b.set_node_id(3);
        let info = b.info();
        assert_eq!(info.status, Status::Serving);
        assert_eq!((info.topics, info.partitions, info.node_id), (1, 2, 3));
        assert_eq!(info.listeners.len(), 1);
        let topic = b.topic("t").expect("topic");
        let log = topic.partition(1).expect("p1").log.write().take();
        match b.info().status {
            Status::Degraded(problems) => {
                assert_eq!(problems.len(), 1);
                assert!(problems[0].subject.contains("partition 1"), "{problems:?}");
            }
            other => panic!("expected degraded, got {other:?}"),
        }
        *topic.partition(1).expect("p1").log.write() = log;
        assert_eq!(b.info().status, Status::Serving);
        b.close().expect("close");
        assert_eq!(b.info().status, Status::Stopping);
    }

    /// Guards the gRPC commit path: beyond the log end is refused with nothing committed, the
    /// log end itself and below the log start are accepted; a group without commits
    /// describes as empty.
    #[test]
    fn commits_within_the_log_and_group_lag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Broker::open(config(dir.path())).expect("open");
        b.create_topic("t", 1, BTreeMap::new()).expect("create");
        b.produce("t", Some(0), (0..5).map(|_| rec(None, b"v")).collect())
            .expect("produce");
        let at = |offset| OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset,
            metadata: String::new(),
        };
        assert!(b.describe_group("g", None).expect("describe").is_empty());
        assert!(matches!(
            b.commit_offsets_within_log("g", vec![at(6)]),
            Err(BrokerError::CommitBeyondLogEnd {
                end: 5,
                offset: 6,
                ..
            })
        ));
        assert!(b.describe_group("g", None).expect("describe").is_empty());
        b.commit_offsets_within_log("g", vec![at(5)])
            .expect("at the end");
        b.commit_offsets_within_log("g", vec![at(2)])
            .expect("inside");
        let lag = b.describe_group("g", None).expect("describe");
        assert_eq!(lag.len(), 1);
        assert_eq!(
            (lag[0].log_start_offset, lag[0].log_end_offset, lag[0].lag),
            (Some(0), Some(5), 3)
        );
        // The Kafka path accepts any offset, as Kafka does.
        b.commit_offsets("g", vec![at(99)]).expect("unchecked");
        assert_eq!(b.describe_group("g", None).expect("describe")[0].lag, 0);
        b.close().expect("close");
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
