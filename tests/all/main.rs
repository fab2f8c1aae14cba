//! One integration-test binary; one module per area.
mod certs;
mod cli;
mod cli_admin;
mod cli_records;
mod crashloop;
mod damage;
mod fulldisk;
mod grpc;
mod kafka;
mod limits;
mod observability;
mod plugin_cli;
mod plugin_kit;
mod policies;
mod topics;
