//! The accept loop: a connection cap, one task per connection, and shutdown.

use crate::api::{Ctx, Node};
use crate::config::KafkaConfig;
use crate::conn;
use crate::sasl::{Credentials, Sasl};
use distlog_broker::Broker;
use futures_util::{Stream, StreamExt as _};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};

/// The listener's configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// `kafka.sasl_mechanisms` names an unknown mechanism.
    #[error(transparent)]
    Sasl(#[from] crate::sasl::UnknownMechanism),
    /// `kafka.advertised_listener` is not `HOST:PORT`.
    #[error("kafka.advertised_listener {0:?} is not HOST:PORT")]
    Advertised(String),
    /// SASL is offered or required without an admin token to authenticate against.
    #[error("{0}")]
    Config(String),
}

/// Where connections come from: plaintext TCP, or TLS streams whose handshake completed.
pub type Listener<S> = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<(S, String)>> + Send>>;

/// Serves Kafka clients on `incoming` (bound at `local`) until `shutdown` resolves, then
/// stops accepting and tells every connection to finish. `admin` is the admin identity SASL
/// authenticates (user `kafka.admin_user`, the admin token); with `None`, admin requests need
/// no authentication (a loopback broker without a token, as for gRPC).
pub async fn serve<S>(
    mut incoming: Listener<S>,
    local: SocketAddr,
    broker: Broker,
    config: KafkaConfig,
    admin: Option<Credentials>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    validate(&config, local, admin.is_some())?;
    let node = node(&config, local)?;
    let sasl = Sasl::new(&config.mechanisms(), admin.clone())?;
    let ctx = Arc::new(Ctx {
        broker,
        node,
        cluster_id: crate::api::s(format!("distlog-{}", config.node_id)),
        sasl,
        admin_required: admin.is_some(),
        groups: crate::api::membership::Membership::start(
            distlog_coordinator::GroupConfig::default(),
        ),
        responses: Arc::new(Semaphore::new(
            config
                .max_response_bytes_in_flight
                .max(config.max_fetch_bytes)
                .max(1),
        )),
        config,
    });
    let slots = Arc::new(Semaphore::new(ctx.config.max_connections.max(1)));
    let memory = Arc::new(Semaphore::new(
        ctx.config.max_request_bytes_in_flight.max(1),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            () = &mut shutdown => break,
        };
        let Some(next) = next else { break };
        let (stream, peer) = match next {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %e, "kafka accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::metrics::protocol_error("connection-limit");
            tracing::warn!(
                peer,
                limit = ctx.config.max_connections,
                "kafka connection refused: kafka.max_connections reached"
            );
            drop(stream);
            continue;
        };
        let (ctx, memory, stop) = (ctx.clone(), memory.clone(), stop_rx.clone());
        tokio::spawn(async move {
            crate::metrics::connections(1.0);
            conn::run(stream, peer, ctx, memory, stop).await;
            crate::metrics::connections(-1.0);
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// Checks `config` as [`serve`] would, for a listener bound at `local`, so that a bad
/// setting stops the broker at startup.
pub fn validate(
    config: &KafkaConfig,
    local: SocketAddr,
    has_admin: bool,
) -> Result<(), ServeError> {
    node(config, local)?;
    Sasl::new(&config.mechanisms(), None)?;
    if config.sasl_required && config.mechanisms().is_empty() {
        return Err(ServeError::Config(
            "kafka.sasl_required is set but kafka.sasl_mechanisms is empty".into(),
        ));
    }
    if !config.mechanisms().is_empty() && !has_admin {
        return Err(ServeError::Config(
            "kafka.sasl_mechanisms needs server.admin_token: it is the password SASL checks".into(),
        ));
    }
    Ok(())
}

/// Plain TCP connections of `listener`, with their peer addresses.
pub fn tcp(listener: tokio::net::TcpListener) -> Listener<tokio::net::TcpStream> {
    Box::pin(futures_util::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, peer)| {
            let _ = s.set_nodelay(true);
            (s, peer.to_string())
        });
        Some((next, l))
    }))
}

fn node(config: &KafkaConfig, local: SocketAddr) -> Result<Node, ServeError> {
    let (host, port) = if config.advertised_listener.is_empty() {
        (local.ip().to_string(), local.port())
    } else {
        let (h, p) = config
            .advertised_listener
            .rsplit_once(':')
            .ok_or_else(|| ServeError::Advertised(config.advertised_listener.clone()))?;
        let port = p
            .parse()
            .map_err(|_| ServeError::Advertised(config.advertised_listener.clone()))?;
        (h.trim_matches(['[', ']']).to_owned(), port)
    };
    Ok(Node {
        id: config.node_id,
        host: crate::api::s(host),
        port: i32::from(port),
    })
}
