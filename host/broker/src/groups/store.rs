//! Durable consumer-group offsets on an internal compacted log, like Kafka's
//! `__consumer_offsets`.
//!
//! The log lives in `<data_dir>/internal/__consumer_offsets/`, outside `topics/`, so no client
//! can list, create, produce to or delete it; it is an ordinary storage log, so framing, CRCs,
//! recovery (a torn tail is truncated) and its crash tests come from storage. One commit
//! request is one batch, appended and fsynced before it is acknowledged (commits are
//! serialized: one fsync each), so a commit of several partitions is all or nothing. Each
//! record is keyed by (group, topic, partition) and holds the offset; a tombstone (null value)
//! forgets the key (a deleted topic's offsets). At open the log is read from its start into
//! the in-memory map, the latest record of a key winning. The maintenance pass compacts the
//! log by the record key natively ([`GroupStore::compact`]), so it holds about one record
//! per live key.
//!
//! Record key (all integers little-endian, as in every format of this project):
//!
//! | bytes | field |
//! |-------|-------|
//! | 1 | version, 1 |
//! | 2 | group name length `g` |
//! | g | group name (UTF-8) |
//! | 2 | topic name length `t` |
//! | t | topic name (UTF-8) |
//! | 4 | partition |
//!
//! Record value (absent: a tombstone):
//!
//! | bytes | field |
//! |-------|-------|
//! | 1 | version, 1 |
//! | 8 | offset of the next record the group will consume |
//! | 8 | commit time, ms since the Unix epoch (signed) |
//! | 4 | metadata length `m` |
//! | m | client metadata (UTF-8) |
//!
//! The record's timestamp is the commit time. Earlier versions kept commits in a side file,
//! `<data_dir>/groups/offsets.log` ([`super::legacy`]); an open that finds it writes its
//! entries onto the log, syncs, and only then removes the file, so a crash in between only
//! redoes the migration (no commit can have been made in between: the open had not returned).

use super::legacy::{self, GroupMap};
use crate::config::TopicConfig;
use crate::error::append_error;
use crate::maintenance::compaction::{self, PluginCodecs};
use crate::{BrokerConfig, BrokerError};
use distlog_storage::batch::{BatchBuilder, Record};
use distlog_storage::compaction::{CompactReport, RecordKeys};
use distlog_storage::{Log, LogThreads};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The internal log's name (in messages, metrics and its directory).
pub(crate) const OFFSETS_LOG: &str = "__consumer_offsets";
const KEY_VERSION: u8 = 1;
const VALUE_VERSION: u8 = 1;
/// Records per batch when migrating the side file (a commit request is always one batch).
const MIGRATION_BATCH: usize = 10_000;

/// One committed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Offset of the next record the group will consume.
    pub offset: u64,
    /// Client metadata.
    pub metadata: String,
    /// When the broker stored the commit (ms since the Unix epoch).
    pub committed_at_ms: i64,
}

/// The internal log's configuration: a compacted log with every commit synced. Segments are
/// small so that closed ones, the only ones the cleaner reads, come soon.
fn offsets_topic_config() -> Result<TopicConfig, BrokerError> {
    crate::internal::config(&[
        ("cleanup.policy", "compact"),
        ("flush.policy", "batch"),
        ("segment.bytes", "16777216"),
    ])
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn encode_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + group.len() + topic.len());
    k.push(KEY_VERSION);
    put_str(&mut k, group);
    put_str(&mut k, topic);
    k.extend_from_slice(&partition.to_le_bytes());
    k
}

fn encode_value(o: &CommittedOffset) -> Vec<u8> {
    let mut v = Vec::with_capacity(21 + o.metadata.len());
    v.push(VALUE_VERSION);
    v.extend_from_slice(&o.offset.to_le_bytes());
    v.extend_from_slice(&o.committed_at_ms.to_le_bytes());
    let len = u32::try_from(o.metadata.len()).unwrap_or(u32::MAX);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(o.metadata.as_bytes());
    v
}

/// A little-endian reader over a record's bytes; `None` when they end early.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn str(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_key(k: &[u8]) -> Option<(String, String, u32)> {
    let mut r = Reader(k);
    if r.u8()? != KEY_VERSION {
        return None;
    }
    let g = usize::from(u16::from_le_bytes(r.array()?));
    let group = r.str(g)?;
    let t = usize::from(u16::from_le_bytes(r.array()?));
    let topic = r.str(t)?;
    let partition = u32::from_le_bytes(r.array()?);
    r.0.is_empty().then_some((group, topic, partition))
}

