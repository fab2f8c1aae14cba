//! Conformance suites, one per world: what every plugin of a kind must do,
//! whatever its language. Run them against every bundled plugin (the tests
//! do) and against your own plugin before deploying it.
//!
//! Each suite calls the version currently serving `name` on the given host
//! and stops at the first broken rule. Calls made by a suite are not
//! counted in the plugin's stats.
//!
//! ```no_run
//! # use distlog_plugin_host::{PluginHost, HostConfig, PluginSpec, conformance};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = PluginHost::new(HostConfig::default())?;
//! host.load_file(PluginSpec::new("lz4"), "plugins/dist/codec-lz4.wasm".as_ref())?;
//! conformance::codec_suite(&host, "lz4")?;
//! # Ok(()) }
//! ```

use crate::selftest::{
    compressible_bytes, random_bytes, round_trip, sample_records, sample_segments, segment,
};
use crate::version::{Counted, PluginVersion, check_deletions};
use crate::{PartitionInfo, PluginError, PluginHost, PluginKind, SegmentInfo};

/// A conformance rule the plugin broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin:?} breaks the {kind} contract ({rule}): {detail}")]
#[non_exhaustive]
pub struct ConformanceError {
    pub plugin: String,
    pub kind: PluginKind,
    /// A short name of the rule, e.g. `"round-trip"`.
    pub rule: &'static str,
    pub detail: String,
}

/// What a suite checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConformanceReport {
    /// Checks run (each one or more plugin calls).
    pub checks: usize,
}

fn version(
    host: &PluginHost,
    name: &str,
    kind: PluginKind,
) -> Result<std::sync::Arc<PluginVersion>, ConformanceError> {
    let fail = |detail: String| ConformanceError {
        plugin: name.to_owned(),
        kind,
        rule: "loaded",
        detail,
    };
    let version = host
        .current_version(name)
        .map_err(|e| fail(e.to_string()))?;
    if version.kind != kind {
        return Err(fail(format!("it is a {} plugin", version.kind)));
    }
    Ok(version)
}

/// Inputs every codec must round-trip.
fn codec_inputs() -> Vec<(String, Vec<u8>)> {
    let mut inputs = vec![
        ("empty".to_owned(), Vec::new()),
        ("one byte".to_owned(), vec![0x42]),
        ("one zero byte".to_owned(), vec![0]),
        ("64 KiB of zeros".to_owned(), vec![0; 64 << 10]),
        ("1 MiB of zeros".to_owned(), vec![0; 1 << 20]),
        ("1 MiB of log text".to_owned(), compressible_bytes(1 << 20)),
        ("256 KiB random".to_owned(), random_bytes(256 << 10, 3)),
        ("all byte values".to_owned(), (0..=255u8).collect()),
        (
            "runs of every length".to_owned(),
            (0..300u32)
                .flat_map(|n| std::iter::repeat_n((n % 251) as u8, n as usize))
                .collect(),
        ),
        (
            "long run then random".to_owned(),
            [vec![7u8; 100_000], random_bytes(10_000, 9)].concat(),
        ),
    ];
    for len in [
        2usize, 3, 7, 15, 16, 17, 31, 255, 256, 257, 1000, 4095, 4096, 4097, 65_537,
    ] {
        inputs.push((format!("{len} random bytes"), random_bytes(len, len as u64)));
        inputs.push((format!("{len} text bytes"), compressible_bytes(len)));
    }
    inputs
}

/// Every codec: round-trips many inputs (empty, tiny, compressible,
/// incompressible, runs), produces bounded output, and answers corrupt
/// input with an error or a correct-length output — never a trap, a timeout
/// or a wrong-length output — and keeps serving afterwards.
pub fn codec_suite(host: &PluginHost, name: &str) -> Result<ConformanceReport, ConformanceError> {
    let kind = PluginKind::Codec;
    let version = version(host, name, kind)?;
    let fail = |rule, detail| ConformanceError {
        plugin: name.to_owned(),
        kind,
        rule,
        detail,
    };
    let mut report = ConformanceReport::default();
    for (what, input) in codec_inputs() {
        round_trip(&version, &input).map_err(|e| fail("round-trip", format!("{what}: {e}")))?;
        report.checks += 1;
    }

    let sample = compressible_bytes(4096);
    let compressed = version
        .compress(&sample, Counted::No)
        .map_err(|e| fail("round-trip", e.to_string()))?;
    let mut truncated = compressed.clone();
    truncated.truncate(compressed.len() / 2);
    let mut flipped = compressed.clone();
    for b in flipped.iter_mut().step_by(3) {
        *b ^= 0xa5;
    }
    let garbage: [(&str, Vec<u8>, u32); 6] = [
        ("random bytes", random_bytes(1000, 11), 4096),
        ("all 0xff", vec![0xff; 512], 4096),
        ("empty input, non-zero size", Vec::new(), 100),
        ("truncated payload", truncated, 4096),
        ("bit-flipped payload", flipped, 4096),
        ("valid payload, wrong expected size", compressed, 10),
    ];
    for (what, input, expected) in garbage {
        match version.decompress(&input, expected, Counted::No) {
            Ok(_) | Err(PluginError::Guest { .. }) | Err(PluginError::InvalidOutput { .. }) => {}
            Err(e) => {
                return Err(fail(
                    "corrupt input is an error, not a crash",
                    format!("{what}: {e}"),
                ));
            }
        }
        report.checks += 1;
    }
    // Still serving after the corrupt inputs.
    round_trip(&version, b"still serving").map_err(|e| fail("serves after corrupt input", e))?;
    report.checks += 1;
    Ok(report)
}

