//! What a hostile or broken client can make the server hold, end to end on a real server
//! (the harness of `grpc.rs`).
//!
//! Guards: the HTTP/2 stream limit is advertised and enforced (the stream past it is
//! refused); a connection that has not finished its TLS handshake and HTTP/2 preface by
//! `server.handshake_timeout_ms` is closed, plaintext or TLS; produce requests are counted
//! on the wire before they are decoded (records, headers); malformed protobuf is
//! INVALID_ARGUMENT; unread responses hold a connection's response budget, a new call
//! beyond it is refused while other connections are served, and the budget comes back
//! once the client lets go of the stream. Memory is asserted through these budgets and
//! refusals, never through RSS or time.

use crate::grpc::{
    clients, create, fetch_req, guarded, produce_req, record, start, status_code, test_config,
};
use anyhow::{Context as _, Result, bail, ensure};
use distlog_server::ServerConfig;
use distlog_server::proto::{self, records_client::RecordsClient};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Writes one HTTP/2 frame.
async fn write_frame(
    tcp: &mut TcpStream,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> Result<()> {
    let len = u32::try_from(payload.len())?.to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    tcp.write_all(&frame).await?;
    Ok(())
}

/// Reads one HTTP/2 frame: type, flags, stream, payload.
async fn read_frame(tcp: &mut TcpStream) -> Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await?;
    Ok((head[3], head[4], stream, payload))
}

/// An HPACK header block (no Huffman, nothing indexed) opening a Subscribe call.
fn subscribe_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    let mut literal = |name_index: &[u8], value: &[u8]| {
        block.extend(name_index);
        block.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        block.extend(value);
    };
    literal(&[0x04], b"/distlog.v1.Records/Subscribe"); // :path
    literal(&[0x01], b"localhost"); // :authority
    literal(&[0x0f, 0x10], b"application/grpc"); // content-type (static index 31)
    block.extend([0x00, 0x02]);
    block.extend(b"te");
    block.extend([0x08]);
    block.extend(b"trailers");
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_past_max_concurrent_streams_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.max_concurrent_streams = 4;
    let server = start(dir.path(), config).await?;

    let mut tcp = TcpStream::connect(server.addr()).await?;
    tcp.write_all(PREFACE).await?;
    write_frame(&mut tcp, 0x4, 0, 0, &[]).await?;
    // The server's SETTINGS come first: SETTINGS_MAX_CONCURRENT_STREAMS (3) = 4.
    let (kind, flags, _, settings) = guarded("server settings", read_frame(&mut tcp)).await??;
    ensure!(kind == 0x4 && flags & 1 == 0, "first frame {kind:#x}");
    let advertised = settings
        .chunks(6)
        .find(|s| s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    ensure!(advertised == Some(4), "advertised {advertised:?}");
    write_frame(&mut tcp, 0x4, 0x1, 0, &[]).await?;

    // Four calls that never send their request stay open; the fifth stream is refused.
    for stream in [1, 3, 5, 7, 9] {
        write_frame(&mut tcp, 0x1, 0x4, stream, &subscribe_headers()).await?;
    }
    let refused = guarded("a refused stream", async {
        loop {
            let (kind, _, stream, payload) = read_frame(&mut tcp).await?;
            if kind == 0x3 {
                return Ok::<_, anyhow::Error>((stream, payload));
            }
        }
    })
    .await??;
    // RST_STREAM on stream 9 with REFUSED_STREAM (7).
    ensure!(refused == (9, vec![0, 0, 0, 7]), "{refused:?}");
    drop(tcp);
    Ok(server.stop().await?)
}

