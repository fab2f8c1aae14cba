//! CreateTopics, DeleteTopics and CreatePartitions.
//!
//! This broker keeps one copy of each partition and places every partition itself: a
//! replication factor other than -1 or 1 is `INVALID_REPLICATION_FACTOR`, manual replica
//! assignments are `INVALID_REQUEST` (CreateTopics) or `INVALID_REPLICA_ASSIGNMENT`
//! (CreatePartitions). Topic configurations are the broker's (see [`super::configs`]).

use super::configs::{self, Entry};
use super::{ADMIN_NEEDED, Ctx, Fatal, Principal, broker_error, refusal};
use crate::api::blocking;
use distlog_broker::names::validate_topic_name;
use distlog_broker::{Broker, BrokerError, TopicConfig};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The names given more than once in `names`.
fn repeated<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|n| !seen.insert(*n))
        .map(str::to_owned)
        .collect()
}

/// What creating one topic came to: an error, or the topic's partition count and entries.
type Created = Result<(u32, Vec<Entry>), (i16, Option<StrBytes>)>;

/// Creates (or, with `validate_only`, checks) one topic.
fn create_one(broker: &Broker, t: &CreatableTopic, validate_only: bool) -> Created {
    let api = ApiKey::CreateTopics;
    let name = t.name.0.as_str();
    if !t.assignments.is_empty() {
        return Err(refusal(
            api,
            ResponseError::InvalidRequest,
            "manual replica assignments are not supported: this broker places every partition",
        ));
    }
    let partitions = match t.num_partitions {
        -1 => 0,
        n if n > 0 => n.unsigned_abs(),
        n => {
            return Err(refusal(
                api,
                ResponseError::InvalidPartitions,
                format!("invalid partition count {n}: must be at least 1, or -1 for the default"),
            ));
        }
    };
    if !matches!(t.replication_factor, -1 | 1) {
        return Err(refusal(
            api,
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is not available: this broker keeps one copy of each \
                 partition (use 1, or -1 for the default)",
                t.replication_factor
            ),
        ));
    }
    let mut config = BTreeMap::new();
    let keys = t.configs.iter().map(|c| configs::broker_key(&c.name));
    if let Some(key) = repeated(keys).into_iter().next() {
        return Err(refusal(
            api,
            ResponseError::InvalidConfig,
            format!("configuration key {key:?} is given twice (compression.type is compression)"),
        ));
    }
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(refusal(
                api,
                ResponseError::InvalidConfig,
                format!("configuration {:?} has a null value", c.name.as_str()),
            ));
        };
        let (k, v) = configs::to_broker(&c.name, value);
        config.insert(k, v);
    }
    let described = |entries: &BTreeMap<String, String>, count| {
        let defaults = &broker.config().topic_defaults;
        Ok((count, configs::topic_entries(entries, &config, defaults)))
    };
    if validate_only {
        let checked = validate_topic_name(name)
            .and_then(|()| match broker.partition_count(name) {
                Ok(_) => Err(BrokerError::TopicExists(name.to_owned())),
                Err(BrokerError::TopicNotFound(_)) => Ok(()),
                Err(e) => Err(e),
            })
            .and_then(|()| {
                let c = broker.config();
                let count = if partitions == 0 {
                    c.default_partitions
                } else {
                    partitions
                };
                if count > c.max_partitions {
                    return Err(BrokerError::InvalidPartitionCount {
                        count,
                        max: c.max_partitions,
                    });
                }
                Ok((count, TopicConfig::resolve(&c.topic_defaults, &config)?))
            });
        return match checked {
            Ok((count, resolved)) => described(resolved.entries(), count),
            Err(e) => Err(broker_error(api, &e)),
        };
    }
    match broker.create_topic(name, partitions, config.clone()) {
        Ok(d) => {
            let count = u32::try_from(d.partitions.len()).unwrap_or(u32::MAX);
            described(&d.config, count)
        }
        Err(e) => Err(broker_error(api, &e)),
    }
}

