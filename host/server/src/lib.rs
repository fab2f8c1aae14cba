//! gRPC service (distlog.v1): the only crate that knows protobuf.
//!
//! - [`proto`]: the generated `distlog.v1` types, clients and servers (from `proto/` by
//!   protox at build time; no system `protoc`).
//! - [`serve`] / [`serve_with_listener`]: run the five services (`Topics`, `Records`,
//!   `Groups`, `Plugins`, `Cluster`) plus gRPC health and reflection over a [`Broker`] until
//!   a shutdown future resolves, then drain and close the broker.
//! - [`METHOD_ACCESS`] / [`access_of`]: the access class ([`Access`]) of every RPC, generated
//!   from the `(distlog.v1.access)` option each declares in the proto file (the build fails
//!   on an RPC without one); admin calls need the admin token when one is configured.
//! - [`ServerConfig`]: listen address, admin token, optional TLS (rustls; mutual TLS with a
//!   client CA), request/record/fetch limits.
//!
//! Architecture invariants: protobuf types never leave this crate's service layer (the broker
//! speaks its own types); errors become `tonic::Status` in exactly one place
//! (`error.rs`: `impl From<ApiError> for Status`, and for the `proto::Error` a ProduceStream
//! answer carries); every broker call that may block runs
//! on tokio's blocking pool.
//!
//! Metrics (through the `metrics` facade; the binary installs an exporter and calls
//! [`describe_metrics`] for their HELP text; docs/METRICS.md lists every family):
//! the go-grpc-prometheus families `grpc_server_*` of every call (see `metrics.rs`),
//! `distlog_requests_total{method,code}`, `distlog_request_duration_seconds{method}`,
//! `distlog_produce_{records,bytes}_total{topic}`, `distlog_fetch_{records,bytes}_total{topic}`,
//! `distlog_admin_denied_total`, `distlog_subscribe_resets_total{topic}`,
//! `distlog_handshake_timeouts_total`, `distlog_tls_reloads_total{result}`, the gauge
//! `distlog_response_in_flight_bytes`, and per partition the gauges
//! `distlog_partition_{log_start_offset,log_end_offset,size_bytes,segments}{topic,partition}`.

mod accept;
mod auth;
mod codec;
mod config;
mod convert;
mod error;
mod limits;
mod metrics;
mod service;
mod tls;
pub use metrics::describe as describe_metrics;
pub use tls::TlsIncoming;

/// Generated `distlog.v1` types, clients and servers.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod proto {
    tonic::include_proto!("distlog.v1");

    /// The encoded `FileDescriptorSet` of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/distlog_descriptor.bin"));
}

pub use auth::{Access, AdminAuth, Guard, METHOD_ACCESS, access_of};
pub use config::ServerConfig;
pub use distlog_broker::{Broker, BrokerConfig, BrokerError};
pub use error::ApiError;
pub use service::DistLogService;

use proto::cluster_server::ClusterServer;
use proto::groups_server::GroupsServer;
use proto::plugins_server::PluginsServer;
use proto::records_server::RecordsServer;
use proto::topics_server::TopicsServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

/// Starting or running the server failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback listener without an admin token (and without
    /// `allow_unauthenticated_admin`).
    #[error(
        "listening on {0} (not loopback) requires server.admin_token (or allow_unauthenticated_admin = true)"
    )]
    AdminTokenRequired(SocketAddr),
    /// A setting is out of its range (the message names it).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The TLS settings are incomplete, or a certificate or key cannot be read or parsed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Reflection could not be built from the descriptor set.
    #[error("building the reflection service: {0}")]
    Reflection(String),
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Closing the broker after draining failed (some data may not be synced).
    #[error("closing the broker: {0}")]
    Close(#[source] BrokerError),
}

/// Binds `config.listen` and serves until `shutdown` resolves; see [`serve_with_listener`].
pub async fn serve(
    config: ServerConfig,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_with_listener(listener, config, broker, shutdown).await
}

