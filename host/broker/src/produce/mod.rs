//! Produce: appending records to a topic's partitions.
//!
//! Deciding and doing are apart. [`plan`] decides, without IO: the partition of every record,
//! one batch per partition, the limits (`max.message.bytes`), timestamps and the codec. This
//! module carries the plan out: it offers each batch to the codec plugin, then appends the
//! batches and publishes the new end offsets.
//!
//! Invariant: every batch of a request is planned and encoded before any is appended, so a
//! request refused for its size or contents appends nothing; the records are acknowledged
//! only once [`PendingSync::wait`] says they are as durable as the topic's `flush.policy`
//! promises.

pub(crate) mod plan;

use crate::BrokerError;
use crate::error::append_error;
use crate::topics::topic::Topic;
use distlog_plugin_host::PluginHost;
use distlog_storage::batch::Header;
use distlog_storage::{AppendInfo, CrcCheck, Log};
use plan::{Rules, Target};
use std::sync::Arc;
use std::sync::atomic::Ordering;

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

/// Appends of one `Broker::produce_deferred` call that still owe the topic's
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

/// Plans and appends `records` to `t` (see `Broker::produce_deferred`).
/// Cost: one batch encoding (a copy of the records), one codec call and one append per
/// partition touched.
pub(crate) fn produce_deferred(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: Option<u32>,
    records: Vec<ProduceRecord>,
) -> Result<(ProduceResult, PendingSync), BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::Empty("the produce request's record list"));
    }
    let config = t.config();
    let count = t.partition_count();
    if let Some(p) = partition {
        t.partition(p)?;
    }
    let target = Target {
        partition,
        partition_count: count,
        unkeyed: t.next_unkeyed.fetch_add(1, Ordering::Relaxed) % count.max(1),
    };
    let plan = plan::plan(records, target, &Rules::of(&config, crate::now_ms()))?;
    let mut batches = Vec::with_capacity(plan.batches.len());
    for b in plan.batches {
        let log = t.partition(b.partition)?.log()?;
        let batch = crate::codec::encode(
            host,
            &log,
            plan.codec.as_deref(),
            b.builder,
            &t.name,
            b.partition,
        )?;
        batches.push((b.partition, b.indices, batch));
    }
    let mut result = ProduceResult {
        partitions: Vec::with_capacity(batches.len()),
        offsets: vec![0; plan.record_partitions.len()],
        record_partitions: plan.record_partitions,
        bytes: 0,
    };
    let mut pending = PendingSync {
        topic: t.name.clone(),
        appends: Vec::new(),
    };
    for (p, indices, mut batch) in batches {
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
