//! gRPC produce and consume throughput and latency of the real server, against a bare
//! tonic service with the same messages as the transport ceiling, in one run.
//!
//! The ceiling implements the same generated `Records` service with no broker behind
//! it: `Produce` answers with made-up offsets, `Fetch` returns pre-built records of the
//! requested size. Both servers run in this process on 127.0.0.1 (port 0) with the same
//! transport settings (`distlog_server::transport`: HTTP/2 windows, `TCP_NODELAY`) and are
//! driven by the same client code, so `broker / ceiling` is the cost of the broker itself
//! (validation, batch encoding, storage append and fsync, reads and decoding).
//!
//! Two more ceilings add the disk to the transport, for each flush policy measured: the same
//! service, whose `Produce` also appends the request's values to a plain file (one per
//! topic and partition, same file system as the broker's data) with one `writev` (`+write`,
//! for `flush.policy=os`) or one `writev` and one `fdatasync` (`+fsync`, for `batch`) before
//! answering, and nothing else. Each produce row reports its ratio to the bare ceiling (the
//! aim) and to the one with the same disk work, so the cost of the kernel's write path and
//! of the disk can be told apart from the cost of the broker.
//!
//! Run: `cargo bench -p distlog-benches --bench grpc`. Environment:
//! - `DISTLOG_BENCH_QUICK=1`: short runs and fewer scenarios (a smoke test, ~15 s);
//! - `DISTLOG_BENCH_SECS` (default 2): seconds per measurement;
//! - `DISTLOG_BENCH_SIZES` (default `100,1024`): record value sizes in bytes;
//! - `DISTLOG_BENCH_BATCH_BYTES` (default 262144): records per request = this / size;
//! - `DISTLOG_BENCH_CONCURRENCY` (default `1,4`): concurrent clients, one connection each;
//! - `DISTLOG_BENCH_SYNC` (default `os,batch`): topic `flush.policy` values;
//! - `DISTLOG_BENCH_WINDOW` (default 4): requests in flight on the single-client pipelined
//!   `ProduceStream` rows (Kafka clients keep up to 5); 0 skips those rows;
//! - `DISTLOG_BENCH_ROUNDS` (default 3, quick 1): each row alternates ceiling and broker runs
//!   this many times and keeps each side's best run, so a burst of load from elsewhere on the
//!   machine does not decide the ratio. Every broker run writes to a fresh topic that is
//!   deleted after it, so no run pays the kernel's write-back of an earlier run's data.
//!
//! Two produce modes: unary `Produce` calls, each client waiting for its answer before
//! sending the next request; and one client pipelining on the bidirectional `ProduceStream`
//! (answers come in order) with `window` requests in flight. The ceiling is driven the same
//! way in each mode (its `ProduceStream` answers each request as it arrives), so each ratio
//! compares like with like.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use distlog_harness::InProcess;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::records_server::{Records, RecordsServer};
use distlog_server::proto::{
    CreateTopicRequest, DeleteTopicRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceRequest, ProduceResponse, Record, StoredRecord, SubscribeRequest,
    topics_client::TopicsClient,
};
use distlog_server::{BrokerConfig, ServerConfig};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

const MAX_MESSAGE: usize = 256 << 20;

struct Settings {
    secs: f64,
    sizes: Vec<usize>,
    batch_bytes: usize,
    concurrency: Vec<usize>,
    sync: Vec<String>,
    window: usize,
    rounds: usize,
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

impl Settings {
    fn from_env() -> Self {
        let quick = std::env::var_os("DISTLOG_BENCH_QUICK").is_some();
        let secs = std::env::var("DISTLOG_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 0.4 } else { 2.0 });
        Self {
            secs,
            sizes: env_list(
                "DISTLOG_BENCH_SIZES",
                if quick { "1024" } else { "100,1024" },
            ),
            batch_bytes: env_list("DISTLOG_BENCH_BATCH_BYTES", "262144")
                .first()
                .copied()
                .unwrap_or(262_144),
            concurrency: env_list("DISTLOG_BENCH_CONCURRENCY", if quick { "2" } else { "1,4" }),
            sync: env_list("DISTLOG_BENCH_SYNC", if quick { "os" } else { "os,batch" }),
            window: env_list("DISTLOG_BENCH_WINDOW", "4")
                .first()
                .copied()
                .unwrap_or(4),
            rounds: env_list("DISTLOG_BENCH_ROUNDS", if quick { "1" } else { "3" })
                .first()
                .copied()
                .unwrap_or(3)
                .max(1),
        }
    }
}

/// Latency samples of one measurement, in microseconds.
#[derive(Default)]
struct Measured {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Measured {
    fn merge(&mut self, other: Measured) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.latencies_us.extend(other.latencies_us);
    }

    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let last = self.latencies_us.len() - 1;
        let at = ((last as f64) * p).round() as usize;
        self.latencies_us[at.min(last)] as f64 / 1000.0
    }

