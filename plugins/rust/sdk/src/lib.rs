//! Write DistributedLog plugins in Rust.
//!
//! A plugin is a WebAssembly component that implements one world of the `distlog:plugin`
//! contract (the WIT files in this crate's `wit/`, a copy of the repository's `wit/`, checked
//! to be identical by the repository's tests and `plugins/build.sh`). This crate carries the
//! bindings generated from that contract, so a plugin depends on it alone:
//!
//! | World | Trait | Export macro |
//! |---|---|---|
//! | `codec-plugin` | [`codec::Codec`] | [`export_codec!`] |
//! | `retention-plugin` | [`retention::Retention`] | [`export_retention!`] |
//! | `compaction-plugin` | [`compaction::Compaction`] | [`export_compaction!`] |
//!
//! ```no_run
//! use distlog_plugin_sdk::codec::{Codec, check_size};
//! use distlog_plugin_sdk::{Params, export_codec};
//!
//! struct Store;
//!
//! impl Codec for Store {
//!     fn init(params: Vec<(String, String)>) -> Result<(), String> {
//!         Params::parse(&params, &[])?; // an `err` naming any unknown key
//!         Ok(())
//!     }
//!     fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
//!         Ok(input)
//!     }
//!     fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
//!         check_size(&input, expected_size)?;
//!         Ok(input)
//!     }
//! }
//!
//! export_codec!(Store);
//! ```
//!
//! Build with a stock toolchain: `rustup target add wasm32-wasip2 && cargo build --target
//! wasm32-wasip2 --release` gives a component directly; with `wasm32-unknown-unknown`, wrap the
//! module with `wasm-tools component new`. The crate must be a `cdylib`.
//!
//! Everything here also compiles for the host, so a plugin's logic is unit-tested natively with
//! `cargo test`; only the calls into the broker ([`log`]) need the wasm32 target (elsewhere
//! they panic).
//!
//! Rules every plugin follows (the broker checks them, see docs/PLUGINS.md):
//! - `init` runs once per instance before any other call; reject unknown parameters there
//!   ([`Params::parse`]) so typos fail the load with your message.
//! - Return `Err(message)` for anything refused; a panic aborts (traps) the instance, which
//!   the broker discards and counts.
//! - Keep no state between calls beyond what `init` prepared: instances are pooled and
//!   discarded after any failure.

mod params;

pub use params::{Params, config_value, effective_limit, parse_limit};

/// Compression codecs: world `codec-plugin`, interface `distlog:plugin/codec`.
pub mod codec {
    /// The bindings generated from `wit/` for the `codec-plugin` world. Plugins need only
    /// [`Codec`] and [`export_codec!`](crate::export_codec); the generated items are public
    /// for the macro.
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "codec-plugin",
            pub_export_macro: true,
            default_bindings_module: "distlog_plugin_sdk::codec::bindings",
            additional_derives: [PartialEq, Eq],
        });
    }

    /// A compression codec for the records payload of a batch.
    ///
    /// Rules (checked by the conformance suite and the self-test at load):
    /// - `decompress(compress(x)) == x` for every input, the empty one included;
    /// - `decompress` output depends only on its input, never on the parameters, and is
    ///   exactly `expected_size` bytes ([`check_size`]);
    /// - corrupt input is an `Err`, never a panic; `compress` output is at most
    ///   `2 × input + 1 KiB`;
    /// - a call must return within the codec deadline (100 ms by default; a decompress gets
    ///   one deadline per 128 KiB of output): the self-test at load round-trips 1 MiB.
    pub trait Codec {
        /// Called once per instance before any other call. The default accepts no
        /// parameters.
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            crate::Params::parse(&params, &[]).map(|_| ())
        }

        /// Compresses one batch's records payload.
        fn compress(input: Vec<u8>) -> Result<Vec<u8>, String>;

        /// Decompresses one payload; `expected_size` is the uncompressed length recorded in
        /// the batch (a bound: do not allocate more, and fail if the output would differ).
        fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String>;
    }

    impl<T: Codec> bindings::exports::distlog::plugin::codec::Guest for T {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            <T as Codec>::init(params)
        }
        fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
            <T as Codec>::compress(input)
        }
        fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
            <T as Codec>::decompress(input, expected_size)
        }
    }

    /// `Ok` if `output` has exactly `expected_size` bytes, else an `Err` saying both sizes.
    pub fn check_size(output: &[u8], expected_size: u32) -> Result<(), String> {
        if u32::try_from(output.len()) == Ok(expected_size) {
            Ok(())
        } else {
            Err(format!(
                "payload decodes to {} bytes, expected {expected_size}",
                output.len()
            ))
        }
    }
}

