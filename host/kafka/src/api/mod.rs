//! One handler per Kafka API, over the broker. The dispatcher decodes nothing itself: it
//! receives a decoded request and returns the encoded answer (or none, for `acks=0`).
//!
//! The data path (Produce, Fetch, ListOffsets, Metadata, ApiVersions, InitProducerId) is here; topic,
//! configuration, group and cluster administration are in [`admin`].

pub(crate) mod admin;
mod api_versions;
mod fetch;
mod init_producer_id;
mod list_offsets;
pub(crate) mod membership;
mod metadata;
mod produce;

use crate::config::KafkaConfig;
use crate::frame::{Frame, Splices};
use crate::sasl::Sasl;
use distlog_broker::Broker;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

pub(crate) use api_versions::unsupported_api_versions;

/// What every handler can see: the broker and the listener's settings.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub broker: Broker,
    pub config: KafkaConfig,
    /// This broker as Metadata announces it.
    pub node: Node,
    /// The cluster id Metadata and DescribeCluster report.
    pub cluster_id: StrBytes,
    /// SASL mechanisms and the admin credentials.
    pub sasl: Sasl,
    /// Whether admin requests need an admin session (an admin token is configured).
    pub admin_required: bool,
    /// Fetch response bytes read and not yet written, over all connections
    /// (`kafka.max_response_bytes_in_flight`).
    pub responses: std::sync::Arc<tokio::sync::Semaphore>,
    /// Consumer-group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).
    pub groups: membership::Membership,
}

/// A broker's address as clients are told it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: i32,
    pub host: StrBytes,
    pub port: i32,
}

/// Who the connection is, once SASL (if any) is done.
#[derive(Debug, Clone, Default)]
pub(crate) struct Principal {
    /// The authenticated user, if the client authenticated.
    pub user: Option<String>,
    /// Whether the user authenticated with the admin token.
    pub admin: bool,
    /// The client's address as Kafka shows it in group descriptions (`/IP`).
    pub host: String,
}

impl Ctx {
    /// Whether `p` may run admin requests (topic, configuration and group administration).
    pub(crate) fn may_admin(&self, p: &Principal) -> bool {
        !self.admin_required || p.admin
    }
}

/// A request the connection could not answer in its own shape: close the connection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Fatal(pub String);

/// Encodes `body` as the answer to `header` at `version`.
pub(crate) fn respond<R: Encodable + HeaderVersion>(
    header: &RequestHeader,
    version: i16,
    body: &R,
) -> Result<Option<Frame>, Fatal> {
    respond_spliced(header, version, body, Splices::default())
}

pub(crate) fn respond_spliced<R: Encodable + HeaderVersion>(
    header: &RequestHeader,
    version: i16,
    body: &R,
    splices: Splices,
) -> Result<Option<Frame>, Fatal> {
    Frame::encode(header.correlation_id, version, body, splices)
        .map(Some)
        .map_err(|e| Fatal(format!("cannot encode the response: {e}")))
}

/// A request in progress: resolves to its answer (`None`: no answer, for `acks=0`).
pub(crate) type Pending =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<Frame>, Fatal>> + Send>>;

/// Starts one decoded request (not a SASL one: the connection handles those itself). What
/// must happen in request order is done before this returns — a produce's appends — and the
/// rest (waiting for durability, long polls, administration) is the returned future, which
/// the connection runs alongside later requests.
pub(crate) async fn start(
    ctx: &std::sync::Arc<Ctx>,
    principal: &Principal,
    header: RequestHeader,
    key: ApiKey,
    req: RequestKind,
) -> Pending {
    let v = header.request_api_version;
    match req {
        RequestKind::Produce(r) => {
            let appended = produce::append(ctx, v, r).await;
            Box::pin(async move {
                match produce::finish(appended).await {
                    Some(resp) => respond(&header, v, &resp),
                    None => Ok(None),
                }
            })
        }
        other => {
            let (ctx, principal) = (ctx.clone(), principal.clone());
            Box::pin(async move { dispatch(&ctx, &principal, header, key, other).await })
        }
    }
}

/// Runs one decoded request that has no ordered part.
pub(crate) async fn dispatch(
    ctx: &std::sync::Arc<Ctx>,
    principal: &Principal,
    header: RequestHeader,
    key: ApiKey,
    req: RequestKind,
) -> Result<Option<Frame>, Fatal> {
    let v = header.request_api_version;
    match req {
        RequestKind::ApiVersions(r) => respond(&header, v, &api_versions::handle(ctx, v, r)),
        RequestKind::Metadata(r) => respond(&header, v, &metadata::handle(ctx, v, r)),
        RequestKind::Fetch(r) => {
            let (resp, splices) = fetch::handle(ctx, v, r).await;
            respond_spliced(&header, v, &resp, splices)
        }
        RequestKind::JoinGroup(r) => {
            let client = header.client_id.as_deref().unwrap_or_default().to_owned();
            let resp = ctx.groups.join(r, v, &client, &principal.host).await;
            respond(&header, v, &resp)
        }
        RequestKind::SyncGroup(r) => respond(&header, v, &ctx.groups.sync(r, v).await),
        RequestKind::Heartbeat(r) => respond(&header, v, &ctx.groups.heartbeat(r, v).await),
        RequestKind::LeaveGroup(r) => respond(&header, v, &ctx.groups.leave(r, v).await),
        RequestKind::InitProducerId(r) => {
            respond(&header, v, &init_producer_id::handle(ctx, v, r).await)
        }
        RequestKind::ListOffsets(r) => respond(&header, v, &list_offsets::handle(ctx, v, r).await),
        other => admin::dispatch(ctx, principal, &header, key, other).await,
    }
}

/// `StrBytes` of an owned string.
pub(crate) fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// Runs a blocking broker call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Fatal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fatal(format!("broker task failed: {e}")))
}
