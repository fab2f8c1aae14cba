//! One test per refusal and per path of the classic protocol.

use crate::*;

const DELAY: u64 = 100;

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: DELAY,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
    })
}

fn protos(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol::new(*n, n.as_bytes().to_vec()))
        .collect()
}

fn join(member: &str, new_id: &str) -> Join {
    Join::new("g", "consumer", protos(&["range"]))
        .with_member_id(member)
        .with_new_member_id(new_id)
        .with_timeouts(2_000, 5_000)
}

fn responses(actions: &[Action]) -> Vec<(RequestId, Response)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Respond {
                request_id,
                response,
            } => Some((*request_id, response.clone())),
            _ => None,
        })
        .collect()
}

fn joined(actions: &[Action], id: u64) -> Joined {
    match responses(actions).into_iter().find(|(r, _)| r.0 == id) {
        Some((_, Response::Join(Ok(j)))) => j,
        other => panic!("join {id}: {other:?} in {actions:?}"),
    }
}

fn join_error(actions: &[Action], id: u64) -> GroupError {
    match responses(actions).into_iter().find(|(r, _)| r.0 == id) {
        Some((_, Response::Join(Err(e)))) => e,
        other => panic!("join {id}: {other:?}"),
    }
}

fn sync_result(actions: &[Action], id: u64) -> Result<Synced, GroupError> {
    match responses(actions).into_iter().find(|(r, _)| r.0 == id) {
        Some((_, Response::Sync(r))) => r,
        other => panic!("sync {id}: {other:?}"),
    }
}

fn hb(c: &mut GroupCoordinator, now: u64, member: &str, generation: i32) -> Result<(), GroupError> {
    let a = c.heartbeat(
        now,
        RequestId(999),
        Heartbeat {
            group: "g".into(),
            member_id: member.into(),
            instance_id: None,
            generation,
        },
    );
    match responses(&a).pop() {
        Some((_, Response::Heartbeat(r))) => r,
        other => panic!("{other:?}"),
    }
}

