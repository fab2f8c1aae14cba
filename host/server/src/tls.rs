//! Optional TLS (rustls, ring provider), with certificates reloaded while serving. The gRPC
//! listener does its handshakes in `accept.rs` (with the HTTP/2 preface, under one
//! deadline); [`TlsIncoming`] below serves an HTTP/1 endpoint beside it (`/metrics`):
//!
//! ```text
//!  TcpListener ──accept──► handshake task (timeout) ──TlsStream──► channel ──► server
//!                               │ uses the current rustls::ServerConfig
//!  reloader: every server.tls_reload_ms and on SIGHUP, re-read the PEM files; when their
//!  bytes changed and they parse, swap the config (new handshakes use it, open
//!  connections keep theirs); when they do not parse, keep the old one and log why.
//! ```
//!
//! Rotating a certificate (cert-manager, certbot, an operator copying files) therefore
//! needs no restart, and a half-written or mismatched file never takes the listener down.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig as RustlsConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::{ServeError, ServerConfig};

/// The PEM files TLS is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// The TLS files of `config`, or `None` for plaintext. Errors name the setting: a
/// certificate without its key or the reverse, a client CA without TLS.
fn files(config: &ServerConfig) -> Result<Option<Files>, ServeError> {
    match (&config.tls_cert, &config.tls_key) {
        (None, None) if config.tls_client_ca.is_some() => Err(ServeError::Tls(
            "server.tls_client_ca is set but TLS is off: set server.tls_cert and server.tls_key"
                .into(),
        )),
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca.clone(),
        })),
        (Some(_), None) => Err(ServeError::Tls(
            "server.tls_cert is set without server.tls_key".into(),
        )),
        (None, Some(_)) => Err(ServeError::Tls(
            "server.tls_key is set without server.tls_cert".into(),
        )),
    }
}

/// The bytes of each file, in `Files` order: what a reload compares to see a change.
type Contents = Vec<Vec<u8>>;

impl Files {
    fn read(&self) -> Result<Contents, ServeError> {
        let mut out = vec![
            read_pem("server.tls_cert", &self.cert)?,
            read_pem("server.tls_key", &self.key)?,
        ];
        if let Some(ca) = &self.client_ca {
            out.push(read_pem("server.tls_client_ca", ca)?);
        }
        Ok(out)
    }
}

/// The ALPN protocols the gRPC listener offers: HTTP/2 only.
const GRPC_ALPN: &[&[u8]] = &[b"h2"];
/// The ALPN protocols of the metrics endpoint ([`TlsIncoming`]): HTTP/1.1 first, so a
/// scraper gets the protocol every scraper speaks (Prometheus offers `http/1.1` alone
/// unless `enable_http2` is set; with only `h2` on offer its handshake failed); `h2` for
/// clients that offer nothing else. Both are served there.
const METRICS_ALPN: &[&[u8]] = &[b"http/1.1", b"h2"];

