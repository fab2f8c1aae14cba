//! The service guard: a wrapper around each generated service that
//! - checks `authorization: Bearer <token>` on admin calls before they reach the service
//!   (the access class of each RPC is declared beside it in the proto file, see
//!   [`METHOD_ACCESS`]; a path that is not a declared RPC is treated as admin), and
//! - reports a request over the transport's size limit as RESOURCE_EXHAUSTED (tonic itself
//!   answers OUT_OF_RANGE), so every "too large" gets the same status,
//! - runs the call as the server side of the codec (`codec::scope`: produce requests
//!   counted before they are decoded, malformed requests INVALID_ARGUMENT), and
//! - hands a response's byte grants (`limits::Grants`, put in its extensions by the
//!   handler) to its body, so they are released as the bytes are written.

use crate::codec::{self, WireLimits};
use crate::error::ApiError;
use crate::limits::{GrantedBody, Grants};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

/// Who may call an RPC: the `(distlog.v1.access)` option declared on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Any client.
    Public,
    /// A client with the admin token, when the server has one.
    Admin,
}

include!(concat!(env!("OUT_DIR"), "/access.rs"));

/// The access class of the RPC at `path` (`/distlog.v1.Topics/CreateTopic`). A path that
/// is no declared RPC is [`Access::Admin`]: the guard fails closed.
pub fn access_of(path: &str) -> Access {
    METHOD_ACCESS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(Access::Admin, |(_, access)| *access)
}

/// Checks admin credentials. Without a configured token every call passes.
#[derive(Debug, Clone, Default)]
pub struct AdminAuth {
    token: Option<Arc<str>>,
}

impl AdminAuth {
    /// A guard requiring `token` (none: no check).
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }

    /// `Unauthenticated` when the header is missing or not a bearer token,
    /// `PermissionDenied` when the token is wrong. Cost: a constant-time comparison.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(ApiError::Unauthenticated(
                "admin call: send the metadata \"authorization: Bearer <token>\"".into(),
            ));
        };
        let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Err(ApiError::Unauthenticated(
                "admin call: the authorization metadata must be \"Bearer <token>\"".into(),
            ));
        };
        if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(
                "admin call: the token is not valid".into(),
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Wraps a generated service; admin paths are checked with [`AdminAuth`] first.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    auth: AdminAuth,
    limits: Option<WireLimits>,
}

impl<S> Guard<S> {
    /// Guards `inner` with `auth`.
    pub fn new(inner: S, auth: AdminAuth) -> Self {
        Self {
            inner,
            auth,
            limits: None,
        }
    }

    /// Also checks requests against `limits` before they are decoded.
    pub(crate) fn limited(mut self, limits: WireLimits) -> Self {
        self.limits = Some(limits);
        self
    }
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if access_of(req.uri().path()) == Access::Admin
            && let Err(e) = self.auth.check(req.headers())
        {
            metrics::counter!("distlog_admin_denied_total").increment(1);
            let response = Status::from(e).into_http();
            return Box::pin(async move { Ok(response) });
        }
        let call = self.inner.call(req);
        let limits = self.limits;
        Box::pin(async move {
            let mut response = match limits {
                Some(limits) => codec::scope(limits, call).await?,
                None => call.await?,
            };
            too_large_as_resource_exhausted(response.headers_mut());
            if let Some(grants) = response.extensions_mut().remove::<Grants>() {
                response = response.map(|body| Body::new(GrantedBody::new(body, grants)));
            }
            Ok(response)
        })
    }
}

/// Rewrites tonic's "decoded message length too large" (OUT_OF_RANGE, sent before the
/// handler runs, so in the response headers) into RESOURCE_EXHAUSTED.
fn too_large_as_resource_exhausted(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if let Some(e) = ApiError::from_transport_status(&status) {
        headers.remove(Status::GRPC_STATUS);
        headers.remove(Status::GRPC_MESSAGE);
        headers.remove(Status::GRPC_STATUS_DETAILS);
        let _ = Status::from(e).add_header(headers);
    }
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let auth = AdminAuth::new(Some("s3cret"));
        let mut h = http::HeaderMap::new();
        assert!(matches!(auth.check(&h), Err(ApiError::Unauthenticated(_))));
        h.insert("authorization", "Basic x".parse().expect("header"));
        assert!(matches!(auth.check(&h), Err(ApiError::Unauthenticated(_))));
        h.insert("authorization", "Bearer nope".parse().expect("header"));
        assert!(matches!(auth.check(&h), Err(ApiError::PermissionDenied(_))));
        h.insert("authorization", "Bearer s3cret".parse().expect("header"));
        assert!(auth.check(&h).is_ok());
        assert!(AdminAuth::new(None).check(&http::HeaderMap::new()).is_ok());
    }

    /// Every RPC of the service descriptors has exactly one class in the table, and the
    /// table names no RPC that does not exist.
    #[test]
    fn every_rpc_has_an_access_class() {
        use prost::Message as _;
        let fds = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut paths = Vec::new();
        for file in fds.file.iter().filter(|f| f.package() == "distlog.v1") {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!("/distlog.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        assert_eq!(paths.len(), 23, "{paths:?}");
        let mut table: Vec<_> = METHOD_ACCESS.iter().map(|(p, _)| (*p).to_owned()).collect();
        table.sort();
        paths.sort();
        assert_eq!(table, paths);
    }

    #[test]
    fn admin_calls_are_the_declared_ones() {
        let admin: Vec<_> = METHOD_ACCESS
            .iter()
            .filter(|(_, a)| *a == Access::Admin)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(
            admin,
            [
                "/distlog.v1.Topics/CreateTopic",
                "/distlog.v1.Topics/DeleteTopic",
                "/distlog.v1.Topics/AlterTopicConfig",
                "/distlog.v1.Topics/AddPartitions",
                "/distlog.v1.Groups/ResetOffsets",
                "/distlog.v1.Groups/DeleteGroup",
                "/distlog.v1.Plugins/LoadPlugin",
                "/distlog.v1.Plugins/ReloadPlugin",
                "/distlog.v1.Plugins/UnloadPlugin",
            ]
        );
        assert_eq!(access_of("/distlog.v1.Records/Fetch"), Access::Public);
        assert_eq!(access_of("/distlog.v1.Records/NoSuchCall"), Access::Admin);
    }
}
