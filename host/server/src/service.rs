//! The `distlog.v1` services over a [`Broker`].
//!
//! Every broker call that may touch the disk runs on tokio's blocking pool
//! (`spawn_blocking`); the async side only waits, streams and converts.

use crate::accept::ConnInfo;
use crate::codec;
use crate::config::ServerConfig;
use crate::convert;
use crate::error::ApiError;
use crate::limits::{Budget, Grant, Grants, encoded_bytes, response_reservation};
use crate::proto;
use crate::proto::cluster_server::Cluster;
use crate::proto::groups_server::Groups;
use crate::proto::plugins_server::Plugins;
use crate::proto::records_server::Records;
use crate::proto::topics_server::Topics;
use distlog_broker::{Broker, BrokerError, OffsetCommit, OffsetQuery, PendingSync, ProduceRecord};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The service state shared by the four generated servers.
#[derive(Debug, Clone)]
pub struct DistLogService {
    broker: Broker,
    config: Arc<ServerConfig>,
    /// Turns true when the server starts shutting down: long polls answer and streams end.
    shutdown: watch::Receiver<bool>,
    /// Bytes of fetch and subscribe responses held unwritten, server-wide
    /// (`server.max_response_bytes_in_flight`).
    responses: Budget,
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs a blocking broker call on the blocking pool.
async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> Result<T, BrokerError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Produces of at most this many record bytes to a topic whose produce cannot block
/// ([`TopicConfig::produce_may_block`](distlog_broker::TopicConfig::produce_may_block): no
/// fsync before the answer, no compression plugin) run on the async worker that decoded the
/// request. Their work is a batch encoding and a copy into the page cache, about 0.1 ms per
/// 256 KiB, less than the two thread handoffs of the blocking pool cost; bounding the size
/// bounds how long they hold the worker. Larger or blocking produces go to the blocking pool.
const INLINE_PRODUCE_BYTES: usize = 1 << 20;

/// Records the call's count, latency and status code, and converts the error.
async fn observe<T>(
    method: &'static str,
    fut: impl Future<Output = ApiResult<T>>,
) -> Result<Response<T>, Status> {
    let start = Instant::now();
    let result = fut.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(e) => e.code(),
    };
    metrics::counter!("distlog_requests_total", "method" => method, "code" => code_name(code))
        .increment(1);
    metrics::histogram!("distlog_request_duration_seconds", "method" => method)
        .record(start.elapsed().as_secs_f64());
    result.map(Response::new).map_err(Status::from)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn offset_arg(name: &str, v: i64) -> ApiResult<u64> {
    u64::try_from(v)
        .map_err(|_| ApiError::InvalidArgument(format!("{name} must not be negative (got {v})")))
}

impl DistLogService {
    /// A service over `broker`; `shutdown` turning true ends long polls and streams.
    pub fn new(broker: Broker, config: Arc<ServerConfig>, shutdown: watch::Receiver<bool>) -> Self {
        let responses = Budget::new(config.max_response_bytes_in_flight);
        Self {
            broker,
            config,
            shutdown,
            responses,
        }
    }

    /// Reserves the bytes of one read of `max_bytes` for a new call: from the connection's
    /// budget without waiting (RESOURCE_EXHAUSTED when its unwritten responses leave no
    /// room: the client should read what it asked for first), then from the server's,
    /// waiting for room (UNAVAILABLE if the server shuts down meanwhile).
    async fn reserve(&self, conn: Option<&Budget>, max_bytes: usize) -> ApiResult<Grant> {
        let bytes = response_reservation(max_bytes);
        let conn = match conn {
            None => None,
            Some(budget) => Some(Grant::try_take(&[budget], bytes).ok_or_else(|| {
                ApiError::TooLarge(format!(
                    "this connection holds server.max_connection_response_bytes ({}) of \
                     responses its client has not read; read them (or use another \
                     connection) before asking for more",
                    self.config.max_connection_response_bytes
                ))
            })?),
        };
        let server = self.wait_for(&[&self.responses], bytes).await?;
        Ok(match conn {
            Some(conn) => conn.join(server),
            None => server,
        })
    }

    /// Bytes of fetch and subscribe responses held unwritten, server-wide.
    pub(crate) fn response_bytes_in_flight(&self) -> usize {
        self.responses.granted()
    }

    /// `bytes` from each of `budgets`, waiting for room; UNAVAILABLE on shutdown.
    async fn wait_for(&self, budgets: &[&Budget], bytes: usize) -> ApiResult<Grant> {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            grant = Grant::take(budgets, bytes) => Ok(grant),
            _ = shutdown.wait_for(|stopping| *stopping) => Err(ApiError::ShuttingDown),
        }
    }

    fn fetch_bytes(&self, requested: u32) -> usize {
        let b = if requested == 0 {
            self.config.default_fetch_bytes
        } else {
            requested.min(self.config.max_fetch_bytes)
        };
        b as usize
    }

