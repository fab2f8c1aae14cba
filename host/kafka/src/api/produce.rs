//! Produce: each partition's record batches are checked and decompressed here, then
//! validated and appended by the broker as sent (`Broker::produce_batches`). The answer
//! waits for the topic's `flush.policy` (`acks` 1 and -1 alike: one broker is the whole
//! in-sync set); `acks=0` gets no answer at all, as Kafka's protocol specifies.

use super::{Ctx, blocking};
use crate::records;
use distlog_broker::{BatchesAppend, Broker, BrokerError, OffsetQuery, PendingSync};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;

/// Produces of at most this many bytes to a topic whose produce cannot block run on the
/// async worker (as the gRPC server does): a copy into the page cache costs less than the
/// blocking pool's two thread handoffs.
const INLINE_PRODUCE_BYTES: usize = 1 << 20;

struct Partition {
    topic: usize,
    index: i32,
    outcome: Result<BatchesAppend, (ResponseError, String)>,
    pending: Option<PendingSync>,
}

/// A produce whose batches are appended (visible to readers) but not yet known durable.
pub(super) struct Appended {
    acks: i16,
    names: Vec<kafka_protocol::messages::TopicName>,
    broker: Broker,
    partitions: Vec<(String, Partition)>,
    refused: Option<ProduceResponse>,
}

/// Appends the request's batches. Runs before the connection reads its next request, so a
/// connection's produces are appended in request order (as Kafka, which runs one request of
/// a connection at a time); the wait for durability ([`finish`]) overlaps the next ones.
pub(super) async fn append(ctx: &Arc<Ctx>, _version: i16, req: ProduceRequest) -> Appended {
    let acks = req.acks;
    let names: Vec<_> = req.topic_data.iter().map(|t| t.name.clone()).collect();
    let mut appended = Appended {
        acks,
        names,
        broker: ctx.broker.clone(),
        partitions: Vec::new(),
        refused: None,
    };
    if !matches!(acks, -1..=1) {
        appended.refused = Some(refuse_all(req, ResponseError::InvalidRequiredAcks));
        return appended;
    }
    let max = ctx.config.max_decompressed_batch_bytes;
    let mut work = Vec::new();
    let mut bytes = 0usize;
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        for p in topic.partition_data {
            let batches = match p.records.as_ref().map(|r| records::to_encoded(r, max)) {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    work.push((ti, name.clone(), p.index, Err((e.code(), e.to_string()))));
                    continue;
                }
                None => {
                    let e = (
                        ResponseError::InvalidRecord,
                        "the records field is null".into(),
                    );
                    work.push((ti, name.clone(), p.index, Err(e)));
                    continue;
                }
            };
            bytes += batches.iter().map(|b| b.records.len()).sum::<usize>();
            work.push((ti, name.clone(), p.index, Ok(batches)));
        }
    }
    let inline = bytes <= INLINE_PRODUCE_BYTES
        && work.iter().all(|(_, name, _, _)| {
            ctx.broker
                .topic_config(name)
                .is_ok_and(|c| !c.produce_may_block())
        });
    let broker = ctx.broker.clone();
    let run = move || append_all(&broker, work);
    appended.partitions = if inline {
        run()
    } else {
        match blocking(run).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "produce task failed");
                Vec::new()
            }
        }
    };
    appended
}

/// Waits until the appended batches are as durable as their topics' `flush.policy`
/// promises and builds the answer; `None` for `acks=0`, which gets no answer.
pub(super) async fn finish(appended: Appended) -> Option<ProduceResponse> {
    if let Some(refused) = appended.refused {
        return Some(refused);
    }
    if appended.acks == 0 {
        // No answer; durability per flush.policy still happens (the flusher, or the fsync
        // nobody waits for).
        return None;
    }
    let partitions = wait_durable(appended.partitions).await;
    Some(answer(&appended.broker, appended.names, partitions))
}

/// One partition's share of a produce: `(topic index in the request, topic name, partition,
/// its batches or why they were refused)`.
type Work = (
    usize,
    String,
    i32,
    Result<Vec<distlog_broker::EncodedBatch>, (ResponseError, String)>,
);

fn append_all(broker: &Broker, work: Vec<Work>) -> Vec<(String, Partition)> {
    work.into_iter()
        .map(|(topic, name, index, batches)| {
            let (outcome, pending) = match batches {
                Err(e) => (Err(e), None),
                Ok(batches) => match u32::try_from(index) {
                    Err(_) => (
                        Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("no partition {index}"),
                        )),
                        None,
                    ),
                    Ok(p) => match broker.produce_batches(&name, p, batches) {
                        Ok((appended, pending)) => (Ok(appended), Some(pending)),
                        Err(e) => (Err(broker_error(&e)), None),
                    },
                },
            };
            (
                name,
                Partition {
                    topic,
                    index,
                    outcome,
                    pending,
                },
            )
        })
        .collect()
}

fn broker_error(e: &BrokerError) -> (ResponseError, String) {
    (crate::error::produce_code(e), e.to_string())
}

async fn wait_durable(mut partitions: Vec<(String, Partition)>) -> Vec<(String, Partition)> {
    let pending: Vec<(usize, PendingSync)> = partitions
        .iter_mut()
        .enumerate()
        .filter_map(|(i, (_, p))| p.pending.take().map(|s| (i, s)))
        .collect();
    if pending.iter().all(|(_, s)| !s.may_block()) {
        for (i, s) in pending {
            if let Err(e) = s.wait() {
                partitions[i].1.outcome = Err(broker_error(&e));
            }
        }
        return partitions;
    }
    let waited = blocking(move || {
        pending
            .into_iter()
            .map(|(i, s)| (i, s.wait()))
            .collect::<Vec<_>>()
    })
    .await;
    match waited {
        Ok(results) => {
            for (i, r) in results {
                if let Err(e) = r {
                    partitions[i].1.outcome = Err(broker_error(&e));
                }
            }
        }
        Err(e) => {
            for (_, p) in &mut partitions {
                p.outcome = Err((ResponseError::KafkaStorageError, e.to_string()));
            }
        }
    }
    partitions
}

fn answer(
    broker: &Broker,
    names: Vec<kafka_protocol::messages::TopicName>,
    partitions: Vec<(String, Partition)>,
) -> ProduceResponse {
    let mut topics: Vec<TopicProduceResponse> = names
        .into_iter()
        .map(|n| TopicProduceResponse::default().with_name(n))
        .collect();
    for (name, p) in partitions {
        let r = PartitionProduceResponse::default().with_index(p.index);
        let r = match p.outcome {
            Ok(a) => {
                let start = u32::try_from(p.index)
                    .ok()
                    .and_then(|i| broker.list_offset(&name, i, OffsetQuery::Earliest).ok())
                    .map_or(-1, |(o, _)| o as i64);
                r.with_base_offset(a.base_offset as i64)
                    .with_log_append_time_ms(a.log_append_time_ms.unwrap_or(-1))
                    .with_log_start_offset(start)
            }
            Err((code, message)) => {
                crate::metrics::error(ApiKey::Produce, code.code());
                r.with_error_code(code.code())
                    .with_base_offset(-1)
                    .with_error_message(Some(super::s(message)))
            }
        };
        if let Some(t) = topics.get_mut(p.topic) {
            t.partition_responses.push(r);
        }
    }
    ProduceResponse::default().with_responses(topics)
}

fn refuse_all(req: ProduceRequest, code: ResponseError) -> ProduceResponse {
    ProduceResponse::default().with_responses(
        req.topic_data
            .into_iter()
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(
                        t.partition_data
                            .into_iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code.code())
                                    .with_base_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
