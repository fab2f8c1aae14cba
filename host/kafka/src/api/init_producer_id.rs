//! InitProducerId for idempotent producers: a fresh producer id with epoch 0, every time (as
//! Kafka does for a request without a transactional id, including the KIP-360 epoch-bump
//! form that names the producer's current id). Sequences are then checked per partition on
//! produce. Transactional ids are refused until transactions exist.

use super::{Ctx, blocking};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub(super) async fn handle(
    ctx: &Arc<Ctx>,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refuse = |code: ResponseError| {
        crate::metrics::error(ApiKey::InitProducerId, code.code());
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        // Not retriable: the client reports that the broker does not support transactions.
        return refuse(ResponseError::UnsupportedVersion);
    }
    let broker = ctx.broker.clone();
    match blocking(move || broker.new_producer_id()).await {
        Ok(Ok(id)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Ok(Err(e)) => refuse(crate::error::code(&e)),
        Err(_) => refuse(ResponseError::UnknownServerError),
    }
}
