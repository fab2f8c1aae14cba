//! Consumer-group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) over the
//! coordinator state machine.
//!
//! [`Membership`] owns a [`GroupCoordinator`] behind a mutex (held only while the state
//! machine runs, never across an await), a waiter per request not yet answered, and a
//! ticker task that sleeps until the coordinator's next deadline (or until an event may
//! have made one earlier) and then ticks it. Handlers convert kafka-protocol requests into
//! the coordinator's events and its answers back; nothing else here knows group rules.

// Until the dispatcher, `Ctx` and the group administration use it.

use distlog_coordinator::{
    Action, GroupConfig, GroupCoordinator, GroupError, Heartbeat, Join, Leaving, Protocol,
    RequestId, Response, Sync,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Notify, oneshot};

/// The one mapping from group refusals to Kafka error codes.
pub(crate) fn code(e: &GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
        GroupError::UnknownMemberId { .. } => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        _ => ResponseError::UnknownServerError,
    }
}

/// `e`'s code for `api`, counted in the error metrics.
fn fail(api: ApiKey, e: &GroupError) -> i16 {
    let c = code(e).code();
    crate::metrics::error(api, c);
    c
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupView {
    /// As Kafka spells it: Empty, PreparingRebalance, CompletingRebalance, Stable.
    pub state: &'static str,
    pub protocol_type: String,
    /// The chosen protocol; empty unless the group is Stable.
    pub protocol: String,
    pub members: Vec<MemberView>,
}

/// A member as DescribeGroups shows it; metadata and assignment are empty unless the group
/// is Stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug)]
struct Core {
    groups: GroupCoordinator,
    waiters: HashMap<RequestId, oneshot::Sender<Response>>,
    next_request: u64,
}

#[derive(Debug)]
struct Inner {
    core: Mutex<Core>,
    /// Wakes the ticker: an event may have made the next deadline earlier.
    wake: Notify,
    /// Time zero of the coordinator's clock.
    origin: Instant,
}

impl Inner {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // The state machine does not panic on client input; if it ever did, its state is
        // still the last consistent one (each event works on a group taken out of the map).
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one event that answers `request`, and waits for the answer.
    async fn request(
        &self,
        event: impl FnOnce(&mut GroupCoordinator, u64, RequestId) -> Vec<Action>,
    ) -> Option<Response> {
        let rx = {
            let mut core = self.lock();
            core.next_request += 1;
            let id = RequestId(core.next_request);
            let (tx, rx) = oneshot::channel();
            core.waiters.insert(id, tx);
            let now = self.now();
            let actions = event(&mut core.groups, now, id);
            core.carry_out(actions);
            rx
        };
        self.wake.notify_one();
        rx.await.ok()
    }
}

impl Core {
    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Respond {
                    request_id,
                    response,
                } => {
                    if let Some(tx) = self.waiters.remove(&request_id) {
                        // The client may have gone: its answer is dropped.
                        let _ = tx.send(response);
                    }
                }
                Action::StateChanged {
                    group,
                    generation,
                    state,
                } => tracing::debug!(group, generation, state = state.name(), "group state"),
            }
        }
    }
}

/// The group coordinator of the Kafka listener: one per listener, shared by connections.
#[derive(Debug)]
pub(crate) struct Membership {
    inner: Arc<Inner>,
    /// `None` outside a tokio runtime (unit tests of other handlers): timeouts then only
    /// advance when requests arrive.
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
    }
}

/// A request's member id, or a fresh one for `client_id` (`client_id-` and 128 random bits
/// as a UUID is written; the coordinator uses it only for a member it must name).
fn new_member_id(client_id: &str) -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{client_id}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).map(|s| s.to_string())
}

