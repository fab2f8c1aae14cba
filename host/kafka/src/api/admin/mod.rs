//! Administration over the Kafka protocol: topics, configurations, consumer-group offsets
//! and the cluster description. Requests that change something need an admin session when
//! the broker has an admin token (see `Ctx::may_admin`).
//!
//! One file per family: [`topics`] (CreateTopics, DeleteTopics, CreatePartitions),
//! [`configs`] (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), [`groups`]
//! (OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete),
//! [`cluster`] (DescribeCluster, FindCoordinator) and [`unsupported`] (the answer, in each
//! API's own shape, to an API or version this broker does not implement).
//!
//! Every handler answers each entry of a request (topic, resource, group, partition) on its
//! own: one bad entry gets its error code and the others are carried out. Broker calls block
//! (fsyncs), so they run on the blocking pool.

mod cluster;
mod configs;
mod groups;
mod topics;
mod unsupported;

use super::{Ctx, Fatal, Principal, respond};
use crate::frame::Frame;
use distlog_broker::BrokerError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// Runs an administration request. An API this broker does not implement gets its own
/// response shape with `UNSUPPORTED_VERSION` ([`unsupported`]); only one without a sensible
/// response closes the connection.
pub(crate) async fn dispatch(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    header: &RequestHeader,
    key: ApiKey,
    req: RequestKind,
) -> Result<Option<Frame>, Fatal> {
    let v = header.request_api_version;
    match req {
        RequestKind::CreateTopics(r) => {
            respond(header, v, &topics::create(ctx, principal, v, r).await?)
        }
        RequestKind::DeleteTopics(r) => {
            respond(header, v, &topics::delete(ctx, principal, v, r).await?)
        }
        RequestKind::CreatePartitions(r) => respond(
            header,
            v,
            &topics::create_partitions(ctx, principal, v, r).await?,
        ),
        RequestKind::DescribeConfigs(r) => respond(header, v, &configs::describe(ctx, v, r)),
        RequestKind::AlterConfigs(r) => {
            respond(header, v, &configs::alter(ctx, principal, v, r).await?)
        }
        RequestKind::IncrementalAlterConfigs(r) => respond(
            header,
            v,
            &configs::incremental_alter(ctx, principal, v, r).await?,
        ),
        RequestKind::DescribeCluster(r) => {
            respond(header, v, &cluster::describe(ctx, principal, v, r))
        }
        RequestKind::FindCoordinator(r) => {
            respond(header, v, &cluster::find_coordinator(ctx, v, r))
        }
        RequestKind::OffsetCommit(r) => respond(header, v, &groups::commit(ctx, v, r).await?),
        RequestKind::OffsetFetch(r) => respond(header, v, &groups::fetch(ctx, v, r)),
        RequestKind::ListGroups(r) => respond(header, v, &groups::list(ctx, v, r)),
        RequestKind::DescribeGroups(r) => {
            respond(header, v, &groups::describe(ctx, principal, v, r))
        }
        RequestKind::DeleteGroups(r) => {
            respond(header, v, &groups::delete(ctx, principal, v, r).await?)
        }
        RequestKind::OffsetDelete(r) => respond(
            header,
            v,
            &groups::delete_offsets(ctx, principal, v, r).await?,
        ),
        other => match unsupported::answer(header, key, &other) {
            Some(frame) => Ok(Some(frame)),
            None => Err(Fatal(format!("{key:?} v{v} is not implemented"))),
        },
    }
}

/// The answer to a request at a version outside the implemented range of an API this
/// broker knows, or to an API it does not implement, shaped as that API's response with
/// `UNSUPPORTED_VERSION`; `None` when the connection must close instead.
pub(crate) fn unsupported(header: &RequestHeader, key: ApiKey, req: &RequestKind) -> Option<Frame> {
    unsupported::answer(header, key, req)
}

/// What a refused change says: who may make it.
const ADMIN_NEEDED: &str = "this request changes the broker: it needs a SASL session \
                            authenticated as the admin user (kafka.admin_user, with the \
                            broker's admin token as password)";

/// `code` as an error of `api`, counted in the error metric.
fn fail(api: ApiKey, code: ResponseError) -> i16 {
    let c = code.code();
    crate::metrics::error(api, c);
    c
}

/// A broker error as `api`'s error code (counted) and message.
fn broker_error(api: ApiKey, e: &BrokerError) -> (i16, Option<StrBytes>) {
    (
        fail(api, crate::error::code(e)),
        Some(crate::error::message(e)),
    )
}

