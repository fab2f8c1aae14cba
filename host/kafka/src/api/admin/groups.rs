//! Consumer-group offsets: OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups and OffsetDelete.
//!
//! There is no group membership yet (JoinGroup and SyncGroup are not implemented): a group
//! is the set of offsets committed under its name, always in state `Empty`, with protocol
//! type `consumer`. Commits are those of consumers that assign their partitions themselves
//! (librdkafka's `assign()`, the Java consumer's `assign` + `commitSync`), which send
//! generation -1 and an empty member id; a commit naming a member is `UNKNOWN_MEMBER_ID`, as
//! Kafka answers it for an empty group.

use super::{Ctx, Fatal, Principal, acl, broker_error, fail};
use crate::api::{blocking, s};
use distlog_broker::{Broker, BrokerError, CommittedOffset, MAX_COMMIT_METADATA, OffsetCommit};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The state every known group is in.
const EMPTY: &str = "Empty";
/// The state DescribeGroups gives a group it does not know (as Kafka does).
const DEAD: &str = "Dead";
const CONSUMER: &str = "consumer";

/// Whether partition `p` of `topic` exists (the per-partition check of a commit).
fn partition_code(broker: &Broker, topic: &str, p: i32) -> Result<u32, ResponseError> {
    let index = u32::try_from(p).map_err(|_| ResponseError::UnknownTopicOrPartition)?;
    match broker.partition_count(topic) {
        Ok(count) if index < count => Ok(index),
        Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => Err(crate::error::code(&e)),
    }
}

/// A partition of a commit: its index and the position of its commit in the batch, or its
/// error.
type PartitionCheck = (i32, Result<usize, ResponseError>);

/// OffsetCommit: each partition checked on its own; the valid ones committed together (one
/// fsync).
pub(super) async fn commit(
    ctx: &Arc<Ctx>,
    _version: i16,
    req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse, Fatal> {
    let api = ApiKey::OffsetCommit;
    let broker = ctx.broker.clone();
    // Membership decides whether this member of this generation may commit (a consumer that
    // assigns its own partitions sends generation -1 and no member id).
    let member_error = ctx
        .groups
        .check_commit(
            &req.group_id.0,
            &req.member_id,
            req.generation_id_or_member_epoch,
            req.group_instance_id.as_deref(),
        )
        .err();
    let topics = blocking(move || {
        let group = req.group_id.0.to_string();
        // Per partition: Ok(index in `commits`) or the error.
        let mut commits = Vec::new();
        let checked: Vec<(TopicName, Vec<PartitionCheck>)> = req
            .topics
            .into_iter()
            .map(|t| {
                let topic = t.name.0.to_string();
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let outcome = (|| {
                            if let Some(e) = member_error {
                                return Err(e);
                            }
                            let partition = partition_code(&broker, &topic, p.partition_index)?;
                            let metadata = p
                                .committed_metadata
                                .map(|m| m.to_string())
                                .unwrap_or_default();
                            if metadata.len() > MAX_COMMIT_METADATA {
                                return Err(ResponseError::OffsetMetadataTooLarge);
                            }
                            let offset = u64::try_from(p.committed_offset)
                                .map_err(|_| ResponseError::OffsetOutOfRange)?;
                            commits.push(OffsetCommit {
                                topic: topic.clone(),
                                partition,
                                offset,
                                metadata,
                            });
                            Ok(commits.len() - 1)
                        })();
                        (p.partition_index, outcome)
                    })
                    .collect();
                (t.name, partitions)
            })
            .collect();
        let committed: Result<(), ResponseError> = if commits.is_empty() {
            Ok(())
        } else {
            broker
                .commit_offsets(&group, commits)
                .map_err(|e| crate::error::code(&e))
        };
        checked
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, outcome)| {
                                let code = match outcome.and(committed) {
                                    Ok(_) => 0,
                                    Err(e) => fail(api, e),
                                };
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect()
    })
    .await?;
    Ok(OffsetCommitResponse::default().with_topics(topics))
}

