//! `distlog produce TOPIC`: one record per input line, sent in batches over a pipelined
//! `ProduceStream` with a bounded number of requests in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use distlog_server::proto::{Header, ProduceRequest, Record};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::format::{parse_header, split_line, unescape};
use super::{Conn, status};
use crate::output::emit;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to append to.
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Split each line into key and value at the first occurrence of this string
    /// (`\t` escapes work). Lines without it get no key.
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// Header added to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Append every record to this partition (default: by key hash).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Most records per request.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Most value+key bytes per request (stay under the broker's request limit).
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// Requests in flight at once on the pipelined stream.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// No rate line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    records: u64,
    bytes: u64,
}

pub async fn run(conn: &Conn, args: ProduceArgs) -> Result<()> {
    if args.batch_records == 0 || args.in_flight == 0 {
        bail!("--batch-records and --in-flight must be at least 1");
    }
    let headers: Vec<Header> = args
        .headers
        .iter()
        .map(|h| parse_header(h).map(|(key, value)| Header { key, value }))
        .collect::<Result<_>>()?;
    let input: Box<dyn AsyncBufRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(BufReader::with_capacity(
            1 << 20,
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::with_capacity(1 << 20, tokio::io::stdin())),
    };

    let started = Instant::now();
    let window = Arc::new(Semaphore::new(args.in_flight));
    let (tx, rx) = mpsc::channel::<ProduceRequest>(args.in_flight);
    let reader = tokio::spawn(read_batches(
        input,
        Batching {
            topic: args.topic.clone(),
            partition: args.partition,
            separator: args.key_separator.as_deref().map(unescape),
            headers,
            max_records: args.batch_records,
            max_bytes: args.batch_bytes,
        },
        tx,
        window.clone(),
    ));

    let mut responses = conn
        .records()
        .produce_stream(conn.request(ReceiverStream::new(rx))?)
        .await
        .map_err(status("produce"))?
        .into_inner();
    let mut acked = 0u64;
    let mut first_offset = None;
    let mut last_rate = Instant::now();
    let mut last_acked = 0u64;
    while let Some(response) = responses.next().await {
        let response = response.map_err(status("produce"))?;
        if let Some(error) = response.error {
            reader.abort();
            bail!(
                "produce failed: {:?}: {}",
                tonic::Code::from(error.code),
                error.message
            );
        }
        window.add_permits(1);
        if first_offset.is_none() {
            first_offset = response.offsets.first().copied();
        }
        acked += response.offsets.len() as u64;
        if !args.quiet && last_rate.elapsed() >= Duration::from_secs(1) {
            let secs = last_rate.elapsed().as_secs_f64();
            eprintln!(
                "produce {}: {acked} records acked, {:.0} records/s",
                args.topic,
                (acked - last_acked) as f64 / secs
            );
            last_rate = Instant::now();
            last_acked = acked;
        }
    }
    let sent = reader.await.context("input reader panicked")??;
    if acked != sent.records {
        bail!(
            "broker acknowledged {acked} of {} records; the stream ended early",
            sent.records
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = json!({
        "topic": args.topic,
        "records": acked,
        "bytes": sent.bytes,
        "first_offset": first_offset,
        "seconds": secs,
        "records_per_sec": if secs > 0.0 { acked as f64 / secs } else { 0.0 },
    });
    emit(conn.output, &summary, || {
        format!(
            "produced {acked} records ({} bytes) to {} in {secs:.3}s\n",
            sent.bytes, args.topic
        )
    })
}

struct Batching {
    topic: String,
    partition: Option<u32>,
    separator: Option<String>,
    headers: Vec<Header>,
    max_records: usize,
    max_bytes: usize,
}

/// Reads lines until EOF and sends them as requests, waiting for a window permit before
/// each send. A line is everything up to `\n` (excluded); a final line without `\n` counts.
async fn read_batches(
    mut input: Box<dyn AsyncBufRead + Unpin + Send>,
    batching: Batching,
    tx: mpsc::Sender<ProduceRequest>,
    window: Arc<Semaphore>,
) -> Result<Sent> {
    let separator = batching.separator.as_deref().map(str::as_bytes);
    let mut sent = Sent::default();
    let mut sequence = 0u64;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .await
            .context("cannot read input")?;
        if n > 0 {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let (key, value) = split_line(&line, separator);
            bytes += value.len() + key.as_ref().map_or(0, Vec::len);
            records.push(Record {
                key,
                value: Some(value),
                headers: batching.headers.clone(),
                timestamp_ms: None,
            });
        }
        let full = records.len() >= batching.max_records || bytes >= batching.max_bytes;
        if !records.is_empty() && (full || n == 0) {
            let permit = window.acquire().await.context("produce window closed")?;
            permit.forget();
            sent.records += records.len() as u64;
            sent.bytes += bytes as u64;
            let request = ProduceRequest {
                topic: batching.topic.clone(),
                partition: batching.partition,
                records: std::mem::take(&mut records),
                sequence,
            };
            sequence += 1;
            bytes = 0;
            if tx.send(request).await.is_err() {
                // The response side ended (an error it reports); stop reading.
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    Ok(sent)
}
