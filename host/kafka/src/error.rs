//! The one mapping from broker errors to Kafka error codes.
//!
//! Client faults get the code a Kafka client reacts to correctly (refresh metadata, reset
//! its position, give up on the record); the broker's own failures get
//! `KAFKA_STORAGE_ERROR` (retriable: the client retries, possibly after a leader change)
//! and never a client-fault code. The message, where the response has one, is the broker's.

use distlog_broker::BrokerError;
use distlog_storage::producers::Check;
use kafka_protocol::ResponseError;

/// The Kafka error for `e`, as a request on `context` (what the request was about) sees it.
pub fn code(e: &BrokerError) -> ResponseError {
    use ResponseError as K;
    match e {
        BrokerError::TopicNotFound(_) | BrokerError::PartitionNotFound { .. } => {
            K::UnknownTopicOrPartition
        }
        BrokerError::TopicExists(_) => K::TopicAlreadyExists,
        BrokerError::GroupNotFound(_) => K::GroupIdNotFound,
        BrokerError::InvalidName { what, .. } => match *what {
            "group" => K::InvalidGroupId,
            "topic" => K::InvalidTopicException,
            _ => K::InvalidRequest,
        },
        BrokerError::InvalidPartitionCount { .. } => K::InvalidPartitions,
        BrokerError::InvalidConfig { .. } | BrokerError::UnusablePlugin(_) => K::InvalidConfig,
        BrokerError::InvalidArgument(_) | BrokerError::Empty(_) => K::InvalidRequest,
        BrokerError::RecordTooLarge { .. } | BrokerError::BatchTooLarge { .. } => {
            K::MessageTooLarge
        }
        BrokerError::OffsetOutOfRange { .. } => K::OffsetOutOfRange,
        BrokerError::FailedPrecondition(_) => K::PolicyViolation,
        BrokerError::Producer { check, .. } => match check {
            Check::OutOfOrder { .. } => K::OutOfOrderSequenceNumber,
            Check::Fenced { .. } => K::InvalidProducerEpoch,
            Check::UnknownProducer => K::UnknownProducerId,
            _ => K::InvalidRecord,
        },
        BrokerError::PluginNotFound(_)
        | BrokerError::PluginExists(_)
        | BrokerError::InvalidPlugin(_)
        | BrokerError::PluginInUse { .. }
        | BrokerError::PluginsDisabled => K::InvalidConfig,
        // Retriable: the client backs off and retries.
        BrokerError::ShuttingDown => K::NotLeaderOrFollower,
        BrokerError::NoSpace(_)
        | BrokerError::LogFailed { .. }
        | BrokerError::DataLoss { .. }
        | BrokerError::Corrupt { .. }
        | BrokerError::Storage { .. }
        | BrokerError::Io { .. }
        | BrokerError::CorruptMetadata { .. } => K::KafkaStorageError,
        _ => K::UnknownServerError,
    }
}

/// A produce's answer to an invalid record batch: the records error, more precise than
/// `INVALID_REQUEST`.
pub fn produce_code(e: &BrokerError) -> ResponseError {
    match e {
        BrokerError::InvalidArgument(_) => ResponseError::InvalidRecord,
        other => code(other),
    }
}

/// The message to send with `e`, where the response has an error message field.
pub fn message(e: &BrokerError) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_failures_are_never_client_faults() {
        let io = BrokerError::NoSpace("disk full".into());
        assert_eq!(code(&io), ResponseError::KafkaStorageError);
        assert!(code(&BrokerError::ShuttingDown).is_retriable());
        assert_eq!(
            code(&BrokerError::TopicNotFound("t".into())),
            ResponseError::UnknownTopicOrPartition
        );
    }
}