/// CreateTopics: each topic created (or checked) on its own.
pub(super) async fn create(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    version: i16,
    req: CreateTopicsRequest,
) -> Result<CreateTopicsResponse, Fatal> {
    let api = ApiKey::CreateTopics;
    let allowed = ctx.may_admin(principal);
    let broker = ctx.broker.clone();
    let topics = blocking(move || {
        let twice = repeated(req.topics.iter().map(|t| t.name.0.as_str()));
        req.topics
            .iter()
            .map(|t| {
                let result = CreatableTopicResult::default().with_name(t.name.clone());
                let outcome = if !allowed {
                    Err(refusal(
                        api,
                        ResponseError::TopicAuthorizationFailed,
                        ADMIN_NEEDED,
                    ))
                } else if twice.contains(t.name.0.as_str()) {
                    Err(refusal(
                        api,
                        ResponseError::InvalidRequest,
                        format!("topic {:?} is named more than once", t.name.0.as_str()),
                    ))
                } else {
                    create_one(&broker, t, req.validate_only)
                };
                match outcome {
                    Ok((count, entries)) if version >= 5 => result
                        .with_error_message(None)
                        .with_num_partitions(i32::try_from(count).unwrap_or(i32::MAX))
                        .with_replication_factor(1)
                        .with_configs(Some(
                            entries
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(crate::api::s(e.name))
                                        .with_value(Some(crate::api::s(e.value)))
                                        .with_read_only(false)
                                        .with_config_source(e.source)
                                        .with_is_sensitive(false)
                                })
                                .collect(),
                        )),
                    Ok(_) => result.with_error_message(None),
                    Err((code, message)) => result
                        .with_error_code(code)
                        .with_error_message(message)
                        .with_configs(None),
                }
            })
            .collect()
    })
    .await?;
    Ok(CreateTopicsResponse::default().with_topics(topics))
}

/// DeleteTopics: by name (v1-6); a topic id (v6) names no topic here.
pub(super) async fn delete(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    version: i16,
    req: DeleteTopicsRequest,
) -> Result<DeleteTopicsResponse, Fatal> {
    let api = ApiKey::DeleteTopics;
    let allowed = ctx.may_admin(principal);
    let broker = ctx.broker.clone();
    // (name, topic id) of each topic, in request order.
    let wanted: Vec<_> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Default::default()))
            .collect()
    };
    let responses = blocking(move || {
        wanted
            .into_iter()
            .map(|(name, id)| {
                let result = DeletableTopicResult::default()
                    .with_name(name.clone())
                    .with_topic_id(id)
                    .with_error_message(None);
                let (code, message) = match name {
                    _ if !allowed => {
                        refusal(api, ResponseError::TopicAuthorizationFailed, ADMIN_NEEDED)
                    }
                    None => refusal(
                        api,
                        ResponseError::UnknownTopicId,
                        "this broker has no topic ids: delete topics by name",
                    ),
                    Some(n) => match broker.delete_topic(&n.0) {
                        Ok(()) => (0, None),
                        Err(e) => broker_error(api, &e),
                    },
                };
                let message = if version >= 5 { message } else { None };
                result.with_error_code(code).with_error_message(message)
            })
            .collect()
    })
    .await?;
    Ok(DeleteTopicsResponse::default().with_responses(responses))
}

/// CreatePartitions: grows each topic to its new total count.
pub(super) async fn create_partitions(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    _version: i16,
    req: CreatePartitionsRequest,
) -> Result<CreatePartitionsResponse, Fatal> {
    let api = ApiKey::CreatePartitions;
    let allowed = ctx.may_admin(principal);
    let broker = ctx.broker.clone();
    let results = blocking(move || {
        let twice = repeated(req.topics.iter().map(|t| t.name.0.as_str()));
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let (code, message) = if !allowed {
                    refusal(api, ResponseError::TopicAuthorizationFailed, ADMIN_NEEDED)
                } else if twice.contains(&name) {
                    refusal(
                        api,
                        ResponseError::InvalidRequest,
                        format!("topic {name:?} is named more than once"),
                    )
                } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                    refusal(
                        api,
                        ResponseError::InvalidReplicaAssignment,
                        "manual replica assignments are not supported: this broker places \
                         every partition",
                    )
                } else {
                    grow(&broker, &name, t.count, req.validate_only)
                };
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect()
    })
    .await?;
    Ok(CreatePartitionsResponse::default().with_results(results))
}