/// Reads until the server closes `io`: EOF, or a reset, both mean closed.
async fn closed_by_server(mut io: impl tokio::io::AsyncRead + Unpin) -> Result<()> {
    let mut sink = Vec::new();
    let _ = guarded(
        "the server closing the connection",
        io.read_to_end(&mut sink),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_preface_connections_are_closed_at_the_handshake_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.handshake_timeout_ms = 100;
    let server = start(dir.path(), config).await?;

    let silent = TcpStream::connect(server.addr()).await?;
    let mut half = TcpStream::connect(server.addr()).await?;
    half.write_all(&PREFACE[..12]).await?;
    let mut wrong = TcpStream::connect(server.addr()).await?;
    wrong
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    closed_by_server(silent).await?;
    closed_by_server(half).await?;
    closed_by_server(wrong).await?;

    // Clients that speak in time are served as before.
    let mut c = clients(&server).await?;
    create(&mut c, "t", 1).await?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_without_a_preface_is_closed_at_the_handshake_timeout() -> Result<()> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

    let dir = tempfile::tempdir()?;
    let pki = crate::certs::Pki::generate(dir.path(), "main")?;
    let mut config = test_config();
    config.tls_cert = Some(pki.server_cert.clone());
    config.tls_key = Some(pki.server_key.clone());
    config.handshake_timeout_ms = 100;
    let server = start(&dir.path().join("data"), config).await?;

    // Says nothing at all: no TLS handshake.
    closed_by_server(TcpStream::connect(server.addr()).await?).await?;
    // Completes the TLS handshake, then says nothing.
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&pki.ca)?)?;
    let mut tls =
        ClientConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = TcpStream::connect(server.addr()).await?;
    let stream = guarded(
        "TLS handshake",
        connector.connect(ServerName::try_from("localhost")?, tcp),
    )
    .await??;
    closed_by_server(stream).await?;
    Ok(server.stop().await?)
}

/// A codec that sends raw bytes as the request message and ignores the answer's.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        _buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}

