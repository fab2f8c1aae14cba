//! `distlog plugin test`: check a plugin locally, without a broker.
//!
//! Loads the component with the same plugin host the broker uses (type check
//! against its world, self-test), runs the conformance suite of that world,
//! then, with `--input`, runs the plugin on the user's sample data. Every
//! step is reported as a check; the command fails if any check fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use distlog_plugin_host::{
    CacheOutcome, Header, HostConfig, LogRecord, PartitionInfo, PluginHost, PluginKind, PluginSpec,
    SegmentInfo, conformance,
};
use serde::{Deserialize, Serialize};

use super::plugin::Kind;
use crate::output::{Output, Table, emit};

/// The name the component is loaded under inside the local host.
const NAME: &str = "under-test";

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Path to the component (`.wasm`).
    pub file: PathBuf,
    /// The world it must implement; detected from its exports when omitted.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// A parameter for the plugin's `init`, `KEY=VALUE` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Sample data: any file for a codec; a JSON partition description for a
    /// retention policy; JSON lines of records for a key extractor (see
    /// `plugins/samples/`).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Limits to test under, as `plugin load` sets them (default: the broker's defaults);
    /// `--fuel` turns fuel metering on.
    #[command(flatten)]
    pub limits: super::plugin::LimitArgs,
    /// Compiled-artifact cache: a second test of the same component loads in milliseconds
    /// instead of compiling again [default: $XDG_CACHE_HOME/distlog/plugin-cache, else
    /// ~/.cache/distlog/plugin-cache]. `serve`'s cache (`<data_dir>/plugin-cache`) works too.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile without the artifact cache (nothing is read or written).
    #[arg(long)]
    pub no_cache: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The user's artifact cache, shared by `plugin test` and `plugin replay`:
/// `$XDG_CACHE_HOME/distlog/plugin-cache`, else `$HOME/.cache/distlog/plugin-cache`; `None`
/// when neither variable is set.
pub fn user_cache_dir() -> Option<PathBuf> {
    let non_empty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("distlog").join("plugin-cache"))
}

/// How a load obtained its compiled code, for reports.
pub fn cache_word(cache: CacheOutcome) -> &'static str {
    match cache {
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        _ => "off",
    }
}

/// One step of the test and its outcome.
#[derive(Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    kind: Option<String>,
    digest: Option<String>,
    /// The compiled-artifact cache: `hit` (loaded in milliseconds), `miss` (compiled and
    /// stored for next time) or `off`.
    cache: Option<&'static str>,
    passed: bool,
    checks: Vec<Check>,
    /// What the plugin did with `--input`, if given.
    sample: Option<serde_json::Value>,
}

