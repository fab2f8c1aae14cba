//! Hot reload: under continuous calls from several threads, swapping codec
//! versions fails zero calls and data written under every version keeps
//! decoding; concurrent reloads merge; a watched directory reloads on write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use distlog_plugin_host::{LoadError, PluginDigest, PluginSpec};

use crate::{bundled, fixture, host};

#[test]
fn reload_under_load_fails_no_call() {
    let host = host();
    host.load(PluginSpec::new("codec"), bundled("codec-lz4"))
        .unwrap();
    let versions = [
        bundled("codec-zstd"),
        fixture("codec-identity-wat"),
        bundled("codec-lz4"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (host, stop, calls) = (host.clone(), Arc::clone(&stop), Arc::clone(&calls));
            std::thread::spawn(move || {
                // One sample per version seen, decoded again at the end.
                let mut written: HashMap<PluginDigest, (Vec<u8>, Vec<u8>)> = HashMap::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) || i < 10 {
                    let input = format!("thread {t} call {i} ").repeat(20).into_bytes();
                    let c = host
                        .compress("codec", &input)
                        .expect("compress during reload");
                    let out = host
                        .decompress(&c.codec, &c.data, input.len() as u32)
                        .expect("decompress during reload");
                    assert_eq!(out, input);
                    written.entry(c.codec).or_insert((input, c.data));
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                written
            })
        })
        .collect();

    let mut swaps = 0;
    for round in 0..3 {
        for bytes in &versions {
            // Wait for some calls between swaps (not a sleep: a condition).
            let before = calls.load(Ordering::Relaxed);
            while calls.load(Ordering::Relaxed) < before + 20 {
                std::thread::yield_now();
            }
            let report = host.reload("codec", bytes.clone()).expect("reload");
            assert!(!report.unchanged, "round {round}");
            swaps += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);

    let mut written = HashMap::new();
    for t in threads {
        written.extend(t.join().expect("no call failed"));
    }
    assert_eq!(swaps, 9);
    assert!(written.len() >= 2, "calls saw {} versions", written.len());
    // Data written under every version still decodes after all the swaps.
    for (digest, (input, data)) in written {
        assert_eq!(
            host.decompress(&digest, &data, input.len() as u32).unwrap(),
            input
        );
    }
    let errors: u64 = host.stats().iter().map(|s| s.stats.errors).sum();
    assert_eq!(errors, 0);
}

#[test]
fn concurrent_reloads_merge() {
    let host = host();
    host.load(PluginSpec::new("codec"), bundled("codec-lz4"))
        .unwrap();
    let candidates = [
        bundled("codec-zstd"),
        fixture("codec-identity-wat"),
        bundled("codec-lz4"),
        bundled("codec-zstd"),
        fixture("codec-identity-wat"),
        bundled("codec-lz4"),
    ];
    let barrier = Arc::new(Barrier::new(candidates.len()));
    let threads: Vec<_> = candidates
        .into_iter()
        .map(|bytes| {
            let (host, barrier) = (host.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                host.reload("codec", bytes)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut applied = 0;
    for result in &results {
        match result {
            Ok(_) => applied += 1,
            Err(LoadError::Superseded { name }) => assert_eq!(name, "codec"),
            Err(e) => panic!("unexpected reload error: {e}"),
        }
    }
    assert!(applied >= 1);
    // The host serves whichever version won.
    let c = host.compress("codec", b"after the merge").unwrap();
    assert_eq!(
        host.decompress(&c.codec, &c.data, 15).unwrap(),
        b"after the merge"
    );
}

#[test]
fn watched_directory_reloads_on_write() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.wasm"), bundled("codec-lz4")).unwrap();
    std::fs::write(dir.path().join("ignored.txt"), b"not a plugin").unwrap();
    let watcher = host.watch_dir(dir.path()).unwrap();
    let next = |want: &str| loop {
        let event = watcher
            .events()
            .recv_timeout(Duration::from_secs(60))
            .expect("watch event");
        if event.name == want {
            return event;
        }
    };
    let first = next("w").result.expect("initial load");
    assert_eq!(host.info("w").unwrap().digest, first.digest);

    // Deploy a new version: write elsewhere, rename into place.
    let tmp = dir.path().join("w.wasm.tmp");
    std::fs::write(&tmp, bundled("codec-zstd")).unwrap();
    std::fs::rename(&tmp, dir.path().join("w.wasm")).unwrap();
    let zstd = PluginDigest::of(&bundled("codec-zstd"));
    loop {
        let event = next("w");
        if event.result.as_ref().is_ok_and(|r| r.digest == zstd) {
            break;
        }
    }
    assert_eq!(host.info("w").unwrap().digest, zstd);

    // A broken file is rejected; the last good version keeps serving.
    std::fs::write(&tmp, b"\0asm garbage").unwrap();
    std::fs::rename(&tmp, dir.path().join("w.wasm")).unwrap();
    loop {
        if next("w").result.is_err() {
            break;
        }
    }
    assert_eq!(host.info("w").unwrap().digest, zstd);
    host.compress("w", b"still serving").unwrap();
    let (tx, _rx) = mpsc::channel::<()>();
    drop(tx);
}
