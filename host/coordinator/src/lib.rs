//! Coordinators as sans-IO state machines: events in (with the time), actions out.
//!
//! [`GroupCoordinator`] is Kafka's classic consumer-group membership (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, and the membership check of OffsetCommit), with static
//! membership (KIP-345). It knows no sockets, clocks, tasks or wire types: every event
//! carries the current time in milliseconds on a monotonic clock the caller owns, and every
//! answer is an [`Action::Respond`] naming the [`RequestId`] the caller gave the request.
//! A JoinGroup or SyncGroup that must wait (for the other members to rejoin, for the
//! leader's assignment) is answered by a later event, possibly [`GroupCoordinator::tick`].
//!
//! Architecture invariant: no tokio, no wire-protocol types; member metadata and assignments
//! are opaque bytes. Every request is answered exactly once. Group state is in memory only.
//!
//! ```
//! use distlog_coordinator::{Action, GroupConfig, GroupCoordinator, Join, Protocol, RequestId, Response};
//!
//! let mut groups = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() });
//! let join = Join::new("g", "consumer", vec![Protocol::new("range", b"m".to_vec())])
//!     .with_timeouts(10_000, 30_000)
//!     .with_new_member_id("client-1");
//! let actions = groups.join(0, RequestId(1), join);
//! let Some(Action::Respond { request_id: RequestId(1), response: Response::Join(Ok(joined)) }) =
//!     actions.iter().find(|a| matches!(a, Action::Respond { .. }))
//! else { panic!("{actions:?}") };
//! assert_eq!((joined.generation, joined.leader.as_str()), (1, "client-1"));
//! ```

mod config;
mod coordinator;
mod error;
mod group;
mod types;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;
pub use error::GroupError;
pub use group::GroupState;
pub use types::{
    Action, GroupSummary, Heartbeat, Join, Joined, JoinedMember, Leaving, MemberSummary, Millis,
    Protocol, RequestId, Response, Sync, Synced,
};
