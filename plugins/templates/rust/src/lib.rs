//! A starter codec: "store" (no compression) with the checks every codec
//! needs. Replace the bodies of `compress` and `decompress` with your codec;
//! keep the rules of wit/plugin.wit: `decompress(compress(x)) == x` for every
//! input, output independent of params, corrupt input is an `err` (never a
//! panic: with `panic = "abort"` a panic traps and the broker discards the
//! instance).

wit_bindgen::generate!({ path: "../../../wit", world: "codec-plugin" });

use distlog::plugin::host::log;
use distlog::plugin::types::Level;
use exports::distlog::plugin::codec::Guest;

struct MyCodec;

impl Guest for MyCodec {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        // Reject unknown parameters so typos surface when the plugin loads.
        if let Some((key, _)) = params.first() {
            return Err(format!("unknown parameter `{key}`: my-codec takes none"));
        }
        log(Level::Info, "my-codec ready");
        Ok(())
    }

    fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(input)
    }

    fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
        if u32::try_from(input.len()) != Ok(expected_size) {
            return Err(format!(
                "payload of {} bytes, expected {expected_size}",
                input.len()
            ));
        }
        Ok(input)
    }
}

export!(MyCodec);
