//! Durable commit-log storage: record batches, segments, indexes, recovery. No async, no gRPC, no wasm.

pub mod batch;
