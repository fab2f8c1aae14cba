//! Golden frames: request frames captured from kcat (librdkafka 2.0.2) and confluent-kafka
//! (librdkafka 2.16.0), stored in `testdata/` (see `testdata/README.md`). Each is decoded
//! the way the connection decodes it (header, then body, nothing left over), checked field
//! by field, re-encoded byte for byte, and answered by the real handlers over a broker in a
//! temporary directory; each answer is decoded back as a client would and re-encoded to the
//! same bytes.

use crate::api::admin::testing::{self, TestCtx};
use crate::api::{self, Ctx, Principal};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A captured frame: its file, and the API and version it must be.
struct Golden {
    file: &'static str,
    bytes: &'static [u8],
    key: ApiKey,
    version: i16,
}

macro_rules! golden {
    ($file:literal, $key:ident, $version:literal) => {
        Golden {
            file: $file,
            bytes: include_bytes!(concat!("../testdata/", $file)),
            key: ApiKey::$key,
            version: $version,
        }
    };
}

/// Every captured frame, in the order a client sends them.
fn all() -> Vec<Golden> {
    vec![
        golden!("kcat-api-versions-v3.bin", ApiVersions, 3),
        golden!("kcat-metadata-v4.bin", Metadata, 4),
        golden!("kcat-produce-v7.bin", Produce, 7),
        golden!("kcat-list-offsets-v2.bin", ListOffsets, 2),
        golden!("kcat-fetch-v11.bin", Fetch, 11),
        golden!("confluent-api-versions-v3.bin", ApiVersions, 3),
        golden!("confluent-metadata-v12.bin", Metadata, 12),
        golden!("confluent-admin-metadata-v12.bin", Metadata, 12),
        golden!("confluent-produce-v10.bin", Produce, 10),
        golden!("confluent-list-offsets-v6.bin", ListOffsets, 6),
        golden!("confluent-fetch-v12.bin", Fetch, 12),
        golden!("confluent-offset-commit-v8.bin", OffsetCommit, 8),
    ]
}

/// Decodes a frame as `conn` does: header at the API's header version, then the body; returns
/// the bytes left after the body (`conn` ignores them, as Kafka does).
fn decode_lenient(g: &Golden) -> (RequestHeader, RequestKind, Bytes) {
    let mut buf = Bytes::from_static(g.bytes);
    let header = RequestHeader::decode(&mut buf, g.key.request_header_version(g.version))
        .unwrap_or_else(|e| panic!("{}: header: {e}", g.file));
    let req = RequestKind::decode(g.key, &mut buf, g.version)
        .unwrap_or_else(|e| panic!("{}: body: {e}", g.file));
    (header, req, buf)
}

/// [`decode_lenient`], with no bytes left over.
fn decode(g: &Golden) -> (RequestHeader, RequestKind) {
    let mut buf = Bytes::from_static(g.bytes);
    let header = RequestHeader::decode(&mut buf, g.key.request_header_version(g.version))
        .unwrap_or_else(|e| panic!("{}: header: {e}", g.file));
    assert_eq!(header.request_api_key, g.key as i16, "{}", g.file);
    assert_eq!(header.request_api_version, g.version, "{}", g.file);
    let req = RequestKind::decode(g.key, &mut buf, g.version)
        .unwrap_or_else(|e| panic!("{}: body: {e}", g.file));
    assert_eq!(
        buf.remaining(),
        0,
        "{}: {} bytes after the body",
        g.file,
        buf.remaining()
    );
    (header, req)
}

fn encode(g: &Golden, header: &RequestHeader, req: &RequestKind) -> Vec<u8> {
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, g.key.request_header_version(g.version))
        .unwrap();
    req.encode(&mut buf, g.version).unwrap();
    buf.to_vec()
}

fn find(name: &str) -> Golden {
    all()
        .into_iter()
        .find(|g| g.file == name)
        .unwrap_or_else(|| panic!("no golden frame {name}"))
}

#[test]
fn golden_requests_decode_and_reencode_byte_for_byte() {
    for g in all() {
        let (header, req) = decode(&g);
        assert_eq!(encode(&g, &header, &req), g.bytes, "{}", g.file);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"), "{}", g.file);
    }
}

/// confluent-kafka's `AdminClient.list_topics()`: Metadata v12 for every topic, whose body
/// is followed by 3 bytes (`01 00 00`, an empty tagged field written after the tagged-field
/// section). Kafka ignores bytes after the fields it knows; so does the listener (`conn`
/// logs them at debug level and answers), which used to close this client's connection.
#[test]
fn golden_admin_list_topics_metadata_decodes() {
    let g = golden!("confluent-admin-metadata-all-v12.bin", Metadata, 12);
    let (header, req, trailing) = decode_lenient(&g);
    let RequestKind::Metadata(m) = &req else {
        panic!()
    };
    assert!(m.topics.is_none());
    assert_eq!(&trailing[..], &[1, 0, 0]);
    let mut body = encode(&g, &header, &req);
    body.extend_from_slice(&trailing);
    assert_eq!(body, g.bytes);
}

