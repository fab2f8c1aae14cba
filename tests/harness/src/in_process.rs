//! The broker and server in this process, on the caller's tokio runtime.

use crate::{GUARD, HarnessError};
use distlog_server::{Broker, BrokerConfig, ServeError, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// A broker served on `127.0.0.1:<port>` by `distlog_server::serve_with_listener`, as a task
/// of the runtime [`InProcess::start`] was called on.
///
/// Dropped without [`InProcess::stop`] (a failed assertion, a panic), it asks the server to
/// shut down and, on a multi-threaded runtime, waits up to [`GUARD`] for the drain and the
/// broker's close (`block_in_place`); on a current-thread runtime it aborts the task.
#[derive(Debug)]
pub struct InProcess {
    addr: SocketAddr,
    broker: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProcess {
    /// Opens the broker (on the blocking pool: it recovers every log) and starts serving it
    /// with `server` on a fresh loopback port. `server.listen` is ignored. The server may
    /// still refuse its configuration: [`InProcess::finished`] reports that.
    pub async fn start(broker: BrokerConfig, server: ServerConfig) -> Result<Self, HarnessError> {
        let broker = tokio::task::spawn_blocking(move || Broker::open(broker))
            .await
            .map_err(|e| HarnessError::Task(format!("opening the broker: {e}")))?
            .map_err(HarnessError::Open)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HarnessError::io("binding 127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("reading the listener's address"))?;
        let (tx, rx) = oneshot::channel::<()>();
        let serve =
            distlog_server::serve_with_listener(listener, server, broker.clone(), async move {
                let _ = rx.await;
            });
        let task = tokio::spawn(async move {
            let served = serve.await;
            // Said at once: a client of a server that stopped early sees only refused
            // connections.
            if let Err(e) = &served {
                eprintln!("distlog-harness: the server on {addr} stopped: {e}");
            }
            served
        });
        Ok(Self {
            addr,
            broker,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// A broker configuration over `data` with the plugin host off (most tests need none).
    pub fn without_plugins(data: &Path) -> BrokerConfig {
        let mut config = BrokerConfig::new(data);
        config.plugins.enabled = false;
        config
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker being served (a handle; calls on it block, see [`InProcess::with_broker`]).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// `http://<addr>`, for a client with its own settings.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("a socket address is a valid URI authority")
    }

    /// A plaintext channel to the server with tonic's default settings.
    pub async fn channel(&self) -> Result<Channel, HarnessError> {
        self.endpoint()
            .connect()
            .await
            .map_err(|source| HarnessError::Connect {
                addr: self.addr,
                source,
            })
    }

    /// Runs a blocking broker call on the blocking pool, off the async workers.
    pub async fn with_broker<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Broker) -> T + Send + 'static,
    ) -> Result<T, HarnessError> {
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || f(&broker))
            .await
            .map_err(|e| HarnessError::Task(format!("broker call: {e}")))
    }

    /// Graceful shutdown: drains in-flight requests, closes the broker (every log synced and
    /// checkpointed) and reports how serving ended.
    pub async fn stop(mut self) -> Result<(), HarnessError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.finish().await?.map_err(HarnessError::Serve)
    }

    /// Waits, without asking it to stop, for the server to end by itself (a configuration
    /// it refuses) and returns how serving ended. A server that keeps serving for [`GUARD`]
    /// is [`HarnessError::Timeout`].
    pub async fn finished(mut self) -> Result<Result<(), ServeError>, HarnessError> {
        self.finish().await
    }

    async fn finish(&mut self) -> Result<Result<(), ServeError>, HarnessError> {
        let task = self
            .task
            .as_mut()
            .ok_or_else(|| HarnessError::Task("the server task is gone".into()))?;
        let joined = tokio::time::timeout(GUARD, task)
            .await
            .map_err(|_| HarnessError::Timeout("the server's shutdown"))?;
        self.task = None;
        joined.map_err(|e| HarnessError::Task(format!("the server task: {e}")))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let abort = task.abort_handle();
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    let _ = handle.block_on(tokio::time::timeout(GUARD, task));
                });
                abort.abort();
            }
            _ => abort.abort(),
        }
    }
}
