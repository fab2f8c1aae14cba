//! Plugin host benchmarks (`harness = false`): each figure is reported next
//! to a baseline measured in the same run, with the ratio.
//!
//! - Per-call overhead of a trivial call (the WAT identity codec on 16
//!   bytes) vs a native copy of the same 16 bytes.
//! - Codec throughput, compress and decompress, on 1 MiB and 64 KiB of
//!   log-like text: the `codec-lz4` component vs `lz4_flex` compiled natively
//!   with the same features, and the `codec-zstd` component vs the `zstd`
//!   crate (the reference C libzstd, native) at the plugin's level, with a
//!   context reused between calls as the plugin reuses its own. Each figure
//!   is MB/s of uncompressed bytes through `PluginHost::compress` /
//!   `decompress` (copies across the component boundary included). A row
//!   per size puts the cost of one boundary crossing (a copy into a fresh
//!   `Vec`) next to the native decompress of the same bytes.
//! - Load time: cold (compile) vs cached (precompiled artifact), for the LZ4
//!   component and for the largest bundled component (Python/JS when built).
//! - Reload: end-to-end reload time (artifact cached, self-test included),
//!   the swap itself, and the latency of calls made during reloads vs
//!   without.
//!
//! `cargo bench -p distlog-benches --bench plugins` (about a minute, plus
//! ~20 s per large interpreter component on its cold compile);
//! `DISTLOG_BENCH_QUICK=1` for a quick pass; `DISTLOG_BENCH_ONLY=codecs` stops
//! after the codec rows; `DISTLOG_BENCH_LZ4_WASM=<file>` and
//! `DISTLOG_BENCH_ZSTD_WASM=<file>` measure other builds of the two codecs
//! (default: the committed `plugins/dist/` artifacts); `DISTLOG_BENCH_BEST=1`
//! reports the fastest codec iteration instead of the median.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use distlog_plugin_host::{CacheOutcome, HostConfig, PluginHost, PluginSpec};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn quick() -> bool {
    std::env::var_os("DISTLOG_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick")
}

/// `DISTLOG_BENCH_BEST=1`: codec rows report the fastest iteration instead
/// of the median (steadier on a machine shared with other work).
fn best() -> bool {
    std::env::var_os("DISTLOG_BENCH_BEST").is_some()
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

/// Medians (with `DISTLOG_BENCH_BEST=1`: minimums) of per-iteration times
/// of `a` and `b`, run alternately `iters` times each (after one warm-up
/// call of each).
fn paired_medians<A, B>(iters: usize, mut a: A, mut b: B) -> Result<(Duration, Duration)>
where
    A: FnMut() -> Result<()>,
    B: FnMut() -> Result<()>,
{
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        let t = Instant::now();
        a()?;
        ta.push(t.elapsed());
        let t = Instant::now();
        b()?;
        tb.push(t.elapsed());
    }
    ta.sort();
    tb.sort();
    let at = if best() { 0 } else { iters / 2 };
    Ok((ta[at], tb[at]))
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

/// zstd level of the native baseline: the level the `codec-zstd` plugin uses.
const ZSTD_LEVEL: i32 = 1;

/// A committed artifact in `plugins/dist/`, or the file named by `var` (to
/// measure a fresh build, e.g. `plugins/build.sh --check --keep`'s output).
fn artifact(var: &str, file: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| dist().join(file))
}

struct CodecCase<'a> {
    plugin: &'a str,
    codec: &'a str,
    label: &'a str,
    input: &'a [u8],
    iters: usize,
}

