//! The Kafka listener under hostile input, over raw sockets with frames encoded by
//! kafka-protocol: an unknown ApiVersions version is answered in v0 (KIP-511); a truncated
//! frame, a 2 GiB size prefix, an unknown API key, an unknown version of a known API and
//! garbage after a valid header each close that connection and nothing else; a thousand
//! idle connections and a client that pipelines fetches without reading leave other clients
//! served and the broker's memory bounded. After each abuse a fresh connection still does an
//! ApiVersions, Produce and Fetch round trip.

use super::{Broker, start};
use anyhow::{Context, Result, bail, ensure};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a raw read waits for the broker.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// A raw Kafka connection.
pub(crate) struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
    pub(crate) fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_LIMIT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            correlation: 0,
        })
    }

    /// The bytes of a request frame (size prefix, header, body) for `R` at `version`.
    pub(crate) fn frame<R: Request>(&mut self, version: i16, req: &R) -> Result<Vec<u8>> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("distlog-abuse")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        Ok(sized(&body))
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads one response frame; `None` when the broker closed the connection first.
    pub(crate) fn read_frame(&mut self) -> Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if closed(&e) => return Ok(None),
            Err(e) => return Err(e).context("reading a response size"),
        }
        let len = usize::try_from(i32::from_be_bytes(len))?;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Bytes::from(body)))
    }

    /// Sends `req` at `version` and decodes its response (header checked).
    pub(crate) fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let frame = self.frame(version, req)?;
        self.write(&frame)?;
        let mut body = self
            .read_frame()?
            .context("the broker closed the connection instead of answering")?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        ensure!(header.correlation_id == self.correlation, "{header:?}");
        let resp = R::Response::decode(&mut body, version)?;
        ensure!(
            !body.has_remaining(),
            "{} bytes after the response",
            body.len()
        );
        Ok(resp)
    }

    /// Whether the broker closes the connection (EOF or reset) without answering.
    pub(crate) fn expect_closed(&mut self) -> Result<()> {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(()),
            Ok(n) => bail!("the broker answered {n} bytes instead of closing"),
            Err(e) if closed(&e) => Ok(()),
            Err(e) => Err(e).context("waiting for the broker to close"),
        }
    }
}

fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
    )
}

fn sized(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(i32::try_from(body.len()).unwrap_or(i32::MAX));
    out.extend_from_slice(body);
    out
}

/// A Metadata v12 request for every topic.
pub(crate) fn metadata_all() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// A record batch of `values` (keys `k<i>`, timestamps `ts + i`).
fn batch(values: &[Vec<u8>], ts: i64) -> Result<Bytes> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| -> Result<Record> {
            let i64i = i64::try_from(i)?;
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64i,
                sequence: -1,
                timestamp: ts + i64i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.clone())),
                headers: Default::default(),
            })
        })
        .collect::<Result<_>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

fn produce_req(name: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

fn fetch_req(name: &str, offset: i64, max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(max_bytes),
                ]),
        ])
}

/// [`round_trip`] on `b`, failing with the end of the broker's log (a crash shows there).
fn still_serves(b: &Broker, name: &str, tag: &str) -> Result<()> {
    round_trip(b.kafka, name, tag).with_context(|| {
        let log = b.process.log();
        let tail: String = log
            .chars()
            .skip(log.chars().count().saturating_sub(4000))
            .collect();
        format!("the broker stopped serving after {tag}; its log ends:\n{tail}")
    })
}

/// A fresh connection: ApiVersions, a Produce of one record to `topic`/0 and a Fetch of it.
pub(crate) fn round_trip(addr: SocketAddr, name: &str, tag: &str) -> Result<()> {
    let mut w = Wire::connect(addr)?;
    let versions: ApiVersionsResponse = w.call(3, &ApiVersionsRequest::default())?;
    ensure!(versions.error_code == 0, "{versions:?}");
    let value = format!("after {tag}").into_bytes();
    let produced: ProduceResponse = w.call(
        9,
        &produce_req(name, batch(std::slice::from_ref(&value), 1)?),
    )?;
    let p = &produced.responses[0].partition_responses[0];
    ensure!(p.error_code == 0, "{tag}: produce {p:?}");
    let fetched: FetchResponse = w.call(12, &fetch_req(name, p.base_offset, 1 << 20))?;
    let part = &fetched.responses[0].partitions[0];
    ensure!(part.error_code == 0, "{tag}: fetch {part:?}");
    let mut records = part.records.clone().context("no records")?;
    let set = RecordBatchDecoder::decode(&mut records)?;
    ensure!(
        set.records.first().and_then(|r| r.value.as_deref()) == Some(&value[..]),
        "{tag}: fetched {:?}",
        set.records
    );
    ensure!(set.records[0].offset == p.base_offset, "{tag}");
    Ok(())
}

