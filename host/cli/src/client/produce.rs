//! `distlog produce TOPIC`: one record per input line (text with an optional key, or the
//! JSON record shape of [`super::format`]), sent in batches over a pipelined
//! `ProduceStream` with a bounded number of requests in flight.
//!
//! Batching never builds a request whose batch could exceed the topic's
//! `max.message.bytes` (read with DescribeTopic): each record's encoded size is bounded from
//! above, and a request is cut before the bound of its records would pass the limit. A
//! record that alone exceeds the limit fails before anything of it is sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use distlog_server::proto::{DescribeTopicRequest, Header, ProduceRequest, Record};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::format::{parse_header, parse_json_line, split_line, unescape};
use super::timefmt::parse_time;
use super::{Conn, status};
use crate::output::emit;

/// Default cap on a request's batch, below the topic's `max.message.bytes`.
const DEFAULT_BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to append to.
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// How each input record is written: `text` (the bytes are the value, or KEY SEP VALUE
    /// with --key-separator) or `json` (the record shape `consume --format json` prints:
    /// base64 key, value and header values, null for absent, timestamp_ms, partition).
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    pub format: InputFormat,
    /// Text input: split each record into key and value at the first occurrence of this
    /// string (`\t` escapes work). Records without it get a null key; an empty key
    /// before the separator is an empty (not null) key.
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// Header added to every record, KEY=VALUE (repeatable; after a JSON record's own).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Text input: send an empty value as null (a tombstone) and an empty key as a null
    /// key, as kcat's -Z.
    #[arg(long, short = 'Z')]
    pub null_empty: bool,
    /// What ends each input record (`\n`, `\0`, `\t`, `\r`, `\\` escapes; several bytes
    /// allowed). A last record without it counts; nothing after the last delimiter is a
    /// record.
    #[arg(long, short = 'D', default_value = r"\n", value_name = "DELIM")]
    pub delimiter: String,
    /// Create time of every record without its own (JSON `timestamp_ms`): milliseconds
    /// since the Unix epoch or RFC 3339. Default: the broker's clock at append.
    #[arg(long, value_name = "TIME")]
    pub timestamp: Option<String>,
    /// Append every record to this partition (default: a JSON record's `partition`, else
    /// by key hash, null keys round-robin).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Most records per request.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Most encoded batch bytes per request; default 1 MiB. Never more than the topic's
    /// max.message.bytes, whatever is given.
    #[arg(long, value_name = "BYTES")]
    pub batch_bytes: Option<usize>,
    /// Requests in flight at once on the pipelined stream.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// No rate line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `produce --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// The record's bytes are its value (or KEY SEP VALUE with --key-separator).
    Text,
    /// One JSON record per input record (the shape `consume --format json` prints).
    Json,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    records: u64,
    bytes: u64,
}