fn sync(member: &str, generation: i32, assignments: Vec<(String, Vec<u8>)>) -> Sync {
    Sync {
        group: "g".into(),
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

/// Two members join an empty group, the leader assigns, both are stable at generation 1.
fn stable_pair(c: &mut GroupCoordinator) {
    assert!(responses(&c.join(0, RequestId(1), join("", "a"))).is_empty());
    assert!(responses(&c.join(10, RequestId(2), join("", "b"))).is_empty());
    // The initial delay is extended once because b joined during it.
    assert!(responses(&c.tick(DELAY)).is_empty());
    let a = c.tick(2 * DELAY);
    let (ja, jb) = (joined(&a, 1), joined(&a, 2));
    assert_eq!(
        (ja.generation, ja.leader.as_str(), ja.members.len()),
        (1, "a", 2)
    );
    assert_eq!(
        (jb.generation, jb.leader.as_str(), jb.members.len()),
        (1, "a", 0)
    );
    assert_eq!(ja.protocol_name, "range");
    assert!(responses(&c.sync(210, RequestId(3), sync("b", 1, vec![]))).is_empty());
    let a = c.sync(
        220,
        RequestId(4),
        sync(
            "a",
            1,
            vec![("a".into(), b"A".to_vec()), ("b".into(), b"B".to_vec())],
        ),
    );
    assert_eq!(sync_result(&a, 3).unwrap().assignment, b"B");
    assert_eq!(sync_result(&a, 4).unwrap().assignment, b"A");
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
}

#[test]
fn two_members_join_sync_heartbeat_and_leave() {
    let mut c = coordinator();
    stable_pair(&mut c);
    assert_eq!(hb(&mut c, 300, "a", 1), Ok(()));
    let view = c.describe("g").unwrap();
    assert_eq!(view.members[1].assignment, b"B");
    assert_eq!(view.members[1].metadata, b"range");
    // b leaves: a rebalance, a's heartbeat says so, a rejoins alone into generation 2.
    let a = c.leave(
        400,
        RequestId(5),
        "g",
        vec![Leaving {
            member_id: "b".into(),
            instance_id: None,
        }],
    );
    assert_eq!(responses(&a)[0].1, Response::Leave(Ok(vec![Ok(())])));
    assert_eq!(
        hb(&mut c, 410, "a", 1),
        Err(GroupError::RebalanceInProgress)
    );
    let a = c.join(420, RequestId(6), join("a", "unused"));
    let j = joined(&a, 6);
    assert_eq!((j.generation, j.members.len()), (2, 1));
    assert_eq!(
        hb(&mut c, 430, "b", 2),
        Err(GroupError::UnknownMemberId {
            member_id: "b".into()
        })
    );
}

#[test]
fn member_id_required_then_join_with_it() {
    let mut c = coordinator();
    let a = c.join(
        0,
        RequestId(1),
        join("", "m-1").requiring_known_member_id(true),
    );
    assert_eq!(
        join_error(&a, 1),
        GroupError::MemberIdRequired {
            member_id: "m-1".into()
        }
    );
    assert!(
        c.join(
            5,
            RequestId(2),
            join("m-1", "x").requiring_known_member_id(true)
        )
        .iter()
        .all(|a| !matches!(a, Action::Respond { .. }))
    );
    let a = c.tick(DELAY + 5);
    assert_eq!(joined(&a, 2).member_id, "m-1");
}

#[test]
fn pending_member_id_lapses_after_the_session_timeout() {
    let mut c = coordinator();
    c.join(
        0,
        RequestId(1),
        join("", "m-1").requiring_known_member_id(true),
    );
    c.tick(2_000);
    let a = c.join(2_001, RequestId(2), join("m-1", "x"));
    assert_eq!(
        join_error(&a, 2),
        GroupError::UnknownMemberId {
            member_id: "m-1".into()
        }
    );
}

#[test]
fn session_timeout_bounds() {
    let mut c = coordinator();
    for ms in [999, 60_001] {
        let a = c.join(0, RequestId(1), join("", "a").with_timeouts(ms, 5_000));
        assert!(matches!(
            join_error(&a, 1),
            GroupError::InvalidSessionTimeout { .. }
        ));
    }
    assert!(c.list().is_empty());
}

#[test]
fn empty_group_id_is_invalid() {
    let mut c = coordinator();
    let mut j = join("", "a");
    j.group.clear();
    assert_eq!(
        join_error(&c.join(0, RequestId(1), j), 1),
        GroupError::InvalidGroupId
    );
    let mut s = sync("a", 1, vec![]);
    s.group.clear();
    assert_eq!(
        sync_result(&c.sync(0, RequestId(2), s), 2),
        Err(GroupError::InvalidGroupId)
    );
    assert_eq!(
        c.check_commit(0, "", "", -1, None),
        Err(GroupError::InvalidGroupId)
    );
}

#[test]
fn inconsistent_protocols() {
    let mut c = coordinator();
    let a = c.join(
        0,
        RequestId(1),
        Join::new("g", "", protos(&["range"])).with_new_member_id("a"),
    );
    assert_eq!(join_error(&a, 1), GroupError::InconsistentGroupProtocol);
    let a = c.join(
        0,
        RequestId(1),
        Join::new("g", "consumer", vec![]).with_new_member_id("a"),
    );
    assert_eq!(join_error(&a, 1), GroupError::InconsistentGroupProtocol);
    stable_pair(&mut c);
    let other_type = Join::new("g", "connect", protos(&["range"])).with_new_member_id("c");
    assert_eq!(
        join_error(&c.join(300, RequestId(7), other_type), 7),
        GroupError::InconsistentGroupProtocol
    );
    let other_proto = Join::new("g", "consumer", protos(&["sticky"])).with_new_member_id("c");
    assert_eq!(
        join_error(&c.join(300, RequestId(8), other_proto), 8),
        GroupError::InconsistentGroupProtocol
    );
    let mut s = sync("a", 1, vec![]);
    s.protocol_name = Some("roundrobin".into());
    assert_eq!(
        sync_result(&c.sync(300, RequestId(9), s), 9),
        Err(GroupError::InconsistentGroupProtocol)
    );
    let mut s = sync("a", 1, vec![]);
    s.protocol_type = Some("consumer".into());
    s.protocol_name = Some("range".into());
    assert_eq!(
        sync_result(&c.sync(300, RequestId(9), s), 9)
            .unwrap()
            .assignment,
        b"A"
    );
}

#[test]
fn the_protocol_most_members_prefer_wins() {
    let vote = |members: &[(&str, &[&str])]| {
        let mut c = coordinator();
        for (i, (id, p)) in members.iter().enumerate() {
            let j = Join::new("g", "consumer", protos(p)).with_new_member_id(*id);
            c.join(0, RequestId(i as u64), j);
        }
        c.tick(DELAY);
        joined(&c.tick(2 * DELAY), 0).protocol_name
    };
    let (rr, range) = (&["roundrobin", "range"][..], &["range", "roundrobin"][..]);
    assert_eq!(vote(&[("a", range), ("b", rr), ("c", rr)]), "roundrobin");
    // A tie goes to the leader's preference; a protocol not all support never wins.
    assert_eq!(vote(&[("a", range), ("b", rr)]), "range");
    assert_eq!(
        vote(&[("a", &["sticky", "range"]), ("b", &["range"])]),
        "range"
    );
}

#[test]
fn sync_errors() {
    let mut c = coordinator();
    assert_eq!(
        sync_result(&c.sync(0, RequestId(1), sync("a", 1, vec![])), 1),
        Err(GroupError::UnknownMemberId {
            member_id: "a".into()
        })
    );
    stable_pair(&mut c);
    assert_eq!(
        sync_result(&c.sync(300, RequestId(1), sync("zz", 1, vec![])), 1),
        Err(GroupError::UnknownMemberId {
            member_id: "zz".into()
        })
    );
    assert_eq!(
        sync_result(&c.sync(300, RequestId(1), sync("a", 7, vec![])), 1),
        Err(GroupError::IllegalGeneration {
            given: 7,
            current: 1
        })
    );
    // A third member joins: a rebalance; a sync for generation 1 is now refused.
    c.join(300, RequestId(2), join("", "c"));
    assert_eq!(
        sync_result(&c.sync(310, RequestId(3), sync("a", 1, vec![])), 3),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn pending_followers_sync_is_cancelled_by_a_new_rebalance() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a"));
    c.join(0, RequestId(2), join("", "b"));
    c.tick(DELAY);
    c.tick(2 * DELAY);
    assert!(responses(&c.sync(210, RequestId(3), sync("b", 1, vec![]))).is_empty());
    let a = c.join(220, RequestId(4), join("", "c"));
    assert_eq!(sync_result(&a, 3), Err(GroupError::RebalanceInProgress));
}

#[test]
fn heartbeat_errors_and_session_expiry() {
    let mut c = coordinator();
    assert_eq!(
        hb(&mut c, 0, "a", 0),
        Err(GroupError::UnknownMemberId {
            member_id: "a".into()
        })
    );
    stable_pair(&mut c);
    assert_eq!(
        hb(&mut c, 300, "a", 0),
        Err(GroupError::IllegalGeneration {
            given: 0,
            current: 1
        })
    );
    assert_eq!(
        hb(&mut c, 300, "x", 1),
        Err(GroupError::UnknownMemberId {
            member_id: "x".into()
        })
    );
    // a keeps heartbeating, b goes silent: b's session (2 s) expires, the group rebalances.
    for t in (500..=2_400).step_by(500) {
        assert_eq!(hb(&mut c, t, "a", 1), Ok(()));
        c.tick(t);
    }
    let deadline = c.next_deadline().unwrap();
    assert!(deadline <= 2_500, "{deadline}");
    c.tick(2_500);
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        hb(&mut c, 2_501, "b", 1),
        Err(GroupError::UnknownMemberId {
            member_id: "b".into()
        })
    );
    assert_eq!(
        hb(&mut c, 2_501, "a", 1),
        Err(GroupError::RebalanceInProgress)
    );
    let j = joined(&c.join(2_502, RequestId(9), join("a", "")), 9);
    assert_eq!((j.generation, j.members.len()), (2, 1));
}

#[test]
fn members_that_do_not_rejoin_are_removed_at_the_rebalance_timeout() {
    let mut c = coordinator();
    stable_pair(&mut c);
    // a rejoins (protocols changed); b does not, but keeps heartbeating.
    let a = c.join(
        300,
        RequestId(5),
        Join {
            protocols: protos(&["range", "sticky"]),
            ..join("a", "")
        },
    );
    assert!(responses(&a).is_empty());
    for t in (1_000..=5_000).step_by(1_000) {
        assert!(responses(&c.tick(t)).is_empty());
        assert_eq!(hb(&mut c, t, "b", 1), Err(GroupError::RebalanceInProgress));
    }
    assert!(responses(&c.tick(5_299)).is_empty());
    let a = c.tick(5_300);
    assert_eq!(joined(&a, 5).generation, 2);
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}

#[test]
fn leave_by_member_and_by_instance_in_one_request() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a").with_instance_id("ia"));
    c.join(0, RequestId(2), join("", "b"));
    c.tick(DELAY);
    c.tick(2 * DELAY);
    let a = c.leave(
        300,
        RequestId(3),
        "g",
        vec![
            Leaving {
                member_id: "".into(),
                instance_id: Some("ia".into()),
            },
            Leaving {
                member_id: "b".into(),
                instance_id: None,
            },
            Leaving {
                member_id: "zz".into(),
                instance_id: None,
            },
            Leaving {
                member_id: "old".into(),
                instance_id: Some("nobody".into()),
            },
        ],
    );
    assert_eq!(
        responses(&a).last().unwrap().1,
        Response::Leave(Ok(vec![
            Ok(()),
            Ok(()),
            Err(GroupError::UnknownMemberId {
                member_id: "zz".into()
            }),
            Err(GroupError::UnknownMemberId {
                member_id: "old".into()
            }),
        ]))
    );
    let d = c.describe("g").unwrap();
    assert_eq!(
        (d.state, d.members.len(), d.generation),
        (GroupState::Empty, 0, 2)
    );
}

#[test]
fn static_member_rejoins_without_rebalance_and_fences_its_old_id() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a"));
    c.join(0, RequestId(2), join("", "b1").with_instance_id("ib"));
    c.tick(DELAY);
    c.tick(2 * DELAY);
    c.sync(210, RequestId(3), sync("b1", 1, vec![]));
    c.sync(
        210,
        RequestId(4),
        sync(
            "a",
            1,
            vec![("a".into(), b"A".to_vec()), ("b1".into(), b"B".to_vec())],
        ),
    );
    // b restarts: same instance, no member id, same protocols: it gets b2 at generation 1.
    let a = c.join(300, RequestId(5), join("", "b2").with_instance_id("ib"));
    let j = joined(&a, 5);
    assert_eq!(
        (j.member_id.as_str(), j.generation, j.leader.as_str()),
        ("b2", 1, "a")
    );
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    let s = sync_result(
        &c.sync(
            310,
            RequestId(6),
            Sync {
                instance_id: Some("ib".into()),
                ..sync("b2", 1, vec![])
            },
        ),
        6,
    );
    assert_eq!(s.unwrap().assignment, b"B");
    // The old id is fenced wherever it shows up with the instance id.
    let fenced = GroupError::FencedInstanceId {
        instance_id: "ib".into(),
    };
    let a = c.heartbeat(
        320,
        RequestId(7),
        Heartbeat {
            group: "g".into(),
            member_id: "b1".into(),
            instance_id: Some("ib".into()),
            generation: 1,
        },
    );
    assert_eq!(responses(&a)[0].1, Response::Heartbeat(Err(fenced.clone())));
    let a = c.join(320, RequestId(8), join("b1", "").with_instance_id("ib"));
    assert_eq!(join_error(&a, 8), fenced);
    assert_eq!(
        c.check_commit(320, "g", "b1", 1, Some("ib")),
        Err(fenced.clone())
    );
    let a = c.leave(
        320,
        RequestId(9),
        "g",
        vec![Leaving {
            member_id: "b1".into(),
            instance_id: Some("ib".into()),
        }],
    );
    assert_eq!(responses(&a)[0].1, Response::Leave(Ok(vec![Err(fenced)])));
}

