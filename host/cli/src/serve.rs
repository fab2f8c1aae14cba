//! `distlog serve`: configuration, logging, metrics endpoint, broker recovery, the gRPC
//! server, and graceful shutdown on SIGINT/SIGTERM.
//!
//! Startup order: configuration (errors exit before anything is opened) → exposure check →
//! logging → metrics recorder → bind both listeners (a port in use fails fast) → open the
//! broker, which recovers every partition log → log `grpc listening on ADDR` and
//! `metrics listening on ADDR` (tests and scripts wait for these lines) → serve.
//!
//! Shutdown: the first SIGINT/SIGTERM stops accepting and lets in-flight requests finish;
//! the server then closes the broker (sync and checkpoint of every log). If that takes
//! longer than `shutdown.grace_ms`, or a second signal arrives, the broker is closed
//! directly and the process exits with an error.
//!
//! Exit status: 0 exactly when every acknowledged record is durable. A disk too full to take
//! the final recovery checkpoints is therefore a clean stop: the storage layer logs a warning
//! naming the log and closes successfully, since the checkpoint only saves the next start a
//! rescan. Any close error that reaches this point (a failed sync, whatever its errno) means
//! records acknowledged without an fsync may be lost, and exits 1 so that systemd's
//! `Restart=on-failure` and `OnFailure=` see it (docs/CONFIG.md, `[shutdown]`).
//!
//! SIGHUP, with TLS on, re-reads the certificate files (as does a timer,
//! `server.tls_reload_ms`); see docs/CONFIG.md.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use distlog_server::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::{ServeArgs, logging, metrics_http};

pub fn run(args: ServeArgs) -> Result<()> {
    return_large_buffers_to_the_os();
    let (config, layers) =
        config::load_layers(args.config.as_deref(), std::env::vars(), &args.overrides()?)?;
    // A configuration `serve` would refuse fails the check too.
    config.check_exposure()?;
    if args.check_config {
        print!("{}", config::render_toml(&layers, args.show_secrets)?);
        return Ok(());
    }
    let level = Some(config.log.level.as_str()).filter(|l| !l.trim().is_empty());
    logging::init(config.log.format, level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("distlog")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<()> {
    info!(version = env!("CARGO_PKG_VERSION"), "distlog starting");
    let listen = config.server.listen;
    if !listen.ip().is_loopback() && !config.server.tls_enabled() {
        warn!(
            "listening on {listen} without TLS: records and the admin token cross the network \
             in clear (set server.tls_cert and server.tls_key)"
        );
    }
    let prometheus = metrics_http::install_recorder()?;
    let grpc = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let kafka = match config.kafka_addr()? {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (kafka.listen)"))?,
        ),
        None => None,
    };
    let metrics = match config.metrics_addr()? {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?,
        ),
        None => None,
    };

    let data_dir = config.broker.data_dir.clone();
    info!(data_dir = %data_dir.display(), "opening the broker (recovering logs)");
    let broker_config = config.broker.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(broker_config))
        .await
        .context("broker open task failed")?
        .with_context(|| format!("cannot open the broker in {}", data_dir.display()))?;
    info!(topics = broker.list_topics().len(), "broker recovered");
    register_listeners(&broker, &config, &grpc, kafka.as_ref(), metrics.as_ref())?;

    let (stop_tx, stop_rx) = watch::channel(0u32);
    tokio::spawn(watch_signals(stop_tx));
    #[cfg(unix)]
    if config.server.tls_enabled() {
        // SIGHUP reloads the TLS certificates (the server listens for it once serving).
        // Taking it over here, before the address is announced, means one sent early is
        // ignored rather than killing the process.
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    }

    let grpc_addr = grpc.local_addr()?;
    let metrics_task = match metrics {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let listener = if config.metrics.tls {
                metrics_http::Listener::Tls(
                    distlog_server::TlsIncoming::new(&config.server, listener)?
                        .context("metrics.tls needs the server's TLS settings")?,
                )
            } else {
                metrics_http::Listener::Plain(listener)
            };
            info!(tls = config.metrics.tls, "metrics listening on {addr}");
            Some(tokio::spawn(metrics_http::serve(
                listener,
                prometheus,
                broker.clone(),
                stopped(stop_rx.clone(), 1),
            )))
        }
        None => None,
    };
    let kafka_task = match kafka {
        Some(listener) => Some(spawn_kafka(
            &config,
            listener,
            broker.clone(),
            stop_rx.clone(),
        )?),
        None => None,
    };
    info!(
        tls = config.server.tls_enabled(),
        mtls = config.server.tls_client_ca.is_some(),
        "grpc listening on {grpc_addr}"
    );

    let server = distlog_server::serve_with_listener(
        grpc,
        config.server.clone(),
        broker.clone(),
        stopped(stop_rx.clone(), 1),
    );
    tokio::pin!(server);
    let grace = Duration::from_millis(config.shutdown.grace_ms);
    let forced = async {
        stopped(stop_rx.clone(), 1).await;
        tokio::select! {
            () = tokio::time::sleep(grace) => "the shutdown grace period expired",
            () = stopped(stop_rx.clone(), 2) => "a second signal arrived",
        }
    };
    let result = tokio::select! {
        served = &mut server => served.map_err(|e| anyhow!(e).context("the gRPC server failed")),
        reason = forced => {
            warn!("{reason}: closing the broker with requests still in flight");
            let closing = broker.clone();
            tokio::task::spawn_blocking(move || closing.close())
                .await
                .context("broker close task failed")?
                .context("closing the broker failed")?;
            Err(anyhow!("forced shutdown: {reason}"))
        }
    };
    if let Some(task) = metrics_task {
        task.abort();
    }
    if let Some(task) = kafka_task {
        task.abort();
    }
    if result.is_ok() {
        info!("shut down cleanly");
    }
    result
}

