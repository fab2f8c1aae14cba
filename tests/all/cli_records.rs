//! `distlog produce` and `distlog consume` as a kcat or rpk user drives them, against a real
//! `distlog serve` on loopback port 0.
//!
//! Guards: the JSON record shape in both directions (base64 bytes, null versus empty keys
//! and values, repeated headers in order, timestamps, partitions) and that a consumed line
//! replays into an identical record; text input with keys, kcat's -Z, a custom delimiter and
//! explicit timestamps; batching that never exceeds `max.message.bytes` and a clear error
//! for a record that alone does; every `--from` form, per-partition positions and the reset
//! rule; `--count`, `--until-end` and following until a signal; the one spelling of JSON
//! output; group consumption that resumes at its commits and commits on every exit.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use distlog_harness::{Process, Profile};
use serde_json::{Value, json};

fn bin() -> Result<PathBuf> {
    Ok(distlog_harness::distlog_bin(Profile::Caller)?)
}

fn broker(dir: &tempfile::TempDir) -> Result<Process> {
    Ok(Process::start(
        &bin()?,
        &dir.path().join("data"),
        "info",
        &[],
    )?)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64, as proto3 JSON writes bytes.
fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(B64[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// Parses JSON lines.
fn json_lines(out: &[u8]) -> Result<Vec<Value>> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).context("a JSON line"))
        .collect()
}

/// The stdout lines of a command, as text.
fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A `distlog` client child (a following consume), killed and reaped on drop; its stdout
/// lines arrive on a channel.
struct Consumer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Consumer {
    fn spawn(broker: &Process, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(bin()?)
            .args(args)
            .args(["--broker", &broker.grpc().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The next `n` lines, waiting at most 60 s for all of them.
    fn take(&self, n: usize) -> Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => out.push(line),
                Err(_) => bail!("got {} of {n} lines: {out:?}", out.len()),
            }
        }
        Ok(out)
    }

    fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill {name} failed");
        Ok(())
    }

    /// Waits at most 60 s for the child to exit.
    fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(Instant::now() < deadline, "the consumer did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, for at most 60 s.
fn eventually<T>(mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "condition not reached in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A group's committed offset per partition of `topic`.
fn committed(broker: &Process, group: &str, topic: &str) -> Result<Vec<(u64, i64)>> {
    let out: Value =
        serde_json::from_slice(&broker.ok(&["group", "offsets", group, "-o", "json"], b"")?)?;
    Ok(out
        .as_array()
        .context("offsets array")?
        .iter()
        .filter(|o| o["topic"] == topic)
        .map(|o| {
            (
                o["partition"].as_u64().unwrap_or(u64::MAX),
                o["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}

#[test]
fn json_records_keep_nulls_empties_headers_and_replay_identically() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "src", "--partitions", "2"], b"")?;
    b.ok(&["topic", "create", "copy", "--partitions", "2"], b"")?;
    let binary: Vec<u8> = (0..=255).collect();
    let input = [
        json!({"key": b64(b"k1"), "value": b64(b"v1"), "partition": 1,
               "timestamp_ms": 1_700_000_000_001_i64,
               "headers": [{"key": "h", "value": b64(b"1")}, {"key": "h", "value": ""},
                           {"key": "other", "value": b64(&binary)}]}),
        json!({"key": null, "value": "", "partition": 0, "timestamp_ms": "1700000000002"}),
        json!({"key": "", "value": null, "partition": 0}),
        json!({"key": b64(&binary), "value": b64(&binary), "partition": 0}),
    ];
    let mut text = Vec::new();
    for line in &input {
        text.extend_from_slice(line.to_string().as_bytes());
        text.push(b'\n');
    }
    text.extend_from_slice(b"\n   \n"); // blank lines are skipped
    b.ok(&["produce", "src", "--format", "json", "-q"], &text)?;

    let out = b.ok(&["consume", "src", "--format", "json", "-e", "-q"], b"")?;
    let got = json_lines(&out)?;
    ensure!(got.len() == 4, "{got:?}");
    // Partition 0 first (offsets 0..3), then partition 1.
    let expect = [
        (0, 0, &input[1]),
        (0, 1, &input[2]),
        (0, 2, &input[3]),
        (1, 0, &input[0]),
    ];
    for (record, (partition, offset, sent)) in got.iter().zip(expect) {
        ensure!(record["topic"] == "src", "{record}");
        ensure!(
            record["partition"] == partition && record["offset"] == offset,
            "{record}"
        );
        ensure!(record["key"] == sent["key"], "key: {record} vs {sent}");
        ensure!(
            record["value"] == sent["value"],
            "value: {record} vs {sent}"
        );
        let headers = sent.get("headers").cloned().unwrap_or_else(|| json!([]));
        ensure!(record["headers"] == headers, "headers: {record}");
        ensure!(record["timestamp_ms"].is_i64(), "{record}");
    }
    ensure!(
        got[0]["timestamp_ms"] == 1_700_000_000_002_i64,
        "{}",
        got[0]
    );
    ensure!(
        got[3]["timestamp_ms"] == 1_700_000_000_001_i64,
        "{}",
        got[3]
    );
    ensure!(
        got[1]["key"] == "" && got[1]["value"].is_null(),
        "{}",
        got[1]
    );

    // What consume printed replays into an identical record in another topic.
    b.ok(&["produce", "copy", "--format", "json", "-q"], &out)?;
    let copied = json_lines(&b.ok(&["consume", "copy", "--format", "json", "-e", "-q"], b"")?)?;
    ensure!(copied.len() == got.len());
    for (a, c) in got.iter().zip(&copied) {
        for field in [
            "partition",
            "offset",
            "timestamp_ms",
            "key",
            "value",
            "headers",
        ] {
            ensure!(a[field] == c[field], "{field}: {a} vs {c}");
        }
        ensure!(c["topic"] == "copy");
    }

    // Bad JSON input names the record and what is accepted; nothing of it is appended.
    let bad = b.cli(
        &["produce", "src", "--format", "json", "-q"],
        br#"{"value": "not base64!"}"#,
    )?;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        !bad.status.success() && stderr.contains("input record 1") && stderr.contains("base64"),
        "{stderr}"
    );
    let unknown = b.cli(
        &["produce", "src", "--format", "json", "-q"],
        br#"{"vaule": "aGk="}"#,
    )?;
    ensure!(!unknown.status.success());
    ensure!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown field"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    Ok(())
}

#[test]
fn text_input_keys_nulls_delimiters_and_timestamps() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "t"], b"")?;
    // NUL-delimited records holding newlines; -Z turns empty values into tombstones and
    // empty keys into null keys; the timestamp applies to every record.
    b.ok(
        &[
            "produce",
            "t",
            "-K",
            "=",
            "-Z",
            "-D",
            r"\0",
            "--timestamp",
            "2024-05-01T12:00:00.250Z",
            "-H",
            "src=cli",
            "-H",
            "src=again",
            "-q",
        ],
        b"k1=line\none\0k2=\0=v3\0novalue-key-only\0last=x",
    )?;
    let out = b.ok(
        &[
            "consume",
            "t",
            "-e",
            "--print-null",
            "--time-format",
            "rfc3339",
            "--format",
            r"%o|%k|%K|%v|%V|%t|%h\n",
            "-q",
        ],
        b"",
    )?;
    let got = String::from_utf8(out)?;
    let expect = "0|k1|2|line\none|8|2024-05-01T12:00:00.250Z|src=cli,src=again\n\
                  1|k2|2|NULL|-1|2024-05-01T12:00:00.250Z|src=cli,src=again\n\
                  2|NULL|-1|v3|2|2024-05-01T12:00:00.250Z|src=cli,src=again\n\
                  3|NULL|-1|novalue-key-only|16|2024-05-01T12:00:00.250Z|src=cli,src=again\n\
                  4|last|4|x|1|2024-05-01T12:00:00.250Z|src=cli,src=again\n";
    ensure!(got == expect, "{got}");
    for (format, first) in [("unix-ms", "1714564800250"), ("unix", "1714564800")] {
        let out = b.ok(
            &[
                "consume",
                "t",
                "-e",
                "-c",
                "1",
                "--time-format",
                format,
                "--format",
                r"%t\n",
                "-q",
            ],
            b"",
        )?;
        ensure!(lines(&out) == [first], "{format}: {out:?}");
    }

    // Without -Z an empty key before the separator is an empty key, none is a null key,
    // and an empty value is empty (JSON tells them apart).
    b.ok(&["topic", "create", "plain"], b"")?;
    b.ok(&["produce", "plain", "-K", ":", "-q"], b":a\nb\nc:\n")?;
    let got = json_lines(&b.ok(&["consume", "plain", "--format", "json", "-e", "-q"], b"")?)?;
    let kv: Vec<(Value, Value)> = got
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    ensure!(
        kv == [
            (json!(""), json!(b64(b"a"))),
            (Value::Null, json!(b64(b"b"))),
            (json!(b64(b"c")), json!("")),
        ],
        "{kv:?}"
    );

    let bad = b.cli(&["produce", "t", "--timestamp", "yesterday", "-q"], b"x\n")?;
    ensure!(!bad.status.success());
    ensure!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    Ok(())
}

#[test]
fn batches_never_exceed_max_message_bytes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(
        &["topic", "create", "small", "-c", "max.message.bytes=4096"],
        b"",
    )?;
    // 300 records of 1000 bytes: a 1 MiB default batch would be refused by the broker.
    let mut input = Vec::new();
    for i in 0..300 {
        input.extend_from_slice(format!("{i:04}").as_bytes());
        input.extend_from_slice(&[b'x'; 996]);
        input.push(b'\n');
    }
    b.ok(&["produce", "small", "-q"], &input)?;
    // Even an explicit larger --batch-bytes is held to the topic's limit.
    b.ok(
        &["produce", "small", "--batch-bytes", "10000000", "-q"],
        &input,
    )?;
    let batches: Value =
        serde_json::from_slice(&b.ok(&["consume", "small", "--raw", "-o", "json"], b"")?)?;
    let batches = batches.as_array().context("batches")?;
    let mut records = 0;
    for batch in batches {
        let stored = batch["stored_bytes"].as_u64().context("stored_bytes")?;
        ensure!(stored <= 4096, "a {stored}-byte batch: {batch}");
        records += batch["last_offset"].as_u64().context("last")? + 1
            - batch["base_offset"].as_u64().context("base")?;
    }
    ensure!(
        records == 600,
        "{records} records in {} batches",
        batches.len()
    );
    ensure!(batches.len() >= 150, "{} batches", batches.len());
    let consumed = b.ok(&["consume", "small", "-e", "-q"], b"")?;
    ensure!(consumed == [input.clone(), input].concat());

    // A record that alone exceeds the limit fails, naming it, before it is sent.
    let mut big = b"ok\n".to_vec();
    big.extend_from_slice(&[b'y'; 5000]);
    big.push(b'\n');
    let out = b.cli(&["produce", "small", "-q"], &big)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{stderr}");
    ensure!(
        stderr.contains("input record 2") && stderr.contains("max.message.bytes of 4096"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn from_accepts_every_position_form_and_resets_out_of_range() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "pos", "--partitions", "2"], b"")?;
    // Partition p holds p0..p9 with timestamps 1_000 * (offset + 1) (p0) or 3 h ago and
    // now (p1: 5 old, 5 new).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut input = Vec::new();
    for i in 0..10i64 {
        let p1_ts = if i < 5 { now - 3 * 3_600_000 } else { now };
        for (p, ts) in [(0, 1_700_000_000_000 + 1000 * i), (1, p1_ts)] {
            let line = json!({"value": b64(format!("p{p}-{i}").as_bytes()), "partition": p,
                              "timestamp_ms": ts});
            input.extend_from_slice(line.to_string().as_bytes());
            input.push(b'\n');
        }
    }
    b.ok(&["produce", "pos", "--format", "json", "-q"], &input)?;
    let read = |from: &str, extra: &[&str]| -> Result<Vec<String>> {
        let args = [&["consume", "pos", "-e", "-q", "--from", from][..], extra].concat();
        Ok(lines(&b.ok(&args, b"")?))
    };
    let range = |p: u32, r: std::ops::Range<u32>| r.map(move |i| format!("p{p}-{i}"));
    let both = |a: std::ops::Range<u32>, c: std::ops::Range<u32>| -> Vec<String> {
        range(0, a).chain(range(1, c)).collect()
    };

    ensure!(read("earliest", &[])? == both(0..10, 0..10));
    ensure!(read("latest", &[])?.is_empty());
    ensure!(read("7", &[])? == both(7..10, 7..10));
    ensure!(
        read("-3", &[])? == both(7..10, 7..10),
        "last 3 per partition"
    );
    ensure!(
        read("-30", &[])? == both(0..10, 0..10),
        "-N stops at the log start"
    );
    ensure!(read("0:5,1:latest", &[])? == both(5..10, 10..10));
    ensure!(
        read("1:-2", &[])? == both(0..0, 8..10),
        "only the partition named"
    );
    ensure!(read("earliest,1:8", &[])? == both(0..10, 8..10));
    ensure!(read("-1", &["-p", "1"])? == both(0..0, 9..10));
    // Times: @millis, RFC 3339 (with an offset), a duration ago.
    ensure!(
        read("0:@1700000009500", &[])?.is_empty(),
        "after every record"
    );
    ensure!(read("0:@1700000004000", &[])? == both(4..10, 0..0));
    ensure!(read("0:2023-11-14T22:13:24.500Z", &[])? == both(5..10, 0..0));
    ensure!(read("0:2023-11-14T23:13:24+01:00", &[])? == both(4..10, 0..0));
    ensure!(
        read("1:1h", &[])? == both(0..0, 5..10),
        "records of the last hour"
    );
    ensure!(read("1:1d", &[])? == both(0..0, 0..10));

    // Out of range: nearest (the default) moves past the end to the end, so nothing;
    // earliest from the start; fail names the range.
    ensure!(read("100", &[])?.is_empty());
    ensure!(read("100", &["--reset", "earliest"])? == both(0..10, 0..10));
    ensure!(read("0:100", &["--reset", "latest"])?.is_empty());
    let out = b.cli(
        &[
            "consume", "pos", "-e", "-q", "--from", "100", "--reset", "fail",
        ],
        b"",
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{stderr}");
    ensure!(
        stderr.contains("out of range") && stderr.contains("[0, 10)"),
        "{stderr}"
    );

    // Bad positions are refused with what is accepted.
    for bad in ["soon", "0:nope", "5:earliest", "earliest,latest"] {
        let out = b.cli(&["consume", "pos", "-e", "-q", "--from", bad], b"")?;
        ensure!(!out.status.success(), "{bad} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            stderr.contains("expected") || stderr.contains("partition") || stderr.contains("two"),
            "{bad}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn count_until_end_and_following_until_a_signal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "live", "--partitions", "2"], b"")?;
    b.ok(&["produce", "live", "-p", "0", "-q"], b"a\nb\nc\n")?;
    ensure!(lines(&b.ok(&["consume", "live", "-c", "2", "-q"], b"")?) == ["a", "b"]);
    ensure!(lines(&b.ok(&["consume", "live", "--max", "1", "-q"], b"")?) == ["a"]);
    ensure!(lines(&b.ok(&["consume", "live", "--until-end", "-q"], b"")?) == ["a", "b", "c"]);

    // Without --until-end, --count waits for records appended later.
    let counted = Consumer::spawn(&b, &["consume", "live", "-c", "5", "-q"])?;
    ensure!(counted.take(3)? == ["a", "b", "c"]);
    b.ok(&["produce", "live", "-p", "1", "-q"], b"d\ne\nf\n")?;
    let mut counted = counted;
    ensure!(counted.take(2)? == ["d", "e"]);
    ensure!(counted.wait()?.success());

    // Without either, it follows until interrupted, and exits cleanly on SIGINT / SIGTERM.
    for signal in ["-INT", "-TERM"] {
        let mut tail = Consumer::spawn(&b, &["consume", "live", "--from", "latest", "-q"])?;
        // The subscription is live once a record produced now arrives.
        let marker = format!("marker{signal}");
        let got = eventually(|| {
            b.ok(
                &["produce", "live", "-p", "0", "-q"],
                format!("{marker}\n").as_bytes(),
            )?;
            Ok(tail.lines.recv_timeout(Duration::from_millis(500)).ok())
        })?;
        ensure!(got == marker, "{got}");
        tail.signal(signal)?;
        ensure!(tail.wait()?.success(), "{signal}");
    }

    // -e and --follow contradict each other.
    let out = b.cli(&["consume", "live", "-e", "--follow"], b"")?;
    ensure!(!out.status.success());
    Ok(())
}

#[test]
fn json_output_has_one_spelling() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "j"], b"")?;
    b.ok(&["produce", "j", "-q"], b"x\n")?;
    let out = b.cli(&["consume", "j", "-e", "-o", "json"], b"")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "-o json accepted");
    ensure!(stderr.contains("--format json"), "{stderr}");
    let ok = json_lines(&b.ok(&["consume", "j", "-e", "--format", "json"], b"")?)?;
    ensure!(ok.len() == 1 && ok[0]["value"] == b64(b"x"));
    Ok(())
}