    fn line(&mut self, label: &str) -> String {
        format!(
            "{label:<44} {:>11.0} rec/s {:>9.1} MB/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms",
            self.records_per_sec(),
            self.mb_per_sec(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
        )
    }
}

// ---------------------------------------------------------------------------------------
// The ceiling: the same Records service with nothing behind it.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Ceiling {
    /// `Some` for the ceilings with disk work: every produce request's values are written
    /// to a file (and `fdatasync`ed) before the answer, nothing else.
    disk: Option<Arc<DiskSink>>,
}

type SharedFile = Arc<std::sync::Mutex<std::fs::File>>;

/// A disk ceiling's work: one plain file per `(topic, partition)` in a temporary directory
/// on the same file system as the broker's data, each request's values appended with one
/// `writev` straight from the request's buffers and, when `sync`, made durable with one
/// `fdatasync` (no batching across requests, no index, no CRC). [`DiskSink::reset`] removes
/// the files between runs, as the broker's runs each write to a fresh topic.
#[derive(Debug)]
struct DiskSink {
    sync: bool,
    dir: tempfile::TempDir,
    files: std::sync::Mutex<HashMap<(String, u32), SharedFile>>,
}

impl DiskSink {
    fn new(sync: bool) -> Result<Self> {
        Ok(Self {
            sync,
            dir: tempfile::tempdir()?,
            files: std::sync::Mutex::default(),
        })
    }

    /// Appends the values of `request` to its partition's file, and syncs it if `sync`.
    fn write(&self, request: &ProduceRequest) -> std::io::Result<()> {
        let key = (request.topic.clone(), request.partition.unwrap_or(0));
        let file = {
            let mut files = self.files.lock().expect("sink map");
            match files.get(&key) {
                Some(file) => file.clone(),
                None => {
                    let path = self.dir.path().join(format!("{}-{}", key.0, key.1));
                    let file = Arc::new(std::sync::Mutex::new(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)?,
                    ));
                    files.insert(key, file.clone());
                    file
                }
            }
        };
        // One `writev` of the values where they lie (no gathering copy, no allocation).
        let mut slices: Vec<std::io::IoSlice<'_>> = request
            .records
            .iter()
            .filter_map(|r| r.value.as_deref().map(std::io::IoSlice::new))
            .collect();
        let mut slices = &mut slices[..];
        let mut file = file.lock().expect("sink file");
        while !slices.is_empty() {
            let n = file.write_vectored(slices)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut slices, n);
        }
        if self.sync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Removes every file written so far.
    fn reset(&self) -> Result<()> {
        let files = std::mem::take(&mut *self.files.lock().expect("sink map"));
        for (topic, partition) in files.into_keys() {
            std::fs::remove_file(self.dir.path().join(format!("{topic}-{partition}")))?;
        }
        Ok(())
    }
}