#[test]
fn static_leader_rejoin_rebalances_unless_it_can_skip_assignment() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a1").with_instance_id("ia"));
    c.tick(DELAY);
    c.sync(
        110,
        RequestId(2),
        sync("a1", 1, vec![("a1".into(), b"A".to_vec())]),
    );
    let a = c.join(
        200,
        RequestId(3),
        join("", "a2")
            .with_instance_id("ia")
            .supporting_skip_assignment(true),
    );
    let j = joined(&a, 3);
    assert!(j.skip_assignment);
    assert_eq!(
        (j.generation, j.leader.as_str(), j.members.len()),
        (1, "a2", 1)
    );
    // Without skip support the leader must reassign: a new generation.
    let a = c.join(300, RequestId(4), join("", "a3").with_instance_id("ia"));
    let j = joined(&a, 4);
    assert_eq!(
        (j.generation, j.leader.as_str(), j.skip_assignment),
        (2, "a3", false)
    );
}

#[test]
fn static_member_replaced_while_waiting_is_answered_fenced() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a1").with_instance_id("ia"));
    let a = c.join(10, RequestId(2), join("", "a2").with_instance_id("ia"));
    assert_eq!(
        join_error(&a, 1),
        GroupError::FencedInstanceId {
            instance_id: "ia".into()
        }
    );
    let a = c.tick(DELAY + 10);
    assert_eq!(joined(&a, 2).member_id, "a2");
}

