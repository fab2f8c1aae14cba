//! One log, two protocols: records produced through Kafka (kcat, confluent-kafka) are
//! fetched through gRPC byte for byte (key, value, headers, timestamp, offset), and records
//! produced through gRPC are fetched through Kafka the same, on an uncompressed topic and on
//! one whose batches the bundled zstd codec plugin compresses (`compression=zstd`).

use super::{Broker, grpc, hex, start, unhex};
use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::{self, FetchRequest, ProduceRequest};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// Every record of `topic`/`partition` through gRPC, following `next_offset` to the end.
async fn grpc_fetch_all(
    records: &mut RecordsClient<Channel>,
    topic: &str,
    partition: u32,
) -> Result<Vec<proto::StoredRecord>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = crate::grpc::guarded(
            "gRPC fetch",
            records.fetch(FetchRequest {
                topic: topic.into(),
                partition,
                offset,
                max_bytes: 0,
                max_wait_ms: 0,
                format: 0,
            }),
        )
        .await??
        .into_inner();
        if r.records.is_empty() {
            return Ok(out);
        }
        offset = r.next_offset;
        out.extend(r.records);
    }
}

/// A record, its large fields shortened, for failure messages.
fn show(r: &proto::StoredRecord) -> String {
    let short = |b: Option<&[u8]>| match b {
        None => "null".to_owned(),
        Some(b) if b.len() > 16 => format!("{} bytes {:02x?}..", b.len(), &b[..8]),
        Some(b) => format!("{b:02x?}"),
    };
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|h| format!("{}={}", h.key, short(Some(&h.value))))
        .collect();
    format!(
        "@{} ts {} key {} value {} headers [{}]",
        r.offset,
        r.timestamp_ms,
        short(r.key.as_deref()),
        short(r.value.as_deref()),
        headers.join(", ")
    )
}

/// Fails with the first differing record unless `got` equals `want`.
fn same(what: &str, got: &[proto::StoredRecord], want: &[proto::StoredRecord]) -> Result<()> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        ensure!(
            g == w,
            "{what}: record {i}:\n  got  {}\n  want {}",
            show(g),
            show(w)
        );
    }
    ensure!(
        got.len() == want.len(),
        "{what}: {} records, want {}",
        got.len(),
        want.len()
    );
    Ok(())
}

fn header(key: &str, value: &[u8]) -> proto::Header {
    proto::Header {
        key: key.into(),
        value: value.to_vec(),
    }
}

