//! Property tests: random sequences of joins, syncs, heartbeats, leaves, commits and ticks
//! from a few clients (two of them static members), well-behaved or not, checked against
//! what the classic protocol promises:
//! - every request is answered exactly once (after the last step, once time has run on);
//! - generation ids never decrease, and a successful JoinGroup names the current one;
//! - only the current generation is Stable: every successful SyncGroup is for the current
//!   generation of a Stable group, and carries the leader's assignment for that member;
//! - a member removed (left, expired, replaced, not rejoined) never again gets a successful
//!   JoinGroup, SyncGroup or Heartbeat, nor passes a commit check.

use crate::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const CLIENTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Join {
        client: usize,
        fresh: bool,
        v4: bool,
        wide: bool,
        skip: bool,
    },
    Sync {
        client: usize,
        stale: bool,
    },
    Heartbeat {
        client: usize,
    },
    Leave {
        client: usize,
        by_instance: bool,
    },
    Commit {
        client: usize,
    },
    Tick {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => (c.clone(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(client, fresh, v4, wide, skip)| Op::Join { client, fresh, v4, wide, skip }),
        3 => (c.clone(), prop::bool::weighted(0.1)).prop_map(|(client, stale)| Op::Sync { client, stale }),
        2 => c.clone().prop_map(|client| Op::Heartbeat { client }),
        1 => (c.clone(), any::<bool>()).prop_map(|(client, by_instance)| Op::Leave { client, by_instance }),
        1 => c.clone().prop_map(|client| Op::Commit { client }),
        3 => (0u64..2_500).prop_map(|ms| Op::Tick { ms }),
    ]
}

#[derive(Debug, Default)]
struct Client {
    member_id: String,
    generation: i32,
    /// The member list of the last generation this client led.
    led: Option<(i32, Vec<JoinedMember>)>,
}

#[derive(Debug)]
enum Sent {
    Join(usize),
    Sync {
        client: usize,
        generation: i32,
        member: String,
    },
    Heartbeat(String),
    Leave,
}

struct Harness {
    c: GroupCoordinator,
    now: u64,
    clients: Vec<Client>,
    outstanding: BTreeMap<RequestId, Sent>,
    next_request: u64,
    next_member: u64,
    seen: BTreeSet<String>,
    gone: BTreeSet<String>,
    generation: i32,
}

fn name(client: usize) -> String {
    format!("c{client}")
}

fn instance(client: usize) -> Option<String> {
    (client >= 2).then(|| format!("static-{client}"))
}

impl Harness {
    fn new(delay: u64) -> Self {
        Harness {
            c: GroupCoordinator::new(GroupConfig {
                initial_rebalance_delay_ms: delay,
                min_session_timeout_ms: 1_000,
                max_session_timeout_ms: 10_000,
            }),
            now: 0,
            clients: (0..CLIENTS).map(|_| Client::default()).collect(),
            outstanding: BTreeMap::new(),
            next_request: 0,
            next_member: 0,
            seen: BTreeSet::new(),
            gone: BTreeSet::new(),
            generation: 0,
        }
    }