impl Membership {
    /// Starts the coordinator and, inside a tokio runtime, its ticker task.
    pub(crate) fn start(config: GroupConfig) -> Membership {
        let inner = Arc::new(Inner {
            core: Mutex::new(Core {
                groups: GroupCoordinator::new(config),
                waiters: HashMap::new(),
                next_request: 0,
            }),
            wake: Notify::new(),
            origin: Instant::now(),
        });
        let ticker = tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| h.spawn(tick(inner.clone())));
        Membership { inner, ticker }
    }

    /// JoinGroup v0-9; waits until the rebalance completes (at most the group's rebalance
    /// timeout).
    pub(crate) async fn join(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let requested_member = req.member_id.to_string();
        let join = Join {
            group: req.group_id.0.to_string(),
            member_id: requested_member.clone(),
            instance_id: opt(&req.group_instance_id),
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| Protocol::new(p.name.to_string(), p.metadata.to_vec()))
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
            new_member_id: new_member_id(client_id),
        };
        let answer = self.inner.request(|g, now, id| g.join(now, id, join)).await;
        // Before v7 the protocol name is not nullable.
        let no_protocol = (version < 7).then(StrBytes::default);
        let resp = JoinGroupResponse::default();
        match answer {
            Some(Response::Join(Ok(j))) => resp
                .with_generation_id(j.generation)
                .with_protocol_type(Some(StrBytes::from_string(j.protocol_type)))
                .with_protocol_name(Some(StrBytes::from_string(j.protocol_name)))
                .with_leader(StrBytes::from_string(j.leader))
                .with_skip_assignment(j.skip_assignment && version >= 9)
                .with_member_id(StrBytes::from_string(j.member_id))
                .with_members(
                    j.members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                                .with_metadata(m.metadata.into())
                        })
                        .collect(),
                ),
            other => {
                let e = group_error(other);
                let member_id = match &e {
                    GroupError::MemberIdRequired { member_id } => member_id.clone(),
                    _ => requested_member,
                };
                resp.with_error_code(fail(ApiKey::JoinGroup, &e))
                    .with_generation_id(-1)
                    .with_protocol_name(no_protocol)
                    .with_member_id(StrBytes::from_string(member_id))
            }
        }
    }

    /// SyncGroup v0-5; a follower waits for the leader's assignment.
    pub(crate) async fn sync(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let sync = Sync {
            group: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            instance_id: opt(&req.group_instance_id),
            generation: req.generation_id,
            protocol_type: if version >= 5 {
                opt(&req.protocol_type)
            } else {
                None
            },
            protocol_name: if version >= 5 {
                opt(&req.protocol_name)
            } else {
                None
            },
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
                .collect(),
        };
        let answer = self.inner.request(|g, now, id| g.sync(now, id, sync)).await;
        match answer {
            Some(Response::Sync(Ok(s))) => SyncGroupResponse::default()
                .with_protocol_type(Some(StrBytes::from_string(s.protocol_type)))
                .with_protocol_name(Some(StrBytes::from_string(s.protocol_name)))
                .with_assignment(s.assignment.into()),
            other => SyncGroupResponse::default()
                .with_error_code(fail(ApiKey::SyncGroup, &group_error(other))),
        }
    }

    /// Heartbeat v0-4; answered at once.
    pub(crate) async fn heartbeat(
        &self,
        req: HeartbeatRequest,
        _version: i16,
    ) -> HeartbeatResponse {
        let hb = Heartbeat {
            group: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            instance_id: opt(&req.group_instance_id),
            generation: req.generation_id,
        };
        let answer = self
            .inner
            .request(|g, now, id| g.heartbeat(now, id, hb))
            .await;
        match answer {
            Some(Response::Heartbeat(Ok(()))) => HeartbeatResponse::default(),
            other => HeartbeatResponse::default()
                .with_error_code(fail(ApiKey::Heartbeat, &group_error(other))),
        }
    }

    /// LeaveGroup v0-5: one member (v0-2) or a batch by member or instance id (v3+).
    pub(crate) async fn leave(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group = req.group_id.0.to_string();
        let leaving: Vec<Leaving> = if version >= 3 {
            req.members
                .iter()
                .map(|m| Leaving {
                    member_id: m.member_id.to_string(),
                    instance_id: opt(&m.group_instance_id),
                })
                .collect()
        } else {
            vec![Leaving {
                member_id: req.member_id.to_string(),
                instance_id: None,
            }]
        };
        let answer = self
            .inner
            .request(|g, now, id| g.leave(now, id, &group, leaving))
            .await;
        let api = ApiKey::LeaveGroup;
        match answer {
            Some(Response::Leave(Ok(results))) if version >= 3 => LeaveGroupResponse::default()
                .with_members(
                    req.members
                        .into_iter()
                        .zip(results)
                        .map(|(m, r)| {
                            MemberResponse::default()
                                .with_member_id(m.member_id)
                                .with_group_instance_id(m.group_instance_id)
                                .with_error_code(match r {
                                    Ok(()) => 0,
                                    Err(e) => fail(api, &e),
                                })
                        })
                        .collect(),
                ),
            Some(Response::Leave(Ok(results))) => {
                let code = match results.into_iter().next() {
                    Some(Err(e)) => fail(api, &e),
                    _ => 0,
                };
                LeaveGroupResponse::default().with_error_code(code)
            }
            other => LeaveGroupResponse::default().with_error_code(fail(api, &group_error(other))),
        }
    }

    /// Whether an OffsetCommit from `member_id` at `generation_id` may commit; a commit
    /// that passes counts as the member's heartbeat. Generation -1 with an empty member id
    /// (a consumer that assigns its own partitions) passes unless the group has members.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let now = self.inner.now();
        let instance = group_instance_id.filter(|i| !i.is_empty());
        self.inner
            .lock()
            .groups
            .check_commit(now, group, member_id, generation_id, instance)
            .map_err(|e| code(&e))
    }

    /// Forgets an empty group (DeleteGroups): `Err(NON_EMPTY_GROUP)` while it has members;
    /// `Ok(false)` if membership never knew it.
    pub(crate) fn delete(&self, group: &str) -> Result<bool, ResponseError> {
        self.inner.lock().groups.delete(group).map_err(|e| code(&e))
    }

    /// The group as DescribeGroups shows it; `None` if membership does not know it (its
    /// offsets may still exist: DescribeGroups then reports it Empty). Costs O(members).
    pub(crate) fn describe(&self, group: &str) -> Option<GroupView> {
        let summary = self.inner.lock().groups.describe(group)?;
        Some(GroupView {
            state: summary.state.name(),
            protocol_type: summary.protocol_type,
            protocol: summary.protocol,
            members: summary
                .members
                .into_iter()
                .map(|m| MemberView {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    metadata: m.metadata,
                    assignment: m.assignment,
                })
                .collect(),
        })
    }

    /// Every group membership knows: `(group, state as Kafka spells it, protocol type)`.
    pub(crate) fn list(&self) -> Vec<(String, &'static str, String)> {
        self.inner
            .lock()
            .groups
            .list()
            .into_iter()
            .map(|(g, state, t)| (g, state.name(), t))
            .collect()
    }
}

