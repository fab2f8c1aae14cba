//! zstd codec: a better ratio than LZ4 at a higher CPU cost; for cold or
//! bandwidth-bound topics.
//!
//! Format: standard Zstandard frames (RFC 8878), so any zstd tool can read a
//! payload. The implementation is the reference C libzstd (1.5.7, the
//! sources vendored by the `zstd-sys` crate, compiled with clang for wasm32
//! with SIMD) at level 1, with the content size in the frame header and no
//! checksum (the batch that carries the payload has its own CRC). The wasm
//! build leaves out libzstd's other compression strategies and two decoder
//! variants (`plugins/rust/.cargo/config.toml`): every frame still decodes,
//! and level 1 needs nothing that was left out. Payloads
//! written by the previous implementation of this plugin (ruzstd's pure-Rust
//! encoder, level "fastest") are zstd frames too and decode unchanged; a
//! test keeps one of them.
//!
//! `decompress` decodes in one shot into a buffer of exactly `expected-size`
//! bytes: a payload that would decode to more is an `err` before the excess
//! is produced, one that decodes to less is an `err` too. One-shot decoding
//! keeps no window buffer (the output is the window), so the decoder's memory
//! is the output plus a fixed context whatever the frame declares; frames
//! that declare a window over 128 MiB (zstd's default limit) are refused.
//! Concatenated frames decode as their concatenation. Params: none.
//!
//! Cost: the compression and decompression contexts are created once per
//! instance and reused by every call (a level-1 context is about 1 MiB of
//! tables; creating one per call would cost more than compressing a small
//! batch). Output buffers are allocated at their final capacity and written
//! without being zeroed first.

use zstd_safe::{CCtx, CParameter, DCtx, DParameter};

/// Compression level: zstd's fast end, where it still beats LZ4's ratio.
pub const LEVEL: i32 = 1;

/// Largest window (as a power of two) a payload may declare:
/// `ZSTD_WINDOWLOG_LIMIT_DEFAULT`. Our own frames use 512 KiB at level 1.
const MAX_WINDOW_LOG: u32 = 27;

/// A compression and a decompression context, reused between calls.
pub struct Codec {
    cctx: CCtx<'static>,
    dctx: DCtx<'static>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("level", &LEVEL)
            .finish_non_exhaustive()
    }
}

fn zstd_error(code: usize) -> String {
    zstd_safe::get_error_name(code).to_owned()
}

impl Codec {
    /// Creates both contexts with this codec's parameters.
    pub fn new() -> Result<Self, String> {
        let mut cctx = CCtx::try_create().ok_or("zstd could not allocate a compression context")?;
        let mut dctx =
            DCtx::try_create().ok_or("zstd could not allocate a decompression context")?;
        for param in [
            CParameter::CompressionLevel(LEVEL),
            CParameter::ContentSizeFlag(true),
            CParameter::ChecksumFlag(false),
        ] {
            cctx.set_parameter(param).map_err(zstd_error)?;
        }
        dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
            .map_err(zstd_error)?;
        Ok(Self { cctx, dctx })
    }

    /// Compresses `input` into one zstd frame. Cost: one pass; the output
    /// buffer is allocated at `ZSTD_compressBound` (input plus about 1/256)
    /// and returned as is.
    pub fn compress(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut output = Vec::with_capacity(zstd_safe::compress_bound(input.len()));
        self.cctx
            .compress2(&mut output, input)
            .map_err(|code| format!("zstd compression failed: {}", zstd_error(code)))?;
        Ok(output)
    }

    /// Decodes zstd frames that must produce exactly `expected_size` bytes.
    pub fn decompress(&mut self, input: &[u8], expected_size: u32) -> Result<Vec<u8>, String> {
        let size = usize::try_from(expected_size)
            .map_err(|_| "length exceeds address space".to_string())?;
        let mut output = Vec::with_capacity(size);
        let written = self.dctx.decompress(&mut output, input).map_err(|code| {
            format!(
                "corrupt zstd payload (expected {size} bytes): {}",
                zstd_error(code)
            )
        })?;
        if written != size {
            return Err(format!(
                "zstd payload decoded to {written} bytes, the batch expects {size}"
            ));
        }
        Ok(output)
    }
}

/// Compresses `input` into one zstd frame with a fresh context.
pub fn compress(input: &[u8]) -> Result<Vec<u8>, String> {
    Codec::new()?.compress(input)
}

