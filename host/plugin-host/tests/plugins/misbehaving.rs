//! Misbehaving plugins, each a real component: every failure is contained
//! in its call with a typed error, the instance is discarded and counted,
//! and the host keeps serving other plugins (and the same one).

use std::time::Duration;

use distlog_plugin_host::{LoadError, PluginError, PluginHost, PluginLimits, PluginSpec};

use crate::{fixture, host, load_bundled};

/// A healthy codec on the same host still round-trips.
fn still_serving(host: &PluginHost) {
    let input = b"the host keeps serving".repeat(100);
    let c = host.compress("codec-lz4", &input).expect("compress");
    let out = host
        .decompress(&c.codec, &c.data, input.len() as u32)
        .expect("decompress");
    assert_eq!(out, input);
}

fn load_unchecked(host: &PluginHost, name: &str, limits: PluginLimits) {
    host.load(
        PluginSpec::new(name).limits(limits).without_self_test(),
        fixture(name),
    )
    .unwrap_or_else(|e| panic!("load {name}: {e}"));
}

fn stats(host: &PluginHost, name: &str) -> distlog_plugin_host::PluginStats {
    host.stats()
        .into_iter()
        .find(|s| s.name == name && s.current)
        .expect("stats")
        .stats
}

#[test]
fn infinite_loop_times_out() {
    let host = host();
    load_bundled(&host, "codec-lz4");
    load_unchecked(
        &host,
        "loop-forever",
        PluginLimits::default().timeout(Duration::from_millis(30)),
    );
    for _ in 0..2 {
        match host.compress("loop-forever", b"x") {
            Err(PluginError::Timeout { name, timeout_ms }) => {
                assert_eq!(name, "loop-forever");
                assert_eq!(timeout_ms, 30);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        still_serving(&host);
    }
    let s = stats(&host, "loop-forever");
    assert_eq!((s.calls, s.timeouts, s.errors), (2, 2, 2));
    // Each timed-out instance was discarded: two calls, two instances.
    assert_eq!(s.instantiations, 2);
}

#[test]
fn infinite_loop_is_rejected_by_the_self_test() {
    let host = host();
    let mut spec = PluginSpec::new("loop-forever");
    spec.limits = PluginLimits::default().timeout(Duration::from_millis(20));
    match host.load(spec, fixture("loop-forever")) {
        Err(LoadError::SelfTest { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("expected a self-test failure, got {other:?}"),
    }
    assert!(host.info("loop-forever").is_none());
}

#[test]
fn memory_bomb_hits_the_cap() {
    let host = host();
    load_bundled(&host, "codec-lz4");
    load_unchecked(
        &host,
        "memory-bomb",
        PluginLimits::default().memory_bytes(16 << 20),
    );
    match host.compress("memory-bomb", b"boom") {
        Err(PluginError::MemoryExhausted { name, limit_bytes }) => {
            assert_eq!(name, "memory-bomb");
            assert_eq!(limit_bytes, 16 << 20);
        }
        other => panic!("expected memory exhaustion, got {other:?}"),
    }
    still_serving(&host);
    assert_eq!(stats(&host, "memory-bomb").memory_exhausted, 1);
}

#[test]
fn trap_is_contained() {
    let host = host();
    load_bundled(&host, "codec-lz4");
    load_unchecked(&host, "trap", PluginLimits::default());
    for _ in 0..3 {
        match host.decompress(&host.info("trap").unwrap().digest, b"anything", 8) {
            Err(PluginError::Trap { name, message }) => {
                assert_eq!(name, "trap");
                assert!(message.contains("unreachable"), "{message}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
        still_serving(&host);
    }
    let s = stats(&host, "trap");
    assert_eq!((s.traps, s.instantiations), (3, 3));
}

#[test]
fn wrong_exports_are_refused_at_load() {
    let host = host();
    match host.load(PluginSpec::new("wrong-exports"), fixture("wrong-exports")) {
        Err(error @ LoadError::TypeCheck { .. }) => {
            let text = error.to_string();
            assert!(text.contains("codec"), "{text}");
        }
        other => panic!("expected a type-check error, got {other:?}"),
    }
    assert!(host.info("wrong-exports").is_none());
}

#[test]
fn garbage_codec_is_refused_and_never_serves() {
    let host = host();
    match host.load(PluginSpec::new("codec-garbage"), fixture("codec-garbage")) {
        Err(LoadError::SelfTest { reason, .. }) => {
            assert!(reason.contains("round trip"), "{reason}")
        }
        other => panic!("expected a self-test failure, got {other:?}"),
    }
    assert!(host.info("codec-garbage").is_none());
}

#[test]
fn huge_output_is_rejected_by_its_length() {
    let host = host();
    load_bundled(&host, "codec-lz4");
    load_unchecked(
        &host,
        "codec-huge-output",
        PluginLimits::default()
            .memory_bytes(64 << 20)
            .timeout(Duration::from_secs(10)),
    );
    match host.compress("codec-huge-output", b"tiny") {
        Err(PluginError::InvalidOutput { reason, .. }) => {
            assert!(reason.contains("bound"), "{reason}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    let digest = host.info("codec-huge-output").unwrap().digest;
    match host.decompress(&digest, b"tiny", 4) {
        Err(PluginError::InvalidOutput { reason, .. }) => {
            assert!(reason.contains("expected 4"), "{reason}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    still_serving(&host);

    // Under a cap smaller than its output, the same plugin fails on memory.
    load_unchecked(
        &host,
        "codec-huge-output",
        PluginLimits::default().memory_bytes(8 << 20),
    );
    assert!(matches!(
        host.compress("codec-huge-output", b"tiny"),
        Err(PluginError::MemoryExhausted { .. })
    ));
    still_serving(&host);
}

#[test]
fn a_failed_reload_keeps_the_old_version_serving() {
    let host = host();
    // A short deadline so that the looping candidate fails its self-test fast.
    let spec =
        PluginSpec::new("c").limits(PluginLimits::default().timeout(Duration::from_millis(300)));
    let good = host
        .load(spec, fixture("codec-identity-wat"))
        .expect("load");
    for bad in ["codec-garbage", "trap", "loop-forever", "wrong-exports"] {
        let result = host.reload("c", fixture(bad));
        assert!(result.is_err(), "{bad} must be rejected");
        assert_eq!(host.info("c").unwrap().digest, good.digest, "{bad}");
        let compressed = host.compress("c", b"abc").expect("old version serves");
        assert_eq!(compressed.codec, good.digest);
    }
    assert!(matches!(
        host.reload("c", b"not a component".to_vec()),
        Err(LoadError::Compile { .. })
    ));
    assert_eq!(host.info("c").unwrap().digest, good.digest);
}

#[test]
fn fuel_metering_stops_a_loop_before_its_deadline() {
    let mut config = crate::test_config();
    config.fuel_metering = true;
    let host = PluginHost::new(config).unwrap();
    load_bundled(&host, "codec-lz4");
    load_unchecked(
        &host,
        "loop-forever",
        PluginLimits::default()
            .fuel(1_000_000)
            .timeout(Duration::from_secs(60)),
    );
    assert!(matches!(
        host.compress("loop-forever", b"x"),
        Err(PluginError::FuelExhausted { .. })
    ));
    still_serving(&host);
    assert_eq!(stats(&host, "loop-forever").fuel_exhausted, 1);
}

#[test]
fn out_of_bounds_access_is_contained() {
    let host = host();
    load_bundled(&host, "codec-lz4");
    load_unchecked(&host, "out-of-bounds", PluginLimits::default());
    // A store far outside its memory traps.
    match host.compress("out-of-bounds", b"x") {
        Err(PluginError::Trap { message, .. }) => {
            assert!(message.contains("out of bounds"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serving(&host);
    // A result pointing outside its memory cannot be read.
    let digest = host.info("out-of-bounds").unwrap().digest;
    match host.decompress(&digest, b"x", 1) {
        Err(PluginError::InvalidOutput { reason, .. }) => {
            assert!(reason.contains("out of bounds"), "{reason}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    still_serving(&host);
    let s = stats(&host, "out-of-bounds");
    assert_eq!((s.traps, s.invalid_outputs, s.instantiations), (1, 1, 2));
}
