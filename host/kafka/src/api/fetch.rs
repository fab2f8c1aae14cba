//! Fetch: stored batches served as Kafka batches, record bytes by reference (see `frame`),
//! with long polling on the partitions' end offsets.
//!
//! Fetch sessions (KIP-227) are not kept: every answer has session id 0, which tells the
//! client no session was created, so it sends full requests (librdkafka never asks for
//! one; the Java client falls back to full requests). An incremental request for a session
//! this broker never created gets `FETCH_SESSION_ID_NOT_FOUND`, after which clients start
//! over with a full one. Without transactions, `read_committed` reads up to the high
//! watermark, which is then also the last stable offset.

use super::{Ctx, blocking};
use crate::frame::{MAX_SPLICED, Splices};
use crate::records;
use bytes::Bytes;
use distlog_broker::{Broker, BrokerError, OffsetQuery, PlainFetchResult};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One partition to read.
#[derive(Debug, Clone)]
struct Want {
    topic: usize,
    name: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

/// What reading one partition gave.
#[derive(Debug)]
enum Got {
    Read(PlainFetchResult),
    Failed(ResponseError, Option<(u64, u64)>),
    /// Not read: the response was full. Carries the partition's (start, end).
    Skipped(Option<(u64, u64)>),
}

pub(super) async fn handle(
    ctx: &Arc<Ctx>,
    _version: i16,
    req: FetchRequest,
) -> (FetchResponse, Splices) {
    if req.session_id != 0 || req.session_epoch > 0 {
        crate::metrics::error(ApiKey::Fetch, ResponseError::FetchSessionIdNotFound.code());
        let resp =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return (resp, Splices::default());
    }
    let budget = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .clamp(1, ctx.config.max_fetch_bytes.clamp(1, MAX_SPLICED));
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(
        u64::try_from(req.max_wait_ms)
            .unwrap_or(0)
            .min(ctx.config.max_wait_ms),
    );
    let deadline = Instant::now() + wait;
    let names: Vec<TopicName> = req.topics.iter().map(|t| t.topic.clone()).collect();
    let mut wants = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for p in &t.partitions {
            wants.push(Want {
                topic: ti,
                name: t.topic.0.to_string(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
            });
        }
    }
    loop {
        // Subscribe before reading, so an append between the read and the wait wakes us.
        let mut ends: Vec<_> = wants
            .iter()
            .filter_map(|w| {
                let p = u32::try_from(w.partition).ok()?;
                ctx.broker.watch_end(&w.name, p).ok()
            })
            .collect();
        // Room for the answer before reading it; given back while long-polling, shrunk to what
        // was read when answering.
        let Some(mut permit) = reserve(ctx, budget).await else {
            return (FetchResponse::default(), Splices::default());
        };
        let broker = ctx.broker.clone();
        let reading = wants.clone();
        let got = match blocking(move || read_all(&broker, &reading, budget)).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "fetch task failed");
                return (
                    FetchResponse::default()
                        .with_error_code(ResponseError::UnknownServerError.code()),
                    Splices::default(),
                );
            }
        };
        let bytes: usize = got
            .iter()
            .map(|g| match g {
                Got::Read(r) => r.batches.iter().map(|b| b.records.len()).sum(),
                _ => 0,
            })
            .sum();
        let failed = got.iter().any(|g| matches!(g, Got::Failed(..)));
        if bytes >= min_bytes || failed || ends.is_empty() || Instant::now() >= deadline {
            return held(answer(names, &wants, got), &mut permit, bytes);
        }
        drop(permit);
        let changed =
            futures_util::future::select_all(ends.iter_mut().map(|r| Box::pin(r.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: answer with what there is (one more read: it may have arrived).
            let Some(mut permit) = reserve(ctx, budget).await else {
                return (FetchResponse::default(), Splices::default());
            };
            let broker = ctx.broker.clone();
            let reading = wants.clone();
            let got = blocking(move || read_all(&broker, &reading, budget))
                .await
                .unwrap_or_default();
            let bytes = got
                .iter()
                .map(|g| match g {
                    Got::Read(r) => r.batches.iter().map(|b| b.records.len()).sum(),
                    _ => 0,
                })
                .sum();
            return held(answer(names, &wants, got), &mut permit, bytes);
        }
    }
}

