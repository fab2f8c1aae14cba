//! DescribeCluster and FindCoordinator: this broker is the whole cluster, its controller and
//! the coordinator of every consumer group. Transactions have no coordinator yet.

use super::{Ctx, Principal, acl, fail};
use crate::api::s;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;

/// FindCoordinator key types.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// DescribeCluster endpoint types (v1+).
const BROKERS: i8 = 1;

/// DescribeCluster: this broker, as Metadata announces it.
pub(super) fn describe(
    ctx: &Ctx,
    principal: &Principal,
    version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let api = ApiKey::DescribeCluster;
    let node = BrokerId(ctx.node.id);
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(ctx.cluster_id.clone())
        .with_controller_id(node)
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(ctx.node.host.clone())
                .with_port(ctx.node.port),
        ]);
    if version >= 1 {
        resp = resp.with_endpoint_type(req.endpoint_type);
        if req.endpoint_type != BROKERS {
            return resp
                .with_brokers(Vec::new())
                .with_error_code(fail(api, ResponseError::MismatchedEndpointType))
                .with_error_message(Some(s(
                    "this listener serves brokers (endpoint type 1), not controllers",
                )));
        }
    }
    if req.include_cluster_authorized_operations {
        let mut ops = acl::DESCRIBE | acl::DESCRIBE_CONFIGS | acl::IDEMPOTENT_WRITE;
        if ctx.may_admin(principal) {
            ops |= acl::CREATE | acl::ALTER | acl::ALTER_CONFIGS | acl::CLUSTER_ACTION;
        }
        resp = resp.with_cluster_authorized_operations(ops);
    }
    resp
}

/// One key's coordinator: `(node, error code, message)`.
fn coordinator(ctx: &Ctx, key_type: i8) -> (i32, i16, Option<StrBytes>) {
    let api = ApiKey::FindCoordinator;
    match key_type {
        GROUP => (ctx.node.id, 0, None),
        TRANSACTION => (
            -1,
            fail(api, ResponseError::CoordinatorNotAvailable),
            Some(s("transactions are not supported by this broker")),
        ),
        other => (
            -1,
            fail(api, ResponseError::InvalidRequest),
            Some(s(format!(
                "unknown coordinator key type {other} (group 0, transaction 1)"
            ))),
        ),
    }
}

/// FindCoordinator: this broker for groups; one key (v0-3) or several (v4).
pub(super) fn find_coordinator(
    ctx: &Ctx,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (host, port) = (ctx.node.host.clone(), ctx.node.port);
    let located = |node: i32| {
        if node < 0 {
            (s(""), -1)
        } else {
            (host.clone(), port)
        }
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (node, code, message) = coordinator(ctx, req.key_type);
                let (host, port) = located(node);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (node, code, message) = coordinator(ctx, req.key_type);
    let (host, port) = located(node);
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node))
        .with_host(host)
        .with_port(port)
        .with_error_code(code)
        .with_error_message(if version >= 1 { message } else { None })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{admin, anyone, ctx, round_trip, versions};
    use super::*;

    #[test]
    fn describe_cluster_is_this_broker() {
        let ctx = ctx(true);
        let [min, max] = versions(ApiKey::DescribeCluster);
        for v in [min, max] {
            let req =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            round_trip(&req, v);
            let r = round_trip(&describe(&ctx, &anyone(), v, req), v);
            assert_eq!(r.error_code, 0);
            assert_eq!(r.cluster_id.as_str(), "distlog-test");
            assert_eq!(r.controller_id, BrokerId(7));
            assert_eq!(r.brokers.len(), 1);
            assert_eq!(
                (r.brokers[0].host.as_str(), r.brokers[0].port),
                ("127.0.0.1", 9092)
            );
            assert_eq!(r.cluster_authorized_operations & acl::ALTER, 0);
        }
        let r = describe(
            &ctx,
            &admin(),
            max,
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        );
        assert_ne!(r.cluster_authorized_operations & acl::ALTER, 0);
        let r = describe(&ctx, &admin(), max, DescribeClusterRequest::default());
        assert_eq!(r.cluster_authorized_operations, acl::NOT_REQUESTED);
        let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
        let r = round_trip(&describe(&ctx, &admin(), max, controllers), max);
        assert_eq!(r.error_code, ResponseError::MismatchedEndpointType.code());
    }

    #[test]
    fn find_coordinator_names_this_broker_for_groups() {
        let ctx = ctx(true);
        let [min, max] = versions(ApiKey::FindCoordinator);
        for v in min..max {
            let req = FindCoordinatorRequest::default().with_key(s("g"));
            round_trip(&req, v);
            let r = round_trip(&find_coordinator(&ctx, v, req), v);
            assert_eq!(
                (r.error_code, r.node_id, r.port),
                (0, BrokerId(7), 9092),
                "v{v}"
            );
            if v >= 1 {
                let txn = FindCoordinatorRequest::default()
                    .with_key(s("tx"))
                    .with_key_type(TRANSACTION);
                let r = round_trip(&find_coordinator(&ctx, v, txn), v);
                assert_eq!(r.error_code, ResponseError::CoordinatorNotAvailable.code());
            }
        }
        let batched = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]);
        round_trip(&batched, max);
        let r = round_trip(&find_coordinator(&ctx, max, batched), max);
        let got: Vec<(&str, i32, i16)> = r
            .coordinators
            .iter()
            .map(|c| (c.key.as_str(), c.node_id.0, c.error_code))
            .collect();
        assert_eq!(got, vec![("a", 7, 0), ("b", 7, 0)]);
        let txn = FindCoordinatorRequest::default()
            .with_key_type(TRANSACTION)
            .with_coordinator_keys(vec![s("tx")]);
        let r = find_coordinator(&ctx, max, txn);
        assert_eq!(
            r.coordinators[0].error_code,
            ResponseError::CoordinatorNotAvailable.code()
        );
        let r = find_coordinator(
            &ctx,
            max,
            FindCoordinatorRequest::default()
                .with_key_type(5)
                .with_coordinator_keys(vec![s("x")]),
        );
        assert_eq!(
            r.coordinators[0].error_code,
            ResponseError::InvalidRequest.code()
        );
    }
}