#[test]
fn group_consumption_resumes_at_commits_and_commits_on_exit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = broker(&dir)?;
    b.ok(&["topic", "create", "work", "--partitions", "2"], b"")?;
    b.ok(&["produce", "work", "-p", "0", "-q"], b"0\n1\n2\n3\n4\n5\n")?;
    b.ok(&["produce", "work", "-p", "1", "-q"], b"a\nb\n")?;

    // --count: the commit is the next offset to read, made on exit.
    let first = lines(&b.ok(
        &["consume", "work", "--group", "g", "-e", "-c", "4", "-q"],
        b"",
    )?);
    ensure!(first == ["0", "1", "2", "3"], "{first:?}");
    let c = committed(&b, "g", "work")?;
    ensure!(c == [(0, 4), (1, 0)], "{c:?}");

    // The next run starts there; --from only applies to partitions without a commit.
    let rest = lines(&b.ok(
        &["consume", "work", "-G", "g", "-e", "--from", "latest", "-q"],
        b"",
    )?);
    ensure!(rest == ["4", "5", "a", "b"], "{rest:?}");
    ensure!(committed(&b, "g", "work")? == [(0, 6), (1, 2)]);
    ensure!(lines(&b.ok(&["consume", "work", "-G", "g", "-e", "-q"], b"")?).is_empty());

    // A fresh group with --from latest commits its start, so records produced before its
    // next run are read then (as a Kafka consumer commits its reset position).
    ensure!(
        lines(&b.ok(
            &[
                "consume", "work", "-G", "late", "-e", "--from", "latest", "-q"
            ],
            b""
        )?)
        .is_empty()
    );
    ensure!(committed(&b, "late", "work")? == [(0, 6), (1, 2)]);
    b.ok(&["produce", "work", "-p", "1", "-q"], b"c\n")?;
    ensure!(lines(&b.ok(&["consume", "work", "-G", "late", "-e", "-q"], b"")?) == ["c"]);

    // Following: commits every --commit-interval while running, and on SIGINT.
    let mut tail = Consumer::spawn(
        &b,
        &[
            "consume",
            "work",
            "-G",
            "g",
            "--commit-interval",
            "100ms",
            "-q",
        ],
    )?;
    ensure!(tail.take(1)? == ["c"]);
    eventually(|| Ok((committed(&b, "g", "work")? == [(0, 6), (1, 3)]).then_some(())))?;
    b.ok(&["produce", "work", "-p", "0", "-q"], b"6\n7\n")?;
    ensure!(tail.take(2)? == ["6", "7"]);
    tail.signal("-INT")?;
    ensure!(tail.wait()?.success());
    ensure!(committed(&b, "g", "work")? == [(0, 8), (1, 3)]);

    // An offset committed by hand is where the group resumes.
    b.ok(&["group", "commit", "h", "work", "0", "2"], b"")?;
    let from_commit = lines(&b.ok(&["consume", "work", "-G", "h", "-e", "-p", "0", "-q"], b"")?);
    ensure!(
        from_commit == ["2", "3", "4", "5", "6", "7"],
        "{from_commit:?}"
    );
    Ok(())
}

