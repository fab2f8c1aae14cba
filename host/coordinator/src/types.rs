//! The coordinator's inputs (events) and outputs (actions), in its own plain types.

use crate::error::GroupError;
use crate::group::GroupState;

/// Milliseconds on the caller's monotonic clock; only differences matter.
pub type Millis = u64;

/// The caller's name for one request; the answer carries it back. Unique among the
/// requests not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// One protocol a member supports (for consumers: an assignor) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Vec<u8>,
}

impl Protocol {
    pub fn new(name: impl Into<String>, metadata: Vec<u8>) -> Self {
        Protocol {
            name: name.into(),
            metadata,
        }
    }
}

/// A JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub group: String,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a member without id gets `MEMBER_ID_REQUIRED` and an id first.
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a static leader rejoining a stable group may skip the
    /// assignment instead of forcing a rebalance.
    pub supports_skip_assignment: bool,
    /// The id this member gets if the coordinator has to give it one (the caller generates
    /// it, so the coordinator stays deterministic); ignored otherwise.
    pub new_member_id: String,
}

impl Join {
    /// A join of a new member (no id, v4+ rules) with 10 s session and 30 s rebalance
    /// timeouts and an empty new member id; adjust with the `with_` methods.
    pub fn new(
        group: impl Into<String>,
        protocol_type: impl Into<String>,
        protocols: Vec<Protocol>,
    ) -> Self {
        Join {
            group: group.into(),
            member_id: String::new(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: protocol_type.into(),
            protocols,
            require_known_member_id: false,
            supports_skip_assignment: false,
            new_member_id: String::new(),
        }
    }

    pub fn with_member_id(mut self, id: impl Into<String>) -> Self {
        self.member_id = id.into();
        self
    }

    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    pub fn with_new_member_id(mut self, id: impl Into<String>) -> Self {
        self.new_member_id = id.into();
        self
    }

    pub fn with_timeouts(mut self, session_ms: i32, rebalance_ms: i32) -> Self {
        self.session_timeout_ms = session_ms;
        self.rebalance_timeout_ms = rebalance_ms;
        self
    }

    pub fn with_client(
        mut self,
        client_id: impl Into<String>,
        client_host: impl Into<String>,
    ) -> Self {
        self.client_id = client_id.into();
        self.client_host = client_host.into();
        self
    }

    pub fn requiring_known_member_id(mut self, yes: bool) -> Self {
        self.require_known_member_id = yes;
        self
    }

    pub fn supporting_skip_assignment(mut self, yes: bool) -> Self {
        self.supports_skip_assignment = yes;
        self
    }
}

/// A successful JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub protocol_type: String,
    /// The protocol chosen for this generation.
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader keeps its previous assignment (a static leader rejoined a stable group).
    pub skip_assignment: bool,
}

/// A member as the leader sees it in [`Joined::members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

/// A SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// Checked against the group's when given (SyncGroup v5+).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, `(member id, assignment)`; empty from followers.
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// A successful SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub protocol_type: String,
    pub protocol_name: String,
    pub assignment: Vec<u8>,
}

/// A Heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
}

/// One member leaving (LeaveGroup): by member id, or by instance id (the member id then
/// empty, or checked against the instance's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Join(Result<Joined, GroupError>),
    Sync(Result<Synced, GroupError>),
    Heartbeat(Result<(), GroupError>),
    /// The group-level outcome, and one outcome per leaving member in request order.
    Leave(Result<Vec<Result<(), GroupError>>, GroupError>),
}

/// What the caller must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer request `request_id`; exactly one per request.
    Respond {
        request_id: RequestId,
        response: Response,
    },
    /// The group moved to `state` (for logs and metrics).
    StateChanged {
        group: String,
        generation: i32,
        state: GroupState,
    },
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless the group is stable.
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberSummary>,
}

/// A member as DescribeGroups shows it; metadata and assignment only in a stable group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}