    fn request(&mut self, sent: Sent) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.outstanding.insert(id, sent);
        id
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let actions = match op {
            Op::Join {
                client,
                fresh,
                v4,
                wide,
                skip,
            } => {
                self.next_member += 1;
                let n = name(client);
                let mut protocols = vec![Protocol::new("range", n.clone().into_bytes())];
                if wide {
                    protocols.insert(0, Protocol::new("sticky", n.clone().into_bytes()));
                }
                let mut join = Join::new("g", "consumer", protocols)
                    .with_member_id(if fresh {
                        String::new()
                    } else {
                        self.clients[client].member_id.clone()
                    })
                    .with_new_member_id(format!("{n}-{}", self.next_member))
                    .with_timeouts(2_000, 3_000)
                    .with_client(n, "host")
                    .requiring_known_member_id(v4)
                    .supporting_skip_assignment(skip);
                join.instance_id = instance(client);
                let id = self.request(Sent::Join(client));
                self.c.join(self.now, id, join)
            }
            Op::Sync { client, stale } => {
                let cl = &self.clients[client];
                let generation = if stale {
                    cl.generation - 1
                } else {
                    cl.generation
                };
                let assignments = match &cl.led {
                    Some((g, members)) if *g == generation => members
                        .iter()
                        .map(|m| {
                            let who = String::from_utf8_lossy(&m.metadata).to_string();
                            (
                                m.member_id.clone(),
                                format!("{generation}:{who}").into_bytes(),
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let sync = Sync {
                    group: "g".into(),
                    member_id: cl.member_id.clone(),
                    instance_id: instance(client),
                    generation,
                    protocol_type: None,
                    protocol_name: None,
                    assignments,
                };
                let member = cl.member_id.clone();
                let id = self.request(Sent::Sync {
                    client,
                    generation,
                    member,
                });
                self.c.sync(self.now, id, sync)
            }
            Op::Heartbeat { client } => {
                let cl = &self.clients[client];
                let hb = Heartbeat {
                    group: "g".into(),
                    member_id: cl.member_id.clone(),
                    instance_id: instance(client),
                    generation: cl.generation,
                };
                let id = self.request(Sent::Heartbeat(cl.member_id.clone()));
                self.c.heartbeat(self.now, id, hb)
            }
            Op::Leave {
                client,
                by_instance,
            } => {
                let leaving = Leaving {
                    member_id: if by_instance && instance(client).is_some() {
                        String::new()
                    } else {
                        self.clients[client].member_id.clone()
                    },
                    instance_id: if by_instance { instance(client) } else { None },
                };
                let id = self.request(Sent::Leave);
                self.c.leave(self.now, id, "g", vec![leaving])
            }
            Op::Commit { client } => {
                let cl = &self.clients[client];
                let ok = self
                    .c
                    .check_commit(
                        self.now,
                        "g",
                        &cl.member_id,
                        cl.generation,
                        instance(client).as_deref(),
                    )
                    .is_ok();
                if ok && !cl.member_id.is_empty() {
                    prop_assert!(
                        !self.gone.contains(&cl.member_id),
                        "commit of removed {}",
                        cl.member_id
                    );
                }
                Vec::new()
            }
            Op::Tick { ms } => {
                self.now += ms;
                self.c.tick(self.now)
            }
        };
        self.check(actions)
    }

    fn check(&mut self, actions: Vec<Action>) -> Result<(), TestCaseError> {
        let view = self.c.describe("g");
        let (state, generation) = view
            .as_ref()
            .map(|v| (v.state, v.generation))
            .unwrap_or((GroupState::Empty, 0));
        prop_assert!(generation >= self.generation, "generation went back");
        self.generation = generation;
        let members: BTreeSet<String> = view
            .iter()
            .flat_map(|v| v.members.iter().map(|m| m.member_id.clone()))
            .collect();
        for m in self.seen.difference(&members) {
            self.gone.insert(m.clone());
        }
        for m in &members {
            prop_assert!(!self.gone.contains(m), "removed member {m} is back");
        }
        self.seen.extend(members);
        for action in actions {
            let Action::Respond {
                request_id,
                response,
            } = action
            else {
                continue;
            };
            let sent = self.outstanding.remove(&request_id);
            prop_assert!(
                sent.is_some(),
                "{request_id:?} answered twice or never asked"
            );
            match (sent.unwrap(), response) {
                (Sent::Join(client), Response::Join(Ok(j))) => {
                    prop_assert_eq!(j.generation, generation);
                    prop_assert!(!self.gone.contains(&j.member_id));
                    let cl = &mut self.clients[client];
                    cl.member_id = j.member_id;
                    cl.generation = j.generation;
                    if !j.members.is_empty() {
                        cl.led = Some((j.generation, j.members));
                    }
                }
                (
                    Sent::Join(client),
                    Response::Join(Err(GroupError::MemberIdRequired { member_id })),
                ) => {
                    self.clients[client].member_id = member_id;
                }
                (Sent::Join(_), Response::Join(Err(_))) => {}
                (
                    Sent::Sync {
                        client,
                        generation: g,
                        member,
                    },
                    Response::Sync(Ok(s)),
                ) => {
                    prop_assert_eq!(state, GroupState::Stable);
                    prop_assert_eq!(g, generation, "a sync of another generation succeeded");
                    prop_assert!(!self.gone.contains(&member));
                    let expected = format!("{g}:{}", name(client)).into_bytes();
                    prop_assert_eq!(s.assignment, expected, "not the leader's assignment");
                }
                (Sent::Sync { .. }, Response::Sync(Err(_))) => {}
                (Sent::Heartbeat(member), Response::Heartbeat(r)) => {
                    if r.is_ok() {
                        prop_assert!(
                            !self.gone.contains(&member),
                            "heartbeat of removed {member}"
                        );
                    }
                }
                (Sent::Leave, Response::Leave(_)) => {}
                (sent, response) => prop_assert!(false, "{sent:?} answered with {response:?}"),
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_classic_protocol_keeps_its_promises(
        delay in prop_oneof![Just(0u64), Just(100u64)],
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(delay);
        for op in ops {
            h.step(op)?;
        }
        // Time runs on: every waiting request is answered.
        for _ in 0..6 {
            h.now += 20_000;
            let actions = h.c.tick(h.now);
            h.check(actions)?;
        }
        prop_assert!(h.outstanding.is_empty(), "never answered: {:?}", h.outstanding);
        prop_assert_eq!(h.c.describe("g").map(|v| v.state).unwrap_or(GroupState::Empty), GroupState::Empty);
    }
}
