//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.
//! A timestamp after every record answers offset -1 and timestamp -1, as Kafka does.

use super::{Ctx, blocking};
use distlog_broker::OffsetQuery;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(super) async fn handle(
    ctx: &Arc<Ctx>,
    _version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let broker = ctx.broker.clone();
    // A timestamp lookup reads the time index and a segment: off the async workers.
    let topics = blocking(move || {
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let r = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let query = match p.timestamp {
                            LATEST => OffsetQuery::Latest,
                            EARLIEST => OffsetQuery::Earliest,
                            ts if ts >= 0 => OffsetQuery::Timestamp(ts),
                            _ => {
                                let code = ResponseError::UnsupportedVersion.code();
                                crate::metrics::error(ApiKey::ListOffsets, code);
                                return r.with_error_code(code);
                            }
                        };
                        let Ok(index) = u32::try_from(p.partition_index) else {
                            return r
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        match broker.list_offset(&name, index, query) {
                            Ok((offset, found)) => match (query, found) {
                                (OffsetQuery::Timestamp(_), None) => r,
                                (_, ts) => r
                                    .with_offset(offset as i64)
                                    .with_timestamp(ts.unwrap_or(-1)),
                            },
                            Err(e) => {
                                let code = crate::error::code(&e).code();
                                crate::metrics::error(ApiKey::ListOffsets, code);
                                r.with_error_code(code)
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    ListOffsetsResponse::default().with_topics(topics)
}
