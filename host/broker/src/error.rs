//! The broker's errors: one enum for every operation, each variant precise enough for the
//! server to pick a status code without looking at messages.

use distlog_storage::{AppendError, ReadError};
use std::path::PathBuf;
use thiserror::Error;

/// A broker operation failed.
///
/// The variants are grouped by what the caller can do about them: fix the request
/// (`Invalid*`, `Empty*`, `*TooLarge`, `OffsetOutOfRange`), name something that exists
/// (`*NotFound`), pick another name (`TopicExists`), or retry later (`ShuttingDown`,
/// `NoSpace`). `Storage` and `Io` are the broker's own failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No topic has this name.
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    /// The topic exists but has no such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    PartitionNotFound {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Number of partitions of the topic.
        count: u32,
    },
    /// A topic with this name already exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// No consumer group with this name has committed offsets.
    #[error("consumer group {0:?} has no committed offsets")]
    GroupNotFound(String),
    /// A topic, group or plugin name breaks the naming rules.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// "topic", "group", ...
        what: &'static str,
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A partition count outside `1..=max`.
    #[error("invalid partition count {count}: must be between 1 and {max}")]
    InvalidPartitionCount {
        /// Requested count.
        count: u32,
        /// Broker maximum.
        max: u32,
    },
    /// A topic configuration entry is unknown or its value is invalid.
    #[error("invalid topic configuration {key:?}: {reason}")]
    InvalidConfig {
        /// The key concerned.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A topic configuration entry (`compression`, `retention.policy`, `compaction.key`)
    /// names a plugin that is not loaded, or one of another kind.
    #[error(transparent)]
    UnusablePlugin(Box<crate::config::UnusablePlugin>),
    /// Any other malformed request (negative offsets, oversized metadata...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A produce request without records, or a commit without offsets.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// One record is larger than the topic allows.
    #[error("record {index} is {size} bytes, over the topic's max.message.bytes of {max}")]
    RecordTooLarge {
        /// Index of the record in the request.
        index: usize,
        /// Encoded size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The records for one partition make a batch larger than the topic allows.
    #[error(
        "batch for partition {partition} is {size} bytes, over the topic's max.message.bytes of {max}"
    )]
    BatchTooLarge {
        /// Partition index.
        partition: u32,
        /// Encoded batch size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An offset outside `[start, end]`.
    #[error("offset {requested} is out of range: the log holds offsets [{start}, {end})")]
    OffsetOutOfRange {
        /// Requested offset.
        requested: u64,
        /// Log start offset.
        start: u64,
        /// Log end offset.
        end: u64,
    },
    /// A group commit (through the gRPC API) names an offset beyond its partition's log end.
    #[error(
        "cannot commit offset {offset} for {topic}/{partition}: beyond the log end offset \
         {end} (a committed offset is the next record to consume, at most the log end)"
    )]
    CommitBeyondLogEnd {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's log end offset.
        end: u64,
    },
    /// The request needs something the broker does not offer yet or in this state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An idempotent producer's batch breaks its producer's sequence or epoch: out of order,
    /// from a fenced (older) epoch, from a producer this partition has no state for, or with
    /// invalid producer fields. Nothing was appended.
    #[error("topic {topic:?} partition {partition}: {check}")]
    Producer {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// What the producer got wrong.
        check: distlog_storage::producers::Check,
    },
    /// The broker is closing or closed.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// The disk is full; nothing was written.
    #[error("no space left on device: {0}")]
    NoSpace(String),
    /// Stored data is damaged: the offsets `[first_offset, next_offset)` of the partition are
    /// lost (the records around them are intact). Fetch from `next_offset` to go on.
    #[error("data loss on {topic}/{partition}: {message}")]
    DataLoss {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// First lost offset.
        first_offset: u64,
        /// Where the log continues.
        next_offset: u64,
        /// The storage error, naming the damage.
        message: String,
    },
    /// Stored data failed validation where no lost range can be named (a batch that decodes
    /// wrongly, a segment with too many damaged batches). Never served.
    #[error("corrupt data on {topic}/{partition}: {message}")]
    Corrupt {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// What is wrong.
        message: String,
    },
    /// The partition's log stopped accepting appends after a failed fsync (never retried into
    /// "durable"); a restart of the broker revalidates it. Records below `synced_offset` are
    /// durable.
    #[error(
        "partition {topic}/{partition} refuses appends: {message}; restart the broker to \
         revalidate its log"
    )]
    LogFailed {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// Offsets below this are durable.
        synced_offset: u64,
        /// The failure.
        message: String,
    },
    /// The storage layer failed (IO error, corrupt data).
    #[error("storage error on {topic}/{partition}: {message}")]
    Storage {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// The storage error.
        message: String,
    },
    /// No plugin has this name.
    #[error("plugin {0:?} is not loaded")]
    PluginNotFound(String),
    /// A plugin with this name is already loaded (use reload to replace it).
    #[error("plugin {0:?} is already loaded; reload it to replace its version")]
    PluginExists(String),
    /// The component was rejected: not a component, wrong world, failed self-test, bad name.
    #[error("plugin rejected: {0}")]
    InvalidPlugin(String),
    /// The plugin is still used (by a topic's configuration, or by stored data).
    #[error("plugin {name:?} is in use: {reason}")]
    PluginInUse {
        /// Plugin name.
        name: String,
        /// Who uses it.
        reason: String,
    },
    /// The broker runs without a plugin host.
    #[error("plugins are disabled on this broker (broker.plugins.enabled = false)")]
    PluginsDisabled,
    /// The plugin runtime failed to start.
    #[error("plugin host: {0}")]
    PluginHost(String),
    /// A metadata file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A metadata file is unreadable.
    #[error("corrupt metadata {path}: {reason}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl BrokerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if distlog_storage::io::is_no_space(&source) {
            return Self::NoSpace(format!("{op} {}: {source}", path.into().display()));
        }
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