/// Runs the test and prints the report. Cost: one component compile (seconds
/// for a large component, milliseconds on an artifact-cache hit), the self-test,
/// the conformance suite (a few MiB through a codec) and one pass over the input.
pub fn run(args: TestArgs) -> Result<()> {
    let output = args.output;
    let spinner = super::plugin_progress::Spinner::start(format!(
        "testing {} (compile, self-test, conformance suite)",
        args.file.display()
    ));
    let report = test(&args);
    drop(spinner);
    let report = report?;
    emit(output, &report, || render(&report))?;
    if !report.passed {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check.as_str())
            .collect();
        bail!(
            "plugin {} failed: {}",
            args.file.display(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn test(args: &TestArgs) -> Result<Report> {
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
    config.fuel_metering = args.limits.fuel.is_some();
    let host = PluginHost::new(config).context("cannot start the plugin host")?;
    let mut spec = PluginSpec::new(NAME).limits(args.limits.plugin_limits());
    if let Some(kind) = args.kind {
        spec = spec.kind(kind.host_kind());
    }
    for (key, value) in super::parse_pairs(&args.params)? {
        spec = spec.param(key, value);
    }
    let mut report = Report {
        file: args.file.display().to_string(),
        kind: None,
        digest: None,
        cache: None,
        passed: false,
        checks: Vec::new(),
        sample: None,
    };
    let loaded = match host.load(spec.clone(), bytes.clone()) {
        Ok(loaded) => {
            report.checks.push(Check {
                check: "load (type check, init, self-test)".to_owned(),
                ok: true,
                detail: format!(
                    "{} plugin, {} in {:.0?}, self-test in {:.0?}",
                    loaded.kind,
                    match loaded.cache {
                        CacheOutcome::Hit => "loaded from the artifact cache",
                        _ => "compiled",
                    },
                    loaded.compile_time,
                    loaded.self_test_time
                ),
            });
            loaded
        }
        Err(error) => {
            report.checks.push(Check {
                check: "load (type check, init, self-test)".to_owned(),
                ok: false,
                detail: error.to_string(),
            });
            // A component that type-checks but fails its self-test still gets the
            // conformance suite, so the report names every rule it breaks.
            match host.load(spec.without_self_test(), bytes) {
                Ok(loaded) => loaded,
                Err(_) => return Ok(report),
            }
        }
    };
    report.cache.get_or_insert(cache_word(loaded.cache));
    report.kind = Some(loaded.kind.to_string());
    report.digest = Some(loaded.digest.to_hex());
    let suite = match loaded.kind {
        PluginKind::Codec => conformance::codec_suite(&host, NAME),
        PluginKind::Retention => conformance::retention_suite(&host, NAME),
        PluginKind::Compaction => conformance::compaction_suite(&host, NAME),
        _ => conformance::suite(&host, NAME),
    };
    report.checks.push(match suite {
        Ok(suite) => Check {
            check: format!("{} conformance", loaded.kind),
            ok: true,
            detail: format!("{} checks passed", suite.checks),
        },
        Err(error) => Check {
            check: format!("{} conformance: {}", loaded.kind, error.rule),
            ok: false,
            detail: error.detail,
        },
    });
    if let Some(input) = &args.input {
        let outcome = match loaded.kind {
            PluginKind::Codec => sample_codec(&host, input),
            PluginKind::Retention => sample_retention(&host, input),
            PluginKind::Compaction => sample_compaction(&host, input),
            other => Err(anyhow::anyhow!("no sample run for {other} plugins")),
        };
        match outcome {
            Ok((ok, detail, value)) => {
                report.checks.push(Check {
                    check: format!("sample {}", input.display()),
                    ok,
                    detail,
                });
                report.sample = Some(value);
            }
            Err(error) => report.checks.push(Check {
                check: format!("sample {}", input.display()),
                ok: false,
                detail: format!("{error:#}"),
            }),
        }
    }
    report.passed = report.checks.iter().all(|c| c.ok);
    Ok(report)
}

type Sample = (bool, String, serde_json::Value);

/// Compress and decompress the file's bytes as one payload.
fn sample_codec(host: &PluginHost, input: &std::path::Path) -> Result<Sample> {
    let data = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let size = u32::try_from(data.len()).context("a payload is at most 4 GiB")?;
    let started = Instant::now();
    let compressed = host.compress(NAME, &data).context("compress")?;
    let compress_time = started.elapsed();
    let started = Instant::now();
    let restored = host
        .decompress(&compressed.codec, &compressed.data, size)
        .context("decompress")?;
    let decompress_time = started.elapsed();
    let round_trips = restored == data;
    let mb_per_s = |secs: f64| {
        if secs > 0.0 {
            data.len() as f64 / secs / 1e6
        } else {
            0.0
        }
    };
    let ratio = if compressed.data.is_empty() {
        0.0
    } else {
        data.len() as f64 / compressed.data.len() as f64
    };
    let compress_mb_s = mb_per_s(compress_time.as_secs_f64());
    let decompress_mb_s = mb_per_s(decompress_time.as_secs_f64());
    let detail = format!(
        "{} -> {} bytes, ratio {ratio:.2}, compress {compress_mb_s:.0} MB/s, \
         decompress {decompress_mb_s:.0} MB/s, {}",
        data.len(),
        compressed.data.len(),
        if round_trips {
            "round-trips"
        } else {
            "DOES NOT round-trip"
        }
    );
    let value = serde_json::json!({
        "input_bytes": data.len(),
        "compressed_bytes": compressed.data.len(),
        "ratio": ratio,
        "compress_mb_per_s": compress_mb_s,
        "decompress_mb_per_s": decompress_mb_s,
        "round_trips": round_trips,
    });
    Ok((round_trips, detail, value))
}

/// `plugins/samples/retention.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionInput {
    topic: String,
    partition: u32,
    #[serde(default)]
    config: BTreeMap<String, String>,
    now_ms: i64,
    segments: Vec<SegmentInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentInput {
    base_offset: u64,
    last_offset: u64,
    size_bytes: u64,
    first_timestamp: i64,
    max_timestamp: i64,
    record_count: u64,
    #[serde(default)]
    active: bool,
}

impl From<SegmentInput> for SegmentInfo {
    fn from(s: SegmentInput) -> Self {
        Self {
            base_offset: s.base_offset,
            last_offset: s.last_offset,
            size_bytes: s.size_bytes,
            first_timestamp: s.first_timestamp,
            max_timestamp: s.max_timestamp,
            record_count: s.record_count,
            active: s.active,
        }
    }
}

/// A retention sample (`plugins/samples/retention.json`): the partition, its segments and
/// the clock the policy sees.
pub fn read_retention_sample(
    input: &std::path::Path,
) -> Result<(PartitionInfo, Vec<SegmentInfo>, i64)> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let parsed: RetentionInput = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a retention sample", input.display()))?;
    let partition = PartitionInfo {
        topic: parsed.topic,
        partition: parsed.partition,
        config: parsed.config.into_iter().collect(),
    };
    let segments: Vec<SegmentInfo> = parsed.segments.into_iter().map(Into::into).collect();
    Ok((partition, segments, parsed.now_ms))
}

/// Ask the policy which segments of the described partition to delete.
fn sample_retention(host: &PluginHost, input: &std::path::Path) -> Result<Sample> {
    let (partition, segments, now_ms) = read_retention_sample(input)?;
    let deletions = host
        .select_deletions(NAME, &partition, &segments, now_ms)
        .context("select-deletions")?;
    let lines: Vec<String> = deletions
        .iter()
        .map(|d| format!("delete segment {}: {}", d.base_offset, d.reason))
        .collect();
    let detail = if lines.is_empty() {
        format!("keeps all {} segments", segments.len())
    } else {
        lines.join("; ")
    };
    let value = serde_json::json!({
        "deletions": deletions
            .iter()
            .map(|d| serde_json::json!({"base_offset": d.base_offset, "reason": d.reason}))
            .collect::<Vec<_>>(),
    });
    Ok((true, detail, value))
}

/// One line of `plugins/samples/records.jsonl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordInput {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: i64,
}

/// The records of a JSON-lines sample (`plugins/samples/records.jsonl`).
pub fn read_records_sample(input: &std::path::Path) -> Result<Vec<LogRecord>> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: RecordInput = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a record", input.display(), n + 1))?;
        records.push(LogRecord {
            key: record.key.map(String::into_bytes),
            value: record.value.map(String::into_bytes),
            headers: record
                .headers
                .into_iter()
                .map(|(key, value)| Header {
                    key,
                    value: value.into_bytes(),
                })
                .collect(),
            timestamp: record.timestamp,
        });
    }
    Ok(records)
}

