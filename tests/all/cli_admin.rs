//! The operator subcommands end to end, driving the real `distlog` binary against a real
//! `distlog serve` on loopback port 0: topics (default partition count, growth, deleting
//! several, config sources, record counts that stay true after compaction), consumer groups
//! (describe, lag, reset, delete, commits beyond the log end refused, a group without
//! commits answering empty), `cluster info` / `health`, shell completions, man pages and
//! the `serve --check-config` round trip.
//!
//! Guards the rough edges issue 16 reported: `topic create` without `-p` ignoring the
//! broker's default, commits past the log end accepted, NOT_FOUND for a group without
//! commits, `--check-config` printing Rust debug output that could not be fed back.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use distlog_harness::{Process, Profile};
use serde_json::Value;

fn distlog_bin() -> Result<PathBuf> {
    Ok(distlog_harness::distlog_bin(Profile::Caller)?)
}

fn start(data_dir: &Path, extra: &[&str]) -> Result<Process> {
    Ok(Process::start(&distlog_bin()?, data_dir, "info", extra)?)
}

/// Runs `distlog args` (no broker) and returns its output.
fn run(args: &[&str]) -> Result<Output> {
    Ok(distlog_harness::run(&distlog_bin()?, args, b"")?)
}

fn json(broker: &Process, args: &[&str]) -> Result<Value> {
    let out = broker.ok(&[args, &["-o", "json"]].concat(), b"")?;
    serde_json::from_slice(&out).with_context(|| String::from_utf8_lossy(&out).into_owned())
}

fn text(broker: &Process, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8(broker.ok(args, b"")?)?)
}

/// Runs a command that must fail; returns its stderr.
fn fails(broker: &Process, args: &[&str]) -> Result<String> {
    let out = broker.cli(args, b"")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(stderr)
}

fn source_of(described: &Value, key: &str) -> Option<String> {
    described["config_entries"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == key)
        .and_then(|e| e["source"].as_str().map(str::to_owned))
}

#[test]
fn topics_default_partitions_growth_multi_delete_and_config_sources() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = start(
        dir.path(),
        &[
            "--set",
            "broker.default_partitions=3",
            "--set",
            "broker.topic_defaults.retention.bytes=1000000000",
        ],
    )?;

    // Without -p the broker's default applies; with -p, the count given.
    let created = text(&broker, &["topic", "create", "dflt"])?;
    ensure!(created.contains("3 partition(s)"), "{created}");
    broker.ok(
        &[
            "topic",
            "create",
            "two",
            "-p",
            "2",
            "-c",
            "retention.ms=60000",
        ],
        b"",
    )?;
    let list = json(&broker, &["topic", "list"])?;
    ensure!(
        list == serde_json::json!([
            {"name": "dflt", "partitions": 3},
            {"name": "two", "partitions": 2},
        ]),
        "{list}"
    );

    // Describe marks where each value comes from.
    let described = json(&broker, &["topic", "describe", "two"])?;
    ensure!(source_of(&described, "retention.ms").as_deref() == Some("topic"));
    ensure!(source_of(&described, "retention.bytes").as_deref() == Some("broker"));
    ensure!(source_of(&described, "segment.bytes").as_deref() == Some("default"));
    ensure!(
        described["config"]["retention.bytes"] == "1000000000",
        "{described}"
    );
    let table = text(&broker, &["topic", "describe", "two"])?;
    ensure!(
        table.contains("SOURCE")
            && table
                .lines()
                .any(|l| l.starts_with("retention.ms") && l.trim_end().ends_with("topic")),
        "{table}"
    );

    // Growth: validate-only changes nothing, then the count grows; it never shrinks.
    let checked = text(
        &broker,
        &[
            "topic",
            "add-partitions",
            "two",
            "-n",
            "5",
            "--validate-only",
        ],
    )?;
    ensure!(checked.contains("from 2 to 5"), "{checked}");
    ensure!(
        json(&broker, &["topic", "describe", "two"])?["partitions"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    );
    let grown = json(&broker, &["topic", "add-partitions", "two", "--total", "5"])?;
    ensure!(grown["partitions"] == 5, "{grown}");
    ensure!(
        json(&broker, &["topic", "describe", "two"])?["partitions"]
            .as_array()
            .map(Vec::len)
            == Some(5)
    );
    broker.ok(
        &["produce", "two", "-p", "4", "-q"],
        b"into a new partition\n",
    )?;
    let stderr = fails(&broker, &["topic", "add-partitions", "two", "-n", "3"])?;
    ensure!(
        stderr.contains("InvalidArgument") && stderr.contains("only grow"),
        "{stderr}"
    );
    let stderr = fails(&broker, &["topic", "add-partitions", "nope", "-n", "3"])?;
    ensure!(stderr.contains("NotFound"), "{stderr}");

    // Several topics at once: every existing one goes, the missing one is reported.
    broker.ok(&["topic", "create", "third"], b"")?;
    let out = broker.cli(&["topic", "delete", "dflt", "missing", "two"], b"")?;
    ensure!(!out.status.success(), "a missing topic fails the command");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stdout.contains("deleted topic dflt") && stdout.contains("deleted topic two"),
        "{stdout}"
    );
    ensure!(
        stderr.contains("missing") && stderr.contains("NotFound"),
        "{stderr}"
    );
    let deleted = json(&broker, &["topic", "delete", "third"])?;
    ensure!(
        deleted["deleted"] == serde_json::json!(["third"]),
        "{deleted}"
    );
    ensure!(json(&broker, &["topic", "list"])? == serde_json::json!([]));
    broker.terminate()?;
    Ok(())
}

