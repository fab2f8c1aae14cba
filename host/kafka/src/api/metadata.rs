//! Metadata: this broker, and the topics asked for (all when the list is null), each
//! partition led by this broker. Topics are never created by a Metadata request.

use super::{Ctx, s};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

/// Partition leader epoch announced (single broker: epoch 0).
const LEADER_EPOCH: i32 = 0;

pub(super) fn handle(ctx: &Ctx, _version: i16, req: MetadataRequest) -> MetadataResponse {
    let names: Vec<(Option<TopicName>, String)> = match req.topics {
        None => ctx
            .broker
            .list_topics()
            .into_iter()
            .map(|t| (None, t.name))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| match t.name {
                Some(n) => {
                    let name = n.0.to_string();
                    (Some(n), name)
                }
                None => (None, String::new()),
            })
            .collect(),
    };
    let node = BrokerId(ctx.node.id);
    let topics = names
        .into_iter()
        .map(|(given, name)| {
            let topic = MetadataResponseTopic::default()
                .with_name(Some(given.unwrap_or_else(|| TopicName(s(name.clone())))));
            if name.is_empty() {
                // A lookup by topic id: this broker has no topic ids.
                return topic.with_error_code(ResponseError::UnknownTopicId.code());
            }
            match ctx.broker.partition_count(&name) {
                Ok(count) => topic.with_partitions(
                    (0..count)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p as i32)
                                .with_leader_id(node)
                                .with_leader_epoch(LEADER_EPOCH)
                                .with_replica_nodes(vec![node])
                                .with_isr_nodes(vec![node])
                        })
                        .collect(),
                ),
                Err(e) => topic.with_error_code(crate::error::code(&e).code()),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(ctx.node.host.clone())
                .with_port(ctx.node.port),
        ])
        .with_cluster_id(Some(ctx.cluster_id.clone()))
        .with_controller_id(node)
        .with_topics(topics)
}
