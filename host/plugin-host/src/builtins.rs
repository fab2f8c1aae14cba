//! Built-in plugins: the small Rust components from `plugins/dist/`,
//! embedded in the binary so the broker needs no plugin directory.

use crate::{PluginKind, PluginSpec};

/// A plugin embedded in the broker.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Builtin {
    /// The name it is loaded under by default (its file stem).
    pub name: &'static str,
    pub kind: PluginKind,
    /// The component's bytes.
    pub bytes: &'static [u8],
    /// The `init` parameters it needs to start (only `key-json-field` needs
    /// one: the JSON field, `id` by default). Load it again under another
    /// name with other parameters for another field.
    pub params: &'static [(&'static str, &'static str)],
}

impl Builtin {
    /// The spec to load it with: its name, kind and default parameters.
    pub fn spec(&self) -> PluginSpec {
        let mut spec = PluginSpec::new(self.name).kind(self.kind);
        for (key, value) in self.params {
            spec = spec.param(*key, *value);
        }
        spec
    }
}

/// Every built-in plugin. Loading them is the caller's choice:
/// `host.load(b.spec(), b.bytes.to_vec())`.
///
/// Cost: none at call time; together they add ~430 KB to the binary.
pub fn builtins() -> Vec<Builtin> {
    macro_rules! builtin {
        ($name:literal, $kind:expr) => {
            builtin!($name, $kind, &[])
        };
        ($name:literal, $kind:expr, $params:expr) => {
            Builtin {
                name: $name,
                kind: $kind,
                bytes: include_bytes!(concat!("../../../plugins/dist/", $name, ".wasm")),
                params: $params,
            }
        };
    }
    vec![
        builtin!("codec-lz4", PluginKind::Codec),
        builtin!("codec-zstd", PluginKind::Codec),
        builtin!("retention-time", PluginKind::Retention),
        builtin!("retention-size", PluginKind::Retention),
        builtin!("key-json-field", PluginKind::Compaction, &[("field", "id")]),
        builtin!("key-record-key", PluginKind::Compaction),
    ]
}
