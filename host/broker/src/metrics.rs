//! The HELP text of every metric family the broker records (through the `metrics` facade;
//! docs/METRICS.md lists them all).

/// Registers the HELP text (and unit) of the broker's families. Call once, after the
/// recorder is installed; families described but never recorded are not exported.
pub fn describe() {
    use metrics::{Unit, describe_counter};
    describe_counter!(
        "distlog_codec_fallbacks_total",
        "Batches stored uncompressed although their topic names a codec, by topic, codec and reason (plugins-disabled, codec-error, ...)."
    );
    describe_counter!(
        "distlog_codec_incompressible_total",
        "Batches stored uncompressed because the codec did not make them smaller, by topic."
    );
    describe_counter!(
        "distlog_retention_failures_total",
        "Retention passes over a partition that deleted nothing because of a failure, by topic and kind (rejected, error, delete)."
    );
    describe_counter!(
        "distlog_retention_segments_deleted_total",
        "Segments deleted by retention, by topic."
    );
    describe_counter!(
        "distlog_retention_deleted_bytes_total",
        Unit::Bytes,
        "Bytes of segments deleted by retention, by topic."
    );
    describe_counter!(
        "distlog_cleaner_passes_total",
        "Compaction passes that completed, by topic."
    );
    describe_counter!(
        "distlog_cleaner_errors_total",
        "Compaction passes that failed (nothing changed), by topic."
    );
    describe_counter!(
        "distlog_cleaner_read_bytes_total",
        Unit::Bytes,
        "Bytes read by compaction passes, by topic."
    );
    describe_counter!(
        "distlog_cleaner_written_bytes_total",
        Unit::Bytes,
        "Bytes written by compaction passes, by topic."
    );
}
