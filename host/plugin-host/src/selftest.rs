//! The self-test a version must pass before it may serve: a short,
//! deterministic run of the contract on sample data. The full checks live in
//! [`crate::conformance`].

use crate::version::{Counted, PluginVersion};
use crate::{Header, LogRecord, PartitionInfo, PluginError, PluginKind, SegmentInfo};

/// Deterministic pseudo-random bytes (xorshift64*), incompressible in
/// practice.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Log-like text: repetitive, highly compressible.
pub fn compressible_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "{{\"ts\":{},\"level\":\"info\",\"user\":\"user-{}\",\"msg\":\"request served\"}}\n",
                1_700_000_000_000u64 + i,
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

pub(crate) fn run(version: &PluginVersion) -> Result<(), String> {
    match version.kind {
        PluginKind::Codec => codec(version),
        PluginKind::Retention => retention(version),
        PluginKind::Compaction => compaction(version),
    }
}

fn codec(version: &PluginVersion) -> Result<(), String> {
    let samples: [(&str, Vec<u8>); 4] = [
        ("empty input", Vec::new()),
        ("small input", b"hello, distributed log".to_vec()),
        ("1 MiB of compressible data", compressible_bytes(1 << 20)),
        ("64 KiB of random data", random_bytes(64 << 10, 7)),
    ];
    for (what, input) in samples {
        round_trip(version, &input).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

pub(crate) fn round_trip(version: &PluginVersion, input: &[u8]) -> Result<(), String> {
    let compressed = version
        .compress(input, Counted::No)
        .map_err(|e| format!("compress failed: {e}"))?;
    let size = u32::try_from(input.len()).map_err(|_| "input over 4 GiB".to_owned())?;
    let output = version
        .decompress(&compressed, size, Counted::No)
        .map_err(|e| format!("decompress failed: {e}"))?;
    if output != input {
        return Err(format!(
            "round trip of {} bytes changed the data",
            input.len()
        ));
    }
    Ok(())
}

/// A segment descriptor as a log reports one: `record_count` records from `base_offset` on
/// (so `last_offset` is `base_offset - 1`, wrapping, when it is empty). The one constructor
/// of sample descriptors for the self-test and the conformance suite.
pub(crate) fn segment(
    base_offset: u64,
    record_count: u64,
    size_bytes: u64,
    (first_timestamp, max_timestamp): (i64, i64),
    active: bool,
) -> SegmentInfo {
    SegmentInfo {
        base_offset,
        last_offset: base_offset.wrapping_add(record_count).wrapping_sub(1),
        size_bytes,
        first_timestamp,
        max_timestamp,
        record_count,
        active,
    }
}

pub(crate) fn sample_segments(now_ms: i64) -> Vec<SegmentInfo> {
    let day = 86_400_000i64;
    let mut segments: Vec<SegmentInfo> = (0..5u64)
        .map(|i| {
            let age = (5 - i as i64) * 2 * day;
            segment(
                i * 1000,
                1000,
                1 << 30,
                (now_ms - age, now_ms - age + day),
                false,
            )
        })
        .collect();
    segments.push(segment(
        5000,
        500,
        1 << 30,
        (now_ms - 100 * day, now_ms - 99 * day),
        true,
    ));
    segments
}

/// Partition configurations a policy should cope with: none, and tight
/// limits under the usual keys (so that a policy deletes something).
pub(crate) fn sample_configs() -> Vec<Vec<(String, String)>> {
    let kv = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        kv(&[]),
        kv(&[
            ("retention.ms", "1"),
            ("retention.bytes", "1"),
            ("retention.records", "1"),
            ("retention.count", "1"),
            ("retention.segments", "1"),
        ]),
    ]
}

fn retention(version: &PluginVersion) -> Result<(), String> {
    let now_ms = 1_800_000_000_000i64;
    let segments = sample_segments(now_ms);
    for config in sample_configs() {
        let partition = PartitionInfo {
            topic: "self-test".into(),
            partition: 0,
            config,
        };
        match version.select_deletions(&partition, &segments, now_ms, Counted::No) {
            // A policy may refuse a configuration it does not understand.
            Ok(_) | Err(PluginError::Guest { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

pub(crate) fn sample_records(count: usize) -> Vec<LogRecord> {
    (0..count)
        .map(|i| LogRecord {
            key: (i % 3 != 0).then(|| format!("key-{}", i % 7).into_bytes()),
            value: (i % 5 != 4).then(|| {
                format!(
                    "{{\"id\":\"user-{}\",\"n\":{i},\"nested\":{{\"a\":1}}}}",
                    i % 11
                )
                .into_bytes()
            }),
            headers: if i % 2 == 0 {
                vec![Header {
                    key: "tenant".into(),
                    value: format!("t{}", i % 4).into_bytes(),
                }]
            } else {
                Vec::new()
            },
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn compaction(version: &PluginVersion) -> Result<(), String> {
    for count in [0, 1, 64] {
        let records = sample_records(count);
        match version.extract_keys(&records, Counted::No) {
            Ok(_) | Err(PluginError::Guest { .. }) => {}
            Err(e) => return Err(format!("{count} records: {e}")),
        }
    }
    Ok(())
}
