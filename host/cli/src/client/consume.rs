//! `distlog consume TOPIC`: reads partitions from a start position with `Fetch`, or tails
//! them with `Subscribe` (`--follow`), and prints each record in the chosen format.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use distlog_server::proto::{
    BatchFormat, DescribeTopicRequest, Empty, FetchRequest, FetchResponse, Header,
    ListOffsetsRequest, OffsetReset, OffsetSpec, StoredRecord, SubscribeRequest, offset_spec,
};
use distlog_storage::batch::BatchView;
use tokio::io::AsyncWriteExt;
use tokio_stream::{StreamExt, StreamMap};

use super::format::{Record, RecordFormat, StartAt};
use super::{Conn, status};
use crate::output::{Table, emit};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Where to start: `earliest`, `latest`, an offset, or `@TIMESTAMP_MS`.
    #[arg(long, default_value = "earliest")]
    pub from: StartAt,
    /// Read only this partition (default: every partition, in partition order).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Keep reading new records as they are appended (Subscribe), until Ctrl-C or `--max`.
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// With --follow: where to continue when the position falls outside the log (retention
    /// deleted records not yet read, or an offset beyond the end). `none` stops with
    /// OUT_OF_RANGE; `earliest` / `latest` jump to the log start / end.
    #[arg(long, value_enum, default_value_t = Reset::None, requires = "follow")]
    pub reset: Reset,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub max: Option<u64>,
    /// Output per record: `json`, `raw` (value bytes only) or a template with `%k` key,
    /// `%v` value, `%o` offset, `%p` partition, `%t` timestamp ms, `%T` topic, `%h` headers,
    /// `%%`, and `\t`, `\n` escapes.
    #[arg(long, default_value = r"%v\n")]
    pub format: RecordFormat,
    /// Soft cap on bytes per fetch response.
    #[arg(long, default_value_t = 4 << 20)]
    pub fetch_bytes: u32,
    /// No rate line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the stored batches (offsets, codec name and digest, stored size) instead of
    /// records: a raw fetch, nothing is decompressed. Honours `--output`.
    #[arg(long, conflicts_with = "follow")]
    pub raw: bool,
}

/// `--reset`: `distlog.v1.OffsetReset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reset {
    None,
    Earliest,
    Latest,
}

impl From<Reset> for OffsetReset {
    fn from(r: Reset) -> Self {
        match r {
            Reset::None => OffsetReset::None,
            Reset::Earliest => OffsetReset::Earliest,
            Reset::Latest => OffsetReset::Latest,
        }
    }
}

pub async fn run(conn: &Conn, args: ConsumeArgs) -> Result<()> {
    let partitions = match args.partition {
        Some(p) => vec![p],
        None => {
            let topic = conn
                .topics()
                .describe_topic(conn.request(DescribeTopicRequest {
                    name: args.topic.clone(),
                })?)
                .await
                .map_err(status("describe topic"))?
                .into_inner()
                .topic
                .context("broker returned no topic")?;
            topic.partitions.iter().map(|p| p.partition).collect()
        }
    };
    let starts = resolve_starts(conn, &args.topic, &partitions, args.from).await?;
    if args.raw {
        return raw_batches(conn, &args, &starts).await;
    }
    let mut printer = Printer::new(&args);
    if args.follow {
        follow(conn, &args, &starts, &mut printer).await?;
    } else {
        for &(partition, offset) in &starts {
            if printer.done() {
                break;
            }
            drain(conn, &args, partition, offset, &mut printer).await?;
        }
    }
    printer.finish().await
}

/// Resolves the start position to one offset per partition.
async fn resolve_starts(
    conn: &Conn,
    topic: &str,
    partitions: &[u32],
    from: StartAt,
) -> Result<Vec<(u32, i64)>> {
    let spec = match from {
        StartAt::Offset(offset) => {
            let offset = i64::try_from(offset).context("offset too large")?;
            return Ok(partitions.iter().map(|&p| (p, offset)).collect());
        }
        StartAt::Earliest => offset_spec::Spec::Earliest(Empty {}),
        StartAt::Latest => offset_spec::Spec::Latest(Empty {}),
        StartAt::Timestamp(ms) => offset_spec::Spec::TimestampMs(ms),
    };
    let offsets = conn
        .records()
        .list_offsets(conn.request(ListOffsetsRequest {
            topic: topic.to_owned(),
            partitions: partitions.to_vec(),
            spec: Some(OffsetSpec { spec: Some(spec) }),
        })?)
        .await
        .map_err(status("list offsets"))?
        .into_inner()
        .offsets;
    Ok(offsets.iter().map(|o| (o.partition, o.offset)).collect())
}