impl Ceiling {
    /// Does the disk work for `request` (nothing for the bare ceiling): inline when it
    /// only writes to the page cache, on the blocking pool when it waits for an fsync, as
    /// the broker does.
    async fn store(&self, request: ProduceRequest) -> Result<ProduceRequest, Status> {
        let internal = |e: &dyn std::fmt::Display| Status::internal(e.to_string());
        match self.disk.clone() {
            None => Ok(request),
            Some(disk) if !disk.sync => disk
                .write(&request)
                .map(|()| request)
                .map_err(|e| internal(&e)),
            Some(disk) => {
                tokio::task::spawn_blocking(move || disk.write(&request).map(|()| request))
                    .await
                    .map_err(|e| internal(&e))?
                    .map_err(|e| internal(&e))
            }
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Records for Ceiling {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let request = self.store(request.into_inner()).await?;
        let n = request.records.len();
        Ok(Response::new(ProduceResponse {
            partitions: Vec::new(),
            offsets: (0..n as i64).collect(),
            record_partitions: vec![0; n],
            sequence: request.sequence,
            error: None,
        }))
    }

    type ProduceStreamStream = BoxStream<ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        // Same shape as the broker's: a task reads requests in order and answers each
        // through a bounded channel.
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let this = Self {
            disk: self.disk.clone(),
        };
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                let request = match this.store(request).await {
                    Ok(request) => request,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let n = request.records.len();
                let response = ProduceResponse {
                    partitions: Vec::new(),
                    offsets: (0..n as i64).collect(),
                    record_partitions: vec![0; n],
                    sequence: request.sequence,
                    error: None,
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let request = request.into_inner();
        // max_bytes carries the record size, the offset the batch's first offset.
        let size = request.max_wait_ms as usize;
        let count = (request.max_bytes as usize / size.max(1)).max(1);
        let value = bytes::Bytes::from(vec![b'x'; size]);
        let records = (0..count as i64)
            .map(|i| StoredRecord {
                offset: request.offset + i,
                timestamp_ms: 1_700_000_000_000,
                key: None,
                value: Some(value.clone()),
                headers: Vec::new(),
            })
            .collect();
        Ok(Response::new(FetchResponse {
            records,
            log_start_offset: 0,
            log_end_offset: i64::MAX,
            next_offset: request.offset + count as i64,
            batches: Vec::new(),
        }))
    }

    type SubscribeStream = BoxStream<FetchResponse>;

    async fn subscribe(
        &self,
        _request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("ceiling"))
    }

    async fn list_offsets(
        &self,
        _request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        Err(Status::unimplemented("ceiling"))
    }
}

async fn start_ceiling(disk: Option<Arc<DiskSink>>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = RecordsServer::new(Ceiling { disk })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    // The broker's own transport settings (HTTP/2 windows, TCP_NODELAY): only what is
    // behind the service differs.
    tokio::spawn(
        distlog_server::transport()
            .add_service(service)
            .serve_with_incoming(distlog_server::incoming(listener)),
    );
    Ok(addr)
}

// ---------------------------------------------------------------------------------------
// Load generators, shared by both targets.
// ---------------------------------------------------------------------------------------

async fn channel(addr: SocketAddr) -> Result<Channel> {
    // The CLI's transport settings (windows, frame size, TCP_NODELAY).
    Ok(
        distlog_server::tune_endpoint(Endpoint::from_shared(format!("http://{addr}"))?)
            .connect()
            .await?,
    )
}

fn records_client(channel: Channel) -> RecordsClient<Channel> {
    RecordsClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// The records of one produce request: `per_request` unkeyed values of `size` bytes.
fn records(per_request: usize, size: usize) -> Vec<Record> {
    (0..per_request)
        .map(|_| Record {
            key: None,
            value: Some(vec![b'v'; size]),
            headers: Vec::new(),
            timestamp_ms: None,
        })
        .collect()
}

/// `concurrency` clients, each sending `Produce` requests of `per_request` records of
/// `size` bytes back to back for `secs`, to partition `client index % partitions`.
async fn produce_load(
    addr: SocketAddr,
    topic: &str,
    size: usize,
    per_request: usize,
    concurrency: usize,
    partitions: u32,
    secs: f64,
) -> Result<Measured> {
    let template = records(per_request, size);
    let template = Arc::new(template);
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..concurrency {
        let mut client = records_client(channel(addr).await?);
        let topic = topic.to_owned();
        let template = template.clone();
        workers.push(tokio::spawn(async move {
            let mut measured = Measured::default();
            let partition = (i as u32) % partitions.max(1);
            while started.elapsed() < deadline {
                let request = ProduceRequest {
                    topic: topic.clone(),
                    partition: Some(partition),
                    records: (*template).clone(),
                    sequence: 0,
                };
                let t = Instant::now();
                let response = client.produce(request).await?.into_inner();
                measured.latencies_us.push(t.elapsed().as_micros() as u64);
                anyhow::ensure!(response.offsets.len() == per_request, "short produce");
                measured.records += per_request as u64;
                measured.bytes += (per_request * size) as u64;
            }
            anyhow::Ok(measured)
        }));
    }
    let mut total = Measured::default();
    for worker in workers {
        total.merge(worker.await??);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// One client pipelining `Produce` requests of `per_request` records of `size` bytes on one
/// `ProduceStream` to partition 0 for `secs`, keeping `window` requests in flight (a new one
/// is sent as each answer arrives). Latency: from sending a request to reading its answer.
async fn produce_pipelined(
    addr: SocketAddr,
    topic: &str,
    size: usize,
    per_request: usize,
    window: usize,
    secs: f64,
) -> Result<Measured> {
    let template = records(per_request, size);
    let window = window.max(1);
    let mut client = records_client(channel(addr).await?);
    let (tx, rx) = tokio::sync::mpsc::channel::<ProduceRequest>(window);
    let mut responses = client
        .produce_stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let request = |sequence: u64| ProduceRequest {
        topic: topic.to_owned(),
        partition: Some(0),
        records: template.clone(),
        sequence,
    };
    let deadline = Duration::from_secs_f64(secs);
    let mut measured = Measured::default();
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(window);
    let mut sequence = 0u64;
    let started = Instant::now();
    while in_flight.len() < window {
        tx.send(request(sequence)).await?;
        in_flight.push_back((sequence, Instant::now()));
        sequence += 1;
    }
    while let Some((expected, sent)) = in_flight.pop_front() {
        let response = responses
            .message()
            .await?
            .context("produce stream ended early")?;
        measured
            .latencies_us
            .push(sent.elapsed().as_micros() as u64);
        anyhow::ensure!(
            response.error.is_none(),
            "produce failed: {:?}",
            response.error
        );
        anyhow::ensure!(response.sequence == expected, "answer out of order");
        anyhow::ensure!(response.offsets.len() == per_request, "short produce");
        measured.records += per_request as u64;
        measured.bytes += (per_request * size) as u64;
        if started.elapsed() < deadline {
            tx.send(request(sequence)).await?;
            in_flight.push_back((sequence, Instant::now()));
            sequence += 1;
        }
    }
    measured.elapsed = started.elapsed();
    drop(tx);
    Ok(measured)
}

/// One client fetching `topic`/`partition` from offset 0 in `max_bytes` responses until
/// `end` (wrapping around) for `secs`. For the ceiling, `size` rides in `max_wait_ms`.
async fn consume_load(
    addr: SocketAddr,
    topic: &str,
    size: usize,
    max_bytes: usize,
    end: i64,
    secs: f64,
    ceiling: bool,
) -> Result<Measured> {
    let mut client = records_client(channel(addr).await?);
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut offset = 0i64;
    while started.elapsed() < deadline {
        let request = FetchRequest {
            topic: topic.to_owned(),
            partition: 0,
            offset,
            max_bytes: max_bytes as u32,
            max_wait_ms: if ceiling { size as u32 } else { 0 },
            format: 0,
        };
        let t = Instant::now();
        let response = client.fetch(request).await?.into_inner();
        measured.latencies_us.push(t.elapsed().as_micros() as u64);
        let n = response.records.len() as u64;
        anyhow::ensure!(n > 0, "empty fetch at offset {offset}");
        measured.records += n;
        measured.bytes += response
            .records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, bytes::Bytes::len) as u64)
            .sum::<u64>();
        offset = response.next_offset;
        if offset >= end {
            offset = 0;
        }
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

// ---------------------------------------------------------------------------------------
// The broker under test.
// ---------------------------------------------------------------------------------------

/// Opens a broker over `dir` and serves it on 127.0.0.1:0 in this process (on this
/// runtime, as the ceilings are).
async fn start_broker(dir: &std::path::Path) -> Result<InProcess> {
    let mut config = ServerConfig::default();
    config.max_request_bytes = MAX_MESSAGE / 2;
    config.max_fetch_bytes = 64 << 20;
    // Subscribe buffers hold at least one largest fetch.
    config.stream_buffer_bytes = config.max_connection_response_bytes;
    Ok(InProcess::start(BrokerConfig::new(dir.join("data")), config).await?)
}

async fn create_topic(addr: SocketAddr, name: &str, partitions: u32, sync: &str) -> Result<()> {
    let mut topics = TopicsClient::new(channel(addr).await?);
    topics
        .create_topic(CreateTopicRequest {
            name: name.to_owned(),
            partitions,
            config: [("flush.policy".to_owned(), sync.to_owned())].into(),
        })
        .await
        .with_context(|| format!("create topic {name}"))?;
    Ok(())
}

/// The best (highest MB/s) of `runs`.
fn best(runs: Vec<Measured>) -> Measured {
    runs.into_iter()
        .max_by(|a, b| a.mb_per_sec().total_cmp(&b.mb_per_sec()))
        .unwrap_or_default()
}

/// The shape of one produce load: record size, records per request, and either
/// `concurrency` unary clients or one client pipelining `window` requests.
#[derive(Debug, Clone, Copy)]
struct ProduceShape {
    size: usize,
    per_request: usize,
    concurrency: usize,
    window: Option<usize>,
    secs: f64,
}

impl ProduceShape {
    /// Runs this load against `topic` at `addr`: unary with `concurrency` clients (one
    /// partition each), or pipelined on one `ProduceStream` when `window` is `Some`.
    async fn run(&self, addr: SocketAddr, topic: &str) -> Result<Measured> {
        let Self {
            size,
            per_request,
            concurrency,
            window,
            secs,
        } = *self;
        match window {
            Some(window) => produce_pipelined(addr, topic, size, per_request, window, secs).await,
            None => {
                let partitions = concurrency as u32;
                produce_load(
                    addr,
                    topic,
                    size,
                    per_request,
                    concurrency,
                    partitions,
                    secs,
                )
                .await
            }
        }
    }
}

async fn delete_topic(addr: SocketAddr, name: &str) -> Result<()> {
    let mut topics = TopicsClient::new(channel(addr).await?);
    topics
        .delete_topic(DeleteTopicRequest {
            name: name.to_owned(),
        })
        .await
        .with_context(|| format!("delete topic {name}"))?;
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn run(settings: Settings) -> Result<()> {
    // Declared first, dropped last: the broker is stopped before its directory goes.
    let dir = tempfile::tempdir()?;
    let broker = start_broker(dir.path()).await?;
    let ceiling = start_ceiling(None).await?;
    // The ceilings with disk work, one per flush policy measured that has one.
    let mut disk_ceilings: Vec<Option<(SocketAddr, Arc<DiskSink>, &str)>> = Vec::new();
    for sync in &settings.sync {
        let disk = match sync.as_str() {
            "os" => Some((false, "+write")),
            "batch" => Some((true, "+fsync")),
            _ => None,
        };
        disk_ceilings.push(match disk {
            Some((fsync, label)) => {
                let sink = Arc::new(DiskSink::new(fsync)?);
                Some((start_ceiling(Some(sink.clone())).await?, sink, label))
            }
            None => None,
        });
    }
    println!(
        "grpc bench: broker {} ceiling {} ({} s per measurement, best of {} alternating runs)",
        broker.addr(),
        ceiling,
        settings.secs,
        settings.rounds
    );
    let mut summary = Vec::new();
    let mut topic_seq = 0;
    for &size in &settings.sizes {
        let per_request = (settings.batch_bytes / size).max(1);
        // Unary rows per concurrency, then one client pipelining on ProduceStream.
        let mut modes: Vec<(String, usize, Option<usize>)> = settings
            .concurrency
            .iter()
            .map(|&c| (format!("c{c}"), c, None))
            .collect();
        if settings.window > 0 {
            let w = settings.window;
            modes.push((format!("stream w{w}"), 1, Some(w)));
        }
        for (mode, concurrency, window) in modes {
            let partitions = if window.is_some() {
                1
            } else {
                concurrency as u32
            };
            let mut ceiling_runs = Vec::new();
            let mut disk_runs: Vec<Vec<Measured>> =
                settings.sync.iter().map(|_| Vec::new()).collect();
            let mut broker_runs: Vec<Vec<Measured>> =
                settings.sync.iter().map(|_| Vec::new()).collect();
            let shape = ProduceShape {
                size,
                per_request,
                concurrency,
                window,
                secs: settings.secs,
            };
            for _ in 0..settings.rounds {
                for (disk, runs) in disk_ceilings.iter().zip(&mut disk_runs) {
                    let Some((addr, sink, _)) = disk else {
                        continue;
                    };
                    runs.push(shape.run(*addr, "disk").await?);
                    sink.reset()?;
                }
                ceiling_runs.push(shape.run(ceiling, "ceiling").await?);
                for (sync, runs) in settings.sync.iter().zip(&mut broker_runs) {
                    topic_seq += 1;
                    let topic = format!("bench-{topic_seq}");
                    create_topic(broker.addr(), &topic, partitions, sync).await?;
                    runs.push(shape.run(broker.addr(), &topic).await?);
                    delete_topic(broker.addr(), &topic).await?;
                }
            }
            let mut ceiling_run = best(ceiling_runs);
            let label = format!("produce ceiling {size}B x{per_request} {mode}");
            println!("{}", ceiling_run.line(&label));
            for (((sync, runs), disk), disk_runs) in settings
                .sync
                .iter()
                .zip(broker_runs)
                .zip(&disk_ceilings)
                .zip(disk_runs)
            {
                let disk_run = disk.as_ref().map(|(_, _, what)| {
                    let mut run = best(disk_runs);
                    let label = format!("produce ceiling {size}B x{per_request} {mode} {what}");
                    println!("{}", run.line(&label));
                    (run, *what)
                });
                let mut run = best(runs);
                let label = format!("produce broker  {size}B x{per_request} {mode} {sync}");
                println!("{}", run.line(&label));
                let mut line = format!(
                    "produce {size:>5}B x{per_request:<5} {mode:<10} sync={sync:<5}  broker/ceiling MB/s = {:.2}",
                    run.mb_per_sec() / ceiling_run.mb_per_sec()
                );
                if let Some((disk_run, what)) = disk_run {
                    line.push_str(&format!(
                        "  broker/(ceiling{what}) = {:.2}",
                        run.mb_per_sec() / disk_run.mb_per_sec()
                    ));
                }
                summary.push(line);
            }
        }
        // Consume: fill one partition, then read it back in request-sized responses.
        topic_seq += 1;
        let topic = format!("bench-{topic_seq}");
        create_topic(broker.addr(), &topic, 1, "os").await?;
        let fill = produce_load(
            broker.addr(),
            &topic,
            size,
            per_request,
            1,
            1,
            settings.secs.min(1.0),
        )
        .await?;
        let end = fill.records as i64;
        let max_bytes = settings.batch_bytes;
        let mut ceiling_runs = Vec::new();
        let mut broker_runs = Vec::new();
        for _ in 0..settings.rounds {
            ceiling_runs.push(
                consume_load(
                    ceiling,
                    "ceiling",
                    size,
                    max_bytes,
                    i64::MAX,
                    settings.secs,
                    true,
                )
                .await?,
            );
            broker_runs.push(
                consume_load(
                    broker.addr(),
                    &topic,
                    size,
                    max_bytes,
                    end,
                    settings.secs,
                    false,
                )
                .await?,
            );
        }
        delete_topic(broker.addr(), &topic).await?;
        let mut ceiling_run = best(ceiling_runs);
        let mut run = best(broker_runs);
        println!(
            "{}",
            ceiling_run.line(&format!("fetch   ceiling {size}B {max_bytes}B/resp"))
        );
        println!(
            "{}",
            run.line(&format!("fetch   broker  {size}B {max_bytes}B/resp"))
        );
        summary.push(format!(
            "fetch   {size:>5}B {max_bytes}B/resp                  broker/ceiling MB/s = {:.2}",
            run.mb_per_sec() / ceiling_run.mb_per_sec()
        ));
    }
    println!(
        "\nratios (aim: produce at 1 KiB >= 0.70 of the bare ceiling; +write and +fsync: the ceiling also writes, and fdatasyncs, each request's values):"
    );
    for line in summary {
        println!("  {line}");
    }
    Ok(broker.stop().await?)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}
