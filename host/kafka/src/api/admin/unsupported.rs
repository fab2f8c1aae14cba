//! The answer to an API this broker does not implement, or to a version of one it does that
//! is outside the advertised range: that API's own response, encoded at the request's
//! version, with `UNSUPPORTED_VERSION` as its top-level error code and/or in every entry
//! (topic, partition, group, ACL) the request named. Clients then report "unsupported"
//! instead of seeing their connection close. `None` (the connection closes) only where no
//! response makes sense: a produce with `acks=0`, whose client reads no answer, and APIs
//! without a shape worth building (inter-broker and KRaft controller APIs).

use crate::api::{respond, s};
use crate::frame::Frame;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The answer to `req` (decoded at `header`'s version) as unsupported; see the module
/// documentation.
pub(super) fn answer(header: &RequestHeader, key: ApiKey, req: &RequestKind) -> Option<Frame> {
    let v = header.request_api_version;
    let code = || {
        let c = ResponseError::UnsupportedVersion.code();
        crate::metrics::error(key, c);
        c
    };
    let message = || {
        Some(s(format!(
            "{key:?} v{v} is not supported by this broker (see docs/KAFKA.md)"
        )))
    };
    macro_rules! answer {
        ($resp:expr) => {
            respond(header, v, &$resp).ok().flatten()
        };
    }
    use RequestKind as R;
    match req {
        R::Produce(r) if r.acks == 0 => None,
        R::Produce(r) => answer!(
            ProduceResponse::default().with_responses(
                r.topic_data
                    .iter()
                    .map(|t| produce_response::TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| produce_response::PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code())
                                    .with_base_offset(-1))
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::Fetch(r) if v >= 7 => {
            let _ = r;
            answer!(FetchResponse::default().with_error_code(code()))
        }
        R::ListOffsets(r) => answer!(
            ListOffsetsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(
                                    |p| list_offsets_response::ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code())
                                        .with_offset(-1)
                                        .with_timestamp(-1)
                                )
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::Metadata(r) if v >= 13 => {
            let _ = r;
            answer!(MetadataResponse::default().with_error_code(code()))
        }
        R::Metadata(r) => answer!(
            MetadataResponse::default().with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| metadata_response::MetadataResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_error_code(code()))
                    .collect()
            )
        ),
        R::OffsetCommit(r) => answer!(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(
                                    |p| offset_commit_response::OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code())
                                )
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::OffsetFetch(r) if v >= 8 => answer!(
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code()))
                    .collect()
            )
        ),
        R::OffsetFetch(_) if v >= 2 => answer!(OffsetFetchResponse::default().with_error_code(code())),
        R::FindCoordinator(r) if v >= 4 => answer!(
            FindCoordinatorResponse::default().with_coordinators(
                r.coordinator_keys
                    .iter()
                    .map(|k| find_coordinator_response::Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code())
                        .with_error_message(message()))
                    .collect()
            )
        ),
        R::FindCoordinator(_) => answer!(
            FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code())
                .with_error_message(if v >= 1 { message() } else { None })
        ),
        R::DescribeGroups(r) => answer!(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| describe_groups_response::DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(code())
                        .with_error_message(if v >= 6 { message() } else { None }))
                    .collect()
            )
        ),
        R::ListGroups(_) => answer!(ListGroupsResponse::default().with_error_code(code())),
        R::DescribeCluster(_) => answer!(
            DescribeClusterResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        R::SaslHandshake(_) => answer!(SaslHandshakeResponse::default().with_error_code(code())),
        R::SaslAuthenticate(_) => answer!(
            SaslAuthenticateResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        // Group membership.
        R::JoinGroup(_) => answer!(
            JoinGroupResponse::default()
                .with_error_code(code())
                .with_generation_id(-1)
                .with_protocol_name(Some(StrBytes::default()))
        ),
        R::SyncGroup(_) => answer!(SyncGroupResponse::default().with_error_code(code())),
        R::Heartbeat(_) => answer!(HeartbeatResponse::default().with_error_code(code())),
        R::LeaveGroup(_) => answer!(LeaveGroupResponse::default().with_error_code(code())),
        R::ConsumerGroupHeartbeat(_) => answer!(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        R::ConsumerGroupDescribe(r) => answer!(
            ConsumerGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .iter()
                    .map(|g| consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(code())
                        .with_error_message(message()))
                    .collect()
            )
        ),
        // Producer ids and transactions.
        R::InitProducerId(_) => answer!(
            InitProducerIdResponse::default()
                .with_error_code(code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        ),
        R::AddPartitionsToTxn(r) if v <= 3 => answer!(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
                r.v3_and_below_topics
                    .iter()
                    .map(|t| add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(code()))
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::AddPartitionsToTxn(_) => {
            answer!(AddPartitionsToTxnResponse::default().with_error_code(code()))
        }
        R::AddOffsetsToTxn(_) => answer!(AddOffsetsToTxnResponse::default().with_error_code(code())),
        R::EndTxn(_) => answer!(EndTxnResponse::default().with_error_code(code())),
        R::TxnOffsetCommit(r) => answer!(
            TxnOffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code()))
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::DescribeTransactions(r) => answer!(
            DescribeTransactionsResponse::default().with_transaction_states(
                r.transactional_ids
                    .iter()
                    .map(|id| describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id.clone())
                        .with_error_code(code()))
                    .collect()
            )
        ),
        R::ListTransactions(_) => answer!(ListTransactionsResponse::default().with_error_code(code())),
        R::DescribeProducers(r) => answer!(
            DescribeProducersResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| describe_producers_response::TopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| describe_producers_response::PartitionResponse::default()
                                    .with_partition_index(*p)
                                    .with_error_code(code())
                                    .with_error_message(message()))
                                .collect()
                        ))
                    .collect()
            )
        ),
        // Records and log directories.
        R::DeleteRecords(r) => answer!(
            DeleteRecordsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| delete_records_response::DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(code()))
                                .collect()
                        ))
                    .collect()
            )
        ),
        R::DescribeLogDirs(_) if v >= 3 => {
            answer!(DescribeLogDirsResponse::default().with_error_code(code()))
        }
        // ACLs, quotas, credentials.
        R::DescribeAcls(_) => answer!(
            DescribeAclsResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        R::CreateAcls(r) => answer!(
            CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| create_acls_response::AclCreationResult::default()
                        .with_error_code(code())
                        .with_error_message(message()))
                    .collect()
            )
        ),
        R::DeleteAcls(r) => answer!(
            DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| delete_acls_response::DeleteAclsFilterResult::default()
                        .with_error_code(code())
                        .with_error_message(message()))
                    .collect()
            )
        ),
        R::DescribeClientQuotas(_) => answer!(
            DescribeClientQuotasResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        R::DescribeUserScramCredentials(_) => answer!(
            DescribeUserScramCredentialsResponse::default()
                .with_error_code(code())
                .with_error_message(message())
        ),
        // Client telemetry (KIP-714).
        R::GetTelemetrySubscriptions(_) => {
            answer!(GetTelemetrySubscriptionsResponse::default().with_error_code(code()))
        }
        R::PushTelemetry(_) => answer!(PushTelemetryResponse::default().with_error_code(code())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::decode_frame;
    use super::*;

    const UNSUPPORTED: i16 = 35;

    fn header(key: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
    }

    /// The answer to `req`, decoded; panics when there is none.
    fn answered(key: ApiKey, version: i16, req: &RequestKind) -> ResponseKind {
        let frame = answer(&header(key, version), key, req)
            .unwrap_or_else(|| panic!("{key:?} v{version}: no answer"));
        decode_frame(&frame, key, version)
    }

    /// Whether the decoded response carries UNSUPPORTED_VERSION somewhere (top-level or in
    /// an entry): every error field's Debug form is `..._code: 35`.
    fn refuses(resp: &ResponseKind) -> bool {
        format!("{resp:?}").contains(&format!("error_code: {UNSUPPORTED}"))
    }

    /// A request of `key` with no entries.
    fn empty(key: ApiKey) -> RequestKind {
        use RequestKind as R;
        let topic = || TopicName(s("t"));
        match key {
            ApiKey::Produce => R::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
                vec![produce_request::TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![Default::default()])],
            )),
            ApiKey::Fetch => R::Fetch(Default::default()),
            ApiKey::ListOffsets => R::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![Default::default()]),
            ])),
            ApiKey::Metadata => R::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
            ]))),
            ApiKey::OffsetCommit => R::OffsetCommit(OffsetCommitRequest::default().with_topics(
                vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![Default::default()])],
            )),
            ApiKey::OffsetFetch => R::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s("g"))),
                ])),
            ApiKey::FindCoordinator => R::FindCoordinator(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
            ),
            ApiKey::DescribeGroups => R::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            ),
            ApiKey::ListGroups => R::ListGroups(Default::default()),
            ApiKey::SaslHandshake => R::SaslHandshake(Default::default()),
            ApiKey::DescribeCluster => R::DescribeCluster(Default::default()),
            ApiKey::InitProducerId => R::InitProducerId(Default::default()),
            other => panic!("no empty request for {other:?}"),
        }
    }

    /// Guards the version table: every version of an implemented API that kafka-protocol
    /// decodes and the broker does not advertise is answered in its own shape.
    #[test]
    fn every_unadvertised_version_of_an_implemented_api_is_answered() {
        for &(key, min, max) in crate::versions::SUPPORTED {
            if key == ApiKey::ApiVersions {
                continue; // answered by the connection (KIP-511)
            }
            let valid = key.valid_versions();
            for v in (valid.min..=valid.max).filter(|v| !(min..=max).contains(v)) {
                let resp = answered(key, v, &empty(key));
                assert!(refuses(&resp), "{key:?} v{v}: {resp:?}");
            }
        }
    }

    #[test]
    fn entries_each_get_the_error() {
        let topic = || TopicName(s("t"));
        let produce = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_topic_id(Default::default())
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_index(3),
                ]),
        ]);
        match answered(ApiKey::Produce, 13, &RequestKind::Produce(produce.clone())) {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                assert_eq!((p.index, p.error_code), (3, UNSUPPORTED));
            }
            other => panic!("{other:?}"),
        }
        let acks0 = RequestKind::Produce(produce.with_acks(0));
        assert!(answer(&header(ApiKey::Produce, 13), ApiKey::Produce, &acks0).is_none());

        let txn = AddPartitionsToTxnRequest::default().with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(topic())
                .with_partitions(vec![0, 1]),
        ]);
        match answered(
            ApiKey::AddPartitionsToTxn,
            3,
            &RequestKind::AddPartitionsToTxn(txn),
        ) {
            ResponseKind::AddPartitionsToTxn(r) => {
                let codes: Vec<i16> = r.results_by_topic_v3_and_below[0]
                    .results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
                    .collect();
                assert_eq!(codes, vec![UNSUPPORTED; 2]);
            }
            other => panic!("{other:?}"),
        }
        let acls = CreateAclsRequest::default().with_creations(vec![Default::default(); 2]);
        match answered(ApiKey::CreateAcls, 1, &RequestKind::CreateAcls(acls)) {
            ResponseKind::CreateAcls(r) => {
                assert_eq!(r.results.len(), 2);
                assert!(
                    r.results
                        .iter()
                        .all(|a| a.error_code == UNSUPPORTED && a.error_message.is_some())
                );
            }
            other => panic!("{other:?}"),
        }
        let metadata = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
        ]));
        match answered(ApiKey::Metadata, 0, &RequestKind::Metadata(metadata)) {
            ResponseKind::Metadata(r) => assert_eq!(r.topics[0].error_code, UNSUPPORTED),
            other => panic!("{other:?}"),
        }
    }

    /// The APIs this broker does not implement (group membership, transactions, ACLs, ...)
    /// are answered with UNSUPPORTED_VERSION at their oldest and newest versions.
    #[test]
    fn unimplemented_apis_are_refused_in_their_own_shape() {
        use RequestKind as R;
        let topic = || TopicName(s("t"));
        let cases: Vec<(ApiKey, RequestKind)> = vec![
            (ApiKey::JoinGroup, R::JoinGroup(Default::default())),
            (ApiKey::SyncGroup, R::SyncGroup(Default::default())),
            (ApiKey::Heartbeat, R::Heartbeat(Default::default())),
            (ApiKey::LeaveGroup, R::LeaveGroup(Default::default())),
            (
                ApiKey::AddPartitionsToTxn,
                R::AddPartitionsToTxn(
                    AddPartitionsToTxnRequest::default().with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![0]),
                    ]),
                ),
            ),
            (
                ApiKey::AddOffsetsToTxn,
                R::AddOffsetsToTxn(Default::default()),
            ),
            (ApiKey::EndTxn, R::EndTxn(Default::default())),
            (
                ApiKey::TxnOffsetCommit,
                R::TxnOffsetCommit(TxnOffsetCommitRequest::default().with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![Default::default()]),
                ])),
            ),
            (
                ApiKey::DeleteRecords,
                R::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![Default::default()]),
                ])),
            ),
            (ApiKey::DescribeAcls, R::DescribeAcls(Default::default())),
            (
                ApiKey::DeleteAcls,
                R::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![Default::default()])),
            ),
            (
                ApiKey::ConsumerGroupHeartbeat,
                R::ConsumerGroupHeartbeat(Default::default()),
            ),
            (
                ApiKey::ConsumerGroupDescribe,
                R::ConsumerGroupDescribe(
                    ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]),
                ),
            ),
            (
                ApiKey::DescribeProducers,
                R::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                    describe_producers_request::TopicRequest::default()
                        .with_name(topic())
                        .with_partition_indexes(vec![0]),
                ])),
            ),
            (
                ApiKey::DescribeTransactions,
                R::DescribeTransactions(
                    DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![TransactionalId(s("tx"))]),
                ),
            ),
            (
                ApiKey::ListTransactions,
                R::ListTransactions(Default::default()),
            ),
            (
                ApiKey::DescribeClientQuotas,
                R::DescribeClientQuotas(Default::default()),
            ),
            (
                ApiKey::DescribeUserScramCredentials,
                R::DescribeUserScramCredentials(Default::default()),
            ),
            (
                ApiKey::GetTelemetrySubscriptions,
                R::GetTelemetrySubscriptions(Default::default()),
            ),
            (ApiKey::PushTelemetry, R::PushTelemetry(Default::default())),
        ];
        for (key, req) in cases {
            let valid = key.valid_versions();
            for v in [valid.min, valid.max] {
                let resp = answered(key, v, &req);
                assert!(refuses(&resp), "{key:?} v{v}: {resp:?}");
            }
        }
        let dirs = RequestKind::DescribeLogDirs(Default::default());
        assert!(refuses(&answered(ApiKey::DescribeLogDirs, 3, &dirs)));
    }
}
