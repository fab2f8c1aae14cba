//! The WebAssembly plugin runtime: the only crate that knows wasmtime.
//!
//! Policies of the broker — compression codecs, retention policies,
//! compaction key extraction — are WebAssembly components written against
//! `wit/plugin.wit` (one world per kind). This crate loads them, type-checks
//! them against their world, self-tests them, and runs them under limits.
//!
//! # Architecture invariant
//! Nothing outside this crate names a wasmtime type. The rest of the broker
//! sees [`PluginHost`], plain data ([`SegmentInfo`], [`LogRecord`], …),
//! [`PluginDigest`]s and typed errors.
//!
//! # How a call runs
//! - One [`wasmtime::Engine`] per [`PluginHost`], with the pooling allocator
//!   capped by [`HostConfig::max_instances`] and an epoch ticker thread that
//!   holds only a weak reference to the engine (it stops when the engine is
//!   dropped).
//! - Each plugin version is compiled once (or loaded from the on-disk
//!   artifact cache) into its world's `…Pre`. Instances are created on
//!   demand, run `init(params)` once, and are pooled: a call takes an idle
//!   instance, so it costs microseconds, not an instantiation.
//! - Every call has an epoch deadline, a linear memory cap and, if enabled,
//!   a fuel budget. A trap, timeout or memory exhaustion fails that call with
//!   a typed [`PluginError`], discards the instance and is counted; other
//!   calls and plugins are untouched.
//! - Components that import WASI (Python, JavaScript) get a context that
//!   grants nothing: no files, sockets, environment, arguments, stdio, and a
//!   clock frozen at zero.
//!
//! # Versions and reloads
//! A version is the sha256 of the component's bytes. [`PluginHost::load`]
//! and [`PluginHost::reload`] compile and self-test the new version off the
//! hot path, then swap it in atomically; calls in flight finish on the old
//! version. Codec versions stay loaded after being replaced so that data they
//! wrote keeps decoding ([`PluginHost::decompress`] takes the digest); stored
//! data declares what it references with [`PluginHost::pin`], and unloading a
//! pinned codec is refused.

mod bindings;
mod budget;
mod builtins;
mod cache;
mod config;
pub mod conformance;
mod error;
mod host;
mod selftest;

/// The sample payloads the self-test and the conformance suite feed codecs, for benchmarks
/// and tools that want the same data.
pub mod samples {
    pub use crate::selftest::{compressible_bytes, random_bytes};
}
mod state;
mod version;
mod watch;

use std::fmt;
use std::str::FromStr;

pub use builtins::{Builtin, builtins};
pub use cache::CacheOutcome;
pub use config::{DefaultLimits, HostConfig, PluginLimits, PluginSpec};
pub use error::{HostError, LoadError, PluginError, RegistryError, WatchError};
pub use host::{Compressed, LoadReport, PluginHost, PluginInfo, PluginVersionStats};
pub use version::PluginStats;
pub use watch::{DirWatcher, WatchEvent};

/// Compaction world types: the records a key extractor sees.
pub use bindings::compaction::exports::distlog::plugin::compaction::{Header, LogRecord};
/// Retention world types: what a policy sees and returns.
pub use bindings::retention::exports::distlog::plugin::retention::{
    Deletion, PartitionInfo, SegmentInfo,
};

/// The kind of a plugin: which world its component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginKind {
    /// `codec-plugin`: compress and decompress batch payloads.
    Codec,
    /// `retention-plugin`: decide which closed segments to delete.
    Retention,
    /// `compaction-plugin`: extract the key compaction deduplicates on.
    Compaction,
}

impl PluginKind {
    /// The WIT interface a component of this kind exports.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Codec => "distlog:plugin/codec@0.1.0",
            PluginKind::Retention => "distlog:plugin/retention@0.1.0",
            PluginKind::Compaction => "distlog:plugin/compaction@0.1.0",
        }
    }

    /// Every kind.
    pub const ALL: [PluginKind; 3] = [
        PluginKind::Codec,
        PluginKind::Retention,
        PluginKind::Compaction,
    ];
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Codec => "codec",
            PluginKind::Retention => "retention",
            PluginKind::Compaction => "compaction",
        })
    }
}

/// A plugin version: the sha256 of its component's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginDigest(pub [u8; 32]);

impl PluginDigest {
    /// The digest of `bytes` (about 2 ms per MiB).
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for PluginDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PluginDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginDigest({})", self.short())
    }
}

/// The string was not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin digest {0:?}: expected 64 hex characters")]
pub struct ParseDigestError(pub String);

impl FromStr for PluginDigest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseDigestError(s.to_owned()))?;
        Ok(Self(out))
    }
}
