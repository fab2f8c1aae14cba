//! The registry: versions by digest, codec identity (old data keeps
//! decoding), pins that refuse unloading, kinds, names, stats, and the
//! instance budget.

use std::sync::Arc;

use distlog_plugin_host::{
    HostConfig, LoadError, PluginDigest, PluginError, PluginHost, PluginKind, PluginSpec,
    RegistryError,
};

use crate::{bundled, fixture, host, load_bundled, test_config};

#[test]
fn codec_versions_stay_decodable_and_pins_refuse_unload() {
    let host = host();
    let input = b"written under the first version".repeat(50);
    let v1 = host
        .load(PluginSpec::new("c"), bundled("codec-lz4"))
        .unwrap();
    let old = host.compress("c", &input).unwrap();
    assert_eq!(old.codec, v1.digest);
    host.pin(&old.codec).unwrap();

    let v2 = host.reload("c", bundled("codec-zstd")).unwrap();
    assert_eq!(v2.replaced, Some(v1.digest));
    let new = host.compress("c", &input).unwrap();
    assert_eq!(new.codec, v2.digest);

    // Both versions decode what they wrote.
    let n = input.len() as u32;
    assert_eq!(host.decompress(&old.codec, &old.data, n).unwrap(), input);
    assert_eq!(host.decompress(&new.codec, &new.data, n).unwrap(), input);

    // The pinned old version cannot go, nor can the name.
    let refused = host.unload_version(&v1.digest).unwrap_err();
    assert!(matches!(refused, RegistryError::CodecInUse { .. }));
    assert!(
        refused.to_string().contains(&v1.digest.short()),
        "{refused}"
    );
    assert!(matches!(
        host.unload("c"),
        Err(RegistryError::CodecInUse { .. })
    ));
    // The current version cannot be dropped on its own.
    assert!(matches!(
        host.unload_version(&v2.digest),
        Err(RegistryError::CurrentVersion { .. })
    ));

    host.unpin(&old.codec);
    host.unload_version(&v1.digest).unwrap();
    assert_eq!(
        host.decompress(&v1.digest, &old.data, n),
        Err(PluginError::UnknownVersion(v1.digest))
    );
    host.unload("c").unwrap();
    assert!(matches!(
        host.compress("c", b"x"),
        Err(PluginError::NotFound(_))
    ));
}

#[test]
fn pin_of_an_unknown_version_is_refused() {
    let host = host();
    let digest = PluginDigest::of(b"never loaded");
    assert_eq!(
        host.pin(&digest),
        Err(RegistryError::UnknownVersion(digest))
    );
    assert_eq!(
        host.decompress(&digest, b"", 0),
        Err(PluginError::UnknownVersion(digest))
    );
}

#[test]
fn kinds_are_detected_and_enforced() {
    let host = host();
    assert_eq!(
        load_bundled(&host, "retention-time").kind,
        PluginKind::Retention
    );
    assert_eq!(
        load_bundled(&host, "key-record-key").kind,
        PluginKind::Compaction
    );
    assert_eq!(load_bundled(&host, "codec-lz4").kind, PluginKind::Codec);

    // A codec cannot replace a retention policy.
    assert!(matches!(
        host.reload("retention-time", bundled("codec-lz4")),
        Err(LoadError::WrongKind {
            expected: PluginKind::Retention,
            actual: PluginKind::Codec,
            ..
        })
    ));
    // Nor be loaded when another kind is required.
    assert!(matches!(
        host.load(
            PluginSpec::new("x").kind(PluginKind::Compaction),
            bundled("codec-lz4")
        ),
        Err(LoadError::WrongKind { .. })
    ));
    // Calls of the wrong kind are typed errors.
    assert!(matches!(
        host.compress("retention-time", b"x"),
        Err(PluginError::WrongKind { .. })
    ));
    assert!(matches!(
        host.extract_keys("codec-lz4", &[]),
        Err(PluginError::WrongKind { .. })
    ));
}

