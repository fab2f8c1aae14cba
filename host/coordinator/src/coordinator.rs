//! The group coordinator: every group keyed by id, and the timers that drive them.

use crate::config::GroupConfig;
use crate::error::GroupError;
use crate::group::{Group, GroupState, InitialDelay, Member, Rebalance};
use crate::types::{
    Action, GroupSummary, Heartbeat, Join, Joined, JoinedMember, Leaving, MemberSummary, Millis,
    RequestId, Response, Sync, Synced,
};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's classic group coordinator as a state machine.
///
/// Each event takes the current time and returns the actions to carry out: answers to this
/// request or to earlier, delayed ones, and state changes. Between events the caller calls
/// [`tick`](Self::tick) at [`next_deadline`](Self::next_deadline) (session expiry, rebalance
/// timeouts, the initial rebalance delay). An event costs O(members of its group) plus
/// O(log groups); nothing is persisted.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    /// `(deadline, group)` for every group that has one; `scheduled` is its inverse.
    timers: BTreeSet<(Millis, String)>,
    scheduled: BTreeMap<String, Millis>,
    /// Join order of members, for leader succession.
    next_seq: u64,
}

fn respond(out: &mut Vec<Action>, request_id: RequestId, response: Response) {
    out.push(Action::Respond {
        request_id,
        response,
    });
}

