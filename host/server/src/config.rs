//! Server settings (the `[server]` table of the configuration file).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// gRPC server settings. Every field has a default; see docs/CONFIG.md.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// When set, admin calls (DeleteTopic, AlterTopicConfig, plugin load/reload/unload)
    /// require the metadata `authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// Serve admin calls without a token on a non-loopback address. Off: such a server
    /// refuses to start without `admin_token`.
    pub allow_unauthenticated_admin: bool,
    /// PEM certificate chain the server presents; with `tls_key`, the server speaks TLS
    /// (rustls) only. `None`: plaintext.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set (with TLS on), clients must present a certificate signed by
    /// one of these CAs (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are re-read, in milliseconds; changed files that parse
    /// replace the certificates for new connections without a restart (SIGHUP also
    /// triggers a reload). 0: only on SIGHUP.
    pub tls_reload_ms: u64,
    /// Largest request message accepted, in encoded bytes (RESOURCE_EXHAUSTED above); checked
    /// by the transport before decoding.
    pub max_request_bytes: usize,
    /// Largest record (key + value + headers) accepted, whatever the topic allows.
    pub max_record_bytes: usize,
    /// Most records accepted in one produce request.
    pub max_records_per_request: usize,
    /// Fetch size when a request asks for 0 bytes.
    pub default_fetch_bytes: u32,
    /// Largest fetch size; larger requests are lowered to it.
    pub max_fetch_bytes: u32,
    /// Longest long-poll wait, in milliseconds; longer requests are lowered to it.
    pub max_wait_ms: u32,
    /// Responses buffered per Subscribe or ProduceStream call before the broker waits for
    /// the client to read (slow consumers are served at their pace).
    pub stream_buffer: usize,
    /// Interval between refreshes of the per-partition gauges, in milliseconds.
    pub gauge_interval_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            admin_token: None,
            allow_unauthenticated_admin: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_ms: 30_000,
            max_request_bytes: 64 << 20,
            max_record_bytes: 16 << 20,
            max_records_per_request: 100_000,
            default_fetch_bytes: 1 << 20,
            max_fetch_bytes: 16 << 20,
            max_wait_ms: 30_000,
            stream_buffer: 16,
            gauge_interval_ms: 5_000,
        }
    }
}

impl ServerConfig {
    /// Whether the server speaks TLS (a certificate is configured).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Checks the TLS settings without serving: both of certificate and key or neither,
    /// files readable, certificate, key and client CAs parsed and accepted by rustls.
    pub fn check_tls(&self) -> Result<(), crate::ServeError> {
        crate::tls::check(self)
    }
}