#[test]
fn positions_before_the_log_start_move_to_it_unless_asked_to_fail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = Process::start(
        &bin()?,
        &dir.path().join("data"),
        "info",
        &["--set", "broker.retention_check_interval_ms=100"],
    )?;
    b.ok(
        &[
            "topic",
            "create",
            "aged",
            "-c",
            "segment.bytes=1048576",
            "-c",
            "retention.bytes=1048576",
        ],
        b"",
    )?;
    // 3000 records of 1000 bytes: three segments, of which retention deletes the oldest.
    let mut input = Vec::new();
    for i in 0..3000 {
        input.extend_from_slice(format!("{i:04}").as_bytes());
        input.extend_from_slice(&[b'x'; 995]);
        input.push(b'\n');
    }
    b.ok(&["produce", "aged", "-q"], &input)?;
    let start = eventually(|| {
        let described: Value =
            serde_json::from_slice(&b.ok(&["topic", "describe", "aged", "-o", "json"], b"")?)?;
        let start = described["partitions"][0]["log_start_offset"]
            .as_i64()
            .context("log_start_offset")?;
        Ok((start > 0).then_some(start))
    })?;
    let first = |args: &[&str]| -> Result<String> {
        let out = b.ok(
            &[&["consume", "aged", "-e", "-c", "1", "-q"][..], args].concat(),
            b"",
        )?;
        Ok(String::from_utf8_lossy(&out).chars().take(4).collect())
    };
    // nearest (default) and earliest: the log start; latest: the end (nothing).
    ensure!(first(&["--from", "0"])? == format!("{start:04}"));
    ensure!(first(&["--from", "0", "--reset", "earliest"])? == format!("{start:04}"));
    ensure!(first(&["--from", "0", "--reset", "latest"])?.is_empty());
    let out = b.cli(
        &[
            "consume", "aged", "-e", "-q", "--from", "0", "--reset", "fail",
        ],
        b"",
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{stderr}");
    ensure!(
        stderr.contains(&format!("the log holds offsets [{start}, 3000)")),
        "{stderr}"
    );
    // A group's commit that retention has passed resumes at the log start.
    b.ok(&["group", "commit", "old", "aged", "0", "0"], b"")?;
    ensure!(first(&["-G", "old"])? == format!("{start:04}"));
    ensure!(committed(&b, "old", "aged")? == [(0, start + 1)]);
    Ok(())
}