/// Calls `path` with `message` as the request's encoded bytes; the status it ends with.
async fn raw_call(
    channel: tonic::transport::Channel,
    path: &'static str,
    message: Vec<u8>,
) -> Result<tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    match grpc
        .unary(tonic::Request::new(message), path.clone(), RawCodec)
        .await
    {
        Ok(_) => bail!("{path}: the malformed request was accepted"),
        Err(status) => Ok(status),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_invalid_argument() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "t", 1).await?;
    let channel = server.channel().await?;
    let cases: [(&str, &'static str, Vec<u8>); 3] = [
        // Field 1 (the topic, a string) holding bytes that are not UTF-8.
        (
            "not UTF-8",
            "/distlog.v1.Records/Produce",
            vec![0x0a, 0x02, 0xff, 0xfe],
        ),
        // A record (field 3) whose length runs past the end of the message.
        (
            "truncated",
            "/distlog.v1.Records/Produce",
            vec![0x1a, 0x09, 0x00],
        ),
        // Wire type 7 does not exist.
        (
            "bad wire type",
            "/distlog.v1.Records/Fetch",
            vec![0x0f, 0x00],
        ),
    ];
    for (what, path, bytes) in cases {
        let status = raw_call(channel.clone(), path, bytes).await?;
        ensure!(
            status.code() == Code::InvalidArgument,
            "{what}: {:?} {}",
            status.code(),
            status.message()
        );
    }
    // A ProduceStream ends with it.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let mut answers = grpc
        .streaming(
            tonic::Request::new(tokio_stream::iter(vec![vec![0x0a, 0x02, 0xff, 0xfe]])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/distlog.v1.Records/ProduceStream",
            ),
            RawCodec,
        )
        .await?
        .into_inner();
    let end = guarded("the stream's end", answers.message()).await?;
    ensure!(
        matches!(&end, Err(s) if s.code() == Code::InvalidArgument),
        "{end:?}"
    );
    c.records
        .produce(produce_req("t", Some(0), vec![record(None, Some(b"ok"))]))
        .await
        .context("the server kept serving")?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_requests_are_counted_on_the_wire_before_decoding() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.max_records_per_request = 1000;
    config.max_headers_per_request = 100;
    let server = start(dir.path(), config).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "t", 1).await?;

    // 1001 empty records (2 bytes each on the wire, about 90 decoded).
    let empty = vec![proto::Record::default(); 1001];
    let (code, message) = status_code(c.records.produce(produce_req("t", Some(0), empty)).await)?;
    ensure!(
        code == Code::ResourceExhausted && message.contains("more than 1000 records"),
        "{code:?} {message}"
    );
    // 101 empty headers spread over two records.
    let header = proto::Header {
        key: String::new(),
        value: Vec::new(),
    };
    let with = |n| proto::Record {
        headers: vec![header.clone(); n],
        ..proto::Record::default()
    };
    let (code, message) = status_code(
        c.records
            .produce(produce_req("t", Some(0), vec![with(60), with(41)]))
            .await,
    )?;
    ensure!(
        code == Code::ResourceExhausted && message.contains("more than 100 headers"),
        "{code:?} {message}"
    );
    // At the limits, accepted.
    let r = c
        .records
        .produce(produce_req("t", Some(0), vec![with(60), with(40)]))
        .await?
        .into_inner();
    ensure!(r.offsets == vec![0, 1], "{:?}", r.offsets);
    // Over the limits in a ProduceStream: refused before decoding, which ends the stream.
    let mut records = c.records.clone();
    let mut answers = records
        .produce_stream(tokio_stream::iter(vec![produce_req(
            "t",
            Some(0),
            vec![proto::Record::default(); 1001],
        )]))
        .await?
        .into_inner();
    let end = guarded("the stream's end", answers.message()).await?;
    ensure!(
        matches!(&end, Err(s) if s.code() == Code::ResourceExhausted
            && s.message().contains("more than 1000 records")),
        "{end:?}"
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_topic_requests_have_the_smaller_metadata_limit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.max_metadata_request_bytes = 64 << 10;
    let server = start(dir.path(), config).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "t", 1).await?;
    // About 100 KiB of offsets: under max_request_bytes, over the metadata limit.
    let commit = |n: usize| proto::CommitOffsetsRequest {
        group: "g".into(),
        offsets: vec![
            proto::CommittedOffset {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                metadata: String::new(),
                committed_at_ms: 0,
            };
            n
        ],
    };
    let (code, message) = status_code(c.groups.commit_offsets(commit(20_000)).await)?;
    ensure!(code == Code::ResourceExhausted, "{code:?} {message}");
    c.groups.commit_offsets(commit(10)).await?;
    // Produce requests keep max_request_bytes: 120 KiB is accepted.
    c.records
        .produce(produce_req(
            "t",
            Some(0),
            vec![
                record(None, Some(&vec![1; 60 << 10])),
                record(None, Some(&vec![2; 60 << 10])),
            ],
        ))
        .await?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_responses_hold_the_connections_budget_until_the_client_lets_go() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.max_fetch_bytes = 1 << 20;
    config.default_fetch_bytes = 1 << 20;
    config.max_record_bytes = 128 << 10;
    config.max_request_bytes = 2 << 20;
    // One response of 800 KiB leaves less than a 1 MiB fetch's reservation
    // (1 MiB + a quarter + 4 KiB).
    config.max_connection_response_bytes = 2 << 20;
    config.max_response_bytes_in_flight = 64 << 20;
    let server = start(dir.path(), config).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "big", 1).await?;
    for _ in 0..4 {
        // One batch of 800 KiB per request.
        let records = (0..8)
            .map(|_| record(None, Some(&vec![7; 100 << 10])))
            .collect();
        c.records
            .produce(produce_req("big", Some(0), records))
            .await?;
    }

    // A client that lets the server send only 64 KiB of each stream before it reads.
    let slow = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))?
        .initial_stream_window_size(65_535)
        .connect()
        .await?;
    let mut slow = RecordsClient::new(slow);
    let unread = slow
        .subscribe(proto::SubscribeRequest {
            topic: "big".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            reset: 0,
        })
        .await?
        .into_inner();
    // Its first response (800 KiB, mostly unwritten) holds the connection's budget: a new
    // fetch on the same connection is refused, not buffered beside it.
    let (code, message) = status_code(slow.fetch(fetch_req("big", 0, 8)).await)?;
    ensure!(
        code == Code::ResourceExhausted && message.contains("has not read"),
        "{code:?} {message}"
    );
    // Another connection is served meanwhile.
    let other = c.records.fetch(fetch_req("big", 0, 16)).await?.into_inner();
    ensure!(other.records.len() == 8, "{} records", other.records.len());

    // The client lets go of the subscription (RST_STREAM): its bytes come back and the
    // same connection is served again.
    drop(unread);
    let served = guarded("the budget coming back", async {
        loop {
            match slow.fetch(fetch_req("big", 0, 8)).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if s.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(s) => return Err(anyhow::Error::from(s)),
            }
        }
    })
    .await??;
    ensure!(
        served.records.len() == 8,
        "{} records",
        served.records.len()
    );
    Ok(server.stop().await?)
}

#[test]
fn limits_out_of_range_are_refused_with_the_setting_named() {
    let refused = |change: fn(&mut ServerConfig)| {
        let mut config = ServerConfig::default();
        change(&mut config);
        config
            .check_limits()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(refused(|c| c.max_concurrent_streams = 0).contains("server.max_concurrent_streams"));
    assert!(refused(|c| c.stream_buffer_bytes = 1 << 20).contains("server.stream_buffer_bytes"));
    assert!(
        refused(|c| c.max_connection_response_bytes = 1 << 30)
            .contains("server.max_connection_response_bytes")
    );
    assert!(ServerConfig::default().check_limits().is_ok());
}