/// Retention policies: world `retention-plugin`, interface `distlog:plugin/retention`.
pub mod retention {
    /// The bindings generated from `wit/` for the `retention-plugin` world (see
    /// [`codec::bindings`](crate::codec::bindings)).
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "retention-plugin",
            pub_export_macro: true,
            default_bindings_module: "distlog_plugin_sdk::retention::bindings",
            additional_derives: [PartialEq, Eq],
            with: {
                "distlog:plugin/types@0.1.0": crate::codec::bindings::distlog::plugin::types,
                "distlog:plugin/host@0.1.0": crate::codec::bindings::distlog::plugin::host,
            },
        });
    }

    pub use bindings::exports::distlog::plugin::retention::{Deletion, PartitionInfo, SegmentInfo};

    /// A retention policy: decides which closed segments of a partition to delete.
    ///
    /// Rules (checked by the broker, which refuses any other decision): name only closed
    /// segments that exist, each once, forming the oldest prefix of the log; never the
    /// active segment. Each deletion's `reason` is logged by the broker. `now_ms` is the only
    /// clock a policy sees; the topic's configuration arrives in `partition.config` with
    /// every call (use [`config_value`](crate::config_value) or
    /// [`effective_limit`](crate::effective_limit) on it).
    pub trait Retention {
        /// Called once per instance before any other call. The default accepts no
        /// parameters.
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            crate::Params::parse(&params, &[]).map(|_| ())
        }

        /// Decides which segments (given oldest first) to delete.
        fn select_deletions(
            partition: PartitionInfo,
            segments: Vec<SegmentInfo>,
            now_ms: i64,
        ) -> Result<Vec<Deletion>, String>;
    }

    impl<T: Retention> bindings::exports::distlog::plugin::retention::Guest for T {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            <T as Retention>::init(params)
        }
        fn select_deletions(
            partition: PartitionInfo,
            segments: Vec<SegmentInfo>,
            now_ms: i64,
        ) -> Result<Vec<Deletion>, String> {
            <T as Retention>::select_deletions(partition, segments, now_ms)
        }
    }
}

/// Compaction key extraction: world `compaction-plugin`, interface
/// `distlog:plugin/compaction`.
pub mod compaction {
    /// The bindings generated from `wit/` for the `compaction-plugin` world (see
    /// [`codec::bindings`](crate::codec::bindings)).
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "compaction-plugin",
            pub_export_macro: true,
            default_bindings_module: "distlog_plugin_sdk::compaction::bindings",
            additional_derives: [PartialEq, Eq],
            with: {
                "distlog:plugin/types@0.1.0": crate::codec::bindings::distlog::plugin::types,
                "distlog:plugin/host@0.1.0": crate::codec::bindings::distlog::plugin::host,
            },
        });
    }

    pub use bindings::exports::distlog::plugin::compaction::{Header, LogRecord};

    /// A compaction key extractor: for each record of a batch, the key compaction
    /// deduplicates on.
    ///
    /// Rules: exactly one entry per record, in order (the broker rejects any other length);
    /// `None` keeps the record whatever follows it. Called once per batch.
    pub trait Compaction {
        /// Called once per instance before any other call. The default accepts no
        /// parameters.
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            crate::Params::parse(&params, &[]).map(|_| ())
        }

        /// The compaction key of each record, in order.
        fn extract_keys(records: Vec<LogRecord>) -> Result<Vec<Option<Vec<u8>>>, String>;
    }

    impl<T: Compaction> bindings::exports::distlog::plugin::compaction::Guest for T {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            <T as Compaction>::init(params)
        }
        fn extract_keys(records: Vec<LogRecord>) -> Result<Vec<Option<Vec<u8>>>, String> {
            <T as Compaction>::extract_keys(records)
        }
    }
}

/// Severity of a log line (the WIT `level` enum).
pub use codec::bindings::distlog::plugin::types::Level;

/// Writes one line to the broker's log, attributed to this plugin (the only capability the
/// broker grants every plugin). The broker truncates lines to 1 KiB and rate-limits them per
/// plugin version; log at `init`, or sparingly per call.
pub fn log(level: Level, message: &str) {
    codec::bindings::distlog::plugin::host::log(level, message);
}

/// Exports `$ty`, an implementation of [`codec::Codec`], as the component's
/// `distlog:plugin/codec` interface. Invoke once, in the `cdylib` crate.
#[macro_export]
macro_rules! export_codec {
    ($ty:ident) => {
        $crate::codec::bindings::export!($ty with_types_in $crate::codec::bindings);
    };
}

/// Exports `$ty`, an implementation of [`retention::Retention`], as the component's
/// `distlog:plugin/retention` interface. Invoke once, in the `cdylib` crate.
#[macro_export]
macro_rules! export_retention {
    ($ty:ident) => {
        $crate::retention::bindings::export!($ty with_types_in $crate::retention::bindings);
    };
}

/// Exports `$ty`, an implementation of [`compaction::Compaction`], as the component's
/// `distlog:plugin/compaction` interface. Invoke once, in the `cdylib` crate.
#[macro_export]
macro_rules! export_compaction {
    ($ty:ident) => {
        $crate::compaction::bindings::export!($ty with_types_in $crate::compaction::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::codec::check_size;
    use super::retention::SegmentInfo;

    #[test]
    fn check_size_names_both_sizes() {
        assert!(check_size(b"abc", 3).is_ok());
        let err = check_size(b"abc", 4).unwrap_err();
        assert!(err.contains('3') && err.contains('4'), "{err}");
    }

    #[test]
    fn generated_types_compare() {
        let s = SegmentInfo {
            base_offset: 0,
            last_offset: 9,
            size_bytes: 100,
            first_timestamp: 1,
            max_timestamp: 2,
            record_count: 10,
            active: false,
        };
        assert_eq!(s.clone(), s);
    }
}
