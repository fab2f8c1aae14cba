//! Compression on the data path: the topic's codec plugin on produce, the writing version on
//! fetch.
//!
//! A compressed batch stores a `codec_ref` into its partition's codec table, whose entry names
//! the codec plugin **version** (sha256 digest) that wrote it. Fetch decodes with exactly that
//! version, whatever is loaded under the name now, so hot reloads and codec switches never
//! change what earlier batches decode to. Every digest in a codec table is pinned in the
//! plugin host (at broker open, and when a produce first registers it), so a version that
//! stored data needs can never be unloaded.
//!
//! Invariant: a codec problem never fails a produce. If the codec is missing, fails, times
//! out, or does not shrink the payload, the batch is stored uncompressed and the fallback is
//! counted (`distlog_codec_fallbacks_total`) and logged.

use crate::BrokerError;
use distlog_plugin_host::{PluginDigest, PluginHost};
use distlog_storage::Log;
use distlog_storage::batch::{
    BatchBuilder, BatchHeader, BatchView, CodecRef, Compression, encode_batch,
};
use std::borrow::Cow;

/// The codec identity of a stored batch: the codec table entry it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecIdentity {
    /// Codec plugin name when the batch was written.
    pub name: String,
    /// The plugin version that wrote (and alone decodes) the payload.
    pub digest: PluginDigest,
}

/// Encodes the batch in `builder`, compressed by the codec plugin `codec` when that helps
/// (`None`: uncompressed; see `TopicConfig::codec`).
///
/// Cost: one plugin call on the calling (blocking) thread per batch, never per record; on the
/// first batch of a codec version in this partition, one codec table append (an fsync).
pub(crate) fn encode(
    host: Option<&PluginHost>,
    log: &Log,
    codec: Option<&str>,
    builder: BatchBuilder,
    topic: &str,
    partition: u32,
) -> Result<Vec<u8>, BrokerError> {
    let mut builder = builder;
    let Some(codec) = codec else {
        return finish(builder);
    };
    let fallback = |reason: &'static str, detail: &dyn std::fmt::Display| {
        metrics::counter!("distlog_codec_fallbacks_total",
            "topic" => topic.to_owned(), "codec" => codec.to_owned(), "reason" => reason)
        .increment(1);
        tracing::warn!(topic, partition, codec, reason, detail = %detail,
            "storing batch uncompressed");
    };
    let Some(host) = host else {
        fallback("plugins-disabled", &"the broker runs without a plugin host");
        return finish(builder);
    };
    let (meta, payload) = builder
        .payload()
        .map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    let compressed = match host.compress(codec, payload) {
        Ok(c) => c,
        Err(e) => {
            fallback("codec-error", &e);
            return finish(builder);
        }
    };
    if compressed.data.len() >= payload.len() {
        metrics::counter!("distlog_codec_incompressible_total", "topic" => topic.to_owned())
            .increment(1);
        return finish(builder);
    }
    let codec_ref = match register(host, log, codec, &compressed.codec) {
        Ok(r) => r,
        Err(e) => {
            fallback("codec-table", &e);
            return finish(builder);
        }
    };
    encode_batch(&meta, Compression::Codec(codec_ref), &compressed.data)
        .map_err(|e| BrokerError::InvalidArgument(e.to_string()))
}

fn finish(builder: BatchBuilder) -> Result<Vec<u8>, BrokerError> {
    builder
        .finish()
        .map_err(|e| BrokerError::InvalidArgument(e.to_string()))
}

/// The codec table id of `digest` in `log`, registering (and pinning) it on first use.
fn register(
    host: &PluginHost,
    log: &Log,
    name: &str,
    digest: &PluginDigest,
) -> Result<CodecRef, String> {
    if let Some(e) = log
        .codecs()
        .into_iter()
        .find(|e| e.digest == digest.0 && e.name == name)
    {
        return Ok(CodecRef(e.id));
    }
    // Pin before the entry becomes durable: a batch may reference it right after. Two racing
    // produces may both pin; an extra pin only keeps the version loaded.
    host.pin(digest).map_err(|e| e.to_string())?;
    match log.register_codec(name, digest.0) {
        Ok(id) => Ok(CodecRef(id)),
        Err(e) => {
            host.unpin(digest);
            Err(e.to_string())
        }
    }
}

/// Pins every codec version `log`'s codec table references. Versions not loaded are logged:
/// batches written by them fail to fetch with a precise error until the version is loaded.
pub(crate) fn pin_table(host: &PluginHost, log: &Log, topic: &str, partition: u32) {
    for entry in log.codecs() {
        let digest = PluginDigest(entry.digest);
        if let Err(e) = host.pin(&digest) {
            tracing::warn!(topic, partition, codec = %entry.name, digest = %digest.short(), error = %e,
                "a codec version referenced by stored batches is not loaded");
        }
    }
}

/// The codec identity of a stored batch (`None` when uncompressed).
pub(crate) fn identity(
    log: &Log,
    header: &BatchHeader,
) -> Result<Option<CodecIdentity>, BrokerError> {
    match header.compression() {
        Compression::None => Ok(None),
        Compression::Codec(r) => {
            let entry = log.codec(r.0).ok_or_else(|| unknown_ref(header, r))?;
            Ok(Some(CodecIdentity {
                name: entry.name,
                digest: PluginDigest(entry.digest),
            }))
        }
    }
}

/// A batch that passed its CRC but names a codec table entry the partition lacks: the table
/// lost an entry, so nothing can decode the batch (DATA_LOSS, not a client's fault). The
/// caller names the partition.
fn unknown_ref(header: &BatchHeader, r: CodecRef) -> BrokerError {
    BrokerError::Corrupt {
        topic: String::new(),
        partition: 0,
        message: format!(
            "batch at offset {} references codec table entry {}, which this partition does not have",
            header.base_offset(),
            r.0
        ),
    }
}

/// The uncompressed records payload of `view`: borrowed when it is stored uncompressed,
/// decompressed by the exact codec version that wrote it otherwise. A version that is not
/// loaded, or a decompression failure, is a `FailedPrecondition` naming the batch and the
/// version, never garbage: the output length is checked by the plugin host and every record
/// by the caller's decoder.
///
/// Cost: for a compressed batch, one plugin call and one allocation of the payload size.
pub(crate) fn payload<'a>(
    host: Option<&PluginHost>,
    log: &Log,
    view: &BatchView<'a>,
) -> Result<Cow<'a, [u8]>, BrokerError> {
    let header = view.header();
    let Some(id) = identity(log, header)? else {
        return Ok(Cow::Borrowed(view.payload()));
    };
    let Some(host) = host else {
        return Err(BrokerError::FailedPrecondition(format!(
            "batch at offset {} is compressed by {} ({}), and plugins are disabled",
            header.base_offset(),
            id.name,
            id.digest.short()
        )));
    };
    host.decompress(&id.digest, view.payload(), header.payload_size())
        .map(Cow::Owned)
        .map_err(|e| {
            BrokerError::FailedPrecondition(format!(
                "batch at offset {} (codec {} version {}) cannot be decompressed: {e}",
                header.base_offset(),
                id.name,
                id.digest.short()
            ))
        })
}