// Storage errors, mapped in one place: an IO error keeps its kind, a full disk is `NoSpace`,
// damage is `DataLoss` or `Corrupt` naming the partition.

pub(crate) fn append_error(topic: &str, partition: u32, e: AppendError) -> BrokerError {
    match e {
        AppendError::Producer(check) => BrokerError::Producer {
            topic: topic.to_owned(),
            partition,
            check,
        },
        AppendError::NoSpace(e) => BrokerError::NoSpace(e.to_string()),
        AppendError::Closed => BrokerError::ShuttingDown,
        // A sync that failed for lack of space is a full disk, whatever else it latched.
        AppendError::Sync { failure, .. } | AppendError::Failed(failure)
            if failure.is_no_space() =>
        {
            BrokerError::NoSpace(failure.to_string())
        }
        AppendError::Sync { failure, .. } | AppendError::Failed(failure) => {
            BrokerError::LogFailed {
                topic: topic.to_owned(),
                partition,
                synced_offset: failure.synced_offset,
                message: failure.to_string(),
            }
        }
        // Other IO errors keep their kind.
        AppendError::Io(source) => BrokerError::io(
            "append",
            PathBuf::from(format!("{topic}/{partition}")),
            source,
        ),
        e => BrokerError::Storage {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
    }
}

pub(crate) fn read_error(topic: &str, partition: u32, e: ReadError) -> BrokerError {
    match e {
        ReadError::OffsetOutOfRange {
            requested,
            start,
            end,
        } => BrokerError::OffsetOutOfRange {
            requested,
            start,
            end,
        },
        ReadError::Closed => BrokerError::ShuttingDown,
        ReadError::DataLoss {
            first_offset,
            next_offset,
            ..
        } => BrokerError::DataLoss {
            topic: topic.to_owned(),
            partition,
            first_offset,
            next_offset,
            message: e.to_string(),
        },
        ReadError::Corrupt { .. } => BrokerError::Corrupt {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
        ReadError::Io(source) => BrokerError::io(
            "read",
            PathBuf::from(format!("{topic}/{partition}")),
            source,
        ),
        e => BrokerError::Storage {
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        },
    }
}

pub(crate) fn corrupt(
    topic: &str,
    partition: u32,
    e: &distlog_storage::batch::BatchError,
) -> BrokerError {
    BrokerError::Corrupt {
        topic: topic.to_owned(),
        partition,
        message: format!("corrupt batch: {e}"),
    }
}

/// Names the partition in a codec error, which does not know it (see `codec::payload`).
pub(crate) fn in_partition(e: BrokerError, topic: &str, partition: u32) -> BrokerError {
    match e {
        BrokerError::Corrupt { message, .. } => BrokerError::Corrupt {
            topic: topic.to_owned(),
            partition,
            message,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards the mapping of storage errors: an IO error keeps its kind, a full disk met by a
    /// write or by the fsync a produce waits for is `NoSpace`.
    #[test]
    fn storage_errors_keep_their_io_kind() {
        use std::io::{Error, ErrorKind};
        let e = append_error(
            "t",
            3,
            AppendError::Io(Error::from(ErrorKind::PermissionDenied)),
        );
        assert!(
            matches!(&e, BrokerError::Io { source, .. } if source.kind() == ErrorKind::PermissionDenied),
            "{e:?}"
        );
        let e = read_error("t", 3, ReadError::Io(Error::from(ErrorKind::UnexpectedEof)));
        assert!(
            matches!(&e, BrokerError::Io { source, .. } if source.kind() == ErrorKind::UnexpectedEof),
            "{e:?}"
        );
        let e = append_error(
            "t",
            3,
            AppendError::NoSpace(Error::from(ErrorKind::StorageFull)),
        );
        assert!(matches!(e, BrokerError::NoSpace(_)), "{e:?}");
        let failure = distlog_storage::log::LogFailure {
            kind: ErrorKind::StorageFull,
            message: "No space left on device (os error 28)".into(),
            synced_offset: 7,
        };
        let e = append_error(
            "t",
            3,
            AppendError::Sync {
                base_offset: 7,
                failure,
            },
        );
        assert!(matches!(e, BrokerError::NoSpace(_)), "{e:?}");
    }
}
