//! gRPC service (distlog.v1): the only crate that knows protobuf.
