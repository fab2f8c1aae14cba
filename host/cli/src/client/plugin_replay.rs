//! `distlog plugin replay`: run a plugin deterministically over real data and print a digest
//! of its outputs, so an author can show that a new version behaves like the old one before
//! deploying it.
//!
//! The data is a topic's stored segments, read offline through
//! [`distlog_storage::readonly::ReadOnlyLog`] (files opened read-only, no lock, no
//! recovery: nothing in the data directory is written, and a running broker is undisturbed),
//! or a recorded sample (the `plugin test --input` formats). What the plugin is asked:
//! - a codec compresses the plain payload of every stored batch (a compressed batch is first
//!   decompressed with the codec version that wrote it: the component kept under
//!   `<data_dir>/plugins/versions/`, or a built-in), then decompresses its own output, which
//!   must give the payload back; the digest covers the compressed outputs;
//! - a key extractor gets the records of every batch, one call per batch; the digest covers
//!   the keys;
//! - a retention policy gets each partition's segment list (the descriptors the broker would
//!   pass, from the valid prefix of every segment) and the topic's own configuration; the
//!   digest covers its deletions and reasons.
//!
//! Determinism: fuel metering is on with a fixed budget per call (`--fuel`), the deadline is
//! long enough that only fuel stops a call, clocks are frozen (the plugin host's sandbox),
//! inputs are fed in offset order and the clock a retention policy sees is `--now-ms`.
//! A failed call is part of the outputs (its error, without timings), so two versions that
//! fail alike also digest alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use distlog_plugin_host::{
    Header, HostConfig, LogRecord, PartitionInfo, PluginDigest, PluginError, PluginHost,
    PluginKind, PluginSpec, SegmentInfo,
};
use distlog_storage::batch::{BatchView, Compression, decode_records};
use distlog_storage::readonly::ReadOnlyLog;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::plugin::Kind;
use super::plugin_test::{cache_word, read_records_sample, read_retention_sample, user_cache_dir};
use crate::output::{Output, Table, emit};

/// The name the replayed component is loaded under.
const NAME: &str = "under-replay";

/// Default fuel per call: billions of wasm instructions, far more than any batch needs.
const DEFAULT_FUEL: u64 = 10_000_000_000;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Path to the component (`.wasm`).
    pub file: PathBuf,
    /// The world it must implement; detected from its exports when omitted.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// A parameter for the plugin's `init`, `KEY=VALUE` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A broker's data directory to read stored segments from (read-only; the broker may
    /// be running).
    #[arg(long, value_name = "DIR", requires = "topic", conflicts_with = "input")]
    pub data_dir: Option<PathBuf>,
    /// The topic whose segments to replay (with --data-dir).
    #[arg(long, requires = "data_dir")]
    pub topic: Option<String>,
    /// Only this partition (repeatable) [default: every partition].
    #[arg(long = "partition", value_name = "N", requires = "data_dir")]
    pub partitions: Vec<u32>,
    /// A recorded sample instead of stored data: any file for a codec (one payload), a JSON
    /// partition description for a retention policy, JSON lines of records for a key
    /// extractor (the `plugin test --input` formats, see plugins/samples/).
    #[arg(long, value_name = "FILE", required_unless_present = "data_dir")]
    pub input: Option<PathBuf>,
    /// Fuel per call (wasm instructions, roughly): the only limit that stops a call, so a
    /// run is deterministic. A call that runs out fails the same way every time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FUEL, value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel: u64,
    /// The clock a retention policy sees, ms since the Unix epoch [default: the newest
    /// record's timestamp in the partition, or the sample's `now_ms`].
    #[arg(long, value_name = "MS")]
    pub now_ms: Option<i64>,
    /// Compiled-artifact cache [default: the `plugin test` one].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile without the artifact cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
struct Report {
    file: String,
    kind: String,
    /// The component's sha256.
    plugin_digest: String,
    /// sha256 of the plugin's outputs, in order: equal for versions that behave alike.
    output_digest: String,
    source: String,
    fuel_per_call: u64,
    cache: &'static str,
    partitions: u64,
    segments: u64,
    batches: u64,
    records: u64,
    calls: u64,
    /// Calls that returned an error (they are part of the digest).
    failed_calls: u64,
    /// Codec outputs that did not decompress to the input.
    round_trip_failures: u64,
    input_bytes: u64,
    output_bytes: u64,
    /// Retention: segments the policy would delete.
    deletions: u64,
    /// The first few failures, for a person to read.
    errors: Vec<String>,
    seconds: f64,
}

/// The running digest and counters.
struct Outputs {
    hasher: Sha256,
    report: Report,
}

