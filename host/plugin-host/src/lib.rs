//! The WebAssembly plugin runtime: the only crate that knows wasmtime.