    /// Checks a produce request against the server's limits (record count, record size).
    fn check_produce(&self, req: &proto::ProduceRequest) -> ApiResult<()> {
        if req.records.len() > self.config.max_records_per_request {
            return Err(ApiError::TooLarge(format!(
                "produce request has {} records, over the limit of {}",
                req.records.len(),
                self.config.max_records_per_request
            )));
        }
        if let Some((i, s)) = req
            .records
            .iter()
            .map(convert::record_size)
            .enumerate()
            .find(|(_, s)| *s > self.config.max_record_bytes)
        {
            return Err(ApiError::TooLarge(format!(
                "record {i} is {s} bytes, over the limit of {}",
                self.config.max_record_bytes
            )));
        }
        Ok(())
    }

    /// Runs the produce `f` of `bytes` record bytes to `topic` inline or on the blocking pool
    /// (see [`INLINE_PRODUCE_BYTES`]).
    async fn run_produce<T, F>(&self, topic: &str, bytes: usize, f: F) -> ApiResult<T>
    where
        F: FnOnce() -> Result<T, BrokerError> + Send + 'static,
        T: Send + 'static,
    {
        let inline = bytes <= INLINE_PRODUCE_BYTES
            && self
                .broker
                .topic_config(topic)
                .is_ok_and(|c| !c.produce_may_block());
        if inline {
            f().map_err(ApiError::from)
        } else {
            blocking(f).await
        }
    }

    async fn produce_inner(&self, req: proto::ProduceRequest) -> ApiResult<proto::ProduceResponse> {
        self.check_produce(&req)?;
        let sequence = req.sequence;
        let topic = req.topic;
        let records: Vec<_> = req
            .records
            .into_iter()
            .map(convert::produce_record)
            .collect();
        let count = records.len();
        let bytes = records.iter().map(ProduceRecord::size).sum();
        let broker = self.broker.clone();
        let label = topic.clone();
        let result = self
            .run_produce(&label, bytes, move || {
                broker.produce(&topic, req.partition, records)
            })
            .await?;
        metrics::counter!("distlog_produce_records_total", "topic" => label.clone())
            .increment(count as u64);
        metrics::counter!("distlog_produce_bytes_total", "topic" => label)
            .increment(result.bytes as u64);
        Ok(convert::produce_response(result, sequence))
    }

    /// Appends `group`, requests of one stream for the same topic and explicit partition that
    /// each passed [`check_produce`](Self::check_produce) and together fit one batch
    /// (see [`merge_cost`]): their records are appended as ONE batch by one broker call, so
    /// requests pipelined on a stream share one append and one fsync. Returns each request's
    /// answer, with the offsets of its own records, in order, and the fsync the topic's
    /// `flush.policy` still owes them ([`answer_when_durable`]): the stream writes its next
    /// group while this one's fsync runs. A failure of the merged append (unknown topic,
    /// storage, shutdown) answers every request with it.
    /// Cost: the records move (no copy); one blocking-pool handoff for the whole group.
    async fn produce_merged(&self, group: Vec<proto::ProduceRequest>) -> Answers {
        let Some(first) = group.first() else {
            return Answers::default();
        };
        let topic = first.topic.clone();
        let partition = first.partition;
        let mut answers: Vec<(u64, usize)> = Vec::with_capacity(group.len());
        let mut records = Vec::with_capacity(group.iter().map(|r| r.records.len()).sum());
        for req in group {
            answers.push((req.sequence, req.records.len()));
            records.extend(req.records.into_iter().map(convert::produce_record));
        }
        let count = records.len();
        let bytes = records.iter().map(ProduceRecord::size).sum();
        let broker = self.broker.clone();
        let t = topic.clone();
        let produced = self
            .run_produce(&topic, bytes, move || {
                broker.produce_deferred(&t, partition, records)
            })
            .await;
        match produced {
            Ok((result, pending)) => {
                metrics::counter!("distlog_produce_records_total", "topic" => topic.clone())
                    .increment(count as u64);
                metrics::counter!("distlog_produce_bytes_total", "topic" => topic)
                    .increment(result.bytes as u64);
                let p = partition.unwrap_or_default();
                let mut offsets = result.offsets.into_iter();
                let responses = answers
                    .into_iter()
                    .map(|(sequence, n)| {
                        let offsets: Vec<i64> = offsets
                            .by_ref()
                            .take(n)
                            .map(|o| i64::try_from(o).unwrap_or(i64::MAX))
                            .collect();
                        proto::ProduceResponse {
                            partitions: vec![proto::PartitionAppend {
                                partition: p,
                                base_offset: offsets.first().copied().unwrap_or_default(),
                                record_count: u32::try_from(n).unwrap_or(u32::MAX),
                            }],
                            offsets,
                            record_partitions: vec![p; n],
                            sequence,
                            error: None,
                        }
                    })
                    .collect();
                Answers {
                    responses,
                    pending: Some(pending),
                    end: None,
                }
            }
            Err(e) => Answers::ready(failed_answers(answers.into_iter().map(|(s, _)| s), e)),
        }
    }

    /// The largest batch a merge into `topic` may build: its `max.message.bytes`; `None`
    /// (no merging) when the topic cannot be read, so the request reports that itself.
    fn merge_limit(&self, req: &proto::ProduceRequest) -> Option<usize> {
        if req.partition.is_none() || req.records.is_empty() {
            return None;
        }
        self.broker
            .topic_config(&req.topic)
            .ok()
            .map(|c| c.max_message_bytes())
    }

