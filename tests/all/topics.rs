//! Topic administration end to end over gRPC, against a real server on 127.0.0.1:0 with the
//! real plugin host and the bundled plugins.
//!
//! Guards: a topic configuration that names a plugin which is not loaded, or one of the wrong
//! kind, is refused at create and at alter with INVALID_ARGUMENT and the list of loaded plugins
//! of that kind; Kafka's codec names `lz4` and `zstd` really compress (with the bundled codec
//! plugins), `gzip` is refused instead of silently storing uncompressed; a plugin that a topic
//! names, through an alias too, cannot be unloaded; a 1024-partition topic is created in one
//! call and serves produce and fetch on its partitions, before and after a restart; a batch
//! that passes its CRC but does not decode is DATA_LOSS for ListOffsets and Fetch, never a
//! silent answer.

use crate::policies::{self, Clients, bundled, config};
use anyhow::{Context, Result, ensure};
use distlog_server::proto;
use std::collections::HashMap;
use tonic::Code;

/// The status of a call that must fail.
fn refused<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
) -> Result<tonic::Status> {
    match r {
        Ok(ok) => anyhow::bail!("expected an error, got {ok:?}"),
        Err(status) => Ok(status),
    }
}

/// Calls whose status the tests look at, on the shared harness's clients.
impl Clients {
    async fn try_create(
        &mut self,
        name: &str,
        partitions: u32,
        pairs: &[(&str, &str)],
    ) -> Result<tonic::Response<proto::CreateTopicResponse>, tonic::Status> {
        self.topics
            .create_topic(proto::CreateTopicRequest {
                name: name.into(),
                partitions,
                config: config(pairs),
            })
            .await
    }

    async fn try_alter(
        &mut self,
        name: &str,
        pairs: &[(&str, &str)],
    ) -> Result<tonic::Response<proto::AlterTopicConfigResponse>, tonic::Status> {
        self.topics
            .alter_topic_config(proto::AlterTopicConfigRequest {
                name: name.into(),
                set: config(pairs),
                reset: vec![],
                validate_only: false,
            })
            .await
    }

    async fn describe_topic(&mut self, topic: &str) -> Result<proto::TopicDescription> {
        self.topics
            .describe_topic(proto::DescribeTopicRequest { name: topic.into() })
            .await?
            .into_inner()
            .topic
            .context("no topic described")
    }

    async fn produce_to(
        &mut self,
        topic: &str,
        partition: u32,
        records: Vec<proto::Record>,
    ) -> Result<()> {
        self.records
            .produce(proto::ProduceRequest {
                topic: topic.into(),
                partition: Some(partition),
                records,
                sequence: 0,
            })
            .await?;
        Ok(())
    }

    async fn fetch_from(
        &mut self,
        topic: &str,
        partition: u32,
        offset: i64,
        raw: bool,
    ) -> Result<proto::FetchResponse, tonic::Status> {
        Ok(self
            .records
            .fetch(proto::FetchRequest {
                topic: topic.into(),
                partition,
                offset,
                max_bytes: 0,
                max_wait_ms: 0,
                format: if raw {
                    proto::BatchFormat::Raw as i32
                } else {
                    proto::BatchFormat::Decoded as i32
                },
            })
            .await?
            .into_inner())
    }

    async fn unload(
        &mut self,
        name: &str,
    ) -> Result<tonic::Response<proto::UnloadPluginResponse>, tonic::Status> {
        self.plugins
            .unload_plugin(proto::UnloadPluginRequest { name: name.into() })
            .await
    }
}

/// Compressible JSON events, keyed.
fn events(count: usize) -> Vec<proto::Record> {
    (0..count)
        .map(|i| proto::Record {
            key: Some(format!("user-{}", i % 7).into_bytes()),
            value: Some(
                format!(
                    r#"{{"id":"user-{}","event":"page_view","path":"/products/{}/details","ua":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
                    i % 7,
                    i % 5
                )
                .into_bytes(),
            ),
            headers: vec![],
            timestamp_ms: Some(1_700_000_000_000 + i as i64),
        })
        .collect()
}

