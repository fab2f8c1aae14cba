//! Plugins on the data path, end to end over gRPC against a real server on 127.0.0.1:0 with
//! the real plugin host and the bundled components from `plugins/dist/`.
//!
//! Guards: every batch fetches byte-identical records after its codec is hot-reloaded and
//! after the topic switches codecs (each batch decodes with the exact version that wrote it,
//! which raw fetch reports); compressible data is stored smaller; a user retention policy in
//! Python deletes exactly the oldest segments it should, and hot-reloading it changes the next
//! pass; a compacted topic (JSON-field keys, compressed batches) keeps exactly the latest value
//! per key at unchanged offsets and drops tombstones after `delete.retention.ms`; a clean
//! interrupted at any step of the segment swap, then a crash and a restart, loses and
//! duplicates nothing; codecs that trap or never return cost no acknowledged record.
//!
//! Passes are triggered deterministically (`run_retention_once`, `run_compaction_once`,
//! `roll_partition` on the in-process broker): the maintenance thread is disabled.

use anyhow::{Context, Result, ensure};
use distlog_broker::PluginKind;
use distlog_harness::InProcess;
use distlog_plugin_host::{PluginDigest, PluginSpec};
use distlog_server::proto::plugins_client::PluginsClient;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use distlog_server::{Broker, BrokerConfig, ServerConfig, proto};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;

/// Upper bound on any single await, so a regression fails instead of hanging the suite.
const GUARD: Duration = Duration::from_secs(120);

/// A server over `data` with the real plugin host (compiled plugins cached across runs) and
/// no maintenance thread, so passes run only when a test triggers them on the broker.
pub(crate) async fn start(data: &Path) -> Result<InProcess> {
    Ok(InProcess::start(broker_config(data), ServerConfig::default()).await?)
}

fn broker_config(data: &Path) -> BrokerConfig {
    let mut c = BrokerConfig::new(data);
    c.plugins.cache_dir =
        Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("policies-plugin-cache"));
    c.retention_check_interval_ms = 0;
    c
}

pub(crate) async fn clients(server: &InProcess) -> Result<Clients> {
    let ch = server.channel().await?;
    Ok(Clients {
        topics: TopicsClient::new(ch.clone()),
        records: RecordsClient::new(ch.clone()),
        plugins: PluginsClient::new(ch),
    })
}

pub(crate) struct Clients {
    pub(crate) topics: TopicsClient<Channel>,
    pub(crate) records: RecordsClient<Channel>,
    pub(crate) plugins: PluginsClient<Channel>,
}

pub(crate) fn bundled(path: &str) -> Result<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(path);
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