fn decode_value(topic: String, partition: u32, v: &[u8]) -> Option<CommittedOffset> {
    let mut r = Reader(v);
    if r.u8()? != VALUE_VERSION {
        return None;
    }
    let offset = u64::from_le_bytes(r.array()?);
    let committed_at_ms = i64::from_le_bytes(r.array()?);
    let m = usize::try_from(u32::from_le_bytes(r.array()?)).ok()?;
    let metadata = r.str(m)?;
    r.0.is_empty().then_some(CommittedOffset {
        topic,
        partition,
        offset,
        metadata,
        committed_at_ms,
    })
}

/// One batch of records (`None` value: a tombstone) for the offsets log.
fn batch(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp: i64) -> Result<Vec<u8>, BrokerError> {
    let size: usize = records
        .iter()
        .map(|(k, v)| 32 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut builder = BatchBuilder::with_capacity(size);
    for (key, value) in records {
        builder
            .push(&Record {
                timestamp,
                key: Some(key.clone()),
                value: value.clone(),
                headers: Vec::new(),
            })
            .map_err(|e| BrokerError::InvalidArgument(format!("offset commit: {e}")))?;
    }
    builder
        .finish()
        .map_err(|e| BrokerError::InvalidArgument(format!("offset commit: {e}")))
}

/// Applies one record of the log to the map: the latest record of a key wins.
fn apply(groups: &mut GroupMap, key: &[u8], value: Option<&[u8]>) -> bool {
    let Some((group, topic, partition)) = decode_key(key) else {
        return false;
    };
    match value {
        Some(v) => {
            let Some(o) = decode_value(topic.clone(), partition, v) else {
                return false;
            };
            groups
                .entry(group)
                .or_default()
                .insert((topic, partition), o);
        }
        None => {
            if let Some(entries) = groups.get_mut(&group) {
                entries.remove(&(topic, partition));
                if entries.is_empty() {
                    groups.remove(&group);
                }
            }
        }
    }
    true
}

/// The consumer-group offset store. `Send + Sync`; commits are serialized (one fsync each);
/// reads take only the map's lock, never held across an fsync.
#[derive(Debug)]
pub struct GroupStore {
    log: Arc<Log>,
    /// Serializes appends, so the map changes in log order.
    append: Mutex<()>,
    groups: RwLock<GroupMap>,
    config: TopicConfig,
}

impl GroupStore {
    /// Opens (creating if needed) the offsets log under `data_dir` on `threads`, reads it into
    /// memory and migrates a side file left by an earlier version.
    /// Cost: reads the whole log once (about one record per live key after compaction).
    pub fn open(
        threads: &Arc<LogThreads>,
        data_dir: &Path,
        broker: &BrokerConfig,
    ) -> Result<Self, BrokerError> {
        let dir = Self::dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io("create", &dir, e))?;
        let config = offsets_topic_config()?;
        let log = crate::topics::topic::open_log(threads, &dir, config.log_config(broker))?;
        let groups = read_all(&log)?;
        let store = Self {
            log,
            append: Mutex::new(()),
            groups: RwLock::new(groups),
            config,
        };
        store.migrate(&data_dir.join("groups"))?;
        Ok(store)
    }

    /// Writes the side file's entries onto the log (synced), then removes the file.
    fn migrate(&self, dir: &Path) -> Result<(), BrokerError> {
        let path = dir.join(legacy::FILE_NAME);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BrokerError::io("read", &path, e)),
        };
        let replayed = legacy::replay(&data);
        if replayed.damaged > 0 || replayed.torn_tail > 0 {
            tracing::warn!(path = %path.display(), damaged_bytes = replayed.damaged,
                torn_tail_bytes = replayed.torn_tail, "skipped damaged records of the group offsets file");
        }
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = replayed
            .groups
            .iter()
            .flat_map(|(g, entries)| {
                entries
                    .values()
                    .map(move |o| (encode_key(g, &o.topic, o.partition), Some(encode_value(o))))
            })
            .collect();
        let count = records.len();
        {
            let _append = self.append.lock();
            for chunk in records.chunks(MIGRATION_BATCH) {
                self.append_synced(chunk, crate::now_ms())?;
            }
            let mut groups = self.groups.write();
            for (k, v) in &records {
                apply(&mut groups, k, v.as_deref());
            }
        }
        for name in [legacy::FILE_NAME, legacy::TMP_NAME] {
            let p = dir.join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BrokerError::io("remove", &p, e)),
            }
        }
        crate::topics::topic::sync_dir(dir).map_err(|e| BrokerError::io("sync", dir, e))?;
        // The directory held nothing else: it goes too (a directory something else was put
        // into stays).
        if std::fs::remove_dir(dir).is_ok()
            && let Some(parent) = dir.parent()
        {
            crate::topics::topic::sync_dir(parent)
                .map_err(|e| BrokerError::io("sync", parent, e))?;
        }
        tracing::info!(path = %path.display(), offsets = count, "migrated the group offsets file onto the {OFFSETS_LOG} log");
        Ok(())
    }

    /// Appends one batch and waits for its fsync. The caller holds `append`.
    fn append_synced(
        &self,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        timestamp: i64,
    ) -> Result<(), BrokerError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = batch(records, timestamp)?;
        self.log
            .append(&mut bytes)
            .map(|_| ())
            .map_err(|e| append_error(OFFSETS_LOG, 0, e))
    }

    /// Stores `offsets` for `group` durably (one batch, one fsync) and returns once they would
    /// survive a crash. An error leaves the offsets uncommitted in memory; after a failed
    /// fsync the log refuses further commits until the broker restarts and revalidates it.
    pub fn commit(&self, group: &str, offsets: Vec<CommittedOffset>) -> Result<(), BrokerError> {
        let timestamp = offsets.iter().map(|o| o.committed_at_ms).max().unwrap_or(0);
        let records: Vec<_> = offsets
            .iter()
            .map(|o| {
                (
                    encode_key(group, &o.topic, o.partition),
                    Some(encode_value(o)),
                )
            })
            .collect();
        let _append = self.append.lock();
        self.append_synced(&records, timestamp)?;
        let mut groups = self.groups.write();
        let entries = groups.entry(group.to_owned()).or_default();
        for o in offsets {
            entries.insert((o.topic.clone(), o.partition), o);
        }
        Ok(())
    }

    /// The offsets `group` committed, sorted by topic and partition; only `topic`'s when
    /// given. `GroupNotFound` when the group has none.
    pub fn fetch(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        let groups = self.groups.read();
        let entries = groups
            .get(group)
            .ok_or_else(|| BrokerError::GroupNotFound(group.to_owned()))?;
        Ok(entries
            .values()
            .filter(|o| topic.is_none_or(|t| o.topic == t))
            .cloned()
            .collect())
    }

    /// Every group name, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.groups.read().keys().cloned().collect()
    }

    /// Closes the log (commits are already synced; this writes its checkpoint).
    pub fn sync(&self) -> Result<(), BrokerError> {
        self.log.close().map_err(|e| BrokerError::Storage {
            topic: OFFSETS_LOG.to_owned(),
            partition: 0,
            message: e.to_string(),
        })
    }

    /// Forgets every offset committed for `topic` (it was deleted; a topic created later
    /// under the same name starts with no committed offsets, as in Kafka): one batch of
    /// tombstones, synced. Groups left with no offsets are forgotten too. Returns how many
    /// offsets were removed.
    pub fn forget_topic(&self, topic: &str) -> Result<usize, BrokerError> {
        let _append = self.append.lock();
        let tombstones: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .groups
            .read()
            .iter()
            .flat_map(|(g, entries)| {
                entries
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(move |(t, p)| (encode_key(g, t, *p), None))
            })
            .collect();
        self.append_synced(&tombstones, crate::now_ms())?;
        let mut groups = self.groups.write();
        for (k, _) in &tombstones {
            apply(&mut groups, k, None);
        }
        Ok(tombstones.len())
    }

    /// Forgets every offset `group` committed: one batch of tombstones, synced, before the
    /// map changes. Returns how many offsets were removed; `GroupNotFound` when the group has
    /// none.
    pub fn delete_group(&self, group: &str) -> Result<usize, BrokerError> {
        let _append = self.append.lock();
        let tombstones: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let groups = self.groups.read();
            let entries = groups
                .get(group)
                .ok_or_else(|| BrokerError::GroupNotFound(group.to_owned()))?;
            entries
                .keys()
                .map(|(t, p)| (encode_key(group, t, *p), None))
                .collect()
        };
        self.tombstone(&tombstones)
    }

    /// Forgets the offsets `group` committed for `partitions` (those it has none for are
    /// skipped): one batch of tombstones, synced. Returns how many offsets were removed;
    /// `GroupNotFound` when the group has none at all. A group left with none is forgotten.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<usize, BrokerError> {
        let _append = self.append.lock();
        let tombstones: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let groups = self.groups.read();
            let entries = groups
                .get(group)
                .ok_or_else(|| BrokerError::GroupNotFound(group.to_owned()))?;
            let mut keys: Vec<&(String, u32)> = partitions
                .iter()
                .filter(|k| entries.contains_key(*k))
                .collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .map(|(t, p)| (encode_key(group, t, *p), None))
                .collect()
        };
        self.tombstone(&tombstones)
    }

    /// Appends `tombstones` (synced) and applies them to the map. The caller holds `append`.
    fn tombstone(&self, tombstones: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<usize, BrokerError> {
        self.append_synced(tombstones, crate::now_ms())?;
        let mut groups = self.groups.write();
        for (k, _) in tombstones {
            apply(&mut groups, k, None);
        }
        Ok(tombstones.len())
    }

    /// Runs one compaction pass on the offsets log when it is worth it (or always, with
    /// `force`), keeping the latest record per key; tombstones go after
    /// `delete.retention.ms`. Cost: storage's bounded pass, no plugin call.
    pub(crate) fn compact(
        &self,
        max_dirty_bytes: u64,
        force: bool,
    ) -> Result<Option<CompactReport>, BrokerError> {
        if !force {
            let newest_inactive = self
                .log
                .segments()
                .iter()
                .rev()
                .find(|s| !s.active)
                .map(|s| s.max_timestamp);
            if !compaction::worth_cleaning(
                &self.config,
                &self.log.cleanable_stats(),
                newest_inactive,
                crate::now_ms(),
            ) {
                return Ok(None);
            }
        }
        let options = compaction::options(&self.config, max_dirty_bytes);
        self.log
            .compact(&options, &mut RecordKeys, &mut PluginCodecs(None))
            .map(Some)
            .map_err(|e| BrokerError::Storage {
                topic: OFFSETS_LOG.to_owned(),
                partition: 0,
                message: format!("compaction failed: {e}"),
            })
    }

    /// The directory of the offsets log under `data_dir`.
    pub(crate) fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("internal").join(OFFSETS_LOG)
    }

    /// The offsets log (its failure latch, for the broker's status; tests).
    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }
}

