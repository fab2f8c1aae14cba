//! The sandbox holds: a plugin that tries to reach files, sockets or the
//! environment gets errors, and nothing reaches the host.

use distlog_plugin_host::{PluginError, PluginSpec};

use crate::{dist_dir, fixture, host};

#[test]
fn components_without_wasi_get_no_wasi() {
    let host = host();
    host.load(PluginSpec::new("identity"), fixture("codec-identity-wat"))
        .unwrap();
    assert!(!host.info("identity").unwrap().uses_wasi);
}

/// What the probe tries (its own names, see plugins/python/sandbox-probe).
const PROBES: [&str; 7] = [
    "read-file /etc/passwd",
    "list-dir /",
    "write-file /tmp/distlog-sandbox-probe",
    "tcp-connect 127.0.0.1:9",
    "udp-send 127.0.0.1:9",
    "dns-lookup localhost",
    "environment",
];

#[test]
fn sandbox_probe_is_denied_everything() {
    let path = dist_dir().join("fixtures/sandbox-probe.wasm");
    let host = host();
    // The probe reports from `init`, so it never passes a self-test.
    host.load(
        PluginSpec::new("sandbox-probe").without_self_test(),
        crate::read(&path),
    )
    .expect("load probe");
    assert!(host.info("sandbox-probe").unwrap().uses_wasi);
    let report = match host.compress("sandbox-probe", b"probe") {
        Err(PluginError::Instantiate { message, .. }) | Err(PluginError::Guest { message, .. }) => {
            message
        }
        other => panic!("the probe must report through an err, got {other:?}"),
    };
    for probe in PROBES {
        assert!(
            report.contains(&format!("DENIED  {probe}")),
            "{probe} not denied:\n{report}"
        );
    }
    assert!(!report.contains("ALLOWED"), "{report}");
    assert!(
        !std::path::Path::new("/tmp/distlog-sandbox-probe").exists(),
        "the probe wrote a file on the host"
    );
    // The host keeps serving after the probe.
    host.load(PluginSpec::new("identity"), fixture("codec-identity-wat"))
        .unwrap();
    host.compress("identity", b"after the probe").unwrap();
}
