//! Per-API metrics of the Kafka listener (docs/OPERATIONS.md lists them).

use kafka_protocol::messages::ApiKey;
use std::time::Duration;

/// Registers the HELP text (and unit) of the Kafka listener's families. Call once, after
/// the recorder is installed; families described but never recorded are not exported.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "distlog_kafka_requests_total",
        "Kafka requests answered, by API (Produce, Fetch, ...)."
    );
    describe_histogram!(
        "distlog_kafka_request_duration_seconds",
        Unit::Seconds,
        "Time from a decoded Kafka request to its encoded answer, by API."
    );
    describe_counter!(
        "distlog_kafka_errors_total",
        "Kafka error codes sent, once per partition or entry that had one, by API and code."
    );
    describe_gauge!("distlog_kafka_connections", "Open Kafka connections.");
    describe_counter!(
        "distlog_kafka_protocol_errors_total",
        "Kafka connections closed for a protocol violation, by reason."
    );
    describe_counter!(
        "distlog_kafka_produce_batches_total",
        "Produced Kafka batches by the compression the producer used (none, gzip, snappy, lz4, zstd)."
    );
    describe_counter!(
        "distlog_kafka_fetch_spliced_bytes_total",
        Unit::Bytes,
        "Record bytes Kafka fetches served by reference (not copied)."
    );
    describe_counter!(
        "distlog_kafka_fetch_decoded_bytes_total",
        Unit::Bytes,
        "Record bytes Kafka fetches decoded from a codec plugin before serving."
    );
}

/// A request of `api` finished after `elapsed`.
pub fn request(api: ApiKey, elapsed: Duration) {
    let api = api_name(api);
    metrics::counter!("distlog_kafka_requests_total", "api" => api).increment(1);
    metrics::histogram!("distlog_kafka_request_duration_seconds", "api" => api)
        .record(elapsed.as_secs_f64());
}

/// A response of `api` carried error `code` (once per partition or entry that had it).
pub fn error(api: ApiKey, code: i16) {
    if code != 0 {
        metrics::counter!("distlog_kafka_errors_total", "api" => api_name(api), "code" => code.to_string())
            .increment(1);
    }
}

/// A connection was opened (`+1`) or closed (`-1`).
pub fn connections(delta: f64) {
    metrics::gauge!("distlog_kafka_connections").increment(delta);
}

/// A connection was closed for a protocol violation.
pub fn protocol_error(reason: &'static str) {
    metrics::counter!("distlog_kafka_protocol_errors_total", "reason" => reason).increment(1);
}

/// A produced batch arrived compressed with `codec` (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
pub fn produced_batch(codec: &'static str) {
    metrics::counter!("distlog_kafka_produce_batches_total", "compression" => codec).increment(1);
}

/// Record bytes a fetch served by reference, and bytes it had to decode first.
pub fn fetched(spliced: usize, decoded: usize) {
    metrics::counter!("distlog_kafka_fetch_spliced_bytes_total").increment(spliced as u64);
    if decoded > 0 {
        metrics::counter!("distlog_kafka_fetch_decoded_bytes_total").increment(decoded as u64);
    }
}

/// The API's name as Kafka spells it (`Produce`, `Fetch`, ...).
pub fn api_name(api: ApiKey) -> &'static str {
    // `ApiKey`'s Debug form is the Kafka name; leak-free: one string per API, cached.
    static NAMES: std::sync::OnceLock<std::collections::HashMap<i16, &'static str>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ApiKey::iter()
            .map(|k| (k as i16, &*Box::leak(format!("{k:?}").into_boxed_str())))
            .collect()
    });
    names.get(&(api as i16)).copied().unwrap_or("Unknown")
}
