//! The Prometheus endpoint: installs the global `metrics` recorder and serves its text
//! rendering at `GET /metrics` over HTTP/1.1, plain or (`metrics.tls`) through the gRPC
//! server's TLS settings.
//!
//! The server is deliberately tiny (one request per connection, `Connection: close`): a
//! scrape every few seconds does not need keep-alive, and this keeps hyper out of the binary.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Where scrapes come from.
pub enum Listener {
    Plain(TcpListener),
    /// Connections whose TLS handshake completed (certificates reloaded as the gRPC ones).
    Tls(distlog_server::TlsIncoming),
}

/// One scrape connection.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

impl Listener {
    /// The next connection; `None` once the listener is gone.
    async fn accept(&mut self) -> Option<std::io::Result<Box<dyn Conn>>> {
        match self {
            Self::Plain(listener) => Some(
                listener
                    .accept()
                    .await
                    .map(|(stream, _)| Box::new(stream) as Box<dyn Conn>),
            ),
            Self::Tls(incoming) => incoming
                .accept()
                .await
                .map(|stream| Ok(Box::new(stream) as Box<dyn Conn>)),
        }
    }
}

/// Largest request head accepted; a scrape request is a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Latency buckets in seconds, shared by every `*_seconds` histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder. Call once per process, before the broker
/// records anything; metrics recorded before it are lost.
pub fn install_recorder() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// Serves `/metrics` on `listener` until `shutdown` completes. Also runs the recorder's
/// upkeep (histogram draining) every few seconds.
pub async fn serve(
    mut listener: Listener,
    handle: PrometheusHandle,
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                None => break,
                Some(Ok(stream)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(error) = respond(stream, &handle).await {
                            tracing::debug!(%error, "metrics request failed");
                        }
                    });
                }
                Some(Err(error)) => tracing::warn!(%error, "metrics accept failed"),
            },
        }
    }
    upkeep.abort();
}

async fn respond(mut stream: Box<dyn Conn>, handle: &PrometheusHandle) -> std::io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head timeout"))??;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        ("GET", "/") | ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the blank line that ends an HTTP request head.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