/// An error code (counted) with a message.
fn refusal(
    api: ApiKey,
    code: ResponseError,
    message: impl Into<String>,
) -> (i16, Option<StrBytes>) {
    (fail(api, code), Some(super::s(message)))
}

/// ACL operation bits (Kafka's `AclOperation` codes) as `authorized_operations` fields carry
/// them.
mod acl {
    pub const READ: i32 = 1 << 3;
    pub const CREATE: i32 = 1 << 5;
    pub const DELETE: i32 = 1 << 6;
    pub const ALTER: i32 = 1 << 7;
    pub const DESCRIBE: i32 = 1 << 8;
    pub const CLUSTER_ACTION: i32 = 1 << 9;
    pub const DESCRIBE_CONFIGS: i32 = 1 << 10;
    pub const ALTER_CONFIGS: i32 = 1 << 11;
    pub const IDEMPOTENT_WRITE: i32 = 1 << 12;
    /// What the field holds when the client did not ask (Kafka's `Integer.MIN_VALUE`).
    pub const NOT_REQUESTED: i32 = i32::MIN;
}

#[cfg(test)]
pub(crate) mod testing {
    //! A context over a real broker in a temporary directory, for the handlers' tests.
    use crate::api::{Ctx, Node, Principal, s};
    use crate::config::KafkaConfig;
    use crate::sasl::Sasl;
    use distlog_broker::{Broker, BrokerConfig};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use std::sync::Arc;

    /// A broker and the listener context around it; the directory lives as long as this.
    pub(crate) struct TestCtx {
        pub ctx: Arc<Ctx>,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for TestCtx {
        type Target = Arc<Ctx>;
        fn deref(&self) -> &Arc<Ctx> {
            &self.ctx
        }
    }

    /// A context whose admin requests need an admin session when `admin_required`.
    pub(crate) fn ctx(admin_required: bool) -> TestCtx {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig::new(dir.path());
        config.plugins.enabled = false;
        config.max_partitions = 64;
        config.default_partitions = 3;
        config.retention_check_interval_ms = 0;
        config
            .topic_defaults
            .insert("segment.ms".into(), "3600000".into());
        let broker = Broker::open(config).expect("open broker");
        let ctx = Ctx {
            broker,
            config: KafkaConfig::default(),
            node: Node {
                id: 7,
                host: s("127.0.0.1"),
                port: 9092,
            },
            cluster_id: s("distlog-test"),
            sasl: Sasl::new(&[], None).expect("sasl"),
            admin_required,
            responses: Arc::new(tokio::sync::Semaphore::new(1 << 30)),
            groups: crate::api::membership::Membership::start(
                distlog_coordinator::GroupConfig::default(),
            ),
        };
        TestCtx {
            ctx: Arc::new(ctx),
            _dir: dir,
        }
    }

    /// A connection that authenticated as nobody in particular.
    pub(crate) fn anyone() -> Principal {
        Principal::default()
    }

    /// The admin's connection.
    pub(crate) fn admin() -> Principal {
        Principal {
            user: Some("admin".into()),
            admin: true,
            host: "/127.0.0.1".into(),
        }
    }

    /// Encodes `msg` at `version` and decodes it back.
    pub(crate) fn round_trip<T: Encodable + Decodable>(msg: &T, version: i16) -> T {
        let mut buf = bytes::BytesMut::new();
        msg.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
        let mut bytes = buf.freeze();
        let back =
            T::decode(&mut bytes, version).unwrap_or_else(|e| panic!("decode v{version}: {e}"));
        assert!(bytes.is_empty(), "v{version}: bytes left after decoding");
        back
    }

    /// The response in `frame`, decoded as a client decodes it (`key` at `version`).
    pub(crate) fn decode_frame(
        frame: &crate::frame::Frame,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
    ) -> kafka_protocol::messages::ResponseKind {
        let bytes = frame.to_vec();
        let size = i32::from_be_bytes(bytes[..4].try_into().expect("size"));
        assert_eq!(usize::try_from(size).expect("size"), bytes.len() - 4);
        let mut buf = bytes::Bytes::copy_from_slice(&bytes[4..]);
        kafka_protocol::messages::ResponseHeader::decode(
            &mut buf,
            key.response_header_version(version),
        )
        .expect("response header");
        let resp = kafka_protocol::messages::ResponseKind::decode(key, &mut buf, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
        assert!(
            buf.is_empty(),
            "{key:?} v{version}: bytes after the response"
        );
        resp
    }

    /// The supported range of `key`.
    pub(crate) fn versions(key: kafka_protocol::messages::ApiKey) -> [i16; 2] {
        let (min, max) = crate::versions::range(key).expect("a supported API");
        [min, max]
    }
}