impl Outputs {
    /// One framed item: a tag and a length-prefixed value, so that no two output sequences
    /// share an encoding.
    fn item(&mut self, tag: u8, bytes: &[u8]) {
        self.hasher.update([tag]);
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    fn failure(&mut self, what: &str, error: &PluginError) {
        self.report.failed_calls += 1;
        let text = error_text(error);
        self.item(b'E', text.as_bytes());
        if self.report.errors.len() < 10 {
            self.report.errors.push(format!("{what}: {text}"));
        }
    }
}

/// An error as digested: the typed error's text without anything that varies between runs
/// of the same behaviour (timings and the plugin's deadline).
fn error_text(error: &PluginError) -> String {
    match error {
        PluginError::Timeout { .. } => "timeout".to_owned(),
        PluginError::InitTimeout { .. } => "init timeout".to_owned(),
        other => other.to_string(),
    }
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let started = Instant::now();
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(user_cache_dir)
    };
    let mut config = match cache_dir {
        Some(dir) => HostConfig::with_cache_dir(dir),
        None => HostConfig::default(),
    };
    config.fuel_metering = true;
    let limits = &mut config.default_limits;
    limits.fuel = args.fuel;
    // Fuel, not the wall clock, bounds every call: the same inputs always meet the same end.
    let long = Duration::from_secs(3600);
    limits.codec_timeout = long;
    limits.retention_timeout = long;
    limits.compaction_timeout = long;
    limits.init_timeout = long;
    let host = PluginHost::new(config).context("cannot start the plugin host")?;
    let mut spec = PluginSpec::new(NAME);
    if let Some(kind) = args.kind {
        spec = spec.kind(kind.host_kind());
    }
    for (key, value) in super::parse_pairs(&args.params)? {
        spec = spec.param(key, value);
    }
    let spinner = super::plugin_progress::Spinner::start(format!(
        "loading {} for the replay",
        args.file.display()
    ));
    let loaded = host.load(spec, bytes);
    drop(spinner);
    let loaded = loaded.with_context(|| format!("{} was rejected at load", args.file.display()))?;
    let mut out = Outputs {
        hasher: Sha256::new(),
        report: Report {
            file: args.file.display().to_string(),
            kind: loaded.kind.to_string(),
            plugin_digest: loaded.digest.to_hex(),
            fuel_per_call: args.fuel,
            cache: cache_word(loaded.cache),
            ..Report::default()
        },
    };
    let spinner = super::plugin_progress::Spinner::start("replaying");
    let replayed = match (&args.data_dir, &args.topic, &args.input) {
        (Some(data_dir), Some(topic), _) => {
            out.report.source = format!("{} topic {topic}", data_dir.display());
            replay_stored(&host, loaded.kind, data_dir, topic, &args, &mut out)
        }
        (_, _, Some(input)) => {
            out.report.source = input.display().to_string();
            replay_sample(&host, loaded.kind, input, &args, &mut out)
        }
        _ => Err(anyhow::anyhow!(
            "give --data-dir DIR --topic T (stored data) or --input FILE (a recorded sample)"
        )),
    };
    drop(spinner);
    replayed?;
    let mut report = out.report;
    report.output_digest = hex::encode(out.hasher.finalize());
    report.seconds = started.elapsed().as_secs_f64();
    emit(args.output, &report, || render(&report))
}

fn render(r: &Report) -> String {
    let mut table = Table::new(["FIELD", "VALUE"]);
    let rows: Vec<(&str, String)> = vec![
        (
            "plugin",
            format!("{} ({}, {})", r.file, r.kind, &r.plugin_digest[..12]),
        ),
        ("source", r.source.clone()),
        ("fuel per call", r.fuel_per_call.to_string()),
        ("artifact cache", r.cache.to_owned()),
        ("partitions", r.partitions.to_string()),
        ("segments", r.segments.to_string()),
        ("batches", r.batches.to_string()),
        ("records", r.records.to_string()),
        ("calls", r.calls.to_string()),
        ("failed calls", r.failed_calls.to_string()),
        ("round-trip failures", r.round_trip_failures.to_string()),
        ("input bytes", r.input_bytes.to_string()),
        ("output bytes", r.output_bytes.to_string()),
        ("deletions", r.deletions.to_string()),
        ("output digest", r.output_digest.clone()),
    ];
    for (field, value) in rows {
        table.row([field.to_owned(), value]);
    }
    let mut text = table.render();
    for error in &r.errors {
        text.push_str(&format!("error: {error}\n"));
    }
    text
}

