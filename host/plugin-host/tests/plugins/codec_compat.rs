//! Payloads stored by earlier builds of the bundled codecs stay readable by
//! the current components: `plugins/rust/codec-lz4/tests/data/lz4-safe-encoder.lz4`
//! (written by the lz4_flex build of `codec-lz4`) and
//! `plugins/rust/codec-zstd/tests/data/ruzstd-fastest.zst` (the ruzstd build of
//! `codec-zstd`), both compressed through this host by the committed artifacts
//! of those builds. The codec crates test the same payloads natively; this
//! runs them through the wasm components a broker loads.

use distlog_plugin_host::PluginSpec;

use super::{bundled, host, read};

/// The payloads' input: deterministic log lines (the generator of the codec
/// crates' tests).
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

fn payload(crate_dir: &str, file: &str) -> Vec<u8> {
    read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../plugins/rust")
            .join(crate_dir)
            .join("tests/data")
            .join(file),
    )
}

#[test]
fn payloads_of_earlier_codec_builds_decode() {
    let host = host();
    let input = fixture_input();
    let size = u32::try_from(input.len()).unwrap();
    for (codec, crate_dir, file) in [
        ("codec-lz4", "codec-lz4", "lz4-safe-encoder.lz4"),
        ("codec-zstd", "codec-zstd", "ruzstd-fastest.zst"),
    ] {
        let report = host
            .load(PluginSpec::new(codec), bundled(codec))
            .unwrap_or_else(|e| panic!("load {codec}: {e}"));
        let old = payload(crate_dir, file);
        let decoded = host
            .decompress(&report.digest, &old, size)
            .unwrap_or_else(|e| panic!("{codec} on {file}: {e}"));
        assert!(decoded == input, "{codec} decoded {file} to other bytes");
        // A wrong expected size is still refused.
        assert!(host.decompress(&report.digest, &old, size - 1).is_err());
        // And the current build's own output round-trips.
        let new = host.compress(codec, &input).unwrap();
        assert!(host.decompress(&new.codec, &new.data, size).unwrap() == input);
    }
}
