//! The sandbox holds: a plugin that tries to reach files, sockets or the
//! environment gets errors, and nothing reaches the host.

use distlog_plugin_host::PluginSpec;

use crate::{dist_dir, fixture, host};

#[test]
fn components_without_wasi_get_no_wasi() {
    let host = host();
    host.load(PluginSpec::new("identity"), fixture("codec-identity-wat"))
        .unwrap();
    assert!(!host.info("identity").unwrap().uses_wasi);
}

#[test]
fn sandbox_probe_is_denied_everything() {
    let path = dist_dir().join("fixtures/sandbox-probe.wasm");
    if !path.exists() {
        eprintln!("sandbox-probe fixture not built yet; skipping");
        return;
    }
    let host = host();
    let marker = std::env::temp_dir().join("distlog-sandbox-probe-marker");
    let _ = std::fs::remove_file(&marker);
    let report = host
        .load(
            PluginSpec::new("sandbox-probe").without_self_test(),
            crate::read(&path),
        )
        .expect("load probe");
    assert!(host.info("sandbox-probe").unwrap().uses_wasi);
    let result = host.compress("sandbox-probe", b"probe");
    let message = format!("{result:?}");
    eprintln!("sandbox probe ({}) said: {message}", report.digest.short());
    assert!(result.is_err(), "probe must report denial: {message}");
    assert!(!marker.exists(), "the probe wrote a file on the host");
}
