//! Deciding a produce: which partition each record goes to, the batch per partition, the
//! limits, the timestamps and the codec. Pure: no log, no plugin, no clock read (the caller
//! passes `now_ms`), so every rule here is tested without a disk.

use crate::BrokerError;
use crate::config::TopicConfig;
use crate::partitioner::partition_for_key;
use crate::produce::ProduceRecord;
use distlog_storage::batch::{BatchBuilder, Record, TimestampType};
use std::collections::BTreeMap;

/// Where the records of one request may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// Every record to this partition (already checked to exist), when given.
    pub partition: Option<u32>,
    /// The topic's partition count (at least 1).
    pub partition_count: u32,
    /// The partition the unkeyed records of this request go to together (round-robin).
    pub unkeyed: u32,
}

/// The topic's rules for new batches, read once per produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    /// `max.message.bytes`: the largest record, and the largest encoded batch per partition.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// The codec plugin new batches are offered to (`compression`, aliases resolved).
    pub codec: Option<String>,
    /// The broker's clock, for records without a timestamp.
    pub now_ms: i64,
}

impl Rules {
    /// The rules of `config` at `now_ms`.
    pub(crate) fn of(config: &TopicConfig, now_ms: i64) -> Self {
        Self {
            max_message_bytes: config.max_message_bytes(),
            timestamp_type: config.timestamp_type(),
            codec: config.codec().map(str::to_owned),
            now_ms,
        }
    }
}

/// One partition's batch, built and within the limits, not yet encoded.
#[derive(Debug)]
pub(crate) struct PlannedBatch {
    /// Partition index.
    pub partition: u32,
    /// The request indices of its records, in batch order.
    pub indices: Vec<usize>,
    /// The records, framed; the codec runs on its payload.
    pub builder: BatchBuilder,
}

/// What a produce will append: one batch per partition touched, in partition order.
#[derive(Debug)]
pub(crate) struct ProducePlan {
    /// Per record, in request order: its partition.
    pub record_partitions: Vec<u32>,
    /// The batches, in partition order.
    pub batches: Vec<PlannedBatch>,
    /// The codec to offer every batch to.
    pub codec: Option<String>,
}

/// The partition of each record: all to `target.partition` when given, otherwise a keyed
/// record to `murmur2(key) % partitions` and the unkeyed ones to `target.unkeyed`.
pub(crate) fn route(records: &[ProduceRecord], target: Target) -> Vec<u32> {
    records
        .iter()
        .map(|r| match (target.partition, &r.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, target.partition_count),
            (None, None) => target.unkeyed,
        })
        .collect()
}

/// Routes `records` and builds one batch per partition, each record and each batch checked
/// against `max.message.bytes` (`RecordTooLarge` names the record's request index,
/// `BatchTooLarge` the partition). Nothing is appended if this fails.
/// Cost: one copy of every record into its batch.
pub(crate) fn plan(
    records: Vec<ProduceRecord>,
    target: Target,
    rules: &Rules,
) -> Result<ProducePlan, BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::Empty("the produce request's record list"));
    }
    let max = rules.max_message_bytes;
    let record_partitions = route(&records, target);
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, p) in record_partitions.iter().enumerate() {
        by_partition.entry(*p).or_default().push(i);
    }
    let mut records: Vec<Option<ProduceRecord>> = records.into_iter().map(Some).collect();
    let mut batches = Vec::with_capacity(by_partition.len());
    for (p, indices) in by_partition {
        // Room for every record plus per-record framing: one allocation per batch.
        let estimate: usize = indices
            .iter()
            .filter_map(|&i| records.get(i).and_then(Option::as_ref))
            .map(|r| 32 + r.size() + 8 * r.headers.len())
            .sum();
        let mut builder = BatchBuilder::with_capacity(estimate.min(max + 1024))
            .timestamp_type(rules.timestamp_type);
        for &i in &indices {
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
                timestamp: r.timestamp_ms.unwrap_or(rules.now_ms),
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
        batches.push(PlannedBatch {
            partition: p,
            indices,
            builder,
        });
    }
    Ok(ProducePlan {
        record_partitions,
        batches,
        codec: rules.codec.clone(),
    })
}

