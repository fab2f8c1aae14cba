//! kcat (librdkafka's command-line client) against the Kafka listener: metadata, keyed
//! records with headers under every producer codec read back field by field, every
//! `-o` start position, per-partition offsets, and a clean refusal of an unknown topic.

use super::{Broker, start};
use anyhow::{Context, Result, ensure};
use std::time::{SystemTime, UNIX_EPOCH};

/// One record as the consume format below prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
    headers: String,
    timestamp: i64,
}

/// `-f` format matching [`parse`]: fields separated by `|`, one record per line.
const FORMAT: &str = "%p|%o|%k|%s|%h|%T\\n";

fn parse(out: &str) -> Result<Vec<Line>> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            ensure!(f.len() == 6, "not a record line: {l:?}");
            Ok(Line {
                partition: f[0].parse()?,
                offset: f[1].parse()?,
                key: f[2].into(),
                value: f[3].into(),
                headers: f[4].into(),
                timestamp: f[5].parse()?,
            })
        })
        .collect()
}

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// `kcat -C -t topic -e -f FORMAT` with `args`, parsed.
fn consume(b: &Broker, topic: &str, args: &[&str]) -> Result<Vec<Line>> {
    let all = [&["-C", "-t", topic, "-e", "-q", "-f", FORMAT][..], args].concat();
    parse(&b.kcat_ok(&all, b"")?)
}

#[test]
fn metadata_lists_brokers_topics_and_partitions() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("alpha", 3, &[], &[])?;
    b.create_topic("beta", 1, &[], &[])?;

    let text = b.kcat_ok(&["-L"], b"")?;
    let addr = b.bootstrap();
    ensure!(text.contains("1 brokers:"), "{text}");
    ensure!(text.contains(&format!("broker 0 at {addr}")), "{text}");
    ensure!(
        text.contains("topic \"alpha\" with 3 partitions:"),
        "{text}"
    );
    ensure!(text.contains("topic \"beta\" with 1 partitions:"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&b.kcat_ok(&["-J", "-L"], b"")?)?;
    ensure!(
        json["brokers"] == serde_json::json!([{ "id": 0, "name": addr }]),
        "{json}"
    );
    ensure!(json["controllerid"] == 0, "{json}");
    let topics = json["topics"].as_array().context("topics")?;
    let mut names: Vec<&str> = topics.iter().filter_map(|t| t["topic"].as_str()).collect();
    names.sort_unstable();
    ensure!(names == ["alpha", "beta"], "{json}");
    let alpha = topics
        .iter()
        .find(|t| t["topic"] == "alpha")
        .context("alpha")?;
    let parts = alpha["partitions"].as_array().context("partitions")?;
    ensure!(parts.len() == 3, "{alpha}");
    for (i, p) in parts.iter().enumerate() {
        ensure!(p["partition"] == i && p["leader"] == 0, "{p}");
        ensure!(p["replicas"] == serde_json::json!([{ "id": 0 }]), "{p}");
        ensure!(p["isrs"] == serde_json::json!([{ "id": 0 }]), "{p}");
        ensure!(p.get("error").is_none(), "{p}");
    }

    // One topic asked for: only that one; an unknown one: reported as unknown.
    let one: serde_json::Value =
        serde_json::from_str(&b.kcat_ok(&["-J", "-L", "-t", "beta"], b"")?)?;
    ensure!(one["topics"].as_array().map(Vec::len) == Some(1), "{one}");
    ensure!(one["topics"][0]["topic"] == "beta", "{one}");
    let missing: serde_json::Value =
        serde_json::from_str(&b.kcat_ok(&["-J", "-L", "-t", "nope"], b"")?)?;
    let err = missing["topics"][0]["error"].as_str().unwrap_or_default();
    ensure!(err.contains("Unknown topic"), "{missing}");
    Ok(())
}