pub(crate) fn config(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Clients {
    async fn create(&mut self, name: &str, pairs: &[(&str, &str)]) -> Result<()> {
        self.topics
            .create_topic(proto::CreateTopicRequest {
                name: name.into(),
                partitions: 1,
                config: config(pairs),
            })
            .await?;
        Ok(())
    }

    async fn alter(&mut self, name: &str, pairs: &[(&str, &str)]) -> Result<()> {
        self.topics
            .alter_topic_config(proto::AlterTopicConfigRequest {
                name: name.into(),
                set: config(pairs),
                reset: vec![],
                validate_only: false,
            })
            .await?;
        Ok(())
    }

    async fn produce(&mut self, topic: &str, records: Vec<proto::Record>) -> Result<()> {
        self.records
            .produce(proto::ProduceRequest {
                topic: topic.into(),
                partition: Some(0),
                records,
                sequence: 0,
            })
            .await?;
        Ok(())
    }

    async fn fetch(
        &mut self,
        topic: &str,
        offset: i64,
        raw: bool,
    ) -> Result<proto::FetchResponse, tonic::Status> {
        Ok(self
            .records
            .fetch(proto::FetchRequest {
                topic: topic.into(),
                partition: 0,
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

    /// Every record from `from` to the end, following `next_offset`.
    async fn fetch_all(&mut self, topic: &str, from: i64) -> Result<Vec<proto::StoredRecord>> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let r = self.fetch(topic, offset, false).await?;
            if r.records.is_empty() {
                return Ok(out);
            }
            offset = r.next_offset;
            out.extend(r.records);
        }
    }

    /// Every stored batch from `from` to the end.
    async fn fetch_raw_all(&mut self, topic: &str, from: i64) -> Result<Vec<proto::StoredBatch>> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let r = self.fetch(topic, offset, true).await?;
            ensure!(r.records.is_empty(), "a raw fetch returns batches only");
            if r.batches.is_empty() {
                return Ok(out);
            }
            offset = r.next_offset;
            out.extend(r.batches);
        }
    }

    async fn describe(&mut self, topic: &str) -> Result<proto::PartitionDescription> {
        self.topics
            .describe_topic(proto::DescribeTopicRequest { name: topic.into() })
            .await?
            .into_inner()
            .topic
            .and_then(|t| t.partitions.into_iter().next())
            .context("no partition described")
    }
}

fn rec(key: Option<&str>, value: Option<&str>, ts: i64) -> proto::Record {
    proto::Record {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        headers: vec![proto::Header {
            key: "h".into(),
            value: vec![ts.to_le_bytes()[0]],
        }],
        timestamp_ms: Some(ts),
    }
}

/// Realistic, compressible JSON events.
fn events(start: usize, count: usize) -> Vec<proto::Record> {
    (start..start + count)
        .map(|i| {
            let value = format!(
                r#"{{"id":"user-{}","event":"page_view","path":"/products/{}/details","ua":"Mozilla/5.0 (X11; Linux x86_64)","ts":{}}}"#,
                i % 17,
                i % 5,
                1_700_000_000_000_i64 + i as i64
            );
            rec(
                Some(&format!("user-{}", i % 17)),
                Some(&value),
                1_700_000_000_000 + i as i64,
            )
        })
        .collect()
}

/// The record a client sent, as the broker must return it at `offset`.
fn stored(offset: i64, r: &proto::Record) -> proto::StoredRecord {
    proto::StoredRecord {
        offset,
        timestamp_ms: r.timestamp_ms.unwrap_or(0),
        key: r.key.clone().map(Into::into),
        value: r.value.clone().map(Into::into),
        headers: r.headers.clone(),
    }
}

fn expected(records: &[proto::Record]) -> Vec<proto::StoredRecord> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| stored(i as i64, r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_reload_and_switch_keep_every_batch_byte_identical() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    c.create("zipped", &[("compression", "codec-lz4")]).await?;
    c.create("plain", &[]).await?;

    let (a, b, d) = (events(0, 200), events(200, 200), events(400, 200));
    c.produce("zipped", a.clone()).await?;
    // A new version under the same name mid-stream: a really different component.
    let zstd = bundled("codec-zstd.wasm")?;
    c.plugins
        .reload_plugin(proto::ReloadPluginRequest {
            name: "codec-lz4".into(),
            component: zstd.clone(),
        })
        .await?;
    c.produce("zipped", b.clone()).await?;
    c.alter("zipped", &[("compression", "codec-zstd")]).await?;
    c.produce("zipped", d.clone()).await?;
    let all: Vec<proto::Record> = [a.clone(), b.clone(), d.clone()].concat();
    c.produce("plain", all.clone()).await?;

    let want = expected(&all);
    ensure!(
        c.fetch_all("zipped", 0).await? == want,
        "decoded records differ"
    );
    ensure!(
        c.fetch_all("plain", 0).await? == want,
        "plain records differ"
    );

    // Each batch names the exact version that wrote it.
    let lz4 = PluginDigest::of(&bundled("codec-lz4.wasm")?).to_hex();
    let zstd = PluginDigest::of(&zstd).to_hex();
    let raw = c.fetch_raw_all("zipped", 0).await?;
    let ids: Vec<(i64, &str, &str)> = raw
        .iter()
        .map(|b| {
            (
                b.base_offset,
                b.codec_name.as_str(),
                b.codec_digest.as_str(),
            )
        })
        .collect();
    ensure!(
        ids == vec![
            (0, "codec-lz4", lz4.as_str()),
            (200, "codec-lz4", zstd.as_str()),
            (400, "codec-zstd", zstd.as_str()),
        ],
        "codec identities: {ids:?}"
    );
    let plain_raw = c.fetch_raw_all("plain", 0).await?;
    ensure!(
        plain_raw
            .iter()
            .all(|b| b.codec_name.is_empty() && b.codec_digest.is_empty())
    );

    // Really smaller on disk.
    let zipped_size = c.describe("zipped").await?.size_bytes;
    let plain_size = c.describe("plain").await?.size_bytes;
    ensure!(
        zipped_size * 3 < plain_size,
        "compressed {zipped_size} bytes vs plain {plain_size} bytes"
    );

    // Stored data pins the versions it needs.
    let unload = c
        .plugins
        .unload_plugin(proto::UnloadPluginRequest {
            name: "codec-zstd".into(),
        })
        .await;
    ensure!(
        matches!(&unload, Err(s) if s.code() == Code::FailedPrecondition),
        "unload of a pinned codec: {unload:?}"
    );

    // And everything still decodes after a restart.
    server.stop().await?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    ensure!(
        c.fetch_all("zipped", 0).await? == want,
        "after restart, decoded records differ"
    );
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_user_codec_versions_still_decode_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    c.plugins
        .load_plugin(proto::LoadPluginRequest {
            name: "mine".into(),
            kind: proto::PluginKind::Codec as i32,
            component: bundled("codec-rle.wasm")?,
            params: Default::default(),
            ..Default::default()
        })
        .await?;
    c.create("runs", &[("compression", "mine")]).await?;
    let first = vec![rec(Some("k"), Some(&"a".repeat(4000)), 1)];
    c.produce("runs", first.clone()).await?;
    // A new version of the user's codec: the previous one survives only as a kept copy.
    c.plugins
        .reload_plugin(proto::ReloadPluginRequest {
            name: "mine".into(),
            component: bundled("codec-lz4.wasm")?,
        })
        .await?;
    let second = vec![rec(Some("k"), Some(&"ab".repeat(2000)), 2)];
    c.produce("runs", second.clone()).await?;
    let raw = c.fetch_raw_all("runs", 0).await?;
    ensure!(
        raw.len() == 2
            && raw[0].codec_digest != raw[1].codec_digest
            && !raw[1].codec_digest.is_empty(),
        "{raw:?}"
    );
    server.stop().await?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    let want = expected(&[first, second].concat());
    ensure!(c.fetch_all("runs", 0).await? == want);
    // The name still serves the newest version.
    let info = c
        .plugins
        .describe_plugin(proto::DescribePluginRequest {
            name: "mine".into(),
        })
        .await?
        .into_inner();
    let newest = PluginDigest::of(&bundled("codec-lz4.wasm")?).to_hex();
    let active: Vec<String> = info
        .plugin
        .iter()
        .flat_map(|p| &p.versions)
        .filter(|v| v.active)
        .map(|v| v.digest.clone())
        .collect();
    ensure!(active == vec![newest], "{info:?}");
    // Pinned while stored batches reference it (even once no topic names it); free once the
    // topic is deleted.
    c.alter("runs", &[("compression", "none")]).await?;
    let refused = c
        .plugins
        .unload_plugin(proto::UnloadPluginRequest {
            name: "mine".into(),
        })
        .await;
    ensure!(
        matches!(&refused, Err(s) if s.code() == Code::FailedPrecondition),
        "{refused:?}"
    );
    c.topics
        .delete_topic(proto::DeleteTopicRequest {
            name: "runs".into(),
        })
        .await?;
    c.plugins
        .unload_plugin(proto::UnloadPluginRequest {
            name: "mine".into(),
        })
        .await?;
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_codec_version_is_a_precise_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    c.plugins
        .load_plugin(proto::LoadPluginRequest {
            name: "rle".into(),
            kind: proto::PluginKind::Codec as i32,
            component: bundled("codec-rle.wasm")?,
            params: Default::default(),
            ..Default::default()
        })
        .await?;
    c.create("runs", &[("compression", "rle")]).await?;
    let value = "a".repeat(4000);
    c.produce("runs", vec![rec(Some("k"), Some(&value), 1)])
        .await?;
    let raw = c.fetch_raw_all("runs", 0).await?;
    ensure!(raw.len() == 1 && raw[0].codec_name == "rle", "{raw:?}");
    server.stop().await?;

    // The component and the broker's kept copy disappear: the batch can no longer be decoded,
    // and says so.
    std::fs::remove_file(dir.path().join("plugins/rle.wasm"))?;
    std::fs::remove_dir_all(dir.path().join("plugins/versions"))?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    let err = c
        .fetch("runs", 0, false)
        .await
        .err()
        .context("fetch of a batch whose codec is gone succeeded")?;
    ensure!(
        err.code() == Code::FailedPrecondition && err.message().contains("rle"),
        "{err:?}"
    );
    // Raw mode still serves it, with its identity.
    let raw = c.fetch_raw_all("runs", 0).await?;
    ensure!(raw.len() == 1 && raw[0].codec_name == "rle");
    Ok(server.stop().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_retention_policy_and_its_hot_reload() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    c.plugins
        .load_plugin(proto::LoadPluginRequest {
            name: "keep-newest".into(),
            kind: proto::PluginKind::Retention as i32,
            component: bundled("retention-segments.wasm")?,
            params: Default::default(),
            ..Default::default()
        })
        .await?;
    c.create(
        "logs",
        &[
            ("retention.policy", "keep-newest"),
            ("retention.policy.params.max.segments", "2"),
        ],
    )
    .await?;
    // Five closed segments of one record each (old timestamps), and an empty active one.
    let mut sent = Vec::new();
    for i in 0..5 {
        let r = rec(Some("k"), Some(&format!("line {i}")), 1_000 + i);
        sent.push(r.clone());
        c.produce("logs", vec![r]).await?;
        ensure!(
            server
                .with_broker(|b| b.roll_partition("logs", 0))
                .await??
        );
    }
    let summary = server.with_broker(|b| b.run_retention_once()).await?;
    ensure!(summary.segments_deleted == 3, "{summary:?}");
    let p = c.describe("logs").await?;
    let bases: Vec<i64> = p.segments.iter().map(|s| s.base_offset).collect();
    ensure!(p.log_start_offset == 3 && bases == vec![3, 4, 5], "{p:?}");
    let all = expected(&sent);
    ensure!(c.fetch_all("logs", 3).await?[..] == all[3..]);
    let gone = c.fetch("logs", 0, false).await;
    ensure!(
        matches!(&gone, Err(s) if s.code() == Code::OutOfRange),
        "{gone:?}"
    );
    // A second pass deletes nothing more.
    let again = server.with_broker(|b| b.run_retention_once()).await?;
    ensure!(again.segments_deleted == 0, "{again:?}");

    // A new version of the policy (the time policy's component: retention.ms defaults to 7
    // days and these records are from 1970) takes effect on the next pass.
    c.plugins
        .reload_plugin(proto::ReloadPluginRequest {
            name: "keep-newest".into(),
            component: bundled("retention-time.wasm")?,
        })
        .await?;
    let summary = server.with_broker(|b| b.run_retention_once()).await?;
    ensure!(summary.segments_deleted == 2, "{summary:?}");
    let p = c.describe("logs").await?;
    ensure!(p.log_start_offset == 5 && p.segments.len() == 1, "{p:?}");
    ensure!(c.fetch_all("logs", 5).await?.is_empty());
    // The topic keeps accepting and serving records.
    c.produce("logs", vec![rec(None, Some("after"), 2_000)])
        .await?;
    ensure!(c.fetch_all("logs", 5).await?.len() == 1);
    Ok(server.stop().await?)
}

/// JSON values padded so that lz4 shrinks every batch: the cleaner must decompress them.
fn user(id: &str, version: u32) -> String {
    format!(
        r#"{{"id":"{id}","version":{version},"pad":"{}"}}"#,
        "x".repeat(200)
    )
}

/// Batches of a compacted topic: four closed segments, then an empty active one.
fn compacted_batches() -> Vec<Vec<proto::Record>> {
    vec![
        vec![
            rec(Some("a"), Some(&user("a", 1)), 10),
            rec(Some("b"), Some(&user("b", 1)), 11),
            rec(Some("c"), Some(&user("c", 1)), 12),
        ],
        vec![
            rec(Some("a"), Some(&user("a", 2)), 13),
            // Tombstone: keyed by its record key.
            rec(Some("b"), None, 14),
            // Keyed by the JSON field, not the (absent) record key.
            rec(None, Some(&user("c", 2)), 15),
            // Not JSON: no key, always kept.
            rec(Some("x"), Some("not json"), 16),
        ],
        vec![rec(Some("a"), Some(&user("a", 3)), 17)],
    ]
}

const COMPACTED: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("compaction.key", "key-json-field"),
    ("compression", "codec-lz4"),
    ("delete.retention.ms", "100000000000000"),
    ("min.cleanable.dirty.ratio", "0.01"),
];

async fn fill_compacted(server: &InProcess, c: &mut Clients) -> Result<Vec<proto::Record>> {
    c.create("users", COMPACTED).await?;
    let mut sent = Vec::new();
    for batch in compacted_batches() {
        sent.extend(batch.clone());
        c.produce("users", batch).await?;
        ensure!(
            server
                .with_broker(|b| b.roll_partition("users", 0))
                .await??
        );
    }
    let raw = c.fetch_raw_all("users", 0).await?;
    ensure!(
        raw.iter().all(|b| b.codec_name == "codec-lz4"),
        "batches are stored compressed"
    );
    Ok(sent)
}

fn pick(sent: &[proto::Record], offsets: &[i64]) -> Vec<proto::StoredRecord> {
    offsets
        .iter()
        .map(|&o| stored(o, &sent[o as usize]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_latest_per_json_key_then_drops_tombstones() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    let mut sent = fill_compacted(&server, &mut c).await?;

    let summary = server.with_broker(|b| b.run_compaction_once()).await?;
    ensure!(
        summary.partitions_cleaned == 1 && summary.errors == 0,
        "{summary:?}"
    );
    // Latest a (7), the b tombstone (4), latest c (5), the unkeyed record (6).
    ensure!(c.fetch_all("users", 0).await? == pick(&sent, &[4, 5, 6, 7]));
    let p = c.describe("users").await?;
    ensure!(p.log_end_offset == 7 + 1, "{p:?}");

    // Clean and below the dirty ratio: nothing to do.
    let idle = server.with_broker(|b| b.run_compaction_once()).await?;
    ensure!(idle.partitions_cleaned == 0, "{idle:?}");

    // Once the delete retention is over, the next pass drops the tombstone.
    c.alter("users", &[("delete.retention.ms", "0")]).await?;
    let d = rec(Some("d"), Some(&user("d", 1)), 18);
    sent.push(d.clone());
    c.produce("users", vec![d]).await?;
    server
        .with_broker(|b| b.roll_partition("users", 0))
        .await??;
    let summary = server.with_broker(|b| b.run_compaction_once()).await?;
    ensure!(summary.partitions_cleaned == 1, "{summary:?}");
    ensure!(c.fetch_all("users", 0).await? == pick(&sent, &[5, 6, 7, 8]));

    // Survives a restart unchanged.
    server.stop().await?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    ensure!(c.fetch_all("users", 0).await? == pick(&sent, &[5, 6, 7, 8]));
    Ok(server.stop().await?)
}

/// A key extractor's parameters are given when it is loaded: one component serves several
/// topics under several names with different parameters, and the parameters survive a
/// restart. Per-topic `compaction.key.params.*` keys are refused with a pointer to that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_extractor_loaded_with_params_compacts_on_that_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    let load = |name: &str, params: &[(&str, &str)]| proto::LoadPluginRequest {
        name: name.into(),
        kind: proto::PluginKind::Compaction as i32,
        component: bundled("key-json-field.wasm").expect("bundled key-json-field"),
        params: config(params),
        ..Default::default()
    };
    // Without its `field` the extractor's `init` fails: the load is refused.
    let refused = c.plugins.load_plugin(load("by-nothing", &[])).await;
    ensure!(
        matches!(&refused, Err(s) if s.code() == Code::InvalidArgument),
        "{refused:?}"
    );
    c.plugins
        .load_plugin(load("by-account", &[("field", "account.id")]))
        .await?;
    let per_topic = c
        .create(
            "orders",
            &[
                ("cleanup.policy", "compact"),
                ("compaction.key.params.field", "account.id"),
            ],
        )
        .await;
    let status = per_topic
        .err()
        .and_then(|e| e.downcast::<tonic::Status>().ok())
        .context("per-topic key extractor params must be refused")?;
    ensure!(
        status.code() == Code::InvalidArgument && status.message().contains("--param"),
        "{status:?}"
    );
    c.create(
        "orders",
        &[
            ("cleanup.policy", "compact"),
            ("compaction.key", "by-account"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await?;
    let order = |account: &str, n: u32| format!(r#"{{"account":{{"id":"{account}"}},"n":{n}}}"#);
    // Record keys are all distinct: only the nested JSON field makes duplicates.
    let sent = vec![
        rec(Some("o1"), Some(&order("acme", 1)), 1),
        rec(Some("o2"), Some(&order("zeta", 1)), 2),
        rec(Some("o3"), Some(&order("acme", 2)), 3),
    ];
    c.produce("orders", sent.clone()).await?;
    server
        .with_broker(|b| b.roll_partition("orders", 0))
        .await??;
    let summary = server.with_broker(|b| b.run_compaction_once()).await?;
    ensure!(summary.partitions_cleaned == 1, "{summary:?}");
    ensure!(c.fetch_all("orders", 0).await? == pick(&sent, &[1, 2]));

    // The parameters come back with the plugin after a restart.
    server.stop().await?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    let more = vec![
        rec(Some("o4"), Some(&order("zeta", 2)), 4),
        rec(Some("o5"), Some(&order("acme", 3)), 5),
    ];
    let mut all = sent.clone();
    all.extend(more.clone());
    c.produce("orders", more).await?;
    server
        .with_broker(|b| b.roll_partition("orders", 0))
        .await??;
    let summary = server.with_broker(|b| b.run_compaction_once()).await?;
    ensure!(summary.partitions_cleaned == 1, "{summary:?}");
    ensure!(c.fetch_all("orders", 0).await? == pick(&all, &[3, 4]));
    Ok(server.stop().await?)
}

fn produce_record(r: &proto::Record) -> distlog_broker::ProduceRecord {
    distlog_broker::ProduceRecord {
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r
            .headers
            .iter()
            .map(|h| distlog_broker::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// Fills the compacted topic, then runs a clean that fails at `point` and "crashes": the
/// broker is dropped without closing (acknowledged batches were fsynced, nothing else is
/// flushed). In-process, so that nothing else holds the broker.
fn interrupted_clean(data: &Path, point: &str) -> Result<Vec<proto::Record>> {
    let broker = Broker::open(broker_config(data))?;
    broker.create_topic(
        "users",
        1,
        COMPACTED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )?;
    let mut sent = Vec::new();
    for batch in compacted_batches() {
        broker.produce("users", Some(0), batch.iter().map(produce_record).collect())?;
        sent.extend(batch);
        ensure!(broker.roll_partition("users", 0)?);
    }
    distlog_storage::failpoint::set(point, 0);
    let failed = broker.compact_partition("users", 0);
    distlog_storage::failpoint::clear();
    ensure!(
        failed.is_err(),
        "{point}: the pass did not fail: {failed:?}"
    );
    drop(broker);
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_interrupted_at_every_swap_step_then_crash_loses_nothing() -> Result<()> {
    for point in [
        "compaction::before_swap",
        "compaction::commit",
        "compaction::swap",
        "compaction::rename_log",
        "compaction::swapped",
    ] {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_owned();
        let sent = tokio::task::spawn_blocking(move || interrupted_clean(&data, point)).await??;
        let server = start(dir.path()).await?;
        let mut c = clients(&server).await?;
        let got = c.fetch_all("users", 0).await?;
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        ensure!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{point}: duplicate or disorder: {offsets:?}"
        );
        for r in &got {
            ensure!(
                *r == stored(r.offset, &sent[r.offset as usize]),
                "{point}: record {} changed",
                r.offset
            );
        }
        for must in [4, 5, 6, 7] {
            ensure!(offsets.contains(&must), "{point}: lost offset {must}");
        }
        // A clean pass now completes the job.
        server
            .with_broker(|b| b.compact_partition("users", 0))
            .await??;
        ensure!(
            c.fetch_all("users", 0).await? == pick(&sent, &[4, 5, 6, 7]),
            "{point}: after a complete pass"
        );
        server.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codecs_that_trap_or_hang_lose_no_acknowledged_record() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    // The self-test would refuse them; load them as a careless operator's tool might.
    for (name, file) in [
        ("trapping", "fixtures/trap.wasm"),
        ("hanging", "fixtures/loop-forever.wasm"),
    ] {
        let bytes = bundled(file)?;
        server
            .with_broker(move |b| {
                let host = b.plugin_host().context("plugins enabled")?;
                host.load(
                    PluginSpec::new(name)
                        .kind(PluginKind::Codec)
                        .without_self_test(),
                    bytes,
                )
                .map_err(anyhow::Error::from)
            })
            .await??;
    }
    let mut c = clients(&server).await?;
    c.create("faulty", &[("compression", "trapping")]).await?;
    let (a, b) = (events(0, 50), events(50, 50));
    c.produce("faulty", a.clone()).await?;
    c.alter("faulty", &[("compression", "hanging")]).await?;
    c.produce("faulty", b.clone()).await?;
    // A codec that is not loaded is refused up front (the topic keeps the hanging one).
    ensure!(
        c.alter("faulty", &[("compression", "no-such-codec")])
            .await
            .is_err(),
        "naming a codec that is not loaded is refused"
    );
    let d = events(100, 10);
    c.produce("faulty", d.clone()).await?;
    let all = [a, b, d].concat();
    ensure!(c.fetch_all("faulty", 0).await? == expected(&all));
    let raw = c.fetch_raw_all("faulty", 0).await?;
    ensure!(
        raw.len() == 3 && raw.iter().all(|b| b.codec_name.is_empty()),
        "stored uncompressed: {raw:?}"
    );
    server.stop().await?;
    // Acknowledged means durable.
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    ensure!(c.fetch_all("faulty", 0).await? == expected(&all));
    Ok(server.stop().await?)
}

/// Opens a subscription on partition 0 of `topic` from `offset` with a reset policy, on a
/// connection of its own: an unread stream fills its connection's HTTP/2 window, which
/// would stall every other call sharing that connection.
async fn subscribe(
    server: &InProcess,
    topic: &str,
    offset: i64,
    reset: proto::OffsetReset,
) -> Result<tonic::Streaming<proto::FetchResponse>> {
    let mut c = clients(server).await?;
    Ok(c.records
        .subscribe(proto::SubscribeRequest {
            topic: topic.into(),
            partition: 0,
            offset,
            max_bytes: 0,
            reset: reset as i32,
        })
        .await?
        .into_inner())
}

/// The offsets a subscription streams until it has seen `until` (inclusive) or ends; the
/// status it ended with, if it did.
async fn offsets_until(
    stream: &mut tonic::Streaming<proto::FetchResponse>,
    until: i64,
) -> Result<(Vec<i64>, Option<tonic::Status>)> {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(GUARD, stream.message())
            .await
            .context("subscription stalled")?;
        match next {
            Ok(Some(r)) => {
                seen.extend(r.records.iter().map(|r| r.offset));
                if seen.last().is_some_and(|&o| o >= until) {
                    return Ok((seen, None));
                }
            }
            Ok(None) => return Ok((seen, None)),
            Err(status) => return Ok((seen, Some(status))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_overtaken_by_retention_reset_or_end_as_asked() -> Result<()> {
    use proto::OffsetReset;
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut c = clients(&server).await?;
    // 1 MiB segments of ten 100 KiB records; retention keeps about the newest 2 MiB.
    c.create(
        "tail",
        &[
            ("segment.bytes", "1048576"),
            ("retention.bytes", "2097152"),
            ("retention.ms", "-1"),
        ],
    )
    .await?;
    let value = "v".repeat(100 << 10);
    let produce_n = |c: &mut Clients, n: usize| {
        let records: Vec<_> = (0..n).map(|i| rec(None, Some(&value), i as i64)).collect();
        let mut records = records.into_iter();
        let mut records_client = c.records.clone();
        async move {
            for r in &mut records {
                records_client
                    .produce(proto::ProduceRequest {
                        topic: "tail".into(),
                        partition: Some(0),
                        records: vec![r],
                        sequence: 0,
                    })
                    .await?;
            }
            anyhow::Ok(())
        }
    };
    produce_n(&mut c, 1).await?;

    // Three subscribers from offset 0 that read nothing yet: the server streams ahead of
    // each until its buffers are full, then waits, far behind the log end.
    let mut none = subscribe(&server, "tail", 0, OffsetReset::None).await?;
    let mut earliest = subscribe(&server, "tail", 0, OffsetReset::Earliest).await?;
    let mut latest = subscribe(&server, "tail", 0, OffsetReset::Latest).await?;
    tokio::time::timeout(GUARD, produce_n(&mut c, 199))
        .await
        .context("produce stalled")??;
    let summary = server.with_broker(|b| b.run_retention_once()).await?;
    ensure!(summary.segments_deleted > 0, "{summary:?}");
    let p = c.describe("tail").await?;
    let (start, end) = (p.log_start_offset, p.log_end_offset);
    ensure!(start > 100 && end == 200, "log [{start}, {end})");

    // Without a reset the stream ends with OUT_OF_RANGE after what it had buffered, which
    // is contiguous from 0 and below the new log start.
    let (seen, ended) = offsets_until(&mut none, end - 1).await?;
    let buffered = seen.len() as i64;
    ensure!(seen == (0..buffered).collect::<Vec<_>>(), "{seen:?}");
    ensure!(
        buffered < start,
        "the subscriber was not overtaken ({buffered} >= {start})"
    );
    let code = ended.as_ref().map(tonic::Status::code);
    ensure!(code == Some(Code::OutOfRange), "{ended:?}");

    // Earliest: the buffered records, then a jump to the log start, then everything to the end.
    let (seen, ended) = offsets_until(&mut earliest, end - 1).await?;
    ensure!(ended.is_none(), "{ended:?}");
    let jump = seen
        .iter()
        .position(|&o| o >= start)
        .context("never reached the log start")?;
    ensure!(seen[..jump] == (0..jump as i64).collect::<Vec<_>>());
    ensure!(seen[jump..] == (start..end).collect::<Vec<_>>(), "{seen:?}");

    // Latest: the buffered records, then only records appended after the reset, none of the
    // retained ones. The reset happens when the subscriber has drained its buffer, at a
    // moment the client cannot observe, so a producer keeps appending until a record
    // arrives past the gap.
    let mut producer = c.records.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let keep_producing = tokio::spawn(async move {
        for i in 0.. {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let r = producer
                .produce(proto::ProduceRequest {
                    topic: "tail".into(),
                    partition: Some(0),
                    records: vec![rec(None, Some("after"), i)],
                    sequence: 0,
                })
                .await;
            if r.is_err() {
                return;
            }
        }
    });
    let (seen, ended) = offsets_until(&mut latest, end).await?;
    // Stopped between requests, not aborted: an aborted request may still land after the
    // log end is read below.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ensure!(ended.is_none(), "{ended:?}");
    let jump = seen
        .iter()
        .position(|&o| o >= start)
        .context("no record after the reset")?;
    ensure!(seen[..jump] == (0..jump as i64).collect::<Vec<_>>());
    ensure!(
        seen[jump] >= end
            && seen[jump..]
                == (seen[jump]..seen[jump] + (seen.len() - jump) as i64).collect::<Vec<_>>(),
        "after the reset: {:?} (retained records start at {start}, end at {end})",
        &seen[jump..]
    );
    keep_producing.await?;
    let end = c.describe("tail").await?.log_end_offset;

    // A new subscription below the log start: refused, or reset at the call.
    let refused = subscribe(&server, "tail", 0, OffsetReset::None).await;
    let code = refused
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<tonic::Status>())
        .map(tonic::Status::code);
    ensure!(code == Some(Code::OutOfRange), "{:?}", refused.err());
    let mut from_start = subscribe(&server, "tail", 0, OffsetReset::Earliest).await?;
    let (seen, _) = offsets_until(&mut from_start, start).await?;
    ensure!(seen.first() == Some(&start), "{seen:?}");
    let mut beyond = subscribe(&server, "tail", 10_000, OffsetReset::Latest).await?;
    produce_n(&mut c, 1).await?;
    let (seen, _) = offsets_until(&mut beyond, end).await?;
    ensure!(seen == [end], "{seen:?}");
    // An unknown reset value is an invalid argument.
    let bad = c
        .records
        .subscribe(proto::SubscribeRequest {
            topic: "tail".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            reset: 7,
        })
        .await;
    ensure!(
        matches!(&bad, Err(s) if s.code() == Code::InvalidArgument),
        "{:?}",
        bad.err()
    );
    drop((none, earliest, latest, from_start, beyond));
    Ok(server.stop().await?)
}
