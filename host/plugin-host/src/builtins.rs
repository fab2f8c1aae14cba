//! Built-in plugins: the small Rust components from `plugins/dist/`,
//! embedded in the binary so the broker needs no plugin directory.

use crate::PluginKind;

/// A plugin embedded in the broker.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Builtin {
    /// The name it is loaded under by default (its file stem).
    pub name: &'static str,
    pub kind: PluginKind,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

/// Every built-in plugin. Loading them is the caller's choice (e.g.
/// `host.load(PluginSpec::new(b.name).kind(b.kind), b.bytes.to_vec())`).
///
/// Cost: none at call time; together they add ~430 KB to the binary.
pub fn builtins() -> Vec<Builtin> {
    macro_rules! builtin {
        ($name:literal, $kind:expr) => {
            Builtin {
                name: $name,
                kind: $kind,
                bytes: include_bytes!(concat!("../../../plugins/dist/", $name, ".wasm")),
            }
        };
    }
    vec![
        builtin!("codec-lz4", PluginKind::Codec),
        builtin!("codec-zstd", PluginKind::Codec),
        builtin!("retention-time", PluginKind::Retention),
        builtin!("retention-size", PluginKind::Retention),
        builtin!("key-json-field", PluginKind::Compaction),
        builtin!("key-record-key", PluginKind::Compaction),
    ]
}
