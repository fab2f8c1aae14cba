//! The Prometheus endpoint: installs the global `metrics` recorder and serves, with hyper
//! (HTTP/1.1 with keep-alive, and HTTP/2), plain or (`metrics.tls`) through the gRPC
//! server's certificates with ALPN `http/1.1` and `h2`:
//!
//! - `GET /metrics`: the text exposition format (`text/plain; version=0.0.4`): every family
//!   recorded through the `metrics` facade (server, broker, Kafka listener; each with its
//!   HELP text, see [`install_recorder`]), then the families computed at scrape time here:
//!   `distlog_build_info`, the `process_*` families of the Prometheus client libraries (from
//!   `/proc/self`), per plugin version `distlog_plugin_*`, and per consumer group and
//!   partition `distlog_group_committed_offset` and `distlog_group_lag`. docs/METRICS.md
//!   lists every family.
//! - `GET /health` (and `/`): `200 ok` while the broker is open, `503` once it is closing.
//!
//! Other paths answer 404, other methods 405. A connection that sends no complete request
//! head within [`READ_TIMEOUT`] is closed.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use distlog_broker::{Broker, PluginStats};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Where scrapes come from.
pub enum Listener {
    Plain(TcpListener),
    /// Connections whose TLS handshake completed (certificates reloaded as the gRPC ones;
    /// ALPN `http/1.1` and `h2`).
    Tls(distlog_server::TlsIncoming),
}

/// One scrape connection.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

impl Listener {
    /// The next connection; `None` once the listener is gone.
    async fn accept(&mut self) -> Option<std::io::Result<Box<dyn Conn>>> {
        match self {
            Self::Plain(listener) => Some(listener.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                Box::new(stream) as Box<dyn Conn>
            })),
            Self::Tls(incoming) => incoming
                .accept()
                .await
                .map(|stream| Ok(Box::new(stream) as Box<dyn Conn>)),
        }
    }
}

/// A client that has not sent a complete request head this long after connecting (or
/// after its previous response, on a kept-alive connection) is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Latency buckets in seconds, shared by every `*_seconds` histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The content type of the text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the process-wide Prometheus recorder and registers the HELP text of every
/// family the server, broker and Kafka listener record. Call once per process, before the
/// broker records anything; metrics recorded before it are lost.
pub fn install_recorder() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    distlog_server::describe_metrics();
    distlog_broker::describe_metrics();
    distlog_kafka::describe_metrics();
    Ok(handle)
}

/// Serves `/metrics` and `/health` on `listener` until `shutdown` completes (open
/// connections are closed then). Also runs the recorder's upkeep (histogram draining)
/// every few seconds.
pub async fn serve(
    mut listener: Listener,
    handle: PrometheusHandle,
    broker: Broker,
    shutdown: impl Future<Output = ()>,
) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    let builder = Arc::new(builder);
    let state = Arc::new(State { handle, broker });
    // Dropping the set (when this returns) aborts the connections still open.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                None => break,
                Some(Ok(stream)) => {
                    let builder = builder.clone();
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, std::convert::Infallible>(state.answer(&request).await) }
                        });
                        if let Err(error) = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%error, "metrics connection failed");
                        }
                    });
                }
                Some(Err(error)) => tracing::warn!(%error, "metrics accept failed"),
            },
        }
    }
    upkeep.abort();
}

/// What every request is answered from.
struct State {
    handle: PrometheusHandle,
    broker: Broker,
}

impl State {
    async fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match request.uri().path() {
            "/metrics" => {
                let mut body = self.handle.render();
                let broker = self.broker.clone();
                // Plugin and group figures read broker state under its locks: off the
                // async workers.
                match tokio::task::spawn_blocking(move || scrape_time_families(&broker)).await {
                    Ok(extra) => body.push_str(&extra),
                    Err(error) => tracing::warn!(%error, "metrics collection task failed"),
                }
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(EXPOSITION),
                );
                response
            }
            "/" | "/health" if self.broker.is_closed() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "closing\n")
            }
            "/" | "/health" => text(StatusCode::OK, "ok\n"),
            _ => text(StatusCode::NOT_FOUND, "try /metrics or /health\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The families computed at scrape time, in the text format, each with HELP and TYPE.
fn scrape_time_families(broker: &Broker) -> String {
    let mut out = Exposition::default();
    build_info(&mut out);
    process::families(&mut out);
    plugin_families(&mut out, broker);
    group_families(&mut out, broker);
    out.0
}

/// A text-format writer.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// Starts family `name` of `kind` (`counter`, `gauge`).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family started last.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{key}=\"{value}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// `distlog_build_info{version,revision,rustc} 1`: which build this is (`revision` is the
/// git commit it was built from, `unknown` when built outside a checkout).
fn build_info(out: &mut Exposition) {
    out.family(
        "distlog_build_info",
        "gauge",
        "A constant 1, labelled with the broker's version, the git revision it was built from and the compiler.",
    );
    out.sample(
        "distlog_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            (
                "revision",
                option_env!("DISTLOG_REVISION").unwrap_or("unknown"),
            ),
            (
                "rustc",
                option_env!("DISTLOG_RUSTC_VERSION").unwrap_or("unknown"),
            ),
        ],
        1.0,
    );
}