/// Builds the rustls configuration from the files' bytes: certificate chain, its private
/// key (checked to match), the client CAs when mutual TLS is on, the given ALPN protocols
/// (in the server's order of preference).
fn build(contents: &Contents, alpn: &[&[u8]]) -> Result<Arc<RustlsConfig>, ServeError> {
    let certs = CertificateDer::pem_slice_iter(&contents[0])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("server.tls_cert: not a certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(
            "server.tls_cert: no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&contents[1])
        .map_err(|e| ServeError::Tls(format!("server.tls_key: not a private key: {e}")))?;
    // The ring provider by name, not the process default: builds the same whichever other
    // providers the dependency graph enables.
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = RustlsConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(format!("TLS protocol versions: {e}")))?;
    let builder = match contents.get(2) {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| {
                    ServeError::Tls(format!("server.tls_client_ca: not a certificate: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    ServeError::Tls(format!("server.tls_client_ca: certificate rejected: {e}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| ServeError::Tls(format!("server.tls_client_ca: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        ServeError::Tls(format!(
            "server.tls_cert and server.tls_key: certificate or key rejected: {e}"
        ))
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads a PEM file; checks for a PEM block so a wrong file fails here, with its name,
/// rather than as an opaque handshake error later.
fn read_pem(setting: &str, path: &Path) -> Result<Vec<u8>, ServeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ServeError::Tls(format!("{setting}: cannot read {}: {e}", path.display())))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ServeError::Tls(format!(
            "{setting}: {} is not a PEM file (no \"-----BEGIN\" block)",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Checks the TLS settings of `config` as `serve` would: files readable, certificate,
/// key and client CAs parsed and accepted by rustls.
pub(crate) fn check(config: &ServerConfig) -> Result<(), ServeError> {
    match files(config)? {
        None => Ok(()),
        Some(files) => build(&files.read()?, GRPC_ALPN).map(drop),
    }
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files hold the bytes already in use.
    Unchanged,
    /// New certificates are in use for every handshake from now on.
    Reloaded,
    /// The files changed but cannot be used; the previous certificates stay in use.
    Failed(String),
}

/// The TLS side of a listener: the current rustls configuration and how to renew it.
pub(crate) struct Tls {
    files: Files,
    /// The ALPN protocols offered.
    alpn: &'static [&'static [u8]],
    current: ArcSwap<RustlsConfig>,
    /// The bytes `current` was built from.
    loaded: parking_lot::Mutex<Contents>,
}

impl Tls {
    /// Reads and checks the TLS files of `config` for the gRPC listener (ALPN `h2`); `None`
    /// for plaintext.
    pub(crate) fn from_config(config: &ServerConfig) -> Result<Option<Arc<Self>>, ServeError> {
        Self::with_alpn(config, GRPC_ALPN)
    }

    /// [`from_config`](Self::from_config) offering `alpn` instead.
    fn with_alpn(
        config: &ServerConfig,
        alpn: &'static [&'static [u8]],
    ) -> Result<Option<Arc<Self>>, ServeError> {
        let Some(files) = files(config)? else {
            return Ok(None);
        };
        let contents = files.read()?;
        let current = ArcSwap::new(build(&contents, alpn)?);
        Ok(Some(Arc::new(Self {
            files,
            alpn,
            current,
            loaded: parking_lot::Mutex::new(contents),
        })))
    }

    /// Re-reads the files and, when their bytes changed and they make a valid
    /// configuration, uses them for every handshake from now on. Logged and counted in
    /// `distlog_tls_reloads_total{result}`.
    pub(crate) fn reload(&self) -> Reload {
        let outcome = match self.files.read() {
            Ok(contents) if *self.loaded.lock() == contents => return Reload::Unchanged,
            Ok(contents) => match build(&contents, self.alpn) {
                Ok(config) => {
                    self.current.store(config);
                    *self.loaded.lock() = contents;
                    Reload::Reloaded
                }
                Err(e) => Reload::Failed(e.to_string()),
            },
            Err(e) => Reload::Failed(e.to_string()),
        };
        match &outcome {
            Reload::Reloaded => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificates reloaded");
                metrics::counter!("distlog_tls_reloads_total", "result" => "ok").increment(1);
            }
            Reload::Failed(why) => {
                tracing::error!(
                    error = %why,
                    "TLS files changed but cannot be used; serving the previous certificates"
                );
                metrics::counter!("distlog_tls_reloads_total", "result" => "error").increment(1);
            }
            Reload::Unchanged => {}
        }
        outcome
    }

    /// An acceptor with the configuration current now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Accepts connections on `listener` and completes their handshakes concurrently, each
    /// with the configuration current when it started, within `timeout` (a client that
    /// connects and says nothing holds no task beyond it); the stream yields the
    /// connections that completed one. Failed or timed-out handshakes are logged at debug
    /// and dropped. The task ends, closing the listener, when the stream is dropped.
    pub(crate) fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
        timeout: Duration,
    ) -> (ReceiverStream<TlsStream<TcpStream>>, JoinHandle<()>) {
        let tls = self.clone();
        crate::accept::accept_each(listener, move |tcp, peer| {
            let acceptor = tls.acceptor();
            async move {
                handshake(acceptor, tcp, peer, timeout)
                    .await
                    .inspect_err(|e| tracing::debug!(%peer, error = %e, "TLS handshake failed"))
                    .ok()
            }
        })
    }

    /// Reloads every `every` (not at all when zero) and on SIGHUP, until aborted.
    pub(crate) fn spawn_reloader(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangup = tokio::signal::unix::signal(SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
                .ok();
            let mut tick = (!every.is_zero()).then(|| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                tokio::select! {
                    () = next_tick(&mut tick) => {}
                    () = next_hangup(&mut hangup) => {
                        tracing::info!("SIGHUP: reloading TLS certificates");
                    }
                }
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
            }
        })
    }
}

/// Connections accepted through TLS with the server's certificates (`server.tls_*`,
/// reloaded on the same timer and SIGHUP as the gRPC listener's), for an HTTP endpoint
/// beside the gRPC one: the CLI serves `/metrics` through it when `metrics.tls` is on.
/// Offers ALPN `http/1.1` and `h2` (in that order; the gRPC listener offers `h2` alone), so
/// a Prometheus scrape completes the handshake whether or not its `enable_http2` is set.
/// Dropping it stops accepting and reloading.
pub struct TlsIncoming {
    connections: ReceiverStream<TlsStream<TcpStream>>,
    accepting: JoinHandle<()>,
    reloading: JoinHandle<()>,
}

impl TlsIncoming {
    /// Accepts on `listener` with the TLS settings of `config`; `None` when they leave TLS
    /// off. Errors as `serve` would report them. Needs a Tokio runtime.
    pub fn new(config: &ServerConfig, listener: TcpListener) -> Result<Option<Self>, ServeError> {
        let Some(tls) = Tls::with_alpn(config, METRICS_ALPN)? else {
            return Ok(None);
        };
        let (connections, accepting) = tls.incoming(
            listener,
            Duration::from_millis(config.handshake_timeout_ms.max(1)),
        );
        let reloading = tls.spawn_reloader(Duration::from_millis(config.tls_reload_ms));
        Ok(Some(Self {
            connections,
            accepting,
            reloading,
        }))
    }

    /// The next connection whose handshake completed; `None` once accepting stopped.
    pub async fn accept(&mut self) -> Option<TlsStream<TcpStream>> {
        use tokio_stream::StreamExt as _;
        self.connections.next().await
    }
}

/// What tonic's `serve_with_incoming` takes: connections whose handshake completed (failed
/// handshakes never appear, they are logged where they happen).
impl tokio_stream::Stream for TlsIncoming {
    type Item = Result<TlsStream<TcpStream>, io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.connections)
            .poll_next(cx)
            .map(|next| next.map(Ok))
    }
}