/// A group's commits by topic and partition; a group without commits has none. `Err`: the
/// group's error code.
fn commits_of(
    broker: &Broker,
    group: &str,
) -> Result<BTreeMap<(String, u32), CommittedOffset>, ResponseError> {
    match broker.fetch_offsets(group, None) {
        Ok(offsets) => Ok(offsets
            .into_iter()
            .map(|o| ((o.topic.clone(), o.partition), o))
            .collect()),
        Err(BrokerError::GroupNotFound(_)) => Ok(BTreeMap::new()),
        Err(e) => Err(crate::error::code(&e)),
    }
}

/// One partition's answer: `(index, offset, metadata)`; -1 and no metadata without a commit.
type Fetched = (i32, i64, String);

/// The partitions asked for (all committed ones when `topics` is `None`), by topic.
fn fetched(
    commits: &BTreeMap<(String, u32), CommittedOffset>,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<Fetched>)> {
    let of = |o: &CommittedOffset| {
        (
            i32::try_from(o.partition).unwrap_or(i32::MAX),
            i64::try_from(o.offset).unwrap_or(i64::MAX),
            o.metadata.clone(),
        )
    };
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let topic = name.0.to_string();
                let answers = partitions
                    .into_iter()
                    .map(|p| {
                        let found = u32::try_from(p)
                            .ok()
                            .and_then(|i| commits.get(&(topic.clone(), i)));
                        found.map_or((p, -1, String::new()), of)
                    })
                    .collect();
                (name, answers)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<&str, Vec<Fetched>> = BTreeMap::new();
            for ((topic, _), o) in commits {
                by_topic.entry(topic).or_default().push(of(o));
            }
            by_topic
                .into_iter()
                .map(|(t, partitions)| (TopicName(s(t)), partitions))
                .collect()
        }
    }
}

/// OffsetFetch: the committed offsets of one group (v1-7) or several (v8).
pub(super) fn fetch(ctx: &Ctx, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let api = ApiKey::OffsetFetch;
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let answer = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                let commits = match commits_of(&ctx.broker, &g.group_id.0) {
                    Ok(c) => c,
                    Err(e) => return answer.with_error_code(fail(api, e)),
                };
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                answer.with_topics(
                    fetched(&commits, topics)
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, offset, metadata)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(index)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(s(metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let (commits, group_error) = match commits_of(&ctx.broker, &req.group_id.0) {
        Ok(c) => (c, None),
        Err(e) => (BTreeMap::new(), Some(e)),
    };
    // v1 has no group-level error code: its partitions carry it.
    let partition_error = group_error.filter(|_| version < 2).map_or(0, |e| e.code());
    let answered = fetched(&commits, topics)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, offset, metadata)| {
                            crate::metrics::error(api, partition_error);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(s(metadata)))
                                .with_error_code(partition_error)
                        })
                        .collect(),
                )
        })
        .collect();
    let code = match group_error {
        Some(e) if version >= 2 => fail(api, e),
        _ => 0,
    };
    OffsetFetchResponse::default()
        .with_topics(answered)
        .with_error_code(code)
}

