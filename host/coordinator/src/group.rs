//! One group's state: its members, generation and rebalance in progress.

use crate::types::{Millis, Protocol, RequestId};
use std::collections::BTreeMap;

/// A group's state, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (offsets may still be committed under the group).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Not a state a group is ever in here: what DescribeGroups reports for an unknown group.
    Dead,
}

impl GroupState {
    /// The state's name as Kafka spells it (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Member {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Vec<u8>,
    /// The JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<RequestId>,
    /// The SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<RequestId>,
    /// When the session expires unless the member is heard from.
    pub session_deadline: Millis,
    /// Join order: the next leader is the longest-standing member.
    pub seq: u64,
}

impl Member {
    /// Waiting members are kept alive (Kafka's `shouldKeepAlive`).
    pub fn expires_at(&self) -> Option<Millis> {
        (self.awaiting_join.is_none() && self.awaiting_sync.is_none())
            .then_some(self.session_deadline)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    pub fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// A rebalance under way (state `PreparingRebalance`).
#[derive(Debug)]
pub(crate) struct Rebalance {
    /// When the join phase ends: members that did not rejoin are removed.
    pub deadline: Millis,
    /// The initial delay of a group that was empty.
    pub initial: Option<InitialDelay>,
}

#[derive(Debug)]
pub(crate) struct InitialDelay {
    /// The delay never extends past this (the rebalance timeout).
    pub limit: Millis,
    /// A member joined during the current delay.
    pub member_added: bool,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id of the static members.
    pub instances: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → when they lapse unless used.
    pub pending: BTreeMap<String, Millis>,
    pub rebalance: Option<Rebalance>,
}

impl Group {
    pub fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance: None,
        }
    }

    /// Whether a member joining with `protocol_type` and `protocols` fits the group: the
    /// first member needs a type and a protocol; later ones the group's type and a protocol
    /// every member supports.
    pub fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|p| self.members.values().all(|m| m.supports(&p.name)))
        }
    }

    /// Whether member `id` is fenced: `instance` belongs to another member id.
    pub fn fenced(&self, instance: Option<&str>, id: &str) -> bool {
        instance
            .and_then(|i| self.instances.get(i))
            .is_some_and(|holder| holder != id)
    }

    /// The longest-standing member. Costs O(members).
    pub fn senior(&self) -> Option<String> {
        self.members
            .iter()
            .min_by_key(|(_, m)| m.seq)
            .map(|(id, _)| id.clone())
    }

    /// The protocol for the next generation: among those every member supports, the one
    /// most members prefer (ties: the leader's order). Costs O(members × protocols²).
    pub fn select_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[i] += 1;
            }
        }
        // The first of the most voted: max_by_key keeps the last maximum, so go backwards.
        let best = (0..candidates.len()).rev().max_by_key(|&i| votes[i]);
        match best {
            Some(i) => Some(candidates[i].to_string()),
            None => leader.protocols.first().map(|p| p.name.clone()),
        }
    }

    /// When the group next needs a tick. Costs O(members).
    pub fn next_deadline(&self) -> Option<Millis> {
        let rebalance = match (&self.rebalance, self.state) {
            (Some(r), GroupState::PreparingRebalance) => Some(r.deadline),
            _ => None,
        };
        rebalance
            .into_iter()
            .chain(self.pending.values().copied())
            .chain(self.members.values().filter_map(Member::expires_at))
            .min()
    }
}
