//! Administration over the Kafka protocol: topics, configurations, consumer-group offsets
//! and the cluster description. Requests that change something need an admin session when
//! the broker has an admin token (see `Ctx::may_admin`).

use super::{Ctx, Fatal, Principal};
use crate::frame::Frame;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use std::sync::Arc;

/// Runs an administration request; APIs not implemented get [`crate::conn`]'s treatment
/// (the connection closes).
pub(crate) async fn dispatch(
    _ctx: &Arc<Ctx>,
    _principal: &Principal,
    _header: &RequestHeader,
    key: ApiKey,
    _req: RequestKind,
) -> Result<Option<Frame>, Fatal> {
    Err(Fatal(format!("{key:?} is not implemented")))
}

/// The answer to a request at a version outside the implemented range of an API this
/// broker knows, shaped as that API's response with `UNSUPPORTED_VERSION`; `None` when the
/// connection must close instead.
pub(crate) fn unsupported(
    _header: &RequestHeader,
    _key: ApiKey,
    _req: &RequestKind,
) -> Option<Frame> {
    None
}
