//! One load generator for the peer comparison (`benches/peers/run.sh`): the same load shape
//! against distlog, Redis Streams and NATS JetStream, each through its native Rust client, so
//! the client side costs about the same everywhere and the figures compare the servers.
//!
//! ```text
//! peers <distlog|redis|nats> <produce|consume> --endpoint URL [--size 100] [--count 100000]
//!       [--batch 1000] [--window 8] [--sync no|batch] [--name peers] [--max-secs 60]
//! ```
//!
//! Prints one JSON line: `system`, `op`, `size`, `records`, `requests`, `seconds`,
//! `records_per_sec` and `mb_per_sec` (value bytes only). Run without a system (as
//! `cargo bench` does) it prints this usage and exits: it needs servers that run.sh starts.
//!
//! Load shape, the same for the three systems (one connection each):
//! - produce: `count` records of `size` bytes in requests of `batch` records, with `window`
//!   requests in flight, measured from the first send to the last acknowledgement.
//!   distlog: `ProduceStream` requests of `batch` records to one partition of a new topic.
//!   Redis: pipelines of `batch` `XADD s * v <value>` on a multiplexed connection.
//!   NATS: `batch` JetStream publishes per request, each acknowledged by the server (that is
//!   the JetStream protocol), awaited a whole batch at a time once `window` batches are out.
//! - consume: one consumer walking the whole log from the start, one request of about
//!   `batch` records at a time (the next request leaves when the previous answer is in).
//!   distlog: `Fetch` with `max_bytes = batch × size`. Redis: `XRANGE s (<last id> + COUNT
//!   batch`. NATS: an ephemeral pull consumer with `AckPolicy::None` (no per-message ack
//!   traffic, like a stateless fetch), `fetch` of `batch` messages.
//! - `--sync`: `no` or `batch`. distlog creates the topic with `flush.policy=os` or `batch`;
//!   Redis and NATS take durability from their server configuration (`appendfsync`,
//!   `sync_interval`), which run.sh sets; for Redis this checks `appendfsync` matches.
//! - `--fetch raw` (distlog consume): `Fetch` with `BATCH_FORMAT_RAW`, the stored batches as
//!   they are, each CRC-checked and walked record by record here (a Kafka consumer's work);
//!   the default, `records`, has the broker decode them into protobuf records.
//! - `--max-secs` bounds a produce run: past it no new request is sent and the rate is
//!   taken over what was acknowledged (NATS with an fsync per message needs it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use distlog_server::proto::{
    BatchFormat, CreateTopicRequest, FetchRequest, ProduceRequest, Record, StoredBatch,
};
use distlog_storage::batch::BatchView;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

const MAX_MESSAGE: usize = 256 << 20;
/// Generous bound on any single wait: an fsync per message can make acks slow.
const LONG: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Distlog,
    Redis,
    Nats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Produce,
    Consume,
}

#[derive(Debug)]
struct Args {
    system: System,
    op: Op,
    endpoint: String,
    size: usize,
    count: u64,
    batch: usize,
    window: usize,
    sync: bool,
    name: String,
    max_secs: f64,
    /// distlog consume only: fetch stored batches (`BATCH_FORMAT_RAW`) and decode them here.
    raw: bool,
}

const USAGE: &str = "usage: peers <distlog|redis|nats> <produce|consume> --endpoint URL \
[--size 100] [--count 100000] [--batch 1000] [--window 8] [--sync no|batch] [--name peers] \
[--max-secs 60] [--fetch records|raw]   (driven by benches/peers/run.sh)";

