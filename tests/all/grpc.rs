//! The gRPC API end to end: a real server (`distlog_server::serve_with_listener`) on
//! 127.0.0.1 port 0 over a real data directory, driven by the generated tonic clients.
//!
//! Guards: byte-identical round trips (null vs empty keys and values, repeated headers,
//! explicit and broker timestamps); Kafka-compatible key placement; subscribe and long poll
//! waking on appends (awaited, never slept on); durable group offsets and acknowledged records
//! across a restart; a precise status for every kind of bad input, after which the server
//! still serves; the admin token guard; gRPC health and reflection.

use anyhow::{Context, Result, ensure};
use distlog_harness::InProcess;
use distlog_server::proto::groups_client::GroupsClient;
use distlog_server::proto::plugins_client::PluginsClient;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use distlog_server::proto::{self, offset_spec::Spec};
use distlog_server::{BrokerConfig, ServerConfig};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// Upper bound on any single await, so a regression fails instead of hanging the suite.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

pub(crate) async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(GUARD, fut)
        .await
        .with_context(|| format!("{what} did not complete"))
}

/// A server without a plugin host (most tests do not need one) over `data`.
pub(crate) async fn start(data: &Path, config: ServerConfig) -> Result<InProcess> {
    Ok(InProcess::start(InProcess::without_plugins(data), config).await?)
}

pub(crate) struct Clients {
    pub(crate) topics: TopicsClient<Channel>,
    pub(crate) records: RecordsClient<Channel>,
    pub(crate) groups: GroupsClient<Channel>,
}

pub(crate) async fn clients(server: &InProcess) -> Result<Clients> {
    let ch = server.channel().await?;
    Ok(Clients {
        topics: TopicsClient::new(ch.clone()),
        records: RecordsClient::new(ch.clone()),
        groups: GroupsClient::new(ch),
    })
}

pub(crate) fn test_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.max_wait_ms = 600_000;
    c.max_record_bytes = 64 << 10;
    c.max_request_bytes = 256 << 10;
    c
}

pub(crate) async fn create(c: &mut Clients, name: &str, partitions: u32) -> Result<()> {
    c.topics
        .create_topic(proto::CreateTopicRequest {
            name: name.into(),
            partitions,
            config: HashMap::new(),
        })
        .await?;
    Ok(())
}

pub(crate) fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> proto::Record {
    proto::Record {
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: vec![],
        timestamp_ms: None,
    }
}

pub(crate) fn produce_req(
    topic: &str,
    partition: Option<u32>,
    records: Vec<proto::Record>,
) -> proto::ProduceRequest {
    proto::ProduceRequest {
        topic: topic.into(),
        partition,
        records,
        sequence: 0,
    }
}

pub(crate) fn fetch_req(topic: &str, partition: u32, offset: i64) -> proto::FetchRequest {
    proto::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
        format: 0,
    }
}

/// Every record of a partition from `from`, following `next_offset` to the end.
async fn fetch_all(
    c: &mut Clients,
    topic: &str,
    partition: u32,
    from: i64,
) -> Result<Vec<proto::StoredRecord>> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = c
            .records
            .fetch(fetch_req(topic, partition, offset))
            .await?
            .into_inner();
        if r.records.is_empty() {
            return Ok(out);
        }
        offset = r.next_offset;
        out.extend(r.records);
    }
}

/// Records with every shape the wire distinguishes.
fn varied_records() -> Vec<proto::Record> {
    vec![
        proto::Record {
            key: Some(b"k1".to_vec()),
            value: Some(b"v1".to_vec()),
            headers: vec![
                proto::Header {
                    key: "h".into(),
                    value: b"1".to_vec(),
                },
                proto::Header {
                    key: "h".into(),
                    value: vec![],
                },
                proto::Header {
                    key: "trace-id".into(),
                    value: vec![0, 255, 7],
                },
            ],
            timestamp_ms: Some(1_700_000_000_123),
        },
        record(None, Some(b"no key")),
        record(Some(b"tombstone"), None),
        record(Some(b""), Some(b"")),
        record(None, None),
        proto::Record {
            key: Some((0..=255u8).collect()),
            value: Some(vec![0xAB; 10_000]),
            headers: vec![],
            timestamp_ms: Some(0),
        },
    ]
}

