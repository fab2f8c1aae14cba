//! Host bindings generated from `wit/plugin.wit`, one `bindgen!` per world.
//!
//! The `types` and `host` interfaces are generated once (with the codec
//! world) and shared by the other worlds through `with`, so a single
//! [`Linker`](wasmtime::component::Linker) serves components of every kind.

/// Bindings for the `codec-plugin` world; also the home of the shared
/// `distlog:plugin/types` and `distlog:plugin/host` interfaces.
pub mod codec {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "codec-plugin",
    });
}

/// Bindings for the `retention-plugin` world.
pub mod retention {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "retention-plugin",
        with: {
            "distlog:plugin/types": super::codec::distlog::plugin::types,
            "distlog:plugin/host": super::codec::distlog::plugin::host,
        },
    });
}

/// Bindings for the `compaction-plugin` world.
pub mod compaction {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "compaction-plugin",
        with: {
            "distlog:plugin/types": super::codec::distlog::plugin::types,
            "distlog:plugin/host": super::codec::distlog::plugin::host,
        },
    });
}

pub(crate) use codec::distlog::plugin::host as wit_host;
pub(crate) use codec::distlog::plugin::types as wit_types;