fn deadline(now: Millis, ms: i32) -> Millis {
    now.saturating_add(u64::try_from(ms).unwrap_or(0))
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            timers: BTreeSet::new(),
            scheduled: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The earliest time [`tick`](Self::tick) has work to do. Costs O(1).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Expires sessions and lapsed member ids and ends rebalances whose time is up, in
    /// every group whose deadline is at or before `now`.
    pub fn tick(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        let due: Vec<String> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, g)| g.clone())
            .collect();
        for id in due {
            if let Some(mut group) = self.groups.remove(&id) {
                self.tick_group(now, &id, &mut group, &mut out);
                self.put_back(id, group);
            }
        }
        out
    }

    /// A JoinGroup; answered now or once the rebalance completes.
    pub fn join(&mut self, now: Millis, request_id: RequestId, join: Join) -> Vec<Action> {
        let mut out = Vec::new();
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        let immediate = if join.group.is_empty() {
            Some(Err(GroupError::InvalidGroupId))
        } else if !(min..=max).contains(&join.session_timeout_ms) {
            Some(Err(GroupError::InvalidSessionTimeout {
                timeout_ms: join.session_timeout_ms,
                min_ms: min,
                max_ms: max,
            }))
        } else {
            let id = join.group.clone();
            let existing = self.groups.remove(&id);
            if existing.is_none() && !join.member_id.is_empty() {
                Some(Err(GroupError::UnknownMemberId {
                    member_id: join.member_id.clone(),
                }))
            } else if existing.is_none()
                && !Group::new().supports(&join.protocol_type, &join.protocols)
            {
                Some(Err(GroupError::InconsistentGroupProtocol))
            } else {
                let mut group = existing.unwrap_or_else(Group::new);
                let r = self.join_group(now, request_id, &id, &mut group, join, &mut out);
                self.try_complete_join(now, &id, &mut group, &mut out);
                self.put_back(id, group);
                r
            }
        };
        if let Some(r) = immediate {
            respond(&mut out, request_id, Response::Join(r));
        }
        out
    }

    /// A SyncGroup; answered now or once the leader's assignment arrives.
    pub fn sync(&mut self, now: Millis, request_id: RequestId, sync: Sync) -> Vec<Action> {
        let mut out = Vec::new();
        let r = match self.groups.remove(&sync.group) {
            None if sync.group.is_empty() => Some(Err(GroupError::InvalidGroupId)),
            None => Some(Err(GroupError::UnknownMemberId {
                member_id: sync.member_id.clone(),
            })),
            Some(mut group) => {
                let id = sync.group.clone();
                let r = self.sync_group(now, request_id, &id, &mut group, sync, &mut out);
                self.put_back(id, group);
                r
            }
        };
        if let Some(r) = r {
            respond(&mut out, request_id, Response::Sync(r));
        }
        out
    }

    /// A Heartbeat; always answered now.
    pub fn heartbeat(&mut self, now: Millis, request_id: RequestId, hb: Heartbeat) -> Vec<Action> {
        let mut out = Vec::new();
        let r = match self.groups.get_mut(&hb.group) {
            None if hb.group.is_empty() => Err(GroupError::InvalidGroupId),
            None => Err(GroupError::UnknownMemberId {
                member_id: hb.member_id.clone(),
            }),
            Some(group) => Self::heartbeat_group(now, group, &hb),
        };
        // A heartbeat only moves a session deadline later: the scheduled tick may come
        // early and find nothing to do, which is cheaper than rescheduling every heartbeat.
        respond(&mut out, request_id, Response::Heartbeat(r));
        out
    }

    /// A LeaveGroup of one or more members; always answered now. Each leaving member is
    /// removed and the group rebalances.
    pub fn leave(
        &mut self,
        now: Millis,
        request_id: RequestId,
        group: &str,
        leaving: Vec<Leaving>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let r = if group.is_empty() {
            Err(GroupError::InvalidGroupId)
        } else if let Some(mut g) = self.groups.remove(group) {
            let results = leaving
                .into_iter()
                .map(|l| self.leave_one(now, group, &mut g, l, &mut out))
                .collect();
            self.try_complete_join(now, group, &mut g, &mut out);
            self.put_back(group.to_string(), g);
            Ok(results)
        } else {
            Ok(leaving
                .into_iter()
                .map(|l| {
                    Err(GroupError::UnknownMemberId {
                        member_id: l.member_id,
                    })
                })
                .collect())
        };
        respond(&mut out, request_id, Response::Leave(r));
        out
    }

    /// Whether an OffsetCommit from `member_id` at `generation` may commit (and, if so, it
    /// counts as the member's heartbeat). Generation < 0 is a consumer that assigns its own
    /// partitions: allowed unless the group has members.
    pub fn check_commit(
        &mut self,
        now: Millis,
        group: &str,
        member_id: &str,
        generation: i32,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(g) = self.groups.get_mut(group) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration {
                    given: generation,
                    current: -1,
                })
            };
        };
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        Self::validate_member(g, member_id, instance_id, generation)?;
        if g.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(m) = g.members.get_mut(member_id) {
            m.session_deadline = deadline(now, m.session_timeout_ms);
        }
        Ok(())
    }

    /// Forgets an empty group (DeleteGroups). `Ok(false)`: no such group.
    pub fn delete(&mut self, group: &str) -> Result<bool, GroupError> {
        match self.groups.get(group) {
            None => Ok(false),
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group);
                self.unschedule(group);
                Ok(true)
            }
        }
    }

    /// A group as DescribeGroups shows it. Costs O(members).
    pub fn describe(&self, group: &str) -> Option<GroupSummary> {
        let g = self.groups.get(group)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut members: Vec<(&String, &Member)> = g.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation,
            members: members
                .into_iter()
                .map(|(id, m)| MemberSummary {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Vec::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            protocol,
        })
    }

    /// Every group: `(id, state, protocol type)`. Costs O(groups).
    pub fn list(&self) -> Vec<(String, GroupState, String)> {
        self.groups
            .iter()
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.state,
                    g.protocol_type.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    // ---- events on one group (the group is taken out of the map meanwhile) ----

    fn join_group(
        &mut self,
        now: Millis,
        request_id: RequestId,
        id: &str,
        group: &mut Group,
        join: Join,
        out: &mut Vec<Action>,
    ) -> Option<Result<Joined, GroupError>> {
        if join.member_id.is_empty() {
            if !group.supports(&join.protocol_type, &join.protocols) {
                return Some(Err(GroupError::InconsistentGroupProtocol));
            }
            let new_id = join.new_member_id.clone();
            if let Some(old) = join
                .instance_id
                .as_ref()
                .and_then(|i| group.instances.get(i))
                .cloned()
            {
                return self.replace_static(now, request_id, id, group, old, new_id, join, out);
            }
            if join.instance_id.is_none() && join.require_known_member_id {
                group
                    .pending
                    .insert(new_id.clone(), deadline(now, join.session_timeout_ms));
                return Some(Err(GroupError::MemberIdRequired { member_id: new_id }));
            }
            self.add_member(now, request_id, id, group, new_id, join, out);
            return None;
        }
        let member_id = join.member_id.clone();
        if let Some(instance) = join.instance_id.as_deref()
            && group.fenced(Some(instance), &member_id)
        {
            return Some(Err(GroupError::FencedInstanceId {
                instance_id: instance.to_string(),
            }));
        }
        if group.pending.contains_key(&member_id) {
            if !group.supports(&join.protocol_type, &join.protocols) {
                return Some(Err(GroupError::InconsistentGroupProtocol));
            }
            group.pending.remove(&member_id);
            self.add_member(now, request_id, id, group, member_id, join, out);
            return None;
        }
        if !group.members.contains_key(&member_id) || group.state == GroupState::Empty {
            return Some(Err(GroupError::UnknownMemberId { member_id }));
        }
        if !group.supports(&join.protocol_type, &join.protocols) {
            return Some(Err(GroupError::InconsistentGroupProtocol));
        }
        let member = &group.members[&member_id];
        let unchanged = member.protocols == join.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::CompletingRebalance if unchanged => {
                let m = group.members.get_mut(&member_id)?;
                m.session_deadline = deadline(now, m.session_timeout_ms);
                Some(Ok(Self::current(group, &member_id, is_leader, false)))
            }
            GroupState::Stable if unchanged && !is_leader => {
                let m = group.members.get_mut(&member_id)?;
                m.session_deadline = deadline(now, m.session_timeout_ms);
                Some(Ok(Self::current(group, &member_id, false, false)))
            }
            _ => {
                self.update_member(now, request_id, id, group, &member_id, join, out);
                None
            }
        }
    }

    /// The group's current generation as `member_id` is told it.
    fn current(
        group: &Group,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> Joined {
        let protocol = group.protocol.clone().unwrap_or_default();
        let members = if with_members {
            let mut ms: Vec<(&String, &Member)> = group.members.iter().collect();
            ms.sort_by_key(|(_, m)| m.seq);
            ms.into_iter()
                .map(|(id, m)| JoinedMember {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            generation: group.generation,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol,
            leader: group.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_member(
        &mut self,
        now: Millis,
        request_id: RequestId,
        id: &str,
        group: &mut Group,
        member_id: String,
        join: Join,
        out: &mut Vec<Action>,
    ) {
        self.next_seq += 1;
        if group.members.is_empty() {
            group.protocol_type = Some(join.protocol_type.clone());
        }
        if let Some(instance) = &join.instance_id {
            group.instances.insert(instance.clone(), member_id.clone());
        }
        group.members.insert(
            member_id.clone(),
            Member {
                instance_id: join.instance_id,
                client_id: join.client_id,
                client_host: join.client_host,
                session_timeout_ms: join.session_timeout_ms,
                rebalance_timeout_ms: join.rebalance_timeout_ms,
                protocols: join.protocols,
                assignment: Vec::new(),
                awaiting_join: Some(request_id),
                awaiting_sync: None,
                session_deadline: deadline(now, join.session_timeout_ms),
                seq: self.next_seq,
            },
        );
        if group.leader.is_none() {
            group.leader = Some(member_id);
        }
        if let Some(initial) = group.rebalance.as_mut().and_then(|r| r.initial.as_mut()) {
            initial.member_added = true;
        }
        self.maybe_prepare_rebalance(now, id, group, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_member(
        &mut self,
        now: Millis,
        request_id: RequestId,
        id: &str,
        group: &mut Group,
        member_id: &str,
        join: Join,
        out: &mut Vec<Action>,
    ) {
        if let Some(m) = group.members.get_mut(member_id) {
            m.protocols = join.protocols;
            m.session_timeout_ms = join.session_timeout_ms;
            m.rebalance_timeout_ms = join.rebalance_timeout_ms;
            m.session_deadline = deadline(now, join.session_timeout_ms);
            if let Some(old) = m.awaiting_join.replace(request_id) {
                // A second join from the same member: the first is superseded.
                respond(
                    out,
                    old,
                    Response::Join(Err(GroupError::RebalanceInProgress)),
                );
            }
        }
        self.maybe_prepare_rebalance(now, id, group, out);
    }

    /// A static member (known `group.instance.id`) joins with a new member id: the old id
    /// is fenced and replaced; a stable group keeps its generation when nothing changes.
    #[allow(clippy::too_many_arguments)]
    fn replace_static(
        &mut self,
        now: Millis,
        request_id: RequestId,
        id: &str,
        group: &mut Group,
        old_id: String,
        new_id: String,
        join: Join,
        out: &mut Vec<Action>,
    ) -> Option<Result<Joined, GroupError>> {
        let instance = join.instance_id.clone().unwrap_or_default();
        let mut m = group.members.remove(&old_id)?;
        let fenced = || GroupError::FencedInstanceId {
            instance_id: instance.clone(),
        };
        if let Some(old) = m.awaiting_join.take() {
            respond(out, old, Response::Join(Err(fenced())));
        }
        if let Some(old) = m.awaiting_sync.take() {
            respond(out, old, Response::Sync(Err(fenced())));
        }
        let unchanged = m.protocols == join.protocols;
        m.client_id = join.client_id.clone();
        m.client_host = join.client_host.clone();
        m.session_deadline = deadline(now, join.session_timeout_ms);
        group.members.insert(new_id.clone(), m);
        group.instances.insert(instance, new_id.clone());
        if group.leader.as_deref() == Some(old_id.as_str()) {
            group.leader = Some(new_id.clone());
        }
        let is_leader = group.leader.as_deref() == Some(new_id.as_str());
        if group.state == GroupState::Stable
            && unchanged
            && (!is_leader || join.supports_skip_assignment)
        {
            let m = group.members.get_mut(&new_id)?;
            m.session_timeout_ms = join.session_timeout_ms;
            m.rebalance_timeout_ms = join.rebalance_timeout_ms;
            return Some(Ok(Self::current(group, &new_id, is_leader, is_leader)));
        }
        self.update_member(now, request_id, id, group, &new_id, join, out);
        None
    }

    fn sync_group(
        &mut self,
        now: Millis,
        request_id: RequestId,
        id: &str,
        group: &mut Group,
        sync: Sync,
        out: &mut Vec<Action>,
    ) -> Option<Result<Synced, GroupError>> {
        if let Err(e) = Self::validate_member(
            group,
            &sync.member_id,
            sync.instance_id.as_deref(),
            sync.generation,
        ) {
            return Some(Err(e));
        }
        if sync.protocol_type.is_some() && sync.protocol_type != group.protocol_type
            || sync.protocol_name.is_some() && sync.protocol_name != group.protocol
        {
            return Some(Err(GroupError::InconsistentGroupProtocol));
        }
        let synced = |group: &Group, assignment: Vec<u8>| Synced {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: group.protocol.clone().unwrap_or_default(),
            assignment,
        };
        let member = group.members.get_mut(&sync.member_id)?;
        member.session_deadline = deadline(now, member.session_timeout_ms);
        let assignment = member.assignment.clone();
        match group.state {
            GroupState::Empty | GroupState::Dead => Some(Err(GroupError::UnknownMemberId {
                member_id: sync.member_id,
            })),
            GroupState::PreparingRebalance => Some(Err(GroupError::RebalanceInProgress)),
            GroupState::Stable => Some(Ok(synced(group, assignment))),
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(&sync.member_id)?;
                if let Some(old) = member.awaiting_sync.replace(request_id) {
                    respond(
                        out,
                        old,
                        Response::Sync(Err(GroupError::RebalanceInProgress)),
                    );
                }
                if group.leader.as_deref() == Some(sync.member_id.as_str()) {
                    let mut given: BTreeMap<String, Vec<u8>> =
                        sync.assignments.into_iter().collect();
                    for (mid, m) in group.members.iter_mut() {
                        m.assignment = given.remove(mid).unwrap_or_default();
                    }
                    Self::transition(id, group, GroupState::Stable, out);
                    let answers: Vec<(RequestId, Vec<u8>)> = group
                        .members
                        .values_mut()
                        .filter_map(|m| {
                            m.awaiting_sync.take().map(|r| {
                                m.session_deadline = deadline(now, m.session_timeout_ms);
                                (r, m.assignment.clone())
                            })
                        })
                        .collect();
                    for (r, assignment) in answers {
                        respond(out, r, Response::Sync(Ok(synced(group, assignment))));
                    }
                }
                None
            }
        }
    }

    /// Fenced, unknown member, wrong generation: in Kafka's order.
    fn validate_member(
        group: &Group,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if group.fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId {
                instance_id: instance_id.unwrap_or_default().to_string(),
            });
        }
        if !group.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId {
                member_id: member_id.to_string(),
            });
        }
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current: group.generation,
            });
        }
        Ok(())
    }

    fn heartbeat_group(now: Millis, group: &mut Group, hb: &Heartbeat) -> Result<(), GroupError> {
        if group.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId {
                member_id: hb.member_id.clone(),
            });
        }
        Self::validate_member(
            group,
            &hb.member_id,
            hb.instance_id.as_deref(),
            hb.generation,
        )?;
        if let Some(m) = group.members.get_mut(&hb.member_id) {
            m.session_deadline = deadline(now, m.session_timeout_ms);
        }
        if group.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    fn leave_one(
        &mut self,
        now: Millis,
        id: &str,
        group: &mut Group,
        leaving: Leaving,
        out: &mut Vec<Action>,
    ) -> Result<(), GroupError> {
        let member_id = match &leaving.instance_id {
            Some(instance) => {
                let Some(holder) = group.instances.get(instance).cloned() else {
                    return Err(GroupError::UnknownMemberId {
                        member_id: leaving.member_id,
                    });
                };
                if !leaving.member_id.is_empty() && leaving.member_id != holder {
                    return Err(GroupError::FencedInstanceId {
                        instance_id: instance.clone(),
                    });
                }
                holder
            }
            None => leaving.member_id,
        };
        if group.pending.remove(&member_id).is_some() {
            return Ok(());
        }
        if !group.members.contains_key(&member_id) {
            return Err(GroupError::UnknownMemberId { member_id });
        }
        self.remove_member(now, id, group, &member_id, out);
        Ok(())
    }

    /// Removes a member (left, or its session expired) and rebalances the rest.
    fn remove_member(
        &mut self,
        now: Millis,
        id: &str,
        group: &mut Group,
        member_id: &str,
        out: &mut Vec<Action>,
    ) {
        let Some(m) = group.members.remove(member_id) else {
            return;
        };
        let gone = || GroupError::UnknownMemberId {
            member_id: member_id.to_string(),
        };
        if let Some(r) = m.awaiting_join {
            respond(out, r, Response::Join(Err(gone())));
        }
        if let Some(r) = m.awaiting_sync {
            respond(out, r, Response::Sync(Err(gone())));
        }
        if let Some(instance) = &m.instance_id
            && group.instances.get(instance).map(String::as_str) == Some(member_id)
        {
            group.instances.remove(instance);
        }
        if group.leader.as_deref() == Some(member_id) {
            group.leader = group.senior();
        }
        if matches!(
            group.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, id, group, out);
        }
    }

    fn maybe_prepare_rebalance(
        &mut self,
        now: Millis,
        id: &str,
        group: &mut Group,
        out: &mut Vec<Action>,
    ) {
        if matches!(
            group.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, id, group, out);
        }
    }

    /// Enters PreparingRebalance: pending syncs are answered REBALANCE_IN_PROGRESS; the
    /// join phase lasts at most the longest rebalance timeout (a group that was empty first
    /// waits the initial delay).
    fn prepare_rebalance(
        &mut self,
        now: Millis,
        id: &str,
        group: &mut Group,
        out: &mut Vec<Action>,
    ) {
        if group.state == GroupState::CompletingRebalance {
            for m in group.members.values_mut() {
                m.assignment.clear();
                if let Some(r) = m.awaiting_sync.take() {
                    respond(out, r, Response::Sync(Err(GroupError::RebalanceInProgress)));
                }
            }
        }
        let timeout = group
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        let delay = self.config.initial_rebalance_delay_ms;
        group.rebalance = Some(if group.state == GroupState::Empty && delay > 0 {
            Rebalance {
                deadline: now.saturating_add(delay),
                initial: Some(InitialDelay {
                    limit: deadline(now, timeout).max(now.saturating_add(delay)),
                    member_added: false,
                }),
            }
        } else {
            Rebalance {
                deadline: deadline(now, timeout),
                initial: None,
            }
        });
        Self::transition(id, group, GroupState::PreparingRebalance, out);
    }

    /// Completes the join phase once every member rejoined and no handed-out member id is
    /// outstanding (never during the initial delay: that waits for its timer).
    fn try_complete_join(
        &mut self,
        now: Millis,
        id: &str,
        group: &mut Group,
        out: &mut Vec<Action>,
    ) {
        if group.state != GroupState::PreparingRebalance
            || group
                .rebalance
                .as_ref()
                .is_some_and(|r| r.initial.is_some())
        {
            return;
        }
        if group.pending.is_empty() && group.members.values().all(|m| m.awaiting_join.is_some()) {
            self.complete_join(now, id, group, out);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the next generation
    /// starts and every rejoined member is answered (the leader with the member list).
    fn complete_join(&mut self, now: Millis, id: &str, group: &mut Group, out: &mut Vec<Action>) {
        let stale: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in stale {
            if let Some(m) = group.members.remove(&member_id) {
                if let Some(r) = m.awaiting_sync {
                    respond(out, r, Response::Sync(Err(GroupError::RebalanceInProgress)));
                }
                if let Some(instance) = &m.instance_id
                    && group.instances.get(instance) == Some(&member_id)
                {
                    group.instances.remove(instance);
                }
            }
        }
        if group
            .leader
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader = group.senior();
        }
        group.rebalance = None;
        group.generation = group.generation.saturating_add(1);
        if group.members.is_empty() {
            group.protocol = None;
            Self::transition(id, group, GroupState::Empty, out);
            return;
        }
        group.protocol = group.select_protocol();
        Self::transition(id, group, GroupState::CompletingRebalance, out);
        let leader = group.leader.clone().unwrap_or_default();
        let waiting: Vec<(String, RequestId)> = group
            .members
            .iter_mut()
            .filter_map(|(mid, m)| {
                m.session_deadline = deadline(now, m.session_timeout_ms);
                m.awaiting_join.take().map(|r| (mid.clone(), r))
            })
            .collect();
        for (member_id, r) in waiting {
            let joined = Self::current(group, &member_id, member_id == leader, false);
            respond(out, r, Response::Join(Ok(joined)));
        }
    }

    fn tick_group(&mut self, now: Millis, id: &str, group: &mut Group, out: &mut Vec<Action>) {
        group.pending.retain(|_, at| *at > now);
        let expired: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.expires_at().is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in expired {
            self.remove_member(now, id, group, &member_id, out);
        }
        if group.state == GroupState::PreparingRebalance
            && let Some(r) = group.rebalance.as_mut()
            && r.deadline <= now
        {
            match r.initial.as_mut() {
                Some(initial) if initial.member_added && now < initial.limit => {
                    initial.member_added = false;
                    r.deadline = now
                        .saturating_add(self.config.initial_rebalance_delay_ms)
                        .min(initial.limit);
                }
                _ => self.complete_join(now, id, group, out),
            }
        }
        self.try_complete_join(now, id, group, out);
    }

    fn transition(id: &str, group: &mut Group, state: GroupState, out: &mut Vec<Action>) {
        group.state = state;
        out.push(Action::StateChanged {
            group: id.to_string(),
            generation: group.generation,
            state,
        });
    }

    /// Returns the group to the map and reschedules its timer.
    fn put_back(&mut self, id: String, group: Group) {
        self.unschedule(&id);
        if let Some(at) = group.next_deadline() {
            self.timers.insert((at, id.clone()));
            self.scheduled.insert(id.clone(), at);
        }
        self.groups.insert(id, group);
    }

    fn unschedule(&mut self, id: &str) {
        if let Some(at) = self.scheduled.remove(id) {
            self.timers.remove(&(at, id.to_string()));
        }
    }
}