    /// One read; converts and counts.
    async fn read_once(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> ApiResult<proto::FetchResponse> {
        let broker = self.broker.clone();
        let t = topic.to_owned();
        let r = blocking(move || broker.fetch(&t, partition, offset, max_bytes)).await?;
        metrics::counter!("distlog_fetch_records_total", "topic" => topic.to_owned())
            .increment(r.records.len() as u64);
        metrics::counter!("distlog_fetch_bytes_total", "topic" => topic.to_owned())
            .increment(r.bytes as u64);
        Ok(proto::FetchResponse {
            records: r.records.into_iter().map(convert::stored_record).collect(),
            log_start_offset: i64::try_from(r.log_start_offset).unwrap_or(i64::MAX),
            log_end_offset: i64::try_from(r.log_end_offset).unwrap_or(i64::MAX),
            next_offset: i64::try_from(r.next_offset).unwrap_or(i64::MAX),
            batches: Vec::new(),
        })
    }

    /// A subscription's read at `*offset`. Under a reset policy a position outside the log
    /// moves to the log start or end (logged and counted in `distlog_subscribe_resets_total`)
    /// and is read there; without one the OUT_OF_RANGE error is returned.
    async fn read_subscribed(
        &self,
        req: &proto::SubscribeRequest,
        reset: proto::OffsetReset,
        offset: &mut u64,
        max_bytes: usize,
    ) -> ApiResult<proto::FetchResponse> {
        let read = self
            .read_once(&req.topic, req.partition, *offset, max_bytes)
            .await;
        let Err(ApiError::Broker(BrokerError::OffsetOutOfRange {
            requested,
            start,
            end,
        })) = read
        else {
            return read;
        };
        let to = match reset {
            proto::OffsetReset::None => return read,
            proto::OffsetReset::Earliest => start,
            proto::OffsetReset::Latest => end,
        };
        tracing::info!(
            topic = %req.topic,
            partition = req.partition,
            from = requested,
            to,
            log_start = start,
            log_end = end,
            "subscription position outside the log: reset"
        );
        metrics::counter!("distlog_subscribe_resets_total", "topic" => req.topic.clone())
            .increment(1);
        *offset = to;
        self.read_once(&req.topic, req.partition, to, max_bytes)
            .await
    }

    /// One raw read: stored batches with their codec identity, never waiting.
    async fn read_raw(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> ApiResult<proto::FetchResponse> {
        let broker = self.broker.clone();
        let t = topic.to_owned();
        let r = blocking(move || broker.fetch_raw(&t, partition, offset, max_bytes)).await?;
        let bytes: usize = r.batches.iter().map(|b| b.bytes.len()).sum();
        metrics::counter!("distlog_fetch_bytes_total", "topic" => topic.to_owned())
            .increment(bytes as u64);
        Ok(proto::FetchResponse {
            records: Vec::new(),
            log_start_offset: i64::try_from(r.log_start_offset).unwrap_or(i64::MAX),
            log_end_offset: i64::try_from(r.log_end_offset).unwrap_or(i64::MAX),
            next_offset: i64::try_from(r.next_offset).unwrap_or(i64::MAX),
            batches: r.batches.into_iter().map(convert::stored_batch).collect(),
        })
    }

    /// A fetch and the grant of its response's bytes (see [`Self::reserve`]); a long poll
    /// holds no grant while it waits.
    async fn fetch_inner(
        &self,
        req: proto::FetchRequest,
        conn: Option<Budget>,
    ) -> ApiResult<(proto::FetchResponse, Grant)> {
        let offset = offset_arg("offset", req.offset)?;
        let max_bytes = self.fetch_bytes(req.max_bytes);
        let budgets: Vec<&Budget> = conn.iter().chain([&self.responses]).collect();
        if req.format == proto::BatchFormat::Raw as i32 {
            let mut grant = self.reserve(conn.as_ref(), max_bytes).await?;
            let r = self
                .read_raw(&req.topic, req.partition, offset, max_bytes)
                .await?;
            grant.fit(encoded_bytes(&r), &budgets);
            return Ok((r, grant));
        }
        let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(self.config.max_wait_ms)));
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before reading: an append between the read and the wait is not missed.
        let mut end = self.broker.watch_end(&req.topic, req.partition)?;
        let mut shutdown = self.shutdown.clone();
        loop {
            end.borrow_and_update();
            let mut grant = self.reserve(conn.as_ref(), max_bytes).await?;
            let r = self
                .read_once(&req.topic, req.partition, offset, max_bytes)
                .await?;
            grant.fit(encoded_bytes(&r), &budgets);
            if !r.records.is_empty() || wait.is_zero() || *shutdown.borrow() {
                return Ok((r, grant));
            }
            drop(grant);
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, end.changed()) => match changed {
                    Err(_) => return Ok((r, Grant::none())),
                    Ok(Ok(())) => {}
                    // The topic is gone: the next watch fails with NOT_FOUND.
                    Ok(Err(_)) => end = self.broker.watch_end(&req.topic, req.partition)?,
                },
                _ = shutdown.changed() => return Ok((r, Grant::none())),
            }
        }
    }

    /// The subscription's responses after `first` (read by the call with `grant`), read
    /// ahead by a task while the client reads: at most `server.stream_buffer` responses and
    /// `server.stream_buffer_bytes` bytes, each read waiting for room in the stream's, the
    /// connection's and the server's budgets. The task ends when the client goes away.
    fn subscribe_inner(
        &self,
        req: proto::SubscribeRequest,
        reset: proto::OffsetReset,
        (first, grant): (proto::FetchResponse, Grant),
        mut end: watch::Receiver<u64>,
        budgets: SubscriptionBudgets,
    ) -> mpsc::Receiver<Granted> {
        let (tx, rx) = mpsc::channel::<Granted>(self.config.stream_buffer.max(1));
        let this = self.clone();
        let max_bytes = self.fetch_bytes(req.max_bytes);
        tokio::spawn(async move {
            let mut shutdown = this.shutdown.clone();
            let mut offset = u64::try_from(first.next_offset).unwrap_or(0);
            if !first.records.is_empty() && tx.send((Ok(first), Some(grant))).await.is_err() {
                return;
            }
            let budgets: Vec<&Budget> = budgets.all().collect();
            loop {
                end.borrow_and_update();
                let bytes = response_reservation(max_bytes);
                let mut grant = tokio::select! {
                    grant = this.wait_for(&budgets, bytes) => match grant {
                        Ok(grant) => grant,
                        Err(e) => {
                            let _ = tx.send((Err(Status::from(e)), None)).await;
                            return;
                        }
                    },
                    () = tx.closed() => return,
                };
                match this
                    .read_subscribed(&req, reset, &mut offset, max_bytes)
                    .await
                {
                    Ok(r) if !r.records.is_empty() => {
                        offset = u64::try_from(r.next_offset).unwrap_or(offset);
                        grant.fit(encoded_bytes(&r), &budgets);
                        // Waits while the client is slow: the buffer is bounded.
                        if tx.send((Ok(r), Some(grant))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(_) => drop(grant),
                    Err(e) => {
                        let _ = tx.send((Err(Status::from(e)), None)).await;
                        return;
                    }
                }
                if *shutdown.borrow() {
                    let _ = tx
                        .send((Err(Status::from(ApiError::ShuttingDown)), None))
                        .await;
                    return;
                }
                tokio::select! {
                    changed = end.changed() => if changed.is_err() {
                        match this.broker.watch_end(&req.topic, req.partition) {
                            Ok(rx) => end = rx,
                            Err(e) => {
                                let _ = tx.send((Err(Status::from(ApiError::from(e))), None)).await;
                                return;
                            }
                        }
                    },
                    () = tx.closed() => return,
                    _ = shutdown.changed() => {
                        let _ = tx
                            .send((Err(Status::from(ApiError::ShuttingDown)), None))
                            .await;
                        return;
                    }
                }
            }
        });
        rx
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A subscription's response and the grant of its bytes.
type Granted = (Result<proto::FetchResponse, Status>, Option<Grant>);

/// The budgets a subscription's reads take from, narrowest first.
struct SubscriptionBudgets {
    stream: Budget,
    conn: Option<Budget>,
    server: Budget,
}

impl SubscriptionBudgets {
    fn all(&self) -> impl Iterator<Item = &Budget> {
        [&self.stream]
            .into_iter()
            .chain(self.conn.as_ref())
            .chain([&self.server])
    }
}

/// A subscription's responses as tonic encodes them: each response's grant is queued for
/// the body ([`crate::limits::GrantedBody`]) as the response is handed to the encoder.
struct GrantedStream {
    rx: mpsc::Receiver<Granted>,
    grants: Grants,
}

impl Stream for GrantedStream {
    type Item = Result<proto::FetchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|next| {
            next.map(|(item, grant)| {
                if let Some(grant) = grant {
                    self.grants.push(grant);
                }
                item
            })
        })
    }
}

/// The connection's response budget, from the request's extensions (absent when the
/// service runs on another listener than the server's).
fn conn_budget<T>(request: &Request<T>) -> Option<Budget> {
    request
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.budget.clone())
}