/// A Kafka-consumed message (`py/client.py`'s shape) as the gRPC record it must equal.
fn as_stored(m: &Value) -> Result<proto::StoredRecord> {
    let bytes = |v: &Value| -> Result<Option<Vec<u8>>> { v.as_str().map(unhex).transpose() };
    let headers = m["headers"]
        .as_array()
        .context("headers")?
        .iter()
        .map(|h| {
            Ok(header(
                h[0].as_str().context("header key")?,
                &bytes(&h[1])?.context("header value")?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(proto::StoredRecord {
        offset: m["offset"].as_i64().context("offset")?,
        timestamp_ms: m["timestamp"].as_i64().context("timestamp")?,
        key: bytes(&m["key"])?.map(Bytes::from),
        value: bytes(&m["value"])?.map(Bytes::from),
        headers,
    })
}

/// Every record of `topic`/0 through Kafka (confluent-kafka, from the earliest offset).
fn kafka_fetch_all(b: &Broker, topic: &str, count: usize) -> Result<Vec<proto::StoredRecord>> {
    let out = b.python(
        "consume",
        json!({
            "assign": [{ "topic": topic, "partition": 0, "offset": "earliest" }],
            "max": count,
        }),
    )?;
    let msgs = out["messages"].as_array().context("messages")?;
    ensure!(
        msgs.len() == count,
        "{topic}: {} of {count}: {out}",
        msgs.len()
    );
    msgs.iter()
        .map(|m| {
            ensure!(m["error"].is_null(), "{m}");
            as_stored(m)
        })
        .collect()
}

/// Kafka in (kcat, then confluent-kafka), gRPC out; gRPC in, Kafka out; on `topic`.
async fn both_ways(b: &Broker, records: &mut RecordsClient<Channel>, topic: &str) -> Result<()> {
    // kcat: keys, headers, an empty line made a null value (-Z), a line without a key.
    b.kcat_ok(
        &[
            "-P",
            "-t",
            topic,
            "-p",
            "0",
            "-K",
            ":",
            "-Z",
            "-H",
            "src=kcat",
            "-H",
            "src=again",
        ],
        b"k1:first\nk2:\nno key here\n",
    )?;
    // confluent-kafka: explicit timestamps (going backwards; 0 would mean "now" to it),
    // binary bytes, a null key and value, an empty key and value.
    let binary: Vec<u8> = (0..=255u8).collect();
    let produced = b.python(
        "produce",
        json!({ "conf": { "linger.ms": 20, "compression.type": "gzip" }, "topic": topic, "records": [
            { "key": hex(&binary), "value": hex(&[0xAB; 5000]), "partition": 0,
              "timestamp": 1_700_000_000_123_i64,
              "headers": [["bin", hex(&binary)], ["empty", ""]] },
            { "key": null, "value": null, "partition": 0, "timestamp": 2 },
            { "key": "", "value": "", "partition": 0, "timestamp": 1 },
        ]}),
    )?;
    ensure!(produced["unflushed"] == 0, "{produced}");
    let via_kafka = kafka_fetch_all(b, topic, 6)?;
    let via_grpc = grpc_fetch_all(records, topic, 0).await?;
    ensure!(via_grpc.len() == 6, "{topic}: {via_grpc:?}");
    same(&format!("{topic}: gRPC vs Kafka"), &via_grpc, &via_kafka)?;
    // What was produced, not only what the two agree on.
    let kcat_headers = vec![header("src", b"kcat"), header("src", b"again")];
    let expected_kcat = [
        (Some(&b"k1"[..]), Some(&b"first"[..])),
        (Some(b"k2"), None),
        (None, Some(b"no key here")),
    ];
    for (i, (key, value)) in expected_kcat.iter().enumerate() {
        let r = &via_grpc[i];
        ensure!(r.offset == i64::try_from(i)?, "{r:?}");
        ensure!(
            r.key.as_deref() == *key && r.value.as_deref() == *value,
            "{}",
            show(r)
        );
        ensure!(r.headers == kcat_headers, "{}", show(r));
    }
    let deliveries = produced["deliveries"].as_array().context("deliveries")?;
    let expected_py = [
        proto::StoredRecord {
            offset: 3,
            timestamp_ms: 1_700_000_000_123,
            key: Some(binary.clone().into()),
            value: Some(vec![0xAB; 5000].into()),
            headers: vec![header("bin", &binary), header("empty", b"")],
        },
        proto::StoredRecord {
            offset: 4,
            timestamp_ms: 2,
            key: None,
            value: None,
            headers: vec![],
        },
        proto::StoredRecord {
            offset: 5,
            timestamp_ms: 1,
            key: Some(Bytes::new()),
            value: Some(Bytes::new()),
            headers: vec![],
        },
    ];
    same(
        &format!("{topic}: confluent-kafka records"),
        &via_grpc[3..],
        &expected_py,
    )?;
    for (d, r) in deliveries.iter().zip(&expected_py) {
        ensure!(d["offset"] == r.offset && d["error"].is_null(), "{d}");
    }

    // gRPC in, Kafka out.
    let grpc_records = vec![
        proto::Record {
            key: Some(b"g1".to_vec()),
            value: Some(b"from grpc".to_vec()),
            headers: vec![
                header("h", b"1"),
                header("h", b""),
                header("t", &[0, 255, 7]),
            ],
            timestamp_ms: Some(1_600_000_000_000),
        },
        proto::Record {
            key: None,
            value: Some(vec![0x5A; 70_000]),
            headers: vec![],
            timestamp_ms: Some(1_600_000_000_001),
        },
        proto::Record {
            key: Some(b"tombstone".to_vec()),
            value: None,
            headers: vec![],
            timestamp_ms: Some(1_600_000_000_002),
        },
    ];
    let appended = crate::grpc::guarded(
        "gRPC produce",
        records.produce(ProduceRequest {
            topic: topic.into(),
            partition: Some(0),
            records: grpc_records.clone(),
            sequence: 0,
        }),
    )
    .await??
    .into_inner();
    ensure!(appended.offsets == [6, 7, 8], "{appended:?}");
    let via_kafka = kafka_fetch_all(b, topic, 9)?;
    let via_grpc = grpc_fetch_all(records, topic, 0).await?;
    same(
        &format!("{topic}: Kafka vs gRPC after gRPC produce"),
        &via_kafka,
        &via_grpc,
    )?;
    for (r, sent) in via_kafka[6..].iter().zip(&grpc_records) {
        ensure!(
            r.key.as_deref() == sent.key.as_deref()
                && r.value.as_deref() == sent.value.as_deref()
                && r.headers == sent.headers
                && Some(r.timestamp_ms) == sent.timestamp_ms,
            "{topic}: {r:?} vs {sent:?}"
        );
    }
    // kcat reads the gRPC records too (its own librdkafka), the large one whole.
    let sizes = b.kcat_ok(
        &[
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "6",
            "-e",
            "-q",
            "-f",
            "%o %S %K\\n",
        ],
        b"",
    )?;
    ensure!(
        sizes == "6 9 2\n7 70000 -1\n8 -1 9\n",
        "{topic}: kcat sizes {sizes:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_grpc_share_records_byte_for_byte() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("plain", 1, &[], &[])?;
    b.create_topic("packed", 1, &["compression=zstd"], &[])?;
    let mut records = RecordsClient::new(grpc(&b).await?);
    both_ways(&b, &mut records, "plain").await?;
    both_ways(&b, &mut records, "packed").await?;

    // The packed topic's batches really are stored by the codec plugin, the plain one's not.
    // A batch the codec does not shrink (a few tiny records) is stored uncompressed by design
    // (docs/ARCHITECTURE.md, the codec fallback), so only batches of some size must carry the codec.
    for (topic, zstd) in [("packed", true), ("plain", false)] {
        let raw: Value = serde_json::from_slice(
            &b.process
                .ok(&["consume", topic, "--raw", "-o", "json", "-q"], b"")?,
        )?;
        let batches = raw.as_array().context("batches")?;
        ensure!(!batches.is_empty(), "{topic}: {raw}");
        let mut packed = 0;
        for batch in batches {
            let codec = batch["codec"].as_str().context("codec")?;
            let stored = batch["stored_bytes"].as_u64().context("stored_bytes")?;
            if zstd && stored < 1024 && !codec.contains("zstd") {
                continue;
            }
            ensure!(codec.contains("zstd") == zstd, "{topic}: {batch}");
            packed += usize::from(codec.contains("zstd"));
        }
        ensure!(!zstd || packed >= 2, "{topic}: too few zstd batches: {raw}");
    }
    Ok(())
}
