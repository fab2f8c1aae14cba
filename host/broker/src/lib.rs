//! Topics, partitions and policies: wires storage and plugins together.
//!
//! A [`Broker`] owns a data directory:
//!
//! ```text
//! <data_dir>/topics/<topic>/topic.json     name, partition count, the topic's own config
//! <data_dir>/topics/<topic>/<partition>/   one storage log per partition (distlog-storage)
//! <data_dir>/internal/__consumer_offsets/  consumer-group commits: an internal compacted log
//! <data_dir>/plugins/<name>.{wasm,kind}    plugins loaded through the API
//! <data_dir>/plugins/versions/<sha256>.wasm every codec version loaded (stored batches need them)
//! <data_dir>/plugin-cache/                 compiled plugin artifacts
//! <data_dir>/staging/, <data_dir>/trash/   topic creation and deletion in progress
//! ```
//!
//! Architecture invariant: the broker is synchronous (it uses tokio's `sync` module only, for
//! end-offset notifications) and knows nothing of protobuf or gRPC; the server crate maps its
//! types and [`BrokerError`] to the wire. Every method that touches the disk blocks: callers
//! on an async runtime run them with `spawn_blocking`.
//!
//! Placement: a record without an explicit partition goes to Kafka's murmur2 partition of
//! its key ([`partitioner`]); unkeyed records of one request go together to a partition
//! chosen round-robin.

mod broker;
mod codec;
pub mod config;
mod error;
mod fetch;
pub mod groups;
pub mod health;
mod internal;
mod maintenance;
mod metrics;
pub mod names;
pub mod partitioner;
pub mod plugins;
mod produce;
mod producer_ids;
mod topics;

pub use broker::{Broker, GroupPartitionLag};
pub use codec::CodecIdentity;
pub use config::{BrokerConfig, TopicConfig};
pub use distlog_plugin_host::{PluginDigest, PluginHost, PluginKind, PluginLimits, PluginStats};
pub use distlog_storage::SegmentInfo;
pub use distlog_storage::batch::Header;
pub use error::BrokerError;
pub use fetch::{
    FetchResult, OffsetQuery, PlainBatch, PlainFetchResult, RawBatch, RawFetchResult, StoredRecord,
};
pub use groups::{CommittedOffset, MAX_COMMIT_METADATA, OffsetCommit, PartitionReset, ResetTarget};
pub use health::{BrokerInfo, ListenerInfo, Problem, Status};
pub use maintenance::{CleanerSummary, RetentionSummary};
pub use metrics::describe as describe_metrics;
pub use plugins::{PluginDescription, PluginVersion, PluginsConfig};
pub use produce::{
    BatchesAppend, EncodedBatch, PartitionAppend, PendingSync, ProduceRecord, ProduceResult,
};
pub use topics::{ConfigSource, PartitionDescription, TopicDescription, TopicSummary};

/// The broker's clock: ms since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
