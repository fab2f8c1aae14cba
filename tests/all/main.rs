//! One integration-test binary; one module per area.
mod cli;
mod grpc;
mod policies;