/// Reads one partition from `offset` up to the log end seen when the read started.
///
/// Fetches the stored batches (`BATCH_FORMAT_RAW`) and decodes them here, after checking each
/// one's CRC, as a Kafka consumer does: the broker then does no per-record work, which
/// made reading 30-50 % faster. The first compressed batch switches the partition to
/// fetches the broker decodes (and decompresses with the codec plugin that wrote them),
/// from that batch on.
async fn drain(
    conn: &Conn,
    args: &ConsumeArgs,
    partition: u32,
    mut offset: i64,
    printer: &mut Printer,
) -> Result<()> {
    let mut client = conn.records();
    let mut end = None;
    let mut raw = true;
    loop {
        let request = |format: BatchFormat| FetchRequest {
            topic: args.topic.clone(),
            partition,
            offset,
            max_bytes: args.fetch_bytes,
            max_wait_ms: 0,
            format: format as i32,
        };
        let mut response = None;
        if raw {
            let fetched = client
                .fetch(conn.request(request(BatchFormat::Raw))?)
                .await
                .map_err(status("fetch"))?
                .into_inner();
            response = decode_batches(fetched, offset)?;
            raw = response.is_some();
        }
        let response = match response {
            Some(response) => response,
            None => client
                .fetch(conn.request(request(BatchFormat::Decoded))?)
                .await
                .map_err(status("fetch"))?
                .into_inner(),
        };
        let end = *end.get_or_insert(response.log_end_offset);
        let next = response.next_offset;
        printer
            .print(&args.topic, partition, response, Some(end))
            .await?;
        if printer.done() || next >= end || next <= offset {
            return Ok(());
        }
        offset = next;
    }
}

/// The records at or after `offset` of a raw fetch's batches, as a decoded fetch would have
/// returned them (keys and values are slices of the received batches), or `None` when a
/// batch is compressed. Fails on a batch whose CRC or format is wrong.
fn decode_batches(fetched: FetchResponse, offset: i64) -> Result<Option<FetchResponse>> {
    let mut records = Vec::new();
    for batch in &fetched.batches {
        if !batch.codec_name.is_empty() {
            return Ok(None);
        }
        let view = BatchView::parse(&batch.data)
            .with_context(|| format!("the batch at offset {} is damaged", batch.base_offset))?;
        for record in view.records()? {
            let record = record?;
            let record_offset = i64::try_from(record.offset())?;
            if record_offset < offset {
                continue;
            }
            records.push(StoredRecord {
                offset: record_offset,
                timestamp_ms: record.timestamp(),
                key: record.key().map(|k| batch.data.slice_ref(k)),
                value: record.value().map(|v| batch.data.slice_ref(v)),
                headers: record
                    .headers()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.to_vec(),
                    })
                    .collect(),
            });
        }
    }
    Ok(Some(FetchResponse {
        records,
        batches: Vec::new(),
        ..fetched
    }))
}