#[test]
fn commits() {
    let mut c = coordinator();
    // No group: standalone commits pass, member commits are refused.
    assert_eq!(c.check_commit(0, "g", "", -1, None), Ok(()));
    assert!(matches!(
        c.check_commit(0, "g", "m", 3, None),
        Err(GroupError::IllegalGeneration { .. })
    ));
    c.join(0, RequestId(1), join("", "a"));
    c.tick(DELAY);
    // Completing the rebalance: refused until the assignment is in.
    assert_eq!(
        c.check_commit(110, "g", "a", 1, None),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        c.check_commit(110, "g", "", -1, None),
        Err(GroupError::UnknownMemberId {
            member_id: "".into()
        })
    );
    c.sync(120, RequestId(2), sync("a", 1, vec![]));
    assert_eq!(c.check_commit(130, "g", "a", 1, None), Ok(()));
    assert!(matches!(
        c.check_commit(130, "g", "a", 0, None),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));
    c.leave(
        140,
        RequestId(3),
        "g",
        vec![Leaving {
            member_id: "a".into(),
            instance_id: None,
        }],
    );
    assert_eq!(c.check_commit(150, "g", "", -1, None), Ok(()));
    assert_eq!(c.delete("g"), Ok(true));
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_second_join_from_the_same_member_supersedes_the_first() {
    let mut c = coordinator();
    c.join(0, RequestId(1), join("", "a"));
    let a = c.join(10, RequestId(2), join("a", ""));
    assert_eq!(join_error(&a, 1), GroupError::RebalanceInProgress);
    assert_eq!(joined(&c.tick(DELAY), 2).generation, 1);
}

#[test]
fn list_and_state_names() {
    let mut c = coordinator();
    stable_pair(&mut c);
    assert_eq!(
        c.list(),
        vec![("g".to_string(), GroupState::Stable, "consumer".to_string())]
    );
    assert_eq!(
        GroupState::CompletingRebalance.name(),
        "CompletingRebalance"
    );
    assert_eq!(c.describe("g").unwrap().protocol, "range");
}
