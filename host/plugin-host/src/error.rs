//! Error types, one enum per operation family.

use std::path::PathBuf;

use crate::{PluginDigest, PluginKind};

/// A call into a plugin failed.
///
/// Every variant leaves the host serving: a trap, a timeout or memory
/// exhaustion discards the instance that failed (the next call gets a fresh
/// one), and the failure is counted in the version's [`PluginStats`](crate::PluginStats).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No plugin is loaded under this name.
    #[error("no plugin named {0:?} is loaded")]
    NotFound(String),
    /// No codec version with this digest is loaded (data written by a codec
    /// that was never loaded, or unloaded, cannot be decoded).
    #[error("no codec version {0} is loaded")]
    UnknownVersion(PluginDigest),
    /// The plugin exists but is of another kind than the call needs.
    #[error("plugin {name:?} is a {actual} plugin, not a {expected} plugin")]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    /// The call ran past its epoch deadline and was interrupted.
    #[error("plugin {name:?} timed out after {timeout_ms} ms")]
    Timeout { name: String, timeout_ms: u64 },
    /// The call ran out of fuel (fuel metering is enabled and the plugin's
    /// per-call budget was spent).
    #[error("plugin {name:?} ran out of fuel")]
    FuelExhausted { name: String },
    /// The plugin asked for more linear memory than its cap allows.
    #[error("plugin {name:?} exceeded its memory cap of {limit_bytes} bytes")]
    MemoryExhausted { name: String, limit_bytes: u64 },
    /// The plugin trapped (unreachable, out-of-bounds access, stack
    /// overflow, …).
    #[error("plugin {name:?} trapped: {message}")]
    Trap { name: String, message: String },
    /// The plugin returned a value that breaks the contract (wrong length,
    /// names the active segment, output too large, malformed list, …).
    #[error("plugin {name:?} returned invalid output: {reason}")]
    InvalidOutput { name: String, reason: String },
    /// The plugin returned its own `err(message)`.
    #[error("plugin {name:?} returned an error: {message}")]
    Guest { name: String, message: String },
    /// A fresh instance could not be created (pool exhausted, `init`
    /// rejected its parameters, …).
    #[error("plugin {name:?} could not be instantiated: {message}")]
    Instantiate { name: String, message: String },
    /// Instantiation plus `init` of a fresh instance ran past the init
    /// deadline ([`PluginLimits::init_timeout`](crate::PluginLimits)), not the
    /// call's: the plugin's `init` (or its start-up code) loops or is too slow.
    #[error("plugin {name:?} init timed out after {timeout_ms} ms")]
    InitTimeout { name: String, timeout_ms: u64 },
    /// Instantiation or `init` of a fresh instance trapped (or ran out of
    /// fuel); no call ran.
    #[error("plugin {name:?} init trapped: {message}")]
    InitTrap { name: String, message: String },
}

/// Loading, validating or swapping in a plugin version failed. The version
/// is rejected; whatever served before keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The plugin file could not be read.
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The name is empty, too long, or contains characters other than
    /// ASCII letters, digits, `-`, `_` and `.`.
    #[error("invalid plugin name {0:?}")]
    InvalidName(String),
    /// The bytes are not a valid component for this engine.
    #[error("cannot compile plugin {name:?}: {message}")]
    Compile { name: String, message: String },
    /// The component exports none of the plugin interfaces.
    #[error(
        "plugin {name:?} exports no distlog:plugin interface (codec, retention or compaction); it exports {exports:?}"
    )]
    UnknownKind { name: String, exports: Vec<String> },
    /// The component is of another kind than requested, or than the version
    /// it replaces.
    #[error("plugin {name:?} is a {actual} plugin, expected a {expected} plugin")]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    /// The component's imports cannot be satisfied (it imports something
    /// other than `distlog:plugin/host` and WASI).
    #[error("plugin {name:?} cannot be linked: {message}")]
    Link { name: String, message: String },
    /// The component's exports do not match its world's types.
    #[error("plugin {name:?} does not match the {kind} world: {message}")]
    TypeCheck {
        name: String,
        kind: PluginKind,
        message: String,
    },
    /// The first instance could not be initialised: `init` rejected its
    /// parameters, looped past the init deadline, trapped or exhausted its
    /// memory. Reported before any self-test call runs, so the message says
    /// `init`, not the call that would have come next.
    #[error("{source}")]
    Init {
        name: String,
        #[source]
        source: PluginError,
    },
    /// The component loaded but failed its self-test.
    #[error("plugin {name:?} failed its self-test: {reason}")]
    SelfTest { name: String, reason: String },
    /// A newer reload for the same name arrived before this one was
    /// processed; the newer one wins.
    #[error("reload of plugin {name:?} superseded by a newer reload")]
    Superseded { name: String },
    /// A reload named a plugin that is not loaded and gave no kind.
    #[error("no plugin named {0:?} is loaded")]
    NotFound(String),
    /// A bug in the host interrupted the load; nothing was swapped in.
    #[error("internal error while loading a plugin: {0}")]
    Internal(String),
}

/// A registry operation (unload, pin) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No plugin is loaded under this name.
    #[error("no plugin named {0:?} is loaded")]
    NotFound(String),
    /// No version with this digest is loaded.
    #[error("no plugin version {0} is loaded")]
    UnknownVersion(PluginDigest),
    /// Stored data still references these codec versions; they must stay
    /// loaded so that data keeps decoding.
    #[error(
        "codec {name:?} cannot be unloaded: stored data still references version(s) {}",
        digests.iter().map(|d| d.short()).collect::<Vec<_>>().join(", ")
    )]
    CodecInUse {
        name: String,
        digests: Vec<PluginDigest>,
    },
    /// The version is the one currently serving its name; load a
    /// replacement or unload the name instead.
    #[error("plugin version {digest} is the current version of {name:?}")]
    CurrentVersion { name: String, digest: PluginDigest },
}

/// Watching a plugin directory failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("cannot watch plugin directory {path}: {message}")]
    Watch { path: PathBuf, message: String },
    #[error("cannot list plugin directory {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the plugin watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The host could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The engine rejected the configuration.
    #[error("invalid plugin engine configuration: {0}")]
    Config(String),
    /// The artifact cache directory could not be created.
    #[error("cannot create plugin cache directory {path}: {source}")]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Thread(#[source] std::io::Error),
}