/// Reads the whole log into a map. A batch that does not decode is an error (storage already
/// checked its CRC: it is damage, not a torn tail); a record this version cannot read is
/// skipped with a warning.
fn read_all(log: &Log) -> Result<GroupMap, BrokerError> {
    let mut groups = GroupMap::new();
    let mut skipped = 0usize;
    crate::internal::for_each_record(log, OFFSETS_LOG, |r| {
        match r.key() {
            Some(key) if apply(&mut groups, key, r.value()) => {}
            _ => skipped += 1,
        }
        Ok(())
    })?;
    if skipped > 0 {
        tracing::warn!(
            records = skipped,
            "skipped unreadable records of the {OFFSETS_LOG} log"
        );
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    //! The store on its log: reopen, torn tail, migration from the side file, a deleted
    //! topic's offsets, compaction.
    use super::*;
    use std::io::Write;

    fn open(dir: &Path) -> GroupStore {
        let threads = LogThreads::start().expect("threads");
        GroupStore::open(&threads, dir, &BrokerConfig::new(dir)).expect("open")
    }

    fn offset(topic: &str, offset: u64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition: 0,
            offset,
            metadata: format!("m{offset}"),
            committed_at_ms: 1_000 + i64::try_from(offset).unwrap_or(0),
        }
    }

    fn commit(store: &GroupStore, group: &str, topic: &str, o: u64) {
        store.commit(group, vec![offset(topic, o)]).expect("commit");
    }

    fn offsets(store: &GroupStore, group: &str) -> Vec<(String, u64)> {
        store
            .fetch(group, None)
            .expect("fetch")
            .into_iter()
            .map(|o| (o.topic, o.offset))
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let o = offset("orders", 42);
        let key = encode_key("g", "orders", 0);
        assert_eq!(decode_key(&key), Some(("g".into(), "orders".into(), 0)));
        assert_eq!(decode_value("orders".into(), 0, &encode_value(&o)), Some(o));
        assert_eq!(decode_key(&key[..key.len() - 1]), None);
    }

    #[test]
    fn survives_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(dir.path());
            commit(&store, "g", "t", 5);
            commit(&store, "g", "t", 7);
            commit(&store, "h", "u", 1);
            store.sync().expect("close");
        }
        // A commit torn by a crash: half a batch at the end of the active segment.
        let seg_dir = GroupStore::dir(dir.path());
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&seg_dir)
            .expect("list")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        let active = logs.last().expect("a segment");
        let whole = std::fs::read(active).expect("read");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(active)
            .expect("open");
        f.write_all(&whole[..40.min(whole.len())]).expect("write");
        drop(f);
        let store = open(dir.path());
        let got = store.fetch("g", None).expect("fetch");
        assert_eq!(got, vec![offset("t", 7)]);
        assert_eq!(store.groups(), vec!["g".to_owned(), "h".to_owned()]);
        assert!(matches!(
            store.fetch("nope", None),
            Err(BrokerError::GroupNotFound(_))
        ));
        commit(&store, "g", "t", 9);
        store.sync().expect("close");
        drop(store);
        let store = open(dir.path());
        assert_eq!(offsets(&store, "g"), vec![("t".to_owned(), 9)]);
    }

    /// Guards the migration: a side file of the old format (with a damaged line and a torn
    /// tail) is written onto the log once, and removed; a crash before the removal redoes it.
    #[test]
    fn the_old_side_file_is_migrated_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups_dir = dir.path().join("groups");
        std::fs::create_dir_all(&groups_dir).expect("mkdir");
        let line = |group: &str, offsets: Vec<CommittedOffset>| {
            legacy::encode_line(&legacy::Line {
                group: group.into(),
                offsets,
            })
        };
        let mut old = line("g", vec![offset("t", 5), offset("u", 6)]);
        old.extend_from_slice(b"0badc0de {\"group\":\"g\",\"offsets\":[{\"top");
        old.extend(line("h", vec![offset("t", 8)]));
        old.extend(line("g", vec![offset("t", 9)]));
        old.extend_from_slice(b"0000abcd {\"group\":\"g\",\"off");
        let side = groups_dir.join(legacy::FILE_NAME);
        std::fs::write(&side, &old).expect("write");
        let expect = |store: &GroupStore| {
            assert_eq!(
                offsets(store, "g"),
                vec![("t".to_owned(), 9), ("u".to_owned(), 6)]
            );
            assert_eq!(offsets(store, "h"), vec![("t".to_owned(), 8)]);
            assert_eq!(
                store.fetch("g", Some("u")).expect("fetch"),
                vec![offset("u", 6)]
            );
        };
        {
            let store = open(dir.path());
            expect(&store);
            assert!(!side.exists(), "the side file is gone");
            assert!(!groups_dir.exists(), "and its emptied directory");
            store.sync().expect("close");
        }
        // A crash after the log write and before the removal: the file is there again.
        std::fs::create_dir_all(&groups_dir).expect("mkdir");
        std::fs::write(&side, &old).expect("write");
        {
            let store = open(dir.path());
            expect(&store);
            assert!(!side.exists());
            commit(&store, "g", "t", 10);
            store.sync().expect("close");
        }
        let store = open(dir.path());
        assert_eq!(
            offsets(&store, "g"),
            vec![("t".to_owned(), 10), ("u".to_owned(), 6)]
        );
        assert!(!side.exists());
    }

    #[test]
    fn a_deleted_topics_offsets_are_forgotten_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(dir.path());
            commit(&store, "g", "t", 5);
            commit(&store, "g", "u", 6);
            commit(&store, "h", "t", 1);
            assert_eq!(store.forget_topic("t").expect("forget"), 2);
            assert_eq!(store.forget_topic("t").expect("forget again"), 0);
            store.sync().expect("close");
        }
        let store = open(dir.path());
        assert_eq!(offsets(&store, "g"), vec![("u".to_owned(), 6)]);
        // A group with nothing left is gone.
        assert_eq!(store.groups(), vec!["g".to_owned()]);
        assert!(matches!(
            store.fetch("h", None),
            Err(BrokerError::GroupNotFound(_))
        ));
    }

    #[test]
    fn compaction_keeps_the_latest_record_per_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(dir.path());
            for o in 0..50 {
                commit(&store, "g", "t", o);
                commit(&store, "g", "u", 100 + o);
            }
            commit(&store, "h", "t", 1);
            store.forget_topic("u").expect("forget");
            assert!(store.log().roll().expect("roll"));
            let report = store
                .compact(1 << 20, true)
                .expect("compact")
                .expect("cleaned");
            assert_eq!(report.records_superseded, 49 + 50, "{report:?}");
            let segments = store.log().segments();
            let records: u64 = segments.iter().map(|s| s.record_count).sum();
            // g/t's latest, h/t, and the tombstone of g/u (kept for delete.retention.ms).
            assert_eq!(records, 3, "{segments:?}");
            store.sync().expect("close");
        }
        let store = open(dir.path());
        assert_eq!(offsets(&store, "g"), vec![("t".to_owned(), 49)]);
        assert_eq!(offsets(&store, "h"), vec![("t".to_owned(), 1)]);
    }
}