impl std::fmt::Debug for TlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIncoming").finish_non_exhaustive()
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accepting.abort();
        self.reloading.abort();
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, io::Error> {
    tokio::time::timeout(timeout, acceptor.accept(tcp))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS handshake from {peer} within {timeout:?}"),
            )
        })?
}

/// The next tick of `tick`; never, without one.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The next SIGHUP; never, when they cannot be received.
async fn next_hangup(hangup: &mut Option<Signal>) {
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    *hangup = None;
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn pair() -> (String, String) {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn config_in(dir: &Path) -> ServerConfig {
        ServerConfig {
            tls_cert: Some(dir.join("cert.pem")),
            tls_key: Some(dir.join("key.pem")),
            ..ServerConfig::default()
        }
    }

    fn write(dir: &Path, (cert, key): &(String, String)) {
        std::fs::write(dir.join("cert.pem"), cert).expect("write cert");
        std::fs::write(dir.join("key.pem"), key).expect("write key");
    }

    /// TLS from fresh files in `dir`.
    fn tls_in(dir: &Path) -> Arc<Tls> {
        write(dir, &pair());
        Tls::from_config(&config_in(dir))
            .expect("valid files")
            .expect("TLS on")
    }

    #[test]
    fn reload_swaps_only_for_changed_files_that_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = tls_in(dir.path());
        let first = tls.current.load_full();
        assert_eq!(tls.reload(), Reload::Unchanged);
        assert!(Arc::ptr_eq(&first, &tls.current.load_full()));

        write(dir.path(), &pair());
        assert_eq!(tls.reload(), Reload::Reloaded);
        let second = tls.current.load_full();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.alpn_protocols, vec![b"h2".to_vec()]);

        // A key that does not match the certificate, then a file that is not PEM, then a
        // missing file: each refused, the configuration in use unchanged.
        let (cert, _) = pair();
        let (_, other_key) = pair();
        write(dir.path(), &(cert, other_key));
        assert!(matches!(tls.reload(), Reload::Failed(why) if why.contains("server.tls_key")));
        std::fs::write(dir.path().join("cert.pem"), "garbage").expect("write");
        assert!(matches!(tls.reload(), Reload::Failed(why) if why.contains("not a PEM file")));
        write(dir.path(), &pair());
        std::fs::remove_file(dir.path().join("key.pem")).expect("remove");
        assert!(matches!(tls.reload(), Reload::Failed(why) if why.contains("cannot read")));
        assert!(Arc::ptr_eq(&second, &tls.current.load_full()));

        // Once whole again, the next reload picks the files up.
        write(dir.path(), &pair());
        assert_eq!(tls.reload(), Reload::Reloaded);
    }

    #[test]
    fn the_metrics_endpoint_offers_http1_before_h2_across_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &pair());
        let tls = Tls::with_alpn(&config_in(dir.path()), METRICS_ALPN)
            .expect("valid files")
            .expect("TLS on");
        let offered = [b"http/1.1".to_vec(), b"h2".to_vec()];
        assert_eq!(tls.current.load().alpn_protocols, offered);
        write(dir.path(), &pair());
        assert_eq!(tls.reload(), Reload::Reloaded);
        assert_eq!(tls.current.load().alpn_protocols, offered);
    }

    #[tokio::test]
    async fn the_timer_reloads_without_a_signal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = tls_in(dir.path());
        let first = tls.current.load_full();
        let reloader = tls.spawn_reloader(Duration::from_millis(10));
        write(dir.path(), &pair());
        tokio::time::timeout(Duration::from_secs(30), async {
            while Arc::ptr_eq(&first, &tls.current.load_full()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the timer never reloaded");
        reloader.abort();
    }
}
