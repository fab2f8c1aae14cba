//! One integration-test binary; one module per area.
mod certs;
mod cli;
mod crashloop;
mod damage;
mod fulldisk;
mod grpc;
mod kafka;
mod limits;
mod policies;
mod topics;