pub(crate) fn status_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
) -> Result<(Code, String)> {
    match r {
        Ok(v) => anyhow::bail!("expected an error status, got {v:?}"),
        Err(s) => Ok((s.code(), s.message().to_owned())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_is_byte_identical() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "orders", 1).await?;

    let sent = varied_records();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let resp = c
        .records
        .produce(produce_req("orders", None, sent.clone()))
        .await?
        .into_inner();
    ensure!(
        resp.offsets == (0..6).collect::<Vec<i64>>(),
        "offsets {:?}",
        resp.offsets
    );
    ensure!(resp.record_partitions == vec![0; 6]);
    ensure!(
        resp.partitions.len() == 1
            && resp.partitions[0].base_offset == 0
            && resp.partitions[0].record_count == 6
    );

    let got = fetch_all(&mut c, "orders", 0, 0).await?;
    ensure!(got.len() == sent.len(), "fetched {} records", got.len());
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        ensure!(g.offset == i as i64);
        ensure!(g.key.as_deref() == s.key.as_deref(), "record {i} key");
        ensure!(g.value.as_deref() == s.value.as_deref(), "record {i} value");
        ensure!(g.headers == s.headers, "record {i} headers");
        match s.timestamp_ms {
            Some(ts) => ensure!(g.timestamp_ms == ts, "record {i} timestamp"),
            None => ensure!(
                g.timestamp_ms as u128 >= before,
                "record {i} broker timestamp"
            ),
        }
    }

    // Fetching from the middle starts at that offset, even inside a batch.
    let mid = c
        .records
        .fetch(fetch_req("orders", 0, 4))
        .await?
        .into_inner();
    ensure!(mid.records.first().map(|r| r.offset) == Some(4));
    ensure!(mid.log_start_offset == 0 && mid.log_end_offset == 6 && mid.next_offset == 6);

    // ListOffsets: earliest, latest, and by timestamp.
    let list = |spec| proto::ListOffsetsRequest {
        topic: "orders".into(),
        partitions: vec![],
        spec: Some(proto::OffsetSpec { spec: Some(spec) }),
    };
    let e = c
        .records
        .list_offsets(list(Spec::Earliest(proto::Empty {})))
        .await?
        .into_inner();
    let l = c
        .records
        .list_offsets(list(Spec::Latest(proto::Empty {})))
        .await?
        .into_inner();
    ensure!(e.offsets[0].offset == 0 && l.offsets[0].offset == 6);
    let far = c
        .records
        .list_offsets(list(Spec::TimestampMs(i64::MAX)))
        .await?
        .into_inner();
    ensure!(far.offsets[0].offset == 6 && far.offsets[0].timestamp_ms == -1);

    // Describe reports the offsets and the segment.
    let d = c
        .topics
        .describe_topic(proto::DescribeTopicRequest {
            name: "orders".into(),
        })
        .await?
        .into_inner()
        .topic
        .context("topic")?;
    ensure!(d.partitions.len() == 1 && d.partitions[0].log_end_offset == 6);
    ensure!(!d.partitions[0].segments.is_empty() && d.partitions[0].size_bytes > 10_000);
    ensure!(d.config.get("cleanup.policy").map(String::as_str) == Some("delete"));

    // Storage settings change live (the partition logs are reopened); nothing is lost.
    let altered = c
        .topics
        .alter_topic_config(proto::AlterTopicConfigRequest {
            name: "orders".into(),
            set: [
                ("segment.bytes".to_owned(), "1048576".to_owned()),
                ("flush.policy".to_owned(), "os".to_owned()),
            ]
            .into(),
            reset: vec![],
            validate_only: false,
        })
        .await?
        .into_inner();
    ensure!(altered.config.get("flush.policy").map(String::as_str) == Some("os"));
    c.records
        .produce(produce_req(
            "orders",
            None,
            vec![record(None, Some(b"after alter"))],
        ))
        .await?;
    let all = fetch_all(&mut c, "orders", 0, 0).await?;
    ensure!(all.len() == 7 && all[6].value.as_deref() == Some(&b"after alter"[..]));
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_kafkas_partition() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "keyed", 3).await?;
    let keys: Vec<Vec<u8>> = (0..30).map(|i| format!("user-{i}").into_bytes()).collect();
    let recs = keys.iter().map(|k| record(Some(k), Some(b"x"))).collect();
    let resp = c
        .records
        .produce(produce_req("keyed", None, recs))
        .await?
        .into_inner();
    for (k, p) in keys.iter().zip(&resp.record_partitions) {
        ensure!(*p == distlog_broker::partitioner::partition_for_key(k, 3));
    }
    let mut total = 0;
    for p in 0..3 {
        for r in fetch_all(&mut c, "keyed", p, 0).await? {
            let key = r.key.context("key")?;
            ensure!(distlog_broker::partitioner::partition_for_key(&key, 3) == p);
            total += 1;
        }
    }
    ensure!(total == 30);
    Ok(server.stop().await?)
}