/// A recorded sample, in the `plugin test --input` formats.
fn replay_sample(
    host: &PluginHost,
    kind: PluginKind,
    input: &Path,
    args: &ReplayArgs,
    out: &mut Outputs,
) -> Result<()> {
    match kind {
        PluginKind::Codec => {
            let payload =
                std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
            out.report.batches = 1;
            codec_call(host, &payload, "sample", out);
        }
        PluginKind::Compaction => {
            let records = read_records_sample(input)?;
            out.report.batches = 1;
            out.report.records = records.len() as u64;
            keys_call(host, &records, "sample", out);
        }
        PluginKind::Retention => {
            let (partition, segments, now_ms) = read_retention_sample(input)?;
            out.report.partitions = 1;
            out.report.segments = segments.len() as u64;
            retention_call(
                host,
                &partition,
                &segments,
                args.now_ms.unwrap_or(now_ms),
                out,
            );
        }
        other => bail!("no replay for {other} plugins"),
    }
    Ok(())
}

/// Compress `payload`, digest the output, and check that the plugin's own decompress gives
/// the payload back.
fn codec_call(host: &PluginHost, payload: &[u8], what: &str, out: &mut Outputs) {
    out.report.calls += 1;
    out.report.input_bytes += payload.len() as u64;
    let compressed = match host.compress(NAME, payload) {
        Ok(c) => c,
        Err(e) => return out.failure(&format!("{what}: compress"), &e),
    };
    out.report.output_bytes += compressed.data.len() as u64;
    out.item(b'C', &compressed.data);
    let Ok(size) = u32::try_from(payload.len()) else {
        return;
    };
    out.report.calls += 1;
    match host.decompress(&compressed.codec, &compressed.data, size) {
        Ok(back) if back == payload => {}
        Ok(_) => {
            out.report.round_trip_failures += 1;
            out.item(b'R', b"round trip changed the data");
            if out.report.errors.len() < 10 {
                out.report
                    .errors
                    .push(format!("{what}: decompress(compress(x)) != x"));
            }
        }
        Err(e) => {
            out.report.round_trip_failures += 1;
            out.failure(&format!("{what}: decompress"), &e);
        }
    }
}

fn keys_call(host: &PluginHost, records: &[LogRecord], what: &str, out: &mut Outputs) {
    out.report.calls += 1;
    match host.extract_keys(NAME, records) {
        Ok(keys) => {
            for key in keys {
                match key {
                    Some(key) => {
                        out.report.output_bytes += key.len() as u64;
                        out.item(b'K', &key);
                    }
                    None => out.item(b'N', &[]),
                }
            }
        }
        Err(e) => out.failure(&format!("{what}: extract-keys"), &e),
    }
}

fn retention_call(
    host: &PluginHost,
    partition: &PartitionInfo,
    segments: &[SegmentInfo],
    now_ms: i64,
    out: &mut Outputs,
) {
    out.report.calls += 1;
    let what = format!("partition {}", partition.partition);
    match host.select_deletions(NAME, partition, segments, now_ms) {
        Ok(deletions) => {
            for d in deletions {
                out.report.deletions += 1;
                out.item(b'D', &d.base_offset.to_le_bytes());
                out.item(b'W', d.reason.as_bytes());
            }
            // Ends this partition's decisions, so [a][] and [][a] differ.
            out.item(b'P', &partition.partition.to_le_bytes());
        }
        Err(e) => out.failure(&format!("{what}: select-deletions"), &e),
    }
}

/// The topic's partitions and its own configuration, from `topic.json`.
fn topic_meta(topic_dir: &Path) -> Result<(u32, Vec<(String, String)>)> {
    let path = topic_dir.join("topic.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (is --data-dir a broker's data directory and --topic one of its \
             topics?)",
            path.display()
        )
    })?;
    let meta: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a topic description", path.display()))?;
    let partitions = meta["partitions"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .with_context(|| format!("{} has no partition count", path.display()))?;
    let config = meta["config"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok((partitions, config))
}

/// Codec versions that wrote stored batches, loaded on demand (read-only) from the data
/// directory's kept copies or the built-ins.
struct StoredCodecs<'a> {
    host: &'a PluginHost,
    data_dir: &'a Path,
    loaded: BTreeMap<PluginDigest, Result<(), String>>,
}

