//! Why a membership request is refused.

/// A refused membership request; each variant is one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The group id is empty (`INVALID_GROUP_ID`).
    #[error("the group id is empty")]
    InvalidGroupId,
    /// The session timeout is outside the configured bounds (`INVALID_SESSION_TIMEOUT`).
    #[error("session timeout {timeout_ms} ms is outside {min_ms}..={max_ms} ms")]
    InvalidSessionTimeout {
        timeout_ms: i32,
        min_ms: i32,
        max_ms: i32,
    },
    /// A new member must rejoin with the member id it is given here (`MEMBER_ID_REQUIRED`).
    #[error("rejoin with member id {member_id}")]
    MemberIdRequired { member_id: String },
    /// The group does not know this member (`UNKNOWN_MEMBER_ID`).
    #[error("unknown member {member_id:?}")]
    UnknownMemberId { member_id: String },
    /// The request names another generation than the group's (`ILLEGAL_GENERATION`).
    #[error("generation {given} is not the group's generation {current}")]
    IllegalGeneration { given: i32, current: i32 },
    /// The group is rebalancing: rejoin (`REBALANCE_IN_PROGRESS`).
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// The protocol type or protocols do not fit the group's (`INCONSISTENT_GROUP_PROTOCOL`).
    #[error("protocol type or protocols inconsistent with the group's")]
    InconsistentGroupProtocol,
    /// Another member now holds this `group.instance.id` (`FENCED_INSTANCE_ID`).
    #[error("instance {instance_id:?} is held by another member id")]
    FencedInstanceId { instance_id: String },
    /// The group still has members (`NON_EMPTY_GROUP`).
    #[error("the group has members")]
    NonEmptyGroup,
}
