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
    /// Largest request to the Topics and Groups services (topic administration, group
    /// offsets), in encoded bytes (RESOURCE_EXHAUSTED above). Their repeated fields and
    /// maps decode to about 40 times their wire size, so they get a smaller limit than
    /// produce requests, whose records are counted before decoding.
    pub max_metadata_request_bytes: usize,
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
    /// Most header entries accepted in one produce request, over all its records. Counted
    /// with the records from the request's wire bytes before it is decoded (a header
    /// costs about 50 bytes decoded for 2 on the wire).
    pub max_headers_per_request: usize,
    /// Most HTTP/2 streams (calls) one connection may have open at once; advertised in
    /// SETTINGS_MAX_CONCURRENT_STREAMS and enforced (REFUSED_STREAM above).
    pub max_concurrent_streams: u32,
    /// Bytes of fetch and subscribe responses the whole server may hold before they are
    /// written to the clients' sockets. A read waits for room before it reads the log.
    pub max_response_bytes_in_flight: usize,
    /// Bytes of fetch and subscribe responses one connection may hold before they are
    /// written to its socket. A Fetch or Subscribe that would exceed it is refused with
    /// RESOURCE_EXHAUSTED; an open subscription waits for its client to read.
    pub max_connection_response_bytes: usize,
    /// Bytes of responses one Subscribe may hold unwritten (with at most `stream_buffer`
    /// responses); the subscription reads ahead no further until its client reads.
    pub stream_buffer_bytes: usize,
    /// Longest a new connection may take to complete its TLS handshake (with TLS on) and
    /// send the HTTP/2 connection preface, in milliseconds; then it is closed.
    pub handshake_timeout_ms: u64,
    /// Interval between HTTP/2 PINGs the server sends on each connection, in milliseconds;
    /// 0: none.
    pub keepalive_interval_ms: u64,
    /// How long the server waits for a PING's acknowledgement before it closes the
    /// connection, in milliseconds.
    pub keepalive_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9093)),
            admin_token: None,
            allow_unauthenticated_admin: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_ms: 30_000,
            max_request_bytes: 64 << 20,
            max_metadata_request_bytes: 1 << 20,
            max_record_bytes: 16 << 20,
            max_records_per_request: 100_000,
            default_fetch_bytes: 1 << 20,
            max_fetch_bytes: 16 << 20,
            max_wait_ms: 30_000,
            stream_buffer: 16,
            gauge_interval_ms: 5_000,
            max_headers_per_request: 1_000_000,
            max_concurrent_streams: 128,
            max_response_bytes_in_flight: 256 << 20,
            max_connection_response_bytes: 128 << 20,
            stream_buffer_bytes: 32 << 20,
            handshake_timeout_ms: 10_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
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

    /// Checks the limits: each positive, and the response budgets at least one largest
    /// fetch (`max_fetch_bytes`, with room for its framing), so every read can proceed.
    /// `serve` checks them too.
    pub fn check_limits(&self) -> Result<(), crate::ServeError> {
        let invalid = |why: String| Err(crate::ServeError::InvalidConfig(why));
        let positive: [(&str, u64); 10] = [
            ("max_request_bytes", self.max_request_bytes as u64),
            (
                "max_metadata_request_bytes",
                self.max_metadata_request_bytes as u64,
            ),
            ("max_record_bytes", self.max_record_bytes as u64),
            (
                "max_records_per_request",
                self.max_records_per_request as u64,
            ),
            ("max_fetch_bytes", u64::from(self.max_fetch_bytes)),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            (
                "max_response_bytes_in_flight",
                self.max_response_bytes_in_flight as u64,
            ),
            (
                "max_connection_response_bytes",
                self.max_connection_response_bytes as u64,
            ),
            ("stream_buffer_bytes", self.stream_buffer_bytes as u64),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("server.{name} must be greater than 0"));
        }
        if self.default_fetch_bytes > self.max_fetch_bytes {
            return invalid(format!(
                "server.default_fetch_bytes ({}) must not exceed server.max_fetch_bytes ({})",
                self.default_fetch_bytes, self.max_fetch_bytes
            ));
        }
        let fetch = crate::limits::response_reservation(self.max_fetch_bytes as usize);
        for (name, v) in [
            (
                "max_response_bytes_in_flight",
                self.max_response_bytes_in_flight,
            ),
            (
                "max_connection_response_bytes",
                self.max_connection_response_bytes,
            ),
            ("stream_buffer_bytes", self.stream_buffer_bytes),
        ] {
            if v < fetch {
                return invalid(format!(
                    "server.{name} ({v}) must hold at least one largest fetch: \
                     {fetch} bytes for server.max_fetch_bytes = {}",
                    self.max_fetch_bytes
                ));
            }
        }
        if self.max_connection_response_bytes > self.max_response_bytes_in_flight {
            return invalid(format!(
                "server.max_connection_response_bytes ({}) must not exceed \
                 server.max_response_bytes_in_flight ({})",
                self.max_connection_response_bytes, self.max_response_bytes_in_flight
            ));
        }
        if self.keepalive_interval_ms > 0 && self.keepalive_timeout_ms == 0 {
            return invalid("server.keepalive_timeout_ms must be greater than 0 when server.keepalive_interval_ms is set".into());
        }
        Ok(())
    }
}
