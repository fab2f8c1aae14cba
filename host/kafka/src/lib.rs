//! The Kafka wire-protocol listener: existing Kafka clients and tools (librdkafka and
//! everything built on it, the Java client, kcat) produce, fetch, list offsets, administer
//! topics and commit group offsets against the same broker, topics and data as gRPC.
//!
//! ```text
//!  TCP / TLS ──► serve: accept, connection cap ──► conn: frames (size-bounded), header,
//!     decode (kafka-protocol) ──► api::dispatch ──► one handler per API ──► Broker
//!                                   ▲                          │
//!     in-order responses ◄── frame: encode; record bytes spliced, never copied ◄─┘
//! ```
//!
//! Architecture invariant: this crate is the only code that knows Kafka wire types;
//! `kafka_protocol` types stop here. Every broker error becomes a Kafka error code in exactly
//! one place ([`error`]). A request the listener cannot answer in its own shape (an unknown
//! API key, a version no Kafka release defines, a frame over the size limit) closes that
//! client's connection and nothing else; every other refusal is a precise error code in a
//! well-formed response.
//!
//! Records are never re-encoded: a producer's uncompressed batch is validated and stored
//! with its records section as sent (`Broker::produce_batches`); a fetch serves each stored
//! batch as a Kafka RecordBatch v2 whose 61-byte header is rewritten and whose records
//! section is a slice of the storage read, written to the socket without a copy (see
//! [`frame`]).

mod api;
mod compression;
mod config;
mod conn;
mod error;
mod frame;
#[cfg(test)]
mod golden;
mod metrics;
mod records;
mod sasl;
mod serve;
mod versions;

pub use config::KafkaConfig;
pub use metrics::describe as describe_metrics;
pub use sasl::Credentials;
pub use serve::{Listener, ServeError, serve, tcp, validate};
pub use versions::SUPPORTED;

/// Test-only access to the wire helpers, for golden-frame and property tests.
#[doc(hidden)]
pub mod testing {
    pub use crate::frame::{Frame, Splices};
    pub use crate::records::{from_stored, to_encoded};
}
