//! Plugin host benchmarks (`harness = false`): each figure is reported next
//! to a baseline measured in the same run, with the ratio.
//!
//! - Per-call overhead of a trivial call (the WAT identity codec on 16
//!   bytes) vs a native copy of the same 16 bytes.
//! - LZ4 throughput: the `codec-lz4` component vs `lz4_flex` compiled
//!   natively with the same features, compress and decompress, on 1 MiB of
//!   log-like text.
//! - Load time: cold (compile) vs cached (precompiled artifact), for the LZ4
//!   component and for the largest bundled component (Python/JS when built).
//! - Reload: end-to-end reload time (artifact cached, self-test included),
//!   the swap itself, and the latency of calls made during reloads vs
//!   without.
//!
//! `cargo bench -p distlog-benches --bench plugins` (about a minute, plus
//! ~20 s per large interpreter component on its cold compile);
//! `DISTLOG_BENCH_QUICK=1` for a quick pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use distlog_plugin_host::{CacheOutcome, HostConfig, PluginHost, PluginSpec};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn quick() -> bool {
    std::env::var_os("DISTLOG_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick")
}

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist")
}

/// Median of per-iteration times over `iters` runs of `f`.
fn median<F: FnMut() -> Result<()>>(iters: usize, mut f: F) -> Result<Duration> {
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Mean time per call over a timed loop of `n` calls (after a warm-up).
fn per_call<F: FnMut() -> Result<()>>(n: usize, mut f: F) -> Result<Duration> {
    for _ in 0..n / 10 + 1 {
        f()?;
    }
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed() / n as u32)
}