/// The broker's resident and peak resident memory, in KiB (`/proc/<pid>/status`).
fn memory(b: &Broker) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", b.process.pid()))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Most the broker's peak resident memory may grow by during one abuse, in KiB.
const GROWTH_KIB: u64 = 256 << 10;

#[test]
fn malformed_frames_close_only_their_connection() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("abuse", 1, &[], &[])?;
    let addr = b.kafka;
    still_serves(&b, "abuse", "start")?;

    // ApiVersions at an unknown version: answered in v0 with UNSUPPORTED_VERSION (35) and
    // the table, on a connection that stays open.
    let mut w = Wire::connect(addr)?;
    // kafka-protocol encodes no v99: a v3 frame with its version patched (the body of an
    // unknown version is whatever the client sent).
    let mut frame = w.frame(3, &ApiVersionsRequest::default())?;
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    w.write(&frame)?;
    let mut body = w.read_frame()?.context("no ApiVersions answer")?;
    let header = ResponseHeader::decode(&mut body, 0)?;
    ensure!(header.correlation_id == 1, "{header:?}");
    let v0 = ApiVersionsResponse::decode(&mut body, 0)?;
    ensure!(v0.error_code == 35, "{v0:?}");
    let range = |key: ApiKey| {
        v0.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    ensure!(range(ApiKey::ApiVersions) == Some((0, 4)), "{v0:?}");
    ensure!(range(ApiKey::Produce) == Some((3, 12)), "{v0:?}");
    ensure!(range(ApiKey::Fetch) == Some((4, 12)), "{v0:?}");
    let again: ApiVersionsResponse = w.call(3, &ApiVersionsRequest::default())?;
    ensure!(again.error_code == 0 && again.api_keys == v0.api_keys);
    still_serves(&b, "abuse", "ApiVersions v99")?;

    // A truncated frame, then EOF: closed, no answer.
    let mut w = Wire::connect(addr)?;
    let frame = w.frame(12, &metadata_all())?;
    w.write(&frame[..frame.len() / 2])?;
    w.stream.shutdown(std::net::Shutdown::Write)?;
    w.expect_closed()?;
    still_serves(&b, "abuse", "truncated frame")?;

    // A 2 GiB size prefix: closed before anything is allocated for it.
    let (_, peak_before) = memory(&b)?;
    let mut w = Wire::connect(addr)?;
    w.write(&i32::MAX.to_be_bytes())?;
    w.write(&[0; 1024])?;
    w.expect_closed()?;
    let (_, peak_after) = memory(&b)?;
    ensure!(
        peak_after < peak_before + GROWTH_KIB,
        "peak RSS {peak_before} KiB -> {peak_after} KiB after a 2 GiB prefix"
    );
    // A negative one too.
    let mut w = Wire::connect(addr)?;
    w.write(&(-5i32).to_be_bytes())?;
    w.expect_closed()?;
    still_serves(&b, "abuse", "2 GiB prefix")?;

    // An unknown API key.
    let mut w = Wire::connect(addr)?;
    let mut frame = w.frame(3, &ApiVersionsRequest::default())?;
    frame[4..6].copy_from_slice(&999i16.to_be_bytes());
    w.write(&frame)?;
    w.expect_closed()?;
    still_serves(&b, "abuse", "unknown API key")?;

    // A known API at a version no Kafka release defines.
    let mut w = Wire::connect(addr)?;
    let mut frame = w.frame(12, &metadata_all())?;
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    w.write(&frame)?;
    w.expect_closed()?;
    still_serves(&b, "abuse", "unknown version")?;

    // Garbage after a valid header: a Metadata v12 header, then bytes that do not decode.
    let mut w = Wire::connect(addr)?;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("garbage")));
    let mut body = BytesMut::new();
    header.encode(&mut body, MetadataRequest::header_version(12))?;
    body.extend_from_slice(&[0xFF; 37]);
    w.write(&sized(&body))?;
    w.expect_closed()?;
    still_serves(&b, "abuse", "garbage after a header")?;
    // A valid body followed by bytes it does not define is answered, as Kafka answers it
    // (librdkafka's AdminClient sends such a Metadata request), and the connection stays.
    let mut w = Wire::connect(addr)?;
    let mut frame = w.frame(12, &metadata_all())?;
    frame.extend_from_slice(b"trailing");
    let len = i32::try_from(frame.len() - 4)?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    w.write(&frame)?;
    let mut answer = w
        .read_frame()?
        .context("a request with trailing bytes was not answered")?;
    let header = ResponseHeader::decode(&mut answer, MetadataResponse::header_version(12))?;
    ensure!(header.correlation_id == w.correlation, "{header:?}");
    let resp = MetadataResponse::decode(&mut answer, 12)?;
    ensure!(resp.brokers.len() == 1, "{resp:?}");
    w.call(12, &metadata_all())?;
    still_serves(&b, "abuse", "trailing bytes")?;

    // The broker logged why, and counted it.
    let log = b.process.log();
    for reason in ["unknown API key 999", "kafka connection closed"] {
        ensure!(log.contains(reason), "no {reason:?} in the log:\n{log}");
    }
    Ok(())
}

