//! Plugins on the data path, through the broker in-process (`harness = false`). Each figure is
//! reported next to a baseline measured in the same run, with the ratio.
//!
//! - Produce throughput with each bundled codec (codec-lz4, codec-zstd) vs `compression=none`,
//!   on generated JSON events and log lines, and the compression ratio achieved (stored bytes
//!   of the compressed topic / stored bytes of the uncompressed one). `flush.policy=os`, so the
//!   figure is the codec's cost, not the disk's.
//! - Cleaner throughput: MB/s of segments cleaned by `Broker::compact_partition` with the
//!   `key-record-key` plugin vs the native record-key extractor (`compaction.key=key`) on an
//!   identical partition.
//! - Retention pass time: `Broker::run_retention_once` deleting every closed segment of a
//!   partition with many segments (the default policy: the retention-time and retention-size
//!   plugins), vs a plain `remove_file` of the same number of files.
//!
//! `cargo bench -p distlog-benches --bench policies` (full, about a minute);
//! `DISTLOG_BENCH_QUICK=1 cargo bench -p distlog-benches --bench policies` (quick, seconds).

use distlog_broker::{Broker, BrokerConfig, ProduceRecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A generator of one record value.
type Make = fn(&mut Rng, usize) -> Vec<u8>;

struct Scale {
    produce_bytes: usize,
    cleaner_bytes: usize,
    retention_segments: usize,
}

fn scale() -> Scale {
    let quick = std::env::var_os("DISTLOG_BENCH_QUICK").is_some()
        || std::env::args().any(|a| a == "--quick");
    if quick {
        Scale {
            produce_bytes: 8 << 20,
            cleaner_bytes: 8 << 20,
            retention_segments: 100,
        }
    } else {
        Scale {
            produce_bytes: 64 << 20,
            cleaner_bytes: 64 << 20,
            retention_segments: 1_000,
        }
    }
}

fn open(dir: &Path) -> Result<Broker> {
    let mut c = BrokerConfig::new(dir);
    c.retention_check_interval_ms = 0;
    c.plugins.cache_dir = Some(std::env::temp_dir().join("distlog-bench-plugin-cache"));
    Ok(Broker::open(c)?)
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// A tiny deterministic generator (xorshift), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// JSON click-stream events, about 230 bytes each.
fn json_event(rng: &mut Rng, i: usize) -> Vec<u8> {
    let events = ["page_view", "add_to_cart", "checkout", "search", "login"];
    let countries = ["DE", "FR", "US", "BR", "JP", "IN"];
    format!(
        r#"{{"event_id":"{:016x}","user_id":"u{}","type":"{}","ts":{},"country":"{}","path":"/catalog/{}/item/{}","session":"{:08x}","amount":{}.{:02}}}"#,
        rng.next(),
        rng.next() % 50_000,
        rng.pick(&events),
        1_700_000_000_000_u64 + i as u64 * 37,
        rng.pick(&countries),
        rng.next() % 40,
        rng.next() % 10_000,
        rng.next() as u32,
        rng.next() % 500,
        rng.next() % 100
    )
    .into_bytes()
}

/// Web-server log lines, about 150 bytes each.
fn log_line(rng: &mut Rng, i: usize) -> Vec<u8> {
    let methods = ["GET", "GET", "GET", "POST", "PUT"];
    let status = ["200", "200", "200", "304", "404", "500"];
    format!(
        "2026-11-24T07:{:02}:{:02}.{:03}Z INFO http 10.0.{}.{} \"{} /api/v1/orders/{} HTTP/1.1\" {} {} {}ms req_id={:x}",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i % 1000,
        rng.next() % 256,
        rng.next() % 256,
        rng.pick(&methods),
        rng.next() % 100_000,
        rng.pick(&status),
        rng.next() % 20_000,
        rng.next() % 900,
        rng.next()
    )
    .into_bytes()
}

/// Batches of 500 records, `total` bytes of values in all.
fn batches(total: usize, make: Make) -> Vec<Vec<ProduceRecord>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut out, mut bytes, mut i) = (Vec::new(), 0, 0);
    while bytes < total {
        let batch: Vec<ProduceRecord> = (0..500)
            .map(|_| {
                let value = make(&mut rng, i);
                i += 1;
                bytes += value.len();
                ProduceRecord {
                    value: Some(value),
                    timestamp_ms: Some(1_700_000_000_000),
                    ..ProduceRecord::default()
                }
            })
            .collect();
        out.push(batch);
    }
    out
}

fn produce_all(b: &Broker, topic: &str, data: &[Vec<ProduceRecord>]) -> Result<Duration> {
    let start = Instant::now();
    for batch in data {
        b.produce(topic, Some(0), batch.clone())?;
    }
    Ok(start.elapsed())
}

fn stored_bytes(b: &Broker, topic: &str) -> Result<u64> {
    Ok(b.describe_topic(topic)?
        .partitions
        .iter()
        .map(|p| p.size_bytes)
        .sum())
}