/// Opens a subscription from offset 0 of `topic`'s partition 0 (established: its first read
/// done) and starts a fetch from offset 0 that long-polls for up to 10 minutes.
async fn subscribe_and_poll(
    c: &mut Clients,
    topic: &str,
) -> Result<(
    tonic::Streaming<proto::FetchResponse>,
    tokio::task::JoinHandle<Result<tonic::Response<proto::FetchResponse>, tonic::Status>>,
)> {
    let stream = c
        .records
        .subscribe(proto::SubscribeRequest {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            reset: 0,
        })
        .await?
        .into_inner();
    let mut poller = c.records.clone();
    let request = proto::FetchRequest {
        max_wait_ms: 600_000,
        ..fetch_req(topic, 0, 0)
    };
    let poll = tokio::spawn(async move { poller.fetch(request).await });
    Ok((stream, poll))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_long_poll_wake_on_append() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "tail", 1).await?;

    // A subscription established (its first read done) before anything is produced, and a
    // long poll that can only return because data arrived (its wait is 10 minutes).
    let (mut stream, poll) = subscribe_and_poll(&mut c, "tail").await?;

    let mut produced = Vec::new();
    for i in 0..5u8 {
        let r = c
            .records
            .produce(produce_req(
                "tail",
                Some(0),
                vec![record(None, Some(&[i; 3]))],
            ))
            .await?
            .into_inner();
        produced.push(r.offsets[0]);
    }
    let polled = guarded("long poll", poll).await???.into_inner();
    ensure!(!polled.records.is_empty() && polled.records[0].value.as_deref() == Some(&[0; 3][..]));

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let msg = guarded("subscription", stream.message())
            .await??
            .context("stream ended")?;
        for r in msg.records {
            ensure!(r.value.as_deref() == Some(&[u8::try_from(r.offset)?; 3][..]));
            seen.push(r.offset);
        }
    }
    ensure!(seen == produced, "subscription saw {seen:?}");

    // A long poll with nothing to wait for answers empty when its time runs out.
    let empty = c
        .records
        .fetch(proto::FetchRequest {
            max_wait_ms: 20,
            ..fetch_req("tail", 0, 5)
        })
        .await?
        .into_inner();
    ensure!(empty.records.is_empty() && empty.next_offset == 5);

    // Deleting the topic ends the subscription with NOT_FOUND.
    c.topics
        .delete_topic(proto::DeleteTopicRequest {
            name: "tail".into(),
        })
        .await?;
    let end = guarded("subscription end", stream.message()).await?;
    ensure!(
        matches!(&end, Err(s) if s.code() == Code::NotFound),
        "{end:?}"
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_records_and_group_offsets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data: PathBuf = dir.path().join("data");
    let sent = varied_records();
    {
        let server = start(&data, test_config()).await?;
        let mut c = clients(&server).await?;
        c.topics
            .create_topic(proto::CreateTopicRequest {
                name: "durable".into(),
                partitions: 2,
                config: [("retention.ms".to_owned(), "-1".to_owned())].into(),
            })
            .await?;
        for p in 0..2 {
            c.records
                .produce(produce_req("durable", Some(p), sent.clone()))
                .await?;
        }
        c.groups
            .commit_offsets(proto::CommitOffsetsRequest {
                group: "billing".into(),
                offsets: vec![
                    proto::CommittedOffset {
                        topic: "durable".into(),
                        partition: 0,
                        offset: 4,
                        metadata: "m".into(),
                        committed_at_ms: 0,
                    },
                    proto::CommittedOffset {
                        topic: "durable".into(),
                        partition: 1,
                        offset: 2,
                        metadata: String::new(),
                        committed_at_ms: 0,
                    },
                ],
            })
            .await?;
        c.groups
            .commit_offsets(proto::CommitOffsetsRequest {
                group: "billing".into(),
                offsets: vec![proto::CommittedOffset {
                    topic: "durable".into(),
                    partition: 0,
                    offset: 6,
                    metadata: "later".into(),
                    committed_at_ms: 0,
                }],
            })
            .await?;
        server.stop().await?;
    }
    let server = start(&data, test_config()).await?;
    let mut c = clients(&server).await?;
    let topics = c
        .topics
        .list_topics(proto::ListTopicsRequest {})
        .await?
        .into_inner()
        .topics;
    ensure!(
        topics
            == vec![proto::TopicSummary {
                name: "durable".into(),
                partitions: 2
            }]
    );
    let d = c
        .topics
        .describe_topic(proto::DescribeTopicRequest {
            name: "durable".into(),
        })
        .await?
        .into_inner()
        .topic
        .context("topic")?;
    ensure!(d.config.get("retention.ms").map(String::as_str) == Some("-1"));
    for p in 0..2 {
        let got = fetch_all(&mut c, "durable", p, 0).await?;
        ensure!(got.len() == sent.len());
        for (s, g) in sent.iter().zip(&got) {
            ensure!(
                g.key.as_deref() == s.key.as_deref()
                    && g.value.as_deref() == s.value.as_deref()
                    && g.headers == s.headers
            );
        }
    }
    let offsets = c
        .groups
        .fetch_offsets(proto::FetchOffsetsRequest {
            group: "billing".into(),
            topic: String::new(),
        })
        .await?
        .into_inner()
        .offsets;
    let simple: Vec<_> = offsets
        .iter()
        .map(|o| (o.partition, o.offset, o.metadata.as_str()))
        .collect();
    ensure!(simple == vec![(0, 6, "later"), (1, 2, "")], "{simple:?}");
    let groups = c
        .groups
        .list_groups(proto::ListGroupsRequest {})
        .await?
        .into_inner()
        .groups;
    ensure!(groups == vec!["billing".to_owned()]);
    // New appends continue after the recovered end.
    let r = c
        .records
        .produce(produce_req(
            "durable",
            Some(0),
            vec![record(None, Some(b"after"))],
        ))
        .await?;
    ensure!(r.into_inner().offsets == vec![6]);
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_statuses_and_the_server_keeps_serving() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "ok", 2).await?;
    c.records
        .produce(produce_req(
            "ok",
            Some(0),
            vec![record(None, Some(b"a")), record(None, Some(b"b"))],
        ))
        .await?;
    let create_req =
        |name: &str, partitions: u32, config: &[(&str, &str)]| proto::CreateTopicRequest {
            name: name.into(),
            partitions,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };

    let mut cases: Vec<(&str, Code, (Code, String))> = Vec::new();
    cases.push((
        "unknown topic (produce)",
        Code::NotFound,
        status_code(
            c.records
                .produce(produce_req("nope", None, vec![record(None, Some(b"x"))]))
                .await,
        )?,
    ));
    cases.push((
        "unknown topic (fetch)",
        Code::NotFound,
        status_code(c.records.fetch(fetch_req("nope", 0, 0)).await)?,
    ));
    cases.push((
        "unknown partition",
        Code::NotFound,
        status_code(c.records.fetch(fetch_req("ok", 9, 0)).await)?,
    ));
    cases.push((
        "unknown partition (produce)",
        Code::NotFound,
        status_code(
            c.records
                .produce(produce_req("ok", Some(2), vec![record(None, Some(b"x"))]))
                .await,
        )?,
    ));
    cases.push((
        "negative offset",
        Code::InvalidArgument,
        status_code(c.records.fetch(fetch_req("ok", 0, -1)).await)?,
    ));
    let out_of_range = status_code(c.records.fetch(fetch_req("ok", 0, 3)).await)?;
    ensure!(
        out_of_range.1.contains("[0, 2)"),
        "range missing from {:?}",
        out_of_range.1
    );
    cases.push(("offset past the end", Code::OutOfRange, out_of_range));
    cases.push((
        "negative subscribe offset",
        Code::InvalidArgument,
        status_code(
            c.records
                .subscribe(proto::SubscribeRequest {
                    topic: "ok".into(),
                    partition: 0,
                    offset: -5,
                    max_bytes: 0,
                    reset: 0,
                })
                .await,
        )?,
    ));
    cases.push((
        "subscribe past the end",
        Code::OutOfRange,
        status_code(
            c.records
                .subscribe(proto::SubscribeRequest {
                    topic: "ok".into(),
                    partition: 0,
                    offset: 99,
                    max_bytes: 0,
                    reset: 0,
                })
                .await,
        )?,
    ));
    cases.push((
        "empty batch",
        Code::InvalidArgument,
        status_code(c.records.produce(produce_req("ok", None, vec![])).await)?,
    ));
    cases.push((
        "oversized record",
        Code::ResourceExhausted,
        status_code(
            c.records
                .produce(produce_req(
                    "ok",
                    None,
                    vec![record(None, Some(&vec![1; 100 << 10]))],
                ))
                .await,
        )?,
    ));
    let many: Vec<_> = (0..10)
        .map(|_| record(None, Some(&vec![2; 60 << 10])))
        .collect();
    cases.push((
        "oversized request",
        Code::ResourceExhausted,
        status_code(c.records.produce(produce_req("ok", None, many)).await)?,
    ));
    cases.push((
        "invalid topic name",
        Code::InvalidArgument,
        status_code(c.topics.create_topic(create_req("bad/name", 1, &[])).await)?,
    ));
    cases.push((
        "dot-dot topic name",
        Code::InvalidArgument,
        status_code(c.topics.create_topic(create_req("..", 1, &[])).await)?,
    ));
    cases.push((
        "empty topic name",
        Code::InvalidArgument,
        status_code(c.topics.create_topic(create_req("", 1, &[])).await)?,
    ));
    cases.push((
        "invalid name on produce",
        Code::InvalidArgument,
        status_code(
            c.records
                .produce(produce_req("a b", None, vec![record(None, Some(b"x"))]))
                .await,
        )?,
    ));
    cases.push((
        "unknown config key",
        Code::InvalidArgument,
        status_code(
            c.topics
                .create_topic(create_req("t1", 1, &[("retention.mss", "1")]))
                .await,
        )?,
    ));
    cases.push((
        "bad config value",
        Code::InvalidArgument,
        status_code(
            c.topics
                .create_topic(create_req("t2", 1, &[("segment.bytes", "lots")]))
                .await,
        )?,
    ));
    cases.push((
        "too many partitions",
        Code::InvalidArgument,
        status_code(c.topics.create_topic(create_req("t3", 100_000, &[])).await)?,
    ));
    cases.push((
        "duplicate topic",
        Code::AlreadyExists,
        status_code(c.topics.create_topic(create_req("ok", 1, &[])).await)?,
    ));
    cases.push((
        "bad alter",
        Code::InvalidArgument,
        status_code(
            c.topics
                .alter_topic_config(proto::AlterTopicConfigRequest {
                    name: "ok".into(),
                    set: [("cleanup.policy".to_owned(), "never".to_owned())].into(),
                    reset: vec![],
                    validate_only: false,
                })
                .await,
        )?,
    ));
    // A group without commits is an empty answer (as Kafka's OffsetFetch), not NOT_FOUND.
    let ghost = c
        .groups
        .fetch_offsets(proto::FetchOffsetsRequest {
            group: "ghost".into(),
            topic: String::new(),
        })
        .await?
        .into_inner();
    ensure!(ghost.offsets.is_empty(), "{ghost:?}");
    cases.push((
        "negative commit",
        Code::InvalidArgument,
        status_code(
            c.groups
                .commit_offsets(proto::CommitOffsetsRequest {
                    group: "g".into(),
                    offsets: vec![proto::CommittedOffset {
                        topic: "ok".into(),
                        partition: 0,
                        offset: -1,
                        metadata: String::new(),
                        committed_at_ms: 0,
                    }],
                })
                .await,
        )?,
    ));
    cases.push((
        "commit to unknown topic",
        Code::NotFound,
        status_code(
            c.groups
                .commit_offsets(proto::CommitOffsetsRequest {
                    group: "g".into(),
                    offsets: vec![proto::CommittedOffset {
                        topic: "nope".into(),
                        partition: 0,
                        offset: 1,
                        metadata: String::new(),
                        committed_at_ms: 0,
                    }],
                })
                .await,
        )?,
    ));
    cases.push((
        "missing offset spec",
        Code::InvalidArgument,
        status_code(
            c.records
                .list_offsets(proto::ListOffsetsRequest {
                    topic: "ok".into(),
                    partitions: vec![],
                    spec: None,
                })
                .await,
        )?,
    ));
    for (what, want, (got, message)) in &cases {
        ensure!(
            got == want,
            "{what}: expected {want:?}, got {got:?} ({message})"
        );
        ensure!(!message.is_empty(), "{what}: empty message");
    }

    // The topic's own max.message.bytes applies too.
    create(&mut c, "small", 1).await?;
    c.topics
        .alter_topic_config(proto::AlterTopicConfigRequest {
            name: "small".into(),
            set: [("max.message.bytes".to_owned(), "1024".to_owned())].into(),
            reset: vec![],
            validate_only: false,
        })
        .await?;
    let (code, _) = status_code(
        c.records
            .produce(produce_req(
                "small",
                None,
                vec![record(None, Some(&[0; 2000]))],
            ))
            .await,
    )?;
    ensure!(code == Code::ResourceExhausted);

    // Nothing was damaged and the server still serves.
    let got = fetch_all(&mut c, "ok", 0, 0).await?;
    ensure!(
        got.iter().map(|r| r.value.as_deref()).collect::<Vec<_>>()
            == vec![Some(&b"a"[..]), Some(&b"b"[..])]
    );
    c.records
        .produce(produce_req("ok", Some(0), vec![record(None, Some(b"c"))]))
        .await?;
    ensure!(fetch_all(&mut c, "ok", 0, 0).await?.len() == 3);
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_answers_in_order_and_survives_bad_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "piped", 1).await?;
    let requests: Vec<proto::ProduceRequest> = (0..20u64)
        .map(|i| {
            let topic = if i == 7 { "missing" } else { "piped" };
            proto::ProduceRequest {
                sequence: i,
                ..produce_req(topic, None, vec![record(None, Some(&i.to_le_bytes())); 3])
            }
        })
        .collect();
    let mut responses = c
        .records
        .produce_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut next_offset = 0;
    for i in 0..20u64 {
        let r = guarded("stream response", responses.message())
            .await??
            .context("stream ended")?;
        ensure!(r.sequence == i);
        if i == 7 {
            let e = r.error.context("error for the bad request")?;
            ensure!(e.code == Code::NotFound as i32, "{e:?}");
        } else {
            ensure!(
                r.error.is_none()
                    && r.offsets == vec![next_offset, next_offset + 1, next_offset + 2]
            );
            next_offset += 3;
        }
    }
    ensure!(guarded("stream end", responses.message()).await??.is_none());
    ensure!(fetch_all(&mut c, "piped", 0, 0).await?.len() == 57);
    Ok(server.stop().await?)
}