impl Args {
    /// `None` when no system is named (a plain `cargo bench` run).
    fn parse(raw: Vec<String>) -> Result<Option<Self>> {
        // `cargo bench` adds `--bench`; it means nothing here.
        let mut raw = raw.into_iter().filter(|a| a != "--bench");
        let Some(system) = raw.next() else {
            return Ok(None);
        };
        let system = match system.as_str() {
            "distlog" => System::Distlog,
            "redis" => System::Redis,
            "nats" => System::Nats,
            other => bail!("unknown system {other:?}\n{USAGE}"),
        };
        let op = match raw.next().as_deref() {
            Some("produce") => Op::Produce,
            Some("consume") => Op::Consume,
            other => bail!("unknown op {other:?}\n{USAGE}"),
        };
        let mut args = Self {
            system,
            op,
            endpoint: String::new(),
            size: 100,
            count: 100_000,
            batch: 1000,
            window: 8,
            sync: false,
            name: "peers".to_owned(),
            max_secs: 60.0,
            raw: false,
        };
        while let Some(flag) = raw.next() {
            let value = raw
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            let bad = || format!("bad value {value:?} for {flag}");
            match flag.as_str() {
                "--endpoint" => args.endpoint.clone_from(&value),
                "--size" => args.size = value.parse().with_context(bad)?,
                "--count" => args.count = value.parse().with_context(bad)?,
                "--batch" => args.batch = value.parse().with_context(bad)?,
                "--window" => args.window = value.parse().with_context(bad)?,
                "--name" => args.name.clone_from(&value),
                "--max-secs" => args.max_secs = value.parse().with_context(bad)?,
                "--fetch" => {
                    args.raw = match value.as_str() {
                        "records" => false,
                        "raw" => true,
                        _ => bail!("{}", bad()),
                    }
                }
                "--sync" => {
                    args.sync = match value.as_str() {
                        "no" => false,
                        "batch" => true,
                        _ => bail!("{}", bad()),
                    }
                }
                _ => bail!("unknown flag {flag}\n{USAGE}"),
            }
        }
        ensure!(!args.endpoint.is_empty(), "--endpoint is required\n{USAGE}");
        ensure!(
            args.batch > 0 && args.window > 0 && args.count > 0,
            "--batch, --window and --count must be positive"
        );
        Ok(Some(args))
    }

    /// Records in the request that starts at record `sent`.
    fn batch_at(&self, sent: u64) -> usize {
        usize::try_from(self.count - sent).map_or(self.batch, |left| left.min(self.batch))
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.max_secs)
    }
}

/// What one run did.
#[derive(Debug, Default)]
struct Measured {
    records: u64,
    bytes: u64,
    requests: u64,
    elapsed: Duration,
}

impl Measured {
    fn json(&self, args: &Args) -> String {
        let secs = self.elapsed.as_secs_f64();
        let system = format!("{:?}", args.system).to_lowercase();
        let op = format!("{:?}", args.op).to_lowercase();
        format!(
            "{{\"system\":\"{system}\",\"op\":\"{op}\",\"size\":{},\"records\":{},\"requests\":{},\
             \"seconds\":{secs:.3},\"records_per_sec\":{:.0},\"mb_per_sec\":{:.1}}}",
            args.size,
            self.records,
            self.requests,
            self.records as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
        )
    }
}

// ---------------------------------------------------------------------------------------
// distlog
// ---------------------------------------------------------------------------------------