/// ListGroups: every group with commits, state `Empty` (v4 filters by state).
pub(super) fn list(ctx: &Ctx, _version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let wanted = req.states_filter.is_empty()
        || req
            .states_filter
            .iter()
            .any(|f| f.eq_ignore_ascii_case(EMPTY));
    let members = ctx.groups.list();
    let mut groups: Vec<ListedGroup> = members
        .iter()
        .filter(|(_, state, _)| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(state))
        })
        .map(|(g, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(s(g.clone())))
                .with_protocol_type(s(protocol_type.clone()))
                .with_group_state(s(*state))
        })
        .collect();
    if wanted {
        // Groups that only have committed offsets.
        groups.extend(
            ctx.broker
                .list_groups()
                .into_iter()
                .filter(|g| !members.iter().any(|(m, _, _)| m == g))
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(GroupId(s(g)))
                        .with_protocol_type(s(CONSUMER))
                        .with_group_state(s(EMPTY))
                }),
        );
    }
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups: a group with commits is `Empty` with no members; one without is `Dead`
/// (error 0, as Kafka answers).
pub(super) fn describe(
    ctx: &Ctx,
    principal: &Principal,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let api = ApiKey::DescribeGroups;
    let operations = if version >= 3 && req.include_authorized_operations {
        if ctx.may_admin(principal) {
            acl::READ | acl::DESCRIBE | acl::DELETE
        } else {
            acl::READ | acl::DESCRIBE
        }
    } else {
        acl::NOT_REQUESTED
    };
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let described = DescribedGroup::default()
                .with_group_id(g.clone())
                .with_authorized_operations(operations);
            if let Some(view) = ctx.groups.describe(&g.0) {
                return described
                    .with_group_state(s(view.state))
                    .with_protocol_type(s(view.protocol_type))
                    .with_protocol_data(s(view.protocol))
                    .with_members(
                        view.members
                            .into_iter()
                            .map(|m| {
                                kafka_protocol::messages::describe_groups_response::DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(bytes::Bytes::from(m.metadata))
                                    .with_member_assignment(bytes::Bytes::from(m.assignment))
                            })
                            .collect(),
                    );
            }
            match ctx.broker.fetch_offsets(&g.0, None) {
                Ok(_) => described
                    .with_group_state(s(EMPTY))
                    .with_protocol_type(s(CONSUMER)),
                Err(BrokerError::GroupNotFound(_)) => described.with_group_state(s(DEAD)),
                Err(e) => described
                    .with_group_state(s(DEAD))
                    .with_error_code(fail(api, crate::error::code(&e))),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: each group's offsets forgotten durably.
pub(super) async fn delete(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    _version: i16,
    req: DeleteGroupsRequest,
) -> Result<DeleteGroupsResponse, Fatal> {
    let api = ApiKey::DeleteGroups;
    let allowed = ctx.may_admin(principal);
    let broker = ctx.broker.clone();
    // A group with live members cannot be deleted (NON_EMPTY_GROUP), as in Kafka.
    let live: Vec<Option<ResponseError>> = req
        .groups_names
        .iter()
        .map(|g| {
            if allowed {
                ctx.groups.delete(&g.0).err()
            } else {
                None
            }
        })
        .collect();
    let results = blocking(move || {
        req.groups_names
            .into_iter()
            .zip(live)
            .map(|(g, live)| {
                let code = if !allowed {
                    fail(api, ResponseError::GroupAuthorizationFailed)
                } else if let Some(e) = live {
                    fail(api, e)
                } else {
                    match broker.delete_group(&g.0) {
                        Ok(_) => 0,
                        Err(e) => fail(api, crate::error::code(&e)),
                    }
                };
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect()
    })
    .await?;
    Ok(DeleteGroupsResponse::default().with_results(results))
}

/// OffsetDelete: some partitions' offsets of one group forgotten durably.
pub(super) async fn delete_offsets(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    _version: i16,
    req: OffsetDeleteRequest,
) -> Result<OffsetDeleteResponse, Fatal> {
    let api = ApiKey::OffsetDelete;
    if !ctx.may_admin(principal) {
        return Ok(OffsetDeleteResponse::default()
            .with_error_code(fail(api, ResponseError::GroupAuthorizationFailed)));
    }
    let broker = ctx.broker.clone();
    blocking(move || {
        let group = req.group_id.0.to_string();
        let mut valid = Vec::new();
        let checked: Vec<(TopicName, Vec<(i32, i16)>)> = req
            .topics
            .into_iter()
            .map(|t| {
                let topic = t.name.0.to_string();
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let code = match partition_code(&broker, &topic, p.partition_index) {
                            Ok(index) => {
                                valid.push((topic.clone(), index));
                                0
                            }
                            Err(e) => fail(api, e),
                        };
                        (p.partition_index, code)
                    })
                    .collect();
                (t.name, partitions)
            })
            .collect();
        let top = match broker.delete_group_offsets(&group, &valid) {
            Ok(_) => 0,
            Err(e) => broker_error(api, &e).0,
        };
        let topics = if top != 0 {
            Vec::new()
        } else {
            checked
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, code)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect()
        };
        OffsetDeleteResponse::default()
            .with_error_code(top)
            .with_topics(topics)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::super::testing::{admin, anyone, ctx, round_trip, versions};
    use super::*;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };

    fn commit_req(group: &str, topic: &str, parts: &[(i32, i64, &str)]) -> OffsetCommitRequest {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, o, m)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_metadata(Some(s(*m)))
                            })
                            .collect(),
                    ),
            ])
    }

    fn codes(r: &OffsetCommitResponse) -> Vec<i16> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    async fn setup() -> super::super::testing::TestCtx {
        let ctx = ctx(true);
        ctx.broker
            .create_topic("t", 3, BTreeMap::new())
            .expect("create");
        let r = commit(&ctx, 8, commit_req("g", "t", &[(0, 5, "m0"), (1, 7, "")]))
            .await
            .expect("commit");
        assert_eq!(codes(&r), vec![0, 0]);
        ctx
    }

    #[tokio::test]
    async fn offset_commit_checks_each_partition() {
        let ctx = setup().await;
        let [min, max] = versions(ApiKey::OffsetCommit);
        let big = "x".repeat(MAX_COMMIT_METADATA + 1);
        let req = commit_req(
            "g",
            "t",
            &[(2, 9, "ok"), (3, 1, ""), (0, 1, &big), (1, -5, "")],
        );
        for v in [min, max] {
            round_trip(&req, v);
        }
        let r = commit(&ctx, min, req).await.expect("commit");
        round_trip(&r, min);
        assert_eq!(
            codes(&r),
            vec![
                0,
                ResponseError::UnknownTopicOrPartition.code(),
                ResponseError::OffsetMetadataTooLarge.code(),
                ResponseError::OffsetOutOfRange.code(),
            ]
        );
        let r = commit(&ctx, max, commit_req("g", "missing", &[(0, 1, "")]))
            .await
            .expect("commit");
        assert_eq!(
            codes(&r),
            vec![ResponseError::UnknownTopicOrPartition.code()]
        );
        let r = commit(&ctx, max, commit_req("", "t", &[(0, 1, "")]))
            .await
            .expect("commit");
        assert_eq!(codes(&r), vec![ResponseError::InvalidGroupId.code()]);
        let member = commit_req("g", "t", &[(0, 1, "")])
            .with_member_id(s("consumer-1"))
            .with_generation_id_or_member_epoch(3);
        let r = commit(&ctx, max, member).await.expect("commit");
        // A generation of a group that has no members: Kafka's answer.
        assert_eq!(codes(&r), vec![ResponseError::IllegalGeneration.code()]);
        let got: Vec<(u32, u64, String)> = ctx
            .broker
            .fetch_offsets("g", None)
            .expect("fetch")
            .into_iter()
            .map(|o| (o.partition, o.offset, o.metadata))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 5, "m0".into()),
                (1, 7, String::new()),
                (2, 9, "ok".into())
            ]
        );
    }

    #[tokio::test]
    async fn offset_fetch_answers_commits_and_minus_one() {
        let ctx = setup().await;
        let [min, max] = versions(ApiKey::OffsetFetch);
        let asked = Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0, 2]),
        ]);
        for v in [min, 7] {
            let req = OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(asked.clone());
            round_trip(&req, v);
            let r = round_trip(&fetch(&ctx, v, req), v);
            let p: Vec<(i32, i64, Option<&str>)> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_deref()))
                .collect();
            assert_eq!(p, vec![(0, 5, Some("m0")), (2, -1, Some(""))], "v{v}");
            let unknown = OffsetFetchRequest::default()
                .with_group_id(GroupId(s("nobody")))
                .with_topics(asked.clone());
            let r = fetch(&ctx, v, unknown);
            assert_eq!(r.error_code, 0);
            assert_eq!(r.topics[0].partitions[0].committed_offset, -1);
        }
        let all = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(None);
        let r = round_trip(&fetch(&ctx, 7, all), 7);
        let p: Vec<(i32, i64)> = r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        assert_eq!(p, vec![(0, 5), (1, 7)]);
        let bad = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("")))
            .with_topics(asked);
        assert_eq!(
            fetch(&ctx, 7, bad).error_code,
            ResponseError::InvalidGroupId.code()
        );

        let v8 = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![1, 2]),
                ])),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("nobody")))
                .with_topics(None),
        ]);
        round_trip(&v8, max);
        let r = round_trip(&fetch(&ctx, max, v8), max);
        let offsets = |g: &OffsetFetchResponseGroup| -> Vec<(i32, i64)> {
            g.topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.committed_offset))
                })
                .collect()
        };
        assert_eq!(offsets(&r.groups[0]), vec![(1, 7), (2, -1)]);
        assert_eq!(offsets(&r.groups[1]), vec![(0, 5), (1, 7)]);
        assert_eq!((r.groups[2].error_code, offsets(&r.groups[2])), (0, vec![]));
    }

    #[tokio::test]
    async fn list_and_describe_groups() {
        let ctx = setup().await;
        let [min, max] = versions(ApiKey::ListGroups);
        for v in [min, max] {
            let r = round_trip(&list(&ctx, v, ListGroupsRequest::default()), v);
            let g: Vec<&str> = r.groups.iter().map(|g| g.group_id.0.as_str()).collect();
            assert_eq!(g, vec!["g"]);
            assert_eq!(r.groups[0].protocol_type.as_str(), "consumer");
        }
        let r = list(
            &ctx,
            max,
            ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
        );
        assert!(r.groups.is_empty());
        let r = list(
            &ctx,
            max,
            ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
        );
        assert_eq!(r.groups[0].group_state.as_str(), "Empty");

        let [min, max] = versions(ApiKey::DescribeGroups);
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g")), GroupId(s("nobody"))])
            .with_include_authorized_operations(true);
        for v in [min, max] {
            let r = round_trip(&describe(&ctx, &anyone(), v, req.clone()), v);
            let states: Vec<(&str, &str, i16)> = r
                .groups
                .iter()
                .map(|g| {
                    (
                        g.group_state.as_str(),
                        g.protocol_type.as_str(),
                        g.error_code,
                    )
                })
                .collect();
            assert_eq!(states, vec![("Empty", "consumer", 0), ("Dead", "", 0)]);
            assert!(r.groups[0].members.is_empty());
            if v >= 3 {
                assert_eq!(r.groups[0].authorized_operations & acl::DELETE, 0);
            }
        }
        let r = describe(&ctx, &admin(), max, req);
        assert_ne!(r.groups[0].authorized_operations & acl::DELETE, 0);
    }

    #[tokio::test]
    async fn delete_groups_and_offsets() {
        let ctx = setup().await;
        ctx.broker
            .commit_offsets(
                "h",
                vec![OffsetCommit {
                    topic: "t".into(),
                    partition: 2,
                    offset: 1,
                    metadata: String::new(),
                }],
            )
            .expect("commit");
        let [min, max] = versions(ApiKey::DeleteGroups);
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("h")), GroupId(s("nobody"))]);
        let r = delete(&ctx, &anyone(), max, req.clone())
            .await
            .expect("delete");
        assert!(
            r.results
                .iter()
                .all(|g| g.error_code == ResponseError::GroupAuthorizationFailed.code())
        );
        let r = round_trip(
            &delete(&ctx, &admin(), min, req).await.expect("delete"),
            min,
        );
        let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
        assert_eq!(codes, vec![0, ResponseError::GroupIdNotFound.code()]);
        assert_eq!(ctx.broker.list_groups(), vec!["g".to_owned()]);

        let offsets = |group: &str, parts: &[i32]| {
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        ),
                ])
        };
        let r = delete_offsets(&ctx, &anyone(), 0, offsets("g", &[0]))
            .await
            .expect("delete");
        assert_eq!(r.error_code, ResponseError::GroupAuthorizationFailed.code());
        let r = delete_offsets(&ctx, &admin(), 0, offsets("g", &[0, 9]))
            .await
            .expect("delete");
        let r = round_trip(&r, 0);
        assert_eq!(r.error_code, 0);
        let codes: Vec<i16> = r.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(
            codes,
            vec![0, ResponseError::UnknownTopicOrPartition.code()]
        );
        let left: Vec<u32> = ctx
            .broker
            .fetch_offsets("g", None)
            .expect("fetch")
            .iter()
            .map(|o| o.partition)
            .collect();
        assert_eq!(left, vec![1]);
        let r = delete_offsets(&ctx, &admin(), 0, offsets("nobody", &[0]))
            .await
            .expect("delete");
        assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    }
}
