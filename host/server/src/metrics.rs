//! gRPC server metrics under the names of go-grpc-prometheus (and so of the stock "gRPC"
//! Grafana dashboards), recorded by a tower layer around every service the server runs
//! (`distlog.v1`, health, reflection):
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `grpc_server_started_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_handled_total` | counter | the same and `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_msg_received_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_msg_sent_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//!
//! `grpc_type` is `unary`, `client_stream`, `server_stream` or `bidi_stream`, read from the
//! descriptor sets the server registers for reflection; `grpc_service` is the full service
//! name (`distlog.v1.Records`); `grpc_code` is the status as Go spells it (`OK`,
//! `InvalidArgument`, `ResourceExhausted`, ...). A call is *handled* when its response
//! ends: at the trailers (or a trailers-only answer), so a subscription is handled when it
//! ends, and one whose client goes away before is counted `Canceled`. Messages are counted
//! from the gRPC length-prefixed framing of the request and response bodies, as they cross
//! the transport. Paths that name no registered method (answered UNIMPLEMENTED) are not
//! counted, so a scanner cannot grow the label sets.
//!
//! [`describe`] registers the HELP text of these and of every other family this crate
//! records (`distlog_requests_total`, ...); call it once after installing a recorder.

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};

/// The gRPC method types, as go-grpc-prometheus labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl GrpcType {
    fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// One method's labels, built once when the layer is.
#[derive(Debug)]
struct Method {
    labels: [metrics::Label; 3],
}

/// Every method of the given encoded `FileDescriptorSet`s, keyed by request path
/// (`/package.Service/Method`).
fn methods(sets: &[&[u8]]) -> HashMap<String, Arc<Method>> {
    use prost::Message as _;
    let mut out = HashMap::new();
    for set in sets {
        // The sets are compiled in (ours by build.rs, tonic's generated): a decoding
        // failure is a build defect, and only costs the metrics of that set.
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            tracing::error!("an embedded descriptor set does not decode; its methods go uncounted");
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                let full = if package.is_empty() {
                    name
                } else {
                    format!("{package}.{name}")
                };
                for method in service.method {
                    let kind = match (
                        method.client_streaming.unwrap_or(false),
                        method.server_streaming.unwrap_or(false),
                    ) {
                        (false, false) => GrpcType::Unary,
                        (true, false) => GrpcType::ClientStream,
                        (false, true) => GrpcType::ServerStream,
                        (true, true) => GrpcType::BidiStream,
                    };
                    let method_name = method.name.unwrap_or_default();
                    out.insert(
                        format!("/{full}/{method_name}"),
                        Arc::new(Method {
                            labels: [
                                metrics::Label::new("grpc_type", kind.label()),
                                metrics::Label::new("grpc_service", full.clone()),
                                metrics::Label::new("grpc_method", method_name),
                            ],
                        }),
                    );
                }
            }
        }
    }
    out
}

/// The tower layer that records the `grpc_server_*` families for every method of the
/// descriptor sets it was built from.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMetricsLayer {
    methods: Arc<HashMap<String, Arc<Method>>>,
}

impl GrpcMetricsLayer {
    /// Counts the methods of these encoded `FileDescriptorSet`s.
    pub(crate) fn new(descriptor_sets: &[&[u8]]) -> Self {
        Self {
            methods: Arc::new(methods(descriptor_sets)),
        }
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around the server's router.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    methods: Arc<HashMap<String, Arc<Method>>>,
}

impl<S, B> Service<http::Request<Body>> for GrpcMetrics<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
{
    type Response = http::Response<MeteredBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = self.methods.get(req.uri().path()).cloned() else {
            return Box::pin(async move {
                let response = inner.call(req).await?;
                Ok(response.map(|body| MeteredBody {
                    inner: body,
                    call: None,
                }))
            });
        };
        let labels = method.labels.to_vec();
        metrics::counter!("grpc_server_started_total", labels.clone()).increment(1);
        let received = metrics::counter!("grpc_server_msg_received_total", labels.clone());
        let req = req.map(|body| {
            Body::new(CountingBody {
                inner: body,
                frames: Frames::default(),
                counter: received,
            })
        });
        let start = Instant::now();
        Box::pin(async move {
            let response = inner.call(req).await?;
            // A trailers-only answer (an error before any message) carries its status in
            // the headers.
            let header_code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok());
            let sent = metrics::counter!("grpc_server_msg_sent_total", labels.clone());
            let mut call = Call {
                labels,
                start,
                header_code,
                frames: Frames::default(),
                sent,
                done: false,
            };
            // A trailers-only answer is complete now: its (empty) body may never be
            // polled.
            if let Some(code) = header_code {
                call.finish(code);
            }
            Ok(response.map(|body| MeteredBody {
                inner: body,
                call: Some(call),
            }))
        })
    }
}

/// Counts complete gRPC messages in a body's bytes: a 5-byte prefix (compressed flag,
/// big-endian length) and that many bytes, split across data frames in any way.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 5],
    have: usize,
    payload_left: u64,
}

impl Frames {
    /// Feeds `data`; returns how many messages it completed.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.payload_left -= n as u64;
                data = &data[n..];
                if self.payload_left == 0 {
                    done += 1;
                }
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                if len == 0 {
                    done += 1;
                } else {
                    self.payload_left = u64::from(len);
                }
            }
        }
        done
    }
}

/// Feeds every chunk of `data` (a `Buf` may be non-contiguous).
fn feed_buf(frames: &mut Frames, data: &impl Buf) -> u64 {
    // Data frames here are `Bytes` (contiguous); `chunk` covers the whole of them.
    frames.feed(data.chunk())
}

/// A request body that counts the messages read from it.
struct CountingBody {
    inner: Body,
    frames: Frames,
    counter: metrics::Counter,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = feed_buf(&mut this.frames, data);
            if n > 0 {
                this.counter.increment(n);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the response side of a counted call tracks.
struct Call {
    labels: Vec<metrics::Label>,
    start: Instant,
    header_code: Option<i32>,
    frames: Frames,
    sent: metrics::Counter,
    done: bool,
}

impl Call {
    /// Records the call as handled with `code` (once).
    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        let mut labels = self.labels.clone();
        labels.push(metrics::Label::new("grpc_code", code_name(code)));
        metrics::counter!("grpc_server_handled_total", labels).increment(1);
        metrics::histogram!("grpc_server_handling_seconds", self.labels.clone())
            .record(self.start.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The response was dropped before it ended: the client went away (or the
        // connection did).
        self.finish(1);
    }
}

/// A response body that counts the messages written from it and records the call as
/// handled when it ends.
pub(crate) struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> HttpBody for MeteredBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let Some(call) = this.call.as_mut() else {
            return polled;
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = feed_buf(&mut call.frames, data);
                    if n > 0 {
                        call.sent.increment(n);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .or(call.header_code)
                        .unwrap_or(2);
                    call.finish(code);
                }
            }
            // The body failed: the stream is reset without a status.
            Poll::Ready(Some(Err(_))) => call.finish(2),
            Poll::Ready(None) => call.finish(call.header_code.unwrap_or(0)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A status code as grpc-go's `codes.Code.String()` spells it (the `grpc_code` values of
/// go-grpc-prometheus).
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// Registers the HELP text (and unit) of every family this crate records. Call once, after
/// the recorder is installed; families described but never recorded are not exported.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "grpc_server_started_total",
        "gRPC calls started on the server, by method."
    );
    describe_counter!(
        "grpc_server_handled_total",
        "gRPC calls completed on the server, by method and status code."
    );
    describe_histogram!(
        "grpc_server_handling_seconds",
        Unit::Seconds,
        "Time from a gRPC call's start to the end of its response, by method."
    );
    describe_counter!(
        "grpc_server_msg_received_total",
        "gRPC messages received from clients, by method."
    );
    describe_counter!(
        "grpc_server_msg_sent_total",
        "gRPC messages sent to clients, by method."
    );
    describe_counter!(
        "distlog_requests_total",
        "distlog.v1 requests answered, by RPC method and status code (codes as the proto spells them)."
    );
    describe_histogram!(
        "distlog_request_duration_seconds",
        Unit::Seconds,
        "Time the broker took to answer a distlog.v1 request, by RPC method (a ProduceStream per message)."
    );
    describe_counter!(
        "distlog_produce_records_total",
        "Records appended through the gRPC API, by topic."
    );
    describe_counter!(
        "distlog_produce_bytes_total",
        Unit::Bytes,
        "Record bytes (keys, values, headers) appended through the gRPC API, by topic."
    );
    describe_counter!(
        "distlog_fetch_records_total",
        "Records returned by Fetch and Subscribe, by topic."
    );
    describe_counter!(
        "distlog_fetch_bytes_total",
        Unit::Bytes,
        "Record bytes returned by Fetch and Subscribe (stored bytes for raw fetches), by topic."
    );
    describe_counter!(
        "distlog_admin_denied_total",
        "Admin calls refused for a missing or wrong admin token."
    );
    describe_counter!(
        "distlog_subscribe_resets_total",
        "Subscriptions whose position fell below the log start (retention) and were reset, by topic."
    );
    describe_counter!(
        "distlog_handshake_timeouts_total",
        "Connections closed because their TLS handshake or HTTP/2 preface did not arrive in time."
    );
    describe_counter!(
        "distlog_tls_reloads_total",
        "TLS certificate reloads that changed the files, by result (ok: in use; error: kept the previous ones)."
    );
    describe_gauge!(
        "distlog_response_in_flight_bytes",
        Unit::Bytes,
        "Fetch and Subscribe response bytes encoded but not yet written to clients, whole server."
    );
    describe_gauge!(
        "distlog_partition_log_start_offset",
        "Offset of the first record kept in a partition."
    );
    describe_gauge!(
        "distlog_partition_log_end_offset",
        "Offset the next record appended to a partition will get."
    );
    describe_gauge!(
        "distlog_partition_size_bytes",
        Unit::Bytes,
        "Bytes of a partition's segment files on disk."
    );
    describe_gauge!(
        "distlog_partition_segments",
        "Segment files of a partition."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_however_the_bytes_are_split() {
        // Three messages: 3 bytes, empty, 300 bytes.
        let mut wire = Vec::new();
        for len in [3u32, 0, 300] {
            wire.push(0);
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for split in [1, 2, 4, 5, 6, 8, 13, 100, wire.len()] {
            let mut frames = Frames::default();
            let total: u64 = wire.chunks(split).map(|c| frames.feed(c)).sum();
            assert_eq!(total, 3, "chunks of {split}");
            assert_eq!((frames.have, frames.payload_left), (0, 0));
        }
    }

    #[test]
    fn every_served_method_has_its_type() {
        let methods = methods(&[
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        ]);
        let kind = |path: &str| {
            methods
                .get(path)
                .map(|m| m.labels[0].value().to_owned())
                .unwrap_or_else(|| panic!("{path} missing"))
        };
        assert_eq!(kind("/grpc.health.v1.Health/Check"), "unary");
        assert_eq!(kind("/grpc.health.v1.Health/Watch"), "server_stream");
        assert_eq!(
            kind("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "bidi_stream"
        );
        assert_eq!(kind("/distlog.v1.Records/Produce"), "unary");
        assert_eq!(kind("/distlog.v1.Records/Subscribe"), "server_stream");
        assert_eq!(kind("/distlog.v1.Records/ProduceStream"), "bidi_stream");
        assert_eq!(
            methods["/distlog.v1.Records/Produce"].labels[1].value(),
            "distlog.v1.Records"
        );
    }
}