/// Requests to a topic that fsyncs before answering and to one that does not, interleaved on
/// one ProduceStream: the answers of the unsynced topic must not overtake those still waiting
/// for an fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_keeps_order_across_synced_and_unsynced_topics() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    for (name, policy) in [("synced", "batch"), ("unsynced", "os")] {
        c.topics
            .create_topic(proto::CreateTopicRequest {
                name: name.into(),
                partitions: 1,
                config: HashMap::from([("flush.policy".to_owned(), policy.to_owned())]),
            })
            .await?;
    }
    let topic = |i: u64| {
        if i.is_multiple_of(3) {
            "synced"
        } else {
            "unsynced"
        }
    };
    let requests: Vec<proto::ProduceRequest> = (0..60u64)
        .map(|i| proto::ProduceRequest {
            sequence: i,
            ..produce_req(
                topic(i),
                Some(0),
                vec![record(None, Some(&i.to_le_bytes()))],
            )
        })
        .collect();
    let mut responses = c
        .records
        .produce_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut next = HashMap::from([("synced", 0i64), ("unsynced", 0i64)]);
    for i in 0..60u64 {
        let r = guarded("stream response", responses.message())
            .await??
            .context("stream ended")?;
        ensure!(
            r.sequence == i,
            "answer {} arrived in place of {i}",
            r.sequence
        );
        let offset = next.get_mut(topic(i)).context("topic")?;
        ensure!(r.error.is_none() && r.offsets == [*offset], "{r:?}");
        *offset += 1;
    }
    ensure!(guarded("stream end", responses.message()).await??.is_none());
    Ok(server.stop().await?)
}

