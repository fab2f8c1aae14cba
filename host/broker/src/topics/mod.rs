//! Topic administration and metadata: the registry of live topics, their directories, and
//! creation, deletion, description and configuration changes.
//!
//! Layout under `<data_dir>`: `topics/<name>/` is a live topic ([`topic`]), `staging/` holds
//! topics being created and `trash/` topics being deleted. A topic becomes visible by one
//! rename out of `staging/` and disappears by one rename into `trash/`, so a crash never
//! leaves a half-created or half-deleted topic: whatever is left in `staging/` or `trash/` at
//! open is removed.
//!
//! Invariant: creation, deletion and configuration changes are serialized by one admin lock
//! ([`Topics::admin`]), which unloading a plugin takes too, so a plugin a topic names stays
//! loaded from the moment the name is checked until the topic stops naming it. Readers
//! (produce, fetch, maintenance) only take the registry's read lock, never the admin lock.

pub(crate) mod topic;

use crate::config::{BrokerConfig, TopicConfig};
use crate::names::validate_topic_name;
use crate::{BrokerError, SegmentInfo};
use distlog_plugin_host::PluginHost;
use distlog_storage::LogThreads;
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use topic::{META_FILE, Partition, Topic, TopicMeta, in_parallel, sync_dir};

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
    /// Records the log holds: the sum of its segments' record counts (kept by storage per
    /// segment, from the batch headers), so it stays true after retention and compaction.
    pub record_count: u64,
}

/// Where a topic's effective configuration value comes from (Kafka's config source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// The built-in default.
    Default,
    /// The broker's `topic_defaults`.
    Broker,
    /// Set on the topic itself.
    Topic,
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
    /// Where each key of `config` comes from.
    pub config_sources: BTreeMap<String, ConfigSource>,
    /// Partitions, by index.
    pub partitions: Vec<PartitionDescription>,
}

/// The topic registry and its directories.
#[derive(Debug)]
pub(crate) struct Topics {
    config: BrokerConfig,
    map: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation, deletion and configuration changes (and plugin unloads).
    admin: Mutex<()>,
    /// Unique suffix for directories moved to trash.
    trash_seq: AtomicU64,
    /// The storage threads every partition log is opened on.
    threads: Arc<LogThreads>,
}