/// Grows one topic to `count` partitions.
fn grow(broker: &Broker, name: &str, count: i32, validate_only: bool) -> (i16, Option<StrBytes>) {
    let api = ApiKey::CreatePartitions;
    let current = match broker.partition_count(name) {
        Ok(c) => c,
        Err(e) => return broker_error(api, &e),
    };
    let requested = u32::try_from(count).unwrap_or(0);
    if requested <= current {
        let why = if requested == current {
            format!("topic {name:?} already has {current} partitions")
        } else {
            format!(
                "topic {name:?} has {current} partitions, more than the {count} asked for: a \
                 partition count can only grow"
            )
        };
        return refusal(api, ResponseError::InvalidPartitions, why);
    }
    match broker.add_partitions(name, requested, validate_only) {
        Ok(_) => (0, None),
        Err(e) => broker_error(api, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{admin, anyone, ctx, round_trip, versions};
    use super::*;
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::{BrokerId, TopicName};

    fn topic(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )
    }

    fn s(v: &str) -> StrBytes {
        crate::api::s(v)
    }

    fn code(e: ResponseError) -> i16 {
        e.code()
    }

    #[tokio::test]
    async fn create_topics_checks_each_topic_on_its_own() {
        let ctx = ctx(true);
        let assigned = topic("assigned", -1, -1, &[]).with_assignments(vec![
            CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(7)]),
        ]);
        let req = CreateTopicsRequest::default().with_topics(vec![
            topic(
                "plain",
                -1,
                -1,
                &[("compression.type", "producer"), ("retention.ms", "1000")],
            ),
            topic("sized", 5, 1, &[("cleanup.policy", "compact")]),
            topic("copies", 1, 3, &[]),
            assigned,
            topic("zero", 0, 1, &[]),
            topic("unknown-key", 1, 1, &[("no.such.key", "1")]),
            topic("bad-value", 1, 1, &[("retention.ms", "soon")]),
            topic("gzip", 1, 1, &[("compression.type", "gzip")]),
            topic(
                "twice-key",
                1,
                1,
                &[("compression.type", "lz4"), ("compression", "none")],
            ),
            topic("dup", 1, 1, &[]),
            topic("dup", 1, 1, &[]),
            topic("bad/name", 1, 1, &[]),
        ]);
        let [min, max] = versions(ApiKey::CreateTopics);
        for v in [min, max] {
            round_trip(&req, v);
        }
        let resp = create(&ctx, &admin(), max, req.clone())
            .await
            .expect("create");
        let by_name = |n: &str| -> Vec<&CreatableTopicResult> {
            resp.topics
                .iter()
                .filter(|t| t.name.0.as_str() == n)
                .collect()
        };
        let plain = by_name("plain")[0];
        assert_eq!(plain.error_code, 0, "{plain:?}");
        assert_eq!((plain.num_partitions, plain.replication_factor), (3, 1));
        let configs = plain.configs.as_ref().expect("configs");
        let entry = |n: &str| {
            configs
                .iter()
                .find(|c| c.name.as_str() == n)
                .unwrap_or_else(|| panic!("{n} in {configs:?}"))
        };
        assert_eq!(entry("retention.ms").value.as_deref(), Some("1000"));
        assert_eq!(
            entry("retention.ms").config_source,
            configs::DYNAMIC_TOPIC_CONFIG
        );
        assert_eq!(entry("compression").value.as_deref(), Some("none"));
        assert_eq!(
            entry("compression.type").value.as_deref(),
            Some("uncompressed")
        );
        assert_eq!(
            entry("segment.ms").config_source,
            configs::STATIC_BROKER_CONFIG
        );
        assert_eq!(entry("flush.policy").config_source, configs::DEFAULT_CONFIG);
        assert_eq!(ctx.broker.partition_count("plain").expect("count"), 3);
        assert_eq!(
            ctx.broker.topic_overrides("plain").expect("overrides"),
            BTreeMap::from([
                ("compression".to_owned(), "none".to_owned()),
                ("retention.ms".to_owned(), "1000".to_owned())
            ])
        );
        assert_eq!(by_name("sized")[0].num_partitions, 5);
        assert_eq!(ctx.broker.partition_count("sized").expect("count"), 5);
        let copies = by_name("copies")[0];
        assert_eq!(
            copies.error_code,
            code(ResponseError::InvalidReplicationFactor)
        );
        assert!(
            copies
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains("one copy")),
            "{copies:?}"
        );
        for (name, want) in [
            ("assigned", ResponseError::InvalidRequest),
            ("zero", ResponseError::InvalidPartitions),
            ("unknown-key", ResponseError::InvalidConfig),
            ("bad-value", ResponseError::InvalidConfig),
            ("gzip", ResponseError::InvalidConfig),
            ("twice-key", ResponseError::InvalidConfig),
            ("bad/name", ResponseError::InvalidTopicException),
        ] {
            let t = by_name(name)[0];
            assert_eq!(t.error_code, code(want), "{name}: {t:?}");
            assert!(t.error_message.is_some(), "{name}");
            assert!(
                ctx.broker.partition_count(name).is_err(),
                "{name} not created"
            );
        }
        let unknown = by_name("unknown-key")[0]
            .error_message
            .as_deref()
            .unwrap_or_default();
        assert!(
            unknown.contains("no.such.key"),
            "the broker's message: {unknown}"
        );
        assert!(
            by_name("dup")
                .iter()
                .all(|t| t.error_code == code(ResponseError::InvalidRequest))
        );
        // Encodes at every supported version, and again: the topics exist now.
        for v in [min, max] {
            let again = create(&ctx, &admin(), v, req.clone())
                .await
                .expect("create");
            let decoded = round_trip(&again, v);
            let plain = decoded.topics.iter().find(|t| t.name.0.as_str() == "plain");
            assert_eq!(
                plain.map(|t| t.error_code),
                Some(code(ResponseError::TopicAlreadyExists))
            );
        }
    }

    #[tokio::test]
    async fn create_topics_validate_only_and_authorization() {
        let ctx = ctx(true);
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic("t", 4, -1, &[("retention.bytes", "10")])])
            .with_validate_only(true);
        let resp = create(&ctx, &admin(), 5, req.clone())
            .await
            .expect("create");
        let t = &resp.topics[0];
        assert_eq!((t.error_code, t.num_partitions), (0, 4), "{t:?}");
        assert!(t.configs.as_ref().is_some_and(|c| {
            c.iter()
                .any(|c| c.name.as_str() == "retention.bytes" && c.value.as_deref() == Some("10"))
        }));
        assert!(
            ctx.broker.partition_count("t").is_err(),
            "validate_only creates nothing"
        );
        let too_many = CreateTopicsRequest::default()
            .with_topics(vec![topic("t", 65, -1, &[])])
            .with_validate_only(true);
        let resp = create(&ctx, &admin(), 5, too_many).await.expect("create");
        assert_eq!(
            resp.topics[0].error_code,
            code(ResponseError::InvalidPartitions)
        );

        let resp = create(&ctx, &anyone(), 5, req.with_validate_only(false))
            .await
            .expect("create");
        assert_eq!(
            resp.topics[0].error_code,
            code(ResponseError::TopicAuthorizationFailed)
        );
        assert!(
            resp.topics[0]
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains("admin")),
            "{resp:?}"
        );
        assert!(ctx.broker.partition_count("t").is_err());
    }

    #[tokio::test]
    async fn delete_topics_by_name_and_not_by_id() {
        let ctx = ctx(true);
        for t in ["a", "b"] {
            ctx.broker
                .create_topic(t, 1, BTreeMap::new())
                .expect("create");
        }
        let by_name = DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(s("a")), TopicName(s("missing"))]);
        let resp = delete(&ctx, &anyone(), 1, by_name.clone())
            .await
            .expect("delete");
        assert!(
            resp.responses
                .iter()
                .all(|r| r.error_code == code(ResponseError::TopicAuthorizationFailed))
        );
        assert!(ctx.broker.partition_count("a").is_ok());
        let resp = delete(&ctx, &admin(), 1, by_name.clone())
            .await
            .expect("delete");
        round_trip(&resp, 1);
        let codes: Vec<i16> = resp.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![0, code(ResponseError::UnknownTopicOrPartition)]);
        assert!(
            resp.responses[1].error_message.is_none(),
            "no message before v5"
        );
        assert!(ctx.broker.partition_count("a").is_err());

        let v6 = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(s("b")))),
            DeleteTopicState::default().with_name(None),
        ]);
        round_trip(&v6, 6);
        let resp = delete(&ctx, &admin(), 6, v6).await.expect("delete");
        let back = round_trip(&resp, 6);
        let codes: Vec<i16> = back.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![0, code(ResponseError::UnknownTopicId)]);
        assert!(back.responses[1].error_message.is_some());
        assert!(ctx.broker.partition_count("b").is_err());
    }

    #[tokio::test]
    async fn create_partitions_only_grows() {
        let ctx = ctx(true);
        ctx.broker
            .create_topic("t", 3, BTreeMap::new())
            .expect("create");
        let grow_to = |count: i32| {
            CreatePartitionsTopic::default()
                .with_name(TopicName(s("t")))
                .with_count(count)
        };
        let req = |topics, validate_only| {
            CreatePartitionsRequest::default()
                .with_topics(topics)
                .with_validate_only(validate_only)
        };
        let codes = |r: &CreatePartitionsResponse| -> Vec<i16> {
            r.results.iter().map(|t| t.error_code).collect()
        };
        let [min, max] = versions(ApiKey::CreatePartitions);
        let checked = create_partitions(&ctx, &admin(), min, req(vec![grow_to(5)], true))
            .await
            .expect("validate");
        assert_eq!(codes(&checked), vec![0]);
        assert_eq!(ctx.broker.partition_count("t").expect("count"), 3);
        let refused = create_partitions(&ctx, &anyone(), max, req(vec![grow_to(5)], false))
            .await
            .expect("refused");
        assert_eq!(
            codes(&refused),
            vec![code(ResponseError::TopicAuthorizationFailed)]
        );
        let grown = create_partitions(&ctx, &admin(), max, req(vec![grow_to(5)], false))
            .await
            .expect("grow");
        round_trip(&grown, max);
        assert_eq!(codes(&grown), vec![0]);
        assert_eq!(ctx.broker.partition_count("t").expect("count"), 5);
        for (count, want) in [
            (5, ResponseError::InvalidPartitions),
            (2, ResponseError::InvalidPartitions),
            (65, ResponseError::InvalidPartitions),
        ] {
            let r = create_partitions(&ctx, &admin(), max, req(vec![grow_to(count)], false))
                .await
                .expect("refused");
            assert_eq!(codes(&r), vec![code(want)], "{count}");
            assert!(r.results[0].error_message.is_some(), "{count}");
        }
        let assigned = grow_to(6).with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(7)]),
        ]));
        let missing = CreatePartitionsTopic::default()
            .with_name(TopicName(s("missing")))
            .with_count(2);
        let r = create_partitions(&ctx, &admin(), min, req(vec![assigned, missing], false))
            .await
            .expect("refused");
        round_trip(&r, min);
        assert_eq!(
            codes(&r),
            vec![
                code(ResponseError::InvalidReplicaAssignment),
                code(ResponseError::UnknownTopicOrPartition)
            ]
        );
        assert_eq!(ctx.broker.partition_count("t").expect("count"), 5);
    }
}