/// The sum of a described topic's partition record counts and of its offset spans.
fn counts(described: &Value) -> (u64, u64) {
    let parts = described["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let records = parts
        .iter()
        .filter_map(|p| p["record_count"].as_u64())
        .sum();
    let span = parts
        .iter()
        .filter_map(|p| Some(p["log_end_offset"].as_u64()? - p["log_start_offset"].as_u64()?))
        .sum();
    (records, span)
}

#[test]
fn record_counts_stay_true_after_compaction() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Maintenance every 50 ms; segments roll after 1 ms, so each produce seals the last.
    let broker = start(
        dir.path(),
        &["--set", "broker.retention_check_interval_ms=50"],
    )?;
    broker.ok(
        &[
            "topic",
            "create",
            "kv",
            "-p",
            "1",
            "-c",
            "cleanup.policy=compact",
            "-c",
            "segment.ms=1",
            "-c",
            "min.cleanable.dirty.ratio=0",
            "-c",
            "min.compaction.lag.ms=0",
        ],
        b"",
    )?;
    // Ten writes of one key, then other keys: a compacted log keeps one record per key.
    for round in 0..4 {
        let lines: String = (0..10)
            .map(|i| format!("same:v{round}-{i}\nk{round}:x{i}\n"))
            .collect();
        broker.ok(&["produce", "kv", "-K", ":", "-q"], lines.as_bytes())?;
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.ok(&["produce", "kv", "-K", ":", "-q"], b"last:one\n")?;
    // The cleaner runs in the background from here on (every 50 ms).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (_, span) = loop {
        let described = json(&broker, &["topic", "describe", "kv"])?;
        let (records, span) = counts(&described);
        if records < span {
            break (records, span);
        }
        if Instant::now() > deadline {
            bail!("the cleaner never ran: {described}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(span == 81, "offsets are kept: span {span}");
    // What the count says is what a reader gets. The cleaner keeps running in the
    // background, so compare once a count holds across a read.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = counts(&json(&broker, &["topic", "describe", "kv"])?).0;
        let consumed = broker.ok(&["consume", "kv", "--from", "earliest", "-e", "-q"], b"")?;
        let read = consumed
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        let after = counts(&json(&broker, &["topic", "describe", "kv"])?).0;
        if before == after {
            ensure!(
                read == after,
                "describe says {after} records, consume read {read}"
            );
            break;
        }
        ensure!(Instant::now() < deadline, "the count never settled");
    }
    let described = json(&broker, &["topic", "describe", "kv", "--segments"])?;
    let per_segment: u64 = described["partitions"][0]["segments"]
        .as_array()
        .context("segments")?
        .iter()
        .filter_map(|s| s["record_count"].as_u64())
        .sum();
    let records = described["partitions"][0]["record_count"].as_u64();
    ensure!(
        Some(per_segment) == records,
        "segments hold {per_segment}, partition says {records:?}"
    );
    broker.terminate()?;
    Ok(())
}

fn partitions(v: &Value) -> Vec<(u64, i64)> {
    v["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((p["partition"].as_u64()?, p["new_offset"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn committed(broker: &Process, group: &str) -> Result<Vec<(u64, i64)>> {
    let d = json(broker, &["group", "describe", group])?;
    Ok(d["partitions"]
        .as_array()
        .context("partitions")?
        .iter()
        .filter_map(|p| Some((p["partition"].as_u64()?, p["committed_offset"].as_i64()?)))
        .collect())
}

#[test]
fn groups_describe_lag_reset_and_delete() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = start(dir.path(), &[])?;
    broker.ok(&["topic", "create", "t", "-p", "2"], b"")?;
    let ten: String = (0..10).map(|i| format!("r{i}\n")).collect();
    broker.ok(&["produce", "t", "-p", "0", "-q"], ten.as_bytes())?;
    broker.ok(&["produce", "t", "-p", "1", "-q"], b"a\nb\nc\nd\n")?;

    // A group without commits is an empty answer, not NOT_FOUND.
    let empty = json(&broker, &["group", "describe", "nobody"])?;
    ensure!(
        empty["partitions"] == serde_json::json!([]) && empty["total_lag"] == 0,
        "{empty}"
    );
    ensure!(text(&broker, &["group", "describe", "nobody"])?.contains("no committed offsets"));
    ensure!(json(&broker, &["group", "offsets", "nobody"])? == serde_json::json!([]));
    ensure!(json(&broker, &["group", "lag", "nobody"])?["total_lag"] == 0);

    // Commits: up to the log end; beyond it is OUT_OF_RANGE and nothing is committed.
    broker.ok(&["group", "commit", "g", "t", "0", "3"], b"")?;
    broker.ok(&["group", "commit", "g", "t", "1", "4"], b"")?;
    let stderr = fails(&broker, &["group", "commit", "g", "t", "0", "11"])?;
    ensure!(
        stderr.contains("OutOfRange") && stderr.contains("log end offset 10"),
        "{stderr}"
    );
    let stderr = fails(&broker, &["group", "commit", "g", "t", "7", "0"])?;
    ensure!(stderr.contains("NotFound"), "{stderr}");
    ensure!(committed(&broker, "g")? == [(0, 3), (1, 4)]);

    // Describe and lag.
    let d = json(&broker, &["group", "describe", "g"])?;
    ensure!(d["total_lag"] == 7, "{d}");
    ensure!(d["partitions"][0]["log_end_offset"] == 10 && d["partitions"][0]["lag"] == 7);
    ensure!(d["partitions"][1]["lag"] == 0);
    let table = text(&broker, &["group", "describe", "g"])?;
    ensure!(
        table.contains("total lag 7") && table.contains("LOG-END-OFFSET"),
        "{table}"
    );
    let lag = text(&broker, &["group", "lag", "g", "-t", "t"])?;
    ensure!(
        lag.lines()
            .any(|l| l.starts_with("TOTAL") && l.ends_with('7')),
        "{lag}"
    );
    ensure!(text(&broker, &["group", "list"])?.lines().any(|l| l == "g"));

    // Reset: a dry run commits nothing; then earliest, latest, shifts, offsets (clamped),
    // times; only the partitions named.
    let plan = json(
        &broker,
        &[
            "group",
            "reset",
            "g",
            "-t",
            "t",
            "--to",
            "earliest",
            "--dry-run",
        ],
    )?;
    ensure!(
        plan["dry_run"] == true && partitions(&plan) == [(0, 0), (1, 0)],
        "{plan}"
    );
    ensure!(plan["partitions"][0]["previous_offset"] == 3);
    ensure!(
        committed(&broker, "g")? == [(0, 3), (1, 4)],
        "a dry run commits nothing"
    );
    let out = text(
        &broker,
        &[
            "group",
            "reset",
            "g",
            "-t",
            "t",
            "--to",
            "earliest",
            "--dry-run",
        ],
    )?;
    ensure!(
        out.contains("dry run") && out.contains("PREVIOUS-OFFSET"),
        "{out}"
    );
    broker.ok(&["group", "reset", "g", "-t", "t", "--to", "latest"], b"")?;
    ensure!(committed(&broker, "g")? == [(0, 10), (1, 4)]);
    broker.ok(
        &[
            "group",
            "reset",
            "g",
            "-t",
            "t",
            "--shift-by",
            "-6",
            "--execute",
        ],
        b"",
    )?;
    ensure!(committed(&broker, "g")? == [(0, 4), (1, 0)]);
    broker.ok(
        &["group", "reset", "g", "-t", "t", "--to", "99", "-p", "1"],
        b"",
    )?;
    ensure!(
        committed(&broker, "g")? == [(0, 4), (1, 4)],
        "clamped to the log end"
    );
    broker.ok(
        &[
            "group",
            "reset",
            "g",
            "-t",
            "t",
            "--to",
            "2999-01-01T00:00:00Z",
        ],
        b"",
    )?;
    ensure!(
        committed(&broker, "g")? == [(0, 10), (1, 4)],
        "after every record: the end"
    );
    broker.ok(
        &["group", "reset", "g", "-t", "t", "--to", "1h", "-p", "0"],
        b"",
    )?;
    ensure!(
        committed(&broker, "g")? == [(0, 0), (1, 4)],
        "an hour ago: the first record"
    );
    broker.ok(
        &[
            "group",
            "reset",
            "g",
            "-t",
            "t",
            "--to",
            "2000-01-01T00:00:00Z",
            "-p",
            "1",
        ],
        b"",
    )?;
    ensure!(committed(&broker, "g")? == [(0, 0), (1, 0)]);

    // Bad resets: shift without a commit, unknown topic and partition, bad targets.
    let stderr = fails(
        &broker,
        &["group", "reset", "fresh", "-t", "t", "--shift-by", "1"],
    )?;
    ensure!(
        stderr.contains("FailedPrecondition") && stderr.contains("no committed offset"),
        "{stderr}"
    );
    let stderr = fails(
        &broker,
        &["group", "reset", "g", "-t", "nope", "--to", "earliest"],
    )?;
    ensure!(stderr.contains("NotFound"), "{stderr}");
    let stderr = fails(
        &broker,
        &[
            "group", "reset", "g", "-t", "t", "-p", "9", "--to", "earliest",
        ],
    )?;
    ensure!(stderr.contains("NotFound"), "{stderr}");
    let stderr = fails(
        &broker,
        &["group", "reset", "g", "-t", "t", "--to", "sometime"],
    )?;
    ensure!(stderr.contains("expected earliest, latest"), "{stderr}");
    let stderr = fails(&broker, &["group", "reset", "g", "-t", "t"])?;
    ensure!(
        stderr.contains("--to") && stderr.contains("--shift-by"),
        "{stderr}"
    );
    // A reset of a group that never committed creates its commits.
    broker.ok(
        &["group", "reset", "fresh", "-t", "t", "--to", "latest"],
        b"",
    )?;
    ensure!(committed(&broker, "fresh")? == [(0, 10), (1, 4)]);

    // Delete several: the existing ones go, the missing one fails the command.
    let out = broker.cli(&["group", "delete", "g", "ghost", "fresh"], b"")?;
    ensure!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        stdout.contains("deleted group g (2 committed offset(s))")
            && stdout.contains("deleted group fresh"),
        "{stdout}"
    );
    ensure!(String::from_utf8_lossy(&out.stderr).contains("ghost"));
    ensure!(json(&broker, &["group", "list"])? == serde_json::json!([]));
    ensure!(committed(&broker, "g")?.is_empty());

    // Restart: the resets were durable commits.
    broker.ok(
        &["group", "reset", "kept", "-t", "t", "--to", "5", "-p", "0"],
        b"",
    )?;
    broker.terminate()?;
    let broker = start(dir.path(), &[])?;
    ensure!(committed(&broker, "kept")? == [(0, 5)]);
    broker.terminate()?;
    Ok(())
}

#[test]
fn cluster_info_and_health_describe_the_running_broker() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = start(dir.path(), &["--set", "kafka.node_id=7"])?;
    broker.ok(&["topic", "create", "a", "-p", "2"], b"")?;
    broker.ok(&["group", "commit", "g", "a", "0", "0"], b"")?;

    let info = json(&broker, &["cluster", "info"])?;
    ensure!(info["version"] == env!("CARGO_PKG_VERSION"), "{info}");
    ensure!(info["node_id"] == 7 && info["status"] == "serving" && info["healthy"] == true);
    ensure!(
        info["topics"] == 1 && info["partitions"] == 2 && info["groups"] == 1,
        "{info}"
    );
    ensure!(info["problems"] == serde_json::json!([]));
    let address = |name: &str| {
        info["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == name))
            .and_then(|l| l["address"].as_str().map(str::to_owned))
    };
    ensure!(address("grpc") == Some(broker.grpc().to_string()), "{info}");
    ensure!(
        address("kafka") == broker.kafka().map(|a| a.to_string()),
        "{info}"
    );
    ensure!(
        address("metrics") == Some(broker.metrics().to_string()),
        "{info}"
    );
    let started = info["started_at_ms"].as_i64().context("started_at_ms")?;
    let first_uptime = info["uptime_ms"].as_i64().context("uptime_ms")?;
    ensure!(started > 1_600_000_000_000 && first_uptime >= 0, "{info}");

    let table = text(&broker, &["cluster", "info"])?;
    ensure!(
        table.contains("VERSION")
            && table.contains(env!("CARGO_PKG_VERSION"))
            && table.contains("serving")
            && table.contains(&broker.grpc().to_string()),
        "{table}"
    );
    let health = text(&broker, &["cluster", "health"])?;
    ensure!(
        health.contains("Healthy: true") && health.contains("Status: serving"),
        "{health}"
    );
    let health = json(&broker, &["cluster", "health"])?;
    ensure!(health["healthy"] == true, "{health}");
    // Uptime moves on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&broker, &["cluster", "info"])?["uptime_ms"].as_i64() <= Some(first_uptime) {
        ensure!(Instant::now() < deadline, "uptime does not move");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.terminate()?;

    // Nothing listens any more: health fails (exit status non-zero), saying why.
    let out = run(&["cluster", "health", "-b", &broker_addr_gone()?])?;
    ensure!(!out.status.success());
    ensure!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    Ok(())
}

/// A loopback address nothing listens on.
fn broker_addr_gone() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(addr.to_string())
}