#[test]
fn names_and_params_are_validated() {
    let host = host();
    for bad in ["", "a/b", "../x", "with space", &"x".repeat(200)] {
        assert!(matches!(
            host.load(PluginSpec::new(bad), bundled("codec-lz4")),
            Err(LoadError::InvalidName(_))
        ));
    }
    // init rejects unknown parameters: the load fails with the plugin's message.
    let error = host
        .load(
            PluginSpec::new("lz4").param("levle", "3"),
            bundled("codec-lz4"),
        )
        .unwrap_err();
    assert!(error.to_string().contains("levle"), "{error}");
    // A missing required parameter likewise.
    let error = host
        .load(PluginSpec::new("k"), bundled("key-json-field"))
        .unwrap_err();
    assert!(error.to_string().contains("field"), "{error}");
    // Reloading the same bytes and spec is a no-op.
    let first = load_bundled(&host, "codec-lz4");
    let again = load_bundled(&host, "codec-lz4");
    assert!(!first.unchanged);
    assert!(again.unchanged);
    assert_eq!(first.digest, again.digest);
}

#[test]
fn retention_and_key_extraction_calls() {
    use distlog_plugin_host::{Header, LogRecord, PartitionInfo, SegmentInfo};
    let host = host();
    load_bundled(&host, "retention-time");
    load_bundled(&host, "key-json-field");
    let now = 10_000_000i64;
    let segment = |base: u64, max_ts: i64, active: bool| SegmentInfo {
        base_offset: base,
        last_offset: base + 9,
        size_bytes: 100,
        first_timestamp: max_ts - 10,
        max_timestamp: max_ts,
        record_count: 10,
        active,
    };
    let segments = [
        segment(0, 1000, false),
        segment(10, now - 10, false),
        segment(20, 5, true),
    ];
    let partition = PartitionInfo {
        topic: "t".into(),
        partition: 0,
        config: vec![("retention.ms".into(), "1000".into())],
    };
    let deletions = host
        .select_deletions("retention-time", &partition, &segments, now)
        .unwrap();
    let bases: Vec<u64> = deletions.iter().map(|d| d.base_offset).collect();
    assert_eq!(bases, vec![0], "{deletions:?}");

    let records = vec![
        LogRecord {
            key: Some(b"k".to_vec()),
            value: Some(br#"{"id":"user-7"}"#.to_vec()),
            headers: vec![Header {
                key: "h".into(),
                value: b"v".to_vec(),
            }],
            timestamp: 1,
        },
        LogRecord {
            key: None,
            value: Some(b"not json".to_vec()),
            headers: vec![],
            timestamp: 2,
        },
    ];
    let keys = host.extract_keys("key-json-field", &records).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0]
            .as_deref()
            .is_some_and(|k| k.windows(6).any(|w| w == b"user-7")),
        "{keys:?}"
    );

    let stats = host.stats();
    let ret = stats.iter().find(|s| s.name == "retention-time").unwrap();
    assert_eq!((ret.stats.calls, ret.stats.errors), (1, 0));
    assert!(ret.stats.instantiations >= 1);
    assert!(ret.idle_instances >= 1);
}

#[test]
fn instance_budget_evicts_idle_instances_and_queues_callers() {
    let mut config: HostConfig = test_config();
    config.max_instances = 2;
    let host = PluginHost::new(config).unwrap();
    load_bundled(&host, "codec-lz4");
    load_bundled(&host, "codec-zstd");
    host.load(PluginSpec::new("identity"), fixture("codec-identity-wat"))
        .unwrap();
    // Three plugins, two instance slots: each call may need to evict
    // another plugin's idle instance.
    for _ in 0..3 {
        for name in ["codec-lz4", "codec-zstd", "identity"] {
            host.compress(name, b"budget").unwrap();
        }
    }
    // Four threads share two slots: callers wait, none fails.
    let host = Arc::new(host);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let host = Arc::clone(&host);
            std::thread::spawn(move || {
                let name = ["codec-lz4", "codec-zstd"][i % 2];
                for _ in 0..50 {
                    let c = host.compress(name, b"queued caller").unwrap();
                    host.decompress(&c.codec, &c.data, 13).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
