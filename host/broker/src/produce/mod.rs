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
use distlog_storage::batch::{BatchBuilder, BatchLimits, BatchMeta, Header, TimestampType};
use distlog_storage::{AppendInfo, CrcCheck, Idempotent, Log};
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

/// A batch a producer encoded itself in this format's record encoding (the records section
/// of a Kafka RecordBatch v2 is byte for byte the same), uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The records section, uncompressed.
    pub records: bytes::Bytes,
    /// Records in it.
    pub record_count: u32,
    /// Offset delta of its last record.
    pub last_offset_delta: u32,
    /// The timestamp its record timestamps are deltas from.
    pub first_timestamp: i64,
    /// Producer id, epoch and first sequence (-1 when none).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction.
    pub transactional: bool,
}

/// What `Broker::produce_batches` appended to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchesAppend {
    /// Offset of the first record of the first batch.
    pub base_offset: u64,
    /// Records appended.
    pub record_count: u32,
    /// The broker's append time for a `LogAppendTime` topic, `None` for create time.
    pub log_append_time_ms: Option<i64>,
    /// Encoded bytes appended (batch headers included).
    pub bytes: usize,
}

/// Validates and appends producer-encoded `batches` to `t`/`partition` (see
/// `Broker::produce_batches`). A batch with a producer id goes through the partition's
/// producer-state check: a retry of one of the producer's last five batches is not appended
/// again and answers with the original's offsets; a sequence gap, a fenced epoch or an unknown
/// producer is refused with `BrokerError::Producer` (batches before it stay appended).
pub(crate) fn produce_batches(
    host: Option<&PluginHost>,
    t: &Topic,
    partition: u32,
    batches: Vec<EncodedBatch>,
) -> Result<(BatchesAppend, PendingSync), BrokerError> {
    if batches.is_empty() {
        return Err(BrokerError::Empty("the produce request's batch list"));
    }
    let config = t.config();
    let p = t.partition(partition)?;
    let log = p.log()?;
    let rules = Rules::of(&config, crate::now_ms());
    let mut encoded = Vec::with_capacity(batches.len());
    for b in batches {
        let meta = BatchMeta {
            timestamp_type: rules.timestamp_type,
            transactional: b.transactional,
            last_offset_delta: b.last_offset_delta,
            first_timestamp: b.first_timestamp,
            producer_id: b.producer_id,
            producer_epoch: b.producer_epoch,
            base_sequence: b.base_sequence,
            record_count: b.record_count,
            ..BatchMeta::default()
        };
        let builder = BatchBuilder::from_records(&meta, &b.records, BatchLimits::default())
            .map_err(|e| BrokerError::InvalidArgument(format!("invalid record batch: {e}")))?;
        let size = builder.encoded_len();
        if size > rules.max_message_bytes {
            return Err(BrokerError::BatchTooLarge {
                partition,
                size,
                max: rules.max_message_bytes,
            });
        }
        encoded.push((
            crate::codec::encode(
                host,
                &log,
                rules.codec.as_deref(),
                builder,
                &t.name,
                partition,
            )?,
            b.producer_id >= 0,
        ));
    }
    let mut pending = PendingSync {
        topic: t.name.clone(),
        appends: Vec::new(),
    };
    let mut result: Option<BatchesAppend> = None;
    for (mut batch, idempotent) in encoded {
        // An idempotent producer's batch is checked against the partition's producer state
        // under the writer lock: a retry is answered with the original's offsets.
        let info = if idempotent {
            match log.append_idempotent_deferred(&mut batch, CrcCheck::Trusted) {
                Ok(Idempotent::Appended(info) | Idempotent::Duplicate(info)) => info,
                Err(e) => return Err(append_error(&t.name, partition, e)),
            }
        } else {
            log.append_deferred(&mut batch, CrcCheck::Trusted)
                .map_err(|e| append_error(&t.name, partition, e))?
        };
        if log.syncs_on_append() {
            pending.appends.push((partition, log.clone(), info));
        }
        p.publish_end(info.last_offset.saturating_add(1));
        let count = u32::try_from(info.last_offset - info.base_offset + 1).unwrap_or(u32::MAX);
        let r = result.get_or_insert(BatchesAppend {
            base_offset: info.base_offset,
            record_count: 0,
            log_append_time_ms: (rules.timestamp_type == TimestampType::LogAppendTime)
                .then_some(info.log_append_time_ms),
            bytes: 0,
        });
        r.record_count = r.record_count.saturating_add(count);
        r.bytes += batch.len();
    }
    let result = result.ok_or(BrokerError::Empty("the produce request's batch list"))?;
    Ok((result, pending))
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