fn assert_invalid(status: &tonic::Status, needles: &[&str]) -> Result<()> {
    ensure!(
        status.code() == Code::InvalidArgument,
        "{:?}: {}",
        status.code(),
        status.message()
    );
    for n in needles {
        ensure!(
            status.message().contains(n),
            "{n:?} not in {:?}",
            status.message()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_names_are_checked_at_create_and_alter() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    // A retention plugin under a name that could pass for anything.
    c.plugins
        .load_plugin(proto::LoadPluginRequest {
            name: "keep-newest".into(),
            kind: proto::PluginKind::Retention as i32,
            component: bundled("retention-segments.wasm")?,
            params: Default::default(),
            ..Default::default()
        })
        .await?;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "compression",
            "gzip",
            &[
                "gzip",
                "no bundled implementation",
                "codec-lz4",
                "codec-zstd",
            ],
        ),
        (
            "compression",
            "keep-newest",
            &[
                "keep-newest",
                "is a retention plugin",
                "codec-lz4, codec-zstd",
            ],
        ),
        (
            "retention.policy",
            "nope",
            &["nope", "keep-newest", "retention-size", "retention-time"],
        ),
        (
            "compaction.key",
            "missing",
            &["missing", "key-json-field", "key-record-key"],
        ),
        ("retention.policy", "codec-lz4", &["is a codec plugin"]),
    ];
    for (key, value, needles) in cases {
        let status = refused(c.try_create("refused", 1, &[(key, value)]).await)?;
        assert_invalid(&status, needles).with_context(|| format!("create {key}={value}"))?;
    }
    let listed = c.topics.list_topics(proto::ListTopicsRequest {}).await?;
    ensure!(
        listed.into_inner().topics.is_empty(),
        "a refused create leaves no topic"
    );

    // The same values are refused by an alter, which then changes nothing.
    c.try_create("t", 1, &[("compression", "lz4"), ("retention.ms", "1000")])
        .await?;
    for (key, value, needles) in cases {
        let status = refused(
            c.try_alter("t", &[(key, value), ("retention.ms", "5")])
                .await,
        )?;
        assert_invalid(&status, needles).with_context(|| format!("alter {key}={value}"))?;
    }
    let described = c.describe_topic("t").await?;
    ensure!(described.config.get("compression").map(String::as_str) == Some("lz4"));
    ensure!(described.config.get("retention.ms").map(String::as_str) == Some("1000"));

    // What a Kafka user writes is accepted, and so are the loaded plugins of the right kind.
    for (key, value) in [
        ("compression", "zstd"),
        ("compression", "uncompressed"),
        ("compression", "none"),
        ("compression", "codec-lz4"),
        ("retention.policy", "keep-newest"),
        ("retention.policy", "default"),
        ("compaction.key", "key-json-field"),
        ("compaction.key", "key"),
    ] {
        c.try_alter("t", &[(key, value)])
            .await
            .with_context(|| format!("alter {key}={value}"))?;
    }
    // A plugin loaded under a name the configuration reserves is refused.
    let status = refused(
        c.plugins
            .load_plugin(proto::LoadPluginRequest {
                name: "lz4".into(),
                kind: proto::PluginKind::Codec as i32,
                component: bundled("codec-rle.wasm")?,
                params: Default::default(),
                ..Default::default()
            })
            .await,
    )?;
    ensure!(
        status.code() == Code::InvalidArgument && status.message().contains("reserved"),
        "{status:?}"
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_codec_names_compress_with_the_bundled_codecs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    let records = events(500);
    let mut sizes = HashMap::new();
    for (topic, codec, stored_as) in [
        ("as-lz4", "lz4", "codec-lz4"),
        ("as-zstd", "zstd", "codec-zstd"),
        ("as-none", "uncompressed", ""),
    ] {
        c.try_create(topic, 1, &[("compression", codec)]).await?;
        c.produce_to(topic, 0, records.clone()).await?;
        let raw = c.fetch_from(topic, 0, 0, true).await?;
        ensure!(raw.batches.len() == 1, "{topic}: {:?}", raw.batches.len());
        ensure!(
            raw.batches[0].codec_name == stored_as,
            "{topic} stored with {:?}, not {stored_as:?}",
            raw.batches[0].codec_name
        );
        // And it decodes back to exactly what was sent.
        let fetched = c.fetch_from(topic, 0, 0, false).await?;
        ensure!(fetched.records.len() == records.len());
        for (got, sent) in fetched.records.iter().zip(&records) {
            ensure!(got.value.as_deref() == sent.value.as_deref(), "{topic}");
        }
        let size = c.describe_topic(topic).await?.partitions[0].size_bytes;
        sizes.insert(topic, size);
    }
    ensure!(
        sizes["as-lz4"] < sizes["as-none"] && sizes["as-zstd"] < sizes["as-none"],
        "compressed partitions are smaller: {sizes:?}"
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_a_topic_names_cannot_be_unloaded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    // Named through its Kafka alias only.
    c.try_create("kafkaish", 1, &[("compression", "lz4")])
        .await?;
    let status = refused(c.unload("codec-lz4").await)?;
    ensure!(
        status.code() == Code::FailedPrecondition && status.message().contains("kafkaish"),
        "{status:?}"
    );
    // Once no topic names it (and no stored batch pins it), it can go; then the alias is
    // refused, naming what it stands for.
    c.try_alter("kafkaish", &[("compression", "none")]).await?;
    c.unload("codec-lz4").await?;
    let status = refused(c.try_create("later", 1, &[("compression", "lz4")]).await)?;
    assert_invalid(&status, &["codec-lz4", "not loaded", "codec-zstd"])?;
    let status = refused(c.try_alter("kafkaish", &[("compression", "lz4")]).await)?;
    assert_invalid(&status, &["codec-lz4", "not loaded"])?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1024_partition_topic_serves_every_partition_across_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    let created = c.try_create("wide", 1024, &[]).await?.into_inner();
    ensure!(created.topic.map(|t| t.partitions.len()) == Some(1024));
    let probes = [0_u32, 1, 511, 1022, 1023];
    for &p in &probes {
        c.produce_to("wide", p, events(3)).await?;
    }
    let check = |r: proto::FetchResponse, p: u32| -> Result<()> {
        ensure!(
            r.records.len() == 3 && r.log_end_offset == 3,
            "partition {p}: {} records, end {}",
            r.records.len(),
            r.log_end_offset
        );
        Ok(())
    };
    for &p in &probes {
        check(c.fetch_from("wide", p, 0, false).await?, p)?;
    }
    let empty = c.fetch_from("wide", 700, 0, false).await?;
    ensure!(empty.records.is_empty() && empty.log_end_offset == 0);
    server.stop().await?;

    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    ensure!(c.describe_topic("wide").await?.partitions.len() == 1024);
    for &p in &probes {
        check(c.fetch_from("wide", p, 0, false).await?, p)?;
    }
    c.produce_to("wide", 700, events(1)).await?;
    ensure!(c.fetch_from("wide", 700, 0, false).await?.records.len() == 1);
    c.topics
        .delete_topic(proto::DeleteTopicRequest {
            name: "wide".into(),
        })
        .await?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_batch_is_data_loss_for_list_offsets_and_fetch() -> Result<()> {
    use distlog_storage::batch::{BatchBuilder, Compression, Record, encode_batch};
    let dir = tempfile::tempdir()?;
    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    c.try_create("damaged", 1, &[]).await?;
    c.produce_to("damaged", 0, events(2)).await?;
    server.stop().await?;

    // A batch whose CRC is right but whose records do not decode (a writer bug, or damage
    // before the CRC was computed): appended with the storage crate directly.
    let mut builder = BatchBuilder::with_capacity(256);
    for i in 0..2 {
        builder.push(&Record {
            timestamp: 1_800_000_000_000 + i,
            key: Some(b"k".to_vec()),
            value: Some(b"a value long enough to be damaged".to_vec()),
            headers: vec![],
        })?;
    }
    let (meta, payload) = builder.payload()?;
    let garbage = vec![0xff; payload.len()];
    let mut batch = encode_batch(&meta, Compression::None, &garbage)?;
    let part = dir.path().join("topics/damaged/0");
    let log = distlog_storage::Log::open_dir(&part, distlog_storage::LogConfig::default())?;
    log.append(&mut batch)?;
    log.close()?;
    drop(log);

    let server = policies::start(dir.path()).await?;
    let mut c = policies::clients(&server).await?;
    let listed = c
        .records
        .list_offsets(proto::ListOffsetsRequest {
            topic: "damaged".into(),
            partitions: vec![0],
            spec: Some(proto::OffsetSpec {
                spec: Some(proto::offset_spec::Spec::TimestampMs(1_800_000_000_000)),
            }),
        })
        .await;
    let status = refused(listed)?;
    ensure!(status.code() == Code::DataLoss, "{status:?}");
    let status = c
        .fetch_from("damaged", 0, 2, false)
        .await
        .err()
        .context("fetch")?;
    ensure!(status.code() == Code::DataLoss, "{status:?}");
    // The intact records before it are still found by timestamp.
    let listed = c
        .records
        .list_offsets(proto::ListOffsetsRequest {
            topic: "damaged".into(),
            partitions: vec![0],
            spec: Some(proto::OffsetSpec {
                spec: Some(proto::offset_spec::Spec::TimestampMs(1_700_000_000_001)),
            }),
        })
        .await?
        .into_inner();
    ensure!(listed.offsets[0].offset == 1, "{listed:?}");
    Ok(server.stop().await?)
}