/// Serves `distlog.v1`, health and reflection on an already-bound listener (tests bind port 0
/// and read the address first) until `shutdown` resolves. Then: health turns NOT_SERVING,
/// the listener closes, long polls answer and subscriptions end with UNAVAILABLE, in-flight
/// requests finish, and finally the broker is closed (every log synced and checkpointed).
/// `config.listen` is ignored except for the admin-token check, which uses the listener's
/// address.
pub async fn serve_with_listener(
    listener: TcpListener,
    config: ServerConfig,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    if config.admin_token.is_none()
        && !local.ip().is_loopback()
        && !config.allow_unauthenticated_admin
    {
        return Err(ServeError::AdminTokenRequired(local));
    }
    config.check_limits()?;
    let tls = tls::Tls::from_config(&config)?;
    let keepalive = (config.keepalive_interval_ms > 0)
        .then(|| Duration::from_millis(config.keepalive_interval_ms));
    let transport = transport()
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_millis(config.keepalive_timeout_ms)));
    let config = Arc::new(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = DistLogService::new(broker.clone(), config.clone(), stop_rx);
    let auth = AdminAuth::new(config.admin_token.as_deref());
    let limits = codec::WireLimits::new(&config);
    // The transport refuses larger messages before decoding them; `Guard` reports that
    // as RESOURCE_EXHAUSTED.
    let decode_limit = config.max_request_bytes;
    let metadata_limit = config.max_metadata_request_bytes.min(decode_limit);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<TopicsServer<DistLogService>>().await;
    health.set_serving::<RecordsServer<DistLogService>>().await;
    health.set_serving::<GroupsServer<DistLogService>>().await;
    health.set_serving::<PluginsServer<DistLogService>>().await;
    health.set_serving::<ClusterServer<DistLogService>>().await;
    // Reflection describes every service served, health included (grpcurl resolves
    // `grpc.health.v1.Health/Check` through it); the builder adds its own service.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let grpc_metrics = metrics::GrpcMetricsLayer::new(&[
        proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]);

    let gauges = tokio::spawn(refresh_gauges(
        broker.clone(),
        service.clone(),
        Duration::from_millis(config.gauge_interval_ms.max(100)),
    ));

    let health_on_stop = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        health_on_stop
            .set_not_serving::<RecordsServer<DistLogService>>()
            .await;
        health_on_stop
            .set_not_serving::<TopicsServer<DistLogService>>()
            .await;
        let _ = stop_tx.send(true);
    };

    tracing::info!(addr = %local, tls = config.tls_enabled(), "serving distlog.v1");
    let router = transport
        .layer(grpc_metrics)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            Guard::new(
                TopicsServer::new(service.clone()).max_decoding_message_size(metadata_limit),
                auth.clone(),
            )
            .limited(limits),
        )
        .add_service(
            Guard::new(
                RecordsServer::new(service.clone()).max_decoding_message_size(decode_limit),
                auth.clone(),
            )
            .limited(limits),
        )
        .add_service(
            Guard::new(
                GroupsServer::new(service.clone()).max_decoding_message_size(metadata_limit),
                auth.clone(),
            )
            .limited(limits),
        )
        .add_service(
            Guard::new(
                ClusterServer::new(service.clone()).max_decoding_message_size(metadata_limit),
                auth.clone(),
            )
            .limited(limits),
        )
        .add_service(
            Guard::new(
                PluginsServer::new(service).max_decoding_message_size(decode_limit),
                auth,
            )
            .limited(limits),
        );
    let reloader = tls
        .as_ref()
        .map(|tls| tls.spawn_reloader(Duration::from_millis(config.tls_reload_ms)));
    // Stops accepting when tonic drops it.
    let incoming = accept::Accept {
        tls,
        timeout: Duration::from_millis(config.handshake_timeout_ms),
        connection_bytes: config.max_connection_response_bytes,
    }
    .start(listener);
    let served = router.serve_with_incoming_shutdown(incoming, signal).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    gauges.abort();
    let closed = tokio::task::spawn_blocking(move || broker.close()).await;
    served?;
    match closed {
        Ok(result) => result.map_err(ServeError::Close),
        Err(e) => Err(ServeError::Close(BrokerError::FailedPrecondition(format!(
            "close task failed: {e}"
        )))),
    }
}

/// HTTP/2 receive window of each stream, in bytes (h2's default is 64 KiB).
pub const STREAM_WINDOW_BYTES: u32 = 2 << 20;
/// HTTP/2 receive window of each connection, in bytes.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// Largest HTTP/2 frame a peer may send us, in bytes (h2's default is 16 KiB).
///
/// h2 writes one DATA frame per `writev`, so a 1 MiB message in 16 KiB frames costs 64
/// system calls on the sender and as many wake-ups on the receiver; in 1 MiB frames it
/// costs one. On loopback this took fetches of 1 KiB records from 0.43–0.64 M to 0.58–0.89 M
/// records/s in alternating runs of the `benches/peers` load (each large-frame run ahead of
/// its neighbours). It adds no head-of-line blocking worth the name: the socket's send
/// buffer (several MiB) already queues that much ahead of any other stream.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// The transport settings the server runs with: HTTP/2 windows sized for batched produce (a
/// 1 MiB request is not throttled by 64 KiB flow-control round trips) and large frames
/// accepted ([`MAX_FRAME_BYTES`]). Public so a baseline service (benches/grpc.rs) can run on
/// exactly the same transport.
pub fn transport() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
}

/// The client side of [`transport`], for the CLI and the benches: `TCP_NODELAY`,
/// the same HTTP/2 windows and frame size, so fetch answers leave the broker in frames of
/// up to [`MAX_FRAME_BYTES`] and are not throttled by flow-control round trips. Any other
/// gRPC client works with the broker's defaults too; these only make it faster.
pub fn tune_endpoint(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_frame_size(MAX_FRAME_BYTES)
}

/// Accepts connections on `listener` with `TCP_NODELAY` set, as the server does: answers
/// leave as soon as they are written, without waiting for the client's ACK.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Publishes the response bytes held unwritten and the per-partition gauges every `every`.
/// Cost per tick: in-memory descriptors only. (Plugin and consumer-group families are
/// computed at scrape time by the binary's metrics endpoint.)
async fn refresh_gauges(broker: Broker, service: DistLogService, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if broker.is_closed() {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        ::metrics::gauge!("distlog_response_in_flight_bytes")
            .set(service.response_bytes_in_flight() as f64);
        for summary in broker.list_topics() {
            let Ok(t) = broker.describe_topic(&summary.name) else {
                continue;
            };
            for p in t.partitions {
                let labels = [
                    ("topic", t.name.clone()),
                    ("partition", p.partition.to_string()),
                ];
                #[allow(clippy::cast_precision_loss)]
                {
                    ::metrics::gauge!("distlog_partition_log_start_offset", &labels)
                        .set(p.log_start_offset as f64);
                    ::metrics::gauge!("distlog_partition_log_end_offset", &labels)
                        .set(p.log_end_offset as f64);
                    ::metrics::gauge!("distlog_partition_size_bytes", &labels)
                        .set(p.size_bytes as f64);
                    ::metrics::gauge!("distlog_partition_segments", &labels)
                        .set(p.segments.len() as f64);
                }
            }
        }
    }
}