/// Room for `budget` bytes of answer in the listener's response budget (`None` once the
/// listener is closing).
async fn reserve(ctx: &Ctx, budget: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
    ctx.responses
        .clone()
        .acquire_many_owned(u32::try_from(budget).unwrap_or(u32::MAX))
        .await
        .ok()
}

/// The answer holding `bytes` of `permit` (the rest goes back to the budget at once).
fn held(
    (resp, mut splices): (FetchResponse, Splices),
    permit: &mut tokio::sync::OwnedSemaphorePermit,
    bytes: usize,
) -> (FetchResponse, Splices) {
    let keep = bytes.min(permit.num_permits());
    if let Some(p) = permit.split(keep) {
        splices.hold(p);
    }
    (resp, splices)
}

fn read_all(broker: &Broker, wants: &[Want], budget: usize) -> Vec<Got> {
    let mut left = budget;
    wants
        .iter()
        .map(|w| {
            if w.name.is_empty() {
                return Got::Failed(ResponseError::UnknownTopicId, None);
            }
            let (Ok(p), Ok(offset)) = (u32::try_from(w.partition), u64::try_from(w.offset)) else {
                return Got::Failed(ResponseError::OffsetOutOfRange, None);
            };
            if left == 0 {
                return Got::Skipped(range(broker, &w.name, p));
            }
            match broker.fetch_plain(&w.name, p, offset, w.max_bytes.min(left).max(1)) {
                Ok(r) => {
                    let n: usize = r
                        .batches
                        .iter()
                        .map(|b| b.records.len() + records::HEADER_LEN)
                        .sum();
                    left = left.saturating_sub(n);
                    Got::Read(r)
                }
                Err(e @ BrokerError::OffsetOutOfRange { .. }) => {
                    Got::Failed(crate::error::code(&e), range(broker, &w.name, p))
                }
                Err(e) => Got::Failed(crate::error::code(&e), None),
            }
        })
        .collect()
}

/// The partition's (log start, high watermark).
fn range(broker: &Broker, topic: &str, p: u32) -> Option<(u64, u64)> {
    let (start, _) = broker.list_offset(topic, p, OffsetQuery::Earliest).ok()?;
    let (end, _) = broker.list_offset(topic, p, OffsetQuery::Latest).ok()?;
    Some((start, end))
}

fn answer(names: Vec<TopicName>, wants: &[Want], got: Vec<Got>) -> (FetchResponse, Splices) {
    let mut topics: Vec<FetchableTopicResponse> = names
        .into_iter()
        .map(|n| FetchableTopicResponse::default().with_topic(n))
        .collect();
    let mut splices = Splices::default();
    let (mut spliced, mut decoded) = (0usize, 0usize);
    for (w, g) in wants.iter().zip(got) {
        let mut p = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(Some(Vec::new()));
        match g {
            Got::Read(r) => {
                let hw = r.log_end_offset as i64;
                for b in &r.batches {
                    if b.header.attributes().is_compressed() {
                        decoded += b.records.len();
                    } else {
                        spliced += b.records.len();
                    }
                }
                let mut chunks: Vec<Bytes> = Vec::with_capacity(2 * r.batches.len());
                records::from_stored(&r.batches, &mut chunks);
                let records = splices.placeholder(chunks).unwrap_or_default();
                p = p
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(r.log_start_offset as i64)
                    .with_records(Some(records));
            }
            Got::Failed(code, range) => {
                crate::metrics::error(ApiKey::Fetch, code.code());
                let (start, end) = range.map_or((-1, -1), |(s, e)| (s as i64, e as i64));
                p = p
                    .with_error_code(code.code())
                    .with_high_watermark(end)
                    .with_last_stable_offset(end)
                    .with_log_start_offset(start)
                    .with_records(Some(Bytes::new()));
            }
            Got::Skipped(range) => {
                let (start, end) = range.map_or((-1, -1), |(s, e)| (s as i64, e as i64));
                p = p
                    .with_high_watermark(end)
                    .with_last_stable_offset(end)
                    .with_log_start_offset(start)
                    .with_records(Some(Bytes::new()));
            }
        }
        if let Some(t) = topics.get_mut(w.topic) {
            t.partitions.push(p);
        }
    }
    crate::metrics::fetched(spliced, decoded);
    (FetchResponse::default().with_responses(topics), splices)
}