/// Requests queued on one ProduceStream for the same explicit partition are merged into one
/// append by the server; each must still get its own answer, in order, with exactly the
/// offsets its records landed at, and a bad request in the middle must stay alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_merged_into_one_append_keep_their_own_offsets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "merged", 2).await?;
    let value = |i: u64, j: u64| format!("request {i} record {j}").into_bytes();
    let partition_of = |i: u64| u32::from(i.is_multiple_of(3));
    // All requests are sent at once, so the server finds many of them already queued.
    let requests: Vec<proto::ProduceRequest> = (0..60u64)
        .map(|i| {
            let records = if i == 31 {
                vec![] // invalid: must fail alone without disturbing its neighbours
            } else {
                (0..1 + i % 5)
                    .map(|j| record(Some(b"k"), Some(&value(i, j))))
                    .collect()
            };
            proto::ProduceRequest {
                sequence: i,
                ..produce_req("merged", Some(partition_of(i)), records)
            }
        })
        .collect();
    let mut responses = c
        .records
        .produce_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut next = [0i64; 2];
    let mut expected: [Vec<(i64, Vec<u8>)>; 2] = [vec![], vec![]];
    for i in 0..60u64 {
        let r = guarded("stream response", responses.message())
            .await??
            .context("stream ended")?;
        ensure!(
            r.sequence == i,
            "answers out of order: {} for {i}",
            r.sequence
        );
        if i == 31 {
            let e = r.error.context("error for the empty request")?;
            ensure!(e.code == Code::InvalidArgument as i32, "{e:?}");
            continue;
        }
        ensure!(r.error.is_none(), "request {i}: {:?}", r.error);
        let p = partition_of(i) as usize;
        let count = 1 + i % 5;
        let want: Vec<i64> = (0..count as i64).map(|k| next[p] + k).collect();
        ensure!(
            r.offsets == want,
            "request {i}: {:?} != {want:?}",
            r.offsets
        );
        for j in 0..count {
            expected[p].push((next[p] + j as i64, value(i, j)));
        }
        next[p] += count as i64;
    }
    ensure!(guarded("stream end", responses.message()).await??.is_none());
    for p in 0..2u32 {
        let got: Vec<(i64, Vec<u8>)> = fetch_all(&mut c, "merged", p, 0)
            .await?
            .into_iter()
            .map(|r| (r.offset, r.value.map(Vec::from).unwrap_or_default()))
            .collect();
        ensure!(got == expected[p as usize], "partition {p} differs");
    }
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_require_the_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config();
    config.admin_token = Some("s3cret".into());
    let server = start(dir.path(), config).await?;
    let mut c = clients(&server).await?;
    fn with<T>(token: Option<&str>, request: T) -> Request<T> {
        let mut r = Request::new(request);
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", t.parse().expect("ascii metadata"));
        }
        r
    }
    let create_request = || proto::CreateTopicRequest {
        name: "guarded".into(),
        partitions: 1,
        config: HashMap::new(),
    };
    // CreateTopic is an admin call: refused without the token or with a wrong one.
    let (code, _) = status_code(c.topics.create_topic(with(None, create_request())).await)?;
    ensure!(code == Code::Unauthenticated, "{code:?}");
    let (code, _) = status_code(
        c.topics
            .create_topic(with(Some("Bearer wrong"), create_request()))
            .await,
    )?;
    ensure!(code == Code::PermissionDenied, "{code:?}");
    // Public calls need no token.
    ensure!(
        c.topics
            .list_topics(proto::ListTopicsRequest {})
            .await?
            .into_inner()
            .topics
            .is_empty(),
        "a refused create made a topic"
    );
    c.topics
        .create_topic(distlog_harness::with_token(create_request(), "s3cret"))
        .await?;
    c.records
        .produce(produce_req(
            "guarded",
            Some(0),
            vec![record(None, Some(b"v"))],
        ))
        .await?;
    let delete = |token| {
        with(
            token,
            proto::DeleteTopicRequest {
                name: "guarded".into(),
            },
        )
    };
    let (code, _) = status_code(c.topics.delete_topic(delete(None)).await)?;
    ensure!(code == Code::Unauthenticated, "{code:?}");
    let (code, _) = status_code(c.topics.delete_topic(delete(Some("Bearer wrong"))).await)?;
    ensure!(code == Code::PermissionDenied, "{code:?}");
    let mut plugins = PluginsClient::new(server.channel().await?);
    let (code, _) = status_code(
        plugins
            .unload_plugin(proto::UnloadPluginRequest { name: "lz4".into() })
            .await,
    )?;
    ensure!(code == Code::Unauthenticated, "{code:?}");
    ensure!(
        c.topics
            .list_topics(proto::ListTopicsRequest {})
            .await?
            .into_inner()
            .topics
            .len()
            == 1
    );
    c.topics.delete_topic(delete(Some("Bearer s3cret"))).await?;
    ensure!(
        c.topics
            .list_topics(proto::ListTopicsRequest {})
            .await?
            .into_inner()
            .topics
            .is_empty()
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() -> Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let ch = server.channel().await?;
    let mut health = HealthClient::new(ch.clone());
    for service in ["", "distlog.v1.Records", "distlog.v1.Topics"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        ensure!(
            r.status == ServingStatus::Serving as i32,
            "{service}: {r:?}"
        );
    }
    let mut reflection = ServerReflectionClient::new(ch);
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await?
        .into_inner();
    let r = guarded("reflection", responses.message())
        .await??
        .context("no reflection answer")?;
    let Some(MessageResponse::ListServicesResponse(list)) = r.message_response else {
        anyhow::bail!("unexpected reflection answer {r:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "distlog.v1.Topics",
        "distlog.v1.Records",
        "distlog.v1.Groups",
        "distlog.v1.Plugins",
    ] {
        ensure!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // A reflection client (grpcurl) resolves a service's file and then every file it imports:
    // the access option's `google/protobuf/descriptor.proto` must be served too.
    for request in [
        MessageRequest::FileContainingSymbol("distlog.v1.Topics".into()),
        MessageRequest::FileByFilename("google/protobuf/descriptor.proto".into()),
    ] {
        let mut responses = reflection
            .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request.clone()),
            }]))
            .await?
            .into_inner();
        let r = guarded("reflection", responses.message())
            .await??
            .context("no reflection answer")?;
        let Some(MessageResponse::FileDescriptorResponse(files)) = r.message_response else {
            anyhow::bail!("{request:?}: unexpected reflection answer {r:?}");
        };
        ensure!(
            !files.file_descriptor_proto.is_empty(),
            "{request:?}: no descriptor"
        );
    }
    Ok(server.stop().await?)
}