/// Compress and decompress rows for one codec: the plugin's MB/s (of
/// uncompressed bytes) against the native baseline's in the same run, then
/// both compression ratios. The plugin's output is checked to round-trip.
fn codec_rows(
    host: &PluginHost,
    case: &CodecCase<'_>,
    mut native_compress: impl FnMut() -> Result<usize>,
    mut native_decompress: impl FnMut() -> Result<usize>,
) -> Result<()> {
    let CodecCase {
        plugin,
        codec,
        label,
        input,
        iters,
    } = *case;
    let size = u32::try_from(input.len())?;
    let compressed = host.compress(plugin, input)?;
    if host.decompress(&compressed.codec, &compressed.data, size)? != input {
        return Err(format!("{plugin}: round trip changed the data").into());
    }
    // Plugin and native calls alternate, so load from elsewhere on the
    // machine weighs on both sides of each ratio alike.
    let mut native_len = 0;
    let (wasm_c, native_c) = paired_medians(
        iters,
        || {
            std::hint::black_box(host.compress(plugin, std::hint::black_box(input))?);
            Ok(())
        },
        || {
            native_len = std::hint::black_box(native_compress()?);
            Ok(())
        },
    )?;
    let (wasm_d, native_d) = paired_medians(
        iters,
        || {
            std::hint::black_box(host.decompress(&compressed.codec, &compressed.data, size)?);
            Ok(())
        },
        || {
            std::hint::black_box(native_decompress()?);
            Ok(())
        },
    )?;
    let len = input.len();
    for (op, wasm, native) in [
        ("compress", wasm_c, native_c),
        ("decompress", wasm_d, native_d),
    ] {
        row(
            &format!("{codec} {op} {label} log text, MB/s"),
            format!("{:.0}", mbps(len, wasm)),
            format!("{:.0}", mbps(len, native)),
            mbps(len, wasm) / mbps(len, native),
        );
    }
    row(
        &format!(
            "  (ratio {:.2}x plugin, {:.2}x native)",
            len as f64 / compressed.data.len() as f64,
            len as f64 / native_len as f64,
        ),
        String::new(),
        String::new(),
        0.0,
    );
    Ok(())
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

    // 2. Codec throughput, wasm vs native, at a large and a typical batch size.
    let lz4_under_test = std::fs::read(artifact("DISTLOG_BENCH_LZ4_WASM", "codec-lz4.wasm"))?;
    let zstd_under_test = std::fs::read(artifact("DISTLOG_BENCH_ZSTD_WASM", "codec-zstd.wasm"))?;
    host.load(PluginSpec::new("lz4-under-test"), lz4_under_test)?;
    host.load(PluginSpec::new("zstd-under-test"), zstd_under_test)?;
    let mut zstd_c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    let mut zstd_d = zstd::bulk::Decompressor::new()?;
    for (label, len, iters) in [
        ("1 MiB", 1usize << 20, if quick { 20 } else { 200 }),
        ("64 KiB", 64 << 10, if quick { 200 } else { 2000 }),
    ] {
        let input = distlog_plugin_host::samples::compressible_bytes(len);
        let size = u32::try_from(input.len())?;
        let native_lz4 = lz4_flex::block::compress_prepend_size(&input);
        let native_zstd = zstd_c.compress(&input)?;
        codec_rows(
            &host,
            &CodecCase {
                plugin: "lz4-under-test",
                codec: "lz4",
                label,
                input: &input,
                iters,
            },
            || Ok(lz4_flex::block::compress_prepend_size(&input).len()),
            || Ok(lz4_flex::block::decompress_size_prepended(&native_lz4)?.len()),
        )?;
        codec_rows(
            &host,
            &CodecCase {
                plugin: "zstd-under-test",
                codec: &format!("zstd (native level {ZSTD_LEVEL})"),
                label,
                input: &input,
                iters,
            },
            || Ok(zstd_c.compress(&input)?.len()),
            || Ok(zstd_d.decompress(&native_zstd, size as usize)?.len()),
        )?;
        // What one crossing of the component boundary costs at this size:
        // a copy into a fresh buffer, against the native decompress that
        // produces the same bytes.
        let (copy, native_d) = paired_medians(
            iters,
            || {
                std::hint::black_box(std::hint::black_box(&input[..]).to_vec());
                Ok(())
            },
            || {
                std::hint::black_box(lz4_flex::block::decompress_size_prepended(&native_lz4)?);
                Ok(())
            },
        )?;
        row(
            &format!("  copy {label} to a new Vec vs native lz4 decompress"),
            us(copy),
            us(native_d),
            copy.as_secs_f64() / native_d.as_secs_f64(),
        );
    }

    if std::env::var("DISTLOG_BENCH_ONLY").is_ok_and(|v| v == "codecs") {
        return Ok(());
    }

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
