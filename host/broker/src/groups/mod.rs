//! Consumer groups: committed positions per (group, topic, partition).
//!
//! This room checks a commit (group name, metadata size, that every partition exists) and
//! hands it to the offset store ([`store`]), which keeps the positions on an internal
//! compacted log (`<data_dir>/internal/__consumer_offsets/`, like Kafka's
//! `__consumer_offsets`), makes each commit durable before it is acknowledged and reads the
//! log back at open. Coordinator state persists only through storage: no side file.
//!
//! Invariant: a commit is acknowledged only once it would survive a crash, and a deleted
//! topic's offsets are forgotten durably, so a topic created later under the same name starts
//! with no committed offsets (as in Kafka).

mod legacy;
pub mod reset;
pub mod store;

use crate::BrokerError;
use crate::names::validate_group_name;
pub use reset::{PartitionReset, ResetTarget};
pub use store::{CommittedOffset, GroupStore};

/// Largest client metadata stored with a committed offset.
pub const MAX_COMMIT_METADATA: usize = 4096;

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

/// The group room: validation in front of the offset store.
#[derive(Debug)]
pub(crate) struct Groups {
    store: GroupStore,
}

impl Groups {
    pub(crate) fn open(store: GroupStore) -> Self {
        Self { store }
    }

    /// Checks and durably stores a group's positions (see `Broker::commit_offsets`);
    /// `partition_exists` fails for a topic or partition that does not exist.
    pub(crate) fn commit(
        &self,
        group: &str,
        offsets: Vec<OffsetCommit>,
        partition_exists: impl Fn(&str, u32) -> Result<(), BrokerError>,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        if offsets.is_empty() {
            return Err(BrokerError::Empty("the offset commit"));
        }
        let mut entries = Vec::with_capacity(offsets.len());
        for o in offsets {
            partition_exists(&o.topic, o.partition)?;
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
                committed_at_ms: now_ms,
            });
        }
        self.store.commit(group, entries)
    }

    /// A group's committed offsets (see `Broker::fetch_offsets`).
    pub(crate) fn fetch(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        validate_group_name(group)?;
        self.store.fetch(group, topic)
    }

    /// Every group with committed offsets, sorted.
    pub(crate) fn list(&self) -> Vec<String> {
        self.store.groups()
    }

    /// Forgets every offset of `group` durably (see `Broker::delete_group`).
    pub(crate) fn delete_group(&self, group: &str) -> Result<usize, BrokerError> {
        validate_group_name(group)?;
        self.store.delete_group(group)
    }

    /// Forgets some of `group`'s offsets durably (see `Broker::delete_group_offsets`).
    pub(crate) fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<usize, BrokerError> {
        validate_group_name(group)?;
        self.store.delete_offsets(group, partitions)
    }

    /// Forgets a deleted topic's offsets; a failure is logged (the topic is gone either way).
    pub(crate) fn forget_topic(&self, topic: &str) {
        if let Err(e) = self.store.forget_topic(topic) {
            tracing::warn!(topic, error = %e, "forgetting deleted topic's group offsets failed");
        }
    }

    /// One compaction pass of the offsets log when it is worth it; failures are logged (the
    /// next pass retries).
    pub(crate) fn compact(&self, max_dirty_bytes: u64) {
        match self.store.compact(max_dirty_bytes, false) {
            Ok(Some(r)) => tracing::info!(
                log = store::OFFSETS_LOG,
                bytes_read = r.bytes_read,
                bytes_written = r.bytes_written,
                dropped = r.records_superseded + r.tombstones_dropped,
                "compaction pass done"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "compaction of the offsets log failed; nothing changed")
            }
        }
    }

    /// Why the offsets log refuses commits, when it does (a failed fsync latched it).
    pub(crate) fn failure(&self) -> Option<String> {
        self.store.log().failure().map(|f| f.to_string())
    }

    /// Closes the offsets log for shutdown (commits are already durable).
    pub(crate) fn close(&self) -> Result<(), BrokerError> {
        self.store.sync()
    }
}
