//! zstd codec: a better ratio than LZ4 at a higher CPU cost; for cold or
//! bandwidth-bound topics.
//!
//! Format: standard Zstandard frames (RFC 8878), so any zstd tool can read a
//! payload. The compressor is ruzstd's pure-Rust encoder at its only
//! implemented level, "fastest" (about `zstd -1`); the decoder reads frames of
//! any level, including those written by the reference zstd at level 19, so a
//! later, stronger compressor keeps every old payload readable.
//!
//! `decompress` decodes into a buffer of exactly `expected-size` bytes: a
//! payload that would decode to more is an `err` before the excess is
//! produced, one that decodes to less is an `err` too. The decoder's window
//! is capped at 8 MiB, which bounds its memory on hostile frames. Params: none.

use distlog_plugin_common::Params;
use ruzstd::decoding::FrameDecoder;
use ruzstd::encoding::{CompressionLevel, compress_to_vec};

/// Largest window a payload may ask the decoder for. Our own frames use
/// ruzstd's "fastest" window; reference zstd uses at most 8 MiB up to level 19
/// for inputs of batch size.
const MAX_WINDOW_BYTES: u64 = 8 << 20;

/// Compresses `input` into one zstd frame. Cost: one pass; output at most a
/// few bytes per 128 KiB block larger than the input.
pub fn compress(input: &[u8]) -> Result<Vec<u8>, String> {
    Ok(compress_to_vec(input, CompressionLevel::Fastest))
}

/// Decodes zstd frames that must produce exactly `expected_size` bytes.
pub fn decompress(input: &[u8], expected_size: u32) -> Result<Vec<u8>, String> {
    let size =
        usize::try_from(expected_size).map_err(|_| "length exceeds address space".to_string())?;
    let mut output = vec![0u8; size];
    let mut decoder = FrameDecoder::new();
    decoder.set_max_window_size(MAX_WINDOW_BYTES);
    let written = decoder
        .decode_all(input, &mut output)
        .map_err(|e| format!("corrupt zstd payload (expected {size} bytes): {e}"))?;
    if written != size {
        return Err(format!(
            "zstd payload decoded to {written} bytes, the batch expects {size}"
        ));
    }
    Ok(output)
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "codec-plugin" });

    use distlog::plugin::host::log;
    use distlog::plugin::types::Level;
    use exports::distlog::plugin::codec::Guest;

    struct Zstd;

    impl Guest for Zstd {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            super::Params::parse(&params, &[])?;
            log(Level::Debug, "codec-zstd ready: zstd frames, level fastest");
            Ok(())
        }

        fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
            super::compress(&input)
        }

        fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
            super::decompress(&input, expected_size)
        }
    }

    export!(Zstd);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_corruption() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(3000);
        for input in [&b""[..], b"a", &[7u8; 300_000], &text] {
            let packed = compress(input).unwrap();
            let size = u32::try_from(input.len()).unwrap();
            assert_eq!(decompress(&packed, size).unwrap(), input);
            assert!(decompress(&packed, size + 1).is_err());
            if size > 0 {
                assert!(decompress(&packed, size - 1).is_err());
            }
        }
        assert!(decompress(b"not zstd at all", 15).is_err());
        let mut packed = compress(&text).unwrap();
        packed.truncate(packed.len() / 2);
        assert!(decompress(&packed, u32::try_from(text.len()).unwrap()).is_err());
    }
}