impl StoredCodecs<'_> {
    fn ensure(&mut self, digest: PluginDigest) -> Result<(), String> {
        if let Some(result) = self.loaded.get(&digest) {
            return result.clone();
        }
        let result = self.load(digest);
        self.loaded.insert(digest, result.clone());
        result
    }

    fn load(&self, digest: PluginDigest) -> Result<(), String> {
        if self.host.info(NAME).is_some_and(|i| i.digest == digest) {
            return Ok(());
        }
        let kept = self
            .data_dir
            .join("plugins/versions")
            .join(format!("{}.wasm", digest.to_hex()));
        let bytes = match std::fs::read(&kept) {
            Ok(bytes) => bytes,
            Err(_) => distlog_plugin_host::builtins()
                .into_iter()
                .find(|b| PluginDigest::of(b.bytes) == digest)
                .map(|b| b.bytes.to_vec())
                .ok_or_else(|| {
                    format!(
                        "codec version {} that wrote these batches is neither kept in {} nor \
                         built in",
                        digest.short(),
                        kept.display()
                    )
                })?,
        };
        let name = format!("stored-{}", digest.short());
        self.host
            .load(
                PluginSpec::new(name)
                    .kind(PluginKind::Codec)
                    .without_self_test(),
                bytes,
            )
            .map(drop)
            .map_err(|e| format!("the codec version that wrote these batches: {e}"))
    }
}

/// A stored batch's plain records payload and header.
fn plain_payload(
    view: &BatchView<'_>,
    log: &ReadOnlyLog,
    codecs: &mut StoredCodecs<'_>,
) -> Result<Vec<u8>> {
    match view.header().compression() {
        Compression::None => Ok(view.payload().to_vec()),
        Compression::Codec(r) => {
            let entry = log.codec(r.0).with_context(|| {
                format!(
                    "batch at offset {} names codec {} that the codec table lacks",
                    view.base_offset(),
                    r.0
                )
            })?;
            let digest = PluginDigest(entry.digest);
            codecs
                .ensure(digest)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("batch at offset {}", view.base_offset()))?;
            codecs
                .host
                .decompress(&digest, view.payload(), view.header().payload_size())
                .with_context(|| {
                    format!(
                        "batch at offset {} (codec {} version {}) does not decompress",
                        view.base_offset(),
                        entry.name,
                        digest.short()
                    )
                })
        }
    }
}

fn replay_stored(
    host: &PluginHost,
    kind: PluginKind,
    data_dir: &Path,
    topic: &str,
    args: &ReplayArgs,
    out: &mut Outputs,
) -> Result<()> {
    let topic_dir = data_dir.join("topics").join(topic);
    let (count, config) = topic_meta(&topic_dir)?;
    let partitions: Vec<u32> = if args.partitions.is_empty() {
        (0..count).collect()
    } else {
        let mut chosen = args.partitions.clone();
        chosen.sort_unstable();
        chosen.dedup();
        if let Some(bad) = chosen.iter().find(|p| **p >= count) {
            bail!("topic {topic} has partitions 0 to {}, not {bad}", count - 1);
        }
        chosen
    };
    let mut codecs = StoredCodecs {
        host,
        data_dir,
        loaded: BTreeMap::new(),
    };
    for p in partitions {
        let dir = topic_dir.join(p.to_string());
        let log = ReadOnlyLog::open(&dir)
            .with_context(|| format!("cannot open partition {p} at {}", dir.display()))?;
        out.report.partitions += 1;
        let mut segments = Vec::new();
        for &base in log.segment_bases() {
            out.report.segments += 1;
            let info = log
                .scan_segment(base, |view| {
                    out.report.batches += 1;
                    out.report.records += u64::from(view.header().record_count());
                    if kind == PluginKind::Retention || view.header().is_control() {
                        return Ok(());
                    }
                    let what = format!("partition {p} offset {}", view.base_offset());
                    let payload =
                        plain_payload(&view, &log, &mut codecs).map_err(std::io::Error::other)?;
                    match kind {
                        PluginKind::Codec => codec_call(host, &payload, &what, out),
                        _ => {
                            let records = decode_records(&payload, view.header())
                                .map_err(std::io::Error::other)?;
                            let records: Vec<LogRecord> = records
                                .into_iter()
                                .map(|r| LogRecord {
                                    key: r.key,
                                    value: r.value,
                                    headers: r
                                        .headers
                                        .into_iter()
                                        .map(|h| Header {
                                            key: h.key,
                                            value: h.value,
                                        })
                                        .collect(),
                                    timestamp: r.timestamp,
                                })
                                .collect();
                            keys_call(host, &records, &what, out);
                        }
                    }
                    Ok(())
                })
                .with_context(|| format!("partition {p} segment {base}"))?;
            segments.push(SegmentInfo {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                size_bytes: info.size_bytes,
                first_timestamp: info.first_timestamp,
                max_timestamp: info.max_timestamp,
                record_count: info.record_count,
                active: info.active,
            });
        }
        if kind == PluginKind::Retention {
            let partition = PartitionInfo {
                topic: topic.to_owned(),
                partition: p,
                config: config.clone(),
            };
            let newest = segments.iter().map(|s| s.max_timestamp).max().unwrap_or(0);
            retention_call(
                host,
                &partition,
                &segments,
                args.now_ms.unwrap_or(newest),
                out,
            );
        }
    }
    Ok(())
}
