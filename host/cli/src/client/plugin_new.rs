//! `distlog plugin new --lang LANG NAME [DIR]`: a plugin project from a template.
//!
//! The templates of `plugins/templates/<lang>/` and the contract in `wit/` are embedded in
//! the binary (listed by `build.rs`, so reworked templates flow in at the next build). The
//! project gets the template's files with its placeholder name (`my-codec`, `my_codec`,
//! `MyCodec`, ... whatever the template uses) replaced by NAME, its paths to the
//! repository's `wit/` pointed at the project's own copy, and a `distlog-plugin.toml`
//! manifest that `plugin build` reads (language, world, output file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::output::{Output, emit};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_plugins.rs"));
}

/// File name of the project manifest.
pub const MANIFEST: &str = "distlog-plugin.toml";

/// A plugin language: one template and one build recipe each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Wat,
}

impl Lang {
    /// The template directory under `plugins/templates/`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Wat => "wat",
        }
    }
}

/// `distlog-plugin.toml`: what `plugin build` needs to know about a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name (the default name `plugin load` gives the built file).
    pub name: String,
    /// The language, hence the build recipe.
    pub lang: Lang,
    /// The WIT world: `codec-plugin`, `retention-plugin` or `compaction-plugin`.
    pub world: String,
    /// The component `plugin build` writes, relative to the project.
    pub output: String,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The template's language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The plugin's name: lowercase ASCII letters, digits and `-`, starting with a letter
    /// (e.g. `my-retention`).
    pub name: String,
    /// Directory to create [default: ./NAME]; it must not exist or be empty.
    pub dir: Option<PathBuf>,
    /// Output format of the summary.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The languages that have a template in this build.
pub fn available() -> Vec<&'static str> {
    let mut langs: Vec<&str> = embedded::TEMPLATES
        .iter()
        .filter_map(|(path, _)| path.split_once('/').map(|(lang, _)| lang))
        .collect();
    langs.dedup();
    langs
}

pub fn run(args: NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold(args.lang, &args.name)?;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty: choose another directory",
                dir.display()
            );
        }
    }
    for (relative, bytes) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let manifest = read_manifest(&dir)?.context("the scaffold has no manifest")?;
    let value = serde_json::json!({
        "dir": dir.display().to_string(),
        "name": manifest.name,
        "lang": args.lang.name(),
        "world": manifest.world,
        "files": files.keys().collect::<Vec<_>>(),
    });
    emit(args.output, &value, || {
        format!(
            "created {} ({} {}, {} files)\nnext: distlog plugin build {} && distlog plugin test {}\n",
            dir.display(),
            args.lang.name(),
            manifest.world,
            files.len(),
            dir.display(),
            dir.join(&manifest.output).display()
        )
    })
}

/// A plugin name that is a valid package name in every language's tooling.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !ok {
        bail!(
            "invalid plugin name {name:?}: use lowercase ASCII letters, digits and single `-` \
             between them, starting with a letter (at most 64 characters), e.g. my-retention"
        );
    }
    Ok(())
}

