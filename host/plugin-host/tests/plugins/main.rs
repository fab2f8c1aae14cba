//! Integration tests of the plugin host against the real components in
//! `plugins/dist/` (built-ins, other languages, misbehaving fixtures).
//!
//! One test binary, one module per area. Hosts share one artifact cache
//! directory (in the system temp dir) so that the large Python and
//! JavaScript components are compiled at most once per machine.

mod cache;
mod codec_compat;
mod conformance;
mod misbehaving;
mod registry;
mod reload;
mod sandbox;

use std::path::{Path, PathBuf};

use distlog_plugin_host::{HostConfig, LoadReport, PluginHost, PluginSpec};

/// The built components under test: `plugins/dist/`, or the directory named by
/// `DISTLOG_PLUGIN_DIST` (CI points it at components freshly rebuilt from source, so the
/// whole suite also runs against builds that are not byte-reproducible).
pub fn dist_dir() -> PathBuf {
    match std::env::var_os("DISTLOG_PLUGIN_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/dist"),
    }
}

pub fn shared_cache_dir() -> PathBuf {
    std::env::temp_dir().join("distlog-plugin-test-cache")
}

pub fn test_config() -> HostConfig {
    let mut config = HostConfig::with_cache_dir(shared_cache_dir());
    config.max_instances = 16;
    // The machine running the tests is shared and small: generous deadlines
    // keep healthy plugins from timing out under load. Tests of timeouts set
    // their own.
    config.default_limits.codec_timeout = std::time::Duration::from_secs(2);
    config.default_limits.compaction_timeout = std::time::Duration::from_secs(2);
    config
}

pub fn host() -> PluginHost {
    PluginHost::new(test_config()).expect("plugin host")
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A bundled plugin (not a fixture), by file stem.
pub fn bundled(name: &str) -> Vec<u8> {
    read(&dist_dir().join(format!("{name}.wasm")))
}

/// A misbehaving (or minimal) fixture, by file stem.
pub fn fixture(name: &str) -> Vec<u8> {
    read(&dist_dir().join("fixtures").join(format!("{name}.wasm")))
}

/// Every bundled plugin: `plugins/dist/*.wasm`, whatever its language.
pub fn all_bundled() -> Vec<(String, PathBuf)> {
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(dist_dir())
        .expect("plugins/dist")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, p)
        })
        .collect();
    all.sort();
    all
}

/// The parameters a bundled plugin needs to start (most need none).
pub fn spec_for(name: &str) -> PluginSpec {
    let spec = PluginSpec::new(name);
    match name {
        "key-json-field" => spec.param("field", "id"),
        "key-header" => spec.param("header", "tenant"),
        _ => spec,
    }
}

pub fn load_bundled(host: &PluginHost, name: &str) -> LoadReport {
    host.load(spec_for(name), bundled(name))
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}
