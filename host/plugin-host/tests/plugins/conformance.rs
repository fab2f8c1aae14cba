//! Every bundled plugin, whatever its language, passes the conformance
//! suite of its world; so does the hand-written WAT codec.

use distlog_plugin_host::{PluginKind, conformance};

use crate::{all_bundled, fixture, host, read, spec_for};

#[test]
fn every_bundled_plugin_conforms() {
    let host = host();
    let mut failures = Vec::new();
    let mut kinds = Vec::new();
    for (name, path) in all_bundled() {
        let report = match host.load(spec_for(&name), read(&path)) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{name}: load: {e}"));
                continue;
            }
        };
        kinds.push(report.kind);
        if let Err(e) = conformance::suite(&host, &name) {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
    for kind in PluginKind::ALL {
        assert!(kinds.contains(&kind), "no bundled {kind} plugin was tested");
    }
}

#[test]
fn wat_codec_conforms() {
    let host = host();
    host.load(
        distlog_plugin_host::PluginSpec::new("identity"),
        fixture("codec-identity-wat"),
    )
    .expect("load");
    conformance::codec_suite(&host, "identity").expect("conforms");
}

#[test]
fn builtins_load_and_conform() {
    let host = host();
    let builtins = distlog_plugin_host::builtins();
    assert!(builtins.len() >= 6);
    for builtin in builtins {
        let report = host
            .load(builtin.spec(), builtin.bytes.to_vec())
            .unwrap_or_else(|e| panic!("{}: {e}", builtin.name));
        assert_eq!(report.kind, builtin.kind);
        conformance::suite(&host, builtin.name).expect("conforms");
    }
}

#[test]
fn a_broken_codec_fails_the_suite() {
    let host = host();
    host.load(
        distlog_plugin_host::PluginSpec::new("garbage").without_self_test(),
        fixture("codec-garbage"),
    )
    .expect("load without self-test");
    let error = conformance::codec_suite(&host, "garbage").expect_err("must fail");
    assert_eq!(error.rule, "round-trip", "{error}");
}