/// The project's files: the template with its placeholder renamed, a copy of `wit/`, and
/// the manifest. Paths are relative to the project directory.
pub fn scaffold(lang: Lang, name: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let prefix = format!("{}/", lang.name());
    let template: Vec<(&str, &[u8])> = embedded::TEMPLATES
        .iter()
        .filter_map(|(path, bytes)| path.strip_prefix(prefix.as_str()).map(|p| (p, *bytes)))
        .collect();
    if template.is_empty() {
        bail!(
            "this build has no {} template (templates: {})",
            lang.name(),
            available().join(", ")
        );
    }
    let texts: Vec<&str> = template
        .iter()
        .filter_map(|(_, b)| std::str::from_utf8(b).ok())
        .collect();
    let placeholder = placeholder(&texts);
    let rename = |text: &str| -> String {
        let text = point_at_local_sdk(&point_at_local_wit(text));
        match &placeholder {
            Some(stem) => rename_placeholder(&text, stem, name),
            None => text,
        }
    };
    let mut files = BTreeMap::new();
    for (path, bytes) in &template {
        let path = rename(path);
        let bytes = match std::str::from_utf8(bytes) {
            Ok(text) => rename(text).into_bytes(),
            Err(_) => bytes.to_vec(),
        };
        files.insert(path, bytes);
    }
    for (path, bytes) in embedded::WIT {
        files.insert(format!("wit/{path}"), bytes.to_vec());
    }
    // A template that depends on the Rust SDK by path gets a copy of it.
    let uses_sdk = template
        .iter()
        .any(|(_, b)| String::from_utf8_lossy(b).contains("rust/sdk"));
    if uses_sdk {
        for (path, bytes) in embedded::RUST_SDK {
            files.insert(format!("{SDK_DIR}/{path}"), bytes.to_vec());
        }
    }
    let world = detect_world(files.iter().filter_map(|(path, bytes)| {
        // Prose (READMEs) names other worlds too; the sources name the template's own.
        (!path.starts_with("wit/") && !path.starts_with(SDK_DIR) && !path.ends_with(".md"))
            .then(|| std::str::from_utf8(bytes).ok())
            .flatten()
    }))
    .with_context(|| format!("cannot tell the world of the {} template", lang.name()))?;
    let manifest = Manifest {
        name: name.to_owned(),
        lang,
        world: world.to_owned(),
        output: format!("{name}.wasm"),
    };
    let text = format!(
        "# Written by `distlog plugin new`; `distlog plugin build` reads it.\n{}",
        toml::to_string(&manifest).context("encode the manifest")?
    );
    files.insert(MANIFEST.to_owned(), text.into_bytes());
    Ok(files)
}

/// The manifest of the project in `dir`, if it has one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a valid plugin manifest", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The world that sources implement, from the names their bindings use: `codec-plugin`
/// (Rust `world: "codec-plugin"`, C `codec_plugin.h`), `distlog:plugin/codec@` (WAT
/// exports), `exports.Codec` (Python), `export const codec` (JavaScript). `None` when no
/// or several worlds are named.
pub fn detect_world<'a>(sources: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    let mut found: Vec<&'static str> = Vec::new();
    for text in sources {
        for (kind, world, class) in [
            ("codec", "codec-plugin", "Codec"),
            ("retention", "retention-plugin", "Retention"),
            ("compaction", "compaction-plugin", "Compaction"),
        ] {
            let named = [
                format!("\"{world}\""),
                format!("{kind}_plugin.h"),
                format!("--world {world}"),
                format!("-w {world}"),
                format!("-n {world}"),
                format!("distlog:plugin/{kind}@"),
                format!("exports.{class})"),
                format!("export const {kind} "),
                format!("export_{kind}!"),
                format!("distlog_plugin_sdk::{kind}::"),
            ]
            .iter()
            .any(|needle| text.contains(needle.as_str()));
            if named && !found.contains(&world) {
                found.push(world);
            }
        }
    }
    match found.as_slice() {
        [world] => Some(world),
        _ => None,
    }
}