/// Decodes zstd frames that must produce exactly `expected_size` bytes, with
/// a fresh context.
pub fn decompress(input: &[u8], expected_size: u32) -> Result<Vec<u8>, String> {
    Codec::new()?.decompress(input, expected_size)
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "codec-plugin" });

    use std::cell::RefCell;

    use distlog::plugin::host::log;
    use distlog::plugin::types::Level;
    use exports::distlog::plugin::codec::Guest;

    thread_local! {
        /// The instance's contexts, created by `init` (an instance runs one
        /// call at a time).
        static CODEC: RefCell<Option<super::Codec>> = const { RefCell::new(None) };
    }

    fn with_codec<R>(f: impl FnOnce(&mut super::Codec) -> Result<R, String>) -> Result<R, String> {
        CODEC.with_borrow_mut(|codec| {
            let codec = match codec {
                Some(codec) => codec,
                None => codec.insert(super::Codec::new()?),
            };
            f(codec)
        })
    }

    struct Zstd;

    impl Guest for Zstd {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            distlog_plugin_common::Params::parse(&params, &[])?;
            with_codec(|_| Ok(()))?;
            log(
                Level::Debug,
                "codec-zstd ready: zstd frames (reference libzstd), level 1",
            );
            Ok(())
        }

        fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
            with_codec(|codec| codec.compress(&input))
        }

        fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
            with_codec(|codec| codec.decompress(&input, expected_size))
        }
    }

    export!(Zstd);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input of `tests/data/ruzstd-fastest.zst`: deterministic log
    /// lines, 3 zstd blocks' worth.
    fn fixture_input() -> Vec<u8> {
        let mut text = String::new();
        let mut i: u64 = 0;
        while text.len() < 300_000 {
            let status = [200, 200, 200, 404, 500][(i % 5) as usize];
            text.push_str(&format!(
                "2026-12-01T17:{:02}:{:02}Z GET /api/v1/items/{} status={status} bytes={} user=u{}\n",
                (i / 60) % 60,
                i % 60,
                (i * 7919) % 1000,
                (i * 31) % 5000,
                i % 97,
            ));
            i += 1;
        }
        text.into_bytes()
    }

    #[test]
    fn round_trips_and_rejects_corruption() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(3000);
        let mut codec = Codec::new().unwrap();
        for input in [&b""[..], b"a", &[7u8; 300_000], &text] {
            // Twice on one context: reuse must not change the output.
            let packed = codec.compress(input).unwrap();
            assert_eq!(codec.compress(input).unwrap(), packed);
            assert_eq!(compress(input).unwrap(), packed);
            let size = u32::try_from(input.len()).unwrap();
            assert_eq!(codec.decompress(&packed, size).unwrap(), input);
            assert!(codec.decompress(&packed, size + 1).is_err());
            if size > 0 {
                assert!(codec.decompress(&packed, size - 1).is_err());
            }
        }
        assert!(codec.decompress(b"not zstd at all", 15).is_err());
        let mut packed = codec.compress(&text).unwrap();
        packed.truncate(packed.len() / 2);
        let size = u32::try_from(text.len()).unwrap();
        assert!(codec.decompress(&packed, size).is_err());
        // The context still works after a failed call.
        let packed = codec.compress(&text).unwrap();
        assert_eq!(codec.decompress(&packed, size).unwrap(), text);
    }

    #[test]
    fn concatenated_frames_decode_as_their_concatenation() {
        let (a, b) = (b"first frame ".repeat(100), b"second frame ".repeat(50));
        let mut packed = compress(&a).unwrap();
        packed.extend_from_slice(&compress(&b).unwrap());
        let both = [a, b].concat();
        let size = u32::try_from(both.len()).unwrap();
        assert_eq!(decompress(&packed, size).unwrap(), both);
    }

    /// Data already stored by the previous `codec-zstd` (ruzstd 0.9, level
    /// "fastest"; the fixture was compressed by that committed component
    /// through the plugin host) must stay readable.
    #[test]
    fn payloads_of_the_ruzstd_codec_still_decode() {
        let packed = include_bytes!("../tests/data/ruzstd-fastest.zst");
        let input = fixture_input();
        let size = u32::try_from(input.len()).unwrap();
        assert_eq!(decompress(packed, size).unwrap(), input);
        assert!(decompress(packed, size - 1).is_err());
    }

    /// The other direction: frames of this codec decode with ruzstd, the
    /// previous implementation's decoder (a broker rolled back to it reads
    /// them).
    #[test]
    fn frames_decode_with_ruzstd() {
        let input = fixture_input();
        let packed = compress(&input).unwrap();
        let mut output = vec![0u8; input.len()];
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        let written = decoder.decode_all(&packed, &mut output).unwrap();
        assert_eq!(written, input.len());
        assert_eq!(output, input);
    }

    #[test]
    fn a_frame_declaring_a_huge_window_is_refused() {
        // Frame header: magic, descriptor 0 (no single segment, no content
        // size), window descriptor 0xF8 (exponent 31: a 2 GiB window).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
        let error = decompress(&frame, 0).unwrap_err();
        assert!(error.contains("corrupt zstd payload"), "{error}");
    }
}