#[test]
fn records_round_trip_under_every_codec_and_every_start_position() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("codecs", 1, &[], &[])?;

    // Three keyed records with two headers per codec, each run one producer batch.
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let before = now_ms()?;
    for codec in codecs {
        let input: String = (0..3)
            .map(|i| format!("{codec}-k{i}:{codec} value {i}\n"))
            .collect();
        let h = format!("codec={codec}");
        b.kcat_ok(
            &[
                "-P", "-t", "codecs", "-K:", "-z", codec, "-H", &h, "-H", "trace=t1", "-p", "0",
            ],
            input.as_bytes(),
        )?;
    }
    let after = now_ms()?;
    let all = consume(&b, "codecs", &["-o", "beginning"])?;
    ensure!(all.len() == 15, "{all:?}");
    for (n, line) in all.iter().enumerate() {
        let codec = codecs[n / 3];
        let i = n % 3;
        let expected = Line {
            partition: 0,
            offset: i64::try_from(n)?,
            key: format!("{codec}-k{i}"),
            value: format!("{codec} value {i}"),
            headers: format!("codec={codec},trace=t1"),
            timestamp: line.timestamp,
        };
        ensure!(
            *line == expected,
            "record {n}: {line:?}, expected {expected:?}"
        );
        ensure!(
            (before..=after).contains(&line.timestamp),
            "record {n}: timestamp {} outside [{before}, {after}]",
            line.timestamp
        );
    }
    // JSON envelope: the same key, payload and offsets.
    let json = b.kcat_ok(
        &["-C", "-t", "codecs", "-e", "-q", "-J", "-o", "beginning"],
        b"",
    )?;
    for (n, doc) in json.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(doc)?;
        ensure!(v["offset"] == n && v["partition"] == 0, "{v}");
        ensure!(
            v["key"] == all[n].key && v["payload"] == all[n].value,
            "{v}"
        );
        ensure!(v["ts"] == all[n].timestamp, "{v}");
    }

    // Start positions: end (nothing), an absolute offset, relative to the end.
    ensure!(consume(&b, "codecs", &["-o", "end"])?.is_empty());
    ensure!(consume(&b, "codecs", &["-o", "12"])? == all[12..]);
    ensure!(consume(&b, "codecs", &["-o", "-4"])? == all[11..]);
    ensure!(consume(&b, "codecs", &["-o", "beginning", "-c", "2"])? == all[..2]);

    // By timestamp: records with explicit timestamps (confluent-kafka sets them).
    b.create_topic("timed", 1, &[], &[])?;
    let records: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({
                "key": super::hex(format!("t{i}").as_bytes()),
                "value": super::hex(format!("at {i}").as_bytes()),
                "partition": 0,
                "timestamp": 1_700_000_000_000_i64 + i * 1000,
            })
        })
        .collect();
    let produced = b.python(
        "produce",
        serde_json::json!({ "topic": "timed", "records": records }),
    )?;
    ensure!(produced["unflushed"] == 0, "{produced}");
    let timed = consume(&b, "timed", &["-o", "beginning"])?;
    ensure!(timed.len() == 6, "{timed:?}");
    let from = consume(&b, "timed", &["-o", "s@1700000003000"])?;
    ensure!(from == timed[3..], "{from:?}");
    // Between two records: the next one.
    let between = consume(&b, "timed", &["-o", "s@1700000001500"])?;
    ensure!(between == timed[2..], "{between:?}");
    // Stop at a timestamp (not included).
    let window = consume(
        &b,
        "timed",
        &["-o", "s@1700000001000", "-o", "e@1700000004000"],
    )?;
    ensure!(window == timed[1..4], "{window:?}");
    // -Q: the offset for a time.
    let q = b.kcat_ok(&["-Q", "-t", "timed:0:1700000002000"], b"")?;
    ensure!(q.contains("timed [0]") && q.contains("offset 2"), "{q}");
    Ok(())
}