/// The refusal in an answer that is not the expected success (a dropped waiter would be a
/// coordinator bug: reported as a retriable rebalance, so the client rejoins).
fn group_error(answer: Option<Response>) -> GroupError {
    match answer {
        Some(Response::Join(Err(e)))
        | Some(Response::Sync(Err(e)))
        | Some(Response::Heartbeat(Err(e)))
        | Some(Response::Leave(Err(e))) => e,
        _ => {
            tracing::error!("group coordinator answered a request with the wrong kind");
            GroupError::RebalanceInProgress
        }
    }
}

/// The ticker: sleeps until the next deadline or a wake-up, then ticks.
async fn tick(inner: Arc<Inner>) {
    loop {
        let next = inner.lock().groups.next_deadline();
        match next {
            Some(at) => {
                let when = inner.origin + std::time::Duration::from_millis(at);
                tokio::select! {
                    () = tokio::time::sleep_until(when.into()) => {}
                    () = inner.wake.notified() => continue,
                }
            }
            None => {
                inner.wake.notified().await;
                continue;
            }
        }
        let now = inner.now();
        let mut core = inner.lock();
        let actions = core.groups.tick(now);
        core.carry_out(actions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::protocol::Encodable;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn encodes<R: Encodable>(r: &R, version: i16) {
        let mut buf = BytesMut::new();
        r.encode(&mut buf, version)
            .expect("encodable at its version");
    }

    fn join_req(member: &str, version: i16) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(6_000)
            .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"meta")),
            ])
    }

    /// Joins as a new member, going through MEMBER_ID_REQUIRED from v4 on.
    async fn join(m: &Membership, version: i16, client: &str) -> JoinGroupResponse {
        let mut resp = m
            .join(join_req("", version), version, client, "/127.0.0.1")
            .await;
        encodes(&resp, version);
        if version >= 4 {
            assert_eq!(resp.error_code, ResponseError::MemberIdRequired.code());
            assert!(
                resp.member_id.starts_with(&format!("{client}-")),
                "{:?}",
                resp.member_id
            );
            let id = resp.member_id.to_string();
            resp = m
                .join(join_req(&id, version), version, client, "/127.0.0.1")
                .await;
            encodes(&resp, version);
            assert_eq!(resp.member_id.as_str(), id);
        }
        assert_eq!(resp.error_code, 0, "{resp:?}");
        resp
    }

    fn sync_req(
        r: &JoinGroupResponse,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(r.generation_id)
            .with_member_id(r.member_id.clone())
            .with_assignments(assignments)
    }

    fn heartbeat_req(r: &JoinGroupResponse) -> HeartbeatRequest {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(r.generation_id)
            .with_member_id(r.member_id.clone())
    }

    /// Two members through join → sync → heartbeat → leave at one set of versions.
    async fn two_members(join_v: i16, sync_v: i16, hb_v: i16, leave_v: i16) {
        let m = Membership::start(GroupConfig::default());
        let (a, b) = tokio::join!(join(&m, join_v, "ca"), join(&m, join_v, "cb"));
        assert_eq!(a.generation_id, 1);
        assert_eq!(a.generation_id, b.generation_id);
        assert_eq!(a.leader, b.leader);
        assert_eq!(a.protocol_name.as_deref(), Some("range"));
        let (leader, follower) = if a.leader == a.member_id {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        assert!(
            leader
                .members
                .iter()
                .all(|x| x.metadata.as_ref() == b"meta")
        );
        let view = m.describe("g").unwrap();
        assert_eq!(view.state, "CompletingRebalance");
        assert_eq!(view.members[0].client_host, "/127.0.0.1");

        let assignments = leader
            .members
            .iter()
            .map(|x| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(x.member_id.clone())
                    .with_assignment(Bytes::from(format!("for {}", x.member_id)))
            })
            .collect();
        let mut leader_sync = sync_req(&leader, assignments);
        if sync_v >= 5 {
            leader_sync = leader_sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let (fs, ls) = tokio::join!(
            m.sync(sync_req(&follower, vec![]), sync_v),
            m.sync(leader_sync, sync_v)
        );
        for (resp, who) in [(&fs, &follower), (&ls, &leader)] {
            encodes(resp, sync_v);
            assert_eq!(resp.error_code, 0);
            assert_eq!(
                resp.assignment,
                Bytes::from(format!("for {}", who.member_id))
            );
        }
        let view = m.describe("g").unwrap();
        assert_eq!((view.state, view.protocol.as_str()), ("Stable", "range"));
        assert_eq!(m.list(), vec![("g".into(), "Stable", "consumer".into())]);
        let (lid, gen_) = (leader.member_id.to_string(), leader.generation_id);
        assert_eq!(m.check_commit("g", &lid, gen_, None), Ok(()));
        assert_eq!(
            m.check_commit("g", "", -1, None),
            Err(ResponseError::UnknownMemberId)
        );

        let hb = m.heartbeat(heartbeat_req(&follower), hb_v).await;
        encodes(&hb, hb_v);
        assert_eq!(hb.error_code, 0);
        let stale = m
            .heartbeat(heartbeat_req(&follower).with_generation_id(0), hb_v)
            .await;
        assert_eq!(stale.error_code, ResponseError::IllegalGeneration.code());

        // The follower leaves: the leader's heartbeat reports the rebalance.
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s("g")));
        leave = if leave_v >= 3 {
            leave.with_members(vec![
                MemberIdentity::default().with_member_id(follower.member_id.clone()),
                MemberIdentity::default().with_member_id(s("nobody")),
            ])
        } else {
            leave.with_member_id(follower.member_id.clone())
        };
        let left = m.leave(leave, leave_v).await;
        encodes(&left, leave_v);
        assert_eq!(left.error_code, 0);
        if leave_v >= 3 {
            let codes: Vec<i16> = left.members.iter().map(|x| x.error_code).collect();
            assert_eq!(codes, vec![0, ResponseError::UnknownMemberId.code()]);
        }
        let hb = m.heartbeat(heartbeat_req(&leader), hb_v).await;
        assert_eq!(hb.error_code, ResponseError::RebalanceInProgress.code());
        let hb = m.heartbeat(heartbeat_req(&follower), hb_v).await;
        assert_eq!(hb.error_code, ResponseError::UnknownMemberId.code());
        let rejoined = m
            .join(join_req(&lid, join_v), join_v, "ca", "/127.0.0.1")
            .await;
        assert_eq!((rejoined.error_code, rejoined.generation_id), (0, 2));
        assert_eq!(rejoined.members.len(), 1);
    }

    #[tokio::test]
    async fn two_members_at_the_oldest_versions() {
        two_members(0, 0, 0, 0).await;
    }

    #[tokio::test]
    async fn two_members_at_middle_versions() {
        two_members(5, 3, 3, 3).await;
    }

    #[tokio::test]
    async fn two_members_at_the_newest_versions() {
        two_members(9, 5, 4, 5).await;
    }

    #[tokio::test]
    async fn refusals_are_encodable_error_codes() {
        let m = Membership::start(GroupConfig::default());
        let bad = m
            .join(join_req("", 5).with_session_timeout_ms(10), 5, "c", "h")
            .await;
        encodes(&bad, 5);
        assert_eq!(bad.error_code, ResponseError::InvalidSessionTimeout.code());
        let unknown = m.join(join_req("ghost", 2), 2, "c", "h").await;
        encodes(&unknown, 2);
        assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
        assert_eq!(unknown.protocol_name.as_deref(), Some(""));
        let sync = m
            .sync(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_member_id(s("ghost")),
                1,
            )
            .await;
        assert_eq!(sync.error_code, ResponseError::UnknownMemberId.code());
        let leave = m
            .leave(LeaveGroupRequest::default().with_member_id(s("ghost")), 1)
            .await;
        assert_eq!(leave.error_code, ResponseError::InvalidGroupId.code());
        assert_eq!(m.check_commit("g", "", -1, None), Ok(()));
        assert_eq!(m.describe("g"), None);
        assert_eq!(m.delete("g"), Ok(false));
    }

    #[tokio::test]
    async fn an_expired_session_is_removed_by_the_ticker() {
        let m = Membership::start(GroupConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 50,
            ..GroupConfig::default()
        });
        let req = join_req("", 3).with_session_timeout_ms(50);
        let joined = m.join(req, 3, "c", "h").await;
        assert_eq!(joined.error_code, 0);
        // Nobody heartbeats: the ticker expires the member (no request drives it).
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while m.describe("g").is_some_and(|v| !v.members.is_empty()) {
            assert!(Instant::now() < deadline, "session never expired");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(m.describe("g").unwrap().state, "Empty");
    }
}
