//! A starter codec: "store" (no compression) with the checks every codec
//! needs. Replace the bodies of `compress` and `decompress` with your codec;
//! keep the rules of wit/plugin.wit: `decompress(compress(x)) == x` for every
//! input, output independent of params, corrupt input is an `err` (never a
//! panic: with `panic = "abort"` a panic traps and the broker discards the
//! instance).

use distlog_plugin_sdk::codec::{Codec, check_size};
use distlog_plugin_sdk::{Level, Params, export_codec, log};

struct MyCodec;

impl Codec for MyCodec {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        // Reject unknown parameters so typos surface when the plugin loads.
        Params::parse(&params, &[])?;
        log(Level::Info, "my-codec ready");
        Ok(())
    }

    fn compress(input: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(input)
    }

    fn decompress(input: Vec<u8>, expected_size: u32) -> Result<Vec<u8>, String> {
        check_size(&input, expected_size)?;
        Ok(input)
    }
}

export_codec!(MyCodec);