#[test]
fn offsets_are_per_partition_and_unknown_topics_fail_cleanly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("spread", 3, &[], &[])?;
    let input: String = (0..60).map(|i| format!("key{i}:value{i}\n")).collect();
    b.kcat_ok(
        &["-P", "-t", "spread", "-K:", "-z", "lz4"],
        input.as_bytes(),
    )?;

    let all = consume(&b, "spread", &["-o", "beginning"])?;
    ensure!(all.len() == 60, "{} records", all.len());
    let mut total = 0;
    for p in 0..3 {
        let mine: Vec<&Line> = all.iter().filter(|l| l.partition == p).collect();
        // Dense offsets from 0 in each partition, and a key always on the same partition.
        for (i, l) in mine.iter().enumerate() {
            ensure!(l.offset == i64::try_from(i)?, "partition {p}: {l:?}");
            ensure!(l.value == format!("value{}", &l.key[3..]), "{l:?}");
        }
        let ps = p.to_string();
        let alone = consume(&b, "spread", &["-p", &ps, "-o", "beginning"])?;
        ensure!(
            alone.iter().collect::<Vec<_>>() == mine,
            "partition {p} read alone"
        );
        // High watermark per partition, through a query for the latest offset (-1).
        let q = b.kcat_ok(&["-Q", "-t", &format!("spread:{p}:-1")], b"")?;
        ensure!(q.contains(&format!("offset {}", mine.len())), "{q}");
        total += mine.len();
    }
    ensure!(total == 60);
    // Keys spread over more than one partition.
    ensure!(
        (0..3)
            .filter(|p| all.iter().any(|l| l.partition == *p))
            .count()
            > 1,
        "all keys on one partition"
    );
    // A partition that does not exist: nothing, cleanly.
    let bad_partition = b.kcat(&["-C", "-t", "spread", "-p", "7", "-e", "-q"], b"")?;
    ensure!(!bad_partition.status.success());

    // Produce to an unknown topic: a non-zero exit that names the error.
    let out = b.kcat(
        &[
            "-P",
            "-t",
            "no-such-topic",
            "-X",
            "topic.metadata.propagation.max.ms=1000",
        ],
        b"lost\n",
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "stderr: {stderr}");
    ensure!(
        stderr.contains("Unknown topic or partition"),
        "stderr: {stderr}"
    );
    // The broker still serves, and created nothing.
    ensure!(!b.kcat_ok(&["-L"], b"")?.contains("no-such-topic"));
    ensure!(consume(&b, "spread", &["-o", "-1", "-p", "0"])?.len() == 1);
    Ok(())
}

/// A balanced consumer (`kcat -G`: JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
/// LeaveGroup) reads every record once across restarts: the second member of the group
/// resumes at the committed positions, which gRPC sees too.
#[test]
fn a_consumer_group_resumes_where_it_committed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("grouped", 2, &[], &[])?;
    let first: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    b.kcat_ok(&["-P", "-t", "grouped", "-K:"], first.as_bytes())?;
    let group = [
        "-G",
        "readers",
        "grouped",
        "-e",
        "-q",
        "-f",
        FORMAT,
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        "enable.auto.commit=true",
        "-X",
        "auto.commit.interval.ms=100",
    ];
    let read = parse(&b.kcat_ok(&group, b"")?)?;
    ensure!(read.len() == 20, "first member read {} records", read.len());
    let second: String = (20..25).map(|i| format!("k{i}:v{i}\n")).collect();
    b.kcat_ok(&["-P", "-t", "grouped", "-K:"], second.as_bytes())?;
    let resumed = parse(&b.kcat_ok(&group, b"")?)?;
    let mut keys: Vec<&str> = resumed.iter().map(|l| l.key.as_str()).collect();
    keys.sort_unstable();
    let mut expected: Vec<String> = (20..25).map(|i| format!("k{i}")).collect();
    expected.sort_unstable();
    ensure!(
        keys == expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "the restarted member read {keys:?}"
    );
    // The commits are the broker's: gRPC lists the group.
    let groups = String::from_utf8(b.process.ok(&["group", "list"], b"")?)?;
    ensure!(groups.contains("readers"), "{groups}");
    Ok(())
}