#[test]
fn completions_and_man_pages_cover_every_subcommand() -> Result<()> {
    for (shell, marker) in [
        ("bash", "_distlog()"),
        ("zsh", "#compdef distlog"),
        ("fish", "complete -c distlog"),
        ("elvish", "distlog"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(&["completions", shell])?;
        ensure!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout)?;
        ensure!(script.contains(marker), "{shell} script lacks {marker:?}");
        ensure!(
            script.contains("add-partitions") && script.contains("shift-by"),
            "{shell} script misses subcommands or flags"
        );
    }
    let out = run(&["completions", "tcsh"])?;
    ensure!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("bash"));

    let out = run(&["man"])?;
    ensure!(out.status.success());
    let page = String::from_utf8(out.stdout)?;
    ensure!(
        page.contains(".TH distlog 1") && page.contains(".SH NAME"),
        "{page}"
    );
    ensure!(page.contains("cluster") && page.contains("completions"));

    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("man1");
    let out = run(&["man", "--out", out_dir.to_str().context("utf-8 path")?])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "distlog.1",
        "distlog-serve.1",
        "distlog-topic.1",
        "distlog-topic-add-partitions.1",
        "distlog-group-reset.1",
        "distlog-cluster-info.1",
        "distlog-completions.1",
    ] {
        let path = out_dir.join(name);
        let body = std::fs::read_to_string(&path).with_context(|| format!("{name} missing"))?;
        ensure!(body.contains(".TH"), "{name} is not a man page");
        ensure!(
            String::from_utf8_lossy(&out.stdout).contains(name),
            "{name} is not listed"
        );
    }
    let reset = std::fs::read_to_string(out_dir.join("distlog-group-reset.1"))?;
    ensure!(
        reset.contains("dry\\-run") || reset.contains("dry-run"),
        "{reset}"
    );
    Ok(())
}