pub async fn run(conn: &Conn, args: ProduceArgs) -> Result<()> {
    if args.batch_records == 0 || args.in_flight == 0 || args.batch_bytes == Some(0) {
        bail!("--batch-records, --batch-bytes and --in-flight must be at least 1");
    }
    if args.format == InputFormat::Json && (args.key_separator.is_some() || args.null_empty) {
        bail!(
            "--key-separator and --null-empty apply to --format text; a JSON record has its \
             own key (base64, or null)"
        );
    }
    let delimiter = unescape(&args.delimiter).into_bytes();
    if delimiter.is_empty() {
        bail!("--delimiter must not be empty");
    }
    let timestamp = args
        .timestamp
        .as_deref()
        .map(parse_time)
        .transpose()
        .context("--timestamp")?;
    let headers: Vec<Header> = args
        .headers
        .iter()
        .map(|h| parse_header(h).map(|(key, value)| Header { key, value }))
        .collect::<Result<_>>()?;
    let max_message_bytes = max_message_bytes(conn, &args.topic).await?;
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
            format: args.format,
            partition: args.partition,
            separator: args.key_separator.as_deref().map(unescape),
            null_empty: args.null_empty,
            delimiter,
            timestamp,
            headers,
            max_records: args.batch_records,
            max_bytes: args
                .batch_bytes
                .unwrap_or(DEFAULT_BATCH_BYTES)
                .min(max_message_bytes),
            max_message_bytes,
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
                "produce failed after {acked} records were acknowledged: {:?}: {}",
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
    let sent = reader
        .await
        .context("input reader panicked")?
        .map_err(|e| {
            if acked > 0 {
                e.context(format!("{acked} records before it were produced"))
            } else {
                e
            }
        })?;
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

/// The topic's `max.message.bytes`, from DescribeTopic.
async fn max_message_bytes(conn: &Conn, topic: &str) -> Result<usize> {
    let described = conn
        .topics()
        .describe_topic(conn.request(DescribeTopicRequest {
            name: topic.to_owned(),
        })?)
        .await
        .map_err(status("describe topic"))?
        .into_inner()
        .topic
        .context("broker returned no topic")?;
    let value = described
        .config
        .get("max.message.bytes")
        .context("the broker did not report the topic's max.message.bytes")?;
    value
        .parse()
        .with_context(|| format!("the topic's max.message.bytes {value:?} is not a number"))
}

struct Batching {
    topic: String,
    format: InputFormat,
    partition: Option<u32>,
    separator: Option<String>,
    null_empty: bool,
    delimiter: Vec<u8>,
    timestamp: Option<i64>,
    headers: Vec<Header>,
    max_records: usize,
    /// Cap on the encoded-size bound of a request's records (at most `max_message_bytes`).
    max_bytes: usize,
    max_message_bytes: usize,
}

/// Encoded length of a zigzag varint (the batch format's varlong).
fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Bytes of a record's key, value and headers, and the encoded size of its fields after
/// the timestamp and offset deltas (docs/FORMAT.md, record layout).
fn record_fields(r: &Record) -> (usize, usize) {
    let nullable = |b: &Option<Vec<u8>>| {
        b.as_ref().map_or((varlong_len(-1), 0), |b| {
            (varlong_len(b.len() as i64) + b.len(), b.len())
        })
    };
    let (key, key_bytes) = nullable(&r.key);
    let (value, value_bytes) = nullable(&r.value);
    let headers: usize = r
        .headers
        .iter()
        .map(|h| {
            varlong_len(h.key.len() as i64)
                + h.key.len()
                + varlong_len(h.value.len() as i64)
                + h.value.len()
        })
        .sum();
    let header_bytes: usize = r.headers.iter().map(|h| h.key.len() + h.value.len()).sum();
    (
        key_bytes + value_bytes + header_bytes,
        key + value + varlong_len(r.headers.len() as i64) + headers,
    )
}

/// The exact encoded size of a batch holding only `r` (both deltas 0).
fn single_batch_len(r: &Record) -> usize {
    let (_, fields) = record_fields(r);
    let body = 1 + 1 + 1 + fields;
    distlog_storage::batch::HEADER_LEN + varlong_len(body as i64) + body
}

/// An upper bound of the bytes `r` adds to a batch, whatever its deltas (a timestamp delta
/// takes at most 10 bytes, an offset delta at most 5, the length prefix at most 5).
fn record_bound(r: &Record) -> usize {
    let (_, fields) = record_fields(r);
    5 + 1 + 10 + 5 + fields
}

/// One request being filled: records for one target (a partition, or by key hash).
struct Pending {
    target: Option<u32>,
    records: Vec<Record>,
    /// Encoded-size bound of the batch they make: header plus each record's bound.
    bound: usize,
    /// Key, value and header bytes (the summary's `bytes`).
    bytes: usize,
}

/// Reads records until EOF and sends them as requests, waiting for a window permit before
/// each send. A record is everything up to the delimiter (excluded); a final record
/// without it counts. Consecutive records for the same target share a request, so input
/// order is kept within every partition.
async fn read_batches(
    mut input: Box<dyn AsyncBufRead + Unpin + Send>,
    batching: Batching,
    tx: mpsc::Sender<ProduceRequest>,
    window: Arc<Semaphore>,
) -> Result<Sent> {
    let separator = batching.separator.as_deref().map(str::as_bytes);
    let delimiter = batching.delimiter.as_slice();
    let last = *delimiter.last().context("empty delimiter")?;
    let mut sent = Sent::default();
    let mut sequence = 0u64;
    let mut pending = Pending {
        target: batching.partition,
        records: Vec::new(),
        bound: distlog_storage::batch::HEADER_LEN,
        bytes: 0,
    };
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut eof = false;
    while !eof {
        // One record: read up to the delimiter's last byte until the delimiter ends it.
        line.clear();
        loop {
            let n = input
                .read_until(last, &mut line)
                .await
                .context("cannot read input")?;
            if n == 0 {
                eof = true;
                break;
            }
            if line.ends_with(delimiter) {
                line.truncate(line.len() - delimiter.len());
                break;
            }
        }
        if eof && line.is_empty() {
            break;
        }
        number += 1;
        let Some((record, target)) = parse_record(&batching, separator, &line)
            .with_context(|| format!("input record {number}"))?
        else {
            continue;
        };
        let single = single_batch_len(&record);
        if single > batching.max_message_bytes {
            bail!(
                "input record {number} makes a {single}-byte batch, over the topic's \
                 max.message.bytes of {} (raise it with `distlog topic alter {} --set \
                 max.message.bytes=N`)",
                batching.max_message_bytes,
                batching.topic
            );
        }
        let bound = record_bound(&record);
        let full = pending.records.len() >= batching.max_records
            || pending.bound + bound > batching.max_bytes
            || target != pending.target;
        if full
            && !pending.records.is_empty()
            && !send(
                &batching,
                &mut pending,
                &mut sequence,
                &mut sent,
                &tx,
                &window,
            )
            .await?
        {
            return Ok(sent);
        }
        pending.target = target;
        pending.bound += bound;
        pending.bytes += record_fields(&record).0;
        pending.records.push(record);
    }
    if !pending.records.is_empty() {
        send(
            &batching,
            &mut pending,
            &mut sequence,
            &mut sent,
            &tx,
            &window,
        )
        .await?;
    }
    Ok(sent)
}

/// Sends the pending request; `false` when the response side has ended (it reports why).
async fn send(
    batching: &Batching,
    pending: &mut Pending,
    sequence: &mut u64,
    sent: &mut Sent,
    tx: &mpsc::Sender<ProduceRequest>,
    window: &Semaphore,
) -> Result<bool> {
    let permit = window.acquire().await.context("produce window closed")?;
    permit.forget();
    sent.records += pending.records.len() as u64;
    sent.bytes += pending.bytes as u64;
    let request = ProduceRequest {
        topic: batching.topic.clone(),
        partition: pending.target,
        records: std::mem::take(&mut pending.records),
        sequence: *sequence,
    };
    *sequence += 1;
    pending.bound = distlog_storage::batch::HEADER_LEN;
    pending.bytes = 0;
    Ok(tx.send(request).await.is_ok())
}

/// One input record as a protobuf record and its target partition; `None` for a blank
/// JSON line (skipped).
fn parse_record(
    batching: &Batching,
    separator: Option<&[u8]>,
    line: &[u8],
) -> Result<Option<(Record, Option<u32>)>> {
    let (mut record, partition) = match batching.format {
        InputFormat::Text => {
            let (mut key, value) = split_line(line, separator);
            let mut value = Some(value);
            if batching.null_empty {
                key = key.filter(|k| !k.is_empty());
                value = value.filter(|v| !v.is_empty());
            }
            (
                Record {
                    key,
                    value,
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                None,
            )
        }
        InputFormat::Json => {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let parsed = parse_json_line(line)?;
            (
                Record {
                    key: parsed.key,
                    value: parsed.value,
                    headers: parsed
                        .headers
                        .into_iter()
                        .map(|(key, value)| Header { key, value })
                        .collect(),
                    timestamp_ms: parsed.timestamp_ms,
                },
                parsed.partition,
            )
        }
    };
    record.headers.extend(batching.headers.iter().cloned());
    if record.timestamp_ms.is_none() {
        record.timestamp_ms = batching.timestamp;
    }
    Ok(Some((record, batching.partition.or(partition))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlog_storage::batch::{BatchBuilder, Record as Stored};

    fn stored(r: &Record, ts: i64) -> Stored {
        let mut s = Stored::new(ts, r.value.clone().unwrap_or_default());
        s.value = r.value.clone();
        s.key = r.key.clone();
        s.headers = r
            .headers
            .iter()
            .map(|h| distlog_storage::batch::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect();
        s
    }

    /// The single-record length is exact and the per-record bound is never below what the
    /// storage builder encodes, whatever the timestamps.
    #[test]
    fn size_bounds_hold_against_the_batch_builder() -> Result<()> {
        let records = [
            Record::default(),
            Record {
                key: Some(b"k".to_vec()),
                value: Some(vec![7; 300]),
                headers: vec![Header {
                    key: "h".into(),
                    value: vec![1; 200],
                }],
                timestamp_ms: None,
            },
            Record {
                key: Some(Vec::new()),
                value: Some(vec![0; 70_000]),
                ..Record::default()
            },
        ];
        for r in &records {
            let mut b = BatchBuilder::new();
            b.push(&stored(r, 5))?;
            assert_eq!(b.encoded_len(), single_batch_len(r));
        }
        let mut b = BatchBuilder::new();
        let mut bound = distlog_storage::batch::HEADER_LEN;
        for (i, r) in records.iter().cycle().take(200).enumerate() {
            let ts = if i % 2 == 0 {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            };
            b.push(&stored(r, ts))?;
            bound += record_bound(r);
            assert!(b.encoded_len() <= bound);
        }
        Ok(())
    }
}
