//! LZ4 codec: fast, modest ratio; the default codec for hot topics.
//!
//! Format (one batch payload): the uncompressed length as a u32
//! little-endian, then one block in the reference LZ4 block format. No frame, no
//! checksum: the batch that carries the payload has its own CRC.
//!
//! `decompress` checks the prepended length against `expected-size` before it
//! allocates, so a corrupt or hostile payload is an `err`, never a trap or an
//! allocation the caller did not ask for. Params: none.
//!
//! Speed: the encoder is this crate's own ([`encode`]: the reference
//! algorithm with 8-byte match counting, which lz4_flex's does only on
//! 64-bit targets); the decoder is lz4_flex's pointer-based one (not its
//! `safe-decode` variant), which bounds-checks every read and write against the
//! input and the output buffer whatever the input (lz4_flex 0.11 always
//! does), so corrupt input is an `err`, never a write outside the buffer;
//! and the guest runs in the host's sandbox in any case. Neither direction
//! zero-fills its output first: compress writes into a buffer allocated at
//! the block format's bound, decompress straight into a buffer of
//! `expected-size` bytes, and each buffer is the one handed to the host.

pub mod decode;
pub mod encode;

/// Compresses `input` into the format described in the crate docs.
/// Cost: one pass; the output buffer is allocated once at the block
/// format's bound (`input.len() * 256 / 255 + 20` bytes) and not zeroed.
pub fn compress(input: &[u8]) -> Result<Vec<u8>, String> {
    if u32::try_from(input.len()).is_err() {
        return Err(format!("input of {} bytes exceeds 4 GiB", input.len()));
    }
    let mut output = Vec::with_capacity(4 + encode::max_block_len(input.len()));
    output.extend_from_slice(&(input.len() as u32).to_le_bytes());
    encode::compress_into(input, &mut output);
    Ok(output)
}

/// Decompresses a payload produced by [`compress`], which must decode to
/// exactly `expected_size` bytes.
pub fn decompress(input: &[u8], expected_size: u32) -> Result<Vec<u8>, String> {
    let Some((header, block)) = input.split_first_chunk::<4>() else {
        return Err(format!(
            "lz4 payload of {} bytes is shorter than its 4-byte length header",
            input.len()
        ));
    };
    let declared = u32::from_le_bytes(*header);
    if declared != expected_size {
        return Err(format!(
            "lz4 payload declares {declared} bytes, the batch expects {expected_size}"
        ));
    }
    let size = usize::try_from(declared).map_err(|_| "length exceeds address space".to_string())?;
    decode::decompress(block, size).map_err(|e| format!("corrupt lz4 block: {e}"))
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "codec-plugin" });

    use distlog::plugin::host::log;
    use distlog::plugin::types::Level;
    use exports::distlog::plugin::codec::Guest;

    struct Lz4;

    impl Guest for Lz4 {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            distlog_plugin_common::Params::parse(&params, &[])?;
            log(
                Level::Debug,
                "codec-lz4 ready: lz4 block, u32 LE size prefix",
            );
            Ok(())
        }

        fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
            super::compress(&input)
        }

        fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
            super::decompress(&input, expected_size)
        }
    }

    export!(Lz4);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_corruption() {
        for input in [&b""[..], b"a", &[7u8; 100_000], b"hello hello hello hello"] {
            let packed = compress(input).unwrap();
            let size = u32::try_from(input.len()).unwrap();
            assert_eq!(decompress(&packed, size).unwrap(), input);
            assert!(decompress(&packed, size + 1).is_err());
        }
        assert!(decompress(b"", 0).is_err());
        assert!(decompress(&[5, 0, 0, 0, 0xff, 0xff, 0xff], 5).is_err());
    }

    /// A block that decodes to more than its header declares is an error,
    /// not a write past the buffer; so is any truncation or bit flip that
    /// makes the block inconsistent.
    #[test]
    fn hostile_blocks_are_errors() {
        let input = b"abcdefgh".repeat(4096);
        let packed = compress(&input).unwrap();
        let size = u32::try_from(input.len()).unwrap();
        // Same block, smaller declared size.
        let mut lying = packed.clone();
        lying[..4].copy_from_slice(&(size / 2).to_le_bytes());
        assert!(decompress(&lying, size / 2).is_err());
        // Every truncation.
        for cut in 4..packed.len() {
            assert!(decompress(&packed[..cut], size).is_err(), "cut at {cut}");
        }
        // Flipped bytes decode to an error or to other bytes of the right
        // length, never to anything else.
        for at in 4..packed.len() {
            let mut flipped = packed.clone();
            flipped[at] ^= 0x55;
            if let Ok(out) = decompress(&flipped, size) {
                assert_eq!(out.len(), input.len());
            }
        }
    }

    /// The input of `tests/data/lz4-safe-encoder.lz4`: deterministic log
    /// lines (the same generator as codec-zstd's fixture).
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

    /// Data already stored by the previous `codec-lz4` (lz4_flex's safe
    /// encoder; the fixture was compressed by that committed component
    /// through the plugin host) must stay readable.
    #[test]
    fn payloads_of_the_safe_encoder_still_decode() {
        let packed = include_bytes!("../tests/data/lz4-safe-encoder.lz4");
        let input = fixture_input();
        let size = u32::try_from(input.len()).unwrap();
        assert_eq!(decompress(packed, size).unwrap(), input);
        let ours = compress(&input).unwrap();
        assert_eq!(decompress(&ours, size).unwrap(), input);
    }
}