#[test]
fn golden_requests_carry_what_the_clients_sent() {
    // ApiVersions: the client's software name and version (KIP-511).
    for (file, name, version) in [
        ("kcat-api-versions-v3.bin", "librdkafka", "2.0.2"),
        (
            "confluent-api-versions-v3.bin",
            "confluent-kafka-python",
            "2.16.1-rdkafka-2.16.0",
        ),
    ] {
        let (_, RequestKind::ApiVersions(r)) = decode(&find(file)) else {
            panic!("{file}")
        };
        assert_eq!(r.client_software_name.as_str(), name, "{file}");
        assert_eq!(r.client_software_version.as_str(), version, "{file}");
    }

    // Metadata: one topic by name (kcat -L -t, a producer), and the admin client's empty
    // list (its "brokers only" request).
    let (_, RequestKind::Metadata(named)) = decode(&find("kcat-metadata-v4.bin")) else {
        panic!()
    };
    let names: Vec<_> = named
        .topics
        .iter()
        .flatten()
        .map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, [Some("golden".to_owned())]);
    assert!(named.allow_auto_topic_creation);
    let (_, RequestKind::Metadata(one)) = decode(&find("confluent-metadata-v12.bin")) else {
        panic!()
    };
    let names: Vec<_> = one
        .topics
        .iter()
        .flatten()
        .map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, [Some("golden".to_owned())]);
    assert!(one.allow_auto_topic_creation);
    let (_, RequestKind::Metadata(brokers)) = decode(&find("confluent-admin-metadata-v12.bin"))
    else {
        panic!()
    };
    assert_eq!(brokers.topics.as_deref().map(<[_]>::len), Some(0));
    assert!(!brokers.allow_auto_topic_creation);

    // Produce: a record batch with the records, keys and headers the clients were given.
    for (file, records) in [
        (
            "kcat-produce-v7.bin",
            vec![("k1", "v1", "1", None), ("k2", "v2", "1", None)],
        ),
        (
            "confluent-produce-v10.bin",
            vec![("k3", "v3", "2", Some(1_700_000_000_000))],
        ),
    ] {
        let (_, RequestKind::Produce(p)) = decode(&find(file)) else {
            panic!("{file}")
        };
        assert_eq!(p.acks, -1, "{file}");
        assert_eq!(p.topic_data.len(), 1, "{file}");
        assert_eq!(p.topic_data[0].name.0.as_str(), "golden", "{file}");
        let part = &p.topic_data[0].partition_data[0];
        assert_eq!(part.index, 0, "{file}");
        let mut batch = part.records.clone().expect("records");
        let set = RecordBatchDecoder::decode(&mut batch).expect("a record batch");
        assert_eq!(set.version, 2, "{file}");
        let got: Vec<_> = set
            .records
            .iter()
            .map(|r| {
                let header = r.headers.get(&b"h"[..]).cloned().flatten();
                (
                    r.key.clone().unwrap(),
                    r.value.clone().unwrap(),
                    header.unwrap(),
                    r.timestamp,
                )
            })
            .collect();
        assert_eq!(got.len(), records.len(), "{file}");
        for ((k, v, h, ts), (wk, wv, wh, wts)) in got.iter().zip(&records) {
            assert_eq!(
                (&k[..], &v[..], &h[..]),
                (wk.as_bytes(), wv.as_bytes(), wh.as_bytes())
            );
            if let Some(wts) = wts {
                assert_eq!(ts, wts, "{file}");
            }
        }
    }

    // ListOffsets: kcat asks for the log start of partition 0 (-2) to resolve `-o
    // beginning`, confluent-kafka for the earliest one on `assign()` at earliest.
    for file in ["kcat-list-offsets-v2.bin", "confluent-list-offsets-v6.bin"] {
        let (_, RequestKind::ListOffsets(l)) = decode(&find(file)) else {
            panic!("{file}")
        };
        assert_eq!(l.topics[0].name.0.as_str(), "golden", "{file}");
        assert_eq!(l.topics[0].partitions[0].partition_index, 0, "{file}");
        assert_eq!(l.topics[0].partitions[0].timestamp, -2, "{file}");
    }

    // Fetch: topic by name, partition 0, from offset 0, a full (sessionless) request.
    for file in ["kcat-fetch-v11.bin", "confluent-fetch-v12.bin"] {
        let (_, RequestKind::Fetch(f)) = decode(&find(file)) else {
            panic!("{file}")
        };
        assert_eq!(f.topics.len(), 1, "{file}");
        assert_eq!(f.topics[0].topic.0.as_str(), "golden", "{file}");
        let p = &f.topics[0].partitions[0];
        assert_eq!((p.partition, p.fetch_offset), (0, 0), "{file}");
        assert!(f.max_bytes > 0 && p.partition_max_bytes > 0, "{file}");
    }

    // OffsetCommit: the group, the partition and the offset committed.
    let (_, RequestKind::OffsetCommit(c)) = decode(&find("confluent-offset-commit-v8.bin")) else {
        panic!()
    };
    assert_eq!(c.group_id.0.as_str(), "golden-group");
    assert_eq!(c.topics[0].name.0.as_str(), "golden");
    let p = &c.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.committed_offset), (0, 2));
}

