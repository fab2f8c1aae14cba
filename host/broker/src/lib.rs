//! Topics, partitions and policies: wires storage and plugins together.
//!
//! A [`Broker`] owns a data directory:
//!
//! ```text
//! <data_dir>/topics/<topic>/topic.json     name, partition count, the topic's own config
//! <data_dir>/topics/<topic>/<partition>/   one storage log per partition (distlog-storage)
//! <data_dir>/groups/offsets.log            consumer-group commits, append-only, fsynced
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

pub(crate) mod broker;
mod codec;
mod compaction;
pub mod config;
mod error;
pub mod groups;
pub mod names;
pub mod partitioner;
pub mod plugins;
mod retention;
mod topic;

pub use broker::maintenance::{CleanerSummary, RawBatch, RawFetchResult, RetentionSummary};
pub use broker::{
    Broker, FetchResult, MAX_COMMIT_METADATA, OffsetCommit, OffsetQuery, PartitionAppend,
    PartitionDescription, PendingSync, ProduceRecord, ProduceResult, StoredRecord,
    TopicDescription, TopicSummary,
};
pub use codec::CodecIdentity;
pub use config::{BrokerConfig, TopicConfig};
pub use distlog_plugin_host::{PluginDigest, PluginHost, PluginKind, PluginStats};
pub use distlog_storage::SegmentInfo;
pub use distlog_storage::batch::Header;
pub use error::BrokerError;
pub use groups::CommittedOffset;
pub use plugins::{PluginDescription, PluginVersion, PluginsConfig};
