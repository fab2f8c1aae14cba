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
pub fn builtins() -> Vec<Builtin> {
    vec![]
}