fn produce_codecs(s: &Scale, dir: &Path) -> Result<()> {
    println!("## Produce with a codec vs compression=none (flush.policy=os, 500-record batches)\n");
    println!(
        "| data | codec | MB/s (values) | baseline none MB/s | ratio | stored / uncompressed |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let b = open(&dir.join("produce"))?;
    let sets: [(&str, Make); 2] = [("JSON events", json_event), ("log lines", log_line)];
    for (si, (label, make)) in sets.iter().enumerate() {
        let data = batches(s.produce_bytes, *make);
        let values: usize = data
            .iter()
            .flatten()
            .map(|r| r.value.as_ref().map_or(0, Vec::len))
            .sum();
        let mut results = Vec::new();
        for codec in ["none", "codec-lz4", "codec-zstd"] {
            let topic = format!("t{si}-{codec}");
            b.create_topic(
                &topic,
                1,
                config(&[("compression", codec), ("flush.policy", "os")]),
            )?;
            let d = produce_all(&b, &topic, &data)?;
            results.push((codec, mbps(values, d), stored_bytes(&b, &topic)?));
        }
        let (_, base_mbps, base_bytes) = results[0];
        for (codec, m, bytes) in &results {
            println!(
                "| {label} | {codec} | {m:.1} | {base_mbps:.1} | {:.2} | {:.3} |",
                m / base_mbps,
                *bytes as f64 / base_bytes as f64
            );
        }
    }
    b.close()?;
    println!();
    Ok(())
}

fn cleaner(s: &Scale, dir: &Path) -> Result<()> {
    println!("## Cleaner: key-record-key plugin vs native record keys\n");
    println!("| extractor | MB/s cleaned | baseline native MB/s | ratio | records dropped |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let b = open(&dir.join("cleaner"))?;
    let mut rng = Rng(7);
    let records = s.cleaner_bytes / 120;
    let data: Vec<Vec<ProduceRecord>> = (0..records)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|chunk| {
            chunk
                .iter()
                .map(|_| ProduceRecord {
                    key: Some(format!("key-{}", rng.next() % 10_000).into_bytes()),
                    value: Some(vec![b'v'; 100]),
                    timestamp_ms: Some(1_700_000_000_000),
                    ..ProduceRecord::default()
                })
                .collect()
        })
        .collect();
    let mut results = Vec::new();
    for extractor in ["key", "key-record-key"] {
        let topic = format!("c-{extractor}");
        b.create_topic(
            &topic,
            1,
            config(&[
                ("cleanup.policy", "compact"),
                ("compaction.key", extractor),
                ("segment.bytes", "1048576"),
                ("flush.policy", "os"),
            ]),
        )?;
        produce_all(&b, &topic, &data)?;
        b.roll_partition(&topic, 0)?;
        let start = Instant::now();
        let report = b
            .compact_partition(&topic, 0)?
            .ok_or("not a compact topic")?;
        let d = start.elapsed();
        results.push((
            extractor,
            mbps(usize::try_from(report.bytes_read)?, d),
            report.records_superseded + report.tombstones_dropped,
        ));
    }
    let base = results[0].1;
    for (extractor, m, dropped) in &results {
        println!(
            "| {extractor} | {m:.1} | {base:.1} | {:.2} | {dropped} |",
            m / base
        );
    }
    b.close()?;
    println!();
    Ok(())
}

fn retention(s: &Scale, dir: &Path) -> Result<()> {
    println!("## Retention pass over many segments\n");
    let b = open(&dir.join("retention"))?;
    b.create_topic(
        "r",
        1,
        config(&[("flush.policy", "os"), ("retention.ms", "3600000")]),
    )?;
    for i in 0..s.retention_segments {
        b.produce(
            "r",
            Some(0),
            vec![ProduceRecord {
                value: Some(format!("record {i}").into_bytes()),
                timestamp_ms: Some(1_000),
                ..ProduceRecord::default()
            }],
        )?;
        b.roll_partition("r", 0)?;
    }
    let start = Instant::now();
    let summary = b.run_retention_once();
    let pass = start.elapsed();
    let start = Instant::now();
    let idle = b.run_retention_once();
    let idle_pass = start.elapsed();
    // Baseline: removing as many files (three per segment: log, offset and time index).
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    for i in 0..summary.segments_deleted * 3 {
        std::fs::write(files.join(i.to_string()), b"x")?;
    }
    let start = Instant::now();
    for i in 0..summary.segments_deleted * 3 {
        std::fs::remove_file(files.join(i.to_string()))?;
    }
    let raw = start.elapsed();
    println!("| measure | time | baseline (remove_file x files) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| pass deleting {} segments | {:.1} ms | {:.1} ms | {:.2} |",
        summary.segments_deleted,
        pass.as_secs_f64() * 1e3,
        raw.as_secs_f64() * 1e3,
        pass.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "| pass deleting nothing ({} segment left) | {:.3} ms | | |",
        b.describe_topic("r")?.partitions[0].segments.len(),
        idle_pass.as_secs_f64() * 1e3
    );
    assert_eq!(idle.segments_deleted, 0);
    b.close()?;
    println!();
    Ok(())
}

fn main() -> Result<()> {
    let s = scale();
    let dir = match std::env::var_os("DISTLOG_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    println!(
        "# distlog data-path policy benchmarks ({})\n",
        if s.retention_segments < 1_000 {
            "quick"
        } else {
            "full"
        }
    );
    produce_codecs(&s, dir.path())?;
    cleaner(&s, dir.path())?;
    retention(&s, dir.path())?;
    Ok(())
}
