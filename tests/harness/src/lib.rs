//! One way to run a real broker for the end-to-end tests (`tests/all`) and the benchmarks
//! (`benches/`), in either of the two shapes they need:
//!
//! - [`InProcess`]: a [`Broker`](distlog_server::Broker) opened from a
//!   [`BrokerConfig`](distlog_server::BrokerConfig) and served by
//!   `distlog_server::serve_with_listener` on `127.0.0.1:0`, as a task of the caller's tokio
//!   runtime (so a benchmark's server and its baseline share one runtime). The broker handle
//!   stays available for deterministic passes (`run_retention_once`, `roll_partition`, ...).
//! - [`Process`]: the `distlog` binary ([`distlog_bin`]) running `serve` on `127.0.0.1:0`,
//!   its addresses read from the listening lines it logs, its log kept in memory.
//!
//! Both stop on drop, panics included: [`InProcess`] shuts the server down gracefully (the
//! broker is closed, every log synced) and waits for it when dropped on a multi-threaded
//! runtime, and aborts it otherwise; [`Process`] kills and reaps the child. Call
//! [`InProcess::stop`] or [`Process::terminate`] to see how serving ended.
//!
//! Invariant: this crate reaches the broker only through `distlog-server`'s public API, the
//! way the binary does; no test or benchmark keeps a copy of this wiring.

mod in_process;
mod process;

pub use in_process::InProcess;
pub use process::{Process, Profile, distlog_bin, run};

use std::time::Duration;
use thiserror::Error;

/// Upper bound on a start or a graceful stop, so a regression fails instead of hanging.
pub const GUARD: Duration = Duration::from_secs(120);

/// Starting, reaching or stopping a broker failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// An IO operation failed (binding, spawning, waiting...).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The broker could not be opened.
    #[error("opening the broker: {0}")]
    Open(#[source] distlog_server::BrokerError),
    /// The server ended with an error.
    #[error("serving: {0}")]
    Serve(#[source] distlog_server::ServeError),
    /// A client could not connect.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The broker's address.
        addr: std::net::SocketAddr,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// Something did not happen within [`GUARD`].
    #[error("{0} did not complete within {GUARD:?}")]
    Timeout(&'static str),
    /// A task or thread of the harness failed (panicked or was cancelled).
    #[error("{0}")]
    Task(String),
    /// The `distlog` binary could not be built or found.
    #[error("the distlog binary: {0}")]
    Binary(String),
    /// The child process did not start serving; its log says why.
    #[error("distlog serve did not report its listening addresses; log:\n{log}")]
    NotServing {
        /// What the process logged.
        log: String,
    },
    /// The child process did not exit within a minute of SIGTERM (it was killed).
    #[error("distlog serve did not exit after SIGTERM; log:\n{log}")]
    StillRunning {
        /// What the process logged.
        log: String,
    },
    /// A `distlog` subcommand failed.
    #[error("distlog {args:?} failed ({status}): {stderr}")]
    Command {
        /// Its arguments.
        args: Vec<String>,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
}

impl HarnessError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Wraps `message` in a request carrying `authorization: Bearer <token>`, as admin calls
/// need when the server has an admin token. Panics if `token` is not printable ASCII.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .expect("an admin token is printable ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}
