//! The Kafka listener against real Kafka clients (kcat, confluent-kafka) and raw sockets.
//!
//! Every test starts its own `distlog serve` child process ([`start`]) on free ports over its
//! own temporary directory; the clients are installed once per test process when missing
//! ([`clients`]): `apt-get install -y kcat` and `python3 -m pip install
//! confluent-kafka==2.16.1`. A failed install fails the test; nothing is skipped.
//!
//! Client invocations are bounded ([`CLIENT_LIMIT`]): a hung client is killed and the test
//! fails with what it printed.

mod abuse;
mod kcat;
mod mixed;
mod python;
mod security;

use anyhow::{Context, Result, bail, ensure};
use distlog_harness::{Process, Profile};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest one client invocation (a kcat or Python run) may take.
pub(crate) const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// The confluent-kafka release the tests are written against (it bundles librdkafka 2.16).
const CONFLUENT_KAFKA: &str = "2.16.1";

/// The Python client driver: one operation per run, JSON in on stdin, JSON out on stdout.
const CLIENT_PY: &str = include_str!("py/client.py");

/// Makes sure kcat and confluent-kafka are installed, installing them once per test process
/// when missing; fails with the installer's output when that fails.
pub(crate) fn clients() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the Kafka clients: {e}"))
}

fn install() -> Result<()> {
    let has_kcat = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_kcat {
        // A fresh machine's package lists may predate kcat's current version: refresh once.
        if run_checked("apt-get", &["install", "-y", "kcat"]).is_err() {
            run_checked("apt-get", &["update"])?;
            run_checked("apt-get", &["install", "-y", "kcat"])?;
        }
    }
    let probe = "import confluent_kafka; print(confluent_kafka.version()[0])";
    let version = Command::new("python3").args(["-c", probe]).output();
    let installed = version.is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == CONFLUENT_KAFKA
    });
    if !installed {
        let spec = format!("confluent-kafka=={CONFLUENT_KAFKA}");
        run_checked("python3", &["-m", "pip", "install", "-q", &spec])?;
    }
    Ok(())
}

/// Runs `program`, failing with its output unless it exits 0.
pub(crate) fn run_checked(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "{program} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `distlog serve` over `data` with its Kafka listener on a free port, logging at info, with
/// `extra` flags; the clients are installed first.
pub(crate) fn start(data: &Path, extra: &[&str]) -> Result<Broker> {
    clients()?;
    let bin = distlog_harness::distlog_bin(Profile::Caller)?;
    let process = Process::start(&bin, data, "info", extra)?;
    let kafka = process
        .kafka()
        .context("the broker did not report a Kafka listener")?;
    Ok(Broker { process, kafka })
}

/// A running broker and its Kafka address.
pub(crate) struct Broker {
    pub(crate) process: Process,
    pub(crate) kafka: SocketAddr,
}

impl Broker {
    /// `host:port` of the Kafka listener, for `bootstrap.servers` / `kcat -b`.
    pub(crate) fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    /// Creates `topic` with `partitions` through the CLI (gRPC), with `config` entries and
    /// `extra` CLI flags (`--token`, `--tls-ca`).
    pub(crate) fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        config: &[&str],
        extra: &[&str],
    ) -> Result<()> {
        let partitions = partitions.to_string();
        let mut args = vec!["topic", "create", topic, "--partitions", &partitions];
        for c in config {
            args.extend(["-c", c]);
        }
        args.extend_from_slice(extra);
        self.process
            .ok(&args, b"")
            .with_context(|| format!("creating {topic}; log:\n{}", self.process.log()))?;
        Ok(())
    }

    /// Runs kcat with `-b <this broker>` prepended, feeding `stdin`.
    pub(crate) fn kcat(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        let bootstrap = self.bootstrap();
        let mut all = vec!["-b", bootstrap.as_str()];
        all.extend_from_slice(args);
        bounded("kcat", &all, stdin)
    }

    /// Like [`Broker::kcat`], and fails unless kcat succeeded; returns its stdout.
    pub(crate) fn kcat_ok(&self, args: &[&str], stdin: &[u8]) -> Result<String> {
        let out = self.kcat(args, stdin)?;
        if !out.status.success() {
            bail!(
                "kcat {} failed ({}):\n{}\nbroker log:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.process.log()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs the Python client's `op` with `input` (its `bootstrap.servers` defaulted to this
    /// broker) and returns the JSON it printed.
    pub(crate) fn python(&self, op: &str, input: serde_json::Value) -> Result<serde_json::Value> {
        let mut input = input;
        if let Some(conf) = input.get_mut("conf").and_then(|c| c.as_object_mut()) {
            conf.entry("bootstrap.servers")
                .or_insert_with(|| self.bootstrap().into());
        } else {
            input["conf"] = serde_json::json!({ "bootstrap.servers": self.bootstrap() });
        }
        python(op, &input).with_context(|| format!("broker log:\n{}", self.process.log()))
    }
}

/// Runs `py/client.py` with operation `op`, JSON `input` on stdin; its stdout parsed as JSON.
pub(crate) fn python(op: &str, input: &serde_json::Value) -> Result<serde_json::Value> {
    let stdin = serde_json::to_vec(input)?;
    let out = bounded("python3", &["-c", CLIENT_PY, op], &stdin)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "python {op} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).with_context(|| {
        format!(
            "python {op} printed no JSON: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `program args` under coreutils `timeout` ([`CLIENT_LIMIT`], then SIGKILL), feeding
/// `stdin`; the child is always reaped before this returns.
pub(crate) fn bounded(program: &str, args: &[&str], stdin: &[u8]) -> Result<Output> {
    let limit = format!("{}s", CLIENT_LIMIT.as_secs());
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", &limit, program])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let mut input = child.stdin.take().context("no stdin pipe")?;
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output()?;
    // A client that exits without reading all of stdin breaks the pipe; that is its answer.
    let _ = writer.join();
    if out.status.code() == Some(137) || out.status.code().is_none() {
        bail!(
            "{program} {} did not finish within {CLIENT_LIMIT:?}:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Lower-case hex of `bytes` (the Python driver's encoding of keys, values and headers).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a lower-case hex string.
pub(crate) fn unhex(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("hex {s}")))
        .collect()
}

/// A tonic channel to the broker's gRPC listener.
pub(crate) async fn grpc(broker: &Broker) -> Result<tonic::transport::Channel> {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", broker.process.grpc()))?
            .connect_timeout(Duration::from_secs(10));
    Ok(endpoint.connect().await?)
}