/// Extract the key of every record of the file, as one batch.
fn sample_compaction(host: &PluginHost, input: &std::path::Path) -> Result<Sample> {
    let records = read_records_sample(input)?;
    let keys = host.extract_keys(NAME, &records).context("extract-keys")?;
    let shown: Vec<Option<String>> = keys
        .iter()
        .map(|k| k.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()))
        .collect();
    let detail = shown
        .iter()
        .enumerate()
        .map(|(i, k)| match k {
            Some(k) => format!("record {i}: key {k:?}"),
            None => format!("record {i}: no key (kept)"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let value = serde_json::json!({ "keys": shown });
    Ok((true, detail, value))
}

fn render(report: &Report) -> String {
    let mut table = Table::new(["CHECK", "RESULT", "DETAIL"]);
    for check in &report.checks {
        table.row([
            check.check.clone(),
            if check.ok { "pass" } else { "FAIL" }.to_owned(),
            check.detail.clone(),
        ]);
    }
    let mut out = format!(
        "{} ({}, digest {}, artifact cache {})\n",
        report.file,
        report.kind.as_deref().unwrap_or("unknown kind"),
        report
            .digest
            .as_deref()
            .map_or("-", |d| &d[..d.len().min(12)]),
        report.cache.unwrap_or("-")
    );
    out.push_str(&table.render());
    out.push_str(if report.passed {
        "PASSED\n"
    } else {
        "FAILED\n"
    });
    out
}