/// Tells the broker what it serves on, for `distlog cluster info` (DescribeCluster).
fn register_listeners(
    broker: &Broker,
    config: &Config,
    grpc: &TcpListener,
    kafka: Option<&TcpListener>,
    metrics: Option<&TcpListener>,
) -> Result<()> {
    use distlog_broker::ListenerInfo;
    broker.set_node_id(config.kafka.node_id);
    broker.register_listener(ListenerInfo {
        name: "grpc".into(),
        address: grpc.local_addr()?.to_string(),
        advertised: None,
        tls: config.server.tls_enabled(),
    });
    if let Some(l) = kafka {
        let advertised = config.kafka.advertised_listener.trim();
        broker.register_listener(ListenerInfo {
            name: "kafka".into(),
            address: l.local_addr()?.to_string(),
            advertised: (!advertised.is_empty()).then(|| advertised.to_owned()),
            tls: config.kafka.tls,
        });
    }
    if let Some(l) = metrics {
        broker.register_listener(ListenerInfo {
            name: "metrics".into(),
            address: l.local_addr()?.to_string(),
            advertised: None,
            tls: config.metrics.tls,
        });
    }
    Ok(())
}

/// Starts the Kafka listener on `listener` (TLS with the server's certificates when
/// `kafka.tls`); it stops accepting at the first shutdown signal.
fn spawn_kafka(
    config: &Config,
    listener: TcpListener,
    broker: Broker,
    stop: watch::Receiver<u32>,
) -> Result<tokio::task::JoinHandle<()>> {
    let addr = listener.local_addr()?;
    let admin = config
        .server
        .admin_token
        .clone()
        .map(|password| distlog_kafka::Credentials {
            user: config.kafka.admin_user.clone(),
            password,
        });
    let kafka = config.kafka.clone();
    distlog_kafka::validate(&kafka, addr, admin.is_some())?;
    info!(tls = kafka.tls, "kafka listening on {addr}");
    let task = if kafka.tls {
        let tls = distlog_server::TlsIncoming::new(&config.server, listener)?.context(
            "kafka.tls needs the server's TLS settings (server.tls_cert, server.tls_key)",
        )?;
        let incoming: distlog_kafka::Listener<_> =
            Box::pin(tokio_stream::StreamExt::map(tls, |r| {
                r.map(|s| {
                    let peer = s
                        .get_ref()
                        .0
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    (s, peer)
                })
            }));
        tokio::spawn(run_kafka(incoming, addr, broker, kafka, admin, stop))
    } else {
        let incoming = distlog_kafka::tcp(listener);
        tokio::spawn(run_kafka(incoming, addr, broker, kafka, admin, stop))
    };
    Ok(task)
}

async fn run_kafka<S>(
    incoming: distlog_kafka::Listener<S>,
    addr: std::net::SocketAddr,
    broker: Broker,
    config: distlog_kafka::KafkaConfig,
    admin: Option<distlog_kafka::Credentials>,
    stop: watch::Receiver<u32>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if let Err(e) =
        distlog_kafka::serve(incoming, addr, broker, config, admin, stopped(stop, 1)).await
    {
        tracing::error!(error = %e, "the Kafka listener cannot run");
    }
}

/// Resolves once at least `count` shutdown signals were received.
async fn stopped(mut rx: watch::Receiver<u32>, count: u32) {
    // An error means the sender is gone: treat as stopped.
    let _ = rx.wait_for(|n| *n >= count).await;
}

/// Counts SIGINT and SIGTERM into `tx`.
async fn watch_signals(tx: watch::Sender<u32>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            warn!("cannot install signal handlers; stop the broker with SIGKILL");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            info!("received {name}, shutting down");
            tx.send_modify(|n| *n += 1);
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        info!("received Ctrl-C, shutting down");
        tx.send_modify(|n| *n += 1);
    }
}

/// Makes glibc's allocator serve buffers of 4 MiB and more (large fetch responses, produce
/// request bodies) from their own mappings, unmapped when freed. By default glibc raises that
/// threshold each time such a buffer is freed and keeps the memory in its heaps: after a burst
/// of large requests (hostile or not) the broker held 12-14x the largest request in freed
/// memory, and the next burst's fragments stacked on top (benches/abuse.rs measures it). Smaller
/// buffers, the hot path of ordinary fetches, stay in the heaps.
fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // of this process exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}