/// Reads the stored batches of each partition from its start up to the log end seen when
/// the read started (raw fetches: one round trip per `--fetch-bytes`), and prints one row
/// per batch. Holds the batch descriptions, not their bytes.
async fn raw_batches(conn: &Conn, args: &ConsumeArgs, starts: &[(u32, i64)]) -> Result<()> {
    let mut client = conn.records();
    let mut rows = Vec::new();
    for &(partition, mut offset) in starts {
        let mut end = None;
        loop {
            let response = client
                .fetch(conn.request(FetchRequest {
                    topic: args.topic.clone(),
                    partition,
                    offset,
                    max_bytes: args.fetch_bytes,
                    max_wait_ms: 0,
                    format: BatchFormat::Raw as i32,
                })?)
                .await
                .map_err(status("raw fetch"))?
                .into_inner();
            let end = *end.get_or_insert(response.log_end_offset);
            for batch in &response.batches {
                rows.push(serde_json::json!({
                    "partition": partition,
                    "base_offset": batch.base_offset,
                    "last_offset": batch.last_offset,
                    "stored_bytes": batch.data.len(),
                    "codec": batch.codec_name,
                    "codec_digest": batch.codec_digest,
                }));
            }
            let next = response.next_offset;
            let reached_max = args.max.is_some_and(|max| rows.len() as u64 >= max);
            if reached_max || next >= end || next <= offset {
                break;
            }
            offset = next;
        }
    }
    if let Some(max) = args.max {
        rows.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    emit(conn.output, &rows, || {
        let mut table = Table::new(["PARTITION", "BASE", "LAST", "STORED", "CODEC", "DIGEST"]);
        for row in &rows {
            let cell = |key: &str| match &row[key] {
                serde_json::Value::String(s) if s.is_empty() => "-".to_owned(),
                serde_json::Value::String(s) => s.chars().take(12).collect(),
                other => other.to_string(),
            };
            table.row([
                cell("partition"),
                cell("base_offset"),
                cell("last_offset"),
                cell("stored_bytes"),
                cell("codec"),
                cell("codec_digest"),
            ]);
        }
        table.render()
    })
}

/// Tails every partition with Subscribe until `--max` records or Ctrl-C.
async fn follow(
    conn: &Conn,
    args: &ConsumeArgs,
    starts: &[(u32, i64)],
    printer: &mut Printer,
) -> Result<()> {
    let mut streams = StreamMap::new();
    for &(partition, offset) in starts {
        let stream = conn
            .records()
            .subscribe(conn.request(SubscribeRequest {
                topic: args.topic.clone(),
                partition,
                offset,
                max_bytes: args.fetch_bytes,
                reset: OffsetReset::from(args.reset) as i32,
            })?)
            .await
            .map_err(status("subscribe"))?
            .into_inner();
        streams.insert(partition, stream);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while !printer.done() {
        tokio::select! {
            _ = &mut ctrl_c => break,
            item = streams.next() => match item {
                None => break,
                Some((partition, message)) => {
                    let message = message.map_err(status("subscribe"))?;
                    printer.print(&args.topic, partition, message, None).await?;
                    printer.flush().await?;
                }
            },
        }
    }
    Ok(())
}

struct Printer {
    format: RecordFormat,
    max: Option<u64>,
    quiet: bool,
    printed: u64,
    buf: Vec<u8>,
    out: tokio::io::Stdout,
    started: Instant,
    last_rate: Instant,
    last_printed: u64,
}

impl Printer {
    fn new(args: &ConsumeArgs) -> Self {
        Self {
            format: args.format.clone(),
            max: args.max,
            quiet: args.quiet,
            printed: 0,
            buf: Vec::with_capacity(1 << 16),
            out: tokio::io::stdout(),
            started: Instant::now(),
            last_rate: Instant::now(),
            last_printed: 0,
        }
    }

    fn done(&self) -> bool {
        self.max.is_some_and(|max| self.printed >= max)
    }

    /// Renders the records of one response, stopping at `--max` and, when reading up to a
    /// fixed end, at `end`.
    async fn print(
        &mut self,
        topic: &str,
        partition: u32,
        response: FetchResponse,
        end: Option<i64>,
    ) -> Result<()> {
        for stored in response.records {
            if self.done() || end.is_some_and(|end| stored.offset >= end) {
                break;
            }
            let record = Record {
                topic: topic.to_owned(),
                partition,
                offset: u64::try_from(stored.offset).unwrap_or_default(),
                timestamp_ms: stored.timestamp_ms,
                key: stored.key,
                value: stored.value.unwrap_or_default(),
                headers: stored
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
            };
            self.format.render(&record, &mut self.buf)?;
            self.printed += 1;
        }
        if self.buf.len() >= 1 << 16 {
            self.flush().await?;
        }
        if !self.quiet && self.last_rate.elapsed() >= Duration::from_secs(1) {
            let secs = self.last_rate.elapsed().as_secs_f64();
            eprintln!(
                "consume {topic}: {} records, {:.0} records/s",
                self.printed,
                (self.printed - self.last_printed) as f64 / secs
            );
            self.last_rate = Instant::now();
            self.last_printed = self.printed;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out
                .write_all(&self.buf)
                .await
                .context("cannot write to stdout")?;
            self.buf.clear();
        }
        self.out.flush().await.context("cannot write to stdout")
    }

    async fn finish(mut self) -> Result<()> {
        self.flush().await?;
        if !self.quiet && self.started.elapsed() >= Duration::from_secs(1) {
            eprintln!("consumed {} records", self.printed);
        }
        Ok(())
    }
}