/// `response` with the grants of its bytes, for the body to release as it is written.
fn with_grants<T>(mut response: Response<T>, grants: Grants) -> Response<T> {
    response.extensions_mut().insert(grants);
    response
}

/// An upper bound of the encoded size `req`'s records add to a batch: their bytes plus the
/// largest per-record and per-header framing (varints at their widest), plus one batch
/// header. A merge stays within `max.message.bytes` by this bound, so merging never turns
/// requests that fit alone into a batch the broker refuses.
fn merge_cost(req: &proto::ProduceRequest) -> usize {
    const BATCH_HEADER: usize = 64;
    const PER_RECORD: usize = 48;
    const PER_HEADER: usize = 16;
    BATCH_HEADER
        + req
            .records
            .iter()
            .map(|r| PER_RECORD + convert::record_size(r) + PER_HEADER * r.headers.len())
            .sum::<usize>()
}

/// Answers to requests of a `ProduceStream`, in order, and the fsync they wait for.
#[derive(Default)]
struct Answers {
    responses: Vec<proto::ProduceResponse>,
    pending: Option<PendingSync>,
    /// Ends the stream with this status after the responses (a transport error).
    end: Option<Status>,
}

impl Answers {
    fn ready(responses: Vec<proto::ProduceResponse>) -> Self {
        Self {
            responses,
            ..Self::default()
        }
    }
}