/// A TLS channel to `addr` trusting `ca`, presenting `identity` (cert, key) when given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert)?,
            std::fs::read(key)?,
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(channel)
}

/// Lists topics over `channel` (connecting lazily when `channel` is an error).
async fn list_topics(channel: Result<Channel>) -> Result<Vec<String>> {
    let mut topics = TopicsClient::new(channel?);
    let list = guarded(
        "list topics",
        topics.list_topics(proto::ListTopicsRequest {}),
    )
    .await??
    .into_inner();
    Ok(list.topics.into_iter().map(|t| t.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_admits_only_clients_of_its_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = crate::certs::Pki::generate(dir.path(), "main")?;
    let stranger = crate::certs::Pki::generate(dir.path(), "stranger")?;
    let mut config = test_config();
    config.tls_cert = Some(pki.server_cert.clone());
    config.tls_key = Some(pki.server_key.clone());
    config.tls_client_ca = Some(pki.ca.clone());
    let data = dir.path().join("data");
    let server = start(&data, config).await?;
    let identity = Some((pki.client_cert.as_path(), pki.client_key.as_path()));

    // A client of the CA: the whole API works over TLS, records round-trip byte for byte.
    let ch = tls_channel(server.addr(), &pki.ca, identity).await?;
    let mut c = Clients {
        topics: TopicsClient::new(ch.clone()),
        records: RecordsClient::new(ch.clone()),
        groups: GroupsClient::new(ch),
    };
    create(&mut c, "secure", 1).await?;
    let sent = varied_records();
    c.records
        .produce(produce_req("secure", Some(0), sent.clone()))
        .await?;
    let got = fetch_all(&mut c, "secure", 0, 0).await?;
    ensure!(
        got.len() == sent.len(),
        "fetched {} of {}",
        got.len(),
        sent.len()
    );
    for (g, s) in got.iter().zip(&sent) {
        ensure!(
            g.key.as_deref() == s.key.as_deref()
                && g.value.as_deref() == s.value.as_deref()
                && g.headers == s.headers
        );
    }

    // Refused: plaintext, TLS without a client certificate, a certificate of another CA,
    // and a client that does not trust the server's CA.
    let plaintext = list_topics(server.channel().await.map_err(anyhow::Error::from)).await;
    ensure!(
        plaintext.is_err(),
        "plaintext client was served: {plaintext:?}"
    );
    let anonymous = list_topics(tls_channel(server.addr(), &pki.ca, None).await).await;
    ensure!(
        anonymous.is_err(),
        "client without a certificate was served"
    );
    let foreign = Some((
        stranger.client_cert.as_path(),
        stranger.client_key.as_path(),
    ));
    let foreign = list_topics(tls_channel(server.addr(), &pki.ca, foreign).await).await;
    ensure!(foreign.is_err(), "client of another CA was served");
    let distrustful = list_topics(tls_channel(server.addr(), &stranger.ca, identity).await).await;
    ensure!(
        distrustful.is_err(),
        "client accepted a server of another CA"
    );

    // The server kept serving its own clients.
    let names = list_topics(tls_channel(server.addr(), &pki.ca, identity).await).await?;
    ensure!(names == ["secure"], "{names:?}");
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_stop_the_server_with_the_setting_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = crate::certs::Pki::generate(dir.path(), "main")?;
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello")?;
    // (certificate, key, client CA, expected error)
    type Case<'a> = (
        Option<&'a Path>,
        Option<&'a Path>,
        Option<&'a Path>,
        &'a str,
    );
    let cases: [Case; 5] = [
        (
            Some(&pki.server_cert),
            None,
            None,
            "server.tls_cert is set without server.tls_key",
        ),
        (
            None,
            Some(&pki.server_key),
            None,
            "server.tls_key is set without server.tls_cert",
        ),
        (
            None,
            None,
            Some(&pki.ca),
            "server.tls_client_ca is set but TLS is off",
        ),
        (
            Some(&not_pem),
            Some(&pki.server_key),
            None,
            "server.tls_cert: ",
        ),
        (
            Some(&pki.server_cert),
            Some(&dir.path().join("missing.key")),
            None,
            "server.tls_key: cannot read",
        ),
    ];
    for (i, (cert, key, ca, want)) in cases.into_iter().enumerate() {
        let mut config = test_config();
        config.tls_cert = cert.map(Path::to_path_buf);
        config.tls_key = key.map(Path::to_path_buf);
        config.tls_client_ca = ca.map(Path::to_path_buf);
        let err = config.check_tls().err().context("check_tls accepted")?;
        ensure!(err.to_string().contains(want), "case {i}: {err}");
        let server = start(&dir.path().join(format!("data-{i}")), config).await?;
        let served = server.finished().await?;
        let Err(err) = served else {
            anyhow::bail!("case {i}: the server started");
        };
        ensure!(err.to_string().contains(want), "case {i}: {err}");
    }
    Ok(())
}

fn bundled(name: &str) -> Result<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A broker with the built-in plugins; compiled artifacts are cached across runs.
fn plugin_broker_config(data: &Path) -> BrokerConfig {
    let mut c = BrokerConfig::new(data);
    c.plugins.cache_dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("grpc-plugin-cache"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_list_load_reload_unload_and_persist() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let server = InProcess::start(plugin_broker_config(&data), test_config()).await?;
    let ch = server.channel().await?;
    let mut plugins = PluginsClient::new(ch.clone());
    let mut c = clients(&server).await?;

    let listed = plugins
        .list_plugins(proto::ListPluginsRequest {})
        .await?
        .into_inner()
        .plugins;
    let lz4 = listed
        .iter()
        .find(|p| p.name == "codec-lz4")
        .context("built-in codec-lz4 listed")?;
    ensure!(lz4.builtin && lz4.kind == proto::PluginKind::Codec as i32);
    ensure!(
        lz4.versions.len() == 1 && lz4.versions[0].digest.len() == 64 && lz4.versions[0].active
    );

    let load = |name: &str, kind: proto::PluginKind, component: Vec<u8>| proto::LoadPluginRequest {
        name: name.into(),
        kind: kind as i32,
        component,
        params: Default::default(),
        ..Default::default()
    };
    let (code, _) = status_code(
        plugins
            .load_plugin(load("junk", proto::PluginKind::Codec, b"not wasm".to_vec()))
            .await,
    )?;
    ensure!(code == Code::InvalidArgument, "{code:?}");
    let (code, _) = status_code(
        plugins
            .load_plugin(load(
                "wrong",
                proto::PluginKind::Retention,
                bundled("codec-lz4")?,
            ))
            .await,
    )?;
    ensure!(code == Code::InvalidArgument, "{code:?}");

    let loaded = plugins
        .load_plugin(load(
            "my-codec",
            proto::PluginKind::Codec,
            bundled("codec-lz4")?,
        ))
        .await?
        .into_inner()
        .plugin
        .context("plugin")?;
    ensure!(!loaded.builtin && loaded.versions.len() == 1);
    let first = loaded.versions[0].digest.clone();
    let (code, _) = status_code(
        plugins
            .load_plugin(load(
                "my-codec",
                proto::PluginKind::Codec,
                bundled("codec-lz4")?,
            ))
            .await,
    )?;
    ensure!(code == Code::AlreadyExists, "{code:?}");

    let reloaded = plugins
        .reload_plugin(proto::ReloadPluginRequest {
            name: "my-codec".into(),
            component: bundled("codec-zstd")?,
        })
        .await?
        .into_inner()
        .plugin
        .context("plugin")?;
    let active: Vec<_> = reloaded.versions.iter().filter(|v| v.active).collect();
    ensure!(
        active.len() == 1 && active[0].digest != first,
        "{reloaded:?}"
    );
    let (code, _) = status_code(
        plugins
            .reload_plugin(proto::ReloadPluginRequest {
                name: "ghost".into(),
                component: bundled("codec-zstd")?,
            })
            .await,
    )?;
    ensure!(code == Code::NotFound, "{code:?}");
    let (code, _) = status_code(
        plugins
            .describe_plugin(proto::DescribePluginRequest {
                name: "ghost".into(),
            })
            .await,
    )?;
    ensure!(code == Code::NotFound, "{code:?}");

    // A topic naming the plugin keeps it loaded.
    c.topics
        .create_topic(proto::CreateTopicRequest {
            name: "squeezed".into(),
            partitions: 1,
            config: [("compression".to_owned(), "my-codec".to_owned())].into(),
        })
        .await?;
    let (code, message) = status_code(
        plugins
            .unload_plugin(proto::UnloadPluginRequest {
                name: "my-codec".into(),
            })
            .await,
    )?;
    ensure!(
        code == Code::FailedPrecondition && message.contains("squeezed"),
        "{code:?} {message}"
    );
    c.topics
        .delete_topic(proto::DeleteTopicRequest {
            name: "squeezed".into(),
        })
        .await?;

    // A user-loaded plugin survives a restart; an unloaded one does not come back.
    plugins
        .load_plugin(load(
            "my-retention",
            proto::PluginKind::Unspecified,
            bundled("retention-time")?,
        ))
        .await?;
    plugins
        .unload_plugin(proto::UnloadPluginRequest {
            name: "my-codec".into(),
        })
        .await?;
    server.stop().await?;

    let server = InProcess::start(plugin_broker_config(&data), test_config()).await?;
    let mut plugins = PluginsClient::new(server.channel().await?);
    let kept = plugins
        .describe_plugin(proto::DescribePluginRequest {
            name: "my-retention".into(),
        })
        .await?
        .into_inner()
        .plugin
        .context("plugin")?;
    ensure!(kept.kind == proto::PluginKind::Retention as i32 && !kept.builtin);
    let (code, _) = status_code(
        plugins
            .describe_plugin(proto::DescribePluginRequest {
                name: "my-codec".into(),
            })
            .await,
    )?;
    ensure!(code == Code::NotFound, "{code:?}");
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_subscriptions_and_long_polls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "open", 1).await?;
    let (mut stream, poll) = subscribe_and_poll(&mut c, "open").await?;
    // Shutdown completes (drained, broker closed) although both calls were waiting.
    server.stop().await?;
    let end = guarded("subscription end", stream.message()).await?;
    ensure!(
        matches!(&end, Err(s) if s.code() == Code::Unavailable) || matches!(end, Ok(None)),
        "{end:?}"
    );
    let polled = guarded("long poll end", poll).await??;
    ensure!(
        polled
            .map(|r| r.into_inner().records.is_empty())
            .unwrap_or(true)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_uses_record_times() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path(), test_config()).await?;
    let mut c = clients(&server).await?;
    create(&mut c, "timed", 1).await?;
    // Two batches: [1000, 2000] and [3000].
    let at = |ts: i64| proto::Record {
        timestamp_ms: Some(ts),
        ..record(None, Some(b"x"))
    };
    c.records
        .produce(produce_req("timed", Some(0), vec![at(1000), at(2000)]))
        .await?;
    c.records
        .produce(produce_req("timed", Some(0), vec![at(3000)]))
        .await?;
    let lookup = |ts: i64| proto::ListOffsetsRequest {
        topic: "timed".into(),
        partitions: vec![0],
        spec: Some(proto::OffsetSpec {
            spec: Some(Spec::TimestampMs(ts)),
        }),
    };
    for (ts, offset, found) in [
        (0, 0, 1000),
        (1500, 1, 2000),
        (2000, 1, 2000),
        (2500, 2, 3000),
    ] {
        let r = c
            .records
            .list_offsets(lookup(ts))
            .await?
            .into_inner()
            .offsets;
        ensure!(
            r.len() == 1 && r[0].offset == offset && r[0].timestamp_ms == found,
            "timestamp {ts}: {r:?}"
        );
    }
    let past = c
        .records
        .list_offsets(lookup(4000))
        .await?
        .into_inner()
        .offsets;
    ensure!(
        past[0].offset == 3 && past[0].timestamp_ms == -1,
        "{past:?}"
    );
    Ok(server.stop().await?)
}