/// Scenarios for retention policies: (description, segments).
fn retention_scenarios(now_ms: i64) -> Vec<(&'static str, Vec<SegmentInfo>)> {
    let active_only = vec![segment(0, 100, u64::MAX / 2, (0, 1), true)];
    let empty_active = vec![segment(0, 0, 0, (-1, -1), true)];
    let many: Vec<SegmentInfo> = (0..200u64)
        .map(|i| segment(i * 10, 10, 1 << 20, (i as i64, i as i64 + 1), i == 199))
        .collect();
    let future = sample_segments(now_ms + 365 * 86_400_000);
    vec![
        ("no segments", Vec::new()),
        ("only the active segment, huge and ancient", active_only),
        ("only an empty active segment", empty_active),
        ("typical partition", sample_segments(now_ms)),
        ("200 ancient segments", many),
        ("timestamps in the future", future),
    ]
}

/// Every retention policy: whatever the segments and configuration, names
/// only closed segments that exist, each at most once, and never the active
/// one; returns within its deadline.
pub fn retention_suite(
    host: &PluginHost,
    name: &str,
) -> Result<ConformanceReport, ConformanceError> {
    let kind = PluginKind::Retention;
    let version = version(host, name, kind)?;
    let fail = |rule, detail| ConformanceError {
        plugin: name.to_owned(),
        kind,
        rule,
        detail,
    };
    let mut report = ConformanceReport::default();
    let now_ms = 1_800_000_000_000i64;
    for (what, segments) in retention_scenarios(now_ms) {
        for config in crate::selftest::sample_configs() {
            let partition = PartitionInfo {
                topic: "conformance".into(),
                partition: 3,
                config: config.clone(),
            };
            match version.select_deletions(&partition, &segments, now_ms, Counted::No) {
                Ok(deletions) => check_deletions(&segments, &deletions).map_err(|e| {
                    fail(
                        "names only closed, existing segments",
                        format!("{what}: {e}"),
                    )
                })?,
                // A policy may refuse an odd partition, never a typical one.
                Err(PluginError::Guest { .. }) if what != "typical partition" => {}
                Err(e) => {
                    return Err(fail(
                        "names only closed, existing segments",
                        format!("{what} with config {config:?}: {e}"),
                    ));
                }
            }
            report.checks += 1;
        }
    }
    Ok(report)
}

/// Every key extractor: exactly one entry per record, for batches of every
/// size, with and without keys, values (tombstones) and headers.
pub fn compaction_suite(
    host: &PluginHost,
    name: &str,
) -> Result<ConformanceReport, ConformanceError> {
    let kind = PluginKind::Compaction;
    let version = version(host, name, kind)?;
    let fail = |rule, detail| ConformanceError {
        plugin: name.to_owned(),
        kind,
        rule,
        detail,
    };
    let mut report = ConformanceReport::default();
    let mut batches: Vec<(String, Vec<crate::LogRecord>)> = [0usize, 1, 2, 17, 500]
        .into_iter()
        .map(|n| (format!("{n} records"), sample_records(n)))
        .collect();
    let mut odd = sample_records(8);
    for (i, record) in odd.iter_mut().enumerate() {
        record.value = Some(random_bytes(64, i as u64));
        record.key = (i % 2 == 0).then(Vec::new);
    }
    batches.push(("binary values, empty keys".into(), odd));
    let tombstones: Vec<_> = sample_records(10)
        .into_iter()
        .map(|mut r| {
            r.value = None;
            r
        })
        .collect();
    batches.push(("tombstones only".into(), tombstones));
    for (i, (what, records)) in batches.into_iter().enumerate() {
        match version.extract_keys(&records, Counted::No) {
            Ok(_) => {}
            // Unusual batches (binary values, tombstones) may be refused;
            // ordinary ones may not.
            Err(PluginError::Guest { .. }) if i >= 5 => {}
            Err(e) => return Err(fail("one key per record", format!("{what}: {e}"))),
        }
        report.checks += 1;
    }
    Ok(report)
}

/// Run the suite for the kind of the plugin serving `name`.
pub fn suite(host: &PluginHost, name: &str) -> Result<ConformanceReport, ConformanceError> {
    let kind = host.info(name).map(|i| i.kind).unwrap_or(PluginKind::Codec);
    match kind {
        PluginKind::Codec => codec_suite(host, name),
        PluginKind::Retention => retention_suite(host, name),
        PluginKind::Compaction => compaction_suite(host, name),
    }
}