impl Topics {
    /// Opens every topic under `<data_dir>/topics/`, first removing what interrupted creations
    /// and deletions left in `staging/` and `trash/`.
    /// Cost: one log open (checkpoint read, tail validation) per partition.
    pub(crate) fn open(
        config: &BrokerConfig,
        threads: Arc<LogThreads>,
    ) -> Result<Self, BrokerError> {
        let root = &config.data_dir;
        for sub in ["topics", "staging", "trash"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| BrokerError::io("create", &d, e))?;
        }
        // Half-created topics never became visible; half-deleted ones were already gone.
        for sub in ["staging", "trash"] {
            clear_dir(&root.join(sub))?;
        }
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
            let topic = Topic::open(&threads, dir, meta, &config.topic_defaults, config)?;
            tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "opened topic");
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        Ok(Self {
            config: config.clone(),
            map: RwLock::new(topics),
            admin: Mutex::new(()),
            trash_seq: AtomicU64::new(0),
            threads,
        })
    }

    /// The admin lock (see the module documentation). Not held across anything but
    /// metadata writes, log opens and closes.
    pub(crate) fn admin(&self) -> MutexGuard<'_, ()> {
        self.admin.lock()
    }

    /// A live topic. Cost: a name check and a read lock.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        self.map
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))
    }

    /// Every live topic (a snapshot: topics created or deleted after it are not in it).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Topic>> {
        self.map.read().values().cloned().collect()
    }

    /// Creates a topic (see `Broker::create_topic`); `host` checks the plugins the
    /// configuration names.
    pub(crate) fn create(
        &self,
        host: Option<&PluginHost>,
        name: &str,
        partitions: u32,
        config: BTreeMap<String, String>,
    ) -> Result<TopicDescription, BrokerError> {
        validate_topic_name(name)?;
        let cfg = &self.config;
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
        let _admin = self.admin.lock();
        resolved.check_plugins(host, |_| true)?;
        if self.map.read().contains_key(name) {
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
        let meta = TopicMeta::new(name, partitions, crate::now_ms(), config);
        meta.write(&staging)?;
        std::fs::rename(&staging, &target).map_err(|e| BrokerError::io("rename", &target, e))?;
        let topics_dir = cfg.data_dir.join("topics");
        sync_dir(&topics_dir).map_err(|e| BrokerError::io("sync", &topics_dir, e))?;
        let topic = match Topic::open(
            &self.threads,
            target.clone(),
            meta,
            &cfg.topic_defaults,
            cfg,
        ) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                // Nothing was visible yet: take the directory back out (a crash here leaves
                // a topic of empty partitions, which the next open completes).
                self.discard_dir(&target);
                return Err(e);
            }
        };
        self.map.write().insert(name.to_owned(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(describe(&topic, &cfg.topic_defaults))
    }

    /// A fresh name in the trash directory for something called `label`.
    fn trash_path(&self, label: &str) -> PathBuf {
        let seq = self.trash_seq.fetch_add(1, Ordering::Relaxed);
        self.config
            .data_dir
            .join("trash")
            .join(format!("{label}.{}.{seq}", crate::now_ms()))
    }

    /// Moves `dir` to the trash and removes it, logging failures (it is removed at the next
    /// open otherwise).
    fn discard_dir(&self, dir: &Path) {
        let trash = self.trash_path("discarded");
        let moved = std::fs::rename(dir, &trash).and_then(|()| {
            sync_dir(dir.parent().unwrap_or(dir))?;
            std::fs::remove_dir_all(&trash)
        });
        if let Err(e) = moved {
            tracing::warn!(dir = %dir.display(), error = %e, "discarding a half-created topic failed");
        }
    }

    /// Deletes a topic and its data (see `Broker::delete_topic`). `forget` runs once the
    /// topic's directory is in the trash, before the deletion is made durable: what other
    /// rooms kept about the topic (pinned codec versions, committed offsets) goes with it.
    pub(crate) fn delete(
        &self,
        name: &str,
        forget: impl FnOnce(&Topic),
    ) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        let _admin = self.admin.lock();
        let topic = self
            .map
            .write()
            .remove(name)
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        if let Err(e) = topic.close() {
            tracing::warn!(topic = name, error = %e, "closing deleted topic's logs failed");
        }
        let trash = self.trash_path(name);
        std::fs::rename(&topic.dir, &trash).map_err(|e| BrokerError::io("rename", &trash, e))?;
        forget(&topic);
        let topics_dir = self.config.data_dir.join("topics");
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
    pub(crate) fn list(&self) -> Vec<TopicSummary> {
        self.map
            .read()
            .values()
            .map(|t| TopicSummary {
                name: t.name.clone(),
                partitions: t.partition_count(),
            })
            .collect()
    }

    /// Changes a topic's configuration (see `Broker::alter_topic_config`).
    pub(crate) fn alter_config(
        &self,
        host: Option<&PluginHost>,
        topic: &Topic,
        set: BTreeMap<String, String>,
        reset: Vec<String>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, BrokerError> {
        let cfg = &self.config;
        for key in &reset {
            TopicConfig::check_resettable(key)?;
        }
        let _admin = self.admin.lock();
        // The registry's topic now: partitions may have been added (a new `Topic` swapped in)
        // or the topic deleted since the caller looked it up.
        let current = self.get(&topic.name)?;
        let topic = &*current;
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
        new_config.check_plugins(host, |k| {
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
                reopen(&self.threads, &topic.name, p, log_config.clone())?;
            }
        }
        *topic.overrides.write() = overrides;
        let entries = new_config.entries().clone();
        *topic.config.write() = Arc::new(new_config);
        tracing::info!(topic = %topic.name, "altered topic configuration");
        Ok(entries)
    }

    /// Grows a topic to `new_count` partitions (see `Broker::add_partitions`).
    ///
    /// Crash safety: the new partition directories are created (empty: an empty directory is
    /// an empty partition) and made durable first, then `topic.json` is replaced atomically
    /// with the new count; only then are the new logs opened and the grown `Topic` swapped
    /// into the registry. A crash before the replacement leaves the old count and stray empty
    /// directories, which the next growth reuses; after it, the next open opens every
    /// partition. Produces and fetches holding the previous `Topic` keep working: the grown
    /// one shares its partitions.
    /// Cost: a few directory creations and fsyncs, one log creation per new partition.
    pub(crate) fn add_partitions(
        &self,
        name: &str,
        new_count: u32,
        validate_only: bool,
    ) -> Result<TopicSummary, BrokerError> {
        validate_topic_name(name)?;
        let _admin = self.admin.lock();
        let topic = self.get(name)?;
        let old_count = topic.partition_count();
        if new_count <= old_count {
            return Err(BrokerError::InvalidArgument(format!(
                "topic {name:?} has {old_count} partitions: a partition count can only grow \
                 (asked for {new_count})"
            )));
        }
        if new_count > self.config.max_partitions {
            return Err(BrokerError::InvalidPartitionCount {
                count: new_count,
                max: self.config.max_partitions,
            });
        }
        let summary = TopicSummary {
            name: name.to_owned(),
            partitions: new_count,
        };
        if validate_only {
            return Ok(summary);
        }
        for p in old_count..new_count {
            let d = topic.dir.join(p.to_string());
            // A directory beyond the count is what a growth that crashed before replacing
            // topic.json left: nothing in it was ever acknowledged.
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(|e| BrokerError::io("remove", &d, e))?;
            }
            std::fs::create_dir(&d).map_err(|e| BrokerError::io("create", &d, e))?;
        }
        sync_dir(&topic.dir).map_err(|e| BrokerError::io("sync", &topic.dir, e))?;
        let overrides = topic.overrides.read().clone();
        TopicMeta::new(name, new_count, topic.created_at_ms, overrides.clone())
            .write(&topic.dir)?;
        let log_config = topic.config().log_config(&self.config);
        let opened = in_parallel(new_count - old_count, |i| {
            let p = old_count + i;
            Partition::open(
                &self.threads,
                p,
                topic.dir.join(p.to_string()),
                log_config.clone(),
            )
            .map(Arc::new)
        });
        let added = match opened {
            Ok(added) => added,
            Err(e) => {
                // Nothing was written to the new partitions: go back to the old count.
                let restored = TopicMeta::new(name, old_count, topic.created_at_ms, overrides)
                    .write(&topic.dir);
                if let Err(re) = restored {
                    tracing::error!(topic = name, error = %re, "restoring topic.json after a failed growth failed; the next open opens the new partitions");
                }
                return Err(e);
            }
        };
        let grown = Arc::new(topic.grown(added));
        self.map.write().insert(name.to_owned(), grown);
        tracing::info!(
            topic = name,
            from = old_count,
            to = new_count,
            "added partitions"
        );
        Ok(summary)
    }

    /// A topic's own configuration entries (not the defaults they override).
    pub(crate) fn overrides(&self, name: &str) -> Result<BTreeMap<String, String>, BrokerError> {
        Ok(self.get(name)?.overrides.read().clone())
    }

    /// Closes every topic's logs and wakes their waiters, reporting the first failure.
    pub(crate) fn close(&self) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        let mut first = None;
        for topic in self.map.read().values() {
            if let Err(e) = topic.close() {
                first.get_or_insert(e);
            }
            for p in &topic.partitions {
                p.end.send_modify(|_| {});
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Describes a topic: configuration (with each value's source against the broker's
/// `topic_defaults`), and per partition offsets, segments and record counts.
/// Cost: no IO (segment descriptors are in memory).
pub(crate) fn describe(t: &Topic, broker_defaults: &BTreeMap<String, String>) -> TopicDescription {
    let config = t.config().entries().clone();
    let overrides = t.overrides.read().clone();
    let config_sources = config
        .keys()
        .map(|k| {
            let source = if overrides.contains_key(k) {
                ConfigSource::Topic
            } else if broker_defaults.contains_key(k) {
                ConfigSource::Broker
            } else {
                ConfigSource::Default
            };
            (k.clone(), source)
        })
        .collect();
    TopicDescription {
        name: t.name.clone(),
        created_at_ms: t.created_at_ms,
        config,
        config_sources,
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
                    record_count: segments.iter().map(|s| s.record_count).sum(),
                    segments,
                }
            })
            .collect(),
    }
}

fn reopen(
    threads: &Arc<LogThreads>,
    topic: &str,
    p: &Partition,
    config: distlog_storage::LogConfig,
) -> Result<(), BrokerError> {
    let mut slot = p.log.write();
    let Some(old) = slot.take() else {
        *slot = Some(open_with_retry(threads, p, config)?);
        return Ok(());
    };
    let old_config = old.config().clone();
    let closed = old.close();
    drop(old);
    if let Err(e) = closed {
        tracing::warn!(topic, partition = p.index, error = %e, "closing log before reopen failed");
    }
    match open_with_retry(threads, p, config) {
        Ok(log) => {
            *slot = Some(log);
            Ok(())
        }
        Err(e) => {
            // Keep the partition serving with its previous settings.
            *slot = open_with_retry(threads, p, old_config).ok();
            Err(e)
        }
    }
}

/// Opens a partition's log, waiting briefly for calls that still hold the previous (closed)
/// log, which keeps the directory lock until its last reference drops.
fn open_with_retry(
    threads: &Arc<LogThreads>,
    p: &Partition,
    config: distlog_storage::LogConfig,
) -> Result<Arc<distlog_storage::Log>, BrokerError> {
    let mut attempt = 0;
    loop {
        match topic::open_log(threads, &p.dir, config.clone()) {
            Ok(log) => return Ok(log),
            Err(e) if attempt >= 200 => return Err(e),
            Err(_) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn clear_dir(dir: &Path) -> Result<(), BrokerError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BrokerError::io("list", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        tracing::info!(dir = %path.display(), "removing leftover of an interrupted topic operation");
        std::fs::remove_dir_all(&path).map_err(|e| BrokerError::io("remove", &path, e))?;
    }
    Ok(())
}
