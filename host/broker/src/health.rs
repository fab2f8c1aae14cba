//! The broker's own state for operators (`distlog cluster info` / `health`): when it opened,
//! the listeners the process registered, and whether every log can be written.
//!
//! The listeners are registered by whoever binds them (the binary: gRPC, Kafka, metrics);
//! the broker only keeps the list, so `Broker` stays free of sockets.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

/// A listener the process serves on, as registered with [`Broker::register_listener`].
///
/// [`Broker::register_listener`]: crate::Broker::register_listener
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// "grpc", "kafka", "metrics".
    pub name: String,
    /// The bound address, IP:PORT.
    pub address: String,
    /// The address clients are told to use, when it differs (Kafka's advertised listener).
    pub advertised: Option<String>,
    /// Whether it speaks TLS.
    pub tls: bool,
}

/// Something that keeps the broker from serving fully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is affected: `topic "t" partition 0`, `the offsets log`.
    pub subject: String,
    /// Why, for an operator.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

/// How the broker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Every partition log and internal log can be written.
    Serving,
    /// Serving, except for what the problems name.
    Degraded(Vec<Problem>),
    /// [`Broker::close`](crate::Broker::close) was called.
    Stopping,
}

/// The broker's identity and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The node id the process gave the broker (Kafka's `node.id`; 0 unless set).
    pub node_id: i32,
    /// When the broker opened, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Milliseconds since then (monotonic clock).
    pub uptime_ms: u64,
    /// The registered listeners, in registration order.
    pub listeners: Vec<ListenerInfo>,
    /// Serving, degraded or stopping.
    pub status: Status,
    /// Topics.
    pub topics: u32,
    /// Partitions over every topic.
    pub partitions: u32,
    /// Groups with committed offsets.
    pub groups: u32,
}

/// The room: start time and listeners.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    started_at_ms: i64,
    listeners: RwLock<Vec<ListenerInfo>>,
    node_id: AtomicI32,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            started_at_ms: crate::now_ms(),
            listeners: RwLock::new(Vec::new()),
            node_id: AtomicI32::new(0),
        }
    }

    /// Adds or replaces (by name) a listener.
    pub(crate) fn register(&self, listener: ListenerInfo) {
        let mut list = self.listeners.write();
        match list.iter_mut().find(|l| l.name == listener.name) {
            Some(slot) => *slot = listener,
            None => list.push(listener),
        }
    }

    pub(crate) fn set_node_id(&self, id: i32) {
        self.node_id.store(id, Ordering::Relaxed);
    }

    pub(crate) fn node_id(&self) -> i32 {
        self.node_id.load(Ordering::Relaxed)
    }

    pub(crate) fn listeners(&self) -> Vec<ListenerInfo> {
        self.listeners.read().clone()
    }

    pub(crate) fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }

    pub(crate) fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