/// The handlers' test context (a broker in a temporary directory, node 7 on port 9092)
/// holding topic `golden` with one partition.
fn ctx() -> TestCtx {
    let ctx = testing::ctx(false);
    ctx.broker
        .create_topic("golden", 1, BTreeMap::new())
        .expect("create golden");
    ctx
}

/// The broker's answer to `g`, decoded as a client decodes it; checks that it re-encodes to
/// the same bytes.
async fn answer(ctx: &Arc<Ctx>, g: &Golden) -> ResponseKind {
    let (header, req) = decode(g);
    let correlation = header.correlation_id;
    let frame = api::start(ctx, &Principal::default(), header, g.key, req)
        .await
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", g.file))
        .unwrap_or_else(|| panic!("{}: no answer", g.file));
    let bytes = frame.to_vec();
    let size = i32::from_be_bytes(bytes[..4].try_into().unwrap());
    assert_eq!(
        usize::try_from(size).unwrap(),
        bytes.len() - 4,
        "{}",
        g.file
    );
    let mut buf = Bytes::copy_from_slice(&bytes[4..]);
    let header_version = g.key.response_header_version(g.version);
    let rh = ResponseHeader::decode(&mut buf, header_version).unwrap();
    assert_eq!(rh.correlation_id, correlation, "{}", g.file);
    let resp = ResponseKind::decode(g.key, &mut buf, g.version)
        .unwrap_or_else(|e| panic!("{}: response: {e}", g.file));
    assert_eq!(buf.remaining(), 0, "{}: bytes after the response", g.file);
    let mut again = BytesMut::new();
    rh.encode(&mut again, header_version).unwrap();
    resp.encode(&mut again, g.version).unwrap();
    assert_eq!(
        &again[..],
        &bytes[4..],
        "{}: response re-encodes differently",
        g.file
    );
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_answers_to_golden_requests_decode_back() {
    let ctx = ctx();
    let mut produced = 0;
    for g in all() {
        match answer(&ctx, &g).await {
            ResponseKind::ApiVersions(r) => {
                assert_eq!(r.error_code, 0, "{}", g.file);
                let produce = r
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::Produce as i16);
                assert_eq!(
                    produce.map(|k| (k.min_version, k.max_version)),
                    Some((3, 12))
                );
            }
            ResponseKind::Metadata(r) => {
                assert_eq!(r.brokers.len(), 1, "{}", g.file);
                assert_eq!(r.brokers[0].port, 9092, "{}", g.file);
                assert_eq!(r.brokers[0].node_id.0, 7, "{}", g.file);
                assert_eq!(r.controller_id.0, 7, "{}", g.file);
                let (_, RequestKind::Metadata(req)) = decode(&g) else {
                    unreachable!()
                };
                let want = req.topics.as_ref().map_or(1, Vec::len);
                assert_eq!(r.topics.len(), want, "{}", g.file);
                for t in &r.topics {
                    assert_eq!(t.error_code, 0, "{}", g.file);
                    assert_eq!(t.partitions.len(), 1, "{}", g.file);
                }
            }
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "{}: {p:?}", g.file);
                assert_eq!(p.base_offset, produced, "{}", g.file);
                produced += if g.file.starts_with("kcat") { 2 } else { 1 };
            }
            ResponseKind::ListOffsets(r) => {
                let p = &r.topics[0].partitions[0];
                assert_eq!(p.error_code, 0, "{}", g.file);
                assert_eq!(p.offset, 0, "{}", g.file);
            }
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.error_code, 0, "{}", g.file);
                assert_eq!(p.high_watermark, produced, "{}", g.file);
                let mut records = p.records.clone().expect("records");
                let sets = RecordBatchDecoder::decode_all(&mut records).expect("batches");
                let values: Vec<_> = sets
                    .iter()
                    .flat_map(|s| s.records.iter())
                    .map(|r| r.value.clone().unwrap())
                    .collect();
                let want: &[&[u8]] = if produced == 2 {
                    &[b"v1", b"v2"]
                } else {
                    &[b"v1", b"v2", b"v3"]
                };
                assert_eq!(values, want, "{}", g.file);
            }
            ResponseKind::OffsetCommit(r) => {
                let p = &r.topics[0].partitions[0];
                assert_eq!(p.error_code, 0, "{}", g.file);
            }
            other => panic!("{}: unexpected answer {other:?}", g.file),
        }
    }
    assert_eq!(produced, 3);
}
