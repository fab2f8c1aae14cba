//! The `[kafka]` settings of `distlog serve` (docs/CONFIG.md).

use serde::Deserialize;

/// How the Kafka listener runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Listen address, `IP:PORT`; empty disables the listener.
    pub listen: String,
    /// `HOST:PORT` announced to clients in Metadata and FindCoordinator answers; empty
    /// means the address the listener is bound to.
    pub advertised_listener: String,
    /// This broker's node id in Metadata answers.
    pub node_id: i32,
    /// Serve the listener over TLS with the server's certificates (`server.tls_*`).
    pub tls: bool,
    /// SASL mechanisms offered, comma-separated (`PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`); empty offers none. Admin requests need a session authenticated with
    /// the admin token.
    pub sasl_mechanisms: String,
    /// Refuse every request but ApiVersions and the SASL ones until the client has
    /// authenticated (Kafka's SASL_PLAINTEXT / SASL_SSL listener behaviour).
    pub sasl_required: bool,
    /// User name that authenticates with the admin token as its password.
    pub admin_user: String,
    /// Largest request frame, in bytes; a larger size prefix closes the connection.
    pub max_request_bytes: usize,
    /// Request bytes all connections together may hold at once (read, not yet answered);
    /// reading a frame waits for room, so memory stays bounded however many clients send.
    pub max_request_bytes_in_flight: usize,
    /// Most connections open at once; further ones are closed on accept.
    pub max_connections: usize,
    /// Requests one connection may have in progress at once (clients pipeline up to
    /// `max.in.flight.requests.per.connection`); reading the next waits for a slot.
    pub max_in_flight_per_connection: usize,
    /// Largest fetch response, in bytes; a larger `max_bytes` is lowered to it.
    pub max_fetch_bytes: usize,
    /// Fetch response bytes all connections together may hold unwritten (read from the log,
    /// not yet taken by the client); a fetch waits for room before it reads, so clients that
    /// do not read their answers hold at most this much.
    pub max_response_bytes_in_flight: usize,
    /// Longest a fetch waits for `min_bytes`, in milliseconds.
    pub max_wait_ms: u64,
    /// Largest decompressed size of one produced batch, in bytes (gzip, snappy, lz4 and
    /// zstd batches are decoded under this bound).
    pub max_decompressed_batch_bytes: usize,
    /// A connection that sends nothing for this long is closed, in milliseconds (0: never).
    pub idle_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9092".into(),
            advertised_listener: String::new(),
            node_id: 0,
            tls: false,
            sasl_mechanisms: String::new(),
            sasl_required: false,
            admin_user: "admin".into(),
            max_request_bytes: 100 << 20,
            max_request_bytes_in_flight: 256 << 20,
            max_connections: 10_000,
            max_in_flight_per_connection: 16,
            max_fetch_bytes: 50 << 20,
            max_response_bytes_in_flight: 512 << 20,
            max_wait_ms: 30_000,
            max_decompressed_batch_bytes: 64 << 20,
            idle_timeout_ms: 600_000,
        }
    }
}

impl KafkaConfig {
    /// The entries of `sasl_mechanisms`.
    pub fn mechanisms(&self) -> Vec<String> {
        self.sasl_mechanisms
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect()
    }
}