#[test]
fn crowds_and_stalled_readers_leave_other_clients_served() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("crowd", 1, &[], &[])?;
    let addr = b.kafka;
    still_serves(&b, "crowd", "start")?;

    // A thousand connections at once, idle or stuck mid-frame; a normal client is served.
    let mut crowd = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut s = TcpStream::connect(addr).with_context(|| format!("connection {i}"))?;
        if i % 2 == 0 {
            s.write_all(&64i32.to_be_bytes())?;
        }
        crowd.push(s);
    }
    let mut w = Wire::connect(addr)?;
    for _ in 0..5 {
        let md: MetadataResponse = w.call(12, &metadata_all())?;
        ensure!(md.brokers.len() == 1, "{md:?}");
        ensure!(
            md.topics
                .iter()
                .any(|t| t.name.as_deref().map(|n| n.as_str()) == Some("crowd")),
            "{md:?}"
        );
    }
    still_serves(&b, "crowd", "1000 connections")?;
    drop(crowd);

    // A client that pipelines fetches of 1 MiB each and never reads the answers.
    let big: Vec<Vec<u8>> = (0..8).map(|i| vec![i; 256 << 10]).collect();
    let mut w = Wire::connect(addr)?;
    let produced: ProduceResponse = w.call(9, &produce_req("crowd", batch(&big, 1)?))?;
    ensure!(produced.responses[0].partition_responses[0].error_code == 0);
    let (_, peak_before) = memory(&b)?;
    let mut stalled = Wire::connect(addr)?;
    stalled
        .stream
        .set_write_timeout(Some(Duration::from_secs(5)))?;
    let one = stalled.frame(12, &fetch_req("crowd", 0, 4 << 20))?;
    let mut sent = 0;
    for _ in 0..500 {
        // The broker stops reading a client whose answers are not read: once its socket
        // buffers fill, our writes time out. That is the point.
        match stalled.stream.write_all(&one) {
            Ok(()) => sent += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(e).context("pipelining fetches"),
        }
    }
    ensure!(sent > 0);
    for _ in 0..3 {
        let md: MetadataResponse = w.call(12, &metadata_all())?;
        ensure!(md.brokers.len() == 1);
        still_serves(&b, "crowd", "a stalled reader")?;
    }
    let (rss, peak_after) = memory(&b)?;
    ensure!(
        peak_after < peak_before + GROWTH_KIB,
        "peak RSS {peak_before} KiB -> {peak_after} KiB (RSS {rss} KiB) with {sent} fetches \
         pipelined and unread"
    );
    drop(stalled);
    still_serves(&b, "crowd", "the stalled reader left")?;
    Ok(())
}
