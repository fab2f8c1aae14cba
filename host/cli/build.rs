//! Embeds the plugin templates (`plugins/templates/<lang>/`), the plugin contract (`wit/`)
//! and the Rust SDK (`plugins/rust/sdk/`) into the binary for `distlog plugin new`: every file is listed here, so a template
//! another change adds or reworks flows in at the next build without code changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Names never embedded: build outputs, installed dependencies, generated bindings.
const SKIP: &[&str] = &[
    "target",
    "node_modules",
    "build",
    "__pycache__",
    "wit_world",
    "componentize_py_types",
    ".git",
];

// `distlog_build_info`'s revision and compiler (the metrics endpoint).
#[path = "build_info.rs"]
mod build_info;

fn main() {
    build_info::emit();
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let repo = manifest.join("../..");
    let mut out = String::new();
    for (name, dir) in [
        ("TEMPLATES", repo.join("plugins/templates")),
        ("WIT", repo.join("wit")),
        // The Rust SDK the Rust template depends on by path.
        ("RUST_SDK", repo.join("plugins/rust/sdk")),
    ] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files);
        files.sort();
        writeln!(out, "pub static {name}: &[(&str, &[u8])] = &[").unwrap();
        for (relative, path) in files {
            writeln!(
                out,
                "    ({relative:?}, include_bytes!({:?})),",
                path.canonicalize().unwrap_or(path).display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"))
        .join("embedded_plugins.rs");
    std::fs::write(dest, out).expect("write the embedded file list");
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if SKIP.contains(&name.as_str()) || name.ends_with(".wasm") || name.ends_with(".pyc") {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, out);
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
}
