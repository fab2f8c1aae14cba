//! Build facts for `distlog_build_info` (the metrics endpoint), emitted by `build.rs`: the
//! git revision (`DISTLOG_REVISION` when set, as a container build without `.git` passes
//! it; else `git rev-parse`; else unset, shown as `unknown`) and the compiler's version.

use std::path::Path;
use std::process::Command;

/// Prints the `cargo:` lines: `DISTLOG_REVISION` and `DISTLOG_RUSTC_VERSION` for the crate,
/// and a rerun whenever HEAD moves.
pub fn emit() {
    println!("cargo:rerun-if-changed=build_info.rs");
    println!("cargo:rerun-if-env-changed=DISTLOG_REVISION");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    if let Some(version) = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
    {
        println!("cargo:rustc-env=DISTLOG_RUSTC_VERSION={version}");
    }

    if let Some(revision) = std::env::var("DISTLOG_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
    {
        println!("cargo:rustc-env=DISTLOG_REVISION={revision}");
    }

    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(branch).display());
        }
        println!(
            "cargo:rerun-if-changed={}",
            git_dir.join("packed-refs").display()
        );
    }
}

/// `git ARGS` in this crate's directory, trimmed; `None` when git or the checkout is missing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}