/// Each request (by sequence) answered with `e`.
fn failed_answers(
    sequences: impl Iterator<Item = u64>,
    e: ApiError,
) -> Vec<proto::ProduceResponse> {
    let error = proto::Error::from(e);
    sequences
        .map(|sequence| proto::ProduceResponse {
            sequence,
            error: Some(error.clone()),
            ..proto::ProduceResponse::default()
        })
        .collect()
}

/// The answers once their records are as durable as the topic's `flush.policy` promises; a
/// failed fsync answers every request of the group with it.
async fn answer_when_durable(answers: Answers) -> Vec<proto::ProduceResponse> {
    let Some(pending) = answers.pending else {
        return answers.responses;
    };
    let result = if pending.may_block() {
        blocking(move || pending.wait()).await
    } else {
        pending.wait().map_err(ApiError::from)
    };
    match result {
        Ok(()) => answers.responses,
        Err(e) => failed_answers(answers.responses.iter().map(|r| r.sequence), e),
    }
}

/// Produces one stream request on its own; a failure becomes the answer's `error`.
async fn produce_answer(
    service: &DistLogService,
    req: proto::ProduceRequest,
) -> proto::ProduceResponse {
    let sequence = req.sequence;
    match service.produce_inner(req).await {
        Ok(r) => r,
        Err(e) => proto::ProduceResponse {
            sequence,
            error: Some(proto::Error::from(e)),
            ..proto::ProduceResponse::default()
        },
    }
}

#[tonic::async_trait]
impl Topics for DistLogService {
    async fn create_topic(
        &self,
        request: Request<proto::CreateTopicRequest>,
    ) -> Result<Response<proto::CreateTopicResponse>, Status> {
        observe("CreateTopic", async {
            let req = request.into_inner();
            let broker = self.broker.clone();
            let config = req.config.into_iter().collect();
            let t =
                blocking(move || broker.create_topic(&req.name, req.partitions, config)).await?;
            Ok(proto::CreateTopicResponse {
                topic: Some(convert::topic(t)),
            })
        })
        .await
    }

    async fn delete_topic(
        &self,
        request: Request<proto::DeleteTopicRequest>,
    ) -> Result<Response<proto::DeleteTopicResponse>, Status> {
        observe("DeleteTopic", async {
            let name = request.into_inner().name;
            let broker = self.broker.clone();
            blocking(move || broker.delete_topic(&name)).await?;
            Ok(proto::DeleteTopicResponse {})
        })
        .await
    }