#[cfg(test)]
mod tests {
    //! The plan against a model: every record in exactly one batch, on the partition the
    //! routing rules give, in request order; limits refuse the whole request.
    use super::*;

    fn rules(max: usize) -> Rules {
        Rules {
            max_message_bytes: max,
            timestamp_type: TimestampType::CreateTime,
            codec: None,
            now_ms: 77,
        }
    }

    fn record(key: Option<&[u8]>, value_len: usize) -> ProduceRecord {
        ProduceRecord {
            key: key.map(<[u8]>::to_vec),
            value: Some(vec![b'v'; value_len]),
            ..ProduceRecord::default()
        }
    }

    /// xorshift64*: deterministic cases without a dependency.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn every_record_lands_once_on_its_routed_partition_in_request_order() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let count = 1 + (next(&mut seed) % 8) as u32;
            let explicit = next(&mut seed)
                .is_multiple_of(4)
                .then(|| (next(&mut seed) % 8) as u32 % count);
            let target = Target {
                partition: explicit,
                partition_count: count,
                unkeyed: (next(&mut seed) % u64::from(count)) as u32,
            };
            let n = 1 + (next(&mut seed) % 20) as usize;
            let records: Vec<ProduceRecord> = (0..n)
                .map(|_| {
                    let k = next(&mut seed);
                    let key = (!k.is_multiple_of(3)).then(|| (k % 16).to_le_bytes());
                    record(key.as_ref().map(|k| &k[..]), (k % 50) as usize)
                })
                .collect();
            let expected: Vec<u32> = records
                .iter()
                .map(|r| match (explicit, &r.key) {
                    (Some(p), _) => p,
                    (None, Some(k)) => partition_for_key(k, count),
                    (None, None) => target.unkeyed,
                })
                .collect();
            let plan = plan(records, target, &rules(1 << 20)).expect("plan");
            assert_eq!(plan.record_partitions, expected);
            let mut seen: Vec<usize> = Vec::new();
            let mut last_partition = None;
            for b in &plan.batches {
                assert!(last_partition < Some(b.partition), "partition order");
                last_partition = Some(b.partition);
                assert!(b.indices.windows(2).all(|w| w[0] < w[1]), "request order");
                assert!(b.indices.iter().all(|&i| expected[i] == b.partition));
                seen.extend(&b.indices);
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "each record once");
        }
    }

    #[test]
    fn limits_refuse_the_request() {
        let target = Target {
            partition: Some(0),
            partition_count: 1,
            unkeyed: 0,
        };
        let refused = plan(
            vec![record(None, 10), record(None, 200)],
            target,
            &rules(128),
        );
        assert!(
            matches!(
                refused,
                Err(BrokerError::RecordTooLarge {
                    index: 1,
                    size: 200,
                    max: 128
                })
            ),
            "{refused:?}"
        );
        // Each record fits; together they do not.
        let refused = plan(
            (0..4).map(|_| record(None, 100)).collect(),
            target,
            &rules(200),
        );
        assert!(
            matches!(
                refused,
                Err(BrokerError::BatchTooLarge {
                    partition: 0,
                    max: 200,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(matches!(
            plan(Vec::new(), target, &rules(200)),
            Err(BrokerError::Empty(_))
        ));
    }

    #[test]
    fn rules_follow_the_topic_configuration() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let c = TopicConfig::resolve(
            &BTreeMap::new(),
            &map(&[
                ("compression", "lz4"),
                ("message.timestamp.type", "LogAppendTime"),
                ("max.message.bytes", "4096"),
            ]),
        )
        .expect("valid");
        let r = Rules::of(&c, 5);
        assert_eq!(r.codec.as_deref(), Some("codec-lz4"));
        assert_eq!(r.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!((r.max_message_bytes, r.now_ms), (4096, 5));
        let r = Rules::of(
            &TopicConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).expect("defaults"),
            5,
        );
        assert_eq!(r.codec, None);
        assert_eq!(r.timestamp_type, TimestampType::CreateTime);
    }
}