/// The stem of the template's placeholder name: the word after `my-`/`my_` that the
/// template uses most (`codec` for `my-codec`, `my_codec`, `MyCodec`).
fn placeholder(texts: &[&str]) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for text in texts {
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("my").map(|p| p + i) {
            i = at + 2;
            let before_ok = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
            let sep = bytes.get(at + 2).copied();
            if !before_ok || !matches!(sep, Some(b'-' | b'_')) {
                continue;
            }
            let word: String = text[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            if word.len() >= 3 {
                *counts.entry(word).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|(word, n)| (*n, std::cmp::Reverse(word.clone())))
        .map(|(word, _)| word)
}

/// Replaces `my-STEM`, `my_STEM` and `MySTEM` (whole words) by the kebab, snake and
/// camel-case forms of `name`.
fn rename_placeholder(text: &str, stem: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    let camel: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let stem_camel = {
        let mut chars = stem.chars();
        chars
            .next()
            .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    };
    let mut out = text.to_owned();
    for (from, to) in [
        (format!("my-{stem}"), name.to_owned()),
        (format!("my_{stem}"), snake),
        (format!("My{stem_camel}"), camel),
    ] {
        out = replace_word(&out, &from, &to);
    }
    out
}

/// Replaces `from` where it is not part of a longer identifier.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if ident(before) || ident(after) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Where a scaffold keeps its copy of the Rust SDK.
const SDK_DIR: &str = "distlog-plugin-sdk";

/// Points relative paths to the repository's Rust SDK (`../../rust/sdk`) at the project's
/// own copy.
fn point_at_local_sdk(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("rust/sdk") {
        let mut start = at;
        while start >= 3 && &rest[start - 3..start] == "../" {
            start -= 3;
        }
        if start == at {
            out.push_str(&rest[..at + "rust/sdk".len()]);
        } else {
            out.push_str(&rest[..start]);
            out.push_str(SDK_DIR);
        }
        rest = &rest[at + "rust/sdk".len()..];
    }
    out.push_str(rest);
    out
}

/// Points relative paths to the repository's `wit/` (`../../../wit`) at the project's own
/// copy (`wit`).
fn point_at_local_wit(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("../") {
        out.push_str(&rest[..at]);
        let mut end = at;
        while rest[end..].starts_with("../") {
            end += 3;
        }
        let tail = &rest[end..];
        let word_end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(tail.len());
        if &tail[..word_end] == "wit" {
            out.push_str("wit");
            rest = &tail[3..];
        } else {
            out.push_str(&rest[at..end]);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renamed_as_whole_words() {
        let text = "name = \"my-codec\"\nstruct MyCodec;\nmy_codec.wasm\nmy-codecs my_codec_x";
        assert_eq!(placeholder(&[text]).as_deref(), Some("codec"));
        assert_eq!(
            rename_placeholder(text, "codec", "fast-zip"),
            "name = \"fast-zip\"\nstruct FastZip;\nfast_zip.wasm\nmy-codecs my_codec_x"
        );
    }

    #[test]
    fn wit_paths_point_at_the_local_copy() {
        assert_eq!(
            point_at_local_wit("path: \"../../../wit\", -d ../../../wit -w x ../../samples/a"),
            "path: \"wit\", -d wit -w x ../../samples/a"
        );
        assert_eq!(point_at_local_wit("WIT ?= ../../../wit\n"), "WIT ?= wit\n");
        assert_eq!(point_at_local_wit("../witness"), "../witness");
        assert_eq!(
            point_at_local_sdk("sdk = { path = \"../../rust/sdk\" }"),
            "sdk = { path = \"distlog-plugin-sdk\" }"
        );
        assert_eq!(
            point_at_local_sdk("see plugins/rust/sdk"),
            "see plugins/rust/sdk"
        );
    }

    #[test]
    fn every_embedded_template_scaffolds_with_a_world() {
        for lang in Lang::value_variants() {
            if !available().contains(&lang.name()) {
                continue;
            }
            let files = scaffold(*lang, "acme-plugin").expect("scaffold");
            assert!(files.contains_key("wit/plugin.wit"), "{lang:?}");
            let manifest = String::from_utf8(files[MANIFEST].clone()).unwrap();
            assert!(manifest.contains("name = \"acme-plugin\""), "{manifest}");
            for (path, bytes) in &files {
                let text = String::from_utf8_lossy(bytes);
                assert!(!text.contains("../../../wit"), "{lang:?} {path}");
            }
        }
        assert!(available().contains(&"rust"), "{:?}", available());
    }
}