    async fn list_topics(
        &self,
        _request: Request<proto::ListTopicsRequest>,
    ) -> Result<Response<proto::ListTopicsResponse>, Status> {
        observe("ListTopics", async {
            Ok(proto::ListTopicsResponse {
                topics: self
                    .broker
                    .list_topics()
                    .into_iter()
                    .map(|t| proto::TopicSummary {
                        name: t.name,
                        partitions: t.partitions,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn describe_topic(
        &self,
        request: Request<proto::DescribeTopicRequest>,
    ) -> Result<Response<proto::DescribeTopicResponse>, Status> {
        observe("DescribeTopic", async {
            let t = self.broker.describe_topic(&request.into_inner().name)?;
            Ok(proto::DescribeTopicResponse {
                topic: Some(convert::topic(t)),
            })
        })
        .await
    }

    async fn alter_topic_config(
        &self,
        request: Request<proto::AlterTopicConfigRequest>,
    ) -> Result<Response<proto::AlterTopicConfigResponse>, Status> {
        observe("AlterTopicConfig", async {
            let req = request.into_inner();
            let broker = self.broker.clone();
            let set = req.set.into_iter().collect();
            let config = blocking(move || {
                broker.alter_topic_config(&req.name, set, req.reset, req.validate_only)
            })
            .await?;
            Ok(proto::AlterTopicConfigResponse {
                config: config.into_iter().collect(),
            })
        })
        .await
    }

    async fn add_partitions(
        &self,
        request: Request<proto::AddPartitionsRequest>,
    ) -> Result<Response<proto::AddPartitionsResponse>, Status> {
        observe("AddPartitions", async {
            let req = request.into_inner();
            let broker = self.broker.clone();
            let (summary, t) = blocking(move || {
                let summary = broker.add_partitions(&req.name, req.total, req.validate_only)?;
                Ok((summary, broker.describe_topic(&req.name)?))
            })
            .await?;
            Ok(proto::AddPartitionsResponse {
                topic: Some(convert::topic(t)),
                partition_count: summary.partitions,
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl Records for DistLogService {
    async fn produce(
        &self,
        request: Request<proto::ProduceRequest>,
    ) -> Result<Response<proto::ProduceResponse>, Status> {
        observe("Produce", self.produce_inner(request.into_inner())).await
    }

    type ProduceStreamStream = BoxStream<proto::ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<proto::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let buffer = self.config.stream_buffer.max(1);
        let (tx, rx) = mpsc::channel(buffer);
        // The reader decodes requests as they arrive, so decoding the next request overlaps
        // the append of the previous ones.
        let (req_tx, mut req_rx) = mpsc::channel(buffer);
        // Decoded here, not in the call: the codec's checks need the call's scope.
        let limits = codec::WireLimits::new(&self.config);
        tokio::spawn(codec::scope(limits, async move {
            loop {
                let next = match inbound.message().await {
                    Ok(Some(req)) => Ok(req),
                    Ok(None) => return,
                    Err(status) => Err(match ApiError::from_transport_status(&status) {
                        Some(e) => Status::from(e),
                        None => status,
                    }),
                };
                let failed = next.is_err();
                if req_tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        }));
        // The answerer sends each group's answers, in order, once its fsync (if the topic's
        // policy asks for one) is done; meanwhile the appender writes the next group, so a
        // pipelined producer's appends overlap the previous fsync (group commit shares them).
        let (answer_tx, mut answer_rx) = mpsc::channel::<(Answers, Instant)>(buffer);
        tokio::spawn(async move {
            while let Some((mut answers, start)) = answer_rx.recv().await {
                let end = answers.end.take();
                let responses = answer_when_durable(answers).await;
                let elapsed = start.elapsed().as_secs_f64();
                for response in responses {
                    let code = response
                        .error
                        .as_ref()
                        .map_or("OK", |e| code_name(tonic::Code::from_i32(e.code)));
                    metrics::counter!("distlog_requests_total", "method" => "ProduceStream", "code" => code)
                        .increment(1);
                    metrics::histogram!("distlog_request_duration_seconds", "method" => "ProduceStream")
                        .record(elapsed);
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                if let Some(status) = end {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            // Requests of one stream are appended in order and answered in order. Requests
            // already waiting for the same topic and explicit partition are merged into one
            // append while they fit one batch (`produce_merged`).
            let mut pending: Option<Result<proto::ProduceRequest, Status>> = None;
            loop {
                let next = match pending.take() {
                    Some(next) => next,
                    None => match req_rx.recv().await {
                        Some(next) => next,
                        None => return,
                    },
                };
                let req = match next {
                    Ok(req) => req,
                    Err(status) => {
                        // After every earlier answer: the answerer ends the stream with it.
                        let end = Answers {
                            end: Some(status),
                            ..Answers::default()
                        };
                        let _ = answer_tx.send((end, Instant::now())).await;
                        return;
                    }
                };
                let start = Instant::now();
                let limit = match this.check_produce(&req) {
                    Ok(()) => this.merge_limit(&req),
                    Err(_) => None,
                };
                let answers = if let Some(limit) = limit {
                    let mut cost = merge_cost(&req);
                    let mut group = vec![req];
                    while let Ok(next) = req_rx.try_recv() {
                        let fits = match &next {
                            Ok(r) => {
                                r.topic == group[0].topic
                                    && r.partition == group[0].partition
                                    && !r.records.is_empty()
                                    && cost + merge_cost(r) <= limit
                                    && this.check_produce(r).is_ok()
                            }
                            Err(_) => false,
                        };
                        match next {
                            Ok(r) if fits => {
                                cost += merge_cost(&r);
                                group.push(r);
                            }
                            other => {
                                pending = Some(other);
                                break;
                            }
                        }
                    }
                    if cost <= limit {
                        this.produce_merged(group).await
                    } else {
                        // A lone request over the limit: the broker reports it precisely.
                        let mut single = Vec::with_capacity(1);
                        for req in group {
                            single.push(produce_answer(&this, req).await);
                        }
                        Answers::ready(single)
                    }
                } else {
                    Answers::ready(vec![produce_answer(&this, req).await])
                };
                if answer_tx.send((answers, start)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> Result<Response<proto::FetchResponse>, Status> {
        let conn = conn_budget(&request);
        let (response, grant) = observe("Fetch", self.fetch_inner(request.into_inner(), conn))
            .await?
            .into_inner();
        let grants = Grants::default();
        grants.push(grant);
        Ok(with_grants(Response::new(response), grants))
    }

    type SubscribeStream = BoxStream<proto::FetchResponse>;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let conn = conn_budget(&request);
        let req = request.into_inner();
        let grants = Grants::default();
        observe("Subscribe", async {
            let mut offset = offset_arg("offset", req.offset)?;
            let reset = proto::OffsetReset::try_from(req.reset).map_err(|_| {
                ApiError::InvalidArgument(format!(
                    "reset {} is not an OffsetReset (0 none, 1 earliest, 2 latest)",
                    req.reset
                ))
            })?;
            let end = self.broker.watch_end(&req.topic, req.partition)?;
            let max_bytes = self.fetch_bytes(req.max_bytes);
            let budgets = SubscriptionBudgets {
                stream: Budget::new(self.config.stream_buffer_bytes),
                conn,
                server: self.responses.clone(),
            };
            // The first read happens before the stream starts, so a bad offset fails the call
            // (or is reset). Its bytes are reserved as a Fetch's are.
            let bytes = response_reservation(max_bytes);
            let stream_grant = Grant::try_take(&[&budgets.stream], bytes)
                .ok_or_else(|| ApiError::Internal("a new stream budget is full".into()))?;
            let mut grant =
                stream_grant.join(self.reserve(budgets.conn.as_ref(), max_bytes).await?);
            let first = self
                .read_subscribed(&req, reset, &mut offset, max_bytes)
                .await?;
            grant.fit(encoded_bytes(&first), &budgets.all().collect::<Vec<_>>());
            let rx = self.subscribe_inner(req.clone(), reset, (first, grant), end, budgets);
            Ok(Box::pin(GrantedStream {
                rx,
                grants: grants.clone(),
            }) as Self::SubscribeStream)
        })
        .await
        .map(|response| with_grants(response, grants))
    }

    async fn list_offsets(
        &self,
        request: Request<proto::ListOffsetsRequest>,
    ) -> Result<Response<proto::ListOffsetsResponse>, Status> {
        observe("ListOffsets", async {
            let req = request.into_inner();
            let query = match req.spec.and_then(|s| s.spec) {
                Some(proto::offset_spec::Spec::Earliest(_)) => OffsetQuery::Earliest,
                Some(proto::offset_spec::Spec::Latest(_)) => OffsetQuery::Latest,
                Some(proto::offset_spec::Spec::TimestampMs(ts)) => OffsetQuery::Timestamp(ts),
                None => {
                    return Err(ApiError::InvalidArgument(
                        "spec is required: earliest, latest or timestamp_ms".into(),
                    ));
                }
            };
            let partitions = if req.partitions.is_empty() {
                (0..self.broker.partition_count(&req.topic)?).collect()
            } else {
                req.partitions
            };
            let broker = self.broker.clone();
            let topic = req.topic;
            let offsets = blocking(move || {
                partitions
                    .into_iter()
                    .map(|p| {
                        let (offset, ts) = broker.list_offset(&topic, p, query)?;
                        Ok(proto::PartitionOffset {
                            partition: p,
                            offset: i64::try_from(offset).unwrap_or(i64::MAX),
                            timestamp_ms: ts.unwrap_or(-1),
                        })
                    })
                    .collect::<Result<Vec<_>, BrokerError>>()
            })
            .await?;
            Ok(proto::ListOffsetsResponse { offsets })
        })
        .await
    }
}

#[tonic::async_trait]
impl Groups for DistLogService {
    async fn commit_offsets(
        &self,
        request: Request<proto::CommitOffsetsRequest>,
    ) -> Result<Response<proto::CommitOffsetsResponse>, Status> {
        observe("CommitOffsets", async {
            let req = request.into_inner();
            let offsets = req
                .offsets
                .into_iter()
                .map(|o| {
                    Ok(OffsetCommit {
                        offset: offset_arg("offset", o.offset)?,
                        topic: o.topic,
                        partition: o.partition,
                        metadata: o.metadata,
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            let broker = self.broker.clone();
            blocking(move || broker.commit_offsets_within_log(&req.group, offsets)).await?;
            Ok(proto::CommitOffsetsResponse {})
        })
        .await
    }

    async fn fetch_offsets(
        &self,
        request: Request<proto::FetchOffsetsRequest>,
    ) -> Result<Response<proto::FetchOffsetsResponse>, Status> {
        observe("FetchOffsets", async {
            let req = request.into_inner();
            let topic = (!req.topic.is_empty()).then_some(req.topic.as_str());
            // A group that never committed has no offsets: an empty answer, as Kafka's
            // OffsetFetch gives, not NOT_FOUND.
            let offsets = match self.broker.fetch_offsets(&req.group, topic) {
                Err(BrokerError::GroupNotFound(_)) => Vec::new(),
                other => other?,
            };
            Ok(proto::FetchOffsetsResponse {
                offsets: offsets.into_iter().map(convert::committed).collect(),
            })
        })
        .await
    }

    async fn list_groups(
        &self,
        _request: Request<proto::ListGroupsRequest>,
    ) -> Result<Response<proto::ListGroupsResponse>, Status> {
        observe("ListGroups", async {
            Ok(proto::ListGroupsResponse {
                groups: self.broker.list_groups(),
            })
        })
        .await
    }

    async fn describe_group(
        &self,
        request: Request<proto::DescribeGroupRequest>,
    ) -> Result<Response<proto::DescribeGroupResponse>, Status> {
        observe("DescribeGroup", async {
            let req = request.into_inner();
            let topic = (!req.topic.is_empty()).then_some(req.topic.as_str());
            let partitions: Vec<_> = self
                .broker
                .describe_group(&req.group, topic)?
                .into_iter()
                .map(convert::group_partition)
                .collect();
            let total_lag = partitions.iter().map(|p| p.lag).sum();
            Ok(proto::DescribeGroupResponse {
                group: req.group,
                partitions,
                total_lag,
            })
        })
        .await
    }

    async fn reset_offsets(
        &self,
        request: Request<proto::ResetOffsetsRequest>,
    ) -> Result<Response<proto::ResetOffsetsResponse>, Status> {
        observe("ResetOffsets", async {
            use distlog_broker::ResetTarget;
            use proto::reset_spec::Spec;
            let req = request.into_inner();
            let target = match req.spec.and_then(|s| s.spec) {
                Some(Spec::Earliest(_)) => ResetTarget::Earliest,
                Some(Spec::Latest(_)) => ResetTarget::Latest,
                Some(Spec::Offset(o)) => ResetTarget::Offset(offset_arg("offset", o)?),
                Some(Spec::TimestampMs(ts)) => ResetTarget::Timestamp(ts),
                Some(Spec::ShiftBy(n)) => ResetTarget::ShiftBy(n),
                None => {
                    return Err(ApiError::InvalidArgument(
                        "spec is required: earliest, latest, offset, timestamp_ms or shift_by"
                            .into(),
                    ));
                }
            };
            let broker = self.broker.clone();
            let dry_run = req.dry_run;
            let plan = blocking(move || {
                broker.reset_group_offsets(&req.group, &req.topic, &req.partitions, target, dry_run)
            })
            .await?;
            Ok(proto::ResetOffsetsResponse {
                partitions: plan.into_iter().map(convert::partition_reset).collect(),
                dry_run,
            })
        })
        .await
    }

    async fn delete_group(
        &self,
        request: Request<proto::DeleteGroupRequest>,
    ) -> Result<Response<proto::DeleteGroupResponse>, Status> {
        observe("DeleteGroup", async {
            let group = request.into_inner().group;
            let broker = self.broker.clone();
            let deleted = blocking(move || broker.delete_group(&group)).await?;
            Ok(proto::DeleteGroupResponse {
                offsets_deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl Cluster for DistLogService {
    async fn describe_cluster(
        &self,
        _request: Request<proto::DescribeClusterRequest>,
    ) -> Result<Response<proto::DescribeClusterResponse>, Status> {
        observe("DescribeCluster", async {
            Ok(convert::cluster(
                self.broker.info(),
                env!("CARGO_PKG_VERSION"),
                self.broker.data_dir().display().to_string(),
            ))
        })
        .await
    }
}

fn plugin_response(p: distlog_broker::PluginDescription) -> proto::PluginResponse {
    proto::PluginResponse {
        plugin: Some(convert::plugin(p)),
    }
}

#[tonic::async_trait]
impl Plugins for DistLogService {
    async fn list_plugins(
        &self,
        _request: Request<proto::ListPluginsRequest>,
    ) -> Result<Response<proto::ListPluginsResponse>, Status> {
        observe("ListPlugins", async {
            Ok(proto::ListPluginsResponse {
                plugins: self
                    .broker
                    .list_plugins()?
                    .into_iter()
                    .map(convert::plugin)
                    .collect(),
            })
        })
        .await
    }

    async fn load_plugin(
        &self,
        request: Request<proto::LoadPluginRequest>,
    ) -> Result<Response<proto::PluginResponse>, Status> {
        observe("LoadPlugin", async {
            let req = request.into_inner();
            let kind = convert::kind_from_proto(req.kind)
                .map_err(|k| ApiError::InvalidArgument(format!("unknown plugin kind {k}")))?;
            if req.component.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "component bytes are empty".into(),
                ));
            }
            let broker = self.broker.clone();
            let params = req.params.into_iter().collect();
            let mut limits = distlog_broker::PluginLimits::default();
            let ms = |v: u64| (v > 0).then(|| std::time::Duration::from_millis(v));
            limits.timeout = ms(req.timeout_ms);
            limits.init_timeout = ms(req.init_timeout_ms);
            limits.memory_bytes = (req.memory_bytes > 0).then_some(req.memory_bytes);
            limits.fuel = (req.fuel > 0).then_some(req.fuel);
            let p = blocking(move || {
                broker.load_plugin_with_limits(&req.name, kind, params, limits, req.component)
            })
            .await?;
            Ok(plugin_response(p))
        })
        .await
    }

    async fn reload_plugin(
        &self,
        request: Request<proto::ReloadPluginRequest>,
    ) -> Result<Response<proto::PluginResponse>, Status> {
        observe("ReloadPlugin", async {
            let req = request.into_inner();
            if req.component.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "component bytes are empty".into(),
                ));
            }
            let broker = self.broker.clone();
            let p = blocking(move || broker.reload_plugin(&req.name, req.component)).await?;
            Ok(plugin_response(p))
        })
        .await
    }

    async fn unload_plugin(
        &self,
        request: Request<proto::UnloadPluginRequest>,
    ) -> Result<Response<proto::UnloadPluginResponse>, Status> {
        observe("UnloadPlugin", async {
            let name = request.into_inner().name;
            let broker = self.broker.clone();
            blocking(move || broker.unload_plugin(&name)).await?;
            Ok(proto::UnloadPluginResponse {})
        })
        .await
    }

    async fn describe_plugin(
        &self,
        request: Request<proto::DescribePluginRequest>,
    ) -> Result<Response<proto::PluginResponse>, Status> {
        observe("DescribePlugin", async {
            Ok(plugin_response(
                self.broker.describe_plugin(&request.into_inner().name)?,
            ))
        })
        .await
    }
}
