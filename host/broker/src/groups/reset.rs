//! Planning a reset of a group's committed offsets (kafka-consumer-groups
//! `--reset-offsets`): pure, no IO. The broker resolves the partition's log bounds (and, for
//! a time, the offset of the first record at or after it) and commits the plan.

use crate::BrokerError;

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// This offset (clamped to the log).
    Offset(u64),
    /// The first record whose timestamp is at or after this time (ms since the Unix epoch);
    /// the log end when none is.
    Timestamp(i64),
    /// The committed offset plus this (negative: back), clamped to the log.
    ShiftBy(i64),
}

/// One partition of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The committed offset before the reset, if any.
    pub previous: Option<u64>,
    /// The offset the reset commits.
    pub new_offset: u64,
}

/// What a plan needs to know of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// The log start offset.
    pub start: u64,
    /// The log end offset.
    pub end: u64,
    /// For [`ResetTarget::Timestamp`], the resolved offset; ignored otherwise.
    pub at_time: u64,
}

/// The offset `target` moves partition `partition` of `topic` to, given the group's commit
/// there (`previous`) and the log's bounds. Every result is within `[start, end]`, as Kafka's
/// tool clamps. A shift of a partition without a commit is `FailedPrecondition` (there is
/// nothing to shift from; kafka-consumer-groups refuses it too).
pub(crate) fn target_offset(
    topic: &str,
    partition: u32,
    target: ResetTarget,
    previous: Option<u64>,
    b: Bounds,
) -> Result<u64, BrokerError> {
    let clamp = |o: u64| o.clamp(b.start, b.end.max(b.start));
    Ok(match target {
        ResetTarget::Earliest => b.start,
        ResetTarget::Latest => b.end,
        ResetTarget::Offset(o) => clamp(o),
        ResetTarget::Timestamp(_) => clamp(b.at_time),
        ResetTarget::ShiftBy(n) => {
            let Some(from) = previous else {
                return Err(BrokerError::FailedPrecondition(format!(
                    "cannot shift the offset of {topic}/{partition}: the group has no committed \
                     offset there (reset it --to-earliest, --to-latest or --to-offset first)"
                )));
            };
            let shifted = if n >= 0 {
                from.saturating_add(n.unsigned_abs())
            } else {
                from.saturating_sub(n.unsigned_abs())
            };
            clamp(shifted)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        start: 10,
        end: 20,
        at_time: 15,
    };

    fn at(target: ResetTarget, previous: Option<u64>) -> Result<u64, BrokerError> {
        target_offset("t", 0, target, previous, B)
    }

    #[test]
    fn targets_resolve_within_the_log() {
        assert_eq!(at(ResetTarget::Earliest, Some(12)).ok(), Some(10));
        assert_eq!(at(ResetTarget::Latest, None).ok(), Some(20));
        assert_eq!(at(ResetTarget::Offset(13), None).ok(), Some(13));
        assert_eq!(
            at(ResetTarget::Offset(3), None).ok(),
            Some(10),
            "clamped up"
        );
        assert_eq!(
            at(ResetTarget::Offset(99), None).ok(),
            Some(20),
            "clamped down"
        );
        assert_eq!(at(ResetTarget::Timestamp(5), None).ok(), Some(15));
        assert_eq!(at(ResetTarget::ShiftBy(-2), Some(12)).ok(), Some(10));
        assert_eq!(at(ResetTarget::ShiftBy(-5), Some(12)).ok(), Some(10));
        assert_eq!(at(ResetTarget::ShiftBy(3), Some(12)).ok(), Some(15));
        assert_eq!(at(ResetTarget::ShiftBy(i64::MAX), Some(12)).ok(), Some(20));
        assert_eq!(at(ResetTarget::ShiftBy(i64::MIN), Some(12)).ok(), Some(10));
    }

    #[test]
    fn shifting_without_a_commit_is_refused() {
        assert!(matches!(
            at(ResetTarget::ShiftBy(1), None),
            Err(BrokerError::FailedPrecondition(m)) if m.contains("t/0")
        ));
    }
}