/// Per plugin version: calls, errors, timeouts, time in calls, slowest call. Read at
/// scrape time from the plugin host's counters (exact, not a gauge-interval sample).
#[allow(clippy::cast_precision_loss)]
fn plugin_families(out: &mut Exposition, broker: &Broker) {
    let Some(host) = broker.plugin_host() else {
        return;
    };
    let versions: Vec<_> = host
        .stats()
        .into_iter()
        .map(|v| (v.name.clone(), v.digest.short(), v.stats))
        .collect();
    if versions.is_empty() {
        return;
    }
    /// Name, type, HELP and value of one family.
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&PluginStats) -> f64,
    );
    let families: [Family; 5] = [
        (
            "distlog_plugin_calls_total",
            "counter",
            "Calls made to a plugin version (self-test calls excluded).",
            |s| s.calls as f64,
        ),
        (
            "distlog_plugin_errors_total",
            "counter",
            "Plugin calls that failed: the plugin's own error, a timeout, a trap, exhausted memory or fuel, or invalid output.",
            |s| s.errors as f64,
        ),
        (
            "distlog_plugin_timeouts_total",
            "counter",
            "Plugin calls stopped at their deadline.",
            |s| s.timeouts as f64,
        ),
        (
            "distlog_plugin_call_seconds_total",
            "counter",
            "Time spent in plugin calls, including waiting for and creating instances.",
            |s| s.total_latency.as_secs_f64(),
        ),
        (
            "distlog_plugin_call_max_seconds",
            "gauge",
            "The slowest plugin call since the version was loaded.",
            |s| s.max_latency.as_secs_f64(),
        ),
    ];
    for (name, kind, help, value) in families {
        out.family(name, kind, help);
        for (plugin, version, stats) in &versions {
            out.sample(
                name,
                &[("plugin", plugin), ("version", version)],
                value(stats),
            );
        }
    }
}

/// Per consumer group and partition it committed: the committed offset and the lag,
/// as `distlog group describe` computes it (log end offset minus the commit, or minus the
/// log start when the commit is below it: those records are gone; 0 at or past the end).
#[allow(clippy::cast_precision_loss)]
fn group_families(out: &mut Exposition, broker: &Broker) {
    /// Each partition's (log start, log end), by topic.
    type Bounds = Option<Vec<(u64, u64)>>;
    let mut bounds: std::collections::HashMap<String, Bounds> = Default::default();
    let mut rows = Vec::new();
    for group in broker.list_groups() {
        let Ok(offsets) = broker.fetch_offsets(&group, None) else {
            continue;
        };
        for committed in offsets {
            let partition = bounds
                .entry(committed.topic.clone())
                .or_insert_with(|| {
                    broker.describe_topic(&committed.topic).ok().map(|t| {
                        let mut by_index = vec![(0, 0); t.partitions.len()];
                        for p in t.partitions {
                            if let Some(slot) = by_index.get_mut(p.partition as usize) {
                                *slot = (p.log_start_offset, p.log_end_offset);
                            }
                        }
                        by_index
                    })
                })
                .as_ref()
                .and_then(|b| b.get(committed.partition as usize).copied());
            let Some((start, end)) = partition else {
                continue;
            };
            rows.push((
                group.clone(),
                committed.topic,
                committed.partition.to_string(),
                committed.offset,
                end.saturating_sub(committed.offset.max(start)),
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    out.family(
        "distlog_group_committed_offset",
        "gauge",
        "A consumer group's committed offset (the next record it will read) in a partition.",
    );
    for (group, topic, partition, offset, _) in &rows {
        out.sample(
            "distlog_group_committed_offset",
            &[("group", group), ("topic", topic), ("partition", partition)],
            *offset as f64,
        );
    }
    out.family(
        "distlog_group_lag",
        "gauge",
        "Records a consumer group has yet to read in a partition: the log end offset minus the committed offset (or minus the log start offset when the commit is below it).",
    );
    for (group, topic, partition, _, lag) in &rows {
        out.sample(
            "distlog_group_lag",
            &[("group", group), ("topic", topic), ("partition", partition)],
            *lag as f64,
        );
    }
}

/// The `process_*` families every Prometheus client library exports, from `/proc/self`
/// (Linux; elsewhere none are exported).
mod process {
    use super::Exposition;

    /// Clock ticks per second and the page size.
    fn sysconf() -> (f64, f64) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: sysconf reads a configuration value; no memory is passed.
            let (ticks, page) = unsafe {
                (
                    libc::sysconf(libc::_SC_CLK_TCK),
                    libc::sysconf(libc::_SC_PAGESIZE),
                )
            };
            #[allow(clippy::cast_precision_loss)]
            if ticks > 0 && page > 0 {
                return (ticks as f64, page as f64);
            }
        }
        (100.0, 4096.0)
    }

    pub(super) fn families(out: &mut Exposition) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse::<f64>().unwrap_or(0.0))
                .collect::<Vec<_>>()
        }) else {
            return;
        };
        // proc(5) numbers fields from 1 with the pid; `fields[0]` is field 3 (state).
        let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
        let (ticks, page) = sysconf();
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);

        out.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        out.sample(
            "process_cpu_seconds_total",
            &[],
            (field(14) + field(15)) / ticks,
        );
        out.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", &[], field(24) * page);
        out.family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        out.sample("process_virtual_memory_bytes", &[], field(23));
        out.family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        out.sample("process_start_time_seconds", &[], boot + field(22) / ticks);
        out.family(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
        );
        out.sample("process_threads", &[], field(20));
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            out.family(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
            );
            #[allow(clippy::cast_precision_loss)]
            out.sample("process_open_fds", &[], fds.count() as f64);
        }
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
            });
        if let Some(max) = max_fds {
            out.family(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
            );
            out.sample("process_max_fds", &[], max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Help with \\ and\nnewline.");
        out.sample("x_total", &[("a", "q\"b\\s\nn")], 2.0);
        assert_eq!(
            out.0,
            "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"b\\\\s\\nn\"} 2\n"
        );
    }

    #[test]
    fn process_families_read_this_process() {
        let mut out = Exposition::default();
        process::families(&mut out);
        let value = |name: &str| -> f64 {
            out.0
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in\n{}", out.0))
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 2.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }
}
