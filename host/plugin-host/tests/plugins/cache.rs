//! The on-disk artifact cache: a second load of the same component (by a
//! new host, as after a restart) loads the precompiled artifact instead of
//! compiling; an unreadable artifact is recompiled, not trusted.

use distlog_plugin_host::{CacheOutcome, HostConfig, PluginHost, PluginSpec};

use crate::bundled;

fn host_with_cache(dir: &std::path::Path) -> PluginHost {
    PluginHost::new(HostConfig::with_cache_dir(dir)).unwrap()
}

#[test]
fn second_load_hits_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = host_with_cache(dir.path())
        .load(PluginSpec::new("lz4"), bundled("codec-lz4"))
        .unwrap();
    assert_eq!(first.cache, CacheOutcome::Miss);
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].starts_with(&first.digest.to_hex()));

    let host = host_with_cache(dir.path());
    let second = host
        .load(PluginSpec::new("lz4"), bundled("codec-lz4"))
        .unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(second.digest, first.digest);
    let c = host.compress("lz4", b"from the cache").unwrap();
    assert_eq!(
        host.decompress(&c.codec, &c.data, 14).unwrap(),
        b"from the cache"
    );
}

#[test]
fn corrupt_artifact_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    host_with_cache(dir.path())
        .load(PluginSpec::new("zstd"), bundled("codec-zstd"))
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupted artifact").unwrap();
    }
    let host = host_with_cache(dir.path());
    let report = host
        .load(PluginSpec::new("zstd"), bundled("codec-zstd"))
        .unwrap();
    assert_eq!(report.cache, CacheOutcome::Miss);
    host.compress("zstd", b"recompiled").unwrap();
    // The rewritten artifact is good again.
    let again = host_with_cache(dir.path())
        .load(PluginSpec::new("zstd"), bundled("codec-zstd"))
        .unwrap();
    assert_eq!(again.cache, CacheOutcome::Hit);
}
