//! One integration-test binary; one module per area.
mod certs;
mod cli;
mod grpc;
mod limits;
mod policies;