fn row(what: &str, value: String, baseline: String, ratio: f64) {
    let ratio = if ratio > 0.0 {
        format!("{ratio:.3}")
    } else {
        "-".into()
    };
    println!("| {what:<50} | {value:>14} | {baseline:>14} | {ratio:>8} |");
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() -> Result<()> {
    let quick = quick();
    let cache = tempfile::tempdir()?;
    let host = PluginHost::new(HostConfig::with_cache_dir(cache.path()))?;
    let lz4_bytes = std::fs::read(dist().join("codec-lz4.wasm"))?;
    let identity_bytes = std::fs::read(dist().join("fixtures/codec-identity-wat.wasm"))?;
    host.load(PluginSpec::new("lz4"), lz4_bytes.clone())?;
    host.load(PluginSpec::new("identity"), identity_bytes.clone())?;

    println!(
        "| {:<50} | {:>14} | {:>14} | {:>8} |",
        "benchmark", "plugin", "baseline", "ratio"
    );
    println!("|{:-<52}|{:-<16}|{:-<16}|{:-<10}|", "", "", "", "");

    // 1. Per-call overhead.
    let n = if quick { 20_000 } else { 200_000 };
    let small = [7u8; 16];
    let wasm = per_call(n, || {
        std::hint::black_box(host.compress("identity", std::hint::black_box(&small))?);
        Ok(())
    })?;
    let native = per_call(n, || {
        std::hint::black_box(std::hint::black_box(&small).to_vec());
        Ok(())
    })?;
    row(
        "trivial call, 16 B (identity codec vs to_vec)",
        us(wasm),
        us(native),
        wasm.as_secs_f64() / native.as_secs_f64(),
    );

    // 2. LZ4 throughput, wasm vs native.
    let input = distlog_plugin_host::samples::compressible_bytes(1 << 20);
    let iters = if quick { 20 } else { 200 };
    let wasm_c = median(iters, || {
        std::hint::black_box(host.compress("lz4", &input)?);
        Ok(())
    })?;
    let native_c = median(iters, || {
        std::hint::black_box(lz4_flex::block::compress_prepend_size(&input));
        Ok(())
    })?;
    row(
        "lz4 compress 1 MiB log text, MB/s",
        format!("{:.0}", mbps(input.len(), wasm_c)),
        format!("{:.0}", mbps(input.len(), native_c)),
        mbps(input.len(), wasm_c) / mbps(input.len(), native_c),
    );
    let compressed = host.compress("lz4", &input)?;
    let native_compressed = lz4_flex::block::compress_prepend_size(&input);
    let size = input.len() as u32;
    let wasm_d = median(iters, || {
        std::hint::black_box(host.decompress(&compressed.codec, &compressed.data, size)?);
        Ok(())
    })?;
    let native_d = median(iters, || {
        std::hint::black_box(lz4_flex::block::decompress_size_prepended(
            &native_compressed,
        )?);
        Ok(())
    })?;
    row(
        "lz4 decompress 1 MiB log text, MB/s",
        format!("{:.0}", mbps(input.len(), wasm_d)),
        format!("{:.0}", mbps(input.len(), native_d)),
        mbps(input.len(), wasm_d) / mbps(input.len(), native_d),
    );
    row(
        &format!(
            "  (lz4 ratio {:.2}x: {} -> {} bytes)",
            input.len() as f64 / compressed.data.len() as f64,
            input.len(),
            compressed.data.len()
        ),
        String::new(),
        String::new(),
        0.0,
    );

    // 3. Cold vs cached load.
    let mut components = vec![("codec-lz4".to_owned(), lz4_bytes.clone())];
    let largest = std::fs::read_dir(dist())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .max_by_key(|p| p.metadata().map(|m| m.len()).unwrap_or(0));
    if let Some(path) = largest {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name != "codec-lz4" {
            components.push((name, std::fs::read(&path)?));
        }
    }
    for (name, bytes) in components {
        let dir = tempfile::tempdir()?;
        let load = || -> Result<(Duration, CacheOutcome)> {
            let host = PluginHost::new(HostConfig::with_cache_dir(dir.path()))?;
            let mut spec = PluginSpec::new(&name).without_self_test();
            if name == "key-json-field" {
                spec = spec.param("field", "id");
            }
            let r = host.load(spec, bytes.clone())?;
            Ok((r.compile_time, r.cache))
        };
        let (cold, outcome) = load()?;
        assert_eq!(outcome, CacheOutcome::Miss);
        let cached = median(if quick { 3 } else { 10 }, || {
            let (_, outcome) = load()?;
            assert_eq!(outcome, CacheOutcome::Hit);
            Ok(())
        })?;
        row(
            &format!(
                "load {name} ({} KB): cached vs cold compile",
                bytes.len() / 1000
            ),
            ms(cached),
            ms(cold),
            cached.as_secs_f64() / cold.as_secs_f64(),
        );
    }

    // 4. Reload under calls.
    let zstd_bytes = std::fs::read(dist().join("codec-zstd.wasm"))?;
    host.load(PluginSpec::new("hot"), lz4_bytes.clone())?;
    host.reload("hot", zstd_bytes.clone())?; // warm the artifact cache
    let call_input = distlog_plugin_host::samples::compressible_bytes(4096);
    let latencies = |during_reload: bool| -> Result<(Duration, Duration)> {
        let stop = Arc::new(AtomicBool::new(false));
        let caller = {
            let (host, stop, input) = (host.clone(), Arc::clone(&stop), call_input.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let c = host.compress("hot", &input).expect("call during reload");
                    host.decompress(&c.codec, &c.data, input.len() as u32)
                        .expect("call during reload");
                    times.push(t.elapsed());
                }
                times
            })
        };
        let reloads = if quick { 6 } else { 30 };
        let mut swap = Vec::new();
        let mut total = Vec::new();
        for i in 0..reloads {
            if during_reload {
                let bytes = if i % 2 == 0 { &lz4_bytes } else { &zstd_bytes };
                let t = Instant::now();
                let r = host.reload("hot", bytes.clone())?;
                total.push(t.elapsed());
                swap.push(r.swap_latency);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let mut times = caller.join().map_err(|_| "caller panicked")?;
        times.sort();
        let p99 = times[times.len() * 99 / 100];
        let max = *times.last().unwrap_or(&Duration::ZERO);
        if during_reload {
            swap.sort();
            total.sort();
            row(
                "reload (cached artifact + self-test), median",
                ms(total[total.len() / 2]),
                "-".into(),
                0.0,
            );
            row(
                "swap itself (atomic pointer swap), median",
                us(swap[swap.len() / 2]),
                "-".into(),
                0.0,
            );
            row(
                "swap itself (atomic pointer swap), max",
                us(*swap.last().unwrap_or(&Duration::ZERO)),
                "-".into(),
                0.0,
            );
        }
        Ok((p99, max))
    };
    let (idle_p99, idle_max) = latencies(false)?;
    let (reload_p99, reload_max) = latencies(true)?;
    row(
        "call p99 during reloads vs without (4 KiB)",
        us(reload_p99),
        us(idle_p99),
        reload_p99.as_secs_f64() / idle_p99.as_secs_f64(),
    );
    row(
        "call max during reloads vs without (4 KiB)",
        us(reload_max),
        us(idle_max),
        reload_max.as_secs_f64() / idle_max.as_secs_f64(),
    );
    let errors: u64 = host.stats().iter().map(|s| s.stats.errors).sum();
    println!("\nfailed calls: {errors}");
    Ok(())
}
