//! LZ4 codec: fast, modest ratio; the default codec for hot topics.
//!
//! Format (one batch payload): the uncompressed length as a u32
//! little-endian, then one LZ4 block (lz4_flex's safe block encoder, which is
//! byte-compatible with the reference LZ4 block format). No frame, no
//! checksum: the batch that carries the payload has its own CRC.
//!
//! `decompress` checks the prepended length against `expected-size` before it
//! allocates, so a corrupt or hostile payload is an `err`, never a trap or an
//! allocation the caller did not ask for. Params: none.

use distlog_plugin_common::Params;

/// Compresses `input` into the format described in the crate docs.
/// Cost: one pass, output at most `input.len() * 1.004 + 20` bytes.
pub fn compress(input: &[u8]) -> Result<Vec<u8>, String> {
    if u32::try_from(input.len()).is_err() {
        return Err(format!("input of {} bytes exceeds 4 GiB", input.len()));
    }
    Ok(lz4_flex::block::compress_prepend_size(input))
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
    let mut output = vec![0u8; size];
    let written = lz4_flex::block::decompress_into(block, &mut output)
        .map_err(|e| format!("corrupt lz4 block: {e}"))?;
    if written != size {
        return Err(format!(
            "lz4 block decoded to {written} bytes, header declares {size}"
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

    struct Lz4;

    impl Guest for Lz4 {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            super::Params::parse(&params, &[])?;
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
}