async fn distlog_channel(endpoint: &str) -> Result<Channel> {
    // The CLI's and the grpc bench's transport settings: HTTP/2 windows sized for batches,
    // large frames, TCP_NODELAY.
    distlog_server::tune_endpoint(Endpoint::from_shared(endpoint.to_owned())?)
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

fn records_client(channel: Channel) -> RecordsClient<Channel> {
    RecordsClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

async fn distlog_produce(args: &Args) -> Result<Measured> {
    let channel = distlog_channel(&args.endpoint).await?;
    let policy = if args.sync { "batch" } else { "os" };
    TopicsClient::new(channel.clone())
        .create_topic(CreateTopicRequest {
            name: args.name.clone(),
            partitions: 1,
            config: [("flush.policy".to_owned(), policy.to_owned())].into(),
        })
        .await
        .with_context(|| format!("creating topic {}", args.name))?;
    let mut client = records_client(channel);
    let record = Record {
        key: None,
        value: Some(vec![b'x'; args.size]),
        headers: Vec::new(),
        timestamp_ms: None,
    };
    // A permit per request in flight, returned when its answer arrives.
    let window = Arc::new(Semaphore::new(args.window));
    let (tx, rx) = mpsc::channel::<ProduceRequest>(args.window);
    let started = Instant::now();
    let sender = {
        let window = window.clone();
        let (topic, count, deadline) = (args.name.clone(), args.count, args.deadline());
        let sizes: Vec<usize> = std::iter::successors(Some(0u64), |s| Some(s + args.batch as u64))
            .take_while(|&s| s < count)
            .map(|s| args.batch_at(s))
            .collect();
        tokio::spawn(async move {
            for (sequence, n) in (0u64..).zip(sizes) {
                if started.elapsed() >= deadline {
                    break;
                }
                window.acquire().await?.forget();
                let request = ProduceRequest {
                    topic: topic.clone(),
                    partition: Some(0),
                    records: vec![record.clone(); n],
                    sequence,
                };
                if tx.send(request).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut answers = client
        .produce_stream(ReceiverStream::new(rx))
        .await
        .context("opening ProduceStream")?
        .into_inner();
    let mut measured = Measured::default();
    while let Some(answer) = answers.message().await.context("ProduceStream")? {
        if let Some(error) = answer.error {
            bail!("produce {} failed: {}", answer.sequence, error.message);
        }
        let n = answer.offsets.len() as u64;
        measured.records += n;
        measured.bytes += n * args.size as u64;
        measured.requests += 1;
        window.add_permits(1);
    }
    measured.elapsed = started.elapsed();
    sender.await??;
    Ok(measured)
}

/// One consumer walking the topic from offset 0. With `--fetch raw` the broker sends the
/// stored batches as they are and this client checks each batch's CRC and walks its
/// records, as a Kafka consumer does (`check.crcs`); otherwise the broker decodes them into
/// protobuf records. Either way every record's value is looked at.
async fn distlog_consume(args: &Args) -> Result<Measured> {
    let mut client = records_client(distlog_channel(&args.endpoint).await?);
    // max_bytes caps record bytes: about `batch` records per answer.
    let max_bytes = u32::try_from(args.batch * args.size).unwrap_or(u32::MAX);
    let format = if args.raw {
        BatchFormat::Raw
    } else {
        BatchFormat::Decoded
    };
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut offset = 0;
    while measured.records < args.count {
        let response = client
            .fetch(FetchRequest {
                topic: args.name.clone(),
                partition: 0,
                offset,
                max_bytes,
                max_wait_ms: 0,
                format: format as i32,
            })
            .await
            .with_context(|| format!("fetch at {offset}"))?
            .into_inner();
        let (records, bytes) = if args.raw {
            count_batches(&response.batches, u64::try_from(offset)?)?
        } else {
            let bytes = response
                .records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, bytes::Bytes::len) as u64)
                .sum::<u64>();
            (response.records.len() as u64, bytes)
        };
        if records == 0 {
            break;
        }
        measured.requests += 1;
        measured.records += records;
        measured.bytes += bytes;
        offset = response.next_offset;
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

/// Records at or after `offset` in raw-fetched batches, and their value bytes; each
/// batch's CRC is checked.
fn count_batches(batches: &[StoredBatch], offset: u64) -> Result<(u64, u64)> {
    let (mut records, mut bytes) = (0, 0);
    for batch in batches {
        ensure!(
            batch.codec_name.is_empty(),
            "batch {} is compressed ({}): this load reads uncompressed topics only",
            batch.base_offset,
            batch.codec_name
        );
        let view = BatchView::parse(&batch.data)
            .with_context(|| format!("batch at {}", batch.base_offset))?;
        for record in view.records()? {
            let record = record?;
            if record.offset() >= offset {
                records += 1;
                bytes += record.value().map_or(0, <[u8]>::len) as u64;
            }
        }
    }
    Ok((records, bytes))
}

// ---------------------------------------------------------------------------------------
// Redis Streams
// ---------------------------------------------------------------------------------------

async fn redis_connection(args: &Args) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(args.endpoint.as_str())?;
    // The default 500 ms response timeout is shorter than a pipeline of fsynced writes.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(LONG));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to {}", args.endpoint))?;
    let fsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut con)
        .await?;
    let want = if args.sync { "always" } else { "no" };
    ensure!(
        fsync.get(1).map(String::as_str) == Some(want),
        "redis appendfsync is {fsync:?}, --sync wants {want}"
    );
    Ok(con)
}

async fn redis_produce(args: &Args) -> Result<Measured> {
    let mut con = redis_connection(args).await?;
    let key = args.name.as_str();
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut con)
        .await?;
    let value = vec![b'x'; args.size];
    let pipeline = |n: usize| {
        let mut pipe = redis::pipe();
        for _ in 0..n {
            pipe.cmd("XADD").arg(key).arg("*").arg("v").arg(&value[..]);
        }
        Arc::new(pipe)
    };
    let full = pipeline(args.batch);
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut in_flight = VecDeque::new();
    let mut sent = 0;
    while sent < args.count && started.elapsed() < args.deadline() {
        let n = args.batch_at(sent);
        let pipe = if n == args.batch {
            full.clone()
        } else {
            pipeline(n)
        };
        let mut con = con.clone();
        // Each pipeline goes out on the shared connection as soon as it is spawned; the
        // server answers them in order.
        in_flight.push_back(tokio::spawn(async move {
            let ids: Vec<redis::Value> = pipe.query_async(&mut con).await?;
            ensure!(
                ids.len() == n,
                "XADD pipeline answered {} of {n}",
                ids.len()
            );
            anyhow::Ok(n)
        }));
        sent += n as u64;
        if in_flight.len() >= args.window {
            redis_settle(&mut in_flight, &mut measured, args.size).await?;
        }
    }
    while !in_flight.is_empty() {
        redis_settle(&mut in_flight, &mut measured, args.size).await?;
    }
    measured.elapsed = started.elapsed();
    let len: u64 = redis::cmd("XLEN").arg(key).query_async(&mut con).await?;
    ensure!(
        len == measured.records,
        "stream holds {len} records, {measured:?}"
    );
    Ok(measured)
}

async fn redis_settle(
    in_flight: &mut VecDeque<tokio::task::JoinHandle<Result<usize>>>,
    measured: &mut Measured,
    size: usize,
) -> Result<()> {
    if let Some(oldest) = in_flight.pop_front() {
        let n = oldest.await?? as u64;
        measured.records += n;
        measured.bytes += n * size as u64;
        measured.requests += 1;
    }
    Ok(())
}

async fn redis_consume(args: &Args) -> Result<Measured> {
    let mut con = redis_connection(args).await?;
    let started = Instant::now();
    let mut measured = Measured::default();
    // A cursor walk: each XRANGE starts just after the last id read.
    let mut from = b"-".to_vec();
    while measured.records < args.count {
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(&args.name)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(args.batch)
            .query_async(&mut con)
            .await?;
        let redis::Value::Array(entries) = reply else {
            bail!("XRANGE answered {reply:?}");
        };
        let Some(last) = entries.last() else { break };
        // Each entry is [id, [field, value, ...]].
        let id = match last {
            redis::Value::Array(entry) => match entry.first() {
                Some(redis::Value::BulkString(id)) => id,
                _ => bail!("XRANGE entry without an id"),
            },
            _ => bail!("XRANGE entry is not an array"),
        };
        from.clear();
        from.push(b'(');
        from.extend_from_slice(id);
        for entry in &entries {
            if let redis::Value::Array(entry) = entry
                && let Some(redis::Value::Array(fields)) = entry.get(1)
                && let Some(redis::Value::BulkString(value)) = fields.get(1)
            {
                measured.bytes += value.len() as u64;
            }
        }
        measured.records += entries.len() as u64;
        measured.requests += 1;
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

// ---------------------------------------------------------------------------------------
// NATS JetStream
// ---------------------------------------------------------------------------------------

async fn nats_context(args: &Args) -> Result<async_nats::jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(LONG))
        .connect(args.endpoint.as_str())
        .await
        .with_context(|| format!("connecting to {}", args.endpoint))?;
    // The ack budget holds a whole window, so the client never throttles below it.
    Ok(async_nats::jetstream::context::ContextBuilder::new()
        .timeout(LONG)
        .max_ack_inflight(args.window * args.batch)
        .build(client))
}

fn nats_subject(args: &Args) -> async_nats::Subject {
    async_nats::Subject::from(format!("{}.data", args.name))
}

async fn nats_produce(args: &Args) -> Result<Measured> {
    use async_nats::jetstream::{context::PublishAckFuture, stream};
    let js = nats_context(args).await?;
    let subject = nats_subject(args);
    // A fresh stream per run; a missing one is not an error.
    let _ = js.delete_stream(&args.name).await;
    js.create_stream(stream::Config {
        name: args.name.clone(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the stream")?;
    let payload = bytes_of(args.size);
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut in_flight: VecDeque<Vec<PublishAckFuture>> = VecDeque::new();
    let mut sent = 0;
    while sent < args.count && started.elapsed() < args.deadline() {
        let n = args.batch_at(sent);
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(js.publish(subject.clone(), payload.clone()).await?);
        }
        in_flight.push_back(acks);
        sent += n as u64;
        if in_flight.len() >= args.window {
            nats_settle(&mut in_flight, &mut measured, args.size).await?;
        }
    }
    while !in_flight.is_empty() {
        nats_settle(&mut in_flight, &mut measured, args.size).await?;
    }
    measured.elapsed = started.elapsed();
    let info = js.get_stream(&args.name).await?.get_info().await?;
    ensure!(
        info.state.messages == measured.records,
        "stream holds {} messages, {measured:?}",
        info.state.messages
    );
    Ok(measured)
}

async fn nats_settle(
    in_flight: &mut VecDeque<Vec<async_nats::jetstream::context::PublishAckFuture>>,
    measured: &mut Measured,
    size: usize,
) -> Result<()> {
    if let Some(acks) = in_flight.pop_front() {
        let n = acks.len() as u64;
        for ack in acks {
            ack.await?;
        }
        measured.records += n;
        measured.bytes += n * size as u64;
        measured.requests += 1;
    }
    Ok(())
}

fn bytes_of(size: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; size])
}

async fn nats_consume(args: &Args) -> Result<Measured> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let js = nats_context(args).await?;
    let stream = js.get_stream(&args.name).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("creating the consumer")?;
    let started = Instant::now();
    let mut measured = Measured::default();
    while measured.records < args.count {
        let mut messages = consumer
            .fetch()
            .max_messages(args.batch)
            .messages()
            .await
            .context("fetch")?;
        let before = measured.records;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
            measured.records += 1;
            measured.bytes += message.payload.len() as u64;
        }
        if measured.records == before {
            break;
        }
        measured.requests += 1;
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

async fn run(args: &Args) -> Result<Measured> {
    match (args.system, args.op) {
        (System::Distlog, Op::Produce) => distlog_produce(args).await,
        (System::Distlog, Op::Consume) => distlog_consume(args).await,
        (System::Redis, Op::Produce) => redis_produce(args).await,
        (System::Redis, Op::Consume) => redis_consume(args).await,
        (System::Nats, Op::Produce) => nats_produce(args).await,
        (System::Nats, Op::Consume) => nats_consume(args).await,
    }
}

fn main() -> Result<()> {
    let Some(args) = Args::parse(std::env::args().skip(1).collect())? else {
        println!("peers: nothing to do without arguments.\n{USAGE}");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(run(&args))?;
    ensure!(
        args.op == Op::Produce || measured.records >= args.count,
        "consumed {} of {} records",
        measured.records,
        args.count
    );
    println!("{}", measured.json(&args));
    Ok(())
}