#[test]
fn help_lists_a_commands_own_flags_before_the_connection_flags() -> Result<()> {
    for args in [
        &["topic", "create", "--help"][..],
        &["group", "reset", "--help"],
        &["cluster", "info", "--help"],
    ] {
        let out = run(args)?;
        ensure!(out.status.success());
        let help = String::from_utf8(out.stdout)?;
        let connection = help.find("Connection:").context("no Connection heading")?;
        ensure!(help[connection..].contains("--broker"), "{help}");
        ensure!(!help[..connection].contains("--tls-ca"), "{help}");
        if args[1] == "create" {
            let own = help.find("--partitions").context("no --partitions")?;
            ensure!(
                own < connection && help.contains("-p, --partitions"),
                "{help}"
            );
        }
        if args[1] == "reset" {
            let own = help.find("--shift-by").context("no --shift-by")?;
            ensure!(own < connection, "{help}");
        }
    }
    Ok(())
}

/// Runs `distlog serve --check-config` with `args` and returns its stdout.
fn check_config(args: &[&str]) -> Result<String> {
    let out = run(&[&["serve", "--check-config"], args].concat())?;
    ensure!(
        out.status.success(),
        "serve --check-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn check_config_prints_toml_that_feeds_back_to_the_same_output() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let data = data.to_str().context("utf-8 path")?;
    let file = dir.path().join("effective.toml");
    let file = file.to_str().context("utf-8 path")?;
    let flags = [
        "--data-dir",
        data,
        "--set",
        "server.max_record_bytes=7777",
        "--set",
        "broker.topic_defaults.retention.ms=5000",
        "--set",
        "broker.default_partitions=4",
    ];
    let first = check_config(&flags)?;
    ensure!(
        first.starts_with('#'),
        "a comment says what this is:\n{first}"
    );
    // Every section and key, with the values in effect (serve -c parses it below).
    for line in [
        "[server]".to_owned(),
        "max_record_bytes = 7777".to_owned(),
        "[broker]".to_owned(),
        format!("data_dir = \"{data}\""),
        "default_partitions = 4".to_owned(),
        "[broker.topic_defaults]".to_owned(),
        "\"retention.ms\" = \"5000\"".to_owned(),
        "[kafka]".to_owned(),
        "listen = \"127.0.0.1:9092\"".to_owned(),
        "[shutdown]".to_owned(),
    ] {
        ensure!(
            first.lines().any(|l| l == line),
            "no line {line:?} in:\n{first}"
        );
    }
    std::fs::write(file, &first)?;
    let second = check_config(&["-c", file])?;
    ensure!(
        second == first,
        "round trip differs:\n{first}\n---\n{second}"
    );
    ensure!(!dir.path().join("data").exists(), "a check opens nothing");

    // Secrets: redacted by default (the output still loads, and says so), printed with
    // --show-secrets (then the round trip is exact too).
    let redacted = check_config(&[&flags[..], &["--admin-token", "s3cret-token"]].concat())?;
    ensure!(!redacted.contains("s3cret-token"), "{redacted}");
    let line = redacted
        .lines()
        .find(|l| l.starts_with("admin_token"))
        .context("admin_token line")?;
    ensure!(
        line.starts_with("admin_token = \"\"") && line.contains("redacted"),
        "{line}"
    );
    std::fs::write(file, &redacted)?;
    let reloaded = check_config(&["-c", file])?;
    ensure!(
        reloaded.lines().any(|l| l == "admin_token = \"\""),
        "{reloaded}"
    );
    let shown = check_config(
        &[
            &flags[..],
            &["--admin-token", "s3cret-token", "--show-secrets"],
        ]
        .concat(),
    )?;
    ensure!(shown.contains("admin_token = \"s3cret-token\""), "{shown}");
    std::fs::write(file, &shown)?;
    ensure!(check_config(&["-c", file, "--show-secrets"])? == shown);

    // A configuration serve would refuse fails the check.
    let out = run(&["serve", "--check-config", "--listen", "0.0.0.0:9093"])?;
    ensure!(!out.status.success());
    ensure!(String::from_utf8_lossy(&out.stderr).contains("admin token"));
    let out = run(&["serve", "--show-secrets"])?;
    ensure!(!out.status.success(), "--show-secrets needs --check-config");
    Ok(())
}
